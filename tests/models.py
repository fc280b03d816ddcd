"""Tiny models that follow the model contract (imgs, logits, probs, layers, name).

Each is built from constants in the current default graph, so it needs no variable
initialisation, and each has a closed form that tests can compute by hand.
"""
from collections import OrderedDict

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1


class Model:
    """A bare contract object: give it a placeholder, the logits and the layers."""

    def __init__(self, imgs, logits, layers=None, name="tiny", default_layers=None):
        self.imgs = imgs
        self.logits = logits
        self.probs = tf.nn.softmax(logits)
        self.layers = OrderedDict(layers or {})
        self.name = name
        self.default_layers = dict(default_layers or {})


def linear(W, b=None):
    """logits = x @ W + b on flat inputs [N, D]; W is [D, K]. Gradient of f_c is W[:, c]."""
    W = np.asarray(W, np.float32)
    b = np.zeros(W.shape[1], np.float32) if b is None else np.asarray(b, np.float32)
    x = tf1.placeholder(tf.float32, [None, W.shape[0]], name="x")
    logits = tf.matmul(x, tf.constant(W)) + tf.constant(b)
    return Model(x, logits, name="linear")


def additive_image(w, second_logit=0.0):
    """Image model f_0 = sum(w * x), f_1 = second_logit; w is [H, W, C].

    Every pixel contributes w * x to class 0 independently, so occluding or removing a
    set of pixels lowers f_0 by exactly the sum of w * x over that set.
    """
    w = np.asarray(w, np.float32)
    x = tf1.placeholder(tf.float32, [None] + list(w.shape), name="imgs")
    f0 = tf.reduce_sum(x * tf.constant(w), axis=[1, 2, 3])
    f1 = tf.zeros_like(f0) + second_logit
    logits = tf.stack([f0, f1], axis=1)
    return Model(x, logits, name="additive")


def two_layer(W1, b1, W2, b2=None):
    """logits = W2 . relu(W1 x + b1) + b2 on flat inputs; layer 'hidden' is relu(W1 x + b1).

    Shapes: W1 [H, D], b1 [H], W2 [K, H]. With the ReLU active the influence of 'hidden'
    on s_c is W2[c], and d hidden_j / dx = W1[j].
    """
    W1, b1, W2 = (np.asarray(a, np.float32) for a in (W1, b1, W2))
    b2 = np.zeros(W2.shape[0], np.float32) if b2 is None else np.asarray(b2, np.float32)
    x = tf1.placeholder(tf.float32, [None, W1.shape[1]], name="x")
    pre = tf.matmul(x, tf.constant(W1.T)) + tf.constant(b1)
    hidden = tf.nn.relu(pre, name="hidden")
    logits = tf.matmul(hidden, tf.constant(W2.T)) + tf.constant(b2)
    return Model(x, logits, layers={"hidden": hidden}, name="two_layer",
                 default_layers={"influence": "hidden"})


def tiny_convnet(size=16, channels=3, classes=5, seed=0, width=None):
    """A seeded random ReLU conv net on [N, size, width, channels] images in 0-255 (width
    defaults to size: square images).

    conv1 (3x3, 4 ch) -> relu -> conv2 (3x3, 6 ch, 'SAME') -> relu -> global mean pool
    -> dense(classes). Layers: 'conv1', 'conv2' (4-D), 'pool' (2-D). Small enough that
    a test runs in milliseconds, deep enough that gradients are not constant.
    """
    rng = np.random.RandomState(seed)
    k1 = rng.normal(0, 0.5, (3, 3, channels, 4)).astype(np.float32)
    k2 = rng.normal(0, 0.5, (3, 3, 4, 6)).astype(np.float32)
    wd = rng.normal(0, 1.0, (6, classes)).astype(np.float32)
    bd = rng.normal(0, 0.1, classes).astype(np.float32)
    x = tf1.placeholder(tf.float32, [None, size, width or size, channels], name="imgs")
    h = (x - 127.5) / 127.5
    conv1 = tf.nn.relu(tf.nn.conv2d(h, k1, 1, "SAME") + 0.05, name="conv1")
    conv2 = tf.nn.relu(tf.nn.conv2d(conv1, k2, 1, "SAME") + 0.05, name="conv2")
    pool = tf.reduce_mean(conv2, axis=[1, 2], name="pool")
    logits = tf.matmul(pool, wd) + bd
    return Model(x, logits, layers=[("conv1", conv1), ("conv2", conv2), ("pool", pool)],
                 name="tiny_convnet",
                 default_layers={"gradcam": "conv2", "influence": "pool"})
