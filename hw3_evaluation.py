"""Metrics that measure how faithful an attribution map is to the model it explains.

The homework's API, exactly (the starter's functions)::

    AverageDrop(sess, attr_map, input, input_tensor, output_tensor, target_class)  # -> %
    N_Ord(sess, attr_map, input, input_tensor, output_tensor, target_class, M=None)

with ``attr_map`` ``[N, H, W]`` and ``input`` ``[N, H, W, C]`` for Average Drop, and one
image (``[H, W]``, ``[H, W, C]``) for Necessity Ordering; ``Insertion`` and ``Deletion`` are
called the same way and return ``(curve, num_feats)``.

* :func:`AverageDrop` -- Average Drop % (Chattopadhyay et al., "Grad-CAM++", WACV 2018),
  with Average Increase and per-image drops through ``return_details=True``.
* :func:`N_Ord` -- Necessity Ordering (Wang et al., "Interpreting interpretations:
  organizing attribution methods by criteria", CVPR-W 2020).
* :func:`Insertion`, :func:`Deletion` -- probability curves as superpixels are inserted
  into a baseline image or deleted from the image (Petsiuk et al., "RISE", BMVC 2018),
  with :func:`auc`.
* :func:`metric_table` -- one metric over several methods and images, as a
  :class:`MetricTable` (Markdown and CSV).

"Removing" a pixel sets it to 0 (black). The *pixel attribution* of an attribution
``A [N, H, W, C]`` is the mean over its channels; a map that is already per pixel
``[N, H, W]`` (Grad-CAM, Occlusion, Random) is used as it is. Extensions (keyword only):
a batch for the one-image metrics, ``batch_size`` (rows per ``sess.run``, default 16),
``return_details``, ``progress``.

In the graph: each ``sess.run`` feeds the images it needs once plus, per row, a rank
threshold (the graph compares each pixel's rank with it and builds the masked copy); only
the scores come back. Per-image results that a definition leaves undefined are NaN with a
``RuntimeWarning`` naming the images; a result that is undefined as a whole (every image
excluded, an all-zero attribution) raises ``ValueError``.
"""
import os
import tempfile
import warnings

import numpy as np

from hw3_attribution import (BASELINE_ERROR, BLACK, DEFAULT_BATCH_SIZE, INPUT_FINITE_ERROR,
                             ImageBank, ModelRunner, Rows, as_batch, blurred, check_number,
                             check_positive_int, check_target_spec, is_int, is_numeric,
                             parse_baseline, scaled_count, scaled_size, as_array)

# Error messages, kept as data so that tests match the same templates.
IMAGE_INPUT_ERROR = ("input_tensor: expected an image input of shape [None, H, W, C], got "
                     "{name!r} of shape {actual}")
ATTR_SHAPE_ERROR = ("{arg}: expected an attribution map {pixel} or an attribution of the "
                    "input's shape {full} to fit input of shape {input}, got shape {actual}")
ATTR_TYPE_ERROR = "{arg}: expected a numeric array, got dtype {actual}"
ATTR_ZERO_ERROR = ("{arg}: {metric} is undefined for an all-zero attribution (it ranks no "
                   "pixel above another); got all-zero attributions for image(s) {indices}")
ALL_EXCLUDED_ERROR = ("input: Average Drop % is undefined for this set: the target score "
                      "f_c(x) is <= 0 for every image ({n} of {n}), so no image gives a drop "
                      "ratio")
SUPERPIXEL_ERROR = ("superpixel_size: expected a positive int no larger than the image height "
                    "and width, got {size} for images of {h}x{w}")
IMPORTANCE_SHAPE_ERROR = ("attr_map: expected per-superpixel importance {grid}, a pixel map "
                          "{pixel} or an attribution {full} (superpixel_size {s}), got shape "
                          "{actual}")
CURVE_ERROR = "{arg}: expected {expected}, got {actual}"
TABLE_INPUT_ERROR = "{arg}: expected {expected}, got {actual}"

UNDEFINED_WARNING = "{metric} is undefined for image(s) {indices} ({why}); they are NaN"
PATH_ERROR = "{arg}: expected the path of a file to write, got {actual}"


def _indices(mask):
    return np.flatnonzero(mask).tolist()


def auc(curve, num_feats):
    """Area under a curve by the trapezoidal rule, normalised to the x-range.

    Args:
        curve: values ``[T]`` (or ``[N, T]``, one curve per row).
        num_feats: the increasing x positions ``[T]`` (e.g. features inserted so far).

    Returns:
        ``∫ curve d(num_feats) / (num_feats[-1] - num_feats[0])``: a float (an array ``[N]``
        for ``[N, T]`` curves). A constant curve ``p`` has AUC ``p``.
    """
    y = np.asarray(curve, np.float64)
    x = np.asarray(num_feats, np.float64)
    if x.ndim != 1 or x.size < 2 or y.shape[-1:] != x.shape:
        raise ValueError(CURVE_ERROR.format(
            arg="curve, num_feats", expected="a curve [..., T] and x positions [T], T >= 2",
            actual=f"shapes {list(y.shape)} and {list(x.shape)}"))
    if not np.all(np.diff(x) > 0):
        raise ValueError(CURVE_ERROR.format(arg="num_feats", expected="increasing values",
                                            actual=x.tolist()))
    area = np.sum((y[..., 1:] + y[..., :-1]) * 0.5 * np.diff(x), axis=-1)
    area = area / (x[-1] - x[0])
    return float(area) if np.ndim(area) == 0 else area


METRIC_API = "Metric(sess, attr_map, input, input_tensor, output_tensor, target_class)"


class _Metric:
    """What the four metrics share, by composition: the model (a
    :class:`hw3_attribution.ModelRunner`, with the row engine's ops, cached per graph and
    tensors, so making one per call is free), its checked images and targets, and the
    scores of rows built in the graph, every metric's one way to evaluate its copies."""

    def __init__(self, sess, input_tensor, output_tensor, target_class, batch_size,
                 progress, feed_dict=None):
        model = ModelRunner(sess, input_tensor, output_tensor, METRIC_API, progress)
        self.target_class = check_target_spec(target_class, model.num_classes)
        if input_tensor.shape.rank != 4:
            raise ValueError(IMAGE_INPUT_ERROR.format(name=input_tensor.name,
                                                      actual=input_tensor.shape))
        self.model = model.fed(feed_dict)      # feed_dict merged into every sess.run
        self.batch_size = batch_size
        with sess.graph.as_default():
            self.model.model_ops()
            self.model.row_ops()

    def images(self, X):
        """``(float32 [N, H, W, C], single)``: the checked images of ``input``."""
        return as_batch(X, self.model.x, "input")

    def logits(self, X):
        return self.model.logits(X, self.batch_size)

    def targets(self, X, logits=None):
        """The class of each image: the spec, or the prediction (from ``logits``)."""
        return self.model.targets(X, self.target_class, self.batch_size, logits)

    def scores(self, rows, bank, desc, kind="score"):
        """The rows' pre-softmax ``score`` (or ``prob``), float64 ``[R]``."""
        values = self.model.run_rows(rows, bank, [kind], self.batch_size, desc)[kind]
        return values.astype(np.float64)


def _pixel_attribution(A, X, single, metric, arg="attr_map", allow_zero=False):
    """The pixel attribution ``[N, H, W]`` (channel mean of A), checked.

    ``A`` is ``[N, H, W]`` or ``[N, H, W, C]``; without the batch axis when ``X`` was one
    image.
    """
    arr = checked_attribution(A, X, single, arg)
    pix = arr.mean(axis=-1) if arr.ndim == 4 else arr
    if not allow_zero:
        _check_ranked(pix, arg, metric)
    return pix


def checked_attribution(A, X, single, arg="attr_map"):
    """``A`` as float64 ``[N, H, W]`` or ``[N, H, W, C]`` for the images ``X`` ``[N, H, W,
    C]`` (without the batch axis when ``X`` was one image), checked: numeric, of a shape
    that fits, finite. The one parser of the metrics' ``attr_map``."""
    n, h, w, ch = X.shape
    arr = as_array(A, arg)
    if not is_numeric(arr):
        raise TypeError(ATTR_TYPE_ERROR.format(arg=arg, actual=arr.dtype))
    if single and arr.shape in ((h, w, ch), (h, w)):
        arr = arr[None]
    if arr.shape not in ((n, h, w, ch), (n, h, w)):
        full, pixel = [n, h, w, ch], [n, h, w]
        if single:
            full, pixel = f"{full[1:]}", f"{pixel[1:]}"
        raise ValueError(ATTR_SHAPE_ERROR.format(arg=arg, full=full, pixel=pixel,
                                                 input=list(X.shape[single:]),
                                                 actual=list(np.shape(A))))
    return _finite64(arr, arg)


def _finite64(arr, arg):
    """``arr`` as float64, checked finite."""
    arr = arr.astype(np.float64)
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ValueError(INPUT_FINITE_ERROR.format(arg=arg, count=bad))
    return arr


def _check_ranked(maps, arg, metric):
    """Raise unless every map of ``maps`` ``[N, ...]`` ranks some entry above another (is
    not all zero)."""
    zero = _all_zero(maps)
    if zero.any():
        raise ValueError(ATTR_ZERO_ERROR.format(arg=arg, metric=metric, indices=_indices(zero)))


# --------------------------------------------------------------------- Average Drop %

class AverageDropResult:
    """What :func:`AverageDrop` found for a set of N images (``return_details=True``).

    Attributes:
        mean: Average Drop %, the mean of ``per_image`` over the included images (percent).
        per_image: ``[N]`` drops in percent, ``100 max(f_c(x) - f_c(M_A(x)), 0) / f_c(x)``;
            NaN for excluded images.
        increase: Average Increase, the share of all N images whose score rises under the
            mask, ``f_c(M_A(x)) > f_c(x)`` (percent).
        excluded: indices of the images left out because ``f_c(x) <= 0``.
        n_excluded: ``len(excluded)``.
        targets: ``[N]`` the class c of each image.
        scores, masked_scores: ``[N]`` pre-softmax ``f_c(x)`` and ``f_c(M_A(x))``.
        kept: ``[N]`` the share of pixels kept by the mask (positive pixel attribution).
    """

    def __init__(self, per_image, increase, excluded, targets, scores, masked_scores, kept):
        self.per_image = per_image
        self.mean = float(np.nanmean(per_image))
        self.increase = float(increase)
        self.excluded = excluded
        self.n_excluded = len(excluded)
        self.targets = targets
        self.scores = scores
        self.masked_scores = masked_scores
        self.kept = kept

    def __float__(self):
        return self.mean

    def __repr__(self):
        return (f"AverageDropResult(mean={self.mean:.4g}%, increase={self.increase:.4g}%, "
                f"n={len(self.per_image)}, n_excluded={self.n_excluded})")


def AverageDrop(sess, attr_map, input, input_tensor, output_tensor, target_class=None, *,
                batch_size=DEFAULT_BATCH_SIZE, return_details=False, progress=True,
                feed_dict=None):
    """Average Drop % of an attribution over a set of images (lower is better).

    ``AD(D) = 100% · 1/|D| Σ_i max(f_c(x_i) − f_c(M_A(x_i)), 0) / f_c(x_i)`` with pre-softmax
    scores and ``M_A(x)`` the image with only the pixels of positive pixel attribution kept
    and every other pixel set to 0 (black). Chattopadhyay et al., "Grad-CAM++", WACV 2018;
    the homework's Definition 5.

    Args:
        sess: the session of the model's graph.
        attr_map: pixel attributions ``[N, H, W]`` (or attributions ``[N, H, W, C]``: their
            channel mean is used).
        input: the images ``[N, H, W, C]``, RGB 0-255 (one image ``[H, W, C]`` also works).
        input_tensor, output_tensor: the model's input placeholder and pre-softmax scores.
        target_class: the class c: an int, one per image, or None (the definition's
            ``argmax f(x_i)``).
        batch_size: rows per ``sess.run`` (keyword only, as the rest).
        return_details: return an :class:`AverageDropResult` (per-image drops, Average
            Increase, exclusions) instead of the float.
        feed_dict: values of the graph's other placeholders (a dropout rate,
            ``is_training``), merged into each ``sess.run``; the same for every metric.

    Returns:
        float, percent. An image with ``f_c(x) <= 0`` makes the ratio meaningless: it is
        **excluded** from ``|D|`` (its per-image drop is NaN, a ``RuntimeWarning`` names
        it). A per-image drop can exceed 100 % (``f_c(M_A(x)) < 0``); it is kept as the
        definition gives it, not clipped.

    Raises:
        ValueError: shapes that do not fit, NaN/inf, an all-zero attribution, or
            ``f_c(x) <= 0`` for every image. Session calls: ``2 · ceil(N / batch_size)``.
    """
    bs = check_positive_int(batch_size, "batch_size")
    metric = _Metric(sess, input_tensor, output_tensor, target_class, bs, progress, feed_dict)
    X, single = metric.images(input)
    name = "Average Drop %"
    keep = _pixel_attribution(attr_map, X, single, name) > 0                # [N, H, W]
    n = len(X)
    logits = metric.logits(X)
    targets = metric.targets(X, logits)
    scores = logits[np.arange(n), targets].astype(np.float64)
    # M_A(x): the pixels of positive attribution (ranked 0) from x, the others black
    images = np.arange(n)
    masked = metric.scores(Rows.ranked(take=images, rest=BLACK, ranked_by=images, stop=1,
                                       target=targets),
                           ImageBank(X, ranks=(~keep).astype(np.int32)), name)
    excluded = scores <= 0
    if excluded.all():
        raise ValueError(ALL_EXCLUDED_ERROR.format(n=n))
    if excluded.any():
        warnings.warn(UNDEFINED_WARNING.format(
            metric=name, indices=_indices(excluded),
            why="f_c(x) <= 0; excluded from the average"), RuntimeWarning, stacklevel=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        drop = 100.0 * np.maximum(scores - masked, 0.0) / scores
    drop[excluded] = np.nan
    increase = 100.0 * np.mean(masked > scores)
    result = AverageDropResult(drop, increase, _indices(excluded), targets, scores, masked,
                               keep.reshape(n, -1).mean(axis=1))
    return result if return_details else result.mean


# ------------------------------------------------------------------ Necessity Ordering

def N_Ord(sess, attr_map, input, input_tensor, output_tensor, target_class=None, M=None, *,
          batch_size=DEFAULT_BATCH_SIZE, return_details=False, progress=True,
          feed_dict=None):
    """Necessity Ordering score of one image's attribution (lower is better).

    ``N_o(x, A) = 1/(P+1) Σ_{i=1..P} max(f_c(R(i, π_A)) − f_c(0), 0)`` with pre-softmax
    scores, ``π_A`` the ``P`` pixels of positive pixel attribution, biggest first (ties in
    raster order), and ``R(i, π_A)`` the image with the first ``i`` of them set to 0. Wang
    et al., "Interpreting interpretations", CVPR-W 2020; the homework's Definition 6.

    Removing ``M`` pixels at a time approximates the sum: step ``k`` removes the first
    ``r_k = min(kM, P)`` pixels and stands for the ``r_k − r_{k−1}`` terms it replaces::

        N_o ≈ 1/(P+1) Σ_{k=1..ceil(P/M)} (r_k − r_{k−1}) · max(f_c(R(r_k)) − f_c(0), 0)

    so ``M = 1`` is the definition itself and ``M = 1000`` approximates it (an unweighted
    sum over the steps would shrink the score by about a factor M).

    Args:
        sess, input_tensor, output_tensor: the model.
        attr_map: one image's pixel attribution ``[H, W]`` (or ``[H, W, C]``: channel
            mean); a batch ``[N, H, W]`` / ``[N, H, W, C]`` with a batch of images.
        input: the image ``[H, W, C]`` (RGB 0-255), or a batch ``[N, H, W, C]``.
        target_class: the class c: an int (or one per image), or None (``argmax f(x)``).
        M: pixels removed per step (a positive int). None (the default) is the homework's
            1000 at 224 x 224, scaled with the image's area (:func:`scaled_count`:
            ``1000 · H·W / 224²``, so 61 at 64 x 48): the same share of the pixels per step.
        batch_size, return_details, progress: keyword only; ``return_details`` returns a
            dict with ``scores``, ``targets``, ``blank_scores`` (``f_c(0)``), ``positives``
            (P), ``removed`` (list of ``[steps]`` r_k) and ``curves`` (list of ``f_c(R(r_k))``).

    Returns:
        A float for one image, an array ``[N]`` for a batch. An image with no positive
        pixel has nothing to remove: NaN with a ``RuntimeWarning`` (not the 0 of the empty
        sum, which would read as a perfect score). Session calls: ``ceil((N + 1) /
        batch_size)`` forwards (the images and the black image) plus
        ``ceil(Σ steps / batch_size)`` for the masked copies.
    """
    M = None if M is None else check_positive_int(M, "M")
    bs = check_positive_int(batch_size, "batch_size")
    metric = _Metric(sess, input_tensor, output_tensor, target_class, bs, progress, feed_dict)
    X, single = metric.images(input)
    M = scaled_count(1000, *X.shape[1:3]) if M is None else M
    name = "Necessity Ordering"
    pix = _pixel_attribution(attr_map, X, single, name)                      # [N, H, W]
    n = len(X)
    positives = (pix.reshape(n, -1) > 0).sum(axis=1)                        # P per image
    # rank of each pixel in π_A (P or more for the pixels of no positive attribution)
    rank = descending_ranks(pix)                                            # [N, H, W]
    logits = metric.logits(np.concatenate([np.zeros_like(X[:1]), X]))       # 0 and X
    targets = metric.targets(X, logits[1:])
    blank = logits[0, targets].astype(np.float64)                           # f_c(0) [N]
    steps = -(-positives // M)                                              # ceil(P / M)
    images = np.repeat(np.arange(n), steps)                                 # [rows]
    removed = np.concatenate(
        [np.minimum(np.arange(1, k + 1) * M, p) for k, p in zip(steps, positives)]
        + [np.zeros(0, np.int64)]).astype(np.int32)
    # R(r_k): the image with its first r_k pixels of π_A (ranked below r_k) set to 0
    values = metric.scores(Rows.ranked(take=BLACK, rest=images, ranked_by=images,
                                       stop=removed, target=targets[images]),
                           ImageBank(X, ranks=rank), name)
    bounds = np.concatenate([[0], np.cumsum(steps)])
    curves = [values[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    removed = [removed[a:b].astype(np.int64) for a, b in zip(bounds[:-1], bounds[1:])]
    scores = np.array([
        (np.diff(r, prepend=0) * np.maximum(cv - f0, 0.0)).sum() / (p + 1)
        for cv, r, f0, p in zip(curves, removed, blank, positives)])
    undefined = positives == 0
    if undefined.any():
        scores[undefined] = np.nan
        warnings.warn(UNDEFINED_WARNING.format(
            metric=name, indices=_indices(undefined),
            why="no pixel has positive attribution"), RuntimeWarning, stacklevel=2)
    if return_details:
        return dict(scores=scores, targets=targets, blank_scores=blank, positives=positives,
                    steps=steps, removed=removed, curves=curves)
    return float(scores[0]) if single else scores


# --------------------------------------------------------------- Insertion / Deletion

def _grid(h, w, s):
    """The superpixel grid ``(ceil(H/s), ceil(W/s))`` of an H x W image."""
    if s > min(h, w):
        raise ValueError(SUPERPIXEL_ERROR.format(size=s, h=h, w=w))
    return -(-h // s), -(-w // s)


def superpixel_sums(maps, size):
    """Pixel maps ``[..., H, W]`` summed over square superpixels of side ``size``:
    ``[..., ceil(H/size), ceil(W/size)]``. When ``size`` does not divide H (or W), the last
    row (or column) of superpixels is narrower: it holds the ``H mod size`` pixels left.
    The one superpixel pooling of the graded files (Insertion / Deletion rank these
    sums)."""
    maps = np.asarray(maps)
    *lead, h, w = maps.shape
    gh, gw = -(-h // size), -(-w // size)
    if (gh * size, gw * size) != (h, w):      # zeros add nothing to the sums
        maps = np.pad(maps, [(0, 0)] * len(lead) + [(0, gh * size - h), (0, gw * size - w)])
    grid = maps.reshape(tuple(lead) + (gh, size, gw, size))
    return grid.sum(axis=(-3, -1))


def superpixel_pixels(grid_values, size, h, w):
    """Per-superpixel values ``[N, gh, gw]`` given to each pixel of their superpixel:
    ``[N, h, w]`` (the inverse of :func:`superpixel_sums`' partition)."""
    return np.repeat(np.repeat(grid_values, size, axis=1), size, axis=2)[:, :h, :w]


def descending_ranks(values):
    """The rank of each entry of each map in ``values`` ``[N, ...]`` when the map's
    entries are sorted from the largest down (ties in raster order): int32, the shape of
    ``values``."""
    flat = np.asarray(values).reshape(len(values), -1)
    order = np.argsort(-flat, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(flat.shape[1])[None], axis=1)
    return rank.reshape(np.shape(values)).astype(np.int32)


def _importance(importance, X, single, s, metric):
    """Superpixel importance ``[N, ceil(H/s), ceil(W/s)]`` from a grid, pixel map or
    attribution."""
    n, h, w, ch = X.shape
    gh, gw = _grid(h, w, s)
    arr = as_array(importance, "attr_map")
    shapes = [(n, gh, gw), (n, h, w), (n, h, w, ch)]
    if single and arr.shape in [sh[1:] for sh in shapes]:
        arr = arr[None]
    if arr.shape not in shapes or not np.issubdtype(arr.dtype, np.number):
        grid, pixel, full = [n, gh, gw], [n, h, w], [n, h, w, ch]
        if single:
            grid, pixel, full = grid[1:], pixel[1:], full[1:]
        raise ValueError(IMPORTANCE_SHAPE_ERROR.format(grid=grid, pixel=pixel, full=full, s=s,
                                                       actual=list(np.shape(importance))))
    arr = _finite64(arr, "attr_map")
    if arr.ndim == 4:
        arr = arr.mean(axis=-1)                                         # pixel map
    if arr.shape[1:] != (gh, gw):
        arr = superpixel_sums(arr, s)                                   # per superpixel
    _check_ranked(arr, "attr_map", metric)
    return arr


def _curve_baseline(baseline, X, blur_sigma):
    """The baseline images ``[1 or N, H, W, C]``, or None for black (zeros in the graph):
    :func:`hw3_attribution.parse_baseline` with the curves' names and message."""
    return parse_baseline(
        baseline, X, ("black", "blur"), numbers=True, error=BASELINE_ERROR,
        make=lambda _: blurred(X, check_number(blur_sigma, "blur_sigma", positive=True)))


def num_feats(n_superpixels, step=1):
    """The x positions ``[T]``: 0, step, 2·step, ..., and always the last, all of them."""
    xs = np.arange(0, n_superpixels + 1, step)
    if xs[-1] != n_superpixels:
        xs = np.append(xs, n_superpixels)
    return xs


def _ablation(insert, sess, attr_map, input, input_tensor, output_tensor, target_class,
              superpixel_size, baseline, blur_sigma, step, batch_size, progress, feed_dict):
    name = "Insertion AUC" if insert else "Deletion AUC"
    s = None if superpixel_size is None else check_positive_int(superpixel_size,
                                                                 "superpixel_size")
    step = None if step is None else check_positive_int(step, "step")
    bs = check_positive_int(batch_size, "batch_size")
    metric = _Metric(sess, input_tensor, output_tensor, target_class, bs, progress, feed_dict)
    X, single = metric.images(input)
    h, w = X.shape[1:3]
    s = scaled_size(8, h, w) if s is None else s
    step = scaled_count(1, h, w) if step is None else step
    imp = _importance(attr_map, X, single, s, name)                        # [N, gh, gw]
    n, gh, gw = imp.shape
    superpixel_rank = descending_ranks(imp)                                 # [N, gh, gw]
    bank = ImageBank(X, _curve_baseline(baseline, X, blur_sigma),         # pixel ranks:
                     ranks=superpixel_pixels(superpixel_rank, s, h, w))
    targets = metric.targets(X)
    xs = num_feats(gh * gw, step)
    images = np.repeat(np.arange(n), len(xs))
    # the first xs[j] superpixels from the image (Insertion) or the baseline (Deletion)
    image, base = images, bank.baseline_of(images)
    take, rest = (image, base) if insert else (base, image)
    rows = Rows.ranked(take, rest, ranked_by=images, stop=np.tile(xs, n).astype(np.int32),
                       target=targets[images])
    curves = metric.scores(rows, bank, name, kind="prob").reshape(n, len(xs))
    return (curves[0] if single else curves), xs


def Insertion(sess, attr_map, input, input_tensor, output_tensor, target_class=None, *,
              superpixel_size=None, baseline="black", blur_sigma=5.0, step=None,
              batch_size=DEFAULT_BATCH_SIZE, progress=True, feed_dict=None):
    """Insertion curve: superpixels of the image put into a baseline, most important first.

    Starts at the baseline (0 superpixels) and ends at the image itself; the curve is the
    target class's softmax probability. A faithful importance makes it rise early: higher
    AUC is better. Petsiuk et al., "RISE: Randomized input sampling for explanation of
    black-box models", BMVC 2018.

    Args:
        sess, input_tensor, output_tensor: the model (probabilities are the softmax of
            ``output_tensor``).
        attr_map: per-superpixel importance ``[ceil(H/s), ceil(W/s)]``, a pixel map ``[H, W]`` (summed
            per superpixel) or an attribution ``[H, W, C]`` (channel mean, then summed);
            with a batch axis for a batch of images.
        input: the image ``[H, W, C]`` (RGB 0-255) or a batch ``[N, H, W, C]``.
        target_class: an int (or one per image), or None for the predicted class.
        superpixel_size: side ``s`` of the square superpixels, at most H and W. None (the
            default) is the homework's 8 at 224 x 224, scaled with the image
            (:func:`hw3_attribution.scaled_size`: 2 at 64 x 48). When ``s`` does not divide
            H (or W), the superpixels tile the image from its top-left corner and the last
            row (or column) of them is narrower, ``H mod s`` pixels; their importance is
            the sum over their pixels, as for the others.
        baseline: ``'black'`` (zeros), ``'blur'`` (the image blurred by a Gaussian of
            ``blur_sigma`` pixels), a number, or an array ``[H, W, C]`` / ``[N, H, W, C]``.
        step: superpixels inserted per point of the curve (the last point is always all).
            None (the default) is 1 at 224 x 224 (and below), scaled with the image's area
            above it (:func:`hw3_attribution.scaled_count`), so that a larger image's curve
            with the same superpixel size has about as many points.
        batch_size, progress: rows per ``sess.run``; progress bar.
        feed_dict: values of the graph's other placeholders, merged into each
            ``sess.run``.

    Returns:
        ``(curve [T], num_feats [T])`` for one image (``(curves [N, T], num_feats)`` for a
        batch): the probability after ``num_feats[j]`` superpixels were inserted, ties
        in raster order. Session calls: ``ceil(N·T / batch_size)`` (+ ``ceil(N /
        batch_size)`` when the target is None).
    """
    return _ablation(True, sess, attr_map, input, input_tensor, output_tensor, target_class,
                     superpixel_size, baseline, blur_sigma, step, batch_size, progress,
                     feed_dict)


def Deletion(sess, attr_map, input, input_tensor, output_tensor, target_class=None, *,
             superpixel_size=None, baseline="black", blur_sigma=5.0, step=None,
             batch_size=DEFAULT_BATCH_SIZE, progress=True, feed_dict=None):
    """Deletion curve: superpixels of the image replaced by a baseline, most important first.

    Starts at the image (0 superpixels) and ends at the baseline; the curve is the target
    class's softmax probability. A faithful importance makes it fall early: lower AUC is
    better. Petsiuk et al., "RISE", BMVC 2018. Arguments and returns as :func:`Insertion`.
    """
    return _ablation(False, sess, attr_map, input, input_tensor, output_tensor, target_class,
                     superpixel_size, baseline, blur_sigma, step, batch_size, progress,
                     feed_dict)


METRIC_INFO = {AverageDrop: ("Average Drop %", "%"), N_Ord: ("Necessity Ordering", "logit"),
               Insertion: ("Insertion AUC", "probability"),
               Deletion: ("Deletion AUC", "probability")}


def per_image(metric, sess, attr_map, X, input_tensor, output_tensor, target_class=None,
              **kwargs):
    """``metric``'s value for each image ``[N]`` (AUC for Insertion / Deletion), and the
    curves ``(curves [N, T], num_feats)`` for those two (else None)."""
    if metric is AverageDrop:
        return AverageDrop(sess, attr_map, X, input_tensor, output_tensor, target_class,
                           return_details=True, **kwargs).per_image, None
    if metric is N_Ord:
        return np.atleast_1d(N_Ord(sess, attr_map, X, input_tensor, output_tensor,
                                   target_class, **kwargs)), None
    if metric in (Insertion, Deletion):
        curves, xs = metric(sess, attr_map, X, input_tensor, output_tensor, target_class,
                            **kwargs)
        curves = np.atleast_2d(curves)
        return auc(curves, xs), (curves, xs)
    raise ValueError(TABLE_INPUT_ERROR.format(
        arg="metric", expected="AverageDrop, N_Ord, Insertion or Deletion", actual=metric))


# ------------------------------------------------------------------------------ tables

class MetricTable:
    """A metric's values for several methods on several images.

    Attributes:
        metric, unit: the metric's name and unit.
        methods: method names (rows), in the order given.
        images: image labels (columns).
        values: ``[methods, images]`` per-image values (NaN where undefined).
        mean: ``[methods]`` the nanmean over the images (for Average Drop: the AD % itself).
        curves: for Insertion / Deletion, ``{method: [images, T]}``; else ``None``.
        num_feats: the curves' x positions ``[T]``, or ``None``.
    """

    def __init__(self, metric, unit, methods, images, values, curves=None, num_feats=None):
        self.metric, self.unit = metric, unit
        self.methods, self.images = list(methods), [str(i) for i in images]
        self.values = np.asarray(values, np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN row -> NaN mean
            self.mean = np.nanmean(self.values, axis=1)
        self.curves, self.num_feats = curves, num_feats

    def to_markdown(self, by="method", digits=4, per_image=True):
        """A Markdown table.

        ``by='method'``: one row per method, a column per image (if ``per_image``) and the
        mean. ``by='image'``: one row per image, a column per method, and a mean row.
        """
        f = lambda v: table_cell(float(v), digits)  # noqa: E731
        title = f"{self.metric}" + (f" ({self.unit})" if self.unit else "")
        if by == "method":
            cols = (self.images if per_image else []) + ["mean"]
            lines = ["| method | " + " | ".join(cols) + " |",
                     "| --- |" + " ---: |" * len(cols)]
            for m, row, mean in zip(self.methods, self.values, self.mean):
                vals = ([f(v) for v in row] if per_image else []) + [f(mean)]
                lines.append(f"| {m} | " + " | ".join(vals) + " |")
        elif by == "image":
            lines = ["| image | " + " | ".join(self.methods) + " |",
                     "| --- |" + " ---: |" * len(self.methods)]
            rows = list(zip(self.images, self.values.T)) if per_image else []
            for img, col in rows + [("mean", self.mean)]:
                lines.append(f"| {img} | " + " | ".join(f(v) for v in col) + " |")
        else:
            raise ValueError(TABLE_INPUT_ERROR.format(arg="by", expected="'method' or 'image'",
                                                      actual=repr(by)))
        return f"{title}\n\n" + "\n".join(lines) + "\n"

    def to_csv(self, path):
        """Write ``method, <images...>, mean`` rows to ``path`` (temporary file + rename)."""
        rows = [[m] + [float(v) for v in row] + [float(mean)]
                for m, row, mean in zip(self.methods, self.values, self.mean)]
        return write_text(path, csv_table(["method"] + self.images + ["mean"], rows))

    def __repr__(self):
        return (f"MetricTable({self.metric!r}, methods={self.methods}, "
                f"images={len(self.images)})")


def check_out_path(path, arg="path"):
    """``path`` as a string if a file can be written there: not empty (ValueError), not an
    existing folder (IsADirectoryError), not below a file (NotADirectoryError). The
    messages name the argument and say which (the operating system's would speak of a
    temporary file, or say "no such file")."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(PATH_ERROR.format(arg=arg, actual=type(path).__name__))
    path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise ValueError(PATH_ERROR.format(arg=arg, actual=repr(path)))
    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        raise IsADirectoryError(PATH_ERROR.format(arg=arg, actual=f"the folder {path!r}"))
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise NotADirectoryError(PATH_ERROR.format(
            arg=arg, actual=f"{path!r}, below {parent!r}, which is a file"))
    return path


def write_bytes(path, data):
    """Write ``data`` to ``path`` through a temporary file in the same folder (created if
    needed), then rename it into place: a reader never sees a half-written file, and a
    failure leaves none."""
    path = check_out_path(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def write_text(path, text):
    """:func:`write_bytes` of ``text`` in UTF-8 with ``\\n`` line ends."""
    return write_bytes(path, text.encode("utf-8"))


def table_cell(v, digits=4):
    """A Markdown cell: a float to ``digits`` significant digits (NaN and inf: 'undefined'),
    anything else as text with ``|`` (the column separator) written ``/``."""
    if isinstance(v, (float, np.floating)):
        return "undefined" if not np.isfinite(v) else f"{v:.{digits}g}"
    return str(v).replace("|", "/")


def markdown_table(header, rows, digits=4):
    """A Markdown table from a header and rows of cells (:func:`table_cell`). The one
    table writer of the toolkit, with :func:`csv_table`."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(table_cell(v, digits) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_cell(v):
    """A CSV cell: a float in full precision (``repr``), quoted where the text needs it."""
    text = repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)
    return '"' + text.replace('"', '""') + '"' if any(ch in text for ch in ',"\n') else text


def csv_table(header, rows):
    """CSV text of a header and rows (:func:`csv_cell`)."""
    return "\n".join(",".join(csv_cell(v) for v in row)
                     for row in [header] + list(rows)) + "\n"


def unranked(A, superpixel_size=None):
    """``[N]`` bool: the images whose attribution ranks no pixel as the metrics read it.

    ``A`` is a batch of pixel maps ``[N, H, W]`` or attributions ``[N, H, W, C]`` (their
    channel mean is what the metrics rank); with ``superpixel_size`` the map's sums per
    superpixel are what Insertion and Deletion rank.
    """
    A = np.asarray(A, np.float64)
    pix = A.mean(axis=-1) if A.ndim == 4 else A
    if superpixel_size:
        pix = superpixel_sums(pix, superpixel_size)
    return _all_zero(pix)


def _all_zero(maps):
    """``[N]`` bool: the maps of ``maps`` ``[N, ...]`` that are zero everywhere."""
    return ~maps.reshape(len(maps), -1).any(axis=1)


def _unranked(metric, A, X, superpixel_size):
    """:func:`unranked` for a table's ``metric`` where ``A`` fits ``X``; arrays of another
    shape are left for the metric's own error."""
    n = len(X) if np.ndim(X) == 4 else 1
    if np.ndim(X) != 4 or A.ndim < 3 or len(A) != n or not np.issubdtype(A.dtype, np.number):
        return np.zeros(n, bool)
    h, w, ch = X.shape[1:]
    curve = metric in (Insertion, Deletion)
    if A.shape[1:] not in ((h, w, ch), (h, w)):
        return np.zeros(n, bool)
    if curve and superpixel_size is None:
        superpixel_size = scaled_size(8, h, w)
    ok_grid = (curve and is_int(superpixel_size) and 0 < superpixel_size <= min(h, w))
    return unranked(A, superpixel_size if ok_grid else None)


def metric_table(metric, attributions, X, sess, input_tensor, output_tensor,
                 target_class=None, images=None, **kwargs):
    """Run ``metric`` for every method's attributions on the images ``X``.

    Args:
        metric: :func:`AverageDrop`, :func:`N_Ord`, :func:`Insertion` or :func:`Deletion`.
        attributions: ``{method name: A}`` (or a sequence of ``(name, A)`` pairs), each ``A``
            an attribution / importance for every image of ``X``.
        X: images ``[N, H, W, C]``.
        sess, input_tensor, output_tensor, target_class: the model and the class(es).
        images: labels for the images (e.g. ImageNet indices); default ``0 .. N-1``.
        **kwargs: the metric's keywords (``M``, ``superpixel_size``, ``step``,
            ``batch_size``, ``progress``, ...).

    Returns:
        :class:`MetricTable` of ``[methods, images]`` values and the per-method mean.
        An image whose attribution is all zero is NaN for that method (with a
        ``RuntimeWarning``); a method whose attribution is all zero on every image is a
        row of NaN (with a warning), unless every method's is: then the metric's own error
        is raised.
    """
    if metric not in METRIC_INFO:
        raise ValueError(TABLE_INPUT_ERROR.format(
            arg="metric", expected="AverageDrop, N_Ord, Insertion or Deletion",
            actual=metric))
    pairs = list(attributions.items() if isinstance(attributions, dict) else attributions)
    if not pairs:
        raise ValueError(TABLE_INPUT_ERROR.format(arg="attributions",
                                                  expected="at least one method",
                                                  actual="none"))
    name, unit = METRIC_INFO[metric]
    n = len(X) if np.ndim(X) == 4 else 1
    images = list(range(n)) if images is None else list(images)
    if len(images) != n:
        raise ValueError(TABLE_INPUT_ERROR.format(arg="images", expected=f"{n} labels",
                                                  actual=len(images)))
    rows, curves, xs = [], None, None
    zeros = [_unranked(metric, as_array(A, "attributions"), X, kwargs.get("superpixel_size"))
             for _, A in pairs]
    everywhere = [bool(z.all()) for z in zeros]
    for (method, A), zero, undefined in zip(pairs, zeros, everywhere):
        # An image whose attribution ranks no pixel (all zero as the metric reads it: the
        # channel mean, and for the curves its superpixel sums) has no value: score the
        # others and mark it NaN, rather than lose the whole table. A method that ranks no
        # pixel of any image is a row of NaN, unless every method is: then the metric's
        # own error says why.
        arr = as_array(A, "attributions")
        if undefined and not all(everywhere):
            warnings.warn(UNDEFINED_WARNING.format(
                metric=name, indices=list(range(n)),
                why=f"{method}: all-zero attribution on every image"), RuntimeWarning,
                stacklevel=2)
            rows.append(np.full(n, np.nan))
            continue
        ok = np.flatnonzero(~zero) if zero.any() and not zero.all() else np.arange(n)
        if len(ok) < n:
            warnings.warn(UNDEFINED_WARNING.format(
                metric=name, indices=_indices(zero),
                why=f"{method}: all-zero attribution"), RuntimeWarning, stacklevel=2)
        Xo, Ao = (X, A) if len(ok) == n else (X[ok], arr[ok])
        co = (target_class if target_class is None or np.ndim(target_class) == 0
              or len(ok) == n else np.asarray(target_class)[ok])
        values = np.full(n, np.nan)
        vals, cv = per_image(metric, sess, Ao, Xo, input_tensor, output_tensor, co, **kwargs)
        values[ok] = vals
        if cv is not None:
            full = np.full((n, cv[0].shape[1]), np.nan)
            full[ok] = cv[0]
            curves = curves or {}
            curves[method] = full
            xs = cv[1]
        rows.append(values)
    if curves is not None:          # the rows of NaN have NaN curves of the same length
        for (method, _), undefined in zip(pairs, everywhere):
            curves.setdefault(method, np.full((n, len(xs)), np.nan))
        curves = {m: curves[m] for m, _ in pairs}
    return MetricTable(name, unit, [p[0] for p in pairs], images, np.stack(rows), curves, xs)


__all__ = ["AverageDrop", "AverageDropResult", "N_Ord", "Insertion", "Deletion", "auc",
           "num_feats", "per_image", "MetricTable", "metric_table", "unranked", "write_text",
           "markdown_table", "csv_table",
           "write_bytes"]
