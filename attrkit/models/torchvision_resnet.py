"""torchvision's ResNet-18 and ResNet-50 as TF1 graphs, from a ``.pth`` state dict.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016; torchvision's
``resnet18`` (BasicBlock x [2, 2, 2, 2]) and ``resnet50`` (Bottleneck x [3, 4, 6, 3], the
"v1.5" stride on the 3x3 conv). The checkpoint (zip or legacy format, a bare state dict,
``{'state_dict': ...}`` or with a ``module.`` prefix) is read by
:mod:`torch_checkpoint`, without torch; the number of classes K comes from ``fc.weight``.

Graph (input ``imgs`` ``[N, H, W, 3]`` float32, RGB 0-255, default 224 x 224)::

    preprocess  torchvision's: (x/255 - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)
    conv1       7x7 conv stride 2 pad 3, 64 ch, BN, ReLU      -> [N, H/2, W/2, 64]
    maxpool     3x3 max pool stride 2 pad 1                    -> [N, H/4, W/4, 64]
    layer1..4   residual stages (layerS.B is block B of stage S) -> [N, H/32, W/32, 512|2048]
    avgpool     global average pool                            -> [N, 512|2048]
    fc          dense K: the logits                            -> [N, K]

Padding is PyTorch's: symmetric and explicit (TF's 'SAME' pads one more pixel at the end
than at the start for a stride-2 3x3 conv on an even size, PyTorch pads both sides).
Inference only: each BatchNorm (eps 1e-5, running statistics) is folded into the conv
before it. ``layers`` holds ``conv1`` (after bn1 and ReLU), ``maxpool``, every block
``layer1.0`` ... and every stage ``layer1`` ... ``layer4`` (= its last block's output),
``avgpool`` and ``fc``; Grad-CAM's default is ``layer4``, influence's ``avgpool``.
"""
import collections
import os
import time

import numpy as np
import tensorflow as tf

from attrkit.models import preprocessing
from attrkit.models.efficientnet_lite0 import FedVariables, fold_conv_bn
from attrkit.models.torch_checkpoint import RefusedGlobalError, read_torch_state_dict

tf1 = tf.compat.v1

ARCHS = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet50": ("bottleneck", (3, 4, 6, 3))}
WIDTHS = (64, 128, 256, 512)
BN_EPSILON = 1e-5
IMAGE_SIZE = 224
DEFAULT_LAYERS = {"gradcam": "layer4", "influence": "avgpool"}
BN_PARAMS = ("weight", "bias", "running_mean", "running_var")

# Error messages, kept as data so that tests match the same templates.
ARCH_ERROR = "name: expected 'resnet18' or 'resnet50', got {actual!r}"
NO_WEIGHTS_ERROR = ("weights: {arch} needs a torchvision checkpoint (.pth), e.g. "
                    "torch.save(model.state_dict(), 'resnet.pth'); got None")
MISSING_FILE_ERROR = "weights: no such file {path!r} (expected a torchvision {arch} .pth)"
MISSING_KEYS_ERROR = ("weights: {path} is not a torchvision {arch} checkpoint: missing "
                      "{count} keys, e.g. {keys}{hint}")
UNEXPECTED_KEYS_ERROR = ("weights: {path} is not a torchvision {arch} checkpoint: "
                         "{count} unexpected keys, e.g. {keys}{hint}")
SHAPE_ERROR = "weights: key {key} in {path} has shape {actual}, expected {expected}"
IMGS_ERROR = ("imgs: expected a float32 tensor of shape [None, H, W, 3] (RGB 0-255), "
              "got {actual}")

ConvSpec = collections.namedtuple("ConvSpec", "key bn kernel stride in_ch out_ch")
ConvSpec.__doc__ = """A conv with its BN: checkpoint prefixes key ('layer1.0.conv1') and
bn ('layer1.0.bn1'), kernel size, stride, channels; padding is kernel // 2."""

BlockSpec = collections.namedtuple("BlockSpec", "name stage convs downsample")


def block_specs(arch):
    """The residual blocks in order: ``BlockSpec(name, stage, convs, downsample)``."""
    kind, repeats = ARCHS[arch]
    expansion = 4 if kind == "bottleneck" else 1
    blocks, in_ch = [], 64
    for stage, (n, width) in enumerate(zip(repeats, WIDTHS), start=1):
        for b in range(n):
            p = "layer{}.{}.".format(stage, b)
            stride = 2 if (b == 0 and stage > 1) else 1
            out_ch = width * expansion
            if kind == "basic":
                shapes = [(3, stride, in_ch, width), (3, 1, width, width)]
            else:
                shapes = [(1, 1, in_ch, width), (3, stride, width, width), (1, 1, width, out_ch)]
            convs = [ConvSpec(p + "conv{}".format(i), p + "bn{}".format(i), *s)
                     for i, s in enumerate(shapes, start=1)]
            down = None
            if stride != 1 or in_ch != out_ch:
                down = ConvSpec(p + "downsample.0", p + "downsample.1", 1, stride, in_ch, out_ch)
            blocks.append(BlockSpec(p[:-1], stage, convs, down))
            in_ch = out_ch
    return blocks


STEM = ConvSpec("conv1", "bn1", 7, 2, 3, 64)


def conv_specs(arch):
    """Every conv of ``arch`` in graph order."""
    out = [STEM]
    for b in block_specs(arch):
        out += b.convs + ([b.downsample] if b.downsample else [])
    return out


def feature_channels(arch):
    return WIDTHS[-1] * (4 if ARCHS[arch][0] == "bottleneck" else 1)


def expected_shapes(arch, num_classes):
    """Checkpoint key -> shape (PyTorch layout) of every tensor ``arch`` needs."""
    shapes = collections.OrderedDict()
    for c in conv_specs(arch):
        shapes[c.key + ".weight"] = (c.out_ch, c.in_ch, c.kernel, c.kernel)
        for p in BN_PARAMS:
            shapes["{}.{}".format(c.bn, p)] = (c.out_ch,)
    shapes["fc.weight"] = (num_classes, feature_channels(arch))
    shapes["fc.bias"] = (num_classes,)
    return shapes


def _other_arch_hint(arch, state):
    for other in ARCHS:
        if other != arch:
            keys = set(expected_shapes(other, 1))
            if keys <= set(state):
                return " (it looks like a {} checkpoint)".format(other)
    return ""


def check_state(arch, state, path="the state dict"):
    """Check ``state`` against ``arch``; return K. Raises ValueError naming a bad key."""
    k = state["fc.weight"].shape[0] if "fc.weight" in state and \
        state["fc.weight"].ndim == 2 else 1
    expected = expected_shapes(arch, k)
    missing = [key for key in expected if key not in state]
    if missing:
        raise ValueError(MISSING_KEYS_ERROR.format(
            path=path, arch=arch, count=len(missing), keys=", ".join(missing[:5]),
            hint=_other_arch_hint(arch, state)))
    unexpected = [key for key in state if key not in expected
                  and not key.endswith(".num_batches_tracked")]
    if unexpected:
        raise ValueError(UNEXPECTED_KEYS_ERROR.format(
            path=path, arch=arch, count=len(unexpected), keys=", ".join(unexpected[:5]),
            hint=_other_arch_hint(arch, state)))
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise ValueError(SHAPE_ERROR.format(key=key, path=path,
                                                actual=tuple(state[key].shape), expected=shape))
    return k


def fold_batch_norm(state, spec):
    """(kernel ``[k, k, in, out]``, bias ``[out]``) of conv ``spec`` with its BN folded in
    (``efficientnet_lite0.fold_conv_bn`` with torchvision's keys and epsilon)."""
    bn = {p: state["{}.{}".format(spec.bn, p)] for p in BN_PARAMS}
    return fold_conv_bn(state[spec.key + ".weight"], bn, BN_EPSILON)


def read_weights(arch, weights):
    """Read and check a checkpoint: ``(state, num_classes, path)``; nothing is built."""
    if arch not in ARCHS:
        raise ValueError(ARCH_ERROR.format(actual=arch))
    if weights is None:
        raise ValueError(NO_WEIGHTS_ERROR.format(arch=arch))
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(MISSING_FILE_ERROR.format(path=path, arch=arch))
    try:
        state = read_torch_state_dict(path)
    except RefusedGlobalError as exc:          # still an UnpicklingError, naming the global
        raise RefusedGlobalError("weights: {}: {}".format(path, exc)) from None
    except ValueError as exc:
        raise ValueError("weights: {}".format(exc)) from None
    return state, check_state(arch, state, path), path


class TorchvisionResNet(FedVariables):
    """torchvision ResNet-18 / ResNet-50 as a TF1 graph (He et al., CVPR 2016).

    Attributes (the model contract of DESIGN.md): ``imgs`` (``[None, H, W, 3]`` float32,
    RGB 0-255), ``logits`` ``[None, K]``, ``probs``, ``layers`` (see the module
    docstring), ``name`` (``'resnet18'`` / ``'resnet50'``), ``default_layers``,
    ``num_classes``, ``variables`` (name -> variable; kept out of ``GLOBAL_VARIABLES``, so a
    later ``global_variables_initializer()`` does not reset them).

    Args:
      arch: ``'resnet18'`` or ``'resnet50'``.
      weights: a torchvision checkpoint path, or ``(state, K, path)`` from
        :func:`read_weights`.
      sess: the session whose graph receives the model; the weights are loaded into it.
      imgs: an input tensor ``[None, H, W, 3]`` float32, or None for a placeholder
        ``[None, 224, 224, 3]`` named ``imgs``.
      preprocess: what the graph does to ``imgs`` first (:mod:`preprocessing`); default
        torchvision's ImageNet normalisation ``'torch'``.
    """

    def __init__(self, arch, weights, sess, imgs=None, preprocess="torch"):
        loaded = weights if isinstance(weights, tuple) else read_weights(arch, weights)
        self._state, self.num_classes, self.weights_path = loaded
        if arch not in ARCHS:
            raise ValueError(ARCH_ERROR.format(actual=arch))
        self.name, self.arch = arch, arch
        self.preprocess = preprocessing.parse_preprocess(preprocess)
        self.default_layers = dict(DEFAULT_LAYERS)
        with sess.graph.as_default():
            self._build(imgs)
        self.load_weights(sess)
        del self._state

    def _build(self, imgs):
        if imgs is None:
            imgs = tf1.placeholder(tf.float32, [None, IMAGE_SIZE, IMAGE_SIZE, 3], name="imgs")
        elif imgs.dtype != tf.float32 or imgs.shape.rank != 4 or imgs.shape[-1] != 3:
            raise ValueError(IMGS_ERROR.format(actual="{} {}".format(imgs.dtype.name,
                                                                     imgs.shape)))
        self.imgs = imgs
        self.variables = collections.OrderedDict()
        self.layers = collections.OrderedDict()
        with tf1.variable_scope(None, default_name=self.arch) as scope:
            self._scope = scope.name
            x = preprocessing.apply_preprocess(imgs, self.preprocess)
            x = self.layers["conv1"] = tf.nn.relu(self._conv(x, STEM), name="conv1")
            x = tf.nn.max_pool2d(x, 3, 2, [[0, 0], [1, 1], [1, 1], [0, 0]], name="maxpool")
            self.layers["maxpool"] = x
            blocks = block_specs(self.arch)
            for i, block in enumerate(blocks):
                x = self.layers[block.name] = self._block(x, block)
                if i + 1 == len(blocks) or blocks[i + 1].stage != block.stage:
                    key = "layer{}".format(block.stage)
                    x = self.layers[key] = tf.identity(x, name=key)
            x = self.layers["avgpool"] = tf.reduce_mean(x, axis=[1, 2], name="avgpool")
            with tf1.variable_scope("fc"):
                w = self._variable("kernel", [feature_channels(self.arch), self.num_classes])
                b = self._variable("bias", [self.num_classes])
            self.logits = self.layers["fc"] = tf.nn.bias_add(tf.matmul(x, w), b, name="fc")
            self.probs = tf.nn.softmax(self.logits, name="probs")

    def _block(self, x, block):
        with tf1.variable_scope(block.name.replace(".", "_")):
            skip = x if block.downsample is None else self._conv(x, block.downsample)
            for i, spec in enumerate(block.convs):
                x = self._conv(x, spec)
                if i + 1 < len(block.convs):
                    x = tf.nn.relu(x)
            return tf.nn.relu(x + skip, name="out")

    def _conv(self, x, spec):
        """conv + folded-BN bias with PyTorch's symmetric padding (kernel // 2 per side)."""
        with tf1.variable_scope(_scope_of(spec.key).split("/")[-1]):
            k = self._variable("kernel", [spec.kernel, spec.kernel, spec.in_ch, spec.out_ch])
            b = self._variable("bias", [spec.out_ch])
            p = spec.kernel // 2
            y = tf.nn.conv2d(x, k, spec.stride, [[0, 0], [p, p], [p, p], [0, 0]])
            return tf.nn.bias_add(y, b)

    def weight_values(self):
        """{variable name: float32 array in TF layout} from the checked state dict."""
        values = {}
        for spec in conv_specs(self.arch):
            kernel, bias = fold_batch_norm(self._state, spec)
            scope = _scope_of(spec.key)
            values[scope + "/kernel"], values[scope + "/bias"] = kernel, bias
        values["fc/kernel"] = self._state["fc.weight"].T.astype(np.float32)
        values["fc/bias"] = self._state["fc.bias"].astype(np.float32)
        return values

    def load_weights(self, sess):
        """Feed the folded weights to the variables' initializers: one sess.run, no op."""
        start = time.perf_counter()
        self._feed(sess, self.weight_values())
        return time.perf_counter() - start


def _scope_of(key):
    """Variable scope of a conv: 'conv1' -> 'conv1', 'layer1.0.conv2' -> 'layer1_0/conv2',
    'layer2.0.downsample.0' -> 'layer2_0/downsample'."""
    parts = key.split(".")
    if len(parts) == 1:
        return key
    return "{}_{}/{}".format(parts[0], parts[1], parts[2])
