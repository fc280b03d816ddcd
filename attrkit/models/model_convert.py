"""Convert a Keras model file or a SavedModel to a frozen, gradient-ready GraphDef.

This is the half of the model import that needs eager TensorFlow and Keras 3. It runs in
a child process that :mod:`model_import` starts with ``sys.executable``, so it works the
same whether or not the caller disabled eager execution (under
``disable_eager_execution()`` Keras 3 loads a model as KerasTensors, not TF tensors)::

    python attrkit/models/model_convert.py REQUEST.json

REQUEST.json: ``{"jobs": [{"path": ..., "kind": "keras"|"h5"|"savedmodel",
"input_size": [H, W] or null, "out": FOLDER}, ...]}``. For each job it writes, into
``FOLDER`` (a fresh temporary folder of the cache that the parent renames into place):

- ``graph.pb``: the model frozen (as ``convert_variables_to_constants_v2`` does) and
  rewritten by
  :func:`graph_rewrite.rewrite_for_gradients`, its input a placeholder;
- ``meta.json``: the input tensor and shape ``[H, W, C]``, the output tensor, the logits
  tensor and the final activation peeled off (``softmax``, ``sigmoid`` or ``none``), every
  named layer's tensor in order (Keras names), the default layers for Grad-CAM and
  influence, whether the model preprocesses by itself, notes, and the check below;
- or ``error.json`` (``{"type": "ValueError", "message": ...}``) for a model that cannot
  be imported (two inputs, a non-``[None, K]`` output, not a full model ...).

Every conversion is checked before it is written: the rewritten graph, imported into a
fresh TF1 graph, must reproduce the model's eager output on random input (to 1e-4 of its
scale) and give a finite input gradient.
"""
import json
import os
import re
import sys
import time

import numpy as np
import tensorflow as tf

if not __package__:      # run as a script by model_import: the project's root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
from attrkit.models import graph_rewrite  # noqa: E402

CONVERTER_VERSION = "2"
PREPROCESSING_LAYERS = ("Rescaling", "Normalization")
ACTIVATION_LAYERS = ("Activation", "Softmax", "ReLU")
# A SavedModel's layer named as Keras names Rescaling / Normalization layers (not
# batch_normalization or layer_normalization).
PREPROCESSING_NAME = re.compile(r"(^|_)(?<!batch_)(?<!layer_)(rescaling|normalization)(_\d+)?$")
CHECK_TOLERANCE = 1e-4

# Error messages, kept as data so that tests match the same templates.
INPUTS_ERROR = ("name_or_path: {path} has {count} inputs; expected a model with one image "
                "input [None, H, W, C]")
INPUT_SHAPE_ERROR = ("name_or_path: {path} takes input of shape {actual}; expected one image "
                     "input [None, H, W, C]")
INPUT_DTYPE_ERROR = ("name_or_path: {path} takes {actual} input; expected a float image "
                     "input")
OUTPUTS_ERROR = ("name_or_path: {path} has {count} outputs; expected one output [None, K] "
                 "(class scores)")
OUTPUT_SHAPE_ERROR = ("name_or_path: {path} outputs shape {actual}; expected [None, K] "
                      "(class scores)")
SIZE_NEEDED_ERROR = ("input_size: {path} accepts images of any size (input {actual}); pass "
                     "input_size=(height, width)")
SIZE_MISMATCH_ERROR = ("input_size: {path} takes {expected} images; got input_size="
                       "{actual}")
NOT_FULL_MODEL_ERROR = ("name_or_path: {path} holds no model architecture (a weights-only "
                        "file?); expected a full model saved with model.save() ({reason})")
LOAD_ERROR = "name_or_path: Keras cannot load {path}: {reason}"
SIGNATURE_ERROR = ("name_or_path: the SavedModel {path} has no serving signature "
                   "(found {found}); expected 'serving_default' (model.export() or "
                   "tf.saved_model.save(..., signatures=...))")
CHECK_ERROR = ("the converted graph of {path} does not reproduce the model: {problem} "
               "(please report this)")


# Loaded SavedModels own the variables that their functions read: kept alive until exit.
_LOADED = []


class UserError(ValueError):
    """A model that cannot be imported; its message goes back to the caller."""


# ------------------------------------------------------------------ entry point

def main(request_path):
    with open(request_path) as f:
        jobs = json.load(f)["jobs"]
    for job in jobs:
        try:
            convert(job["path"], job["kind"], job.get("input_size"), job["out"])
        except UserError as exc:
            _write_json(os.path.join(job["out"], "error.json"),
                        {"type": "ValueError", "message": str(exc)})
        except Exception as exc:  # any other failure: say what it was, keep going
            _write_json(os.path.join(job["out"], "error.json"),
                        {"type": "RuntimeError", "message": "converting {}: {}: {}".format(
                            job["path"], type(exc).__name__, exc)})


def _write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def convert(path, kind, input_size, out):
    """Convert one model file into ``out/graph.pb`` and ``out/meta.json``."""
    start = time.perf_counter()
    if kind == "savedmodel":
        fn, meta, reference = _savedmodel_function(path, input_size)
    else:
        fn, meta, reference = _keras_function(path, input_size)
    graph_def, stats = graph_rewrite.rewrite_for_gradients(freeze(fn))
    meta["input"]["tensor"] = fn.inputs[0].name          # the image; captures follow
    names = [t.name for t in fn.outputs]
    meta["output"] = names[0]
    if kind == "savedmodel":
        meta["layers"], meta["default_layers"], model_name = _scope_layers(graph_def, names[0])
        meta["name"] = model_name or meta["name"]
        meta["preprocessing"] = [n for n, _ in meta["layers"] if PREPROCESSING_NAME.search(n)]
    else:
        # the function's outputs are Identity ops beside the model; a layer is the tensor
        # they read, on the path to the logits (so gradients reach it)
        nodes = {n.name: n for n in graph_def.node}
        meta["layers"] = [[n, _source(nodes, t)]
                          for n, t in zip(meta.pop("layer_names"), names[1:])]
    meta["logits"], meta["activation"] = _peel(graph_def, names[0])
    meta["rewrites"] = stats
    meta["check"] = _check(graph_def, meta, reference, path)
    meta.update(converter_version=CONVERTER_VERSION, tf_version=tf.__version__,
                seconds=round(time.perf_counter() - start, 2),
                graph_bytes=graph_def.ByteSize())
    with open(os.path.join(out, "graph.pb"), "wb") as f:
        f.write(graph_def.SerializeToString())
    _write_json(os.path.join(out, "meta.json"), meta)


def freeze(fn):
    """The GraphDef of concrete function ``fn`` with its variables as constants.

    What ``convert_variables_to_constants_v2`` computes, without its last step (building
    a new ConcreteFunction from the GraphDef, a third of the time for ResNet50); node
    names stay those of ``fn.graph``, so ``fn.inputs[0]`` and ``fn.outputs`` name the
    input and outputs.
    """
    from tensorflow.python.framework import convert_to_constants as c
    data = c._FunctionConverterDataInEager(func=fn, lower_control_flow=True,
                                           aggressive_inlining=False)
    graph_def, _ = c._replace_variables_by_constants(converter_data=data)
    return graph_def


# ------------------------------------------------------------------ Keras files

def _load_keras(path):
    """The Keras model in ``path`` (not compiled); a file Keras cannot read is a UserError
    with Keras' own first line (e.g. ``Unknown layer: 'LayerScale'``)."""
    import keras
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:
        text = str(exc).strip()
        reason = "{}: {}".format(type(exc).__name__, text.splitlines()[0] if text else "")
        if "no model config" in text.lower():        # an .h5 of weights only
            raise UserError(NOT_FULL_MODEL_ERROR.format(path=path, reason=reason)) from None
        raise UserError(LOAD_ERROR.format(path=path, reason=reason)) from None


def _image_spec(path, shape, dtype, input_size):
    """The traced input TensorSpec [None, H, W, C] from a model's input shape."""
    shape = list(shape)
    if len(shape) != 4 or shape[-1] is None:
        raise UserError(INPUT_SHAPE_ERROR.format(path=path, actual=_fmt(shape)))
    if not tf.as_dtype(dtype).is_floating:
        raise UserError(INPUT_DTYPE_ERROR.format(path=path, actual=tf.as_dtype(dtype).name))
    if shape[1] is None or shape[2] is None:
        if input_size is None:
            raise UserError(SIZE_NEEDED_ERROR.format(path=path, actual=_fmt(shape)))
        shape[1:3] = input_size
    elif input_size is not None and list(input_size) != shape[1:3]:
        raise UserError(SIZE_MISMATCH_ERROR.format(path=path, expected="x".join(
            map(str, shape[1:3])), actual=tuple(input_size)))
    return tf.TensorSpec([None] + shape[1:], tf.as_dtype(dtype))


def _fmt(shape):
    return "[" + ", ".join("None" if s is None else str(s) for s in shape) + "]"


def _check_output(path, shapes):
    if len(shapes) != 1:
        raise UserError(OUTPUTS_ERROR.format(path=path, count=len(shapes)))
    shape = list(shapes[0])
    if len(shape) != 2 or shape[1] is None:
        raise UserError(OUTPUT_SHAPE_ERROR.format(path=path, actual=_fmt(shape)))
    return int(shape[1])


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def _keras_function(path, input_size):
    """(concrete function [output, layer outputs...], meta, reference fn) of a Keras file."""
    import keras
    model = _load_keras(path)
    meta = {"name": model.name, "class": type(model).__name__, "notes": [],
            "preprocessing": [layer.__class__.__name__ for layer in _all_layers(model)
                              if layer.__class__.__name__ in PREPROCESSING_LAYERS]}
    if not (isinstance(model, keras.Sequential) or hasattr(model, "_run_through_graph")):
        return _subclassed_function(path, model, input_size, meta)
    inputs, outputs = list(model.inputs), list(model.outputs)
    if len(inputs) != 1:
        raise UserError(INPUTS_ERROR.format(path=path, count=len(inputs)))
    spec = _image_spec(path, inputs[0].shape, inputs[0].dtype, input_size)
    k = _check_output(path, [o.shape for o in outputs])
    names, tensors = _named_layers(model)
    defaults = _keras_defaults(model, names, tensors)      # may add a layer
    multi = keras.Model(inputs, outputs + tensors)
    fn = tf.function(lambda x: multi(x, training=False)).get_concrete_function(spec)
    meta.update(input={"shape": spec.shape.as_list()[1:], "dtype": spec.dtype.name},
                num_outputs=k, layer_names=names, default_layers=defaults)
    return fn, meta, lambda x: model(x, training=False).numpy()


def _subclassed_function(path, model, input_size, meta):
    """A subclassed model: traced from its build shape; logits only, no named layers."""
    shape = (model.get_build_config() or {}).get("input_shape")
    if shape is None:
        raise UserError(INPUT_SHAPE_ERROR.format(path=path, actual="unknown (a subclassed "
                                                 "model that was never built)"))
    spec = _image_spec(path, shape, "float32", input_size)
    fn = tf.function(lambda x: [model(x, training=False)]).get_concrete_function(spec)
    k = _check_output(path, [fn.outputs[0].shape])
    meta["notes"].append("a subclassed Keras model: only its logits are imported; its inner "
                         "layers are not named (build it as a functional or Sequential model "
                         "to name them)")
    meta.update(input={"shape": spec.shape.as_list()[1:], "dtype": spec.dtype.name},
                num_outputs=k, layer_names=[], default_layers={})
    return fn, meta, lambda x: model(x, training=False).numpy()


def _named_layers(model):
    """(names, KerasTensors) of the top-level layers with one output each, in order; each
    tensor is the layer's output on the path from the model's input to its outputs (a
    layer called more than once, as a loaded Sequential's are, has other outputs that a
    trace would compute beside the logits, and gradients would not reach them)."""
    on_path = _path_outputs(model)
    names, tensors = [], []
    for layer in model.layers:
        if layer.__class__.__name__ == "InputLayer":
            continue
        out = on_path.get(id(layer))
        if out is None:
            try:
                out = layer.output
            except (AttributeError, ValueError):   # shared layer, or never called
                continue
        if isinstance(out, (list, tuple, dict)):
            continue
        names.append(layer.name)
        tensors.append(out)
    return names, tensors


def _path_outputs(model):
    """``{id(layer): KerasTensor}``: what each layer outputs on the way from the model's
    inputs to its outputs, found by walking back through the Keras history."""
    found, seen, stack = {}, set(), list(model.outputs)
    while stack:
        tensor = stack.pop()
        history = getattr(tensor, "_keras_history", None)
        if history is None or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        op, node_index = history[0], history[1]
        found.setdefault(id(op), tensor)
        nodes = getattr(op, "_inbound_nodes", [])
        if node_index < len(nodes):
            stack.extend(nodes[node_index].input_tensors)
    return found


def _producer(tensor):
    """(operation, its first input KerasTensor or None) that made a KerasTensor."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None, None
    op = history[0]
    nodes = getattr(op, "_inbound_nodes", [])
    inputs = nodes[history[1]].input_tensors if len(nodes) > history[1] else []
    return op, (inputs[0] if inputs else None)


def _keras_defaults(model, names, tensors):
    """{'gradcam': ..., 'influence': ...}, adding to ``names`` / ``tensors`` when needed.

    influence: the classifier's input (the layer that feeds the last layer, stepping back
    over a final Activation / Softmax layer); gradcam: the last 4-D activation, i.e. the
    first 4-D tensor found walking back from the classifier's input (what the global
    pooling reads: ConvNeXt's is a residual sum, an operation that is no layer, which then
    joins the layers under its operation's name), else the last 4-D layer. Tensors are
    matched to layers by the operation that made them.
    """
    defaults = {}
    op, source = _producer(model.outputs[0])
    for _ in range(2):   # Dense -> Activation('softmax'): step back over the activation
        if op is None or op.__class__.__name__ not in ACTIVATION_LAYERS:
            break
        op, source = _producer(source)
    maker = _producer(source)[0] if source is not None else None
    if maker is not None and maker.name in names:
        defaults["influence"] = maker.name
    consumer = op
    for _ in range(50):
        if source is None or len(source.shape) == 4:
            break
        consumer, source = _producer(source)
    if source is not None and len(source.shape) == 4:
        maker = _producer(source)[0]
        if maker is not None and maker.name not in names:
            # an operation that is no layer: it joins them just before what reads it
            at = names.index(consumer.name) if consumer.name in names else len(names)
            names.insert(at, maker.name)
            tensors.insert(at, source)
        if maker is not None:
            defaults["gradcam"] = maker.name
    if "gradcam" not in defaults:
        four_d = [n for n, t in zip(names, tensors) if len(t.shape) == 4]
        if four_d:
            defaults["gradcam"] = four_d[-1]
    return defaults


# ------------------------------------------------------------------ SavedModels

def _savedmodel_function(path, input_size):
    loaded = tf.saved_model.load(path)
    _LOADED.append(loaded)
    signatures = dict(loaded.signatures)
    if "serving_default" not in signatures:
        raise UserError(SIGNATURE_ERROR.format(path=path, found=sorted(signatures) or "none"))
    fn = signatures["serving_default"]
    args = fn.structured_input_signature[1]
    if len(args) != 1 or fn.structured_input_signature[0]:
        raise UserError(INPUTS_ERROR.format(path=path, count=len(args) + len(
            fn.structured_input_signature[0])))
    arg_name, arg = next(iter(args.items()))
    spec = _image_spec(path, arg.shape, arg.dtype, input_size)
    outputs = fn.structured_outputs
    k = _check_output(path, [o.shape for o in tf.nest.flatten(outputs)])
    out_key = next(iter(outputs)) if isinstance(outputs, dict) else None

    def call(x):
        result = fn(**{arg_name: x})
        return result[out_key] if out_key is not None else tf.nest.flatten(result)[0]

    traced = tf.function(call).get_concrete_function(spec)
    meta = {"name": os.path.basename(os.path.normpath(path)), "class": "SavedModel",
            "notes": ["layer names come from the name scopes of the serving function "
                      "(Keras names its layers' ops after the layers)"],
            "input": {"shape": spec.shape.as_list()[1:], "dtype": spec.dtype.name},
            "num_outputs": k, "preprocessing": []}
    return traced, meta, lambda x: call(tf.constant(x)).numpy()


def _scope_layers(graph_def, output):
    """Layers of a SavedModel from its ops' name scopes: ([[name, tensor], ...], defaults,
    the model's name).

    Keras runs each layer under a name scope named after the layer; the scopes one level
    below the model's are its layers, and a layer's tensor is its last op (in graph order)
    that an op outside the scope reads.
    """
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    ops = [op for op in graph.get_operations() if op.type not in ("Const", "NoOp")]
    paths = [op.name.split("/") for op in ops if "/" in op.name  # compute ops only
             and op.type not in ("Identity", "IdentityN", "Placeholder")]
    prefix, depth = _model_depth(paths)
    if not paths:
        return [], {}, None
    # an op directly in the model's scope (a residual sum, not a layer) is its own scope
    scope_of = {op.name: "/".join(op.name.split("/")[:depth + 1]) for op in ops
                if len(op.name.split("/")) > depth and op.name.split("/")[:depth] == prefix
                and op.type not in ("Identity", "Placeholder")}
    last = {}
    for op in ops:
        scope = scope_of.get(op.name)
        if scope is None:
            continue
        for t in op.outputs:
            if t.dtype.is_floating and any(scope_of.get(c.name) != scope
                                           for c in t.consumers()):
                last[scope] = t
    order = list(dict.fromkeys(s for s in (scope_of.get(op.name) for op in ops) if s))
    suffix = _common_suffix([s.split("/")[-1] for s in order])
    layers = [[_strip(s.split("/")[-1], suffix), last[s].name] for s in order if s in last]
    model_name = re.sub(r"_\d+$", "", prefix[-1]) if prefix else None
    return layers, _scope_defaults(graph, layers, output), model_name


def _model_depth(paths):
    """(prefix, depth) of the model's scope: the longest run of scopes that nearly all
    deeper ops share (the inlining leaves a few ``Func/...`` ops outside it); the layers
    are the first level where no scope holds 90% of the ops below."""
    prefix = []
    while True:
        below = [p[len(prefix)] for p in paths
                 if len(p) > len(prefix) + 1 and p[:len(prefix)] == prefix]
        if not below:
            return prefix, len(prefix)
        top = max(set(below), key=below.count)
        if below.count(top) < 0.9 * len(below):     # several layers: this is the level
            return prefix, len(prefix)
        prefix.append(top)


def _common_suffix(names):
    """The "_<n>" suffix that TF's name scoping added to most layer scopes."""
    found = [m.group(0) for m in (re.search(r"_\d+$", n) for n in names) if m]
    if not found:
        return ""
    top = max(set(found), key=found.count)
    return top if found.count(top) >= 0.5 * len(names) else ""


def _strip(name, suffix):
    return name[:-len(suffix)] if suffix and name.endswith(suffix) else name


def _scope_defaults(graph, layers, output):
    """Defaults of a SavedModel, searched breadth-first back from the classifier (the
    MatMul nearest the output): influence is the nearest layer tensor of rank 2, gradcam
    the nearest of rank 4 (the last 4-D activation), else the last 4-D layer."""
    defaults = {}
    by_tensor = {t: n for n, t in layers}
    op = graph.get_tensor_by_name(output).op
    for _ in range(20):
        if op.type == "MatMul" or not op.inputs:
            break
        op = op.inputs[0].op
    queue = [op.inputs[0]] if op.type == "MatMul" else []
    seen = set()
    while queue and "gradcam" not in defaults:
        t = queue.pop(0)
        if t.name in seen:
            continue
        seen.add(t.name)
        rank = t.shape.rank
        if t.name in by_tensor and rank == 2:
            defaults.setdefault("influence", by_tensor[t.name])
        if t.name in by_tensor and rank == 4:
            defaults["gradcam"] = by_tensor[t.name]
        queue += [i for i in t.op.inputs if i.dtype.is_floating]
    if "gradcam" not in defaults:
        four_d = [n for n, t in layers if graph.get_tensor_by_name(t).shape.rank == 4]
        if four_d:
            defaults["gradcam"] = four_d[-1]
    return defaults


# ------------------------------------------------------------------ activation and check

def _source(nodes, tensor):
    """The tensor that the output Identity ``tensor`` reads ('a/Relu:0')."""
    node = nodes[tensor.split(":")[0]]
    if node.op != "Identity":
        return tensor
    src = node.input[0]
    return src if ":" in src else src + ":0"


def _peel(graph_def, output):
    """(logits tensor name, activation): the input of a final Softmax / Sigmoid."""
    nodes = {n.name: n for n in graph_def.node}
    name = output.split(":")[0]
    while nodes[name].op == "Identity":
        name = nodes[name].input[0].split(":")[0]
    node = nodes[name]
    if node.op in ("Softmax", "Sigmoid"):
        src = node.input[0]
        return (src if ":" in src else src + ":0"), node.op.lower()
    return output, "none"


def _check(graph_def, meta, reference, path):
    """Run the rewritten graph in TF1 mode against the eager model on random input."""
    shape = meta["input"]["shape"]
    rng = np.random.default_rng(0)    # an image in 0-255, and one in -1..1 (preprocessed)
    x = np.concatenate([rng.uniform(0, 255, [1] + shape), rng.uniform(-1, 1, [1] + shape)]
                       ).astype(meta["input"]["dtype"])
    expected = reference(x)
    graph = tf.Graph()
    with graph.as_default():
        out, logits, inp = tf.graph_util.import_graph_def(
            graph_def, return_elements=[meta["output"], meta["logits"], meta["input"]["tensor"]],
            name="")
        try:
            grad = tf.gradients(tf.reduce_sum(logits), inp)[0]
        except (LookupError, ValueError) as exc:   # no gradient, or one from another graph
            raise RuntimeError(CHECK_ERROR.format(path=path, problem=exc)) from None
        # Grappler's rewrites are for repeated runs; this one run would spend most of its
        # time on them (2 of ResNet50's 6 seconds), and the check is of the graph's math
        config = tf.compat.v1.ConfigProto()
        config.graph_options.rewrite_options.disable_meta_optimizer = True
        with tf.compat.v1.Session(graph=graph, config=config) as sess:
            got, g = sess.run([out, grad], {inp: x})
    scale = max(float(np.abs(expected).max()), 1e-30)
    diff = float(np.abs(got - expected).max())
    if not diff <= CHECK_TOLERANCE * scale or not np.all(np.isfinite(g)):
        raise RuntimeError(CHECK_ERROR.format(
            path=path, problem="max |difference| {:.3g} at scale {:.3g}, gradient finite: "
            "{}".format(diff, scale, bool(np.all(np.isfinite(g))))))
    return {"max_abs_diff": diff, "scale": scale}


if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = "tensorflow"   # before keras is first imported
    main(sys.argv[1])
