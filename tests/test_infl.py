"""Tests of hw3_infl.InflDirected: analytic two-layer cases, properties, bad input."""
import math
import re
import warnings
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

import models
from hw3_infl import (DOI_EMPTY_ERROR, InactiveExpertWarning, InflDirected, as_qoi, merge)

tf1 = tf.compat.v1

D, H, K = 4, 5, 3


@pytest.fixture
def toy(sess):
    """logits = W2 relu(W1 x + b1) with the ReLU active on x in [0, 1) (b1 = 10)."""
    rng = np.random.RandomState(0)
    W1 = rng.normal(0, 1, (H, D)).astype(np.float32)
    b1 = np.full(H, 10.0, np.float32)
    W2 = rng.normal(0, 1, (K, H)).astype(np.float32)
    model = models.two_layer(W1, b1, W2)
    X = rng.uniform(0, 1, (11, D)).astype(np.float32)
    y = rng.randint(0, K, 11)
    logits = np.maximum(X @ W1.T + b1, 0) @ W2.T
    return model, sess, W1, W2, X, y, logits.argmax(1)


def test_class_qoi_is_W2_row(toy):
    model, sess, W1, W2, X, y, pred = toy
    infl = InflDirected(model, sess, progress=False)
    assert infl.layer == "hidden"
    for c in range(K):
        np.testing.assert_allclose(infl.influence(X, qoi=c), W2[c], rtol=1e-5, atol=1e-6)


def test_two_qois_same_layer_get_their_own_answers(toy):
    model, sess, W1, W2, X, y, pred = toy
    infl = InflDirected(model, sess, progress=False)
    a, b = infl.influence(X, qoi=0), infl.influence(X, qoi=1)
    assert not np.allclose(a, b)
    np.testing.assert_allclose(a, W2[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, W2[1], rtol=1e-5, atol=1e-6)


def test_pair_predicted_true_forms(toy):
    model, sess, W1, W2, X, y, pred = toy
    infl = InflDirected(model, sess, progress=False)
    tol = dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(infl.influence(X, qoi=(2, 0)), W2[2] - W2[0], **tol)
    np.testing.assert_allclose(infl.influence(X, qoi="predicted"), W2[pred].mean(0), **tol)
    np.testing.assert_allclose(infl.influence(X, qoi="true", y=y), W2[y].mean(0), **tol)
    np.testing.assert_allclose(infl.influence(X, qoi=("predicted", "true"), y=y),
                               (W2[pred] - W2[y]).mean(0), **tol)
    # a callable on the logits tensor: 2 s_0 - s_1
    np.testing.assert_allclose(infl.influence(X, qoi=lambda s: 2 * s[:, 0] - s[:, 1]),
                               2 * W2[0] - W2[1], **tol)


def test_expert_is_argmax_and_attribution(toy):
    model, sess, W1, W2, X, y, pred = toy
    infl = InflDirected(model, sess, progress=False)
    for c in range(K):
        e = infl.expert(X, qoi=c)
        assert isinstance(e, int) and e == int(np.argmax(W2[c]))
        np.testing.assert_array_equal(infl.expert(X, qoi=c, k=3), np.argsort(-W2[c])[:3])
        np.testing.assert_allclose(infl(X, e), X * W1[e], rtol=1e-5, atol=1e-6)
    # single input comes back unbatched; per-row neurons
    np.testing.assert_allclose(infl(X[0], 2), X[0] * W1[2], rtol=1e-5)
    rows = np.arange(len(X)) % H
    np.testing.assert_allclose(infl(X, rows), X * W1[rows], rtol=1e-5, atol=1e-6)


def test_distributional_linearity_and_shard_merge(toy):
    model, sess, W1, W2, X, y, pred = toy
    infl = InflDirected(model, sess, batch_size=4, progress=False)
    A, B = X[:3], X[3:]
    whole = infl.influence(X)
    mixed = (len(A) * infl.influence(A) + len(B) * infl.influence(B)) / len(X)
    np.testing.assert_allclose(whole, mixed, rtol=1e-6, atol=1e-7)
    parts = [infl.influence_partial(X[s], "true", y[s]) for s in (slice(0, 3), slice(3, 7),
                                                                  slice(7, None))]
    merged = InflDirected.merge(parts)
    one = infl.influence_partial(X, "true", y)
    assert merged.count == one.count == len(X)
    np.testing.assert_allclose(merged.grad_sum, one.grad_sum, rtol=1e-6)
    np.testing.assert_allclose(merged.act_sum, one.act_sum, rtol=1e-6)
    np.testing.assert_array_equal(merged.active_count, one.active_count)
    np.testing.assert_allclose(infl.influence_from_partial(merged),
                               infl.influence(X, "true", y), rtol=1e-6)
    assert infl.expert_from_partial(merged) == infl.expert(X, "true", y)
    with pytest.raises(ValueError, match="same layer and qoi"):
        merge([parts[0], infl.influence_partial(X, 0)])


def test_batch_size_does_not_change_result_and_run_count(toy):
    model, sess, W1, W2, X, y, pred = toy
    ref = InflDirected(model, sess, batch_size=100, progress=False).influence(X)
    spy = mock.MagicMock(wraps=sess)
    infl = InflDirected(model, spy, batch_size=3, progress=False)
    np.testing.assert_allclose(infl.influence(X), ref, rtol=1e-6)
    assert spy.run.call_count == math.ceil(len(X) / 3)  # 'predicted' costs no extra pass
    spy.run.reset_mock()
    np.testing.assert_allclose(infl(X, 1), InflDirected(model, sess, batch_size=1,
                                                        progress=False)(X, 1), rtol=1e-6)
    assert spy.run.call_count == math.ceil(len(X) / 3)


def test_no_graph_growth_over_repeated_calls(toy):
    model, sess, W1, W2, X, y, pred = toy
    infl = InflDirected(model, sess, progress=False)
    fn = lambda s: s[:, 1] - s[:, 2]  # noqa: E731
    qois = [0, 1, (0, 2), "predicted", ("predicted", "true"), "true", fn]

    def all_calls():
        for q in qois:
            infl.influence(X, q, y=y)
            infl.expert(X, q, y=y)
        infl(X, 0)
        infl(X, 3)

    all_calls()
    n_ops = len(sess.graph.get_operations())
    for _ in range(3):
        all_calls()
    assert len(sess.graph.get_operations()) == n_ops
    assert len(infl._fn_ops) == 1


def test_conv_channels_equal_summed_map_and_analytic_pool(sess):
    model = models.tiny_convnet()
    rng = np.random.RandomState(1)
    X = rng.uniform(0, 255, (5, 16, 16, 3)).astype(np.float32)
    # conv2 -> global mean pool -> dense: ds_c/dconv2[i,j,ch] = wd[ch, c] / (16*16), so the
    # channel sums are wd[:, c]; wd is the third draw of the model's seeded generator.
    g = np.random.RandomState(0)
    g.normal(0, 0.5, (3, 3, 3, 4)), g.normal(0, 0.5, (3, 3, 4, 6))
    wd = g.normal(0, 1.0, (6, 5)).astype(np.float32)
    infl = InflDirected(model, sess, layer="conv2", progress=False)
    np.testing.assert_allclose(infl.influence(X, qoi=3), wd[:, 3], rtol=1e-5)
    full = infl.influence(X, qoi=3, keep_map=True)
    assert full.shape == (16, 16, 6)
    np.testing.assert_allclose(full, np.broadcast_to(wd[:, 3] / 256, full.shape), rtol=1e-5)
    # the pooled layer of the same model: a dense layer, units = its 6 elements
    pool = InflDirected(model, sess, progress=False)
    assert pool.layer == "pool" and pool.units == 6
    np.testing.assert_allclose(pool.influence(X, qoi=(3, 1)), wd[:, 3] - wd[:, 1], rtol=1e-5)


def test_conv1_channels_match_finite_differences(sess):
    """Channel influence = d/d eps of mean_i s_c when eps is added to the whole channel."""
    model = models.tiny_convnet()
    rng = np.random.RandomState(2)
    X = rng.uniform(0, 255, (4, 16, 16, 3)).astype(np.float32)
    infl = InflDirected(model, sess, layer="conv1", batch_size=3, progress=False)
    got = infl.influence(X, qoi=2)
    full = infl.influence(X, qoi=2, keep_map=True)
    np.testing.assert_allclose(full.sum(axis=(0, 1)), got, rtol=1e-5, atol=1e-6)
    h = sess.run(model.layers["conv1"], {model.imgs: X})
    eps = 1e-2
    for ch in range(4):
        e = np.zeros_like(h)
        e[..., ch] = eps
        up, down = (sess.run(model.logits, {model.layers["conv1"]: h + s * e})[:, 2].mean()
                    for s in (1, -1))
        np.testing.assert_allclose((up - down) / (2 * eps), got[ch], rtol=2e-2, atol=1e-3)
    # attribution of a channel: gradient of its spatial sum, times x
    att = infl(X, 1)
    assert att.shape == X.shape and np.abs(att).sum() > 0


@pytest.fixture
def dead(sess):
    """Hidden unit 0 is dead (b1 = -100) yet has the largest weight into class 0."""
    W1 = np.eye(3, dtype=np.float32)
    b1 = np.array([-100.0, 1.0, 1.0], np.float32)
    W2 = np.array([[5.0, 2.0, 1.0], [0.0, 1.0, 3.0]], np.float32)
    X = np.random.RandomState(3).uniform(0, 1, (6, 3)).astype(np.float32)
    return InflDirected(models.two_layer(W1, b1, W2), sess, progress=False), X


def test_dead_expert_warns_and_active_only_picks_active(dead):
    infl, X = dead
    with pytest.warns(InactiveExpertWarning, match="activation 0"):
        e = infl.expert(X, qoi=0)
    assert e == 0  # the definition: pure gradient, W2[0] = (5, 2, 1)
    assert infl.last_info["expert_inactive"] and infl.last_info["inactive_experts"] == [0]
    assert not infl(X, e).any()  # blank attribution
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e2 = infl.expert(X, qoi=0, active_only=True)
        assert e2 == 1 and not infl.last_info["expert_inactive"]
        assert infl(X, e2).any()
        # influence x mean activation: unit 0 has mean activation 0
        act = np.maximum(X + 1, 0).mean(0)
        m = infl.influence(X, qoi=0, multiply_activation=True)
        np.testing.assert_allclose(m, [0, 2 * act[1], act[2]], rtol=1e-5)
        assert infl.expert(X, qoi=0, multiply_activation=True) == int(np.argmax(m))
        assert infl.expert(X, qoi=1) == 2  # an active expert: no warning


def test_bad_input(toy):
    model, sess, W1, W2, X, y, pred = toy
    with pytest.raises(ValueError, match=r"layer: expected one of .*'hidden'.*got 'nope'"):
        InflDirected(model, sess, layer="nope")
    infl = InflDirected(model, sess, progress=False)
    for bad in ("max", 1.5, (0, 1, 2), ("predicted", "x"), True, None):
        with pytest.raises(TypeError, match="qoi: expected 'predicted'"):
            infl.influence(X, qoi=bad)
    with pytest.raises(ValueError, match=r"y: expected the true class.*got None"):
        infl.influence(X, qoi="true")
    with pytest.raises(ValueError, match=r"y: expected one target class per input"):
        infl.influence(X, qoi=("predicted", "true"), y=y[:3])
    with pytest.raises(ValueError, match=r"y: expected class indices in \[0, 3\)"):
        infl.influence(X, qoi="true", y=np.full(len(X), 7))
    for bad in (3, -1, (0, 5)):
        with pytest.raises(ValueError, match=r"qoi: expected class indices in \[0, 3\)"):
            infl.influence(X, qoi=bad)
    with pytest.raises(ValueError, match=re.escape(DOI_EMPTY_ERROR.split("{")[0])):
        infl.influence(X[:0])
    with pytest.raises(ValueError, match=re.escape(DOI_EMPTY_ERROR.split("{")[0])):
        infl.expert([])
    for bad in (5, -1, [0] * (len(X) - 1)):
        with pytest.raises((ValueError, TypeError), match=r"neuron: expected .*\[0, 5\)"):
            infl(X, bad)
    with pytest.raises(TypeError, match="neuron"):
        infl(X, 1.0)
    with pytest.raises(ValueError, match="k: expected a positive int of at most 5"):
        infl.expert(X, k=6)
    with pytest.raises(ValueError, match="qoi: expected the callable to return one scalar"):
        infl.influence(X, qoi=lambda s: tf.reduce_sum(s))


def test_as_qoi_forms():
    assert repr(as_qoi("predicted", 3)) == "s_predicted"
    assert repr(as_qoi(("predicted", "true"), 3)) == "s_predicted - s_true"
    assert repr(as_qoi((np.int64(2), 0), 3)) == "s_2 - s_0"
    assert as_qoi("true", 3).needs_y and not as_qoi(1, 3).needs_y


# --------------------------------------------------------------- the real default model

@pytest.mark.slow
def test_default_model_head_pool(default_model, sample_data):
    model, sess = default_model
    X, y_true = sample_data[0], np.asarray(sample_data[1])
    infl = InflDirected(model, sess, layer="head_pool", batch_size=8, progress=False)
    units = int(model.layers["head_pool"].shape[-1])
    h = sess.run(model.layers["head_pool"], {model.imgs: X})            # [N, units]
    I = infl.influence(X, qoi=("predicted", "true"), y=y_true)
    assert I.shape == (units,) and np.isfinite(I).all()
    # each class's own images as the distribution of interest, q = s_class: the warning
    # fires exactly when the expert is 0 on all of them (the bundled sample has such classes)
    fired_any = False
    for c in np.unique(y_true):
        rows = y_true == c
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            e = infl.expert(X[rows], qoi=int(c))
        assert 0 <= e < units and infl.last_info["expert"][0] == e
        dead = not h[rows, e].any()
        fired = any(issubclass(w.category, InactiveExpertWarning) for w in caught)
        assert fired == dead == infl.last_info["expert_inactive"]
        A = infl(X[rows], e)
        assert A.shape == X[rows].shape and np.isfinite(A).all()
        assert (np.abs(A).sum() == 0) == dead
        if dead:
            fired_any = True
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                ea = infl.expert(X[rows], qoi=int(c), active_only=True)
            assert h[rows, ea].any() and np.abs(infl(X[rows], ea)).sum() > 0
    assert fired_any
