#!/usr/bin/env python
"""Explain and score whole data sets on Ray: locally by default, on a cluster when asked.

    python explain_dataset.py --out results/                       # the bundled sample
    python explain_dataset.py IMAGES/ more.npz --out results/ --workers 2
    python explain_dataset.py IMAGES/ --out results/ --address 10.0.0.1:6379

Inputs (any number, in order): a folder with one sub-folder of images per ImageNet class
(named as ``make_dataset.py`` reads them: a class name such as ``tabby`` or ``sports_car``,
or an index), a course-style ``.npz`` (keys ``X``, ``Y``, ``Pred``, ``Idx``, read by
``hw3_utils.load_ImageNet``), or ``bundled`` (the 17 sample photographs; the default when no
input is given).

Per image: the chosen attribution methods (``--methods``), each scored by the chosen metrics
(``--metrics``) on its own map, and the per-class partial sums of one layer's distributional
influence (``InflDirected.influence_partial``), merged exactly (``hw3_infl.merge``) at the end
into the expert neuron of the whole data set and of each true class.

Engine: the images are cut into shards (``--shard-size`` images of one input and class).
Ray Data runs ``ShardExplainer`` over them as a fixed pool of ``--workers`` actors
(``map_batches`` with a callable class); each actor builds the TF1 graph, session, model and
method ops once, in its constructor. ``ray.init`` starts a local cluster unless
``--address`` (or ``RAY_ADDRESS``) names one to join; actors ask for a GPU each when the
cluster has them (``pool_layout``). Progress is Ray Data's own progress display.

Nothing lost, nothing twice: a shard's name is a hash of its images (where each is, its
file bytes or pixels, its labels) and of every setting that changes a number (methods, metrics,
their parameters, model and weights, seed, batch size, and the toolkit's source code).
The driver writes each finished shard to ``OUT/shards/<name>.npz`` through a temporary file
and a rename, as soon as it arrives; a rerun skips the shards whose file exists. An actor
that dies is restarted by Ray and its shard retried (``--retries``); a shard that raises is
reported, not written, so the next run retries it.

Output under ``--out``: ``results.parquet`` (one row per image and method: index, true,
predicted and target class, the metrics, IG's completeness error), ``summary.md`` and
``summary.csv`` (each method's mean with a 95% confidence interval per metric),
``experts.csv`` (the influence expert over all images and per true class), ``skipped.csv``
(inputs that were not explained, and why), ``run.json`` (settings and counts), and with
``--save-maps`` the pixel maps as ``OUT/maps/<name>.npz``.

Rows equal the single-process API calls on the same images and seeds: every method and
metric is called as in the API with the image's target class; ``random`` uses
``RandomAttribution(seed=image_seed(seed, digest))``, a seed made from the image's content,
so that a map does not depend on which shard the image falls in.
"""
import argparse
import hashlib
import io
import json
import os
import socket
import sys
import time
import traceback
import warnings

import numpy as np

PROJECT_DIR = os.path.dirname(os.path.abspath(__file__))
FORMAT_VERSION = 1
BUNDLED = "bundled"
IMAGE_SIZE = 224

METHODS = ("saliency", "ig", "smoothgrad", "gradient", "gradcam", "occlusion", "random")
METRICS = ("average_drop", "n_ord", "insertion", "deletion")
METHOD_TITLES = {"saliency": "Saliency", "ig": "Integrated Gradients",
                 "smoothgrad": "SmoothGrad", "gradient": "Vanilla gradient",
                 "gradcam": "Grad-CAM", "occlusion": "Occlusion", "random": "Random"}
# metric columns of the table, their titles, and which --metrics entry makes them
METRIC_COLUMNS = (("average_drop", "Average Drop %", "average_drop"),
                  ("average_increase", "Average Increase (share)", "average_drop"),
                  ("n_ord", "Necessity Ordering", "n_ord"),
                  ("insertion_auc", "Insertion AUC", "insertion"),
                  ("deletion_auc", "Deletion AUC", "deletion"),
                  ("ig_completeness_error", "IG completeness error", None))
ROW_COLUMNS = (("index", "int64"), ("input", "str"), ("item", "str"), ("image_id", "int64"),
               ("true_class", "int64"), ("true_name", "str"), ("predicted_class", "int64"),
               ("predicted_name", "str"), ("target", "int64"), ("correct", "bool"),
               ("method", "str"), ("score", "float64"), ("prob", "float64")) + tuple(
    (c, "float64") for c, _, _ in METRIC_COLUMNS)
SKIPPED_COLUMNS = ("index", "input", "item", "reason")
# the same extensions as make_dataset.IMAGE_EXTENSIONS (kept here so --help needs no TF)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# the files whose source is part of every shard's name: a change there can change a number
SOURCE_FILES = ("hw3_attribution.py", "hw3_infl.py", "hw3_evaluation.py", "hw3_utils.py",
                "efficientnet_lite0.py", "vgg16.py", "explain_dataset.py")
SHIP_EXCLUDES = [".venv", ".git", "**/__pycache__", "results", "figures", "*.npz", "*.h5",
                 "*.parquet", ".pytest_cache"]

# Error messages, kept as data so that tests match the same templates.
NAMES_ERROR = "{arg}: unknown name(s) {bad}; expected a comma list of {valid}"
EMPTY_NAMES_ERROR = "{arg}: expected at least one of {valid}, got none"
INPUT_ERROR = ("inputs: expected a folder of class sub-folders, a .npz file or 'bundled', "
               "got {actual!r} ({why})")
NOTHING_ERROR = ("inputs: expected at least one image that can be explained, got none: "
                 "{skipped} input(s) skipped ({reasons}); nothing was written")
EMPTY_SHARD_ERROR = ("no image of this shard could be read ({reasons}); an empty shard is "
                     "never recorded as done")
OUT_ERROR = "--out: expected a folder (created if missing), got the file {actual!r}"
OUT_WRITE_ERROR = ("--out: expected a folder this user can write (created if missing), got "
                   "{actual!r}")
ADDRESS_ERROR = ("--address: cannot reach a Ray cluster at {address!r} ({why}). Start one "
                 "with `ray start --head` on the head node and give its address "
                 "(host:6379), or leave --address and RAY_ADDRESS unset for a local run")
AUTH_HINT = (". The port answers: if the cluster uses token authentication (`ray start` "
             "turns it on when the head has ~/.ray/auth_token), set RAY_AUTH_MODE=token and "
             "give the head's token (RAY_AUTH_TOKEN, or a copy in ~/.ray/auth_token)")
LAYER_ERROR = "{arg}: the model {model!r} has no layer {actual!r}; its layers: {valid}"
QOI_ARG_ERROR = ("--qoi: expected 'predicted', 'true', a class index, or two of those joined "
                 "by a comma (s_a - s_b), got {actual!r}")
SIZE_ERROR = "{arg}: expected a positive int that divides {size}, got {actual!r}"
POSITIVE_ERROR = "{arg}: expected {what}, got {actual!r}"
CAPACITY_ERROR = ("workers: {workers} actors with {gpus} GPU each need {need} GPUs; the "
                  "cluster has {have}")


class UsageError(ValueError):
    """A bad argument, found before any work starts."""


# ------------------------------------------------------------------------ arguments

def parse_names(text, valid, arg, allow_none=False):
    """A comma list of names checked against ``valid`` (``all``: every one)."""
    names = [t.strip().lower() for t in str(text).split(",") if t.strip()]
    if names == ["all"]:
        return list(valid)
    if allow_none and names in ([], ["none"]):
        return []
    bad = [n for n in names if n not in valid]
    if bad:
        raise UsageError(NAMES_ERROR.format(arg=arg, bad=bad, valid=", ".join(valid)))
    if not names:
        raise UsageError(EMPTY_NAMES_ERROR.format(arg=arg, valid=", ".join(valid)))
    return list(dict.fromkeys(names))


def parse_qoi(text):
    """``'predicted'``, ``'true'``, ``'c'`` or ``'a,b'`` -> a JSON-able spec (list of terms)."""
    terms = [t.strip().lower() for t in str(text).split(",")]
    out = []
    for t in terms:
        if t in ("predicted", "true"):
            out.append(t)
        elif t.isdigit():
            out.append(int(t))
        else:
            raise UsageError(QOI_ARG_ERROR.format(actual=text))
    if len(out) not in (1, 2):
        raise UsageError(QOI_ARG_ERROR.format(actual=text))
    return out


def make_qoi(spec):
    from hw3_infl import qoi_class, qoi_difference, qoi_predicted, qoi_true
    if len(spec) == 2:
        return qoi_difference(*spec)
    t = spec[0]
    return qoi_predicted() if t == "predicted" else qoi_true() if t == "true" else qoi_class(t)


def build_parser():
    p = argparse.ArgumentParser(
        prog="explain_dataset.py",
        description="Explain and score whole data sets on Ray (a local cluster by default, "
                    "an existing one with --address): attribution maps per image and method, "
                    "their metrics, and the data set's influence experts.",
        epilog="Outputs: OUT/results.parquet, summary.md, summary.csv, experts.csv, "
               "skipped.csv, run.json, shards/ (and maps/ with --save-maps). A rerun with "
               "the same settings skips finished shards.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("inputs", nargs="*", default=[BUNDLED],
                   help="folders with one sub-folder per ImageNet class, course-style .npz "
                        "files, or 'bundled' (the 17 sample photographs)")
    p.add_argument("--out", default="results", help="output folder (created; never wiped)")
    g = p.add_argument_group("what to compute")
    g.add_argument("--methods", default="all",
                   help="comma list of " + ", ".join(METHODS) + " (or 'all')")
    g.add_argument("--metrics", default="all",
                   help="comma list of " + ", ".join(METRICS) + " (or 'all', 'none')")
    g.add_argument("--model", default=None,
                   help="'vgg16' or 'efficientnet_lite0' (default: VGG16 if its weights are "
                        "found, else the bundled EfficientNet-Lite0; see hw3_utils.get_model)")
    g.add_argument("--weights", default=None, help="weights file for the model")
    g.add_argument("--target", choices=("predicted", "true"), default="predicted",
                   help="the class each image is explained and scored for")
    g.add_argument("--batch-size", type=int, default=16, help="rows per sess.run")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of SmoothGrad's noise, IG's random baseline and Random's maps")
    g.add_argument("--limit", type=int, default=None,
                   help="explain only the first N images of the inputs")
    m = p.add_argument_group("method parameters")
    m.add_argument("--ig-steps", type=int, default=50, help="Integrated Gradients' steps")
    m.add_argument("--ig-baseline", choices=("black", "white", "random"), default="black")
    m.add_argument("--ig-rule", default="riemann_right",
                   choices=("riemann_right", "riemann_left", "riemann_middle", "trapezoid",
                            "gauss_legendre"), help="IG's quadrature rule")
    m.add_argument("--sg-samples", type=int, default=50, help="SmoothGrad's samples")
    m.add_argument("--sg-sigma", type=float, default=0.15,
                   help="SmoothGrad's noise, a fraction of each image's value range")
    m.add_argument("--occlusion-size", type=int, default=8,
                   help="Occlusion's square patch (divides 224)")
    m.add_argument("--gradcam-layer", default=None,
                   help="Grad-CAM's conv layer (default: the model's, e.g. 'head')")
    s = p.add_argument_group("metric parameters")
    s.add_argument("--nord-m", type=int, default=1000,
                   help="Necessity Ordering: pixels removed per step (M)")
    s.add_argument("--curve-superpixel", type=int, default=8,
                   help="Insertion / Deletion superpixel size (divides 224)")
    s.add_argument("--curve-step", type=int, default=16,
                   help="Insertion / Deletion: superpixels added per point of the curve")
    s.add_argument("--curve-baseline", choices=("black", "blur"), default="black")
    i = p.add_argument_group("influence")
    i.add_argument("--layer", default=None,
                   help="layer whose influence is measured (default: the model's, e.g. "
                        "'head_pool'; VGG16: 'fc1')")
    i.add_argument("--qoi", default="predicted",
                   help="quantity of interest: 'predicted', 'true', a class index, or 'a,b' "
                        "for s_a - s_b")
    i.add_argument("--no-influence", action="store_true", help="skip the influence experts")
    e = p.add_argument_group("engine")
    e.add_argument("--workers", type=int, default=None,
                   help="actors in the pool (default: one per GPU, else one per CPU "
                        "with one TF thread each, at most one per 2 GiB of memory)")
    e.add_argument("--threads", type=int, default=None,
                   help="TensorFlow threads per actor (default: the cluster's CPUs / "
                        "workers)")
    e.add_argument("--gpus-per-worker", type=float, default=None,
                   help="GPUs each actor asks for (default: 1 when the cluster has GPUs)")
    e.add_argument("--address", default=None,
                   help="join this Ray cluster (host:port, ray://host:port or 'auto'; "
                        "default: $RAY_ADDRESS, else start a local one)")
    e.add_argument("--no-ship-code", action="store_true",
                   help="with --address: do not upload this folder to the cluster (its "
                        "nodes already have the project on their PYTHONPATH)")
    e.add_argument("--shard-size", type=int, default=None,
                   help="images per shard (the unit of work, of retry and of resume; "
                        "default: 16, fewer for small data sets so that there are at least "
                        "8 shards; a rerun reuses shards of the same size)")
    e.add_argument("--retries", type=int, default=3,
                   help="times a shard is retried when its actor dies")
    e.add_argument("--save-maps", action="store_true",
                   help="also write each shard's pixel maps [n, 224, 224] to OUT/maps/")
    e.add_argument("--no-progress", action="store_true", help="no Ray progress bars")
    e.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's start-up notices (oneDNN, absl), hidden otherwise")
    # testing aid: the first actor to see no MARKER file creates it and dies (os._exit)
    e.add_argument("--_crash-once", dest="crash_once", default=None, help=argparse.SUPPRESS)
    return p


def check_args(args):
    """Every check that needs no model and no data; raises UsageError."""
    methods = parse_names(args.methods, METHODS, "--methods")
    metrics = parse_names(args.metrics, METRICS, "--metrics", allow_none=True)
    qoi = parse_qoi(args.qoi)
    for arg, v in (("batch-size", args.batch_size), ("ig-steps", args.ig_steps),
                   ("sg-samples", args.sg_samples), ("nord-m", args.nord_m),
                   ("curve-step", args.curve_step)):
        if v is None or v < 1:
            raise UsageError(POSITIVE_ERROR.format(arg="--" + arg, what="a positive int",
                                                   actual=v))
    for arg, v in (("occlusion-size", args.occlusion_size),
                   ("curve-superpixel", args.curve_superpixel)):
        if v < 1 or IMAGE_SIZE % v:
            raise UsageError(SIZE_ERROR.format(arg="--" + arg, size=IMAGE_SIZE, actual=v))
    for arg, v in (("workers", args.workers), ("threads", args.threads),
                   ("limit", args.limit), ("shard-size", args.shard_size)):
        if v is not None and v < 1:
            raise UsageError(POSITIVE_ERROR.format(arg="--" + arg, what="a positive int",
                                                   actual=v))
    if args.retries < 0:
        raise UsageError(POSITIVE_ERROR.format(arg="--retries", what="an int >= 0",
                                               actual=args.retries))
    if args.gpus_per_worker is not None and (not np.isfinite(args.gpus_per_worker)
                                             or args.gpus_per_worker < 0):
        raise UsageError(POSITIVE_ERROR.format(arg="--gpus-per-worker", what="a number >= 0",
                                               actual=args.gpus_per_worker))
    if not np.isfinite(args.sg_sigma) or args.sg_sigma < 0:
        raise UsageError(POSITIVE_ERROR.format(arg="--sg-sigma", what="a number >= 0",
                                               actual=args.sg_sigma))
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(OUT_ERROR.format(actual=args.out))
    from hw3_vc import writable_folder
    if not writable_folder(args.out):
        raise UsageError(OUT_WRITE_ERROR.format(actual=args.out))
    for inp in args.inputs:
        if inp == BUNDLED:
            continue
        if os.path.isdir(inp):
            continue
        if os.path.isfile(inp):
            if not inp.lower().endswith(".npz"):
                raise UsageError(INPUT_ERROR.format(actual=inp, why="a file that is not .npz"))
            continue
        raise UsageError(INPUT_ERROR.format(actual=inp, why="no such file or folder"))
    return methods, metrics, qoi


def option_error(err):
    """An error of ``hw3_utils.get_model``'s arguments as the options that set them:
    ``name: ...`` -> ``--model: ...``, ``weights: ...`` -> ``--weights: ...``."""
    text = str(err)
    for arg, flag in (("name: ", "--model: "), ("weights: ", "--weights: ")):
        if text.startswith(arg):
            return flag + text[len(arg):]
    return "--model: " + text


def cluster_address(args):
    """The cluster to join: ``--address``, else ``$RAY_ADDRESS``, else None (local)."""
    return args.address or os.environ.get("RAY_ADDRESS") or None


def check_address(address, timeout=5.0):
    """Raise UsageError unless ``host:port`` (or ``ray://host:port``) accepts a connection."""
    if address in (None, "auto", "local"):
        return
    text = address.split("://", 1)[-1].rstrip("/")
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(ADDRESS_ERROR.format(address=address,
                                              why="expected host:port, e.g. 10.0.0.1:6379"))
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise UsageError(ADDRESS_ERROR.format(address=address,
                                              why=f"{type(e).__name__}: {e}")) from None


# --------------------------------------------------------------------------- inputs

def sha256_file(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_array(arr):
    arr = np.ascontiguousarray(arr, np.float32)
    return hashlib.sha256(repr(arr.shape).encode() + arr.tobytes()).hexdigest()


def image_seed(seed, digest):
    """The seed of the Random method for one image: its content and ``--seed``."""
    return int((int(seed) * 1_000_003 + int(digest[:12], 16)) % (2 ** 31 - 1))


def load_folder_image(path):
    """An image file as ``make_dataset.py`` stores it: RGB, centre-cropped, 224 x 224 bilinear,
    rounded to uint8; returned as float32 ``[224, 224, 3]``."""
    import hw3_utils
    img = hw3_utils.load_rgb_image(path)
    arr = np.clip(np.rint(hw3_utils.center_crop_resize(img, IMAGE_SIZE)), 0, 255)
    return arr.astype(np.uint8).astype(np.float32)


def decodes(path):
    """Decode an image file as the actors will (``load_folder_image``'s first step), so
    that a file that is no image is skipped before any actor starts; raises ValueError."""
    import hw3_utils
    hw3_utils.load_rgb_image(path)


class Inputs:
    """Every input image as an item, plus what was skipped and why.

    An item is a dict: ``index`` (position over all inputs, skipped ones counted),
    ``input`` (the folder, file or 'bundled'), ``item`` (path in the folder, ``#row`` of the
    file, or the sample's name), ``image_id``, ``true_class``, ``digest`` (sha256 of the
    file's bytes, or of the pixels for .npz and bundled images), ``group`` (shards never mix
    groups), and ``path`` for folder images. Pixels of .npz and bundled images are kept in
    ``self.pixels[index]`` (the driver ships them to the actors).
    """

    def __init__(self, limit=None):
        self.items, self.skipped, self.pixels = [], [], {}
        self._next = 0
        self._limit = limit

    def full(self):
        """True once ``limit`` images are listed (``--limit``: the rest is not read)."""
        return self._limit is not None and len(self.items) >= self._limit

    def _index(self):
        self._next += 1
        return self._next - 1

    def skip(self, inp, item, reason):
        self.skipped.append({"index": self._index(), "input": inp, "item": item,
                             "reason": reason})

    def add(self, inp):
        if inp == BUNDLED:
            self.add_bundled()
        elif os.path.isdir(inp):
            self.add_folder(inp)
        else:
            self.add_npz(inp)

    def add_bundled(self):
        import hw3_utils
        X, y, names = hw3_utils.load_samples()
        for row, (x, c, name) in enumerate(zip(X, y, names)):
            if self.full():
                return
            i = self._index()
            self.pixels[i] = x
            self.items.append({"index": i, "input": BUNDLED, "item": name, "image_id": row,
                               "true_class": int(c), "digest": sha256_array(x),
                               "group": BUNDLED})

    def add_npz(self, path):
        import hw3_utils
        try:
            d = hw3_utils.read_npz(path, arg="inputs")
        except (OSError, ValueError) as e:
            self.skip(path, "", f"cannot read as a course-style .npz: {e}")
            return
        for row in range(len(d.X)):
            if self.full():
                return
            i = self._index()
            self.pixels[i] = d.X[row]
            self.items.append({"index": i, "input": path, "item": f"#{row}",
                               "image_id": int(d.Idx[row]), "true_class": int(d.Y[row]),
                               "digest": sha256_array(d.X[row]), "group": path})

    def add_folder(self, root):
        from make_dataset import class_index
        for sub in sorted(os.listdir(root)):
            if self.full():
                return
            full = os.path.join(root, sub)
            if sub.startswith("."):
                continue
            if not os.path.isdir(full):
                self.skip(root, sub, "not inside a class sub-folder")
                continue
            try:
                c, bad_class = class_index(sub), None
            except ValueError as e:
                c, bad_class = None, str(e)
            for name in sorted(os.listdir(full)):
                if name.startswith("."):
                    continue
                if self.full():
                    return
                rel = f"{sub}/{name}"
                path = os.path.join(full, name)
                if bad_class is not None:
                    self.skip(root, rel, bad_class)
                elif os.path.isdir(path):
                    self.skip(root, rel, "a folder inside a class folder (not read)")
                elif not name.lower().endswith(IMAGE_EXTENSIONS):
                    self.skip(root, rel, "not an image file (extension not one of "
                                         + " ".join(IMAGE_EXTENSIONS) + ")")
                else:
                    try:
                        digest = sha256_file(path)
                        decodes(path)
                    except OSError as e:
                        self.skip(root, rel, f"unreadable: {type(e).__name__}: {e}")
                        continue
                    except ValueError as e:       # here, not in an actor: see decodes
                        self.skip(root, rel, f"cannot read as an image: {e}")
                        continue
                    self.items.append({"index": self._index(), "input": root, "item": rel,
                                       "image_id": -1, "true_class": int(c),
                                       "digest": digest, "group": f"{root}/{sub}",
                                       "path": os.path.abspath(path)})


# ------------------------------------------------------------------------- settings

def source_fingerprint():
    h = hashlib.sha256()
    for name in SOURCE_FILES:
        path = os.path.join(PROJECT_DIR, name)
        if os.path.isfile(path):
            h.update(name.encode() + b"\0" + open(path, "rb").read())
    return h.hexdigest()


def weights_fingerprint(path):
    if path is None:
        return None
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def make_settings(args, methods, metrics, qoi, model, weights_path):
    """Every setting that changes a number, JSON-able; the shard names hash it."""
    return {
        "format": FORMAT_VERSION,
        "model": model.name, "weights": weights_path,
        "weights_id": weights_fingerprint(weights_path),
        "methods": methods, "metrics": metrics, "target": args.target,
        "batch_size": args.batch_size, "seed": args.seed,
        "ig": {"steps": args.ig_steps, "baseline": args.ig_baseline, "rule": args.ig_rule},
        "smoothgrad": {"samples": args.sg_samples, "sigma": args.sg_sigma},
        "occlusion": {"size": args.occlusion_size},
        "gradcam_layer": args.gradcam_layer or model.default_layers["gradcam"],
        "n_ord": {"M": args.nord_m},
        "curves": {"superpixel": args.curve_superpixel, "step": args.curve_step,
                   "baseline": args.curve_baseline},
        "influence": None if args.no_influence else {
            "layer": args.layer or model.default_layers["influence"], "qoi": qoi},
        "source": source_fingerprint(),
    }


def settings_key(settings):
    return json.dumps(settings, sort_keys=True)


def item_key(it):
    """What identifies an item's result: where it is, its content and its labels."""
    where = it["item"] if it["input"] == BUNDLED else (os.path.abspath(it["input"]), it["item"])
    return "\n" + json.dumps([where, it["image_id"], it["digest"], it["true_class"]])


DEFAULT_SHARD_SIZE = 16


def default_shard_size(n_images):
    """16 images, fewer for a small data set (at least 8 shards, so that a pool of actors
    shares them out); a function of the data alone, so that a rerun plans the same shards."""
    return max(1, min(DEFAULT_SHARD_SIZE, -(-n_images // 8)))


def plan_shards(items, settings, shard_size):
    """Shards: consecutive items of one group, at most ``shard_size`` each, named by a hash
    of the settings and of each item's identity (input, path in it, image id), content
    (digest) and true class. A row of a shard file records its item's slot in the shard, so
    its index, input and item columns are taken from the current plan when it is read."""
    key = settings_key(settings).encode()
    shards, current = [], []

    def close():
        if current:
            h = hashlib.sha256(key)
            for it in current:
                h.update(item_key(it).encode())
            shards.append({"name": h.hexdigest()[:24], "items": list(current)})
            current.clear()

    for it in items:
        if current and (len(current) >= shard_size or it["group"] != current[0]["group"]):
            close()
        current.append(it)
    close()
    return shards


# ------------------------------------------------------------------------ the worker

def CountingSession(sess, imgs):
    """The main job's session proxy (``hw3_vc.CountingSession``): counts forward and
    gradient rows, results are those of the wrapped session."""
    from hw3_vc import CountingSession as Counting
    return Counting(sess, imgs)


def pixel_map(A):
    """The pixel attribution ``[N, H, W]`` (channel mean of ``[N, H, W, C]``), float32."""
    A = np.asarray(A)
    return (A.astype(np.float64).mean(axis=-1) if A.ndim == 4 else A).astype(np.float32)


def zero_maps(A, superpixel=None):
    """``[N]`` True where the metrics find no ranking: an all-zero pixel attribution (or,
    with ``superpixel``, all-zero superpixel sums, as Insertion / Deletion rank them)."""
    from hw3_evaluation import unranked
    return unranked(A, superpixel)


def to_bytes(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def from_bytes(data):
    with np.load(io.BytesIO(data), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


class Explainer:
    """One model in one TF1 graph and session, with every method's ops built once.

    ``explain(spec, pixels)`` does one shard: images, targets, each method's maps, each
    metric on each map, the per-class influence partial sums. It is what a Ray actor runs;
    the benchmark also runs it in a plain loop in one process.
    """

    def __init__(self, settings, threads=0):
        from hw3_vc import import_tensorflow
        tf = import_tensorflow(os.environ.get("HW3_VERBOSE") == "1")
        tf.compat.v1.disable_eager_execution()
        import hw3_utils
        from hw3_attribution import new_session
        self.raw_sess = new_session(tf.Graph(), threads=int(threads or 0))
        with self.raw_sess.graph.as_default():
            self.model = hw3_utils.get_model(self.raw_sess, settings["model"],
                                             settings["weights"])
        self.sess = CountingSession(self.raw_sess, self.model.imgs)
        self.class_name = hw3_utils.ImageNet_idx2name
        self.configure(settings)

    def configure(self, settings):
        """Build the ops of the methods and of the influence that ``settings`` ask for."""
        from hw3_attribution import (GradCAM, IntegratedGrad, Occlusion, SaliencyMap,
                                     SmoothGrad, VanillaGradient)
        from hw3_infl import InflDirected
        self.settings = s = settings
        m = self.model
        x, out = m.imgs, m.logits
        kw = dict(progress=False)
        self.methods = {}
        for name in s["methods"]:
            if name == "gradcam":
                self.methods[name] = GradCAM(self.sess, x, out, None,
                                             m.layers[s["gradcam_layer"]], **kw)
            elif name != "random":
                cls = {"saliency": SaliencyMap, "ig": IntegratedGrad, "smoothgrad": SmoothGrad,
                       "gradient": VanillaGradient, "occlusion": Occlusion}[name]
                self.methods[name] = cls(self.sess, x, out, None, **kw)
        self.infl = None
        if s["influence"]:
            self.infl = InflDirected(self.sess, x, m.layers[s["influence"]["layer"]], out,
                                     make_qoi(s["influence"]["qoi"]), **kw)

    # ---------------------------------------------------------------- one method
    def attribute(self, name, X, targets, items):
        s, bs = self.settings, self.settings["batch_size"]
        info = {}
        if name == "saliency":
            A = self.methods[name](X, batch_size=bs, multiply_with_input=True,
                                   target_class=targets)
        elif name == "ig":
            A, res = self.methods[name](X, s["ig"]["baseline"], batch_size=bs,
                                        num_steps=s["ig"]["steps"], method=s["ig"]["rule"],
                                        seed=s["seed"], return_error=True,
                                        target_class=targets)
            info["ig_completeness_error"] = np.asarray(res["completeness_error"], np.float64)
        elif name == "smoothgrad":
            A = self.methods[name](X, batch_size=bs, samples=s["smoothgrad"]["samples"],
                                   sigma=s["smoothgrad"]["sigma"], seed=s["seed"],
                                   target_class=targets)
        elif name in ("gradient", "gradcam"):
            A = self.methods[name](X, batch_size=bs, target_class=targets)
        elif name == "occlusion":
            A = self.methods[name](X, batch_size=bs, superpixel_size=s["occlusion"]["size"],
                                   target_class=targets)
        elif name == "random":
            from hw3_attribution import RandomAttribution
            m = self.model
            A = np.stack([RandomAttribution(self.sess, m.imgs, m.logits, None,
                                            seed=image_seed(s["seed"], it["digest"]),
                                            progress=False)(X[i:i + 1])[0]
                          for i, it in enumerate(items)])
        else:   # check_args keeps this from happening
            raise ValueError(f"unknown method {name!r}")
        return A, info

    # ---------------------------------------------------------------- the metrics
    def score(self, A, X, targets, scores):
        """Each chosen metric on ``A`` for every image: ``{column: [N]}``, NaN where the
        metric is undefined (an all-zero map; Average Drop when f_c(x) <= 0)."""
        from hw3_evaluation import N_Ord, AverageDrop, Deletion, Insertion, auc
        s, bs = self.settings, self.settings["batch_size"]
        m, n = self.model, len(X)
        x, out = m.imgs, m.logits
        cols = {}
        for metric in s["metrics"]:
            sp = s["curves"]["superpixel"] if metric in ("insertion", "deletion") else None
            ok = np.flatnonzero(~zero_maps(A, sp))
            if metric == "average_drop":
                drop, inc = np.full(n, np.nan), np.full(n, np.nan)
                if len(ok) and np.any(scores[ok] > 0):
                    r = AverageDrop(self.sess, A[ok], X[ok], x, out, targets[ok],
                                    batch_size=bs, return_details=True, progress=False)
                    drop[ok] = r.per_image
                    inc[ok] = (r.masked_scores > r.scores).astype(np.float64)
                cols["average_drop"], cols["average_increase"] = drop, inc
            elif metric == "n_ord":
                v = np.full(n, np.nan)
                if len(ok):
                    v[ok] = np.atleast_1d(N_Ord(self.sess, A[ok], X[ok], x, out, targets[ok],
                                                M=s["n_ord"]["M"], batch_size=bs,
                                                progress=False))
                cols["n_ord"] = v
            else:
                fn = Insertion if metric == "insertion" else Deletion
                v = np.full(n, np.nan)
                if len(ok):
                    curves, xs = fn(self.sess, A[ok], X[ok], x, out, targets[ok],
                                    superpixel_size=sp, baseline=s["curves"]["baseline"],
                                    step=s["curves"]["step"], batch_size=bs, progress=False)
                    v[ok] = auc(np.atleast_2d(curves), xs)
                cols[f"{metric}_auc"] = v
        return cols

    # ---------------------------------------------------------------- one shard
    def load(self, spec, pixels):
        """``(X [n, 224, 224, 3], kept items, skipped entries)`` of a shard."""
        X, kept, skipped = [], [], []
        for slot, it in enumerate(spec["items"]):
            it = dict(it, slot=slot)
            if it["index"] in pixels:
                X.append(pixels[it["index"]])
                kept.append(it)
                continue
            try:
                X.append(load_folder_image(it["path"]))
                kept.append(it)
            except Exception as e:   # a file that is not a readable image: skipped
                skipped.append({"slot": slot, "index": it["index"], "input": it["input"],
                                "item": it["item"],
                                "reason": f"cannot read as an image: {type(e).__name__}: "
                                          f"{e}"})
        X = np.stack(X).astype(np.float32) if X else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3),
                                                              np.float32)
        return X, kept, skipped

    def explain(self, spec, pixels):
        """One shard -> ``(arrays, maps)``: the shard file's arrays (rows, skipped,
        influence partials, meta) and the maps file's (``map_<method>``: pixel maps
        ``[n, H, W]`` float32; ``index``, ``item``, ``slot`` of each image)."""
        s, bs = self.settings, self.settings["batch_size"]
        m = self.model
        t_start = time.perf_counter()
        X, items, skipped = self.load(spec, pixels)
        n = len(X)
        timing, counts = {}, {}
        rows = {c: [] for c, _ in ROW_COLUMNS}
        rows["slot"] = []
        maps = {}
        partial = None
        if n:
            c0, t0 = self.sess.counts(), time.perf_counter()
            logits = np.concatenate([self.sess.run(m.logits, {m.imgs: X[i:i + bs]})
                                     for i in range(0, n, bs)])
            pred = logits.argmax(axis=1)
            y = np.array([it["true_class"] for it in items], np.int64)
            targets = (pred if s["target"] == "predicted" else y).astype(np.int32)
            scores = logits[np.arange(n), targets].astype(np.float64)
            z = logits - logits.max(axis=1, keepdims=True)
            probs = (np.exp(z) / np.exp(z).sum(axis=1, keepdims=True))[np.arange(n), targets]
            self._account("forward", timing, counts, t0, c0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")     # NaN marks what a metric leaves undefined
                for name in s["methods"]:
                    c0, t0 = self.sess.counts(), time.perf_counter()
                    A, info = self.attribute(name, X, targets, items)
                    self._account(name, timing, counts, t0, c0)
                    c0, t0 = self.sess.counts(), time.perf_counter()
                    cols = self.score(A, X, targets, scores)
                    cols.update(info)
                    self._account(name + ":metrics", timing, counts, t0, c0)
                    maps[name] = pixel_map(A)
                    for i, it in enumerate(items):
                        self._row(rows, it, name, pred[i], targets[i], scores[i], probs[i],
                                  {k: v[i] for k, v in cols.items()})
                if self.infl is not None:
                    c0, t0 = self.sess.counts(), time.perf_counter()
                    partial = self.influence(X, y)
                    self._account("influence", timing, counts, t0, c0)
        arrays = {f"row_{c}": np.array(rows[c], dtype=_dtype(t)) for c, t in ROW_COLUMNS}
        arrays["row_slot"] = np.array(rows["slot"], np.int64)
        arrays["skipped_slot"] = np.array([sk["slot"] for sk in skipped], np.int64)
        for c in SKIPPED_COLUMNS:
            arrays[f"skipped_{c}"] = np.array([sk[c] for sk in skipped],
                                              dtype=np.int64 if c == "index" else str)
        if partial is not None:
            arrays.update(partial)
        meta = {"shard": spec["name"], "images": n, "skipped": len(skipped),
                "seconds": time.perf_counter() - t_start, "timing": timing, "counts": counts,
                "influence": None if partial is None else s["influence"],
                "host": socket.gethostname(), "pid": os.getpid()}
        arrays["meta"] = np.array(json.dumps(meta))
        maps_arrays = {f"map_{k}": v for k, v in maps.items()}   # none when n == 0
        maps_arrays["index"] = np.array([it["index"] for it in items], np.int64)
        maps_arrays["item"] = np.array([it["item"] for it in items], dtype=str)
        maps_arrays["slot"] = np.array([it["slot"] for it in items], np.int64)
        return arrays, maps_arrays

    def _account(self, key, timing, counts, t0, c0):
        f, g = self.sess.counts()
        timing[key] = timing.get(key, 0.0) + time.perf_counter() - t0
        prev = counts.get(key, [0, 0])
        counts[key] = [prev[0] + f - c0[0], prev[1] + g - c0[1]]

    def _row(self, rows, it, method, pred, target, score, prob, metrics):
        vals = {"index": it["index"], "input": it["input"], "item": it["item"],
                "image_id": it["image_id"], "true_class": it["true_class"],
                "true_name": self.class_name(int(it["true_class"])),
                "predicted_class": int(pred), "predicted_name": self.class_name(int(pred)),
                "target": int(target), "correct": bool(pred == it["true_class"]),
                "method": method, "score": float(score), "prob": float(prob)}
        for c, _, _ in METRIC_COLUMNS:
            vals[c] = float(metrics.get(c, np.nan))
        vals["slot"] = it["slot"]
        for c in rows:
            rows[c].append(vals[c])

    def influence(self, X, y):
        """Per true class in the shard: ``InflDirected.influence_partial`` sums, stacked."""
        classes = np.unique(y)
        parts = [self.infl.influence_partial(X[y == c], batch_size=self.settings["batch_size"],
                                             y=y[y == c]) for c in classes]
        return {"infl_classes": classes.astype(np.int64),
                "infl_grad_sum": np.stack([p.grad_sum for p in parts]),
                "infl_count": np.array([p.count for p in parts], np.int64),
                "infl_act_sum": np.stack([p.act_sum for p in parts]),
                "infl_active_count": np.stack([p.active_count for p in parts]),
                "infl_layer": np.array(parts[0].layer), "infl_qoi": np.array(parts[0].qoi)}


def _dtype(t):
    return {"int64": np.int64, "float64": np.float64, "bool": np.bool_, "str": str}[t]


class ShardExplainer:
    """The Ray Data callable class: one :class:`Explainer` per actor, built in the
    constructor; ``__call__`` takes a batch of shards (``batch_size=1``: one) and returns
    each shard's file as bytes (the driver writes it)."""

    def __init__(self, settings, threads=0, crash_once=None):
        self.crash_once = crash_once
        self.explainer = Explainer(settings, threads)

    def __call__(self, batch):
        if self.crash_once and not os.path.exists(self.crash_once):
            open(self.crash_once, "w").close()
            os._exit(1)   # testing aid: die mid-run, once, as a killed worker would
        out = {"shard": [], "status": [], "message": [], "payload": [], "maps": []}
        for name, spec, pixels in zip(batch["shard"], batch["spec"], batch["pixels"]):
            spec = json.loads(str(spec))
            px = from_bytes(bytes(pixels)) if len(pixels) else {}
            px = {int(k): v for k, v in px.items()}
            try:
                arrays, maps = self.explainer.explain(spec, px)
                empty = not json.loads(str(arrays["meta"]))["images"]
                message = EMPTY_SHARD_ERROR.format(reasons="; ".join(
                    str(r) for r in arrays["skipped_reason"])) if empty else ""
            except Exception:   # reported by the driver; the shard is not written
                arrays, message = None, traceback.format_exc()
            ok = not message
            out["payload"].append(to_bytes(arrays) if ok else b"")
            out["maps"].append(to_bytes(maps) if ok and spec.get("save_maps") else b"")
            out["status"].append("ok" if ok else "error")
            out["message"].append(message)
            out["shard"].append(str(name))
        return {"shard": np.array(out["shard"]), "status": np.array(out["status"]),
                "message": np.array(out["message"]),
                "payload": np.array(out["payload"], dtype=object),
                "maps": np.array(out["maps"], dtype=object)}


# ------------------------------------------------------------------------ the driver

def write_bytes(path, data):
    """``data`` to ``path`` through a temporary file in the same folder and a rename: the
    project's one atomic writer (``hw3_evaluation.write_bytes``), imported when first
    needed so that ``--help`` and the argument checks do not wait for TensorFlow."""
    from hw3_evaluation import write_bytes as write
    return write(path, data)


def write_text(path, text):
    return write_bytes(path, text.encode("utf-8"))


def shard_path(out, name):
    return os.path.join(out, "shards", f"{name}.npz")


def maps_path(out, name):
    return os.path.join(out, "maps", f"{name}.npz")


def is_done(out, name, save_maps):
    return os.path.isfile(shard_path(out, name)) and (
        not save_maps or os.path.isfile(maps_path(out, name)))


def shard_rows(shard, pixels, save_maps):
    """The Ray Data row of a shard: its name, its spec (JSON) and the pixels it ships."""
    spec = {"name": shard["name"], "items": shard["items"], "save_maps": save_maps}
    px = {str(it["index"]): pixels[it["index"]] for it in shard["items"]
          if it["index"] in pixels}
    return {"shard": shard["name"], "spec": json.dumps(spec),
            "pixels": to_bytes(px) if px else b""}


ACTOR_MEMORY = 2 << 30   # bytes an actor may need (measured: ~1.3 GB resident)


def pool_layout(resources, todo, workers=None, threads=None, gpus_per_worker=None):
    """``(workers, threads, num_cpus, num_gpus)`` of the actor pool for a cluster's
    ``resources`` (``ray.cluster_resources()``) and ``todo`` shards.

    Default workers: one per GPU when the cluster has GPUs; else one per CPU, each with
    one TensorFlow thread (measured on 2 cores: two 1-thread actors beat one 2-thread
    actor, see benchmarks/README.md), at most one per ``ACTOR_MEMORY`` of the cluster's
    memory; never more than the shards to do. Threads: the CPUs shared out. Each actor
    asks for ``min(threads, CPUs / workers)`` CPUs, so that the pool always fits, and for
    ``gpus_per_worker`` GPUs (default: one, or the GPUs shared out when fewer).
    """
    cpus = float(resources.get("CPU", 1))
    gpus = float(resources.get("GPU", 0))
    if workers is None:
        memory_cap = max(1, int(resources.get("memory", ACTOR_MEMORY) // ACTOR_MEMORY))
        workers = int(gpus) if gpus >= 1 else min(max(1, int(cpus)), memory_cap)
    workers = max(1, min(workers, todo))
    threads = threads or max(1, int(cpus // workers))
    num_cpus = min(float(threads), cpus / workers)
    if gpus_per_worker is None:
        gpus_per_worker = min(1.0, gpus / workers) if gpus else 0.0
    if gpus_per_worker * workers > gpus + 1e-9:
        raise UsageError(CAPACITY_ERROR.format(workers=workers, gpus=gpus_per_worker,
                                               need=gpus_per_worker * workers, have=gpus))
    return workers, threads, num_cpus, gpus_per_worker


def start_ray(args, address):
    """``ray.init``: a local cluster, or the one at ``address`` (code shipped along)."""
    import ray
    # actors that share a GPU must not each take all of its memory
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_FORCE_GPU_ALLOW_GROWTH": "true",
           "HW3_VERBOSE": "1" if getattr(args, "verbose", False) else "0"}
    if address is None:
        path = os.pathsep.join(p for p in (PROJECT_DIR, os.environ.get("PYTHONPATH")) if p)
        env["PYTHONPATH"] = path
        runtime_env = {"env_vars": env}
        # Ray starts its workers at nice 15 (so that its own daemons stay responsive); on a
        # machine shared with other work that starves the actors, which then run far slower
        # than the same code in a plain process. A local cluster exists for this run only:
        # its workers run at the driver's priority (RAY_worker_niceness, read by the raylet
        # this ray.init starts; a value already in the environment is kept).
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                 runtime_env=runtime_env, logging_level="WARNING")
    else:
        runtime_env = {"env_vars": env}
        if not args.no_ship_code:
            runtime_env.update(working_dir=PROJECT_DIR, excludes=SHIP_EXCLUDES)
        try:
            ray.init(address=address, runtime_env=runtime_env, logging_level="WARNING")
        except (ConnectionError, RuntimeError, ValueError) as e:
            hint = "" if os.environ.get("RAY_AUTH_MODE") else AUTH_HINT
            raise UsageError(ADDRESS_ERROR.format(address=address,
                                                  why=f"{type(e).__name__}: {e}")
                             + hint) from None
    return ray


def run_shards(args, settings, todo, pixels, address, log):
    """Run the shards ``todo`` on Ray; write each finished shard as it arrives.

    Returns ``(written, errors)``: shard names written, and ``{name: message}``."""
    import ray
    if not ray.is_initialized():
        start_ray(args, address)
    res = ray.cluster_resources()
    workers, threads, num_cpus, per_gpu = pool_layout(res, len(todo), args.workers,
                                                      args.threads, args.gpus_per_worker)
    cpus, gpus = float(res.get("CPU", 1)), float(res.get("GPU", 0))
    log(f"ray: {len(todo)} shards on {workers} actor(s), {threads} TF thread(s) and "
        f"{num_cpus:g} CPU / {per_gpu:g} GPU each; cluster {cpus:g} CPU, {gpus:g} GPU")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = not args.no_progress
    ctx.execution_options.preserve_order = False
    rows = [shard_rows(sh, pixels, args.save_maps) for sh in todo]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    retries = args.retries
    with warnings.catch_warnings():
        # Ray 2.60 deprecates ray_remote_args_fn (removal planned for 2.64) and offers no
        # other way to bound the retries of an actor task whose actor died (its default
        # is to retry forever, also a shard that kills its actor every time).
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ds.map_batches(
            ShardExplainer, batch_size=1, batch_format="numpy",
            fn_constructor_kwargs={"settings": settings, "threads": threads,
                                   "crash_once": args.crash_once},
            compute=ray.data.ActorPoolStrategy(size=workers,
                                               max_tasks_in_flight_per_actor=1),
            num_cpus=num_cpus, num_gpus=per_gpu or None,
            ray_remote_args_fn=lambda: {"max_restarts": -1, "max_task_retries": retries})
    written, errors = [], {}
    for b in ds.iter_batches(batch_size=1, batch_format="numpy"):
        for name, status, msg, payload, mp in zip(b["shard"], b["status"], b["message"],
                                                   b["payload"], b["maps"]):
            name = str(name)
            if status != "ok":
                errors[name] = str(msg)
                log(f"shard {name} failed (it will be retried by the next run):\n{msg}")
                continue
            if args.save_maps and len(mp):
                write_bytes(maps_path(args.out, name), bytes(mp))
            write_bytes(shard_path(args.out, name), bytes(payload))
            written.append(name)
    return written, errors


# ---------------------------------------------------------------------- the outputs

def read_shards(out, shards):
    """Concatenate the shard files of ``shards``: (row columns, skipped, partials, metas)."""
    rows = {c: [] for c, _ in ROW_COLUMNS}
    skipped, partials, metas = [], [], []
    for sh in shards:
        path = shard_path(out, sh["name"])
        if not os.path.isfile(path):
            continue
        items = sh["items"]
        with np.load(path, allow_pickle=False) as f:
            slots = f["row_slot"]
            for c, _ in ROW_COLUMNS:
                col = f[f"row_{c}"]
                if c in ("index", "input", "item", "image_id"):   # from the current plan
                    col = np.array([items[k][c] for k in slots],
                                   dtype=str if c in ("input", "item") else np.int64)
                rows[c].append(col)
            for k in f["skipped_slot"]:
                it = items[int(k)]
                i = int(np.flatnonzero(f["skipped_slot"] == k)[0])
                skipped.append({"index": it["index"], "input": it["input"],
                                "item": it["item"], "reason": str(f["skipped_reason"][i])})
            if "infl_classes" in f.files:
                partials.append({k: f[k] for k in f.files if k.startswith("infl_")})
            metas.append(json.loads(str(f["meta"])))
    cols = {c: (np.concatenate(v) if v else np.array([], dtype=_dtype(t)))
            for (c, t), v in zip(ROW_COLUMNS, rows.values())}
    return cols, skipped, partials, metas


def sort_rows(cols, methods):
    order = {m: k for k, m in enumerate(methods)}
    key = np.array([order.get(str(m), len(order)) for m in cols["method"]], np.int64)
    idx = np.lexsort((key, cols["index"]))
    return {c: v[idx] for c, v in cols.items()}


def write_parquet(path, cols):
    import pyarrow as pa
    import pyarrow.parquet as pq
    types = {"int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(),
             "str": pa.string()}
    table = pa.table({c: pa.array(cols[c].tolist(), type=types[t]) for c, t in ROW_COLUMNS})
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    return write_bytes(path, buf.getvalue().to_pybytes())


def mean_ci(values, level=0.95):
    """``(n, mean, low, high)`` of the finite values: Student-t interval of the mean."""
    from scipy import stats
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return 0, np.nan, np.nan, np.nan
    mean = float(v.mean())
    if n == 1:
        return 1, mean, np.nan, np.nan
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / np.sqrt(n))
    return n, mean, mean - half, mean + half


def summarise(cols, methods):
    """Long-form summary rows: method, metric, n, mean, ci_low, ci_high."""
    out = []
    for m in methods:
        sel = cols["method"] == m
        if not sel.any():
            continue
        for c, title, _ in METRIC_COLUMNS:
            n, mean, lo, hi = mean_ci(cols[c][sel])
            if n:
                out.append({"method": m, "metric": c, "title": title, "n": n, "mean": mean,
                            "ci_low": lo, "ci_high": hi})
    return out


def merge_experts(partials, settings, explainer_infl, class_name):
    """Merge the shard partials (hw3_infl.merge) overall and per true class; the expert of
    each with ``InflDirected.expert_from_partial``."""
    from hw3_infl import InactiveExpertWarning, InfluencePartial, merge
    per_class = {}
    for p in partials:
        for k, c in enumerate(p["infl_classes"]):
            per_class.setdefault(int(c), []).append(InfluencePartial(
                p["infl_grad_sum"][k], int(p["infl_count"][k]), p["infl_act_sum"][k],
                p["infl_active_count"][k], str(p["infl_layer"]), str(p["infl_qoi"])))
    if not per_class:
        return []
    scopes = [("all", merge([q for qs in per_class.values() for q in qs]))]
    scopes += [(c, merge(per_class[c])) for c in sorted(per_class)]
    rows = []
    for scope, part in scopes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InactiveExpertWarning)
            top = explainer_infl.expert_from_partial(part, k=min(5, explainer_infl.units))
        info = explainer_infl.last_info
        top = np.atleast_1d(top)
        rows.append({"scope": "all" if scope == "all" else "class",
                     "class": -1 if scope == "all" else scope,
                     "class_name": "all images" if scope == "all" else class_name(scope),
                     "n": part.count, "layer": part.layer, "qoi": part.qoi,
                     "expert": int(top[0]), "influence": float(info["influence"][top[0]]),
                     "expert_active": bool(info["active"][top[0]]),
                     "top5": " ".join(str(int(t)) for t in top)})
    return rows


def fmt(v):
    if isinstance(v, (float, np.floating)):
        return "undefined" if not np.isfinite(v) else f"{v:.4g}"
    return str(v).replace("|", "/")


def csv_text(header, rows):
    from hw3_vc import csv_table
    return csv_table(header, rows)


def md_table(header, rows):
    from hw3_vc import markdown_table
    return markdown_table(header, rows)


def write_outputs(args, settings, cols, skipped, experts, stats, inputs):
    out = args.out
    write_parquet(os.path.join(out, "results.parquet"), cols)
    summary = summarise(cols, settings["methods"])
    header = ["method", "metric", "n", "mean", "ci_low", "ci_high"]
    write_text(os.path.join(out, "summary.csv"), csv_text(
        header, [[r[h] for h in header] for r in summary]))
    eh = ["scope", "class", "class_name", "n", "layer", "qoi", "expert", "influence",
          "expert_active", "top5"]
    write_text(os.path.join(out, "experts.csv"), csv_text(eh, [[r[h] for h in eh]
                                                               for r in experts]))
    skipped = sorted(skipped, key=lambda r: r["index"])
    write_text(os.path.join(out, "skipped.csv"), csv_text(
        list(SKIPPED_COLUMNS), [[r[c] for c in SKIPPED_COLUMNS] for r in skipped]))
    # Markdown: one row per method, one column per metric: mean [95% CI]
    shown = [(c, t) for c, t, _ in METRIC_COLUMNS
             if any(r["metric"] == c for r in summary)]
    table = []
    for m in settings["methods"]:
        by = {r["metric"]: r for r in summary if r["method"] == m}
        if not by:
            continue
        cells = [METHOD_TITLES[m], max(r["n"] for r in by.values())]
        for c, _ in shown:
            r = by.get(c)
            cells.append("" if r is None else f"{fmt(r['mean'])} [{fmt(r['ci_low'])}, "
                                              f"{fmt(r['ci_high'])}]"
                         + ("" if r["n"] == cells[1] else f" (n={r['n']})"))
        table.append(cells)
    n_img = len(np.unique(cols["index"]))
    correct = cols["correct"][np.unique(cols["index"], return_index=True)[1]] \
        if n_img else np.array([])
    lines = [
        "# Data-set explanations", "",
        f"Inputs: {', '.join(inputs)}; model `{settings['model']}`; target: "
        f"{settings['target']} class; {n_img} images explained"
        + (f" ({int(correct.sum())} predicted right)" if n_img else "")
        + f", {len(skipped)} skipped.", "",
        "Each cell: the mean over images with a 95% confidence interval (Student t). "
        "Lower is better for Average Drop %, Necessity Ordering, Deletion AUC and IG's "
        "completeness error; higher for Insertion AUC. Images where a metric is undefined "
        "(an all-zero map; Average Drop when f_c(x) <= 0) are left out of its n.", "",
        md_table(["method", "n"] + [t for _, t in shown], table) if table else "(no rows)\n",
        "Settings: " + ", ".join(f"{k}={json.dumps(settings[k])}" for k in
                                 ("ig", "smoothgrad", "occlusion", "n_ord", "curves", "seed",
                                  "batch_size")), "",
    ]
    if experts:
        lines += ["## Influence experts", "",
                  f"Layer `{experts[0]['layer']}`, quantity of interest `{experts[0]['qoi']}`"
                  ", merged exactly from per-shard partial sums (hw3_infl.merge).", "",
                  md_table(["scope", "class", "n", "expert", "influence", "active", "top 5"],
                           [[r["scope"], r["class_name"], r["n"], r["expert"], r["influence"],
                             "yes" if r["expert_active"] else "no", r["top5"]]
                            for r in experts])]
    lines += ["## Skipped", ""]
    lines += [md_table(["index", "input", "item", "reason"],
                       [[r[c] for c in SKIPPED_COLUMNS] for r in skipped]) if skipped
              else "Nothing was skipped.\n"]
    lines += ["## Run", "", md_table(["what", "value"], [[k, v] for k, v in stats.items()])]
    write_text(os.path.join(out, "summary.md"), "\n".join(lines))
    write_text(os.path.join(out, "run.json"), json.dumps(
        {"settings": settings, "inputs": inputs, "stats": stats}, indent=1, default=str))


# ------------------------------------------------------------------------------ main

def log(msg):
    print("explain_dataset: " + msg, file=sys.stderr, flush=True)


def main(argv=None):
    """The command line: returns the exit status (0 done, 1 shards left to do)."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    finally:
        if "ray" in sys.modules and sys.modules["ray"].is_initialized():
            sys.modules["ray"].shutdown()


def run(args):
    t0 = time.time()
    # 1. every check that needs no model: the options, the cluster's address, the inputs
    methods, metrics, qoi = check_args(args)
    address = cluster_address(args)
    check_address(address)
    from hw3_vc import import_tensorflow
    import_tensorflow(args.verbose)
    import hw3_utils
    inputs = Inputs(limit=args.limit)
    for inp in args.inputs:
        inputs.add(inp)
    if not inputs.items:
        reasons = sorted({r["reason"] for r in inputs.skipped})
        raise UsageError(NOTHING_ERROR.format(skipped=len(inputs.skipped),
                                              reasons="; ".join(reasons[:3]) or "none"))

    # 2. the model in this process: checks the model, weights and layers; merges experts
    try:
        chosen, weights_path, _ = hw3_utils.choose_model(args.model, args.weights)
        base = {"model": chosen, "weights": weights_path, "methods": [], "influence": None}
        probe = Explainer(base, threads=0)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(option_error(e)) from None
    model = probe.model
    for arg, name in (("--gradcam-layer", args.gradcam_layer), ("--layer", args.layer)):
        if name is not None and name not in model.layers:
            raise UsageError(LAYER_ERROR.format(arg=arg, model=model.name, actual=name,
                                                valid=", ".join(model.layers)))
    settings = make_settings(args, methods, metrics, qoi, model, weights_path)
    settings["model"] = chosen
    infl = None
    if settings["influence"]:
        from hw3_infl import InflDirected
        infl = InflDirected(probe.sess, model.imgs,
                            model.layers[settings["influence"]["layer"]], model.logits,
                            make_qoi(qoi), progress=False)

    # 3. everything checked: a cluster is joined (a local one starts later) and the plan made
    if address is not None:
        start_ray(args, address)
    os.makedirs(args.out, exist_ok=True)
    shard_size = args.shard_size or default_shard_size(len(inputs.items))
    shards = plan_shards(inputs.items, settings, shard_size)
    todo = [sh for sh in shards if not is_done(args.out, sh["name"], args.save_maps)]
    log(f"{len(inputs.items)} images in {len(shards)} shards ({len(shards) - len(todo)} "
        f"already done), {len(inputs.skipped)} inputs skipped; output in {args.out}")

    # 4. the work
    written, errors, failure = [], {}, None
    t_engine = time.time()
    if todo:
        try:
            written, errors = run_shards(args, settings, todo, inputs.pixels, address, log)
        except UsageError:
            raise
        except Exception as e:   # the run broke off: what is on disk is kept and tabled
            failure = f"{type(e).__name__}: {e}"
            log(f"the Ray run stopped: {failure}\n{traceback.format_exc()}")
    engine_seconds = time.time() - t_engine

    # 5. the tables, from every finished shard of this plan
    cols, skipped, partials, metas = read_shards(args.out, shards)
    cols = sort_rows(cols, methods)
    experts = merge_experts(partials, settings, infl, hw3_utils.ImageNet_idx2name) \
        if infl is not None else []
    missing = [sh["name"] for sh in shards if not os.path.isfile(shard_path(args.out,
                                                                            sh["name"]))]
    forwards = sum(sum(v[0] for v in mt["counts"].values()) for mt in metas)
    gradients = sum(sum(v[1] for v in mt["counts"].values()) for mt in metas)
    stats = {"images": len(np.unique(cols["index"])), "rows": len(cols["index"]),
             "skipped": len(inputs.skipped) + len(skipped), "shards": len(shards),
             "shards_computed_now": len(written), "shards_reused": len(shards) - len(todo),
             "shards_failed": len(errors), "shards_missing": len(missing),
             "run_error": failure or "",
             "forwards": forwards, "gradients": gradients,
             "shard_seconds": round(sum(mt["seconds"] for mt in metas), 2),
             "engine_seconds": round(engine_seconds, 2),
             "wall_seconds": round(time.time() - t0, 2)}
    if not metas:   # no shard of this plan is on disk: an earlier run's tables stay
        log("no shard finished, so no table was written (the tables of an earlier run in "
            f"{args.out}, if any, are as they were); run the same command again")
        return 1
    write_outputs(args, settings, cols, inputs.skipped + skipped, experts, stats,
                  list(args.inputs))
    log(f"wrote {os.path.join(args.out, 'results.parquet')} ({stats['rows']} rows), "
        f"summary.md, summary.csv, experts.csv, skipped.csv ({stats['skipped']} skipped)")
    if missing:
        log(f"{len(missing)} shard(s) not finished; run the same command again to do them")
        return 1
    return 0


def cli(argv=None):
    try:
        return main(argv)
    except UsageError as e:
        print(f"explain_dataset.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # Ray pickles the actor class by reference: take it from the importable module.
    import explain_dataset as _module
    sys.exit(_module.cli())
