"""VGG16 graph: names and shapes, weight files (npz and Keras h5), errors, and Keras parity."""
import gc
import os
import shutil
import subprocess
import sys
import time
from collections import OrderedDict
from unittest import mock

import h5py
import numpy as np
import pytest
import tensorflow as tf

import vgg16
from vgg16 import KERAS_NAMES, NPZ_NAMES, WEIGHT_SHAPES, VGG16

tf1 = tf.compat.v1
HERE = os.path.dirname(os.path.abspath(__file__))

CONV_NAMES = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
              "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"]
LAYER_ORDER = ["conv1_1", "conv1_2", "pool1", "conv2_1", "conv2_2", "pool2",
               "conv3_1", "conv3_2", "conv3_3", "pool3", "conv4_1", "conv4_2", "conv4_3",
               "pool4", "conv5_1", "conv5_2", "conv5_3", "pool5", "fc1", "fc2", "fc3l"]
SHAPES = {"conv1": [224, 224, 64], "pool1": [112, 112, 64], "conv2": [112, 112, 128],
          "pool2": [56, 56, 128], "conv3": [56, 56, 256], "pool3": [28, 28, 256],
          "conv4": [28, 28, 512], "pool4": [14, 14, 512], "conv5": [14, 14, 512],
          "pool5": [7, 7, 512], "fc1": [4096], "fc2": [4096], "fc3l": [1000]}


# ----------------------------------------------------------------------------- helpers

def write_keras_h5(path, layers, style="classic"):
    """Write Keras layer name -> (kernel, bias) as a legacy Keras weights .h5.

    style 'classic': weight names like the downloadable file's (``block1_conv1_W_1:0``);
    'keras2': ``block1_conv1/kernel:0`` (Keras 2 on TF2). Pool layers are listed with no
    weights, as Keras does.
    """
    with h5py.File(path, "w") as f:
        names = []
        for name in KERAS_NAMES.values():
            names.append(name)
            if name in ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3",
                        "block5_conv3"):
                names.append(name[:6] + "_pool")
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        f.attrs["backend"] = b"tensorflow"
        for name in names:
            group = f.create_group(name)
            arrays = layers.get(name)
            if arrays is None:
                group.attrs["weight_names"] = np.array([], dtype="S1")
                continue
            if style == "classic":
                wnames = [f"{name}_W_1:0", f"{name}_b_1:0"]
            else:
                wnames = [f"{name}/kernel:0", f"{name}/bias:0"]
            group.attrs["weight_names"] = np.array([n.encode() for n in wnames])
            for wname, arr in zip(wnames, arrays):
                group.create_dataset(wname, data=arr)


def zeros_weights():
    """Full-size zero weights in graph convention; np.zeros maps pages lazily, so cheap."""
    return OrderedDict((layer, (np.zeros(w, np.float32), np.zeros(b, np.float32)))
                       for layer, (w, b) in WEIGHT_SHAPES.items())


def write_zero_npz(path, fc3_bias):
    """A classic vgg16_weights.npz of zeros but fc8_b = ``fc3_bias``, compressed (~0.5 MB).

    Every layer outputs 0 (ReLU of 0), so the logits are ``fc3_bias`` whatever the image:
    a full-size file whose answer is known by hand. Written in about 1.5 s; reading and
    assigning it takes a few seconds more.
    """
    arrays = {}
    for layer, (w, b) in WEIGHT_SHAPES.items():
        arrays[NPZ_NAMES[layer] + "_W"] = np.zeros(w, np.float32)
        arrays[NPZ_NAMES[layer] + "_b"] = np.zeros(b, np.float32)
    arrays["fc8_b"] = np.asarray(fc3_bias, np.float32)
    with open(path, "wb") as f:  # np.savez_compressed would append '.npz' to other names
        np.savez_compressed(f, **arrays)
    return str(path)


# ----------------------------------------------------------------------------- graph

def test_graph_names_shapes_and_layer_order(sess):
    model = VGG16()
    assert vgg16.vgg16 is VGG16
    assert model.name == "vgg16"
    assert model.imgs.name == "imgs:0"
    assert model.imgs.shape.as_list() == [None, 224, 224, 3]
    assert list(model.layers) == LAYER_ORDER
    for name in LAYER_ORDER:
        tensor = getattr(model, name)
        assert model.layers[name] is tensor
        assert tensor.name == f"{name}:0", name  # each op named as its attribute
        key = name[:5] if name.startswith("conv") else name  # 'conv3_2' -> 'conv3'
        assert tensor.shape.as_list() == [None] + SHAPES[key], name
    assert sess.graph.get_operation_by_name("pool5").type == "MaxPool"
    assert sess.graph.get_operation_by_name("pool4").outputs[0].shape.as_list()[1:] == \
        [14, 14, 512]
    for name in CONV_NAMES + ["fc1", "fc2"]:
        assert getattr(model, name).op.type == "Relu", name
    assert model.logits is model.fc3l
    assert model.fc3l.op.type == "BiasAdd"
    assert model.probs.op.type == "Softmax" and model.probs.name == "probs:0"
    assert model.default_layers == {"gradcam": "conv5_3", "influence": "fc1"}
    assert all(layer in model.layers for layer in model.default_layers.values())
    assert model.layers[model.default_layers["gradcam"]].shape.rank == 4


def test_parameters_are_named_variables_in_order(sess):
    model = VGG16()
    expected = []
    for layer, (w, b) in WEIGHT_SHAPES.items():
        expected += [(f"{layer}/weights:0", w), (f"{layer}/biases:0", b)]
    assert [(v.name, tuple(v.shape.as_list())) for v in model.parameters] == expected
    assert WEIGHT_SHAPES["fc1"][0] == (25088, 4096)


def test_graph_subtracts_the_rgb_mean(sess):
    VGG16()
    mean = sess.run(sess.graph.get_tensor_by_name("preprocess/img_mean:0"))
    np.testing.assert_allclose(mean.ravel(), [123.68, 116.779, 103.939], rtol=0, atol=1e-4)


def test_given_input_tensor_is_used(sess):
    imgs = tf1.placeholder(tf.float32, [None, 224, 224, 3], name="my_input")
    model = vgg16.vgg16(imgs)
    assert model.imgs is imgs
    assert model.conv1_1.name == "conv1_1:0"


@pytest.mark.parametrize("shape,dtype", [([None, 32, 32, 3], tf.float32),
                                         ([None, 224, 224, 3], tf.uint8),
                                         ([None, 224, 224], tf.float32)])
def test_wrong_input_tensor_is_rejected(sess, shape, dtype):
    imgs = tf1.placeholder(dtype, shape)
    with pytest.raises(ValueError, match=r"imgs: expected a float32 tensor of shape "
                                         r"\[None, 224, 224, 3\]"):
        VGG16(imgs)


def test_loading_feeds_every_variable_by_name_in_one_run_and_adds_no_op(sess):
    model = VGG16()
    n_ops = len(sess.graph.get_operations())
    weights = zeros_weights()
    for i, (W, b) in enumerate(weights.values()):  # a marker per layer, one page touched
        W.flat[0], b.flat[0] = i + 1, -(i + 1)
    fake = mock.MagicMock()
    for _ in range(2):
        model.load_weights(weights, fake)
    assert fake.run.call_count == 2
    assert len(sess.graph.get_operations()) == n_ops
    marker = {f"{layer}/{kind}": sign * (i + 1) for i, layer in enumerate(WEIGHT_SHAPES)
              for kind, sign in (("weights", 1), ("biases", -1))}
    (_, ), kwargs = fake.run.call_args
    feed = kwargs["feed_dict"]
    assert len(feed) == 32
    for placeholder, value in feed.items():
        assign = placeholder.op.outputs[0].consumers()[0]
        variable = assign.inputs[0].name.split(":")[0]
        assert value.flat[0] == marker[variable], variable
        assert value.dtype == np.float32


def test_constructor_loads_when_weights_and_sess_given(sess):
    fake = mock.MagicMock()
    VGG16(weights=zeros_weights(), sess=fake)
    assert fake.run.call_count == 1
    VGG16(weights=zeros_weights())  # no session: nothing to load into, nothing run
    with pytest.raises(TypeError, match="sess: expected a tf.compat.v1.Session"):
        VGG16(weights=zeros_weights(), sess="not a session")


def test_check_weights_names_bad_layer(sess):
    weights = zeros_weights()
    weights["fc2"] = (np.zeros((4096, 4095), np.float32), weights["fc2"][1])
    del weights["conv3_1"]
    with pytest.raises(ValueError) as err:
        vgg16.check_weights(weights)
    msg = str(err.value)
    assert "fc2/W has shape (4096, 4095), expected (4096, 4096)" in msg
    assert "conv3_1/W is missing (expected shape (3, 3, 128, 256))" in msg
    assert "conv3_1/b is missing (expected shape (256,))" in msg
    assert "fc1" not in msg


# ----------------------------------------------------------------------------- file errors

def test_missing_file_says_where_and_how(tmp_path):
    path = tmp_path / "nowhere" / "vgg16_weights.npz"
    with pytest.raises(FileNotFoundError) as err:
        vgg16.read_weights(path)
    msg = str(err.value)
    assert str(path) in msg and os.path.abspath(path) in msg
    assert "https://www.cs.toronto.edu/~frossard/post/vgg16/" in msg
    assert "vgg16_weights_tf_dim_ordering_tf_kernels.h5" in msg
    with pytest.raises(FileNotFoundError):
        VGG16().load_weights(str(path), mock.MagicMock())


@pytest.mark.parametrize("content,what", [(b"conv1_1_W 0.1 0.2\n", "a text file"),
                                          (b"", "empty"),
                                          (b"\x80\x04\x95 pickled", "a pickle")])
def test_wrong_format_is_a_clear_error(tmp_path, content, what):
    path = tmp_path / "vgg16_weights.npz"  # the extension is not trusted
    path.write_bytes(content)
    for reader in (vgg16.read_weights, vgg16.read_npz_weights, vgg16.read_keras_h5_weights):
        with pytest.raises(ValueError) as err:
            reader(path)
        assert "expected an .npz archive" in str(err.value) and what in str(err.value)
        assert str(path) in str(err.value)


def test_single_npy_array_is_not_an_npz(tmp_path):
    path = tmp_path / "weights.npy"
    np.save(path, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="a single .npy array, not an .npz archive"):
        vgg16.read_weights(path)


def test_readers_refuse_the_other_format(tmp_path):
    npz, h5 = tmp_path / "a.h5", tmp_path / "b.npz"  # names lie on purpose
    with open(npz, "wb") as f:  # np.savez would append '.npz' to the name
        np.savez(f, conv1_1_W=np.zeros((3, 3, 3, 64), np.float32))
    write_keras_h5(h5, {})
    with pytest.raises(ValueError, match="read_keras_h5_weights expected an HDF5 file.*"
                                         r"is an \.npz archive"):
        vgg16.read_keras_h5_weights(npz)
    with pytest.raises(ValueError, match="read_npz_weights expected an .npz archive.*"
                                         "is an HDF5 file"):
        vgg16.read_npz_weights(h5)
    # Dispatch by content: the '.npz'-named HDF5 file goes to the h5 reader.
    with pytest.raises(ValueError, match="block1_conv1/kernel is missing"):
        vgg16.read_weights(h5)
    with pytest.raises(ValueError, match="conv1_2_W is missing"):
        vgg16.read_weights(npz)


def test_npz_missing_key_is_named_with_its_shape(tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, conv1_1_W=np.zeros((3, 3, 3, 64), np.float32),
             conv1_1_b=np.zeros(64, np.float32))
    with pytest.raises(ValueError) as err:
        vgg16.read_npz_weights(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "conv1_2_W is missing (expected shape (3, 3, 64, 64))" in msg
    assert "fc6_W is missing (expected shape (25088, 4096))" in msg
    assert "fc8_b is missing (expected shape (1000,))" in msg
    assert "conv1_1_" not in msg


def test_npz_misshaped_key_is_named_and_nothing_is_loaded(tmp_path, monkeypatch):
    path = tmp_path / "bad.npz"
    np.savez(path, conv1_1_W=np.zeros((3, 3, 3, 63), np.float32),
             conv1_1_b=np.zeros(64, np.int32), fc6_W=np.zeros((7, 7, 512, 1), np.float32))

    def no_load(*args, **kwargs):
        raise AssertionError("arrays were read before the keys were checked")

    monkeypatch.setattr(vgg16.np, "load", no_load)
    with pytest.raises(ValueError) as err:
        vgg16.read_npz_weights(path)
    msg = str(err.value)
    assert "conv1_1_W has shape (3, 3, 3, 63), expected (3, 3, 3, 64)" in msg
    assert "conv1_1_b has dtype int32, expected a floating-point array" in msg
    assert "fc6_W has shape (7, 7, 512, 1), expected (25088, 4096)" in msg


@pytest.mark.parametrize("style", ["classic", "keras2"])
def test_h5_misshaped_and_missing_layers_are_named(tmp_path, style):
    path = tmp_path / "partial.h5"
    write_keras_h5(path, {"block1_conv1": (np.zeros((3, 3, 3, 63), np.float32),
                                           np.zeros(64, np.float32)),
                          "block1_conv2": (np.zeros((3, 3, 64, 64), np.float32),
                                           np.zeros(64, np.float32))}, style=style)
    with pytest.raises(ValueError) as err:
        vgg16.read_keras_h5_weights(path)
    msg = str(err.value)
    assert "block1_conv1/kernel has shape (3, 3, 3, 63), expected (3, 3, 3, 64)" in msg
    assert "block2_conv1/kernel is missing (expected shape (3, 3, 64, 128))" in msg
    assert "predictions/bias is missing (expected shape (1000,))" in msg
    assert "block1_conv2" not in msg


@pytest.mark.parametrize("wnames", [["fc2_b_1:0", "fc2_W_1:0"],
                                    ["fc2/bias:0", "fc2/kernel:0"],
                                    ["vgg16/fc2/bias", "vgg16/fc2/kernel"]])
def test_h5_kernel_and_bias_are_told_apart_by_name_not_order(tmp_path, wnames):
    path = tmp_path / "fc2.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"fc2"])
        group = f.create_group("fc2")
        group.attrs["weight_names"] = np.array([n.encode() for n in wnames])  # bias first
        group.create_dataset(wnames[0], data=np.arange(2, dtype=np.float32))
        group.create_dataset(wnames[1], data=np.ones((3, 2), np.float32))
    with h5py.File(path, "r") as f:
        kernel, bias = vgg16._h5_layer_datasets(str(path), f)["fc2"]
        assert kernel.shape == (3, 2) and bias.shape == (2,)


def test_h5_keras3_weights_layout_is_read_by_layer_name(tmp_path):
    """Keras 3 .weights.h5: layers/<key>/vars/{0,1}, the layer name in an attribute."""
    path = tmp_path / "model.weights.h5"
    with h5py.File(path, "w") as f:
        vars_group = f.create_group("layers/conv2d_7/vars")
        vars_group.attrs["name"] = "predictions"
        vars_group.create_dataset("0", data=np.zeros((4096, 1000), np.float32))
        vars_group.create_dataset("1", data=np.zeros(999, np.float32))
    with pytest.raises(ValueError) as err:
        vgg16.read_keras_h5_weights(path)
    msg = str(err.value)
    assert "predictions/bias has shape (999,), expected (1000,)" in msg
    assert "predictions/kernel" not in msg
    assert "fc1/kernel is missing" in msg


def test_h5_unrecognised_weight_names_are_an_error(tmp_path):
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"fc2"])
        group = f.create_group("fc2")
        group.attrs["weight_names"] = np.array([b"alpha", b"beta"])
        group.create_dataset("alpha", data=np.zeros(2, np.float32))
        group.create_dataset("beta", data=np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="cannot tell kernel from bias in layer fc2"):
        vgg16.read_keras_h5_weights(path)


# ----------------------------------------------------------------------------- 'imagenet'

def test_write_npz_weights_leaves_nothing_behind_on_failure(tmp_path, monkeypatch):
    """The converter writes through a temporary file in the same folder and renames it:
    a failure halfway leaves neither a half-written file nor the temporary one."""
    def broken_savez(f, **arrays):
        f.write(b"PK half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(vgg16.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        vgg16.write_npz_weights(zeros_weights(), tmp_path / "vgg16_weights.npz")
    assert list(tmp_path.iterdir()) == []


def _partial_npz(path):
    """A small npz that is not VGG16's weights (conv1_1 only): reading it names the file."""
    with open(path, "wb") as f:
        np.savez(f, conv1_1_W=np.zeros((3, 3, 3, 64), np.float32),
                 conv1_1_b=np.zeros(64, np.float32))
    return str(path)


def test_imagenet_lookup_env_then_working_directory(no_weights, monkeypatch, capsys):
    assert (vgg16.IMAGENET, vgg16.WEIGHTS_ENV, vgg16.WEIGHTS_FILE) == \
        ("imagenet", "HW3_VGG16_WEIGHTS", "vgg16_weights.npz")
    local = os.path.join(str(no_weights), "vgg16_weights.npz")
    path, reason, looked = vgg16.find_imagenet_weights()
    assert path is None and reason is None
    assert looked == ["$HW3_VGG16_WEIGHTS (not set)", f"{local} (no such file)"]
    _partial_npz(local)
    assert vgg16.find_imagenet_weights()[:2] == (local, "found in the working directory")
    env_file = _partial_npz(no_weights / "elsewhere.npz")
    monkeypatch.setenv(vgg16.WEIGHTS_ENV, env_file)
    assert vgg16.find_imagenet_weights()[:2] == (env_file, "from $HW3_VGG16_WEIGHTS")
    assert vgg16.resolve_weights("imagenet") == env_file
    monkeypatch.setenv(vgg16.WEIGHTS_ENV, str(no_weights / "gone.npz"))
    path, _, looked = vgg16.find_imagenet_weights()  # a variable naming no file: skipped
    assert path == local and "gone.npz' (no such file)" in looked[0]
    assert "HW3_VGG16_WEIGHTS is set to" in capsys.readouterr().err
    # Other arguments are not looked up.
    assert vgg16.resolve_weights("vgg16_weights.npz") == "vgg16_weights.npz"
    assert vgg16.resolve_weights(None) is None


def test_imagenet_not_found_says_where_it_looked_and_how_to_get_it(no_weights, sess):
    with pytest.raises(FileNotFoundError) as err:
        vgg16.vgg16(tf1.placeholder(tf.float32, [None, 224, 224, 3]), "imagenet", sess)
    msg = str(err.value)
    assert msg.startswith("weights='imagenet': no VGG16 weights file found; looked at "
                          "$HW3_VGG16_WEIGHTS (not set); "
                          + os.path.join(str(no_weights), "vgg16_weights.npz")
                          + " (no such file). Get the classic vgg16_weights.npz from ")
    assert vgg16.CLASSIC_URL in msg and vgg16.KERAS_URL in msg
    assert "set HW3_VGG16_WEIGHTS=PATH" in msg and "Nothing is downloaded" in msg
    assert [op.type for op in sess.graph.get_operations()] == ["Placeholder"]  # no more
    with pytest.raises(FileNotFoundError, match="^weights='imagenet': no VGG16 weights"):
        vgg16.read_weights("imagenet")
    VGG16(weights="imagenet")  # without a session nothing is loaded, so nothing is looked up


def test_imagenet_reads_the_file_it_finds_before_building(no_weights, sess, monkeypatch):
    env_file = _partial_npz(no_weights / "from_env.npz")
    monkeypatch.setenv(vgg16.WEIGHTS_ENV, env_file)
    with pytest.raises(ValueError, match=r"^weights: .*from_env\.npz does not hold VGG16's "
                                         r"weights: conv1_2_W is missing"):
        VGG16(None, "imagenet", sess)
    assert sess.graph.get_operations() == []  # checked before anything was built
    monkeypatch.delenv(vgg16.WEIGHTS_ENV)
    _partial_npz(no_weights / "vgg16_weights.npz")
    with pytest.raises(ValueError, match=r"vgg16_weights\.npz does not hold"):
        VGG16().load_weights("imagenet", mock.MagicMock())


@pytest.mark.slow
def test_imagenet_from_the_environment_end_to_end(no_weights, sess, monkeypatch):
    """The course's call vgg16(imgs, 'imagenet', sess) with $HW3_VGG16_WEIGHTS set."""
    bias = np.linspace(-5, 5, 1000)
    monkeypatch.setenv(vgg16.WEIGHTS_ENV, write_zero_npz(no_weights / "w.npz", bias))
    imgs = tf1.placeholder(tf.float32, [None, 224, 224, 3])
    model = vgg16.vgg16(imgs, "imagenet", sess)
    assert model.imgs is imgs and imgs.name == "Placeholder:0"
    probs, logits = sess.run([model.probs, model.fc3l],
                             {imgs: np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3))})
    np.testing.assert_array_equal(logits, np.tile(bias.astype(np.float32), (2, 1)))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


# ----------------------------------------------------------------------------- Keras parity

@pytest.fixture(scope="session")
def vgg16_weight_files(tmp_path_factory):
    """Random He-scaled VGG16 weights written once per run in every format, plus Keras' logits.

    Yields dict: 'files' (name -> path: 'classic.npz', 'classic.h5' written here in the
    downloadable files' layouts; 'keras3.h5', 'keras3.weights.h5' written by Keras itself),
    'images' [2, 224, 224, 3] RGB 0-255, 'keras_logits' [2, 1000] computed by Keras from
    'classic.h5'. The files (~550 MB each) are deleted afterwards. (The Keras 2 weight-name
    style is read by the same code path; the fast tests cover it on small files.)
    """
    root = tmp_path_factory.mktemp("vgg16_weights")
    rng = np.random.default_rng(0)
    weights = OrderedDict()
    for layer, (w_shape, b_shape) in WEIGHT_SHAPES.items():
        fan_in = int(np.prod(w_shape[:-1]))
        W = rng.standard_normal(w_shape, dtype=np.float32)
        W *= np.float32(np.sqrt(2.0 / fan_in))  # He init: activations keep their scale
        b = rng.standard_normal(b_shape, dtype=np.float32)
        weights[layer] = (W, b)
    files = {name: str(root / name) for name in
             ("classic.npz", "classic.h5", "keras3.h5", "keras3.weights.h5")}
    vgg16.write_npz_weights(weights, files["classic.npz"])
    keras_layers = {KERAS_NAMES[layer]: (W, b) for layer, (W, b) in weights.items()}
    W, b = keras_layers["block1_conv1"]
    keras_layers["block1_conv1"] = (np.ascontiguousarray(W[:, :, ::-1, :]), b)  # RGB -> BGR
    write_keras_h5(files["classic.h5"], keras_layers, style="classic")
    del weights, keras_layers, W, b
    gc.collect()

    images = rng.uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    np.save(root / "images.npy", images)
    start = time.time()
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "vgg16_keras_ref.py"), files["classic.h5"],
         str(root / "images.npy"), str(root / "logits.npy"),
         "--save-h5", files["keras3.h5"], "--save-weights-h5", files["keras3.weights.h5"]],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    print(f"keras reference: {time.time() - start:.1f} s; {proc.stdout.strip()}")
    yield {"files": files, "images": images,
           "keras_logits": np.load(root / "logits.npy")}
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def vgg16_graph():
    """One VGG16 graph and session for every parity test (its op count is checked)."""
    from conftest import new_session
    session = new_session()
    with session.graph.as_default():
        model = VGG16()
    yield model, session, len(session.graph.get_operations())
    session.close()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["classic.npz", "classic.h5", "keras3.h5", "keras3.weights.h5"])
def test_logits_equal_keras_given_the_same_weights(vgg16_weight_files, vgg16_graph, fmt):
    model, session, n_ops = vgg16_graph
    ref = vgg16_weight_files["keras_logits"]
    scale = np.abs(ref).max()
    # The random net must not be degenerate: large, varied logits that differ by image.
    assert 1 < scale < 1e6 and ref.std(axis=1).min() > 1e-2 * scale
    assert np.abs(ref[0] - ref[1]).max() > 1e-2 * scale

    model.load_weights(vgg16_weight_files["files"][fmt], session)
    ours = session.run(model.logits, {model.imgs: vgg16_weight_files["images"]})
    assert len(session.graph.get_operations()) == n_ops  # loading added no op
    err = np.abs(ours - ref).max() / scale
    print(f"{fmt}: max |ours - keras| / max |keras| = {err:.2e} (max |logit| {scale:.3g})")
    assert err <= 1e-5
