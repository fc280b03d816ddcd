"""Complexity: how concentrated is an attribution map? Three metrics, as Quantus 0.6.0
defines them (``quantus/metrics/complexity/``), on arrays; no model and no mask::

    Sparseness(attr_map)                  # Gini index, higher is sparser (better)
    Complexity(attr_map)                  # entropy, lower is simpler (better)
    EffectiveComplexity(attr_map, eps=1e-5)   # pixels above eps, lower is better

and every one also takes Quantus' ``abs=True`` and ``normalise=True`` (keyword only).
``attr_map`` is a pixel map ``[N, H, W]`` (one map ``[H, W]`` gives a scalar); each
returns scores ``[N]``. As Quantus: the maps are first divided by the largest ``|a|`` of
the whole call (``normalise_by_max`` over the batch), then made absolute; a map
``[N, H, W]`` is Quantus' channel-first ``a_batch`` ``[N, 1, H, W]`` (C = 1), flattened in
raster order. (On an attribution ``[N, C, H, W]`` Quantus scores its C·H·W values; pass
our functions a pixel map, e.g. ``hw3_evaluation``'s channel mean.)

Batch and one by one: Complexity divides each map by its own sum, so it scores a map the
same in any batch (to rounding); Sparseness adds ``1e-7`` and EffectiveComplexity
compares with ``eps`` after the call's normalisation, so they see the batch's scale:
``batch[i]`` is ``metric(attr_map[i] / max|attr_map|, normalise=False)``, which is the
map's score alone only when it holds the batch's largest ``|a|``.

Undefined scores are NaN with a ``RuntimeWarning`` naming the images. Quantus refuses a
whole call whose maps are all zero, all one, all one value or all negative
(``asserts.assert_attributions``); ours scores them by the same formulas.
"""
import numpy as np

from attrkit.metrics.maps import check_eps, read_maps, scores, undefined


def Sparseness(attr_map, *, abs=True, normalise=True):
    """Sparseness (Chalasani et al., "Concise explanations of neural networks using
    adversarial training", ICML 2020), as Quantus 0.6.0's ``Sparseness``: the Gini index
    of the map's values,

        G(a) = Σ_{i=1..n} (2i − n − 1) a_(i) / (n Σ_i a_i)

    with ``a_(1) <= ... <= a_(n)`` the ``n = H·W`` values of ``|a|`` (after the call's
    normalisation) plus ``1e-7`` each, as Quantus adds it. 0 for a uniform map, close to 1
    when one pixel holds everything.

    Args:
        attr_map: pixel maps ``[N, H, W]`` (or one ``[H, W]``), any real dtype.
        abs: take ``|a|`` after normalising (Quantus' default: True).
        normalise: divide by the largest ``|a|`` of the call first (default True).

    Returns:
        float64 ``[N]`` (a float for one map); NaN where the values sum to 0 (possible
        only with ``abs=False``).
    """
    maps = read_maps(attr_map, normalise=normalise, abs=abs)
    n = maps.size
    a = np.sort(maps.values + 1e-7, axis=-1)                        # [N, n] ascending
    weights = 2 * np.arange(1, n + 1) - n - 1                       # 2i - n - 1, i = 1..n
    total = a.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = (weights * a).sum(axis=-1) / (n * total)
    score = undefined(score, total == 0, "Sparseness", "the values sum to 0; abs=False?")
    return scores(maps, score)


def Complexity(attr_map, *, abs=True, normalise=True):
    """Complexity (Bhatt, Weller and Moura, "Evaluating and aggregating feature-based model
    explanations", IJCAI 2020), as Quantus 0.6.0's ``Complexity``: the entropy of the map
    as a distribution over its pixels,

        C(a) = −Σ_p P_p ln(P_p + 1e-12),   P_p = a_p / Σ_q |a_q|

    of ``|a|`` (after the call's normalisation, which P undoes). ``ln(H·W)`` for a uniform
    map, 0 for one hot pixel; in nats.

    Args:
        attr_map, abs, normalise: as :func:`Sparseness`.

    Returns:
        float64 ``[N]`` (a float for one map); NaN for an all-zero map (0 / 0, as Quantus)
        and where the logarithm is undefined (negative values with ``abs=False``;
        Quantus: NaN with numpy's warning).
    """
    maps = read_maps(attr_map, normalise=normalise, abs=abs)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = maps.values / np.abs(maps.values).sum(axis=-1, keepdims=True)     # [N, H·W]
        score = -(p * np.log(p + 1e-12)).sum(axis=-1)
    zero = ~maps.values.any(axis=-1)
    score = undefined(score, zero, "Complexity", "an all-zero map")
    score = undefined(score, ~np.isfinite(score) & ~zero, "Complexity",
                      "negative values (abs=False) have no logarithm")
    return scores(maps, score)


def EffectiveComplexity(attr_map, eps=1e-5, *, abs=True, normalise=True):
    """Effective Complexity (Nguyen and Martínez, "On quantitative aspects of model
    interpretability", arXiv:2007.07584, 2020), as Quantus 0.6.0's
    ``EffectiveComplexity``: the number of pixels whose ``|a|`` (after the call's
    normalisation, so relative to the call's largest value) exceeds ``eps``.

    Args:
        attr_map, abs, normalise: as :func:`Sparseness`.
        eps: the threshold (Quantus' default 1e-5), strictly exceeded.

    Returns:
        int64 ``[N]`` (an int for one map), between 0 and H·W.
    """
    maps = read_maps(attr_map, normalise=normalise, abs=abs)
    eps = check_eps(eps)
    return scores(maps, np.sum(maps.values > eps, axis=1).astype(np.int64))


__all__ = ["Sparseness", "Complexity", "EffectiveComplexity"]
