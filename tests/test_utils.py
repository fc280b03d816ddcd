"""Tests of hw3_utils (the course's helper API and the extensions) and make_dataset."""
import io
import os
import zipfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import hw3_utils as u
import imagenet_classes
import make_dataset
import models
from course_standins import load_course_utils

tf1 = tf.compat.v1
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------- the course's code, transcribed
# The course's hw3_utils.py functions as the course has them, from the stand-in of the
# course's file (course/hw3_utils.py), so that ours can be compared with them value for
# value.
course = load_course_utils()
course_binary_mask = course.binary_mask
course_point_cloud = course.point_cloud
course_get_tensor_names = course.get_tensor_names


# ------------------------------------------------------------------------- names

EXAMPLES = [("Arabian camel, dromedary, Camelus dromedarius", 354), ("weasel", 356),
            ("goldfish, Carassius auratus", 1), ("sports car, sport car", 817)]


@pytest.mark.parametrize("name, idx", EXAMPLES)
def test_name_examples_both_ways(name, idx):
    assert u.ImageNet_name2idx(name) == idx
    assert u.ImageNet_idx2name(idx) == name
    assert u.ImageNet_idx2name(np.int64(idx)) == name


def test_class_names_come_from_imagenet_classes():
    assert u.class_names is imagenet_classes.class_names
    assert len(u.class_names) == 1000 and all(isinstance(n, str) for n in u.class_names)
    assert u.class_names[0] == "tench, Tinca tinca"
    assert u.class_names[354] == "Arabian camel, dromedary, Camelus dromedarius"
    assert u.class_names[999] == "toilet tissue, toilet paper, bathroom tissue"
    assert len(set(u.class_names)) == 999  # only 'crane' (134 bird, 517 machine) repeats
    assert [i for i, n in enumerate(u.class_names) if n == "crane"] == [134, 517]
    # The single source: no other copy of the names in the repository.
    assert not os.path.exists(os.path.join(ROOT, "data", "imagenet_classes.txt"))
    assert not hasattr(u, "CLASSES_FILE")


def test_exact_names_give_the_course_answer_for_all_1000():
    for i, name in enumerate(u.class_names):
        assert u.ImageNet_name2idx(name) == u.class_names.index(name), name
        assert u.ImageNet_idx2name(i) == u.class_names[i]


@pytest.mark.parametrize("name, idx", [
    ("DROMEDARY", 354), ("  Sport   CAR ", 817), ("goldfish,carassius  auratus", 1),
    ("camelus dromedarius", 354), ("Weasel", 356),
    ("maillot", 638), ("MAILLOT", 638),  # the full name wins over 639's synonym 'maillot'
    ("missile", 657)])  # likewise over 744 'projectile, missile'
def test_name_synonyms_case_and_whitespace(name, idx):
    assert u.ImageNet_name2idx(name) == idx


def test_ambiguous_name_lists_candidates():
    assert u.ImageNet_name2idx("crane") == 134  # exact: class_names.index, as the course
    with pytest.raises(ValueError, match=r"^name: 'Crane' names 2 .*134 .*517"):
        u.ImageNet_name2idx("Crane")
    with pytest.raises(ValueError, match=r"^name: 'crane' names 2 .*134 .*517"):
        u.ImageNet_name2idx("crane", strict=True)
    with pytest.raises(ValueError, match=r"names 2 .*286 .*287"):
        u.ImageNet_name2idx("catamount")  # a synonym of cougar and of lynx
    assert u.ImageNet_name2idx("weasel", strict=True) == 356


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


def test_class_file_generator_on_a_small_wheel(tmp_path):
    """data/make_imagenet_classes.py on a stand-in wheel with three classes."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "make_imagenet_classes", os.path.join(ROOT, "data", "make_imagenet_classes.py"))
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    wheel = tmp_path / "timm-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("timm/data/_info/imagenet_synsets.txt", "n2\nn1\nn3\n")
        z.writestr("timm/data/_info/imagenet_synset_to_lemma.txt",
                   "n1\tcrane\nn2\tjack-o'-lantern\nn3\ta \"quoted\" name\n")
    with pytest.raises(ValueError, match="expected 1000 synsets .* found 3"):
        gen.main(str(wheel), str(tmp_path / "out.py"))
    names = gen.class_names_from_wheel(str(wheel), expected=3)
    assert names == ["jack-o'-lantern", "crane", 'a "quoted" name']  # in synset order
    out = tmp_path / "classes3.py"
    gen.write_module(names, str(out), "test.whl")
    ns = {}
    exec(out.read_text(encoding="utf-8"), ns)
    assert ns["class_names"] == names
    assert sorted(os.listdir(tmp_path)) == ["classes3.py", wheel.name]  # no temporary
    assert gen.OUT == os.path.join(ROOT, "imagenet_classes.py")


# ------------------------------------------------------- binary_mask and point_cloud

def _mask_inputs(seed, n=2, h=6, w=7, x_dtype=np.float32, a_dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 255, (n, h, w, 3)).astype(x_dtype)
    attr = rng.normal(size=(n, h, w, 3)).astype(a_dtype)
    return X, attr


@pytest.mark.parametrize("kwargs", [
    {}, {"threshold": 0.0}, {"threshold": 0.5, "background": 0.0}, {"threshold": -0.1},
    {"threshold": 1.5}, {"norm": False}, {"norm": False, "threshold": 0.7},
    {"blur": 1}, {"blur": 2.5, "threshold": 0.3, "background": 0.5},
    {"background": 1.0}, {"threshold": np.float64(0.2)}, {"threshold": np.float32(0.25)}])
@pytest.mark.parametrize("dtypes", [(np.float32, np.float32), (np.uint8, np.float64),
                                    (np.float64, np.float32)])
def test_binary_mask_equals_the_course(kwargs, dtypes):
    for seed in range(3):
        X, attr = _mask_inputs(seed, x_dtype=dtypes[0], a_dtype=dtypes[1])
        expected = course_binary_mask(X.copy(), attr.copy(), **kwargs)
        ours = u.binary_mask(X, attr, **kwargs)
        assert ours.dtype == np.uint8 and ours.shape == X.shape
        np.testing.assert_array_equal(ours, expected)


def test_binary_mask_by_hand():
    X = np.full((1, 2, 2, 3), 100.0)
    X[0, 0, 0] = 200.0
    attr = np.zeros((1, 2, 2, 3))
    attr[0, 0, 0] = 3.0   # channel mean 3 -> normalised 1 (kept)
    attr[0, 1, 1] = 0.3   # mean 0.3 -> 0.1 <= 0.2 (background)
    out = u.binary_mask(X, attr, threshold=0.2, background=0.5)
    # kept pixel 200 * 1 = 200 is the maximum, so it maps to 255; the others are
    # 100 * 0.5 = 50 -> 255 * 50 / 200 = 63.75 -> 63.
    expected = np.full((1, 2, 2, 3), 63, np.uint8)
    expected[0, 0, 0] = 254  # 255 * 200 / (200 + 1e-9) truncates to 254
    np.testing.assert_array_equal(out, expected)


def test_binary_mask_channel_first_is_the_transposed_channel_last():
    X, attr = _mask_inputs(4)
    cf = u.binary_mask(X.transpose(0, 3, 1, 2), attr.transpose(0, 3, 1, 2),
                       channel_first=True, blur=1)
    np.testing.assert_array_equal(cf, u.binary_mask(X, attr, blur=1))
    assert cf.shape == X.shape  # the result is channels-last, as the course's


def test_binary_mask_accepts_one_channel_attribution_and_lists():
    X, attr = _mask_inputs(5)
    one = attr.mean(axis=-1, keepdims=True)
    np.testing.assert_array_equal(u.binary_mask(X, one), u.binary_mask(X, attr))
    expected = course_binary_mask(X.astype(np.float64), attr.astype(np.float64))
    np.testing.assert_array_equal(u.binary_mask(X.tolist(), attr.tolist()), expected)


def test_binary_mask_and_point_cloud_never_modify_their_inputs():
    X, attr = _mask_inputs(6)
    X0, attr0 = X.copy(), attr.copy()
    u.binary_mask(X, attr, blur=1, background=0.0)
    u.binary_mask(X, attr, norm=False, threshold=-1.0)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(attr, attr0)
    maps = attr[..., 0].copy()                 # [N, H, W]: the course's works in place
    maps0 = maps.copy()
    out = u.point_cloud(maps, threshold=0.1)
    np.testing.assert_array_equal(maps, maps0)
    assert out is not maps and not np.shares_memory(out, maps)
    course = course_point_cloud(maps, threshold=0.1)
    assert not np.array_equal(maps, maps0)     # ... as this shows
    np.testing.assert_array_equal(out, course)
    u.point_cloud(attr)
    np.testing.assert_array_equal(attr, attr0)


@pytest.mark.parametrize("threshold", [None, 0.0, 0.3, -0.5, np.float64(0.1), 2])
@pytest.mark.parametrize("shape", [(2, 5, 6, 3), (3, 5, 6), (1, 4, 4, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_point_cloud_equals_the_course(threshold, shape, dtype):
    grads = np.random.default_rng(1).normal(size=shape).astype(dtype)
    ours = u.point_cloud(grads, threshold)
    expected = course_point_cloud(grads.copy(), threshold)
    assert ours.dtype == expected.dtype and ours.shape == shape[:3]
    np.testing.assert_array_equal(ours, expected)


def test_point_cloud_by_hand_and_integer_input():
    grads = np.array([[[1.0, 2.0], [4.0, -1.0]]])           # [1, 2, 2]
    np.testing.assert_allclose(u.point_cloud(grads), [[[0.25, 0.5], [1.0, -0.25]]])
    np.testing.assert_allclose(u.point_cloud(grads, threshold=1.5),
                               [[[0.0, 0.5], [1.0, 0.0]]])
    ints = np.array([[[1, 2], [4, 0]]])
    out = u.point_cloud(ints)  # the course's raises on an in-place float division
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, [[[0.25, 0.5], [1.0, 0.0]]])
    rgb = np.stack([grads, 2 * grads, 3 * grads], axis=-1)  # channel mean is 2 * grads
    np.testing.assert_allclose(u.point_cloud(rgb), u.point_cloud(grads), rtol=1e-9)


def test_binary_mask_errors_name_the_argument():
    X, attr = _mask_inputs(7)
    with pytest.raises(ValueError, match=r"^attr: expected an attribution map with 4 "
                                         r"dimensions \[N, H, W, C\], got shape \(6, 7, 3\)"):
        u.binary_mask(X[0], attr[0])
    with pytest.raises(ValueError, match=r"^X: expected a non-empty batch of images with 4 "
                                         r"dimensions"):
        u.binary_mask(X[0], attr)
    with pytest.raises(ValueError, match=r"^attr: expected the images' batch size, height and "
                                         r"width \(2, 6, 7\).*got shape \(2, 6, 6, 3\)"):
        u.binary_mask(X, attr[:, :, :6])
    with pytest.raises(ValueError, match=r"^attr: .*layout \[N, C, H, W\]"):
        u.binary_mask(X.transpose(0, 3, 1, 2), attr, channel_first=True)
    bad = attr.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="^attr: expected finite values, got 1 NaN or inf"):
        u.binary_mask(X, bad)
    with pytest.raises(TypeError, match="^X: expected a numeric array, got dtype <U1"):
        u.binary_mask(np.full(X.shape, "a"), attr)
    with pytest.raises(TypeError, match="^attr: expected a numeric array, got str"):
        u.binary_mask(X, "saliency")
    for arg, value in (("threshold", "high"), ("threshold", True), ("background", None),
                       ("threshold", float("nan"))):
        with pytest.raises(ValueError, match=f"^{arg}: expected a real number, got"):
            u.binary_mask(X, attr, **{arg: value})
    with pytest.raises(ValueError, match=r"^blur: expected a number >= 0"):
        u.binary_mask(X, attr, blur=-1)
    with pytest.raises(ValueError, match="^channel_first: expected True or False, got 'yes'"):
        u.binary_mask(X, attr, channel_first="yes")
    with pytest.raises(ValueError, match="^norm: expected True or False"):
        u.binary_mask(X, attr, norm=None)


def test_point_cloud_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"^grads: expected a batch of maps \[N, H, W, C\] "
                                         r"or \[N, H, W\].*got shape \(4, 4\)"):
        u.point_cloud(np.ones((4, 4)))
    with pytest.raises(ValueError, match=r"^grads: .*got shape \(2, 0, 4\)"):
        u.point_cloud(np.ones((2, 0, 4)))
    with pytest.raises(ValueError, match="^grads: expected finite values"):
        u.point_cloud(np.array([[[np.inf]]]))
    with pytest.raises(TypeError, match="^grads: expected a numeric array"):
        u.point_cloud(np.array([[["a"]]]))
    with pytest.raises(ValueError, match="^threshold: expected None or a real number, got 'x'"):
        u.point_cloud(np.ones((1, 2, 2)), threshold="x")


# ------------------------------------------------------------ images: Keras 2's API

def _save(path, arr, mode=None):
    Image.fromarray(arr, mode).save(path) if mode else Image.fromarray(arr).save(path)
    return str(path)


def _rgba_file(tmp_path):
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0] = 90
    rgba[:2, :, 3] = 255  # top half opaque, bottom transparent (its RGB is still 90, 0, 0)
    return _save(tmp_path / "t.png", rgba)


def test_load_img_is_keras(tmp_path):
    import keras
    rng = np.random.RandomState(0)
    rgb = _save(tmp_path / "a.png", rng.randint(0, 256, (20, 30, 3)).astype(np.uint8))
    gray = _save(tmp_path / "g.png", rng.randint(0, 256, (20, 30)).astype(np.uint8))
    rgba = _rgba_file(tmp_path)
    cases = [{}, {"color_mode": "rgba"}, {"color_mode": "grayscale"},
             {"target_size": (10, 12)}, {"target_size": (40, 25), "interpolation": "bilinear"},
             {"target_size": (9, 9), "interpolation": "bicubic", "keep_aspect_ratio": True},
             {"target_size": (20, 10), "interpolation": "lanczos", "keep_aspect_ratio": True},
             {"target_size": (7, 11), "interpolation": "box"}]
    for path in (rgb, gray, rgba):
        for kwargs in cases:
            ours = u.load_img(path, **kwargs)
            ref = keras.utils.load_img(path, **kwargs)
            assert isinstance(ours, Image.Image) and ours.mode == ref.mode, (path, kwargs)
            np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))
    # Keras' 'rgb' drops transparency (no compositing onto white, unlike load_rgb_image).
    assert (np.asarray(u.load_img(rgba)) == [90, 0, 0]).all()
    from pathlib import Path
    np.testing.assert_array_equal(np.asarray(u.load_img(Path(rgb))),
                                  np.asarray(u.load_img(rgb)))
    with open(rgb, "rb") as f:
        np.testing.assert_array_equal(np.asarray(u.load_img(io.BytesIO(f.read()))),
                                      np.asarray(u.load_img(rgb)))


def test_load_img_grayscale_flag_is_deprecated_as_in_keras_2(tmp_path):
    path = _save(tmp_path / "a.png", np.full((5, 5, 3), 100, np.uint8))
    with pytest.warns(UserWarning, match="grayscale is deprecated"):
        img = u.load_img(path, grayscale=True)
    assert img.mode == "L"
    # The course calls it positionally too: load_img(path, False, 'rgb', (224, 224)).
    assert u.load_img(path, False, "rgb", (3, 4)).size == (4, 3)


def test_load_img_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="^path: .*no such file"):
        u.load_img(tmp_path / "missing.png")
    with pytest.raises(TypeError, match="^path: expected a path to an image file or an "
                                        "io.BytesIO, got 'ndarray'"):
        u.load_img(np.zeros((4, 4, 3)))
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(ValueError, match="^path: cannot read"):
        u.load_img(tmp_path / "x.png")
    ok = _save(tmp_path / "ok.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="^color_mode: expected one of 'rgb', 'rgba', "
                                         "'grayscale', got 'bgr'"):
        u.load_img(ok, color_mode="bgr")
    with pytest.raises(ValueError, match="^interpolation: expected one of 'nearest'"):
        u.load_img(ok, target_size=(2, 2), interpolation="cubic")
    for bad in (0, (3,), (2, -1), True, 2.5):
        with pytest.raises(ValueError, match="^target_size: expected a positive int"):
            u.load_img(ok, target_size=bad)


def test_img_to_array_is_keras(tmp_path):
    import keras
    rng = np.random.RandomState(1)
    rgb = Image.fromarray(rng.randint(0, 256, (5, 7, 3)).astype(np.uint8))
    gray = rgb.convert("L")
    rgba = rgb.convert("RGBA")
    for img in (rgb, gray, rgba, np.arange(6.0).reshape(2, 3)):
        for kwargs in ({}, {"data_format": "channels_first"}, {"dtype": "uint8"},
                       {"data_format": "channels_last", "dtype": np.float64}):
            ours = u.img_to_array(img, **kwargs)
            ref = keras.utils.img_to_array(img, **kwargs)
            assert ours.dtype == ref.dtype and ours.shape == ref.shape
            np.testing.assert_array_equal(ours, ref)
    assert u.img_to_array(rgb).dtype == np.float32 and u.img_to_array(rgb).shape == (5, 7, 3)
    assert u.img_to_array(gray).shape == (5, 7, 1)


def test_img_to_array_errors():
    with pytest.raises(ValueError, match=r"^img: expected an image \[H, W\] or \[H, W, C\], "
                                         r"got shape \[1, 5, 6, 3\]"):
        u.img_to_array(np.zeros((1, 5, 6, 3)))
    with pytest.raises(TypeError, match="^img: expected a PIL image or a numeric array"):
        u.img_to_array("photo.png")
    with pytest.raises(ValueError, match="^data_format: expected one of 'channels_last', "
                                         "'channels_first', got 'NHWC'"):
        u.img_to_array(np.zeros((2, 2)), data_format="NHWC")


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "bicubic", "area"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_resize_images_is_keras_on_tensors_and_arrays(sess, interpolation, data_format):
    from tensorflow.keras.backend import resize_images as keras_resize_images
    x = np.random.RandomState(2).uniform(0, 255, (2, 4, 5, 3)).astype(np.float32)
    if data_format == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    ph = tf1.placeholder(tf.float32, [None] + list(x.shape[1:]))
    ref = keras_resize_images(ph, 2, 3, data_format, interpolation)
    ours = u.resize_images(ph, 2, 3, data_format, interpolation)
    assert isinstance(ours, tf.Tensor)
    ref_v, ours_v = sess.run([ref, ours], {ph: x})
    np.testing.assert_array_equal(ours_v, ref_v)
    arr = u.resize_images(x, 2, 3, data_format, interpolation)  # numpy in, numpy out
    assert isinstance(arr, np.ndarray)
    np.testing.assert_array_equal(arr, ref_v)


def test_resize_images_nearest_repeats_pixels_by_hand():
    x = np.arange(4, dtype=np.uint8).reshape(1, 2, 2, 1)
    out = u.resize_images(x, 2, 1, "channels_last")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, ..., 0], [[0, 1], [0, 1], [2, 3], [2, 3]])
    assert u.resize_images(x, 1.0, 3, "channels_last").shape == (1, 2, 6, 1)


def test_resize_images_errors():
    x = np.zeros((1, 2, 2, 3))
    for factor in (0, -1, 1.5, True, "2", None):
        with pytest.raises(ValueError, match="^height_factor: expected a positive integer"):
            u.resize_images(x, factor, 1, "channels_last")
    with pytest.raises(ValueError, match="^width_factor: expected a positive integer"):
        u.resize_images(x, 1, 0, "channels_last")
    with pytest.raises(ValueError, match="^data_format: expected one of"):
        u.resize_images(x, 2, 2, None)
    with pytest.raises(ValueError, match="^interpolation: expected one of .*'lanczos3'"):
        u.resize_images(x, 2, 2, "channels_last", "lanczos")
    with pytest.raises(ValueError, match=r"^x: expected a non-empty 4-D batch \(\[N, H, W, "
                                         r"C\]\), got shape \[2, 2, 3\]"):
        u.resize_images(x[0], 2, 2, "channels_last")
    with pytest.raises(TypeError, match="^x: expected a numeric"):
        u.resize_images(np.zeros((1, 2, 2, 3), bool), 2, 2, "channels_last")


# ------------------------------------------------------ images: the project's helpers

def test_load_rgb_image_rgb_gray_and_transparent(tmp_path):
    rgb = np.random.RandomState(0).randint(0, 256, (20, 30, 3)).astype(np.uint8)
    img = u.load_rgb_image(_save(tmp_path / "a.png", rgb))
    assert img.mode == "RGB" and img.size == (30, 20)
    np.testing.assert_array_equal(u.to_rgb_array(img), rgb.astype(np.float32))
    gray = u.to_rgb_array(u.load_rgb_image(_save(tmp_path / "g.png", rgb[..., 0])))
    np.testing.assert_array_equal(gray, np.repeat(rgb[..., :1], 3, -1))
    arr = u.to_rgb_array(u.load_rgb_image(_rgba_file(tmp_path)))
    assert (arr[:2] == [90, 0, 0]).all() and (arr[2:] == 255).all()  # onto white


def test_load_rgb_image_size(tmp_path):
    path = _save(tmp_path / "a.png", np.full((40, 60, 3), 77, np.uint8))
    assert u.load_rgb_image(path, size=(10, 20)).size == (20, 10)  # (height, width)
    arr = u.to_rgb_array(u.load_rgb_image(path, size=8))
    assert arr.shape == (8, 8, 3) and (arr == 77).all()


def test_load_rgb_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="^path: .*no such file"):
        u.load_rgb_image(tmp_path / "missing.png")
    with pytest.raises(TypeError, match="^path: expected a path.*ndarray"):
        u.load_rgb_image(np.zeros((4, 4, 3)))
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(ValueError, match="^path: cannot read"):
        u.load_rgb_image(tmp_path / "x.png")
    deep = _save(tmp_path / "d.png", np.full((4, 4), 40000, np.uint16))
    with pytest.raises(ValueError, match="^path: expected an 8-bit image.*'I;16'"):
        u.load_rgb_image(deep)
    ok = _save(tmp_path / "ok.png", np.zeros((4, 4, 3), np.uint8))
    for bad in (0, (3,), (2, -1), True, 2.5):
        with pytest.raises(ValueError, match="^size: expected a positive int"):
            u.load_rgb_image(ok, size=bad)


def test_to_rgb_array_shapes_and_errors():
    assert u.to_rgb_array(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    out = u.to_rgb_array(np.ones((5, 6, 1), np.uint8))
    assert out.dtype == np.float32 and out.shape == (5, 6, 3)
    with pytest.raises(ValueError, match=r"^img: expected an image .*got shape \[5, 6, 4\]"):
        u.to_rgb_array(np.zeros((5, 6, 4)))
    with pytest.raises(TypeError, match="^img: expected a numeric .*dtype <U1"):
        u.to_rgb_array(np.full((5, 6, 3), "a"))
    with pytest.raises(TypeError, match="^img: expected a PIL image or a numeric array"):
        u.to_rgb_array("photo.png")


def test_resize_to_values_and_shapes():
    rng = np.random.RandomState(1)
    batch = rng.uniform(0, 255, (2, 12, 16, 3)).astype(np.float32)
    np.testing.assert_array_equal(u.resize_to(batch, (12, 16)), batch)  # no-op
    out = u.resize_to(batch, 6)
    assert out.shape == (2, 6, 6, 3) and out.dtype == np.float32
    # Bilinear: a convex combination of the inputs, so the range cannot grow.
    assert out.min() >= batch.min() - 1e-3 and out.max() <= batch.max() + 1e-3
    const = np.full((9, 7, 2), 42, np.uint8)  # any channel count; constants stay constant
    np.testing.assert_allclose(u.resize_to(const, (4, 11)), 42, atol=1e-4)
    # A horizontal ramp stays a monotone ramp with the same mean.
    ramp = np.tile(np.arange(32, dtype=np.float32), (8, 1))[..., None]
    small = u.resize_to(ramp, (8, 8))[0, :, 0]
    assert np.all(np.diff(small) > 0) and abs(small.mean() - ramp.mean()) < 1e-3
    single = u.resize_to(batch[0], (3, 4))
    np.testing.assert_array_equal(single, u.resize_to(batch, (3, 4))[0])


def test_resize_to_errors():
    with pytest.raises(ValueError, match=r"^images: expected a batch .*got shape \[5, 5\]"):
        u.resize_to(np.zeros((5, 5)), 3)
    with pytest.raises(ValueError, match=r"^images: .*got shape \[0, 5, 5, 3\]"):
        u.resize_to(np.zeros((0, 5, 5, 3)), 3)
    with pytest.raises(TypeError, match="^images: expected a numeric"):
        u.resize_to(np.zeros((5, 5, 3), bool), 3)
    with pytest.raises(TypeError, match="^images: expected a numeric"):
        u.resize_to(np.array([["a"]], dtype=object), 3)
    bad = np.zeros((5, 5, 3))
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="^images: expected finite"):
        u.resize_to(bad, 3)
    for size in (0, -2, (3,), (3, 0), (3, 4, 5), "224", True):
        with pytest.raises(ValueError, match="^size: expected a positive int"):
            u.resize_to(np.zeros((5, 5, 3)), size)


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


def test_domains_is_the_course_namedtuple():
    assert u.Domains._fields == ("X", "Y", "Pred", "Idx")
    d = u.Domains(1, 2, 3, 4)
    X, y, pred, idx = d
    assert (X, y, pred, idx) == (1, 2, 3, 4) and d.Pred == 3


@pytest.mark.parametrize("keys", [
    ("X", "Y", "Pred", "Idx"),  # the course's file
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
    data = u.load_ImageNet(tmp_path / "d.npz")
    assert isinstance(data, u.Domains)
    Xo, y_true, y_pred, idx = data
    assert data.X is Xo and data.Y is y_true and data.Pred is y_pred and data.Idx is idx
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
    with pytest.raises(ValueError, match=r"^path: key 'X' of .*obj.npz': expected a numeric "
                                         r"array, got Python objects .*never unpickled"):
        u.load_ImageNet(tmp_path / "obj.npz")               # and no allow_pickle advice
    with pytest.raises(FileNotFoundError, match="^path: no such file"):
        u.load_ImageNet(tmp_path / "missing.npz")
    with pytest.raises(TypeError, match="^path: expected a path to an .npz file, 'bundled' "
                                        "or None, got int"):
        u.load_ImageNet(3)
    with pytest.raises(ValueError, match="^model, sess: give both"):
        u.load_ImageNet(tmp_path / "short.npz", model=_red_blue_model())
    with pytest.raises(ValueError, match="^model, sess: give both"):
        u.load_ImageNet(sess=sess)


def _sha(path):
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name, content, message", [
    ("random.npz", bytes(range(256)) * 8,
     r"^path: '.*random.npz' is not an .npz archive \(it does not start as a zip file"),
    ("text.npz", b"X,Y\n1,2\n", r"^path: '.*text.npz' is not an .npz archive"),
    ("empty.npz", b"", r"^path: '.*empty.npz' is not an .npz archive"),
])
def test_a_file_that_is_not_an_npz_is_named_as_such(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as err:
        u.load_ImageNet(path)
    assert "allow_pickle" not in str(err.value)
    assert path.read_bytes() == content


def test_a_truncated_npz_is_named_and_its_file_closed(tmp_path):
    import gc
    import warnings
    np.savez(tmp_path / "whole.npz", X=_images(), y=np.arange(3))
    data = (tmp_path / "whole.npz").read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[:len(data) // 2])
    before = _sha(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)    # a file left open would warn
        with pytest.raises(ValueError, match=r"^path: '.*cut.npz' is not an .npz archive "
                                             r"\((BadZipFile|EOFError|OSError|key)"):
            u.load_ImageNet(path)
        gc.collect()
    assert _sha(path) == before


@pytest.mark.parametrize("labels, message", [
    (np.array([5000, 3, 1]), r"key 'y' of .*: expected class indices \[0, 1000\), got 1 "
                             r"outside it, e.g. \[5000\]"),
    (np.array([-3, 3, 1]), r"key 'y' of .*: expected class indices \[0, 1000\), got 1 "
                           r"outside it, e.g. \[-3\]"),
])
def test_labels_outside_the_classes_are_refused(tmp_path, labels, message):
    np.savez(tmp_path / "d.npz", X=_images(), y=labels)
    with pytest.raises(ValueError, match="^path: " + message):
        u.load_ImageNet(tmp_path / "d.npz")
    np.savez(tmp_path / "p.npz", X=_images(), y=np.arange(3), pred=labels)
    with pytest.raises(ValueError, match=r"^path: key 'pred' of .*class indices"):
        u.load_ImageNet(tmp_path / "p.npz")


def test_bad_pixels_are_named_under_the_files_key(tmp_path):
    X = _images().astype(np.float64)
    X[0, 0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", X=X, y=np.arange(3))
    with pytest.raises(ValueError, match=r"^path: key 'X' of .*: expected finite pixel "
                                         r"values, got 1 NaN or inf entries"):
        u.load_ImageNet(tmp_path / "nan.npz")
    X[0, 0, 0, 0] = 1e300                                   # finite, beyond float32
    np.savez(tmp_path / "big.npz", X=X, y=np.arange(3))
    with pytest.raises(ValueError, match=r"^path: key 'X' of .*: expected pixel values in "
                                         r"float32's range \(RGB 0-255\), got values up to "
                                         r"1e\+300"):
        u.load_ImageNet(tmp_path / "big.npz")
    np.savez(tmp_path / "complex.npz", X=_images() + 1j, y=np.arange(3))
    with pytest.raises(ValueError, match=r"^path: key 'X' .*numeric images .*complex"):
        u.load_ImageNet(tmp_path / "complex.npz")


def test_a_folder_is_not_called_missing(tmp_path):
    with pytest.raises(ValueError, match=r"^path: expected an .npz file, got the folder "):
        u.load_ImageNet(tmp_path)


def test_read_npz_names_the_option_it_is_given(tmp_path):
    (tmp_path / "t.npz").write_text("not a zip")
    with pytest.raises(ValueError, match=r"^--data: '.*t.npz' is not an .npz archive"):
        u.read_npz(str(tmp_path / "t.npz"), arg="--data")
    np.savez(tmp_path / "d.npz", X=_images(), y=np.arange(3))
    d = u.read_npz(str(tmp_path / "d.npz"), arg="--data")
    assert d.Pred is None and d.X.shape == (3, 224, 224, 3)   # no model: no predictions


def _course_file(folder, label):
    """A small course-style file whose labels say which folder it is in."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / u.COURSE_DATA_FILE, X=_images(2), Y=np.array([label, label]),
             Pred=np.array([label, 0]), Idx=np.array([7, 8]))
    return folder / u.COURSE_DATA_FILE


@pytest.fixture
def deep_cwd(tmp_path, monkeypatch):
    """Work in tmp/a/b/c, so that '..' is tmp/a/b and '../..' is tmp/a."""
    cwd = tmp_path / "a" / "b" / "c"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    return cwd


def test_course_data_search_order(deep_cwd, sess, capsys, monkeypatch):
    assert u.COURSE_DATA_DIRS == (".", "..", "../..", "/autograder/source/tests")
    assert u.COURSE_DATA_FILE == "imagenet_14c_vgg16.npz"
    autograder = deep_cwd.parents[2] / "autograder"
    monkeypatch.setattr(u, "COURSE_DATA_DIRS", u.COURSE_DATA_DIRS[:3] + (str(autograder),))
    model = _red_blue_model()
    # Nothing anywhere: the bundled sample, predicted by the model given.
    data = u.load_ImageNet(model=model, sess=sess)
    n = len(u.read_manifest())
    assert data.X.shape == (n, 224, 224, 3)
    np.testing.assert_array_equal(data.Idx, np.arange(n))
    assert "using the bundled sample" in capsys.readouterr().err
    # Each file found shadows the ones after it: autograder < ../.. < .. < .
    for label, folder, entry in ((4, autograder, str(autograder)),
                                 (3, deep_cwd.parents[1], "../.."),
                                 (2, deep_cwd.parent, ".."), (1, deep_cwd, ".")):
        _course_file(folder, label)
        assert u.find_course_data() == os.path.join(entry, u.COURSE_DATA_FILE)
        X, y, pred, idx = u.load_ImageNet()
        np.testing.assert_array_equal(y, [label, label])
        np.testing.assert_array_equal(pred, [label, 0])  # the stored predictions
        np.testing.assert_array_equal(idx, [7, 8])
        np.testing.assert_array_equal(X, _images(2))
        assert "reading the course's data " + entry in capsys.readouterr().err


def test_course_data_unreadable_or_directory_is_skipped(deep_cwd, monkeypatch):
    _course_file(deep_cwd.parents[1], 3)                   # ../..
    (deep_cwd / u.COURSE_DATA_FILE).mkdir()                 # . : a directory, not a file
    _course_file(deep_cwd.parent, 2)                        # .. : unreadable, below
    real_access = os.access

    def access(path, mode):
        if os.path.abspath(path) == str(deep_cwd.parent / u.COURSE_DATA_FILE):
            return False
        return real_access(path, mode)
    monkeypatch.setattr(u.os, "access", access)
    assert u.find_course_data() == os.path.join("../..", u.COURSE_DATA_FILE)
    np.testing.assert_array_equal(u.load_ImageNet().Y, [3, 3])


def test_bundled_asks_for_the_sample_whatever_lies_around(deep_cwd, sess):
    _course_file(deep_cwd, 1)
    model = _red_blue_model()
    assert u.BUNDLED == "bundled"
    X, y, pred, idx = u.load_ImageNet("bundled", model=model, sess=sess)
    Xs, ys, _ = u.load_samples()
    np.testing.assert_array_equal(X, Xs)
    np.testing.assert_array_equal(y, ys)
    np.testing.assert_array_equal(pred, u.predict(model, sess, Xs))
    np.testing.assert_array_equal(idx, np.arange(len(Xs)))
    # A file really called 'bundled' is read through a path that says so.
    np.savez(deep_cwd / "bundled.npz", X=_images(1), y=[5])
    os.replace(deep_cwd / "bundled.npz", deep_cwd / "bundled")
    np.testing.assert_array_equal(u.load_ImageNet("./bundled").Y, [5])


def test_manifest_rows_are_consistent():
    rows = u.read_manifest()
    assert 14 <= len(rows) <= 20
    assert len({r["name"] for r in rows}) == len(rows)
    for r in rows:
        assert u.ImageNet_idx2name(int(r["true_idx"])) == r["true_name"], r["name"]
        assert r["note"].startswith("derived") == (r["transform"] != "none"), r["name"]


# Per-image mean, standard deviation and one pixel of the bundled sample, recorded when the
# image helpers were renamed: the photographs must not change.
SAMPLE_MEANS = [112.276, 92.5541, 96.8165, 71.8314, 71.8314, 171.7736, 129.0602, 129.0602,
                115.9859, 115.9818, 159.927, 145.8218, 84.404, 84.404, 144.0842, 144.0842,
                71.64]
SAMPLE_STDS = [42.528, 77.0514, 61.3572, 33.8808, 33.8808, 54.9326, 72.478, 72.478,
               61.5383, 61.5468, 121.5582, 22.5587, 73.851, 73.851, 82.637, 82.637, 68.6255]
SAMPLE_PIXEL = [194.3543, 235.952, 165.468, 121.1728, 175.225, 1.0, 9.0837, 18.4309,
                211.6743, 22.0581, 0.0, 214.5996, 198.339, 177.7784, 224.1373, 164.7423,
                206.5945]


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
    X64 = X.astype(np.float64)
    np.testing.assert_allclose(X64.mean(axis=(1, 2, 3)), SAMPLE_MEANS, atol=1e-3)
    np.testing.assert_allclose(X64.std(axis=(1, 2, 3)), SAMPLE_STDS, atol=1e-3)
    np.testing.assert_allclose(X64[:, 100, 117, 0], SAMPLE_PIXEL, atol=1e-3)


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
def test_bundled_sample_has_right_and_wrong_under_default_model(default_model):
    model, session = default_model
    with session.graph.as_default():
        X, y_true, y_pred, idx = u.load_ImageNet("bundled", model=model, sess=session)
    n = len(u.read_manifest())
    assert X.shape == (n, 224, 224, 3) and X.dtype == np.float32
    np.testing.assert_array_equal(idx, np.arange(n))
    right = int((y_true == y_pred).sum())
    assert right >= 5 and n - right >= 5
    names = [r["name"] for r in u.read_manifest()]
    assert y_pred[names.index("coffee")] == 967  # espresso
    assert y_pred[names.index("china")] == 698  # palace


# ------------------------------------------------------------------ model choice

def test_choice_without_vgg16_weights_is_the_default(no_weights):
    name, path, reason = u.choose_model()
    assert (name, path) == ("efficientnet_lite0", None)
    assert "not set" in reason and "vgg16_weights.npz (no such file)" in reason


def test_choice_order_argument_env_cwd(no_weights, monkeypatch):
    cwd_file = no_weights / "vgg16_weights.npz"
    cwd_file.write_bytes(b"x")
    assert u.choose_model()[:2] == ("vgg16", str(cwd_file))
    env_file = no_weights / "env.npz"
    env_file.write_bytes(b"x")
    monkeypatch.setenv(u.VGG16_WEIGHTS_ENV, str(env_file))
    assert u.choose_model()[:2] == ("vgg16", str(env_file))
    arg_file = no_weights / "arg.h5"
    arg_file.write_bytes(b"x")
    assert u.choose_model(weights=arg_file)[:2] == ("vgg16", str(arg_file))
    assert u.choose_model("VGG16")[:2] == ("vgg16", str(env_file))
    # An explicit default-model name ignores VGG16 weights lying around.
    assert u.choose_model("efficientnet_lite0")[:2] == ("efficientnet_lite0", None)


def test_choice_uses_the_lookup_of_vgg16_imagenet(no_weights, monkeypatch):
    """One lookup for get_model's rule and vgg16(weights='imagenet')."""
    import vgg16
    calls = []

    def fake():
        calls.append(1)
        return "/somewhere/w.npz", "from a test", []
    monkeypatch.setattr(vgg16, "find_imagenet_weights", fake)
    assert u.choose_model()[:2] == ("vgg16", "/somewhere/w.npz") and calls == [1]
    assert vgg16.resolve_weights("imagenet") == "/somewhere/w.npz" and calls == [1, 1]


def test_choice_env_pointing_nowhere_falls_back(no_weights, monkeypatch, capsys):
    monkeypatch.setenv(u.VGG16_WEIGHTS_ENV, str(no_weights / "gone.npz"))
    assert u.choose_model()[0] == "efficientnet_lite0"
    assert "gone.npz" in capsys.readouterr().err


def test_vgg16_without_weights_says_where_it_looked(no_weights, sess):
    with pytest.raises(FileNotFoundError, match=r"^weights: no VGG16 weights found; looked "
                                                r"at .*HW3_VGG16_WEIGHTS.*vgg16_weights\.npz"
                                                r".*pass weights=PATH"):
        u.get_model(sess, "vgg16")
    with pytest.raises(FileNotFoundError, match=r"^weights: no such file .*nope\.npz"):
        u.get_model(sess, weights=str(no_weights / "nope.npz"))
    assert sess.graph.get_operations() == []  # nothing half-built


def test_unknown_model_name_lists_valid_names(sess):
    with pytest.raises(ValueError, match=r"^name_or_path: expected one of 'vgg16', "
                                         r"'efficientnet_lite0', 'resnet18', 'resnet50'.*"
                                         r"a SavedModel folder, or None, got 'resnet51'"):
        u.get_model(sess, "resnet51")
    with pytest.raises(TypeError, match="^sess: expected a tf.compat.v1.Session"):
        u.get_model(None, "vgg16")


def test_choice_reaches_the_vgg16_loader_before_building(no_weights, sess, capsys):
    """A fake vgg16_weights.npz in the working directory: get_model() picks VGG16, and
    VGG16's reader (not a fallback) rejects the file before anything is built."""
    np.savez(no_weights / "vgg16_weights.npz", conv1_1_W=np.zeros((3, 3, 3, 64), np.float32))
    with pytest.raises(ValueError, match=r"weights: .*vgg16_weights\.npz does not hold "
                                         r"VGG16's weights: conv1_1_b is missing"):
        u.get_model(sess)
    assert "using vgg16" in capsys.readouterr().err
    assert sess.graph.get_operations() == []


def test_get_model_vgg16_input_is_placeholder_0(no_weights, sess, monkeypatch):
    """The course finds the input as 'Placeholder:0'. Reading and loading are stubbed
    out here (a later test loads a real file)."""
    import vgg16
    from test_vgg16 import zeros_weights
    (no_weights / "vgg16_weights.npz").write_bytes(b"x")
    read = []
    monkeypatch.setattr(vgg16, "read_weights", lambda path: read.append(path) or weights)
    weights = zeros_weights()
    loaded = []
    monkeypatch.setattr(vgg16.VGG16, "assign_weights",
                        lambda self, weights, sess: loaded.append(weights))
    model = u.get_model(sess)
    assert sess.graph.get_tensor_by_name("Placeholder:0") is model.imgs
    assert tf1.get_default_graph().get_tensor_by_name("Placeholder:0") is model.imgs
    assert model.imgs.shape.as_list() == [None, 224, 224, 3]
    assert model.name == "vgg16" and model.logits is model.fc3l
    assert model.fc1.shape.as_list() == [None, 4096] and len(model.parameters) == 32
    assert read == [str(no_weights / "vgg16_weights.npz")] and loaded == [weights]


def test_get_model_efficientnet_input_is_placeholder_0(sess, monkeypatch):
    from attrkit.models import efficientnet_lite0 as E
    monkeypatch.setattr(E, "resolve_weights", lambda weights=None: "/stub.pth")
    loaded = []
    monkeypatch.setattr(E.EfficientNetLite0, "load_weights",
                        lambda self, sess, weights=None: loaded.append(weights))
    model = u.get_model(sess, "efficientnet_lite0")
    assert sess.graph.get_tensor_by_name("Placeholder:0") is model.imgs
    assert model.imgs.shape.as_list() == [None, 224, 224, 3]
    assert model.name == "efficientnet_lite0" and loaded == ["/stub.pth"]


@pytest.mark.slow
def test_get_model_vgg16_from_the_working_directory_end_to_end(no_weights, sess, capsys):
    """Zero weights with fc3's bias 0..999 (a small compressed file): the logits are that
    bias whatever the image, through the tensor found as 'Placeholder:0'."""
    from test_vgg16 import write_zero_npz
    write_zero_npz(no_weights / "vgg16_weights.npz", fc3_bias=np.arange(1000))
    model = u.get_model(sess)
    assert "using vgg16 (VGG16 weights found in the working directory" in \
        capsys.readouterr().err
    imgs = tf1.get_default_graph().get_tensor_by_name("Placeholder:0")
    logits = sess.run(model.fc3l, {imgs: np.full((2, 224, 224, 3), 50, np.float32)})
    np.testing.assert_array_equal(logits, np.tile(np.arange(1000, dtype=np.float32), (2, 1)))


@pytest.mark.slow
def test_default_choice_builds_efficientnet(no_weights, sess, capsys):
    model = u.get_model(sess)
    assert model.name == "efficientnet_lite0"
    err = capsys.readouterr().err
    assert "using efficientnet_lite0 (no VGG16 weights found" in err
    imgs = sess.graph.get_tensor_by_name("Placeholder:0")
    assert imgs is model.imgs
    X = u.load_samples()[0][:2]
    np.testing.assert_allclose(sess.run(model.logits, {imgs: X}),
                               sess.run(model.logits, {model.imgs: X}))


def test_get_tensor_names_is_the_course(sess):
    a = tf1.placeholder(tf.float32, [None, 2], name="a")
    b = tf.identity(a * 2.0, name="b")
    tf.group(b, name="nothing_out")  # an op without outputs is listed, as the course does
    names = u.get_tensor_names()
    assert names == course_get_tensor_names()
    assert "a:0" in names and "b:0" in names and "nothing_out:0" in names
    assert len(names) == len(set(names))


def test_visualization_helpers_are_not_reexported():
    """hw3_utils' binary_mask and point_cloud are the course's, not visualization's."""
    assert u.binary_mask.__module__ == u.point_cloud.__module__ == "hw3_utils"
    assert not hasattr(u, "aggregate_attribution") and not hasattr(u, "normalize_attribution")


def test_every_name_of_the_course_api_exists():
    import make_submission
    for name in make_submission.HW3_UTILS_NAMES:
        assert hasattr(u, name), name


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
    with pytest.raises(ValueError, match=r"^sub-folder 'crane' .*names 2"):
        make_dataset.class_index("crane")
    with pytest.raises(ValueError, match=r"^sub-folder '1000' .*idx"):
        make_dataset.class_index("1000")
    with pytest.raises(ValueError, match=r"^sub-folder 'wesel' .*'weasel'"):
        make_dataset.class_index("wesel")
    # a model's own class names: the folder's name, case, spaces and underscores aside
    assert u.class_index_of("Red_Mark", ["blue mark", "red mark"]) == 1
    with pytest.raises(ValueError, match=r"^class folder 'zebra_x' is not one of the "
                                         r"model's classes \(closest: 'zebra'\)"):
        u.class_index_of("zebra_x", ["red", "zebra"])


def test_make_dataset_with_a_tiny_model_round_trips(tmp_path, sess):
    folder = _image_folder(tmp_path / "imgs")
    model = _red_blue_model()
    arrays, skipped = make_dataset.build_dataset(u.ImageFolder(str(folder)), model, sess)
    assert skipped == []
    assert arrays["X"].dtype == np.uint8 and arrays["X"].shape == (4, 224, 224, 3)
    assert list(arrays["files"]) == ["1/d.png", "sports_car/c.jpg", "weasel/a.png",
                                     "weasel/b.png"]
    np.testing.assert_array_equal(arrays["y_true"], [1, 817, 356, 356])
    # By hand: gray has equal R and B (f0 = 0 = f1, argmax picks class 0), blue is class 1.
    np.testing.assert_array_equal(arrays["y_pred"], [0, 1, 0, 0])
    assert str(arrays["model"]) == "additive"
    assert len(arrays["class_names"]) == 1000 and arrays["class_names"][817].startswith("sports")
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
    with pytest.raises(ValueError, match="^folder: expected a folder of class sub-folders"):
        u.ImageFolder(str(tmp_path / "missing"))
    (tmp_path / "weasel").mkdir()
    with pytest.raises(ValueError, match=r"^folder: expected images \(.png .*got none"):
        u.ImageFolder(str(tmp_path))


@pytest.mark.parametrize("setup, needle", [
    (lambda d: ("weasel/a.png", b"not a PNG"), "folder: expected images (.png"),
    (lambda d: ("not_a_class/a.png", None), "folder: no class folder is one of the model's "
                                            "classes: sub-folder 'not_a_class' is not an "
                                            "ImageNet class"),
])
def test_make_dataset_refuses_a_bad_folder_before_any_model(tmp_path, setup, needle, capsys):
    import subprocess
    import sys
    rel, content = setup(tmp_path)
    (tmp_path / "imgs" / rel).parent.mkdir(parents=True)
    if content is None:
        Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / rel)
    else:
        (tmp_path / "imgs" / rel).write_bytes(content)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "make_dataset.py"),
                           str(tmp_path / "imgs"), "--out", str(tmp_path / "d.npz")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "make_dataset.py: error: " + needle in proc.stderr
    assert "Traceback" not in proc.stderr and "oneDNN" not in proc.stderr
    assert "using " not in proc.stderr            # get_model never ran
    assert not (tmp_path / "d.npz").exists()


@pytest.mark.parametrize("out, needle", [
    (".", "--out: expected a file name, got '.' (a folder)"),
    ("nowhere/d.npz", "--out: expected a file in an existing folder"),
])
def test_make_dataset_checks_out_first(tmp_path, monkeypatch, out, needle, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as err:
        make_dataset.parse_args([str(tmp_path), "--out", out])
    assert err.value.code == 2 and needle in capsys.readouterr().err


def test_make_dataset_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        make_dataset.parse_args(["x", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and "--out" in out and "--model" in out


@pytest.mark.slow
def test_make_dataset_end_to_end_with_the_default_model(tmp_path, no_weights, capsys):
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
