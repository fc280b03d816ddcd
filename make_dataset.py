"""Build a course-style ``.npz`` from a folder of images, with a model's predictions.

    python make_dataset.py FOLDER --out data.npz [--model NAME] [--weights PATH]

``FOLDER`` holds one sub-folder per class, named by an ImageNet class name (any synonym,
case-insensitive; underscores read as spaces, e.g. ``sports_car``) or index (``817``).
Each image is center-cropped to a square and resized to 224 x 224 (bilinear), stored as
uint8 RGB, and classified by the chosen model (``hw3_utils.get_model``'s rule when
``--model`` is not given). The file has the keys that ``hw3_utils.load_ImageNet`` reads:

- ``X``      uint8 ``[N, 224, 224, 3]`` RGB
- ``y_true`` int64 ``[N]`` the class of each image's sub-folder
- ``y_pred`` int64 ``[N]`` the model's top-1 class
- ``idx``    int64 ``[N]`` 0 .. N-1
- ``files``  str ``[N]`` each image's path relative to ``FOLDER``
- ``model``  str ``[]`` the name of the model that predicted ``y_pred``

It is written to a temporary name in the same directory and renamed into place.
"""
import argparse
import os
import sys

import numpy as np

from hw3_vc import import_tensorflow

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

FOLDER_ERROR = "folder: expected a directory of class sub-folders, got {actual!r}"
EMPTY_ERROR = "folder: no images ({exts}) in class sub-folders of {actual!r}"
CLASS_FOLDER_ERROR = "folder: sub-folder {sub!r} is not an ImageNet class: {reason}"
OUT_ERROR = "--out: expected {expected}, got {actual!r}"
IMAGE_ERROR = "folder: {path!r}: {reason}"


def _utils():
    """hw3_utils (it imports TensorFlow: quietly, and only when first needed)."""
    import_tensorflow()
    import hw3_utils
    return hw3_utils


def class_index(folder_name):
    """The ImageNet index a class sub-folder's name stands for (a name or an index)."""
    hw3_utils = _utils()
    text = folder_name.strip()
    if text.isdigit():
        try:
            hw3_utils.ImageNet_idx2name(int(text))
            return int(text)
        except ValueError as e:
            raise ValueError(CLASS_FOLDER_ERROR.format(sub=folder_name, reason=e)) from None
    try:
        return hw3_utils.ImageNet_name2idx(text, strict=True)
    except ValueError as first:
        if "_" not in text:
            raise ValueError(CLASS_FOLDER_ERROR.format(sub=folder_name, reason=first)) from None
    try:
        return hw3_utils.ImageNet_name2idx(text.replace("_", " "), strict=True)
    except ValueError as e:
        raise ValueError(CLASS_FOLDER_ERROR.format(sub=folder_name, reason=e)) from None


def collect(folder):
    """``[(relative path, class index)]`` of every image, sorted by sub-folder then file."""
    if not os.path.isdir(folder):
        raise ValueError(FOLDER_ERROR.format(actual=folder))
    items = []
    for sub in sorted(os.listdir(folder)):
        subdir = os.path.join(folder, sub)
        if not os.path.isdir(subdir) or sub.startswith("."):
            continue
        files = sorted(f for f in os.listdir(subdir)
                       if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))
        if files:
            c = class_index(sub)
            items.extend((os.path.join(sub, f), c) for f in files)
    if not items:
        raise ValueError(EMPTY_ERROR.format(exts=" ".join(IMAGE_EXTENSIONS), actual=folder))
    return items


def read_images(folder, items, size=224):
    """uint8 ``[N, size, size, 3]``: each image center-cropped and resized (bilinear); a
    file that is not a readable image raises ValueError naming it."""
    hw3_utils = _utils()
    X = np.empty((len(items), size, size, 3), np.uint8)
    for i, (rel, _) in enumerate(items):
        path = os.path.join(folder, rel)
        try:
            img = hw3_utils.load_rgb_image(path)
        except (OSError, ValueError) as e:
            raise ValueError(IMAGE_ERROR.format(path=path, reason=e)) from None
        X[i] = np.clip(np.rint(hw3_utils.center_crop_resize(img, size)), 0, 255)
    return X


def build_dataset(folder, model, sess, items=None, X=None):
    """The arrays of the ``.npz`` (see the module docstring) for ``folder``.

    ``model``/``sess``: the classifier whose predictions are stored (batched sess.run);
    ``items``/``X``: :func:`collect` and :func:`read_images` of the folder, when done.
    """
    hw3_utils = _utils()
    items = collect(folder) if items is None else items
    X = read_images(folder, items) if X is None else X
    # Predict on exactly what is stored, so load_ImageNet(path) + the model reproduce it.
    y_pred = hw3_utils.predict(model, sess, X.astype(np.float32))
    return {"X": X,
            "y_true": np.array([c for _, c in items], np.int64),
            "y_pred": y_pred,
            "idx": np.arange(len(items), dtype=np.int64),
            "files": np.array([rel.replace(os.sep, "/") for rel, _ in items], dtype=str),
            "model": np.array(str(getattr(model, "name", type(model).__name__)))}


def write_npz(path, arrays):
    """Write ``arrays`` (compressed) to ``path`` through the toolkit's one atomic writer
    (``hw3_evaluation.write_bytes``: a temporary file in the same folder, renamed)."""
    import io
    _utils()
    from hw3_evaluation import write_bytes
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return write_bytes(os.path.abspath(path), buffer.getvalue())


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="make_dataset.py",
        description="Build a course-style .npz (X, y_true, y_pred, idx) from a folder with "
                    "one sub-folder of images per ImageNet class.")
    p.add_argument("folder", help="folder of class sub-folders (named by an ImageNet class "
                                  "name, e.g. 'tabby' or 'sports_car', or an index)")
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--model", default=None,
                   help="model that predicts y_pred: vgg16 or efficientnet_lite0 (default: "
                        "hw3_utils.get_model's choice rule)")
    p.add_argument("--weights", default=None, help="weights file for the model")
    p.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's start-up notices (oneDNN, absl)")
    args = p.parse_args(argv)
    parent = os.path.dirname(os.path.abspath(args.out))
    if os.path.isdir(args.out):
        p.error(OUT_ERROR.format(expected="a file name", actual=args.out) + " (a folder)")
    if not os.path.isdir(parent):
        p.error(OUT_ERROR.format(expected="a file in an existing folder",
                                 actual=args.out) + " (no folder {!r})".format(parent))
    return args, p


def main(argv=None):
    args, parser = parse_args(argv)
    tf = import_tensorflow(args.verbose)
    try:   # the folder, its class names and every image: before any model is built
        items = collect(args.folder)
        X = read_images(args.folder, items)
    except ValueError as e:
        parser.error(str(e))
    hw3_utils = _utils()
    tf.compat.v1.disable_eager_execution()
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as sess, graph.as_default():
        model = hw3_utils.get_model(sess, args.model, args.weights)
        arrays = build_dataset(args.folder, model, sess, items, X)
    write_npz(args.out, arrays)
    right = int((arrays["y_true"] == arrays["y_pred"]).sum())
    print("wrote {}: {} images, {} classes, {} of {} predicted right by {}".format(
        args.out, len(arrays["X"]), len(set(arrays["y_true"].tolist())), right,
        len(arrays["X"]), arrays["model"]))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, TypeError, FileNotFoundError) as e:
        print("make_dataset.py: error: {}".format(e), file=sys.stderr)
        sys.exit(2)
