"""Segmentations: the one place that turns an image into segments, for every method that
needs them (XRAI, and the perturbation methods LIME, KernelSHAP and FeatureAblation).

- :func:`segment_labels`: the perturbation methods' ``segments`` argument (None, ``'grid'``,
  ``'felzenszwalb'``, ``'slic'``, ``'quickshift'``, or int label maps) as one int label
  map per image, relabelled ``0..S-1``, with one error template (:data:`LABELS_ERROR`);
  :func:`segment_means`, lime's "hide colour" of each segment.
- :func:`felzenszwalb_segments`: PAIR saliency's XRAI segments (Felzenszwalb's graph
  segments at six scales on the image resized to 224 x 224, each dilated by 5 pixels).
- :func:`parse_segments`: XRAI's ``segments`` argument (None, masks, label maps, one per
  input) as one bool array of masks per input, with one error template.

scikit-image is imported only when segments are computed (the course's environment may
lack it): :data:`SKIMAGE_ERROR` and :data:`SKIMAGE_KIND_ERROR` say what to do then.
"""
import numpy as np

from hw3_attribution import as_array, is_numeric, scaled_size

SEGMENT_KINDS = ("grid", "felzenszwalb", "slic", "quickshift")
# lime 0.2.0.1's default segmentation (lime_image.LimeImageExplainer.explain_instance):
# SegmentationAlgorithm('quickshift', kernel_size=4, max_dist=200, ratio=0.2), which calls
# skimage.segmentation.quickshift(image, **these) on the image it is given.
LIME_QUICKSHIFT = {"kernel_size": 4, "max_dist": 200, "ratio": 0.2}
GRID_CELL = 16        # the 'grid' cells' side at 224 x 224, scaled with the image

LABELS_ERROR = ("segments: expected None, one of {kinds}, or an int label map of the images' "
                "height and width, {one} (shared by every image) or {batch} (one per image), "
                "with at least 2 segments in each image, got {actual}")
SKIMAGE_KIND_ERROR = ("segments: {kind!r} segments need scikit-image, which is not installed "
                      "here (pip install scikit-image); or pass segments='grid' or an int "
                      "label map of the images' height and width")

SKIMAGE_ERROR = ("segments: XRAI's default segments (Felzenszwalb's, as PAIR's) need "
                 "scikit-image, which is not installed here (pip install scikit-image); or "
                 "pass segments= (boolean masks or an int label map of the image's height "
                 "and width)")
SEGMENTS_ERROR = ("segments: expected None (Felzenszwalb segments of images), boolean masks "
                  "[S, *{shape}], an int label map {shape}, or a list of one of those per "
                  "input, got {actual}")


def segment_labels(segments, X, default="quickshift"):
    """The one parser of the perturbation methods' ``segments``, for images ``X``
    ``[N, H, W, C]`` (RGB 0-255): ``(labels, counts)``, int32 ``[N, H, W]`` with each
    image's segments labelled ``0..S_i-1`` (in the order of the labels given) and their
    counts ``S_i`` ``[N]``.

    ``segments``: None (the method's ``default`` kind), a kind of :data:`SEGMENT_KINDS`
    (:func:`segment_image`), or an int label map ``[H, W]`` (shared) or ``[N, H, W]`` (one
    per image), any labels. Every image needs at least 2 segments.
    """
    n, h, w = X.shape[:3]
    kind = default if segments is None else segments

    def fail(actual):
        return ValueError(LABELS_ERROR.format(kinds=list(SEGMENT_KINDS), one=[h, w],
                                              batch=[n, h, w], actual=actual))

    if isinstance(kind, str):
        if kind not in SEGMENT_KINDS:
            raise fail(repr(kind))
        maps = [segment_image(x, kind) for x in X]
    else:
        arr = as_array(segments, "segments")
        if (arr.dtype == object or not np.issubdtype(arr.dtype, np.integer)
                or arr.shape not in ((h, w), (n, h, w))):
            raise fail(f"a {arr.dtype} array of shape {list(arr.shape)}")
        maps = np.broadcast_to(arr, (n, h, w))
    labels = np.empty((n, h, w), np.int32)
    counts = np.empty(n, np.int64)
    for i, m in enumerate(maps):
        values, inverse = np.unique(m, return_inverse=True)
        labels[i], counts[i] = inverse.reshape(h, w), len(values)
        if counts[i] < 2:
            raise fail(f"a label map with 1 segment for image {i}")
    return labels, counts


def segment_image(image, kind):
    """One image's ``[H, W, C]`` (RGB 0-255) segments of ``kind``, an int map ``[H, W]``.

    - ``'grid'``: square cells of :func:`scaled_size` (16 at 224 x 224, 4 at 56 x 56), row
      by row; the last row and column of cells is cut by the image's edge.
    - ``'quickshift'``: lime 0.2.0.1's default, ``skimage.segmentation.quickshift(image,
      kernel_size=4, max_dist=200, ratio=0.2)`` (:data:`LIME_QUICKSHIFT`; skimage's own
      ``rng=42`` breaks ties, as lime's call does on scikit-image >= 0.21, where the
      ``random_seed`` lime passes is no longer an argument and its wrapper drops it);
      a gray image is repeated to RGB first (lime's ``gray2rgb``), other channel counts
      are segmented without the Lab conversion.
    - ``'slic'``: ``skimage.segmentation.slic(image, channel_axis=-1)`` with scikit-image's
      defaults (``n_segments=100, compactness=10, sigma=0``, Lab for 3 channels).
    - ``'felzenszwalb'``: ``skimage.segmentation.felzenszwalb(image, channel_axis=-1)``
      with scikit-image's defaults (``scale=1, sigma=0.8, min_size=20``).

    scikit-image gets the image as the photo the 0-255 pixels stand for: float in [0, 1]
    (pixel / 255), which is what it makes of a uint8 image itself (``img_as_float``), so a
    uint8 photo given to lime is segmented as its float twin is here.
    """
    h, w = image.shape[:2]
    if kind == "grid":
        size = scaled_size(GRID_CELL, h, w)
        cols = -(-w // size)
        return (np.arange(h)[:, None] // size) * cols + np.arange(w)[None, :] // size
    try:
        from skimage import segmentation
    except ImportError:   # optional: the course's environment may lack it
        raise ImportError(SKIMAGE_KIND_ERROR.format(kind=kind)) from None
    im = np.asarray(image, np.float64) / 255.0
    if kind == "quickshift":
        if im.shape[-1] == 1:
            im = np.repeat(im, 3, axis=-1)
        return segmentation.quickshift(im, convert2lab=im.shape[-1] == 3, **LIME_QUICKSHIFT)
    if kind == "slic":
        return segmentation.slic(im, channel_axis=-1)
    return segmentation.felzenszwalb(im, channel_axis=-1)


def segment_means(X, labels):
    """Each image with every segment filled with its mean colour, per channel: float32
    ``[N, H, W, C]`` (lime's ``hide_color=None``, its default hidden image)."""
    out = np.empty(X.shape, np.float32)
    for i, (x, lab) in enumerate(zip(X, labels)):
        flat, count = lab.reshape(-1), np.bincount(lab.reshape(-1))
        for c in range(x.shape[-1]):
            total = np.bincount(flat, weights=x[..., c].reshape(-1).astype(np.float64))
            out[i, ..., c] = (total / np.maximum(count, 1))[lab]
    return out


XRAI_SCALES = (50, 100, 150, 250, 500, 1200)   # PAIR's Felzenszwalb scales, sigma 0.8,
XRAI_SIGMA, XRAI_MIN_SIZE = 0.8, 150            # min_size 150, on the image resized to
XRAI_SIDE, XRAI_DILATION = 224, 5               # 224 x 224 in [-1, 1]; masks dilated by 5


def felzenszwalb_segments(image):
    """PAIR's XRAI segments of one image ``[H, W, C]``: bool ``[S, H, W]``, for each of
    :data:`XRAI_SCALES` the Felzenszwalb segments (scikit-image) of the image rescaled to
    [-1, 1] and resized to 224 x 224, resized back, in label order, each dilated by a disk
    of 5 pixels (:func:`dilated_labels`). A constant image is one segment."""
    try:
        from skimage.segmentation import felzenszwalb
        from skimage.transform import resize
    except ImportError:   # optional: the autograder's environment may lack it
        raise ImportError(SKIMAGE_ERROR) from None
    im = np.asarray(image)
    lo, hi = np.min(im), np.max(im)
    if hi == lo:
        return np.ones((1,) + im.shape[:2], bool)
    im = (im - lo) / (hi - lo) * 2.0 - 1.0                      # PAIR's _normalize_image
    im = resize(im, (XRAI_SIDE, XRAI_SIDE), order=3, mode="constant", preserve_range=True,
                anti_aliasing=True)
    masks = []
    for scale in XRAI_SCALES:
        seg = felzenszwalb(im, scale=scale, sigma=XRAI_SIGMA, min_size=XRAI_MIN_SIZE)
        seg = resize(seg, image.shape[:2], order=0, preserve_range=True, mode="constant",
                     anti_aliasing=False).astype(int)
        masks.append(dilated_labels(seg, XRAI_DILATION))
    return np.concatenate(masks)


def dilated_labels(labels, radius):
    """For each label ``l`` in ``range(min, max + 1)`` of a label map ``[H, W]``, the pixels
    within a disk of ``radius`` of a pixel labelled ``l``: bool ``[L, H, W]``, what
    ``skimage.morphology.dilation(labels == l, disk(radius))`` gives for every label at
    once (one pass per offset of the disk instead of one dilation per label)."""
    h, w = labels.shape
    lab = labels - labels.min()
    out = np.zeros((int(lab.max()) + 1) * h * w, bool)
    pixel = np.arange(h * w).reshape(h, w)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx > radius * radius:
                continue
            ys, xs = slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx))
            src = lab[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)]
            out[src.ravel() * (h * w) + pixel[ys, xs].ravel()] = True
    return out.reshape(-1, h, w)


def region_shape(one):
    """The shape XRAI's regions cover for inputs of shape ``one``: an image's ``[H, W]``
    (the attribution's maximum over the last axis, as PAIR takes it when an input has
    more than two axes), else the input's own shape."""
    return tuple(one[:-1]) if len(one) > 2 else tuple(one)


def parse_segments(segments, X):
    """XRAI's ``segments`` as one bool array ``[S, *P]`` per input (``P``:
    :func:`region_shape`): None (Felzenszwalb's, images only); masks ``[S, *P]`` (or a
    list of ``P`` masks, PAIR's form) or an int label map ``P``, shared by every input;
    int label maps ``[N, *P]``; or a list of one of those per input."""
    n, shape = len(X), region_shape(X.shape[1:])
    if segments is None:
        if X.ndim != 4:
            raise ValueError(SEGMENTS_ERROR.format(shape=list(shape), actual="None, for "
                                                   "inputs that are not images"))
        return [felzenszwalb_segments(x) for x in X]
    if isinstance(segments, (list, tuple)) and not all(
            np.shape(s) == shape and np.asarray(s).dtype == bool for s in segments):
        if len(segments) != n:
            raise ValueError(SEGMENTS_ERROR.format(
                shape=list(shape), actual=f"a list of {len(segments)} entries for {n} inputs"))
        return [segment_masks(s, shape) for s in segments]
    arr = as_array(segments, "segments")
    if arr.shape == (n,) + shape and arr.dtype != bool and is_numeric(arr):
        return [segment_masks(a, shape) for a in arr]                # a label map each
    return [segment_masks(arr, shape)] * n


def segment_masks(value, shape):
    """One input's segments as bool ``[S, *shape]``: masks, or an int label map (one mask
    per label, in increasing order)."""
    arr = as_array(value, "segments")
    if arr.dtype == bool and arr.shape[1:] == shape:
        return arr
    if arr.dtype != object and np.issubdtype(arr.dtype, np.integer) and arr.shape == shape:
        return np.stack([arr == v for v in np.unique(arr)])
    raise ValueError(SEGMENTS_ERROR.format(shape=list(shape), actual=f"{arr.dtype} array "
                                                                     f"of shape {list(arr.shape)}"))
