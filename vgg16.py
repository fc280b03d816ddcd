"""VGG16 (Simonyan & Zisserman, 2015) as a tf.compat.v1 graph with the classic TF1 names.

The graph follows the classic ``vgg16.py`` of the course (Davi Frossard's TF1 port):
``conv1_1`` ... ``conv5_3`` (after ReLU), ``pool1`` ... ``pool5``, ``fc1``, ``fc2`` (after
ReLU), ``fc3l`` (the logits) and ``probs``, with variables ``conv1_1/weights``,
``conv1_1/biases``, ... ``fc3/biases``. The input is ``imgs``, ``[N, 224, 224, 3]`` float32
**RGB 0-255**; the graph subtracts the ImageNet mean ``[123.68, 116.779, 103.939]`` itself.

Weights load by name (never by sorted position) from either

* the classic ``vgg16_weights.npz`` (https://www.cs.toronto.edu/~frossard/post/vgg16/):
  keys ``conv1_1_W``, ``conv1_1_b``, ... ``conv5_3_b``, ``fc6_W`` [25088, 4096], ``fc6_b``,
  ``fc7_*``, ``fc8_*``; graph ``fc1``/``fc2``/``fc3`` are file ``fc6``/``fc7``/``fc8``; or
* Keras' ``vgg16_weights_tf_dim_ordering_tf_kernels.h5`` (layers ``block1_conv1`` ...
  ``block5_conv3``, ``fc1``, ``fc2``, ``predictions``), as Keras 1/2 wrote it, a Keras 3
  legacy ``.h5`` (``model.save``) or a Keras 3 ``.weights.h5`` (``model.save_weights``).
  Keras' VGG16 is fed caffe-style BGR, so the first kernel's input channels are flipped
  into this graph's RGB order. Keras flattens ``block5_pool`` [7, 7, 512] in HWC order, the
  same as ``tf.reshape`` here, so ``fc1`` needs no permutation.

``weights='imagenet'`` (what the course's ``get_model`` passes) means the file that
``find_imagenet_weights`` finds: ``$HW3_VGG16_WEIGHTS`` if set, else ``./vgg16_weights.npz``.
Nothing is ever downloaded; when no file is found, FileNotFoundError says where it looked and
how to get one. ``hw3_utils.get_model`` uses the same lookup for its choice rule.

Loading assigns through placeholders built once with the graph: loading any number of
times adds no op. Every file is checked (format by its first bytes, every key present,
every shape right) before any weight is assigned, and before the constructor builds
anything.
"""
import os
import re
import sys
import tempfile
import zipfile
from collections import OrderedDict

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1

# RGB ImageNet mean that the classic weights were trained with (pixel values 0-255).
MEAN_RGB = (123.68, 116.779, 103.939)
IMAGE_SHAPE = (224, 224, 3)

# (graph layer name, kernel shape) in graph order; conv kernels are [kh, kw, in, out].
CONV_LAYERS = (
    ("conv1_1", (3, 3, 3, 64)), ("conv1_2", (3, 3, 64, 64)),
    ("conv2_1", (3, 3, 64, 128)), ("conv2_2", (3, 3, 128, 128)),
    ("conv3_1", (3, 3, 128, 256)), ("conv3_2", (3, 3, 256, 256)),
    ("conv3_3", (3, 3, 256, 256)),
    ("conv4_1", (3, 3, 256, 512)), ("conv4_2", (3, 3, 512, 512)),
    ("conv4_3", (3, 3, 512, 512)),
    ("conv5_1", (3, 3, 512, 512)), ("conv5_2", (3, 3, 512, 512)),
    ("conv5_3", (3, 3, 512, 512)),
)
FC_LAYERS = (("fc1", (7 * 7 * 512, 4096)), ("fc2", (4096, 4096)), ("fc3", (4096, 1000)))

# graph layer -> (W shape, b shape), in graph order.
WEIGHT_SHAPES = OrderedDict((name, (shape, (shape[-1],)))
                            for name, shape in CONV_LAYERS + FC_LAYERS)
# graph layer -> key prefix in the classic npz (fc1/fc2/fc3 are the file's fc6/fc7/fc8).
NPZ_NAMES = OrderedDict((name, {"fc1": "fc6", "fc2": "fc7", "fc3": "fc8"}.get(name, name))
                        for name in WEIGHT_SHAPES)
# graph layer -> layer name in Keras' VGG16.
KERAS_NAMES = OrderedDict(
    [(f"conv{b}_{i}", f"block{b}_conv{i}") for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
     for i in range(1, n + 1)] + [("fc1", "fc1"), ("fc2", "fc2"), ("fc3", "predictions")])

NPZ_MAGIC = b"PK\x03\x04"
NPZ_EMPTY_MAGIC = b"PK\x05\x06"
NPY_MAGIC = b"\x93NUMPY"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# HDF5 may put its superblock after a user block of 512, 1024, 2048, ... bytes.
HDF5_OFFSETS = (0, 512, 1024, 2048, 4096)

CLASSIC_URL = "https://www.cs.toronto.edu/~frossard/post/vgg16/"
KERAS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
             "vgg16_weights_tf_dim_ordering_tf_kernels.h5")

# weights='imagenet': $HW3_VGG16_WEIGHTS if set, else ./vgg16_weights.npz.
IMAGENET = "imagenet"
WEIGHTS_ENV = "HW3_VGG16_WEIGHTS"
WEIGHTS_FILE = "vgg16_weights.npz"

GET_WEIGHTS_HELP = (
    "Get the classic vgg16_weights.npz from " + CLASSIC_URL + " or Keras' "
    "vgg16_weights_tf_dim_ordering_tf_kernels.h5 (keras.applications.VGG16(weights="
    "'imagenet') downloads it into ~/.keras/models/; or from " + KERAS_URL + ")")
WHERE_TO_PUT_HELP = (
    "then pass weights=PATH (--weights PATH on the command line), set " + WEIGHTS_ENV
    + "=PATH, or put " + WEIGHTS_FILE + " in the working directory. Nothing is downloaded "
    "at run time.")

# Error messages, kept as data so that tests match the same templates.
MISSING_FILE_ERROR = ("weights: no VGG16 weights file at {where}. " + GET_WEIGHTS_HELP
                      + ", and pass its path. Nothing is downloaded at run time.")
IMAGENET_NOT_FOUND_ERROR = ("weights='imagenet': no VGG16 weights file found; looked at "
                            "{looked}. " + GET_WEIGHTS_HELP + ", " + WHERE_TO_PUT_HELP)
ENV_MISSING_WARNING = "vgg16: ${env} is set to {path!r}, which does not exist; ignoring it"
FORMAT_ERROR = ("weights: expected an .npz archive (the classic vgg16_weights.npz) or an "
                "HDF5 file (Keras' vgg16_weights_tf_dim_ordering_tf_kernels.h5), but {path} "
                "is {actual}")
WRONG_READER_ERROR = "weights: {reader} expected {expected}, but {path} is {actual}"
KEYS_ERROR = "weights: {path} does not hold VGG16's weights: {problems}"
MISSING_KEY = "{key} is missing (expected shape {expected})"
SHAPE_MISMATCH = "{key} has shape {actual}, expected {expected}"
DTYPE_MISMATCH = "{key} has dtype {actual}, expected a floating-point array"
H5_LAYOUT_ERROR = ("weights: {path}: cannot tell kernel from bias in layer {layer}: weight "
                   "names {names}")
IMGS_ERROR = ("imgs: expected a float32 tensor of shape [None, 224, 224, 3] (RGB 0-255), "
              "got {actual}")
SESS_ERROR = "sess: expected a tf.compat.v1.Session to load the weights into, got {actual!r}"


# ----------------------------------------------------------------------------- files

def _describe(head):
    """A short human description of a file from its first bytes."""
    if not head:
        return "empty"
    if head.startswith(NPY_MAGIC):
        return "a single .npy array, not an .npz archive"
    if head.startswith(b"\x80"):
        return "a pickle (never loaded: pickles can run code)"
    printable = sum(32 <= c < 127 or c in (9, 10, 13) for c in head)
    if printable == len(head):
        return f"a text file starting {head[:40]!r}"
    return f"a binary file starting {head[:16]!r}"


def sniff_format(path):
    """Return ``'npz'`` or ``'h5'`` from a file's first bytes (never from its name).

    Raises:
        FileNotFoundError: no file at ``path`` (the message says how to get one).
        ValueError: the file is neither a zip (npz) nor an HDF5 file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        where = os.path.abspath(path)
        if where != path:
            where = f"{path} (looked for {where})"
        raise FileNotFoundError(MISSING_FILE_ERROR.format(where=where))
    with open(path, "rb") as f:
        head = f.read(64)
        if head.startswith((NPZ_MAGIC, NPZ_EMPTY_MAGIC)):
            return "npz"
        for offset in HDF5_OFFSETS:
            f.seek(offset)
            if f.read(len(HDF5_MAGIC)) == HDF5_MAGIC:
                return "h5"
    raise ValueError(FORMAT_ERROR.format(path=path, actual=_describe(head)))


def _check_entries(path, entries):
    """Raise one ValueError listing every missing, mis-shaped or non-float entry.

    ``entries``: list of ``(key, expected shape, actual shape or None, dtype or None)``.
    """
    problems = []
    for key, expected, actual, dtype in entries:
        if actual is None:
            problems.append(MISSING_KEY.format(key=key, expected=expected))
        elif tuple(actual) != tuple(expected):
            problems.append(SHAPE_MISMATCH.format(key=key, actual=tuple(actual),
                                                  expected=tuple(expected)))
        elif dtype is not None and not np.issubdtype(dtype, np.floating):
            problems.append(DTYPE_MISMATCH.format(key=key, actual=dtype))
    if problems:
        raise ValueError(KEYS_ERROR.format(path=path, problems="; ".join(problems)))


def _npz_header_shapes(path):
    """``{key: (shape, dtype)}`` of an npz's arrays, read from the .npy headers only."""
    out = {}
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            if not member.endswith(".npy"):
                continue
            with zf.open(member) as f:
                try:
                    version = np.lib.format.read_magic(f)
                    read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                                   (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if read_header is None:  # a newer .npy version: read the array itself
                        with zf.open(member) as g:
                            arr = np.lib.format.read_array(g, allow_pickle=False)
                        shape, dtype = arr.shape, arr.dtype
                    else:
                        shape, _, dtype = read_header(f)
                except ValueError:
                    continue  # not an array header: reported as a missing key if needed
            out[member[:-len(".npy")]] = (shape, dtype)
    return out


def read_npz_weights(path):
    """Read the classic ``vgg16_weights.npz`` by key name.

    Returns:
        OrderedDict graph layer name (``'conv1_1'`` ... ``'fc3'``) -> ``(W, b)`` float32, in
        graph order; conv ``W`` is ``[3, 3, in, out]`` with RGB input channels, fc ``W`` is
        ``[in, out]``.
    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not an npz archive, or a key missing or mis-shaped (every such key is
        named, with its expected and actual shape); checked before any array is read.
    """
    path = os.fspath(path)
    fmt = sniff_format(path)
    if fmt != "npz":
        raise ValueError(WRONG_READER_ERROR.format(
            reader="read_npz_weights", expected="an .npz archive", path=path,
            actual="an HDF5 file (use read_keras_h5_weights)"))
    try:
        headers = _npz_header_shapes(path)
    except zipfile.BadZipFile as err:
        raise ValueError(FORMAT_ERROR.format(path=path, actual=f"a broken zip ({err})"))
    entries = []
    for layer, shapes in WEIGHT_SHAPES.items():
        for suffix, expected in zip(("_W", "_b"), shapes):
            key = NPZ_NAMES[layer] + suffix
            shape, dtype = headers.get(key, (None, None))
            entries.append((key, expected, shape, dtype))
    _check_entries(path, entries)
    out = OrderedDict()
    with np.load(path, allow_pickle=False) as data:
        for layer in WEIGHT_SHAPES:
            prefix = NPZ_NAMES[layer]
            out[layer] = (np.asarray(data[prefix + "_W"], np.float32),
                          np.asarray(data[prefix + "_b"], np.float32))
    return out


def _h5_attr_list(group, name):
    """A list attribute as Keras writes it (possibly chunked into name0, name1, ...)."""
    if name in group.attrs:
        values = list(np.atleast_1d(group.attrs[name]))
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(np.atleast_1d(group.attrs[f"{name}{chunk}"]))
            chunk += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


_KERNEL_NAME = re.compile(r"(kernel|_W(_\d+)?)$")
_BIAS_NAME = re.compile(r"(bias|_b(_\d+)?)$")


def _h5_layer_datasets(path, h5):
    """Find each Keras layer's ``(kernel, bias)`` h5py datasets by layer name.

    Handles the three layouts Keras writes:
    * legacy weights file (Keras 1/2 ``save_weights``, the downloadable file): a root
      attribute ``layer_names``, one group per layer with attribute ``weight_names``
      (``block1_conv1_W_1:0``, ``block1_conv1/kernel:0``, ``vgg16/block1_conv1/kernel``);
    * legacy full model (``model.save('x.h5')``): the same inside group ``model_weights``;
    * Keras 3 ``.weights.h5``: ``layers/<key>/vars/{0,1}`` with the layer name in the
      ``vars`` group's ``name`` attribute (variables in kernel, bias order).

    Returns: dict Keras layer name -> (kernel dataset or None, bias dataset or None).
    """
    found = {}
    root = h5["model_weights"] if "model_weights" in h5 else h5
    if "layer_names" in root.attrs or "layer_names0" in root.attrs:
        for layer in _h5_attr_list(root, "layer_names"):
            if layer not in root:
                continue
            group = root[layer]
            names = _h5_attr_list(group, "weight_names")
            if not names:
                continue
            kernel = bias = None
            for name in names:
                stem = name.split("/")[-1].split(":")[0]
                if _KERNEL_NAME.search(stem) and kernel is None:
                    kernel = group[name]
                elif _BIAS_NAME.search(stem) and bias is None:
                    bias = group[name]
                else:
                    raise ValueError(H5_LAYOUT_ERROR.format(path=path, layer=layer,
                                                            names=names))
            found[layer] = (kernel, bias)
    elif "layers" in h5:
        for key in h5["layers"]:
            vars_group = h5["layers"][key].get("vars")
            if vars_group is None or len(vars_group) == 0:
                continue
            name = vars_group.attrs.get("name", key)
            name = name.decode("utf8") if isinstance(name, bytes) else str(name)
            found[name] = (vars_group.get("0"), vars_group.get("1"))
    return found


def read_keras_h5_weights(path):
    """Read Keras' VGG16 weights (``vgg16_weights_tf_dim_ordering_tf_kernels.h5``) by layer name.

    The first kernel's input channels are flipped from Keras' BGR to this graph's RGB.

    Returns:
        OrderedDict graph layer name -> ``(W, b)`` float32, as ``read_npz_weights``.
    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not an HDF5 file, or a layer's kernel or bias missing or mis-shaped
        (each named, with expected and actual shape); checked before any array is read.
    """
    import h5py  # only needed for this format

    path = os.fspath(path)
    fmt = sniff_format(path)
    if fmt != "h5":
        raise ValueError(WRONG_READER_ERROR.format(
            reader="read_keras_h5_weights", expected="an HDF5 file", path=path,
            actual="an .npz archive (use read_npz_weights)"))
    with h5py.File(path, "r") as h5:
        found = _h5_layer_datasets(path, h5)
        entries = []
        for layer, shapes in WEIGHT_SHAPES.items():
            keras_name = KERAS_NAMES[layer]
            datasets = found.get(keras_name, (None, None))
            for what, ds, expected in zip(("kernel", "bias"), datasets, shapes):
                entries.append((f"{keras_name}/{what}", expected,
                                None if ds is None else ds.shape,
                                None if ds is None else ds.dtype))
        _check_entries(path, entries)
        out = OrderedDict()
        for layer in WEIGHT_SHAPES:
            kernel, bias = found[KERAS_NAMES[layer]]
            out[layer] = (np.asarray(kernel[()], np.float32), np.asarray(bias[()], np.float32))
    W, b = out["conv1_1"]
    out["conv1_1"] = (np.ascontiguousarray(W[:, :, ::-1, :]), b)  # BGR -> RGB input channels
    return out


def find_imagenet_weights():
    """Where ``weights='imagenet'`` points: ``(path, reason, looked)``.

    Order: ``$HW3_VGG16_WEIGHTS`` when set and a file, else ``./vgg16_weights.npz``. A
    variable that names no file is reported on stderr and skipped. ``path`` is None when
    nothing was found; ``looked`` lists each place tried and why it did not do
    (``"$HW3_VGG16_WEIGHTS (not set)"``, ``"/abs/vgg16_weights.npz (no such file)"``).
    Reads nothing and downloads nothing.
    """
    looked = []
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        if os.path.isfile(env):
            return env, f"from ${WEIGHTS_ENV}", looked
        looked.append(f"${WEIGHTS_ENV}={env!r} (no such file)")
        print(ENV_MISSING_WARNING.format(env=WEIGHTS_ENV, path=env), file=sys.stderr)
    else:
        looked.append(f"${WEIGHTS_ENV} (not set)")
    local = os.path.abspath(WEIGHTS_FILE)
    if os.path.isfile(local):
        return local, "found in the working directory", looked
    looked.append(f"{local} (no such file)")
    return None, None, looked


def resolve_weights(weights):
    """A weights argument as a path or a mapping: ``'imagenet'`` becomes the file that
    ``find_imagenet_weights`` finds (FileNotFoundError listing where it looked if none);
    anything else is returned as it is."""
    if isinstance(weights, str) and weights == IMAGENET:
        path, _, looked = find_imagenet_weights()
        if path is None:
            raise FileNotFoundError(IMAGENET_NOT_FOUND_ERROR.format(looked="; ".join(looked)))
        return path
    return weights


def read_weights(path):
    """Read either format, chosen by the file's first bytes; see the two readers.

    ``path`` may be ``'imagenet'`` (see ``resolve_weights``).
    """
    path = resolve_weights(path)
    fmt = sniff_format(path)
    return read_npz_weights(path) if fmt == "npz" else read_keras_h5_weights(path)


def _weights_mapping(weights, source="weights"):
    """A checked mapping graph layer -> ``(W, b)`` from a path, ``'imagenet'`` or a mapping."""
    if hasattr(weights, "items"):
        check_weights(weights, source)
        return weights
    return read_weights(weights)


def check_weights(weights, source="weights"):
    """Check a mapping graph layer name -> ``(W, b)`` against VGG16's shapes (all named)."""
    entries = []
    for layer, shapes in WEIGHT_SHAPES.items():
        pair = weights.get(layer) if hasattr(weights, "get") else None
        if pair is not None and len(pair) != 2:
            raise ValueError(KEYS_ERROR.format(
                path=source, problems=f"{layer} should be a pair (W, b), got {len(pair)} items"))
        for i, (suffix, expected) in enumerate(zip(("W", "b"), shapes)):
            arr = None if pair is None else np.asarray(pair[i])
            entries.append((f"{layer}/{suffix}", expected,
                            None if arr is None else arr.shape,
                            None if arr is None else arr.dtype))
    _check_entries(source, entries)


def write_npz_weights(weights, path):
    """Write graph-convention weights as a classic ``vgg16_weights.npz`` (atomically).

    ``weights``: mapping graph layer -> ``(W, b)``, e.g. from ``read_keras_h5_weights``, so
    Keras' file can be converted once to the classic format.
    """
    check_weights(weights)
    path = os.fspath(path)
    arrays = OrderedDict()
    for layer in WEIGHT_SHAPES:
        W, b = weights[layer]
        arrays[NPZ_NAMES[layer] + "_W"] = np.asarray(W, np.float32)
        arrays[NPZ_NAMES[layer] + "_b"] = np.asarray(b, np.float32)
    # the graded files' atomic writer (hw3_evaluation.write_bytes), which this file may not
    # import (the autograder brings its own vgg16.py): a temporary file in the same
    # folder, renamed into place; a failure leaves none behind
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# ----------------------------------------------------------------------------- graph

def _check_sess(sess):
    if not callable(getattr(sess, "run", None)):
        raise TypeError(SESS_ERROR.format(actual=sess))


class VGG16:
    """VGG16 ImageNet classifier (Simonyan & Zisserman, ICLR 2015) in the default graph.

    Args:
        imgs: input tensor ``[None, 224, 224, 3]`` float32, RGB 0-255; ``None`` creates
            the placeholder ``imgs``.
        weights: path of a weights file (classic npz or Keras h5, told apart by content),
            ``'imagenet'`` (``$HW3_VGG16_WEIGHTS`` if set, else ``./vgg16_weights.npz``;
            see ``find_imagenet_weights``) or a mapping graph layer -> ``(W, b)``; loaded
            into ``sess`` when both are given, after being read and checked and before
            anything is added to the graph.
        sess: the session to load the weights into.

    Raises:
        FileNotFoundError: no weights file (the message says where it looked and how to
        get one). ValueError: a wrong input tensor or weights file. TypeError: ``sess``
        is not a session.

    Attributes: ``conv1_1`` ... ``conv5_3``, ``fc1``, ``fc2`` (after ReLU), ``pool1`` ...
    ``pool5``, ``fc3l`` = ``logits`` ``[N, 1000]``, ``probs``; ``layers`` (OrderedDict of
    every conv, pool and fc output by name, in order), ``parameters`` (variables W, b per
    layer, in order), ``name``, ``default_layers``, ``class_names`` (ImageNet's 1000).
    """

    name = "vgg16"

    def __init__(self, imgs=None, weights=None, sess=None):
        if imgs is not None:
            shape = imgs.shape
            if (imgs.dtype != tf.float32 or shape.rank != 4
                    or not shape[1:].is_compatible_with(IMAGE_SHAPE)):
                raise ValueError(IMGS_ERROR.format(actual=f"{imgs.dtype.name} {shape}"))
        load = weights is not None and sess is not None
        if load:  # read and check everything before the graph grows
            _check_sess(sess)
            weights = _weights_mapping(weights)
        if imgs is None:
            imgs = tf1.placeholder(tf.float32, [None] + list(IMAGE_SHAPE), name="imgs")
        self.imgs = imgs
        self.default_layers = {"gradcam": "conv5_3", "influence": "fc1"}
        from imagenet_classes import class_names
        self.class_names = list(class_names)
        self.layers = OrderedDict()
        self.parameters = []
        self._variables = OrderedDict()  # graph layer -> (W variable, b variable)
        self._build()
        self._define_load_ops()
        if load:
            self.assign_weights(weights, sess)

    def _params(self, layer):
        W_shape, b_shape = WEIGHT_SHAPES[layer]
        W = tf1.Variable(tf.zeros(W_shape), name="weights")
        b = tf1.Variable(tf.zeros(b_shape), name="biases")
        self.parameters += [W, b]
        self._variables[layer] = (W, b)
        return W, b

    def _build(self):
        with tf1.name_scope("preprocess"):
            mean = tf.constant(MEAN_RGB, tf.float32, [1, 1, 1, 3], name="img_mean")
            x = self.imgs - mean
        block_sizes = ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
        for block, n in block_sizes:
            for i in range(1, n + 1):
                layer = f"conv{block}_{i}"
                with tf1.name_scope(layer) as scope:
                    W, b = self._params(layer)
                    out = tf.nn.bias_add(tf.nn.conv2d(x, W, [1, 1, 1, 1], padding="SAME"), b)
                    x = tf.nn.relu(out, name=scope)  # op named e.g. 'conv1_1'
                self._add(layer, x)
            layer = f"pool{block}"
            x = tf.nn.max_pool2d(x, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1],
                                 padding="SAME", name=layer)
            self._add(layer, x)
        # [N, 7, 7, 512] -> [N, 25088] in HWC order, as Keras' Flatten and the classic code.
        flat = tf.reshape(x, [-1, int(np.prod(x.shape[1:]))])
        x = flat
        for layer in ("fc1", "fc2"):
            with tf1.name_scope(layer) as scope:
                W, b = self._params(layer)
                x = tf.nn.relu(tf.nn.bias_add(tf.matmul(x, W), b), name=scope)
            self._add(layer, x)
        with tf1.name_scope("fc3"):
            W, b = self._params("fc3")
            product = tf.matmul(x, W)
        self.fc3l = tf.nn.bias_add(product, b, name="fc3l")
        self.layers["fc3l"] = self.fc3l
        self.logits = self.fc3l
        self.probs = tf.nn.softmax(self.fc3l, name="probs")

    @property
    def variables(self):
        """The weights, bottom-up: an OrderedDict ``'conv1_1/weights'``, ``'conv1_1/biases'``,
        ..., ``'fc3/biases'`` -> variable (the toolkit's randomisation test reads it)."""
        return OrderedDict((f"{layer}/{kind}", var) for layer, pair in self._variables.items()
                           for kind, var in zip(("weights", "biases"), pair))

    def _add(self, layer, tensor):
        setattr(self, layer, tensor)
        self.layers[layer] = tensor

    def _define_load_ops(self):
        """One placeholder and one assign op per variable, built once."""
        self._load_feeds = OrderedDict()
        assigns = []
        with tf1.name_scope("load_weights"):
            for layer, variables in self._variables.items():
                feeds = []
                for var, suffix in zip(variables, ("W", "b")):
                    ph = tf1.placeholder(tf.float32, var.shape, name=f"{layer}_{suffix}")
                    assigns.append(tf1.assign(var, ph))
                    feeds.append(ph)
                self._load_feeds[layer] = tuple(feeds)
            self._load_op = tf.group(*assigns, name="assign_all")

    def assign_weights(self, weights, sess):
        """Assign a mapping graph layer -> ``(W, b)`` (checked first) in one ``sess.run``."""
        _check_sess(sess)
        check_weights(weights)
        feed = {}
        for layer, (ph_W, ph_b) in self._load_feeds.items():
            W, b = weights[layer]
            feed[ph_W] = np.asarray(W, np.float32)
            feed[ph_b] = np.asarray(b, np.float32)
        sess.run(self._load_op, feed_dict=feed)

    def load_weights(self, weights, sess):
        """Load weights from a path (npz or h5, by content), ``'imagenet'`` or a mapping.

        Adds no op to the graph. Raises as ``read_npz_weights`` / ``read_keras_h5_weights``
        and ``resolve_weights``.
        """
        _check_sess(sess)
        self.assign_weights(_weights_mapping(weights), sess)


vgg16 = VGG16  # the classic lowercase name: vgg16(imgs, weights, sess)
