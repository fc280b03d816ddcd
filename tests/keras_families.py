"""keras.applications families as test fixtures, and the comparison that judges an import.

Run as a script (it needs eager TensorFlow, which the test process has switched off)::

    python tests/keras_families.py OUT_DIR [FAMILY ...]

For each family (seeded, ``weights=None``, 64 x 64, ``CLASSES`` classes) it writes
``OUT_DIR/<family>.keras``, ``<family>.h5`` (Keras cannot read ConvNeXtTiny's back,
``Unknown layer: 'LayerScale'``: a test of the error), ``<family>_export`` (``model.export``; MobileNetV2 also
``<family>_tfsave``, ``tf.saved_model.save``) and ``<family>_ref.npz``: the images (RGB
0-255), Keras eager's pre-softmax logits, the gradient of logit ``TARGET`` with respect
to the RGB input through Keras' own ``preprocess_input`` of the family, computed in float64
(``grads``) and in float32 (``grads32``), and the float32 floor that ``compare`` scales its
tolerance by (``noise``; ``floors``: eager float32 vs float64, eager vs ``tf.function``).

Random-init keras.applications models are nearly constant (MobileNetV2's logits are about
1e-11 whatever the image), so a missing preprocessing step would pass any logits test.
Every BatchNormalization / LayerNormalization gets seeded random scale and offset, and the
BatchNormalization moving statistics are then set to the batch statistics of one
training-mode pass over calibration images (momentum 0 for that pass): activations stay
of order one through every block and the logits differ clearly between images.
"""
import os
import sys

import numpy as np

FAMILIES = ("ResNet50", "MobileNetV2", "EfficientNetB0", "DenseNet121", "ConvNeXtTiny")
NO_H5 = ("ConvNeXtTiny",)          # Keras cannot read its .h5 back (LayerScale)
TF_SAVE = ("MobileNetV2",)         # also saved with tf.saved_model.save
SIZE, CLASSES, TARGET, N_IMAGES = 64, 5, 1, 3
# family -> (keras.applications module holding preprocess_input, our preprocess name)
PREPROCESS = {"ResNet50": ("resnet50", "caffe"), "MobileNetV2": ("mobilenet_v2", "tf"),
              "EfficientNetB0": (None, "none"), "DenseNet121": ("densenet", "torch"),
              "ConvNeXtTiny": (None, "none")}


def images(n=N_IMAGES, size=SIZE, seed=1):
    """[n, size, size, 3] float32 RGB 0-255, smooth random images."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (n, size // 8, size // 8, 3))
    img = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)
    return np.clip(img + rng.normal(0, 15, img.shape), 0, 255).astype(np.float32)


# ------------------------------------------------------------------ the judgement

def compare(got, expected, kind="logits", noise=None):
    """Judge an import: ``(ok, report)``.

    logits: max |difference| <= 1e-4 of the reference's largest |logit| (float32 sums
    reordered by another graph differ by ~1e-6 of the scale).

    gradients: ReLU gates near 0 flip under float32 reordering, so a max is meaningless.
    ``expected`` is the exact gradient (the same model in float64), and ``noise`` the model's
    own float32 floor measured on the machine that built the fixture: (p99, correlation) of
    Keras eager float32 against that float64 gradient, or against Keras' own
    ``tf.function``, whichever is worse. The 99th percentile of |difference| / max
    |reference| must be within 3 times that floor (and never needs to be under 1e-2), and
    the correlation's distance from 1 within 3 times the floor's (never needs to be over
    0.99). The floor depends on the CPU's float32 kernels (ResNet50's p99 is ~1.7e-2 on an
    Intel Xeon with AVX-512, the others 1e-7 to 9e-3), so a fixed tolerance does not hold
    on every x86-64 CPU; a wrong preprocessing gives p99 ~0.7 and correlations near 0.
    """
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    if got.shape != expected.shape:
        return False, "shape {} != {}".format(got.shape, expected.shape)
    scale = max(np.abs(expected).max(), 1e-30)
    diff = np.abs(got - expected) / scale
    if kind == "logits":
        return bool(diff.max() <= 1e-4), "max |diff|/scale {:.2e} (tol 1e-4)".format(
            diff.max())
    p99_tol, corr_min = 1e-2, 0.99
    if noise is not None:
        p99_tol = max(p99_tol, 3 * float(noise[0]))
        corr_min = min(corr_min, 1 - 3 * (1 - float(noise[1])))
    p99 = float(np.percentile(diff, 99))
    corr = float(np.corrcoef(got.ravel(), expected.ravel())[0, 1])
    ok = p99 <= p99_tol and corr >= corr_min
    return ok, "p99 |diff|/max {:.2e} (tol {:.1e}), corr {:.6f} (min {:.4f})".format(
        p99, p99_tol, corr, corr_min)


def gradient_noise(a, b):
    """(p99 of |a - b| / max |b|, correlation): how far two correct gradients differ."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    p99 = np.percentile(np.abs(a - b) / max(np.abs(b).max(), 1e-30), 99)
    return np.array([p99, np.corrcoef(a.ravel(), b.ravel())[0, 1]])


def worst_noise(pairs):
    """The largest p99 and the smallest correlation of several ``gradient_noise`` pairs."""
    pairs = np.asarray(pairs, np.float64)
    return np.array([pairs[:, 0].max(), pairs[:, 1].min()])


# ------------------------------------------------------------------ building (eager)

def randomise_normalisation(model, calib, seed):
    """Seeded random BN / LN parameters, BN statistics from one training-mode pass."""
    import keras
    rng = np.random.default_rng(seed)
    bns = []
    for layer in _walk(model):
        name = layer.__class__.__name__
        if name in ("BatchNormalization", "LayerNormalization"):
            ws = layer.get_weights()
            n = ws[0].shape
            ws[0] = rng.uniform(0.5, 1.5, n).astype(np.float32)            # gamma
            if len(ws) > 1:
                ws[1] = rng.normal(0, 0.25, ws[1].shape).astype(np.float32)  # beta
            layer.set_weights(ws)
        if name == "BatchNormalization":
            bns.append((layer, layer.momentum))
            layer.momentum = 0.0
    if bns:
        model(calib, training=True)
    for layer, momentum in bns:
        layer.momentum = momentum
    return keras


def _walk(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _walk(layer)


def _preprocess_fn(family):
    import keras
    module = PREPROCESS[family][0]
    if module is None:
        return lambda x: x
    return getattr(keras.applications, module).preprocess_input


def build(family, out, seed=0):
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(seed)
    model = getattr(keras.applications, family)(weights=None, input_shape=(SIZE, SIZE, 3),
                                                 classes=CLASSES)
    pre = _preprocess_fn(family)
    calib = pre(images(8, seed=2).copy())
    randomise_normalisation(model, calib, seed)
    base = os.path.join(out, family)
    model.save(base + ".keras")
    model.save(base + ".h5")          # (Keras cannot read ConvNeXtTiny's back: a test)
    model.export(base + "_export", verbose=False)
    if family in TF_SAVE:
        tf.saved_model.save(model, base + "_tfsave")
    X = images()
    logits_and_grads = _logits_and_grads(model, pre)
    logits, grads32 = (t.numpy() for t in logits_and_grads(tf.constant(X)))
    _, graph_grads = tf.function(logits_and_grads)(tf.constant(X))   # Keras' own graph
    grads = float64_gradients(family, model, pre, X)                  # the exact gradient
    probs = model(pre(X.copy()), training=False).numpy()
    np.testing.assert_allclose(probs, tf.nn.softmax(logits).numpy(), rtol=1e-4, atol=1e-6)
    floors = [gradient_noise(grads32, grads), gradient_noise(graph_grads.numpy(), grads32)]
    np.savez(base + "_ref.npz", images=X, logits=logits, grads=grads, grads32=grads32,
             probs=probs, noise=worst_noise(floors), floors=np.array(floors))


def _logits_and_grads(model, pre):
    """Keras eager's logits (the classifier's input times its kernel, plus its bias) and
    the gradient of logit ``TARGET`` with respect to the RGB input."""
    import keras
    import tensorflow as tf
    head = model.layers[-1]
    penultimate = keras.Model(model.inputs, head.input)

    def logits_and_grads(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = tf.matmul(penultimate(pre(x), training=False), head.kernel) + head.bias
            score = tf.reduce_sum(logits[:, TARGET])
        return logits, tape.gradient(score, x)
    return logits_and_grads


def float64_gradients(family, model, pre, X):
    """The gradient of the same model computed in float64 (weights, images, every op):
    the reference a float32 import is judged against, exact to far below float32."""
    import keras
    import tensorflow as tf
    keras.config.set_dtype_policy("float64")
    try:
        twin = getattr(keras.applications, family)(weights=None, input_shape=(SIZE, SIZE, 3),
                                                    classes=CLASSES)
    finally:
        keras.config.set_dtype_policy("float32")
    twin.set_weights([w.astype(np.float64) for w in model.get_weights()])
    _, grads = _logits_and_grads(twin, pre)(tf.constant(X.astype(np.float64)))
    assert grads.dtype == tf.float64, grads.dtype
    return grads.numpy()


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for fam in sys.argv[2:] or FAMILIES:
        build(fam, out_dir)
        print("built", fam, flush=True)
