"""graph_rewrite: each rewrite on a small hand-made graph, forward values and gradients."""
import numpy as np
import pytest
import tensorflow as tf

from attrkit.models import graph_rewrite as G
from attrkit.models import preprocessing as P

tf1 = tf.compat.v1


def _run_imported(graph_def, inp, out, x, grad=True):
    """Import ``graph_def`` into a new graph: (output, d sum(output) / d input)."""
    graph = tf.Graph()
    with graph.as_default():
        ph = tf1.placeholder(tf.float32, x.shape)
        y, = tf.graph_util.import_graph_def(graph_def, input_map={inp: ph},
                                            return_elements=[out], name="m")
        fetch = [y] + ([tf.gradients(tf.reduce_sum(y * y), ph)[0]] if grad else [])
        with tf1.Session(graph=graph) as s:
            return s.run(fetch, {ph: x})


def _grouped_graph(channels, groups, out_ch, seed=0):
    """GraphDef of y = grouped conv2d(x, w) with w a constant; and the reference y."""
    rng = np.random.RandomState(seed)
    w = rng.normal(size=(3, 3, channels // groups, out_ch)).astype(np.float32)
    x = rng.normal(size=(2, 6, 6, channels)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        ph = tf1.placeholder(tf.float32, [None, 6, 6, channels], name="x")
        tf.identity(tf.nn.conv2d(ph, tf.constant(w), 1, "SAME"), name="y")
    per = out_ch // groups
    pad = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ref = np.zeros((2, 6, 6, out_ch), np.float32)
    for o in range(out_ch):
        g = o // per
        xs = pad[..., g * (channels // groups):(g + 1) * (channels // groups)]
        for i in range(6):
            for j in range(6):
                ref[:, i, j, o] = np.einsum("nyxc,yxc->n", xs[:, i:i + 3, j:j + 3], w[..., o])
    return graph.as_graph_def(), x, ref


@pytest.mark.parametrize("channels, groups, out_ch, op", [
    (4, 4, 8, "DepthwiseConv2dNative"),      # depthwise, multiplier 2
    (4, 4, 4, "DepthwiseConv2dNative"),      # ConvNeXt's: groups = channels = outputs
    (6, 2, 4, "ConcatV2"),                   # general groups: split / conv / concat
])
def test_grouped_convolutions_become_gradient_ready(channels, groups, out_ch, op):
    gd, x, ref = _grouped_graph(channels, groups, out_ch)
    new, stats = G.rewrite_for_gradients(gd)
    assert stats["depthwise" if op.startswith("Depthwise") else "grouped"] == 1
    assert {n.name: n.op for n in new.node}["y"] == "Identity"
    assert op in {n.op for n in new.node}
    y, g = _run_imported(new, "x:0", "y:0", x)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 0
    # the gradient of sum(y^2) is the transposed conv of 2y: checked on one input pixel
    eps = 1e-2
    x2 = x.copy()
    x2[0, 2, 3, 1] += eps
    y2, = _run_imported(new, "x:0", "y:0", x2, grad=False)
    numeric = ((y2 ** 2).sum() - (y ** 2).sum()) / eps
    assert abs(numeric - g[0, 2, 3, 1]) < 2e-2 * max(1.0, abs(numeric))
    assert gd.node[1].op != "DepthwiseConv2dNative"     # the input GraphDef is untouched


def test_custom_gradient_identity_n_is_dropped():
    """tf.nn.silu's custom gradient lives in the graph it was traced in; freezing and
    importing elsewhere breaks it, dropping the attribute gives the true derivative."""
    graph = tf.Graph()
    with graph.as_default():
        ph = tf1.placeholder(tf.float32, [None, 3], name="x")

        @tf.custom_gradient
        def swish(v):
            y = v * tf.sigmoid(v)

            def grad(dy):
                s = tf.sigmoid(v)
                return dy * (s + v * s * (1 - s))
            return y, grad
        tf.identity(swish(ph), name="y")
    gd = graph.as_graph_def()
    assert any(n.op == "IdentityN" and "_gradient_op_type" in n.attr for n in gd.node)
    x = np.array([[-2.0, 0.5, 3.0]], np.float32)
    with pytest.raises((LookupError, ValueError), match="No gradient defined|same graph"):
        _run_imported(gd, "x:0", "y:0", x)
    new, stats = G.rewrite_for_gradients(gd)
    assert stats["custom_gradients"] == 1
    y, g = _run_imported(new, "x:0", "y:0", x)
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(y, x * s, rtol=1e-6)
    np.testing.assert_allclose(g, 2 * y * (s + x * s * (1 - s)), rtol=1e-5)


def test_function_calls_are_inlined():
    graph = tf.Graph()
    with graph.as_default():
        ph = tf1.placeholder(tf.float32, [None, 2], name="x")

        @tf.function
        def inner(v):
            return tf.nn.relu(v) * 3.0 + 1.0
        tf.identity(inner(ph) + inner(-ph), name="y")
    gd = graph.as_graph_def()
    assert sum(n.op in G.CALL_OPS for n in gd.node) == 2 and gd.library.function
    new, stats = G.rewrite_for_gradients(gd)
    assert stats["inlined"] == 2
    assert not any(n.op in G.CALL_OPS for n in new.node) and not new.library.function
    x = np.array([[-1.0, 2.0]], np.float32)
    y, g = _run_imported(new, "x:0", "y:0", x)
    np.testing.assert_allclose(y, [[3.0 + 2.0, 7.0 + 1.0]])
    np.testing.assert_allclose(g, 2 * y * [[-3.0, 3.0]])


# ------------------------------------------------------------------ preprocessing

def test_preprocess_formulas(sess):
    x = tf1.placeholder(tf.float32, [None, 1, 1, 3])
    X = np.array([[[[10.0, 100.0, 200.0]]]], np.float32)
    want = {
        "none": X, "unit": X / 255, "tf": X / 127.5 - 1,
        "caffe": X[..., ::-1] - np.array([103.939, 116.779, 123.68]),
        "torch": (X / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]),
        ((1, 2, 3), (2, 4, 5)): (X - [1, 2, 3]) / [2, 4, 5],
        (127.5, 127.5): X / 127.5 - 1,
    }
    for value, expected in want.items():
        got = sess.run(P.apply_preprocess(x, value), {x: X})
        np.testing.assert_allclose(got, expected, rtol=1e-5, err_msg=str(value))
    gray = tf1.placeholder(tf.float32, [None, 1, 1, 1])
    got = sess.run(P.apply_preprocess(gray, "caffe"), {gray: [[[[100.0]]]]})
    np.testing.assert_allclose(got, [[[[100.0 - np.mean([103.939, 116.779, 123.68])]]]],
                               rtol=1e-5)


@pytest.mark.parametrize("value", ["imagenet", "Caffe2", (1, 2, 3), ((1, 2), (0, 1)),
                                   ("a", "b"), 3, None])
def test_unknown_preprocess_is_refused(value):
    with pytest.raises(ValueError, match=r"^preprocess: expected one of 'none', 'unit', "
                                         r"'tf', 'caffe', 'torch' or a pair \(mean, std\)"):
        P.parse_preprocess(value)


def test_preprocess_channel_count_mismatch(sess):
    x = tf1.placeholder(tf.float32, [None, 2, 2, 4])
    with pytest.raises(ValueError, match="preprocess: mean has 3 values per channel, the "
                                         "model has 4 input channels"):
        P.apply_preprocess(x, "torch")
