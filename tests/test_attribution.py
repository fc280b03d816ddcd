"""Attribution methods on models whose answers are known by hand (issue 3)."""
import math
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

import hw3_attribution as A
from hw3_attribution import (GradCAM, IntegratedGrad, Occlusion, RandomAttribution,
                             SaliencyMap, SmoothGrad, VanillaGradient)
from models import Model, additive_image, linear, tiny_convnet

tf1 = tf.compat.v1

W = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0], [-0.5, 4.0, 2.0], [2.0, 1.0, -3.0]])
B = np.array([0.1, -0.2, 0.3])
XL = np.array([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 2.0, -3.0], [0.0, 1.0, -2.0, 5.0]],
              np.float32)


def images(n=3, size=16, seed=1):
    return np.random.RandomState(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def ex6_model():
    """Written exercise 6: y = min(2 x1 + 3 x2, 1); IG at (2, 1) from 0 is (4/7, 3/7)."""
    x = tf1.placeholder(tf.float32, [None, 2])
    y = tf.minimum(2 * x[:, 0] + 3 * x[:, 1], 1.0)
    return Model(x, tf.stack([y, -y], axis=1), name="ex6")


def pair_model():
    """PAIR's analytic case: y = 5 x0 + x1² + sin x2; IG_i = f_i(x_i) - f_i(baseline_i)."""
    x = tf1.placeholder(tf.float32, [None, 3])
    y = 5 * x[:, 0] + x[:, 1] ** 2 + tf.sin(x[:, 2])
    return Model(x, tf.stack([y, tf.zeros_like(y)], axis=1), name="pair")


# ---------------------------------------------------------------------- linear models

@pytest.mark.parametrize("c", [0, 2, [2, 0, 1]])
def test_saliency_linear_is_x_times_w(sess, c):
    model = linear(W, B)
    cols = np.broadcast_to(np.asarray(c), (3,))
    out = SaliencyMap(model, sess)(XL, c)
    np.testing.assert_allclose(out, XL * W[:, cols].T, rtol=1e-6)


def test_saliency_predicted_class(sess):
    model = linear(W, B)
    pred = (XL @ W + B).argmax(axis=1)
    np.testing.assert_allclose(SaliencyMap(model, sess)(XL), XL * W[:, pred].T, rtol=1e-6)


@pytest.mark.parametrize("steps", [1, 3, 50])
@pytest.mark.parametrize("method", ["riemann_right", "riemann_left", "riemann_middle",
                                    "trapezoid", "gauss_legendre"])
def test_ig_linear_black_is_x_times_w_for_any_steps(sess, steps, method):
    model = linear(W, B)
    c = [1, 2, 0]
    attr, info = IntegratedGrad(model, sess)(XL, c, steps=steps, method=method,
                                             return_error=True)
    np.testing.assert_allclose(attr, XL * W[:, c].T, rtol=1e-5, atol=1e-6)
    assert np.all(info["completeness_error"] < 1e-5)


def test_smoothgrad_linear_is_w(sess):
    model = linear(W, B)
    sg = SmoothGrad(model, sess)
    np.testing.assert_allclose(sg(XL, 1, samples=7), np.tile(W[:, 1], (3, 1)), rtol=1e-6)
    np.testing.assert_allclose(sg(XL, [0, 1, 2], samples=4, kind="squared"),
                               W[:, [0, 1, 2]].T ** 2, rtol=1e-6)
    np.testing.assert_allclose(sg(XL, 2, samples=5, kind="vargrad"), 0, atol=1e-5)
    np.testing.assert_allclose(sg(XL, 2, samples=5, multiply_by_input=True), XL * W[:, 2],
                               rtol=1e-6)


def test_vanilla_gradient_linear_and_image(sess):
    np.testing.assert_allclose(VanillaGradient(linear(W, B), sess)(XL, 0),
                               np.tile(np.abs(W[:, 0]), (3, 1)), rtol=1e-6)
    w = np.random.RandomState(0).normal(size=(4, 4, 3))
    out = VanillaGradient(additive_image(w), sess)(images(2, 4), 0)
    assert out.shape == (2, 4, 4)
    np.testing.assert_allclose(out, np.tile(np.abs(w).sum(-1), (2, 1, 1)), rtol=1e-5)


# -------------------------------------------------------------------- analytic IG cases

def test_ig_written_exercise_6(sess):
    attr = IntegratedGrad(ex6_model(), sess)(np.array([2.0, 1.0]), 0, steps=1000)
    assert attr.shape == (2,)
    np.testing.assert_allclose(attr, [4 / 7, 3 / 7], atol=1e-2)


def test_ig_pair_analytic_model(sess):
    x, base = np.array([[1.0, 2.0, 3.0]]), np.array([0.5, 0.8, 1.0])
    attr = IntegratedGrad(pair_model(), sess)(x, 0, baseline=base, steps=1000)
    np.testing.assert_allclose(attr[0], [2.5, 3.36, math.sin(3) - math.sin(1)], atol=1e-2)


def test_ig_gauss_legendre_is_exact_for_polynomials(sess):
    # x1² along the path is quadratic in t: 2 Gauss-Legendre nodes integrate it exactly
    x = tf1.placeholder(tf.float32, [None, 2])
    model = Model(x, tf.stack([x[:, 0] ** 2 + x[:, 1] ** 3, x[:, 0]], axis=1))
    attr = IntegratedGrad(model, sess)(np.array([3.0, 2.0]), 0, baseline=np.array([1.0, 0.0]),
                                       steps=2, method="gauss_legendre")
    np.testing.assert_allclose(attr, [9 - 1, 8], rtol=1e-5)


# -------------------------------------------------------------------- completeness

@pytest.mark.parametrize("baseline", ["black", "white", "random", "array"])
def test_ig_completeness_on_relu_convnet(sess, baseline):
    model = tiny_convnet()
    X = images(3)
    if baseline == "array":
        baseline = np.random.RandomState(5).uniform(0, 255, X.shape).astype(np.float32)
    ig = IntegratedGrad(model, sess)
    attr, info = ig(X, None, baseline=baseline, steps=400, method="trapezoid",
                    return_error=True)
    # the end scores, computed independently of the method
    xb = {"black": np.zeros_like(X), "white": np.full_like(X, 255),
          "random": np.random.default_rng(0).normal(0, 0.1, X.shape[1:])[None]
          + np.zeros_like(X)}.get(baseline if isinstance(baseline, str) else "", baseline)
    lx, lb = sess.run(model.logits, {model.imgs: X}), sess.run(model.logits, {model.imgs: xb})
    c = lx.argmax(1)
    delta = lx[np.arange(3), c] - lb[np.arange(3), c]
    np.testing.assert_allclose(info["f_x"] - info["f_baseline"], delta, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(info["targets"], c)
    sums = attr.reshape(3, -1).sum(1)
    np.testing.assert_allclose(sums, delta, rtol=2e-2, atol=1e-4)
    np.testing.assert_allclose(info["completeness_error"], np.abs(sums - delta) / np.abs(delta),
                               rtol=1e-3, atol=1e-6)
    assert ig.last_info is info
    assert set(info) >= {"completeness_error", "f_x", "f_baseline", "gradients", "forwards"}
    assert np.all(info["gradients"] == 401) and np.all(info["forwards"] == 2)


def test_ig_finer_rules_converge(sess):
    model = tiny_convnet()
    X = images(2)
    ig = IntegratedGrad(model, sess)
    err = [ig(X, 0, steps=s, method="riemann_middle", return_error=True)[1]
           ["completeness_error"].max() for s in (4, 256)]
    assert err[1] < err[0] and err[1] < 1e-2


def test_random_baseline_is_seeded(sess):
    model = tiny_convnet()
    X = images(2)
    ig = IntegratedGrad(model, sess)
    a = ig(X, 0, baseline="random", steps=4, seed=3)
    np.testing.assert_array_equal(a, ig(X, 0, baseline="random", steps=4, seed=3))
    b = ig(X, 0, baseline="random", steps=4, seed=4, random_std=50.0)
    assert not np.allclose(a, b)


def test_white_baseline_is_255(sess):
    model = tiny_convnet()
    X = images(2)
    ig = IntegratedGrad(model, sess)
    np.testing.assert_allclose(ig(X, 1, baseline="white", steps=5),
                               ig(X, 1, baseline=np.full(X.shape[1:], 255.0), steps=5),
                               rtol=1e-6)


# -------------------------------------------------------------------- batching

def all_methods(model, sess, **kw):
    return {
        "saliency": (SaliencyMap(model, sess, **kw), {}),
        "ig": (IntegratedGrad(model, sess, **kw), {"steps": 5}),
        "ig_white": (IntegratedGrad(model, sess, **kw), {"steps": 3, "baseline": "white",
                                                        "method": "trapezoid"}),
        "vanilla": (VanillaGradient(model, sess, **kw), {}),
        "smoothgrad": (SmoothGrad(model, sess, **kw), {"samples": 4}),
        "gradcam": (GradCAM(model, sess, **kw), {}),
        "occlusion": (Occlusion(model, sess, **kw), {"superpixel_size": 4}),
        "occlusion_blur": (Occlusion(model, sess, **kw),
                           {"superpixel_size": 8, "baseline": "blur", "stride": 4}),
    }


def test_batch_equals_one_by_one(sess):
    model = tiny_convnet()
    X = images(3)
    for name, (method, kw) in all_methods(model, sess, progress=False).items():
        batch = method(X, None, **kw)
        alone = np.stack([method(x, None, **kw) for x in X])
        np.testing.assert_allclose(batch, alone, rtol=1e-4, atol=1e-4, err_msg=name)
        assert method(X[0], None, **kw).shape == batch.shape[1:], name


@pytest.mark.parametrize("bs", [1, 7, 1000])
def test_batch_size_and_session_calls(sess, bs):
    model = tiny_convnet()
    X = images(3)
    spy = mock.MagicMock(wraps=sess)
    n, c = len(X), [0, 1, 2]
    cases = [  # method, kwargs, rows of the main pass, rows of the documented forwards
        (IntegratedGrad(model, spy), {"steps": 10}, n * 10, 2 * n),
        (IntegratedGrad(model, spy), {"steps": 10, "method": "trapezoid"}, n * 11, 2 * n),
        (SmoothGrad(model, spy), {"samples": 6}, n * 6, 0),
        (SaliencyMap(model, spy), {}, n, 0),
        (VanillaGradient(model, spy), {}, n, 0),
        (GradCAM(model, spy), {}, n, 0),
        (Occlusion(model, spy), {"superpixel_size": 4}, n * 16, n),
    ]
    for method, kw, rows, forwards in cases:
        spy.run.reset_mock()
        out = method(X, c, batch_size=bs, **kw)
        calls = math.ceil(rows / bs) + (math.ceil(forwards / bs) if forwards else 0)
        assert spy.run.call_count == calls, type(method).__name__
        ref = method(X, c, batch_size=1000, **kw)
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4,
                                   err_msg=type(method).__name__)


def test_predicted_targets_cost_one_forward_pass(sess):
    model = tiny_convnet()
    X = images(3)
    spy = mock.MagicMock(wraps=sess)
    SaliencyMap(model, spy)(X, None, batch_size=2)
    assert spy.run.call_count == 2 * math.ceil(3 / 2)
    spy.run.reset_mock()
    IntegratedGrad(model, spy)(X, None, steps=4, batch_size=5)   # ends give the targets
    assert spy.run.call_count == math.ceil(6 / 5) + math.ceil(12 / 5)


def test_no_graph_growth(sess):
    model = tiny_convnet(size=8)
    X = images(1, 8)
    methods = list(all_methods(model, sess, progress=False).values())
    for method, kw in methods:
        method(X, 0, **kw)
    ops = len(sess.graph.get_operations())
    for i in range(1000):
        method, kw = methods[i % len(methods)]
        method(X, 0, **kw)
    assert len(sess.graph.get_operations()) == ops


# -------------------------------------------------------------------- seeds

def test_smoothgrad_seeds(sess):
    model = tiny_convnet()
    X = images(2)
    sg = SmoothGrad(model, sess)
    a = sg(X, 0, samples=3, seed=1)
    np.testing.assert_array_equal(a, sg(X, 0, samples=3, seed=1))
    assert not np.allclose(a, sg(X, 0, samples=3, seed=2))
    # zero noise is the plain gradient
    grad = VanillaGradient(linear(W, B), sess)
    np.testing.assert_allclose(SmoothGrad(linear(W, B), sess)(XL, 0, sigma=0.0, samples=2),
                               np.tile(W[:, 0], (3, 1)), rtol=1e-6)
    del grad


def test_smoothgrad_noise_scale(sess):
    # f = x0² has gradient 2 x0, so the squared kind's mean is 4 (x0² + std²)
    x = tf1.placeholder(tf.float32, [None, 2])
    model = Model(x, tf.stack([x[:, 0] ** 2, x[:, 1]], axis=1))
    X = np.array([[1.0, 3.0]], np.float32)                 # max - min = 2, std = 0.5 * 2
    out = SmoothGrad(model, sess)(X, 0, samples=4000, sigma=0.5, kind="squared")
    assert out[0, 0] == pytest.approx(4 * (1 + 1.0), rel=0.1)
    var = SmoothGrad(model, sess)(X, 0, samples=4000, sigma=0.5, kind="vargrad")
    assert var[0, 0] == pytest.approx(4 * 1.0, rel=0.1)


def test_random_attribution(sess):
    X = images(2, 8)
    a = RandomAttribution(seed=0)(X)
    assert a.shape == (2, 8, 8)
    np.testing.assert_array_equal(a, RandomAttribution(seed=0)(X))
    assert not np.allclose(a, RandomAttribution(seed=1)(X))
    assert RandomAttribution()(X[0]).shape == (8, 8)
    assert RandomAttribution()(XL).shape == XL.shape


# -------------------------------------------------------------------- Grad-CAM

def gradcam_model():
    """5x5 one-channel image -> conv [[-1,-1,-1],[2,2,2],[-1,-1,-1]] ('SAME', no bias)
    -> dense layer of ones. ∂f/∂A = 1, so Grad-CAM = ReLU(A)."""
    x = tf1.placeholder(tf.float32, [None, 5, 5, 1])
    k = np.array([[-1, -1, -1], [2, 2, 2], [-1, -1, -1]], np.float32).reshape(3, 3, 1, 1)
    conv = tf.nn.conv2d(x, k, 1, "SAME")
    logits = tf.matmul(tf.reshape(conv, [-1, 25]), tf.ones([25, 1]))
    return Model(x, logits, layers={"conv": conv, "flat": tf.reshape(conv, [-1, 25])},
                 name="gradcam5")


def test_gradcam_hand_case(sess):
    img = np.zeros((5, 5, 1), np.float32)
    img[1:4, 1:4] = 1
    cam = GradCAM(gradcam_model(), sess)(img, 0)
    assert cam.shape == (5, 5)
    expect = np.zeros((5, 5))
    expect[[1, 3]] = [1 / 3, 2 / 3, 1, 2 / 3, 1 / 3]
    np.testing.assert_allclose(cam / cam.max(), expect, atol=1e-6)


def test_gradcam_default_layer_and_upsampling(sess):
    model = tiny_convnet()
    assert GradCAM(model, sess).layer == "conv2"
    model.default_layers.clear()
    assert GradCAM(model, sess).layer == "conv2"            # the last 4-D layer
    # a 2x2 layer of a constant map upsampled to 8x8 stays constant
    x = tf1.placeholder(tf.float32, [None, 8, 8, 1])
    pooled = tf.nn.avg_pool2d(x, 4, 4, "VALID")             # [N, 2, 2, 1]
    logits = tf.reshape(tf.reduce_sum(pooled, [1, 2, 3]), [-1, 1])
    gc = GradCAM(Model(x, logits, layers={"pool": pooled}), sess)
    cam = gc(np.full((1, 8, 8, 1), 2.0), 0)     # A = 2 everywhere, α = 1 -> 2 everywhere
    assert cam.shape == (1, 8, 8)
    np.testing.assert_allclose(cam, 2.0, rtol=1e-5)
    img = np.zeros((8, 8, 1))
    img[:, :4] = 4.0                            # A = [[4, 0], [4, 0]]: a left-right ramp
    cam = gc(img, 0)
    np.testing.assert_allclose(cam[:, :2], 4.0, rtol=1e-5)
    np.testing.assert_allclose(cam[:, 6:], 0.0, atol=1e-5)
    assert np.all(np.diff(cam, axis=1) <= 1e-6) and np.all(np.diff(cam[:, 1:7], axis=1) < 0)


# -------------------------------------------------------------------- Occlusion

def test_occlusion_additive_patch_sums(sess):
    rng = np.random.RandomState(2)
    w = rng.normal(size=(8, 8, 3))
    X = images(2, 8)
    out = Occlusion(additive_image(w), sess)(X, 0, superpixel_size=4)
    assert out.shape == (2, 8, 8)
    for n in range(2):
        for i in (0, 4):
            for j in (0, 4):
                expect = (w * X[n])[i:i + 4, j:j + 4].sum()
                # float32 scores of ~1e4: allow the rounding of f_x - f_occluded
                np.testing.assert_allclose(out[n, i:i + 4, j:j + 4], expect, rtol=1e-4,
                                           atol=3e-7 * np.abs(w * X[n]).sum())


def test_occlusion_stride_and_blur_on_additive(sess):
    rng = np.random.RandomState(3)
    w = rng.normal(size=(8, 8, 3))
    X = images(1, 8)
    occ = Occlusion(additive_image(w), sess)
    wx = (w * X[0]).sum(-1)
    out = occ(X, 0, superpixel_size=4, stride=2)
    expect, cover = np.zeros((8, 8)), np.zeros((8, 8))
    for i in (0, 2, 4):
        for j in (0, 2, 4):
            expect[i:i + 4, j:j + 4] += wx[i:i + 4, j:j + 4].sum()
            cover[i:i + 4, j:j + 4] += 1
    tol = 3e-7 * np.abs(w * X[0]).sum()
    np.testing.assert_allclose(out[0], expect / cover, rtol=1e-4, atol=tol)
    from scipy.ndimage import gaussian_filter
    blur = gaussian_filter(X[0], sigma=(2.0, 2.0, 0))
    out = occ(X, 0, superpixel_size=8, baseline="blur", blur_sigma=2.0)
    np.testing.assert_allclose(out[0], (w * (X[0] - blur)).sum(), rtol=1e-3, atol=tol)


# -------------------------------------------------------------------- bad input

@pytest.fixture
def conv(sess):
    return tiny_convnet(), sess


@pytest.mark.parametrize("kw, exc, words", [
    ({"steps": 0}, ValueError, "steps"),
    ({"steps": -3}, ValueError, "steps"),
    ({"steps": 2.5}, TypeError, "steps"),
    ({"baseline": "grey"}, ValueError, "baseline"),
    ({"baseline": np.zeros((4, 4, 3))}, ValueError, "baseline"),
    ({"baseline": np.zeros((2, 16, 16, 3))}, ValueError, "baseline"),
    ({"method": "simpson"}, ValueError, "method"),
    ({"c": 5}, ValueError, "[0, 5)"),
    ({"c": -1}, ValueError, "c"),
    ({"c": [0, 1]}, ValueError, "c"),
    ({"c": 1.5}, TypeError, "c"),
    ({"random_std": -1.0}, ValueError, "random_std"),
    ({"batch_size": 0}, ValueError, "batch_size"),
])
def test_ig_bad_input(conv, kw, exc, words):
    model, sess = conv
    with pytest.raises(exc, match=None) as err:
        IntegratedGrad(model, sess)(images(3), **kw)
    assert words in str(err.value)


@pytest.mark.parametrize("X, words", [
    (np.zeros((2, 16, 16)), "shape"),
    (np.zeros((2, 8, 8, 3)), "shape"),
    (np.zeros((2, 16, 16, 3, 1)), "shape"),
    (np.full((1, 16, 16, 3), np.nan), "NaN"),
    (np.full((1, 16, 16, 3), np.inf), "NaN or inf"),
])
def test_bad_inputs_for_every_method(conv, X, words):
    model, sess = conv
    for method, kw in all_methods(model, sess).values():
        with pytest.raises(ValueError, match="X") as err:
            method(X, 0, **kw)
        assert words in str(err.value)


def test_smoothgrad_bad_input(conv):
    model, sess = conv
    sg = SmoothGrad(model, sess)
    for kw, exc, word in [({"samples": 0}, ValueError, "samples"),
                          ({"samples": 1.0}, TypeError, "samples"),
                          ({"sigma": -0.1}, ValueError, "sigma"),
                          ({"sigma": float("nan")}, ValueError, "sigma"),
                          ({"kind": "mean"}, ValueError, "kind"),
                          ({"seed": "a"}, TypeError, "seed")]:
        with pytest.raises(exc, match=word):
            sg(images(1), 0, **kw)


def test_gradcam_bad_layer(conv):
    model, sess = conv
    with pytest.raises(ValueError, match=r"layer.*\['conv1', 'conv2'\].*'fc9'"):
        GradCAM(model, sess, layer="fc9")
    with pytest.raises(ValueError, match=r"layer.*\['conv1', 'conv2'\].*'pool'.*\[None, 6\]"):
        GradCAM(model, sess, layer="pool")


def test_occlusion_bad_input(conv):
    model, sess = conv
    occ = Occlusion(model, sess)
    with pytest.raises(ValueError, match=r"superpixel_size.*16 x 16.*got 5"):
        occ(images(1), 0, superpixel_size=5)
    with pytest.raises(ValueError, match="baseline"):
        occ(images(1), 0, baseline="white")
    with pytest.raises(ValueError, match="stride"):
        occ(images(1), 0, superpixel_size=4, stride=8)
    with pytest.raises(ValueError, match="X.*Occlusion"):
        Occlusion(linear(W, B), sess)(XL, 0)


def test_error_messages_use_the_templates(conv):
    model, sess = conv
    with pytest.raises(ValueError) as err:
        IntegratedGrad(model, sess)(images(1), 0, baseline="grey")
    assert str(err.value) == A.BASELINE_NAME_ERROR.format(
        arg="baseline", expected=["black", "white", "random"], actual="grey")


# -------------------------------------------------------------------- default model

@pytest.mark.slow
def test_default_model_every_method(default_model, sample_data):
    model, sess = default_model
    X = np.asarray(sample_data[0][:2], np.float32)
    n, h, w = X.shape[:3]
    for name, (method, kw) in all_methods(model, sess, progress=False).items():
        if name.startswith("occlusion"):
            kw = dict(kw, superpixel_size=32, stride=None)
        out = method(X, None, **kw)
        assert np.all(np.isfinite(out)), name
        assert out.shape == (X.shape if name in ("saliency", "ig", "ig_white", "smoothgrad")
                             else (n, h, w)), name
    ig = IntegratedGrad(model, sess, progress=False)
    _, info = ig(X[:1], None, steps=64, return_error=True)
    err = info["completeness_error"]
    print("default model, IG right Riemann, 64 steps: completeness error", err)
    assert err.shape == (1,) and np.all(np.isfinite(err))
