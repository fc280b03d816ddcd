"""Your own model as a TF1 graph: Keras ``.keras`` / ``.h5``, SavedModels, torchvision ResNets.

``hw3_utils.get_model`` dispatches here for anything but the two built-in models:

- :func:`import_model` ``(sess, path, preprocess=None, labels=None, input_size=None)``: a
  Keras 3 ``.keras`` file, a Keras ``.h5`` full-model file, or a SavedModel folder
  (``model.export(...)`` or ``tf.saved_model.save``; its serving signature);
- :func:`load_resnet` ``(sess, 'resnet18'|'resnet50', weights, ...)``: a torchvision
  checkpoint (:mod:`torchvision_resnet`, read without torch);
- :func:`class_names_for` / :func:`read_labels_file`: the class names of a model with K
  classes (``labels=`` a file with one name per line or a list; else ImageNet's for
  K = 1000, else ``class 0`` ... ``class K-1``), reusable by the scripts.

How a Keras file or SavedModel becomes part of the caller's graph. Loading it needs eager
TensorFlow and Keras 3, which the caller may have switched off; so a child process
(``model_convert.py``, run with ``sys.executable``) loads it, freezes it to a GraphDef,
rewrites that so gradients pass every op (:mod:`graph_rewrite`), checks the result against
the eager model, and writes ``graph.pb`` + ``meta.json`` into a cache folder
(``$HW3_CACHE_DIR``, else ``$XDG_CACHE_HOME/hw3_toolkit`` or ``~/.cache/hw3_toolkit``;
safe to delete). An entry's name is a hash of the model's bytes (every file of a
SavedModel), the input size, the converter's version and the TensorFlow / Keras versions;
it is written under a temporary name and renamed into place, and the user's file is never
written. Here the caller's graph gets an unnamed placeholder ``[None, H, W, C]`` (RGB
0-255, the model's own size and channels), the preprocessing ops, and the GraphDef through
``import_graph_def(..., input_map=...)``: all ops are added once, calls add none.

Defaults, decided once here:

- ``preprocess=None`` means: ``'torch'`` for a torchvision ResNet; for a Keras file or a
  SavedModel ``'none'`` (the model sees RGB 0-255 as it is) when the model has its own
  ``Rescaling`` / ``Normalization`` layers (EfficientNet, ConvNeXt, a model built with
  them), the family's own when the model bears a keras.applications name without them
  (``resnet50`` / ``vgg16``: ``'caffe'``; ``mobilenetv2_*``, ``inception_v3``,
  ``xception``: ``'tf'``; ``densenet121``: ``'torch'``), and otherwise ``'none'`` with a
  note on stderr; what was chosen and why is printed whenever it was guessed.
- A final softmax is peeled off: ``logits`` is its input. A single sigmoid output
  ``p = sigmoid(z)`` (or a single unit without activation, taken as ``z``) is a binary
  classifier with logits ``[0, z]``: their softmax is ``[1 - p, p]``, class 1's score is
  the model's own logit ``z``, and class 0's is the constant 0 (explain class 0 through
  ``qoi_difference(0, 1)`` or as negative evidence for class 1).
"""
import collections
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

import tensorflow as tf

from attrkit.models import preprocessing

tf1 = tf.compat.v1

HERE = os.path.dirname(os.path.abspath(__file__))
CONVERTER = os.path.join(HERE, "model_convert.py")
CACHE_ENV = "HW3_CACHE_DIR"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a"       # pickle of the legacy torch magic number
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5", ".pb", ".pth", ".pt")
# A keras.applications model that has no preprocessing layers of its own expects this.
KERAS_APPLICATION_PREPROCESS = (
    (r"^resnet(50|101|152)$", "caffe"), (r"^vgg(16|19)$", "caffe"),
    (r"^resnet(50|101|152)v2$", "tf"), (r"^mobilenet(v2)?_", "tf"),
    (r"^(inception_v3|xception|inception_resnet_v2|nasnet_(large|mobile))$", "tf"),
    (r"^densenet(121|169|201)$", "torch"),
)
DEFAULT_CHILD_TIMEOUT = 3600
ERROR_FILE = "error.json"
PATH_TOKEN = "<model path>"       # a cached refusal names the path of the file at hand

# Error messages, kept as data so that tests match the same templates.
NOT_A_MODEL_ERROR = ("name_or_path: expected a Keras .keras or .h5 model file or a "
                     "SavedModel folder; {path} is {what}")
TORCH_FILE_ERROR = ("name_or_path: {path} is a PyTorch checkpoint; pass it as weights= "
                    "with name_or_path 'resnet18' or 'resnet50'")
MISSING_PATH_ERROR = ("name_or_path: no such file or folder {path!r} (expected a Keras .keras "
                      "or .h5 model file or a SavedModel folder)")
WEIGHTS_WITH_FILE_ERROR = ("weights: a Keras file or SavedModel carries its own weights; "
                           "expected None, got {actual!r}")
LABELS_COUNT_ERROR = "labels: {source} has {count} class names; the model has {k} classes"
LABELS_TYPE_ERROR = ("labels: expected a path to a text file with one class name per line, "
                     "or a list of names, got {actual}")
LABELS_FILE_ERROR = "labels: no such file {path!r}"
INPUT_SIZE_ERROR = ("input_size: expected a positive int or a pair (height, width) of "
                    "positive ints, got {actual!r}")
CHILD_ERROR = ("converting {paths} failed: the converter process exited with status {rc}; "
               "its last output:\n{tail}")


def _stderr(msg):
    print("model_import: " + msg, file=sys.stderr)


# ------------------------------------------------------------------ the model object

class ImportedModel:
    """An imported classifier, with the model contract of DESIGN.md.

    Attributes:
      imgs: the unnamed placeholder ``[None, H, W, C]`` float32, RGB (or gray) 0-255.
      logits: ``[None, K]`` pre-softmax scores; probs: their softmax.
      layers: OrderedDict Keras layer name -> tensor, in the model's order (a subclassed
        model: empty, see ``notes``).
      name: the model's Keras name (a SavedModel: the name its ops carry, else its
        folder's). source: the path it came from.
      class_names: K names. default_layers: ``{'gradcam': ..., 'influence': ...}`` where
        found. num_classes: K. preprocess: the :class:`preprocessing.Preprocess` applied.
      activation: the final activation peeled off (``'softmax'``, ``'sigmoid'``,
        ``'none'``). meta: the converter's record (``meta['check']``, ``seconds``,
        ``graph_bytes``, ``rewrites``). notes: things worth knowing about the import.
      variables: the weights, bottom-up: OrderedDict ``'layer/weight'`` -> tensor. The
        graph is frozen, so each is the constant its variable became (the converter
        keeps the name ``.../ReadVariableOp/resource``), not a ``tf.Variable``: a weight
        is changed for a run by feeding that tensor (``feed_dict``; TF1 lets any tensor
        be fed), without re-importing the model (the randomisation test does so).
    """

    def __init__(self, sess, meta, graph_def, spec, class_names):
        shape = meta["input"]["shape"]                                   # [H, W, C]
        self.meta, self.name = meta, meta["name"]
        self.preprocess, self.activation = spec, meta["activation"]
        self.notes = list(meta.get("notes", []))
        layer_names = [n for n, _ in meta["layers"]]
        with sess.graph.as_default():
            self.imgs = tf1.placeholder(tf.float32, [None] + shape)      # unnamed
            x = preprocessing.apply_preprocess(self.imgs, spec)
            if meta["input"]["dtype"] != "float32":
                x = tf.cast(x, meta["input"]["dtype"])
            fetched = tf.graph_util.import_graph_def(
                graph_def, input_map={meta["input"]["tensor"]: x},
                return_elements=[meta["logits"]] + [t for _, t in meta["layers"]],
                name=_scope_name(self.name))
            with tf.name_scope(_scope_name(self.name) + "_head"):
                logits = tf.cast(fetched[0], tf.float32)
                if meta["num_outputs"] == 1:
                    # binary: softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)]
                    logits = tf.concat([tf.zeros_like(logits), logits], axis=1)
                self.logits = tf.identity(logits, name="logits")
                self.probs = tf.nn.softmax(self.logits, name="probs")
        self.layers = collections.OrderedDict(zip(layer_names, fetched[1:]))
        self.default_layers = {k: v for k, v in meta.get("default_layers", {}).items()
                               if v in self.layers}
        self.num_classes = int(self.logits.shape[-1])
        self.class_names = class_names
        self.variables = frozen_weights(sess.graph, _scope_name(self.name) + "/",
                                        self.layers)


FROZEN_READ = "/ReadVariableOp/resource"


def frozen_weights(graph, scope, layers=()):
    """The frozen variables of the model imported under ``scope``, in graph order:
    ``'layer/weight'`` -> the constant's tensor, named relative to the variables' common
    prefix, the layer by its Keras name where the graph's is that name plus Keras' call
    suffix (``conv1_1/convolution`` -> ``conv1/convolution``; the weight keeps the name of
    the op that read it)."""
    ops = [op for op in graph.get_operations()
           if op.type == "Const" and op.name.startswith(scope) and op.name.endswith(FROZEN_READ)]
    names = [op.name[:-len(FROZEN_READ)] for op in ops]
    prefix = os.path.commonpath(names) + "/" if len(names) > 1 else scope
    out = collections.OrderedDict()
    for name, op in zip(names, ops):
        rel = name[len(prefix):] if name.startswith(prefix) else name
        layer, _, weight = rel.partition("/")
        bare = re.sub(r"_\d+$", "", layer)
        if bare in layers and layer not in layers:
            layer = bare
        out[f"{layer}/{weight}" if weight else rel] = op.outputs[0]
    return out


def _scope_name(name):
    clean = re.sub(r"[^A-Za-z0-9_.\-]", "_", name or "model")
    return "imported_" + clean


def num_logits(meta):
    return 2 if meta["num_outputs"] == 1 else meta["num_outputs"]


# ------------------------------------------------------------------ entry points

def import_model(sess, path, preprocess=None, labels=None, input_size=None):
    """Import a Keras ``.keras`` / ``.h5`` file or a SavedModel folder into ``sess.graph``.

    Args:
      sess: the ``tf.compat.v1.Session`` whose graph receives the model.
      path: the model file or SavedModel folder (never written).
      preprocess: what the model expects given RGB 0-255 (:mod:`preprocessing`); None for
        the default described in the module docstring.
      labels: class names, a file (one per line) or a list; None for the default.
      input_size: ``(height, width)`` or an int, for a model that accepts any size.
    Returns:
      An :class:`ImportedModel`.
    Raises:
      ValueError: not a model, a model with two inputs or a non-``[None, K]`` output, an
        unknown ``preprocess``, a labels count that is not K, a bad ``input_size``; the
        caller's graph gains no op. FileNotFoundError: no such path or labels file.
    """
    path = os.fspath(path)
    kind = sniff_model(path)
    size = parse_input_size(input_size)
    spec = preprocessing.parse_preprocess(preprocess) if preprocess is not None else None
    entry = ensure_converted([(path, kind, size)])[0]
    meta = _read_meta(entry)
    names = class_names_for(labels, num_logits(meta))
    if spec is None:
        spec, reason = default_preprocess(meta)
        _stderr("{}: preprocess={!r} ({})".format(os.path.basename(path.rstrip("/\\")),
                                                  spec.name, reason))
    preprocessing.check_channels(spec, meta["input"]["shape"][-1])
    graph_def = tf1.GraphDef()
    with open(os.path.join(entry, "graph.pb"), "rb") as f:
        graph_def.ParseFromString(f.read())
    model = ImportedModel(sess, meta, graph_def, spec, names)
    model.source = path
    return model


def load_resnet(sess, arch, weights, preprocess=None, labels=None, input_size=None):
    """A torchvision ResNet-18 / ResNet-50 checkpoint as a model object (see
    :mod:`torchvision_resnet`); the placeholder is unnamed, ``[None, H, W, 3]``
    (default 224 x 224). Everything is read and checked before the graph grows."""
    from attrkit.models import torchvision_resnet
    loaded = torchvision_resnet.read_weights(arch, weights)
    size = parse_input_size(input_size) or [torchvision_resnet.IMAGE_SIZE] * 2
    spec = preprocessing.parse_preprocess("torch" if preprocess is None else preprocess)
    names = class_names_for(labels, loaded[1])
    with sess.graph.as_default():
        imgs = tf1.placeholder(tf.float32, [None] + list(size) + [3])     # unnamed
    model = torchvision_resnet.TorchvisionResNet(arch, loaded, sess, imgs=imgs,
                                                 preprocess=spec)
    model.class_names = names
    return model


def default_preprocess(meta):
    """(Preprocess, reason) for a converted model when ``preprocess`` was not given."""
    if meta.get("preprocessing"):
        return (preprocessing.parse_preprocess("none"),
                "the model has its own {} layers".format("/".join(
                    sorted(set(meta["preprocessing"])))))
    for pattern, name in KERAS_APPLICATION_PREPROCESS:
        if re.search(pattern, meta.get("name") or ""):
            return (preprocessing.parse_preprocess(name),
                    "the model is named {!r} as keras.applications names this family, "
                    "which expects {!r}".format(meta["name"], name))
    return (preprocessing.parse_preprocess("none"),
            "no preprocessing layers found: the model gets RGB 0-255 as it is; pass "
            "preprocess='unit', 'tf', 'caffe', 'torch' or (mean, std) if it was trained "
            "on scaled images")


def parse_input_size(value):
    """None, an int or a pair of positive ints -> None or [H, W]."""
    if value is None:
        return None
    items = [value, value] if isinstance(value, int) else value
    ok = (isinstance(items, (list, tuple)) and len(items) == 2
          and all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in items))
    if not ok:
        raise ValueError(INPUT_SIZE_ERROR.format(actual=value))
    return [int(i) for i in items]


# ------------------------------------------------------------------ class names

def read_labels_file(path):
    """Class names from a text file, one per line in index order (blank lines at the end
    ignored, surrounding spaces stripped)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(LABELS_FILE_ERROR.format(path=path))
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f.read().splitlines()]
    while names and not names[-1]:
        names.pop()
    return names


def default_class_names(k):
    """ImageNet's names when K = 1000, else ``class 0`` ... ``class K-1``."""
    if k == 1000:
        from imagenet_classes import class_names
        return list(class_names)
    return ["class {}".format(i) for i in range(k)]


def class_names_for(labels, k):
    """The K class names from ``labels`` (a file path, a list, or None for the default).

    Raises:
      ValueError: a count that is not K (LABELS_COUNT_ERROR), or a ``labels`` of another
        type. FileNotFoundError: no such labels file.
    """
    if labels is None:
        return default_class_names(k)
    if isinstance(labels, (str, os.PathLike)):
        names, source = read_labels_file(labels), "the file {}".format(os.fspath(labels))
    elif isinstance(labels, (list, tuple)) and all(isinstance(n, str) for n in labels):
        names, source = list(labels), "the list"
    else:
        raise ValueError(LABELS_TYPE_ERROR.format(actual=type(labels).__name__))
    if len(names) != k:
        raise ValueError(LABELS_COUNT_ERROR.format(source=source, count=len(names), k=k))
    return names


# ------------------------------------------------------------------ what a path holds

def is_model_path(value):
    """Whether ``name_or_path`` means a file or folder rather than a model name."""
    if not isinstance(value, (str, os.PathLike)):
        return False
    text = os.fspath(value)
    return (os.path.exists(text) or os.sep in text or "/" in text
            or text.lower().endswith(MODEL_SUFFIXES))


def sniff_model(path):
    """'keras', 'h5' or 'savedmodel' from the path's contents; else a clear error."""
    if not os.path.exists(path):
        raise FileNotFoundError(MISSING_PATH_ERROR.format(path=path))
    if os.path.isdir(path):
        if any(os.path.isfile(os.path.join(path, n))
               for n in ("saved_model.pb", "saved_model.pbtxt")):
            return "savedmodel"
        raise ValueError(NOT_A_MODEL_ERROR.format(
            path=path, what="a folder without saved_model.pb"))
    with open(path, "rb") as f:
        head = f.read(8)
    if head == HDF5_MAGIC:
        return "h5"
    if head.startswith(LEGACY_TORCH_MAGIC):
        raise ValueError(TORCH_FILE_ERROR.format(path=path))
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except zipfile.BadZipFile:
            names = []
        if "config.json" in names:
            return "keras"
        if any(n.endswith("/data.pkl") for n in names):
            raise ValueError(TORCH_FILE_ERROR.format(path=path))
        return _not_a_model(path, "a zip archive without a Keras config.json")
    return _not_a_model(path, "neither (its first bytes are {!r})".format(head))


def _not_a_model(path, what):
    raise ValueError(NOT_A_MODEL_ERROR.format(path=path, what=what))


# ------------------------------------------------------------------ the cache

def cache_root():
    """The cache folder: $HW3_CACHE_DIR, else $XDG_CACHE_HOME/hw3_toolkit, else
    ~/.cache/hw3_toolkit."""
    if os.environ.get(CACHE_ENV):
        return os.path.abspath(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hw3_toolkit")


def content_hash(path):
    """sha256 of a file's bytes, or of a folder's relative paths and bytes, in order."""
    digest = hashlib.sha256()
    if os.path.isdir(path):
        files = sorted(os.path.relpath(os.path.join(d, f), path).replace(os.sep, "/")
                       for d, _, fs in os.walk(path) for f in fs)
    else:
        files = [None]
    for rel in files:
        full = path if rel is None else os.path.join(path, rel)
        if rel is not None:
            digest.update(rel.encode() + b"\0")
        with open(full, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def cache_key(path, kind, input_size):
    from importlib.metadata import version
    from attrkit.models.model_convert import CONVERTER_VERSION
    parts = [CONVERTER_VERSION, tf.__version__, version("keras"), kind,
             "x".join(map(str, input_size or [])), content_hash(path)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def _read_meta(entry):
    with open(os.path.join(entry, "meta.json")) as f:
        return json.load(f)


def ensure_converted(jobs):
    """Convert what is not cached yet, all in one child process; return the entries.

    A model the converter refuses (two inputs, an output that is not ``[None, K]``, ...)
    is cached as such (``error.json``): the same bytes are refused at once next time.

    Args:
      jobs: ``[(path, kind, input_size), ...]`` (kind from :func:`sniff_model`).
    Returns:
      The cache folder of each job, in order (each holds graph.pb and meta.json).
    Raises:
      ValueError (or RuntimeError): the converter's message for the first job it could
      not convert, after every other job's entry is in place; no half-written entry is
      left.
    """
    root = os.path.join(cache_root(), "models")
    os.makedirs(root, exist_ok=True)
    entries, todo = [], []
    for path, kind, size in jobs:
        entry = os.path.join(root, cache_key(path, kind, size))
        entries.append(entry)
        if not any(os.path.isfile(os.path.join(entry, n)) for n in ("meta.json", ERROR_FILE)):
            todo.append({"path": os.path.abspath(path), "kind": kind, "input_size": size,
                         "out": tempfile.mkdtemp(prefix=".tmp-", dir=root), "entry": entry})
    errors = []
    try:
        if todo:
            _run_converter(todo)
        for job in todo:
            try:
                _install(job)
            except RuntimeError as exc:          # not cached: may not happen again
                errors.append(exc)
    finally:
        for job in todo:
            shutil.rmtree(job["out"], ignore_errors=True)
    for (path, _, _), entry in zip(jobs, entries):
        if os.path.isfile(os.path.join(entry, ERROR_FILE)):
            errors.insert(0, ValueError(_cached_error(entry, path)))
            break
    if errors:
        raise errors[0]
    return entries


def _cached_error(entry, path):
    with open(os.path.join(entry, ERROR_FILE)) as f:
        return json.load(f)["message"].replace(PATH_TOKEN, os.path.abspath(path))


def _run_converter(todo):
    request = os.path.join(todo[0]["out"], "request.json")
    with open(request, "w") as f:
        json.dump({"jobs": todo}, f)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2",
               CUDA_VISIBLE_DEVICES="-1")   # conversion runs on the CPU
    proc = subprocess.run([sys.executable, CONVERTER, request], env=env,
                          capture_output=True, text=True, timeout=DEFAULT_CHILD_TIMEOUT)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(CHILD_ERROR.format(paths=", ".join(j["path"] for j in todo),
                                              rc=proc.returncode, tail=tail))


def _install(job):
    """Rename a finished conversion (or a refusal, ValueError) into place; raise any
    other error the converter reported."""
    out = job["out"]
    error = os.path.join(out, ERROR_FILE)
    if os.path.isfile(error):
        with open(error) as f:
            err = json.load(f)
        if err["type"] != "ValueError":
            raise RuntimeError(err["message"])
        err["message"] = err["message"].replace(job["path"], PATH_TOKEN)
        with open(error, "w") as f:
            json.dump(err, f)
    else:
        for name in ("graph.pb", "meta.json"):
            if not os.path.isfile(os.path.join(out, name)):
                raise RuntimeError("converting {}: the converter wrote no {}".format(
                    job["path"], name))
    request = os.path.join(out, "request.json")
    if os.path.exists(request):
        os.remove(request)
    try:
        os.rename(out, job["entry"])            # atomic: an entry is whole or absent
    except OSError:
        if not os.path.isdir(job["entry"]):
            raise                               # (else another process was first)
