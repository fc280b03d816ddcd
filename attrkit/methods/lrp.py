"""Layer-wise relevance propagation (Bach et al. 2015), with Zennit's (0.5) rules and
composites, on a TF1 graph.

``LRP(sess, input_tensor, output_tensor, target_class)(X, rule='epsilon', epsilon=1e-6,
alpha=2.0, beta=1.0, low=0.0, high=255.0, batch_size=16)`` -> float32 of ``X``'s shape: the
relevance of each input value. Relevance starts from ``f_c(x)`` at the target logit and is
passed down layer by layer; where every rule conserves it (``'epsilon'`` with a tiny
epsilon on a network without biases), the map sums to ``f_c(x)``.

How the graph is read (:func:`lrp_plan`, once per model): every op between the input and
the output gets a role, or the constructor raises an error naming the op and its type.

- **Layers**: a ``Conv2D``, ``DepthwiseConv2dNative`` or ``MatMul`` with weights, and the
  ops after it that scale or shift its output by constants per channel (``BiasAdd``,
  ``Add``, ``Sub``, ``Mul``, ``RealDiv``, an inference ``FusedBatchNorm``): one affine layer
  ``z = s ⊙ (W x) + c``, so a batch norm after a convolution is folded into it, as Zennit's
  canonizers do. The layer's rule (below) gives the relevance of its input.
- **Pass** (relevance goes through unchanged): element-wise activations (ReLU, ReLU6, ELU,
  SELU, leaky ReLU, sigmoid, tanh, softplus, softsign) and element-wise ops with a
  constant that are not part of a layer (the graph's preprocessing, a batch norm that does
  not follow a layer), as Zennit's ``Pass`` on activations and batch norm.
- **Norm** (relevance split in proportion to the contributions, ``x_i · ∂z/∂x_i · R /
  z``, whatever the rule): average pooling, means and sums over axes, and an ``Add`` or
  ``AddN`` of two or more branches (a residual connection), as Zennit's ``Norm``.
- **Gradient**: max pooling and maxima over axes (relevance to the winner), reshapes,
  transposes, padding, concatenation, slicing, identities.

The rules (Zennit's, ``x⁺ = max(x, 0)``, ``W⁺`` likewise, ``stab(z) = z + ε·sign(z)``
with ``sign(0) = 1``, ε = 1e-6 where not given): ``'epsilon'`` ``R_in = x ⊙ Wᵀ(R /
stab(z))``, ``'zplus'``, ``'alpha_beta'`` on every layer; the composites
``'epsilon_plus_flat'`` (the first layer ``Flat``, the other convolutions ``ZPlus``, dense
layers ``Epsilon``) and ``'epsilon_gamma_box'`` (the first convolution ``ZBox`` with the
input bounds ``low`` and ``high``, in the placeholder's units and carried through the
graph's preprocessing, the other convolutions ``Gamma(gamma)``, dense layers
``Epsilon``).

Each rule is a gradient registered with TensorFlow and given, by name, to the ops of a
copy of the model (built once per graph and rule, reading the same weights), so the
relevance is one backward pass of that copy. Where a layer's input comes from a ReLU (through
pooling, padding, reshapes), the rules' terms of the input's negative part are zero and are
not computed.

Where ours differs from Zennit: a batch norm is folded into the layer before it exactly
(Zennit's canonizer leaves the folded batch norm computing ``x / sqrt(1 + eps)``, so the
network it explains is off by about ``eps / 2``; the tests use a tiny eps to compare); a
batch norm that follows no layer passes relevance through (Zennit's ``Pass`` on an unfolded
batch norm); the graph's own preprocessing passes relevance through, so the map is in the
placeholder's pixels; the "first layer" of a composite is the first in the graph's order
(Zennit: the first module in ``named_modules()``, the same for sequential models).
"""
import weakref

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops
from tensorflow.python.ops import gen_math_ops, gen_nn_ops

from hw3_attribution import (DEFAULT_BATCH_SIZE, _UNSET, AttributionMethod, cached_ops,
                             check_choice, check_number, check_positive_int, clone_subgraph,
                             descendants, ancestors, register_gradients, unbatch)
from attrkit.methods.propagation import copy_model, copy_prefix

tf1 = tf.compat.v1

NO_RULE_ERROR = ("output_tensor: LRP has no rule for op {name!r} of type {type} between "
                 "input_tensor and output_tensor ({why}); it handles convolutions and dense "
                 "layers with their biases and batch norms, element-wise activations, "
                 "pooling, means, residual additions, reshapes, padding and concatenation")
ALPHA_BETA_ERROR = ("alpha, beta: expected alpha - beta = 1 with both >= 0 (Zennit's "
                    "AlphaBeta), got alpha={alpha!r}, beta={beta!r}")
BOUNDS_ERROR = "low, high: expected low < high, got low={low!r}, high={high!r}"

RULES = ("epsilon", "zplus", "alpha_beta", "epsilon_plus_flat", "epsilon_gamma_box")
STABILIZER = 1e-6      # Zennit's stabilizer of every rule but Epsilon's own epsilon

HEADS = ("Conv2D", "DepthwiseConv2dNative", "MatMul")
CONVOLUTIONS = ("Conv2D", "DepthwiseConv2dNative")
BATCH_NORMS = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
AFFINE = ("BiasAdd", "Add", "AddV2", "Sub", "Mul", "RealDiv") + BATCH_NORMS
ACTIVATIONS = ("Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Sigmoid", "Tanh", "Softplus",
               "Softsign")
NORM = ("AvgPool", "Mean", "Sum", "AddN")
GRADIENT = ("MaxPool", "Max", "Reshape", "Squeeze", "ExpandDims", "Transpose", "Pad", "PadV2",
            "ReverseV2", "Split", "SplitV", "Unpack", "ConcatV2", "Slice", "StridedSlice",
            "Identity", "IdentityN", "Pack")


class LRP(AttributionMethod):
    """Layer-wise relevance propagation with Zennit's rules (see the module's text).

    ``LRP(sess, input_tensor, output_tensor, target_class)(X, rule='epsilon',
    epsilon=1e-6, alpha=2.0, beta=1.0, low=0.0, high=255.0, batch_size=16, gamma=0.25)``.

    ``rule``: ``'epsilon'`` (``epsilon`` the rule's stabiliser), ``'zplus'``,
    ``'alpha_beta'`` (``alpha - beta = 1``, as Zennit requires), ``'epsilon_plus_flat'`` or
    ``'epsilon_gamma_box'`` (``low``, ``high``: the input's bounds in the placeholder's
    units; ``gamma``: the convolutions' Gamma rule, Zennit's 0.25). The constructor reads
    the graph and raises for an op without a rule; ``rules`` (keyword) limits the rules
    whose copies it builds (default: all five, each a copy of the model's ops). Session
    calls: ``ceil(N / batch_size)`` (+ forwards when the target is None).
    """

    api = "LRP(sess, input_tensor, output_tensor, target_class)"

    def __init__(self, sess, input_tensor, output_tensor, target_class=None, *, rules=RULES,
                 progress=True):
        self.rules = tuple(check_choice(r, RULES, "rules") for r in rules)
        super().__init__(sess, input_tensor, output_tensor, target_class, progress=progress)

    def _define_ops(self):
        super()._define_ops()
        x, out = self.input_tensor, self.output_tensor
        self._lrp = {rule: lrp_ops(x, out, rule) for rule in self.rules}

    def __call__(self, X, rule="epsilon", epsilon=1e-6, alpha=2.0, beta=1.0, low=0.0,
                 high=255.0, batch_size=DEFAULT_BATCH_SIZE, *, gamma=0.25,
                 target_class=_UNSET, feed_dict=None):
        X, single, run = self._begin(X, feed_dict)
        rule = check_choice(rule, self.rules, "rule")
        values = {"epsilon": check_number(epsilon, "epsilon", positive=True),
                  "alpha": check_number(alpha, "alpha"), "beta": check_number(beta, "beta"),
                  "gamma": check_number(gamma, "gamma"), "low": check_number(low, "low"),
                  "high": check_number(high, "high")}
        if values["alpha"] - values["beta"] != 1 or min(values["alpha"], values["beta"]) < 0:
            raise ValueError(ALPHA_BETA_ERROR.format(alpha=alpha, beta=beta))
        if not values["low"] < values["high"]:
            raise ValueError(BOUNDS_ERROR.format(low=low, high=high))
        bs = check_positive_int(batch_size, "batch_size")
        targets = self._targets(run, X, target_class, bs)
        ops = self._lrp[rule]
        params = {ops.params[k]: v for k, v in values.items()}
        out = run.collect(ops.relevance, len(X), lambda s: {
            self.input_tensor: X[s], ops.target: targets[s], **params}, "lrp", bs)
        return unbatch(out, single)


# ------------------------------------------------------------------------ the graph's plan

class Role:
    """What LRP does at one op: ``kind`` 'layer' (a head and its ``chain`` of affine ops,
    ``rule`` its rule, ``nonneg`` whether its input cannot be negative), 'chain' and
    'pass' (relevance through input ``index``), 'norm', 'gradient' or 'none' (not
    float)."""

    def __init__(self, kind, index=0, chain=(), rule=None, nonneg=False):
        self.kind, self.index, self.chain, self.rule = kind, index, tuple(chain), rule
        self.nonneg = nonneg


def lrp_plan(x, out):
    """``{op name: Role}`` for every op between ``x`` and ``out``, in graph order; raises
    :data:`NO_RULE_ERROR` for an op without a rule."""
    on_path = descendants(x.op) & ancestors([out.op])
    from_x = descendants(x.op) | {x.op}
    roles = {}
    for op in [o for o in x.graph.get_operations() if o in on_path]:
        if op.name in roles:
            continue
        dep = [i for i, t in enumerate(op.inputs) if t.op in from_x]
        if not any(t.dtype.is_floating for t in op.outputs):
            roles[op.name] = Role("none")
        elif op.type in HEADS:
            check_head(op, dep)
            chain = affine_chain(op, on_path, from_x, out)
            roles[op.name] = Role("layer", chain=[c.name for c, _ in chain],
                                  nonneg=nonnegative(op.inputs[0]))
            roles.update({c.name: Role("chain", index=i) for c, i in chain})
        elif op.type in ACTIVATIONS or (op.type in AFFINE and len(dep) == 1
                                        and same_shape(op, dep[0])):
            roles[op.name] = Role("pass", index=dep[0])
        elif op.type in NORM or (op.type in ("Add", "AddV2") and len(dep) > 1):
            roles[op.name] = Role("norm")
        elif op.type in GRADIENT:
            roles[op.name] = Role("gradient")
        else:
            why = ("a product of two tensors computed from the input" if op.type == "Mul"
                   else "no rule for this type")
            raise ValueError(NO_RULE_ERROR.format(name=op.name, type=op.type, why=why))
    return roles


def check_head(op, dep):
    if dep != [0]:
        raise ValueError(NO_RULE_ERROR.format(name=op.name, type=op.type,
                                              why="its weights are computed from the input"))
    if op.type != "MatMul" and op.get_attr("data_format") != b"NHWC":
        raise ValueError(NO_RULE_ERROR.format(name=op.name, type=op.type,
                                              why="channels-first data format"))
    if op.type == "MatMul" and op.get_attr("transpose_a"):
        raise ValueError(NO_RULE_ERROR.format(name=op.name, type=op.type,
                                              why="transposed input"))


NONNEG_SOURCES = ("Relu", "Relu6")
NONNEG_KEEPING = ("MaxPool", "AvgPool", "Pad", "Reshape", "Squeeze", "ExpandDims",
                  "Transpose", "Identity", "Mean")


def nonnegative(t):
    """Whether ``t`` comes from a ReLU through ops that keep the sign (then the rules'
    terms of the input's negative part are zero, and left out)."""
    op = t.op
    if op.type in NONNEG_SOURCES:
        return True
    if op.type in NONNEG_KEEPING:
        return nonnegative(op.inputs[0])
    if op.type == "ConcatV2":
        return all(nonnegative(i) for i in op.inputs[:-1])
    return False


def same_shape(op, index):
    a, b = op.inputs[index].shape, op.outputs[0].shape
    return a.rank is not None and a.rank == b.rank and all(
        d1 == d2 for d1, d2 in zip(a.as_list(), b.as_list()) if d1 and d2)


def affine_chain(head, on_path, from_x, out):
    """The ops after ``head`` that scale or shift each output channel by constants, while
    each result has one user: ``[(op, index of the input that comes from the head)]``."""
    chain, t, channels = [], head.outputs[0], out_channels(head)
    while t is not out:
        users = [c for c in t.consumers() if c in on_path]
        if len(users) != 1:
            break
        op = users[0]
        dep = [i for i, s in enumerate(op.inputs) if s.op in from_x]
        if op.type not in AFFINE or len(dep) != 1 or not per_channel(op, dep[0], channels):
            break
        chain.append((op, dep[0]))
        t = op.outputs[0]
    return chain


def per_channel(op, index, channels):
    """The op's constants are scalars or vectors over the last axis (one per channel)."""
    if op.type in BATCH_NORMS:
        return index == 0 and not op.get_attr("is_training")
    if op.type == "RealDiv" and index != 0:
        return False
    for i, t in enumerate(op.inputs):
        if i != index:
            shape = t.shape.as_list() if t.shape.rank is not None else None
            if shape is None or any(d != 1 for d in shape[:-1]) or (
                    shape and shape[-1] not in (1, channels)):
                return False
    return True


def out_channels(head):
    w = head.inputs[1].shape.as_list()
    if head.type == "Conv2D":
        return w[3]
    if head.type == "DepthwiseConv2dNative":
        return w[2] * w[3]
    return w[0] if head.get_attr("transpose_b") else w[1]


def assign_rules(roles, graph_ops, rule):
    """Each layer's rule under ``rule`` (a rule or a composite)."""
    heads = [op for op in graph_ops if roles.get(op.name, Role("none")).kind == "layer"]
    convs = [op for op in heads if op.type in CONVOLUTIONS]
    for op in heads:
        conv = op.type in CONVOLUTIONS
        if rule == "epsilon_plus_flat":
            name = "flat" if op is heads[0] else ("zplus" if conv else "epsilon")
        elif rule == "epsilon_gamma_box":
            name = "zbox" if convs and op is convs[0] else ("gamma" if conv else "epsilon")
        else:
            name = rule
        roles[op.name].rule = name
    return convs[0] if convs else None


# ------------------------------------------------------------------------------- the ops

_SPECS = weakref.WeakKeyDictionary()    # graph -> {copied op name: (Role, LRPOps)}


class LRPOps:
    """A copy of the model whose ops carry LRP's gradients for ``rule``, its parameters
    (scalar placeholders with Zennit's defaults) and the relevance at the input."""

    def __init__(self, x, out, rule):
        roles = lrp_plan(x, out)
        first_conv = assign_rules(roles, x.graph.get_operations(), rule)
        with tf1.name_scope(f"attrkit_lrp_{rule}"):
            dtype = x.dtype.as_numpy_dtype
            self.params = {k: tf1.placeholder_with_default(np.asarray(v, dtype), [], name=k)
                           for k, v in (("epsilon", 1e-6), ("alpha", 2.0), ("beta", 1.0),
                                        ("gamma", 0.25), ("low", 0.0), ("high", 255.0))}
            self.bounds = (box_bounds(x, first_conv, self.params)
                           if rule == "epsilon_gamma_box" else None)
            logits = copy_model(x, out, x, "LRP", lambda op: gradient_of(roles, op))
            self.prefix = copy_prefix(logits, out)
            _SPECS.setdefault(x.graph, {}).update(
                {self.prefix + name: (role, self) for name, role in roles.items()})
            self.target = tf1.placeholder(tf.int32, [None], name="target")
            score = tf.gather(logits, self.target, axis=1, batch_dims=1)
            self.relevance = tf.gradients(score, x, grad_ys=tf.stop_gradient(score))[0]
            self.input_grads = (self.relevance,)


def lrp_ops(x, out, rule):
    return cached_ops(x.graph, ("lrp", rule, x.name, out.name), lambda: LRPOps(x, out, rule))


def gradient_of(roles, op):
    role = roles.get(op.name)
    return None if role is None else GRADIENT_NAMES.get(role.kind)


def box_bounds(x, conv, params):
    """ZBox's ``(low, high)`` images at the first convolution's input: images of the
    bounds in the placeholder's units, through the ops between (preprocessing, padding)."""
    if conv is None:
        return None
    images = [tf.fill(tf.shape(x), tf.cast(params[k], x.dtype)) for k in ("low", "high")]
    start = conv.inputs[0]
    if start is x:
        return tuple(images)
    return tuple(clone_subgraph(x, [start], img, name=f"{k}_bound")[0]
                 for img, k in zip(images, ("low", "high")))


# ---------------------------------------------------------------------- the rules

def stabilize(z, eps):
    """Zennit's ``stabilize``: ``z + eps · sign(z)``, with ``sign(0) = 1``."""
    eps = tf.cast(eps, z.dtype)
    return z + tf.where(z >= 0, eps, -eps)


def pos(t):
    return tf.maximum(t, 0.0)


def neg(t):
    return tf.minimum(t, 0.0)


class Layer:
    """One affine layer ``z = f(x; W) + b`` of a head op in the copy, with the chain's
    per-channel scale folded into ``W`` and its shift as ``b``."""

    def __init__(self, head, chain, nonneg=False):
        self.head, self.x, self.nonneg = head, head.inputs[0], nonneg
        s, c = chain_affine(head, chain)
        self.W, self.b = scaled_weights(head, head.inputs[1], s), c
        tail = head.graph.get_operation_by_name(chain[-1]) if chain else head
        self.z = tail.outputs[0]                  # the layer's output, as the model has it

    def f(self, inp, w, b=None):
        """The head's op on ``inp`` with weights ``w`` (plus ``b``)."""
        y = head_op(self.head, inp, w)
        return y if b is None else y + b

    def back(self, w, g):
        """``Wᵀ g``: the gradient of ``f(·; w)`` at upstream ``g``."""
        y = head_op(self.head, self.x, w)
        return tf_ops.gradient_registry.lookup(self.head.type)(y.op, g)[0]


def epsilon_rule(L, R, p):
    return L.x * L.back(L.W, R / stabilize(L.z, p["epsilon"]))


def zplus_rule(L, R, p):
    if L.nonneg:                                      # x⁻ = 0: its terms vanish
        g = R / stabilize(L.f(L.x, pos(L.W), pos(L.b)), STABILIZER)
        return L.x * L.back(pos(L.W), g)
    xp, xn = pos(L.x), neg(L.x)
    z = L.f(xp, pos(L.W), pos(L.b)) + L.f(xn, neg(L.W))
    g = R / stabilize(z, STABILIZER)
    return xp * L.back(pos(L.W), g) + xn * L.back(neg(L.W), g)


def alpha_beta_rule(L, R, p):
    Wp, Wn = pos(L.W), neg(L.W)
    if L.nonneg:
        gp = R / stabilize(L.f(L.x, Wp, pos(L.b)), STABILIZER)
        gn = R / stabilize(L.f(L.x, Wn, neg(L.b)), STABILIZER)
        return L.x * (p["alpha"] * L.back(Wp, gp) - p["beta"] * L.back(Wn, gn))
    xp, xn = pos(L.x), neg(L.x)
    gp = R / stabilize(L.f(xp, Wp, pos(L.b)) + L.f(xn, Wn), STABILIZER)
    gn = R / stabilize(L.f(xp, Wn, neg(L.b)) + L.f(xn, Wp), STABILIZER)
    return (p["alpha"] * (xp * L.back(Wp, gp) + xn * L.back(Wn, gp))
            - p["beta"] * (xp * L.back(Wn, gn) + xn * L.back(Wp, gn)))


def gamma_rule(L, R, p):
    gamma = p["gamma"]
    Wp, bp = L.W + gamma * pos(L.W), L.b + gamma * pos(L.b)
    Wn, bn = L.W + gamma * neg(L.W), L.b + gamma * neg(L.b)
    z = L.z
    up, down = tf.cast(z > 0, z.dtype) * R, tf.cast(z < 0, z.dtype) * R
    if L.nonneg:
        up = up / stabilize(L.f(L.x, Wp, bp), STABILIZER)
        down = down / stabilize(L.f(L.x, Wn, bn), STABILIZER)
        return L.x * (L.back(Wp, up) + L.back(Wn, down))
    xp, xn = pos(L.x), neg(L.x)
    up = up / stabilize(L.f(xp, Wp, bp) + L.f(xn, Wn), STABILIZER)
    down = down / stabilize(L.f(xp, Wn, bn) + L.f(xn, Wp), STABILIZER)
    return (xp * L.back(Wp, up) + xn * L.back(Wn, up) + xp * L.back(Wn, down)
            + xn * L.back(Wp, down))


def flat_rule(L, R, p):
    ones_w = tf.ones_like(L.W)
    g = R / stabilize(L.f(tf.ones_like(L.x), ones_w), STABILIZER)
    return L.back(ones_w, g)


def zbox_rule(L, R, p, bounds):
    low, high = bounds
    Wp, Wn = pos(L.W), neg(L.W)
    z = L.f(L.x, L.W, L.b) - L.f(low, Wp, pos(L.b)) - L.f(high, Wn, neg(L.b))
    g = R / stabilize(z, STABILIZER)
    return L.x * L.back(L.W, g) - low * L.back(Wp, g) - high * L.back(Wn, g)


LAYER_RULES = {"epsilon": epsilon_rule, "zplus": zplus_rule, "alpha_beta": alpha_beta_rule,
               "gamma": gamma_rule, "flat": flat_rule}


def chain_affine(head, chain):
    """``(s, c)`` vectors ``[channels]`` with ``chain(y) = s ⊙ y + c``."""
    channels = out_channels(head)
    s = tf.ones([channels], head.outputs[0].dtype)
    c = tf.zeros([channels], head.outputs[0].dtype)
    for name in chain:
        op = head.graph.get_operation_by_name(name)
        s, c = affine_step(op, s, c)
    flat = lambda v: tf.reshape(v * tf.ones([channels], v.dtype), [channels])  # noqa: E731
    return flat(s), flat(c)


def affine_step(op, s, c):
    if op.type in BATCH_NORMS:
        scale, offset, mean, var = op.inputs[1:5]
        m = scale * tf.math.rsqrt(var + op.get_attr("epsilon"))
        return s * m, (c - mean) * m + offset
    index = through_index(op)
    k = op.inputs[1 - index]
    if op.type in ("BiasAdd", "Add", "AddV2"):
        return s, c + k
    if op.type == "Sub":
        return (s, c - k) if index == 0 else (-s, k - c)
    if op.type == "Mul":
        return s * k, c * k
    return s / k, c / k                                                 # RealDiv


def through_index(op):
    """The input of a chain or pass op that relevance goes through (its plan's index)."""
    return _SPECS[op.graph][op.name][0].index


def scaled_weights(head, w, s):
    if head.type == "Conv2D":
        return w * s
    if head.type == "DepthwiseConv2dNative":
        shape = tf.shape(w)
        return w * tf.reshape(s, shape[2:4])
    return w * (s[:, None] if head.get_attr("transpose_b") else s)


def head_op(head, inp, w):
    if head.type == "MatMul":
        return gen_math_ops.mat_mul(inp, w, transpose_a=False,
                                    transpose_b=head.get_attr("transpose_b"))
    attrs = {k: head.get_attr(k) for k in ("strides", "padding", "explicit_paddings",
                                           "data_format", "dilations")}
    if head.type == "Conv2D":
        return gen_nn_ops.conv2d(inp, w, **attrs)
    return gen_nn_ops.depthwise_conv2d_native(inp, w, **attrs)


# ------------------------------------------------------------ the registered gradients

def _layer_gradient(op, *grads):
    role, ops = _SPECS[op.graph][op.name]
    layer = Layer(op, [ops.prefix + n for n in role.chain], role.nonneg)
    if role.rule == "zbox":
        relevance = zbox_rule(layer, grads[0], ops.params, ops.bounds)
    else:
        relevance = LAYER_RULES[role.rule](layer, grads[0], ops.params)
    return [relevance] + [None] * (len(op.inputs) - 1)


def _through_gradient(op, *grads):
    index = through_index(op)
    return [grads[0] if i == index else None for i in range(len(op.inputs))]


def _norm_gradient(op, *grads):
    g = grads[0] / stabilize(op.outputs[0], STABILIZER)
    plain = tf_ops.gradient_registry.lookup(op.type)(op, g)
    plain = plain if isinstance(plain, (list, tuple)) else [plain]
    return [None if d is None or not t.dtype.is_floating else t * d
            for t, d in zip(op.inputs, plain)]


GRADIENT_NAMES = {"layer": "AttrkitLRPLayer", "chain": "AttrkitLRPThrough",
                  "pass": "AttrkitLRPThrough", "norm": "AttrkitLRPNorm"}
register_gradients({"AttrkitLRPLayer": _layer_gradient, "AttrkitLRPThrough": _through_gradient,
                    "AttrkitLRPNorm": _norm_gradient})
