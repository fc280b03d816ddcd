"""The class-activation-map family, as pytorch-grad-cam (1.5.7) defines each one's weights.

Each is constructed as the homework's ``GradCAM`` is, ``(sess, input_tensor, output_tensor,
target_class, internal_layer)`` with ``internal_layer`` a conv layer's tensor ``[None, h, w,
K]`` (VGG16: ``model.conv5_3``), and called ``(X, batch_size=16)`` with images ``[N, H, W,
C]``: maps ``[N, H, W]``, ``ReLU`` of the layer's channels weighted and summed, upsampled
bilinearly to the image as ``GradCAM`` does, unnormalised (pytorch-grad-cam then scales
each map to [0, 1]; ``upsample=False`` gives the ``[N, h, w]`` map before both).

- From one gradient of the target score at the layer (``A`` its activations, ``g = ∂f_c /
  ∂A``, sums over the layer's positions): ``GradCAMPlusPlus`` (Chattopadhay et al. 2018),
  ``XGradCAM`` (Fu et al. 2020), ``LayerCAM`` (Jiang et al. 2021), ``HiResCAM`` (Draelos
  and Carin 2020).
- Without gradients: ``EigenCAM`` (Muhammad and Yeasin 2020: the first principal component
  of the activations, whatever the class), and two that run the model on many variants built
  in the graph, a row per channel: ``ScoreCAM`` (Wang et al. 2020: the image masked by each
  channel's upsampled map) and ``AblationCAM`` (Desai and Ramaswamy 2020: the layer with
  one channel ablated, run from the layer to the output).

Where ours differs from pytorch-grad-cam: ``ScoreCAM`` multiplies the model's input (what
``input_tensor`` takes, RGB 0-255 before the graph's preprocessing), where pytorch-grad-cam
multiplies the already normalised tensor it is given; the upsampling to the image is
TensorFlow's bilinear resize, where pytorch-grad-cam uses OpenCV's (both half-pixel).
"""
import warnings

import numpy as np
import tensorflow as tf

from hw3_attribution import (DEFAULT_BATCH_SIZE, _UNSET, AttributionMethod, GradCAM,
                             ancestors, cached_ops, check_flag, check_positive_int,
                             descendants, model_ops, unbatch)
from attrkit.methods.propagation import copy_model

tf1 = tf.compat.v1

ABLATION_ZERO_WARNING = ("AblationCAM: the target score is exactly 0 for the images at {images} "
                         "of the call, so their weights (f_c - f_c ablated) / f_c are undefined "
                         "and their maps are NaN")
ABLATION_SIDE_INPUT_ERROR = (
    "internal_layer: AblationCAM runs the model from internal_layer to output_tensor, so "
    "everything the output reads from the input must pass through it; {name!r} ({type}) "
    "reads the input by another way (a skip connection around the layer?): choose a layer "
    "that every path goes through, such as a block's output, got {layer!r}")

GRADCAM_PLUS_PLUS_EPS = 1e-6     # pytorch-grad-cam's eps in GradCAM++'s alpha
XGRADCAM_EPS = 1e-7              # in XGrad-CAM's normalisation by the activations' sum
SCORECAM_EPS = 1e-8              # in Score-CAM's min-max scaling of each mask
ABLATION_VALUE = 1e7             # below the minimum, where activations can be negative


class CAMMethod(GradCAM):
    """What the family shares: the layer's checks (``GradCAM``'s), the activations and
    gradients at the layer fetched per chunk, and the one upsampling. A subclass says how
    its low-resolution map comes from them (:meth:`low_res`)."""

    uses_gradients = True
    rows = None                 # 'score' or 'ablation': the method runs rows per channel

    def _define_ops(self):
        self._runner.check_layer(self.internal_layer)
        AttributionMethod._define_ops(self)
        x, out, layer = self.input_tensor, self.output_tensor, self.internal_layer
        self._layer_ops = layer_ops(x, out, layer)
        if self.rows:
            self._channel_rows = channel_row_ops(self.rows, x, out, layer)

    def __call__(self, X, batch_size=DEFAULT_BATCH_SIZE, *, upsample=True,
                 target_class=_UNSET, feed_dict=None):
        X, single, run = self._begin(X, feed_dict)
        bs = check_positive_int(batch_size, "batch_size")
        upsample = check_flag(upsample, "upsample")
        targets = self._targets(run, X, target_class, bs)
        maps = np.maximum(self.low_res(run, X, targets, bs), 0.0)            # [N, h, w]
        if upsample:
            maps = self._layer_ops.upsampled(run, maps, X.shape[1:3], bs)
        return unbatch(maps.astype(np.float32), single)

    def low_res(self, run, X, targets, bs):
        """The map before ReLU and upsampling ``[N, h, w]`` (float64)."""
        ops = self._layer_ops
        acts, grads = self.fetch(run, X, targets, bs, [ops.layer, ops.grads])
        return self.cam(acts, grads)

    def fetch(self, run, X, targets, bs, tensors):
        """``tensors`` (the layer's, or computed with the target rows) at the inputs."""
        return self._layer_ops.fetch(run, X, targets, bs, tensors, type(self).__name__)

    @staticmethod
    def cam(acts, grads):
        raise NotImplementedError


def weighted_sum(weights, acts):
    """``Σ_k w_k A^k``: weights ``[N, K]`` and activations ``[N, h, w, K]`` -> ``[N, h, w]``."""
    return np.einsum("nk,nhwk->nhw", weights, acts)


class GradCAMPlusPlus(CAMMethod):
    """Grad-CAM++: ``w_k = Σ_ij ReLU(g_ij) · α_ij`` with ``α = g² / (2g² + (Σ_ij A) g³ + ε)``
    (0 where ``g = 0``), pytorch-grad-cam's closed form for the exponential of the score."""

    api = "GradCAMPlusPlus(sess, input_tensor, output_tensor, target_class, internal_layer)"

    @staticmethod
    def cam(acts, grads):
        g2, g3 = grads ** 2, grads ** 3
        sum_acts = acts.sum(axis=(1, 2), keepdims=True)
        alpha = g2 / (2 * g2 + sum_acts * g3 + GRADCAM_PLUS_PLUS_EPS)
        alpha = np.where(grads != 0, alpha, 0.0)
        return weighted_sum((np.maximum(grads, 0) * alpha).sum(axis=(1, 2)), acts)


class XGradCAM(CAMMethod):
    """XGrad-CAM: ``w_k = Σ_ij g_ij · A_ij / (Σ_ij A_ij + ε)``."""

    api = "XGradCAM(sess, input_tensor, output_tensor, target_class, internal_layer)"

    @staticmethod
    def cam(acts, grads):
        sum_acts = acts.sum(axis=(1, 2), keepdims=True)
        return weighted_sum((grads * acts / (sum_acts + XGRADCAM_EPS)).sum(axis=(1, 2)), acts)


class LayerCAM(CAMMethod):
    """LayerCAM: a weight per position, ``Σ_k ReLU(g^k) ⊙ A^k``."""

    api = "LayerCAM(sess, input_tensor, output_tensor, target_class, internal_layer)"

    @staticmethod
    def cam(acts, grads):
        return (np.maximum(grads, 0) * acts).sum(axis=-1)


class HiResCAM(CAMMethod):
    """HiResCAM: ``Σ_k g^k ⊙ A^k`` (the gradient times the activation, summed over
    channels: for a model that ends in global average pooling and a dense layer, the map
    sums to the target score less the bias, times the number of positions)."""

    api = "HiResCAM(sess, input_tensor, output_tensor, target_class, internal_layer)"

    @staticmethod
    def cam(acts, grads):
        return (grads * acts).sum(axis=-1)


class EigenCAM(CAMMethod):
    """Eigen-CAM: the activations ``[h·w, K]`` centred per channel, projected on their first
    right singular vector (pytorch-grad-cam's ``get_2d_projection``, numpy's SVD, so the
    sign is LAPACK's as there). It does not look at the class: ``target_class`` is
    accepted and unused, and no gradient is taken."""

    api = "EigenCAM(sess, input_tensor, output_tensor, target_class, internal_layer)"
    uses_gradients = False

    def low_res(self, run, X, targets, bs):
        (acts,) = self.fetch(run, X, targets, bs, [self._layer_ops.layer])
        return first_component(acts)


def first_component(acts):
    """Each activation ``[h, w, K]`` projected on its first principal direction ``[h, w]``."""
    out = np.empty(acts.shape[:3], np.float64)
    for i, a in enumerate(np.nan_to_num(acts, nan=0.0)):
        flat = a.reshape(-1, a.shape[-1])
        flat = flat - flat.mean(axis=0)
        _, _, vt = np.linalg.svd(flat, full_matrices=True)
        out[i] = (flat @ vt[0]).reshape(a.shape[:2])
    return out


class ScoreCAM(CAMMethod):
    """Score-CAM: ``w = softmax_k(f_c(x ⊙ M^k))``, with ``M^k`` channel ``k``'s map upsampled
    to the image (bilinear, corners aligned, as ``torch.nn.UpsamplingBilinear2d``) and
    scaled to [0, 1] by its minimum and maximum. The masked copies are built in the graph
    from the image and the layer's activations, one row per channel: ``N·K`` rows, in
    ``ceil(N·K / batch_size)`` session calls."""

    api = "ScoreCAM(sess, input_tensor, output_tensor, target_class, internal_layer)"
    uses_gradients, rows = False, "score"

    def low_res(self, run, X, targets, bs):
        (acts,) = self.fetch(run, X, targets, bs, [self._layer_ops.layer])
        ops = self._channel_rows
        scores = channel_rows(run, ops, {ops.images: X, ops.acts: acts}, targets, bs,
                              "score-cam")                                  # [N, K]
        scores = scores - scores.max(axis=1, keepdims=True)
        weights = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
        return weighted_sum(weights, acts)


class AblationCAM(CAMMethod):
    """Ablation-CAM: ``w_k = (f_c - f_c with channel k ablated) / f_c``. A channel is
    ablated by setting it to 0 where the image's smallest activation is 0 (after a ReLU),
    else to that minimum less 1e7, as pytorch-grad-cam's ``AblationLayer``; every channel
    is ablated (its ``ratio_channels_to_ablate=1.0``). The ablated activations are built in
    the graph and run from the layer to the output only: ``N·K`` rows, in ``ceil(N·K /
    batch_size)`` session calls, each far cheaper than a forward pass."""

    api = "AblationCAM(sess, input_tensor, output_tensor, target_class, internal_layer)"
    uses_gradients, rows = False, "ablation"

    def low_res(self, run, X, targets, bs):
        layer_ops = self._layer_ops       # the activations and f_c(x) in the same runs
        acts, original = self.fetch(run, X, targets, bs,
                                    [layer_ops.layer, layer_ops.model.score])
        lows = acts.reshape(len(acts), -1).min(axis=1)
        value = np.where(lows == 0, 0.0, lows - ABLATION_VALUE).astype(np.float32)
        ops = self._channel_rows
        ablated = channel_rows(run, ops, {ops.acts: acts, ops.value: value}, targets, bs,
                               "ablation-cam")                              # [N, K]
        if (original == 0).any():
            warnings.warn(ABLATION_ZERO_WARNING.format(
                images=np.flatnonzero(original == 0).tolist()), RuntimeWarning, stacklevel=4)
        with np.errstate(divide="ignore", invalid="ignore"):
            weights = (original[:, None] - ablated) / original[:, None]
            return weighted_sum(weights, acts)


def channel_rows(run, ops, per_image, targets, bs, desc):
    """The target score of every (image, channel) row ``[N, K]``: ``per_image`` feeds
    ``{placeholder: [N, ...]}``, of which each chunk gets the images its rows need."""
    n, k = len(targets), ops.channels
    image, channel = np.repeat(np.arange(n), k), np.tile(np.arange(k), n)

    def feed(sl):
        used, local = np.unique(image[sl], return_inverse=True)
        fed = {p: v[used] for p, v in per_image.items()}
        fed.update({ops.row_image: local.astype(np.int32),
                    ops.row_channel: channel[sl].astype(np.int32),
                    ops.target: targets[image[sl]]})
        return fed

    scores = run.collect(ops.score, n * k, feed, desc, bs, dtype=np.float64)
    return scores.reshape(n, k)


# --------------------------------------------------------------------------- the ops

class LayerOps:
    """The family's ops for one (input, output, layer), built once per graph: the layer's
    activations and the gradient of the target score there, and one bilinear upsampling
    (``GradCAM``'s)."""

    def __init__(self, x, out, layer):
        self.x, self.out, self.layer = x, out, layer
        self.model = model_ops(x, out)
        self.channels = int(layer.shape[-1])
        with tf1.name_scope("attrkit_cam"):
            self.grads = tf.gradients(self.model.score, layer)[0]
            self.maps = tf1.placeholder(tf.float32, [None, None, None], name="maps")
            self.size = tf1.placeholder(tf.int32, [2], name="size")
            self.resized = tf.image.resize(self.maps[..., None], self.size,
                                           method="bilinear")[..., 0]

    def fetch(self, run, X, targets, bs, tensors, desc):
        """``tensors`` (the layer, its gradient, the target score) at the inputs: float64
        arrays ``[N, ...]``, one per tensor, ``batch_size`` inputs per run."""
        out = [[] for _ in tensors]
        for sl, values in run.chunks(tensors, len(X), lambda s: {
                self.x: X[s], self.model.target: targets[s]}, desc, bs):
            for o, v in zip(out, values):
                o.append(v)
        return [np.concatenate(o).astype(np.float64) for o in out]

    def upsampled(self, run, maps, size, bs):
        """Maps ``[N, h, w]`` resized to ``size`` (H, W)."""
        return run.collect(self.resized, len(maps), lambda s: {
            self.maps: maps[s].astype(np.float32), self.size: list(size)}, None, bs)



def layer_ops(x, out, layer):
    return cached_ops(x.graph, ("cam", x.name, out.name, layer.name),
                      lambda: LayerOps(x, out, layer))


def channel_row_ops(kind, x, out, layer):
    """Score-CAM's (``kind`` 'score') or Ablation-CAM's ('ablation') row ops, built once
    per graph."""
    build = {"score": ScoreRows, "ablation": AblationRows}[kind]
    return cached_ops(x.graph, ("cam_rows", kind, x.name, out.name, layer.name),
                      lambda: build(layer_ops(x, out, layer)))


class ChannelRows:
    """Rows ``(image, channel)`` fed as two index vectors, and the target score of each."""

    def __init__(self, ops, method, start, start_tensor, build_rows):
        self.channels = ops.channels
        with tf1.name_scope(f"attrkit_{method.lower()}"):
            self.row_image = tf1.placeholder(tf.int32, [None], name="row_image")
            self.row_channel = tf1.placeholder(tf.int32, [None], name="row_channel")
            self.target = tf1.placeholder(tf.int32, [None], name="target")
            logits = copy_model(start_tensor, ops.out, build_rows(self), method,
                                arg="internal_layer", start=start)
            self.score = tf.gather(logits, self.target, axis=1, batch_dims=1)


class ScoreRows(ChannelRows):
    """Each row: its image times its channel's map, upsampled with aligned corners and
    scaled to [0, 1]."""

    def __init__(self, ops):
        self.images = tf1.placeholder(ops.x.dtype, [None] + ops.x.shape.as_list()[1:],
                                      name="images")
        self.acts = tf1.placeholder(tf.float32, ops.layer.shape, name="acts")

        def rows(r):
            low = tf.gather(tf.gather(self.acts, r.row_image), r.row_channel[:, None],
                            axis=3, batch_dims=1)                           # [r, h, w, 1]
            up = tf1.image.resize(low, tf.shape(self.images)[1:3], align_corners=True)
            lo = tf.reduce_min(up, axis=[1, 2, 3], keepdims=True)
            hi = tf.reduce_max(up, axis=[1, 2, 3], keepdims=True)
            mask = (up - lo) / (hi - lo + SCORECAM_EPS)
            return tf.gather(self.images, r.row_image) * tf.cast(mask, self.images.dtype)

        super().__init__(ops, "ScoreCAM", "input_tensor", ops.x, rows)


class AblationRows(ChannelRows):
    """Each row: its image's activations at the layer with its channel set to the image's
    ablation value, run from the layer on."""

    def __init__(self, ops):
        check_single_path(ops.x, ops.out, ops.layer)
        self.acts = tf1.placeholder(ops.layer.dtype, ops.layer.shape, name="acts")
        self.value = tf1.placeholder(ops.layer.dtype, [None], name="value")

        def rows(r):
            acts = tf.gather(self.acts, r.row_image)                        # [r, h, w, K]
            hit = tf.one_hot(r.row_channel, ops.channels, on_value=True, off_value=False)
            value = tf.gather(self.value, r.row_image)[:, None, None, None]
            return tf.where(hit[:, None, None, :], value + tf.zeros_like(acts), acts)

        super().__init__(ops, "AblationCAM", "internal_layer", ops.layer, rows)


def check_single_path(x, out, layer):
    """Raise unless every op between ``layer`` and ``out`` reads the input only through
    ``layer`` (else rows of ablated activations would meet the unablated batch)."""
    after = descendants(layer.op) & ancestors([out.op])
    from_input = descendants(x.op) | {x.op}
    for op in after:
        for t in op.inputs:
            if t.op not in after and t.op is not layer.op and t.op in from_input:
                raise ValueError(ABLATION_SIDE_INPUT_ERROR.format(
                    name=t.name, type=t.op.type, layer=layer.name))
