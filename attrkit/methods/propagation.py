"""Methods that propagate relevance backwards with their own rules, in the homework's form.

Each is constructed as ``(sess, input_tensor, output_tensor, target_class)`` and called with
``X`` (and ``batch_size``, ``target_class``, ``feed_dict``); each returns float32 of
``X``'s shape:

- ``DeepLIFT(X, baseline='black')``: the rescale rule times ``x - baseline`` (Captum's
  ``DeepLift``, ``multiply_by_inputs=True``); ``DeepLiftSHAP(X, baselines)``: its mean over
  a set of baselines (Captum's ``DeepLiftShap``).
- ``DeconvNet(X)``: the gradient with each ReLU's backward pass ``ReLU(grad_out)``
  (Captum's ``Deconvolution``).
- ``GradientSHAP(X, baselines, num_samples=50, stdev=0.0, seed=0)``: expected gradients
  (Captum's ``GradientShap``).
- ``LRP(X, rule='epsilon', ...)``: layer-wise relevance propagation with Zennit's rules
  and composites.

The rules are gradients overridden on a copy of the model's ops (between ``input_tensor``
and ``output_tensor``, reading the same weights, built once per graph, as
``GuidedBackprop``'s), so every other method on the graph keeps true gradients.
"""
import weakref

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops
from tensorflow.python.ops import gen_nn_ops

from hw3_attribution import (DEFAULT_BATCH_SIZE, _UNSET, AttributionMethod, as_array,
                             cached_ops, check_number, check_positive_int, check_seed,
                             clone_subgraph, finite_float32, is_numeric, parse_baseline,
                             register_gradients, unbatch)

tf1 = tf.compat.v1

COPY_ERROR = ("{arg}: {method} runs a copy of the model's ops between {start} and "
              "output_tensor, which could not be made ({reason})")
BASELINES_ERROR = ("baselines: expected an array of baseline images [B, {shape}] (B >= 1) or "
                   "one image [{shape}], got {actual}")

DEEPLIFT_EPS = 1e-10     # Captum's eps: below it a unit's input did not move (plain gradient)
# Captum's nonlinearities (nn.ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus) and ours of the
# same kind (ReLU6: MobileNet, EfficientNet-Lite) take the rescale rule; MaxPool its own.
RESCALED_OPS = ("Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Sigmoid", "Tanh", "Softplus")


# ============================================================================= DeepLIFT

class DeepLIFT(AttributionMethod):
    """DeepLIFT with the rescale rule (Shrikumar, Greenside and Kundaje, ICML 2017), as
    Captum's ``DeepLift``: each nonlinearity's gradient is replaced by the multiplier
    ``Δy / Δx`` between the input and the baseline (its plain gradient where ``|Δx| <
    1e-10``), a max pool's by Captum's rule (``Δy`` split between the input's and the
    baseline's winners), and every linear op keeps its gradient; the multipliers times ``x
    - baseline`` sum to ``f_c(x) - f_c(baseline)`` (summation to delta).

    ``DeepLIFT(sess, input_tensor, output_tensor, target_class)(X, baseline='black',
    batch_size=16)``: ``baseline`` is ``'black'`` (0), ``'white'`` (255) or an array of one
    input's shape or of ``X``'s shape. Each run feeds ``batch_size`` inputs and the
    baseline, which go through the model in the same run (Captum concatenates them), but
    a baseline shared by the inputs is one row, not a copy per input: each rule compares
    every input's activations with the baseline's. Where ours differs: ReLU6, SELU and
    leaky ReLU take the rescale rule too (Captum's ``nn.ReLU6`` keeps its gradient); a
    ``Softmax`` inside the model
    keeps its gradient (Captum rescales ``nn.Softmax``), and so does a product of two
    tensors that both depend on the input (swish: the sigmoid is rescaled, the product is
    differentiated). Session calls: ``ceil(N / batch_size)`` (+ forwards when the target
    is None).
    """

    api = "DeepLIFT(sess, input_tensor, output_tensor, target_class)"

    def _define_ops(self):
        super()._define_ops()
        self._deeplift = deeplift_ops(self.input_tensor, self.output_tensor)

    def __call__(self, X, baseline="black", batch_size=DEFAULT_BATCH_SIZE, *,
                 target_class=_UNSET, feed_dict=None):
        X, single, run = self._begin(X, feed_dict)
        base = parse_baseline(baseline, X)
        base = np.zeros((1,) + X.shape[1:], np.float32) if base is None else base
        bs = check_positive_int(batch_size, "batch_size")
        targets = self._targets(run, X, target_class, bs)
        return unbatch(self._deeplift.attribute(run, X, base, targets, bs, "deeplift"),
                       single)


class DeepLiftSHAP(DeepLIFT):
    """DeepLIFT averaged over a set of baselines (Lundberg and Lee 2017), as Captum's
    ``DeepLiftShap``: ``mean_j DeepLIFT(x, b_j)``.

    ``DeepLiftSHAP(sess, input_tensor, output_tensor, target_class)(X, baselines,
    batch_size=16)``: ``baselines`` ``[B, ...]`` images (or one), shared by every input.
    The map sums to ``f_c(x) - mean_j f_c(b_j)``. Each baseline is one row shared by
    ``batch_size`` inputs (:class:`DeepLIFT`). Session calls: ``B·ceil(N / batch_size)``
    (+ forwards when the target is None).
    """

    api = "DeepLiftSHAP(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, baselines, batch_size=DEFAULT_BATCH_SIZE, *, target_class=_UNSET,
                 feed_dict=None):
        X, single, run = self._begin(X, feed_dict)
        refs = parse_baseline_set(baselines, X)
        bs = check_positive_int(batch_size, "batch_size")
        targets = self._targets(run, X, target_class, bs)
        total = np.zeros(X.shape, np.float64)
        for j in range(len(refs)):
            total += self._deeplift.attribute(run, X, refs[j:j + 1], targets, bs,
                                              f"deeplift shap {j + 1}/{len(refs)}")
        return unbatch((total / len(refs)).astype(np.float32), single)


def parse_baseline_set(baselines, X):
    """``baselines`` as float32 ``[B, ...]`` (one image ``[...]`` is ``B = 1``)."""
    arr = as_array(baselines, "baselines")
    one = arr.shape == X.shape[1:]
    many = arr.ndim == X.ndim and arr.shape[1:] == X.shape[1:] and len(arr) > 0
    if not (is_numeric(arr) and (one or many)):
        raise ValueError(BASELINES_ERROR.format(
            shape=", ".join(map(str, X.shape[1:])),
            actual=f"{arr.dtype} array of shape {list(arr.shape)}"))
    return finite_float32(arr[None] if one else arr, "baselines")


class DeepLiftOps:
    """Two copies of the model: one on the baselines (one row shared by the inputs, or one
    per input), plain, and one on the inputs whose nonlinearities carry DeepLIFT's
    gradients, each comparing its op's values with the same op's in the baselines' copy;
    and the attribution ``(x - baseline) · ∂f_c/∂x``. A rule finds its op's twin through
    :data:`_TWINS` (the inputs' copy's name prefix -> the baselines')."""

    def __init__(self, x, out):
        with tf1.name_scope("attrkit_deeplift"):
            self.x = x
            self.baseline = tf1.placeholder(x.dtype, x.shape, name="baseline")
            self.target = tf1.placeholder(tf.int32, [None], name="target")
            base = copy_model(x, out, self.baseline, "DeepLIFT")
            logits = copy_model(x, out, x, "DeepLIFT", DEEPLIFT_GRADIENTS)
            _TWINS.setdefault(x.graph, {})[copy_prefix(logits, out)] = copy_prefix(base, out)
            score = tf.gather(logits, self.target, axis=1, batch_dims=1)
            self.grad = tf.gradients(score, x)[0]
            self.attr = (x - self.baseline) * self.grad
            self.input_grads = (self.grad,)

    def attribute(self, run, X, base, targets, bs, desc):
        """``base``: one baseline ``[1, ...]`` or one per input ``[N, ...]``."""
        shared = len(base) == 1 and len(X) != 1
        return run.collect(self.attr, len(X), lambda s: {
            self.x: X[s], self.baseline: base if shared else base[s],
            self.target: targets[s]}, desc, bs)


_TWINS = weakref.WeakKeyDictionary()    # graph -> {inputs' copy's prefix: baselines'}


def deeplift_ops(x, out):
    return cached_ops(x.graph, ("deeplift", x.name, out.name), lambda: DeepLiftOps(x, out))


def copy_model(x, out, new_x, method, gradients=None, arg="output_tensor",
               start="input_tensor"):
    """``out`` recomputed from ``new_x`` in place of ``x`` by a copy of the model's ops
    (``clone_subgraph``), ``gradients`` overriding some of their gradients; a graph that
    cannot be copied is :data:`COPY_ERROR` naming ``method``, ``arg`` and where the copy
    starts."""
    try:
        (logits,) = clone_subgraph(x, [out], new_x, name="model",
                                   gradient_override=gradients)
    except Exception as err:   # an op that cannot be copied
        raise ValueError(COPY_ERROR.format(arg=arg, method=method, start=start,
                                           reason=f"{type(err).__name__}: {err}")) from None
    return logits


def copy_prefix(copy, original):
    """The name prefix of the ops of a copy (``copy`` the copy of tensor ``original``)."""
    return copy.name[:-len(original.name)]


def twin(op):
    """The op of the baselines' copy that computes what ``op`` computes for the inputs."""
    for prefix, base in _TWINS[op.graph].items():
        if op.name.startswith(prefix):
            return op.graph.get_operation_by_name(base + op.name[len(prefix):])
    raise KeyError(op.name)


def rescaled(plain, grad, delta_in, delta_out):
    """``grad · Δy / Δx``, the plain gradient where ``|Δx| < eps``."""
    small = tf.abs(delta_in) < DEEPLIFT_EPS
    safe = tf.where(small, tf.constant(1, delta_in.dtype), delta_in)
    return tf.where(small, plain, grad * (delta_out / safe))


def _deeplift_rescale(op, grad):
    """Rescale rule of a unary nonlinearity (Captum's ``nonlinear``)."""
    base = twin(op)
    plain = tf_ops.gradient_registry.lookup(op.type)(op, grad)
    plain = plain[0] if isinstance(plain, (list, tuple)) else plain
    return rescaled(plain, grad, op.inputs[0] - base.inputs[0],
                    op.outputs[0] - base.outputs[0])


def _deeplift_maxpool(op, grad):
    """Captum's ``maxpool``: ``max(y, y_ref) - y_ref`` back to the input's winners and ``y -
    max(y, y_ref)`` to the baseline's, their sum divided by ``Δx``. Captum sends the second
    part with the baseline rows' own gradient, which equals the inputs' (every rule gives
    both the same multipliers), so the inputs' is used, and a shared baseline row is
    broadcast to the inputs."""
    base = twin(op)
    attrs = {k: op.get_attr(k) for k in ("ksize", "strides", "padding", "explicit_paddings",
                                         "data_format")}
    (xa, ya), (xb, yb) = (op.inputs[0], op.outputs[0]), (base.inputs[0], base.outputs[0])
    top = tf.maximum(ya, yb)
    to_input = gen_nn_ops.max_pool_grad(xa, ya, grad * (top - yb), **attrs)
    to_base = gen_nn_ops.max_pool_grad(tf.broadcast_to(xb, tf.shape(xa)),
                                       tf.broadcast_to(yb, tf.shape(ya)), grad * (ya - top),
                                       **attrs)
    plain = gen_nn_ops.max_pool_grad(xa, ya, grad, **attrs)
    return rescaled(plain, tf.ones_like(plain), xa - xb, to_input + to_base)


DEEPLIFT_GRADIENTS = {**{t: "AttrkitDeepLiftRescale" for t in RESCALED_OPS},
                      "MaxPool": "AttrkitDeepLiftMaxPool"}


# ============================================================================ DeconvNet

class DeconvNet(AttributionMethod):
    """DeconvNet (Zeiler and Fergus, ECCV 2014), as Captum's ``Deconvolution``: the
    gradient of the target score with each ReLU's backward pass replaced by ``ReLU`` of the
    gradient that reaches it, whatever the unit's activation (max pools keep their
    switches). ReLU6 likewise (Captum's overrides ``nn.ReLU`` only). Not multiplied by the
    input. ``DeconvNet(sess, input_tensor, output_tensor, target_class)(X, batch_size=16)``.
    Session calls: ``ceil(N / batch_size)`` (+ forwards when the target is None).
    """

    api = "DeconvNet(sess, input_tensor, output_tensor, target_class)"

    def _define_ops(self):
        super()._define_ops()
        self._deconv = deconv_ops(self.input_tensor, self.output_tensor)

    def __call__(self, X, batch_size=DEFAULT_BATCH_SIZE, *, target_class=_UNSET,
                 feed_dict=None):
        X, single, run = self._begin(X, feed_dict)
        bs = check_positive_int(batch_size, "batch_size")
        targets = self._targets(run, X, target_class, bs)
        ops = self._deconv
        out = run.collect(ops.grad, len(X), lambda s: {self.input_tensor: X[s],
                                                       ops.target: targets[s]},
                          "deconvnet", bs)
        return unbatch(out, single)


class DeconvOps:
    """A copy of the model whose ReLUs pass ``ReLU(grad)`` back, and that gradient."""

    def __init__(self, x, out):
        with tf1.name_scope("attrkit_deconvnet"):
            logits = copy_model(x, out, x, "DeconvNet", DECONV_GRADIENTS)
            self.target = tf1.placeholder(tf.int32, [None], name="target")
            score = tf.gather(logits, self.target, axis=1, batch_dims=1)
            self.grad = tf.gradients(score, x)[0]
            self.input_grads = (self.grad,)


def deconv_ops(x, out):
    return cached_ops(x.graph, ("deconvnet", x.name, out.name), lambda: DeconvOps(x, out))


def _deconv_relu(op, grad):
    return tf.nn.relu(grad)


DECONV_GRADIENTS = {"Relu": "AttrkitDeconvRelu", "Relu6": "AttrkitDeconvRelu"}


# ========================================================================= GradientSHAP

class GradientSHAP(AttributionMethod):
    """Expected gradients (Erion et al. 2021; Lundberg and Lee 2017), as Captum's
    ``GradientShap``: the mean over ``num_samples`` draws of ``(x̃ - b) ⊙ ∇f_c(b + α(x̃ -
    b))``, with ``b`` drawn uniformly from ``baselines``, ``x̃ = x + ε``, ``ε ~ N(0,
    stdev²)`` (in the input's units) and ``α ~ U(0, 1)``. In expectation the map sums to
    ``f_c(x) - mean_j f_c(b_j)`` for a linear model, and equals ``(x - mean b) ⊙ w``.

    ``GradientSHAP(sess, input_tensor, output_tensor, target_class)(X, baselines,
    num_samples=50, stdev=0.0, batch_size=16, seed=0)``: each input's draws come from
    ``numpy.random.default_rng([seed, i])`` for the input's index ``i`` in the call, in the
    order baseline, α, noise (Captum draws from torch's global generator). The ``N ·
    num_samples`` points run ``batch_size`` at a time. Session calls: ``ceil(N ·
    num_samples / batch_size)`` (+ forwards when the target is None).
    """

    api = "GradientSHAP(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, baselines, num_samples=50, stdev=0.0, batch_size=DEFAULT_BATCH_SIZE,
                 seed=0, *, target_class=_UNSET, feed_dict=None):
        X, single, run = self._begin(X, feed_dict)
        refs = parse_baseline_set(baselines, X)
        samples = check_positive_int(num_samples, "num_samples")
        stdev = check_number(stdev, "stdev")
        bs = check_positive_int(batch_size, "batch_size")
        seed = check_seed(seed)
        targets = self._targets(run, X, target_class, bs)
        return unbatch(expected_gradients(run, self._ops, X, refs, targets, samples, stdev,
                                          seed, bs), single)


def expected_gradients(run, ops, X, refs, targets, samples, stdev, seed, bs):
    """The mean of ``(x̃ - b) ⊙ ∇f_c(point)`` over each input's draws ``[N, ...]``: rows
    (input, draw) run ``bs`` at a time, each input's draws made when its first row is
    fed."""
    n = len(X)
    out = np.zeros(X.shape, np.float64)
    drawn, moved = {}, []

    def feed(sl):
        inputs = np.arange(sl.start, sl.stop) // samples
        for i in [i for i in drawn if i < inputs[0]]:       # done with: rows run in order
            del drawn[i]
        for i in np.unique(inputs):
            if i not in drawn:
                drawn[i] = expected_gradient_points(X[i], refs, samples, stdev, [seed, int(i)])
        draw = np.arange(sl.start, sl.stop) % samples
        moved[:] = [inputs, np.stack([drawn[i][0][k] for i, k in zip(inputs, draw)])]
        return {run.x: np.stack([drawn[i][1][k] for i, k in zip(inputs, draw)]),
                ops.target: targets[inputs]}

    for _, grads in run.chunks(ops.grad, n * samples, feed, "gradient shap", bs):
        inputs, d = moved
        np.add.at(out, inputs, d * grads)
    return (out / samples).astype(np.float32)


def expected_gradient_points(x, refs, samples, stdev, seed):
    """``(x̃ - b, b + α(x̃ - b))`` float32 ``[samples, ...]`` for one input."""
    rng = np.random.default_rng(seed)
    b = refs[rng.integers(0, len(refs), samples)]
    alpha = rng.uniform(0.0, 1.0, samples).reshape((samples,) + (1,) * x.ndim)
    noisy = x + (rng.normal(0.0, stdev, (samples,) + x.shape) if stdev else 0.0)
    moved = noisy - b
    return moved.astype(np.float32), (b + alpha * moved).astype(np.float32)


# ================================================================= registered gradients

register_gradients({"AttrkitDeepLiftRescale": _deeplift_rescale,
                    "AttrkitDeepLiftMaxPool": _deeplift_maxpool,
                    "AttrkitDeconvRelu": _deconv_relu})
