"""More faithfulness metrics, as Quantus 0.6.0 defines them, on a model in a session::

    PixelFlipping(sess, attr_map, input, input_tensor, output_tensor, target_class)
    RegionPerturbation(sess, attr_map, input, input_tensor, output_tensor, target_class)
    FaithfulnessCorrelation(sess, attr_map, input, input_tensor, output_tensor, target_class)
    MonotonicityCorrelation(sess, attr_map, input, input_tensor, output_tensor, target_class)

in the form of :func:`hw3_evaluation.AverageDrop`: ``attr_map`` is a pixel map ``[N, H,
W]`` or an attribution ``[N, H, W, C]``, ``input`` the images ``[N, H, W, C]`` (one image
without the batch axis gives one result), ``target_class`` an int, one per image, or None
(the prediction). Keyword-only extras: ``batch_size`` (rows per ``sess.run``, default 16),
``progress``, ``feed_dict``, and Quantus' own options with its defaults.

Quantus' conventions, which the definitions depend on:

* A *feature* is one channel value: a pixel map ``[N, H, W]`` is broadcast over the
  channels, as Quantus broadcasts ``a_batch`` to ``x_batch``'s shape (Pixel Flipping then has
  ``H·W·C / features_in_step`` points). Features are ordered here in the raster order of
  ``[H, W, C]`` (Quantus flattens ``[C, H, W]``); where an order among equal attributions is
  needed it is this raster order (a stable sort; Quantus' ``np.argsort`` leaves it to
  numpy), so a pixel map flips the channels of one pixel one after the other.
* The maps are first divided by the largest ``|a|`` of the whole call (``normalise=True``),
  then made absolute where Quantus does by default (``abs``: Monotonicity Correlation only).
* ``perturb_baseline`` ``'black'`` is the image's minimum over all its values (not 0),
  ``'white'`` its maximum, ``'mean'`` its mean, ``'uniform'`` one ``U(0, 1)`` value per image
  and draw; a number is that value. The cumulative metrics (Pixel Flipping, Region
  Perturbation) take ``'black'``, ``'white'`` and numbers: there Quantus' ``'mean'`` and
  ``'uniform'`` change as the image is perturbed.
* Pixel Flipping, Region Perturbation and Monotonicity Correlation score the softmax
  probability of the target (Quantus' ``softmax=True``), Faithfulness Correlation its logit
  (``softmax=False``).

In the graph: every perturbed copy is built by the row engine of :mod:`hw3_attribution`
from the image, an all-ones image times the row's fill value and a rank map (the features
a row replaces are those ranked in its window); only the scores come back.
"""
import math
import warnings

import numpy as np

from hw3_attribution import (DEFAULT_BATCH_SIZE, ImageBank, Rows, check_positive_int,
                             check_seed, is_int)
from hw3_evaluation import UNDEFINED_WARNING, _Metric, checked_attribution
from attrkit.metrics.maps import check_flag, normalise_by_max

# Error messages, kept as data so that tests match the same templates.
BASELINE_ERROR = ("perturb_baseline: expected one of {names} or a finite number, got "
                  "{actual!r}")
STEP_ERROR = ("{arg}: expected an int with 1 <= {arg} <= {limit} ({what}), got {actual!r}")
ORDER_ERROR = "order: expected 'morf', 'lerf' or 'random', got {actual!r}"
EPS_ERROR = "eps: expected a finite number >= 0, got {actual!r}"

CUMULATIVE_BASELINES = ("black", "white")
DRAWN_BASELINES = ("black", "white", "mean", "uniform")


# ------------------------------------------------------------------ the four metrics

def PixelFlipping(sess, attr_map, input, input_tensor, output_tensor, target_class=None, *,
                  features_in_step=1, perturb_baseline="black", return_auc=False,
                  normalise=True, abs=False, batch_size=DEFAULT_BATCH_SIZE, progress=True,
                  feed_dict=None):
    """Pixel Flipping (Bach et al., PLoS ONE 2015), as Quantus' ``PixelFlipping``.

    The features are set to the baseline ``features_in_step`` at a time, most attributed
    first, cumulatively; after each step the target's softmax probability is a point of the
    curve (lower, sooner is better). Quantus asserts that ``features_in_step`` divides
    ``H·W``; here any step up to ``H·W·C`` works, the last step taking what is left.

    Returns:
        the curves ``[N, T]``, ``T = ceil(H·W·C / features_in_step)`` (``[T]`` for one
        image); with ``return_auc`` each curve's area, ``np.trapezoid(curve, dx=1)``
        (Quantus' ``calculate_auc``), ``[N]`` (a float for one image). Session calls:
        ``ceil(N·T / batch_size)`` (+ ``ceil(N / batch_size)`` when the target is None).
    """
    return_auc = check_flag(return_auc, "return_auc")
    run = _Run(sess, input_tensor, output_tensor, target_class, batch_size, progress,
               feed_dict, input)
    a = run.features(attr_map, normalise, abs)                             # [N, F]
    step = _check_step(features_in_step, "features_in_step", a.shape[1],
                       "features per image, H·W·C")
    fill = run.fill(perturb_baseline, CUMULATIVE_BASELINES)                 # [N]
    stops = np.minimum(np.arange(1, math.ceil(a.shape[1] / step) + 1) * step, a.shape[1])
    curves = run.filled_scores(ranks=run.as_maps(descending_ranks(a)), stops=stops,
                               fill=np.repeat(fill, len(stops)), kind="prob",
                               desc="Pixel Flipping")
    if return_auc:
        return run.result(np.trapezoid(curves, dx=1, axis=1))
    return run.result(curves)


def RegionPerturbation(sess, attr_map, input, input_tensor, output_tensor, target_class=None,
                       *, patch_size=8, regions_evaluation=100, order="morf",
                       perturb_baseline="black", normalise=True, abs=False, seed=None,
                       batch_size=DEFAULT_BATCH_SIZE, progress=True, feed_dict=None):
    """Region Perturbation (Samek et al., IEEE TNNLS 2017), as Quantus'
    ``RegionPerturbation``: the AOPC curve.

    The image is cut into ``patch_size`` x ``patch_size`` regions on a grid centred as
    Quantus pads it (``H mod s`` leaves ``s - H mod s`` rows of padding, the smaller half
    on top; likewise on the left); a region's attribution is the sum of its features.
    The regions are set to the baseline one at a time, cumulatively, in ``order``
    (``'morf'``: most attributed first, ``'lerf'``: least first, ties in raster order of
    the regions; ``'random'``: a permutation from ``seed``), for the first
    ``regions_evaluation`` of them.

    Args:
        seed: for ``'random'``, each image's order is ``numpy.random.default_rng(seed)
            .permutation(regions)`` (None: a seed drawn once per call).

    Returns:
        ``[N, K]`` (``[K]`` for one image), ``K = min(regions_evaluation, regions)``: the
        drop of the target's softmax probability, ``p(x) - p(x with the first k + 1
        regions replaced)``. Session calls: ``ceil(N·K / batch_size) + ceil(N /
        batch_size)``.
    """
    if order not in ("morf", "lerf", "random"):
        raise ValueError(ORDER_ERROR.format(actual=order))
    run = _Run(sess, input_tensor, output_tensor, target_class, batch_size, progress,
               feed_dict, input)
    h, w = run.X.shape[1:3]
    size = _check_step(patch_size, "patch_size", min(h, w), "the image's height and width")
    n_eval = check_positive_int(regions_evaluation, "regions_evaluation")
    a = run.features(attr_map, normalise, abs)                             # [N, F]
    fill = run.fill(perturb_baseline, CUMULATIVE_BASELINES)
    block = region_labels(h, w, size)                                     # [H, W]
    sums = np.stack([np.bincount(block.ravel(), weights=img.sum(-1).ravel(),
                                 minlength=block.max() + 1)
                     for img in a.reshape(run.X.shape)])                  # [N, regions]
    position = region_positions(sums, order, seed)                      # [N, regions]
    ranks = np.take_along_axis(position, np.broadcast_to(block.ravel(), (len(a), h * w)),
                               1).reshape(len(a), h, w).astype(np.int32)
    stops = np.arange(1, min(n_eval, sums.shape[1]) + 1)
    probs = run.probs()
    perturbed = run.filled_scores(ranks=ranks, stops=stops, fill=np.repeat(fill, len(stops)),
                                  kind="prob", desc="Region Perturbation")
    return run.result(probs[:, None] - perturbed)


def FaithfulnessCorrelation(sess, attr_map, input, input_tensor, output_tensor,
                            target_class=None, *, nr_runs=100, subset_size=224,
                            perturb_baseline="black", normalise=True, abs=False, seed=None,
                            batch_size=DEFAULT_BATCH_SIZE, progress=True, feed_dict=None):
    """Faithfulness Correlation (Bhatt et al., IJCAI 2020), as Quantus'
    ``FaithfulnessCorrelation``.

    ``nr_runs`` times, a random subset of ``subset_size`` features (without replacement) is
    set to the baseline; the score is the Pearson correlation, over the runs, between the
    subset's attribution sum and the drop of the target's logit, ``f(x) - f(x_subset)``.

    Args:
        seed: each image's draws are those of a fresh ``numpy.random.default_rng(seed)``
            (so an image gets the same draws in a batch as alone), in this order: the
            subsets, ``rng.choice(H·W·C, subset_size, replace=False)`` run by run, then for
            ``'uniform'`` the fill values ``rng.uniform(0, 1, nr_runs)``. None: a seed drawn
            once per call.

    Returns:
        ``[N]`` correlations (a float for one image); NaN, with a warning, where the
        attribution sums or the drops do not vary. Session calls: ``ceil(N·nr_runs /
        batch_size) + ceil(N / batch_size)``.
    """
    run = _Run(sess, input_tensor, output_tensor, target_class, batch_size, progress,
               feed_dict, input)
    a = run.features(attr_map, normalise, abs)                             # [N, F]
    n, n_feat = a.shape
    runs = check_positive_int(nr_runs, "nr_runs")
    k = _check_step(subset_size, "subset_size", n_feat - 1,
                    "fewer than the features per image, H·W·C")
    rngs = image_generators(seed, n)
    subsets = np.stack([rng.choice(n_feat, k, replace=False) for rng in rngs
                        for _ in range(runs)])                           # [N·runs, k]
    fill = run.fill(perturb_baseline, DRAWN_BASELINES, draws=runs, rngs=rngs)  # [N, runs]
    scores = run.scores()
    perturbed = run.filled_scores(ranks=SubsetMaps(subsets, run.X.shape[1:]),
                                  stops=np.ones(runs, int), fill=fill.ravel(), kind="score",
                                  desc="Faithfulness Correlation", per_row_maps=True)
    deltas = scores[:, None] - perturbed.reshape(n, runs)
    sums = a[np.repeat(np.arange(n), runs)[:, None], subsets].sum(1).reshape(n, runs)
    return run.result(correlations("pearson", sums, deltas, "Faithfulness Correlation"))


def MonotonicityCorrelation(sess, attr_map, input, input_tensor, output_tensor,
                            target_class=None, *, nr_samples=100, features_in_step=1,
                            eps=1e-5, perturb_baseline="uniform", normalise=True, abs=True,
                            seed=None, batch_size=DEFAULT_BATCH_SIZE, progress=True,
                            feed_dict=None):
    """Monotonicity Correlation (Nguyen and Martínez, arXiv:2007.07584), as Quantus'
    ``MonotonicityCorrelation``.

    The features, least attributed first, in steps of ``features_in_step``: each step's
    features alone are set to the baseline ``nr_samples`` times (a new draw each for
    ``'uniform'``), and the step's variance is ``mean_s (p_s - p)² / p²`` of the target's
    softmax probability (divided by 1 instead of ``p²`` when ``|p| < eps``). The score is
    the Spearman correlation, over the steps, between each step's attribution sum and its
    variance.

    Args:
        seed: for ``'uniform'``, each image's fill values are ``rng.uniform(0, 1, steps ·
            nr_samples)`` (step by step) of a fresh ``numpy.random.default_rng(seed)``, the
            same in a batch as alone. None: a seed drawn once per call.

    Returns:
        ``[N]`` correlations (a float for one image); NaN, with a warning, where a side does
        not vary. Session calls: ``ceil(N·steps·nr_samples / batch_size) + ceil(N /
        batch_size)``.
    """
    run = _Run(sess, input_tensor, output_tensor, target_class, batch_size, progress,
               feed_dict, input)
    a = run.features(attr_map, normalise, abs)                             # [N, F]
    n, n_feat = a.shape
    step = _check_step(features_in_step, "features_in_step", n_feat,
                       "features per image, H·W·C")
    samples = check_positive_int(nr_samples, "nr_samples")
    eps = _check_eps(eps)
    steps = math.ceil(n_feat / step)
    fill = run.fill(perturb_baseline, DRAWN_BASELINES, draws=steps * samples,
                    rngs=image_generators(seed, n))
    order = np.argsort(a, axis=1, kind="stable")                           # least first
    ranks = np.argsort(order, axis=1, kind="stable").astype(np.int32)
    starts = np.repeat(np.arange(steps) * step, samples)
    probs = run.probs()
    perturbed = run.filled_scores(ranks=run.as_maps(ranks), starts=starts,
                                  stops=np.minimum(starts + step, n_feat), fill=fill.ravel(),
                                  kind="prob", desc="Monotonicity Correlation")
    perturbed = perturbed.reshape(n, steps, samples)
    inv = np.where(np.abs(probs) >= eps, 1.0 / np.where(probs == 0, 1, np.abs(probs)), 1.0)
    variances = np.mean((perturbed - probs[:, None, None]) ** 2, axis=2) * inv[:, None] ** 2
    atts = np.add.reduceat(np.take_along_axis(a, order, 1), np.arange(steps) * step, axis=1)
    return run.result(correlations("spearman", atts, variances, "Monotonicity Correlation"))


# ------------------------------------------------------------------ what they share

class _Run:
    """One call's model (:class:`hw3_evaluation._Metric`), checked images ``X``, targets and
    the row engine's bank: the images, then one all-ones image scaled per row to the row's
    fill value."""

    def __init__(self, sess, input_tensor, output_tensor, target_class, batch_size, progress,
                 feed_dict, input):
        bs = check_positive_int(batch_size, "batch_size")
        self.metric = _Metric(sess, input_tensor, output_tensor, target_class, bs, progress,
                              feed_dict)
        self.X, self.single = self.metric.images(input)
        self._logits = None

    def features(self, attr_map, normalise, abs):
        """The attribution of each feature, float64 ``[N, H·W·C]`` in raster order: a pixel
        map broadcast over the channels, divided by the call's largest ``|a|`` with
        ``normalise``, then made absolute with ``abs``."""
        normalise, abs = check_flag(normalise, "normalise"), check_flag(abs, "abs")
        arr = checked_attribution(attr_map, self.X, self.single)
        if arr.ndim == 3:
            arr = np.broadcast_to(arr[..., None], self.X.shape)
        values = arr.reshape(len(self.X), -1)
        if normalise:
            values = normalise_by_max(values)
        return np.abs(values) if abs else values

    def fill(self, baseline, names, draws=None, rngs=None):
        """The baseline value of each image ``[N]`` (with ``draws``: of each image and draw
        ``[N, draws]``, ``'uniform'`` from each image's generator of ``rngs``)."""
        n = len(self.X)
        flat = self.X.reshape(n, -1).astype(np.float64)
        if isinstance(baseline, str) and baseline in names:
            if baseline == "uniform":
                return np.stack([rng.uniform(0.0, 1.0, draws) for rng in rngs])
            value = {"black": flat.min, "white": flat.max, "mean": flat.mean}[baseline](1)
        elif (isinstance(baseline, (int, float, np.number)) and not isinstance(
                baseline, (bool, np.bool_)) and np.isfinite(baseline)):
            value = np.full(n, float(baseline))
        else:
            raise ValueError(BASELINE_ERROR.format(names=", ".join(map(repr, names)),
                                                   actual=baseline))
        return value if draws is None else np.repeat(value[:, None], draws, 1)

    def as_maps(self, ranks):
        """Feature ranks ``[N, F]`` as rank maps ``[N, H, W, C]``."""
        return ranks.reshape(self.X.shape).astype(np.int32)

    def logits(self):
        if self._logits is None:
            self._logits = self.metric.logits(self.X)
        return self._logits

    def targets(self):
        return self.metric.targets(self.X, self.logits())

    def scores(self):
        """The target's logit of each unperturbed image, float64 ``[N]``."""
        return self.logits()[np.arange(len(self.X)), self.targets()].astype(np.float64)

    def probs(self):
        """The target's softmax probability of each unperturbed image, float64 ``[N]``."""
        z = self.logits().astype(np.float64)
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        return p[np.arange(len(self.X)), self.targets()]

    def filled_scores(self, ranks, stops, fill, kind, desc, starts=None, per_row_maps=False):
        """For each image, one row per window ``[start, stop)`` (``starts`` default 0): the
        image with its features ranked in the window set to the row's ``fill``. ``ranks``:
        a rank map per image, or with ``per_row_maps`` one per row. Returns float64
        ``[N, windows]``."""
        n, windows = len(self.X), len(stops)
        targets = self.targets()
        images = np.repeat(np.arange(n), windows)
        bank = ImageBank(self.X, np.ones((1,) + self.X.shape[1:], np.float32), ranks=ranks)
        rows = Rows.filled(images, bank.baseline_of(images), np.asarray(fill, np.float32),
                           ranked_by=np.arange(n * windows) if per_row_maps else images,
                           start=0 if starts is None else np.tile(starts, n),
                           stop=np.tile(stops, n), target=targets[images])
        return self.metric.scores(rows, bank, desc, kind=kind).reshape(n, windows)

    def result(self, values):
        """``values`` ``[N, ...]``, or for one image its entry (a float for a scalar)."""
        if not self.single:
            return values
        return values[0].item() if np.ndim(values[0]) == 0 else values[0]


class SubsetMaps:
    """Rank maps made when a chunk asks for them: row ``r``'s map is 0 on the features
    ``subsets[r]`` (flat indices into ``[H, W, C]``) and 1 elsewhere, so that the window
    ``[0, 1)`` selects its subset. Indexed by an array of rows, as :class:`ImageBank`'s
    ``ranks``."""

    def __init__(self, subsets, shape):
        self.subsets, self.shape = subsets, tuple(shape)

    def __getitem__(self, rows):
        rows = np.atleast_1d(rows)
        maps = np.ones((len(rows), int(np.prod(self.shape))), np.int32)
        maps[np.arange(len(rows))[:, None], self.subsets[rows]] = 0
        return maps.reshape((len(rows),) + self.shape)


def descending_ranks(values):
    """Each row's rank of each entry ``[N, F]``, most first, ties in raster order."""
    order = np.argsort(-values, axis=1, kind="stable")
    return np.argsort(order, axis=1, kind="stable")


def region_labels(h, w, size):
    """The region of each pixel ``[H, W]``: Quantus' grid of ``size`` x ``size`` blocks
    over the image padded to a multiple of ``size`` (the smaller half of the padding on top
    and on the left), numbered in raster order."""
    def starts(n):
        total = (size - n % size) % size
        return (np.arange(n) + total // 2) // size, (n + total) // size

    rows, _ = starts(h)
    cols, n_cols = starts(w)
    return rows[:, None] * n_cols + cols[None, :]


def image_generators(seed, n):
    """``n`` fresh ``numpy.random.default_rng(seed)``, one per image (None: one seed drawn
    for the call)."""
    seed = int(np.random.default_rng().integers(2 ** 63)) if seed is None else check_seed(seed)
    return [np.random.default_rng(seed) for _ in range(n)]


def region_positions(sums, order, seed):
    """The position of each region in the order of perturbation ``[N, regions]`` (for
    ``'random'``, each image's ``default_rng(seed).permutation(regions)``)."""
    if order == "random":
        ordered = np.stack([rng.permutation(sums.shape[1])
                            for rng in image_generators(seed, len(sums))])
    else:
        ordered = np.argsort(-sums if order == "morf" else sums, axis=1, kind="stable")
    return np.argsort(ordered, axis=1, kind="stable")


def correlations(kind, a, b, metric):
    """Per-row Pearson or Spearman correlation of ``a`` and ``b`` ``[N, T]``; NaN with a
    ``RuntimeWarning`` naming the images where either side is constant."""
    import scipy.stats
    out = np.full(len(a), np.nan)
    flat = np.array([np.ptp(x) == 0 or np.ptp(y) == 0 for x, y in zip(a, b)])
    for i in np.flatnonzero(~flat):
        fn = scipy.stats.pearsonr if kind == "pearson" else scipy.stats.spearmanr
        out[i] = fn(a[i], b[i])[0]
    if flat.any():
        warnings.warn(UNDEFINED_WARNING.format(
            metric=metric, indices=np.flatnonzero(flat).tolist(),
            why="the attribution sums or the model's changes do not vary"),
            RuntimeWarning, stacklevel=3)
    return out


def _check_step(value, arg, limit, what):
    if not is_int(value):
        raise TypeError(STEP_ERROR.format(arg=arg, limit=limit, what=what, actual=value))
    if not 1 <= value <= limit:
        raise ValueError(STEP_ERROR.format(arg=arg, limit=limit, what=what, actual=value))
    return int(value)


def _check_eps(eps):
    if (isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.number))
            or not np.isfinite(eps) or eps < 0):
        raise ValueError(EPS_ERROR.format(actual=eps))
    return float(eps)


__all__ = ["PixelFlipping", "RegionPerturbation", "FaithfulnessCorrelation",
           "MonotonicityCorrelation"]
