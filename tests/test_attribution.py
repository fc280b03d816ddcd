"""Attribution methods through the homework's API ``Method(sess, input_tensor,
output_tensor, target_class)(X, ...)``: answers known by hand, one axiom per test, the rows
built in the graph against plain numpy loops, both RowOps modes, session calls, graph growth
and bad input."""
import inspect
import math

import numpy as np
import pytest
import tensorflow as tf

import hw3_attribution as A
from hw3_attribution import (GradCAM, IntegratedGrad, Occlusion, RandomAttribution,
                             SaliencyMap, SmoothGrad, VanillaGradient)
from helpers import (B, W, XL, CountingSession, Reference, all_methods, assert_close, chunks,
                     doubled, ex6_model, images, n_ops, pair_model, raises_exactly, tensors)
from models import Model, additive_image, linear, tiny_convnet

tf1 = tf.compat.v1

IG_RULES = ["riemann_right", "riemann_left", "riemann_middle", "trapezoid", "gauss_legendre"]


# ---------------------------------------------------------------------- helpers

def quadratic_model():
    """f_0 = Σ x_i² on [None, 3]: from the black baseline f_0(t x) = t² f_0(x), so the path
    integrand is 2 t f_0(x) and every rule's total is known by hand."""
    x = tf1.placeholder(tf.float32, [None, 3])
    y = tf.reduce_sum(x ** 2, axis=1)
    return Model(x, tf.stack([y, -y], axis=1), name="quadratic")


def pooled_convnet():
    """16x16x3 images -> conv1 (3x3, 4 ch, relu, 16x16) -> 3x3 average pool, stride 3
    ('VALID', 5x5: Grad-CAM upsamples it by 16/5) -> 1x1 conv (relu) -> mean -> dense(3)."""
    rng = np.random.RandomState(7)
    x = tf1.placeholder(tf.float32, [None, 16, 16, 3], name="imgs")
    h = (x - 127.5) / 127.5
    conv1 = tf.nn.relu(tf.nn.conv2d(h, rng.normal(0, 0.5, (3, 3, 3, 4)).astype(np.float32),
                                    1, "SAME") + 0.05, name="conv1")
    pool = tf.nn.avg_pool2d(conv1, 3, 3, "VALID", name="pool5")
    mix = tf.nn.relu(tf.nn.conv2d(pool, rng.normal(0, 0.7, (1, 1, 4, 4)).astype(np.float32),
                                  1, "VALID") + 0.02, name="mix")
    logits = tf.matmul(tf.reduce_mean(mix, axis=[1, 2]),
                       rng.normal(0, 1.0, (4, 3)).astype(np.float32))
    return Model(x, logits, layers=[("conv1", conv1), ("pool5", pool), ("mix", mix)],
                 name="pooled")


# ------------------------------------------------------------------ exact signatures

def positional(fn):
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()
            if p.kind is p.POSITIONAL_OR_KEYWORD][1:]            # without self


def extensions_keyword_only_with_defaults(fn, homework):
    params = list(inspect.signature(fn).parameters.values())[1:]
    for p in params[len(homework):]:
        assert p.default is not p.empty, (fn.__qualname__, p.name)
        assert p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD), (fn.__qualname__, p.name)
    assert all(p.kind is not p.VAR_POSITIONAL for p in params), fn.__qualname__


EMPTY = inspect.Parameter.empty


@pytest.mark.parametrize("cls, init, call", [
    (SaliencyMap, ["sess", "input_tensor", "output_tensor", "target_class"],
     [("X", EMPTY), ("batch_size", 16), ("multiply_with_input", True)]),
    (IntegratedGrad, ["sess", "input_tensor", "output_tensor", "target_class"],
     [("X", EMPTY), ("baseline", "black"), ("batch_size", 16), ("num_steps", 50),
      ("multiply_with_input", True)]),
])
def test_homework_signatures_are_exact(cls, init, call):
    init_params = positional(cls.__init__)
    assert [name for name, _ in init_params] == init
    assert all(d is EMPTY for _, d in init_params[:3])
    assert init_params[3][1] in (EMPTY, None)       # required, or the None extension
    extensions_keyword_only_with_defaults(cls.__init__, init)
    assert positional(cls.__call__) == call
    extensions_keyword_only_with_defaults(cls.__call__, call)
    for p in list(inspect.signature(cls.__call__).parameters.values())[len(call) + 1:]:
        assert p.kind is p.KEYWORD_ONLY, p.name


@pytest.mark.parametrize("cls, init, call", [
    (VanillaGradient, ["sess", "input_tensor", "output_tensor", "target_class"],
     [("X", EMPTY), ("batch_size", 16)]),
    (SmoothGrad, ["sess", "input_tensor", "output_tensor", "target_class"],
     [("X", EMPTY), ("batch_size", 16), ("samples", 50), ("sigma", 0.15), ("seed", 0),
      ("kind", "smoothgrad"), ("multiply_with_input", False)]),
    (GradCAM, ["sess", "input_tensor", "output_tensor", "target_class", "internal_layer"],
     [("X", EMPTY), ("batch_size", 16)]),
    (Occlusion, ["sess", "input_tensor", "output_tensor", "target_class"],
     [("X", EMPTY), ("batch_size", 16), ("superpixel_size", None), ("baseline", "black"),
      ("blur_sigma", 5.0), ("stride", None)]),
    (RandomAttribution, ["sess", "input_tensor", "output_tensor", "target_class"],
     [("X", EMPTY), ("batch_size", 16)]),
])
def test_other_methods_follow_the_same_form(cls, init, call):
    assert [name for name, _ in positional(cls.__init__)] == init
    extensions_keyword_only_with_defaults(cls.__init__, init)
    assert positional(cls.__call__) == call
    extensions_keyword_only_with_defaults(cls.__call__, call)


def test_homework_positional_call_forms(sess):
    model = linear(W, B)
    x, out = tensors(model)
    sal = SaliencyMap(sess, x, out, 1)
    np.testing.assert_array_equal(sal(XL, 2, False), sal(XL, batch_size=2,
                                                         multiply_with_input=False))
    ig = IntegratedGrad(sess, x, out, 1)
    np.testing.assert_array_equal(ig(XL, "white", 4, 10, False),
                                  ig(XL, baseline="white", batch_size=4, num_steps=10,
                                     multiply_with_input=False))
    np.testing.assert_array_equal(ig(XL, "black", 16, 50, True), ig(XL))


# ---------------------------------------------------------------------- linear models

@pytest.mark.parametrize("c", [0, 2, [2, 0, 1]])
def test_saliency_linear_is_x_times_w(sess, c):
    x, out = tensors(linear(W, B))
    cols = np.broadcast_to(np.asarray(c), (3,))
    np.testing.assert_allclose(SaliencyMap(sess, x, out, c)(XL), XL * W[:, cols].T, rtol=1e-6)


def test_saliency_predicted_class(sess):
    x, out = tensors(linear(W, B))
    pred = (XL @ W + B).argmax(axis=1)
    np.testing.assert_allclose(SaliencyMap(sess, x, out, None)(XL), XL * W[:, pred].T,
                               rtol=1e-6)


def test_saliency_without_input_is_the_gradient(sess):
    x, out = tensors(linear(W, B))
    c = [1, 2, 0]
    np.testing.assert_allclose(SaliencyMap(sess, x, out, c)(XL, multiply_with_input=False),
                               W[:, c].T, rtol=1e-6)


@pytest.mark.parametrize("method", IG_RULES)
def test_ig_linear_black_is_x_times_w_for_any_steps(sess, method):
    x, out = tensors(linear(W, B))
    c = [1, 2, 0]
    ig = IntegratedGrad(sess, x, out, c)
    for steps in (1, 3, 50):
        attr, info = ig(XL, num_steps=steps, method=method, return_error=True)
        np.testing.assert_allclose(attr, XL * W[:, c].T, rtol=1e-5, atol=1e-6, err_msg=steps)
        assert np.all(info["completeness_error"] < 1e-5), steps


def test_ig_linear_is_x_minus_baseline_times_w(sess):
    x, out = tensors(linear(W, B))
    c = [0, 1, 2]
    ig = IntegratedGrad(sess, x, out, c)
    per_input = np.random.RandomState(3).normal(0, 2, XL.shape).astype(np.float32)
    for method in IG_RULES + ["adaptive"]:
        for baseline, xb in [("white", np.full(4, 255.0)), (per_input[1], per_input[1]),
                             (per_input, per_input)]:
            attr, mean = (ig(XL, baseline, num_steps=3, multiply_with_input=m, method=method)
                          for m in (True, False))
            np.testing.assert_allclose(attr, (XL - xb) * W[:, c].T, rtol=1e-5, atol=1e-4,
                                       err_msg=method)
            np.testing.assert_allclose(mean, W[:, c].T, rtol=1e-5, atol=1e-6, err_msg=method)


def test_smoothgrad_linear_is_w(sess):
    x, out = tensors(linear(W, B))
    sg = SmoothGrad(sess, x, out, 1)
    np.testing.assert_allclose(sg(XL, samples=7), np.tile(W[:, 1], (3, 1)), rtol=1e-6)
    np.testing.assert_allclose(sg(XL, samples=4, kind="squared", target_class=[0, 1, 2]),
                               W[:, [0, 1, 2]].T ** 2, rtol=1e-6)
    np.testing.assert_allclose(sg(XL, samples=5, kind="vargrad", target_class=2), 0,
                               atol=1e-5)
    np.testing.assert_allclose(sg(XL, samples=5, multiply_with_input=True, target_class=2),
                               XL * W[:, 2], rtol=1e-6)


def test_vanilla_gradient_linear_and_image(sess):
    x, out = tensors(linear(W, B))
    np.testing.assert_allclose(VanillaGradient(sess, x, out, 0)(XL),
                               np.tile(np.abs(W[:, 0]), (3, 1)), rtol=1e-6)
    w = np.random.RandomState(0).normal(size=(4, 4, 3))
    x, out = tensors(additive_image(w))
    got = VanillaGradient(sess, x, out, 0)(images(2, 4))
    assert got.shape == (2, 4, 4)
    np.testing.assert_allclose(got, np.tile(np.abs(w).sum(-1), (2, 1, 1)), rtol=1e-5)


# -------------------------------------------------------------------- analytic IG cases

def test_ig_written_exercise_6(sess):
    """Along the path f = min(7t, 1): the gradient is (2, 3) before the kink at t = 1/7
    and 0 after, so the right sum counts k nodes i/N <= 1/7 and gives (4, 3) k/N with
    |k/N - 1/7| <= 1/N (k = floor(N/7), or N/7 - 1 when float rounding puts the node i = N/7
    past the kink): the error is at most (4/N, 3/N)."""
    x, out = tensors(ex6_model())
    ig = IntegratedGrad(sess, x, out, 0)
    for steps in (1, 6, 7, 50, 333, 1000):
        attr = ig(np.array([2.0, 1.0]), batch_size=1000, num_steps=steps)
        assert attr.shape == (2,)
        assert np.all(np.abs(attr - [4 / 7, 3 / 7]) <= np.array([4.0, 3.0]) / steps + 1e-6), \
            (steps, attr)
    # N = 1000: 142 nodes (t = 0.142 -> 0.994) before the kink, node 143 is past it
    np.testing.assert_allclose(attr, [4 * 0.142, 3 * 0.142], rtol=1e-5)
    np.testing.assert_allclose(attr, [4 / 7, 3 / 7], atol=1e-2)


def test_ig_pair_analytic_model(sess):
    x, out = tensors(pair_model())
    X, base = np.array([[1.0, 2.0, 3.0]]), np.array([0.5, 0.8, 1.0])
    attr = IntegratedGrad(sess, x, out, 0)(X, baseline=base, num_steps=1000)
    np.testing.assert_allclose(attr[0], [2.5, 3.36, math.sin(3) - math.sin(1)], atol=1e-2)


def test_ig_gauss_legendre_is_exact_for_polynomials(sess):
    # x0² + x1³ along the path is cubic in t: 2 Gauss-Legendre nodes integrate it exactly
    x = tf1.placeholder(tf.float32, [None, 2])
    out = tf.stack([x[:, 0] ** 2 + x[:, 1] ** 3, x[:, 0]], axis=1)
    attr = IntegratedGrad(sess, x, out, 0)(np.array([3.0, 2.0]), baseline=np.array([1.0, 0.0]),
                                           num_steps=2, method="gauss_legendre")
    np.testing.assert_allclose(attr, [9 - 1, 8], rtol=1e-5)


# -------------------------------------------------------------------- completeness

def test_ig_completeness_exactly_known_on_a_quadratic(sess):
    """f = Σ x², black baseline: the integrand 2 t f(x) is linear in t, so the right sum is
    (1/N) Σ 2 (i/N) f = (N + 1)/N f (error exactly 1/N), the left one (N - 1)/N f, and the
    midpoint, trapezoid and Gauss rules are exact."""
    x, out = tensors(quadratic_model())
    X = np.array([[2.0, 1.0, -1.0], [0.5, -3.0, 0.25]], np.float32)
    f = (X.astype(np.float64) ** 2).sum(1)
    ig = IntegratedGrad(sess, x, out, 0)
    for method, total in [("riemann_right", lambda n: (n + 1) / n),
                          ("riemann_left", lambda n: (n - 1) / n),
                          ("riemann_middle", lambda n: 1.0), ("trapezoid", lambda n: 1.0),
                          ("gauss_legendre", lambda n: 1.0)]:
        errors = []
        for n in (1, 4, 64):
            attr, info = ig(X, num_steps=n, method=method, return_error=True)
            np.testing.assert_allclose(attr.sum(1), total(n) * f, rtol=1e-6,
                                       err_msg=(method, n))
            np.testing.assert_allclose(info["completeness_error"], abs(total(n) - 1),
                                       rtol=1e-5, atol=1e-7, err_msg=(method, n))
            errors.append(info["completeness_error"].max())
        assert errors == sorted(errors, reverse=True), method   # falls with the steps


def test_ig_completeness_approaches_zero_on_a_smooth_model(sess):
    """The right sum's error is (g(1) - g(0)) / 2N + O(1/N²) for the path integrand
    g(t) = ∇f(x_b + t(x - x_b)) · (x - x_b): on PAIR's model, with Δf known by hand, N times
    the completeness error tends to |g(1) - g(0)| / (2 |Δf|)."""
    x, out = tensors(pair_model())
    X, base = np.array([[1.0, 2.0, 3.0]]), np.array([0.5, 0.8, 1.0])
    d = X[0] - base
    g0 = np.dot([5.0, 2 * base[1], math.cos(base[2])], d)
    g1 = np.dot([5.0, 2 * X[0, 1], math.cos(X[0, 2])], d)
    delta = 2.5 + 3.36 + math.sin(3) - math.sin(1)
    ig = IntegratedGrad(sess, x, out, 0)
    err = [ig(X, base, num_steps=n, return_error=True)[1]["completeness_error"][0]
           for n in (4, 16, 64, 256)]
    assert all(a > b for a, b in zip(err, err[1:])), err
    assert 256 * err[-1] == pytest.approx(abs(g1 - g0) / (2 * abs(delta)), rel=0.05)


@pytest.mark.parametrize("baseline", ["black", "white", "random", "array"])
def test_ig_completeness_on_relu_convnet(conv, baseline):
    sess, model = conv[:2]
    x, out = tensors(model)
    X = images(3)
    if baseline == "array":
        baseline = np.random.RandomState(5).uniform(0, 255, X.shape).astype(np.float32)
    ig = IntegratedGrad(sess, x, out, None)
    attr, info = ig(X, baseline, batch_size=401, num_steps=400, method="trapezoid",
                    return_error=True)
    # the end scores, computed independently of the method
    xb = {"black": np.zeros_like(X), "white": np.full_like(X, 255),
          "random": np.random.default_rng(0).normal(0, 0.1, X.shape[1:])[None]
          + np.zeros_like(X)}.get(baseline if isinstance(baseline, str) else "", baseline)
    lx, lb = sess.run(out, {x: X}), sess.run(out, {x: xb})
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


def test_ig_finer_rules_converge(conv):
    sess, model = conv[:2]
    x, out = tensors(model)
    X = images(2)
    ig = IntegratedGrad(sess, x, out, 0)
    err = [ig(X, num_steps=s, method="riemann_middle", return_error=True)[1]
           ["completeness_error"].max() for s in (4, 256)]
    assert err[1] < err[0] and err[1] < 1e-2


def test_ig_without_input_is_the_weighted_mean_gradient(conv):
    sess, model = conv[:2]
    x, out = tensors(model)
    X = images(2)
    ig = IntegratedGrad(sess, x, out, [3, 1])
    for baseline, xb in [("black", np.zeros(X.shape[1:])),
                         ("white", np.full(X.shape[1:], 255.0)),
                         ("random", np.random.default_rng(4).normal(0, 9.0, X.shape[1:])),
                         ("array", images(2, seed=8))]:
        b = xb if baseline == "array" else baseline
        for method in ("riemann_right", "trapezoid", "adaptive"):
            kw = dict(num_steps=6, method=method, seed=4, random_std=9.0, max_gradients=8)
            attr, mean = ig(X, b, **kw), ig(X, b, multiply_with_input=False, **kw)
            assert mean.shape == X.shape
            np.testing.assert_allclose(attr, (X - xb) * mean, rtol=1e-5,
                                       atol=1e-6 * np.abs(attr).max(),
                                       err_msg=(baseline, method))


def test_random_baseline_is_seeded(conv):
    sess, model = conv[:2]
    x, out = tensors(model)
    X = images(2)
    ig = IntegratedGrad(sess, x, out, 0)
    a = ig(X, "random", num_steps=4, seed=3)
    np.testing.assert_array_equal(a, ig(X, "random", num_steps=4, seed=3))
    b = ig(X, "random", num_steps=4, seed=4, random_std=50.0)
    assert not np.allclose(a, b)
    # reproduced independently: one Gaussian image (std in pixel units) shared by all inputs
    xb = np.random.default_rng(4).normal(0.0, 50.0, X.shape[1:]).astype(np.float32)
    np.testing.assert_allclose(b, ig(X, xb, num_steps=4), rtol=1e-6, atol=1e-7)


def test_white_baseline_is_255(conv):
    sess, model = conv[:2]
    x, out = tensors(model)
    X = images(2)
    ig = IntegratedGrad(sess, x, out, 1)
    np.testing.assert_allclose(ig(X, "white", num_steps=5),
                               ig(X, np.full(X.shape[1:], 255.0), num_steps=5), rtol=1e-6)


# -------------------------------------------------------------------- Grad-CAM by hand

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
    model = gradcam_model()
    img = np.zeros((5, 5, 1), np.float32)
    img[1:4, 1:4] = 1
    cam = GradCAM(sess, model.imgs, model.logits, 0, model.layers["conv"])(img)
    assert cam.shape == (5, 5)
    expect = np.zeros((5, 5))
    expect[[1, 3]] = [1, 2, 3, 2, 1]            # ReLU of the conv; α = 1 (∂f/∂A = 1)
    np.testing.assert_allclose(cam, expect, atol=1e-6)


def test_gradcam_upsampling(sess):
    # a 2x2 layer of a constant map upsampled to 8x8 stays constant
    x = tf1.placeholder(tf.float32, [None, 8, 8, 1])
    pooled = tf.nn.avg_pool2d(x, 4, 4, "VALID")             # [N, 2, 2, 1]
    logits = tf.reshape(tf.reduce_sum(pooled, [1, 2, 3]), [-1, 1])
    gc = GradCAM(sess, x, logits, 0, pooled)
    cam = gc(np.full((1, 8, 8, 1), 2.0))        # A = 2 everywhere, α = 1 -> 2 everywhere
    assert cam.shape == (1, 8, 8)
    np.testing.assert_allclose(cam, 2.0, rtol=1e-5)
    img = np.zeros((8, 8, 1))
    img[:, :4] = 4.0                            # A = [[4, 0], [4, 0]]: a left-right ramp
    cam = gc(img)
    np.testing.assert_allclose(cam[:, :2], 4.0, rtol=1e-5)
    np.testing.assert_allclose(cam[:, 6:], 0.0, atol=1e-5)
    assert np.all(np.diff(cam, axis=1) <= 1e-6) and np.all(np.diff(cam[:, 1:7], axis=1) < 0)


# -------------------------------------------------------------------- Occlusion by hand

def test_occlusion_additive_patch_sums(sess):
    rng = np.random.RandomState(2)
    w = rng.normal(size=(8, 8, 3))
    x, out = tensors(additive_image(w))
    X = images(2, 8)
    got = Occlusion(sess, x, out, 0)(X, superpixel_size=4)
    assert got.shape == (2, 8, 8)
    for n in range(2):
        for i in (0, 4):
            for j in (0, 4):
                expect = (w * X[n])[i:i + 4, j:j + 4].sum()
                # float32 scores of ~1e4: allow the rounding of f_x - f_occluded
                np.testing.assert_allclose(got[n, i:i + 4, j:j + 4], expect, rtol=1e-4,
                                           atol=3e-7 * np.abs(w * X[n]).sum())


def test_occlusion_stride_blur_and_array_baselines_on_additive(sess):
    rng = np.random.RandomState(3)
    w = rng.normal(size=(8, 8, 3))
    x, out = tensors(additive_image(w))
    X = images(1, 8)
    occ = Occlusion(sess, x, out, 0)
    wx = (w * X[0]).sum(-1)
    got = occ(X, superpixel_size=4, stride=2)
    expect, cover = np.zeros((8, 8)), np.zeros((8, 8))
    for i in (0, 2, 4):
        for j in (0, 2, 4):
            expect[i:i + 4, j:j + 4] += wx[i:i + 4, j:j + 4].sum()
            cover[i:i + 4, j:j + 4] += 1
    tol = 3e-7 * np.abs(w * X[0]).sum()
    np.testing.assert_allclose(got[0], expect / cover, rtol=1e-4, atol=tol)
    from scipy.ndimage import gaussian_filter
    blur = gaussian_filter(X[0], sigma=(2.0, 2.0, 0))
    got = occ(X, superpixel_size=8, baseline="blur", blur_sigma=2.0)
    np.testing.assert_allclose(got[0], (w * (X[0] - blur)).sum(), rtol=1e-3, atol=tol)
    # an array baseline: a patch's importance is Σ w (x - b) over it
    b = images(1, 8, seed=9)[0]
    got = occ(X[0], superpixel_size=4, baseline=b)
    assert got.shape == (8, 8)
    wd = (w * (X[0] - b)).sum(-1)
    for i in (0, 4):
        for j in (0, 4):
            np.testing.assert_allclose(got[i:i + 4, j:j + 4], wd[i:i + 4, j:j + 4].sum(),
                                       rtol=1e-4, atol=tol)


# -------------------------------------------------------------------- random maps

def test_random_attribution(sess):
    model = tiny_convnet(size=8)
    x, out = tensors(model)
    X = images(2, 8)
    a = RandomAttribution(sess, x, out, 0)(X)
    assert a.shape == (2, 8, 8)
    np.testing.assert_array_equal(a, np.random.default_rng(0).standard_normal((2, 8, 8))
                                  .astype(np.float32))
    np.testing.assert_array_equal(a, RandomAttribution(sess, x, out, None, seed=0)(X))
    assert not np.allclose(a, RandomAttribution(sess, x, out, 0, seed=1)(X))
    assert RandomAttribution(sess, x, out, 0)(X[0]).shape == (8, 8)
    spy = CountingSession(sess)
    RandomAttribution(spy, x, out, None, seed=5)(X)
    assert spy.rows == []                                # it never runs the model
    xl, outl = tensors(linear(W, B))
    assert RandomAttribution(sess, xl, outl, 0)(XL).shape == XL.shape


# -------------------------------------------------------------------- targets

def test_target_class_none_int_sequence_and_per_call_override(conv):
    sess, model = conv[:2]
    x, out = tensors(model)
    X = images(3)
    pred = sess.run(out, {x: X}).argmax(1)
    seq = [4, 0, 2]
    by_none, by_int, by_seq = (all_methods(sess, model, t, progress=False)
                               for t in (None, 1, seq))
    for name, (m_none, kw) in by_none.items():
        m_int, m_seq = by_int[name][0], by_seq[name][0]
        explicit = m_int(X, target_class=pred, **kw)
        np.testing.assert_allclose(m_none(X, **kw), explicit, rtol=1e-5, atol=1e-6,
                                   err_msg=name)
        # an override is for that call only; a sequence is one target per input
        np.testing.assert_allclose(m_int(X, target_class=seq, **kw), m_seq(X, **kw),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(m_seq(X, target_class=1, **kw), m_int(X, **kw),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
        assert m_int.target_class == 1 and list(m_seq.target_class) == seq, name
        one = np.stack([m_int(X[i:i + 1], target_class=[seq[i]], **kw)[0] for i in range(3)])
        np.testing.assert_allclose(one, m_seq(X, **kw), rtol=1e-4, atol=1e-4, err_msg=name)


def test_target_none_is_the_prediction_at_the_input(sess):
    """Never re-chosen along the path or per noisy sample: f_0 = x0 + x1,
    f_1 = (x0 + x1)/2 + 1 predicts class 0 at (2, 3) (5 > 3.5) and class 1 wherever
    x0 + x1 < 2, e.g. at the black baseline and at many noisy samples of std 20; every
    method explains class 0, whose gradient is (1, 1) everywhere."""
    Wc = np.array([[1.0, 0.5], [1.0, 0.5]])
    x, out = tensors(linear(Wc, [0.0, 1.0]))
    X = np.array([[2.0, 3.0]], np.float32)
    ig = IntegratedGrad(sess, x, out, None)
    attr, info = ig(X, num_steps=4, return_error=True)
    np.testing.assert_array_equal(info["targets"], [0])
    np.testing.assert_allclose(attr, [[2.0, 3.0]], rtol=1e-6)             # x ⊙ W[:, 0]
    assert info["completeness_error"][0] < 1e-6
    np.testing.assert_allclose(ig.path_scores(X, alphas=[0.0, 0.5, 1.0]), [[0.0, 2.5, 5.0]],
                               rtol=1e-6)
    maps, _ = ig.sweep(X, steps=(1, 2))
    np.testing.assert_allclose(maps[1], [[2.0, 3.0]], rtol=1e-6)
    np.testing.assert_allclose(SmoothGrad(sess, x, out, None)(X, sigma=20.0, samples=8),
                               [[1.0, 1.0]], rtol=1e-6)
    # ex6: the prediction at (2, 1) is class 0 (1 > -1)
    x, out = tensors(ex6_model())
    attr, info = IntegratedGrad(sess, x, out, None)(np.array([[2.0, 1.0]]), batch_size=1000,
                                                    num_steps=1000, return_error=True)
    np.testing.assert_array_equal(info["targets"], [0])
    np.testing.assert_allclose(attr[0], [4 * 0.142, 3 * 0.142], rtol=1e-5)


# -------------------------------------------------------------------- batching

def test_batch_equals_one_by_one(conv):
    sess, model = conv[:2]
    X = images(3)
    for name, (method, kw) in all_methods(sess, model, None, progress=False).items():
        batch = method(X, **kw)
        alone = np.stack([method(x, **kw) for x in X])
        np.testing.assert_allclose(batch, alone, rtol=1e-4, atol=1e-4, err_msg=name)
        assert method(X[0], **kw).shape == batch.shape[1:], name
    x, out = tensors(model)
    ra = RandomAttribution(sess, x, out, None, seed=2)
    assert ra(X[0]).shape == ra(X).shape[1:] == (16, 16)


def test_smoothgrad_seeded_and_independent_of_batch_size(conv):
    sess, model = conv[:2]
    x, out = tensors(model)
    X = images(3)
    sg = SmoothGrad(sess, x, out, 0)
    a = sg(X, samples=5, seed=1)
    np.testing.assert_array_equal(a, sg(X, samples=5, seed=1))
    assert not np.allclose(a, sg(X, samples=5, seed=2))
    for bs in (1, 3, 7, 1000):
        assert_close(sg(X, batch_size=bs, samples=5, seed=1), a, rtol=1e-5)
    # and of the other inputs of the batch
    assert_close(sg(X[1:], samples=5, seed=1), a[1:], rtol=1e-5)
    assert_close(SmoothGrad(sess, x, out, 0)(X[2], samples=5, seed=1), a[2], rtol=1e-5)


def test_smoothgrad_zero_noise_is_the_plain_gradient(sess):
    x, out = tensors(linear(W, B))
    np.testing.assert_allclose(SmoothGrad(sess, x, out, 0)(XL, sigma=0.0, samples=2),
                               np.tile(W[:, 0], (3, 1)), rtol=1e-6)
    x, out = tensors(tiny_convnet())
    X = images(2)
    assert_close(SmoothGrad(sess, x, out, [2, 3])(X, sigma=0.0, samples=3),
                 SaliencyMap(sess, x, out, [2, 3])(X, multiply_with_input=False), rtol=1e-5)


def test_smoothgrad_noise_scale(sess):
    # f = x0² has gradient 2 x0, so the squared kind's mean is 4 (x0² + std²)
    x = tf1.placeholder(tf.float32, [None, 2])
    out = tf.stack([x[:, 0] ** 2, x[:, 1]], axis=1)
    X = np.array([[1.0, 3.0]], np.float32)                 # max - min = 2, std = 0.5 * 2
    sg = SmoothGrad(sess, x, out, 0)
    got = sg(X, batch_size=1000, samples=4000, sigma=0.5, kind="squared")
    assert got[0, 0] == pytest.approx(4 * (1 + 1.0), rel=0.1)
    var = sg(X, batch_size=1000, samples=4000, sigma=0.5, kind="vargrad")
    assert var[0, 0] == pytest.approx(4 * 1.0, rel=0.1)


# ------------------------------------------------ in the graph vs a plain numpy loop

def rule(method, n):
    """Nodes and weights of a rule, written out here (not taken from the module)."""
    i = np.arange(1, n + 1)
    if method == "riemann_right":
        return i / n, np.full(n, 1 / n)
    if method == "riemann_left":
        return (i - 1) / n, np.full(n, 1 / n)
    if method == "riemann_middle":
        return (i - 0.5) / n, np.full(n, 1 / n)
    if method == "trapezoid":
        return np.arange(n + 1) / n, np.r_[0.5, np.ones(n - 1), 0.5] / n
    z, w = np.polynomial.legendre.leggauss(n)
    return (z + 1) / 2, w / 2


@pytest.mark.parametrize("method, baseline", [
    ("riemann_right", "black"), ("trapezoid", "white"), ("gauss_legendre", "array"),
    ("riemann_left", "random"), ("riemann_middle", "one")])
def test_ig_equals_numpy_loop(conv, method, baseline):
    sess, model = conv[:2]
    ref = Reference(sess, model)
    X = images(3)
    xb = {"black": np.zeros(X.shape), "white": np.full(X.shape, 255.0),
          "array": images(3, seed=6), "one": np.broadcast_to(images(1, seed=6), X.shape),
          "random": np.broadcast_to(np.random.default_rng(2).normal(0, 30.0, X.shape[1:]),
                                    X.shape)}[baseline]
    arg = {"array": xb, "one": xb[0]}.get(baseline, baseline)
    targets = [0, 3, 4]
    ig = IntegratedGrad(sess, *tensors(model), targets)
    ops = n_ops(sess)
    attr, info = ig(X, arg, num_steps=7, method=method, seed=2, random_std=30.0,
                    return_error=True)
    t, w = rule(method, 7)
    for n, c in enumerate(targets):
        mean = sum(wk * ref.g(xb[n] + tk * (X[n] - xb[n]), c) for tk, wk in zip(t, w))
        assert_close(attr[n], (X[n] - xb[n]) * mean)
        f_x, f_b = ref.f(X[n], c), ref.f(xb[n].astype(np.float32), c)
        assert info["f_x"][n] == pytest.approx(f_x, rel=1e-5, abs=1e-6)
        assert info["f_baseline"][n] == pytest.approx(f_b, rel=1e-5, abs=1e-6)
        total = ((X[n] - xb[n]) * mean).sum()
        assert info["completeness_error"][n] == pytest.approx(
            abs(total - (f_x - f_b)) / abs(f_x - f_b), rel=1e-3, abs=1e-6)
    assert n_ops(sess) == ops


@pytest.mark.parametrize("kind", ["smoothgrad", "squared", "vargrad"])
def test_smoothgrad_equals_stateless_noise_loop(conv, kind):
    """Sample s of every input adds sigma (max - min) · stateless_normal(shape, [seed, s])."""
    sess, model = conv[:2]
    ref = Reference(sess, model)
    with sess.graph.as_default():                                    # the test's own op
        seed_ph = tf1.placeholder(tf.int32, [2])
        noise = tf.random.stateless_normal([16, 16, 3], seed=seed_ph)
    X = images(2)
    targets, samples, sigma, seed = [1, 4], 5, 0.2, 11
    got = SmoothGrad(sess, *tensors(model), targets)(X, batch_size=3, samples=samples,
                                                     sigma=sigma, seed=seed, kind=kind)
    for n, c in enumerate(targets):
        scale = sigma * (X[n].max() - X[n].min())
        g = np.stack([ref.g(X[n] + scale * sess.run(noise, {seed_ph: [seed, s]}), c)
                      for s in range(samples)])
        expect = {"smoothgrad": g.mean(0), "squared": (g ** 2).mean(0),
                  "vargrad": (g ** 2).mean(0) - g.mean(0) ** 2}[kind]
        assert_close(got[n], expect, rtol=1e-4 if kind != "vargrad" else 1e-3)


@pytest.mark.parametrize("kw", [{"superpixel_size": 4},
                                {"superpixel_size": 8, "stride": 4, "baseline": "blur",
                                 "blur_sigma": 3.0},
                                {"superpixel_size": 4, "stride": 3, "baseline": "array"}])
def test_occlusion_equals_numpy_masking_loop(conv, kw):
    sess, model = conv[:2]
    from scipy.ndimage import gaussian_filter
    ref = Reference(sess, model)
    X = images(2)
    size, stride = kw["superpixel_size"], kw.get("stride", kw["superpixel_size"])
    base = {"black": np.zeros_like(X), "array": images(2, seed=4),
            "blur": np.stack([gaussian_filter(x, (3.0, 3.0, 0)) for x in X])
            }[kw.get("baseline", "black")]
    if kw.get("baseline") == "array":
        kw = dict(kw, baseline=base)
    targets = [2, 0]
    got = Occlusion(sess, *tensors(model), targets)(X, **kw)
    starts = sorted(set(range(0, 16 - size + 1, stride)) | {16 - size})
    corners = [(i, j) for i in starts for j in starts]
    for n, c in enumerate(targets):
        occluded = np.stack([X[n]] * len(corners))
        for k, (i, j) in enumerate(corners):
            occluded[k, i:i + size, j:j + size] = base[n][i:i + size, j:j + size]
        drop = ref.f(X[n], c) - ref.fs(occluded, c)
        total, cover = np.zeros((16, 16)), np.zeros((16, 16))
        for (i, j), d in zip(corners, drop):
            total[i:i + size, j:j + size] += d
            cover[i:i + size, j:j + size] += 1
        np.testing.assert_allclose(got[n], total / cover, rtol=1e-4, atol=2e-5)


def bilinear(cam, H, W):
    """Resize [h, w] to [H, W] as tf.image.resize does (bilinear, half-pixel centres)."""
    def axis(n_out, n_in):
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        return lo, np.minimum(lo + 1, n_in - 1), pos - lo
    (r0, r1, fr), (c0, c1, fc) = axis(H, cam.shape[0]), axis(W, cam.shape[1])
    rows = cam[r0] * (1 - fr)[:, None] + cam[r1] * fr[:, None]
    return rows[:, c0] * (1 - fc) + rows[:, c1] * fc


@pytest.mark.parametrize("maker, layer", [(tiny_convnet, "conv2"), (tiny_convnet, "conv1"),
                                          (pooled_convnet, "pool5"), (pooled_convnet, "mix")])
def test_gradcam_equals_numpy(sess, maker, layer):
    model = maker()
    ref = Reference(sess, model, model.layers[layer])
    X = images(3)
    targets = [0, 2, 1]
    got = GradCAM(sess, *tensors(model), targets, model.layers[layer])(X)
    assert got.shape == (3, 16, 16)
    for n, c in enumerate(targets):
        acts, d_acts = ref.acts(X[n], c)
        cam = np.maximum((d_acts.mean(axis=(0, 1)) * acts).sum(-1), 0)     # [h, w]
        assert_close(got[n], bilinear(cam, 16, 16))


def test_saliency_and_vanilla_equal_numpy(conv):
    sess, model = conv[:2]
    ref = Reference(sess, model)
    X = images(3)
    targets = [1, 1, 3]
    x, out = tensors(model)
    sal = SaliencyMap(sess, x, out, targets)(X, batch_size=2)
    van = VanillaGradient(sess, x, out, targets)(X, batch_size=2)
    for n, c in enumerate(targets):
        g = ref.g(X[n], c)
        assert_close(sal[n], X[n] * g)
        assert_close(van[n], np.abs(g).sum(-1))


# -------------------------------------------------------------------- RowOps modes

def row_based(sess, model, target):
    """Every method whose rows are built in the graph, as (name, fn) pairs."""
    x, out = tensors(model)
    ig = IntegratedGrad(sess, x, out, target, progress=False)
    sg = SmoothGrad(sess, x, out, target, progress=False)
    occ = Occlusion(sess, x, out, target, progress=False)
    base = images(3, seed=5)
    return [
        ("ig", lambda X, bs: ig(X, batch_size=bs, num_steps=5)),
        ("ig_trapezoid_white", lambda X, bs: ig(X, "white", bs, 4, method="trapezoid")),
        ("ig_array", lambda X, bs: ig(X, base, bs, 3, method="gauss_legendre")),
        ("ig_random_mean_grad", lambda X, bs: ig(X, "random", bs, 3, False, seed=1,
                                                  random_std=20.0)),
        ("ig_adaptive", lambda X, bs: ig(X, batch_size=bs, method="adaptive", tol=0.0,
                                         max_gradients=8)),
        ("sweep", lambda X, bs: np.stack(list(ig.sweep(X, "white", bs, steps=(2, 4))[0]
                                                 .values()))),
        ("path_scores", lambda X, bs: ig.path_scores(X, batch_size=bs,
                                                     alphas=[0.0, 0.3, 1.0])),
        ("smoothgrad", lambda X, bs: sg(X, bs, samples=3, seed=2)),
        ("vargrad", lambda X, bs: sg(X, bs, samples=3, seed=2, kind="vargrad")),
        ("occlusion", lambda X, bs: occ(X, bs, superpixel_size=4)),
        ("occlusion_blur", lambda X, bs: occ(X, bs, 8, "blur", stride=4)),
    ], ig._rows


def test_feed_mode_equals_clone_mode(sess, monkeypatch):
    X = images(3)
    clone_fns, clone_rows = row_based(sess, tiny_convnet(), [0, 2, 4])
    assert A.CLONE_MODEL and clone_rows.mode == "clone" and clone_rows.clone_error is None
    expected = {name: fn(X, 5) for name, fn in clone_fns}
    monkeypatch.setattr(A, "CLONE_MODEL", False)
    graph = tf.Graph()
    with graph.as_default(), tf1.Session(graph=graph) as feed_sess:
        model = tiny_convnet()
        feed_fns, feed_rows = row_based(feed_sess, model, [0, 2, 4])
        assert feed_rows.mode == "feed"
        assert feed_rows is A.row_ops(*tensors(model))          # shared by every method
        for name, fn in feed_fns:
            assert_close(fn(X, 5), expected[name], rtol=1e-5)
        # two sess.run per chunk of rows, none with more than batch_size rows
        spy = CountingSession(feed_sess)
        x, out = tensors(model)
        ig = IntegratedGrad(spy, x, out, 1)
        ig(X, batch_size=4, num_steps=5)
        assert spy.rows == chunks(3 + 1, 4) + doubled(chunks(3 * 5, 4))
        spy.rows.clear()
        SmoothGrad(spy, x, out, None)(X, batch_size=4, samples=3)
        assert spy.rows == chunks(3, 4) + doubled(chunks(3 * 3, 4))
        spy.rows.clear()
        Occlusion(spy, x, out, 1)(X, batch_size=7, superpixel_size=8)
        assert spy.rows == chunks(3, 7) + doubled(chunks(3 * 4, 7))


# -------------------------------------------------------------------- session calls

@pytest.mark.parametrize("bs", [1, 7, 1000])
def test_batch_size_and_session_calls(conv, bs):
    sess, model = conv[:2]
    x, out = tensors(model)
    X = images(3)
    spy = CountingSession(sess)
    n, c = len(X), [0, 1, 2]
    cases = [  # method, kwargs, the rows of each sess.run the docstrings promise
        (IntegratedGrad(spy, x, out, c), {"num_steps": 10},
         chunks(n + 1, bs) + chunks(n * 10, bs)),
        (IntegratedGrad(spy, x, out, c), {"num_steps": 10, "method": "trapezoid"},
         chunks(n + 1, bs) + chunks(n * 11, bs)),
        (IntegratedGrad(spy, x, out, c), {"num_steps": 4, "baseline": images(3, seed=2)},
         chunks(2 * n, bs) + chunks(n * 4, bs)),
        (IntegratedGrad(spy, x, out, None), {"num_steps": 4, "baseline": "random"},
         chunks(n + 1, bs) + chunks(n * 4, bs)),
        (SmoothGrad(spy, x, out, c), {"samples": 6}, chunks(n * 6, bs)),
        (SmoothGrad(spy, x, out, None), {"samples": 6}, chunks(n, bs) + chunks(n * 6, bs)),
        (SaliencyMap(spy, x, out, c), {}, chunks(n, bs)),
        (SaliencyMap(spy, x, out, None), {}, chunks(n, bs) + chunks(n, bs)),
        (VanillaGradient(spy, x, out, c), {}, chunks(n, bs)),
        (GradCAM(spy, x, out, c, model.layers["conv2"]), {}, chunks(n, bs)),
        (GradCAM(spy, x, out, None, model.layers["conv2"]), {},
         chunks(n, bs) + chunks(n, bs)),
        (Occlusion(spy, x, out, c), {"superpixel_size": 4},
         chunks(n, bs) + chunks(n * 16, bs)),
        (Occlusion(spy, x, out, None), {"superpixel_size": 4, "stride": 2},
         chunks(n, bs) + chunks(n * 49, bs)),
        (RandomAttribution(spy, x, out, c), {}, []),
    ]
    for method, kw, rows in cases:
        spy.rows.clear()
        got = method(X, batch_size=bs, **kw)
        assert spy.rows == rows, type(method).__name__
        assert max(spy.rows, default=0) <= bs
        ref = method(X, batch_size=1000, **kw)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4,
                                   err_msg=type(method).__name__)
    ig = IntegratedGrad(spy, x, out, c)
    spy.rows.clear()
    ig.sweep(X, "white", bs, steps=(2, 5, 10))
    assert spy.rows == chunks(n + 1, bs) + chunks(n * 10, bs)
    spy.rows.clear()
    ig.path_scores(X, batch_size=bs, alphas=np.linspace(0, 1, 11))
    assert spy.rows == chunks(n + 1, bs) + chunks(n * 11, bs)


def test_predicted_targets_cost_one_forward_pass(conv):
    sess, model = conv[:2]
    x, out = tensors(model)
    X = images(3)
    spy = CountingSession(sess)
    SaliencyMap(spy, x, out, None)(X, batch_size=2)
    assert len(spy.rows) == 2 * math.ceil(3 / 2)
    spy.rows.clear()
    IntegratedGrad(spy, x, out, None)(X, batch_size=5, num_steps=4)   # ends give targets
    assert len(spy.rows) == math.ceil((3 + 1) / 5) + math.ceil(12 / 5)


# -------------------------------------------------------------------- graph growth

def test_no_graph_growth_on_calls(sess):
    model = tiny_convnet(size=8)
    X = images(1, 8)
    calls = [(m, kw) for m, kw in all_methods(sess, model, 0, progress=False).values()]
    x, out = tensors(model)
    ig = IntegratedGrad(sess, x, out, 0, progress=False)
    calls += [(lambda X, **kw: ig.sweep(X, steps=(1, 2)), {}),
              (lambda X, **kw: ig.path_scores(X, alphas=[0.5]), {}),
              (ig, {"method": "adaptive", "max_gradients": 4, "tol": 0.0}),
              (RandomAttribution(sess, x, out, 0), {})]
    for method, kw in calls:
        method(X, **kw)
    ops = n_ops(sess)
    for i in range(1000):
        method, kw = calls[i % len(calls)]
        method(X, **kw)
    assert n_ops(sess) == ops


def test_second_instance_adds_no_op(sess):
    model = tiny_convnet(size=8)
    x, out = tensors(model)
    all_methods(sess, model, 0)
    RandomAttribution(sess, x, out, 0)
    ops = n_ops(sess)
    for target in (0, None, [1]):
        methods = all_methods(sess, model, target)
        assert n_ops(sess) == ops, target
        for name, (method, kw) in methods.items():
            method(images(1, 8), **kw)
            assert n_ops(sess) == ops, name
        RandomAttribution(sess, x, out, target, seed=3)
        assert n_ops(sess) == ops
    # a Grad-CAM on another layer is new ops (once)
    GradCAM(sess, x, out, 0, model.layers["conv1"])
    grown = n_ops(sess)
    assert grown > ops
    GradCAM(sess, x, out, 1, model.layers["conv1"])
    assert n_ops(sess) == grown


# -------------------------------------------------------------------- bad input

METHOD_CLASSES = [SaliencyMap, IntegratedGrad, VanillaGradient, SmoothGrad, Occlusion,
                  RandomAttribution]


def construct(cls, sess, x, out, target, model):
    if cls is GradCAM:
        return GradCAM(sess, x, out, target, model.layers["conv2"])
    return cls(sess, x, out, target)


@pytest.mark.parametrize("cls", METHOD_CLASSES + [GradCAM])
def test_model_object_where_a_tensor_is_expected(sess, cls):
    model = tiny_convnet()
    x, out = tensors(model)
    with raises_exactly(TypeError, A.MODEL_OBJECT_ERROR.format(
            arg="input_tensor", actual="Model", what=A.MODEL_HINTS["input_tensor"])) as err:
        construct(cls, sess, model, out, 0, model)
    assert "model.imgs" in str(err.value)
    with raises_exactly(TypeError, A.MODEL_OBJECT_ERROR.format(
            arg="output_tensor", actual="Model", what=A.MODEL_HINTS["output_tensor"])) as err:
        construct(cls, sess, x, model, 0, model)
    assert "model.logits" in str(err.value)
    with raises_exactly(TypeError, A.TENSOR_ERROR.format(arg="input_tensor",
                                                         actual="ndarray")):
        construct(cls, sess, np.zeros((1, 16, 16, 3)), out, 0, model)
    with raises_exactly(TypeError, A.TENSOR_ERROR.format(arg="output_tensor", actual="str")):
        construct(cls, sess, x, "logits:0", 0, model)


@pytest.mark.parametrize("cls", METHOD_CLASSES + [GradCAM])
def test_model_object_where_the_session_is_expected(sess, cls):
    model = tiny_convnet()
    what = "Model (a model object: pass its tensors, e.g. model.imgs and model.logits)"
    with raises_exactly(TypeError, A.SESSION_ERROR.format(api=cls.api, actual=what)):
        construct(cls, model, *tensors(model), 0, model)
    with pytest.raises(TypeError, match="output_tensor"):
        cls(model, sess)                             # the old (model, sess) form
    with raises_exactly(TypeError, A.SESSION_ERROR.format(api=cls.api, actual="NoneType")):
        construct(cls, None, *tensors(model), 0, model)


@pytest.mark.parametrize("cls", METHOD_CLASSES + [GradCAM])
def test_tensors_from_another_graph(sess, cls):
    model = tiny_convnet()
    other = tf.Graph()
    with other.as_default():
        foreign = tiny_convnet()
    x, out = tensors(model)
    with raises_exactly(ValueError, A.GRAPH_ERROR.format(arg="input_tensor",
                                                         name=foreign.imgs.name)):
        construct(cls, sess, foreign.imgs, out, 0, model)
    with raises_exactly(ValueError, A.GRAPH_ERROR.format(arg="output_tensor",
                                                         name=foreign.logits.name)):
        construct(cls, sess, x, foreign.logits, 0, model)
    with tf1.Session(graph=other) as other_sess:     # the session of the other graph
        # GradCAM checks its layer first
        arg, t = (("internal_layer", model.layers["conv2"]) if cls is GradCAM
                  else ("input_tensor", x))
        with raises_exactly(ValueError, A.GRAPH_ERROR.format(arg=arg, name=t.name)):
            construct(cls, other_sess, x, out, 0, model)
    if cls is GradCAM:
        with raises_exactly(ValueError, A.GRAPH_ERROR.format(
                arg="internal_layer", name=foreign.layers["conv2"].name)):
            GradCAM(sess, x, out, 0, foreign.layers["conv2"])


@pytest.mark.parametrize("cls", METHOD_CLASSES + [GradCAM])
def test_target_class_out_of_range(conv, cls):
    sess, model, _ = conv                              # 5 classes
    x, out = tensors(model)
    for bad, actual in [(5, [5]), (-1, [-1]), ([0, 7, 9], [7, 9])]:
        with raises_exactly(ValueError, A.TARGET_RANGE_ERROR.format(
                arg="target_class", k=5, actual=actual)):
            construct(cls, sess, x, out, bad, model)
    with raises_exactly(TypeError, A.TARGET_TYPE_ERROR.format(arg="target_class",
                                                              actual=1.5)):
        construct(cls, sess, x, out, 1.5, model)
    method = construct(cls, sess, x, out, 0, model)
    kw = {"superpixel_size": 4} if cls is Occlusion else {}
    if cls is RandomAttribution:
        return                                         # never reads the target
    with raises_exactly(ValueError, A.TARGET_RANGE_ERROR.format(arg="target_class", k=5,
                                                                actual=[7])):
        method(images(2), target_class=7, **kw)
    with raises_exactly(ValueError, A.TARGET_LENGTH_ERROR.format(arg="target_class",
                                                                 expected=2, actual=3)):
        method(images(2), target_class=[0, 1, 2], **kw)
    with raises_exactly(ValueError, A.TARGET_LENGTH_ERROR.format(arg="target_class",
                                                                 expected=3, actual=2)):
        construct(cls, sess, x, out, [0, 1], model)(images(3), **kw)


@pytest.mark.parametrize("kw, exc, message", [
    ({"num_steps": 0}, ValueError, A.POSITIVE_INT_ERROR.format(arg="num_steps", actual=0)),
    ({"num_steps": -3}, ValueError, A.POSITIVE_INT_ERROR.format(arg="num_steps", actual=-3)),
    ({"num_steps": 2.5}, TypeError, A.POSITIVE_INT_ERROR.format(arg="num_steps", actual=2.5)),
    ({"baseline": "grey"}, ValueError, A.BASELINE_NAME_ERROR.format(
        arg="baseline", expected=["black", "white", "random"], actual="grey")),
    ({"baseline": np.zeros((4, 4, 3))}, ValueError, A.BASELINE_SHAPE_ERROR.format(
        arg="baseline", one=[16, 16, 3], batch=[3, 16, 16, 3], actual=[4, 4, 3])),
    ({"baseline": np.zeros((2, 16, 16, 3))}, ValueError, A.BASELINE_SHAPE_ERROR.format(
        arg="baseline", one=[16, 16, 3], batch=[3, 16, 16, 3], actual=[2, 16, 16, 3])),
    ({"method": "simpson"}, ValueError, A.CHOICE_ERROR.format(
        arg="method", expected=list(A.IG_METHODS), actual="simpson")),
    ({"target_class": 5}, ValueError, A.TARGET_RANGE_ERROR.format(
        arg="target_class", k=5, actual=[5])),
    ({"target_class": -1}, ValueError, A.TARGET_RANGE_ERROR.format(
        arg="target_class", k=5, actual=[-1])),
    ({"target_class": [0, 1]}, ValueError, A.TARGET_LENGTH_ERROR.format(
        arg="target_class", expected=3, actual=2)),
    ({"target_class": 1.5}, TypeError, A.TARGET_TYPE_ERROR.format(arg="target_class",
                                                                  actual=1.5)),
    ({"random_std": -1.0}, ValueError, A.NONNEGATIVE_ERROR.format(arg="random_std",
                                                                  actual=-1.0)),
    ({"seed": 1.5}, TypeError, A.SEED_ERROR.format(arg="seed", actual=1.5)),
    ({"batch_size": 0}, ValueError, A.POSITIVE_INT_ERROR.format(arg="batch_size", actual=0)),
])
def test_ig_bad_input(conv, kw, exc, message):
    ig = conv[2]["ig"][0]
    with raises_exactly(exc, message):
        ig(images(3), **kw)


@pytest.mark.parametrize("X, message", [
    (np.zeros((2, 16, 16)), A.INPUT_SHAPE_ERROR.format(
        arg="X", dims="16, 16, 3", name="imgs:0", actual=[2, 16, 16])),
    (np.zeros((2, 8, 8, 3)), A.INPUT_SHAPE_ERROR.format(
        arg="X", dims="16, 16, 3", name="imgs:0", actual=[2, 8, 8, 3])),
    (np.zeros((2, 16, 16, 3, 1)), A.INPUT_SHAPE_ERROR.format(
        arg="X", dims="16, 16, 3", name="imgs:0", actual=[2, 16, 16, 3, 1])),
    (np.zeros((0, 16, 16, 3)), A.INPUT_EMPTY_ERROR.format(arg="X", actual=[0, 16, 16, 3])),
    (np.full((1, 16, 16, 3), np.nan), A.INPUT_FINITE_ERROR.format(arg="X", count=768)),
    (np.full((1, 16, 16, 3), np.inf), A.INPUT_FINITE_ERROR.format(arg="X", count=768)),
])
def test_bad_inputs_for_every_method(conv, X, message):
    sess, model, methods = conv
    x, out = tensors(model)
    ig = methods["ig"][0]
    methods = list(methods.values()) + [(ig.sweep, {}), (ig.path_scores, {})]
    for method, kw in methods:
        with raises_exactly(ValueError, message):
            method(X, **kw)
    with raises_exactly(TypeError, A.INPUT_DTYPE_ERROR.format(arg="X", actual="<U1")):
        SaliencyMap(sess, x, out, 0)(np.full((1, 16, 16, 3), "a"))


@pytest.mark.parametrize("kw, exc, message", [
    ({"samples": 0}, ValueError, A.POSITIVE_INT_ERROR.format(arg="samples", actual=0)),
    ({"samples": 1.0}, TypeError, A.POSITIVE_INT_ERROR.format(arg="samples", actual=1.0)),
    ({"sigma": -0.1}, ValueError, A.NONNEGATIVE_ERROR.format(arg="sigma", actual=-0.1)),
    ({"sigma": float("nan")}, ValueError, A.NONNEGATIVE_ERROR.format(arg="sigma",
                                                                     actual=float("nan"))),
    ({"kind": "mean"}, ValueError, A.CHOICE_ERROR.format(
        arg="kind", expected=list(A.SMOOTHGRAD_KINDS), actual="mean")),
    ({"seed": "a"}, TypeError, A.SEED_ERROR.format(arg="seed", actual="a")),
    ({"seed": 2.0}, TypeError, A.SEED_ERROR.format(arg="seed", actual=2.0)),
])
def test_smoothgrad_bad_input(conv, kw, exc, message):
    with raises_exactly(exc, message):
        conv[2]["smoothgrad"][0](images(1), **kw)


def test_random_attribution_seed_must_be_an_int(conv):
    sess, model, _ = conv
    x, out = tensors(model)
    for seed in (0.5, "0", None):
        with raises_exactly(TypeError, A.SEED_ERROR.format(arg="seed", actual=seed)):
            RandomAttribution(sess, x, out, 0, seed=seed)


@pytest.mark.parametrize("case", ["ig_random_baseline_seed_-1", "random_attribution_seed_-1",
                                  "smoothgrad_seed_2**70"])
def test_seeds_outside_the_generators_range_are_named(conv, case):
    """A seed that check_seed accepts (any int) must either work or be rejected by an error
    that names ``seed`` (DESIGN, Conventions). Found: numpy's default_rng rejects negative
    seeds ('expected non-negative integer') and the int64 seed feed overflows
    ('Python int too large to convert to C long')."""
    sess, model, methods = conv
    x, out = tensors(model)
    run = {"ig_random_baseline_seed_-1": lambda: methods["ig"][0](
               images(1), "random", num_steps=2, seed=-1),
           "random_attribution_seed_-1": lambda: RandomAttribution(
               sess, x, out, 0, seed=-1)(images(1)),
           "smoothgrad_seed_2**70": lambda: methods["smoothgrad"][0](
               images(1), samples=2, seed=2 ** 70)}[case]
    try:
        got = run()
    except (ValueError, TypeError) as err:
        assert str(err).startswith("seed: "), str(err)
    except Exception as err:   # noqa: BLE001 - any other error is the bug itself
        pytest.fail(f"{type(err).__name__}: {err} (does not name seed)")
    else:
        assert np.all(np.isfinite(got))


def test_gradcam_bad_layer(sess):
    model = tiny_convnet()
    x, out = tensors(model)
    pool = model.layers["pool"]
    with raises_exactly(ValueError, A.LAYER_RANK_ERROR.format(
            actual=f"{pool.name!r} of shape {pool.shape}")):
        GradCAM(sess, x, out, 0, pool)
    assert "'pool:0' of shape (None, 6)" in A.LAYER_RANK_ERROR.format(
        actual=f"{pool.name!r} of shape {pool.shape}")
    with raises_exactly(TypeError, A.LAYER_RANK_ERROR.format(actual="None")):
        GradCAM(sess, x, out, 0)                        # no layer
    with raises_exactly(TypeError, A.TENSOR_ERROR.format(arg="internal_layer", actual="str")):
        GradCAM(sess, x, out, 0, "conv2")               # a layer name, not its tensor
    with raises_exactly(TypeError, A.MODEL_OBJECT_ERROR.format(
            arg="internal_layer", actual="Model", what=A.GRADCAM_LAYER_HINT)):
        GradCAM(sess, x, out, 0, model)
    loose = tf.nn.relu(tf1.placeholder(tf.float32, [None, 4, 4, 2]), name="loose")
    with raises_exactly(ValueError, A.LAYER_UNCONNECTED_ERROR.format(arg="internal_layer",
                                                                     name=loose.name)):
        GradCAM(sess, x, out, 0, loose)                 # not between input and output
    lx = tf1.placeholder(tf.float32, [None, 4])
    with raises_exactly(ValueError, A.NOT_IMAGE_ERROR.format(
            arg="input_tensor", method="GradCAM", name=lx.name, actual=lx.shape)):
        GradCAM(sess, lx, out, 0, model.layers["conv2"])


def test_occlusion_bad_input(sess, conv):
    occ = conv[2]["occlusion"][0]
    with raises_exactly(ValueError, A.SUPERPIXEL_ERROR.format(arg="superpixel_size", h=16,
                                                              w=16, actual=17)):
        occ(images(1), superpixel_size=17)
    with raises_exactly(ValueError, A.POSITIVE_INT_ERROR.format(arg="superpixel_size",
                                                                actual=0)):
        occ(images(1), superpixel_size=0)
    with raises_exactly(ValueError, A.BASELINE_NAME_ERROR.format(
            arg="baseline", expected=list(A.OCCLUSION_BASELINES), actual="white")):
        occ(images(1), baseline="white")
    with raises_exactly(ValueError, A.STRIDE_ERROR.format(arg="stride", size=4, actual=8)):
        occ(images(1), superpixel_size=4, stride=8)
    with raises_exactly(ValueError, A.NONNEGATIVE_ERROR.format(arg="blur_sigma",
                                                               actual=-1.0)):
        occ(images(1), baseline="blur", blur_sigma=-1.0)
    xl, outl = tensors(linear(W, B))
    with raises_exactly(ValueError, A.NOT_IMAGE_ERROR.format(
            arg="X", method="Occlusion", name=xl.name, actual=list(XL.shape))):
        Occlusion(sess, xl, outl, 0)(XL)


def test_bad_input_raises_before_any_run(conv):
    sess, model = conv[:2]
    x, out = tensors(model)
    spy = CountingSession(sess)
    for method, kw in all_methods(spy, model, 0).values():
        with pytest.raises((ValueError, TypeError)):
            method(images(2), batch_size=0, **kw)
    assert spy.rows == []


# -------------------------------------------------------------------- default model

@pytest.mark.slow
def test_default_model_every_method(default_model, sample_data):
    model, sess = default_model
    X = np.asarray(sample_data[0][:2], np.float32)
    n, h, w = X.shape[:3]
    with sess.graph.as_default():
        methods = all_methods(sess, model, None, layer="head", progress=False)
    for name, (method, kw) in methods.items():
        if name.startswith("occlusion"):
            kw = dict(kw, superpixel_size=32, stride=None)
        got = method(X, **kw)
        assert np.all(np.isfinite(got)), name
        assert got.shape == (X.shape if name in ("saliency", "gradient", "ig", "ig_white",
                                                 "ig_mean_grad", "smoothgrad")
                             else (n, h, w)), name
        assert np.any(got != 0), name
    ig = IntegratedGrad(sess, model.imgs, model.logits, None, progress=False)
    _, info = ig(X[:1], num_steps=64, return_error=True)
    err = info["completeness_error"]
    print("default model, IG right Riemann, 64 steps: completeness error", err)
    assert err.shape == (1,) and np.all(np.isfinite(err))
