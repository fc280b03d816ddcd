"""Ground-truth masks for ``explain_dataset.py --masks FOLDER|NPZ``: read, checked and
fitted to the model's input before any work, so that the localisation metrics
(:data:`LOCALISATION_METRICS`) can score each map against the object.

Where an input's mask is found:

- a folder of masks: the input's own relative path and stem, any image extension
  (``imgs/tabby/chelsea.jpg`` -> ``masks/tabby/chelsea.png``); a row of a course-style
  ``.npz`` is ``<row>`` (``masks/3.png``), a bundled photo its name (``masks/coffee.png``);
- an ``.npz`` of masks: the same stem as a key (``'tabby/chelsea'``, ``'3'``, ``'coffee'``).

A mask is the object's pixels: an image's nonzero pixels (any channel), or an array's
nonzero entries, of the input image's own size (a folder image's file, a row's array).
It goes through the image's own geometry (the central crop of the model's aspect ratio,
resized; nearest neighbour). An input without a mask is scored by the other metrics and
left empty (NaN) in the localisation columns. A mask of another size, an unreadable one, or
one without a single object pixel is an error naming the file, before any work.
"""
import hashlib
import os
import warnings

import numpy as np

from attrkit.dataset.plan import BUNDLED, UsageError

# --metrics names that need --masks -> (column, attrkit.metrics.localisation function)
LOCALISATION_METRICS = {
    "pointing_game": ("pointing_game", "PointingGame"),
    "relevance_mass_accuracy": ("relevance_mass_accuracy", "RelevanceMassAccuracy"),
    "relevance_rank_accuracy": ("relevance_rank_accuracy", "RelevanceRankAccuracy"),
    "top_k_intersection": ("top_k_intersection", "TopKIntersection"),
    "attribution_localisation": ("attribution_localisation", "AttributionLocalisation"),
    "auc": ("localisation_auc", "AUC"),
}

MASKS_PATH_ERROR = "--masks: expected a folder of mask images or an .npz, got {actual!r}"
MASK_READ_ERROR = "--masks: cannot read {where}: {why}"
MASK_SIZE_ERROR = ("--masks: {where} is {actual[0]} x {actual[1]}; its input {item!r} is "
                   "{expected[0]} x {expected[1]}")
MASK_EMPTY_ERROR = "--masks: {where} marks no pixel of the object (all zero)"
NEEDS_MASKS_ERROR = "--metrics: {names} score a map against a mask: give --masks"


def mask_stem(item):
    """Where an item's mask is looked for: its path without the extension, a row's number,
    a bundled photo's name."""
    if item["input"] == BUNDLED:
        return item["item"]
    if item["item"].startswith("#"):
        return item["item"][1:]
    return os.path.splitext(item["item"])[0]


class MaskSource:
    """A folder or an ``.npz`` of masks; :meth:`read` finds an item's, or None."""

    def __init__(self, path):
        self.path = path
        if os.path.isdir(path):
            self.npz = None
        elif os.path.isfile(path) and path.lower().endswith(".npz"):
            try:
                with np.load(path, allow_pickle=False) as z:
                    self.npz = {k: z[k] for k in z.files}
            except (OSError, ValueError) as e:
                raise UsageError(MASK_READ_ERROR.format(where=path, why=e)) from None
        else:
            raise UsageError(MASKS_PATH_ERROR.format(actual=path))

    def read(self, item):
        """``(where, bool [h, w])`` of the item's mask, or None when it has none."""
        stem = mask_stem(item)
        if self.npz is not None:
            if stem not in self.npz:
                return None
            where = f"{self.path} key {stem!r}"
            arr = np.asarray(self.npz[stem])
            if arr.ndim == 3:
                arr = arr.any(-1)
            if arr.ndim != 2:
                raise UsageError(MASK_READ_ERROR.format(
                    where=where, why=f"expected an array [H, W], got shape {list(arr.shape)}"))
            return where, arr != 0
        from hw3_utils import IMAGE_EXTENSIONS
        for ext in IMAGE_EXTENSIONS:
            path = os.path.join(self.path, stem + ext)
            if os.path.isfile(path):
                return path, read_mask_image(path)
        return None


def read_mask_image(path):
    """A mask image's nonzero pixels, bool ``[h, w]``."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            arr = np.asarray(img)
    except (OSError, ValueError) as e:
        raise UsageError(MASK_READ_ERROR.format(where=path, why=e)) from None
    return (arr.any(-1) if arr.ndim == 3 else arr) != 0


def read_masks(inputs, path):
    """Every item's mask from ``path``, checked (before any model is loaded): ``{index:
    bool [h, w]}`` at the input image's own size; each item with a mask gets the mask's
    digest (``mask``), so that a shard's name changes with its masks."""
    source = MaskSource(path)
    masks = {}
    for it in inputs.items:
        found = source.read(it)
        if found is None:
            continue
        where, mask = found
        expected = original_size(it, inputs)
        if mask.shape != expected:
            raise UsageError(MASK_SIZE_ERROR.format(where=where, actual=mask.shape,
                                                    expected=expected, item=it["item"]))
        if not mask.any():
            raise UsageError(MASK_EMPTY_ERROR.format(where=where))
        masks[it["index"]] = mask
        it["mask"] = hashlib.sha256(np.packbits(mask).tobytes()
                                    + repr(mask.shape).encode()).hexdigest()
    return masks


def fit_masks(masks, items, shape):
    """The masks of the items kept, at the model's input ``shape`` (H, W, ...)."""
    kept = {it["index"]: it for it in items}
    return {i: fit_mask(m, tuple(shape[:2]), crop="path" in kept[i])
            for i, m in masks.items() if i in kept}


def original_size(item, inputs):
    """The input image's own (height, width): its file's, or its row's array's."""
    if "path" in item:
        from PIL import Image
        with Image.open(item["path"]) as img:
            return img.size[1], img.size[0]
    return tuple(inputs.pixels[item["index"]].shape[:2])


def fit_mask(mask, size, crop):
    """``mask`` through the image's geometry: with ``crop`` (a folder image) the central
    crop of the aspect ``size`` (``hw3_utils.load_image``'s), then resized to ``size``
    by nearest neighbour."""
    from PIL import Image
    h, w = size
    ih, iw = mask.shape
    if crop:
        ch, cw = min(ih, iw * h // w), min(iw, ih * w // h)
        top, left = (ih - ch) // 2, (iw - cw) // 2
        mask = mask[top:top + max(ch, 1), left:left + max(cw, 1)]
    img = Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)
    return np.asarray(img) > 0


def localisation_scores(metric, maps, masks):
    """Column values ``[N]`` of one :data:`LOCALISATION_METRICS` entry on the pixel maps
    ``[N, H, W]``: each image alone (Quantus normalises per call), NaN where it has no mask
    (None) or where the metric is undefined. Top-K uses ``k = min(1000, H·W - 1)``."""
    from attrkit.metrics import localisation
    fn = getattr(localisation, LOCALISATION_METRICS[metric][1])
    out = np.full(len(maps), np.nan)
    for i, (a, m) in enumerate(zip(maps, masks)):
        if m is None or not np.any(a):
            continue
        kw = {"k": min(1000, a.size - 1)} if metric == "top_k_intersection" else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out[i] = fn(a, m, **kw)
    return out
