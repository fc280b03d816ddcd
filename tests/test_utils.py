"""Tests of hw3_utils (names, images, data, model choice) and make_dataset."""
import os

import numpy as np
import pytest
from PIL import Image

import hw3_utils as u
import make_dataset
import models


# ------------------------------------------------------------------------- names

EXAMPLES = [("Arabian camel, dromedary, Camelus dromedarius", 354), ("weasel", 356),
            ("goldfish, Carassius auratus", 1), ("sports car, sport car", 817)]


@pytest.mark.parametrize("name, idx", EXAMPLES)
def test_name_examples_both_ways(name, idx):
    assert u.ImageNet_name2idx(name) == idx
    assert u.ImageNet_idx2name(idx) == name
    assert u.ImageNet_idx2name(np.int64(idx)) == name


@pytest.mark.parametrize("name, idx", [
    ("DROMEDARY", 354), ("  Sport   CAR ", 817), ("goldfish,carassius  auratus", 1),
    ("camelus dromedarius", 354), ("Weasel", 356),
    ("maillot", 638),  # the exact full name wins over 639's synonym 'maillot'
    ("missile", 657)])  # likewise over 744 'projectile, missile'
def test_name_synonyms_case_and_whitespace(name, idx):
    assert u.ImageNet_name2idx(name) == idx


def test_class_file_has_1000_classes_and_names_round_trip():
    names = [u.ImageNet_idx2name(i) for i in range(1000)]
    assert len(set(names)) == 999  # only 'crane' (134 bird, 517 machine) repeats
    for i, n in enumerate(names):
        if n != "crane":
            assert u.ImageNet_name2idx(n) == i


def test_ambiguous_name_lists_candidates():
    with pytest.raises(ValueError, match=r"^name: 'crane' names 2 .*134 .*517"):
        u.ImageNet_name2idx("crane")
    with pytest.raises(ValueError, match=r"names 2 .*286 .*287"):
        u.ImageNet_name2idx("catamount")  # a synonym of cougar and of lynx


def test_unknown_name_suggests_closest():
    with pytest.raises(ValueError, match=r"^name: no ImageNet class is called 'wesel'.*"
                                         r"'weasel' \(356\)"):
        u.ImageNet_name2idx("wesel")
    with pytest.raises(ValueError, match="closest names: none"):
        u.ImageNet_name2idx("qqqqzzzz")


@pytest.mark.parametrize("bad", [None, 354, b"weasel"])
def test_name_must_be_a_string(bad):
    with pytest.raises(TypeError, match="^name: expected an ImageNet class name"):
        u.ImageNet_name2idx(bad)


@pytest.mark.parametrize("bad", [-1, 1000, 3.0, True, "5", None])
def test_index_out_of_range_or_not_int(bad):
    with pytest.raises(ValueError, match=r"^idx: expected an int class index in \[0, 999\]"):
        u.ImageNet_idx2name(bad)


# ------------------------------------------------------------------------ images

def _save(path, arr, mode=None):
    Image.fromarray(arr, mode).save(path) if mode else Image.fromarray(arr).save(path)
    return str(path)


def test_load_img_rgb_gray_and_transparent(tmp_path):
    rgb = np.random.RandomState(0).randint(0, 256, (20, 30, 3)).astype(np.uint8)
    img = u.load_img(_save(tmp_path / "a.png", rgb))
    assert img.mode == "RGB" and img.size == (30, 20)
    np.testing.assert_array_equal(u.img_to_array(img), rgb.astype(np.float32))
    gray = u.img_to_array(u.load_img(_save(tmp_path / "g.png", rgb[..., 0])))
    np.testing.assert_array_equal(gray, np.repeat(rgb[..., :1], 3, -1))
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:2, :, :3], rgba[:2, :, 3] = 10, 255  # top half opaque dark, bottom transparent
    arr = u.img_to_array(u.load_img(_save(tmp_path / "t.png", rgba)))
    assert (arr[:2] == 10).all() and (arr[2:] == 255).all()  # composited onto white


def test_load_img_target_size(tmp_path):
    path = _save(tmp_path / "a.png", np.full((40, 60, 3), 77, np.uint8))
    assert u.load_img(path, target_size=(10, 20)).size == (20, 10)  # (height, width)
    arr = u.img_to_array(u.load_img(path, target_size=8))
    assert arr.shape == (8, 8, 3) and (arr == 77).all()


def test_load_img_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="^path: .*no such file"):
        u.load_img(tmp_path / "missing.png")
    with pytest.raises(TypeError, match="^path: expected a path.*ndarray"):
        u.load_img(np.zeros((4, 4, 3)))
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(ValueError, match="^path: cannot read"):
        u.load_img(tmp_path / "x.png")
    deep = _save(tmp_path / "d.png", np.full((4, 4), 40000, np.uint16))
    with pytest.raises(ValueError, match="^path: expected an 8-bit image.*'I;16'"):
        u.load_img(deep)
    ok = _save(tmp_path / "ok.png", np.zeros((4, 4, 3), np.uint8))
    for bad in (0, (3,), (2, -1), True, 2.5):
        with pytest.raises(ValueError, match="^target_size: expected a positive int"):
            u.load_img(ok, target_size=bad)


def test_img_to_array_shapes_and_errors():
    assert u.img_to_array(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    out = u.img_to_array(np.ones((5, 6, 1), np.uint8))
    assert out.dtype == np.float32 and out.shape == (5, 6, 3)
    with pytest.raises(ValueError, match=r"^img: expected an image .*got shape \[5, 6, 4\]"):
        u.img_to_array(np.zeros((5, 6, 4)))
    with pytest.raises(TypeError, match="^img: expected a numeric .*dtype <U1"):
        u.img_to_array(np.full((5, 6, 3), "a"))
    with pytest.raises(TypeError, match="^img: expected a PIL image or a numeric array"):
        u.img_to_array("photo.png")


def test_resize_images_values_and_shapes():
    rng = np.random.RandomState(1)
    batch = rng.uniform(0, 255, (2, 12, 16, 3)).astype(np.float32)
    np.testing.assert_array_equal(u.resize_images(batch, (12, 16)), batch)  # no-op
    out = u.resize_images(batch, 6)
    assert out.shape == (2, 6, 6, 3) and out.dtype == np.float32
    # Bilinear: a convex combination of the inputs, so the range cannot grow.
    assert out.min() >= batch.min() - 1e-3 and out.max() <= batch.max() + 1e-3
    const = np.full((9, 7, 2), 42, np.uint8)  # any channel count; constants stay constant
    np.testing.assert_allclose(u.resize_images(const, (4, 11)), 42, atol=1e-4)
    # A horizontal ramp stays a monotone ramp with the same mean.
    ramp = np.tile(np.arange(32, dtype=np.float32), (8, 1))[..., None]
    small = u.resize_images(ramp, (8, 8))[0, :, 0]
    assert np.all(np.diff(small) > 0) and abs(small.mean() - ramp.mean()) < 1e-3
    single = u.resize_images(batch[0], (3, 4))
    np.testing.assert_array_equal(single, u.resize_images(batch, (3, 4))[0])


def test_resize_images_errors():
    with pytest.raises(ValueError, match=r"^images: expected a batch .*got shape \[5, 5\]"):
        u.resize_images(np.zeros((5, 5)), 3)
    with pytest.raises(ValueError, match=r"^images: .*got shape \[0, 5, 5, 3\]"):
        u.resize_images(np.zeros((0, 5, 5, 3)), 3)
    with pytest.raises(TypeError, match="^images: expected a numeric"):
        u.resize_images(np.zeros((5, 5, 3), bool), 3)
    with pytest.raises(TypeError, match="^images: expected a numeric"):
        u.resize_images(np.array([["a"]], dtype=object), 3)
    bad = np.zeros((5, 5, 3))
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="^images: expected finite"):
        u.resize_images(bad, 3)
    for size in (0, -2, (3,), (3, 0), (3, 4, 5), "224", True):
        with pytest.raises(ValueError, match="^size: expected a positive int"):
            u.resize_images(np.zeros((5, 5, 3)), size)


def test_center_crop_resize_keeps_the_central_square():
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, :50] = (255, 0, 0)
    img[:, 50:150] = (0, 255, 0)  # the central 100 x 100 square
    img[:, 150:] = (0, 0, 255)
    out = u.center_crop_resize(img, 32)
    assert out.shape == (32, 32, 3)
    np.testing.assert_allclose(out, np.broadcast_to([0, 255, 0], out.shape), atol=1e-3)
    tall = u.center_crop_resize(Image.fromarray(img.transpose(1, 0, 2)), 16)
    np.testing.assert_allclose(tall, np.broadcast_to([0, 255, 0], tall.shape), atol=1e-3)


# ------------------------------------------------------------------ load_ImageNet

def _red_blue_model():
    """additive_image: f0 = sum(R) - sum(B), f1 = 0, so red images are class 0, blue 1."""
    w = np.zeros((224, 224, 3), np.float32)
    w[..., 0], w[..., 2] = 1.0, -1.0
    return models.additive_image(w)


def _images(n=3, size=224):
    X = np.zeros((n, size, size, 3), np.uint8)
    X[0::2, ..., 0] = 200  # even rows red, odd rows blue
    X[1::2, ..., 2] = 200
    return X


@pytest.mark.parametrize("keys", [
    ("X", "y", "y_pred", "idx"),
    ("images", "labels", "preds", "indices"),
    ("imgs", "y_true", "vgg16_pred", None),
    ("DATA", "Labels", "Predictions", "IDX")])
def test_load_npz_key_styles(tmp_path, keys):
    X = _images()
    arrays = {keys[0]: X, keys[1]: np.array([5, 6, 7]), keys[2]: np.array([5, 1, 7])}
    if keys[3]:
        arrays[keys[3]] = np.array([10, 20, 30])
    np.savez(tmp_path / "d.npz", **arrays)
    Xo, y_true, y_pred, idx = u.load_ImageNet(tmp_path / "d.npz")
    assert Xo.dtype == np.float32 and Xo.shape == (3, 224, 224, 3)
    np.testing.assert_array_equal(Xo, X)
    np.testing.assert_array_equal(y_true, [5, 6, 7])
    np.testing.assert_array_equal(y_pred, [5, 1, 7])  # no model given: the file's own
    np.testing.assert_array_equal(idx, [10, 20, 30] if keys[3] else [0, 1, 2])
    assert y_true.dtype == y_pred.dtype == idx.dtype == np.int64


def test_load_npz_predicts_with_the_given_model(sess, tmp_path):
    np.savez(tmp_path / "d.npz", x=_images(5), y=np.arange(5), y_pred=np.full(5, 9))
    model = _red_blue_model()
    _, _, y_pred, _ = u.load_ImageNet(str(tmp_path / "d.npz"), model=model, sess=sess)
    np.testing.assert_array_equal(y_pred, [0, 1, 0, 1, 0])  # the model's, not the file's


def test_load_npz_resizes_gray_and_one_hot(tmp_path):
    X = np.full((2, 50, 60), 128, np.uint8)  # grayscale, not 224 x 224
    one_hot = np.eye(1000)[[3, 999]]
    np.savez(tmp_path / "d.npz", images=X, labels=one_hot, preds=np.array([3.0, 4.0]))
    Xo, y_true, y_pred, _ = u.load_ImageNet(tmp_path / "d.npz")
    assert Xo.shape == (2, 224, 224, 3)
    np.testing.assert_allclose(Xo, 128, atol=1e-3)
    np.testing.assert_array_equal(y_true, [3, 999])
    np.testing.assert_array_equal(y_pred, [3, 4])


def test_load_npz_errors(tmp_path, sess):
    np.savez(tmp_path / "noimg.npz", labels=np.arange(3), scores=np.zeros((3, 10)))
    with pytest.raises(ValueError, match=r"^path: .* has no image data .*keys found: "
                                         r"labels int64\[3\], scores float64\[3, 10\]"):
        u.load_ImageNet(tmp_path / "noimg.npz")
    np.savez(tmp_path / "nolabel.npz", X=_images())
    with pytest.raises(ValueError, match=r"has no true labels .*keys found: X uint8"):
        u.load_ImageNet(tmp_path / "nolabel.npz")
    np.savez(tmp_path / "short.npz", X=_images(), y=np.arange(2))
    with pytest.raises(ValueError, match=r"^path: key 'y' .*expected 3 integer labels"):
        u.load_ImageNet(tmp_path / "short.npz")
    np.savez(tmp_path / "flat.npz", X=np.zeros((3, 10)), y=np.arange(3))
    with pytest.raises(ValueError, match=r"^path: key 'X' .*numeric images"):
        u.load_ImageNet(tmp_path / "flat.npz")
    np.savez(tmp_path / "obj.npz", X=np.array([object()] * 3), y=np.arange(3))
    with pytest.raises(ValueError, match="allow_pickle"):  # never unpickled
        u.load_ImageNet(tmp_path / "obj.npz")
    with pytest.raises(FileNotFoundError, match="^path: no such file"):
        u.load_ImageNet(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="^model, sess: give both"):
        u.load_ImageNet(tmp_path / "short.npz", model=_red_blue_model())
    with pytest.raises(ValueError, match="^model, sess: give both"):
        u.load_ImageNet(sess=sess)


def test_manifest_rows_are_consistent():
    rows = u.read_manifest()
    assert 14 <= len(rows) <= 20
    assert len({r["name"] for r in rows}) == len(rows)
    for r in rows:
        assert u.ImageNet_idx2name(int(r["true_idx"])) == r["true_name"], r["name"]
        assert r["note"].startswith("derived") == (r["transform"] != "none"), r["name"]


def test_bundled_images_load_without_a_model():
    X, y, names = u.load_samples()
    rows = u.read_manifest()
    assert X.shape == (len(rows), 224, 224, 3) and X.dtype == np.float32
    assert X.min() >= 0 and X.max() <= 255 and X.std() > 10
    np.testing.assert_array_equal(y, [int(r["true_idx"]) for r in rows])
    assert names == [r["name"] for r in rows]
    i = names.index("coffee_gray")  # derived variants really are transformed
    assert np.allclose(X[i, ..., 0], X[i, ..., 1], atol=1e-3)
    j, k = names.index("china"), names.index("china_flipud")
    np.testing.assert_allclose(X[k], X[j, ::-1], atol=1e-3)


def test_manifest_transform_errors(tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("name,package,relative_path,transform,true_idx,true_name,note\n"
                   "cat,skimage,data/chelsea.png,twirl,281,x,y\n")
    with pytest.raises(ValueError, match=r"row 0 \(cat\): unknown transform step 'twirl'"):
        u.load_samples(str(bad))
    bad.write_text("name,package,relative_path,transform,true_idx,true_name,note\n"
                   "cat,skimage,data/nothing.png,none,281,x,y\n")
    with pytest.raises(ValueError, match=r"row 0 \(cat\): path: .*no such file"):
        u.load_samples(str(bad))


@pytest.mark.slow
def test_bundled_sample_has_right_and_wrong_under_default_model(sample_data):
    X, y_true, y_pred, idx = sample_data
    n = len(u.read_manifest())
    assert X.shape == (n, 224, 224, 3) and X.dtype == np.float32
    np.testing.assert_array_equal(idx, np.arange(n))
    right = int((y_true == y_pred).sum())
    assert right >= 5 and n - right >= 5
    names = [r["name"] for r in u.read_manifest()]
    assert y_pred[names.index("coffee")] == 967  # espresso
    assert y_pred[names.index("china")] == 698  # palace


# ------------------------------------------------------------------ model choice

@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No weights anywhere: an empty working directory and no environment variable."""
    monkeypatch.delenv(u.VGG16_WEIGHTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_choice_without_vgg16_weights_is_the_default(clean_env):
    name, path, reason = u.choose_model()
    assert (name, path) == ("efficientnet_lite0", None)
    assert "not set" in reason and "vgg16_weights.npz (no such file)" in reason


def test_choice_order_argument_env_cwd(clean_env, monkeypatch):
    cwd_file = clean_env / "vgg16_weights.npz"
    cwd_file.write_bytes(b"x")
    assert u.choose_model()[:2] == ("vgg16", str(cwd_file))
    env_file = clean_env / "env.npz"
    env_file.write_bytes(b"x")
    monkeypatch.setenv(u.VGG16_WEIGHTS_ENV, str(env_file))
    assert u.choose_model()[:2] == ("vgg16", str(env_file))
    arg_file = clean_env / "arg.h5"
    arg_file.write_bytes(b"x")
    assert u.choose_model(weights=arg_file)[:2] == ("vgg16", str(arg_file))
    assert u.choose_model("VGG16")[:2] == ("vgg16", str(env_file))
    # An explicit default-model name ignores VGG16 weights lying around.
    assert u.choose_model("efficientnet_lite0")[:2] == ("efficientnet_lite0", None)


def test_choice_env_pointing_nowhere_falls_back(clean_env, monkeypatch, capsys):
    monkeypatch.setenv(u.VGG16_WEIGHTS_ENV, str(clean_env / "gone.npz"))
    assert u.choose_model()[0] == "efficientnet_lite0"
    assert "gone.npz" in capsys.readouterr().err


def test_vgg16_without_weights_says_where_it_looked(clean_env, sess):
    with pytest.raises(FileNotFoundError, match=r"^weights: no VGG16 weights found; looked "
                                                r"at .*HW3_VGG16_WEIGHTS.*vgg16_weights\.npz"
                                                r".*pass weights=PATH"):
        u.get_model(sess, "vgg16")
    with pytest.raises(FileNotFoundError, match=r"^weights: no such file .*nope\.npz"):
        u.get_model(sess, weights=str(clean_env / "nope.npz"))
    assert sess.graph.get_operations() == []  # nothing half-built


def test_unknown_model_name_lists_valid_names(sess):
    with pytest.raises(ValueError, match=r"^name: expected one of 'vgg16', "
                                         r"'efficientnet_lite0'.*got 'resnet50'"):
        u.get_model(sess, "resnet50")
    with pytest.raises(TypeError, match="^sess: expected a tf.compat.v1.Session"):
        u.get_model(None, "vgg16")


def test_choice_reaches_the_vgg16_loader(clean_env, sess, capsys):
    """A fake vgg16_weights.npz in the working directory: get_model() picks VGG16, and
    VGG16's loader (not a fallback) rejects the file."""
    pytest.importorskip("vgg16")
    np.savez(clean_env / "vgg16_weights.npz", conv1_1_W=np.zeros((3, 3, 3, 64), np.float32))
    with pytest.raises(ValueError, match="weights"):
        u.get_model(sess)
    assert "using vgg16" in capsys.readouterr().err


@pytest.mark.slow
def test_default_choice_builds_efficientnet(clean_env, sess, capsys):
    model = u.get_model(sess)
    assert model.name == "efficientnet_lite0"
    err = capsys.readouterr().err
    assert "using efficientnet_lite0 (no VGG16 weights found" in err


def test_get_tensor_names(sess):
    import tensorflow as tf
    a = tf.compat.v1.placeholder(tf.float32, [None, 2], name="a")
    tf.identity(a * 2.0, name="b")
    names = u.get_tensor_names()
    assert "a:0" in names and "b:0" in names
    assert len(names) == len(set(names))


def test_visualization_names_reexported():
    pytest.importorskip("visualization")
    for name in ("binary_mask", "point_cloud", "aggregate_attribution",
                 "normalize_attribution"):
        assert callable(getattr(u, name))


# ------------------------------------------------------------------ make_dataset

def _image_folder(root):
    """weasel/: 2 red images (one not square, one RGBA); sports_car/: 1 blue; 1/: gray."""
    for sub in ("weasel", "sports_car", "1", "empty"):
        (root / sub).mkdir(parents=True)
    red = np.zeros((60, 90, 3), np.uint8)
    red[..., 0] = 220
    _save(root / "weasel" / "a.png", red)
    rgba = np.zeros((50, 50, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 220, 255
    _save(root / "weasel" / "b.png", rgba)
    blue = np.zeros((80, 40, 3), np.uint8)
    blue[..., 2] = 220
    Image.fromarray(blue).save(root / "sports_car" / "c.jpg", quality=95)
    _save(root / "1" / "d.png", np.full((30, 30), 90, np.uint8))
    (root / "1" / "notes.txt").write_text("not an image")
    return root


def test_class_folder_names():
    assert make_dataset.class_index("weasel") == 356
    assert make_dataset.class_index("sports_car") == 817
    assert make_dataset.class_index("Arabian camel") == 354
    assert make_dataset.class_index("1") == 1
    with pytest.raises(ValueError, match=r"^folder: sub-folder 'crane' .*names 2"):
        make_dataset.class_index("crane")
    with pytest.raises(ValueError, match=r"^folder: sub-folder '1000' .*idx"):
        make_dataset.class_index("1000")
    with pytest.raises(ValueError, match=r"^folder: sub-folder 'wesel' .*'weasel'"):
        make_dataset.class_index("wesel")


def test_make_dataset_with_a_tiny_model_round_trips(tmp_path, sess):
    folder = _image_folder(tmp_path / "imgs")
    model = _red_blue_model()
    arrays = make_dataset.build_dataset(str(folder), model, sess)
    assert arrays["X"].dtype == np.uint8 and arrays["X"].shape == (4, 224, 224, 3)
    assert list(arrays["files"]) == ["1/d.png", "sports_car/c.jpg", "weasel/a.png",
                                     "weasel/b.png"]
    np.testing.assert_array_equal(arrays["y_true"], [1, 817, 356, 356])
    # By hand: gray has equal R and B (f0 = 0 = f1, argmax picks class 0), blue is class 1.
    np.testing.assert_array_equal(arrays["y_pred"], [0, 1, 0, 0])
    assert str(arrays["model"]) == "additive"
    out = tmp_path / "out" / "d.npz"
    out.parent.mkdir()
    make_dataset.write_npz(str(out), arrays)
    assert os.listdir(out.parent) == ["d.npz"]  # no temporary left behind
    X, y_true, y_pred, idx = u.load_ImageNet(out)
    np.testing.assert_array_equal(X, arrays["X"].astype(np.float32))
    np.testing.assert_array_equal(y_pred, arrays["y_pred"])
    np.testing.assert_array_equal(idx, np.arange(4))
    _, _, again, _ = u.load_ImageNet(out, model=model, sess=sess)
    np.testing.assert_array_equal(again, arrays["y_pred"])


def test_write_npz_is_atomic(tmp_path, monkeypatch):
    out = tmp_path / "d.npz"
    out.write_bytes(b"old")

    def fail(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez_compressed", fail)
    with pytest.raises(OSError, match="disk full"):
        make_dataset.write_npz(str(out), {"X": np.zeros(3)})
    assert os.listdir(tmp_path) == ["d.npz"] and out.read_bytes() == b"old"


def test_make_dataset_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="^folder: expected a directory"):
        make_dataset.collect(str(tmp_path / "missing"))
    (tmp_path / "weasel").mkdir()
    with pytest.raises(ValueError, match="^folder: no images"):
        make_dataset.collect(str(tmp_path))


def test_make_dataset_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        make_dataset.parse_args(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and "--out" in out and "--model" in out


@pytest.mark.slow
def test_make_dataset_end_to_end_with_the_default_model(tmp_path, clean_env, capsys):
    skimage_data = os.path.join(u._package_dir("skimage"), "data")
    for sub, file in (("espresso", "coffee.png"), ("tabby", "chelsea.png")):
        (tmp_path / "imgs" / sub).mkdir(parents=True)
        Image.open(os.path.join(skimage_data, file)).save(tmp_path / "imgs" / sub / file)
    out = tmp_path / "data.npz"
    assert make_dataset.main([str(tmp_path / "imgs"), "--out", str(out),
                              "--model", "efficientnet_lite0"]) == 0
    assert "wrote" in capsys.readouterr().out
    X, y_true, y_pred, idx = u.load_ImageNet(out)
    np.testing.assert_array_equal(y_true, [967, 281])
    assert y_pred[0] == 967 and y_pred[1] in (281, 282, 285)  # espresso; a cat
