"""torchvision ResNet-18 / ResNet-50 as TF1 graphs, against torch's own logits.

The reference logits come from real torch (tests/make_torch_fixtures.py, committed in
tests/data/resnet_reference.npz); here the same seeded numpy weights are written as
checkpoints in both formats by the torch-free writer, read by our reader and built.
"""
import os

import numpy as np
import pytest
import tensorflow as tf

import resnet_ref
from attrkit.models import torchvision_resnet as R
from torch_writer import write_state_dict

tf1 = tf.compat.v1
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


@pytest.fixture(scope="module")
def reference():
    with np.load(os.path.join(DATA, "resnet_reference.npz"), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """arch -> {fmt: path} of the reference weights, written once per module."""
    root = tmp_path_factory.mktemp("resnet")
    out = {}
    for arch in R.ARCHS:
        state = resnet_ref.reference_state(arch)
        out[arch] = {}
        for fmt in ("zip", "legacy"):
            out[arch][fmt] = str(root / "{}_{}.pth".format(arch, fmt))
            write_state_dict(out[arch][fmt], state, fmt)
    return out


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_logits_equal_torch(sess, reference, checkpoints, arch, fmt):
    images = reference["images"]                                    # [3, 64, 64, 3]
    x = tf1.placeholder(tf.float32, [None, 64, 64, 3])
    model = R.TorchvisionResNet(arch, checkpoints[arch][fmt], sess, imgs=x)
    logits = sess.run(model.logits, {x: images})
    expected = reference[arch]
    # float32 sums in another order: 1e-5 of the logits' scale
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    # the fixture can fail: the images' logits differ clearly
    assert np.abs(expected[0] - expected[1]).max() > 0.3
    assert model.num_classes == resnet_ref.NUM_CLASSES and model.name == arch


def test_graph_names_shapes_and_gradients(sess, checkpoints):
    model = R.TorchvisionResNet("resnet50", checkpoints["resnet50"]["zip"], sess)
    assert model.imgs.shape.as_list() == [None, 224, 224, 3]
    shapes = {k: v.shape.as_list()[1:] for k, v in model.layers.items()}
    assert shapes["conv1"] == [112, 112, 64] and shapes["maxpool"] == [56, 56, 64]
    assert shapes["layer1.2"] == shapes["layer1"] == [56, 56, 256]
    assert shapes["layer4"] == [7, 7, 2048] and shapes["avgpool"] == [2048]
    assert shapes["fc"] == [7] and model.layers["fc"] is model.logits
    assert len([k for k in model.layers if k.count(".") == 1]) == 16      # 3+4+6+3 blocks
    assert list(model.layers)[:4] == ["conv1", "maxpool", "layer1.0", "layer1.1"]
    assert model.default_layers == {"gradcam": "layer4", "influence": "avgpool"}
    grads = tf.gradients(model.logits[:, 2], [model.imgs] + list(model.layers.values()))
    assert all(g is not None for g in grads)
    assert not tf1.global_variables()
    # PyTorch's symmetric padding, never TF's 'SAME' (asymmetric at stride 2)
    pads = {op.get_attr("padding") for op in sess.graph.get_operations()
            if op.type in ("Conv2D", "MaxPool")}
    assert pads == {b"EXPLICIT"}
    n_ops = len(sess.graph.get_operations())
    X = np.random.RandomState(0).uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)
    for _ in range(2):
        sess.run([model.probs, grads[0]], {model.imgs: X})
    assert len(sess.graph.get_operations()) == n_ops


def test_wrapped_and_data_parallel_checkpoints(sess, reference, tmp_path):
    state = resnet_ref.reference_state("resnet18")
    path = tmp_path / "ddp.pth"
    write_state_dict(path, {"module." + k: v for k, v in state.items()}, "zip",
                     wrap="state_dict")
    x = tf1.placeholder(tf.float32, [None, 64, 64, 3])
    model = R.TorchvisionResNet("resnet18", str(path), sess, imgs=x)
    np.testing.assert_allclose(sess.run(model.logits, {x: reference["images"]}),
                               reference["resnet18"], atol=1e-4)


def _bad(tmp_path, state, name="bad.pth"):
    path = tmp_path / name
    write_state_dict(path, state, "zip")
    return str(path)


def test_bad_checkpoints_name_the_key_and_build_nothing(sess, tmp_path):
    state = resnet_ref.reference_state("resnet18", num_classes=3)
    broken = dict(state)
    del broken["layer3.1.bn2.running_var"]
    cases = [
        (broken, r"weights: .*bad.pth is not a torchvision resnet18 checkpoint: missing 1 "
                 r"keys, e.g. layer3.1.bn2.running_var$"),
        (dict(state, **{"layer1.0.se.weight": np.zeros(3, np.float32)}),
         r"1 unexpected keys, e.g. layer1.0.se.weight"),
        (dict(state, **{"layer2.0.conv1.weight": np.zeros((128, 64, 5, 5), np.float32)}),
         r"key layer2.0.conv1.weight in .* has shape \(128, 64, 5, 5\), expected "
         r"\(128, 64, 3, 3\)"),
        (dict(state, **{"fc.bias": np.zeros(4, np.float32)}),
         r"key fc.bias .* has shape \(4,\), expected \(3,\)"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            R.TorchvisionResNet("resnet18", _bad(tmp_path, bad), sess)
    r50 = resnet_ref.reference_state("resnet50", num_classes=3)
    with pytest.raises(ValueError, match=r"resnet18 checkpoint: .*looks like a resnet50"):
        R.TorchvisionResNet("resnet18", _bad(tmp_path, r50, "r50.pth"), sess)
    with pytest.raises(FileNotFoundError, match=r"weights: no such file .*nowhere.pth"):
        R.TorchvisionResNet("resnet18", str(tmp_path / "nowhere.pth"), sess)
    with pytest.raises(ValueError, match=r"weights: resnet50 needs a torchvision checkpoint"):
        R.TorchvisionResNet("resnet50", None, sess)
    assert sess.graph.get_operations() == []
