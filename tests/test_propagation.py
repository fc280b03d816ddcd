"""Propagation methods (issue 26): DeepLIFT, DeepLiftSHAP, DeconvNet, GradientSHAP, LRP,
and SmoothGrad's 'squared' and 'vargrad'.

References: Captum 0.9.0 (DeepLift, DeepLiftShap, Deconvolution) and Zennit 0.5.1 (every
LRP rule and composite), recorded by tests/record_propagation_reference.py on
tests/propagation_net.py's two networks built from the same weights in PyTorch (float64);
here they are built in TensorFlow (float32) and must agree to float32 rounding. Then the
answers known by hand: summation to delta, conservation, signs, linear and two-layer
models, the closed forms of SmoothGrad's variants, and the errors, batches, seeds and
graph.
"""
import numpy as np
import pytest
import tensorflow as tf

import propagation_net as net
from attrkit.methods import lrp as L
from attrkit.methods import propagation as P
from attrkit.methods.lrp import LRP, RULES
from attrkit.methods.propagation import DeconvNet, DeepLIFT, DeepLiftSHAP, GradientSHAP
from hw3_attribution import SmoothGrad
from helpers import CountingSession, assert_close, call_twice, prefix, tensors
from models import Model, linear, two_layer

tf1 = tf.compat.v1


@pytest.fixture(scope="module")
def reference():
    return net.recorded()


@pytest.fixture(scope="module")
def nets(reference):
    """Both reference networks, each in its graph: {name: (sess, model)}."""
    out = {}
    for name, build, logits in (("net", net.tf_model, "logits"),
                                ("blocks", net.tf_blocks_model, "blocks_logits")):
        graph = tf.Graph()
        with graph.as_default():
            sess = tf1.Session(graph=graph)
            model = build()
        np.testing.assert_allclose(sess.run(model.logits, {model.imgs: reference["images"]}),
                                   reference[logits], rtol=1e-5, atol=1e-5)
        out[name] = (sess, model)
    yield out
    for sess, _ in out.values():
        sess.close()


def close_to_reference(ours, theirs):
    """Float32 rounding of maps whose scale varies: 1e-4 of the map's largest value."""
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4 * np.abs(theirs).max())


# ------------------------------------------------------------------ against the references

def test_deeplift_and_deconvnet_equal_captum(nets, reference):
    sess, model = nets["net"]
    X, t = reference["images"], list(reference["targets"])
    close_to_reference(DeepLIFT(sess, *tensors(model), t)(X, reference["baseline"]),
                       reference["deeplift"])
    close_to_reference(DeepLiftSHAP(sess, *tensors(model), t)(X, reference["baselines"]),
                       reference["deeplift_shap"])
    close_to_reference(DeconvNet(sess, *tensors(model), t)(X), reference["deconvnet"])


@pytest.mark.parametrize("network", ["net", "blocks"])
def test_lrp_equals_zennit(nets, reference, network):
    """Every rule and composite on both networks (the second: a depthwise convolution,
    batch norms folded as Zennit's SequentialMergeBatchNorm, ReLU6, a residual sum split
    by Zennit's Norm rule, a global mean)."""
    sess, model = nets[network]
    lrp = LRP(sess, *tensors(model), list(reference["targets"]))
    key = "lrp_" if network == "net" else "blocks_lrp_"
    for rule in RULES:
        close_to_reference(lrp(reference["images"], rule), reference[key + rule])


# ------------------------------------------------------------------------- by hand

@pytest.mark.parametrize("network", ["net", "blocks"])
def test_deeplift_sums_to_delta(nets, reference, network):
    """Σ DeepLIFT(x, b) = f_c(x) - f_c(b), through max pools, ReLU6, batch norms and a
    residual sum; DeepLiftSHAP's sum is f_c(x) - mean_j f_c(b_j)."""
    sess, model = nets[network]
    X, t = reference["images"], np.array(reference["targets"])
    f = sess.run(model.logits, {model.imgs: X})[np.arange(3), t]
    for baseline in ("black", reference["baseline"]):
        b = np.zeros_like(X[0]) if isinstance(baseline, str) else baseline
        delta = f - sess.run(model.logits, {model.imgs: b[None]})[0, t]
        attr = DeepLIFT(sess, *tensors(model), list(t))(X, baseline)
        np.testing.assert_allclose(attr.sum(axis=(1, 2, 3)), delta, rtol=1e-4, atol=1e-5)
    refs = reference["baselines"]
    delta = f - sess.run(model.logits, {model.imgs: refs})[:, t].mean(axis=0)
    attr = DeepLiftSHAP(sess, *tensors(model), list(t))(X, refs)
    np.testing.assert_allclose(attr.sum(axis=(1, 2, 3)), delta, rtol=1e-4, atol=1e-5)


def test_deeplift_of_a_linear_model_is_the_difference_times_the_weights(sess):
    W = np.array([[1.0, -2.0], [0.5, 3.0], [-1.5, 0.25]], np.float32)
    model = linear(W, [0.3, -0.1])
    X = np.array([[1.0, 2.0, -1.0], [0.0, -3.0, 4.0]], np.float32)
    b = np.array([0.5, 0.5, 0.5], np.float32)
    np.testing.assert_allclose(DeepLIFT(sess, *tensors(model), 1)(X, b),
                               (X - b) * W[:, 1], rtol=1e-6)


@pytest.fixture
def two(sess):
    """logits = W2 · relu(W1 x + b1): units 0 and 2 on, unit 1 off at X."""
    W1 = np.array([[1.0, -1.0], [-2.0, 0.5], [0.5, 1.0]], np.float32)
    b1 = np.array([0.1, -0.2, 0.3], np.float32)
    W2 = np.array([[1.0, -2.0, 0.5], [-1.0, 1.0, 2.0]], np.float32)
    X = np.array([[2.0, 1.0]], np.float32)
    return sess, two_layer(W1, b1, W2), X, (W1, b1, W2)


def test_deconvnet_by_hand(two):
    """DeconvNet's ReLU passes ReLU(grad) whatever the unit: W1ᵀ ReLU(W2[c]) (a gradient
    would be W1ᵀ (W2[c] ⊙ [unit on]))."""
    sess, model, X, (W1, _, W2) = two
    for c in (0, 1):
        np.testing.assert_allclose(DeconvNet(sess, *tensors(model), c)(X),
                                   [W1.T @ np.maximum(W2[c], 0)], rtol=1e-6)


def test_lrp_rules_by_hand(two):
    """Zennit's rules on the two-layer network, written out in numpy."""
    sess, model, X, (W1, b1, W2) = two
    x = X[0].astype(np.float64)
    W1, b1, W2 = (a.astype(np.float64) for a in (W1, b1, W2))
    h = np.maximum(W1 @ x + b1, 0)
    f = W2 @ h
    c = 1
    R = np.zeros(2)
    R[c] = f[c]

    def stab(z, eps=1e-6):
        return z + eps * np.where(z >= 0, 1.0, -1.0)

    def epsilon(W, b, a, R):
        return a * (W.T @ (R / stab(W @ a + b)))

    def zplus(W, b, a, R):
        Wp, Wn, ap, an = np.maximum(W, 0), np.minimum(W, 0), np.maximum(a, 0), np.minimum(a, 0)
        g = R / stab(Wp @ ap + np.maximum(b, 0) + Wn @ an)
        return ap * (Wp.T @ g) + an * (Wn.T @ g)

    lrp = LRP(sess, *tensors(model), c)
    zero = np.zeros(2)
    for rule, fn in (("epsilon", epsilon), ("zplus", zplus)):
        assert_close(lrp(X, rule)[0], fn(W1, b1, x, fn(W2, zero, h, R)))
    # EpsilonPlusFlat: the dense output layer Epsilon, the first layer Flat (each unit's
    # relevance split equally over its inputs: all weights 1, no bias, inputs 1)
    hidden = epsilon(W2, zero, h, R)
    ones = np.ones((3, 2))
    assert_close(lrp(X, "epsilon_plus_flat")[0], ones.T @ (hidden / stab(ones @ np.ones(2))))


def test_lrp_epsilon_conserves_without_biases(sess):
    """On the reference network with every bias 0 and a tiny epsilon, each layer passes
    on what it receives (max pools to their winners, the average pool by contributions):
    the map sums to f_c(x)."""
    w = {k: (np.zeros_like(v) if k.endswith("/b") else v) for k, v in net.weights().items()}
    model = net.tf_model(w)
    X = net.images()
    f = sess.run(model.logits, {model.imgs: X})
    lrp = LRP(sess, *tensors(model), None, rules=("epsilon",))
    R = lrp(X, "epsilon", epsilon=1e-9)
    np.testing.assert_allclose(R.sum(axis=(1, 2, 3)), f.max(axis=1), rtol=1e-4)


def test_lrp_zplus_keeps_the_sign_of_the_score(nets, reference):
    """ZPlus passes relevance with non-negative weights: every input's relevance has
    the sign of the target score where it starts."""
    sess, model = nets["net"]
    X = reference["images"]
    f = sess.run(model.logits, {model.imgs: X})
    lrp = LRP(sess, *tensors(model), None, rules=("zplus",))
    for c in range(net.CLASSES):
        R = lrp(X, "zplus", target_class=c)
        assert ((R * np.sign(f[:, c])[:, None, None, None]) >= -1e-9).all()
        assert (np.abs(R).sum(axis=(1, 2, 3)) > 0).all()


def test_gradient_shap_of_a_linear_model(sess):
    """∇f = w everywhere, so each draw is (x + ε - b)·w: with one baseline and no noise
    exactly (x - b)·w; with two baselines and noise, (x - mean b)·w within the sampling
    error of S draws (the chosen baselines' mean and the noise's mean)."""
    W = np.array([[1.0, -2.0], [0.5, 3.0], [-1.5, 0.25]], np.float32)
    model = linear(W)
    X = np.array([[1.0, 2.0, -1.0], [0.0, -3.0, 4.0]], np.float32)
    gs = GradientSHAP(sess, *tensors(model), 0)
    b = np.array([0.5, -0.5, 1.0], np.float32)
    np.testing.assert_allclose(gs(X, b, num_samples=7), (X - b) * W[:, 0], rtol=1e-6)
    refs = np.array([[0.0, 0.0, 0.0], [2.0, -2.0, 4.0]], np.float32)
    S, stdev = 2000, 0.5
    got = gs(X, refs, num_samples=S, stdev=stdev)
    spread = np.abs(refs[1] - refs[0]) / 2          # the std of one chosen baseline
    tol = 5 * np.sqrt(spread ** 2 + stdev ** 2) / np.sqrt(S) * np.abs(W[:, 0])
    assert (np.abs(got - (X - refs.mean(0)) * W[:, 0]) <= tol).all()


def test_smoothgrad_variants_closed_form(sess):
    """f_0 = Σ a x²: g = 2a(x + ε) with ε ~ N(0, σ²), σ = sigma·(max - min): E[g²] =
    4a²(x² + σ²) ('squared', Captum's smoothgrad_sq) and Var g = 4a²σ² ('vargrad', Captum's
    vargrad: the mean of g² less the square of the mean, so (S-1)/S of it for S samples),
    within 5 standard errors of S samples."""
    a = np.random.RandomState(0).uniform(0.5, 2.0, (4, 4, 1)).astype(np.float32)
    x = tf1.placeholder(tf.float32, [None, 4, 4, 1])
    f0 = tf.reduce_sum(a * x * x, axis=[1, 2, 3])
    model = Model(x, tf.stack([f0, 0 * f0], axis=1))
    X = np.random.RandomState(1).uniform(-1, 1, (2, 4, 4, 1)).astype(np.float32)
    S, sigma = 4000, 0.15
    sd = (sigma * (X.max(axis=(1, 2, 3)) - X.min(axis=(1, 2, 3))))[:, None, None, None]
    sg = SmoothGrad(sess, *tensors(model), 0)
    squared = sg(X, samples=S, sigma=sigma, kind="squared")
    vargrad = sg(X, samples=S, sigma=sigma, kind="vargrad")
    m2 = 4 * a ** 2 * (X ** 2 + sd ** 2)
    se_sq = 4 * a ** 2 * np.sqrt(4 * X ** 2 * sd ** 2 + 2 * sd ** 4) / np.sqrt(S)
    assert (np.abs(squared - m2) <= 5 * se_sq + 1e-5).all()
    var = 4 * a ** 2 * sd ** 2 * (S - 1) / S
    se_var = 4 * a ** 2 * sd ** 2 * np.sqrt(2.0 / (S - 1))
    assert (np.abs(vargrad - var) <= 5 * se_var + 1e-5).all()


# ------------------------------------------------------------------- errors and properties

def test_an_op_without_a_rule_is_named(sess):
    x = tf1.placeholder(tf.float32, [None, 4])
    h = tf.matmul(x, np.ones((4, 3), np.float32))
    swish = tf.multiply(h, tf.sigmoid(h), name="swish")
    model = Model(x, tf.matmul(swish, np.ones((3, 2), np.float32)))
    with pytest.raises(ValueError, match=prefix(L.NO_RULE_ERROR) + r"'swish' of type "
                                         r"Mul .*a product of two tensors"):
        LRP(sess, *tensors(model), 0)
    erf = tf.math.erf(h, name="erf_unit")
    model = Model(x, tf.matmul(erf, np.ones((3, 2), np.float32)))
    with pytest.raises(ValueError, match=r"op 'erf_unit' of type Erf"):
        LRP(sess, *tensors(model), 0)


def test_bad_arguments(nets, reference):
    sess, model = nets["net"]
    X = reference["images"][:1]
    lrp = LRP(sess, *tensors(model), 0, rules=("alpha_beta", "epsilon_gamma_box"))
    with pytest.raises(ValueError, match=r"^rule: .*'epsilon'"):
        lrp(X, "epsilon")                       # not built: rules limits them
    with pytest.raises(ValueError, match=r"alpha=3.0, beta=1.0"):
        lrp(X, "alpha_beta", alpha=3.0)
    with pytest.raises(ValueError, match=r"low=255, high=0"):
        lrp(X, "epsilon_gamma_box", low=255, high=0)
    with pytest.raises(ValueError, match=prefix(P.BASELINES_ERROR) + r".*\[2, 5\]"):
        DeepLiftSHAP(sess, *tensors(model), 0)(X, np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"^num_samples: "):
        GradientSHAP(sess, *tensors(model), 0)(X, X, num_samples=0)


def test_batches_seeds_calls_and_graph(reference):
    """A batch equals one by one; GradientSHAP is seeded; one run per batch_size inputs
    (DeepLiftSHAP: per baseline and batch_size inputs; GradientSHAP: per batch_size
    points); a second call adds no op."""
    graph = tf.Graph()
    with graph.as_default():
        sess = tf1.Session(graph=graph)
        model = net.tf_blocks_model()
        counting = CountingSession(sess)
        X, t = reference["images"], list(reference["targets"])
        cases = [(DeepLIFT, {}, 2), (DeconvNet, {}, 2), (LRP, {"rule": "zplus"}, 2),
                 (DeepLiftSHAP, {"baselines": reference["baselines"]}, 8),
                 (GradientSHAP, {"baselines": reference["baselines"], "num_samples": 4,
                                 "seed": 3}, 6)]
        for cls, kw, calls in cases:
            first, made = call_twice(counting, cls(counting, *tensors(model), t), X,
                                     batch_size=2, **kw)
            assert made == calls, cls.__name__
            one = np.concatenate([cls(sess, *tensors(model), [c])(X[i:i + 1], **kw)
                                  for i, c in enumerate(t)])
            if cls is GradientSHAP:     # seeded per input index: the first input only
                assert_close(first[:1], one[:1])
            else:
                assert_close(first, one)
    sess.close()


# ----------------------------------------------------------------- the real architectures

@pytest.mark.slow
def test_on_the_bundled_default_model(default_model, sample_data):
    """EfficientNet-Lite0 (ReLU6, depthwise convolutions, batch norms folded at load);
    Score-CAM's 1,280 forward passes are left to the smaller models."""
    from helpers import check_propagation_methods
    model, sess = default_model
    X = sample_data[0][:2].astype(np.float32)
    check_propagation_methods(sess, model, X, model.layers["head"],
                              cams=("GradCAMPlusPlus", "AblationCAM"),
                              rules=("epsilon_plus_flat", "epsilon_gamma_box"))


@pytest.mark.slow
def test_on_vgg16(sess):
    """VGG16 with seeded He-initialised weights (no weights file): max pools and dense
    layers; Score-CAM's 512 full forward passes per image are left to the small models."""
    from collections import OrderedDict
    from helpers import check_propagation_methods
    from vgg16 import VGG16, WEIGHT_SHAPES
    rng = np.random.default_rng(0)
    model = VGG16()
    model.assign_weights(OrderedDict(
        (layer, (rng.normal(0, np.sqrt(2.0 / np.prod(w[:-1])), w).astype(np.float32),
                 np.zeros(b, np.float32))) for layer, (w, b) in WEIGHT_SHAPES.items()), sess)
    X = rng.uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)
    check_propagation_methods(sess, model, X, model.conv5_3,
                              cams=("GradCAMPlusPlus", "AblationCAM"),
                              rules=("epsilon_plus_flat", "epsilon_gamma_box"))
