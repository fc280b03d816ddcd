"""Tests of hw3_infl.InflDirected, the homework's API:

    InflDirected(sess, input_tensor, internal_layer, output_tensor, qoi)
        .dis_influence(X, batch_size=16)                            # the expert neuron
        .expert_attribution(expert_id, X, batch_size=16, multiply_with_input=True)

Answers by hand on tests/models.two_layer (logits = W2 relu(W1 x + b1)): with the ReLU
active the influence of 'hidden' on s_c is W2[c], and d hidden_j / dx = W1[j].
"""
import inspect
import math
import re
import warnings

import numpy as np
import pytest
import tensorflow as tf

import hw3_infl
import models
from helpers import CountingSession, n_ops, prefix
from conftest import new_session
from hw3_attribution import (GRAPH_ERROR, INPUT_SHAPE_ERROR, LAYER_UNCONNECTED_ERROR,
                             MODEL_OBJECT_ERROR, SESSION_ERROR, TARGET_LENGTH_ERROR,
                             TARGET_RANGE_ERROR, TENSOR_ERROR)
from hw3_infl import (DOI_EMPTY_ERROR, EXPERT_ERROR, K_ERROR, MERGE_EMPTY_ERROR, MERGE_ERROR,
                      NO_ACTIVE_ERROR, QOI_CALL_ERROR, QOI_CONNECT_ERROR, QOI_DTYPE_ERROR,
                      QOI_ERROR,
                      QOI_RANGE_ERROR, QOI_SCALAR_ERROR, QOI_TRUE_ERROR, Y_MISSING_ERROR,
                      InactiveExpertWarning, InflDirected, as_qoi, merge, qoi_class,
                      qoi_difference, qoi_predicted, qoi_true)

tf1 = tf.compat.v1

D, H, K = 4, 5, 3
TOL = dict(rtol=1e-5, atol=1e-6)


class Toy:
    """logits = W2 relu(W1 x + b1) with the ReLU active on x in [0, 1) (b1 = 10)."""

    def __init__(self, sess):
        rng = np.random.RandomState(0)
        self.W1 = rng.normal(0, 1, (H, D)).astype(np.float32)
        b1 = np.full(H, 10.0, np.float32)
        self.W2 = rng.normal(0, 1, (K, H)).astype(np.float32)
        self.model = models.two_layer(self.W1, b1, self.W2)
        self.X = rng.uniform(0, 1, (11, D)).astype(np.float32)
        self.y = rng.randint(0, K, 11)
        logits = np.maximum(self.X @ self.W1.T + b1, 0) @ self.W2.T
        self.pred = logits.argmax(1)
        self.sess = sess
        self.hidden = self.model.layers["hidden"]

    def infl(self, qoi, sess=None):
        m = self.model
        return InflDirected(sess or self.sess, m.imgs, self.hidden, m.logits, qoi,
                            progress=False)


@pytest.fixture
def toy(sess):
    return Toy(sess)


# ------------------------------------------------------------------ the homework's API

def test_signatures_are_the_homeworks():
    def params(f):
        return list(inspect.signature(f).parameters.values())

    def check(f, names, defaults):
        ps = params(f)
        assert [p.name for p in ps[:len(names)]] == names, f
        for p in ps[:len(names)]:
            assert p.kind == p.POSITIONAL_OR_KEYWORD, (f, p)
            if p.name in defaults:
                assert p.default == defaults[p.name], (f, p)
            else:   # the homework gives no default; None is DESIGN's extension at most
                assert p.default in (p.empty, None), (f, p)
        assert all(p.kind == p.KEYWORD_ONLY for p in ps[len(names):]), f

    check(InflDirected.__init__, ["self", "sess", "input_tensor", "internal_layer",
                                  "output_tensor", "qoi"], {})
    check(InflDirected.dis_influence, ["self", "X", "batch_size"], {"batch_size": 16})
    check(InflDirected.expert_attribution,
          ["self", "expert_id", "X", "batch_size", "multiply_with_input"],
          {"batch_size": 16, "multiply_with_input": True})
    kw = [p.name for p in params(InflDirected.dis_influence)[3:]]
    assert kw == ["y", "k", "multiply_activation", "active_only", "feed_dict"]
    # the homework's five, then issue 19's feed_dict (keyword only, None)
    assert [p.name for p in params(InflDirected.expert_attribution)[5:]] == ["feed_dict"]


def test_starter_code_call_forms(toy):
    # exactly as the starter would: positional arguments, the QoI a function of one row
    m = toy.model
    infl = InflDirected(toy.sess, m.imgs, toy.hidden, m.logits, lambda out: out[1])
    expert = infl.dis_influence(toy.X, 16)
    assert isinstance(expert, int) and expert == int(np.argmax(toy.W2[1]))
    A = infl.expert_attribution(expert, toy.X, 16, True)
    np.testing.assert_allclose(A, toy.X * toy.W1[expert], **TOL)
    np.testing.assert_allclose(infl.expert_attribution(expert, toy.X, 16, False),
                               np.broadcast_to(toy.W1[expert], toy.X.shape), **TOL)


# ------------------------------------------------------------------ answers by hand

def test_class_qoi_is_W2_row(toy):
    for c in range(K):
        for qoi in (lambda out, c=c: out[c], qoi_class(c), c):
            infl = toy.infl(qoi)
            np.testing.assert_allclose(infl.influence(toy.X), toy.W2[c], **TOL)
            assert infl.dis_influence(toy.X) == int(np.argmax(toy.W2[c]))
    assert toy.infl(0).layer == toy.hidden.name and toy.infl(0).units == H


def test_two_qois_same_layer_get_their_own_answers(toy):
    a, b = toy.infl(0).influence(toy.X), toy.infl(1).influence(toy.X)
    assert not np.allclose(a, b)
    np.testing.assert_allclose(a, toy.W2[0], **TOL)
    np.testing.assert_allclose(b, toy.W2[1], **TOL)
    fa, fb = (toy.infl(lambda out, c=c: out[c]).influence(toy.X) for c in (0, 1))
    np.testing.assert_allclose(fa, toy.W2[0], **TOL)
    np.testing.assert_allclose(fb, toy.W2[1], **TOL)


def predicted_score(out):
    return tf.gather(out, tf.argmax(out))


def test_the_homeworks_four_qois_lambdas_and_helpers(toy):
    X, y, pred, W2 = toy.X, toy.y, toy.pred, toy.W2
    # 1. s_c, c the predicted class
    expected = W2[pred].mean(0)
    helper = qoi_predicted()
    for qoi in (predicted_score, helper, "predicted", lambda out: helper(out)):
        np.testing.assert_allclose(toy.infl(qoi).influence(X), expected, **TOL)
        assert toy.infl(qoi).dis_influence(X) == int(np.argmax(expected))
    # 2. s_y, y the true class: the helper with labels ...
    expected = W2[y].mean(0)
    for qoi in (qoi_true(), "true"):
        np.testing.assert_allclose(toy.infl(qoi).influence(X, y=y), expected, **TOL)
        assert toy.infl(qoi).dis_influence(X, y=y) == int(np.argmax(expected))
    # ... and a lambda, on a distribution of one class's inputs (a lambda sees only out)
    c = int(np.bincount(y).argmax())
    rows = y == c
    assert 1 < rows.sum() < len(X)
    got = [toy.infl(lambda out: out[c]).influence(X[rows]),
           toy.infl(qoi_true()).influence(X[rows], y=y[rows])]
    for g in got:
        np.testing.assert_allclose(g, W2[c], **TOL)
    # 3. s_c - s_y
    expected = (W2[pred] - W2[y]).mean(0)
    for qoi in (qoi_difference("predicted", "true"), ("predicted", "true")):
        np.testing.assert_allclose(toy.infl(qoi).influence(X, y=y), expected, **TOL)
    lam = toy.infl(lambda out: predicted_score(out) - out[c]).influence(X[rows])
    helper = toy.infl(qoi_difference("predicted", "true")).influence(X[rows], y=y[rows])
    assert np.any(pred[rows] != c)                 # not all zero: some are misclassified
    np.testing.assert_allclose(lam, (W2[pred[rows]] - W2[c]).mean(0), **TOL)
    np.testing.assert_allclose(helper, lam, **TOL)
    # 4. s_c1 - s_c2
    for qoi in (lambda out: out[2] - out[0], qoi_difference(2, 0), (2, 0)):
        infl = toy.infl(qoi)
        np.testing.assert_allclose(infl.influence(X), W2[2] - W2[0], **TOL)
        assert infl.dis_influence(X) == int(np.argmax(W2[2] - W2[0]))
    # any function of the row: 2 s_0 - s_1
    np.testing.assert_allclose(toy.infl(lambda out: 2 * out[0] - out[1]).influence(X),
                               2 * W2[0] - W2[1], **TOL)


def test_named_helpers_are_per_instance_callables(sess):
    out = tf.constant([1.0, 5.0, 2.0])
    vals = sess.run([qoi_class(1)(out), qoi_predicted()(out), qoi_difference(0, 2)(out),
                     qoi_true()(out, y=2), qoi_difference("predicted", "true")(out, y=0),
                     qoi_difference(2, "predicted")(out)])
    np.testing.assert_allclose(vals, [5.0, 5.0, -1.0, 2.0, 4.0, -3.0])
    # as the starter applies a QoI: tf.map_fn over the rows of the output
    rows = tf.constant([[1.0, 5.0, 2.0], [7.0, -1.0, 0.5]])
    np.testing.assert_allclose(sess.run(tf.map_fn(qoi_predicted(), rows)), [5.0, 7.0])
    np.testing.assert_allclose(sess.run(tf.map_fn(qoi_difference(2, 0), rows)), [1.0, -6.5])
    with pytest.raises(ValueError, match=prefix(QOI_TRUE_ERROR)):
        qoi_true()(out)


def test_vectorised_qoi_equals_map_fn_fallback(toy, monkeypatch):
    fn = lambda out: tf.nn.relu(out[0]) * out[2] - tf.reduce_max(out)  # noqa: E731
    vec = toy.infl(fn)
    ref = vec.influence(toy.X), vec.dis_influence(toy.X, k=H)
    calls = []

    def refuse(*args, **kwargs):
        calls.append(1)
        raise ValueError("cannot vectorise")

    monkeypatch.setattr(hw3_infl.tf, "vectorized_map", refuse)
    sess = new_session()
    with sess.graph.as_default():
        toy2 = Toy(sess)
        loop = toy2.infl(fn)
        got = loop.influence(toy2.X), loop.dis_influence(toy2.X, k=H)
    assert calls, "the fallback was not taken"
    assert any(op.type in ("While", "StatelessWhile") for op in sess.graph.get_operations())
    assert not any(op.type in ("While", "StatelessWhile")
                   for op in toy.sess.graph.get_operations())
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(got[1], ref[1])
    # and the hand answer for q = relu(s0) s2 - max s (s0 takes both signs on this data):
    # dq/dh = [s0 > 0] s2 W2[0] + relu(s0) W2[2] - W2[argmax s]
    logits = np.maximum(toy.X @ toy.W1.T + 10.0, 0) @ toy.W2.T
    s0, s2 = logits[:, 0:1], logits[:, 2:3]
    assert np.any(s0 > 0) and np.any(s0 < 0)
    top = logits.argmax(1)
    expected = ((s0 > 0) * s2 * toy.W2[0] + np.maximum(s0, 0) * toy.W2[2]
                - toy.W2[top]).mean(0)
    np.testing.assert_allclose(got[0], expected, rtol=1e-4, atol=1e-5)
    sess.close()


def test_expert_is_argmax_and_attribution(toy):
    X, W1, W2 = toy.X, toy.W1, toy.W2
    for c in range(K):
        infl = toy.infl(qoi_class(c))
        e = infl.dis_influence(X)
        assert isinstance(e, int) and e == int(np.argmax(W2[c]))
        top = infl.dis_influence(X, k=3)
        assert top.dtype == np.int64
        np.testing.assert_array_equal(top, np.argsort(-W2[c])[:3])
        np.testing.assert_array_equal(infl.last_info["expert"], top)
        np.testing.assert_allclose(infl.last_info["influence"], W2[c], **TOL)
        np.testing.assert_allclose(infl.expert_attribution(e, X), X * W1[e], **TOL)
    infl = toy.infl(0)
    # a single input comes back unbatched; one expert per input
    np.testing.assert_allclose(infl.expert_attribution(2, X[0]), X[0] * W1[2], rtol=1e-5)
    assert infl.expert_attribution(2, X[0]).shape == (D,)
    rows = np.arange(len(X)) % H
    np.testing.assert_allclose(infl.expert_attribution(rows, X), X * W1[rows], **TOL)
    np.testing.assert_allclose(infl.expert_attribution(np.int64(3), X, 4), X * W1[3], **TOL)


def test_distributional_linearity_and_shard_merge(toy):
    X, y = toy.X, toy.y
    infl = toy.infl(qoi_predicted())
    A, B = X[:3], X[3:]
    whole = infl.influence(X, 4)
    mixed = (len(A) * infl.influence(A, 4) + len(B) * infl.influence(B, 4)) / len(X)
    np.testing.assert_allclose(whole, mixed, rtol=1e-6, atol=1e-7)
    true = toy.infl(qoi_true())
    shards = (slice(0, 3), slice(3, 7), slice(7, None))
    parts = [true.influence_partial(X[s], 4, y=y[s]) for s in shards]
    merged = InflDirected.merge(parts)
    one = true.influence_partial(X, 4, y=y)
    assert merged.count == one.count == len(X)
    np.testing.assert_allclose(merged.grad_sum, one.grad_sum, rtol=1e-6)
    np.testing.assert_allclose(merged.act_sum, one.act_sum, rtol=1e-6)
    np.testing.assert_array_equal(merged.active_count, one.active_count)
    np.testing.assert_allclose(merge(parts).grad_sum, one.grad_sum, rtol=1e-6)
    np.testing.assert_allclose(true.influence_from_partial(merged),
                               true.influence(X, y=y), rtol=1e-6)
    np.testing.assert_allclose(true.influence_from_partial(merged), toy.W2[y].mean(0), **TOL)
    assert true.expert_from_partial(merged) == true.dis_influence(X, y=y)
    np.testing.assert_array_equal(true.expert_from_partial(merged, k=4),
                                  true.dis_influence(X, y=y, k=4))
    with pytest.raises(ValueError, match=prefix(MERGE_ERROR)):
        merge([parts[0], toy.infl(0).influence_partial(X)])
    with pytest.raises(ValueError, match=re.escape(MERGE_EMPTY_ERROR)):
        merge([])


def test_batch_size_does_not_change_result_and_run_count(toy):
    X, n = toy.X, len(toy.X)
    for qoi in (qoi_predicted(), lambda out: out[2] - out[1]):
        ref = toy.infl(qoi).influence(X, 100)
        for bs in (1, 3, 16):
            spy = CountingSession(toy.sess)
            infl = toy.infl(qoi, sess=spy)
            spy.calls, spy.rows = 0, []
            np.testing.assert_allclose(infl.influence(X, bs), ref, rtol=1e-6, atol=1e-7)
            assert spy.calls == math.ceil(n / bs)   # 'predicted' costs no extra pass
            spy.calls = 0
            infl.dis_influence(X, bs)
            assert spy.calls == math.ceil(n / bs)
            spy.calls = 0
            np.testing.assert_allclose(infl.expert_attribution(1, X, bs),
                                       toy.infl(qoi).expert_attribution(1, X, 1), rtol=1e-6)
            assert spy.calls == math.ceil(n / bs)
            assert max(spy.rows) <= bs
    spy = CountingSession(toy.sess)
    infl = toy.infl(qoi_true(), sess=spy)
    infl.dis_influence(X, 4, y=toy.y)              # the labels are fed, not computed
    assert spy.calls == math.ceil(n / 4) and max(spy.rows) <= 4


# ------------------------------------------------------------------ graph discipline

def test_no_graph_growth_over_repeated_calls(toy):
    X, y = toy.X, toy.y
    fn = lambda out: out[1] - out[2]  # noqa: E731
    qois = [0, 1, (0, 2), "predicted", ("predicted", "true"), "true", fn, qoi_class(2),
            qoi_predicted(), qoi_true(), qoi_difference(0, 1)]
    infls = [toy.infl(q) for q in qois]

    def all_calls():
        for infl in infls:
            infl.influence(X, y=y)
            infl.dis_influence(X, y=y)
            infl.dis_influence(X, 3, y=y, k=2, multiply_activation=True, active_only=True)
            infl.influence_partial(X, y=y)
            infl.expert_attribution(0, X)
            infl.expert_attribution(3, X[0], 2, False)

    all_calls()
    graph = toy.sess.graph
    count = n_ops(graph)
    for _ in range(3):
        all_calls()
    assert n_ops(graph) == count
    # a second instance on the same tensors and the same qoi object builds nothing, and
    # neither does any named helper (they share one op)
    for q in qois + [qoi_class(1), qoi_predicted(), qoi_true(), qoi_difference("true", 2),
                     qoi_difference("predicted", "true"), 2, (1, 0)]:
        toy.infl(q).influence(X, y=y)
    assert n_ops(graph) == count
    # a new function is a new quantity: its op is built once, then reused
    other = lambda out: out[0] * 2.0  # noqa: E731
    toy.infl(other).influence(X)
    grown = n_ops(graph)
    assert grown > count
    toy.infl(other).influence(X)
    toy.infl(other).dis_influence(X)
    assert n_ops(graph) == grown


# ------------------------------------------------------------------ conv layers

def tiny_convnet_dense_weights():
    """The dense weights of models.tiny_convnet(): the third draw of its seeded generator."""
    g = np.random.RandomState(0)
    g.normal(0, 0.5, (3, 3, 3, 4)), g.normal(0, 0.5, (3, 3, 4, 6))
    return g.normal(0, 1.0, (6, 5)).astype(np.float32)


def test_conv_layer_units_are_channels_and_analytic_pool(sess):
    model = models.tiny_convnet()
    X = np.random.RandomState(1).uniform(0, 255, (5, 16, 16, 3)).astype(np.float32)
    # conv2 -> global mean pool -> dense: ds_c/dconv2[i,j,ch] = wd[ch, c] / (16*16), so the
    # channel sums are wd[:, c]
    wd = tiny_convnet_dense_weights()
    conv2 = model.layers["conv2"]
    for qoi in (3, lambda out: out[3]):
        infl = InflDirected(sess, model.imgs, conv2, model.logits, qoi, progress=False)
        assert infl.units == 6
        np.testing.assert_allclose(infl.influence(X), wd[:, 3], rtol=1e-5)
        assert infl.dis_influence(X) == int(np.argmax(wd[:, 3]))
        full = infl.influence(X, keep_map=True)
        assert full.shape == (16, 16, 6)
        np.testing.assert_allclose(full, np.broadcast_to(wd[:, 3] / 256, full.shape),
                                   rtol=1e-5)
    # the pooled layer of the same model: a dense layer, units = its 6 elements
    pool = InflDirected(sess, model.imgs, model.layers["pool"], model.logits,
                        lambda out: out[3] - out[1], progress=False)
    assert pool.units == 6
    np.testing.assert_allclose(pool.influence(X), wd[:, 3] - wd[:, 1], rtol=1e-5)
    # a channel's attribution is x times the gradient of the channel summed over space,
    # which is 256 x the gradient of that pool unit
    infl = InflDirected(sess, model.imgs, conv2, model.logits, 3, progress=False)
    for ch in (0, 4):
        np.testing.assert_allclose(infl.expert_attribution(ch, X),
                                   256 * pool.expert_attribution(ch, X), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=prefix(EXPERT_ERROR)):
        infl.expert_attribution(6, X)


def test_conv1_channels_match_finite_differences(sess):
    """Channel influence = d/d eps of mean_i s_c when eps is added to the whole channel."""
    model = models.tiny_convnet()
    X = np.random.RandomState(2).uniform(0, 255, (4, 16, 16, 3)).astype(np.float32)
    conv1 = model.layers["conv1"]
    infl = InflDirected(sess, model.imgs, conv1, model.logits, qoi_class(2), progress=False)
    got = infl.influence(X, 3)
    full = infl.influence(X, 3, keep_map=True)
    np.testing.assert_allclose(full.sum(axis=(0, 1)), got, rtol=1e-5, atol=1e-6)
    h = sess.run(conv1, {model.imgs: X})
    eps = 1e-2
    for ch in range(4):
        e = np.zeros_like(h)
        e[..., ch] = eps
        up, down = (sess.run(model.logits, {conv1: h + s * e})[:, 2].mean() for s in (1, -1))
        np.testing.assert_allclose((up - down) / (2 * eps), got[ch], rtol=2e-2, atol=1e-3)
    # attribution of a channel: x times the gradient of its spatial sum
    summed = tf.reduce_sum(conv1[..., 1])
    grad = sess.run(tf.gradients(summed, model.imgs)[0], {model.imgs: X})
    att = infl.expert_attribution(1, X, 3)
    assert att.shape == X.shape and np.abs(att).sum() > 0
    np.testing.assert_allclose(att, X * grad, rtol=1e-4, atol=1e-3)


# ------------------------------------------------------------------ inactive experts

@pytest.fixture
def dead(sess):
    """Hidden unit 0 is dead (b1 = -100) yet has the largest weight into class 0."""
    W1 = np.eye(3, dtype=np.float32)
    b1 = np.array([-100.0, 1.0, 1.0], np.float32)
    W2 = np.array([[5.0, 2.0, 1.0], [0.0, 1.0, 3.0]], np.float32)
    m = models.two_layer(W1, b1, W2)
    X = np.random.RandomState(3).uniform(0, 1, (6, 3)).astype(np.float32)

    def make(qoi):
        return InflDirected(sess, m.imgs, m.layers["hidden"], m.logits, qoi, progress=False)
    return make, X


def test_dead_expert_warns_and_active_only_picks_active(dead):
    make, X = dead
    infl = make(lambda out: out[0])
    with pytest.warns(InactiveExpertWarning, match="activation 0"):
        e = infl.dis_influence(X)
    assert e == 0  # the definition: pure gradient, W2[0] = (5, 2, 1)
    assert infl.last_info["expert_inactive"] and infl.last_info["inactive_experts"] == [0]
    assert not infl.expert_attribution(e, X).any()  # blank attribution
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e2 = infl.dis_influence(X, active_only=True)
        assert e2 == 1 and not infl.last_info["expert_inactive"]
        assert infl.expert_attribution(e2, X).any()
        np.testing.assert_array_equal(infl.last_info["active"], [False, True, True])
        # influence x mean activation: unit 0 has mean activation 0
        act = np.maximum(X + 1, 0).mean(0)
        m = infl.influence(X, multiply_activation=True)
        np.testing.assert_allclose(m, [0, 2 * act[1], act[2]], rtol=1e-5)
        assert infl.dis_influence(X, multiply_activation=True) == int(np.argmax(m))
        np.testing.assert_array_equal(infl.dis_influence(X, k=2, active_only=True), [1, 2])
        assert make(qoi_class(1)).dis_influence(X) == 2  # an active expert: no warning
    # top-k naming an inactive unit among the experts warns too
    with pytest.warns(InactiveExpertWarning):
        np.testing.assert_array_equal(make(qoi_class(0)).dis_influence(X, k=3), [0, 1, 2])


def test_no_active_unit_is_an_error(sess):
    m = models.two_layer(np.eye(2, dtype=np.float32), np.full(2, -100.0, np.float32),
                         np.ones((2, 2), np.float32))
    infl = InflDirected(sess, m.imgs, m.layers["hidden"], m.logits, 0, progress=False)
    with pytest.raises(ValueError, match=prefix(NO_ACTIVE_ERROR)):
        infl.dis_influence(np.ones((3, 2), np.float32), active_only=True)


# ------------------------------------------------------------------ bad input

def test_bad_constructor_arguments(toy):
    m, sess, h = toy.model, toy.sess, toy.hidden
    with pytest.raises(TypeError, match=r"sess: expected a tf.compat.v1.Session .*"
                                        r"got Model \(a model object"):
        InflDirected(m, m.imgs, h, m.logits, 0)
    with pytest.raises(TypeError, match=prefix(SESSION_ERROR)):
        InflDirected("sess", m.imgs, h, m.logits, 0)
    for pos, arg, attr in ((1, "input_tensor", "model.imgs"),
                           (2, "internal_layer", "model.layers"),
                           (3, "output_tensor", "model.logits")):
        args = [sess, m.imgs, h, m.logits, 0]
        args[pos] = m
        with pytest.raises(TypeError, match=re.escape(MODEL_OBJECT_ERROR.format(
                arg=arg, actual="Model", what="")) + ".*" + re.escape(attr)):
            InflDirected(*args)
    with pytest.raises(TypeError, match=re.escape(TENSOR_ERROR.format(
            arg="internal_layer", actual="str"))):
        InflDirected(sess, m.imgs, "hidden", m.logits, 0)
    other = tf.Graph()
    with other.as_default():
        m2 = models.two_layer(toy.W1, np.full(H, 10.0, np.float32), toy.W2)
    for pos, arg, t in ((1, "input_tensor", m2.imgs), (2, "internal_layer", m2.layers["hidden"]),
                        (3, "output_tensor", m2.logits)):
        args = [sess, m.imgs, h, m.logits, 0]
        args[pos] = t
        with pytest.raises(ValueError, match=re.escape(GRAPH_ERROR.format(arg=arg,
                                                                          name=t.name))):
            InflDirected(*args)
    loose = tf1.placeholder(tf.float32, [None, 3])       # not between input and output
    with pytest.raises(ValueError, match=re.escape(LAYER_UNCONNECTED_ERROR.format(
            arg="internal_layer", name=loose.name))):
        InflDirected(sess, m.imgs, loose, m.logits, 0)


def test_bad_qoi(toy):
    for bad in ("max", 1.5, (0, 1, 2), ("predicted", "x"), True, [1.0, 2.0]):
        with pytest.raises(TypeError, match=prefix(QOI_ERROR)):
            toy.infl(bad)
    for bad in (3, -1, (0, 5), qoi_class(3), qoi_difference(0, 7)):
        with pytest.raises(ValueError, match=re.escape(QOI_RANGE_ERROR.format(k=K, actual=""))):
            toy.infl(bad)
    # not a scalar per instance
    for fn, shape in ((lambda out: out, [3]), (lambda out: out[None, :2], [1, 2])):
        with pytest.raises(ValueError, match=re.escape(QOI_SCALAR_ERROR.format(
                out=[K], actual=shape))):
            toy.infl(fn)
    # a class index outside the output vector, in the user's own function
    with pytest.raises(TypeError, match=prefix(QOI_CALL_ERROR) + r".*out of bounds"):
        toy.infl(lambda out: out[7])
    # the starter's batched habit, out[:, c], on one instance's [K] vector
    with pytest.raises(TypeError, match=prefix(QOI_CALL_ERROR)):
        toy.infl(lambda out: out[:, 0])
    # a constant does not depend on the scores
    with pytest.raises(ValueError, match=prefix(QOI_CONNECT_ERROR)):
        toy.infl(lambda out: tf.constant(1.0))
    # a boolean cannot be differentiated
    with pytest.raises(TypeError, match=re.escape(QOI_DTYPE_ERROR.format(actual="bool"))):
        toy.infl(lambda out: out[0] > 0)


def test_merge_refuses_partials_of_two_different_lambdas(toy):
    """Two lambdas of the same function share a __qualname__; their partials must still
    not merge, while the same function's partials (any process) do."""
    first, second = (lambda out: out[0]), (lambda out: out[1])
    X = toy.X
    a = toy.infl(first).influence_partial(X[:2])
    b = toy.infl(second).influence_partial(X[2:])
    assert a.qoi != b.qoi
    with pytest.raises(ValueError, match=prefix(MERGE_ERROR)):
        merge([a, b])
    again = toy.infl(first).influence_partial(X[2:])
    assert again.qoi == a.qoi
    assert merge([a, again]).count == len(X)


def test_bad_call_arguments(toy):
    X, y = toy.X, toy.y
    for qoi in (qoi_true(), "true", qoi_difference("predicted", "true")):
        with pytest.raises(ValueError, match=re.escape(Y_MISSING_ERROR.format(
                qoi=as_qoi(qoi)))):
            toy.infl(qoi).dis_influence(X)
    true = toy.infl(qoi_true())
    with pytest.raises(ValueError, match=re.escape(TARGET_LENGTH_ERROR.format(
            arg="y", expected=len(X), actual=3))):
        true.dis_influence(X, y=y[:3])
    with pytest.raises(ValueError, match=re.escape(TARGET_RANGE_ERROR.format(
            arg="y", k=K, actual=[7]))):
        true.influence(X, y=np.full(len(X), 7))
    infl = toy.infl(0)
    with pytest.raises(ValueError, match=prefix(DOI_EMPTY_ERROR)):
        infl.influence(X[:0])
    with pytest.raises(ValueError, match=prefix(DOI_EMPTY_ERROR)):
        infl.dis_influence([])
    with pytest.raises(ValueError, match=re.escape(INPUT_SHAPE_ERROR.format(
            arg="X", dims=D, name=toy.model.imgs.name, actual=[11, 3]))):
        infl.dis_influence(X[:, :3])
    with pytest.raises(ValueError, match=re.escape(INPUT_SHAPE_ERROR.format(
            arg="X", dims=D, name=toy.model.imgs.name, actual=[2, 5]))):
        infl.expert_attribution(0, np.ones((2, 5)))
    for bad, err in ((5, ValueError), (-1, ValueError), ([0] * (len(X) - 1), TypeError),
                     (1.0, TypeError), (True, TypeError), ("0", TypeError)):
        with pytest.raises(err, match=re.escape(EXPERT_ERROR.format(
                units=H, layer=toy.hidden.name, actual=bad))):
            infl.expert_attribution(bad, X)
    for bad in (0, H + 1, 1.0):
        with pytest.raises(ValueError, match=re.escape(K_ERROR.format(
                units=H, layer=toy.hidden.name, actual=bad))):
            infl.dis_influence(X, k=bad)
    with pytest.raises((TypeError, ValueError), match="batch_size: expected a positive int"):
        infl.dis_influence(X, 0)
    with pytest.raises((TypeError, ValueError), match="batch_size: expected a positive int"):
        infl.expert_attribution(0, X, 2.5)


def test_as_qoi_forms():
    assert repr(as_qoi("predicted", 3)) == "s_predicted"
    assert repr(as_qoi(("predicted", "true"), 3)) == "s_predicted - s_true"
    assert repr(as_qoi((np.int64(2), 0), 3)) == "s_2 - s_0"
    assert as_qoi("true", 3).needs_y and not as_qoi(1, 3).needs_y
    assert repr(qoi_class(2)) == "s_2" and repr(qoi_predicted()) == "s_predicted"
    assert repr(qoi_true()) == "s_true" and qoi_true().needs_y
    assert repr(qoi_difference(1, "true")) == "s_1 - s_true"
    q = qoi_class(1)
    assert as_qoi(q, 3) is q


# --------------------------------------------------------------- the real default model

@pytest.mark.slow
def test_default_model_head_pool(default_model, sample_data):
    model, sess = default_model
    X, y_true = sample_data[0], np.asarray(sample_data[1])
    layer = model.layers["head_pool"]
    units = int(layer.shape[-1])
    h = sess.run(layer, {model.imgs: X})                                # [N, units]
    infl = InflDirected(sess, model.imgs, layer, model.logits,
                        qoi_difference("predicted", "true"), progress=False)
    I = infl.influence(X, 8, y=y_true)
    assert I.shape == (units,) and np.isfinite(I).all()
    # each class's own images as the distribution of interest, q = s_class: the warning
    # fires exactly when the expert is 0 on all of them (the bundled sample has such classes)
    fired_any = False
    for c in np.unique(y_true):
        rows = y_true == c
        infl = InflDirected(sess, model.imgs, layer, model.logits,
                            lambda out, c=int(c): out[c], progress=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            e = infl.dis_influence(X[rows], 8)
        assert 0 <= e < units and infl.last_info["expert"][0] == e
        dead = not h[rows, e].any()
        fired = any(issubclass(w.category, InactiveExpertWarning) for w in caught)
        assert fired == dead == infl.last_info["expert_inactive"]
        A = infl.expert_attribution(e, X[rows], 8)
        assert A.shape == X[rows].shape and np.isfinite(A).all()
        assert (np.abs(A).sum() == 0) == dead
        if dead:
            fired_any = True
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                ea = infl.dis_influence(X[rows], 8, active_only=True)
            assert h[rows, ea].any() and np.abs(infl.expert_attribution(ea, X[rows])).sum() > 0
    assert fired_any
