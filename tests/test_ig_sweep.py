"""IntegratedGrad.sweep (many step counts from one gradient pass) and path_scores."""
import math
from unittest import mock

import numpy as np
import pytest

import models
from hw3_attribution import IntegratedGrad


def test_sweep_equals_separate_calls_and_counts_runs(sess):
    m = models.tiny_convnet()
    X = np.random.RandomState(1).uniform(0, 255, (3, 16, 16, 3)).astype(np.float32)
    ig = IntegratedGrad(m, sess, progress=False)
    steps = (5, 10, 20)
    for baseline in ("black", "white"):
        maps, info = ig.sweep(X, [0, 1, 2], baseline=baseline, steps=steps)
        for n in steps:
            ref, ref_info = ig(X, [0, 1, 2], baseline=baseline, steps=n, return_error=True)
            np.testing.assert_allclose(maps[n], ref, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(info["completeness_error"][n],
                                       ref_info["completeness_error"], rtol=1e-4, atol=1e-7)
    counting = mock.MagicMock(wraps=sess)
    ig = IntegratedGrad(m, counting, batch_size=7, progress=False)
    ig.sweep(X, 0, steps=steps)
    # both ends in one forward pass over 2N rows, then N x max(steps) gradient rows
    assert counting.run.call_count == math.ceil(2 * 3 / 7) + math.ceil(3 * 20 / 7)


def test_sweep_linear_model_exact_for_every_step_count(sess):
    W = np.array([[1.0, -2.0], [3.0, 0.5], [-1.0, 4.0]])
    m = models.linear(W)
    x = np.array([2.0, 1.0, -3.0], np.float32)
    maps, info = IntegratedGrad(m, sess, progress=False).sweep(x, 1, steps=[1, 2, 4])
    for n in (1, 2, 4):
        np.testing.assert_allclose(maps[n], x * W[:, 1], rtol=1e-6)
        assert info["completeness_error"][n][0] < 1e-6


def test_sweep_rejects_step_counts_that_do_not_divide(sess):
    m = models.linear(np.eye(3))
    with pytest.raises(ValueError, match="steps: expected step counts that each divide"):
        IntegratedGrad(m, sess).sweep(np.ones((1, 3)), 0, steps=(3, 10))
    with pytest.raises(ValueError, match="steps"):
        IntegratedGrad(m, sess).sweep(np.ones((1, 3)), 0, steps=(0, 10))


def test_path_scores_match_the_function_along_the_path(sess):
    W = np.array([[1.0, -2.0], [3.0, 0.5]])
    b = np.array([0.5, -1.0])
    m = models.linear(W, b)
    x = np.array([[2.0, 1.0]], np.float32)
    alphas = np.array([0.0, 0.25, 1.0])
    scores = IntegratedGrad(m, sess, progress=False).path_scores(
        x, 0, baseline="white", alphas=alphas)
    xb = np.full(2, 255.0)
    expected = [(xb + a * (x[0] - xb)) @ W[:, 0] + b[0] for a in alphas]
    np.testing.assert_allclose(scores[0], expected, rtol=1e-5)
    with pytest.raises(ValueError, match="alphas"):
        IntegratedGrad(m, sess).path_scores(x, 0, alphas=[[0.1]])
