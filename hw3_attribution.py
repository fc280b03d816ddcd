"""Attribution methods for image classifiers in TensorFlow graph mode (tf.compat.v1).

The homework's API, exactly (DESIGN.md, "The homework's API: exact")::

    SaliencyMap(sess, input_tensor, output_tensor, target_class)
        (X, batch_size=16, multiply_with_input=True)
    IntegratedGrad(sess, input_tensor, output_tensor, target_class)
        (X, baseline='black', batch_size=16, num_steps=50, multiply_with_input=True)

and in the same form ``VanillaGradient``, ``SmoothGrad``, ``GradCAM`` (the conv layer as a
tensor), ``Occlusion`` and ``RandomAttribution``. ``input_tensor`` is the model's input
(images ``[None, H, W, 3]``, RGB 0-255, preprocessing inside the graph) and
``output_tensor`` its pre-softmax scores ``[None, K]`` (VGG16: ``fc3l``). Everything beyond
the homework is a keyword argument after the homework's, with a default that keeps the
homework's behaviour.

The graph discipline: every op is built in ``_define_ops()`` (called from ``__init__``) and
cached per graph and tensors, so a second instance on the same tensors builds nothing and
``__call__`` only feeds and fetches. Methods that evaluate the model on many variants of
an input (path points, noisy samples, occluded or masked copies) let the graph build those
rows: :class:`RowOps` clones the model's ops between ``input_tensor`` and
``output_tensor`` once, with the clone's input computed in the graph from small feeds
(the inputs, per-row path positions, patch corners, rank thresholds, noise seeds), and
reduces the gradients per input in the graph (``W^T g`` with a fed weight matrix), so a
``sess.run`` feeds a few images and fetches a few maps instead of ``[rows, H, W, 3]``.

This module also holds the small shared core (checks, targets, batched ``sess.run``, the
op cache) that ``hw3_infl`` and ``hw3_evaluation`` import, so the graded files need nothing
beyond each other, numpy, scipy, tensorflow and tqdm.
"""
import warnings
import weakref

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

tf1 = tf.compat.v1

DEFAULT_BATCH_SIZE = 16          # the homework's default: rows per sess.run
INT32_MAX = np.iinfo(np.int32).max
# Build rows in the graph and run them through a clone of the model (RowOps); False builds
# new RowOps in 'feed' mode (rows fetched, then fed), the fallback for graphs that cannot be
# cloned. Read when a graph's RowOps are first built; tests set it to compare both modes.
CLONE_MODEL = True

# Error messages, kept as data so that tests match the same templates.
SESSION_ERROR = ("sess: expected a tf.compat.v1.Session (the API is {api}), got {actual}")
MODEL_OBJECT_ERROR = ("{arg}: expected a tf.Tensor, got a model object ({actual}); pass "
                      "its {what}")
TENSOR_ERROR = "{arg}: expected a tf.Tensor of the model's graph, got {actual}"
GRAPH_ERROR = ("{arg}: expected a tensor of the session's graph (sess.graph), got {name!r} "
               "from another graph")
EAGER_ERROR = ("{arg}: expected a graph-mode tensor (call "
               "tf.compat.v1.disable_eager_execution() before building the model), got an "
               "eager tensor")
OUTPUT_RANK_ERROR = ("output_tensor: expected pre-softmax scores of shape [None, K], got "
                     "{name!r} of shape {shape}")
INPUT_RANK_ERROR = ("input_tensor: expected a batched input of shape [None, ...], got "
                    "{name!r} of shape {shape}")
INPUT_SHAPE_ERROR = ("{arg}: expected an array of shape [N, {dims}] (a batch) or [{dims}] "
                     "(one input) to fit input_tensor {name!r}, got shape {actual}")
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
BASELINE_NAME_ERROR = "{arg}: expected one of {expected} or an array, got {actual!r}"
BASELINE_SHAPE_ERROR = ("{arg}: expected an array of shape {one} (one for every input) or "
                        "{batch} (one per input), got shape {actual}")
CHOICE_ERROR = "{arg}: expected one of {expected}, got {actual!r}"
NONNEGATIVE_ERROR = "{arg}: expected a finite number >= 0, got {actual!r}"
POSITIVE_ERROR = "{arg}: expected a finite number > 0, got {actual!r}"
LAYER_RANK_ERROR = ("internal_layer: expected a 4-D conv layer tensor [None, h, w, channels] "
                    "between input_tensor and output_tensor (VGG16: model.conv5_3), got "
                    "{actual}")
LAYER_UNCONNECTED_ERROR = ("{arg}: expected a tensor between input_tensor and output_tensor "
                           "(output_tensor must depend on it, and it on input_tensor), got "
                           "{name!r}")
NOT_IMAGE_ERROR = ("{arg}: expected image inputs [N, H, W, C] for {method}, got "
                   "input_tensor {name!r} of shape {actual}")
SUPERPIXEL_ERROR = ("{arg}: expected a size that divides the image's height and width "
                    "({h} x {w}), got {actual}")
STRIDE_ERROR = "{arg}: expected a positive int <= superpixel_size ({size}), got {actual!r}"
SEED_ERROR = "{arg}: expected an int in [0, 2**63), got {actual!r}"
CLONE_WARNING = ("could not copy the model's ops to build rows in the graph ({reason}); "
                 "rows are built in the graph, fetched and fed to input_tensor instead "
                 "(same results, two sess.run per chunk)")
MAX_GRADIENTS_ERROR = ("{arg}: expected an int >= 2 (both path ends need a gradient), got "
                       "{actual!r}")

# What to pass instead of a model object, per argument.
MODEL_HINTS = {
    "input_tensor": "input placeholder, model.imgs",
    "output_tensor": "pre-softmax scores, model.logits (VGG16: model.fc3l)",
    "internal_layer": "layer tensor, e.g. model.fc1 or model.layers['<name>']",
}
GRADCAM_LAYER_HINT = ("conv layer tensor [None, h, w, C], e.g. model.conv5_3 (VGG16) or "
                      "model.layers['head'] (EfficientNet-Lite0)")
_UNSET = object()   # "keyword not given": keeps the instance's setting


# ----------------------------------------------------------------------------- checks

def check_session(sess, api="Method(sess, input_tensor, output_tensor, target_class)"):
    """Return ``sess`` if it is a session; say what was passed otherwise."""
    if isinstance(sess, tf1.Session) or (callable(getattr(sess, "run", None))
                                         and isinstance(getattr(sess, "graph", None),
                                                        tf.Graph)):
        return sess
    what = type(sess).__name__
    if hasattr(sess, "imgs") or hasattr(sess, "logits"):
        what += " (a model object: pass its tensors, e.g. model.imgs and model.logits)"
    raise TypeError(SESSION_ERROR.format(api=api, actual=what))


def check_tensor(t, arg, sess, what=None):
    """Return ``t`` if it is a graph tensor of ``sess.graph``, else raise naming ``arg``."""
    if not isinstance(t, tf.Tensor):
        if any(hasattr(t, a) for a in ("imgs", "logits", "layers", "fc3l")):
            raise TypeError(MODEL_OBJECT_ERROR.format(arg=arg, actual=type(t).__name__,
                                                      what=what or MODEL_HINTS.get(arg, "")))
        raise TypeError(TENSOR_ERROR.format(arg=arg, actual=type(t).__name__))
    if not hasattr(t, "graph") or not hasattr(t, "op"):
        raise TypeError(EAGER_ERROR.format(arg=arg))
    if t.graph is not sess.graph:
        raise ValueError(GRAPH_ERROR.format(arg=arg, name=t.name))
    return t


def check_output(t, sess):
    """``output_tensor`` checked: a graph tensor ``[None, K]``; returns K (None if unknown)."""
    check_tensor(t, "output_tensor", sess)
    if t.shape.rank != 2:
        raise ValueError(OUTPUT_RANK_ERROR.format(name=t.name, shape=t.shape))
    k = t.shape[-1]
    return None if k is None else int(k)


def check_input(t, sess):
    check_tensor(t, "input_tensor", sess)
    if t.shape.rank is None or t.shape.rank < 2:
        raise ValueError(INPUT_RANK_ERROR.format(name=t.name, shape=t.shape))
    return t


def is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def check_positive_int(value, arg):
    """Return ``value`` as an int if it is a positive integer, else raise."""
    if not is_int(value):
        raise TypeError(POSITIVE_INT_ERROR.format(arg=arg, actual=value))
    if value <= 0:
        raise ValueError(POSITIVE_INT_ERROR.format(arg=arg, actual=value))
    return int(value)


def check_seed(seed, arg="seed"):
    """A seed both numpy's and TensorFlow's stateless generators take: an int in
    ``[0, 2**63)``."""
    if not is_int(seed):
        raise TypeError(SEED_ERROR.format(arg=arg, actual=seed))
    if not 0 <= seed < 2 ** 63:
        raise ValueError(SEED_ERROR.format(arg=arg, actual=seed))
    return int(seed)


def check_number(value, arg, positive=False):
    """Return ``value`` as a float if it is finite and >= 0 (> 0 with ``positive``)."""
    template = POSITIVE_ERROR if positive else NONNEGATIVE_ERROR
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(template.format(arg=arg, actual=value))
    v = float(value)
    if not np.isfinite(v) or v < 0 or (positive and v == 0):
        raise ValueError(template.format(arg=arg, actual=value))
    return v


def check_choice(value, choices, arg):
    """Return ``value`` if it is one of ``choices`` (strings), else raise ValueError."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(CHOICE_ERROR.format(arg=arg, expected=list(choices), actual=value))
    return value


def finite_float32(arr, arg):
    arr = np.asarray(arr).astype(np.float32, copy=False)
    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ValueError(INPUT_FINITE_ERROR.format(arg=arg, count=bad))
    return arr


def as_batch(X, input_tensor, arg="X"):
    """Check ``X`` against ``input_tensor`` and return ``(float32 [N, ...], single)``.

    A single input (the shape of one row of ``input_tensor``) is accepted and reported by
    ``single=True`` so that callers can return an unbatched result.
    """
    arr = np.asarray(X)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == np.bool_):
        raise TypeError(INPUT_DTYPE_ERROR.format(arg=arg, actual=arr.dtype))
    shape = tuple(input_tensor.shape.as_list()[1:])

    def fits(s):
        return len(s) == len(shape) and all(e is None or e == a for e, a in zip(shape, s))

    if fits(arr.shape):
        arr, single = arr[None], True
    elif arr.ndim == len(shape) + 1 and fits(arr.shape[1:]):
        single = False
    else:
        dims = ", ".join("?" if d is None else str(d) for d in shape)
        raise ValueError(INPUT_SHAPE_ERROR.format(arg=arg, dims=dims, name=input_tensor.name,
                                                  actual=list(arr.shape)))
    if arr.shape[0] == 0:
        raise ValueError(INPUT_EMPTY_ERROR.format(arg=arg, actual=list(arr.shape)))
    return finite_float32(arr, arg), single


def check_target_spec(c, k, arg="target_class"):
    """A target spec checked as far as it can be without the inputs: None, an int in
    ``[0, k)`` or a 1-D sequence of them. Returns None, an int, or an int32 array."""
    if c is None:
        return None
    if isinstance(c, (bool, np.bool_)):
        raise TypeError(TARGET_TYPE_ERROR.format(arg=arg, actual=c))
    arr = np.asarray(c)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.integer) or arr.ndim > 1:
        raise TypeError(TARGET_TYPE_ERROR.format(arg=arg, actual=c))
    if k is not None:
        out = arr[(arr < 0) | (arr >= k)]
        if out.size:
            raise ValueError(TARGET_RANGE_ERROR.format(arg=arg, k=k,
                                                       actual=sorted(set(out.tolist()))))
    elif np.any(arr < 0):
        raise ValueError(TARGET_RANGE_ERROR.format(arg=arg, k="K", actual=arr[arr < 0]))
    return int(arr) if arr.ndim == 0 else arr.astype(np.int32)


def check_targets(c, n, k, arg="target_class"):
    """Turn a target spec into an int32 array ``[n]``; ``None`` stays ``None``."""
    c = check_target_spec(c, k, arg)
    if c is None:
        return None
    if isinstance(c, int):
        return np.full(n, c, np.int32)
    if len(c) != n:
        raise ValueError(TARGET_LENGTH_ERROR.format(arg=arg, expected=n, actual=len(c)))
    return c


def chunk_slices(total, batch_size):
    """Slices that cover ``range(total)`` in chunks of at most ``batch_size``."""
    return [slice(i, min(i + batch_size, total)) for i in range(0, total, batch_size)]


def unbatch(result, single):
    """Drop the batch axis of ``result`` when the caller passed a single input."""
    return result[0] if single else result


def is_image_batch(X):
    """True for ``[N, H, W, C]`` batches (the maps of spatial methods are ``[N, H, W]``)."""
    return X.ndim == 4


def new_session(graph=None, threads=0, jit=False):
    """A ``tf.compat.v1.Session`` with the toolkit's thread settings.

    ``threads=0`` lets TensorFlow use every core for one op (the fastest for a single
    model on a small machine); inter-op parallelism is kept at 1 because these graphs are
    a chain of large ops. TensorFlow keeps one intra-op thread pool per process, sized by
    the process's first session: a later session's ``threads`` does not change it (run a
    one-thread job in a process of its own, as each actor of ``explain_dataset.py`` is).
    ``jit=True`` sets XLA's ``global_jit_level`` to ``ON_1``; it is
    off by default because it changes numbers. Measured on the default model on a 2-core
    CPU: TensorFlow ignores the setting on CPU unless ``TF_XLA_FLAGS=--tf_xla_cpu_global_jit``
    is set, and with that flag forwards ran at 3 /s instead of 80 /s (batch 16 and 32) and
    IG moved by 1.4%; so it is not offered by ``hw3_vc.py``. It is meant for GPUs.
    """
    config = tf1.ConfigProto(intra_op_parallelism_threads=threads,
                             inter_op_parallelism_threads=1)
    if jit:
        config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
    return tf1.Session(graph=graph, config=config)


# ------------------------------------------------------------------------ op cache

_OP_CACHE = weakref.WeakKeyDictionary()   # graph -> {key: ops}


def cached_ops(graph, key, build):
    """``build()`` once per graph and key (a tuple of names); later calls reuse it."""
    per_graph = _OP_CACHE.setdefault(graph, {})
    if key not in per_graph:
        with graph.as_default():
            per_graph[key] = build()
    return per_graph[key]


def input_gradients(graph):
    """The tensors of the toolkit's ops in ``graph`` that are gradients with respect to a
    model's input (a backward pass all the way to the input), for counting passes: every
    cached ops object lists its own in ``input_grads``."""
    return [t for ops in _OP_CACHE.get(graph, {}).values()
            for t in getattr(ops, "input_grads", ())]


class ModelOps:
    """The ops every method shares, built once per (input_tensor, output_tensor).

    ``target`` is fed one class index per row, so one gradient op serves every class:
    ``score[r] = out[r, target[r]]`` and ``grad[r] = d score[r] / d x[r]`` (rows are
    independent, so the gradient of the summed scores is the per-row gradient).
    """

    def __init__(self, x, out):
        with tf1.name_scope("hw3_model_ops"):
            self.target = tf1.placeholder(tf.int32, [None], name="target")
            self.score = tf.gather(out, self.target, axis=1, batch_dims=1)      # [N]
            self.grad = tf.gradients(self.score, x)[0]                           # x's shape
            if self.grad is None:
                raise ValueError(LAYER_UNCONNECTED_ERROR.format(arg="output_tensor",
                                                                name=out.name))
            self.saliency = x * self.grad
            self.pred = tf.argmax(out, axis=1, output_type=tf.int32)
            self.probs = tf.nn.softmax(out)
            self.input_grads = (self.grad,)
            if x.shape.rank == 4:   # |grad| summed over channels: [N, H, W]
                self.abs_grad_sum = tf.reduce_sum(tf.abs(self.grad), axis=-1)


def model_ops(x, out):
    return cached_ops(x.graph, ("model", x.name, out.name), lambda: ModelOps(x, out))


FUNCTION_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall", "While",
                          "StatelessWhile", "If", "StatelessIf", "Case", "StatelessCase"})


def clone_subgraph(x, outputs, new_x, name):
    """Copy the ops that lie between ``x`` and ``outputs`` with ``new_x`` in place of ``x``.

    Everything the copied ops read that does not depend on ``x`` (weights, variable reads,
    constants) is shared with the original, not copied, so the clone computes exactly what
    the model computes. Returns the cloned ``outputs``.
    """
    graph = x.graph
    down, stack = set(), [x.op]
    while stack:
        for t in stack.pop().outputs:
            for c in t.consumers():
                if c not in down:
                    down.add(c)
                    stack.append(c)
    up, stack = set(), [t.op for t in outputs]
    while stack:
        op = stack.pop()
        if op not in up:
            up.add(op)
            stack.extend(i.op for i in op.inputs)
            stack.extend(op.control_inputs)
    ops = [op for op in graph.get_operations() if op in down and op in up]   # graph order
    names = {op.name for op in ops}
    sub = tf1.GraphDef()
    sub.versions.CopyFrom(graph.graph_def_versions)
    if any(op.type in FUNCTION_OPS or any(a.HasField("func") or len(a.list.func)
                                           for a in op.node_def.attr.values()) for op in ops):
        # functions the copied ops call; only then serialise the whole graph (a graph can
        # hold hundreds of MB of constants, e.g. weights loaded by assign)
        sub.library.CopyFrom(graph.as_graph_def().library)
    input_map = {}
    for op in ops:
        copy = sub.node.add()
        copy.CopyFrom(op.node_def)
        if "_class" in copy.attr:          # colocation with nodes that are not copied
            del copy.attr["_class"]
        inputs = []
        for inp in copy.input:
            src = inp.lstrip("^").split(":")[0]
            if inp.startswith("^"):
                if src in names:
                    inputs.append(inp)
                continue
            if src not in names:
                key = inp if ":" in inp else inp + ":0"
                input_map[key] = new_x if key == x.name else graph.get_tensor_by_name(key)
            inputs.append(inp)
        del copy.input[:]
        copy.input.extend(inputs)
    return tf1.import_graph_def(sub, input_map=input_map,
                                return_elements=[t.name for t in outputs], name=name)


class RowOps:
    """Rows built in the graph, run through one clone of the model, reduced in the graph.

    Feeds (all but ``images``, ``p``, ``q`` and ``target`` have defaults):

    - ``images`` ``[m, ...]``: the inputs a chunk needs (inputs, baselines); ``p``, ``q``
      ``[R]`` index them per row (-1 is an all-zero image);
    - ``t`` ``[R]`` (default 1): ``blend = Q + t (P - Q)``, the path point of IG;
    - for images, ``rank`` ``[r, H, W]`` int32 with ``ri``, ``lo``, ``hi`` ``[R]``: the
      pixels with ``lo <= rank[ri] < hi`` take the blend, the others stay ``Q`` (inserted
      or deleted pixels, masks); ``patch`` ``[R, 4]`` ``(top, left, height, width)``
      limits the blend to a rectangle (height 0: no rectangle);
    - ``sigma`` ``[R]`` and ``seed`` ``[R, 2]``: ``+ sigma · N(0, 1)`` noise drawn by
      ``tf.random.stateless_normal`` from the row's own seed (SmoothGrad), so a row's noise
      does not depend on which rows share its ``sess.run``;
    - ``target`` ``[R]`` the class per row; ``W`` ``[R, K]`` the reduction weights.

    Fetches: ``score`` (pre-softmax ``f_target``), ``prob``, ``logits``, ``grad`` (per row),
    ``acc = W^T grad`` and ``acc_sq = W^T grad²`` ``[K, ...]``, ``integrand``
    ``= grad · (P - Q)`` per row.

    The model is cloned (:func:`clone_subgraph`) so that its input is the built rows. If a
    graph cannot be cloned, ``mode`` is ``'feed'``: the rows are fetched and fed to
    ``input_tensor`` (two ``sess.run`` per chunk, same results).
    """

    def __init__(self, x, out):
        shape = x.shape.as_list()
        self.image = len(shape) == 4
        with tf1.name_scope("hw3_rows"):
            self.images = tf1.placeholder(x.dtype, [None] + shape[1:], name="images")
            self.p = tf1.placeholder(tf.int32, [None], name="p")
            self.q = tf1.placeholder(tf.int32, [None], name="q")
            self.target = tf1.placeholder(tf.int32, [None], name="target")
            self.W = tf1.placeholder(tf.float32, [None, None], name="W")
            n_rows = tf.shape(self.p)[0]
            self.t = tf1.placeholder_with_default(tf.ones([n_rows]), [None], name="t")
            self.sigma = tf1.placeholder_with_default(tf.zeros([n_rows]), [None],
                                                      name="sigma")
            self.seed = tf1.placeholder_with_default(tf.zeros([n_rows, 2], tf.int64),
                                                     [None, 2], name="seed")
            m = tf.shape(self.images)[0]
            bank = tf.concat([self.images, tf.zeros_like(self.images[:1])], 0)  # [m+1, ...]
            P = tf.gather(bank, tf.where(self.p < 0, m, self.p))                # [R, ...]
            q_index = tf.where(self.q < 0, m, self.q)

            def gather_q():
                return tf.gather(bank, q_index)

            self.direction = P - gather_q()
            bshape = tf.concat([[-1], tf.ones([len(shape) - 1], tf.int32)], 0)
            # Each stage runs only on the chunks it changes (a tf.cond per chunk), so that
            # rows that are the images themselves cost one gather. Row by row the values are
            # the same whichever branch runs: t = 1 gives P exactly, in both.
            t_col = tf.reshape(self.t, bshape)

            def interpolate():      # built inside the branch, so that only it computes Q
                Q = gather_q()
                return select_leading(tf.equal(self.t, 1.0), P, Q + t_col * (P - Q))

            rows = tf.cond(tf.reduce_all(tf.equal(self.t, 1.0)), lambda: P, interpolate)
            if self.image:
                H, W = tf.shape(self.images)[1], tf.shape(self.images)[2]
                self.rank = tf1.placeholder_with_default(
                    tf.zeros(tf.stack([1, H, W]), tf.int32), [None] + shape[1:3], name="rank")
                zeros = tf.zeros([n_rows], tf.int32)
                self.ri = tf1.placeholder_with_default(zeros, [None], name="ri")
                self.lo = tf1.placeholder_with_default(zeros, [None], name="lo")
                self.hi = tf1.placeholder_with_default(tf.fill([n_rows], INT32_MAX), [None],
                                                       name="hi")
                self.patch = tf1.placeholder_with_default(tf.zeros([n_rows, 4], tf.int32),
                                                          [None, 4], name="patch")
                # a row keeps the pixels with lo <= rank < hi that lie in its patch (if any)
                r_min = tf.gather(tf.reduce_min(self.rank, [1, 2]), self.ri)
                r_max = tf.gather(tf.reduce_max(self.rank, [1, 2]), self.ri)
                rank_all = tf.reduce_all((self.lo <= r_min) & (self.hi > r_max))
                top, left, ph, pw = (self.patch[:, k, None, None] for k in range(4))
                patch_none = tf.reduce_all(tf.equal(self.patch[:, 2], 0))

                def rank_keep():
                    rk = tf.gather(self.rank, self.ri)                          # [R, H, W]
                    return (rk >= self.lo[:, None, None]) & (rk < self.hi[:, None, None])

                def keep():
                    k = tf.cond(rank_all, lambda: tf.ones(tf.stack([n_rows, H, W]), tf.bool),
                                rank_keep)
                    ii = tf.range(H)[None, :, None]
                    jj = tf.range(W)[None, None, :]
                    inside = (((ii >= top) & (ii < top + ph))                  # [R, H, 1]
                              & ((jj >= left) & (jj < left + pw)))             # [R, 1, W]
                    return tf.cond(patch_none, lambda: k,
                                   lambda: k & (tf.equal(ph, 0) | inside))

                unmasked = rows
                rows = tf.cond(rank_all & patch_none, lambda: unmasked,
                               lambda: select_leading(keep(), unmasked, gather_q()))
            one = tf.shape(self.images)[1:]

            def noise():
                return tf.map_fn(lambda s: tf.random.stateless_normal(one, seed=s),
                                 self.seed, fn_output_signature=x.dtype)

            clean = rows
            rows = tf.cond(tf.reduce_any(self.sigma > 0),
                           lambda: clean + tf.reshape(self.sigma, bshape) * noise(),
                           lambda: clean)
            rows.set_shape(P.shape)
            self.rows = rows
            self.mode, self.clone_error = "clone", None
            try:
                if not CLONE_MODEL:
                    raise RuntimeError("CLONE_MODEL is False")
                (self.logits,) = clone_subgraph(x, [out], rows, name="model_clone")
                model_in = rows
            except Exception as err:   # an op that cannot be copied: fetch and feed rows
                self.mode, self.clone_error = "feed", f"{type(err).__name__}: {err}"
                if CLONE_MODEL:
                    warnings.warn(CLONE_WARNING.format(reason=self.clone_error),
                                  RuntimeWarning, stacklevel=2)
                self.logits, model_in = out, x
            self.model_in = model_in
            self.score = tf.gather(self.logits, self.target, axis=1, batch_dims=1)
            self.prob = tf.gather(tf.nn.softmax(self.logits), self.target, axis=1,
                                  batch_dims=1)
            self.grad = tf.gradients(self.score, model_in)[0]
            if self.grad is None:
                raise ValueError(LAYER_UNCONNECTED_ERROR.format(arg="output_tensor",
                                                                name=out.name))
            self.input_grads = (self.grad,)
            flat = tf.reshape(self.grad, [n_rows, -1])                          # [R, D]
            acc_shape = tf.concat([[-1], tf.shape(self.images)[1:]], 0)
            self.acc = tf.reshape(tf.matmul(self.W, flat, transpose_a=True), acc_shape)
            self.acc_sq = tf.reshape(tf.matmul(self.W, tf.square(flat), transpose_a=True),
                                     acc_shape)
            self.integrand = tf.reduce_sum(flat * tf.reshape(self.direction, [n_rows, -1]), 1)

    def feed(self, images, p, q, target, extra):
        fd = {self.images: images, self.p: p, self.q: q, self.target: target}
        for name, value in extra.items():
            fd[getattr(self, name)] = value
        return fd


def select_leading(cond, a, b):
    """``a`` where ``cond`` (the leading dimensions of ``a``: ``[R]`` rows or ``[R, H, W]``
    pixels) is true, else ``b``. The same values as ``tf.where`` broadcasting ``cond``, but
    several times faster on CPU: a broadcast select runs element by element, a select of
    whole trailing slices (``tf.compat.v1.where`` with a vector condition) copies them."""
    lead = tf.size(cond)
    out = tf1.where(tf.reshape(cond, [-1]), tf.reshape(a, tf.stack([lead, -1])),
                    tf.reshape(b, tf.stack([lead, -1])))
    return tf.reshape(out, tf.shape(a))


def row_ops(x, out):
    return cached_ops(x.graph, ("rows", x.name, out.name), lambda: RowOps(x, out))


class Bank:
    """Images addressed by one global index: the arrays given, one after the other.

    An array of one row (a baseline shared by every input) counts as one image."""

    def __init__(self, *arrays):
        self.arrays = [a for a in arrays if a is not None]
        self.offsets = np.cumsum([0] + [len(a) for a in self.arrays])

    def take(self, idx):
        """The images ``idx`` (sorted, unique) as one float32 array; a view, not a copy,
        when they are consecutive rows of one float32 array."""
        which = np.searchsorted(self.offsets, idx, side="right") - 1
        if len(idx) and which[0] == which[-1] and idx[-1] - idx[0] == len(idx) - 1:
            arr = self.arrays[which[0]]
            if arr.dtype == np.float32:
                start = idx[0] - self.offsets[which[0]]
                return arr[start:start + len(idx)]
        out = np.empty((len(idx),) + self.arrays[0].shape[1:], np.float32)
        for k, arr in enumerate(self.arrays):
            sel = which == k
            if sel.any():
                out[sel] = arr[idx[sel] - self.offsets[k]]
        return out


class RowPlan:
    """Per-row specification of the rows a method evaluates (numpy arrays over all rows).

    ``p``, ``q``: indices into the image bank (-1: zeros); ``target``: class per row;
    optional ``t``, ``sigma``, ``seed`` ``[R, 2]``, ``ri`` (index into the rank bank),
    ``lo``, ``hi``, ``patch`` ``[R, 4]``; ``seg`` / ``w`` ``[R, J]``: each row adds ``w``
    times its gradient to up to J accumulators (-1: none).
    """

    PER_ROW = ("t", "sigma", "seed", "lo", "hi", "patch")

    def __init__(self, p, q, target, **fields):
        self.p = np.asarray(p, np.int64)
        self.q = np.asarray(q, np.int64)
        self.target = np.asarray(target, np.int32)
        self.fields = fields
        self.n = len(self.p)


def run_rows(method, plan, bank, fetch, batch_size, desc, rank_bank=None, n_acc=0):
    """Evaluate a :class:`RowPlan` in chunks of at most ``batch_size`` rows.

    ``fetch``: names of :class:`RowOps` per-row fetches (``score``, ``prob``, ``logits``,
    ``grad``, ``integrand``) and reductions (``acc``, ``acc_sq``). Returns a dict: per-row
    arrays ``[R, ...]`` and float64 accumulators ``[n_acc, ...]``. ``rank_bank``: int32
    pixel ranks ``[K, H, W]`` that the plan's ``ri`` indexes. One ``sess.run`` per chunk
    (two in the fallback ``feed`` mode).
    """
    ops = method._rows
    per_row = [f for f in fetch if f not in ("acc", "acc_sq")]
    reduce_ = [f for f in fetch if f in ("acc", "acc_sq")]
    shape1 = bank.arrays[0].shape[1:]
    out = {}
    for f in reduce_:
        out[f] = np.zeros((n_acc,) + shape1, np.float64)
    for sl, (vals, meta) in method._run_batched(
            [getattr(ops, f) for f in per_row + reduce_], plan.n,
            lambda s: _row_feed(ops, plan, bank, rank_bank, s, bool(reduce_)), desc,
            batch_size, ops=ops):
        for f, v in zip(per_row, vals[:len(per_row)]):
            if f not in out:
                out[f] = np.empty((plan.n,) + v.shape[1:], v.dtype)
            out[f][sl] = v
        for f, v in zip(reduce_, vals[len(per_row):]):
            out[f][meta] += v
    return out


def _row_feed(ops, plan, bank, rank_bank, s, reduce_):
    """The feed dict of rows ``s`` and the accumulator ids of their reduction columns."""
    p, q = plan.p[s], plan.q[s]
    used = np.unique(np.concatenate([p, q]))
    used = used[used >= 0]
    local = lambda a: np.where(a < 0, -1, np.searchsorted(used, a)).astype(np.int32)  # noqa
    extra = {k: plan.fields[k][s] for k in RowPlan.PER_ROW if k in plan.fields}
    if "ri" in plan.fields:
        ri = plan.fields["ri"][s]
        r_used = np.unique(ri)
        extra["rank"] = rank_bank[r_used]
        extra["ri"] = np.searchsorted(r_used, ri).astype(np.int32)
    acc_ids = None
    if reduce_:
        seg, w = plan.fields["seg"][s], plan.fields["w"][s]
        if seg.ndim == 1:
            seg, w = seg[:, None], w[:, None]
        valid = seg >= 0
        acc_ids = np.unique(seg[valid])
        Wm = np.zeros((len(p), len(acc_ids)), np.float32)
        rows = np.broadcast_to(np.arange(len(p))[:, None], seg.shape)
        np.add.at(Wm, (rows[valid], np.searchsorted(acc_ids, seg[valid])), w[valid])
        extra["W"] = Wm
    images = bank.take(used) if len(used) else np.zeros((1,) + bank.arrays[0].shape[1:],
                                                        np.float32)
    fd = ops.feed(images, local(p), local(q), plan.target[s], extra)
    return fd, acc_ids


# ------------------------------------------------------------------------ base class

class AttributionMethod:
    """Base of every method: ``(sess, input_tensor, output_tensor, target_class)``.

    Args:
        sess: the ``tf.compat.v1.Session`` whose graph holds the model.
        input_tensor: the model's input placeholder ``[None, ...]`` (images
            ``[None, H, W, 3]``, RGB 0-255).
        output_tensor: the model's pre-softmax scores ``[None, K]`` (VGG16: ``fc3l``).
        target_class: the class to explain: an int (the homework's), None (each input's
            own predicted class, computed once at the input), or a sequence of ints, one
            per input of the next call.
        progress: show a tqdm progress bar on stderr for long work (keyword only).
    """

    needs_rows = False
    api = "Method(sess, input_tensor, output_tensor, target_class)"

    def __init__(self, sess, input_tensor, output_tensor, target_class=None, *,
                 progress=True):
        self.sess = check_session(sess, self.api)
        self.input_tensor = check_input(input_tensor, sess)
        self.num_classes = check_output(output_tensor, sess)
        self.output_tensor = output_tensor
        self.target_class = check_target_spec(target_class, self.num_classes)
        self.progress = progress
        self.last_info = {}
        with sess.graph.as_default():
            self._define_ops()

    def _define_ops(self):
        self._ops = model_ops(self.input_tensor, self.output_tensor)
        if self.needs_rows:
            self._rows = row_ops(self.input_tensor, self.output_tensor)

    # ------------------------------------------------------------------ running
    def _run_batched(self, fetches, n_rows, feed_fn, desc=None, batch_size=DEFAULT_BATCH_SIZE,
                     ops=None):
        """Yield ``(slice, values)``: one ``sess.run`` per chunk of at most batch_size rows.

        ``feed_fn(slice)`` returns the feed dict for those rows (or ``(feed dict, meta)``,
        then ``values`` is ``(values, meta)``), so callers build each chunk's feeds only
        when it is needed and memory stays bounded. ``ops`` a :class:`RowOps` in ``feed``
        mode: its rows are fetched first and fed to ``input_tensor``.
        """
        with tqdm(total=n_rows, desc=desc, unit="row", leave=False,
                  disable=(not self.progress) or n_rows <= batch_size) as bar:
            for sl in chunk_slices(n_rows, batch_size):
                fd = feed_fn(sl)
                meta = None
                if isinstance(fd, tuple):
                    fd, meta = fd
                if ops is not None and ops.mode == "feed":
                    fd[self.input_tensor] = self.sess.run(ops.rows, fd)
                vals = self.sess.run(fetches, fd)
                yield sl, (vals if meta is None and ops is None else (vals, meta))
                bar.update(sl.stop - sl.start)

    def _batch_size(self, batch_size):
        return check_positive_int(batch_size, "batch_size")

    def _inputs(self, X, arg="X"):
        return as_batch(X, self.input_tensor, arg)

    def logits(self, X, batch_size=DEFAULT_BATCH_SIZE):
        """Pre-softmax scores ``[N, K]`` of a checked batch ``X``."""
        out = None
        for sl, val in self._run_batched(self.output_tensor, len(X),
                                         lambda s: {self.input_tensor: X[s]},
                                         batch_size=batch_size):
            if out is None:
                out = np.empty((len(X), val.shape[1]), np.float32)
            out[sl] = val
        return out

    def _targets(self, X, target_class=_UNSET, batch_size=DEFAULT_BATCH_SIZE, logits=None):
        """int32 targets ``[N]`` for a checked batch: the spec, or the predictions."""
        c = self.target_class if target_class is _UNSET else target_class
        targets = check_targets(c, len(X), self.num_classes)
        if targets is None:
            if logits is None:
                logits = self.logits(X, batch_size)
            targets = logits.argmax(axis=1).astype(np.int32)
        elif self.num_classes is None and logits is not None:
            targets = check_targets(targets, len(X), logits.shape[1])
        return targets

    def _gradients(self, fetch, X, targets, desc, batch_size):
        """``fetch`` (a ModelOps tensor) for every input, one run per chunk."""
        out = None
        for sl, val in self._run_batched(fetch, len(X), lambda s: {
                self.input_tensor: X[s], self._ops.target: targets[s]}, desc, batch_size):
            if out is None:
                out = np.empty((len(X),) + val.shape[1:], np.float32)
            out[sl] = val
        return out


# ------------------------------------------------------------------ method helpers

def as_baseline(baseline, X, arg="baseline", names=("black", "white"), make=None):
    """A baseline array broadcastable to ``X`` ``[N, ...]``: ``[1, ...]`` or ``[N, ...]``,
    or None for the all-zero ``'black'`` (the graph makes zeros itself).

    ``'white'`` is all 255 (pixel units); ``make(name)`` builds any other name in ``names``.
    An array is one input's shape (shared by every input) or ``X.shape``.
    """
    if isinstance(baseline, str):
        if baseline not in names:
            raise ValueError(BASELINE_NAME_ERROR.format(arg=arg, expected=list(names),
                                                        actual=baseline))
        if baseline == "black":
            return None
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
    return finite_float32(arr, arg)


def baseline_index(Xb, bank_offset, img):
    """Bank indices of the baselines of inputs ``img``: -1 (zeros), shared, or per input."""
    if Xb is None:
        return np.full(len(img), -1, np.int64)
    if len(Xb) == 1:
        return np.full(len(img), bank_offset, np.int64)
    return bank_offset + np.asarray(img, np.int64)


def dense_baseline(Xb, X):
    """The baseline as an array ``[1 or N, ...]`` (zeros for the black one)."""
    return np.zeros((1,) + X.shape[1:], np.float32) if Xb is None else Xb


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


def relative_error(total, delta):
    """``|total - delta| / |delta|`` per input; 0 when both are 0, inf when only delta is."""
    total, delta = np.asarray(total, np.float64), np.asarray(delta, np.float64)
    num = np.abs(total - delta)
    den = np.abs(delta)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0),
                        np.where(num > 0, np.inf, 0.0))


# ------------------------------------------------------------------------- methods

class SaliencyMap(AttributionMethod):
    """Saliency map ``S_c(x) = x ⊙ ∇_x f_c(x)`` of the pre-softmax score (Simonyan et al.
    2014, "Deep inside convolutional networks"; input x gradient as in the homework).

    ``SaliencyMap(sess, input_tensor, output_tensor, target_class)(X, batch_size=16,
    multiply_with_input=True)``: ``X`` ``[N, ...]`` (images ``[N, H, W, 3]``, RGB 0-255) or
    one input; returns float32 of ``X``'s shape, ``x ⊙ ∇f_c`` or (``multiply_with_input=
    False``) ``∇f_c``. Session calls: ``ceil(N / batch_size)`` (+ as many forwards to find
    the predicted classes when ``target_class`` is None).
    """

    api = "SaliencyMap(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, batch_size=DEFAULT_BATCH_SIZE, multiply_with_input=True, *,
                 target_class=_UNSET):
        X, single = self._inputs(X)
        bs = self._batch_size(batch_size)
        targets = self._targets(X, target_class, bs)
        fetch = self._ops.saliency if multiply_with_input else self._ops.grad
        return unbatch(self._gradients(fetch, X, targets, "saliency", bs), single)


class VanillaGradient(AttributionMethod):
    """``|∇_x f_c(x)|`` (Simonyan et al. 2014), summed over the channel axis for images.

    ``VanillaGradient(sess, input_tensor, output_tensor, target_class)(X, batch_size=16)``:
    images ``[N, H, W, C]`` give maps ``[N, H, W]`` (the sum is taken in the graph);
    inputs of other ranks keep their shape.
    """

    api = "VanillaGradient(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, batch_size=DEFAULT_BATCH_SIZE, *, target_class=_UNSET):
        X, single = self._inputs(X)
        bs = self._batch_size(batch_size)
        targets = self._targets(X, target_class, bs)
        if is_image_batch(X):
            out = self._gradients(self._ops.abs_grad_sum, X, targets, "gradient", bs)
        else:
            out = np.abs(self._gradients(self._ops.grad, X, targets, "gradient", bs))
        return unbatch(out, single)


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

        ig = IntegratedGrad(sess, input_tensor, output_tensor, target_class)
        attr = ig(X, 'black', num_steps=50)                  # the homework's
        mean_grad = ig(X, 'black', num_steps=50, multiply_with_input=False)
        attr, info = ig(X, method='adaptive', tol=0.01, return_error=True)

    Args:
        X: inputs ``[N, ...]`` (images ``[N, H, W, 3]``, RGB 0-255) or one input.
        baseline: ``'black'`` (0), ``'white'`` (255), ``'random'`` (Gaussian, mean 0, std
            ``random_std``, drawn once from ``seed`` and shared by every input; with pixel
            values 0-255 the homework's std of 0.1 is a nearly black image), or an array of
            one input's shape (shared) or of ``X``'s shape (one per input).
        batch_size: the most path points one ``sess.run`` sees.
        num_steps: N, the number of steps of a uniform rule (a positive int).
        multiply_with_input: return ``(x - x_b) ⊙ mean gradient`` (True) or the mean
            gradient ``Σ_k w_k ∇f_c(x_k)`` itself (False).
        method: the quadrature rule, one of ``IG_METHODS`` (keyword only, as the rest).
        random_std, seed: the random baseline's std (pixel units) and seed.
        return_error: also return ``info`` (the dict kept as ``self.last_info``).
        tol, max_gradients, forward_steps, correction: the adaptive rule's settings.
        target_class: overrides the instance's target for this call.

    Returns:
        float32 of ``X``'s shape (and ``info`` with ``return_error``). ``self.last_info``
        after every call holds, per input (arrays ``[N]``): ``completeness_error``
        ``|Σ IG - (f_c(x) - f_c(x_b))| / |f_c(x) - f_c(x_b)|`` (0 when both are 0, inf when
        only the difference is), ``f_x``, ``f_baseline``, ``gradients`` and ``forwards``
        spent (a forward costs about a third of a gradient), ``targets``; the adaptive rule
        adds ``nodes`` (the path points used), ``uncorrected_error`` and ``error_bound``.

    In the graph: each chunk feeds the inputs it needs, their baselines, the node positions
    ``t``, the row-to-input map and the weights; the graph forms ``x_b + t (x - x_b)``,
    differentiates, and sums ``w_k ∇f`` per input, so a chunk fetches one map per input,
    not one per path point. Session calls (uniform rules): ``ceil((N + B) / batch_size)``
    forwards (the inputs and the B distinct baselines: both end scores and the predicted
    classes) then ``ceil(N·G / batch_size)`` for G gradients per input.

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
    the exact integral (λ is where the kink lies). Its certificate is ``uncorrected_error``
    (the plain trapezoid's, which the stopping rule uses). The final weights are known only
    at the end, so the adaptive rule fetches each node's gradient (the path points are still
    built in the graph) and keeps up to ``max_gradients`` of them per input, processing
    inputs in groups that fit in ``ADAPTIVE_MEMORY_BYTES``.

    Measured (EfficientNet-Lite0, the 17 bundled sample photos, predicted class, tol 0.01),
    completeness error median / worst: black baseline, right Riemann 64 steps 9.8% / 27.8%,
    256 steps 1.7% / 7.5%; adaptive with at most 64 gradients 0.36% / 3.1% (38 gradients
    and 33 forwards on average), at most 256: 0.60% / 0.88% (97 gradients, 129 forwards).
    """

    needs_rows = True
    api = "IntegratedGrad(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, baseline="black", batch_size=DEFAULT_BATCH_SIZE, num_steps=50,
                 multiply_with_input=True, *, method="riemann_right", random_std=0.1, seed=0,
                 return_error=False, tol=0.01, max_gradients=256, forward_steps=None,
                 correction=None, target_class=_UNSET):
        X, single = self._inputs(X)
        method = check_choice(method, IG_METHODS, "method")
        bs = self._batch_size(batch_size)
        if method == "adaptive":
            tol = check_number(tol, "tol")
            if not is_int(max_gradients) or max_gradients < 2:
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
            num_steps = check_positive_int(num_steps, "num_steps")
        Xb, targets, f_x, f_b = self._prepare(X, target_class, baseline, random_std, seed, bs)
        if method == "adaptive":
            avg, info = self._adaptive(X, Xb, targets, f_x, f_b, bs, tol, max_gradients,
                                       forward_steps, correction)
        else:
            t, w = quadrature(method, num_steps)
            avg = self._weighted_sums(X, Xb, targets, t, w[:, None], bs)[0]
            info = {"gradients": np.full(len(X), len(t)), "forwards": np.full(len(X), 2)}
        attr = ((X - dense_baseline(Xb, X)) * avg).astype(np.float32)
        total = attr.reshape(len(X), -1).sum(axis=1, dtype=np.float64)
        info.update(completeness_error=relative_error(total, f_x - f_b), f_x=f_x,
                    f_baseline=f_b, targets=targets, method=method)
        self.last_info = info
        out = unbatch(attr if multiply_with_input else avg.astype(np.float32), single)
        return (out, info) if return_error else out

    def _prepare(self, X, target_class, baseline, random_std, seed, bs):
        """Baselines, targets and both end scores ``(Xb, targets, f_x, f_b)`` of a batch."""
        random_std = check_number(random_std, "random_std")
        seed = check_seed(seed)
        Xb = as_baseline(
            baseline, X, names=("black", "white", "random"),
            make=lambda _: np.random.default_rng(seed).normal(
                0.0, random_std, (1,) + X.shape[1:]))
        c = self.target_class if target_class is _UNSET else target_class
        targets = check_targets(c, len(X), self.num_classes)
        return (Xb,) + self._ends(X, Xb, targets, bs)

    def _ends(self, X, Xb, targets, bs):
        """Targets and the scores at both ends, from one forward pass over N + B rows."""
        n = len(X)
        base = dense_baseline(Xb, X)
        bank = Bank(X, base)
        logits = self._bank_logits(bank, n + len(base), bs)
        if targets is None:
            targets = logits[:n].argmax(axis=1).astype(np.int32)
        elif self.num_classes is None:
            targets = check_targets(targets, n, logits.shape[1])
        r = np.arange(n)
        b = r if len(base) == n else np.zeros(n, int)
        return (targets, logits[r, targets].astype(np.float64),
                logits[n + b, targets].astype(np.float64))

    def _bank_logits(self, bank, n_rows, bs):
        """Logits ``[n_rows, K]`` of the bank's first ``n_rows`` images."""
        out = None
        for sl, val in self._run_batched(self.output_tensor, n_rows, lambda s: {
                self.input_tensor: bank.take(np.arange(s.start, s.stop))}, "IG ends", bs):
            if out is None:
                out = np.empty((n_rows, val.shape[1]), np.float32)
            out[sl] = val
        return out

    def _path_plan(self, X, Xb, targets, img, t, **fields):
        """Rows ``x_b + t (x - x_b)`` for (input ``img``, position ``t``) pairs."""
        img = np.asarray(img, np.int64)
        q = baseline_index(Xb, len(X), img)
        return RowPlan(img, q, targets[img], t=np.asarray(t, np.float32), **fields)

    def _weighted_sums(self, X, Xb, targets, t, W, bs, desc="integrated gradients"):
        """``Σ_k W[k, j] ∇f(x_b + t_k (x - x_b))`` per input, for every column j of ``W``.

        ``W`` ``[K, J]``: the weight of node k in sum j (0: not in it). Returns float64
        ``[J, N, ...]``. Rows are (input, node) pairs with a non-zero weight somewhere.
        """
        n, k = len(X), len(t)
        img = np.repeat(np.arange(n), k)
        node = np.tile(np.arange(k), n)
        J = W.shape[1]
        seg = (np.arange(J)[None, :] * n + img[:, None]).astype(np.int64)    # [R, J]
        w = W[node].astype(np.float32)
        seg = np.where(w != 0, seg, -1)
        plan = self._path_plan(X, Xb, targets, img, t[node], seg=seg, w=w)
        res = run_rows(self, plan, Bank(X, Xb), ["acc"], bs, desc, n_acc=J * n)
        return res["acc"].reshape((J, n) + X.shape[1:])

    def sweep(self, X, baseline="black", batch_size=DEFAULT_BATCH_SIZE,
              steps=(5, 10, 20, 25, 50, 100, 200), multiply_with_input=True, *,
              random_std=0.1, seed=0, target_class=_UNSET):
        """Right-Riemann IG for several step counts from one set of gradients.

        The nodes ``i/N`` of N steps are a subset of those of ``M = max(steps)`` steps
        whenever N divides M, so the M gradients per input are computed once and every
        coarser rule is a weighted sum over a subset of them (the graph sums each rule
        per input): the cost of the finest rule alone.

        Returns:
            ``(maps, info)``: ``maps[N]`` float32 attributions of ``X``'s shape for each N
            (unbatched for one input); ``info`` as ``last_info`` of ``__call__`` except that
            ``completeness_error`` is a dict ``{N: [n]}``.
        """
        X, single = self._inputs(X)
        bs = self._batch_size(batch_size)
        steps = sorted({check_positive_int(n, "steps") for n in np.atleast_1d(steps)})
        top = steps[-1]
        if any(top % n for n in steps):
            raise ValueError(STEPS_DIVIDE_ERROR.format(actual=steps, top=top))
        Xb, targets, f_x, f_b = self._prepare(X, target_class, baseline, random_std, seed, bs)
        t = np.arange(1, top + 1) / top                           # right-Riemann nodes
        j = np.arange(1, top + 1)
        W = np.stack([np.where(j % (top // n) == 0, 1.0 / n, 0.0) for n in steps], axis=1)
        sums = self._weighted_sums(X, Xb, targets, t, W, bs)
        diff = X - dense_baseline(Xb, X)
        maps, err = {}, {}
        for k, n in enumerate(steps):
            attr = (diff * sums[k]).astype(np.float32)
            total = attr.reshape(len(X), -1).sum(axis=1, dtype=np.float64)
            err[n] = relative_error(total, f_x - f_b)
            maps[n] = unbatch(attr if multiply_with_input else sums[k].astype(np.float32),
                              single)
        info = {"completeness_error": err, "f_x": f_x, "f_baseline": f_b,
                "targets": targets, "gradients": np.full(len(X), top),
                "forwards": np.full(len(X), 2), "method": "riemann_right"}
        self.last_info = info
        return maps, info

    def path_scores(self, X, baseline="black", batch_size=DEFAULT_BATCH_SIZE, alphas=None,
                    *, random_std=0.1, seed=0, target_class=_UNSET):
        """The target score ``f_c(x_b + a (x - x_b))`` along the path, forwards only.

        Args:
            X, baseline, batch_size, random_std, seed, target_class: as for ``__call__``.
            alphas: positions ``[T]`` in [0, 1] (default 101 uniform points).

        Returns:
            float64 ``[N, T]`` (``[T]`` for one input) pre-softmax scores of the target
            (the predicted class at ``x`` when the target is None).
        """
        X, single = self._inputs(X)
        bs = self._batch_size(batch_size)
        alphas = np.linspace(0, 1, 101) if alphas is None else np.asarray(alphas, np.float64)
        if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas)):
            raise ValueError(ALPHAS_ERROR.format(actual=np.shape(alphas)))
        Xb, targets, _, _ = self._prepare(X, target_class, baseline, random_std, seed, bs)
        k = len(alphas)
        img = np.repeat(np.arange(len(X)), k)
        plan = self._path_plan(X, Xb, targets, img, np.tile(alphas, len(X)))
        res = run_rows(self, plan, Bank(X, Xb), ["score"], bs, "IG path")
        return unbatch(res["score"].astype(np.float64).reshape(len(X), k), single)

    # ------------------------------------------------------------------ adaptive
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
        bank = Bank(X, Xb)
        delta = f_x[idx] - f_b[idx]
        # 1. F on a uniform grid of m intervals, forwards only (the ends are known)
        grid_t = np.arange(m + 1) / m
        grid_f = np.empty((n, m + 1))
        grid_f[:, 0], grid_f[:, -1] = f_b[idx], f_x[idx]
        inner = m - 1
        if inner > 0:
            loc = np.repeat(np.arange(n), inner)
            tt = np.tile(grid_t[1:-1], n)
            plan = self._path_plan(X, Xb, targets, idx[loc], tt)
            res = run_rows(self, plan, bank, ["score"], bs, "IG adaptive forwards")
            grid_f[:, 1:-1] = res["score"].reshape(n, inner)

        # per input: node positions, scores, integrands g = ∇f·(x - x_b), gradients
        node_t = [np.empty(0) for _ in range(n)]
        node_f = [np.empty(0) for _ in range(n)]
        node_s = [np.empty(0) for _ in range(n)]
        grads = np.empty((n, max_gradients) + X.shape[1:], np.float32)
        count = np.zeros(n, np.int64)

        def evaluate(loc, ts):
            """Gradients, scores and integrands at (local input, t) rows, in one pass."""
            loc, ts = np.asarray(loc), np.asarray(ts, np.float64)
            order = np.lexsort((ts, loc))
            loc, ts = loc[order], ts[order]
            plan = self._path_plan(X, Xb, targets, idx[loc], ts)
            res = run_rows(self, plan, bank, ["grad", "score", "integrand"], bs,
                           "IG adaptive gradients")
            for i in np.unique(loc):
                sel = loc == i
                k = int(sel.sum())
                grads[i, count[i]:count[i] + k] = res["grad"][sel]
                node_t[i] = np.concatenate([node_t[i], ts[sel]])
                node_f[i] = np.concatenate([node_f[i], res["score"][sel].astype(np.float64)])
                node_s[i] = np.concatenate([node_s[i],
                                            res["integrand"][sel].astype(np.float64)])
                count[i] += k

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
            gi = idx[i]
            avg[gi] = np.tensordot(w, g, axes=1)
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
    ``multiply_with_input`` the result is multiplied by ``x``.

    ``SmoothGrad(sess, input_tensor, output_tensor, target_class)(X, batch_size=16,
    samples=50, sigma=0.15, seed=0)``: float32 of ``X``'s shape. The noise is drawn in the
    graph: sample ``s`` of every input uses ``tf.random.stateless_normal`` with the seed
    ``(seed, s)``, so the result depends only on ``seed`` (not on ``batch_size`` or the
    other inputs of the batch), and the graph sums the gradients per input. (Before the
    in-graph noise the numbers came from numpy's generator: the same distribution, other
    draws.) Session calls: ``ceil(N·samples / batch_size)`` (+ forwards when the target is
    None).
    """

    needs_rows = True
    api = "SmoothGrad(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, batch_size=DEFAULT_BATCH_SIZE, samples=50, sigma=0.15, seed=0,
                 kind="smoothgrad", multiply_with_input=False, *, target_class=_UNSET):
        X, single = self._inputs(X)
        bs = self._batch_size(batch_size)
        samples = check_positive_int(samples, "samples")
        sigma = check_number(sigma, "sigma")
        kind = check_choice(kind, SMOOTHGRAD_KINDS, "kind")
        seed = check_seed(seed)
        targets = self._targets(X, target_class, bs)
        n = len(X)
        flat = X.reshape(n, -1)
        scale = (sigma * (flat.max(axis=1) - flat.min(axis=1))).astype(np.float32)   # [N]
        img = np.repeat(np.arange(n), samples)
        smp = np.tile(np.arange(samples), n)
        plan = RowPlan(img, img, targets[img], t=np.zeros(len(img), np.float32),
                       sigma=scale[img], seed=np.stack([np.full(len(img), seed), smp], 1),
                       seg=img, w=np.full(len(img), 1.0 / samples, np.float32))
        fetch = ["acc"] if kind == "smoothgrad" else ["acc", "acc_sq"]
        res = run_rows(self, plan, Bank(X), fetch, bs, "smoothgrad", n_acc=n)
        mean = res["acc"]
        if kind == "smoothgrad":
            out = mean
        elif kind == "squared":
            out = res["acc_sq"]
        else:
            out = np.maximum(res["acc_sq"] - mean ** 2, 0.0)
        if multiply_with_input:
            out = out * X
        return unbatch(out.astype(np.float32), single)


class GradCAM(AttributionMethod):
    """Grad-CAM (Selvaraju et al., ICCV 2017): ``ReLU(Σ_k α_k A^k)`` with ``A`` a conv
    layer's activations and ``α_k`` the spatial mean of ``∂f_c / ∂A^k``, upsampled
    bilinearly to the input's height and width.

    ``GradCAM(sess, input_tensor, output_tensor, target_class, internal_layer)``:
    ``internal_layer`` is the conv layer's tensor ``[None, h, w, C]`` (VGG16:
    ``model.conv5_3``; EfficientNet-Lite0: ``model.layers['head']``). Call
    ``(X, batch_size=16)`` with images ``[N, H, W, C]`` -> maps ``[N, H, W]``
    (unnormalised, >= 0). Session calls: ``ceil(N / batch_size)`` (+ forwards when the
    target is None).
    """

    api = "GradCAM(sess, input_tensor, output_tensor, target_class, internal_layer)"

    def __init__(self, sess, input_tensor, output_tensor, target_class=None,
                 internal_layer=None, *, progress=True):
        check_session(sess, self.api)
        if internal_layer is None:
            raise TypeError(LAYER_RANK_ERROR.format(actual="None"))
        check_tensor(internal_layer, "internal_layer", sess, what=GRADCAM_LAYER_HINT)
        if internal_layer.shape.rank != 4:
            raise ValueError(LAYER_RANK_ERROR.format(
                actual=f"{internal_layer.name!r} of shape {internal_layer.shape}"))
        if check_input(input_tensor, sess).shape.rank != 4:
            raise ValueError(NOT_IMAGE_ERROR.format(arg="input_tensor", method="GradCAM",
                                                    name=input_tensor.name,
                                                    actual=input_tensor.shape))
        self.internal_layer = internal_layer
        super().__init__(sess, input_tensor, output_tensor, target_class, progress=progress)

    def _define_ops(self):
        super()._define_ops()
        x, out, layer = self.input_tensor, self.output_tensor, self.internal_layer
        self._cam = cached_ops(x.graph, ("gradcam", x.name, out.name, layer.name),
                               lambda: self._build_cam(x, layer, self._ops.score))

    @staticmethod
    def _build_cam(x, acts, score):
        with tf1.name_scope("hw3_gradcam"):
            d_acts = tf.gradients(score, acts)[0]                       # [N, h, w, k]
            if d_acts is None:
                raise ValueError(LAYER_UNCONNECTED_ERROR.format(arg="internal_layer",
                                                                name=acts.name))
            alpha = tf.reduce_mean(d_acts, axis=[1, 2], keepdims=True)  # [N, 1, 1, k]
            cam = tf.nn.relu(tf.reduce_sum(alpha * acts, axis=-1, keepdims=True))
            return tf.image.resize(cam, tf.shape(x)[1:3], method="bilinear")[..., 0]

    def __call__(self, X, batch_size=DEFAULT_BATCH_SIZE, *, target_class=_UNSET):
        X, single = self._inputs(X)
        bs = self._batch_size(batch_size)
        targets = self._targets(X, target_class, bs)
        return unbatch(self._gradients(self._cam, X, targets, "grad-cam", bs), single)


OCCLUSION_BASELINES = ("black", "blur")


def blurred(X, sigma):
    """Each image of ``X`` ``[N, H, W, C]`` blurred per channel (scipy, reflect edges)."""
    from scipy.ndimage import gaussian_filter
    return gaussian_filter(X, sigma=(0, sigma, sigma, 0)).astype(np.float32)


def patch_starts(length, size, stride):
    """Patch offsets along one axis; the last patch is aligned with the edge."""
    s = list(range(0, length - size + 1, stride))
    return s if s[-1] == length - size else s + [length - size]


class Occlusion(AttributionMethod):
    """Occlusion (Zeiler and Fergus, ECCV 2014): the importance of a square patch is
    ``f_c(x) - f_c(x with the patch replaced by a baseline)``, given to each of its pixels.

    ``Occlusion(sess, input_tensor, output_tensor, target_class)(X, batch_size=16,
    superpixel_size=8, baseline='black')`` with images ``[N, H, W, C]`` -> maps
    ``[N, H, W]``. ``superpixel_size`` must divide H and W. ``baseline``: ``'black'`` (0),
    ``'blur'`` (each image blurred per channel by ``scipy.ndimage.gaussian_filter`` with
    ``blur_sigma`` pixels) or an array of one image's shape or of ``X``'s shape.
    ``stride`` (default ``superpixel_size``) below the size gives overlapping patches (the
    last row/column of patches is aligned with the image's edge) whose importances are
    averaged on each pixel. The graph builds each occluded copy from the image, the
    baseline and the patch's corner; only the scores come back. Session calls:
    ``ceil(N / batch_size)`` forwards at the inputs plus ``ceil(N·P / batch_size)`` for the
    P occluded copies per image.
    """

    needs_rows = True
    api = "Occlusion(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, batch_size=DEFAULT_BATCH_SIZE, superpixel_size=8, baseline="black",
                 blur_sigma=5.0, stride=None, *, target_class=_UNSET):
        X, single = self._inputs(X)
        if not is_image_batch(X):
            raise ValueError(NOT_IMAGE_ERROR.format(arg="X", method="Occlusion",
                                                    name=self.input_tensor.name,
                                                    actual=list(X.shape)))
        bs = self._batch_size(batch_size)
        n, H, W = X.shape[:3]
        size = check_positive_int(superpixel_size, "superpixel_size")
        if H % size or W % size:
            raise ValueError(SUPERPIXEL_ERROR.format(arg="superpixel_size", h=H, w=W,
                                                     actual=size))
        stride = size if stride is None else stride
        if not is_int(stride) or not 0 < stride <= size:
            raise ValueError(STRIDE_ERROR.format(arg="stride", size=size, actual=stride))
        blur_sigma = check_number(blur_sigma, "blur_sigma")
        Xb = as_baseline(baseline, X, names=OCCLUSION_BASELINES,
                         make=lambda _: blurred(X, blur_sigma))
        logits = self.logits(X, bs)
        targets = self._targets(X, target_class, bs, logits=logits)
        f_x = logits[np.arange(n), targets].astype(np.float64)
        corners = np.array([(i, j) for i in patch_starts(H, size, stride)
                            for j in patch_starts(W, size, stride)])             # [P, 2]
        p = len(corners)
        img = np.repeat(np.arange(n), p)
        c = np.tile(np.arange(p), n)
        patch = np.concatenate([corners[c], np.full((len(c), 2), size)], 1).astype(np.int32)
        plan = RowPlan(baseline_index(Xb, n, img), img, targets[img], patch=patch)
        scores = run_rows(self, plan, Bank(X, Xb), ["score"], bs, "occlusion")["score"]
        drop = (f_x[:, None] - scores.reshape(n, p).astype(np.float64))        # [N, P]
        total = np.zeros((n, H, W), np.float64)
        cover = np.zeros((H, W))
        for k, (i, j) in enumerate(corners):
            total[:, i:i + size, j:j + size] += drop[:, k, None, None]
            cover[i:i + size, j:j + size] += 1
        return unbatch((total / cover).astype(np.float32), single)


class RandomAttribution(AttributionMethod):
    """A seeded Gaussian noise map, the random baseline of the metrics.

    ``RandomAttribution(sess, input_tensor, output_tensor, target_class, seed=0)(X)``:
    images ``[N, H, W, C]`` -> ``[N, H, W]`` (one image ``[H, W, C]`` -> ``[H, W]``); other
    inputs -> their shape. It never runs the model; every call with the same seed gives the
    same map for the same shape.
    """

    api = "RandomAttribution(sess, input_tensor, output_tensor, target_class)"

    def __init__(self, sess, input_tensor, output_tensor, target_class=None, *, seed=0,
                 progress=True):
        self.seed = check_seed(seed)
        super().__init__(sess, input_tensor, output_tensor, target_class, progress=progress)

    def _define_ops(self):
        pass   # no op: the map does not look at the model

    def __call__(self, X, batch_size=DEFAULT_BATCH_SIZE, *, target_class=_UNSET):
        X, single = self._inputs(X)
        self._batch_size(batch_size)
        shape = X.shape[:3] if is_image_batch(X) else X.shape
        out = np.random.default_rng(self.seed).standard_normal(shape).astype(np.float32)
        return unbatch(out, single)


__all__ = ["SaliencyMap", "IntegratedGrad", "VanillaGradient", "SmoothGrad", "GradCAM",
           "Occlusion", "RandomAttribution", "new_session", "quadrature", "IG_METHODS",
           "DEFAULT_BATCH_SIZE"]
