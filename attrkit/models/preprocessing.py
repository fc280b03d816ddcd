"""What a model expects of its input, given RGB 0-255: one parser, one graph op.

Every model object of the toolkit takes RGB 0-255 at its placeholder and preprocesses in
the graph. An imported model says what it was trained on with ``preprocess=``:

=========  ===============================================  ==========================
value      the graph computes, from x in RGB 0-255           typical models
=========  ===============================================  ==========================
'none'     x                                                 Keras models with their own
                                                             Rescaling / Normalization
'unit'     x / 255                                           models trained on [0, 1]
'tf'       x / 127.5 - 1                                     Keras MobileNet(V2),
                                                             Inception, Xception
'caffe'    BGR(x) - (103.939, 116.779, 123.68)               Keras ResNet50, VGG16/19
'torch'    (x / 255 - (0.485, 0.456, 0.406))                 torchvision models, Keras
           / (0.229, 0.224, 0.225)                           DenseNet
(mean,     (x - mean) / std per channel, in 0-255 units,     anything else
 std)      each a number or one per channel
=========  ===============================================  ==========================

For a grayscale model (one channel) the per-channel constants are averaged ('caffe' has no
BGR flip then). :func:`parse_preprocess` turns a user value into a :class:`Preprocess`
(rejecting anything else with ``PREPROCESS_ERROR``); :func:`apply_preprocess` adds its ops.
"""
import collections
import numbers

import numpy as np
import tensorflow as tf

IMAGENET_MEAN = (0.485, 0.456, 0.406)       # RGB, on [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # BGR, on 0-255
NAMES = ("none", "unit", "tf", "caffe", "torch")

PREPROCESS_ERROR = ("preprocess: expected one of 'none', 'unit', 'tf', 'caffe', 'torch' or a "
                    "pair (mean, std) of numbers or per-channel sequences in 0-255 units, "
                    "got {actual!r}")
CHANNELS_ERROR = ("preprocess: {name} has {count} values per channel, the model has "
                  "{channels} input channels")

Preprocess = collections.namedtuple("Preprocess", "name mean std bgr")
Preprocess.__doc__ = """A parsed preprocessing: y = (flip(x) - mean) / std.

name: one of NAMES or 'mean_std'; mean, std: tuples in 0-255 units (length 1 or C);
bgr: reverse the channel order first."""


def parse_preprocess(value):
    """A user's ``preprocess`` (a name or ``(mean, std)``) -> :class:`Preprocess`.

    Raises:
        ValueError: anything else (PREPROCESS_ERROR names the argument and the choices).
    """
    if isinstance(value, Preprocess):
        return value
    if isinstance(value, str):
        key = value.strip().lower()
        if key == "none":
            return Preprocess("none", (0.0,), (1.0,), False)
        if key == "unit":
            return Preprocess("unit", (0.0,), (255.0,), False)
        if key == "tf":
            return Preprocess("tf", (127.5,), (127.5,), False)
        if key == "caffe":
            return Preprocess("caffe", CAFFE_MEAN_BGR, (1.0,), True)
        if key == "torch":
            return Preprocess("torch", tuple(255.0 * m for m in IMAGENET_MEAN),
                              tuple(255.0 * s for s in IMAGENET_STD), False)
        raise ValueError(PREPROCESS_ERROR.format(actual=value))
    if isinstance(value, (tuple, list)) and len(value) == 2:
        mean, std = (_numbers(v) for v in value)
        if mean is not None and std is not None and all(s > 0 for s in std):
            return Preprocess("mean_std", mean, std, False)
    raise ValueError(PREPROCESS_ERROR.format(actual=value))


def _numbers(v):
    """A number or a non-empty sequence of finite numbers -> tuple of floats, else None."""
    items = v if isinstance(v, (tuple, list, np.ndarray)) else [v]
    if len(items) == 0 or not all(isinstance(i, (numbers.Real, np.floating, np.integer))
                                  and not isinstance(i, bool) and np.isfinite(i)
                                  for i in items):
        return None
    return tuple(float(i) for i in items)


def _per_channel(values, channels, name):
    if len(values) in (1, channels):
        return np.asarray(values, np.float32)
    if channels == 1:
        return np.asarray([np.mean(values)], np.float32)
    raise ValueError(CHANNELS_ERROR.format(name=name, count=len(values), channels=channels))


def check_channels(spec, channels):
    """Raise CHANNELS_ERROR before any op is built if ``spec`` does not fit ``channels``."""
    _per_channel(spec.mean, channels, "mean")
    _per_channel(spec.std, channels, "std")


def apply_preprocess(x, spec, name="preprocess"):
    """Ops computing ``spec`` on ``x`` ``[N, H, W, C]`` RGB 0-255; returns the result.

    'none' returns an identity (so that the op has a name); a grayscale input (C = 1)
    takes the channel means of the constants and no BGR flip.
    """
    spec = parse_preprocess(spec)
    channels = x.shape[-1]
    mean = _per_channel(spec.mean, channels, "mean")
    std = _per_channel(spec.std, channels, "std")
    with tf.name_scope(name):
        if spec.bgr and channels == 3:
            x = tf.reverse(x, axis=[-1])                       # RGB -> BGR
        if np.any(mean != 0):
            x = x - tf.constant(mean)
        if np.any(std != 1):
            x = x * tf.constant(1.0 / std)
        return tf.identity(x, name="out")
