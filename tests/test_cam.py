"""The CAM family (issue 26): attrkit.methods.cam against pytorch-grad-cam 1.5.7.

The reference values were recorded by tests/record_propagation_reference.py on
tests/propagation_net.py's network, built from the same weights in PyTorch (float64);
here it is built in TensorFlow (float32) and every method's map at the layer (before ReLU
and upsampling, which ours returns with ``upsample=False`` after ReLU) must equal
pytorch-grad-cam's to float32 rounding. Then what holds by hand: on a network that ends
in global average pooling and a dense layer, Grad-CAM, XGrad-CAM and HiResCAM are one map;
Score-CAM's and Ablation-CAM's rows, session calls, batches and graph.
"""
import numpy as np
import pytest
import tensorflow as tf

import propagation_net as net
from attrkit.methods import cam as C
from hw3_attribution import GradCAM
from helpers import CountingSession, assert_close, call_twice, images, prefix, tensors
from models import Model, tiny_convnet

tf1 = tf.compat.v1
FAMILY = ("GradCAMPlusPlus", "XGradCAM", "LayerCAM", "HiResCAM", "EigenCAM", "ScoreCAM",
          "AblationCAM")


@pytest.fixture(scope="module")
def reference():
    return net.recorded()


@pytest.fixture(scope="module")
def ref_net(reference):
    """The reference network in TF, every CAM built once: (sess, model, {name: method})."""
    graph = tf.Graph()
    with graph.as_default():
        sess = tf1.Session(graph=graph)
        model = net.tf_model()
        layer = model.layers["conv2"]
        methods = {name: getattr(C, name)(sess, *tensors(model), None, layer, progress=False)
                   for name in FAMILY}
    np.testing.assert_allclose(sess.run(model.logits, {model.imgs: reference["images"]}),
                               reference["logits"], rtol=1e-5, atol=1e-5)
    yield sess, model, methods
    sess.close()


@pytest.mark.parametrize("name", FAMILY)
def test_equals_pytorch_grad_cam(ref_net, reference, name):
    sess, model, methods = ref_net
    ours = methods[name](reference["images"], upsample=False,
                         target_class=list(reference["targets"]))
    assert ours.shape == (3, 6, 6)
    assert_close(ours, np.maximum(reference["cam_" + name], 0))


def test_upsampled_as_our_grad_cam(ref_net, reference):
    """Each map is upsampled by GradCAM's resize: pytorch-grad-cam's Grad-CAM map at the
    layer, upsampled by the family, is the homework's GradCAM map."""
    sess, model, methods = ref_net
    X, targets = reference["images"], list(reference["targets"])
    ours = GradCAM(sess, *tensors(model), targets, model.layers["conv2"])(X)
    layer_ops = methods["HiResCAM"]._layer_ops
    theirs = layer_ops.upsampled(methods["HiResCAM"]._runner, np.maximum(
        reference["cam_GradCAM"], 0), X.shape[1:3], 16)
    assert_close(ours, theirs)
    up = methods["LayerCAM"](X, target_class=targets)
    low = methods["LayerCAM"](X, upsample=False, target_class=targets)
    assert up.shape == (3, 12, 12) and (up >= 0).all()
    assert_close(up, layer_ops.upsampled(methods["LayerCAM"]._runner, low, (12, 12), 16))


@pytest.fixture(scope="module")
def gap_net():
    graph = tf.Graph()
    with graph.as_default():
        sess = tf1.Session(graph=graph)
        model = tiny_convnet(size=8)
        yield sess, model
    sess.close()


def test_one_map_on_a_global_average_pool(gap_net):
    """logits = mean(A) @ w + b: the gradient at A is w_c / (h·w) at every position, so
    Grad-CAM's, XGrad-CAM's (Σ g A / Σ A = w_c / hw) and HiResCAM's maps are all
    Σ_k w_kc A^k / hw, and LayerCAM's is that over the channels with w_kc > 0."""
    sess, model = gap_net
    X = images(3, 8)
    layer = model.layers["conv2"]
    acts = sess.run(layer, {model.imgs: X}).astype(np.float64)
    weights = sess.run(model.logits.op.inputs[0].op.inputs[1]).astype(np.float64)  # [6, 5]
    c = int(np.argmax((acts @ weights).reshape(-1, 5).max(axis=0) - (acts @ weights).reshape(
        -1, 5).min(axis=0)))                     # the class whose map varies most
    w = weights[:, c]
    maps = {name: getattr(C, name)(sess, *tensors(model), c, layer)(X, upsample=False)
            for name in ("XGradCAM", "HiResCAM", "LayerCAM")}
    expected = np.maximum(acts @ w / 64, 0)
    assert_close(maps["HiResCAM"], expected)
    assert_close(maps["XGradCAM"], expected, rtol=1e-3)   # eps 1e-7 in Σ A
    assert_close(maps["LayerCAM"], np.maximum(acts @ np.maximum(w, 0) / 64, 0))
    assert np.ptp(expected) > 0.1


def test_eigen_cam_ignores_the_class(ref_net, reference):
    sess, model, methods = ref_net
    X = reference["images"]
    np.testing.assert_array_equal(methods["EigenCAM"](X, target_class=0),
                                  methods["EigenCAM"](X, target_class=3))


def test_row_methods_batches_calls_and_graph(reference):
    """Score-CAM and Ablation-CAM: one row per (image, channel), ceil(N·K / batch_size)
    runs plus the layer's (with Ablation-CAM's original scores) and the upsampling's; a
    batch equals one by one; a second call adds no op."""
    graph = tf.Graph()
    with graph.as_default():
        sess = tf1.Session(graph=graph)
        model = net.tf_model()
        counting = CountingSession(sess)
        X, t = reference["images"], list(reference["targets"])
        for name in ("ScoreCAM", "AblationCAM"):
            method = getattr(C, name)(counting, *tensors(model), t, model.layers["conv2"])
            first, calls = call_twice(counting, method, X, batch_size=5)
            # the layer's activations (1 run), 18 rows in runs of 5 (4), the upsampling (1)
            assert calls == 1 + 4 + 1
            one = np.concatenate([getattr(C, name)(sess, *tensors(model), [c],
                                                   model.layers["conv2"])(X[i:i + 1])
                                  for i, c in enumerate(t)])
            assert_close(first, one)
    sess.close()


def test_ablation_needs_a_layer_every_path_goes_through():
    """The blocks network's branch ReLU has the stem's output going around it to the
    residual sum: ablating it would meet the unablated stem, so the error names the
    tensor that goes around."""
    graph = tf.Graph()
    with graph.as_default():
        sess = tf1.Session(graph=graph)
        model = net.tf_blocks_model()
        inner = graph.get_tensor_by_name("Relu:0")
        with pytest.raises(ValueError, match=prefix(C.ABLATION_SIDE_INPUT_ERROR)
                           + ".*'stem:0' \\(Relu6\\)"):
            C.AblationCAM(sess, *tensors(model), 0, inner)
        C.AblationCAM(sess, *tensors(model), 0, model.layers["block"])   # a block's output
        C.ScoreCAM(sess, *tensors(model), 0, inner)                       # runs from the input


def test_ablation_of_a_zero_score_is_nan_with_a_warning():
    graph = tf.Graph()
    with graph.as_default():
        sess = tf1.Session(graph=graph)
        x = tf1.placeholder(tf.float32, [None, 4, 4, 3])
        layer = tf.nn.relu(tf.nn.conv2d(x, np.ones((1, 1, 3, 2), np.float32), 1, "SAME"))
        pooled = tf.reduce_mean(layer, axis=[1, 2])
        logits = tf.stack([pooled[:, 0], pooled[:, 1] * 0.0], axis=1)
        model = Model(x, logits)
        X = np.ones((2, 4, 4, 3), np.float32)
        with pytest.warns(RuntimeWarning, match=r"target score is exactly 0 for the images "
                                                r"at \[0, 1\]"):
            out = C.AblationCAM(sess, *tensors(model), 1, layer)(X)
        assert np.isnan(out).all()
        assert np.isfinite(C.AblationCAM(sess, *tensors(model), 0, layer)(X)).all()
