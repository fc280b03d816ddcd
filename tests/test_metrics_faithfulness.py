"""The model-based faithfulness metrics of ``attrkit.metrics.faithfulness`` (issue 27):
each against a plain numpy loop over the same model that follows Quantus 0.6.0's own loop
(its padding, blocks, cumulative perturbation and baselines), closed forms on an additive
model, and the engine's properties (batch equals one by one, seeded draws, no graph
growth, sess.run counts, bad input).
"""
import math

import numpy as np
import pytest
import scipy.stats

from conftest import new_session
from helpers import CountingSession, n_ops, raises_exactly
from attrkit.metrics import faithfulness as F
from models import additive_image, tiny_convnet

H, W, C = 6, 7, 3


@pytest.fixture(scope="module")
def net():
    """A tiny ReLU conv net on 6 x 7 images (its logits scaled by 0.3, so that its
    probabilities are far from uniform and the curves far from flat), 3 images and a
    seeded map of each kind."""
    sess = new_session()
    with sess.graph.as_default():
        model = tiny_convnet(size=H, width=W, classes=5, seed=3)
        model.logits = 0.3 * model.logits
        rng = np.random.default_rng(0)
        X = rng.uniform(0, 255, (3, H, W, C)).astype(np.float32)
        pixel = rng.normal(size=(3, H, W))
        full = rng.normal(size=(3, H, W, C))
        yield sess, model, X, pixel, full
    sess.close()


def predict(sess, model, X, probs=True):
    z = sess.run(model.logits, {model.imgs: np.asarray(X, np.float32)}).astype(np.float64)
    if not probs:
        return z
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def features(a, X, abs=False):
    """Quantus' preprocessing: broadcast to x, flatten, divide by max |a|, abs."""
    a = np.broadcast_to(a[..., None] if a.ndim == 3 else a, X.shape).reshape(len(X), -1)
    a = a / np.abs(a).max()
    return np.abs(a) if abs else a


def call(metric, net, attr, **kw):
    sess, model, X, _, _ = net
    with sess.graph.as_default():
        return metric(sess, attr, X, model.imgs, model.logits, kw.pop("target", None),
                      progress=False, **kw)


# ------------------------------------------------------------------ Pixel Flipping

def pixel_flipping_loop(sess, model, X, a, step, baseline="black"):
    """Quantus' PixelFlipping.evaluate_batch, with features in [H, W, C] raster order and
    a stable sort."""
    y = predict(sess, model, X).argmax(1)
    order = np.argsort(-features(a, X), axis=1, kind="stable")
    flat = X.reshape(len(X), -1).astype(np.float64).copy()
    curve = []
    for j in range(math.ceil(flat.shape[1] / step)):
        ix = order[:, j * step:(j + 1) * step]
        value = {"black": flat.min(1), "white": flat.max(1)}.get(baseline)
        value = np.full(len(X), baseline, float) if value is None else value
        flat[np.arange(len(X))[:, None], ix] = value[:, None]
        curve.append(predict(sess, model, flat.reshape(X.shape))[np.arange(len(X)), y])
    return np.stack(curve, 1)


@pytest.mark.parametrize("kind, step, baseline", [("pixel", 1, "black"), ("full", 5, "white"),
                                                  ("pixel", 7, 40.0)])
def test_pixel_flipping_equals_quantus_loop(net, kind, step, baseline):
    sess, model, X, pixel, full = net
    a = pixel if kind == "pixel" else full
    got = call(F.PixelFlipping, net, a, features_in_step=step, perturb_baseline=baseline)
    want = pixel_flipping_loop(sess, model, X, a, step, baseline)
    assert got.shape == (3, math.ceil(H * W * C / step))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    auc = call(F.PixelFlipping, net, a, features_in_step=step, perturb_baseline=baseline,
               return_auc=True)
    np.testing.assert_allclose(auc, np.trapezoid(want, dx=1, axis=1), rtol=1e-5)


def test_pixel_flipping_of_a_pixel_map_flips_a_pixel_channel_by_channel(net):
    """A pixel map ranks the three values of a pixel together, in channel order: after
    3k steps exactly the k most attributed pixels are black, the image's minimum."""
    sess, model, X, pixel, _ = net
    with sess.graph.as_default():
        curve = F.PixelFlipping(sess, pixel[:1], X[:1], model.imgs, model.logits, None,
                                progress=False)
    order = np.argsort(-pixel[0].ravel(), kind="stable")
    x = X[0].copy()
    x.reshape(-1, C)[order[:4]] = X[0].min()
    p = predict(sess, model, x[None])[0]
    target = predict(sess, model, X[:1]).argmax()
    np.testing.assert_allclose(curve[0, 4 * C - 1], p[target], rtol=1e-5)


# ------------------------------------------------------------------ Region Perturbation

def region_perturbation_loop(sess, model, X, a, size, regions, order="morf"):
    """Quantus' RegionPerturbation.evaluate_batch on channel-first arrays: its padding,
    skimage's view_as_blocks, its baseline (the padded array's minimum)."""
    from skimage.util import view_as_blocks
    x = X.transpose(0, 3, 1, 2).astype(np.float64)
    a = np.broadcast_to(a[:, None] if a.ndim == 3 else a.transpose(0, 3, 1, 2), x.shape)
    a = a / np.abs(a).max()
    n = len(x)
    y = predict(sess, model, X).argmax(1)
    y_pred = predict(sess, model, X)[np.arange(n), y]

    def padding(d):
        total = (size - d % size) % size
        return (total // 2, total - total // 2)

    pad = ((0, 0), (0, 0), padding(x.shape[2]), padding(x.shape[3]))
    a_pad = np.pad(a, pad, mode="constant")
    idx = np.stack([np.arange(e.size) for e in a_pad]).reshape(a_pad.shape)
    blocks = view_as_blocks(idx, (n, x.shape[1], size, size))
    patches = [blocks[0, 0, i, j].reshape(n, -1) for i in range(blocks.shape[2])
               for j in range(blocks.shape[3])]
    sums = np.stack([a_pad.reshape(n, -1)[np.arange(n)[:, None], p].sum(-1) for p in patches],
                    -1)
    ranked = np.argsort(-sums if order == "morf" else sums, -1, kind="stable")
    x_pad = np.pad(x, pad, mode="edge")
    out = []
    for k in range(min(regions, len(patches))):
        ix = np.stack([patches[ranked[i, k]][i] for i in range(n)])
        flat = x_pad.reshape(n, -1)
        flat[np.arange(n)[:, None], ix] = flat.min(1)[:, None]
        x_pad = flat.reshape(x_pad.shape)
        crop = x_pad[:, :, pad[2][0]:x_pad.shape[2] - pad[2][1],
                     pad[3][0]:x_pad.shape[3] - pad[3][1]]
        out.append(y_pred - predict(sess, model, crop.transpose(0, 2, 3, 1))[np.arange(n), y])
    return np.stack(out, 1)


@pytest.mark.parametrize("kind, size, regions, order", [("pixel", 4, 100, "morf"),
                                                        ("full", 3, 3, "lerf"),
                                                        ("pixel", 2, 7, "morf")])
def test_region_perturbation_equals_quantus_loop(net, kind, size, regions, order):
    """Sizes that do not divide 6 x 7 (Quantus pads) and one that divides neither."""
    sess, model, X, pixel, full = net
    a = pixel if kind == "pixel" else full
    got = call(F.RegionPerturbation, net, a, patch_size=size, regions_evaluation=regions,
               order=order)
    want = region_perturbation_loop(sess, model, X, a, size, regions, order)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_region_labels_centre_quantus_grid():
    np.testing.assert_array_equal(F.region_labels(5, 5, 4),
                                  [[0, 0, 0, 1, 1]] * 3 + [[2, 2, 2, 3, 3]] * 2)
    assert F.region_labels(6, 7, 2).max() + 1 == 3 * 4


def test_region_perturbation_random_order_is_seeded(net):
    a = net[3]
    one = call(F.RegionPerturbation, net, a, patch_size=2, order="random", seed=5)
    two = call(F.RegionPerturbation, net, a, patch_size=2, order="random", seed=5)
    other = call(F.RegionPerturbation, net, a, patch_size=2, order="random", seed=6)
    np.testing.assert_array_equal(one, two)
    assert not np.array_equal(one, other)


# ------------------------------------------------------------------ correlations

def test_faithfulness_correlation_equals_its_loop(net):
    sess, model, X, pixel, _ = net
    got = call(F.FaithfulnessCorrelation, net, pixel, nr_runs=20, subset_size=10, seed=3)
    a = features(pixel, X)
    z = predict(sess, model, X, probs=False)
    y = z.argmax(1)
    want = []
    for i in range(len(X)):
        rng = np.random.default_rng(3)
        deltas, sums = [], []
        for _ in range(20):
            ix = rng.choice(H * W * C, 10, replace=False)
            x = X[i].astype(np.float64).ravel().copy()
            x[ix] = X[i].min()
            deltas.append(z[i, y[i]] - predict(sess, model, x.reshape(1, H, W, C), False)[0, y[i]])
            sums.append(a[i, ix].sum())
        want.append(scipy.stats.pearsonr(sums, deltas)[0])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_faithfulness_correlation_of_the_exact_contributions_is_one():
    """On an additive model f_0 = Σ w·x, replacing a subset S by the fill b lowers f_0 by
    Σ_S w (x - b): the map w (x - b) correlates perfectly with the drops, -w (x - b) gives
    -1, whatever the subsets."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(H, W, C))
    X = rng.uniform(0, 255, (2, H, W, C)).astype(np.float32)
    sess = new_session()
    with sess.graph.as_default():
        model = additive_image(w)
        exact = w[None] * (X - X.reshape(2, -1).min(1)[:, None, None, None])
        for sign in (1, -1):
            got = F.FaithfulnessCorrelation(sess, sign * exact, X, model.imgs, model.logits, 0,
                                            nr_runs=30, subset_size=20, seed=0,
                                            progress=False)
            np.testing.assert_allclose(got, [sign, sign], atol=1e-5)
        zero_fill = F.FaithfulnessCorrelation(sess, w[None] * X, X, model.imgs, model.logits,
                                              0, nr_runs=30, subset_size=20, seed=0,
                                              perturb_baseline=0.0, progress=False)
        np.testing.assert_allclose(zero_fill, [1, 1], atol=1e-5)


@pytest.mark.parametrize("baseline", ["uniform", "black"])
def test_monotonicity_correlation_equals_its_loop(net, baseline):
    sess, model, X, _, full = net
    samples, step = 3, 9
    got = call(F.MonotonicityCorrelation, net, full, nr_samples=samples,
               features_in_step=step, perturb_baseline=baseline, seed=11)
    a = features(full, X, abs=True)
    p = predict(sess, model, X)
    y = p.argmax(1)
    want = []
    for i in range(len(X)):
        order = np.argsort(a[i], kind="stable")
        steps = math.ceil(a.shape[1] / step)
        fills = np.random.default_rng(11).uniform(0, 1, steps * samples)
        inv = 1 / p[i, y[i]] ** 2
        atts, variances = [], []
        for j in range(steps):
            ix = order[j * step:(j + 1) * step]
            preds = []
            for s in range(samples):
                x = X[i].astype(np.float64).ravel().copy()
                x[ix] = fills[j * samples + s] if baseline == "uniform" else X[i].min()
                preds.append(predict(sess, model, x.reshape(1, H, W, C))[0, y[i]])
            variances.append(np.mean((np.array(preds) - p[i, y[i]]) ** 2) * inv)
            atts.append(a[i, ix].sum())
        want.append(scipy.stats.spearmanr(atts, variances)[0])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


def test_a_constant_side_is_nan_with_a_warning():
    rng = np.random.default_rng(2)
    X = rng.uniform(0, 255, (2, H, W, C)).astype(np.float32)
    sess = new_session()
    with sess.graph.as_default():
        model = additive_image(np.zeros((H, W, C)))            # f_0 = 0: no drop varies
        with pytest.warns(RuntimeWarning, match=r"image\(s\) \[0, 1\]"):
            got = F.FaithfulnessCorrelation(sess, rng.normal(size=(2, H, W)), X, model.imgs,
                                            model.logits, 0, nr_runs=5, subset_size=4,
                                            seed=0, progress=False)
    assert np.isnan(got).all()


# ------------------------------------------------------------------ engine properties

SEEDED = [(F.PixelFlipping, dict(features_in_step=14)),
          (F.RegionPerturbation, dict(patch_size=3)),
          (F.FaithfulnessCorrelation, dict(nr_runs=8, subset_size=12, seed=4)),
          (F.MonotonicityCorrelation, dict(nr_samples=2, features_in_step=21, seed=4))]


@pytest.mark.parametrize("metric, kw", SEEDED, ids=lambda v: getattr(v, "__name__", ""))
def test_batch_equals_one_by_one_and_repeats(net, metric, kw):
    sess, model, X, pixel, _ = net
    batch = call(metric, net, pixel, **kw)
    with sess.graph.as_default():
        before = n_ops(sess)
        again = call(metric, net, pixel, **kw)
        for i in range(len(X)):
            one = metric(sess, pixel[i], X[i], model.imgs, model.logits, None,
                         progress=False, **kw)
            np.testing.assert_allclose(one, batch[i], rtol=1e-5, atol=1e-7)
        assert n_ops(sess) == before                         # calls add no op
    np.testing.assert_array_equal(batch, again)


@pytest.mark.parametrize("metric, kw, rows", [
    (F.PixelFlipping, dict(features_in_step=14), 9),
    (F.RegionPerturbation, dict(patch_size=3, regions_evaluation=4), 4),
    (F.FaithfulnessCorrelation, dict(nr_runs=5, subset_size=3, seed=0), 5),
    (F.MonotonicityCorrelation, dict(nr_samples=2, features_in_step=42, seed=0), 6)],
    ids=lambda v: getattr(v, "__name__", ""))
def test_session_calls(net, metric, kw, rows):
    """One sess.run per batch_size rows, plus one for the targets (and the scores)."""
    sess, model, X, pixel, _ = net
    counting = CountingSession(sess)
    with sess.graph.as_default():
        metric(counting, pixel, X, model.imgs, model.logits, None, batch_size=4,
               progress=False, **kw)
    assert counting.calls == math.ceil(3 * rows / 4) + 1
    assert max(counting.rows) <= 4


def test_bad_input_names_the_argument(net):
    sess, model, X, pixel, _ = net
    names = "'black', 'white'"
    for bad in ("mean", "uniform", "zero", None, float("nan")):
        with raises_exactly(ValueError, F.BASELINE_ERROR.format(names=names, actual=bad)):
            call(F.PixelFlipping, net, pixel, perturb_baseline=bad)
    with raises_exactly(ValueError, F.STEP_ERROR.format(
            arg="features_in_step", limit=H * W * C, what="features per image, H·W·C",
            actual=0)):
        call(F.PixelFlipping, net, pixel, features_in_step=0)
    with raises_exactly(ValueError, F.STEP_ERROR.format(
            arg="subset_size", limit=H * W * C - 1,
            what="fewer than the features per image, H·W·C", actual=H * W * C)):
        call(F.FaithfulnessCorrelation, net, pixel, subset_size=H * W * C)
    with raises_exactly(ValueError, F.STEP_ERROR.format(
            arg="patch_size", limit=H, what="the image's height and width", actual=7)):
        call(F.RegionPerturbation, net, pixel, patch_size=7)
    with raises_exactly(ValueError, F.ORDER_ERROR.format(actual="most")):
        call(F.RegionPerturbation, net, pixel, order="most")
    with raises_exactly(ValueError, F.EPS_ERROR.format(actual=-1.0)):
        call(F.MonotonicityCorrelation, net, pixel, eps=-1.0)
    with pytest.raises(ValueError, match=r"^attr_map: expected an attribution map"):
        call(F.PixelFlipping, net, pixel[:, :5])
    with pytest.raises(TypeError, match=r"^nr_runs: "):
        call(F.FaithfulnessCorrelation, net, pixel, nr_runs=2.5)
    with pytest.raises(TypeError, match=r"^return_auc: "):
        call(F.PixelFlipping, net, pixel, return_auc="yes")


def test_feed_mode_gives_the_same_values(net, sess, monkeypatch):
    """With the model not copied (CLONE_MODEL False: the rows are fetched, then fed to the
    model's own input), every metric gives what the copied model gives."""
    import hw3_attribution
    _, _, X, pixel, full = net
    cases = [(metric, kw, a) for metric, kw in SEEDED for a in (pixel, full)]
    copied = [call(metric, net, a, **kw) for metric, kw, a in cases]   # (clone mode)
    monkeypatch.setattr(hw3_attribution, "CLONE_MODEL", False)
    model = tiny_convnet(size=H, width=W, classes=5, seed=3)
    logits = 0.3 * model.logits
    for (metric, kw, a), want in zip(cases, copied):
        fed = metric(sess, a, X, model.imgs, logits, None, progress=False, **kw)
        np.testing.assert_allclose(fed, want, rtol=1e-5, atol=1e-7)
    assert hw3_attribution.row_ops(model.imgs, logits).mode == "feed"
