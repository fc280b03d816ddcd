"""IntegratedGrad.sweep (many step counts from one gradient pass) and path_scores, through
the homework's API: against separate calls, a linear model, plain numpy loops, and the
session calls their docstrings promise."""
import numpy as np
import pytest

from helpers import (CountingSession, Reference, assert_close, chunks, images, raises_exactly,
                     tensors)
import hw3_attribution as A
from hw3_attribution import IntegratedGrad
from models import linear


def test_sweep_equals_separate_calls_and_counts_runs(conv):
    sess, model = conv[:2]
    x, out = tensors(model)
    X = images(3)
    ig = IntegratedGrad(sess, x, out, [0, 1, 2], progress=False)
    steps = (5, 10, 20)
    for baseline in ("black", "white"):
        maps, info = ig.sweep(X, baseline, steps=steps)
        assert ig.last_info is info
        for n in steps:
            ref, ref_info = ig(X, baseline, num_steps=n, return_error=True)
            np.testing.assert_allclose(maps[n], ref, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(info["completeness_error"][n],
                                       ref_info["completeness_error"], rtol=1e-4, atol=1e-7)
        np.testing.assert_array_equal(info["gradients"], 20)
        np.testing.assert_allclose(info["f_x"], ref_info["f_x"], rtol=1e-6)
        np.testing.assert_allclose(info["f_baseline"], ref_info["f_baseline"], rtol=1e-6)
    spy = CountingSession(sess)
    IntegratedGrad(spy, x, out, 0, progress=False).sweep(X, batch_size=7, steps=steps)
    # both ends in one forward pass over N inputs + 1 shared baseline, then N x max(steps)
    # gradient rows; no run sees more than batch_size rows
    assert spy.rows == chunks(3 + 1, 7) + chunks(3 * 20, 7)
    assert len(spy.rows) == -(-(3 + 1) // 7) + -(-3 * 20 // 7)


def test_sweep_linear_model_exact_for_every_step_count(sess):
    W = np.array([[1.0, -2.0], [3.0, 0.5], [-1.0, 4.0]])
    x, out = tensors(linear(W))
    xv = np.array([2.0, 1.0, -3.0], np.float32)
    ig = IntegratedGrad(sess, x, out, 1, progress=False)
    maps, info = ig.sweep(xv, steps=[1, 2, 4])
    for n in (1, 2, 4):
        assert maps[n].shape == (3,)                        # one input: unbatched
        np.testing.assert_allclose(maps[n], xv * W[:, 1], rtol=1e-6)
        assert info["completeness_error"][n][0] < 1e-6
    # multiply_with_input=False: the mean gradient, W[:, c], for every step count
    maps, _ = ig.sweep(xv, "white", steps=[1, 3], multiply_with_input=False)
    for n in (1, 3):
        np.testing.assert_allclose(maps[n], W[:, 1], rtol=1e-6)
    maps, _ = ig.sweep(xv, "white", steps=[3])
    np.testing.assert_allclose(maps[3], (xv - 255.0) * W[:, 1], rtol=1e-5)


def test_sweep_equals_numpy_loop(conv):
    """Every N dividing M = max(steps) uses the nodes i/N = (i M/N)/M: a numpy loop over
    the path points, one gradient per row, gives each map."""
    sess, model = conv[:2]
    ref = Reference(sess, model)
    X = images(2)
    targets = [4, 1]
    ig = IntegratedGrad(sess, *tensors(model), targets, progress=False)
    for baseline in ("black", "white", "random", "array"):
        xb = {"black": np.zeros(X.shape), "white": np.full(X.shape, 255.0),
              "array": images(2, seed=3),
              "random": np.broadcast_to(np.random.default_rng(5).normal(0, 40.0, X.shape[1:]),
                                        X.shape)}[baseline]
        arg = xb if baseline == "array" else baseline
        maps, info = ig.sweep(X, arg, batch_size=5, steps=(2, 3, 6), seed=5,
                              random_std=40.0)
        means, _ = ig.sweep(X, arg, steps=(2, 3, 6), multiply_with_input=False, seed=5,
                            random_std=40.0)
        for k, c in enumerate(targets):
            grads = [ref.g(xb[k] + (i / 6) * (X[k] - xb[k]), c) for i in range(1, 7)]
            delta = ref.f(X[k], c) - ref.f(xb[k].astype(np.float32), c)
            for n in (2, 3, 6):
                mean = sum(grads[i * (6 // n) - 1] for i in range(1, n + 1)) / n
                assert_close(means[n][k], mean)
                assert_close(maps[n][k], (X[k] - xb[k]) * mean)
                total = ((X[k] - xb[k]) * mean).sum()
                assert info["completeness_error"][n][k] == pytest.approx(
                    abs(total - delta) / abs(delta), rel=1e-3, abs=1e-6), (baseline, n)


def test_sweep_rejects_step_counts_that_do_not_divide(sess):
    x, out = tensors(linear(np.eye(3)))
    ig = IntegratedGrad(sess, x, out, 0)
    with raises_exactly(ValueError, A.STEPS_DIVIDE_ERROR.format(actual=[3, 10], top=10)):
        ig.sweep(np.ones((1, 3)), steps=(3, 10))
    # the template, with the value as the user wrote it (numpy 2 may show np.int64(0))
    with pytest.raises(ValueError, match=r"^steps: expected a positive int, got "
                                         r"(np\.int64\()?0\)?$"):
        ig.sweep(np.ones((1, 3)), steps=(0, 10))
    with pytest.raises(TypeError, match=r"^steps: expected a positive int, got "
                                        r"(np\.float64\()?2\.5\)?$"):
        ig.sweep(np.ones((1, 3)), steps=(2.5,))
    with raises_exactly(ValueError, A.BASELINE_NAME_ERROR.format(
            arg="baseline", expected=["black", "white", "random"], actual="grey")):
        ig.sweep(np.ones((1, 3)), "grey", steps=(2,))


def test_path_scores_match_the_function_along_the_path(sess):
    W = np.array([[1.0, -2.0], [3.0, 0.5]])
    b = np.array([0.5, -1.0])
    x, out = tensors(linear(W, b))
    xv = np.array([[2.0, 1.0]], np.float32)
    alphas = np.array([0.0, 0.25, 1.0])
    ig = IntegratedGrad(sess, x, out, 0, progress=False)
    scores = ig.path_scores(xv, "white", alphas=alphas)
    xb = np.full(2, 255.0)
    expected = [(xb + a * (xv[0] - xb)) @ W[:, 0] + b[0] for a in alphas]
    np.testing.assert_allclose(scores[0], expected, rtol=1e-5)
    assert scores.dtype == np.float64 and scores.shape == (1, 3)
    one = ig.path_scores(xv[0], "white", alphas=alphas, target_class=1)   # unbatched
    np.testing.assert_allclose(one, [(xb + a * (xv[0] - xb)) @ W[:, 1] + b[1] for a in alphas],
                               rtol=1e-5)
    default = ig.path_scores(xv)                               # 101 uniform points
    np.testing.assert_allclose(default[0], np.linspace(0, 1, 101) * (xv[0] @ W[:, 0]) + b[0],
                               rtol=1e-5, atol=1e-6)
    for bad in ([[0.1]], [], [0.5, np.nan]):
        with raises_exactly(ValueError, A.ALPHAS_ERROR.format(actual=np.shape(bad))):
            ig.path_scores(xv, alphas=bad)


def test_path_scores_equal_numpy_loop_and_counts(conv):
    sess, model = conv[:2]
    x, out = tensors(model)
    ref = Reference(sess, model)
    X = images(3)
    xb = images(3, seed=7)
    alphas = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    ig = IntegratedGrad(sess, x, out, None, progress=False)
    scores = ig.path_scores(X, xb, batch_size=4, alphas=alphas)
    pred = sess.run(out, {x: X}).argmax(1)                    # the class at x, kept
    for k, c in enumerate(pred):
        expect = [ref.f((xb[k] + a * (X[k] - xb[k])).astype(np.float32), c) for a in alphas]
        np.testing.assert_allclose(scores[k], expect, rtol=1e-5, atol=1e-5)
    _, info = ig(X, xb, num_steps=2, return_error=True)       # both ends agree with IG's
    np.testing.assert_allclose(scores[:, -1], info["f_x"], rtol=1e-5)
    np.testing.assert_allclose(scores[:, 0], info["f_baseline"], rtol=1e-5)
    spy = CountingSession(sess)
    IntegratedGrad(spy, x, out, None).path_scores(X, xb, batch_size=4, alphas=alphas)
    # ends (N inputs + N baselines) then N x T rows of forwards only
    assert spy.rows == chunks(3 + 3, 4) + chunks(3 * 5, 4)
