"""What the model-free metrics share: the one parser of their ``attr_map`` and ``mask``
arguments (:func:`read_maps`), Quantus' default normalisation (:func:`normalise_by_max`),
the NaN-with-a-warning rule for undefined scores (:func:`undefined`) and the return form
(:func:`scores`).

A map here is per pixel, ``[H, W]``, in a batch ``[N, H, W]``; it stands for Quantus'
channel-first attribution ``[N, 1, H, W]`` (C = 1) and the mask for its segmentation
``s_batch`` ``[N, 1, H, W]``. The metrics see each map flattened in raster (row-major)
order, ``[N, H·W]``, as Quantus' ``a_batch.reshape(batch_size, -1)`` does.
"""
import warnings

import numpy as np

from hw3_attribution import INPUT_FINITE_ERROR, as_array, is_numeric
from hw3_evaluation import UNDEFINED_WARNING

# Error messages, kept as data so that tests match the same templates.
MAP_SHAPE_ERROR = ("attr_map: expected one pixel map [H, W] or a batch of them [N, H, W] "
                   "(N, H, W >= 1), got shape {actual}")
MAP_DTYPE_ERROR = "attr_map: expected a numeric array, got dtype {actual}"
MASK_SHAPE_ERROR = ("mask: expected a bool mask of attr_map's shape {expected} (True on the "
                    "object), got shape {actual}")
MASK_DTYPE_ERROR = ("mask: expected a bool array (True on the object), got dtype {actual}; "
                    "pass mask.astype(bool) or mask > 0")
FLAG_ERROR = "{arg}: expected True or False, got {actual!r}"
K_ERROR = ("k: expected an int with 1 <= k < H·W = {size} (Quantus' bound: fewer pixels "
           "than the map has), got {actual!r}")
EPS_ERROR = "eps: expected a finite number, got {actual!r}"


class Maps:
    """A call's checked maps, flattened: ``values`` float64 ``[N, H·W]`` (normalised and
    made absolute as asked), ``mask`` bool ``[N, H·W]`` or None, ``single`` (one ``[H, W]``
    map was given) and the map's ``shape`` ``(H, W)``."""

    def __init__(self, values, mask, single, shape):
        self.values, self.mask, self.single, self.shape = values, mask, single, shape

    @property
    def size(self):
        """Pixels per map, H·W."""
        return self.values.shape[1]

    def mask_sizes(self):
        """``[N]`` the number of mask pixels of each map."""
        return self.mask.sum(axis=1)


def read_maps(attr_map, mask=None, *, normalise=True, abs=False, needs_mask=False):
    """The one parser of the model-free metrics' arrays.

    ``attr_map`` is one map ``[H, W]`` or a batch ``[N, H, W]`` of any real dtype; ``mask``
    (where ``needs_mask``) a bool array of the same shape. Quantus' preprocessing follows,
    in its order: with ``normalise`` every value is divided by the largest ``|a|`` of the
    whole call (:func:`normalise_by_max`), then with ``abs`` the absolute value is taken.

    Returns:
        :class:`Maps`.

    Raises:
        TypeError: a non-numeric map, a non-bool mask, a graph tensor, a non-bool flag.
        ValueError: a shape other than ``[H, W]`` / ``[N, H, W]``, a mask of another shape,
            NaN or inf in the map.
    """
    normalise = check_flag(normalise, "normalise")
    abs = check_flag(abs, "abs")
    arr = as_array(attr_map, "attr_map")
    if not is_numeric(arr):
        raise TypeError(MAP_DTYPE_ERROR.format(actual=arr.dtype))
    if arr.ndim not in (2, 3) or 0 in arr.shape:
        raise ValueError(MAP_SHAPE_ERROR.format(actual=list(arr.shape)))
    single = arr.ndim == 2
    values = arr.astype(np.float64).reshape(1 if single else len(arr), -1)     # [N, H·W]
    bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    if bad:
        raise ValueError(INPUT_FINITE_ERROR.format(arg="attr_map", count=bad))
    flat_mask = None
    if needs_mask:
        m = as_array(mask, "mask")
        if m.dtype != np.bool_:
            raise TypeError(MASK_DTYPE_ERROR.format(actual=m.dtype))
        if m.shape != arr.shape:
            raise ValueError(MASK_SHAPE_ERROR.format(expected=list(arr.shape),
                                                     actual=list(m.shape)))
        flat_mask = m.reshape(values.shape)
    if normalise:
        values = normalise_by_max(values)
    if abs:
        values = np.abs(values)
    return Maps(values, flat_mask, single, arr.shape[-2:])


def normalise_by_max(values):
    """``values / max |values|`` over the whole array, Quantus 0.6.0's default
    ``normalise_func`` (``normalise_by_max`` with ``normalise_axes=None``: every axis, the
    batch's too); an all-zero array is returned as it is."""
    if not values.any():
        return values
    return values / np.abs(values).max()


def check_flag(value, arg):
    """``value`` as a bool if it is one (Python's or numpy's), else a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(FLAG_ERROR.format(arg=arg, actual=value))
    return bool(value)


def check_k(k, size):
    """Top-K's ``k`` as an int, ``1 <= k < size`` (Quantus asserts ``k`` smaller than the
    map's ``H·W``; below 1 it would average no pixel)."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(K_ERROR.format(size=size, actual=k))
    if not 1 <= k < size:
        raise ValueError(K_ERROR.format(size=size, actual=k))
    return int(k)


def check_eps(eps):
    """Effective Complexity's ``eps`` as a float (any finite number: a threshold)."""
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.number)):
        raise TypeError(EPS_ERROR.format(actual=eps))
    if not np.isfinite(float(eps)):
        raise ValueError(EPS_ERROR.format(actual=eps))
    return float(eps)


def undefined(score, where, metric, why, stacklevel=3):
    """Set ``score[where]`` to NaN and warn (a ``RuntimeWarning`` naming the images and
    why), the toolkit's rule for a per-image value that a definition leaves undefined.
    ``stacklevel=3`` points the warning at the metric's caller when a metric calls this."""
    if np.any(where):
        score[where] = np.nan
        warnings.warn(UNDEFINED_WARNING.format(metric=metric,
                                               indices=np.flatnonzero(where).tolist(),
                                               why=why), RuntimeWarning,
                      stacklevel=stacklevel)
    return score


def empty_masks(maps, score, metric):
    """NaN (with a warning) for the maps whose mask is empty, as Quantus' localisation
    metrics (``score[s_batch.sum(-1) == 0] = np.nan``)."""
    return undefined(score, maps.mask_sizes() == 0, metric, "empty mask", stacklevel=4)


def scores(maps, values):
    """The per-image ``values`` ``[N]``, or the one value (a Python float or int) for a
    single map."""
    if maps.single:
        return values[0].item()
    return values


def ranking(values, stable):
    """Each map's pixels, most attributed first ``[N, H·W]``: ``np.argsort(-values)``
    as Quantus sorts (numpy's default kind, whose order among equal values is numpy's own),
    or with ``stable`` ties in raster order (the earlier pixel first)."""
    stable = check_flag(stable, "stable")
    return np.argsort(-values, axis=-1, kind="stable" if stable else None)


__all__ = ["Maps", "read_maps", "normalise_by_max", "check_flag", "check_k", "check_eps",
           "undefined", "empty_masks", "scores", "ranking"]
