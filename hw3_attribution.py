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

    def _targets(self, X, c):
        """int32 targets ``[N]`` for a checked batch: ``c`` as given, or the predictions."""
        targets = check_targets(c, len(X), num_classes(self.model))
        if targets is None:
            targets = self.logits(X).argmax(axis=1).astype(np.int32)
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
