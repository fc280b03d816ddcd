"""Record shap 0.51's Partition explainer and OpenCV's box blur for
tests/test_partition_shap.py: writes tests/data/partition_shap_reference.npz.

shap and OpenCV are not dependencies of the project (the toolkit never imports them), so
this runs where both are importable, e.g.::

    PYTHONPATH=/path/to/shap:/path/to/numba_stub python tests/record_shap_reference.py

(shap 0.51.0 imports numba; where numba cannot be installed, a stub package ``numba``
whose ``njit``/``jit`` return the function, with ``prange = range`` and ``typed.List =
list``, runs shap's jitted code as plain Python.)

The model is :func:`models.tiny_convnet` (seeded numpy weights in a TF1 graph), the same
function the test builds; shap calls it through the session and explains its pre-softmax
logits with ``outputs=[c]``, on images passed as float64 (so that shap's ``cv2.blur`` runs
in float64, as our blur does, and each masked image is rounded to float32 once, by the
feed). The fixture keeps the images and the model's logits on them (the test checks that
the model it builds is still this one), shap's values and base values per case, shap's
partition trees (``clustering``) for a few shapes, and ``cv2.blur`` of random arrays,
kernels larger than the array included.

:func:`shap_partition` is also what the test runs live where shap is importable.
"""
import json
import os
import sys

import numpy as np

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(TESTS_DIR, "data", "partition_shap_reference.npz")

# The images of each model, drawn as here; the cases run shap on them.
MODELS = {"16": {"size": 16}, "12x20": {"size": 12, "width": 20}}
IMAGE_COUNT = {"16": 2, "12x20": 1}
CASES = [
    # name, model, masker, max_evals, targets, seed, fixed_context, queue_batch
    ("blur_100", "16", "blur(9,9)", 100, [0, 3], 3, None, 10),
    ("blur_500", "16", "blur(9,9)", 500, [0, 3], 3, None, 10),
    ("constant_100", "16", 128, 100, [1, 1], 5, None, 10),
    ("constant_500", "16", 128, 500, [1, 1], 5, None, 10),
    ("wide_kernel_context_1", "12x20", "blur(25,5)", 300, [2], 7, 1, 4),
    ("zero_context_0", "12x20", 0, 150, [4], 1, 0, 10),
]
TREE_SHAPES = [(16, 16, 3), (12, 20, 3), (5, 7, 3), (1, 4, 2)]
BLUR_CASES = [((6, 9, 3), (3, 3)), ((6, 9, 3), (4, 2)), ((5, 4, 2), (20, 7)),
              ((1, 5, 3), (3, 4)), ((8, 8, 1), (9, 9)), ((7, 3, 3), (1, 1)),
              ((16, 16, 3), (9, 9)), ((3, 2, 3), (2, 6))]


def model_images(name):
    """The images ``[n, H, W, 3]`` of model ``name``: uniform 0-255, float32."""
    spec = MODELS[name]
    shape = (IMAGE_COUNT[name], spec["size"], spec.get("width", spec["size"]), 3)
    return np.random.RandomState(1).uniform(0, 255, shape).astype(np.float32)


def build_model(name):
    """tiny_convnet of model ``name`` in the current default graph."""
    from models import tiny_convnet
    spec = MODELS[name]
    return tiny_convnet(spec["size"], width=spec.get("width"))


def shap_partition(sess, model, X, masker, max_evals, targets, seed, fixed_context=None,
                   queue_batch=10):
    """shap's values ``[N, H, W, C]`` and base values ``[N]``: for each image,
    ``numpy.random.seed(seed)``, then ``shap.Explainer(f, shap.maskers.Image(masker,
    shape), algorithm='partition')(x[None], max_evals=..., outputs=[c],
    fixed_context=..., batch_size=queue_batch)``, ``f`` the model's logits."""
    import shap

    def f(imgs):
        return sess.run(model.logits, {model.imgs: imgs})

    values, base = [], []
    for x, c in zip(X, targets):
        np.random.seed(seed)
        explainer = shap.Explainer(f, shap.maskers.Image(masker, x.shape),
                                   algorithm="partition")
        out = explainer(x[None].astype(np.float64), max_evals=max_evals, outputs=[int(c)],
                        fixed_context=fixed_context, batch_size=queue_batch, silent=True)
        values.append(out.values[0, ..., 0])
        base.append(float(np.ravel(out.base_values)[0]))
    return np.stack(values), np.array(base)


def shap_clustering(shape):
    """shap's partition tree of images of ``shape``: int32 ``[M - 1, 3]`` (left, right,
    size)."""
    import shap
    return shap.maskers.Image(0.0, shape).clustering[:, [0, 1, 3]].astype(np.int32)


def blur_arrays():
    """The random float64 arrays of :data:`BLUR_CASES`."""
    rng = np.random.RandomState(0)
    return [rng.uniform(0, 255, shape) for shape, _ in BLUR_CASES]


def cv2_blur(x, kernel):
    """``cv2.blur(x, kernel)`` with the channel axis kept (OpenCV drops a single one)."""
    import cv2
    return cv2.blur(x, kernel).reshape(x.shape)


def record():
    """The fixture's arrays (see the module docstring)."""
    import cv2
    import shap
    import tensorflow as tf
    tf1 = tf.compat.v1
    tf1.disable_eager_execution()
    out = {"versions": np.array(json.dumps({"shap": shap.__version__,
                                            "cv2": cv2.__version__}))}
    for name in MODELS:
        with tf.Graph().as_default() as graph, tf1.Session(graph=graph) as sess:
            model = build_model(name)
            X = model_images(name)
            out[f"images_{name}"] = X
            out[f"logits_{name}"] = sess.run(model.logits, {model.imgs: X})
            for case, model_name, masker, evals, targets, seed, context, queue in CASES:
                if model_name != name:
                    continue
                values, base = shap_partition(sess, model, X, masker, evals, targets, seed,
                                              context, queue)
                out[f"values_{case}"], out[f"base_{case}"] = values, base
    out["cases"] = np.array(json.dumps(CASES))
    for shape in TREE_SHAPES:
        out["tree_" + "x".join(map(str, shape))] = shap_clustering(shape)
    for k, (x, (_, kernel)) in enumerate(zip(blur_arrays(), BLUR_CASES)):
        out[f"blur_in_{k}"], out[f"blur_out_{k}"] = x, cv2_blur(x, kernel)
    out["blur_cases"] = np.array(json.dumps(BLUR_CASES))
    return out


def main(path=FIXTURE):
    sys.path.insert(0, TESTS_DIR)
    out = record()
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, **out)
    os.replace(tmp, path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main(*sys.argv[1:])
