"""Issue 17's leftovers in the API: each bad value a user may plausibly pass at the
classes' and metrics' doors gets a clear error naming the argument, before any session
call, and no bad call (nor a constructor that fails) adds a graph op."""
import numpy as np
import pytest
import tensorflow as tf

import hw3_attribution as A
import hw3_evaluation as E
from hw3_attribution import (GradCAM, IntegratedGrad, Occlusion, SaliencyMap, SmoothGrad,
                             VanillaGradient)
from hw3_evaluation import AverageDrop, Deletion, Insertion, MetricTable, N_Ord
from hw3_infl import (InflDirected, QOI_CALL_ERROR, QOI_CONNECT_ERROR, QOI_DTYPE_ERROR,
                      QOI_SCALAR_ERROR)
from helpers import (CountingSession, all_methods, images, n_ops, prefix, raises_exactly,
                     tensors)
from models import Model, tiny_convnet

tf1 = tf.compat.v1

METHOD_CLASSES = [SaliencyMap, IntegratedGrad, VanillaGradient, SmoothGrad, Occlusion]
METRICS = [AverageDrop, N_Ord, Insertion, Deletion]


def construct(cls, sess, x, out, model=None):
    if cls is GradCAM:
        return cls(sess, x, out, 0, model.layers["conv2"])
    return cls(sess, x, out, 0)


def preprocessed_model():
    """images [None, 4, 4, 3] in 0-255 -> 'preprocessed' (x - 127.5) / 127.5 -> linear."""
    x = tf1.placeholder(tf.float32, [None, 4, 4, 3], name="imgs")
    pre = tf.identity((x - 127.5) / 127.5, name="preprocessed")
    w = np.random.RandomState(0).normal(size=(48, 3)).astype(np.float32)
    logits = tf.matmul(tf.reshape(pre, [-1, 48]), w)
    return Model(x, logits, layers={"preprocessed": pre}), pre


# ------------------------------------------------------- input_tensor: a placeholder

def test_input_tensor_computed_from_the_placeholder_names_it(sess):
    model, pre = preprocessed_model()
    message = A.INPUT_PLACEHOLDER_ERROR.format(
        name="preprocessed:0", type="Identity", source="placeholder 'imgs:0'",
        hint="the placeholder 'imgs:0' (model.imgs)")
    ops = n_ops(sess)
    for cls in METHOD_CLASSES:
        with raises_exactly(ValueError, message):
            cls(sess, pre, model.logits, 0)
    with raises_exactly(ValueError, message):
        InflDirected(sess, pre, pre, model.logits, 0)
    X = images(1, 4)[0]
    for metric in METRICS:
        with raises_exactly(ValueError, message):
            metric(sess, np.ones((4, 4)), X, pre, model.logits, 0)
    assert n_ops(sess) == ops
    # two placeholders feeding it: both named
    y = tf1.placeholder(tf.float32, [None, 4, 4, 3], name="other")
    both = model.imgs + y
    with pytest.raises(ValueError, match=r"from placeholders \['imgs:0', 'other:0'\]"):
        SaliencyMap(sess, both, model.logits, 0)


def test_input_and_output_dtypes(sess):
    x = tf1.placeholder(tf.uint8, [None, 4], name="bytes")
    out = tf.stack([tf.reduce_sum(tf.cast(x, tf.float32), 1)] * 2, 1)
    with raises_exactly(TypeError, A.INPUT_FLOAT_ERROR.format(name="bytes:0", dtype="uint8")):
        SaliencyMap(sess, x, out, 0)
    xf = tf1.placeholder(tf.float32, [None, 4], name="xf")
    pred = tf.stack([tf.argmax(xf, 1)] * 2, 1, name="pred")
    with raises_exactly(TypeError, A.OUTPUT_FLOAT_ERROR.format(name="pred:0", dtype="int64")):
        SaliencyMap(sess, xf, pred, 0)


# ------------------------------------------------------------------ X and friends

def test_placeholder_complex_and_overflowing_inputs(conv):
    sess, model = conv[:2]
    x, out = tensors(model)
    spy = CountingSession(sess)
    with sess.graph.as_default():
        score = out[:, 0]                     # a tensor where a class index is expected
    ops = n_ops(sess)
    X = images(2)
    for name, (method, kw) in all_methods(spy, model, 0).items():
        with raises_exactly(TypeError, A.SYMBOLIC_ERROR.format(arg="X", name=x.name)):
            method(x, **kw)
        with raises_exactly(TypeError, A.COMPLEX_ERROR.format(arg="X", actual="complex128")):
            method(X.astype(complex), **kw)
        with raises_exactly(ValueError, A.INPUT_OVERFLOW_ERROR.format(
                arg="X", count=1, largest=1e39)):
            method(np.where(X == X.max(), 1e39, X.astype(np.float64)), **kw)
        with raises_exactly(TypeError, A.TARGET_TYPE_ERROR.format(
                arg="target_class", actual=score)):
            method(X, target_class=score, **kw)
    with pytest.raises(TypeError, match=r"^X: expected numbers or an array, got a list that "
                                        r"numpy cannot read as one \(NotImplementedError"):
        SaliencyMap(spy, x, out, 0)([x, x])                  # a list of graph tensors
    # NaN is still named as such, also beside an overflow
    bad = X.astype(np.float64)
    bad[0, 0, 0, 0], bad[1, 0, 0, 0] = np.nan, 1e39
    with raises_exactly(ValueError, A.INPUT_FINITE_ERROR.format(arg="X", count=2)):
        SaliencyMap(spy, x, out, 0)(bad)
    ig = IntegratedGrad(spy, x, out, 0)
    with raises_exactly(TypeError, A.SYMBOLIC_ERROR.format(arg="baseline", name=x.name)):
        ig(X, x)
    with raises_exactly(TypeError, A.COMPLEX_ERROR.format(arg="baseline",
                                                          actual="complex128")):
        ig(X, X[0].astype(complex))
    assert spy.rows == [] and n_ops(sess) == ops


def test_metric_arguments_that_are_tensors_or_complex(conv):
    sess, model = conv[:2]
    x, out = tensors(model)
    spy = CountingSession(sess)
    ops = n_ops(sess)
    X = images(2)
    A_ = np.ones((2, 16, 16))
    for metric in METRICS:
        with raises_exactly(TypeError, A.SYMBOLIC_ERROR.format(arg="input", name=x.name)):
            metric(spy, A_, x, x, out, 0)
        with raises_exactly(TypeError, A.SYMBOLIC_ERROR.format(arg="attr_map", name=x.name)):
            metric(spy, x, X, x, out, 0)
        with raises_exactly(TypeError, A.COMPLEX_ERROR.format(arg="attr_map",
                                                              actual="complex128")):
            metric(spy, A_.astype(complex), X, x, out, 0)
    with raises_exactly(TypeError, A.COMPLEX_ERROR.format(arg="baseline", actual="complex128")):
        Insertion(spy, A_, X, x, out, 0, superpixel_size=4, baseline=X.astype(complex))
    assert spy.rows == [] and n_ops(sess) == ops


# --------------------------------------------------------------------- the session

def test_closed_session_at_construction_and_at_call(sess):
    model = tiny_convnet()
    x, out = tensors(model)
    methods = all_methods(sess, model, 0)
    other = tf1.Session(graph=sess.graph)
    other.close()
    api = "SaliencyMap(sess, input_tensor, output_tensor, target_class)"
    with raises_exactly(ValueError, A.SESSION_CLOSED_ERROR.format(api=api)):
        SaliencyMap(other, x, out, 0)
    spy = CountingSession(other)              # a wrapper: found closed at its first run
    wrapped = SaliencyMap(spy, x, out, 0)
    with raises_exactly(ValueError, A.SESSION_CLOSED_ERROR.format(api=api)):
        wrapped(images(1))
    sess.close()
    for name, (method, kw) in methods.items():
        with pytest.raises(ValueError, match=prefix(A.SESSION_CLOSED_ERROR)):
            method(images(1), **kw)
    for metric in METRICS:
        with raises_exactly(ValueError, A.SESSION_CLOSED_ERROR.format(api=E.METRIC_API)):
            metric(sess, np.ones((16, 16)), images(1)[0], x, out, 0)


# ------------------------------------------------------------------ bounded memory

def test_huge_step_counts_are_refused_with_the_bound(conv):
    sess, model = conv[:2]
    x, out = tensors(model)
    spy = CountingSession(sess)
    ops = n_ops(sess)
    X = images(1)
    limit = A.ROWS_PER_INPUT_LIMIT
    ig = IntegratedGrad(spy, x, out, 0)
    with raises_exactly(ValueError, A.ROWS_LIMIT_ERROR.format(
            arg="num_steps", limit=limit, what="path points", actual=10 ** 12)):
        ig(X, num_steps=10 ** 12)
    with raises_exactly(ValueError, A.ROWS_LIMIT_ERROR.format(
            arg="steps", limit=limit, what="path points", actual=10 ** 12)):
        ig.sweep(X, steps=(10 ** 12,))
    with raises_exactly(ValueError, A.ROWS_LIMIT_ERROR.format(
            arg="max_gradients", limit=limit, what="gradients", actual=10 ** 12)):
        ig(X, method="adaptive", max_gradients=10 ** 12)
    with raises_exactly(ValueError, A.ADAPTIVE_MEMORY_ERROR.format(
            most=A.ADAPTIVE_MAX_BYTES // X[0].nbytes, shape=[16, 16, 3], actual=limit)):
        ig(X, method="adaptive", max_gradients=limit)
    with raises_exactly(ValueError, A.ROWS_LIMIT_ERROR.format(
            arg="samples", limit=limit, what="noisy copies", actual=10 ** 12)):
        SmoothGrad(spy, x, out, 0)(X, samples=10 ** 12)
    assert limit == 2 ** 24 and spy.rows == [] and n_ops(sess) == ops


def test_many_inputs_run_in_groups_of_bounded_rows(conv, monkeypatch):
    """Rows are described a group of inputs at a time (at most ROWS_PER_GROUP rows, at
    least one input): the same maps as one group."""
    sess, model = conv[:2]
    x, out = tensors(model)
    X = images(5)
    ig, sg = IntegratedGrad(sess, x, out, None), SmoothGrad(sess, x, out, None)
    want = (ig(X, num_steps=6), ig.sweep(X, steps=(3, 6))[0][3],
            ig.path_scores(X, alphas=np.linspace(0, 1, 7)), sg(X, samples=4, kind="vargrad"))
    monkeypatch.setattr(A, "ROWS_PER_GROUP", 13)          # two inputs of 6 rows per group
    assert [list(g) for g in A.input_groups(5, 6)] == [[0, 1], [2, 3], [4]]
    got = (ig(X, num_steps=6), ig.sweep(X, steps=(3, 6))[0][3],
           ig.path_scores(X, alphas=np.linspace(0, 1, 7)), sg(X, samples=4, kind="vargrad"))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6 * np.abs(w).max())


# -------------------------------------------------------- failing constructors

def test_a_constructor_that_fails_adds_no_op(sess):
    model = tiny_convnet()
    x, out = tensors(model)
    pool = model.layers["pool"]
    ops = n_ops(sess)
    bad = [(ValueError, QOI_SCALAR_ERROR, lambda o: o),
           (TypeError, QOI_CALL_ERROR, lambda o: o[7]),
           (TypeError, QOI_CALL_ERROR, lambda o: o[:, 0]),
           (ValueError, QOI_CONNECT_ERROR, lambda o: tf.constant(1.0)),
           (TypeError, QOI_DTYPE_ERROR, lambda o: o[0] > 0)]
    for exc, template, qoi in bad:
        with pytest.raises(exc, match=prefix(template)):
            InflDirected(sess, x, pool, out, qoi)
        assert n_ops(sess) == ops, template
    loose = tf.nn.relu(tf1.placeholder(tf.float32, [None, 4, 4, 2]), name="loose")
    ops = n_ops(sess)
    with raises_exactly(ValueError, A.LAYER_UNCONNECTED_ERROR.format(
            arg="internal_layer", name=loose.name)):
        GradCAM(sess, x, out, 0, loose)
    with raises_exactly(ValueError, A.LAYER_UNCONNECTED_ERROR.format(
            arg="internal_layer", name=loose.name)):
        InflDirected(sess, x, loose, out, 0)
    unrelated = tf.stack([tf.reduce_sum(loose, [1, 2, 3])] * 2, 1, name="unrelated")
    ops = n_ops(sess)
    with raises_exactly(ValueError, A.LAYER_UNCONNECTED_ERROR.format(
            arg="output_tensor", name=unrelated.name)):
        SaliencyMap(sess, x, unrelated, 0)
    assert n_ops(sess) == ops


def test_a_qoi_that_reads_the_models_graph_still_works(sess):
    model = tiny_convnet()
    x, out = tensors(model)
    two = tf.constant(2.0)                       # a tensor of the model's graph
    infl = InflDirected(sess, x, model.layers["pool"], out, lambda o: o[0] * two)
    plain = InflDirected(sess, x, model.layers["pool"], out, lambda o: o[0])
    X = images(2)
    np.testing.assert_allclose(infl.influence(X), 2 * plain.influence(X), rtol=1e-5)


# ---------------------------------------------------------------------- file paths

def test_paths_that_are_folders_or_below_a_file(tmp_path):
    table = MetricTable("m", "", ["a"], [0], [[1.0]])
    folder = tmp_path / "dir"
    folder.mkdir()
    (tmp_path / "file").write_text("keep")
    with raises_exactly(IsADirectoryError, E.PATH_ERROR.format(
            arg="path", actual=f"the folder {str(folder)!r}")):
        table.to_csv(folder)
    below = tmp_path / "file" / "t.csv"
    with raises_exactly(NotADirectoryError, E.PATH_ERROR.format(
            arg="path", actual=f"{str(below)!r}, below {str(tmp_path / 'file')!r}, which "
                               "is a file")):
        table.to_csv(below)
    with raises_exactly(ValueError, E.PATH_ERROR.format(arg="path", actual="''")):
        table.to_csv("")
    with raises_exactly(TypeError, E.PATH_ERROR.format(arg="path", actual="int")):
        table.to_csv(3)
    assert (tmp_path / "file").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file"]
    assert list(folder.iterdir()) == []
    table.to_csv(tmp_path / "new" / "t.csv")
    assert (tmp_path / "new" / "t.csv").read_text().startswith("method,0,mean")
