"""One small network in two frameworks, for the propagation and CAM methods' references.

conv1 (3x3, 3 -> 4, 'SAME', bias) -> ReLU -> max pool 2x2 -> conv2 (3x3, 4 -> 6, 'SAME',
bias) -> ReLU (the CAM layer, ``[6, 6, 6]`` at 12 x 12) -> average pool 2x2 -> flatten (in
[h, w, c] order) -> dense 54 -> 8 -> ReLU -> dense 8 -> 5. Images are ``[N, 12, 12, 3]``,
RGB 0-255, and the graph's preprocessing is ``(x - 127.5) / 127.5``.

:func:`weights` draws the numpy weights (seeded); :func:`tf_model` builds the network in
the current TF1 graph (tests), ``tests/record_propagation_reference.py`` the same network
in PyTorch (where Captum, Zennit and pytorch-grad-cam run). This file imports no framework
at the top, so both can use it.
"""
import os

import numpy as np

SIZE, CLASSES = 12, 5
REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                         "propagation_reference.npz")


def recorded():
    """The references' values (tests/record_propagation_reference.py): ``{key: array}``."""
    with np.load(REFERENCE) as f:
        return {k: f[k] for k in f.files}
IMAGES_SEED, WEIGHTS_SEED = 3, 7


def weights(seed=WEIGHTS_SEED):
    """``{name: array}`` in TensorFlow's layouts (conv ``[kh, kw, in, out]``, dense
    ``[in, out]``); biases small and mixed in sign, so some units are off."""
    rng = np.random.RandomState(seed)

    def draw(*shape, scale):
        return rng.normal(0, scale, shape).astype(np.float32)

    return {"conv1/w": draw(3, 3, 3, 4, scale=0.5), "conv1/b": draw(4, scale=0.1),
            "conv2/w": draw(3, 3, 4, 6, scale=0.4), "conv2/b": draw(6, scale=0.1),
            "fc1/w": draw(54, 8, scale=0.3), "fc1/b": draw(8, scale=0.1),
            "fc2/w": draw(8, CLASSES, scale=0.5), "fc2/b": draw(CLASSES, scale=0.1)}


def images(n=3, seed=IMAGES_SEED):
    """``[n, 12, 12, 3]`` float32 in 0-255: smooth blobs plus noise, not uniform noise, so
    the maps have structure."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1.0)
    out = []
    for _ in range(n):
        cy, cx = rng.uniform(0.2, 0.8, 2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.05)[..., None]
        img = 255 * (0.6 * blob * rng.uniform(0.3, 1, 3) + 0.4 * rng.uniform(0, 1, (SIZE, SIZE, 3)))
        out.append(img)
    return np.clip(np.array(out), 0, 255).astype(np.float32)


def preprocess(x):
    return (x - 127.5) / 127.5


def tf_model(w=None, preprocessing=True, dtype="float32"):
    """The network in the current default graph: ``tests.models.Model`` with layers
    'conv1', 'pool1', 'conv2', 'fc1'. ``preprocessing=False`` feeds the placeholder to
    conv1 directly (the input is then the preprocessed image)."""
    import tensorflow as tf
    from models import Model
    tf1 = tf.compat.v1
    w = {k: v.astype(dtype) for k, v in (weights() if w is None else w).items()}
    x = tf1.placeholder(dtype, [None, SIZE, SIZE, 3], name="imgs")
    h = preprocess(x) if preprocessing else x
    conv1 = tf.nn.relu(tf.nn.conv2d(h, w["conv1/w"], 1, "SAME") + w["conv1/b"], name="conv1")
    pool1 = tf.nn.max_pool2d(conv1, 2, 2, "VALID", name="pool1")
    conv2 = tf.nn.relu(tf.nn.conv2d(pool1, w["conv2/w"], 1, "SAME") + w["conv2/b"],
                       name="conv2")
    pool2 = tf.nn.avg_pool2d(conv2, 2, 2, "VALID", name="pool2")
    flat = tf.reshape(pool2, [-1, 54])
    fc1 = tf.nn.relu(tf.matmul(flat, w["fc1/w"]) + w["fc1/b"], name="fc1")
    logits = tf.matmul(fc1, w["fc2/w"]) + w["fc2/b"]
    return Model(x, logits, layers=[("conv1", conv1), ("pool1", pool1), ("conv2", conv2),
                                    ("fc1", fc1)], name="propagation_net",
                 default_layers={"gradcam": "conv2"})


# ------------------------------------------------ a second network: blocks as in ResNets

BLOCK_CHANNELS = 8


def block_weights(seed=WEIGHTS_SEED + 1):
    """Weights of :func:`tf_blocks_model`: batch norms with random statistics, so folding
    them matters."""
    rng = np.random.RandomState(seed)
    c = BLOCK_CHANNELS

    def draw(*shape, scale):
        return rng.normal(0, scale, shape).astype(np.float32)

    def bn(name):
        return {name + "/gamma": rng.uniform(0.5, 1.5, c).astype(np.float32),
                name + "/beta": draw(c, scale=0.2), name + "/mean": draw(c, scale=0.2),
                name + "/var": rng.uniform(0.5, 2.0, c).astype(np.float32)}

    return {"stem/w": draw(3, 3, 3, c, scale=0.4), **bn("stem_bn"),
            "dw/w": draw(3, 3, c, 1, scale=0.4), **bn("dw_bn"),
            "pw/w": draw(1, 1, c, c, scale=0.4), "pw/b": draw(c, scale=0.1),
            "fc/w": draw(c, CLASSES, scale=0.5), "fc/b": draw(CLASSES, scale=0.1)}


# Tiny on purpose: Zennit's canonizer folds a batch norm into the convolution and leaves
# it computing x / sqrt(1 + eps) (its "identity"), so with Keras' 1e-3 the network Zennit
# explains is 0.05 % off the model; at 1e-10 the two agree to float64 rounding.
BN_EPSILON = 1e-10


def tf_blocks_model(w=None, preprocessing=True, dtype="float32"):
    """stem conv (3x3, no bias) -> batch norm -> ReLU6 -> [depthwise 3x3 (no bias) -> batch
    norm -> ReLU -> 1x1 conv (bias)] + the stem's output -> ReLU -> global mean -> dense 5:
    a depthwise convolution, batch norms to fold, ReLU6, a residual addition and a global
    average pool, the parts of MobileNets, EfficientNets and ResNets. ``dtype='float64'``
    builds it in float64 (the batch norms as their affine maps: TensorFlow's fused batch
    norm is float32 only)."""
    import tensorflow as tf
    from models import Model
    tf1 = tf.compat.v1
    w = {k: v.astype(dtype) for k, v in (block_weights() if w is None else w).items()}
    x = tf1.placeholder(dtype, [None, SIZE, SIZE, 3], name="imgs")
    h = preprocess(x) if preprocessing else x

    def bn(t, name):
        if dtype != "float32":
            scale = w[name + "/gamma"] / np.sqrt(w[name + "/var"] + BN_EPSILON)
            return t * scale + (w[name + "/beta"] - w[name + "/mean"] * scale)
        return tf1.nn.fused_batch_norm(t, w[name + "/gamma"], w[name + "/beta"],
                                       w[name + "/mean"], w[name + "/var"],
                                       epsilon=BN_EPSILON, is_training=False)[0]

    stem = tf.nn.relu6(bn(tf.nn.conv2d(h, w["stem/w"], 1, "SAME"), "stem_bn"), name="stem")
    dw = tf.nn.relu(bn(tf.nn.depthwise_conv2d(stem, w["dw/w"], [1, 1, 1, 1], "SAME"),
                       "dw_bn"))
    pw = tf.nn.conv2d(dw, w["pw/w"], 1, "SAME") + w["pw/b"]
    block = tf.nn.relu(stem + pw, name="block")
    pool = tf.reduce_mean(block, axis=[1, 2])
    logits = tf.matmul(pool, w["fc/w"]) + w["fc/b"]
    return Model(x, logits, layers=[("stem", stem), ("block", block), ("pool", pool)],
                 name="blocks_net", default_layers={"gradcam": "block"})
