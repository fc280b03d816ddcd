"""Influence-directed explanations (Leino et al. 2018) in TensorFlow graph mode.

Leino, Li, Sen, Datta, Fredrikson, "Influence-directed explanations for deep convolutional
networks", arXiv:1802.03788, 2018. The homework's API, exactly::

    infl = InflDirected(sess, input_tensor, internal_layer, output_tensor, qoi)
    expert = infl.dis_influence(X, batch_size=16)                  # an int
    A = infl.expert_attribution(expert, X, batch_size=16, multiply_with_input=True)

Definitions (DESIGN.md): the distributional influence of layer ``l`` for a quantity of
interest ``q`` over the distribution of interest ``X`` is
``I = (1/N) Σ_i ∂q(f(x_i)) / ∂h^l(x_i)``; the expert neuron is ``i* = argmax_i I[i]``; its
attribution is ``A(x) = x ⊙ ∇_x h^l_{i*}(x)``.

A quantity of interest maps ONE instance's output vector (pre-softmax scores ``[K]``) to a
scalar tensor, as in the starter code: ``lambda out: out[354]`` or
``lambda out: out[c1] - out[c2]``. The starter applies it with ``tf.map_fn``; here it is
vectorised with ``tf.vectorized_map`` (one op for the whole batch), falling back to
``tf.map_fn`` when the function cannot be vectorised. The homework's four quantities have
named helpers that need no lambda and share one op (class indices are fed):
:func:`qoi_class` (``s_c``, fixed c), :func:`qoi_predicted` (``s_c``, c the predicted class),
:func:`qoi_true` (``s_y``, y the true class: pass the labels ``y=`` to the call) and
:func:`qoi_difference` (``s_a - s_b`` for two of those terms, e.g. ``s_c1 - s_c2`` or
``s_predicted - s_true``). They are also plain callables ``q(out)`` (``qoi_true`` needs
``y``), so they work in the starter code too.
"""
import hashlib
import numbers
import warnings
from collections import namedtuple

import numpy as np
import tensorflow as tf

from hw3_attribution import (DEFAULT_BATCH_SIZE, AttributionMethod, LAYER_UNCONNECTED_ERROR,
                             cached_ops, check_input, check_output, check_positive_int,
                             check_session, check_targets, check_tensor, is_symbolic, unbatch)

tf1 = tf.compat.v1

API = "InflDirected(sess, input_tensor, internal_layer, output_tensor, qoi)"

# Error messages, kept as data so that tests match the same templates.
LAYER_SHAPE_ERROR = ("internal_layer: expected a layer whose unit dimensions are known, got "
                     "{name!r} of shape {shape}")
QOI_ERROR = ("qoi: expected a function from one instance's output vector [K] to a scalar "
             "tensor (e.g. lambda out: out[c]), a helper such as qoi_class(c), "
             "'predicted', 'true', an int class or a pair of those, got {actual!r}")
QOI_RANGE_ERROR = "qoi: expected class indices in [0, {k}), got {actual}"
QOI_SCALAR_ERROR = ("qoi: expected a function that maps one instance's output vector "
                    "{out} to a scalar tensor, got a tensor of shape {actual} per instance")
QOI_DTYPE_ERROR = ("qoi: expected a real-valued scalar (a float tensor, to differentiate), "
                   "got dtype {actual}")
QOI_CALL_ERROR = ("qoi: calling it on one instance's output vector {out} failed: "
                  "{reason}")
QOI_CONNECT_ERROR = ("qoi: expected a quantity that depends on the output scores, got "
                     "{actual!r} whose gradient with respect to internal_layer is None")
QOI_TRUE_ERROR = ("qoi: {qoi} uses the true class y, which a function of the output vector "
                  "alone cannot know; pass it to InflDirected and give y= to the call")
Y_MISSING_ERROR = "y: expected the true class of each input (qoi {qoi} uses it), got None"
DOI_EMPTY_ERROR = ("X: expected a non-empty distribution of interest (at least one "
                   "input), got {actual}")
EXPERT_ERROR = ("expert_id: expected an int (or one int per input) in [0, {units}) for "
                "internal_layer {layer!r} ({units} units), got {actual!r}")
K_ERROR = ("k: expected a positive int of at most {units} (the units of internal_layer "
           "{layer!r}), got {actual!r}")
NO_ACTIVE_ERROR = ("active_only: expected at least one unit of internal_layer {layer!r} to "
                   "be active on the distribution of interest, got none of {units} active on "
                   "{n} inputs")
MERGE_ERROR = "partials: expected partials of the same layer and qoi, got {actual}"
MERGE_EMPTY_ERROR = "partials: expected at least one partial, got none"
INACTIVE_WARNING = ("expert neuron(s) {units} of layer {layer!r} have activation 0 on all "
                    "{n} inputs of the distribution of interest, so their attribution "
                    "x * grad h is zero; the influence definition does not look at the "
                    "activation. Use active_only=True or multiply_activation=True for an "
                    "active expert.")


class InactiveExpertWarning(UserWarning):
    """The expert neuron is inactive (activation 0) on the whole distribution of interest."""


# ------------------------------------------------------------------ quantities of interest

def _is_int(v):
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_))


class QoI:
    """A quantity of interest: a scalar function of one instance's output vector."""

    needs_y = False


class ClassQoI(QoI):
    """``q(s) = s[plus] - s[minus]``; each term is ``'predicted'``, ``'true'`` or an int.

    ``minus=None`` drops the second term. Inside :class:`InflDirected` every ClassQoI
    shares one op: the class indices (``'predicted'`` is resolved to each row's argmax in
    the graph, ``'true'`` is fed from ``y``) and weights are fed per row.
    """

    def __init__(self, plus, minus=None):
        self.plus, self.minus = plus, minus
        self.needs_y = "true" in (plus, minus)

    def __call__(self, out, y=None):
        """The scalar for one instance's output vector ``out`` ``[K]`` (the starter's form)."""
        def term(t):
            if t == "predicted":
                return tf.gather(out, tf.argmax(out))
            if t == "true":
                if y is None:
                    raise ValueError(QOI_TRUE_ERROR.format(qoi=self))
                return tf.gather(out, y)
            return out[t]
        return term(self.plus) if self.minus is None else term(self.plus) - term(self.minus)

    def rows(self, y, sl):
        """Feed values ``(a, b, w_a, w_b)``, each ``[rows]``, for the rows ``sl``."""
        rows = sl.stop - sl.start

        def index(term):
            if term == "predicted":
                return np.full(rows, -1, np.int32)  # resolved to argmax in the graph
            if term == "true":
                return y[sl]
            return np.full(rows, term, np.int32)

        ones = np.ones(rows, np.float32)
        if self.minus is None:
            return index(self.plus), np.zeros(rows, np.int32), ones, np.zeros_like(ones)
        return index(self.plus), index(self.minus), ones, ones

    def __repr__(self):
        def term(t):
            return "s_" + (t if isinstance(t, str) else str(t))
        return term(self.plus) + ("" if self.minus is None else " - " + term(self.minus))


class FunctionQoI(QoI):
    """A user's callable ``fn(out [K]) -> scalar``, vectorised over the batch."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, out, y=None):
        return self.fn(out)

    def __repr__(self):
        """The function's name, place and a digest of its code and constants: the same
        function gives the same label in every process (so shards merge), two different
        lambdas give different ones (so their partials do not)."""
        fn = self.fn
        code = getattr(fn, "__code__", None)
        name = getattr(fn, "__qualname__", type(fn).__name__)
        if code is None:
            return f"fn:{name}"
        cells = tuple(repr(c.cell_contents) for c in (getattr(fn, "__closure__", None) or ()))
        digest = hashlib.sha1(repr((code.co_code, code.co_consts, code.co_names,
                                    cells)).encode()).hexdigest()[:10]
        return f"fn:{name}@{getattr(fn, '__module__', '?')}:{code.co_firstlineno}#{digest}"


def qoi_class(c):
    """``s_c``: the pre-softmax score of a fixed class ``c`` (an int)."""
    return as_qoi(c)


def qoi_predicted():
    """``s_c`` with ``c = argmax f(x)``, each input's predicted class."""
    return ClassQoI("predicted")


def qoi_true():
    """``s_y`` with ``y`` each input's true class (give ``y=`` to the influence call)."""
    return ClassQoI("true")


def qoi_difference(a, b):
    """``s_a - s_b``; ``a`` and ``b`` are each an int class, ``'predicted'`` or ``'true'``.

    ``qoi_difference(c1, c2)`` separates two classes (exercise 13);
    ``qoi_difference('predicted', 'true')`` is ``s_c - s_y``.
    """
    return as_qoi((a, b))


def as_qoi(qoi, k=None):
    """Turn a loose user argument into a :class:`QoI` (the one place that parses them).

    Args:
        qoi: a callable on one instance's output vector, a :class:`QoI`, 'predicted',
            'true', an int class, or a pair of those terms ``(a, b)`` meaning ``s_a - s_b``.
        k: the number of classes, for the range check (None: unchecked).
    Raises:
        TypeError: an unrecognised form. ValueError: a class index outside ``[0, k)``.
    """
    if isinstance(qoi, QoI):
        out = [t for t in (getattr(qoi, "plus", None), getattr(qoi, "minus", None))
               if _is_int(t)]
    elif isinstance(qoi, str) or _is_int(qoi):
        terms = [qoi]
    elif isinstance(qoi, (tuple, list)) and len(qoi) == 2:
        terms = list(qoi)
    elif callable(qoi):
        return FunctionQoI(qoi)
    else:
        raise TypeError(QOI_ERROR.format(actual=qoi))
    if not isinstance(qoi, QoI):
        out = []
        for t in terms:
            if isinstance(t, str) and t in ("predicted", "true"):
                out.append(t)
            elif _is_int(t):
                out.append(int(t))
            else:
                raise TypeError(QOI_ERROR.format(actual=qoi))
        qoi = ClassQoI(*out)
        out = [t for t in out if isinstance(t, int)]
    bad = [t for t in out if t < 0 or (k is not None and t >= k)]
    if bad:
        raise ValueError(QOI_RANGE_ERROR.format(k=k, actual=bad))
    return qoi


# ------------------------------------------------------------------------ partial sums

InfluencePartial = namedtuple(
    "InfluencePartial", "grad_sum count act_sum active_count layer qoi")
InfluencePartial.__doc__ = """Sums over one shard of the distribution of interest.

    grad_sum: float64, the layer's shape (e.g. [units] or [H, W, C]): sum over rows of
        dq/dh. count: the number of rows. act_sum: float64, same shape: sum over rows of h.
    active_count: int64, same shape: rows where h != 0. layer, qoi: names, checked by merge.
    """


def merge(partials):
    """Combine :class:`InfluencePartial` shards exactly (sums add, counts add)."""
    partials = list(partials)
    if not partials:
        raise ValueError(MERGE_EMPTY_ERROR)
    keys = {(p.layer, p.qoi, np.shape(p.grad_sum)) for p in partials}
    if len(keys) != 1:
        raise ValueError(MERGE_ERROR.format(actual=sorted(map(str, keys))))
    first = partials[0]
    return InfluencePartial(
        grad_sum=sum(np.asarray(p.grad_sum, np.float64) for p in partials),
        count=int(sum(p.count for p in partials)),
        act_sum=sum(np.asarray(p.act_sum, np.float64) for p in partials),
        active_count=sum(np.asarray(p.active_count, np.int64) for p in partials),
        layer=first.layer, qoi=first.qoi)


# ------------------------------------------------------------------------------ ops

class InflOps:
    """Ops of one (input, internal layer, output) triple, built once per graph."""

    def __init__(self, x, h, out, pred):
        shape = h.shape.as_list()
        self.conv = len(shape) == 4
        unit_dims = shape[-1:] if self.conv else shape[1:]
        if any(d is None for d in unit_dims):
            raise ValueError(LAYER_SHAPE_ERROR.format(name=h.name, shape=shape))
        self.layer_shape = tuple(shape[1:])
        self.units = int(np.prod(unit_dims))
        with tf1.name_scope("hw3_infl"):
            # The built-in QoIs: q = Σ_r w_a[r] s[r, a[r]] - w_b[r] s[r, b[r]]; index -1
            # is the row's predicted class. Rows are independent, so dq/dh[r] is the
            # per-row gradient of that row's quantity.
            self.qa = tf1.placeholder(tf.int32, [None], name="qoi_a")
            self.qb = tf1.placeholder(tf.int32, [None], name="qoi_b")
            self.wa = tf1.placeholder(tf.float32, [None], name="qoi_wa")
            self.wb = tf1.placeholder(tf.float32, [None], name="qoi_wb")
            a = tf.where(self.qa < 0, pred, self.qa)
            b = tf.where(self.qb < 0, pred, self.qb)
            q = tf.reduce_sum(self.wa * tf.gather(out, a, axis=1, batch_dims=1)
                              - self.wb * tf.gather(out, b, axis=1, batch_dims=1))
            self.class_grad_sum = grad_sum(q, h, "internal_layer")
            self.act_sum = tf.reduce_sum(h, axis=0)                         # layer shape
            self.active = tf.reduce_sum(tf.cast(tf.not_equal(h, 0), tf.int32), axis=0)
            # Expert attribution: one op, the neuron fed per row.
            unit_acts = (tf.reduce_sum(h, axis=[1, 2]) if self.conv       # [N, C]
                         else tf.reshape(h, [-1, self.units]))              # [N, units]
            self.neuron = tf1.placeholder(tf.int32, [None], name="neuron")
            sel = tf.gather(unit_acts, self.neuron, axis=1, batch_dims=1)  # [N]
            self.grad_x = tf.gradients(sel, x)[0]
            if self.grad_x is None:
                raise ValueError(LAYER_UNCONNECTED_ERROR.format(arg="internal_layer",
                                                                name=h.name))
            self.attr = x * self.grad_x
            self.input_grads = (self.grad_x,)


def grad_sum(q, h, arg, qoi=None):
    """``Σ_rows ∂q/∂h`` (the layer's shape)."""
    g = tf.gradients(q, h)[0]                                     # [N, *layer shape]
    if g is None:
        if qoi is not None:
            raise ValueError(QOI_CONNECT_ERROR.format(actual=qoi))
        raise ValueError(LAYER_UNCONNECTED_ERROR.format(arg=arg, name=h.name))
    return tf.reduce_sum(g, axis=0)


def check_qoi_function(fn, out, qoi):
    """Check a user's QoI function on a stand-in output vector ``[K]`` in a scratch graph,
    so that a rejected function adds no op to the model's graph: it must accept the vector,
    return a float scalar and depend on it. A function that reads tensors of the model's
    own graph cannot run on the stand-in; it is checked when its op is built instead
    (:func:`vectorize_qoi`)."""
    k = out.shape.as_list()[1:]
    with tf.Graph().as_default():
        stand_in = tf1.placeholder(out.dtype, k)
        try:
            q = tf.convert_to_tensor(fn(stand_in))
        except Exception as err:   # the function does not accept a [K] tensor
            if "graph" in str(err).lower():
                return             # it reads the model's graph: checked there
            raise TypeError(QOI_CALL_ERROR.format(out=k, reason=f"{type(err).__name__}: {err}"))
        if q.shape.rank != 0:
            raise ValueError(QOI_SCALAR_ERROR.format(out=k, actual=q.shape.as_list()))
        if not q.dtype.is_floating:
            raise TypeError(QOI_DTYPE_ERROR.format(actual=q.dtype.name))
        if tf.gradients(q, stand_in)[0] is None:
            raise ValueError(QOI_CONNECT_ERROR.format(actual=qoi))


def vectorize_qoi(fn, out):
    """``[N]``: ``fn`` applied to each row of ``out`` ``[N, K]`` (vectorized_map, else
    map_fn); raises a clear error unless ``fn`` gives a scalar per row."""
    k = out.shape.as_list()[1:]
    try:
        per_row = tf.convert_to_tensor(fn(out[0]))
    except Exception as err:   # the function does not accept a [K] tensor
        raise TypeError(QOI_CALL_ERROR.format(out=k, reason=f"{type(err).__name__}: {err}"))
    if per_row.shape.rank != 0:
        raise ValueError(QOI_SCALAR_ERROR.format(out=k, actual=per_row.shape.as_list()))
    if not per_row.dtype.is_floating:
        raise TypeError(QOI_DTYPE_ERROR.format(actual=per_row.dtype.name))
    try:
        return tf.vectorized_map(fn, out, fallback_to_while_loop=True)
    except Exception:   # not vectorisable: the starter's loop
        return tf.map_fn(fn, out, fn_output_signature=per_row.dtype)


# ------------------------------------------------------------------------ the method

class InflDirected(AttributionMethod):
    """Influence-directed explanations (Leino et al. 2018, arXiv:1802.03788).

    Args:
        sess: the session whose graph holds the model.
        input_tensor: the model's input placeholder (images ``[None, H, W, 3]``, RGB 0-255).
        internal_layer: the layer's tensor (VGG16: ``model.fc1``; EfficientNet-Lite0:
            ``model.layers['head_pool']``).
        output_tensor: the pre-softmax scores ``[None, K]`` (VGG16: ``model.fc3l``).
        qoi: the quantity of interest, a function of ONE instance's output vector (see the
            module docstring), a helper's QoI, or 'predicted', 'true', an int class, a pair
            ``(a, b)`` (``s_a - s_b``). Default: the predicted class's score.
        progress: tqdm progress bars on stderr (keyword only).

    Units: a 4-D layer ``[N, H, W, C]`` is a conv layer whose units are its C channels (a
    channel's value is its activation summed over spatial positions); any other layer's
    units are its elements, flattened.

    Dead experts: the definition's influence is a pure gradient dq/dh and does not look at
    the neuron's own value, so the most influential unit may be 0 (a dead ReLU) on every
    input of the distribution; its attribution ``x ⊙ ∇h`` is then all zeros.
    :meth:`dis_influence` follows the definition by default but warns
    (:class:`InactiveExpertWarning`) and sets ``last_info['expert_inactive']``; pass
    ``multiply_activation=True`` to rank by influence x mean activation (as TruLens'
    ``InternalInfluence``), or ``active_only=True`` for the most influential unit among
    those non-zero on at least one input.
    """

    api = API

    def __init__(self, sess, input_tensor, internal_layer, output_tensor, qoi=None, *,
                 progress=True):
        check_session(sess, API)
        check_input(input_tensor, sess)
        self.internal_layer = check_tensor(internal_layer, "internal_layer", sess)
        k = check_output(output_tensor, sess)
        self.qoi = as_qoi("predicted" if qoi is None else qoi, k)
        super().__init__(sess, input_tensor, output_tensor, None, progress=progress)

    # -------------------------------------------------------------------------- graph
    def _define_ops(self):
        # every check that can fail runs before the first op is built: a constructor that
        # raises leaves the graph as it was
        self._runner.check_layer(self.internal_layer)
        if isinstance(self.qoi, FunctionQoI):
            check_qoi_function(self.qoi.fn, self.output_tensor, self.qoi)
        super()._define_ops()
        x, h, out = self.input_tensor, self.internal_layer, self.output_tensor
        self._infl = cached_ops(x.graph, ("infl", x.name, h.name, out.name),
                                lambda: InflOps(x, h, out, self._ops.pred))
        self.units = self._infl.units
        self.layer = h.name
        if isinstance(self.qoi, FunctionQoI):
            fn = self.qoi.fn
            key = ("infl_fn", x.name, h.name, out.name, id(fn))
            # (fn, op): keeping fn alive means its id is never reused by another function
            self._fn_grad_sum = cached_ops(x.graph, key, lambda: (fn, self._fn_op(fn)))[1]

    def _fn_op(self, fn):
        with tf1.name_scope("hw3_infl_fn"):
            q = vectorize_qoi(fn, self.output_tensor)                     # [N]
            return grad_sum(tf.reduce_sum(q), self.internal_layer, "internal_layer",
                            self.qoi)

    # ------------------------------------------------------------------------ influence
    def influence_partial(self, X, batch_size=DEFAULT_BATCH_SIZE, *, y=None, feed_dict=None):
        """Sums over one shard of the distribution of interest, for :func:`merge`.

        Args:
            X: inputs ``[N, ...]`` (or one input), N >= 1.
            batch_size: inputs per ``sess.run``.
            y: true classes ``[N]`` (ints), needed by QoIs that use the true class.
            feed_dict: values of the graph's other placeholders (a dropout rate,
                ``is_training``), merged into each ``sess.run`` (every method of this
                class takes it).
        Returns:
            :class:`InfluencePartial` (a tuple starting ``(grad_sum, count, ...)``).
        """
        if not is_symbolic(X) and np.size(X) == 0:
            raise ValueError(DOI_EMPTY_ERROR.format(actual=f"shape {list(np.shape(X))}"))
        X, _, run = self._begin(X, feed_dict)
        bs = check_positive_int(batch_size, "batch_size")
        n = len(X)
        ops, x = self._infl, self.input_tensor
        fetch = {"act": ops.act_sum, "active": ops.active}
        if isinstance(self.qoi, ClassQoI):
            if self.qoi.needs_y and y is None:
                raise ValueError(Y_MISSING_ERROR.format(qoi=self.qoi))
            yy = check_targets(y, n, self.num_classes, "y") if self.qoi.needs_y else None
            fetch["grad"] = ops.class_grad_sum

            def feed(sl):
                a, b, wa, wb = self.qoi.rows(yy, sl)
                return {x: X[sl], ops.qa: a, ops.qb: b, ops.wa: wa, ops.wb: wb}
        else:
            fetch["grad"] = self._fn_grad_sum

            def feed(sl):
                return {x: X[sl]}

        grad = np.zeros(ops.layer_shape, np.float64)
        act = np.zeros(ops.layer_shape, np.float64)
        active = np.zeros(ops.layer_shape, np.int64)
        for _, val in run.chunks(fetch, n, feed, "influence", bs):
            grad += val["grad"]
            act += val["act"]
            active += val["active"]
        return InfluencePartial(grad, n, act, active, self.layer, repr(self.qoi))

    merge = staticmethod(merge)

    def influence_from_partial(self, partial, keep_map=False, multiply_activation=False):
        """The influence from (merged) partial sums; see :meth:`influence`."""
        infl = partial.grad_sum / partial.count                    # layer shape
        if multiply_activation:
            infl = infl * (partial.act_sum / partial.count)
        if self._infl.conv and not keep_map:
            infl = infl.sum(axis=(0, 1))                           # [C]
        return infl

    def influence(self, X, batch_size=DEFAULT_BATCH_SIZE, *, y=None, keep_map=False,
                  multiply_activation=False, feed_dict=None):
        """Distributional influence ``I = (1/N) Σ_i ∂q(f(x_i)) / ∂h(x_i)`` of the layer.

        Args:
            X: the distribution of interest, inputs ``[N, ...]`` (N >= 1), streamed in
                batches of ``batch_size``.
            y: true classes ``[N]``, for QoIs that use the true class.
            keep_map: for a conv layer, return the full ``[H, W, C]`` map instead of the
                channel sums ``[C]``.
            multiply_activation: multiply elementwise by the mean activation over the
                distribution (then sum over space for channels), as TruLens'
                ``InternalInfluence(multiply_activation=True)``; not the homework's default.
        Returns:
            float64 ``[C]`` for a conv layer (``[H, W, C]`` with keep_map), else the layer's
            own unit shape (``[units]`` for a dense layer), in output units per unit of h.
        """
        part = self.influence_partial(X, batch_size, y=y, feed_dict=feed_dict)
        return self.influence_from_partial(part, keep_map, multiply_activation)

    # --------------------------------------------------------------------------- expert
    def dis_influence(self, X, batch_size=DEFAULT_BATCH_SIZE, *, y=None, k=1,
                      multiply_activation=False, active_only=False, feed_dict=None):
        """The expert neuron ``argmax_i I[i]`` over the distribution of interest ``X``.

        Args:
            X: the distribution of interest ``[N, ...]``.
            batch_size: inputs per ``sess.run``.
            y, multiply_activation: as :meth:`influence`.
            k: how many experts to return (most influential first).
            active_only: rank only units that are non-zero on at least one input of the
                distribution (a conv channel: anywhere in its map).
        Returns:
            int (k=1) or int64 array ``[k]``: indices into the layer's units (channels for a
            conv layer, flattened elements otherwise). ``self.last_info`` holds the
            influence, which experts are inactive and the unit activity.
        Warns:
            InactiveExpertWarning: an expert has activation 0 on every input.
        """
        part = self.influence_partial(X, batch_size, y=y, feed_dict=feed_dict)
        return self.expert_from_partial(part, k, multiply_activation, active_only)

    def expert_from_partial(self, partial, k=1, multiply_activation=False,
                            active_only=False):
        """:meth:`dis_influence` from (merged) partial sums."""
        units = self.units
        if not _is_int(k) or not 1 <= k <= units:
            raise ValueError(K_ERROR.format(units=units, layer=self.layer, actual=k))
        infl = self.influence_from_partial(partial, False, multiply_activation).reshape(-1)
        act = np.asarray(partial.active_count)
        active = (act.sum(axis=(0, 1)) if self._infl.conv else act.reshape(-1)) > 0
        score = infl.copy()
        if active_only:
            if not active.any():
                raise ValueError(NO_ACTIVE_ERROR.format(layer=self.layer, units=units,
                                                        n=partial.count))
            score[~active] = -np.inf
        top = np.argsort(-score, kind="stable")[:k]
        inactive = [int(i) for i in top if not active[i]]
        self.last_info = {
            "layer": self.layer, "qoi": partial.qoi, "n": partial.count,
            "influence": infl, "expert": top.copy(), "active": active,
            "expert_inactive": bool(inactive), "inactive_experts": inactive,
            "multiply_activation": multiply_activation, "active_only": active_only}
        if inactive:
            warnings.warn(INACTIVE_WARNING.format(units=inactive, layer=self.layer,
                                                  n=partial.count),
                          InactiveExpertWarning, stacklevel=3)
        return int(top[0]) if k == 1 else top.astype(np.int64)

    # ---------------------------------------------------------------------- attribution
    def expert_attribution(self, expert_id, X, batch_size=DEFAULT_BATCH_SIZE,
                           multiply_with_input=True, *, feed_dict=None):
        """Expert attribution ``x ⊙ ∇_x h_{expert}(x)`` (or ``∇_x h_{expert}(x)``).

        Args:
            expert_id: an int unit index (a channel for a conv layer, whose value is the
                channel summed over space), or one per input.
            X: inputs ``[N, ...]`` or one input (images RGB 0-255).
            batch_size: inputs per ``sess.run``.
            multiply_with_input: multiply the gradient by ``x`` (the definition).
        Returns:
            float32 of ``X``'s shape.
        """
        X, single, run = self._begin(X, feed_dict)
        bs = check_positive_int(batch_size, "batch_size")
        idx = self._neurons(expert_id, len(X))
        fetch = self._infl.attr if multiply_with_input else self._infl.grad_x
        out = run.collect(
            fetch, len(X), lambda s: {self.input_tensor: X[s], self._infl.neuron: idx[s]},
            "expert attribution", bs, dtype=X.dtype)
        return unbatch(out, single)

    def _neurons(self, neuron, n):
        if is_symbolic(neuron):
            raise TypeError(EXPERT_ERROR.format(units=self.units, layer=self.layer,
                                                actual=neuron))
        arr = np.asarray(neuron)
        units = self.units
        ok = (arr.dtype != object and np.issubdtype(arr.dtype, np.integer)
              and arr.ndim in (0, 1) and (arr.ndim == 0 or len(arr) == n))
        if not ok or isinstance(neuron, (bool, np.bool_)):
            raise TypeError(EXPERT_ERROR.format(units=units, layer=self.layer, actual=neuron))
        if np.any((arr < 0) | (arr >= units)):
            raise ValueError(EXPERT_ERROR.format(units=units, layer=self.layer,
                                                 actual=neuron))
        return np.broadcast_to(arr, (n,)).astype(np.int32)


__all__ = ["InflDirected", "InactiveExpertWarning", "InfluencePartial", "merge", "QoI",
           "ClassQoI", "FunctionQoI", "as_qoi", "qoi_class", "qoi_predicted", "qoi_true",
           "qoi_difference"]
