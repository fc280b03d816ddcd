"""Certified adaptive Integrated Gradients (issue 8): exact answers on analytic models, a
sharp step that uniform steps miss, budget and tolerance, batching."""
import math
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

import hw3_attribution as A
from hw3_attribution import IntegratedGrad
from models import Model, linear, tiny_convnet
from test_attribution import B, W, XL, ex6_model, images, pair_model

tf1 = tf.compat.v1


def step_model(k=2000.0, s=0.7):
    """f_0 = 10 sigmoid(k (x0 + x1 - s)): from baseline 0 to x = (1, 1) the path crosses the
    step at t = s / 2 within about 2/k of t, and f rises by 10 there."""
    x = tf1.placeholder(tf.float32, [None, 2])
    y = 10 * tf.sigmoid(k * (x[:, 0] + x[:, 1] - s))
    return Model(x, tf.stack([y, -y], axis=1), name="step")


ONES = np.ones((1, 2), np.float32)


def test_linear_model_is_exact(sess):
    attr, info = IntegratedGrad(linear(W, B), sess)(XL, [0, 1, 2], method="adaptive",
                                                   return_error=True)
    np.testing.assert_allclose(attr, XL * W[:, [0, 1, 2]].T, rtol=1e-5, atol=1e-6)
    assert np.all(info["completeness_error"] < 1e-5)
    # a linear path needs no refinement: only the initial quarter of the budget is spent
    assert np.all(info["gradients"] == 64)


@pytest.mark.parametrize("correction", [None, "kink"])
def test_written_exercise_6(sess, correction):
    attr, info = IntegratedGrad(ex6_model(), sess)(
        np.array([2.0, 1.0]), 0, method="adaptive", tol=1e-5, max_gradients=256,
        correction=correction, return_error=True)
    np.testing.assert_allclose(attr, [4 / 7, 3 / 7], atol=1e-4)
    assert info["completeness_error"][0] <= 1e-4


def test_kink_correction_is_exact_for_one_kink(sess):
    # y = min(7t, 1) along the path has one kink: the corrected two-node rule is exact
    attr, info = IntegratedGrad(ex6_model(), sess)(
        np.array([2.0, 1.0]), 0, method="adaptive", tol=0.5, max_gradients=4,
        correction="kink", return_error=True)
    np.testing.assert_allclose(attr, [4 / 7, 3 / 7], atol=1e-5)
    assert info["uncorrected_error"][0] > 1e-3 > info["completeness_error"][0]


def test_pair_analytic_model(sess):
    x, base = np.array([[1.0, 2.0, 3.0]]), np.array([0.5, 0.8, 1.0])
    attr, info = IntegratedGrad(pair_model(), sess)(x, 0, baseline=base, method="adaptive",
                                                    tol=1e-5, return_error=True)
    np.testing.assert_allclose(attr[0], [2.5, 3.36, math.sin(3) - math.sin(1)], atol=1e-3)


def test_sharp_step_adaptive_reaches_tol_where_uniform_does_not(sess):
    model = step_model()
    ig = IntegratedGrad(model, sess)
    attr, info = ig(ONES, 0, method="adaptive", tol=0.01, max_gradients=64,
                    return_error=True)
    assert info["completeness_error"][0] <= 0.01
    assert info["gradients"][0] <= 64
    np.testing.assert_allclose(attr[0], [5.0, 5.0], rtol=0.02)
    # the nodes crowd around the step at t = 0.35
    nodes = info["nodes"][0]
    assert np.mean(np.abs(nodes - 0.35) < 0.02) > 0.5
    for rule, steps in [("riemann_right", 64), ("trapezoid", 63), ("gauss_legendre", 64)]:
        _, uni = ig(ONES, 0, method=rule, steps=steps, return_error=True)
        assert uni["gradients"][0] == 64
        assert uni["completeness_error"][0] > 0.1, rule


def test_budget_and_tolerance_are_honoured(sess):
    ig = IntegratedGrad(step_model(), sess)
    for budget in (2, 5, 16, 40):
        _, info = ig(ONES, 0, method="adaptive", tol=0.0, max_gradients=budget,
                     return_error=True)
        assert info["gradients"][0] == budget       # tol 0: spends the whole budget
        assert info["forwards"][0] == max(16, budget // 2) + 1
    errors = []
    for tol in (0.2, 0.05, 0.01):
        _, info = ig(ONES, 0, method="adaptive", tol=tol, max_gradients=256,
                     forward_steps=8, return_error=True)
        assert info["completeness_error"][0] <= tol
        assert info["forwards"][0] == 9
        errors.append(info["gradients"][0])
    assert errors == sorted(errors)                 # tighter tol, no fewer gradients


def test_error_bound_bounds_the_error(sess):
    X = images(3)
    _, info = IntegratedGrad(tiny_convnet(), sess)(X, None, method="adaptive", tol=0.0,
                                                   max_gradients=24, return_error=True)
    assert np.all(info["completeness_error"] <= info["error_bound"] + 1e-6)
    np.testing.assert_allclose(info["completeness_error"], info["uncorrected_error"],
                               rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("baseline", ["black", "white", "random", "array"])
def test_every_baseline_certified(sess, baseline):
    model = tiny_convnet()
    X = images(3)
    if baseline == "array":
        baseline = np.random.RandomState(5).uniform(0, 255, X.shape).astype(np.float32)
    attr, info = IntegratedGrad(model, sess)(X, None, baseline=baseline, method="adaptive",
                                             tol=0.002, max_gradients=128, return_error=True)
    delta = info["f_x"] - info["f_baseline"]
    sums = attr.reshape(3, -1).sum(1)
    np.testing.assert_allclose(info["completeness_error"], np.abs(sums - delta) / np.abs(delta),
                               rtol=1e-3, atol=1e-6)
    done = (info["completeness_error"] <= 0.002) | (info["gradients"] == 128)
    assert np.all(done)


def test_batch_size_independence_and_chunking(sess):
    model = tiny_convnet()
    X = images(3)
    spy = mock.MagicMock(wraps=sess)
    rows = []
    spy.run.side_effect = lambda fetches, feed: (
        rows.append(len(feed[model.imgs])), sess.run(fetches, feed))[1]
    ig = IntegratedGrad(model, spy)
    ref, ref_info = ig(X, [0, 1, 2], method="adaptive", tol=0.0, max_gradients=20,
                       batch_size=1000, return_error=True)
    for bs in (1, 7):
        rows.clear()
        out, info = ig(X, [0, 1, 2], method="adaptive", tol=0.0, max_gradients=20,
                       batch_size=bs, return_error=True)
        assert max(rows) <= bs
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(info["gradients"], ref_info["gradients"])
        for a, b in zip(info["nodes"], ref_info["nodes"]):
            np.testing.assert_allclose(a, b, atol=1e-5)   # TF rounds by batch shape
    # every path point of every image counted: forwards and gradients
    assert sum(rows) == int(ref_info["gradients"].sum() + ref_info["forwards"].sum())


def test_batch_equals_one_by_one_and_memory_groups(sess, monkeypatch):
    model = tiny_convnet()
    X = images(3)
    ig = IntegratedGrad(model, sess)
    kw = dict(method="adaptive", tol=0.0, max_gradients=12)
    batch = ig(X, None, **kw)
    alone = np.stack([ig(x, None, **kw) for x in X])
    np.testing.assert_allclose(batch, alone, rtol=1e-4, atol=1e-4)
    monkeypatch.setattr(A, "ADAPTIVE_MEMORY_BYTES", 1)   # one image per group
    np.testing.assert_allclose(ig(X, None, **kw), batch, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kw, exc, word", [
    ({"max_gradients": 1}, ValueError, "max_gradients"),
    ({"max_gradients": 8.0}, ValueError, "max_gradients"),
    ({"tol": -0.1}, ValueError, "tol"),
    ({"tol": "small"}, TypeError, "tol"),
    ({"forward_steps": 0}, ValueError, "forward_steps"),
    ({"correction": "scale"}, ValueError, "correction"),
])
def test_bad_adaptive_settings(sess, kw, exc, word):
    with pytest.raises(exc, match=word):
        IntegratedGrad(linear(W, B), sess)(XL, 0, method="adaptive", **kw)


@pytest.mark.slow
def test_default_model_adaptive_beats_uniform(default_model, sample_data):
    model, sess = default_model
    X = np.asarray(sample_data[0][:2], np.float32)
    ig = IntegratedGrad(model, sess, progress=False)
    _, ada = ig(X, None, method="adaptive", max_gradients=64, return_error=True)
    _, uni = ig(X, None, steps=64, return_error=True)
    print("adaptive 64:", ada["completeness_error"], ada["gradients"],
          "uniform 64:", uni["completeness_error"])
    assert np.all(np.isfinite(ada["completeness_error"]))
    assert np.all(ada["gradients"] <= 64)
    assert np.median(ada["completeness_error"]) <= np.median(uni["completeness_error"])
