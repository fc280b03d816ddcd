"""Attribution methods for image classifiers in TensorFlow graph mode (tf.compat.v1).

Every class takes ``(model, sess)``, builds its TensorFlow ops exactly once in
``_define_ops()`` (called from ``__init__``), and ``__call__`` only feeds and fetches.
The model is any object with the contract of DESIGN.md: ``imgs`` (input placeholder,
images RGB 0-255), ``logits`` (pre-softmax scores ``[N, K]``), ``probs``, ``layers``
(ordered dict name -> tensor) and ``name``.

This module also holds the small shared core (input checks, target handling, batched
``sess.run``) that ``hw3_infl`` and ``hw3_evaluation`` import, so the graded files need
nothing beyond each other, numpy, scipy, tensorflow and tqdm.
"""
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

tf1 = tf.compat.v1

DEFAULT_BATCH_SIZE = 32

# Error messages, kept as data so that tests match the same templates.
MODEL_ERROR = ("model: expected an object with the attributes imgs, logits, probs, layers "
               "and name (see DESIGN.md), got {actual} without {missing}")
INPUT_SHAPE_ERROR = ("{arg}: expected an array of shape [N, {dims}] (a batch) or [{dims}] "
                     "(one input) for model {model}, got shape {actual}")
INPUT_DTYPE_ERROR = "{arg}: expected a numeric array, got dtype {actual}"
INPUT_EMPTY_ERROR = "{arg}: expected at least one input, got an empty batch of shape {actual}"
INPUT_FINITE_ERROR = "{arg}: expected finite values, got {count} NaN or inf entries"
TARGET_LENGTH_ERROR = ("{arg}: expected one target class per input ({expected} inputs), "
                       "got {actual} targets")
TARGET_RANGE_ERROR = "{arg}: expected class indices in [0, {k}), got {actual}"
TARGET_TYPE_ERROR = ("{arg}: expected an int, a sequence of ints (one per input) or None "
                     "(the predicted class), got {actual!r}")
STEPS_DIVIDE_ERROR = ("steps: expected step counts that each divide the largest ({top}), "
                      "got {actual}")
ALPHAS_ERROR = "alphas: expected a 1-D array of finite path positions, got shape {actual}"
POSITIVE_INT_ERROR = "{arg}: expected a positive int, got {actual!r}"


# ----------------------------------------------------------------------------- checks

def check_model(model):
    """Raise TypeError unless ``model`` has the contract's attributes."""
    missing = [a for a in ("imgs", "logits", "probs", "layers", "name")
               if not hasattr(model, a)]
    if missing:
        raise TypeError(MODEL_ERROR.format(actual=type(model).__name__,
                                           missing=", ".join(missing)))


def input_shape(model):
    """The shape of one input, e.g. ``(224, 224, 3)`` (``None`` for free dimensions)."""
    return tuple(model.imgs.shape.as_list()[1:])


def num_classes(model):
    """K, the number of logits."""
    return int(model.logits.shape[-1])


def check_positive_int(value, arg):
    """Return ``value`` as an int if it is a positive integer, else raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(POSITIVE_INT_ERROR.format(arg=arg, actual=value))
    if value <= 0:
        raise ValueError(POSITIVE_INT_ERROR.format(arg=arg, actual=value))
    return int(value)


def as_batch(X, model, arg="X"):
    """Check ``X`` against the model's input and return ``(float32 [N, ...], single)``.

    A single input (the shape of one row of ``model.imgs``) is accepted and reported by
    ``single=True`` so that callers can return an unbatched result.
    """
    arr = np.asarray(X)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == np.bool_):
        raise TypeError(INPUT_DTYPE_ERROR.format(arg=arg, actual=arr.dtype))
    shape = input_shape(model)

    def fits(s):
        return len(s) == len(shape) and all(e is None or e == a for e, a in zip(shape, s))

    if fits(arr.shape):
        arr, single = arr[None], True
    elif arr.ndim == len(shape) + 1 and fits(arr.shape[1:]):
        single = False
    else:
        dims = ", ".join("?" if d is None else str(d) for d in shape)
        raise ValueError(INPUT_SHAPE_ERROR.format(arg=arg, dims=dims, model=model.name,
                                                  actual=list(arr.shape)))
    if arr.shape[0] == 0:
        raise ValueError(INPUT_EMPTY_ERROR.format(arg=arg, actual=list(arr.shape)))
    arr = arr.astype(np.float32, copy=False)
    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ValueError(INPUT_FINITE_ERROR.format(arg=arg, count=bad))
    return arr, single


def check_targets(c, n, k, arg="c"):
    """Turn a target spec into an int32 array ``[n]``; ``None`` stays ``None``.

    ``c`` is an int (the same class for every input) or a sequence of ints, one per input.
    """
    if c is None:
        return None
    if isinstance(c, (bool, np.bool_)):
        raise TypeError(TARGET_TYPE_ERROR.format(arg=arg, actual=c))
    arr = np.asarray(c)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(TARGET_TYPE_ERROR.format(arg=arg, actual=c))
    if arr.ndim == 0:
        arr = np.full(n, int(arr))
    elif arr.ndim != 1 or len(arr) != n:
        raise ValueError(TARGET_LENGTH_ERROR.format(arg=arg, expected=n,
                                                    actual=arr.shape[0] if arr.ndim else 0))
    out = arr[(arr < 0) | (arr >= k)]
    if out.size:
        raise ValueError(TARGET_RANGE_ERROR.format(arg=arg, k=k,
                                                   actual=sorted(set(out.tolist()))))
    return arr.astype(np.int32)


def chunk_slices(total, batch_size):
    """Slices that cover ``range(total)`` in chunks of at most ``batch_size``."""
    return [slice(i, min(i + batch_size, total)) for i in range(0, total, batch_size)]


def unbatch(result, single):
    """Drop the batch axis of ``result`` when the caller passed a single input."""
    return result[0] if single else result


# -------------------------------------------------------------------- shared model ops

class ModelOps:
    """The ops every method shares, built once per model.

    ``target`` is fed one class index per row, so one gradient op serves every class:
    ``score[r] = logits[r, target[r]]`` and ``grad[r] = d score[r] / d imgs[r]`` (rows are
    independent, so the gradient of the summed scores is the per-row gradient).
    """

    def __init__(self, model):
        with model.imgs.graph.as_default(), tf1.name_scope("hw3_model_ops"):
            self.target = tf1.placeholder(tf.int32, [None], name="target")
            self.score = tf.gather(model.logits, self.target, axis=1, batch_dims=1)
            self.grad = tf.gradients(self.score, model.imgs)[0]
            self.pred = tf.argmax(model.logits, axis=1, output_type=tf.int32)


def model_ops(model):
    """The model's :class:`ModelOps`, cached on the model so that they are built once."""
    ops = getattr(model, "_hw3_ops", None)
    if ops is None:
        ops = ModelOps(model)
        try:
            model._hw3_ops = ops
        except AttributeError:  # a model that forbids new attributes: build per caller
            pass
    return ops


def new_session(graph=None, threads=0):
    """A ``tf.compat.v1.Session`` with the toolkit's thread settings.

    ``threads=0`` lets TensorFlow use every core for one op (the fastest for a single
    model on a small machine); inter-op parallelism is kept at 1 because these graphs are
    a chain of large ops.
    """
    config = tf1.ConfigProto(intra_op_parallelism_threads=threads,
                             inter_op_parallelism_threads=1)
    return tf1.Session(graph=graph, config=config)


# ------------------------------------------------------------------------ base class

class AttributionMethod:
    """Base of every method: holds ``(model, sess)`` and runs ops in batches.

    Args:
        model: an object with the model contract (see module docstring).
        sess: the ``tf.compat.v1.Session`` whose graph holds the model.
        batch_size: the most rows (inputs x steps or samples) one ``sess.run`` sees.
        progress: show a tqdm progress bar on stderr for long work.
    """

    def __init__(self, model, sess, batch_size=DEFAULT_BATCH_SIZE, progress=True):
        check_model(model)
        self.model = model
        self.sess = sess
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.progress = progress
        with model.imgs.graph.as_default():
            self._define_ops()

    def _define_ops(self):
        ops = model_ops(self.model)
        self._target, self._score, self._grad, self._pred = (
            ops.target, ops.score, ops.grad, ops.pred)

    def _batch_size(self, batch_size=None):
        if batch_size is None:
            return self.batch_size
        return check_positive_int(batch_size, "batch_size")

    def _run_batched(self, fetches, n_rows, feed_fn, desc=None, batch_size=None):
        """Yield ``(slice, values)``, one ``sess.run`` per chunk of at most batch_size rows.

        ``feed_fn(slice)`` returns the feed dict for those rows, so callers build each
        chunk's inputs only when it is needed and memory stays bounded.
        """
        bs = self._batch_size(batch_size)
        with tqdm(total=n_rows, desc=desc, unit="row", leave=False,
                  disable=(not self.progress) or n_rows <= bs) as bar:
            for sl in chunk_slices(n_rows, bs):
                yield sl, self.sess.run(fetches, feed_fn(sl))
                bar.update(sl.stop - sl.start)

    def logits(self, X, batch_size=None):
        """Pre-softmax scores ``[N, K]`` of a checked batch ``X``."""
        out = np.empty((len(X), num_classes(self.model)), np.float32)
        for sl, val in self._run_batched(self.model.logits, len(X),
                                         lambda s: {self.model.imgs: X[s]},
                                         batch_size=batch_size):
            out[sl] = val
        return out

    def _targets(self, X, c, batch_size=None):
        """int32 targets ``[N]`` for a checked batch: ``c`` as given, or the predictions."""
        targets = check_targets(c, len(X), num_classes(self.model))
        if targets is None:
            targets = self.logits(X, batch_size=batch_size).argmax(axis=1).astype(np.int32)
        return targets

    def _gradients(self, rows_fn, targets, n_rows, desc=None, batch_size=None):
        """Yield ``(slice, grad)`` of ``f_target`` for rows built lazily by ``rows_fn``.

        ``rows_fn(slice)`` returns the input rows ``[len(slice), ...]`` and ``targets`` is
        the int32 target of every row ``[n_rows]``.
        """
        return self._run_batched(
            self._grad, n_rows,
            lambda s: {self.model.imgs: rows_fn(s), self._target: targets[s]},
            desc=desc, batch_size=batch_size)


# ------------------------------------------------------------------ method helpers

BASELINE_NAME_ERROR = "{arg}: expected one of {expected} or an array, got {actual!r}"
BASELINE_SHAPE_ERROR = ("{arg}: expected an array of shape {one} (one for every input) or "
                        "{batch} (one per input), got shape {actual}")
CHOICE_ERROR = "{arg}: expected one of {expected}, got {actual!r}"
NONNEGATIVE_ERROR = "{arg}: expected a finite number >= 0, got {actual!r}"
POSITIVE_ERROR = "{arg}: expected a finite number > 0, got {actual!r}"
LAYER_NAME_ERROR = ("{arg}: expected the name of a 4-D layer of model {model} (one of "
                    "{valid}), got {actual!r}")
LAYER_RANK_ERROR = ("{arg}: expected a 4-D layer [N, h, w, channels] of model {model} (one "
                    "of {valid}), got {actual!r} of shape {shape}")
NOT_IMAGE_ERROR = ("{arg}: expected image inputs [N, H, W, C] for {method}, got inputs of "
                   "shape {actual} for model {model}")
SUPERPIXEL_ERROR = ("{arg}: expected a size that divides the image's height and width "
                    "({h} x {w}), got {actual}")
STRIDE_ERROR = "{arg}: expected a positive int <= superpixel_size ({size}), got {actual!r}"
SEED_ERROR = "{arg}: expected an int, got {actual!r}"
MAX_GRADIENTS_ERROR = "{arg}: expected an int >= 2 (both path ends need a gradient), got {actual!r}"


def check_number(value, arg, positive=False):
    """Return ``value`` as a float if it is finite and >= 0 (> 0 with ``positive``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError((POSITIVE_ERROR if positive else NONNEGATIVE_ERROR).format(
            arg=arg, actual=value))
    v = float(value)
    if not np.isfinite(v) or v < 0 or (positive and v == 0):
        raise ValueError((POSITIVE_ERROR if positive else NONNEGATIVE_ERROR).format(
            arg=arg, actual=value))
    return v


def check_choice(value, choices, arg):
    """Return ``value`` if it is one of ``choices`` (strings), else raise ValueError."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(CHOICE_ERROR.format(arg=arg, expected=list(choices), actual=value))
    return value


def as_baseline(baseline, X, arg="baseline", names=("black", "white"), make=None):
    """A baseline array broadcastable to ``X`` ``[N, ...]``: ``[1, ...]`` or ``[N, ...]``.

    ``'black'`` is all 0, ``'white'`` all 255 (pixel units); ``make(name)`` builds any other
    name in ``names``. An array is one input's shape (shared by every input) or ``X.shape``.
    """
    if isinstance(baseline, str):
        if baseline not in names:
            raise ValueError(BASELINE_NAME_ERROR.format(arg=arg, expected=list(names),
                                                        actual=baseline))
        if baseline == "black":
            return np.zeros((1,) + X.shape[1:], np.float32)
        if baseline == "white":
            return np.full((1,) + X.shape[1:], 255.0, np.float32)
        return np.asarray(make(baseline), np.float32)
    arr = np.asarray(baseline)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == np.bool_):
        raise TypeError(BASELINE_NAME_ERROR.format(arg=arg, expected=list(names),
                                                   actual=baseline))
    if arr.shape == X.shape[1:]:
        arr = arr[None]
    elif arr.shape != X.shape:
        raise ValueError(BASELINE_SHAPE_ERROR.format(arg=arg, one=list(X.shape[1:]),
                                                     batch=list(X.shape),
                                                     actual=list(arr.shape)))
    arr = arr.astype(np.float32)
    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ValueError(INPUT_FINITE_ERROR.format(arg=arg, count=bad))
    return arr


def rows_of(A, idx):
    """Rows ``idx`` of a per-input array ``[N, ...]`` or of a shared one ``[1, ...]``."""
    return A[np.zeros_like(idx)] if len(A) == 1 else A[idx]


def sum_by_group(acc, groups, values):
    """``acc[g] += sum of values rows with group g``, for rows sorted by group."""
    uniq, starts = np.unique(groups, return_index=True)
    acc[uniq] += np.add.reduceat(values.astype(np.float64, copy=False), starts, axis=0)


def is_image_batch(X):
    """True for ``[N, H, W, C]`` batches (the maps of spatial methods are ``[N, H, W]``)."""
    return X.ndim == 4


def quadrature(method, steps):
    """Nodes ``t`` in [0, 1] and weights ``w`` (summing to 1) of a rule with ``steps`` steps.

    ``riemann_right`` (the homework's, ``t = i/N``, i = 1..N), ``riemann_left`` (i = 0..N-1),
    ``riemann_middle`` (``(i - 1/2)/N``), ``trapezoid`` (N intervals, N + 1 nodes, so N + 1
    gradients) and ``gauss_legendre`` (N Gauss-Legendre nodes mapped from [-1, 1] to [0, 1]).
    """
    n = steps
    if method == "riemann_right":
        return np.arange(1, n + 1) / n, np.full(n, 1.0 / n)
    if method == "riemann_left":
        return np.arange(n) / n, np.full(n, 1.0 / n)
    if method == "riemann_middle":
        return (np.arange(n) + 0.5) / n, np.full(n, 1.0 / n)
    if method == "trapezoid":
        w = np.full(n + 1, 1.0 / n)
        w[[0, -1]] = 0.5 / n
        return np.arange(n + 1) / n, w
    if method == "gauss_legendre":
        x, w = np.polynomial.legendre.leggauss(n)
        return (x + 1) / 2, w / 2
    raise ValueError(CHOICE_ERROR.format(arg="method", expected=list(IG_METHODS), actual=method))


IG_METHODS = ("riemann_right", "riemann_left", "riemann_middle", "trapezoid",
              "gauss_legendre", "adaptive")


# ------------------------------------------------------------------------- methods

class SaliencyMap(AttributionMethod):
    """Saliency map ``S_c(x) = x ⊙ ∇_x f_c(x)`` of the pre-softmax score (Simonyan et al.
    2014, "Deep inside convolutional networks"; input x gradient as in the homework).

    Call: ``SaliencyMap(model, sess)(X, c=None)`` with ``X`` ``[N, ...]`` (images
    ``[N, H, W, 3]``, RGB 0-255) or one input; returns an array of ``X``'s shape.
    Session calls: ``ceil(N / batch_size)`` for the gradients, plus as many forwards to
    find the predicted classes when ``c`` is None.
    """

    def __call__(self, X, c=None, batch_size=None):
        X, single = as_batch(X, self.model)
        targets = self._targets(X, c, batch_size)
        out = np.empty_like(X)
        for sl, g in self._gradients(lambda s: X[s], targets, len(X), desc="saliency",
                                     batch_size=batch_size):
            out[sl] = X[sl] * g
        return unbatch(out, single)


class VanillaGradient(AttributionMethod):
    """``|∇_x f_c(x)|`` (Simonyan et al. 2014), summed over the channel axis for images.

    Call: ``VanillaGradient(model, sess)(X, c=None)``. Images ``[N, H, W, C]`` give maps
    ``[N, H, W]``; inputs of other ranks keep their shape (no channel sum).
    """

    def __call__(self, X, c=None, batch_size=None):
        X, single = as_batch(X, self.model)
        targets = self._targets(X, c, batch_size)
        image = is_image_batch(X)
        out = np.empty(X.shape[:3] if image else X.shape, np.float32)
        for sl, g in self._gradients(lambda s: X[s], targets, len(X), desc="gradient",
                                     batch_size=batch_size):
            out[sl] = np.abs(g).sum(axis=-1) if image else np.abs(g)
        return unbatch(out, single)


def relative_error(total, delta):
    """``|total - delta| / |delta|`` per input; 0 when both are 0, inf when only delta is."""
    total, delta = np.asarray(total, np.float64), np.asarray(delta, np.float64)
    num = np.abs(total - delta)
    den = np.abs(delta)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0),
                        np.where(num > 0, np.inf, 0.0))


ADAPTIVE_MEMORY_BYTES = 1 << 30   # gradients the adaptive rule keeps in memory at once


class IntegratedGrad(AttributionMethod):
    """Integrated Gradients (Sundararajan, Taly and Yan, ICML 2017, "Axiomatic attribution
    for deep networks") of the pre-softmax score ``f_c``:

        IG_c(x, x_b) = (x - x_b) ⊙ ∫_0^1 ∇f_c(x_b + t (x - x_b)) dt.

    The default rule is the homework's right Riemann sum
    ``(x - x_b) ⊙ (1/N) Σ_{i=1..N} ∇f_c(x_b + (i/N)(x - x_b))``; ``method`` offers
    ``'riemann_left'``, ``'riemann_middle'``, ``'trapezoid'`` (N + 1 gradients),
    ``'gauss_legendre'`` and ``'adaptive'`` (below).

    Call::

        attr = IntegratedGrad(model, sess)(X, c=None, baseline='black', steps=50)
        attr, info = IntegratedGrad(model, sess)(X, c, return_error=True)

    Args:
        X: inputs ``[N, ...]`` (images ``[N, H, W, 3]``, RGB 0-255) or one input.
        c: target class: int, one int per input, or None (each input's predicted class at
            ``x``, kept fixed along the whole path).
        baseline: ``'black'`` (0), ``'white'`` (255), ``'random'`` (Gaussian, mean 0, std
            ``random_std``, drawn once from ``seed`` and shared by every input; note that
            with pixel values 0-255 the homework's std of 0.1 is a nearly black image), or
            an array of one input's shape (shared) or of ``X``'s shape (one per input).
        steps: N, the number of steps of a uniform rule (a positive int).
        method: the quadrature rule, one of ``IG_METHODS``.
        random_std, seed: the random baseline's std (pixel units) and seed.
        batch_size: the most path points one ``sess.run`` sees (default: the instance's).
        return_error: also return ``info`` (the dict kept as ``self.last_info``).
        tol, max_gradients, forward_steps, correction: the adaptive rule's settings.

    Returns:
        float32 attributions of ``X``'s shape (and ``info`` with ``return_error``).
        ``self.last_info`` after every call holds, per input (arrays ``[N]``):
        ``completeness_error`` ``|Σ IG - (f_c(x) - f_c(x_b))| / |f_c(x) - f_c(x_b)|``
        (0 when both are 0, inf when only the difference is), ``f_x``, ``f_baseline``,
        ``gradients`` and ``forwards`` spent (a forward costs about a third of a gradient),
        ``targets``; the adaptive rule adds ``nodes`` (the path points used),
        ``uncorrected_error`` and ``error_bound`` (see below).

    Session calls (uniform rules): ``ceil(2N / batch_size)`` forwards (x and x_b, giving
    the predicted classes and both end scores) then ``ceil(N·G / batch_size)`` gradient
    calls for G gradients per input; path points are built chunk by chunk, so memory does
    not grow with ``steps``.

    The adaptive rule (``method='adaptive'``): completeness only holds in the limit for
    uniform steps, and on real ReLU networks the score changes within a few percent of the
    path, where uniform nodes are too sparse. The rule

    1. measures ``F(t) = f_c(x_b + t(x - x_b))`` on a uniform grid of ``forward_steps``
       intervals with forward passes only (default ``max(16, max_gradients // 2)``);
    2. places a quarter of the gradient budget (at least 2, both ends included) so that
       each interval carries an equal share of a measure that is half uniform and half the
       variation ``Σ|ΔF|`` of the grid;
    3. repeats: on each interval ``[a, b]`` between gradient nodes compares the trapezoid
       estimate of ``Δf``, ``(b - a)/2 · (g(a) + g(b))`` with ``g = ∇f_c · (x - x_b)``, with
       the measured ``F(b) - F(a)`` (every gradient run also returns ``F`` at its node);
       splits the intervals that carry half of the total disagreement (at least an
       eighth of them), each at the point that halves ``F``'s measured variation inside it
       (the midpoint when the grid has no point inside), until the completeness error is
       ``<= tol`` or ``max_gradients`` gradients are spent. Every round is one batched pass
       over all inputs that are not done.

    The map is the composite trapezoid rule on the final nodes, so ``completeness_error``
    is an honest certificate of it. ``error_bound`` is ``Σ_intervals |disagreement| /
    |Δf|``, an upper bound of that error. ``correction='kink'`` replaces, on each interval,
    the trapezoid's equal weights by ``λ g(a) + (1 - λ) g(b)`` with ``λ ∈ [0, 1]`` chosen
    so that the interval's contribution equals its measured ``ΔF``: for a piecewise-linear
    (ReLU) network whose path crosses one linear region boundary in the interval that is
    the exact integral (λ is where the kink lies), elsewhere it moves each interval's map
    within the segment between its two end gradients. It makes completeness hold by
    construction wherever such a λ exists, so the certificate of a corrected map is
    ``uncorrected_error`` (the plain trapezoid's, which the stopping rule uses).
    The adaptive rule keeps the gradients of up to ``max_gradients`` nodes per input in
    memory (``max_gradients`` x one input's float32 size each) and processes inputs in
    groups that fit in ``ADAPTIVE_MEMORY_BYTES``.

    Measured (EfficientNet-Lite0, the 17 bundled sample photos, predicted class, tol 0.01),
    completeness error median / worst: black baseline, right Riemann 64 steps 9.8% / 27.8%,
    256 steps 1.7% / 7.5%; adaptive with at most 64 gradients 0.36% / 3.1% (38 gradients
    and 33 forwards on average), at most 256: 0.60% / 0.88% (97 gradients, 129 forwards).
    White baseline: right Riemann 64 steps 4.7% / 25.2%, 256 steps 1.4% / 8.2%; adaptive 64:
    0.43% / 1.7%, 256: 0.49% / 0.93%. The stopping rule accepts cancellation between
    intervals: ``error_bound`` at 256 was 4-12%, so a map is certified for completeness,
    not interval by interval.
    """

    def __call__(self, X, c=None, baseline="black", steps=50, method="riemann_right",
                 random_std=0.1, seed=0, batch_size=None, return_error=False, tol=0.01,
                 max_gradients=256, forward_steps=None, correction=None):
        X, single = as_batch(X, self.model)
        method = check_choice(method, IG_METHODS, "method")
        bs = self._batch_size(batch_size)
        if method == "adaptive":
            tol = check_number(tol, "tol")
            if (isinstance(max_gradients, (bool, np.bool_))
                    or not isinstance(max_gradients, (int, np.integer)) or max_gradients < 2):
                raise ValueError(MAX_GRADIENTS_ERROR.format(arg="max_gradients",
                                                            actual=max_gradients))
            max_gradients = int(max_gradients)
            forward_steps = (max(16, max_gradients // 2) if forward_steps is None
                             else check_positive_int(forward_steps, "forward_steps"))
            if correction not in (None, "kink"):
                raise ValueError(CHOICE_ERROR.format(arg="correction",
                                                     expected=[None, "kink"],
                                                     actual=correction))
        else:
            steps = check_positive_int(steps, "steps")
        Xb, targets, f_x, f_b = self._prepare(X, c, baseline, random_std, seed, bs)
        if method == "adaptive":
            avg, info = self._adaptive(X, Xb, targets, f_x, f_b, bs, tol, max_gradients,
                                       forward_steps, correction)
        else:
            avg, info = self._uniform(X, Xb, targets, method, steps, bs)
        attr = ((X - Xb) * avg).astype(np.float32)
        total = attr.reshape(len(X), -1).sum(axis=1, dtype=np.float64)
        info.update(completeness_error=relative_error(total, f_x - f_b), f_x=f_x,
                    f_baseline=f_b, targets=targets, method=method)
        self.last_info = info
        attr = unbatch(attr, single)
        return (attr, info) if return_error else attr

    def _prepare(self, X, c, baseline, random_std, seed, bs):
        """Baselines, targets and both end scores ``(Xb, targets, f_x, f_b)`` of a batch."""
        random_std = check_number(random_std, "random_std")
        Xb = as_baseline(
            baseline, X, names=("black", "white", "random"),
            make=lambda _: np.random.default_rng(seed).normal(
                0.0, random_std, (1,) + X.shape[1:]))
        targets = check_targets(c, len(X), num_classes(self.model))
        targets, f_x, f_b = self._ends(X, Xb, targets, bs)
        return Xb, targets, f_x, f_b

    def sweep(self, X, c=None, baseline="black", steps=(5, 10, 20, 25, 50, 100, 200),
              random_std=0.1, seed=0, batch_size=None):
        """Right-Riemann IG for several step counts from one set of gradients.

        The nodes ``i/N`` of N steps are a subset of those of ``M = max(steps)`` steps
        whenever N divides M, so the M gradients per input are computed once and every
        coarser rule is a sum over a subset of them: the cost of the finest rule alone.

        Args:
            X, c, baseline, random_std, seed, batch_size: as for ``__call__``.
            steps: step counts, each dividing the largest.

        Returns:
            ``(maps, info)``: ``maps[N]`` float32 attributions of ``X``'s shape for each N
            (unbatched for one input); ``info`` as ``last_info`` of ``__call__`` except that
            ``completeness_error`` is a dict ``{N: [n]}``.
        """
        X, single = as_batch(X, self.model)
        bs = self._batch_size(batch_size)
        steps = sorted({check_positive_int(n, "steps") for n in np.atleast_1d(steps)})
        top = steps[-1]
        if any(top % n for n in steps):
            raise ValueError(STEPS_DIVIDE_ERROR.format(actual=steps, top=top))
        Xb, targets, f_x, f_b = self._prepare(X, c, baseline, random_std, seed, bs)
        t = np.arange(1, top + 1) / top                         # right-Riemann nodes
        acc = {n: np.zeros(X.shape, np.float64) for n in steps}

        def feed(s):
            idx = np.arange(s.start, s.stop)
            img = idx // top
            return {self.model.imgs: self._path(X, Xb, img, t[idx % top]),
                    self._target: targets[img]}

        for sl, g in self._run_batched(self._grad, len(X) * top, feed,
                                       desc="integrated gradients", batch_size=bs):
            idx = np.arange(sl.start, sl.stop)
            j = idx % top + 1                                   # node j/top, j = 1..top
            for n in steps:
                on = j % (top // n) == 0                        # node j/top is i/n
                if on.any():
                    sum_by_group(acc[n], idx[on] // top, g[on] / n)
        maps, err = {}, {}
        for n in steps:
            attr = ((X - Xb) * acc[n]).astype(np.float32)
            total = attr.reshape(len(X), -1).sum(axis=1, dtype=np.float64)
            err[n] = relative_error(total, f_x - f_b)
            maps[n] = unbatch(attr, single)
        info = {"completeness_error": err, "f_x": f_x, "f_baseline": f_b,
                "targets": targets, "gradients": np.full(len(X), top),
                "forwards": np.full(len(X), 2), "method": "riemann_right"}
        self.last_info = info
        return maps, info

    def path_scores(self, X, c=None, baseline="black", alphas=None, random_std=0.1, seed=0,
                    batch_size=None):
        """The target score ``f_c(x_b + a (x - x_b))`` along the path, forwards only.

        Args:
            X, c, baseline, random_std, seed, batch_size: as for ``__call__``.
            alphas: positions ``[T]`` in [0, 1] (default 101 uniform points).

        Returns:
            float64 ``[N, T]`` (``[T]`` for one input) pre-softmax scores of the target
            (the predicted class at ``x`` when ``c`` is None).
        """
        X, single = as_batch(X, self.model)
        bs = self._batch_size(batch_size)
        alphas = np.linspace(0, 1, 101) if alphas is None else np.asarray(alphas, np.float64)
        if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas)):
            raise ValueError(ALPHAS_ERROR.format(actual=np.shape(alphas)))
        Xb, targets, _, _ = self._prepare(X, c, baseline, random_std, seed, bs)
        k = len(alphas)
        out = np.empty(len(X) * k, np.float64)

        def feed(s):
            idx = np.arange(s.start, s.stop)
            img = idx // k
            return {self.model.imgs: self._path(X, Xb, img, alphas[idx % k]),
                    self._target: targets[img]}

        for sl, val in self._run_batched(self._score, len(X) * k, feed, desc="IG path",
                                         batch_size=bs):
            out[sl] = val
        return unbatch(out.reshape(len(X), k), single)

    def _path(self, X, Xb, img, t):
        """Path points ``x_b + t (x - x_b)`` for rows (input ``img``, position ``t``)."""
        xb = rows_of(Xb, img)
        t = np.asarray(t, np.float32).reshape((-1,) + (1,) * (X.ndim - 1))
        return xb + t * (X[img] - xb)

    def _ends(self, X, Xb, targets, bs):
        """Targets and the scores at both ends, from one forward pass over 2N rows."""
        n = len(X)

        def feed(s):  # rows [0, n) are the inputs, [n, 2n) their baselines
            idx = np.arange(s.start, s.stop)
            rows = np.empty((len(idx),) + X.shape[1:], np.float32)
            at_x = idx < n
            rows[at_x] = X[idx[at_x]]
            rows[~at_x] = rows_of(Xb, idx[~at_x] - n)
            return {self.model.imgs: rows}

        logits = np.empty((2 * n, num_classes(self.model)), np.float32)
        for sl, val in self._run_batched(self.model.logits, 2 * n, feed, desc="IG ends",
                                         batch_size=bs):
            logits[sl] = val
        if targets is None:
            targets = logits[:n].argmax(axis=1).astype(np.int32)
        r = np.arange(n)
        return (targets, logits[r, targets].astype(np.float64),
                logits[n + r, targets].astype(np.float64))

    def _uniform(self, X, Xb, targets, method, steps, bs):
        """Mean gradient ``Σ_k w_k ∇f(x_b + t_k (x - x_b))`` ``[N, ...]`` of a fixed rule."""
        t, w = quadrature(method, steps)
        k = len(t)
        acc = np.zeros(X.shape, np.float64)

        def feed(s):
            idx = np.arange(s.start, s.stop)
            img = idx // k
            return {self.model.imgs: self._path(X, Xb, img, t[idx % k]),
                    self._target: targets[img]}

        for sl, g in self._run_batched(self._grad, len(X) * k, feed,
                                       desc="integrated gradients", batch_size=bs):
            idx = np.arange(sl.start, sl.stop)
            # g: [rows, ...] gradients; weight each row by its node's weight
            sum_by_group(acc, idx // k,
                         g * w[idx % k].reshape((-1,) + (1,) * (X.ndim - 1)))
        n = len(X)
        return acc, {"gradients": np.full(n, k), "forwards": np.full(n, 2)}

    def _adaptive(self, X, Xb, targets, f_x, f_b, bs, tol, max_gradients, forward_steps,
                  correction):
        """The adaptive rule (class docstring), over groups of inputs that fit in memory."""
        n = len(X)
        group = max(1, int(ADAPTIVE_MEMORY_BYTES // (max_gradients * X[0].nbytes)))
        avg = np.zeros(X.shape, np.float64)
        info = {"gradients": np.zeros(n, np.int64), "forwards": np.zeros(n, np.int64),
                "uncorrected_error": np.zeros(n), "error_bound": np.zeros(n),
                "nodes": [None] * n}
        for start in range(0, n, group):
            idx = np.arange(start, min(n, start + group))
            self._adaptive_group(X, Xb, targets, f_x, f_b, bs, tol, max_gradients,
                                 forward_steps, correction, idx, avg, info)
        return avg, info

    def _adaptive_group(self, X, Xb, targets, f_x, f_b, bs, tol, max_gradients, m,
                        correction, idx, avg, info):
        n = len(idx)
        delta = f_x[idx] - f_b[idx]
        # 1. F on a uniform grid of m intervals, forwards only (the ends are known)
        grid_t = np.arange(m + 1) / m
        grid_f = np.empty((n, m + 1))
        grid_f[:, 0], grid_f[:, -1] = f_b[idx], f_x[idx]
        inner = m - 1
        if inner > 0:
            def feed_f(s):
                r = np.arange(s.start, s.stop)
                img = idx[r // inner]
                return {self.model.imgs: self._path(X, Xb, img, grid_t[1 + r % inner]),
                        self._target: targets[img]}

            for sl, val in self._run_batched(self._score, n * inner, feed_f,
                                             desc="IG adaptive forwards", batch_size=bs):
                r = np.arange(sl.start, sl.stop)
                grid_f[r // inner, 1 + r % inner] = val

        # per input: node positions, scores, integrands g = ∇f·(x - x_b), gradients
        node_t = [np.empty(0) for _ in range(n)]
        node_f = [np.empty(0) for _ in range(n)]
        node_s = [np.empty(0) for _ in range(n)]
        grads = np.empty((n, max_gradients) + X.shape[1:], np.float32)
        count = np.zeros(n, np.int64)

        def evaluate(loc, ts):
            """Gradients and scores at (local input, t) rows, in one batched pass."""
            loc, ts = np.asarray(loc), np.asarray(ts, np.float64)
            order = np.lexsort((ts, loc))
            loc, ts = loc[order], ts[order]
            slot = np.empty(len(loc), np.int64)
            for i in np.unique(loc):
                sel = loc == i
                slot[sel] = count[i] + np.arange(sel.sum())
            vals_f = np.empty(len(loc))
            vals_s = np.empty(len(loc))

            def feed_g(s):
                img = idx[loc[s]]
                return {self.model.imgs: self._path(X, Xb, img, ts[s]),
                        self._target: targets[img]}

            for sl, (g, f) in self._run_batched([self._grad, self._score], len(loc), feed_g,
                                                desc="IG adaptive gradients", batch_size=bs):
                img = idx[loc[sl]]
                grads[loc[sl], slot[sl]] = g
                vals_f[sl] = f
                diff = (X[img] - rows_of(Xb, img)).reshape(len(img), -1)
                vals_s[sl] = np.einsum("ij,ij->i", g.reshape(len(img), -1), diff,
                                       dtype=np.float64)
            for i in np.unique(loc):
                sel = loc == i
                node_t[i] = np.concatenate([node_t[i], ts[sel]])
                node_f[i] = np.concatenate([node_f[i], vals_f[sel]])
                node_s[i] = np.concatenate([node_s[i], vals_s[sel]])
                count[i] += sel.sum()

        def intervals(i):
            o = np.argsort(node_t[i], kind="stable")
            t, f, s = node_t[i][o], node_f[i][o], node_s[i][o]
            h = np.diff(t)
            est = h / 2 * (s[:-1] + s[1:])
            return o, t, f, s, h, est, est - np.diff(f)

        # 2. initial nodes: equal shares of half uniform, half measured variation
        g0 = min(max_gradients, max(2, max_gradients // 4))
        loc0, t0 = [], []
        for i in range(n):
            var = np.abs(np.diff(grid_f[i]))
            mu = np.full(m, 0.5 / m) + (0.5 * var / var.sum() if var.sum() > 0 else 0.5 / m)
            cum = np.concatenate([[0.0], np.cumsum(mu)])
            ts = np.interp(np.linspace(0, 1, g0), cum / cum[-1], grid_t)
            ts[0], ts[-1] = 0.0, 1.0
            ts = np.unique(ts)
            loc0 += [i] * len(ts)
            t0 += list(ts)
        evaluate(loc0, t0)

        # 3. refine where the two estimates of Δf disagree
        active = np.ones(n, bool)
        while True:
            loc_new, t_new = [], []
            for i in np.flatnonzero(active):
                _, t, f, _, h, est, e = intervals(i)
                room = max_gradients - count[i]
                if relative_error(est.sum(), delta[i]) <= tol or room <= 0:
                    active[i] = False
                    continue
                ae = np.where(h > 1e-7, np.abs(e), 0.0)
                if not ae.any():
                    active[i] = False
                    continue
                order = np.argsort(-ae, kind="stable")
                cum = np.cumsum(ae[order])
                k = int(np.searchsorted(cum, 0.5 * cum[-1])) + 1
                k = min(max(k, -(-len(h) // 8)), room, int(np.count_nonzero(ae)))
                # known scores for choosing split points: grid and nodes together
                known_t = np.concatenate([grid_t, t])
                known_f = np.concatenate([grid_f[i], f])
                for j in order[:k]:
                    loc_new.append(i)
                    t_new.append(self._split_point(t[j], t[j + 1], known_t, known_f))
            if not loc_new:
                break
            evaluate(loc_new, t_new)

        # 4. the map: composite trapezoid (or kink-corrected) weights on the final nodes
        for i in range(n):
            o, t, f, s, h, est, e = intervals(i)
            w = np.zeros(len(t))
            w[:-1] += h / 2
            w[1:] += h / 2
            if correction == "kink":
                w[:] = 0.0
                df = np.diff(f)
                den = s[:-1] - s[1:]
                with np.errstate(divide="ignore", invalid="ignore"):
                    lam = np.where(np.abs(den) > 1e-12 * (np.abs(s[:-1]) + np.abs(s[1:]) + 1e-30),
                                   (np.where(h > 0, df / np.where(h > 0, h, 1), 0) - s[1:])
                                   / np.where(den != 0, den, 1), 0.5)
                lam = np.clip(lam, 0.0, 1.0)
                w[:-1] += h * lam
                w[1:] += h * (1 - lam)
            g = grads[i, :count[i]][o]
            avg[idx[i]] = np.tensordot(w, g, axes=1)
            gi = idx[i]
            info["gradients"][gi] = count[i]
            info["forwards"][gi] = 2 + inner
            info["uncorrected_error"][gi] = relative_error(est.sum(), delta[i])
            info["error_bound"][gi] = (np.abs(e).sum() / abs(delta[i]) if delta[i] != 0
                                       else (0.0 if not np.abs(e).any() else np.inf))
            info["nodes"][gi] = t

    @staticmethod
    def _split_point(a, b, known_t, known_f):
        """Where to split ``[a, b]``: the point that halves F's measured variation inside it
        (F linear between known points), kept within the middle 80%; the midpoint when no
        known point lies strictly inside."""
        h = b - a
        inside = (known_t > a) & (known_t < b)
        if not inside.any():
            return 0.5 * (a + b)
        at = np.concatenate([[a], known_t[inside], [b]])
        af = np.concatenate([known_f[np.argmin(np.abs(known_t - a))][None],
                             known_f[inside],
                             known_f[np.argmin(np.abs(known_t - b))][None]])
        o = np.argsort(at, kind="stable")
        at, af = at[o], af[o]
        var = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(af)))])
        if var[-1] <= 0:
            return 0.5 * (a + b)
        mid = float(np.interp(0.5 * var[-1], var, at))
        return float(np.clip(mid, a + 0.1 * h, b - 0.1 * h))


SMOOTHGRAD_KINDS = ("smoothgrad", "squared", "vargrad")


class SmoothGrad(AttributionMethod):
    """SmoothGrad (Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise"):
    the mean of ``∇f_c(x + ε)`` over ``samples`` draws of ``ε ~ N(0, (sigma·(max - min))²)``,
    with max and min those of each input. ``kind='squared'`` averages the squared gradients
    and ``kind='vargrad'`` gives their variance (Adebayo et al. 2018). With
    ``multiply_by_input`` the result is multiplied by ``x``.

    Call: ``SmoothGrad(model, sess)(X, c=None, samples=50, sigma=0.15, seed=0)``; returns an
    array of ``X``'s shape. The unit noise of sample ``s`` comes from
    ``numpy.random.default_rng([seed, s])`` and is generated chunk by chunk, so the result
    depends only on ``seed`` (not on ``batch_size`` or on the other inputs of the batch).
    Session calls: ``ceil(N·samples / batch_size)`` (+ forwards for ``c=None``).
    """

    def __call__(self, X, c=None, samples=50, sigma=0.15, seed=0, kind="smoothgrad",
                 multiply_by_input=False, batch_size=None):
        X, single = as_batch(X, self.model)
        samples = check_positive_int(samples, "samples")
        sigma = check_number(sigma, "sigma")
        kind = check_choice(kind, SMOOTHGRAD_KINDS, "kind")
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
            raise TypeError(SEED_ERROR.format(arg="seed", actual=seed))
        targets = self._targets(X, c, batch_size)
        n = len(X)
        flat = X.reshape(n, -1)
        scale = sigma * (flat.max(axis=1) - flat.min(axis=1))   # noise std per input [N]
        shape1 = (-1,) + (1,) * (X.ndim - 1)

        def feed(s):
            r = np.arange(s.start, s.stop)
            img, smp = r // samples, r % samples
            noise = np.stack([np.random.default_rng([seed, int(k)]).standard_normal(
                X.shape[1:], dtype=np.float32) for k in smp])
            return {self.model.imgs: X[img] + scale[img].reshape(shape1).astype(np.float32)
                    * noise, self._target: targets[img]}

        mean = np.zeros(X.shape, np.float64)
        sq = np.zeros(X.shape, np.float64) if kind != "smoothgrad" else None
        for sl, g in self._run_batched(self._grad, n * samples, feed, desc="smoothgrad",
                                       batch_size=batch_size):
            img = np.arange(sl.start, sl.stop) // samples
            sum_by_group(mean, img, g)
            if sq is not None:
                sum_by_group(sq, img, np.square(g, dtype=np.float64))
        mean /= samples
        if kind == "smoothgrad":
            out = mean
        elif kind == "squared":
            out = sq / samples
        else:
            out = np.maximum(sq / samples - mean ** 2, 0.0)
        if multiply_by_input:
            out = out * X
        return unbatch(out.astype(np.float32), single)


def four_d_layers(model):
    """Names of the model's 4-D layers ``[N, h, w, channels]``, in order."""
    return [k for k, v in model.layers.items() if v.shape.rank == 4]


class GradCAM(AttributionMethod):
    """Grad-CAM (Selvaraju et al., ICCV 2017): ``ReLU(Σ_k α_k A^k)`` with ``A`` a 4-D layer's
    activations and ``α_k`` the spatial mean of ``∂f_c / ∂A^k``, upsampled bilinearly to
    the input's height and width.

    ``GradCAM(model, sess, layer=None)``: ``layer`` names a 4-D layer of ``model.layers``;
    by default ``model.default_layers['gradcam']`` when the model has one, else the last
    4-D layer. Call ``(X, c=None)`` with images ``[N, H, W, C]`` -> maps ``[N, H, W]``
    (unnormalised, >= 0). Session calls: ``ceil(N / batch_size)`` (+ forwards for None).
    """

    def __init__(self, model, sess, layer=None, batch_size=DEFAULT_BATCH_SIZE, progress=True):
        check_model(model)
        valid = four_d_layers(model)
        if layer is None:
            layer = getattr(model, "default_layers", {}).get("gradcam")
            if layer is None and valid:
                layer = valid[-1]
        if layer not in model.layers:
            raise ValueError(LAYER_NAME_ERROR.format(arg="layer", model=model.name,
                                                     valid=valid, actual=layer))
        if model.layers[layer].shape.rank != 4:
            raise ValueError(LAYER_RANK_ERROR.format(
                arg="layer", model=model.name, valid=valid, actual=layer,
                shape=model.layers[layer].shape.as_list()))
        if model.imgs.shape.rank != 4:
            raise ValueError(NOT_IMAGE_ERROR.format(arg="model", method="GradCAM",
                                                    actual=model.imgs.shape.as_list(),
                                                    model=model.name))
        self.layer = layer
        super().__init__(model, sess, batch_size=batch_size, progress=progress)

    def _define_ops(self):
        super()._define_ops()
        acts = self.model.layers[self.layer]                       # [N, h, w, k]
        with tf1.name_scope("hw3_gradcam"):
            d_acts = tf.gradients(self._score, acts)[0]            # [N, h, w, k]
            alpha = tf.reduce_mean(d_acts, axis=[1, 2], keepdims=True)  # [N, 1, 1, k]
            cam = tf.nn.relu(tf.reduce_sum(alpha * acts, axis=-1, keepdims=True))
            size = tf.shape(self.model.imgs)[1:3]
            self._cam = tf.image.resize(cam, size, method="bilinear")[..., 0]  # [N, H, W]

    def __call__(self, X, c=None, batch_size=None):
        X, single = as_batch(X, self.model)
        targets = self._targets(X, c, batch_size)
        out = np.empty(X.shape[:3], np.float32)
        for sl, val in self._run_batched(
                self._cam, len(X),
                lambda s: {self.model.imgs: X[s], self._target: targets[s]},
                desc="grad-cam", batch_size=batch_size):
            out[sl] = val
        return unbatch(out, single)


OCCLUSION_BASELINES = ("black", "blur")


class Occlusion(AttributionMethod):
    """Occlusion (Zeiler and Fergus, ECCV 2014): the importance of a square patch is
    ``f_c(x) - f_c(x with the patch replaced by a baseline)``, given to each of its pixels.

    Call: ``Occlusion(model, sess)(X, c=None, superpixel_size=8, baseline='black')`` with
    images ``[N, H, W, C]`` -> maps ``[N, H, W]``. ``superpixel_size`` must divide H and W.
    ``baseline``: ``'black'`` (0), ``'blur'`` (the image blurred per channel by
    ``scipy.ndimage.gaussian_filter`` with ``blur_sigma`` pixels) or an array of one
    image's shape or of ``X``'s shape. ``stride`` (default ``superpixel_size``) below the
    size gives overlapping patches (the last row/column of patches is aligned with the
    image's edge) whose importances are averaged on each pixel.
    Session calls: ``ceil(N / batch_size)`` forwards at the inputs plus
    ``ceil(N·P / batch_size)`` for the P occluded copies per image, built chunk by chunk.
    """

    def __call__(self, X, c=None, superpixel_size=8, baseline="black", blur_sigma=5.0,
                 stride=None, batch_size=None):
        X, single = as_batch(X, self.model)
        if not is_image_batch(X):
            raise ValueError(NOT_IMAGE_ERROR.format(arg="X", method="Occlusion",
                                                    actual=list(X.shape), model=self.model.name))
        n, H, W = X.shape[:3]
        size = check_positive_int(superpixel_size, "superpixel_size")
        if H % size or W % size:
            raise ValueError(SUPERPIXEL_ERROR.format(arg="superpixel_size", h=H, w=W,
                                                     actual=size))
        if stride is None:
            stride = size
        if (isinstance(stride, (bool, np.bool_)) or not isinstance(stride, (int, np.integer))
                or not 0 < stride <= size):
            raise ValueError(STRIDE_ERROR.format(arg="stride", size=size, actual=stride))
        blur_sigma = check_number(blur_sigma, "blur_sigma")

        def blurred(_):
            from scipy.ndimage import gaussian_filter
            return np.stack([gaussian_filter(x, sigma=(blur_sigma, blur_sigma, 0))
                             for x in X])

        Xb = as_baseline(baseline, X, names=OCCLUSION_BASELINES, make=blurred)
        targets = check_targets(c, n, num_classes(self.model))
        logits = self.logits(X, batch_size=batch_size)
        if targets is None:
            targets = logits.argmax(axis=1).astype(np.int32)
        f_x = logits[np.arange(n), targets]

        def starts(length):
            s = list(range(0, length - size + 1, stride))
            return s if s[-1] == length - size else s + [length - size]

        corners = np.array([(i, j) for i in starts(H) for j in starts(W)])  # [P, 2]
        p = len(corners)

        def feed(s):
            r = np.arange(s.start, s.stop)
            img = r // p
            rows = X[img].copy()
            base = rows_of(Xb, img)
            for k, (i, j) in enumerate(corners[r % p]):
                rows[k, i:i + size, j:j + size] = base[k, i:i + size, j:j + size]
            return {self.model.imgs: rows, self._target: targets[img]}

        total = np.zeros((n, H, W), np.float64)
        for sl, f in self._run_batched(self._score, n * p, feed, desc="occlusion",
                                       batch_size=batch_size):
            r = np.arange(sl.start, sl.stop)
            for img, (i, j), v in zip(r // p, corners[r % p], f):
                total[img, i:i + size, j:j + size] += f_x[img] - v
        cover = np.zeros((H, W))
        for i, j in corners:
            cover[i:i + size, j:j + size] += 1
        return unbatch((total / cover).astype(np.float32), single)


class RandomAttribution:
    """A seeded Gaussian noise map, the random baseline of the metrics.

    ``RandomAttribution(seed=0)(X)``: images ``[N, H, W, C]`` -> ``[N, H, W]`` (one image
    ``[H, W, C]`` -> ``[H, W]``); any other array -> an array of its shape. Every call with
    the same seed gives the same map; ``c`` and other keywords are accepted and ignored so
    that it can stand in for any method.
    """

    def __init__(self, seed=0, model=None, sess=None):
        self.seed = seed

    def __call__(self, X, c=None, **kwargs):
        X = np.asarray(X)
        if X.ndim == 4:
            shape = X.shape[:3]
        elif X.ndim == 3 and X.shape[-1] in (1, 3, 4):
            shape = X.shape[:2]
        else:
            shape = X.shape
        return np.random.default_rng(self.seed).standard_normal(shape).astype(np.float32)
