"""Reference logits from keras.applications.VGG16, run as a subprocess by tests/test_vgg16.py.

Keras 3 needs eager mode, which the toolkit's tests disable, hence a separate process.

    python tests/vgg16_keras_ref.py WEIGHTS.h5 IMAGES.npy LOGITS.npy [--save-h5 P]
                                   [--save-weights-h5 P]

Loads WEIGHTS.h5 with Keras' own loader, feeds IMAGES.npy ([N, 224, 224, 3] RGB 0-255)
through Keras' own ``vgg16.preprocess_input`` (caffe-style: BGR, mean subtracted) and
writes the pre-softmax logits [N, 1000]. Optionally re-saves the weights in Keras 3's
legacy full-model ``.h5`` and its ``.weights.h5`` layouts, so the reader is tested on
files that Keras wrote itself.
"""
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("images")
    parser.add_argument("out")
    parser.add_argument("--save-h5")
    parser.add_argument("--save-weights-h5")
    args = parser.parse_args()

    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    from keras.applications import vgg16

    model = vgg16.VGG16(weights=None, classifier_activation=None)
    model.load_weights(args.weights)
    images = np.load(args.images, allow_pickle=False).astype(np.float32)
    x = vgg16.preprocess_input(images.copy())  # RGB -> BGR, minus the BGR mean
    logits = np.asarray(model(x, training=False), np.float32)  # [N, 1000]
    np.save(args.out, logits)
    if args.save_h5:
        model.save(args.save_h5)
    if args.save_weights_h5:
        model.save_weights(args.save_weights_h5)
    print(f"keras {keras.__version__}: logits {logits.shape}, max |logit| "
          f"{np.abs(logits).max():.4g}")


if __name__ == "__main__":
    main()
