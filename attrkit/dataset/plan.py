"""The inputs of ``explain_dataset.py`` and its plan of work: images listed and checked,
settings that change a number, shards named by a hash of both.

An item is one image (from a class folder, a course-style ``.npz`` or the bundled sample);
a shard is consecutive items of one input and class, the unit of work, retry and reuse.
Everything here runs in the driver, before any model is built or Ray is started.
"""
import hashlib
import json
import os

import numpy as np

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FORMAT_VERSION = 1
BUNDLED = "bundled"
IMAGE_SIZE = 224
# the files whose source is part of every shard's name: a change there can change a number
SOURCE_FILES = ("hw3_attribution.py", "hw3_infl.py", "hw3_evaluation.py", "hw3_utils.py",
                "vgg16.py", "attrkit/dataset/plan.py", "attrkit/dataset/engine.py",
                *("attrkit/methods/{}.py".format(m) for m in ("pair", "segmentation",
                                                                "perturbation")),
                *("attrkit/models/{}.py".format(m) for m in (
                    "efficientnet_lite0", "model_import", "model_convert", "graph_rewrite",
                    "preprocessing", "torchvision_resnet", "torch_checkpoint")))


class UsageError(ValueError):
    """A bad argument, found before any work starts."""


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


def load_folder_image(path, shape=(IMAGE_SIZE, IMAGE_SIZE, 3)):
    """A folder's image as the model sees it (``hw3_utils.load_image``): the centre crop of
    the model's aspect ratio, resized to ``shape`` (height, width, channels), rounded to
    0-255 integers as ``make_dataset.py`` stores it; float32."""
    import hw3_utils
    return hw3_utils.load_image(path, tuple(shape[:2]), shape[2])


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
            d = hw3_utils.read_npz(path, arg="inputs", num_classes=None, size=None)
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
        """Every image of a folder of class sub-folders (any names), decoded here, so that
        a file that is no image is skipped before any actor starts; its class is the
        index of its folder's name among the model's classes (:meth:`fit`)."""
        import hw3_utils
        entries, skipped = hw3_utils.list_image_folder(root, "inputs")
        for rel, reason in skipped:
            self.skip(root, rel, reason)
        for rel, sub in entries:
            if self.full():
                return
            path = os.path.join(root, rel)
            try:
                digest = sha256_file(path)
                hw3_utils.load_rgb_image(path)
            except OSError as e:
                self.skip(root, rel, f"unreadable: {type(e).__name__}: {e}")
                continue
            except ValueError as e:
                self.skip(root, rel, f"cannot read as an image: {e}")
                continue
            self.items.append({"index": self._index(), "input": root, "item": rel,
                               "image_id": -1, "true_class": -1, "folder": sub,
                               "digest": digest, "group": f"{root}/{sub}",
                               "path": os.path.abspath(path)})

    def folders(self):
        """The class folders' names of the folder items."""
        return sorted({it["folder"] for it in self.items if "folder" in it})

    def fit(self, class_names, shape):
        """Fit the items to the model: each folder item's class is its folder's index
        among ``class_names`` (else it is skipped, named), a file's label outside them is
        skipped, and the shipped pixels are resized to ``shape`` (height, width,
        channels)."""
        import hw3_utils
        kept, index = [], {}
        for it in self.items:
            if "folder" in it and it["folder"] not in index:
                try:
                    index[it["folder"]] = hw3_utils.class_index_of(it["folder"], class_names)
                except ValueError as e:
                    index[it["folder"]] = str(e)
            c = index[it["folder"]] if "folder" in it else it["true_class"]
            if isinstance(c, str) or not 0 <= c < len(class_names):
                reason = c if isinstance(c, str) else (
                    f"label {c} is not one of the model's {len(class_names)} classes")
                self.skipped.append({"index": it["index"], "input": it["input"],
                                     "item": it["item"], "reason": reason})
                self.pixels.pop(it["index"], None)
                continue
            kept.append(dict(it, true_class=int(c)))
        self.items = kept
        for i, x in self.pixels.items():
            self.pixels[i] = hw3_utils.fit_images(x[None], tuple(shape[:2]), shape[2])[0]


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


def make_settings(args, methods, metrics, qoi, model, options):
    """Every setting that changes a number, JSON-able; the shard names hash it.

    ``options``: ``get_model``'s arguments (``hw3_utils.parse_model_options``, the choice
    rule resolved, ``labels`` the class names when they are not the model's default); the
    sizes the homework fixes for 224 x 224 scale with the model's input when not given.
    """
    from hw3_attribution import scaled_count, scaled_size
    from attrkit.dataset.engine import perturbation_settings
    h, w, c = model.imgs.shape.as_list()[1:]
    path = options["name_or_path"]
    return {
        "format": FORMAT_VERSION,
        "model": path, "model_id": model_fingerprint(path),
        "weights": options["weights"], "weights_id": weights_fingerprint(options["weights"]),
        "preprocess": options["preprocess"], "labels": options["labels"],
        "input_size": options["input_size"], "input_shape": [h, w, c],
        "methods": methods, "metrics": metrics, "target": args.target,
        "batch_size": args.batch_size, "seed": args.seed,
        "ig": {"steps": args.ig_steps, "baseline": args.ig_baseline, "rule": args.ig_rule},
        "smoothgrad": {"samples": args.sg_samples, "sigma": args.sg_sigma},
        "occlusion": {"size": args.occlusion_size or scaled_size(8, h, w)},
        "perturbation": perturbation_settings(args.segments, args.perturbation_samples),
        "gradcam_layer": args.gradcam_layer or model.default_layers["gradcam"],
        "lrp": {"rule": args.lrp_rule},
        "robustness": {"samples": args.robustness_samples},
        "n_ord": {"M": args.nord_m or scaled_count(1000, h, w)},
        "curves": {"superpixel": args.curve_superpixel or scaled_size(8, h, w),
                   "step": args.curve_step, "baseline": args.curve_baseline},
        "influence": None if args.no_influence else {
            "layer": args.layer or model.default_layers["influence"], "qoi": qoi},
        "source": source_fingerprint(),
    }


def model_fingerprint(path):
    """The content hash of a model file or folder (a name: None; its source is hashed)."""
    if path is None or not os.path.exists(path):
        return None
    from attrkit.models import model_import
    return model_import.content_hash(path)


def settings_key(settings):
    return json.dumps(settings, sort_keys=True)


def item_key(it):
    """What identifies an item's result: where it is, its content and its labels."""
    where = it["item"] if it["input"] == BUNDLED else (os.path.abspath(it["input"]), it["item"])
    mask = [it["mask"]] if "mask" in it else []          # its mask's digest (--masks)
    return "\n" + json.dumps([where, it["image_id"], it["digest"], it["true_class"]] + mask)


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
