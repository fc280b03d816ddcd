"""Localisation: does an attribution map point at the object? Six metrics, as Quantus 0.6.0
defines them (``quantus/metrics/localisation/``), on arrays; no model is needed::

    PointingGame(attr_map, mask, *, weighted=False)
    RelevanceMassAccuracy(attr_map, mask)
    RelevanceRankAccuracy(attr_map, mask, *, stable=False)
    TopKIntersection(attr_map, mask, k=1000, *, concept_influence=False, stable=False)
    AttributionLocalisation(attr_map, mask, *, weighted=False, positive_attributions=False)
    AUC(attr_map, mask)

and every one also takes Quantus' ``abs`` (default False, True for
AttributionLocalisation) and ``normalise=True`` (keyword only). ``attr_map`` is a pixel map
``[N, H, W]`` (one map ``[H, W]`` gives a float), ``mask`` a bool array of the same shape,
True on the object (Quantus' ``s_batch``); each returns float64 scores ``[N]``, higher is
better. As Quantus: the maps are first divided by the largest ``|a|`` of the whole call
(``normalise_by_max`` over the batch), then made absolute where ``abs`` says so; a map
``[N, H, W]`` is Quantus' channel-first ``a_batch`` ``[N, 1, H, W]`` (C = 1; the metrics
flatten each map in raster order, as Quantus' ``reshape(batch_size, -1)``). For an
attribution ``[N, H, W, C]`` pass its pixel attribution (``hw3_evaluation``'s channel mean):
Quantus' localisation metrics cannot pair a ``[N, C, H, W]`` map, C > 1, with a mask
``[N, 1, H, W]`` either.

Every score here is invariant to a positive factor on a map, so the per-batch
normalisation changes nothing but rounding: a batch gives what its maps give one by one,
except in AttributionLocalisation, whose ``+ 1e-9`` sees the normalised scale (``batch[i]``
is ``AttributionLocalisation(attr_map[i] / max|attr_map|, mask[i], normalise=False)``).

Undefined scores are NaN with a ``RuntimeWarning`` naming the images: an empty mask (all
six, as Quantus' ``score[s_batch.sum(-1) == 0] = np.nan``), and each metric's own cases
below. Where Quantus 0.6.0 computes something else on purpose or by a slip, the docstring
says so under "Quantus". Quantus refuses a whole call whose maps are all zero, all one,
all one value, or all negative (``asserts.assert_attributions``); ours scores such maps by
the same formulas (each image as it would score inside a batch that Quantus accepts).
"""
import numpy as np
from scipy.stats import rankdata

from attrkit.metrics.maps import (check_flag, check_k, empty_masks, ranking, read_maps,
                                  scores, undefined)


def PointingGame(attr_map, mask, *, weighted=False, abs=False, normalise=True):
    """Pointing Game (Zhang et al., "Top-down neural attention by excitation backprop",
    IJCV 2018), as Quantus 0.6.0's ``PointingGame``: 1 when a pixel of the map's maximum
    lies in the mask, else 0.

    Every pixel that attains the maximum counts (a tie for the top is a hit when any of
    them is on the object). The maximum is of the signed map (``abs=False``): an
    all-negative map points where it is least negative.

    Args:
        attr_map: pixel maps ``[N, H, W]`` (or one ``[H, W]``), any real dtype.
        mask: bool ``[N, H, W]`` (or ``[H, W]``), True on the object.
        weighted: a hit scores ``1 - |mask| / (H·W)`` instead of 1 (a small object's hit
            weighs more).
        abs: take ``|a|`` after normalising (Quantus' default: False).
        normalise: divide by the largest ``|a|`` of the call first (default True; the
            score does not change with it).

    Returns:
        float64 ``[N]`` (a float for one map): 1.0 or 0.0 (weighted: the weight or 0.0);
        NaN for an empty mask.

    Quantus: an empty mask scores True there (its ``hit[...] = np.nan`` writes into a bool
    array, and NaN is truthy), and ``weighted=True`` raises a TypeError as soon as an
    image hits (it assigns a column ``[n, 1]`` to ``hit[hit]``); ours gives NaN and the
    weight its code means.
    """
    maps = read_maps(attr_map, mask, normalise=normalise, abs=abs, needs_mask=True)
    weighted = check_flag(weighted, "weighted")
    a, s = maps.values, maps.mask                                   # [N, H·W]
    top = a == a.max(axis=1, keepdims=True)                         # the map's top pixel(s)
    score = np.any(s & top, axis=1).astype(np.float64)
    if weighted:
        score *= 1 - maps.mask_sizes() / maps.size
    return scores(maps, empty_masks(maps, score, "Pointing Game"))


def RelevanceMassAccuracy(attr_map, mask, *, abs=False, normalise=True):
    """Relevance Mass Accuracy (Arras, Osman and Samek, "CLEVR-XAI", Inf. Fusion 2022), as
    Quantus 0.6.0's ``RelevanceMassAccuracy``: the map's sum on the mask over its sum on
    the whole image, ``Σ_{p ∈ mask} a_p / Σ_p a_p``.

    The sums are of the signed map (``abs=False``, as Quantus' code: its docstring speaks
    of the positive attributions, its code sums them all), so with negative values the
    score may leave [0, 1].

    Args:
        attr_map, mask, abs, normalise: as :func:`PointingGame`.

    Returns:
        float64 ``[N]`` (a float for one map); NaN for an empty mask, and for a map whose
        total is 0 (Quantus: NaN or ±inf from numpy's division, with numpy's warning).
    """
    maps = read_maps(attr_map, mask, normalise=normalise, abs=abs, needs_mask=True)
    a, s = maps.values, maps.mask
    inside = (a * s).sum(axis=-1)                                   # [N] mass on the mask
    total = a.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = inside / total
    score = undefined(score, (total == 0) & (maps.mask_sizes() > 0),
                      "Relevance Mass Accuracy", "the map sums to 0")
    return scores(maps, empty_masks(maps, score, "Relevance Mass Accuracy"))


def RelevanceRankAccuracy(attr_map, mask, *, stable=False, abs=False, normalise=True):
    """Relevance Rank Accuracy (Arras, Osman and Samek, "CLEVR-XAI", Inf. Fusion 2022), as
    Quantus 0.6.0's ``RelevanceRankAccuracy``: the share of the mask's ``K = |mask|``
    pixels found among the map's ``K`` most attributed pixels, ``|top_K ∩ mask| / K``.

    Ties: pixels are ranked by ``np.argsort(-a)``, numpy's default kind, as Quantus ranks
    them, so a tie across the K-th place is broken as numpy orders equal values, which
    is its own (introsort, or x86-simd-sort on CPUs with AVX-512) and may differ between
    numpy versions and machines; ``stable=True`` ranks ties in raster order instead (the
    earlier pixel, row by row, first), the same everywhere. Ties that do not cross the
    K-th place change nothing.

    Args:
        attr_map, mask, abs, normalise: as :func:`PointingGame`.
        stable: break ties in raster order (default False: as Quantus, numpy's order).

    Returns:
        float64 ``[N]`` (a float for one map), in [0, 1]; NaN for an empty mask.
    """
    maps = read_maps(attr_map, mask, normalise=normalise, abs=abs, needs_mask=True)
    order = ranking(maps.values, stable)                            # [N, H·W] best first
    sizes = maps.mask_sizes()                                       # [N] K per map
    in_top = np.arange(maps.size)[None] < sizes[:, None]            # [N, H·W] places < K
    hits = np.take_along_axis(maps.mask, order, axis=1) & in_top
    with np.errstate(divide="ignore", invalid="ignore"):
        score = hits.sum(axis=1) / sizes
    return scores(maps, empty_masks(maps, score, "Relevance Rank Accuracy"))


def TopKIntersection(attr_map, mask, k=1000, *, concept_influence=False, stable=False,
                     abs=False, normalise=True):
    """Top-K Intersection (Theiner, Müller-Budack and Ewerth, "Interpretable semantic photo
    geolocalization", arXiv:2104.14995, 2021), as Quantus 0.6.0's ``TopKIntersection``:
    the share of the map's ``k`` most attributed pixels that lie in the mask,
    ``|top_k ∩ mask| / k``.

    Args:
        attr_map, mask, abs, normalise: as :func:`PointingGame`.
        k: how many top pixels (Quantus' default 1000, fixed, not scaled with the image);
            an int with ``1 <= k < H·W`` (Quantus asserts ``k`` smaller than the map).
        concept_influence: multiply by ``H·W / |mask|`` (the intersection relative to the
            object's share of the image), Quantus' option.
        stable: ties as :func:`RelevanceRankAccuracy` (a tie across the k-th place).

    Returns:
        float64 ``[N]`` (a float for one map); NaN for an empty mask.
    """
    maps = read_maps(attr_map, mask, normalise=normalise, abs=abs, needs_mask=True)
    k = check_k(k, maps.size)
    concept_influence = check_flag(concept_influence, "concept_influence")
    order = ranking(maps.values, stable)[:, :k]                     # [N, k] the top k
    score = np.take_along_axis(maps.mask, order, axis=1).mean(axis=1)
    if concept_influence:
        with np.errstate(divide="ignore", invalid="ignore"):
            score = score * (maps.size / maps.mask_sizes())
    return scores(maps, empty_masks(maps, score, "Top-K Intersection"))


def AttributionLocalisation(attr_map, mask, *, weighted=False, positive_attributions=False,
                            abs=True, normalise=True):
    """Attribution Localisation (Kohlbrenner et al., "Towards best practice in explaining
    neural network decisions with LRP", IJCNN 2020), as Quantus 0.6.0's
    ``AttributionLocalisation``: the inside-total relevance ratio
    ``Σ_{p ∈ mask} a_p / (Σ_p a_p + 1e-9)``.

    By default of ``|a|`` (Quantus' ``abs=True``), after the call's normalisation, so the
    ``1e-9`` sees maps whose largest value is 1 (a batch's map scores what it would alone
    after dividing by the batch's largest ``|a|``, not quite what it scores alone).

    Args:
        attr_map, mask, normalise: as :func:`PointingGame`.
        weighted: multiply by the object's share of the image, ``|mask| / (H·W)``.
        positive_attributions: clip the (normalised, absolute) map at 0 first.
        abs: take ``|a|`` after normalising (Quantus' default: True).

    Returns:
        float64 ``[N]`` (a float for one map); NaN for an empty mask and where the ratio
        exceeds 1 (possible with ``abs=False``), as Quantus.

    Quantus: ``weighted`` divides by ``x_batch[2:].size``, the size of the input batch
    less its first two images, where it means one image's ``H·W``: the two agree only for
    a batch (of Quantus' 64) of three one-channel inputs. Its ``max_size`` only warns; it
    is not offered.
    """
    maps = read_maps(attr_map, mask, normalise=normalise, abs=abs, needs_mask=True)
    weighted = check_flag(weighted, "weighted")
    if check_flag(positive_attributions, "positive_attributions"):
        a = np.clip(maps.values, 0, None)
    else:
        a = maps.values
    s = maps.mask
    inside = (a * s).sum(axis=-1)                                   # [N]
    total = a.sum(axis=-1)
    score = inside / (total + 1e-9)
    score = empty_masks(maps, score, "Attribution Localisation")
    with np.errstate(invalid="ignore"):
        above = score > 1
    score = undefined(score, above, "Attribution Localisation",
                      "more attribution on the mask than in total; abs=False?")
    if weighted:
        score = score * (maps.mask_sizes() / maps.size)
    return scores(maps, score)


def AUC(attr_map, mask, *, abs=False, normalise=True):
    """AUC (Fawcett, "An introduction to ROC analysis", Pattern Recognit. Lett. 2006), as
    Quantus 0.6.0's ``AUC``: the area under the ROC curve of the map's values as scores
    for the mask's pixels (``sklearn.metrics.roc_curve`` and ``auc`` per image).

    Computed as the Mann-Whitney statistic it equals: the chance that a random mask pixel
    outscores a random pixel outside it, a tie counting one half (``roc_curve`` puts tied
    values on one threshold, a diagonal step); ranks by ``scipy.stats.rankdata``.

    Args:
        attr_map, mask, abs, normalise: as :func:`PointingGame`.

    Returns:
        float64 ``[N]`` (a float for one map), in [0, 1]; NaN for an empty mask and for a
        mask of every pixel (no negatives: sklearn's ROC is undefined, Quantus gives NaN
        with sklearn's warning).
    """
    maps = read_maps(attr_map, mask, normalise=normalise, abs=abs, needs_mask=True)
    ranks = rankdata(maps.values, axis=1)                           # [N, H·W] 1..H·W
    positives = maps.mask_sizes().astype(np.float64)
    negatives = maps.size - positives
    rank_sum = np.where(maps.mask, ranks, 0).sum(axis=1)            # mask pixels' ranks
    with np.errstate(divide="ignore", invalid="ignore"):
        score = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    score = empty_masks(maps, score, "AUC")
    score = undefined(score, negatives == 0, "AUC", "the mask covers the whole map")
    return scores(maps, score)


__all__ = ["PointingGame", "RelevanceMassAccuracy", "RelevanceRankAccuracy",
           "TopKIntersection", "AttributionLocalisation", "AUC"]
