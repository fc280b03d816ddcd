"""Influence-directed explanations (Leino et al. 2018) in TensorFlow graph mode.

Leino, Li, Sen, Datta, Fredrikson, "Influence-directed explanations for deep convolutional
networks", arXiv:1802.03788, 2018. Definitions as in the homework (see DESIGN.md):

- distributional influence of layer ``l`` for a quantity of interest ``q`` over a
  distribution of interest ``X``: ``I = (1/N) sum_i dq(f(x_i)) / dh^l(x_i)``;
- expert neuron ``i* = argmax_i I[i]``;
- expert attribution ``A(x) = x * grad_x h^l_{i*}(x)`` (pixel space, shape of ``x``).

A quantity of interest is a small object made in one place (:func:`as_qoi`) from the loose
forms users pass: ``'predicted'``, an int ``c``, ``'true'`` (with ``y``),
``('predicted', 'true')``, a pair of ints ``(c1, c2)``, or a callable on the logits tensor.
Every built-in form is a row-wise difference of two class scores
``w_a[r] * s[r, a[r]] - w_b[r] * s[r, b[r]]`` with fed class indices and weights, so ONE
gradient op serves all of them; a callable gets its own op, built on first use and cached.
"""
import numbers
import warnings
from collections import namedtuple

import numpy as np
import tensorflow as tf

from hw3_attribution import (AttributionMethod, as_batch, check_model, check_targets,
                             num_classes, unbatch)

tf1 = tf.compat.v1

# Error messages, kept as data so that tests match the same templates.
LAYER_ERROR = "layer: expected one of the model's layers {valid}, got {actual!r}"
LAYER_DEFAULT_ERROR = ("layer: model {model} names no default influence layer "
                       "(model.default_layers['influence']); pass one of {valid}")
LAYER_SHAPE_ERROR = ("layer: expected a layer whose unit dimensions are known, got "
                     "{name!r} of shape {shape}")
LAYER_UNCONNECTED_ERROR = "layer: expected a layer between {start} and {end}, got {name!r}"
QOI_ERROR = ("qoi: expected 'predicted', 'true', an int class, ('predicted', 'true'), "
             "a pair of ints (c1, c2) or a callable on the logits tensor, got {actual!r}")
QOI_RANGE_ERROR = "qoi: expected class indices in [0, {k}), got {actual}"
QOI_RANK_ERROR = ("qoi: expected the callable to return one scalar per row, shape [N], "
                  "got a tensor of shape {actual}")
Y_MISSING_ERROR = "y: expected the true class of each input (qoi {qoi} uses it), got None"
DOI_EMPTY_ERROR = ("X_doi: expected a non-empty distribution of interest (at least one "
                   "input), got {actual}")
NEURON_ERROR = ("neuron: expected an int (or one int per input) in [0, {units}) for layer "
                "{layer!r}, got {actual!r}")
K_ERROR = "k: expected a positive int of at most {units} (the units of layer {layer!r}), got {actual!r}"
NO_ACTIVE_ERROR = ("active_only: expected at least one unit of layer {layer!r} to be active "
                   "on the distribution of interest, got none of {units} active on {n} inputs")
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

class QoI:
    """A quantity of interest: a function of the logits ``[N, K]`` giving one scalar per row."""

    needs_y = False


class ClassQoI(QoI):
    """``q(s)[r] = s[r, plus_r] - s[r, minus_r]``; each term is 'predicted', 'true' or an int.

    ``minus=None`` drops the second term. 'predicted' is each row's own argmax, taken in the
    same ``sess.run`` as the gradient (fed as -1 and resolved in the graph).
    """

    def __init__(self, plus, minus=None):
        self.plus, self.minus = plus, minus
        self.needs_y = "true" in (plus, minus)

    def rows(self, y, sl):
        """Feed values ``(a, b, w_a, w_b)``, each ``[rows]``, for the rows ``sl``.

        ``y`` is the int32 true class of every input ``[N]`` (or None if unused).
        """
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
    """A user's callable ``fn(logits) -> [N]``; its gradient op is built once per callable."""

    def __init__(self, fn):
        self.fn = fn

    def __repr__(self):
        return "fn:" + getattr(self.fn, "__qualname__", repr(self.fn))


def _is_int(v):
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_))


def as_qoi(qoi, k):
    """Turn a loose user argument into a :class:`QoI` (the one place that parses them).

    Args:
        qoi: 'predicted', 'true', an int class, ('predicted', 'true'), a pair of ints
            ``(c1, c2)``, any pair of those terms, a callable on the logits tensor, or a QoI.
        k: the number of classes, for the range check.
    Raises:
        TypeError: an unrecognised form. ValueError: a class index outside ``[0, k)``.
    """
    if isinstance(qoi, QoI):
        return qoi
    if isinstance(qoi, str) or _is_int(qoi):
        terms = [qoi]
    elif isinstance(qoi, (tuple, list)) and len(qoi) == 2:
        terms = list(qoi)
    elif callable(qoi):
        return FunctionQoI(qoi)
    else:
        raise TypeError(QOI_ERROR.format(actual=qoi))
    out = []
    for t in terms:
        if isinstance(t, str) and t in ("predicted", "true"):
            out.append(t)
        elif _is_int(t):
            out.append(int(t))
        else:
            raise TypeError(QOI_ERROR.format(actual=qoi))
    bad = [t for t in out if isinstance(t, int) and not 0 <= t < k]
    if bad:
        raise ValueError(QOI_RANGE_ERROR.format(k=k, actual=bad))
    return ClassQoI(*out)


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


# ------------------------------------------------------------------------ the method

class InflDirected(AttributionMethod):
    """Influence-directed explanations (Leino et al. 2018, arXiv:1802.03788).

    Args:
        model: an object with the model contract (DESIGN.md); inputs ``[N, ...]``, images
            RGB 0-255.
        sess: the session whose graph holds the model.
        layer: a name in ``model.layers``; default ``model.default_layers['influence']``
            (or ``'fc1'``, the homework's layer, for a model without default_layers).
        batch_size: the most inputs one ``sess.run`` sees.
        progress: show a tqdm progress bar on stderr.

    Units: a 4-D layer ``[N, H, W, C]`` is a conv layer whose units are its C channels (a
    channel's value is its activation summed over spatial positions); any other layer's
    units are its elements, flattened.

    Dead experts: the definition's influence is a pure gradient dq/dh and does not look at
    the neuron's own value, so the most influential unit may be one that is 0 (a dead ReLU)
    on every input of the distribution; its attribution ``x * grad h`` is then all zeros.
    :meth:`expert` follows the definition by default but warns
    (:class:`InactiveExpertWarning`) and sets ``last_info['expert_inactive']``; pass
    ``multiply_activation=True`` to rank by influence x mean activation (as TruLens'
    ``InternalInfluence`` multiplies by the activation), or ``active_only=True`` to take the
    most influential unit among those non-zero on at least one input.
    """

    def __init__(self, model, sess, layer=None, batch_size=32, progress=True):
        check_model(model)
        valid = list(model.layers)
        if layer is None:
            layer = getattr(model, "default_layers", {}).get("influence")
            if layer is None and "fc1" in model.layers:
                layer = "fc1"
            if layer is None:
                raise ValueError(LAYER_DEFAULT_ERROR.format(model=model.name, valid=valid))
        if not isinstance(layer, str) or layer not in model.layers:
            raise ValueError(LAYER_ERROR.format(valid=valid, actual=layer))
        self.layer = layer
        self.last_info = {}
        self._fn_ops = {}  # callable -> its grad-sum op, built on first use
        super().__init__(model, sess, batch_size=batch_size, progress=progress)

    # -------------------------------------------------------------------------- graph

    def _define_ops(self):
        super()._define_ops()
        h = self.model.layers[self.layer]
        shape = h.shape.as_list()
        self._conv = len(shape) == 4
        unit_dims = shape[-1:] if self._conv else shape[1:]
        if any(d is None for d in unit_dims):
            raise ValueError(LAYER_SHAPE_ERROR.format(name=self.layer, shape=shape))
        self._layer_shape = tuple(shape[1:])
        self.units = int(np.prod(unit_dims))
        self._h = h
        logits = self.model.logits
        with tf1.name_scope("hw3_infl"):
            # The built-in QoIs: q = sum_r w_a[r] s[r, a[r]] - w_b[r] s[r, b[r]]; index -1
            # means the row's predicted class. Rows are independent, so d q / d h[r] is the
            # per-row gradient of that row's quantity.
            self._qa = tf1.placeholder(tf.int32, [None], name="qoi_a")
            self._qb = tf1.placeholder(tf.int32, [None], name="qoi_b")
            self._wa = tf1.placeholder(tf.float32, [None], name="qoi_wa")
            self._wb = tf1.placeholder(tf.float32, [None], name="qoi_wb")
            a = tf.where(self._qa < 0, self._pred, self._qa)
            b = tf.where(self._qb < 0, self._pred, self._qb)
            q = tf.reduce_sum(self._wa * tf.gather(logits, a, axis=1, batch_dims=1)
                              - self._wb * tf.gather(logits, b, axis=1, batch_dims=1))
            self._class_grad_sum = self._grad_sum_op(q)             # layer shape
            self._act_sum = tf.reduce_sum(h, axis=0)                # layer shape
            self._active = tf.reduce_sum(tf.cast(tf.not_equal(h, 0), tf.int32), axis=0)
            # Expert attribution: one op, the neuron fed per row.
            if self._conv:
                unit_acts = tf.reduce_sum(h, axis=[1, 2])           # [N, C]
            else:
                unit_acts = tf.reshape(h, [-1, self.units])         # [N, units]
            self._neuron = tf1.placeholder(tf.int32, [None], name="neuron")
            sel = tf.gather(unit_acts, self._neuron, axis=1, batch_dims=1)   # [N]
            gx = tf.gradients(sel, self.model.imgs)[0]
            if gx is None:
                raise ValueError(LAYER_UNCONNECTED_ERROR.format(
                    start="the input", end="the logits", name=self.layer))
            self._attr = self.model.imgs * gx

    def _grad_sum_op(self, q):
        g = tf.gradients(q, self._h)[0]                             # [N, *layer shape]
        if g is None:
            raise ValueError(LAYER_UNCONNECTED_ERROR.format(
                start="the input", end="the logits", name=self.layer))
        return tf.reduce_sum(g, axis=0)

    def _fn_op(self, fn):
        """The grad-sum op of a callable QoI, built once per callable object."""
        key = fn if getattr(type(fn), "__hash__", None) else id(fn)
        op = self._fn_ops.get(key, (None, None))[1]
        if op is None:
            with self.model.imgs.graph.as_default(), tf1.name_scope("hw3_infl_fn"):
                q = tf.convert_to_tensor(fn(self.model.logits))
                rank = q.shape.rank
                if rank == 2 and q.shape[1] == 1:
                    q = q[:, 0]
                elif rank is not None and rank != 1:
                    raise ValueError(QOI_RANK_ERROR.format(actual=q.shape.as_list()))
                op = self._grad_sum_op(tf.reduce_sum(q))
            self._fn_ops[key] = (fn, op)  # keep fn alive so an id key is never reused
        return op

    # ------------------------------------------------------------------------ influence

    def influence_partial(self, X_doi, qoi="predicted", y=None, batch_size=None):
        """Sums over one shard of the distribution of interest, for :func:`merge`.

        Args:
            X_doi: inputs ``[N, ...]`` (or one input), N >= 1.
            qoi: a quantity of interest (see :func:`as_qoi`).
            y: true classes ``[N]`` (ints), needed by QoIs that use 'true'.
        Returns:
            :class:`InfluencePartial` (a tuple starting ``(grad_sum, count, ...)``).
        """
        if np.size(X_doi) == 0:
            raise ValueError(DOI_EMPTY_ERROR.format(actual=f"shape {list(np.shape(X_doi))}"))
        X, _ = as_batch(X_doi, self.model, "X_doi")
        n = len(X)
        q = as_qoi(qoi, num_classes(self.model))
        fetch = {"act": self._act_sum, "active": self._active}
        if isinstance(q, ClassQoI):
            if q.needs_y and y is None:
                raise ValueError(Y_MISSING_ERROR.format(qoi=q))
            yy = check_targets(y, n, num_classes(self.model), "y") if q.needs_y else None
            fetch["grad"] = self._class_grad_sum

            def feed(sl):
                a, b, wa, wb = q.rows(yy, sl)
                return {self.model.imgs: X[sl], self._qa: a, self._qb: b,
                        self._wa: wa, self._wb: wb}
        else:
            fetch["grad"] = self._fn_op(q.fn)

            def feed(sl):
                return {self.model.imgs: X[sl]}

        grad = np.zeros(self._layer_shape, np.float64)
        act = np.zeros(self._layer_shape, np.float64)
        active = np.zeros(self._layer_shape, np.int64)
        for _, val in self._run_batched(fetch, n, feed, desc="influence",
                                        batch_size=batch_size):
            grad += val["grad"]
            act += val["act"]
            active += val["active"]
        return InfluencePartial(grad, n, act, active, self.layer, repr(q))

    merge = staticmethod(merge)

    def influence_from_partial(self, partial, keep_map=False, multiply_activation=False):
        """The influence from (merged) partial sums; see :meth:`influence`."""
        infl = partial.grad_sum / partial.count                    # layer shape
        if multiply_activation:
            infl = infl * (partial.act_sum / partial.count)
        if self._conv and not keep_map:
            infl = infl.sum(axis=(0, 1))                           # [C]
        return infl

    def influence(self, X_doi, qoi="predicted", y=None, keep_map=False,
                  multiply_activation=False, batch_size=None):
        """Distributional influence ``I = (1/N) sum_i dq(f(x_i)) / dh(x_i)`` of the layer.

        Args:
            X_doi: the distribution of interest, inputs ``[N, ...]`` (N >= 1), streamed in
                batches of ``batch_size``.
            qoi: 'predicted' (s_c, c each input's predicted class), an int c (s_c), 'true'
                (s_y, needs y), ('predicted', 'true') (s_c - s_y, needs y), a pair of ints
                (c1, c2) (s_c1 - s_c2), or a callable ``fn(logits [N, K]) -> [N]``.
            y: true classes ``[N]``, for QoIs that use 'true'.
            keep_map: for a conv layer, return the full ``[H, W, C]`` map instead of the
                channel sums ``[C]``.
            multiply_activation: multiply elementwise by the mean activation over the
                distribution (then sum over space for channels), as TruLens'
                ``InternalInfluence(multiply_activation=True)``; not the homework's default.
        Returns:
            float64 ``[C]`` for a conv layer (``[H, W, C]`` with keep_map), else the layer's
            own unit shape (``[units]`` for a dense layer), in logit units per unit of h.
        """
        part = self.influence_partial(X_doi, qoi, y, batch_size=batch_size)
        return self.influence_from_partial(part, keep_map, multiply_activation)

    # --------------------------------------------------------------------------- expert

    def expert(self, X_doi, qoi="predicted", y=None, k=1, multiply_activation=False,
               active_only=False, batch_size=None):
        """The expert neuron ``argmax_i I[i]`` (top-k, most influential first, with k > 1).

        Args: as :meth:`influence`, plus
            k: how many experts to return.
            active_only: rank only units that are non-zero on at least one input of the
                distribution (a conv channel: anywhere in its map).
        Returns:
            int (k=1) or int64 array ``[k]``: indices into the layer's units (channels for a
            conv layer, flattened elements otherwise). ``self.last_info`` holds the
            influence, which experts are inactive and the unit activity.
        Warns:
            InactiveExpertWarning: an expert has activation 0 on every input.
        """
        part = self.influence_partial(X_doi, qoi, y, batch_size=batch_size)
        return self.expert_from_partial(part, k, multiply_activation, active_only)

    def expert_from_partial(self, partial, k=1, multiply_activation=False,
                            active_only=False):
        """:meth:`expert` from (merged) partial sums."""
        if not _is_int(k) or not 1 <= k <= self.units:
            raise ValueError(K_ERROR.format(units=self.units, layer=self.layer, actual=k))
        infl = self.influence_from_partial(partial, False, multiply_activation).reshape(-1)
        act = np.asarray(partial.active_count)
        active = (act.sum(axis=(0, 1)) if self._conv else act.reshape(-1)) > 0   # [units]
        score = infl.copy()
        if active_only:
            if not active.any():
                raise ValueError(NO_ACTIVE_ERROR.format(layer=self.layer, units=self.units,
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

    def __call__(self, X, neuron, batch_size=None):
        """Expert attribution ``x * grad_x h_neuron(x)``, shape of ``X``.

        Args:
            X: inputs ``[N, ...]`` or one input (images RGB 0-255).
            neuron: an int unit index (a channel for a conv layer, whose value is the
                channel summed over space), or one per input.
        Returns:
            float32, the shape of ``X``.
        """
        X, single = as_batch(X, self.model, "X")
        idx = self._neurons(neuron, len(X))
        out = np.empty_like(X)
        for sl, val in self._run_batched(
                self._attr, len(X),
                lambda s: {self.model.imgs: X[s], self._neuron: idx[s]},
                desc="expert attribution", batch_size=batch_size):
            out[sl] = val
        return unbatch(out, single)

    def _neurons(self, neuron, n):
        arr = np.asarray(neuron)
        ok = (arr.dtype != object and np.issubdtype(arr.dtype, np.integer)
              and arr.ndim in (0, 1) and (arr.ndim == 0 or len(arr) == n))
        if not ok or isinstance(neuron, (bool, np.bool_)):
            raise TypeError(NEURON_ERROR.format(units=self.units, layer=self.layer,
                                                actual=neuron))
        if np.any((arr < 0) | (arr >= self.units)):
            raise ValueError(NEURON_ERROR.format(units=self.units, layer=self.layer,
                                                 actual=neuron))
        return np.broadcast_to(arr, (n,)).astype(np.int32)

