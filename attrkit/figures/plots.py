"""Plotting helpers for attribution maps: aggregation, normalisation, masks and figures.

Images are RGB pixel values 0-255, ``[H, W, 3]`` (float or uint8); attribution maps have
the image's shape ``[H, W, C]`` or are already per pixel ``[H, W]``. Batches put ``N``
first. Figures are ``matplotlib.figure.Figure`` objects (no pyplot state, no display
needed). The panel layer (titles, heat maps, ``plot_grid``, ``plot_row``, ``save_figure``,
which writes a PNG through a temporary file renamed into place) is the graded ``hw3_vc.py``'s,
re-exported here: that script must draw its figures beside the course's own helpers, where
this module is absent.

``highlight_top_pixels`` and ``magnitude_cloud`` are the project's richer versions of the
homework's binary mask and point cloud (percentile or fraction threshold, blur, positive
part, per-image normalisation); the course's own ``binary_mask`` and ``point_cloud``, value
for value, are in ``hw3_utils``. ``comparison_figure`` draws both kinds of panel with these.
"""
import numpy as np
from scipy import ndimage

import hw3_vc
from hw3_vc import (PANEL_MODES as MODES, PANEL_SIZE, TITLE_WIDTH, info_title,  # noqa: F401
                    panel_title, plot_grid, plot_magnitude, plot_map, plot_row, plot_signed,
                    save_figure, short_name, show_image)

# Error messages, kept as data so that tests match the same templates.
NDIM_ERROR = "{arg}: expected an array with {expected} dimensions, got shape {actual}"
FINITE_ERROR = "{arg}: expected finite values, got {count} NaN or inf entries"
NUMERIC_ERROR = "{arg}: expected a numeric array, got dtype {actual}"
IMAGE_SHAPE_ERROR = ("image: expected an RGB image [H, W, 3] or a batch [N, H, W, 3], "
                     "got shape {actual}")
MATCH_ERROR = ("attribution: expected the image's height and width {expected} (shape "
               "[H, W], [H, W, C] or batched with N first), got shape {actual}")
RANGE_ERROR = "{arg}: expected a number in {expected}, got {actual!r}"
CHOICE_ERROR = "{arg}: expected one of {expected}, got {actual!r}"
LENGTH_ERROR = "{arg}: expected {expected} entries, got {actual}"

# Defaults of highlight_top_pixels and magnitude_cloud, chosen by eye on 224x224 photographs with
# gradient-like attribution maps (sparse, heavy-tailed magnitudes).
MASK_PERCENTILE = 80.0   # keep the top 20% of pixels
MASK_FRACTION = 0.25     # threshold='fraction' default: keep pixels >= 25% of the max
MASK_BLUR = 3.0          # Gaussian sigma in pixels: turns speckle into regions
MASK_BACKGROUND = 0.2    # brightness of the dimmed pixels (0 black, 1 unchanged)
CLOUD_KEEP = 0.1         # point cloud: the top 10% of pixels by magnitude
CLOUD_CLIP = 99.0        # point cloud: the 99th percentile of the kept values maps to 1



# --------------------------------------------------------------------------- arrays

def _as_float_array(x, arg):
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == np.bool_):
        raise TypeError(NUMERIC_ERROR.format(arg=arg, actual=arr.dtype))
    arr = arr.astype(np.float64)
    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ValueError(FINITE_ERROR.format(arg=arg, count=bad))
    return arr


def _has_channels(arr, batched):
    """Whether the last axis of ``arr`` is a colour-channel axis.

    4-D is always ``[N, H, W, C]`` and 2-D never has channels. 3-D is ``[H, W, C]`` when
    ``batched`` is False, ``[N, H, W]`` when it is True, and when it is None the last
    axis counts as channels if it has 1 or 3 entries (an ``[N, H, W]`` batch of maps
    3 pixels wide is the rare case that needs ``batched=True``).
    """
    if arr.ndim == 4:
        return True
    if arr.ndim == 3:
        if batched is None:
            return arr.shape[-1] in (1, 3)
        return not batched
    return False


def aggregate_attribution(attr, batched=None):
    """Sum an attribution map over its colour channels.

    Args:
        attr: ``[N, H, W, C]`` -> ``[N, H, W]``, ``[H, W, C]`` -> ``[H, W]``; a map that
            is already per pixel (``[H, W]`` or ``[N, H, W]``) is returned unchanged.
        batched: how to read a 3-D array, see ``_has_channels`` (None: infer).

    Returns:
        float64 array without the channel axis; signs are kept.
    """
    arr = _as_float_array(attr, "attr")
    if arr.ndim not in (2, 3, 4):
        raise ValueError(NDIM_ERROR.format(arg="attr", expected="2, 3 or 4",
                                           actual=arr.shape))
    return arr.sum(axis=-1) if _has_channels(arr, batched) else arr


def normalize_attribution(attr, batched=None):
    """Absolute value, then min-max scaling to ``[0, 1]``, per image.

    Args:
        attr: one map (``[H, W]`` or ``[H, W, C]``) or a batch (``[N, H, W]`` or
            ``[N, H, W, C]``); a 1-D array is one map.
        batched: how to read a 3-D array, see ``_has_channels`` (None: infer).

    Returns:
        float64 array of ``attr``'s shape in ``[0, 1]``. A constant map (all zeros, say)
        has no range to scale and becomes all zeros, never NaN.
    """
    arr = np.abs(_as_float_array(attr, "attr"))
    if arr.ndim == 0:
        raise ValueError(NDIM_ERROR.format(arg="attr", expected="1 to 4", actual=arr.shape))
    is_batch = arr.ndim == 4 or (arr.ndim == 3 and not _has_channels(arr, batched))
    flat = arr.reshape(arr.shape[0], -1) if is_batch else arr.reshape(1, -1)
    lo = flat.min(axis=1, keepdims=True)
    span = flat.max(axis=1, keepdims=True) - lo
    out = np.divide(flat - lo, span, out=np.zeros_like(flat), where=span > 0)
    return out.reshape(arr.shape)


def _magnitude(attribution, positive_only=False):
    """One map ``[H, W]`` or ``[H, W, C]`` -> per-pixel magnitude ``[H, W]`` in [0, 1]."""
    agg = aggregate_attribution(attribution, batched=False)
    if positive_only:
        agg = np.maximum(agg, 0.0)
    return normalize_attribution(agg, batched=False)


def _check_image(image):
    arr = np.asarray(image)
    if arr.ndim not in (3, 4) or arr.shape[-1] != 3:
        raise ValueError(IMAGE_SHAPE_ERROR.format(actual=arr.shape))
    _as_float_array(arr, "image")
    return arr


def _check_fraction(value, arg, lo=0.0, hi=1.0, closed_lo=True):
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))
    if ok:
        ok = (lo <= value if closed_lo else lo < value) and value <= hi
    if not ok:
        interval = ("[" if closed_lo else "(") + f"{lo:g}, {hi:g}]"
        raise ValueError(RANGE_ERROR.format(arg=arg, expected=interval, actual=value))
    return float(value)


# ------------------------------------------------- highlight_top_pixels (binary mask)

def highlight_top_pixels(image, attribution, threshold=MASK_PERCENTILE, mode="percentile",
                         blur=MASK_BLUR, background=MASK_BACKGROUND, positive_only=False):
    """The image with its high-attribution pixels kept and the rest dimmed (a binary mask).

    Steps: sum the attribution over channels, take the magnitude (or only the positive
    part), min-max normalise to [0, 1], blur with a Gaussian, renormalise, then keep the
    pixels at or above the threshold (and above zero). Kept pixels are the input
    unchanged; every other pixel is multiplied by ``background``.

    Args:
        image: RGB image ``[H, W, 3]`` with values 0-255 (uint8 or float), or a batch
            ``[N, H, W, 3]``.
        attribution: the attribution for ``image``: ``[H, W, C]`` or ``[H, W]``
            (``[N, H, W, C]`` or ``[N, H, W]`` for a batch).
        threshold: with ``mode='percentile'`` a percentile 0-100 of the (blurred)
            magnitudes, default 80 (keep the top 20% of pixels); with
            ``mode='fraction'`` a fraction 0-1 of the largest magnitude (None: 0.25).
        mode: ``'percentile'`` or ``'fraction'``, how ``threshold`` is read.
        blur: Gaussian sigma in pixels applied to the magnitude before thresholding,
            default 3 (joins gradient speckle into regions); 0 turns it off.
        background: brightness 0-1 of the dimmed pixels, default 0.2 (0 is black,
            1 leaves the image unchanged).
        positive_only: rank by the positive part of the summed attribution instead of
            its magnitude (evidence for the class only).

    Returns:
        An image of ``image``'s shape: uint8 when ``image`` is uint8, else float32 0-255.
        An all-zero attribution keeps no pixel (the whole image is dimmed).

    Raises:
        ValueError: a shape mismatch, a threshold outside its range, an unknown mode.
    """
    img = _check_image(image)
    attr = np.asarray(attribution)
    if img.ndim == 4:
        if attr.ndim not in (3, 4) or len(attr) != len(img):
            raise ValueError(MATCH_ERROR.format(expected=img.shape[1:3], actual=attr.shape))
        return np.stack([highlight_top_pixels(i, a, threshold, mode, blur, background,
                                              positive_only)
                         for i, a in zip(img, attr)])
    if attr.ndim not in (2, 3) or attr.shape[:2] != img.shape[:2]:
        raise ValueError(MATCH_ERROR.format(expected=img.shape[:2], actual=attr.shape))
    keep = _mask(attr, threshold, mode, blur, positive_only)
    background = _check_fraction(background, "background")
    scale = np.where(keep, 1.0, background)[..., None]
    out = img.astype(np.float64) * scale
    if img.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(np.float32)


def _mask(attribution, threshold, mode, blur, positive_only):
    """Boolean ``[H, W]``: the pixels that ``highlight_top_pixels`` keeps."""
    if mode not in ("percentile", "fraction"):
        raise ValueError(CHOICE_ERROR.format(arg="mode", expected="'percentile', 'fraction'",
                                             actual=mode))
    if threshold is None:
        threshold = MASK_PERCENTILE if mode == "percentile" else MASK_FRACTION
    if mode == "percentile":
        threshold = _check_fraction(threshold, "threshold", 0.0, 100.0)
    else:
        threshold = _check_fraction(threshold, "threshold")
    blur = _check_fraction(blur, "blur", 0.0, np.inf)
    mag = _magnitude(attribution, positive_only)
    if blur > 0:
        mag = normalize_attribution(ndimage.gaussian_filter(mag, sigma=blur, mode="nearest"),
                                    batched=False)
    cut = np.percentile(mag, threshold) if mode == "percentile" else threshold
    return (mag >= cut) & (mag > 0)


# ------------------------------------------------------ magnitude_cloud (point cloud)

def magnitude_cloud(attribution, keep=CLOUD_KEEP, clip=CLOUD_CLIP, background="black",
                    positive_only=False):
    """The attribution magnitude as a sparse grey-scale cloud of the top pixels (a point
    cloud).

    The attribution is summed over channels, its magnitude (or positive part) taken,
    and only the ``keep`` fraction of pixels with the largest magnitude is drawn, each
    with a brightness proportional to its magnitude (no min-max shift, so a zero
    attribution is never drawn); the rest is background.

    Args:
        attribution: ``[H, W, C]`` or ``[H, W]`` (one image; loop for a batch).
        keep: fraction (0, 1] of pixels drawn, default 0.1. Exactly
            ``round(keep * H * W)`` pixels are drawn when that many are non-zero.
        clip: the percentile (0, 100] of the drawn magnitudes that maps to full
            brightness, default 99; larger ones are clipped. Gradient magnitudes are
            heavy-tailed, so scaling by the single largest value leaves most dots
            invisible. 100 scales by the maximum.
        background: ``'black'`` (bright dots on black) or ``'white'`` (dark dots on
            white, the inverted image).
        positive_only: use the positive part of the summed attribution.

    Returns:
        float64 ``[H, W]`` in ``[0, 1]``: on black, 0 where nothing is drawn; on white,
        1 where nothing is drawn. Show it with ``cmap='gray', vmin=0, vmax=1``.
    """
    attr = np.asarray(attribution)
    if attr.ndim not in (2, 3):
        raise ValueError(NDIM_ERROR.format(arg="attribution", expected="2 ([H, W]) or 3 "
                                           "([H, W, C])", actual=attr.shape))
    keep = _check_fraction(keep, "keep", closed_lo=False)
    clip = _check_fraction(clip, "clip", 0.0, 100.0, closed_lo=False)
    if background not in ("black", "white"):
        raise ValueError(CHOICE_ERROR.format(arg="background", expected="'black', 'white'",
                                             actual=background))
    agg = aggregate_attribution(attr, batched=False)
    mag = np.maximum(agg, 0.0) if positive_only else np.abs(agg)   # not min-max: 0 stays 0
    flat = mag.ravel()
    k = min(int(round(keep * flat.size)), int(np.count_nonzero(flat)))
    cloud = np.zeros_like(flat)
    if k > 0:
        top = np.argpartition(flat, flat.size - k)[flat.size - k:]   # exactly k indices
        scale = np.percentile(flat[top], clip)
        cloud[top] = np.clip(flat[top] / scale, 0.0, 1.0) if scale > 0 else 0.0
    cloud = cloud.reshape(mag.shape)
    return 1.0 - cloud if background == "white" else cloud


# ------------------------------------------------------------------------ figures

def comparison_figure(rows, by_image=False, cloud_kwargs=None, mask_kwargs=None,
                      suptitle=None, panel_size=PANEL_SIZE):
    """The visual comparison (written exercise 14): input | point cloud | binary mask.

    Args:
        rows: either a list of ``(method, image, attribution, info)`` tuples, one figure
            row each, or a dict ``{method: [(image, attribution, info), ...]}`` (the
            same images for every method).
            ``image`` is RGB 0-255 ``[H, W, 3]``; ``attribution`` ``[H, W, C]`` or
            ``[H, W]``; ``info`` is a dict with ``index``, ``true_name``, ``pred_name``
            and optionally ``correct`` and ``note`` (a line added to every title, e.g.
            that the expert neuron is inactive), or a ready title string.
        by_image: for a dict, order the rows image by image (method rows of image 1,
            then image 2, ...) instead of method by method.
        cloud_kwargs, mask_kwargs: keyword arguments for ``magnitude_cloud`` (the point
            cloud panel) and ``highlight_top_pixels`` (the binary mask panel).

    Returns:
        a ``matplotlib.figure.Figure`` with one row per (method, image) and three
        panels per row, each titled with the method, the image's index, the true and
        predicted classes and whether the prediction is correct.
    """
    entries = _comparison_entries(rows, by_image)
    cloud_kwargs = dict(cloud_kwargs or {})
    mask_kwargs = dict(mask_kwargs or {})
    return hw3_vc.comparison_figure(
        entries, lambda a: magnitude_cloud(a, **cloud_kwargs),
        lambda image, a: highlight_top_pixels(image, a, **mask_kwargs), suptitle, panel_size)


def _comparison_entries(rows, by_image):
    if isinstance(rows, dict):
        per_method = [(m, list(v)) for m, v in rows.items()]
        counts = {len(v) for _, v in per_method}
        if by_image and len(counts) > 1:
            raise ValueError(LENGTH_ERROR.format(arg="rows (by_image)",
                                                 expected="the same number per method",
                                                 actual=sorted(counts)))
        if by_image:
            n = counts.pop() if counts else 0
            return [(m, *v[i]) for i in range(n) for m, v in per_method]
        return [(m, *e) for m, v in per_method for e in v]
    entries = [tuple(e) for e in rows]
    for e in entries:
        if len(e) != 4:
            raise ValueError(LENGTH_ERROR.format(arg="rows entry (method, image, "
                                                 "attribution, info)", expected=4,
                                                 actual=len(e)))
    return entries


__all__ = ["aggregate_attribution", "normalize_attribution", "highlight_top_pixels",
           "magnitude_cloud", "comparison_figure", "MODES", "PANEL_SIZE", "TITLE_WIDTH",
           "info_title", "panel_title", "plot_grid", "plot_magnitude", "plot_map", "plot_row",
           "plot_signed", "save_figure", "short_name", "show_image"]
