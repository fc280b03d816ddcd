"""Build a course-style ``.npz`` from a folder of images, with a model's predictions.

    python make_dataset.py FOLDER --out data.npz [--model NAME|PATH] [--weights PATH]
        [--labels FILE] [--preprocess P] [--input-size N|H,W]

``FOLDER`` holds one sub-folder per class. For an ImageNet model (the built-in ones) a
sub-folder is named by an ImageNet class name (any synonym, case-insensitive; underscores
read as spaces, e.g. ``sports_car``) or index (``817``); for your own model, by one of its
class names (``--labels``), or by any names when the model has no names for its classes
and there are as many folders as classes (sorted, as Keras'
``image_dataset_from_directory`` orders them). A folder that is not one of the classes,
and a file that is not an image, is skipped and named. Each image is centre-cropped to the
model's aspect ratio and resized to its input (bilinear), stored as uint8 with its channel
count, and classified by the model (``hw3_utils.get_model``'s rule when ``--model`` is not
given). The file has the keys that ``hw3_utils.load_ImageNet`` reads:

- ``X``      uint8 ``[N, H, W, C]``
- ``y_true`` int64 ``[N]`` the class of each image's sub-folder
- ``y_pred`` int64 ``[N]`` the model's top-1 class
- ``idx``    int64 ``[N]`` 0 .. N-1
- ``files``  str ``[N]`` each image's path relative to ``FOLDER``
- ``class_names`` str ``[K]`` the model's classes
- ``model``  str ``[]`` the model that predicted ``y_pred``

It is written to a temporary name in the same directory and renamed into place.
"""
import argparse
import os
import sys

import numpy as np

from hw3_vc import add_model_options, import_tensorflow

OUT_ERROR = "--out: expected {expected}, got {actual!r}"


def _utils():
    """hw3_utils (it imports TensorFlow: quietly, and only when first needed)."""
    import_tensorflow()
    import hw3_utils
    return hw3_utils


def class_index(folder_name):
    """The ImageNet index a class sub-folder's name stands for (a name or an index)."""
    return _utils().imagenet_class_index(folder_name)


def build_dataset(folder, model, sess, labels_given=False):
    """The arrays of the ``.npz`` (see the module docstring) for an ``hw3_utils.ImageFolder``
    and the model ``model`` in ``sess`` (batched predictions), and what was skipped."""
    hw3_utils = _utils()
    names = hw3_utils.classes_from_folders(getattr(model, "class_names", hw3_utils.class_names),
                                           folder.folders, labels_given)
    h, w, c = model.imgs.shape.as_list()[1:]
    data, skipped = folder.load(names, (h, w), c)
    X = data.X.astype(np.uint8)
    # Predict on exactly what is stored, so load_ImageNet(path) + the model reproduce it.
    y_pred = hw3_utils.predict(model, sess, X.astype(np.float32))
    files = [folder.entries[i][0] for i in data.Idx]
    return {"X": X, "y_true": data.Y, "y_pred": y_pred,
            "idx": np.arange(len(X), dtype=np.int64),
            "files": np.array(files, dtype=str), "class_names": np.array(names, dtype=str),
            "model": np.array(str(getattr(model, "name", type(model).__name__)))}, skipped


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
                    "one sub-folder of images per class, predicted by a model.")
    p.add_argument("folder", help="folder of class sub-folders (for an ImageNet model named "
                                  "by a class name, e.g. 'tabby' or 'sports_car', or index; "
                                  "for your own, by its class names)")
    p.add_argument("--out", required=True, help="the .npz file to write")
    add_model_options(p)
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


def check_inputs(args, parser):
    """The options, the folder and every image, before any model is built: ``(model
    options, ImageFolder)``; a built-in (ImageNet) model's class folders are checked too."""
    hw3_utils = _utils()
    from attrkit.models import model_import
    try:
        options = hw3_utils.parse_model_options(args.model, args.weights, args.labels,
                                                args.preprocess, args.input_size)
        folder = hw3_utils.ImageFolder(args.folder)
        if not model_import.is_model_path(options["name_or_path"] or ""):
            names = options["labels"] or hw3_utils.class_names      # ImageNet's 1000
            rows, _, skipped = folder.labels(names)
            if not rows:
                raise ValueError("folder: no class folder is one of the model's classes: "
                                 + "; ".join(sorted({why for _, why in skipped})[:3]))
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    return options, folder


def main(argv=None):
    args, parser = parse_args(argv)
    tf = import_tensorflow(args.verbose)
    options, folder = check_inputs(args, parser)
    hw3_utils = _utils()
    tf.compat.v1.disable_eager_execution()
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as sess, graph.as_default():
        try:
            model = hw3_utils.get_model(sess, **options)
        except (ValueError, FileNotFoundError) as e:   # e.g. labels that are not K
            parser.error(hw3_utils.option_message(e))
        try:
            arrays, skipped = build_dataset(folder, model, sess, args.labels is not None)
        except ValueError as e:
            parser.error(str(e))
    for rel, why in folder.skipped + skipped:
        print("skipped {}: {}".format(rel, why), file=sys.stderr)
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
