"""Your own model: Keras / SavedModel / torchvision ResNet through get_model, end to end.

The Keras models are built, saved and converted in child processes (this process runs
with eager execution disabled, as the toolkit's users do), once per test session: the five
keras.applications families in every format (tests/keras_families.py) and a small CNN
trained on synthetic classes plus odd models (tests/own_model.py). Every conversion goes
to a cache folder of the session's own (``$HW3_CACHE_DIR``).
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import hw3_utils as u
import keras_families as KF
from attrkit.models import model_import as MI
import own_model
from attrkit.models import preprocessing
import resnet_ref
from conftest import new_session
from helpers import run_children
from torch_writer import write_state_dict

tf1 = tf.compat.v1
TESTS = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(TESTS, "data")
FORMATS = {"keras": "{}.keras", "h5": "{}.h5", "export": "{}_export", "tfsave": "{}_tfsave"}
CASES = [(f, fmt) for f in KF.FAMILIES for fmt in ("keras", "h5", "export")
         if not (fmt == "h5" and f in KF.NO_H5)] + [(f, "tfsave") for f in KF.TF_SAVE]


def _convert_in_parallel(jobs, parts=2):
    """ensure_converted on ``parts`` slices of ``jobs`` at once (one child each)."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(parts) as pool:
        for future in [pool.submit(MI.ensure_converted, jobs[i::parts]) for i in range(parts)]:
            future.result()


@pytest.fixture(scope="session")
def families(tmp_path_factory, cache_dir):
    """The five families saved in every format and converted, all in one child each."""
    out = run_children("keras_families.py", tmp_path_factory.mktemp("families"),
                    [["ResNet50", "DenseNet121"],
                     ["MobileNetV2", "EfficientNetB0", "ConvNeXtTiny"]])
    paths = [str(out / FORMATS[fmt].format(f)) for f, fmt in CASES]
    _convert_in_parallel([(p, MI.sniff_model(p), None) for p in paths])
    return out


def _load(path, **kwargs):
    sess = new_session()
    with sess.graph.as_default():
        model = u.get_model(sess, str(path), **kwargs)
    return model, sess


# ------------------------------------------------------------------ the five families

@pytest.mark.slow
@pytest.mark.parametrize("family, fmt", CASES)
def test_family_equals_keras_eager(families, family, fmt):
    ref = np.load(families / "{}_ref.npz".format(family))
    model, sess = _load(families / FORMATS[fmt].format(family))
    with sess.graph.as_default():
        grad = tf.gradients(model.logits[:, KF.TARGET], model.imgs)[0]
        to_layers = tf.gradients(model.logits[:, 0], list(model.layers.values()))
    n_ops = len(sess.graph.get_operations())
    logits, g = sess.run([model.logits, grad], {model.imgs: ref["images"]})
    sess.run([model.probs] + list(model.layers.values()), {model.imgs: ref["images"]})
    assert len(sess.graph.get_operations()) == n_ops          # calls add no op
    assert model.preprocess.name == KF.PREPROCESS[family][1]  # the default, guessed right
    assert model.imgs.shape.as_list() == [None, 64, 64, 3]
    assert sess.graph.get_tensor_by_name("Placeholder:0") is model.imgs
    ok, report = KF.compare(logits, ref["logits"])
    assert ok, report
    ok, report = KF.compare(g, ref["grads"], "gradients", ref["noise"])
    assert ok, report
    assert model.class_names == ["class {}".format(i) for i in range(KF.CLASSES)]
    gradcam = model.layers[model.default_layers["gradcam"]]
    influence = model.layers[model.default_layers["influence"]]
    assert gradcam.shape.rank == 4 and influence.shape.rank == 2
    # every layer before the softmax gets a gradient (the peeled softmax's output, none)
    missing = [n for n, d in zip(model.layers, to_layers) if d is None]
    assert missing in ([], [list(model.layers)[-1]]), missing
    sess.close()


@pytest.mark.slow
def test_wrong_imports_fail_the_comparison(families):
    """The fixtures can fail: softmax left on, the caffe BGR flip skipped, or
    MobileNetV2's 'tf' scaling left out are each caught."""
    ref = np.load(families / "ResNet50_ref.npz")
    model, sess = _load(families / "ResNet50.keras")
    logits, probs = sess.run([model.logits, model.probs], {model.imgs: ref["images"]})
    assert KF.compare(logits, ref["logits"])[0]
    assert not KF.compare(probs, ref["logits"])[0]                     # softmax left on
    rgb_mean = tuple(reversed(preprocessing.CAFFE_MEAN_BGR))
    model, sess = _load(families / "ResNet50.keras", preprocess=(rgb_mean, 1.0))
    with sess.graph.as_default():
        grad = tf.gradients(model.logits[:, KF.TARGET], model.imgs)[0]
    logits, g = sess.run([model.logits, grad], {model.imgs: ref["images"]})
    assert not KF.compare(logits, ref["logits"])[0]                    # no BGR flip
    assert not KF.compare(g, ref["grads"], "gradients", ref["noise"])[0]
    ref = np.load(families / "MobileNetV2_ref.npz")
    model, sess = _load(families / "MobileNetV2.keras", preprocess="none")
    assert not KF.compare(sess.run(model.logits, {model.imgs: ref["images"]}),
                          ref["logits"])[0]
    assert np.abs(ref["logits"][0] - ref["logits"][1]).max() > 0.1   # not a constant


@pytest.mark.slow
def test_a_file_keras_cannot_read_is_a_clear_error(families, sess):
    with pytest.raises(ValueError, match=r"^name_or_path: Keras cannot load .*ConvNeXtTiny.h5: "
                                         r".*LayerScale"):
        u.get_model(sess, str(families / "ConvNeXtTiny.h5"))
    assert sess.graph.get_operations() == []


# ------------------------------------------------------------------ your own model

@pytest.mark.slow
def test_every_named_layer_lies_on_the_path_to_the_logits(own):
    """A loaded Sequential's layers were called more than once; the named tensors are the
    ones the logits are computed from, so gradients reach every one (influence and
    Grad-CAM differentiate through them). The softmax layer comes after the logits."""
    model, sess = _load(own / "own.keras")
    with sess.graph.as_default():
        reach = {name: tf.gradients(model.logits[:, 0], t)[0] is not None
                 for name, t in model.layers.items()}
    assert reach == {name: name != "predictions" for name in reach}
    assert set(model.default_layers.values()) <= {n for n, ok in reach.items() if ok}


@pytest.mark.slow
def test_own_model_attributions_find_the_evidence(own):
    from hw3_attribution import Occlusion, SaliencyMap
    model, sess = _load(own / "own.keras", labels=str(own / "labels.txt"))
    assert model.class_names == list(own_model.CLASS_NAMES)
    assert model.preprocess.name == "none"                 # its own Rescaling layer
    assert model.default_layers == {"gradcam": "conv2", "influence": "gap"}
    X, y = own_model.synthetic_images(12, seed=7)
    pred = sess.run(model.logits, {model.imgs: X}).argmax(1)
    assert (pred == y).mean() >= 0.9
    region = own_model.evidence_mask()
    chance = region.mean()                                                # 0.25
    with sess.graph.as_default():
        S = SaliencyMap(sess, model.imgs, model.logits, None, progress=False)(X)
        O = Occlusion(sess, model.imgs, model.logits, None, progress=False)(
            X, superpixel_size=4)
    saliency = np.abs(S).sum(-1)                                          # [N, H, W]
    occlusion = np.clip(O, 0, None)
    for name, maps in (("saliency", saliency), ("occlusion", occlusion)):
        inside = maps[:, region].sum(1) / np.maximum(maps.sum((1, 2)), 1e-12)
        assert inside.mean() > max(2 * chance, 0.5), (name, inside)


@pytest.mark.slow
def test_binary_gray_and_subclassed_models(own):
    ref = np.load(own / "odd_ref.npz")
    model, sess = _load(own / "binary.keras")
    logits, probs = sess.run([model.logits, model.probs], {model.imgs: ref["binary_images"]})
    assert model.activation == "sigmoid" and logits.shape == (3, 2)
    np.testing.assert_array_equal(logits[:, 0], 0)                # logits [0, z]
    np.testing.assert_allclose(probs[:, 1], ref["binary_probs"][:, 0], rtol=1e-5)
    np.testing.assert_allclose(probs[:, 0], 1 - ref["binary_probs"][:, 0], rtol=1e-4,
                               atol=1e-6)
    with sess.graph.as_default():                       # a second import, same graph
        again = u.get_model(sess, str(own / "binary.keras"))
    assert again.imgs is not model.imgs and again.imgs.name == "Placeholder_1:0"
    np.testing.assert_array_equal(sess.run(again.logits, {again.imgs: ref["binary_images"]}),
                                  logits)
    model, sess = _load(own / "gray_fcn.keras", input_size=(20, 24))
    assert model.imgs.shape.as_list() == [None, 20, 24, 1] and model.activation == "none"
    np.testing.assert_allclose(sess.run(model.logits, {model.imgs: ref["gray_images"]}),
                               ref["gray_logits"], rtol=1e-4, atol=1e-5)
    model, sess = _load(own / "subclassed_savedmodel")
    np.testing.assert_allclose(sess.run(model.logits, {model.imgs: ref["sub_images"]}),
                               ref["sub_logits"], rtol=1e-4, atol=1e-5)
    assert model.name == "sub" and list(model.layers) == ["conv", "pool", "dense"]
    assert any("name scopes" in n for n in model.notes)


@pytest.mark.slow
def test_bad_models_are_clear_errors_and_leave_nothing(own, cache_dir):
    before = {p: os.path.getmtime(p) for p in own.iterdir()}
    cases = [
        ("two_inputs.keras", {}, r"^name_or_path: .*two_inputs.keras has 2 inputs; expected "
                                 r"a model with one image input \[None, H, W, C\]"),
        ("map_output.keras", {}, r"^name_or_path: .*outputs shape \[None, 8, 8, 2\]; "
                                 r"expected \[None, K\]"),
        ("weights_only.weights.h5", {}, r"^name_or_path: .*holds no model architecture"),
        ("gray_fcn.keras", {}, r"^input_size: .*accepts images of any size .*pass "
                               r"input_size=\(height, width\)"),
        ("own.keras", {"input_size": (16, 16)}, r"^input_size: .*takes 32x32 images; got "
                                                r"input_size=\(16, 16\)"),
        ("own.keras", {"labels": ["a", "b"]}, r"^labels: the list has 2 class names; the "
                                              r"model has 3 classes"),
        ("own.keras", {"preprocess": "imagenet"}, r"^preprocess: expected one of"),
    ]
    # one child process refuses the five that need one; the refusals are cached
    refused = [(str(own / n), MI.sniff_model(str(own / n)), MI.parse_input_size(
        kw.get("input_size"))) for n, kw, _ in cases[:5]]
    with pytest.raises(ValueError, match="two_inputs.keras has 2 inputs"):
        MI.ensure_converted(refused)
    for name, kwargs, message in cases:
        sess = new_session()
        with sess.graph.as_default(), pytest.raises(ValueError, match=message):
            u.get_model(sess, str(own / name), **kwargs)
        assert sess.graph.get_operations() == [], name
    models = cache_dir / "models"
    assert not [p for p in models.iterdir() if p.name.startswith(".tmp-")]
    assert all(sorted(f.name for f in p.iterdir()) in (["graph.pb", "meta.json"],
                                                        ["error.json"])
               for p in models.iterdir())
    assert all((models / MI.cache_key(*job) / "error.json").is_file() for job in refused)
    assert {p: os.path.getmtime(p) for p in own.iterdir()} == before  # never written


@pytest.mark.slow
def test_works_with_eager_execution_on(own, cache_dir):
    """The caller need not disable eager execution: the same logits either way."""
    X, _ = own_model.synthetic_images(2, seed=3)
    model, sess = _load(own / "own.keras")
    expected = sess.run(model.logits, {model.imgs: X})
    code = ("import sys, numpy as np, tensorflow as tf; sys.path.insert(0, {root!r}); "
            "import hw3_utils as u; s = tf.compat.v1.Session(graph=tf.Graph()); "
            "m = u.get_model(s, {path!r}); "
            "np.save({out!r}, s.run(m.logits, {{m.imgs: np.load({x!r})}}))")
    np.save(cache_dir / "x.npy", X)
    out = cache_dir / "eager_logits.npy"
    proc = subprocess.run([sys.executable, "-c", code.format(
        root=os.path.dirname(TESTS), path=str(own / "own.keras"), out=str(out),
        x=str(cache_dir / "x.npy"))], capture_output=True, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["ResNet50", "MobileNetV2"])
def test_propagation_methods_on_imported_keras_models(families, family):
    """The propagation methods and the CAMs on imported Keras models: caffe's BGR flip
    and mean (ReverseV2, Sub), frozen batch norms, residual adds, ReLU6 and depthwise
    convolutions."""
    from helpers import check_propagation_methods
    model, sess = _load(families / FORMATS["keras"].format(family))
    X = np.load(families / "{}_ref.npz".format(family))["images"][:2]
    check_propagation_methods(sess, model, X,
                              model.layers[model.default_layers["gradcam"]],
                              rules=("zplus", "epsilon_gamma_box"))


# ------------------------------------------------------------------ no child needed

@pytest.fixture(scope="module")
def resnet18_pth(tmp_path_factory):
    path = tmp_path_factory.mktemp("r18") / "resnet18.pth"
    write_state_dict(path, resnet_ref.reference_state("resnet18"), "zip")
    return str(path)


def test_resnet_through_get_model(sess, resnet18_pth):
    with np.load(os.path.join(DATA, "resnet_reference.npz")) as f:
        images, expected = f["images"], f["resnet18"]
    names = ["n{}".format(i) for i in range(resnet_ref.NUM_CLASSES)]
    model = u.get_model(sess, "ResNet18", resnet18_pth, labels=names, input_size=64)
    assert sess.graph.get_tensor_by_name("Placeholder:0") is model.imgs
    assert model.imgs.shape.as_list() == [None, 64, 64, 3] and model.class_names == names
    np.testing.assert_allclose(sess.run(model.logits, {model.imgs: images}), expected,
                               atol=1e-4)
    assert model.preprocess.name == "torch"


def test_propagation_methods_on_a_torchvision_resnet(sess, resnet18_pth):
    """LRP (batch norms folded, residual sums split by the Norm rule, the explicit-padding
    max pool), DeepLIFT, DeconvNet and the CAMs on layer4 run on torchvision's ResNet-18."""
    from helpers import check_propagation_methods
    model = u.get_model(sess, "resnet18", resnet18_pth, input_size=64)
    check_propagation_methods(sess, model, resnet_ref.reference_images()[:2],
                              model.layers["layer4"])


def test_resnet_bad_options_build_nothing(sess, resnet18_pth, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    cases = [
        ({"labels": str(labels)}, ValueError, r"^labels: the file .*labels.txt has 3 class "
                                              r"names; the model has 7 classes"),
        ({"labels": str(tmp_path / "none.txt")}, FileNotFoundError, r"^labels: no such file"),
        ({"labels": 7}, ValueError, r"^labels: expected a path to a text file"),
        ({"preprocess": "imagenet"}, ValueError, r"^preprocess: expected one of 'none'"),
        ({"input_size": (0, 3)}, ValueError, r"^input_size: expected a positive int or a "
                                             r"pair"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            u.get_model(sess, "resnet18", resnet18_pth, **kwargs)
    with pytest.raises(ValueError, match=r"^weights: resnet50 needs a torchvision checkpoint"):
        u.get_model(sess, "resnet50")
    assert sess.graph.get_operations() == []


def test_checkpoint_with_a_forbidden_global_is_refused(sess, tmp_path):
    import pickle
    from torch_writer import _global, _pickle, _str, _tuple, write_zip
    flag = tmp_path / "pwned"
    body = _global("os", "system") + _tuple([_str("touch {}".format(flag))]) + b"R"
    path = tmp_path / "evil.pth"
    write_zip(path, {}, {}, state_pickle=_pickle(body))
    with pytest.raises(pickle.UnpicklingError, match=r"^weights: .*evil.pth: refused to load "
                                                     r"global os.system"):
        u.get_model(sess, "resnet18", str(path))
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=r"^weights: .*evil.pth: expected a PyTorch "
                                         r"checkpoint in the legacy"):
        u.get_model(sess, "resnet50", str(path))
    assert not flag.exists() and sess.graph.get_operations() == []


def test_not_a_model_is_a_clear_error(sess, tmp_path, resnet18_pth):
    text = tmp_path / "notes.keras"
    text.write_text("hello")
    empty = tmp_path / "folder"
    empty.mkdir()
    zipped = tmp_path / "archive.keras"
    import zipfile
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("readme.txt", "x")
    legacy = tmp_path / "legacy.pth"
    write_state_dict(legacy, {"w": np.zeros(2, np.float32)}, "legacy")
    cases = [
        (str(text), ValueError, r"^name_or_path: expected a Keras .keras or .h5 model file "
                                r"or a SavedModel folder; .*notes.keras is neither"),
        (str(empty), ValueError, r"is a folder without saved_model.pb"),
        (str(zipped), ValueError, r"is a zip archive without a Keras config.json"),
        (resnet18_pth, ValueError, r"^name_or_path: .*resnet18.pth is a PyTorch checkpoint; "
                                   r"pass it as weights= with name_or_path 'resnet18'"),
        (str(legacy), ValueError, r"is a PyTorch checkpoint"),
        (str(tmp_path / "gone.keras"), FileNotFoundError, r"^name_or_path: no such file or "
                                                          r"folder"),
    ]
    for path, error, message in cases:
        with pytest.raises(error, match=message):
            u.get_model(sess, path)
    with pytest.raises(ValueError, match=r"^weights: a Keras file or SavedModel carries its "
                                         r"own weights"):
        u.get_model(sess, str(text), "w.h5")
    assert sess.graph.get_operations() == []


def test_builtin_models_refuse_import_options(sess):
    with pytest.raises(ValueError, match=r"^preprocess: the built-in model "
                                         r"efficientnet_lite0 takes RGB 0-255"):
        u.get_model(sess, "efficientnet_lite0", preprocess="tf")
    with pytest.raises(ValueError, match=r"^labels: the list has 2 class names; the model "
                                         r"has 1000 classes"):
        u.get_model(sess, "efficientnet_lite0", labels=["a", "b"])
    assert sess.graph.get_operations() == []


def test_class_names_defaults_and_files(tmp_path):
    from imagenet_classes import class_names
    assert MI.class_names_for(None, 1000) == list(class_names)
    assert MI.class_names_for(None, 3) == ["class 0", "class 1", "class 2"]
    path = tmp_path / "labels.txt"
    path.write_text(" benign \nmalignant\n\n")
    assert MI.class_names_for(str(path), 2) == ["benign", "malignant"]
    assert MI.read_labels_file(path) == ["benign", "malignant"]


def test_cache_key_follows_the_content(tmp_path, monkeypatch):
    monkeypatch.setenv(MI.CACHE_ENV, str(tmp_path / "c"))
    assert MI.cache_root() == str(tmp_path / "c")
    folder = tmp_path / "sm"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"a")
    (folder / "variables" / "v").write_bytes(b"b")
    key = MI.cache_key(str(folder), "savedmodel", None)
    assert MI.cache_key(str(folder), "savedmodel", [32, 32]) != key
    (folder / "variables" / "v").write_bytes(b"c")
    assert MI.cache_key(str(folder), "savedmodel", None) != key
    monkeypatch.delenv(MI.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert MI.cache_root() == str(tmp_path / "xdg" / "hw3_toolkit")


def test_own_model_lists_its_frozen_weights_and_randomises_them_by_feeding(own):
    """An imported model's weights are the constants its variables became: listed
    bottom-up as ``variables``; the randomisation test feeds new values over them (no
    re-import, no op, the graph's constants untouched) and Saliency's maps move away."""
    from attrkit.metrics import randomisation as R
    model, sess = _load(own / "own.keras", labels=str(own / "labels.txt"))
    names = list(model.variables)
    assert all(isinstance(t, tf.Tensor) for t in model.variables.values())
    layers = list(R.weight_layers(model))             # the layers with a kernel
    assert layers == ["conv1", "conv2", "predictions"] and len(names) == 6
    X, _ = own_model.synthetic_images(4, seed=3)
    logits = sess.run(model.logits, {model.imgs: X})
    before = sess.run(list(model.variables.values()))
    with sess.graph.as_default():
        from hw3_attribution import SaliencyMap
        saliency = SaliencyMap(sess, model.imgs, model.logits, None, progress=False)
        ops = n_ops_of(sess)
        scores = R.ModelParameterRandomisation(sess, model, saliency, X, progress=False)
    assert list(scores) == ["original"] + layers[::-1]
    assert np.mean(scores[layers[0]]) < 0.9 and scores["original"] == pytest.approx(1.0)
    assert n_ops_of(sess) == ops                      # nothing built, nothing re-imported
    np.testing.assert_array_equal(sess.run(model.logits, {model.imgs: X}), logits)
    for a, b in zip(sess.run(list(model.variables.values())), before):
        np.testing.assert_array_equal(a, b)


def n_ops_of(sess):
    return len(sess.graph.get_operations())
