"""Segmentations: the one place that turns an image into segments, for every method that
needs them (XRAI today).

- :func:`felzenszwalb_segments`: PAIR saliency's XRAI segments (Felzenszwalb's graph
  segments at six scales on the image resized to 224 x 224, each dilated by 5 pixels).
- :func:`parse_segments`: a method's ``segments`` argument (None, masks, label maps, one
  per input) as one bool array of masks per input, with one error template.

scikit-image is imported only when segments are computed (the course's environment may
lack it): :data:`SKIMAGE_ERROR` says what to do then.
"""
import numpy as np

from hw3_attribution import as_array, is_numeric

SKIMAGE_ERROR = ("segments: XRAI's default segments (Felzenszwalb's, as PAIR's) need "
                 "scikit-image, which is not installed here (pip install scikit-image); or "
                 "pass segments= (boolean masks or an int label map of the image's height "
                 "and width)")
SEGMENTS_ERROR = ("segments: expected None (Felzenszwalb segments of images), boolean masks "
                  "[S, *{shape}], an int label map {shape}, or a list of one of those per "
                  "input, got {actual}")

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
