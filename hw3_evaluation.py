"""Metrics that measure how faithful an attribution map is to the model it explains.

* :class:`AverageDrop` -- Average Drop % (Chattopadhyay et al., "Grad-CAM++", WACV 2018),
  with Average Increase as a by-product.
* :class:`N_Ord` -- Necessity Ordering (Wang et al., "Interpreting interpretations:
  organizing attribution methods by criteria", CVPR-W 2020).
* :class:`Insertion`, :class:`Deletion` -- probability curves as superpixels are inserted
  into a baseline image or deleted from the image (Petsiuk et al., "RISE", BMVC 2018),
  with :func:`auc`.
* :func:`metric_table` -- one metric over several methods and images, as a
  :class:`MetricTable` (Markdown and CSV).

All metrics talk to the model only through the contract of DESIGN.md (``imgs`` RGB 0-255
``[N, H, W, 3]``, ``logits``, ``probs``); "removing" a pixel sets it to 0 (black). The
*pixel attribution* of an attribution ``A [N, H, W, C]`` is the mean over its channels; an
attribution that is already a pixel map ``[N, H, W]`` (Grad-CAM, Occlusion, Random) is used
as it is.

Per-image results that a definition leaves undefined are NaN with a ``RuntimeWarning``
naming the images; a result that is undefined as a whole (every image excluded, an
all-zero attribution) raises ``ValueError``. No metric returns a number that only looks real.

The metrics fetch ``model.logits`` or ``model.probs`` and build no TensorFlow op of their
own, so creating or calling them never grows the graph.
"""
import os
import tempfile
import warnings

import numpy as np
from scipy import ndimage

from hw3_attribution import (AttributionMethod, DEFAULT_BATCH_SIZE, INPUT_FINITE_ERROR,
                             as_batch, check_positive_int, check_targets, num_classes)

# Error messages, kept as data so that tests match the same templates.
IMAGE_MODEL_ERROR = ("model: expected an image model with imgs of shape [None, H, W, C], "
                     "got imgs of shape {actual}")
ATTR_SHAPE_ERROR = ("{arg}: expected an attribution of the input's shape {full} or a pixel "
                    "map {pixel}, got shape {actual}")
ATTR_ZERO_ERROR = ("{arg}: {metric} is undefined for an all-zero attribution (it ranks no "
                   "pixel above another); got all-zero attributions for image(s) {indices}")
ALL_EXCLUDED_ERROR = ("X: Average Drop % is undefined for this set: the predicted-class "
                      "score f_c(x) is <= 0 for every image ({n} of {n}), so no image "
                      "gives a drop ratio")
SUPERPIXEL_ERROR = ("superpixel_size: expected a positive int that divides the image height "
                    "and width, got {size} for images of {h}x{w}")
IMPORTANCE_SHAPE_ERROR = ("importance: expected per-superpixel importance {grid} or a pixel "
                          "map {pixel} (superpixel_size {s}), got shape {actual}")
BASELINE_ERROR = ("baseline: expected 'black', 'blur', a number or an array of shape "
                  "{expected}, got {actual}")
SINGLE_IMAGE_ERROR = ("x: expected one image [1, H, W, C] or [H, W, C], got a batch of {n}; "
                      "use .curves(X, importance, c) for several images")
CURVE_ERROR = ("{arg}: expected {expected}, got {actual}")
TABLE_INPUT_ERROR = "{arg}: expected {expected}, got {actual}"

UNDEFINED_WARNING = "{metric} is undefined for image(s) {indices} ({why}); they are NaN"


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


class _Metric(AttributionMethod):
    """Shared plumbing: image checks, pixel attributions and batched forward passes.

    Subclasses provide ``per_image(X, A, c=None) -> [N]`` (NaN where undefined), which
    :func:`metric_table` uses, and ``name`` / ``unit`` for table titles.
    """

    name = "metric"
    unit = ""

    def _define_ops(self):
        # Metrics only run the model forward: fetch its own tensors, build nothing.
        shape = self.model.imgs.shape
        if shape.rank != 4:
            raise ValueError(IMAGE_MODEL_ERROR.format(actual=shape.as_list()))
        self._logits = self.model.logits
        self._probs = self.model.probs

    def _images(self, X, arg="X"):
        """``(float32 [N, H, W, C], single)`` for images that fit the model."""
        return as_batch(X, self.model, arg)

    def _pixel_attribution(self, A, X, single, arg="A"):
        """The pixel attribution ``[N, H, W]`` (channel mean of A), checked.

        ``A`` is ``[N, H, W, C]`` or ``[N, H, W]``; without the batch axis when ``X`` was
        one image.
        """
        n, h, w, ch = X.shape
        arr = np.asarray(A)
        if single and arr.shape in ((h, w, ch), (h, w)):
            arr = arr[None]
        if arr.shape not in ((n, h, w, ch), (n, h, w)) or not np.issubdtype(arr.dtype,
                                                                             np.number):
            full, pixel = [n, h, w, ch], [n, h, w]
            if single:
                full, pixel = f"{full} (or {full[1:]})", f"{pixel} (or {pixel[1:]})"
            raise ValueError(ATTR_SHAPE_ERROR.format(arg=arg, full=full, pixel=pixel,
                                                     actual=list(np.shape(A))))
        arr = arr.astype(np.float64)
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise ValueError(INPUT_FINITE_ERROR.format(arg=arg, count=bad))
        pix = arr.mean(axis=-1) if arr.ndim == 4 else arr
        zero = ~pix.reshape(n, -1).any(axis=1)
        if zero.any():
            raise ValueError(ATTR_ZERO_ERROR.format(arg=arg, metric=self.name,
                                                    indices=_indices(zero)))
        return pix

    def _target_of(self, logits, c, n):
        """Targets ``[n]``: ``c`` as given (checked) or the argmax of ``logits``."""
        targets = check_targets(c, n, num_classes(self.model))
        return logits.argmax(axis=1).astype(np.int32) if targets is None else targets

    def _forward_picked(self, fetch, rows_fn, row_targets, desc=None):
        """``fetch[r, row_targets[r]]`` for rows built lazily by ``rows_fn(slice)``.

        One ``sess.run`` per chunk of ``batch_size`` rows: ``ceil(len(row_targets) /
        batch_size)`` calls in all.
        """
        n_rows = len(row_targets)
        out = np.empty(n_rows, np.float64)
        for sl, val in self._run_batched(fetch, n_rows,
                                         lambda s: {self.model.imgs: rows_fn(s)},
                                         desc=desc):
            out[sl] = val[np.arange(len(val)), row_targets[sl]]
        return out


# --------------------------------------------------------------------- Average Drop %

class AverageDropResult:
    """What :meth:`AverageDrop.evaluate` found for a set of N images.

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


class AverageDrop(_Metric):
    """Average Drop % of an attribution over a set of images (lower is better).

    ``AD(D) = 100% · 1/|D| Σ_i max(f_c(x_i) − f_c(M_A(x_i)), 0) / f_c(x_i)`` with pre-softmax
    scores, ``c = argmax f(x_i)``, and ``M_A(x)`` the image with only the pixels of positive
    pixel attribution kept and every other pixel set to 0 (black). Chattopadhyay et al.,
    "Grad-CAM++", WACV 2018; the homework's Definition 5.

    The ratio is meaningless when ``f_c(x) <= 0`` (it would flip sign or divide by zero):
    such images are **excluded** from ``|D|`` (their per-image drop is NaN, a
    ``RuntimeWarning`` names them, and :meth:`evaluate` reports them in ``excluded`` /
    ``n_excluded``); if every image is excluded the metric raises ``ValueError``.
    A per-image drop can exceed 100 % (pre-softmax scores go negative: ``f_c(M_A(x)) < 0``);
    it is kept as the definition gives it, not clipped.

    Calls: ``AverageDrop(model, sess)(X, A)`` -> float (percent);
    ``.evaluate(X, A)`` -> :class:`AverageDropResult` (per-image drops, Average Increase,
    exclusions). ``sess.run`` calls: ``2 · ceil(N / batch_size)``.
    """

    name = "Average Drop %"
    unit = "%"

    def evaluate(self, X, A, c=None):
        """Average Drop % with its details.

        Args:
            X: images ``[N, H, W, C]`` (or one ``[H, W, C]``), RGB 0-255.
            A: attributions ``[N, H, W, C]`` or pixel maps ``[N, H, W]``.
            c: the class per image; ``None`` (the definition) takes ``argmax f(x)``.

        Returns:
            :class:`AverageDropResult`.

        Raises:
            ValueError: shapes that do not fit, NaN/inf, an empty set, an all-zero
                attribution, or ``f_c(x) <= 0`` for every image.
        """
        X, single = self._images(X)
        keep = self._pixel_attribution(A, X, single) > 0                 # [N, H, W]
        logits = self.logits(X)                                            # [N, K]
        targets = self._target_of(logits, c, len(X))
        scores = logits[np.arange(len(X)), targets].astype(np.float64)
        masked = X * keep[..., None].astype(np.float32)                   # M_A(x)
        masked_scores = self._forward_picked(self._logits, lambda s: masked[s], targets,
                                             desc="Average Drop")
        excluded = scores <= 0
        if excluded.all():
            raise ValueError(ALL_EXCLUDED_ERROR.format(n=len(X)))
        if excluded.any():
            warnings.warn(UNDEFINED_WARNING.format(
                metric=self.name, indices=_indices(excluded),
                why="f_c(x) <= 0; excluded from the average"), RuntimeWarning, stacklevel=3)
        with np.errstate(divide="ignore", invalid="ignore"):
            drop = 100.0 * np.maximum(scores - masked_scores, 0.0) / scores
        drop[excluded] = np.nan
        increase = 100.0 * np.mean(masked_scores > scores)
        return AverageDropResult(drop, increase, _indices(excluded), targets, scores,
                                 masked_scores, keep.reshape(len(X), -1).mean(axis=1))

    def __call__(self, X, A, c=None):
        """Average Drop % over the set, a float in percent (see :meth:`evaluate`)."""
        return self.evaluate(X, A, c).mean

    def per_image(self, X, A, c=None):
        """Per-image drops ``[N]`` in percent (NaN where excluded); their nanmean is AD."""
        return self.evaluate(X, A, c).per_image


# ------------------------------------------------------------------ Necessity Ordering

class N_Ord(_Metric):
    """Necessity Ordering score of each image's attribution (lower is better).

    ``N_o(x, A) = 1/(N+1) Σ_{i=1..N} max(f_c(R(i, π_A)) − f_c(0), 0)`` with pre-softmax
    scores and ``c = argmax f(x)``. Wang et al., "Interpreting interpretations: organizing
    attribution methods by criteria", CVPR-W 2020; the homework's Definition 6.

    Choices the definition leaves open:

    * ``π_A`` lists the pixels of **positive** pixel attribution, biggest first (ties in
      raster order); pixels of zero or negative attribution are never removed. With
      ``P`` positive pixels, ``R(P)`` is the image with only those pixels left.
    * Removing ``M`` pixels at a time, ``N`` is the number of removal steps
      ``ceil(P / M)``, step ``k`` removes the first ``min(kM, P)`` pixels (set to 0), and
      the sum runs over the steps: ``1/(N+1) Σ_{k=1..N} max(f_c(R(min(kM, P))) − f_c(0), 0)``.
      So ``M = 1`` is exactly the pixel-by-pixel definition, and a larger ``M`` samples the
      same curve more coarsely.
    * An image whose attribution has no positive pixel has ``N = 0`` and nothing to
      remove; its score is NaN (with a ``RuntimeWarning``), not the 0 that the empty sum
      would give and that would read as a perfect score.

    Calls: ``N_Ord(model, sess, M=1000)(X, A)`` -> array ``[N]``. Every masked copy is built
    lazily and goes through ``sess.run`` in batches: ``ceil((N + 1) / batch_size) +
    ceil(Σ_i steps_i / batch_size)`` calls (the images and the black image, then the copies).
    """

    name = "Necessity Ordering"
    unit = "logit"

    def __init__(self, model, sess, M=1000, batch_size=DEFAULT_BATCH_SIZE, progress=True):
        self.M = check_positive_int(M, "M")
        super().__init__(model, sess, batch_size=batch_size, progress=progress)

    def evaluate(self, X, A, c=None):
        """Scores and the curves behind them.

        Returns:
            dict with ``scores [N]``, ``targets [N]``, ``blank_scores [N]`` (``f_c(0)``),
            ``steps [N]`` (the N of each image), ``removed`` (list of ``[steps_i]`` pixel
            counts) and ``curves`` (list of ``[steps_i]`` scores ``f_c(R)``).
        """
        X, single = self._images(X)
        pix = self._pixel_attribution(A, X, single)                         # [N, H, W]
        n, h, w, _ = X.shape
        flat = pix.reshape(n, -1)
        positives = (flat > 0).sum(axis=1)                                  # P per image
        # rank[i, p]: position of pixel p in π_A (P_i or more for non-positive pixels).
        order = np.argsort(-flat, axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(h * w)[None], axis=1)
        rank = rank.reshape(n, h, w)

        both = np.concatenate([np.zeros_like(X[:1]), X])                    # [1 + N, ...]
        logits = self.logits(both)
        targets = self._target_of(logits[1:], c, n)
        blank = logits[0, targets].astype(np.float64)                       # f_c(0) [N]

        steps = -(-positives // self.M)                                     # ceil(P / M)
        row_img = np.repeat(np.arange(n), steps)                            # [rows]
        row_removed = np.concatenate(
            [np.minimum(np.arange(1, k + 1) * self.M, p) for k, p in zip(steps, positives)]
            + [np.zeros(0, np.int64)]).astype(np.int64)

        def rows(s):  # [rows in s, H, W, C]: the first `removed` pixels of π_A set to 0
            keep = rank[row_img[s]] >= row_removed[s][:, None, None]
            return X[row_img[s]] * keep[..., None].astype(np.float32)

        values = self._forward_picked(self._logits, rows, targets[row_img],
                                      desc="Necessity Ordering")
        bounds = np.concatenate([[0], np.cumsum(steps)])
        curves = [values[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        removed = [row_removed[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        scores = np.array([np.maximum(cv - f0, 0.0).sum() / (k + 1)
                           for cv, f0, k in zip(curves, blank, steps)])
        undefined = positives == 0
        if undefined.any():
            scores[undefined] = np.nan
            warnings.warn(UNDEFINED_WARNING.format(
                metric=self.name, indices=_indices(undefined),
                why="no pixel has positive attribution"), RuntimeWarning, stacklevel=3)
        return dict(scores=scores, targets=targets, blank_scores=blank, steps=steps,
                    removed=removed, curves=curves)

    def __call__(self, X, A, c=None):
        """Necessity Ordering scores ``[N]`` (a float for one unbatched image).

        Args:
            X: images ``[N, H, W, C]`` (or one ``[H, W, C]``), RGB 0-255.
            A: attributions ``[N, H, W, C]`` or pixel maps ``[N, H, W]``.
            c: the class per image; ``None`` (the definition) takes ``argmax f(x)``.

        Raises:
            ValueError: shapes that do not fit, NaN/inf, an empty set, an all-zero
                attribution.
        """
        scores = self.evaluate(X, A, c)["scores"]
        return float(scores[0]) if np.ndim(X) == 3 else scores

    def per_image(self, X, A, c=None):
        """Scores ``[N]`` (NaN where undefined)."""
        return self.evaluate(X, A, c)["scores"]


# --------------------------------------------------------------- Insertion / Deletion

class _AblationCurve(_Metric):
    """Probability curve as superpixels move between the image and a baseline."""

    insert = True

    def __init__(self, model, sess, superpixel_size=8, baseline="black", blur_sigma=5.0,
                 step=1, batch_size=DEFAULT_BATCH_SIZE, progress=True):
        self.superpixel_size = check_positive_int(superpixel_size, "superpixel_size")
        self.step = check_positive_int(step, "step")
        self.blur_sigma = float(blur_sigma)
        if not self.blur_sigma > 0:
            raise ValueError(CURVE_ERROR.format(arg="blur_sigma", expected="a positive number",
                                                actual=blur_sigma))
        if isinstance(baseline, str):
            if baseline not in ("black", "blur"):
                raise ValueError(BASELINE_ERROR.format(expected="[H, W, C]",
                                                       actual=repr(baseline)))
        else:
            arr = np.asarray(baseline)
            if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
                raise ValueError(BASELINE_ERROR.format(expected="[H, W, C] of finite numbers",
                                                       actual=f"{arr.dtype} array of shape "
                                                              f"{list(arr.shape)}"))
            baseline = arr.astype(np.float32)
        self.baseline = baseline
        super().__init__(model, sess, batch_size=batch_size, progress=progress)
        h, w = self.model.imgs.shape.as_list()[1:3]
        if h is not None and w is not None:
            self._grid(h, w)  # fail early on a size that does not divide the model's images

    def _grid(self, h, w):
        s = self.superpixel_size
        if h % s or w % s:
            raise ValueError(SUPERPIXEL_ERROR.format(size=s, h=h, w=w))
        return h // s, w // s

    def _baselines(self, X):
        """Baseline images ``[N, H, W, C]`` for a checked batch."""
        if isinstance(self.baseline, str):
            if self.baseline == "black":
                return np.zeros_like(X)
            # per image and channel, as Occlusion's 'blur' (scipy's default 'reflect' edges)
            sigma = (0, self.blur_sigma, self.blur_sigma, 0)
            return ndimage.gaussian_filter(X, sigma=sigma)
        b = self.baseline
        if b.ndim == 0 or b.shape in (X.shape[1:], (1,) + X.shape[1:], X.shape):
            return np.broadcast_to(b, X.shape).astype(np.float32)
        raise ValueError(BASELINE_ERROR.format(expected=f"{list(X.shape[1:])} (or "
                                                        f"{list(X.shape)})",
                                               actual=f"shape {list(b.shape)}"))

    def _importance(self, importance, X, single):
        """Superpixel importance ``[N, H/s, W/s]`` from a grid, pixel map or attribution."""
        n, h, w, ch = X.shape
        gh, gw = self._grid(h, w)
        s = self.superpixel_size
        arr = np.asarray(importance)
        shapes = [(n, gh, gw), (n, h, w), (n, h, w, ch)]
        if single and arr.shape in [sh[1:] for sh in shapes]:
            arr = arr[None]
        if arr.shape not in shapes or not np.issubdtype(arr.dtype, np.number):
            grid, pixel = [n, gh, gw], [n, h, w]
            if single:
                grid, pixel = f"{grid} (or {grid[1:]})", f"{pixel} (or {pixel[1:]})"
            raise ValueError(IMPORTANCE_SHAPE_ERROR.format(grid=grid, pixel=pixel, s=s,
                                                           actual=list(np.shape(importance))))
        arr = arr.astype(np.float64)
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise ValueError(INPUT_FINITE_ERROR.format(arg="importance", count=bad))
        if arr.ndim == 4:
            arr = arr.mean(axis=-1)                                         # pixel map
        if arr.shape[1:] != (gh, gw):
            arr = arr.reshape(n, gh, s, gw, s).sum(axis=(2, 4))             # per superpixel
        zero = ~arr.reshape(n, -1).any(axis=1)
        if zero.any():
            raise ValueError(ATTR_ZERO_ERROR.format(arg="importance", metric=self.name,
                                                    indices=_indices(zero)))
        return arr

    def num_feats(self, n_superpixels):
        """The x positions ``[T]``: 0, step, 2·step, ..., and always the last, all of them."""
        xs = np.arange(0, n_superpixels + 1, self.step)
        if xs[-1] != n_superpixels:
            xs = np.append(xs, n_superpixels)
        return xs

    def curves(self, X, importance, c=None):
        """Curves for a batch of images.

        Args:
            X: images ``[N, H, W, C]`` (or one ``[H, W, C]``), RGB 0-255.
            importance: ``[N, H/s, W/s]`` per superpixel, or a pixel map ``[N, H, W]``
                (summed per superpixel), or an attribution ``[N, H, W, C]`` (channel mean,
                then summed); without the batch axis for one image.
            c: target class (int, one per image, or ``None`` for the predicted class).

        Returns:
            ``(curves [N, T], num_feats [T])``: the target-class probability after
            ``num_feats[j]`` superpixels were inserted (deleted), most important first
            (ties in raster order); ``num_feats`` runs from 0 to ``(H/s)(W/s)``.
            ``sess.run`` calls: ``ceil(N·T / batch_size)``, plus ``ceil(N / batch_size)``
            when ``c`` is None.
        """
        X, single = self._images(X, "x")
        imp = self._importance(importance, X, single)                       # [N, gh, gw]
        n, gh, gw = imp.shape
        s = self.superpixel_size
        base = self._baselines(X)                                           # [N, H, W, C]
        targets = self._targets(X, c)
        order = np.argsort(-imp.reshape(n, -1), axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(gh * gw)[None], axis=1)
        # rank of each pixel's superpixel, [N, H, W]
        rank = np.repeat(np.repeat(rank.reshape(n, gh, gw), s, axis=1), s, axis=2)
        xs = self.num_feats(gh * gw)
        t = len(xs)
        row_img, row_n = np.repeat(np.arange(n), t), np.tile(xs, n)         # [N·T]
        src, dst = (X, base) if self.insert else (base, X)

        def rows(sl):  # the first row_n superpixels come from src, the rest from dst
            moved = rank[row_img[sl]] < row_n[sl][:, None, None]
            return np.where(moved[..., None], src[row_img[sl]], dst[row_img[sl]])

        probs = self._forward_picked(self._probs, rows, targets[row_img], desc=self.name)
        return probs.reshape(n, t), xs

    def __call__(self, x, importance, c=None):
        """``(curve [T], num_feats [T])`` for one image ``x`` ``[1, H, W, C]`` or ``[H, W, C]``.

        ``importance`` is ``[1, H/s, W/s]`` per superpixel or a pixel map ``[1, H, W]``
        (summed per superpixel), with or without the batch axis. See :meth:`curves`.
        """
        if np.ndim(x) == 4 and np.shape(x)[0] != 1:
            raise ValueError(SINGLE_IMAGE_ERROR.format(n=np.shape(x)[0]))
        curves, xs = self.curves(x, importance, c)
        return curves[0], xs

    def per_image(self, X, importance, c=None):
        """AUC of each image's curve ``[N]`` (see :func:`auc`)."""
        curves, xs = self.curves(X, importance, c)
        return auc(curves, xs)


class Insertion(_AblationCurve):
    """Insertion curve: superpixels of the image put into a baseline, most important first.

    Starts at the baseline (0 superpixels) and ends at the image itself; the curve is the
    target class's softmax probability. A faithful importance makes it rise early: higher
    AUC is better. Petsiuk et al., "RISE: Randomized input sampling for explanation of
    black-box models", BMVC 2018.

    Args:
        model, sess: the model contract and its session.
        superpixel_size: side ``s`` of the square superpixels; must divide H and W.
        baseline: ``'black'`` (zeros), ``'blur'`` (the image blurred by a Gaussian of
            ``blur_sigma`` pixels), a number, or an array ``[H, W, C]`` / ``[N, H, W, C]``.
        blur_sigma: standard deviation of the blur, in pixels.
        step: superpixels inserted per point of the curve (the last point is always all).
        batch_size, progress: as for every method.

    Call: ``curve, num_feats = Insertion(model, sess)(x, importance, c)``.
    """

    name = "Insertion AUC"
    unit = "probability"
    insert = True


class Deletion(_AblationCurve):
    """Deletion curve: superpixels of the image replaced by a baseline, most important first.

    Starts at the image (0 superpixels) and ends at the baseline; the curve is the target
    class's softmax probability. A faithful importance makes it fall early: lower AUC is
    better. Petsiuk et al., "RISE", BMVC 2018. Arguments as for :class:`Insertion`.

    Call: ``curve, num_feats = Deletion(model, sess)(x, importance, c)``.
    """

    name = "Deletion AUC"
    unit = "probability"
    insert = False


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

    @staticmethod
    def _fmt(v, digits):
        return "undefined" if not np.isfinite(v) else f"{v:.{digits}g}"

    def to_markdown(self, by="method", digits=4, per_image=True):
        """A Markdown table.

        ``by='method'``: one row per method, a column per image (if ``per_image``) and the
        mean. ``by='image'``: one row per image, a column per method, and a mean row.
        """
        f = lambda v: self._fmt(v, digits)  # noqa: E731
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
        lines = [",".join(["method"] + [_csv_cell(i) for i in self.images] + ["mean"])]
        for m, row, mean in zip(self.methods, self.values, self.mean):
            lines.append(",".join([_csv_cell(m)] + [repr(float(v)) for v in row]
                                  + [repr(float(mean))]))
        return write_text(path, "\n".join(lines) + "\n")

    def __repr__(self):
        return (f"MetricTable({self.metric!r}, methods={self.methods}, "
                f"images={len(self.images)})")


def write_text(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename
    it into place: a reader never sees a half-written file, and a failure leaves none."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _csv_cell(text):
    text = str(text)
    if any(ch in text for ch in ',"\n'):
        text = '"' + text.replace('"', '""') + '"'
    return text


def metric_table(metric, attributions, X, c=None, images=None):
    """Run ``metric`` for every method's attributions on the images ``X``.

    Args:
        metric: an :class:`AverageDrop`, :class:`N_Ord`, :class:`Insertion` or
            :class:`Deletion` instance (anything with ``per_image(X, A, c)`` and ``name``).
        attributions: ``{method name: A}`` (or a sequence of ``(name, A)`` pairs), each ``A``
            an attribution / importance for every image of ``X``.
        X: images ``[N, H, W, C]``.
        c: target class(es), passed to the metric (``None``: each image's prediction).
        images: labels for the images (e.g. ImageNet indices); default ``0 .. N-1``.

    Returns:
        :class:`MetricTable` of ``[methods, images]`` values and the per-method mean.
        An image whose attribution is all zero is NaN for that method (with a
        ``RuntimeWarning``); if every image's is, the metric's own error is raised.
    """
    pairs = list(attributions.items() if isinstance(attributions, dict) else attributions)
    if not pairs:
        raise ValueError(TABLE_INPUT_ERROR.format(arg="attributions",
                                                  expected="at least one method",
                                                  actual="none"))
    n = len(X) if np.ndim(X) == 4 else 1
    images = list(range(n)) if images is None else list(images)
    if len(images) != n:
        raise ValueError(TABLE_INPUT_ERROR.format(arg="images", expected=f"{n} labels",
                                                  actual=len(images)))
    rows, curves, xs = [], None, None
    for name, A in pairs:
        # An image whose attribution is all zero has no value (the metric is undefined for
        # it): score the others and mark it NaN, rather than lose the whole table.
        arr = np.asarray(A)
        zero = np.zeros(n, bool)
        if np.ndim(X) == 4 and arr.ndim >= 3 and len(arr) == n:
            zero = ~arr.reshape(n, -1).any(axis=1)
        ok = np.flatnonzero(~zero) if zero.any() and not zero.all() else np.arange(n)
        if len(ok) < n:
            warnings.warn(UNDEFINED_WARNING.format(
                metric=getattr(metric, "name", "metric"), indices=_indices(zero),
                why=f"{name}: all-zero attribution"), RuntimeWarning, stacklevel=2)
        Xo, Ao = (X, A) if len(ok) == n else (X[ok], arr[ok])
        co = c if c is None or np.ndim(c) == 0 or len(ok) == n else np.asarray(c)[ok]
        values = np.full(n, np.nan)
        if isinstance(metric, _AblationCurve):
            cv, xs = metric.curves(Xo, Ao, co)
            full = np.full((n, cv.shape[1]), np.nan)
            full[ok] = cv
            curves = curves or {}
            curves[name] = full
            values[ok] = auc(cv, xs)
        else:
            values[ok] = np.atleast_1d(metric.per_image(Xo, Ao, co))
        rows.append(values)
    return MetricTable(getattr(metric, "name", type(metric).__name__),
                       getattr(metric, "unit", ""), [p[0] for p in pairs], images,
                       np.stack(rows), curves, xs)


__all__ = ["AverageDrop", "AverageDropResult", "N_Ord", "Insertion", "Deletion", "auc",
           "MetricTable", "metric_table", "write_text"]
