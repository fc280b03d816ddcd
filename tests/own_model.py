"""A researcher's own model for the tests: synthetic classes, a Keras CNN trained in seconds.

``synthetic_images(n, seed)`` -> ``(X, y)``: ``[n, 32, 32, 3]`` RGB 0-255 images of noise
whose class is a coloured square (``CLASS_NAMES``: red, green or blue) placed at a random
spot inside ``EVIDENCE`` (the top-left 16 x 16 quadrant, a quarter of the image); nothing
outside it tells the classes apart, so a faithful attribution puts more than a quarter of
its mass there. ``evidence_mask()`` is that region as a boolean ``[32, 32]`` array.

Run as a script (eager TensorFlow, which the test process has switched off)::

    python tests/own_model.py OUT_DIR

writes ``OUT_DIR/own.keras`` (a small CNN trained on ``synthetic_images``, with its own
``Rescaling`` layer), ``labels.txt`` (``CLASS_NAMES``, one per line), ``accuracy.txt``, and
the odd models that the import must handle or refuse: ``binary.keras`` (one sigmoid
unit), ``gray_fcn.keras`` (1 channel, any size), ``two_inputs.keras``, ``map_output.keras``
(a ``[None, 8, 8, 2]`` output), ``weights_only.weights.h5`` and ``subclassed_savedmodel``
(a subclassed model through ``tf.saved_model.save``), and ``odd_ref.npz``: Keras eager's
outputs of the subclassed, binary and grayscale models on seeded images.
"""
import os
import sys

import numpy as np

SIZE = 32
MARK = 6
CLASS_NAMES = ("red_mark", "green_mark", "blue_mark")
EVIDENCE = (slice(0, 16), slice(0, 16))          # rows, columns of the evidence region


def evidence_mask():
    mask = np.zeros((SIZE, SIZE), bool)
    mask[EVIDENCE] = True
    return mask


def synthetic_images(n, seed=0):
    """(X [n, 32, 32, 3] float32 RGB 0-255, y [n] int): class c is a square of colour c."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(60, 160, (n, SIZE, SIZE, 3)).astype(np.float32)
    y = rng.integers(0, len(CLASS_NAMES), n)
    rows, cols = EVIDENCE
    for i in range(n):
        r = rng.integers(rows.start, rows.stop - MARK + 1)
        c = rng.integers(cols.start, cols.stop - MARK + 1)
        colour = np.full(3, 20.0)
        colour[y[i]] = 250.0
        X[i, r:r + MARK, c:c + MARK] = colour
    return X, y


def train_own_model(out, seed=0):
    """Train and save the evidence CNN; return its accuracy on fresh images."""
    import keras
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Rescaling(1 / 255.0, name="rescale"),
        keras.layers.Conv2D(12, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(name="pool1"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
        keras.layers.GlobalMaxPooling2D(name="gap"),
        keras.layers.Dense(len(CLASS_NAMES), activation="softmax", name="predictions"),
    ], name="own_cnn")
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    X, y = synthetic_images(600, seed=seed)
    model.fit(X, y, batch_size=32, epochs=6, verbose=0)
    Xt, yt = synthetic_images(200, seed=seed + 1)
    accuracy = float((model.predict(Xt, verbose=0).argmax(1) == yt).mean())
    model.save(os.path.join(out, "own.keras"))
    with open(os.path.join(out, "labels.txt"), "w") as f:
        f.write("\n".join(CLASS_NAMES) + "\n")
    with open(os.path.join(out, "accuracy.txt"), "w") as f:
        f.write(str(accuracy))
    return accuracy


def build_odd_models(out, seed=0):
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    binary = keras.Sequential([keras.Input((16, 16, 3)), layers.Conv2D(4, 3, name="c"),
                               layers.Flatten(name="flat"),
                               layers.Dense(1, activation="sigmoid", name="out")])
    binary.save(os.path.join(out, "binary.keras"))
    x = keras.Input((None, None, 1))
    h = layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    h = layers.GlobalAveragePooling2D(name="pool")(h)
    keras.Model(x, layers.Dense(3, name="logits")(h), name="gray_fcn").save(
        os.path.join(out, "gray_fcn.keras"))
    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    two = layers.Dense(2)(layers.Flatten()(layers.Concatenate()([a, b])))
    keras.Model([a, b], two).save(os.path.join(out, "two_inputs.keras"))
    m = keras.Input((8, 8, 3))
    keras.Model(m, layers.Conv2D(2, 1)(m)).save(os.path.join(out, "map_output.keras"))
    binary.save_weights(os.path.join(out, "weights_only.weights.h5"))

    class Sub(keras.Model):
        def __init__(self):
            super().__init__(name="sub")
            self.conv = layers.Conv2D(3, 3, activation="relu", name="conv")
            self.pool = layers.GlobalAveragePooling2D(name="pool")
            self.dense = layers.Dense(4, name="dense")

        def call(self, x):
            return self.dense(self.pool(self.conv(x)))

    sub = Sub()
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 255, (2, 12, 12, 3)).astype(np.float32)
    serve = tf.function(lambda x: sub(x), input_signature=[tf.TensorSpec([None, 12, 12, 3])])
    tf.saved_model.save(sub, os.path.join(out, "subclassed_savedmodel"),
                        signatures=serve)
    Xb = rng.uniform(0, 255, (3, 16, 16, 3)).astype(np.float32)
    Xg = rng.uniform(0, 255, (2, 20, 24, 1)).astype(np.float32)
    gray = keras.saving.load_model(os.path.join(out, "gray_fcn.keras"))
    np.savez(os.path.join(out, "odd_ref.npz"), sub_images=X, sub_logits=sub(X).numpy(),
             binary_images=Xb, binary_probs=binary(Xb).numpy(),
             gray_images=Xg, gray_logits=gray(Xg).numpy())


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    print("accuracy", train_own_model(out_dir))
    build_odd_models(out_dir)
