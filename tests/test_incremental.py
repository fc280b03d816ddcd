"""Incremental occlusion (attrkit.methods.incremental): the windows by hand, and the maps
equal to the plain path's on VGG-shaped, ResNet-shaped and MobileNet-shaped graphs and on the
bundled default model, for every baseline kind, patch sizes that do and do not divide the
image and strides below the patch; the automatic choice; no graph growth."""
import math

import numpy as np
import pytest
import tensorflow as tf

from hw3_attribution import FLAG_ERROR, Occlusion
from attrkit.methods.incremental import Axis, incremental_plan, widened
from helpers import CountingSession, chunks, images, n_ops, raises_exactly, tensors
from models import Model, tiny_convnet

tf1 = tf.compat.v1
SIZE = 24


def draw(rng, *shape, scale=0.3):
    return tf.constant(rng.normal(0, scale, shape).astype(np.float32))


def vgg_shaped(seed=0):
    """conv3x3 SAME -> ReLU -> conv -> ReLU -> max pool 2 -> conv -> max pool 2 (SAME, odd)
    -> flatten -> dense: VGG16's op kinds on 24 x 24 images."""
    rng = np.random.RandomState(seed)
    x = tf1.placeholder(tf.float32, [None, SIZE, SIZE, 3], name="imgs")
    h = x - tf.constant([123.7, 116.8, 103.9])
    h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(h / 64.0, draw(rng, 3, 3, 3, 8), 1, "SAME"),
                                  draw(rng, 8, scale=0.1)))
    h = tf.nn.relu(tf.nn.conv2d(h, draw(rng, 3, 3, 8, 8), 1, "SAME"))
    h = tf.nn.max_pool2d(h, 2, 2, "VALID")
    h = tf.nn.relu(tf.nn.conv2d(h, draw(rng, 3, 3, 8, 12), 1, "SAME"))
    h = tf.nn.max_pool2d(h, 3, 2, "SAME")                                  # 12 -> 6
    logits = tf.matmul(tf.reshape(h, [-1, 6 * 6 * 12]), draw(rng, 432, 4, scale=0.1))
    return Model(x, logits, name="vgg_shaped")


def resnet_shaped(seed=1, size=SIZE):
    """An explicit Pad then a stride-2 conv, inference batch norm, a padded max pool, a
    residual block with a strided 1x1 shortcut (Add of two branches with different
    windows), global mean, dense: ResNet's op kinds."""
    rng = np.random.RandomState(seed)
    x = tf1.placeholder(tf.float32, [None, size, size, 3], name="imgs")
    h = tf.pad(x / 255.0, [[0, 0], [3, 3], [3, 3], [0, 0]])
    h = tf.nn.conv2d(h, draw(rng, 7, 7, 3, 8), 2, "VALID")                 # halves
    h, *_ = tf1.nn.fused_batch_norm(h, draw(rng, 8) + 1.0, draw(rng, 8),
                                    mean=draw(rng, 8), variance=tf.abs(draw(rng, 8)) + 0.5,
                                    is_training=False)
    h = tf.nn.relu(h)
    h = tf.nn.max_pool2d(tf.pad(h, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 1, "VALID")
    branch = tf.nn.relu(tf.nn.conv2d(h, draw(rng, 3, 3, 8, 8), 2, "SAME"))  # halves
    branch = tf.nn.conv2d(branch, draw(rng, 3, 3, 8, 8), 1, "SAME")
    shortcut = tf.nn.conv2d(h, draw(rng, 1, 1, 8, 8), 2, "VALID")
    h = tf.nn.relu(branch + shortcut)
    logits = tf.matmul(tf.reduce_mean(h, [1, 2]), draw(rng, 8, 4))
    return Model(x, logits, name="resnet_shaped")


def mobile_shaped(seed=2):
    """Depthwise convolutions (one dilated), Relu6, swish (a product of two windowed
    tensors), SAME average pooling (divides by the pixels inside the image), a gate that
    mixes the map (squeeze-excite: where the walk must stop), dense."""
    rng = np.random.RandomState(seed)
    x = tf1.placeholder(tf.float32, [None, SIZE, SIZE, 3], name="imgs")
    h = tf.nn.relu6(tf.nn.conv2d((x - 127.5) / 127.5, draw(rng, 3, 3, 3, 6), 1, "SAME"))
    h = tf1.nn.depthwise_conv2d_native(h, draw(rng, 3, 3, 6, 1), [1, 1, 1, 1], "SAME",
                                       dilations=[1, 2, 2, 1])
    h = h * tf.sigmoid(h)
    h = tf.nn.avg_pool2d(h, 3, 2, "SAME")                                  # 24 -> 12
    h = tf1.nn.depthwise_conv2d_native(h, draw(rng, 3, 3, 6, 2), [1, 1, 1, 1], "SAME")
    gate = tf.sigmoid(tf.reduce_mean(h, [1, 2], keepdims=True))
    h = tf.nn.relu(h * gate)
    logits = tf.matmul(tf.reshape(h, [-1, 12 * 12 * 12]), draw(rng, 1728, 4, scale=0.05))
    return Model(x, logits, name="mobile_shaped")


GRAPHS = {"vgg": (vgg_shaped, SIZE), "resnet": (resnet_shaped, SIZE),
          "mobile": (mobile_shaped, SIZE),
          "resnet48": (lambda: resnet_shaped(size=48), 48)}   # its Add windowed
CASES = [  # (superpixel_size, stride, baseline): sizes that divide 24 and not, strides below
    (4, None, "black"), (5, None, "black"), (5, 3, "blur"), (7, 2, "one"), (3, None, "each")]


def baseline_of(kind, X):
    rng = np.random.RandomState(9)
    return {"black": "black", "blur": "blur",
            "one": rng.uniform(0, 255, X.shape[1:]).astype(np.float32),
            "each": rng.uniform(0, 255, X.shape).astype(np.float32)}[kind]


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_incremental_equals_plain(sess, graph):
    build, size_ = GRAPHS[graph]
    model = build()
    X = images(2, size_, seed=4)
    occ = Occlusion(sess, *tensors(model), None, progress=False)
    logits = np.abs(sess.run(model.logits, {model.imgs: X})).max()   # what rounding scales with
    for size, stride, kind in CASES:
        kw = {"superpixel_size": size, "stride": stride, "baseline": baseline_of(kind, X)}
        plain = occ(X, batch_size=8, incremental=False, **kw)
        got = occ(X, batch_size=8, incremental=True, **kw)
        scale = np.abs(plain).max()
        assert scale > 1e-3, (graph, size)                  # the patches matter
        np.testing.assert_allclose(got, plain, rtol=1e-5, atol=1e-5 * max(scale, logits),
                                   err_msg=f"{graph} size {size} stride {stride} {kind}")
        plan = incremental_plan(*tensors(model), size, size_, size_)
        assert plan.windowed and plan.rest


def test_the_walk_stops_where_the_map_is_mixed(sess):
    """The squeeze-excite gate reads the whole map: the product with it, and everything
    after, runs in full; the ops before it are windowed; on 48 x 48 images, the ResNet's
    Add of two branches is windowed too (on 24 x 24 its branch covers the 6 x 6 map)."""
    model = mobile_shaped()
    plan = incremental_plan(*tensors(model), 4, SIZE, SIZE)
    windowed = {op.type for op in plan.windowed}
    assert {"Conv2D", "DepthwiseConv2dNative", "AvgPool", "Relu6", "Sigmoid"} <= windowed
    assert "Mean" not in windowed and "MatMul" not in windowed
    gated = [op for op in plan.rest if op.type == "Mul"]
    assert gated and all(op not in plan.windowed for op in gated)
    res = resnet_shaped(size=48)
    plan = incremental_plan(*tensors(res), 4, 48, 48)
    assert {"AddV2", "Pad", "FusedBatchNormV3", "MaxPool"} <= {op.type for op in plan.windowed}


def test_windows_by_hand():
    """A 3x3 SAME conv widens rows [4, 7] by one pixel each side; a 3x3 stride-2 SAME conv
    from 16 to 8 (no padding before) changes outputs o with 2o <= 7 and 2o + 2 >= 4:
    [1, 3]; the window size is the widest over positions, clamped inside the map."""
    patch = Axis(np.array([0, 4, 12]), np.array([3, 7, 15]), 16)
    same = widened(patch, 3, 1, 1, 1, 16)
    np.testing.assert_array_equal(same.lo, [0, 3, 11])
    np.testing.assert_array_equal(same.hi, [4, 8, 15])
    assert same.size == 6
    np.testing.assert_array_equal(same.start, [0, 3, 10])
    strided = widened(patch, 3, 2, 1, 0, 8)
    np.testing.assert_array_equal(strided.lo, [0, 1, 5])
    np.testing.assert_array_equal(strided.hi, [1, 3, 7])
    assert strided.size == 3
    dilated = widened(patch, 3, 1, 2, 2, 16)          # reach two pixels each way
    np.testing.assert_array_equal(dilated.lo, [0, 2, 10])
    np.testing.assert_array_equal(dilated.hi, [5, 9, 15])


def test_automatic_choice_runs_and_no_graph_growth(sess):
    """A tiny net saves too little: the plain path (its documented session calls); a model
    that saves enough takes the incremental one: per image one run for its activations
    and one per chunk of patches; a second call builds nothing; batch equals one by one."""
    tiny = tiny_convnet()
    spy = CountingSession(sess)
    X = images(2)
    Occlusion(spy, *tensors(tiny), 0, progress=False)(X, batch_size=5, superpixel_size=4)
    assert spy.rows == chunks(2, 5) + chunks(2 * 16, 5)
    assert not incremental_plan(*tensors(tiny), 4, 16, 16).worth_it
    model = vgg_shaped()
    plan = incremental_plan(*tensors(model), 4, SIZE, SIZE)
    incremental, whole = plan.macs
    assert 0 < incremental < whole
    X = images(3, SIZE)
    occ = Occlusion(spy, *tensors(model), 1, progress=False)
    first = occ(X, batch_size=7, superpixel_size=4, incremental=True)
    ops = n_ops(sess)
    spy.calls = 0
    again = occ(X, batch_size=7, superpixel_size=4, incremental=True)
    assert n_ops(sess) == ops
    assert spy.calls == math.ceil(3 / 7) + 3 * (1 + math.ceil(36 / 7))
    one = np.concatenate([occ(X[k:k + 1], batch_size=1, superpixel_size=4, incremental=True)
                          for k in range(3)])
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(one, first, rtol=1e-5, atol=1e-5 * np.abs(first).max())


def test_a_graph_without_windows_runs_plain(sess):
    """No op to window (the image goes straight into a dense layer): even with
    incremental=True, the plain path's session calls and map."""
    x = tf1.placeholder(tf.float32, [None, 8, 8, 1], name="imgs")
    logits = tf.matmul(tf.reshape(x, [-1, 64]), tf.constant(np.eye(64, 3, dtype=np.float32)))
    spy = CountingSession(sess)
    X = images(2, 8)[..., :1]
    got = Occlusion(spy, x, logits, 0, progress=False)(X, superpixel_size=4, incremental=True)
    assert spy.rows == chunks(2, 16) + chunks(2 * 4, 16)
    assert not incremental_plan(x, logits, 4, 8, 8).windowed
    np.testing.assert_allclose(got[:, :4, :4], np.broadcast_to(X[:, :1, :1, 0], (2, 4, 4)),
                               rtol=1e-6)


def test_incremental_flag_is_checked(sess):
    model = tiny_convnet()
    occ = Occlusion(sess, *tensors(model), 0)
    with raises_exactly(TypeError, FLAG_ERROR.format(arg="incremental", actual="yes")):
        occ(images(1), superpixel_size=4, incremental="yes")


def test_bundled_default_model(default_model, sample_data):
    """The bundled EfficientNet-Lite0 at 224 x 224: the automatic choice is incremental, and
    its map equals the plain path's (32-pixel patches, so both are quick)."""
    model, sess = default_model
    X = sample_data[0][:1].astype(np.float32)
    with sess.graph.as_default():
        plan = incremental_plan(model.imgs, model.logits, 32, 224, 224)
        assert plan.worth_it
        occ = Occlusion(sess, model.imgs, model.logits, None, progress=False)
        got = occ(X, superpixel_size=32, baseline="blur")
        plain = occ(X, superpixel_size=32, baseline="blur", incremental=False)
    np.testing.assert_allclose(got, plain, rtol=1e-4, atol=1e-4 * np.abs(plain).max())


def test_imported_torchvision_resnet18(sess, tmp_path):
    """An imported torchvision ResNet-18 (explicit pads, batch norms, residual Adds): the
    automatic choice is incremental at 8 x 8 patches, the Adds of its early blocks are
    windowed, and 56 x 56 patches (whose windows cover the map sooner) and 40 x 40 with
    stride 24 (overlapping, not dividing 224) give the plain path's map."""
    import resnet_ref
    from attrkit.models import torchvision_resnet as R
    from torch_writer import write_state_dict
    path = str(tmp_path / "resnet18.pth")
    write_state_dict(path, resnet_ref.reference_state("resnet18"), "zip")
    model = R.TorchvisionResNet("resnet18", path, sess)
    plan = incremental_plan(model.imgs, model.logits, 8, 224, 224)
    assert plan.worth_it and "AddV2" in {op.type for op in plan.windowed}
    X = images(1, 224, seed=5)
    occ = Occlusion(sess, model.imgs, model.logits, None, progress=False)
    logits = np.abs(sess.run(model.logits, {model.imgs: X})).max()
    for size, stride in ((56, None), (40, 24)):
        got = occ(X, superpixel_size=size, stride=stride, baseline="blur", incremental=True)
        plain = occ(X, superpixel_size=size, stride=stride, baseline="blur", incremental=False)
        np.testing.assert_allclose(got, plain, rtol=1e-4, atol=1e-5 * logits)

