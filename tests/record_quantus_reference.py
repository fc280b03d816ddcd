"""Record Quantus 0.6.0's model-free metrics for tests/test_metrics_model_free.py: writes
tests/data/quantus_model_free.npz.

Quantus is not a dependency of the project, and 0.6.0 calls ``np.trapz``, which numpy 2.4
removed, so this runs once in a side environment whose numpy shadows the venv's::

    .venv/bin/python -m pip install --target /tmp/quantus_env 'numpy<2.4' quantus==0.6.0
    PYTHONPATH=/tmp/quantus_env .venv/bin/python tests/record_quantus_reference.py

(recorded with numpy 2.3.5, scikit-learn 1.9.1, scipy 1.17.1 from that install; torch is
not needed: the metrics are called with ``model=None`` and arrays. Quantus imports
TensorFlow when it finds it, here the venv's.)

Each case is a batch of seeded pixel maps ``[N, H, W]`` (kept as float32, given to Quantus
as float64) and bool masks, passed to Quantus as channel-first ``[N, 1, H, W]`` arrays
(``x_batch`` zeros of that shape, ``channel_first=True``), the correspondence the
toolkit's docstrings state. Every metric runs with its defaults and with the options in
:func:`specs`; the fixture keeps the maps, the masks, Quantus' scores (``value_<i>``, with
``index`` a JSON list of ``[case, metric, kwargs]``), and for the cases with ties the
order ``np.argsort(-a)`` gave here (``order_<case>``), so that the test can tell whether
its machine's numpy breaks ties as this one did. The test names every kwarg the same.
"""
import contextlib
import io
import json
import os
import sys
import warnings

import numpy as np

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(TESTS_DIR, "data", "quantus_model_free.npz")
LOCALISATION = ["PointingGame", "RelevanceMassAccuracy", "RelevanceRankAccuracy",
                "TopKIntersection", "AttributionLocalisation", "AUC"]
COMPLEXITY = ["Sparseness", "Complexity", "EffectiveComplexity"]
TIE_CASES = ("ties", "onehot")


def blobs(rs, n, h, w, count=3):
    """``n`` smooth maps ``[n, h, w]``: signed Gaussian bumps plus a little noise."""
    yy, xx = np.mgrid[:h, :w]
    maps = 0.05 * rs.randn(n, h, w)
    for i in range(n):
        for _ in range(count):
            cy, cx, s = rs.uniform(0, h), rs.uniform(0, w), rs.uniform(1.5, h / 3)
            maps[i] += rs.uniform(-0.5, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2)
                                                   / (2 * s * s))
    return maps


def boxes(rs, n, h, w):
    """``n`` bool masks ``[n, h, w]``, each a random rectangle."""
    masks = np.zeros((n, h, w), bool)
    for i in range(n):
        y0, x0 = rs.randint(0, h - 2), rs.randint(0, w - 2)
        masks[i, y0:rs.randint(y0 + 1, h + 1), x0:rs.randint(x0 + 1, w + 1)] = True
    return masks


def cases():
    """``{name: (maps float32 [N, H, W], masks bool [N, H, W])}``, seeded."""
    rs = np.random.RandomState(27)
    out = {}
    # Gaussian noise, a non-square map (raster order matters), random-rectangle masks
    out["gauss"] = (rs.randn(5, 12, 10), boxes(rs, 5, 12, 10))
    # smooth maps at 32 x 32, where Top-K's default k = 1000 fits (k < H·W = 1024)
    out["blobs"] = (blobs(rs, 4, 32, 32), boxes(rs, 4, 32, 32))
    # ties: values on a coarse grid, random masks; ties cross the K-th / k-th place
    out["ties"] = (np.round(rs.randn(4, 8, 9)), rs.rand(4, 8, 9) < 0.4)
    # negative maps: one all negative, one mostly negative, one mixed (Quantus refuses a
    # call whose maps are all negative, not a map)
    neg = rs.randn(3, 9, 9)
    neg[0] = -np.abs(neg[0]) - 0.1
    neg[1] -= 1.0
    out["negative"] = (neg, boxes(rs, 3, 9, 9))
    # one hot pixel per map (the rest 0), on the mask, off it, and on its edge
    hot = np.zeros((3, 6, 7))
    hot[0, 2, 3], hot[1, 0, 0], hot[2, 5, 6] = 1.0, 0.5, -2.0
    hot_masks = np.zeros((3, 6, 7), bool)
    hot_masks[:, 1:4, 2:5] = True
    hot_masks[2, 5, 6] = True
    out["onehot"] = (hot, hot_masks)
    # an empty mask and a full mask among ordinary ones
    m = rs.randn(4, 7, 8)
    masks = boxes(rs, 4, 7, 8)
    masks[1] = False
    masks[2] = True
    out["empty_full"] = (m, masks)
    # three maps: Quantus' AttributionLocalisation(weighted=True) divides by
    # x_batch[2:].size, which is one map's H·W only for a batch of three (C = 1)
    out["three"] = (rs.rand(3, 10, 10) - 0.3, boxes(rs, 3, 10, 10))
    return {k: (v[0].astype(np.float32), v[1]) for k, v in out.items()}


def specs(name, shape):
    """The ``[metric, kwargs]`` pairs of case ``name`` (maps of ``shape`` [N, H, W])."""
    size = shape[1] * shape[2]
    k = size // 4
    out = [[m, {}] for m in LOCALISATION + COMPLEXITY if m != "TopKIntersection"]
    out += [["TopKIntersection", {"k": k}],
            ["TopKIntersection", {"k": k, "concept_influence": True}],
            ["TopKIntersection", {"k": 1}],
            ["PointingGame", {"abs": True}],
            ["RelevanceMassAccuracy", {"abs": True}],
            ["RelevanceRankAccuracy", {"abs": True}],
            ["AUC", {"abs": True}],
            ["AttributionLocalisation", {"positive_attributions": True, "abs": False}],
            ["AttributionLocalisation", {"abs": False}],
            ["AttributionLocalisation", {"weighted": True}],
            ["Sparseness", {"abs": False}],
            ["Sparseness", {"normalise": False}],
            ["EffectiveComplexity", {"eps": 0.1}],
            ["EffectiveComplexity", {"normalise": False}],
            ["Complexity", {"normalise": False}],
            ["RelevanceRankAccuracy", {"normalise": False}]]
    if size > 1000:
        out.append(["TopKIntersection", {}])             # Quantus' default k = 1000
    return out


def run_quantus(metric, kwargs, maps, masks):
    """Quantus' scores ``[N]`` (float64) of ``metric(**kwargs)`` on the maps, or the error
    it raises (its type and message)."""
    import quantus
    a = maps.astype(np.float64)[:, None]                                   # [N, 1, H, W]
    s = masks[:, None]
    x = np.zeros_like(a)
    with contextlib.redirect_stdout(io.StringIO()):      # its abs=False advice is printed
        instance = getattr(quantus, metric)(disable_warnings=True, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = instance(model=None, x_batch=x, y_batch=np.zeros(len(a), int),
                           a_batch=a.copy(), s_batch=s.copy(), channel_first=True)
        except Exception as err:    # noqa: BLE001 -- recorded as Quantus' behaviour
            return f"{type(err).__name__}: {err}"
    return np.asarray(out, np.float64)


def main():
    import quantus
    import sklearn
    if quantus.__version__ != "0.6.0":
        sys.exit(f"expected quantus 0.6.0, found {quantus.__version__}")
    data, index, errors = {}, [], []
    for name, (maps, masks) in cases().items():
        data[f"maps_{name}"], data[f"masks_{name}"] = maps, masks
        if name in TIE_CASES:
            a = maps.astype(np.float64).reshape(len(maps), -1)
            data[f"order_{name}"] = np.argsort(-(a / np.abs(a).max()), axis=-1).astype(
                np.int16)
        for metric, kwargs in specs(name, maps.shape):
            value = run_quantus(metric, kwargs, maps, masks)
            if isinstance(value, str):
                errors.append([name, metric, kwargs, value])
                continue
            data[f"value_{len(index)}"] = value
            index.append([name, metric, kwargs])
    # Quantus' PointingGame(weighted=True) fails as soon as an image hits; recorded
    errors.append(["gauss", "PointingGame", {"weighted": True},
                   run_quantus("PointingGame", {"weighted": True}, *cases()["gauss"])])
    data["index"] = np.array(json.dumps(index))
    data["errors"] = np.array(json.dumps(errors))
    data["versions"] = np.array(json.dumps({"quantus": quantus.__version__,
                                            "numpy": np.__version__,
                                            "sklearn": sklearn.__version__}))
    os.makedirs(os.path.dirname(FIXTURE), exist_ok=True)
    tmp = FIXTURE + ".tmp.npz"
    np.savez_compressed(tmp, **data)
    os.replace(tmp, FIXTURE)
    print(f"wrote {FIXTURE}: {len(index)} scores, {len(errors)} errors, "
          f"{os.path.getsize(FIXTURE)} bytes")
    for e in errors:
        print("error:", e)


if __name__ == "__main__":
    main()
