"""The one-off cost of importing a Keras model, per keras.applications family.

    .venv/bin/python benchmarks/import_cost.py [--size 224] [--classes 1000] [FAMILY ...]

For each family (random weights, ``weights=None``) it saves a ``.keras`` file (in a child
process, as a user would have one), then, in this process with eager execution disabled as
the toolkit's users run it, measures with an empty conversion cache:

- convert: ``model_import.ensure_converted`` for that file alone, i.e. the child process
  (Python, TensorFlow and Keras start-up included), loading, tracing, freezing, the
  gradient rewrites, the check against the eager model and the cache write;
- graph: the size of the frozen, rewritten ``graph.pb``;
- import: ``get_model`` on the cached entry into a fresh graph (reading and parsing the
  GraphDef, ``import_graph_def``), then the first forward pass of one image and the
  first input gradient (TensorFlow's graph optimisation happens there).

Prints a Markdown table. Takes a few minutes at 224 x 224.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
FAMILIES = ("ResNet50", "MobileNetV2", "EfficientNetB0", "DenseNet121", "ConvNeXtTiny")

BUILD = """
import os, sys, keras
keras.utils.set_random_seed(0)
for fam in sys.argv[3:]:
    m = getattr(keras.applications, fam)(weights=None, classes=int(sys.argv[2]),
                                         input_shape=(int(sys.argv[1]),) * 2 + (3,))
    m.save(os.path.join(os.environ['OUT'], fam + '.keras'))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=1000)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="import_cost_")
    os.environ["HW3_CACHE_DIR"] = os.path.join(work, "cache")
    env = dict(os.environ, OUT=work, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    subprocess.run([sys.executable, "-c", BUILD, str(args.size), str(args.classes)]
                   + args.families, env=env, check=True)
    import numpy as np
    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    import hw3_utils
    from attrkit.models import model_import
    print("| family | convert (s) | graph.pb (MB) | import (s) | first forward (s) | "
          "first gradient (s) | parameters (M) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for fam in args.families:
        path = os.path.join(work, fam + ".keras")
        start = time.perf_counter()
        entry = model_import.ensure_converted([(path, "keras", None)])[0]
        convert = time.perf_counter() - start
        size = os.path.getsize(os.path.join(entry, "graph.pb")) / 1e6
        sess = tf.compat.v1.Session(graph=tf.Graph())
        start = time.perf_counter()
        with sess.graph.as_default():
            model = hw3_utils.get_model(sess, path)
            grad = tf.gradients(model.logits[:, 0], model.imgs)[0]
        load = time.perf_counter() - start
        x = np.random.default_rng(0).uniform(0, 255, (1,) + tuple(model.imgs.shape[1:]))
        start = time.perf_counter()
        sess.run(model.logits, {model.imgs: x})
        forward = time.perf_counter() - start
        start = time.perf_counter()
        sess.run(grad, {model.imgs: x})
        backward = time.perf_counter() - start
        params = size / 4.0            # float32 constants make up nearly all of the file
        print("| {} | {:.1f} | {:.1f} | {:.1f} | {:.2f} | {:.2f} | ~{:.1f} |".format(
            fam, convert, size, load, forward, backward, params), flush=True)
        sess.close()


if __name__ == "__main__":
    main()
