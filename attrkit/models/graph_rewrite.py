"""Rewrite a frozen TensorFlow GraphDef so that ``tf.gradients`` goes through every op.

A Keras 3 model or SavedModel frozen with ``convert_variables_to_constants_v2`` runs
forward when imported into another graph, but three things stop gradients there:

1. **Function calls** (``PartitionedCall`` / ``StatefulPartitionedCall``): Keras 3 runs a
   grouped convolution on CPU through an XLA-compiled ``tf.function``
   (``_XlaMustCompile``, ``_noinline``), which freezing leaves as a call. Gradients
   through a call go via ``SymbolicGradient``, which fails on several ops.
   :func:`inline_calls` pastes each called function's body in place of the call.
2. **Grouped convolutions**: a ``Conv2D`` whose input has ``groups`` times the filter's
   input channels. TensorFlow has no CPU gradient for it outside XLA.
   :func:`ungroup_convolutions` turns ``groups == channels`` into
   ``DepthwiseConv2dNative`` (the filter ``[kh, kw, 1, C*m]`` reshaped to
   ``[kh, kw, C, m]``: output channel ``c*m + j`` is the same in both) and any other
   grouping into split / ``Conv2D`` per group / concat.
3. **Custom gradients**: ``tf.custom_gradient`` (Keras' swish, ``tf.nn.silu``) emits an
   ``IdentityN`` whose ``_gradient_op_type`` names a gradient function registered only in
   the graph it was traced in. :func:`drop_custom_gradients` removes that attribute:
   ``IdentityN``'s registered gradient passes the gradient through to the forward ops,
   which are in the graph, so the gradient becomes the derivative of the forward
   computation (for swish exactly the custom one, which only saves memory).

:func:`clear_devices` also removes device pins left from tracing. :func:`rewrite_for_gradients`
runs all four and returns the new GraphDef and what it changed. The rewrites use only
GraphDef protos and shape inference on an imported copy; they run in any TF1 or TF2
process.
"""
import copy

import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2, graph_pb2
from tensorflow.python.framework import function_def_to_graph, tensor_util

CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall")
CONV_ATTRS = ("T", "strides", "padding", "explicit_paddings", "data_format", "dilations")

INLINE_ERROR = "cannot inline {op} {name!r}: {problem}"


def rewrite_for_gradients(graph_def):
    """All rewrites in order: ``(new GraphDef, {'inlined': n, 'depthwise': n, 'grouped':
    n, 'custom_gradients': n})``. ``graph_def`` is not modified."""
    gd = copy.deepcopy(graph_def)
    stats = {"inlined": inline_calls(gd)}
    stats["custom_gradients"] = drop_custom_gradients(gd)
    depthwise, grouped = ungroup_convolutions(gd)
    stats["depthwise"], stats["grouped"] = depthwise, grouped
    clear_devices(gd)
    return gd, stats


# ------------------------------------------------------------------ function calls

def _split_input(name):
    """'^a' -> ('a', None, True); 'a:2' -> ('a', 2, False); 'a' -> ('a', 0, False)."""
    if name.startswith("^"):
        return name[1:], None, True
    node, _, index = name.partition(":")
    return node, int(index) if index else 0, False


def inline_calls(gd):
    """Replace every call of a library function by the function's body, in place.

    Body nodes are named ``<call>/<node>``; the function's arguments become the call's
    inputs, consumers of ``<call>:i`` read the body's i-th result, and a control input on
    the call waits for the body's results. Nested calls are inlined in later rounds.
    Returns the number of calls inlined.
    """
    functions = {f.signature.name: f for f in gd.library.function}
    count = 0
    while True:
        calls = [k for k, n in enumerate(gd.node) if n.op in CALL_OPS]
        if not calls:
            break
        existing = {n.name for n in gd.node}
        results, new_nodes = {}, []
        for k in calls:
            body, outs = _inline_body(gd.node[k], functions, existing)
            new_nodes += body
            results[gd.node[k].name] = outs
        for k in reversed(calls):       # in place: the big constants are never copied
            del gd.node[k]
        gd.node.extend(new_nodes)
        _redirect(gd, results)
        count += len(calls)
    del gd.library.function[:]
    return count


def _inline_body(call, functions, existing):
    """(body nodes named '<call>/...', the call's results as graph tensor names)."""
    fname = call.attr["f"].func.name
    if fname not in functions:
        raise ValueError(INLINE_ERROR.format(op=call.op, name=call.name,
                                             problem="function {} not in the library"
                                             .format(fname)))
    fdef = functions[fname]
    body, nested = function_def_to_graph.function_def_to_graph_def(fdef)
    data_inputs = [i for i in call.input if not i.startswith("^")]
    controls = [i for i in call.input if i.startswith("^")]
    args = {a.name: data_inputs[k] for k, a in enumerate(fdef.signature.input_arg)}
    prefix = call.name + "/"

    def rename(inp):
        node, index, control = _split_input(inp)
        if node in args:
            target = args[node]
            return "^" + _split_input(target)[0] if control else target
        return ("^" if control else "") + prefix + node + ("" if control else
                                                            ":{}".format(index))

    new_nodes = []
    for n in body.node:
        if n.name in args:
            continue
        m = copy.deepcopy(n)
        m.name = prefix + n.name
        if m.name in existing:
            raise ValueError(INLINE_ERROR.format(op=call.op, name=call.name,
                                                 problem="node {} exists".format(m.name)))
        m.input[:] = [rename(i) for i in n.input]
        if not any(not i.startswith("^") for i in m.input):
            m.input.extend(controls)      # ops fed by nothing wait as the call did
        new_nodes.append(m)
    outs = [rename(nested.get(fdef.ret[o.name], fdef.ret[o.name]))
            for o in fdef.signature.output_arg]
    return new_nodes, outs


def _redirect(gd, results):
    """Consumers of removed node ``old`` read ``results[old][i]`` for ``old:i``; a
    control input on it waits for its first result's node."""
    for n in gd.node:
        if not any(_split_input(i)[0] in results for i in n.input):
            continue
        inputs = []
        for inp in n.input:
            node, index, control = _split_input(inp)
            if node not in results:
                inputs.append(inp)
            elif control:
                if results[node]:
                    inputs.append("^" + _split_input(results[node][0])[0])
            else:
                inputs.append(results[node][index])
        del n.input[:]
        n.input.extend(dict.fromkeys(inputs))   # no duplicate control inputs


# ------------------------------------------------------------------ custom gradients

def drop_custom_gradients(gd):
    """Remove ``_gradient_op_type`` from IdentityN nodes; return how many."""
    count = 0
    for n in gd.node:
        if n.op == "IdentityN" and "_gradient_op_type" in n.attr:
            del n.attr["_gradient_op_type"]
            count += 1
    return count


def clear_devices(gd):
    for n in gd.node:
        n.device = ""


# ------------------------------------------------------------------ grouped convolutions

def _shapes(gd):
    """{tensor name: TensorShape} of every Conv2D's input and filter (shape inference)."""
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(gd, name="")
    out = {}
    for op in graph.get_operations():
        if op.type == "Conv2D":
            out[op.name] = (op.inputs[0].shape, op.inputs[1].shape,
                            op.get_attr("data_format").decode())
    return out


def ungroup_convolutions(gd):
    """Rewrite grouped Conv2D nodes in place; return (depthwise count, split count)."""
    shapes = _shapes(gd)
    depthwise = grouped = 0
    extra = []
    for n in gd.node:
        if n.name not in shapes:
            continue
        x_shape, w_shape, fmt = shapes[n.name]
        channels = x_shape[1 if fmt == "NCHW" else -1]
        per_group = w_shape[2]
        if channels is None or per_group is None or channels == per_group:
            continue
        if channels % per_group:
            raise ValueError("Conv2D {}: {} input channels are not a multiple of the "
                             "filter's {}".format(n.name, channels, per_group))
        groups = channels // per_group
        out_ch = w_shape[3]
        if per_group == 1 and fmt == "NHWC":
            extra += _to_depthwise(n, w_shape, channels, out_ch // channels)
            depthwise += 1
        else:
            extra += _to_split(n, groups, 1 if fmt == "NCHW" else 3)
            grouped += 1
    gd.node.extend(extra)
    return depthwise, grouped


def _const(name, value, dtype):
    node = graph_pb2.GraphDef().node.add()
    node.name, node.op = name, "Const"
    node.attr["dtype"].type = dtype.as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(value, dtype))
    return node


def _node(name, op, inputs, attrs):
    node = graph_pb2.GraphDef().node.add()
    node.name, node.op = name, op
    node.input.extend(inputs)
    for k, v in attrs.items():
        node.attr[k].CopyFrom(v)
    return node


def _type_attr(dtype):
    return attr_value_pb2.AttrValue(type=dtype.as_datatype_enum)


def _to_depthwise(n, filter_shape, channels, multiplier):
    """Turn Conv2D node ``n`` (groups == channels) into DepthwiseConv2dNative in place;
    return the new helper nodes (the filter reshape)."""
    x, w = [i for i in n.input if not i.startswith("^")][:2]
    controls = [i for i in n.input if i.startswith("^")]
    kh, kw = int(filter_shape[0]), int(filter_shape[1])
    shape = _const(n.name + "/depthwise_shape", [kh, kw, channels, multiplier], tf.int32)
    reshape = _node(n.name + "/depthwise_filter", "Reshape", [w, shape.name],
                    {"T": n.attr["T"], "Tshape": _type_attr(tf.int32)})
    attrs = {k: copy.deepcopy(n.attr[k]) for k in CONV_ATTRS if k in n.attr}
    n.op = "DepthwiseConv2dNative"
    n.ClearField("attr")
    for k, v in attrs.items():
        n.attr[k].CopyFrom(v)
    del n.input[:]
    n.input.extend([x, reshape.name] + controls)
    return [shape, reshape]


def _to_split(n, groups, axis):
    """Turn grouped Conv2D ``n`` into split / conv per group / concat; ``n`` becomes the
    concat (so consumers are unchanged). Return the new nodes."""
    x, w = [i for i in n.input if not i.startswith("^")][:2]
    controls = [i for i in n.input if i.startswith("^")]
    t = n.attr["T"]
    ax_x = _const(n.name + "/group_axis", axis, tf.int32)
    ax_w = _const(n.name + "/filter_axis", 3, tf.int32)
    nsplit = attr_value_pb2.AttrValue(i=groups)
    sx = _node(n.name + "/split_input", "Split", [ax_x.name, x], {"T": t, "num_split": nsplit})
    sw = _node(n.name + "/split_filter", "Split", [ax_w.name, w],
               {"T": t, "num_split": nsplit})
    attrs = {k: n.attr[k] for k in CONV_ATTRS + ("use_cudnn_on_gpu",) if k in n.attr}
    convs = [_node("{}/group{}".format(n.name, g), "Conv2D",
                   ["{}:{}".format(sx.name, g), "{}:{}".format(sw.name, g)] + controls, attrs)
             for g in range(groups)]
    axis_node = _const(n.name + "/concat_axis", axis, tf.int32)
    concat_attrs = {"N": attr_value_pb2.AttrValue(i=groups), "T": t,
                    "Tidx": _type_attr(tf.int32)}
    n.op = "ConcatV2"
    n.ClearField("attr")
    for k, v in concat_attrs.items():
        n.attr[k].CopyFrom(v)
    del n.input[:]
    n.input.extend([c.name for c in convs] + [axis_node.name])
    return [ax_x, ax_w, sx, sw] + convs + [axis_node]

