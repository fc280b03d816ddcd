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
import numpy as np

SIZE, CLASSES = 12, 5
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


def tf_model(w=None, preprocessing=True):
    """The network in the current default graph: ``tests.models.Model`` with layers
    'conv1', 'pool1', 'conv2', 'fc1'. ``preprocessing=False`` feeds the placeholder to
    conv1 directly (the input is then the preprocessed image)."""
    import tensorflow as tf
    from models import Model
    tf1 = tf.compat.v1
    w = weights() if w is None else w
    x = tf1.placeholder(tf.float32, [None, SIZE, SIZE, 3], name="imgs")
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
