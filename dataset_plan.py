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

PROJECT_DIR = os.path.dirname(os.path.abspath(__file__))
FORMAT_VERSION = 1
BUNDLED = "bundled"
IMAGE_SIZE = 224
# the same extensions as make_dataset.IMAGE_EXTENSIONS (kept here so --help needs no TF)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# the files whose source is part of every shard's name: a change there can change a number
SOURCE_FILES = ("hw3_attribution.py", "hw3_infl.py", "hw3_evaluation.py", "hw3_utils.py",
                "efficientnet_lite0.py", "vgg16.py", "dataset_plan.py", "dataset_engine.py")


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
