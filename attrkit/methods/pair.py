"""PAIR saliency's methods in the homework's form: ``XRAI``, ``GuidedIG``, ``BlurIG`` and
``GuidedBackprop`` (PAIR saliency 0.2.1, ``saliency/tf1`` and ``saliency/core``).

Each is constructed as the homework's methods are, ``(sess, input_tensor, output_tensor,
target_class)``, and runs on the engine of ``hw3_attribution`` (its runner, path rows and
op cache). In reading order: the four methods; XRAI's region ranking; the parsers of
XRAI's baselines and base attribution; Blur IG's sigmas; the guided ReLU gradients and
:class:`GuidedOps`; :class:`GuidedIGPath` (Guided IG's adaptive path, numpy only).
XRAI's segments come from :mod:`attrkit.methods.segmentation`.
"""
import math

import numpy as np
import tensorflow as tf

from hw3_attribution import (DEFAULT_BATCH_SIZE, IG_METHODS, INPUT_FINITE_ERROR,
                             NOT_IMAGE_ERROR, _UNSET, AttributionMethod, ImageBank, Path,
                             Rows, as_array, cached_ops, check_choice, check_count,
                             check_flag, check_fraction, check_number, check_positive_int,
                             check_rows_per_input, check_targets, clone_subgraph,
                             input_groups, is_image_batch, is_numeric, is_symbolic,
                             parse_baseline, quadrature, register_gradients,
                             relative_error, unbatch)
from attrkit.methods.segmentation import parse_segments

tf1 = tf.compat.v1

XRAI_BASELINES_ERROR = ("baselines: expected a sequence of baselines, each 'black', 'white', "
                        "'min', 'max' or an array, got {actual}")
BASE_ATTRIBUTION_ERROR = ("base_attribution: expected a numeric attribution of X's shape "
                          "{expected}, got shape {actual}")
GUIDED_COPY_ERROR = ("output_tensor: Guided Backprop overrides the ReLU gradients on a copy "
                     "of the model's ops between input_tensor and output_tensor, which "
                     "could not be made ({reason})")

XRAI_BASELINES = ("black", "white", "min", "max")
XRAI_ALGORITHMS = ("full", "fast")


class XRAI(AttributionMethod):
    """XRAI (Kapishnikov, Bolukbasi, Viégas and Terry, ICCV 2019, "XRAI: better
    attributions through regions"): the image's over-segmentation at several scales
    (Felzenszwalb's graph segments at PAIR's six scales, each dilated by 5 pixels), and
    regions added greedily by the density of Integrated Gradients inside them (IG with a
    black and a white baseline, averaged, then the maximum over channels). Every pixel of
    a region gets that region's mean attribution, so the map sums to the IG map's sum.

    ``XRAI(sess, input_tensor, output_tensor, target_class)(X, baselines=('black',
    'white'), num_steps=100, segments=None, area_threshold=1.0, algorithm='full')``:
    images ``[N, H, W, C]`` -> maps ``[N, H, W]`` float32 (inputs of other ranks work with
    ``segments``: masks of one input's shape, or of its shape without the last axis).

    Args:
        baselines: IG's baselines, each ``'black'`` (0), ``'white'`` (255), ``'min'`` /
            ``'max'`` (each image's own minimum / maximum value: PAIR's default when it is
            given none), or an array of one input's shape (or of ``X``'s shape).
        num_steps: IG's steps per baseline (PAIR's ``XRAIParameters.steps``).
        segments: None (Felzenszwalb, as PAIR: needs scikit-image, imported only here),
            or boolean masks ``[S, H, W]`` (a list of ``[H, W]`` masks, PAIR's form), or an
            int label map ``[H, W]`` (each label a segment), shared by every image; or a
            list with one such entry per image.
        area_threshold: the share of the image the greedy 'full' ranking covers before it
            gives the rest one value (1.0: all of it).
        algorithm: ``'full'`` (regions ranked by the density of what they add to the
            regions chosen so far) or ``'fast'`` (by their own density, overlaps ignored:
            PAIR's ``_xrai_fast``).
        batch_size: path points per ``sess.run`` (keyword only; PAIR's default is 1).
        base_attribution: a precomputed attribution of ``X``'s shape to rank the regions
            by instead of IG (PAIR's ``base_attribution``).
        method: IG's quadrature rule (:func:`quadrature`): the homework's
            ``'riemann_right'`` by default, like :class:`IntegratedGrad`; ``'pair'`` is
            PAIR's (``linspace(0, 1, num_steps)``, equal weights), which gives PAIR's maps.
        min_pixel_diff: a region that adds fewer new pixels is dropped (PAIR's
            ``experimental_params['min_pixel_diff']``).
        return_details: also return a dict (kept as ``last_info``): ``ig`` ``[B, N, ...]``
            (each baseline's IG, None with ``base_attribution``), ``segments`` (int
            ``[N, H, W]``: 1 for the most important region, 2 for the next, ...: PAIR's
            flattened segments), ``masks`` (per image, bool ``[S, H, W]`` in that order),
            ``completeness_error`` ``[B, N]``, ``f_x``, ``f_baselines``.

    Where ours differs from PAIR's: a batch of images in one call, every IG path point
    of every image and baseline batched into one pass (PAIR runs ``batch_size=1`` by
    default, one baseline after the other); the default baselines are the homework's
    black and white (PAIR: the image's min and max, ``baselines=('min', 'max')``); the
    default IG rule is the homework's; the segments' dilation and the 'full' greedy loop
    are vectorised (the same regions and values). Session calls: ``ceil((N + B') /
    batch_size)`` forwards (inputs and B' distinct baseline images) plus
    ``ceil(N·B·num_steps / batch_size)``.
    """

    needs_rows = True
    api = "XRAI(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, baselines=("black", "white"), num_steps=100, segments=None,
                 area_threshold=1.0, algorithm="full", *, batch_size=DEFAULT_BATCH_SIZE,
                 base_attribution=None, method="riemann_right", min_pixel_diff=50,
                 return_details=False, target_class=_UNSET, feed_dict=None):
        X, single, run = self._begin(X, feed_dict)
        bs = check_positive_int(batch_size, "batch_size")
        algorithm = check_choice(algorithm, XRAI_ALGORITHMS, "algorithm")
        area_threshold = check_number(area_threshold, "area_threshold")
        min_pixel_diff = check_count(min_pixel_diff, "min_pixel_diff")
        masks = parse_segments(segments, X)                       # before any model pass
        info = {"ig": None, "completeness_error": None, "f_x": None, "f_baselines": None}
        if base_attribution is None:
            method = check_choice(method, IG_METHODS[:-1], "method")
            num_steps = check_rows_per_input(check_positive_int(num_steps, "num_steps"),
                                             "num_steps", "path points")
            attr, info = self._ig(run, X, baselines, num_steps, method, target_class, bs)
        else:
            attr = parse_base_attribution(base_attribution, X, single)
        pixel = attr.max(axis=-1) if X.ndim > 3 else attr               # [N, H, W]
        rank = xrai_full if algorithm == "full" else xrai_fast
        maps, ranks, traces = [], [], []
        for i in range(len(X)):
            m, trace = rank(pixel[i], masks[i], area_threshold, min_pixel_diff)
            maps.append(m)
            traces.append(trace)
            ranks.append(flatten_segments(trace, m.shape))
        out = np.stack(maps).astype(np.float32)
        info.update(segments=unbatch(np.stack(ranks), single), masks=unbatch(traces, single))
        if info["ig"] is not None and single:
            info["ig"] = info["ig"][:, 0]                                # [B, ...]
        self.last_info = info
        return (unbatch(out, single), info) if return_details else unbatch(out, single)

    def _ig(self, run, X, baselines, num_steps, method, target_class, bs):
        """``(mean IG [N, ...], info)``: IG of every input from every baseline, all their
        path points in one pass (a group of inputs at a time)."""
        sets = parse_xrai_baselines(baselines, X)
        spec = self.target_class if target_class is _UNSET else target_class
        path = Path(run, X, sets, check_targets(spec, len(X), self.num_classes), bs)
        alpha, weight = quadrature(method, num_steps)
        n_sets, k = len(sets), len(alpha)
        mean = np.empty((n_sets, len(X)) + X.shape[1:])
        for group in input_groups(len(X), n_sets * k):
            g = len(group)
            which = np.repeat(np.arange(n_sets), g * k)                 # baseline-major
            local = np.tile(np.repeat(np.arange(g), k), n_sets)
            node = np.tile(np.arange(k), n_sets * g)
            rows = path.points(group[local], alpha[node], which).summed(
                into=which * g + local, weight=weight[node].astype(np.float32))
            res = run.run_rows(rows, path.bank, ["sums"], bs, "XRAI integrated gradients",
                               n_sums=n_sets * g)
            mean[:, group] = res["sums"].reshape((n_sets, g) + X.shape[1:])
        ig = np.stack([path.difference(b) * mean[b] for b in range(n_sets)])
        info = {"ig": ig.astype(np.float32), "f_x": path.f_x,
                "f_baselines": np.stack(path.f_baselines), "targets": path.targets,
                "completeness_error": np.stack([path.completeness_error(ig[b], b)
                                                for b in range(n_sets)])}
        return ig.mean(axis=0), info


class GuidedIG(AttributionMethod):
    """Guided Integrated Gradients (Kapishnikov, Venugopalan, Avci, Wedin, Terry and
    Bolukbasi, CVPR 2021, "Guided Integrated Gradients: an adaptive path method for
    removing noise"): an adaptive path from the baseline to the input that, at each step,
    moves the ``fraction`` of the features with the smallest absolute gradient, never
    more than ``max_dist`` (a share of the L1 distance) away from the straight path
    (:class:`GuidedIGPath`).

    ``GuidedIG(sess, input_tensor, output_tensor, target_class)(X, baseline='black',
    num_steps=200, fraction=0.25, max_dist=0.02)`` -> float32 of ``X``'s shape.
    ``baseline``: ``'black'`` (0, PAIR's default ``x_baseline=None``), ``'white'`` (255) or
    an array of one input's shape (or of ``X``'s shape). ``max_dist=0`` (or
    ``fraction=1``) is IG's straight path.

    The path depends on the gradients along it, so it runs step by step: each step is
    one batched pass over the inputs that are not done, ``ceil(N / batch_size)`` session
    calls (``num_steps`` of them for one image, as PAIR's), plus forwards when the target
    is None. PAIR's ``x_steps`` is our ``num_steps``; its values and arithmetic (float64
    path, ``np.quantile(..., method='lower')``) are kept. ``last_info`` holds, per input,
    ``gradients`` and ``moves`` (the inner loop's iterations).
    """

    api = "GuidedIG(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, baseline="black", num_steps=200, fraction=0.25, max_dist=0.02, *,
                 batch_size=DEFAULT_BATCH_SIZE, target_class=_UNSET, feed_dict=None):
        X, single, run = self._begin(X, feed_dict)
        bs = check_positive_int(batch_size, "batch_size")
        steps = check_rows_per_input(check_positive_int(num_steps, "num_steps"),
                                     "num_steps", "steps")
        rule = GuidedIGPath(steps, check_fraction(fraction, "fraction"),
                            check_fraction(max_dist, "max_dist"))
        baselines = parse_baseline(baseline, X, ("black", "white"))
        targets = self._targets(run, X, target_class, bs)
        x_b = np.broadcast_to(np.zeros(1, np.float32) if baselines is None else baselines,
                              X.shape)

        def gradients(inputs, points):            # one batched pass at the current points
            return run.gradients(self._ops.grad, points.astype(np.float32),
                                 targets[inputs], "guided IG", bs)

        attr, info = rule.run(gradients, X, x_b)
        self.last_info = dict(info, targets=targets)
        return unbatch(attr.astype(np.float32), single)


class BlurIG(AttributionMethod):
    """Blur Integrated Gradients (Xu, Venugopalan and Sundararajan, CVPR 2020,
    "Attribution in scale and space"): IG along the path of Gaussian blurs of the image,
    from a strong blur (``max_sigma`` pixels) to the image itself, so that no baseline
    image is needed:

        BlurIG_c(x) = -Σ_{k<N} (σ_{k+1} - σ_k) · ∂_σ blur(x, σ_k) ⊙ ∇f_c(blur(x, σ_k)),

    ``σ_k = k·max_sigma/N`` (or ``sqrt(k·max_sigma/N)`` with ``sqrt=True``), ``∂_σ blur`` the
    finite difference of ``grad_step`` pixels, blurs as ``scipy.ndimage.gaussian_filter``
    with ``mode='constant'`` (PAIR's). Its sum approaches ``f_c(x) - f_c(blur(x,
    max_sigma))`` as N grows (completeness).

    ``BlurIG(sess, input_tensor, output_tensor, target_class)(X, max_sigma=50,
    num_steps=100, grad_step=0.01, sqrt=False)``: images ``[N, H, W, C]`` -> float32 of
    ``X``'s shape. The blurred path points and their derivatives are built in the graph
    from each image and its row's σ (:func:`gaussian_blur`), as IG's path points are;
    only the summed map comes back. ``return_error=True`` (keyword) also returns
    ``info`` (as ``last_info``) with ``completeness_error``, ``f_x``, ``f_baseline`` (one
    more forward row per image, at ``max_sigma``).

    Where ours differs from PAIR's: PAIR's ``steps`` is ``num_steps``; a batch of images
    in one call and ``batch_size=16`` (PAIR's default is 1); with ``sqrt=True`` and a
    batch size above 1 PAIR weights a whole batch by the step of its last row, ours
    weights each row by its own step (the same at ``batch_size=1``). Session calls:
    ``ceil(N·num_steps / batch_size)`` (+ forwards when the target is None).
    """

    needs_rows = True
    api = "BlurIG(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, max_sigma=50, num_steps=100, grad_step=0.01, sqrt=False, *,
                 batch_size=DEFAULT_BATCH_SIZE, return_error=False, target_class=_UNSET,
                 feed_dict=None):
        X, single, run = self._begin(X, feed_dict)
        if not is_image_batch(X):
            raise ValueError(NOT_IMAGE_ERROR.format(arg="X", method="BlurIG",
                                                    name=self.input_tensor.name,
                                                    actual=list(X.shape)))
        bs = check_positive_int(batch_size, "batch_size")
        sigmas = blur_sigmas(check_number(max_sigma, "max_sigma"),
                             check_rows_per_input(check_positive_int(num_steps, "num_steps"),
                                                  "num_steps", "path points"),
                             check_flag(sqrt, "sqrt"))
        step = check_number(grad_step, "grad_step", positive=True)
        targets = self._targets(run, X, target_class, bs)
        k = len(sigmas) - (0 if return_error else 1)   # the end point only for the error
        weight = np.append(-np.diff(sigmas), 0.0)[:k].astype(np.float32)
        attr, scores = np.empty(X.shape, np.float64), np.empty((len(X), k))
        for group in input_groups(len(X), k):
            images = np.repeat(group, k)
            rows = Rows.blurred(images, np.tile(sigmas[:k], len(group)), step,
                                targets[images])
            rows.summed(into=np.where(np.tile(weight, len(group)) != 0, images - group[0],
                                      -1), weight=np.tile(weight, len(group)))
            fetch = ["path_sums", "score"] if return_error else ["path_sums"]
            res = run.run_rows(rows, ImageBank(X), fetch, bs, "blur IG", n_sums=len(group))
            attr[group] = res["path_sums"]
            if return_error:
                scores[group] = res["score"].reshape(len(group), k)
        attr = attr.astype(np.float32)
        info = {"targets": targets, "sigmas": sigmas}
        if return_error:
            info.update(f_x=scores[:, 0], f_baseline=scores[:, -1], completeness_error=
                        relative_error(attr.reshape(len(X), -1).sum(1, dtype=np.float64),
                                       scores[:, 0] - scores[:, -1]))
        self.last_info = info
        out = unbatch(attr, single)
        return (out, info) if return_error else out


class GuidedBackprop(AttributionMethod):
    """Guided Backpropagation (Springenberg, Dosovitskiy, Brox and Riedmiller, ICLR-W
    2015, "Striving for simplicity"): the gradient of the pre-softmax score with each ReLU's
    backward pass replaced by one that passes only positive gradients, and only where the
    unit was active: ``grad_in = grad_out · [grad_out > 0] · [y > 0]``.

    ``GuidedBackprop(sess, input_tensor, output_tensor, target_class)(X, batch_size=16)``
    -> float32 of ``X``'s shape (the guided gradient, not times the input, as PAIR's).

    The override is made on a copy of the model's ops (between ``input_tensor`` and
    ``output_tensor``, reading the same weights, built once per graph), so every other
    method on the same graph keeps true gradients; PAIR instead copies the whole graph
    into a second session through a checkpoint. ``Relu`` is overridden as in the paper
    and PAIR; ``Relu6`` (MobileNet, EfficientNet-Lite) likewise, with the gate ``0 < y <
    6`` of its own derivative (PAIR's copy leaves ReLU6 with its true gradient). Every
    other activation (sigmoid, tanh, swish, GELU, leaky ReLU, ELU) and every other op
    keeps its true gradient. Session calls: ``ceil(N / batch_size)`` (+ forwards when the
    target is None).
    """

    api = "GuidedBackprop(sess, input_tensor, output_tensor, target_class)"

    def _define_ops(self):
        super()._define_ops()
        self._guided = guided_ops(self.input_tensor, self.output_tensor)

    def __call__(self, X, batch_size=DEFAULT_BATCH_SIZE, *, target_class=_UNSET,
                 feed_dict=None):
        X, single, run = self._begin(X, feed_dict)
        bs = check_positive_int(batch_size, "batch_size")
        targets = self._targets(run, X, target_class, bs)
        ops = self._guided
        out = run.collect(ops.grad, len(X),
                          lambda s: {self.input_tensor: X[s], ops.target: targets[s]},
                          "guided backprop", bs)
        return unbatch(out, single)


# ------------------------------------------------------------ XRAI's regions

def xrai_full(attr, masks, area_threshold=1.0, min_pixel_diff=50):
    """PAIR's ``XRAI._xrai``: regions added one at a time, each the one whose new pixels
    have the highest mean attribution (first in order on ties), until ``area_threshold``
    of the pixels are covered; a region adding fewer than ``min_pixel_diff`` new pixels is
    dropped; every new pixel gets its region's mean, the rest their own mean. Returns
    ``(map float64 of attr's shape, [the regions' new-pixel masks, most important
    first])``. Each region's count and sum of not-yet-covered pixels are updated as pixels
    are covered (a pixel is covered once), not recomputed per region and step."""
    flat, member = attr.reshape(-1).astype(np.float64), masks.reshape(len(masks), -1)
    out = np.full(flat.shape, -np.inf)
    covered = np.zeros(flat.shape, bool)
    count, total = member.sum(axis=1), member.astype(np.float64) @ flat
    left, trace = np.ones(len(member), bool), []
    while covered.mean() <= area_threshold:
        left &= count >= min_pixel_diff
        if not left.any():
            break
        best, gain = best_region(member, flat, covered, count, total, left)
        if best is None:
            break
        new = np.flatnonzero(member[best] & ~covered)
        trace.append((new, gain))
        out[new] = gain
        covered[new] = True
        left[best] = False
        count -= member[:, new].sum(axis=1)
        total -= member[:, new].astype(np.float64) @ flat[new]
    return finish_regions(out, flat, trace, attr.shape)


def best_region(member, flat, covered, count, total, left):
    """The region of highest mean over its uncovered pixels among ``left`` (the first on
    ties) and that mean, as PAIR computes it (``attr[new].mean()``): the running sums
    choose the candidates, the exact means decide."""
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(left & (count > 0), total / np.maximum(count, 1), -np.inf)
    top = gain.max()
    if top == -np.inf:
        return None, None
    near = np.flatnonzero(gain >= top - 1e-9 * max(abs(top), 1e-300))
    exact = [flat[member[j] & ~covered].mean() for j in near]
    k = int(np.argmax(exact))
    return int(near[k]), exact[k]


def xrai_fast(attr, masks, area_threshold=1.0, min_pixel_diff=50):
    """PAIR's ``XRAI._xrai_fast``: regions taken in order of their own mean attribution
    (overlaps ignored; stable on ties), each adding its new pixels unless they number
    fewer than ``min_pixel_diff``; ``area_threshold`` is ignored, as in PAIR. Returns as
    :func:`xrai_full`."""
    flat, member = attr.reshape(-1).astype(np.float64), masks.reshape(len(masks), -1)
    out = np.full(flat.shape, -np.inf)
    covered = np.zeros(flat.shape, bool)
    own = [flat[m].mean() if m.any() else -np.inf for m in member]
    trace = []
    for j in sorted(range(len(member)), key=lambda j: -own[j]):
        new = np.flatnonzero(member[j] & ~covered)
        if len(new) < min_pixel_diff:
            continue
        gain = flat[new].mean() if len(new) else -np.inf
        trace.append((new, gain))
        out[new] = gain
        covered |= member[j]
    return finish_regions(out, flat, trace, attr.shape)


def finish_regions(out, flat, trace, shape):
    """The uncovered pixels get their own mean; the regions' masks sorted by value
    (stable), the uncovered ones last: ``(map, [bool masks of shape])``."""
    rest = out == -np.inf
    if rest.any():
        out[rest] = flat[rest].mean()
    masks = []
    for new, _ in sorted(trace, key=lambda t: -t[1]):
        m = np.zeros(flat.shape, bool)
        m[new] = True
        masks.append(m.reshape(shape))
    if rest.any():
        masks.append(rest.reshape(shape))
    return out.reshape(shape), masks


def flatten_segments(masks, shape):
    """Regions in order as one int map: 1 for the first, 2 for the next, ... (PAIR's
    ``flatten_xrai_segments``); 0 where no region lies."""
    ranks = np.zeros(shape, np.int64)
    for i, m in enumerate(masks):
        ranks[m] = i + 1
    return ranks


# ------------------------------------------------------------ parsers, sigmas, guided ReLU

def parse_xrai_baselines(baselines, X):
    """XRAI's ``baselines`` as a list of baseline sets for :class:`Path`."""
    if isinstance(baselines, str) or is_symbolic(baselines) or not hasattr(baselines,
                                                                            "__len__"):
        raise TypeError(XRAI_BASELINES_ERROR.format(actual=repr(baselines)))
    if len(baselines) == 0:
        raise ValueError(XRAI_BASELINES_ERROR.format(actual="none"))
    axes = tuple(range(1, X.ndim))

    def extreme(name):
        value = X.min(axis=axes) if name == "min" else X.max(axis=axes)
        return np.ones_like(X) * value.reshape((-1,) + (1,) * (X.ndim - 1))

    return [parse_baseline(b, X, XRAI_BASELINES, make=extreme, arg="baselines")
            for b in baselines]


def parse_base_attribution(value, X, single):
    """XRAI's ``base_attribution``: an attribution of ``X``'s shape (one input's for one
    input), as float64 ``[N, ...]``."""
    arr = as_array(value, "base_attribution")
    want = X.shape[1:] if single else X.shape
    if arr.shape != want or not is_numeric(arr):
        raise ValueError(BASE_ATTRIBUTION_ERROR.format(expected=list(want),
                                                       actual=list(arr.shape)))
    arr = arr[None] if single else arr
    if not np.all(np.isfinite(arr)):
        raise ValueError(INPUT_FINITE_ERROR.format(
            arg="base_attribution", count=int(np.size(arr) - np.isfinite(arr).sum())))
    return arr.astype(np.float64)


def blur_sigmas(max_sigma, steps, sqrt):
    """Blur IG's ``σ_k``, k = 0..steps: ``k·max_sigma/steps`` or its square root (PAIR's)."""
    sigmas = np.arange(steps + 1) * float(max_sigma) / float(steps)
    return np.sqrt(sigmas) if sqrt else sigmas


def _guided_relu_grad(op, grad):
    """Guided ReLU: the gradient where it is positive and the unit was active."""
    return tf.where(grad > 0, grad, tf.zeros_like(grad)) * tf.cast(op.outputs[0] > 0,
                                                                   grad.dtype)


def _guided_relu6_grad(op, grad):
    """Guided ReLU6: as ReLU, with ReLU6's own gate ``0 < y < 6``."""
    y = op.outputs[0]
    return tf.where(grad > 0, grad, tf.zeros_like(grad)) * tf.cast((y > 0) & (y < 6),
                                                                   grad.dtype)


GUIDED_GRADIENTS = {"Relu": "Hw3GuidedRelu", "Relu6": "Hw3GuidedRelu6"}
register_gradients({"Hw3GuidedRelu": _guided_relu_grad, "Hw3GuidedRelu6": _guided_relu6_grad})


class GuidedOps:
    """Guided Backprop's ops, built once per (input_tensor, output_tensor): a copy of the
    model's ops reading ``input_tensor`` (and the model's weights), whose ReLU and ReLU6
    ops carry the guided gradients (:data:`GUIDED_GRADIENTS`), and the gradient of its
    target score ``[N, ...]``."""

    def __init__(self, x, out):
        with tf1.name_scope("hw3_guided"):
            try:
                (self.logits,) = clone_subgraph(x, [out], x, name="guided_model",
                                                gradient_override=GUIDED_GRADIENTS)
            except Exception as err:   # an op that cannot be copied
                raise ValueError(GUIDED_COPY_ERROR.format(
                    reason=f"{type(err).__name__}: {err}")) from None
            self.target = tf1.placeholder(tf.int32, [None], name="target")
            self.score = tf.gather(self.logits, self.target, axis=1, batch_dims=1)
            self.grad = tf.gradients(self.score, x)[0]
            self.input_grads = (self.grad,)


def guided_ops(x, out):
    return cached_ops(x.graph, ("guided", x.name, out.name), lambda: GuidedOps(x, out))


# ------------------------------------------------------------ Guided IG's path

GUIDED_IG_EPSILON = 1e-9   # PAIR's EPSILON: a step ends when its L1 target is this close


class GuidedIGPath:
    """Guided IG's adaptive path (Kapishnikov et al., CVPR 2021), in numpy: PAIR's
    ``guided_ig_impl``, for n inputs at once.

    Step ``s = 1..num_steps`` has a target L1 distance to the input, ``l1_total · (1 -
    s/num_steps)``, and a band ``[a - max_dist, a + max_dist]`` (``a = s/num_steps``) of
    how far along its own straight line from the baseline each feature may be. A step
    takes one gradient at the current point; then, until the target is reached, the
    features behind the band are brought up to it and the ``fraction`` of the others with
    the smallest absolute gradient (not at the band's top) move towards the top: all the
    way, or by the share ``gamma`` that reaches the target. Each move adds
    ``(x - x_old) ⊙ gradient`` to the attribution, whose sum is therefore the path
    integral's left Riemann sum.

    The gradients come as a function (:meth:`run`), so the rule runs without TensorFlow.
    """

    def __init__(self, num_steps=200, fraction=0.25, max_dist=0.02):
        self.num_steps, self.fraction, self.max_dist = num_steps, fraction, max_dist

    def run(self, gradients, x_input, x_baseline):
        """The path of n inputs.

        Args:
            gradients: ``gradients(inputs [m], points [m, ...])`` -> ``[m, ...]``, at the
                current points of those inputs (one batched pass per step).
            x_input, x_baseline: ``[n, ...]``.

        Returns:
            ``(attr, info)``: float64 ``[n, ...]``; ``info`` per input (arrays ``[n]``):
            ``gradients`` taken and ``moves`` (iterations of the inner loop). An input
            equal to its baseline has attribution 0 and takes no gradient.
        """
        x_input = np.asarray(x_input, np.float64)
        x_baseline = np.asarray(x_baseline, np.float64)
        x, attr = x_baseline.copy(), np.zeros_like(x_input)
        n = len(x)
        l1_total = np.abs(x_input - x_baseline).reshape(n, -1).sum(axis=1)
        moving = np.flatnonzero(l1_total > 0)
        info = {"gradients": np.zeros(n, np.int64), "moves": np.zeros(n, np.int64)}
        for step in range(self.num_steps if len(moving) else 0):
            grads = gradients(moving, x[moving])                        # [m, ...]
            info["gradients"][moving] += 1
            for j, i in enumerate(moving):
                info["moves"][i] += self._step(step, x[i], attr[i], grads[j], x_input[i],
                                               x_baseline[i], l1_total[i])
        return attr, info

    def _step(self, step, x, attr, grad_actual, x_input, x_baseline, l1_total):
        """One step of one input, in place on ``x`` and ``attr``; returns its moves."""
        grad = np.array(grad_actual)
        alpha = (step + 1.0) / self.num_steps
        alpha_min, alpha_max = max(alpha - self.max_dist, 0.0), min(alpha + self.max_dist, 1.0)
        x_min = x_baseline + (x_input - x_baseline) * alpha_min
        x_max = x_baseline + (x_input - x_baseline) * alpha_max
        l1_target = l1_total * (1 - (step + 1) / self.num_steps)
        gamma, moves = np.inf, 0
        while gamma > 1.0:
            moves += 1
            x_old = x.copy()
            with np.errstate(divide="ignore", invalid="ignore"):   # where x_input = x_b
                x_alpha = np.where(x_input != x_baseline,
                                   (x - x_baseline) / (x_input - x_baseline), np.nan)
            x_alpha[np.isnan(x_alpha)] = alpha_max
            behind = x_alpha < alpha_min
            x[behind] = x_min[behind]
            l1_current = np.abs(x - x_input).sum()
            if math.isclose(l1_target, l1_current, rel_tol=GUIDED_IG_EPSILON,
                            abs_tol=GUIDED_IG_EPSILON):
                attr += (x - x_old) * grad_actual
                break
            grad[x == x_max] = np.inf
            threshold = np.quantile(np.abs(grad), self.fraction, method="lower")
            s = (np.abs(grad) <= threshold) & (grad != np.inf)
            l1_s = (np.abs(x - x_max) * s).sum()
            gamma = (l1_current - l1_target) / l1_s if l1_s > 0 else np.inf
            if gamma > 1.0:
                x[s] = x_max[s]
            else:
                x[s] = (x + (x_max - x) * gamma)[s]
            attr += (x - x_old) * grad_actual
            if not s.any():    # nothing can move (PAIR would loop for ever): end the step
                break
        return moves
