"""Tests of hw3_evaluation, the homework's API (the starter's functions):

    AverageDrop(sess, attr_map, input, input_tensor, output_tensor, target_class)
    N_Ord(sess, attr_map, input, input_tensor, output_tensor, target_class, M=1000)
    Insertion / Deletion(sess, attr_map, input, input_tensor, output_tensor, target_class)

Most answers are known by hand on the additive image model ``f_0 = Σ w ⊙ x``, ``f_1 =
const`` (tests/models.additive_image), where removing a set of pixels lowers ``f_0`` by
exactly the sum of ``w ⊙ x`` over the set; the masked copies built in the graph are also
checked against a plain numpy loop on a random conv net, in both row modes.
"""
import csv
import inspect
import math
import re
import time
import warnings

import numpy as np
import pytest
import tensorflow as tf
from scipy.ndimage import gaussian_filter

import hw3_attribution
import models
from helpers import CountingSession, n_ops, prefix
from hw3_attribution import (GRAPH_ERROR, INPUT_EMPTY_ERROR, INPUT_FINITE_ERROR,
                             INPUT_SHAPE_ERROR, MODEL_OBJECT_ERROR, POSITIVE_INT_ERROR,
                             SESSION_ERROR, TARGET_LENGTH_ERROR, TARGET_RANGE_ERROR)
from hw3_evaluation import (ALL_EXCLUDED_ERROR, ATTR_SHAPE_ERROR, ATTR_ZERO_ERROR,
                            BASELINE_ERROR, CURVE_ERROR, IMAGE_INPUT_ERROR,
                            IMPORTANCE_SHAPE_ERROR, SUPERPIXEL_ERROR, TABLE_INPUT_ERROR,
                            AverageDrop, AverageDropResult, Deletion, Insertion, MetricTable,
                            N_Ord, auc, metric_table, num_feats, per_image, write_text)

METRICS = (AverageDrop, N_Ord, Insertion, Deletion)


def f0(w, X):
    """The additive model's class-0 logit, in numpy: Σ w ⊙ x per image."""
    return np.einsum("hwc,nhwc->n", w, np.asarray(X, np.float64))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def call(metric, model, sess, A, X, c=None, **kwargs):
    """``metric`` in the homework's positional form, on a contract model's tensors."""
    return metric(sess, A, X, model.imgs, model.logits, c, **kwargs)


def pixel_sign_attr(signs):
    """A full attribution [N, H, W, 3] whose channel mean has the given per-pixel signs,
    though single channels disagree: (3, -1, -1) has mean +1/3, (1, 1, -3) has -1/3."""
    signs = np.asarray(signs)
    pos, neg = np.array([3.0, -1.0, -1.0]), np.array([1.0, 1.0, -3.0])
    return np.where(signs[..., None] > 0, pos, neg)


def two_images():
    """f_0 = 120 on a flat 10 image and 30 on the ramp 1, 2, 3, 4 (w = 1)."""
    return np.stack([np.full((2, 2, 3), 10.0),
                     np.repeat(np.array([[1.0, 2.0], [3.0, 4.0]])[..., None], 3, -1)])


# ------------------------------------------------------------------ the homework's API

def test_signatures_are_the_homeworks():
    names = ["sess", "attr_map", "input", "input_tensor", "output_tensor", "target_class"]
    for metric, extra in ((AverageDrop, []), (N_Ord, ["M"]), (Insertion, []),
                          (Deletion, [])):
        ps = list(inspect.signature(metric).parameters.values())
        head = ps[:len(names) + len(extra)]
        assert [p.name for p in head] == names + extra, metric
        assert all(p.kind == p.POSITIONAL_OR_KEYWORD for p in head), metric
        # no default in the homework; DESIGN's extension target_class=None at most
        assert all(p.default is p.empty for p in head[:5]), metric
        assert head[5].default in (head[5].empty, None), metric
        assert all(p.kind == p.KEYWORD_ONLY for p in ps[len(head):]), metric
    # M: None is the homework's 1000 at 224 x 224, scaled with the image's area (issue 20)
    assert inspect.signature(N_Ord).parameters["M"].default is None
    for metric in (AverageDrop, N_Ord):
        params = inspect.signature(metric).parameters
        assert params["batch_size"].default == 16 and params["return_details"].default is False


# ---------------------------------------------------------------------- Average Drop %

def test_average_drop_hand_computed_half_negative(sess):
    model = models.additive_image(np.ones((2, 2, 3), np.float32))
    X = two_images()
    A = pixel_sign_attr([[[1, 1], [-1, -1]],                  # keeps 60 of 120: drop 50 %
                         [[-1, -1], [-1, 1]]])                 # keeps 12 of 30: drop 60 %
    # the homework's call: positional, the class given
    assert AverageDrop(sess, A, X, model.imgs, model.logits, 0) == pytest.approx(55.0)
    res = call(AverageDrop, model, sess, A, X, return_details=True)
    assert isinstance(res, AverageDropResult) and float(res) == res.mean
    np.testing.assert_allclose(res.per_image, [50.0, 60.0], rtol=1e-6)
    assert res.mean == pytest.approx(55.0)
    assert res.increase == 0.0 and res.n_excluded == 0 and res.excluded == []
    np.testing.assert_array_equal(res.targets, [0, 0])
    np.testing.assert_allclose(res.scores, [120.0, 30.0], rtol=1e-6)
    np.testing.assert_allclose(res.masked_scores, [60.0, 12.0], rtol=1e-6)
    np.testing.assert_allclose(res.kept, [0.5, 0.25])
    # the pixel map [N, H, W] gives the same as the full attribution
    assert call(AverageDrop, model, sess, A.mean(axis=-1), X) == pytest.approx(55.0)
    # one image [H, W, C] with its map [H, W]
    assert call(AverageDrop, model, sess, A[1].mean(-1), X[1]) == pytest.approx(60.0)


def test_average_drop_per_image_targets(sess):
    # f_1 = 50 everywhere: image 0 (f_0 = 120) and image 1 (f_0 = 30) scored for class 1
    # lose nothing under any mask; for class 0 as above
    model = models.additive_image(np.ones((2, 2, 3), np.float32), second_logit=50.0)
    X = two_images()
    A = pixel_sign_attr([[[1, 1], [-1, -1]], [[-1, -1], [-1, 1]]])
    res = call(AverageDrop, model, sess, A, X, [0, 1], return_details=True)
    np.testing.assert_allclose(res.per_image, [50.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(res.scores, [120.0, 50.0], rtol=1e-6)
    np.testing.assert_array_equal(res.targets, [0, 1])
    # the predicted class: 0 for image 0 (120 > 50), 1 for image 1 (30 < 50)
    pred = call(AverageDrop, model, sess, A, X, return_details=True)
    np.testing.assert_array_equal(pred.targets, [0, 1])
    assert pred.mean == pytest.approx(25.0)


def test_average_drop_is_zero_when_every_pixel_is_kept(sess):
    rng = np.random.RandomState(0)
    model = models.additive_image(rng.uniform(0.1, 1, (4, 4, 3)))
    X = rng.uniform(0, 255, (3, 4, 4, 3))
    A = rng.uniform(0.01, 1, (3, 4, 4, 3))
    res = call(AverageDrop, model, sess, A, X, return_details=True)
    assert res.mean == 0.0 and res.increase == 0.0
    np.testing.assert_array_equal(res.per_image, 0.0)
    np.testing.assert_array_equal(res.kept, 1.0)


def test_average_drop_hand_computed_random(sess):
    rng = np.random.RandomState(15)
    w = rng.uniform(-0.2, 1, (5, 5, 3))
    model = models.additive_image(w, second_logit=-1e6)       # class 0 always
    X = rng.uniform(0, 255, (4, 5, 5, 3))
    A = rng.normal(size=(4, 5, 5))
    keep = (A > 0)[..., None]
    s, sm = f0(w, X), f0(w, X * keep)            # the masked score: w x over kept pixels
    assert np.all(s > 0)
    drop = 100 * np.maximum(s - sm, 0) / s
    res = call(AverageDrop, model, sess, A, X, batch_size=3, return_details=True)
    np.testing.assert_allclose(res.masked_scores, sm, rtol=1e-5)
    np.testing.assert_allclose(res.per_image, drop, rtol=1e-5, atol=1e-4)
    assert res.mean == pytest.approx(drop.mean(), rel=1e-5)
    assert res.increase == pytest.approx(100 * np.mean(sm > s))


def test_zero_attribution_is_not_positive(sess):
    model = models.additive_image(np.ones((2, 2, 3)))
    x = np.full((2, 2, 3), 10.0)
    a = np.array([[[1.0, 1.0, 1.0], [1.0, -1.0, 0.0]],       # channel means 1 and 0
                  [[0.0, 0.0, 0.0], [2.0, -2.0, 0.0]]])      # 0 and 0
    assert call(AverageDrop, model, sess, a, x) == pytest.approx(75.0)  # keeps 1 pixel of 4
    out = call(N_Ord, model, sess, a, x, M=1, return_details=True)
    assert out["steps"][0] == 1 and out["positives"][0] == 1  # only that pixel is removed
    np.testing.assert_allclose(out["curves"][0], [90.0])
    assert out["scores"][0] == pytest.approx(90.0 / 2)


def test_average_increase_counts_images_whose_score_rises(sess):
    w = np.ones((2, 2, 3), np.float32)
    w[0, 1] = -1.0                       # f_0 = 10·3·(1 - 1 + 1 + 1) = 60 on a flat 10 image
    model = models.additive_image(w)
    X = np.full((2, 2, 2, 3), 10.0)
    A = pixel_sign_attr([[[1, -1], [1, 1]],                   # drops the negative pixel: 90
                         [[1, 1], [-1, 1]]])                   # drops a positive one: 30
    res = call(AverageDrop, model, sess, A, X, return_details=True)
    np.testing.assert_allclose(res.masked_scores, [90.0, 30.0])
    np.testing.assert_allclose(res.per_image, [0.0, 50.0])
    assert res.increase == pytest.approx(50.0)
    assert res.mean == pytest.approx(25.0)


def test_average_drop_excludes_images_with_non_positive_score(sess):
    model = models.additive_image(np.ones((2, 2, 3)), second_logit=-1.0)
    # image 0 is black: f_0 = 0 > f_1 = -1, so c = 0 and f_c(x) = 0: the ratio is undefined
    X = np.stack([np.zeros((2, 2, 3)), np.full((2, 2, 3), 10.0)])
    A = pixel_sign_attr([[[1, 1], [-1, -1]]] * 2)
    with pytest.warns(RuntimeWarning, match=r"undefined for image\(s\) \[0\]"):
        res = call(AverageDrop, model, sess, A, X, return_details=True)
    assert res.n_excluded == 1 and res.excluded == [0]
    assert np.isnan(res.per_image[0]) and res.per_image[1] == pytest.approx(50.0)
    assert res.mean == pytest.approx(50.0)
    with pytest.warns(RuntimeWarning):
        assert call(AverageDrop, model, sess, A, X) == pytest.approx(50.0)


def test_average_drop_negative_score_excluded_and_all_excluded_raises(sess):
    # w = -1: f_0 = -Σx < 0 but above f_1 = -1000, so c = 0 with a negative score
    model = models.additive_image(-np.ones((2, 2, 3)), second_logit=-1000.0)
    X = np.full((2, 2, 2, 3), 10.0)
    A = pixel_sign_attr([[[1, 1], [-1, -1]]] * 2)
    with pytest.raises(ValueError, match=re.escape(ALL_EXCLUDED_ERROR.format(n=2))):
        call(AverageDrop, model, sess, A, X)
    # one negative image among positive ones is excluded, not averaged in
    model = models.additive_image(np.ones((2, 2, 3)), second_logit=-1000.0)
    X = np.stack([np.full((2, 2, 3), 10.0), np.full((2, 2, 3), -10.0)])
    with pytest.warns(RuntimeWarning, match=r"\[1\]"):
        res = call(AverageDrop, model, sess, A, X, return_details=True)
    assert res.excluded == [1] and res.mean == pytest.approx(50.0)


# ------------------------------------------------------------------ Necessity Ordering

def n_ord_loop(w, x, a_pix, second=0.0):
    """The homework's Definition 6 pixel by pixel, in numpy; also returns g(i)."""
    logits = lambda img: np.array([f0(w, img[None])[0], second])  # noqa: E731
    c = int(np.argmax(logits(x)))
    blank = logits(np.zeros_like(x))[c]
    flat = a_pix.ravel()
    order = [p for p in np.argsort(-flat, kind="stable") if flat[p] > 0]
    g, img = [], x.copy()
    for p in order:
        img[np.unravel_index(p, a_pix.shape)] = 0
        g.append(max(logits(img)[c] - blank, 0.0))
    return sum(g) / (len(order) + 1), np.array(g)


def test_n_ord_m1_matches_pixel_by_pixel_loop(sess):
    rng = np.random.RandomState(2)
    w = rng.normal(0.6, 1.0, (3, 3, 3))
    model = models.additive_image(w)
    X = rng.uniform(0, 255, (2, 3, 3, 3))
    A = rng.normal(size=(2, 3, 3, 3))
    scores = call(N_Ord, model, sess, A, X, M=1)
    expected = [n_ord_loop(w, x, a.mean(-1))[0] for x, a in zip(X, A)]
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert np.all(np.asarray(expected) > 0)  # a case where the terms are not all clipped
    # the homework's call, one image: positional, M positional too
    one = N_Ord(sess, A[0], X[0], model.imgs, model.logits, 0, 1)
    assert isinstance(one, float) and one == pytest.approx(expected[0], rel=1e-5)


@pytest.mark.parametrize("M", [2, 3, 4, 100])
def test_n_ord_larger_m_weights_each_step_by_the_pixels_it_removes(sess, M):
    rng = np.random.RandomState(3)
    w = rng.normal(0.3, 1.0, (3, 3, 3))
    model = models.additive_image(w)
    x, a = rng.uniform(0, 255, (3, 3, 3)), rng.normal(size=(3, 3))
    _, g = n_ord_loop(w, x, a)
    P = len(g)
    removed = np.minimum(np.arange(1, -(-P // M) + 1) * M, P)
    out = call(N_Ord, model, sess, a, x, M=M, return_details=True)
    np.testing.assert_array_equal(out["removed"][0], removed)
    assert out["steps"][0] == len(removed) and out["positives"][0] == P
    # DESIGN: step k stands for the r_k - r_{k-1} terms it replaces, over P + 1
    expected = (np.diff(removed, prepend=0) * g[removed - 1]).sum() / (P + 1)
    score = call(N_Ord, model, sess, a, x, M=M)                # one unbatched image -> a float
    assert isinstance(score, float)
    assert score == pytest.approx(expected, rel=1e-5)


def test_n_ord_weighted_steps_approximate_m1_closed_form(sess):
    """Issue 11: with M > 1 each step is weighted by the pixels it removes.

    On the additive model with w, x > 0 removing the first i pixels of π_A leaves
    g(i) = f_0(x) - Σ_{j<=i} c_{π_j} - f_0(0) = S - cumsum(c_π)[i] >= 0 (c_p = Σ w x at p),
    so every score has a closed form. The weighted M = 5 score is close to the M = 1 one;
    the old unweighted sum over steps (over steps + 1, or over P + 1) is not.
    """
    rng = np.random.RandomState(21)
    w = rng.uniform(0.5, 1.5, (6, 6, 3))
    x = rng.uniform(50, 255, (6, 6, 3))
    a = rng.normal(size=(6, 6))
    model = models.additive_image(w)
    contrib = (w * x).sum(-1).ravel()                          # c_p
    S = contrib.sum()                                          # f_0(x); f_0(0) = 0
    flat = a.ravel()
    pi = np.argsort(-flat)[:(flat > 0).sum()]                  # π_A
    P = len(pi)
    assert P == 21                                             # M = 5 does not divide P
    g = S - np.cumsum(contrib[pi])                             # g(1..P) >= 0
    m1 = g.sum() / (P + 1)
    r = np.array([5, 10, 15, 20, 21])
    weighted = (np.diff(r, prepend=0) * g[r - 1]).sum() / (P + 1)
    assert (np.diff(r, prepend=0) == [5, 5, 5, 5, 1]).all()
    got1 = call(N_Ord, model, sess, a, x, 0, M=1)
    got5 = call(N_Ord, model, sess, a, x, 0, M=5, return_details=True)
    assert got1 == pytest.approx(m1, rel=1e-5)
    assert got5["scores"][0] == pytest.approx(weighted, rel=1e-5)
    np.testing.assert_array_equal(got5["removed"][0], r)
    np.testing.assert_allclose(got5["curves"][0], g[r - 1], rtol=1e-5)   # f_c(R(r_k))
    assert got5["blank_scores"][0] == 0.0
    # the old, unweighted score from the same curve
    terms = np.maximum(got5["curves"][0] - got5["blank_scores"][0], 0)
    old_steps = terms.sum() / (len(r) + 1)
    old_p = terms.sum() / (P + 1)
    err = abs(got5["scores"][0] - got1)
    assert err < abs(old_steps - got1) and err < abs(old_p - got1)
    assert err < 0.1 * got1                                   # close, as a Riemann sum
    # M = 1000 > P (the homework's default at 224; this small image's default is scaled
    # down): one step removes all P pixels and stands for P terms
    x_all = x * (a > 0)[..., None] + 1.0 * (a <= 0)[..., None]  # something left: f > 0
    left = (w * x_all).sum(-1).ravel()[flat <= 0].sum()
    got = N_Ord(sess, a, x_all, model.imgs, model.logits, 0, 1000)
    assert got == pytest.approx(P * left / (P + 1), rel=1e-5)


def test_n_ord_no_positive_pixel_is_nan_with_warning(sess):
    model = models.additive_image(np.ones((2, 2, 3)))
    X = np.full((2, 2, 2, 3), 10.0)
    A = np.stack([-np.ones((2, 2)), np.ones((2, 2))])
    with pytest.warns(RuntimeWarning, match=r"undefined for image\(s\) \[0\]"):
        scores = call(N_Ord, model, sess, A, X, M=1)
    assert np.isnan(scores[0]) and np.isfinite(scores[1])


# ------------------------------------------------------------------ Insertion / Deletion

def ablation_setup(seed=5, size=8):
    """Small weights keep softmax(f_0, 0) = sigmoid(f_0) away from 0 and 1."""
    rng = np.random.RandomState(seed)
    w = rng.normal(0.0, 1.0, (size, size, 3)) / 2000.0
    x = rng.uniform(0, 255, (size, size, 3))
    return w, x


@pytest.mark.parametrize("second", [0.0, 0.25])
def test_insertion_and_deletion_curves_by_hand(sess, second):
    # two logits (f_0, second): p_0 = sigmoid(f_0 - second), p_1 = 1 - p_0
    w, x = ablation_setup()
    model = models.additive_image(w, second_logit=second)
    imp = np.random.RandomState(0).normal(size=(4, 4))       # s = 2: 16 superpixels
    contrib = (w * x).reshape(4, 2, 4, 2, 3).sum(axis=(1, 3, 4)).ravel()
    order = np.argsort(-imp.ravel(), kind="stable")
    inserted = np.concatenate([[0.0], np.cumsum(contrib[order])])   # f_0 after j inserted
    curve, xs = Insertion(sess, imp, x, model.imgs, model.logits, 0, superpixel_size=2)
    np.testing.assert_array_equal(xs, np.arange(17))
    np.testing.assert_allclose(curve, sigmoid(inserted - second), rtol=1e-5)
    full = f0(w, x[None])[0]
    assert curve[-1] == pytest.approx(sigmoid(full - second), rel=1e-5)  # the full image
    assert curve[0] == pytest.approx(sigmoid(-second))       # the black baseline: f_0 = 0
    # Deletion of class 1: f_0 after j deleted is the full score minus what was deleted
    curve, xs = call(Deletion, model, sess, imp, x, 1, superpixel_size=2)
    np.testing.assert_array_equal(xs, np.arange(17))
    np.testing.assert_allclose(curve, sigmoid(second - (full - inserted)), rtol=1e-5)
    assert auc(curve, xs) == pytest.approx(
        np.trapezoid(sigmoid(second - (full - inserted)), xs) / 16, rel=1e-5)
    # ties are taken in raster order: a constant importance inserts row by row
    curve, _ = call(Insertion, model, sess, np.ones((4, 4)), x, 0, superpixel_size=2)
    np.testing.assert_allclose(curve, sigmoid(np.concatenate([[0.0], np.cumsum(contrib)])
                                              - second), rtol=1e-5)


@pytest.mark.parametrize("baseline", ["black", "blur", "array", 100.0])
def test_curves_start_at_zero_and_end_at_all(sess, baseline):
    w, x = ablation_setup(6)
    model = models.additive_image(w)
    imp = np.random.RandomState(1).normal(size=(1, 8, 8))    # a pixel map
    b = np.random.RandomState(2).uniform(0, 255, x.shape) if baseline == "array" else baseline
    base = {"black": np.zeros_like(x), "blur": gaussian_filter(x, (3.0, 3.0, 0)),
            "array": b, 100.0: np.full_like(x, 100.0)}[baseline]
    c = int(f0(w, x[None])[0] < 0)                             # None: the prediction
    p_x, p_b = (sigmoid((1 - 2 * c) * f0(w, img[None])[0]) for img in (x, base))
    kw = dict(superpixel_size=4, baseline=b, blur_sigma=3.0)
    ci, xi = call(Insertion, model, sess, imp, x[None], **kw)
    cd, xd = call(Deletion, model, sess, imp, x[None], **kw)
    assert ci.shape == cd.shape == (1, 5)
    for xs in (xi, xd):
        np.testing.assert_array_equal(xs, [0, 1, 2, 3, 4])
    assert ci[0, 0] == pytest.approx(p_b, rel=1e-5) and ci[0, -1] == pytest.approx(p_x, rel=1e-5)
    assert cd[0, 0] == pytest.approx(p_x, rel=1e-5) and cd[0, -1] == pytest.approx(p_b, rel=1e-5)
    if baseline == "blur":
        assert not np.allclose(base, x) and np.ptp(base) < np.ptp(x)


def test_pixel_map_is_summed_per_superpixel(sess):
    w, x = ablation_setup(7)
    model = models.additive_image(w)
    pix = np.random.RandomState(3).normal(size=(8, 8))
    grid = pix.reshape(4, 2, 4, 2).sum(axis=(1, 3))
    ins = lambda imp: call(Insertion, model, sess, imp, x, superpixel_size=2)[0]  # noqa
    np.testing.assert_allclose(ins(pix), ins(grid))
    full = np.repeat(pix[..., None], 3, -1)                  # an attribution [H, W, 3]
    np.testing.assert_allclose(ins(full), ins(grid))


def test_step_subsamples_the_curve(sess):
    w, x = ablation_setup(8)
    model = models.additive_image(w)
    imp = np.random.RandomState(4).normal(size=(4, 4))
    full, _ = call(Deletion, model, sess, imp, x, superpixel_size=2)
    part, xs = call(Deletion, model, sess, imp, x, superpixel_size=2, step=5)
    np.testing.assert_array_equal(xs, [0, 5, 10, 15, 16])
    np.testing.assert_array_equal(xs, num_feats(16, 5))
    np.testing.assert_array_equal(num_feats(16), np.arange(17))
    np.testing.assert_array_equal(num_feats(3, 3), [0, 3])
    np.testing.assert_allclose(part, full[xs])


def test_ideal_attribution_beats_random_and_reversed(sess):
    w, x = ablation_setup(9)
    model = models.additive_image(w)
    assert f0(w, x[None])[0] > 0                              # class 0 is the prediction
    ideal = w * x                                              # each pixel's contribution
    rng = np.random.RandomState(10)
    attrs = {"ideal": ideal, "random": rng.normal(size=ideal.shape), "reversed": -ideal}
    n_ord = {k: call(N_Ord, model, sess, a, x, M=4) for k, a in attrs.items()}
    ins = {k: auc(*call(Insertion, model, sess, a, x, 0, superpixel_size=2))
           for k, a in attrs.items()}
    dele = {k: auc(*call(Deletion, model, sess, a, x, 0, superpixel_size=2))
            for k, a in attrs.items()}
    assert n_ord["ideal"] < n_ord["random"] < n_ord["reversed"]
    assert dele["ideal"] < dele["random"] < dele["reversed"]
    assert ins["ideal"] > ins["random"] > ins["reversed"]


def test_batched_curves_equal_one_image_calls(sess):
    w, x = ablation_setup(11)
    model = models.additive_image(w)
    X = np.stack([x, x[::-1]])
    imp = np.random.RandomState(5).normal(size=(2, 4, 4))
    for metric in (Insertion, Deletion):
        curves, xs = call(metric, model, sess, imp, X, [0, 1], superpixel_size=2,
                          batch_size=7)
        assert curves.shape == (2, 17) and xs.shape == (17,)
        for i in range(2):
            np.testing.assert_allclose(
                curves[i], call(metric, model, sess, imp[i], X[i], i, superpixel_size=2)[0],
                rtol=1e-6)


def test_auc_trapezoid_normalised():
    assert auc([0.3, 0.3, 0.3], [0, 1, 2]) == pytest.approx(0.3)
    assert auc([0.0, 1.0], [0, 10]) == pytest.approx(0.5)
    assert auc([0.0, 1.0, 1.0], [0, 1, 3]) == pytest.approx((0.5 + 2.0) / 3)
    assert auc([1.0, 0.0, 0.0, 0.0], [0, 1, 2, 4]) == pytest.approx(0.5 / 4)
    assert isinstance(auc([0.0, 1.0], [0, 1]), float)
    np.testing.assert_allclose(auc(np.array([[1.0, 1.0], [0.0, 0.5]]), [0, 1]), [1.0, 0.25])
    with pytest.raises(ValueError, match="num_feats: expected increasing"):
        auc([1.0, 2.0], [1, 1])
    with pytest.raises(ValueError, match="curve, num_feats"):
        auc([1.0, 2.0, 3.0], [0, 1])
    with pytest.raises(ValueError, match=re.escape(CURVE_ERROR.format(
            arg="curve, num_feats", expected="a curve [..., T] and x positions [T], T >= 2",
            actual="shapes [1] and [1]"))):
        auc([1.0], [0])


# ------------------------------------------------- in the graph vs a plain numpy loop

def numpy_metrics(sess, model, X, A, M, s):
    """Every metric by a loop that builds each masked copy in numpy and runs the model on
    it alone (predicted classes, black baseline)."""
    def logits(img):
        return sess.run(model.logits, {model.imgs: img[None]})[0].astype(np.float64)

    def prob(img, c):
        z = logits(img)
        e = np.exp(z - z.max())
        return e[c] / e.sum()

    drops, n_ord, ins, dele = [], [], [], []
    for x, a in zip(X, A):
        pix = a.mean(-1)
        c = int(np.argmax(logits(x)))
        fx = logits(x)[c]
        drops.append(100 * max(fx - logits(x * (pix > 0)[..., None])[c], 0) / fx)
        flat = pix.ravel()
        order = [p for p in np.argsort(-flat, kind="stable") if flat[p] > 0]
        blank = logits(np.zeros_like(x))[c]
        total, prev = 0.0, 0
        for r in list(range(M, len(order), M)) + [len(order)]:
            img = x.copy().reshape(-1, x.shape[-1])
            img[order[:r]] = 0
            total += (r - prev) * max(logits(img.reshape(x.shape))[c] - blank, 0)
            prev = r
        n_ord.append(total / (len(order) + 1))
        h, w = pix.shape
        grid = pix.reshape(h // s, s, w // s, s).sum(axis=(1, 3)).ravel()
        rank = np.empty(grid.size, int)
        rank[np.argsort(-grid, kind="stable")] = np.arange(grid.size)
        rank = np.kron(rank.reshape(h // s, w // s), np.ones((s, s), int))   # [H, W]
        ins.append([prob(np.where((rank < j)[..., None], x, 0), c)
                    for j in range(grid.size + 1)])
        dele.append([prob(np.where((rank < j)[..., None], 0, x), c)
                     for j in range(grid.size + 1)])
    return np.mean(drops), np.array(n_ord), np.array(ins), np.array(dele)


@pytest.mark.parametrize("mode", ["clone", "feed"])
def test_in_graph_rows_equal_a_numpy_loop(sess, monkeypatch, mode):
    if mode == "feed":            # the fallback: built fresh on this test's new graph
        monkeypatch.setattr(hw3_attribution, "CLONE_MODEL", False)
    model = models.tiny_convnet()
    rng = np.random.RandomState(31)
    X = rng.uniform(0, 255, (3, 16, 16, 3)).astype(np.float32)
    A = rng.normal(size=X.shape).astype(np.float32)
    M, s = 7, 4
    ad, no, ins, dele = numpy_metrics(sess, model, X, A, M, s)
    kw = dict(batch_size=5, progress=False)
    assert call(AverageDrop, model, sess, A, X, **kw) == pytest.approx(ad, rel=1e-5)
    np.testing.assert_allclose(call(N_Ord, model, sess, A, X, M=M, **kw), no, rtol=1e-5)
    got, xs = call(Insertion, model, sess, A, X, superpixel_size=s, **kw)
    np.testing.assert_array_equal(xs, np.arange(17))
    np.testing.assert_allclose(got, ins, rtol=1e-5, atol=1e-6)
    got, _ = call(Deletion, model, sess, A, X, superpixel_size=s, **kw)
    np.testing.assert_allclose(got, dele, rtol=1e-5, atol=1e-6)
    # M = 1 on one image: the definition itself
    _, no1, _, _ = numpy_metrics(sess, model, X[:1], A[:1], 1, s)
    assert call(N_Ord, model, sess, A[0], X[0], M=1, **kw) == pytest.approx(no1[0], rel=1e-5)
    assert hw3_attribution.row_ops(model.imgs, model.logits).mode == mode


# ------------------------------------------------------------------ session calls

def test_session_calls_and_rows_per_run(sess):
    rng = np.random.RandomState(1)
    model = models.additive_image(rng.uniform(0.1, 1, (4, 4, 3)))
    X, A = rng.uniform(0, 255, (5, 4, 4, 3)), rng.normal(size=(5, 4, 4, 3))
    n = len(X)
    steps = -(-(A.mean(-1).reshape(n, -1) > 0).sum(1) // 3)
    t = 5                                                      # 2x2 superpixels: 4 + 1
    for bs in (1, 2, 4, 16):
        spy = CountingSession(sess)
        call(AverageDrop, model, spy, A, X, batch_size=bs)
        assert spy.calls == 2 * math.ceil(n / bs)   # the images, then the masked copies
        for c in (None, 0):
            spy.calls = 0
            call(N_Ord, model, spy, A, X, c, M=3, batch_size=bs)
            assert spy.calls == math.ceil((n + 1) / bs) + math.ceil(steps.sum() / bs)
        for metric in (Insertion, Deletion):
            spy.calls = 0
            call(metric, model, spy, A, X, [0] * n, superpixel_size=2, batch_size=bs)
            assert spy.calls == math.ceil(n * t / bs)
            spy.calls = 0
            call(metric, model, spy, A, X, superpixel_size=2, batch_size=bs,
                 baseline=np.ones(X.shape))               # None: one more pass
            assert spy.calls == math.ceil(n / bs) + math.ceil(n * t / bs)
        assert max(spy.rows) <= bs and max(spy.bank) <= 2 * bs
    assert min(spy.rows) > 0


def test_feed_mode_session_calls(sess, monkeypatch):
    monkeypatch.setattr(hw3_attribution, "CLONE_MODEL", False)
    rng = np.random.RandomState(1)
    model = models.additive_image(rng.uniform(0.1, 1, (4, 4, 3)))
    X, A = rng.uniform(0, 255, (5, 4, 4, 3)), rng.normal(size=(5, 4, 4))
    spy = CountingSession(sess)
    # the images once, then each chunk of masked copies twice (fetched, then fed)
    assert call(AverageDrop, model, spy, A, X, batch_size=2) == pytest.approx(
        call(AverageDrop, model, sess, A, X))
    assert spy.calls == 3 * math.ceil(5 / 2)
    assert max(spy.rows) <= 2
    assert hw3_attribution.row_ops(model.imgs, model.logits).mode == "feed"


# ------------------------------------------------------------------ graph discipline

def test_metrics_add_no_graph_ops(sess):
    w, x = ablation_setup(12)
    model = models.additive_image(np.abs(w))                   # f_c(x) > 0 for Average Drop
    a = np.random.RandomState(0).normal(size=x.shape)
    X, Ab = np.stack([x, x[::-1]]), np.stack([a, -a])

    def all_calls():
        call(AverageDrop, model, sess, a[None], x[None])
        call(AverageDrop, model, sess, Ab, X, [0, 0], batch_size=1, return_details=True)
        call(AverageDrop, model, sess, a.mean(-1), x)
        call(N_Ord, model, sess, a, x, M=5)
        call(N_Ord, model, sess, Ab, X, 1, M=1, batch_size=3, return_details=True)
        for metric in (Insertion, Deletion):
            call(metric, model, sess, a, x, superpixel_size=4)
            call(metric, model, sess, Ab, X, [0, 1], superpixel_size=2, step=3,
                 baseline="blur", batch_size=4)
            call(metric, model, sess, a, x, superpixel_size=8, baseline=50.0)
            call(metric, model, sess, a, x, superpixel_size=4, baseline=np.ones_like(x))
        per_image(N_Ord, sess, Ab, X, model.imgs, model.logits, M=9)
        metric_table(Deletion, {"a": Ab}, X, sess, model.imgs, model.logits,
                     superpixel_size=4)

    call(AverageDrop, model, sess, a, x)                       # the first call on the graph
    count = n_ops(sess.graph)
    for _ in range(2):
        all_calls()
    assert n_ops(sess.graph) == count


# ------------------------------------------------------------------ bad input

@pytest.fixture
def small(sess):
    w, x = ablation_setup(13)
    return models.additive_image(np.abs(w)), sess, x


@pytest.mark.parametrize("metric", METRICS)
def test_bad_model_arguments(small, metric):
    model, sess, x = small
    a = np.ones((8, 8))
    with pytest.raises(TypeError, match=prefix(SESSION_ERROR) + r".*got Model \(a model "
                                                                r"object"):
        metric(model, a, x, model.imgs, model.logits, 0)
    with pytest.raises(TypeError, match=re.escape(MODEL_OBJECT_ERROR.format(
            arg="input_tensor", actual="Model", what="input placeholder, model.imgs"))):
        metric(sess, a, x, model, model.logits, 0)
    with pytest.raises(TypeError, match=re.escape(MODEL_OBJECT_ERROR.format(
            arg="output_tensor", actual="Model", what="")) + ".*model.logits"):
        metric(sess, a, x, model.imgs, model, 0)
    other = tf.Graph()
    with other.as_default():
        m2 = models.additive_image(np.ones((8, 8, 3)))
    with pytest.raises(ValueError, match=re.escape(GRAPH_ERROR.format(
            arg="input_tensor", name=m2.imgs.name))):
        metric(sess, a, x, m2.imgs, model.logits, 0)
    with pytest.raises(ValueError, match=re.escape(GRAPH_ERROR.format(
            arg="output_tensor", name=m2.logits.name))):
        metric(sess, a, x, model.imgs, m2.logits, 0)
    flat = models.linear(np.ones((4, 2)))
    with pytest.raises(ValueError, match=prefix(IMAGE_INPUT_ERROR)):
        metric(sess, np.ones((2, 4)), np.ones((2, 4)), flat.imgs, flat.logits, 0)


@pytest.mark.parametrize("metric", METRICS)
def test_bad_target_and_input(small, metric):
    model, sess, x = small
    X = np.stack([x, x])
    for bad in (2, -1, [0, 5]):
        with pytest.raises(ValueError, match=prefix(TARGET_RANGE_ERROR) + r"\[0, 2\)"):
            call(metric, model, sess, np.ones((2, 8, 8)), X, bad)
    with pytest.raises(ValueError, match=re.escape(TARGET_LENGTH_ERROR.format(
            arg="target_class", expected=2, actual=3))):
        call(metric, model, sess, np.ones((2, 8, 8)), X, [0, 0, 0])
    with pytest.raises(TypeError, match="target_class: expected an int"):
        call(metric, model, sess, np.ones((2, 8, 8)), X, 1.5)
    for bad in (X[:, :4], x[:, :, :2], np.ones((8, 8))):
        with pytest.raises(ValueError, match=re.escape(INPUT_SHAPE_ERROR.format(
                arg="input", dims="8, 8, 3", name=model.imgs.name,
                actual=list(bad.shape)))):
            call(metric, model, sess, np.ones((8, 8)), bad, 0)
    with pytest.raises(ValueError, match=re.escape(INPUT_EMPTY_ERROR.format(
            arg="input", actual=[0, 8, 8, 3]))):
        call(metric, model, sess, np.zeros((0, 8, 8)), np.zeros((0, 8, 8, 3)), 0)
    bad = X.copy()
    bad[1, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match=re.escape(INPUT_FINITE_ERROR.format(
            arg="input", count=1))):
        call(metric, model, sess, np.ones((2, 8, 8)), bad, 0)


@pytest.mark.parametrize("metric", [AverageDrop, N_Ord])
@pytest.mark.parametrize("bad, match", [
    (np.ones((1, 8, 8, 2)), re.escape(ATTR_SHAPE_ERROR.format(
        arg="attr_map", pixel=[1, 8, 8], full=[1, 8, 8, 3], input=[1, 8, 8, 3],
        actual=[1, 8, 8, 2]))),
    (np.ones((2, 8, 8)), r"attr_map: expected an attribution .* got shape \[2, 8, 8\]"),
    (np.ones((1, 4, 4)), r"attr_map: expected .* map \[1, 8, 8\]"),
    (np.ones((8, 8)), r"attr_map: expected .* got shape \[8, 8\]"),
    (np.where(np.eye(8)[None, ..., None] > 0, np.nan, 1.0) * np.ones((1, 8, 8, 3)),
     re.escape(INPUT_FINITE_ERROR.format(arg="attr_map", count=24))),
    (np.zeros((1, 8, 8, 3)), prefix(ATTR_ZERO_ERROR.replace("{arg}", "attr_map")) +
     r".*all-zero attributions for image\(s\) \[0\]"),
])
def test_bad_attribution(small, metric, bad, match):
    model, sess, x = small
    with pytest.raises(ValueError, match=match):
        call(metric, model, sess, bad, x[None], 0)


@pytest.mark.parametrize("metric", [AverageDrop, N_Ord])
def test_bad_attribution_one_image(small, metric):
    model, sess, x = small
    with pytest.raises(ValueError, match=re.escape(ATTR_SHAPE_ERROR.format(
            arg="attr_map", pixel=[8, 8], full=[8, 8, 3], input=[8, 8, 3],
            actual=[4, 8]))):
        call(metric, model, sess, np.ones((4, 8)), x, 0)
    with pytest.raises(TypeError, match="attr_map: expected a numeric array"):
        call(metric, model, sess, np.full((8, 8), "a"), x, 0)


@pytest.mark.parametrize("M, err", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                    (True, TypeError)])
def test_n_ord_bad_m(small, M, err):
    model, sess, x = small
    with pytest.raises(err, match=re.escape(POSITIVE_INT_ERROR.format(arg="M", actual=M))):
        call(N_Ord, model, sess, np.ones((8, 8)), x, 0, M=M)


@pytest.mark.parametrize("metric", [AverageDrop, N_Ord, Insertion, Deletion])
def test_bad_batch_size(small, metric):
    model, sess, x = small
    with pytest.raises(ValueError, match=re.escape(POSITIVE_INT_ERROR.format(
            arg="batch_size", actual=0))):
        call(metric, model, sess, np.ones((8, 8)), x, 0, batch_size=0)


@pytest.mark.parametrize("metric", [Insertion, Deletion])
def test_ablation_bad_input(small, metric):
    model, sess, x = small
    imp = np.ones((4, 4))
    for size in (9, 16):     # larger than the image (sizes that do not divide it work)
        with pytest.raises(ValueError, match=re.escape(SUPERPIXEL_ERROR.format(
                size=size, h=8, w=8))):
            call(metric, model, sess, np.ones((8, 8)), x, superpixel_size=size)
    with pytest.raises(ValueError, match=r"superpixel_size: expected a positive int"):
        call(metric, model, sess, np.ones((8, 8)), x, superpixel_size=0)
    with pytest.raises(ValueError, match=re.escape(IMPORTANCE_SHAPE_ERROR.format(
            grid=[4, 4], pixel=[8, 8], full=[8, 8, 3], s=2, actual=[2, 2]))):
        call(metric, model, sess, np.ones((2, 2)), x, superpixel_size=2)
    with pytest.raises(ValueError, match=r"attr_map: expected per-superpixel importance "
                                         r"\[2, 4, 4\].* got shape \[4, 4\]"):
        call(metric, model, sess, imp, np.stack([x, x]), superpixel_size=2)
    with pytest.raises(ValueError, match=re.escape(INPUT_FINITE_ERROR.format(
            arg="attr_map", count=1))):
        call(metric, model, sess, np.where(np.arange(16).reshape(4, 4) == 3, np.nan, 1.0), x,
             superpixel_size=2)
    with pytest.raises(ValueError, match=r"attr_map: .* undefined for an all-zero"):
        call(metric, model, sess, np.zeros((4, 4)), x, superpixel_size=2)
    with pytest.raises(ValueError, match="input: expected at least one input"):
        call(metric, model, sess, np.zeros((0, 4, 4)), np.zeros((0, 8, 8, 3)),
             superpixel_size=2)
    for bad in ("white", "zeros", ""):
        with pytest.raises(ValueError, match=re.escape(BASELINE_ERROR.format(
                expected=[8, 8, 3], actual=repr(bad)))):
            call(metric, model, sess, imp, x, superpixel_size=2, baseline=bad)
    with pytest.raises(ValueError, match=r"baseline: expected 'black', 'blur'.* got shape "
                                         r"\[4, 4, 3\]"):
        call(metric, model, sess, imp, x, superpixel_size=2, baseline=np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match=r"baseline: expected 'black', 'blur'"):
        call(metric, model, sess, imp, x, superpixel_size=2, baseline=np.full(x.shape, np.nan))
    with pytest.raises(ValueError, match="target_class: expected class indices in"):
        call(metric, model, sess, imp, x, 7, superpixel_size=2)


# ------------------------------------------------------------------ tables

def test_metric_table_values_markdown_and_csv(sess, tmp_path):
    model = models.additive_image(np.ones((2, 2, 3), np.float32))
    X = two_images()
    attrs = {"half": pixel_sign_attr([[[1, 1], [-1, -1]], [[-1, -1], [-1, 1]]]),
             "all": np.ones((2, 2, 2, 3))}
    table = metric_table(AverageDrop, attrs, X, sess, model.imgs, model.logits,
                         images=["a", "b"])
    assert isinstance(table, MetricTable)
    assert table.metric == "Average Drop %" and table.methods == ["half", "all"]
    np.testing.assert_allclose(table.values, [[50.0, 60.0], [0.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(table.mean, [55.0, 0.0], rtol=1e-6)
    md = table.to_markdown()
    assert "| method | a | b | mean |" in md and "| half | 50 | 60 | 55 |" in md
    assert "| mean | 55 | 0 |" in table.to_markdown(by="image")
    assert "| half | 55 |" in table.to_markdown(per_image=False)
    with pytest.raises(ValueError, match="by: expected 'method' or 'image'"):
        table.to_markdown(by="row")
    path = tmp_path / "ad.csv"
    table.to_csv(str(path))
    rows = list(csv.reader(open(path)))
    assert rows[0] == ["method", "a", "b", "mean"]
    assert rows[1][0] == "half" and float(rows[1][3]) == pytest.approx(55.0)
    assert [p.name for p in tmp_path.iterdir()] == ["ad.csv"]  # no temporary left behind
    # the same values as the metric's own per-image results, in pairs or a dict
    pairs = metric_table(AverageDrop, list(attrs.items()), X, sess, model.imgs,
                         model.logits, 0)
    np.testing.assert_allclose(pairs.values, table.values)
    assert pairs.images == ["0", "1"]
    with pytest.raises(ValueError, match=prefix(TABLE_INPUT_ERROR.replace("{arg}", "images"))):
        metric_table(AverageDrop, attrs, X, sess, model.imgs, model.logits, images=["a"])
    with pytest.raises(ValueError, match="metric: expected AverageDrop, N_Ord, Insertion"):
        metric_table(auc, attrs, X, sess, model.imgs, model.logits)


def test_metric_table_curves_and_n_ord(sess):
    w, x = ablation_setup(14)
    model = models.additive_image(w)
    X = np.stack([x, x[:, ::-1]])
    attrs = {"ideal": w * X, "reversed": -(w * X)}
    table = metric_table(Insertion, attrs, X, sess, model.imgs, model.logits, 0,
                         superpixel_size=4)
    assert table.values.shape == (2, 2) and table.curves["ideal"].shape == (2, 5)
    np.testing.assert_array_equal(table.num_feats, np.arange(5))
    np.testing.assert_allclose(table.values, [auc(table.curves[m], table.num_feats)
                                              for m in ("ideal", "reversed")])
    assert np.all(table.values[0] > table.values[1])
    with pytest.raises(ValueError, match="attributions: expected at least one method"):
        metric_table(Insertion, {}, X, sess, model.imgs, model.logits, superpixel_size=4)
    # N_Ord: one value per image, the function's own
    nt = metric_table(N_Ord, attrs, X, sess, model.imgs, model.logits, 0, M=6)
    np.testing.assert_allclose(nt.values[0], call(N_Ord, model, sess, w * X, X, 0, M=6))
    assert nt.curves is None and nt.unit == "logit"
    values, curves = per_image(Deletion, sess, w * X, X, model.imgs, model.logits, 0,
                               superpixel_size=4)
    np.testing.assert_allclose(values, auc(*curves))
    values, curves = per_image(N_Ord, sess, w[None] * x, x, model.imgs, model.logits, 0, M=6)
    assert curves is None and values.shape == (1,)
    np.testing.assert_allclose(values, nt.values[0, :1])


def test_metric_table_marks_an_all_zero_image_undefined_and_scores_the_rest(sess):
    model = models.additive_image(np.ones((2, 2, 3), np.float32))
    X = two_images()
    A = pixel_sign_attr([[[1, 1], [-1, -1]], [[-1, -1], [-1, 1]]])
    A[0] = 0.0                                    # image 0: the metric is undefined
    with pytest.warns(RuntimeWarning, match=r"image\(s\) \[0\]"):
        table = metric_table(AverageDrop, {"m": A}, X, sess, model.imgs, model.logits)
    assert np.isnan(table.values[0, 0])
    assert table.values[0, 1] == pytest.approx(60.0)   # as when scored alone
    assert table.mean[0] == pytest.approx(60.0)
    assert "undefined" in table.to_markdown()
    w, x = ablation_setup(14)
    model = models.additive_image(w)
    X = np.stack([x, x[:, ::-1]])
    imp = w * X
    imp[1] = 0.0
    with pytest.warns(RuntimeWarning):
        table = metric_table(Deletion, {"m": imp}, X, sess, model.imgs, model.logits, [0, 0],
                             superpixel_size=4)
    assert np.isnan(table.curves["m"][1]).all() and np.isfinite(table.curves["m"][0]).all()
    with pytest.raises(ValueError, match="undefined for an all-zero attribution"):
        metric_table(Deletion, {"m": 0 * imp}, X, sess, model.imgs, model.logits, 0,
                     superpixel_size=4)
    # one method of several all zero on every image (an inactive expert): a row of NaN
    with pytest.warns(RuntimeWarning, match="zero: all-zero attribution on every image"):
        table = metric_table(Deletion, {"zero": 0 * imp, "m": w * X}, X, sess, model.imgs,
                             model.logits, 0, superpixel_size=4)
    assert np.isnan(table.values[0]).all() and np.isfinite(table.values[1]).all()
    assert list(table.curves) == ["zero", "m"] and np.isnan(table.curves["zero"]).all()
    assert table.curves["zero"].shape == table.curves["m"].shape


def test_write_text_is_atomic(tmp_path):
    path = tmp_path / "t.md"
    assert write_text(str(path), "a\n") == str(path)
    assert path.read_text() == "a\n"
    write_text(str(path), "b\n")
    assert path.read_text() == "b\n"
    with pytest.raises(OSError):
        write_text(str(tmp_path / "t.md" / "x"), "c")          # a file is not a folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.md"]


# ------------------------------------------------------------------ the real model

@pytest.mark.slow
def test_metrics_on_default_model(default_model, sample_data):
    model, sess = default_model
    X = np.asarray(sample_data[0][:2], np.float32)
    A = np.random.RandomState(0).normal(size=X.shape[:3])  # RandomAttribution-like maps
    runs = {  # 7 x 7 superpixels, 8 points per curve: keeps the test short
        "AverageDrop": lambda: per_image(AverageDrop, sess, A, X, model.imgs, model.logits,
                                         progress=False)[0],
        "N_Ord": lambda: call(N_Ord, model, sess, A, X, M=1000, progress=False),
        "Insertion": lambda: auc(*call(Insertion, model, sess, A, X, superpixel_size=32,
                                       step=7, progress=False)),
        "Deletion": lambda: auc(*call(Deletion, model, sess, A, X, superpixel_size=32,
                                      step=7, progress=False))}
    seconds = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for name, run in runs.items():
            t0 = time.perf_counter()
            out = run()
            seconds[name] = (time.perf_counter() - t0) / len(X)
            assert out.shape == (2,) and np.all(np.isfinite(out)), (name, out)
            if name in ("Insertion", "Deletion"):
                assert np.all((out >= 0) & (out <= 1))
    # the homework's own call: one image's N_Ord is a float; Average Drop on both a float
    assert isinstance(N_Ord(sess, A[0], X[0], model.imgs, model.logits, None), float)
    ad = AverageDrop(sess, A, X, model.imgs, model.logits, None)
    assert isinstance(ad, float) and np.isfinite(ad)
    print("seconds per image:", {k: round(v, 2) for k, v in seconds.items()})


def test_metric_table_undefined_image_is_read_as_the_metric_reads_it(sess):
    """An attribution whose channels cancel (mean zero everywhere) ranks no pixel: that
    image is NaN for the method, the others are scored (found by the Ray pipeline's work);
    for the curves, a map whose superpixel sums are all zero is undefined too."""
    m = models.tiny_convnet(classes=5)
    X = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    A = np.random.default_rng(1).normal(size=(2, 16, 16, 3)).astype(np.float32)
    A[0] = np.array([1.0, -1.0, 0.0], np.float32)            # channel mean 0 everywhere
    with pytest.warns(RuntimeWarning, match=r"image\(s\) \[0\]"):
        table = metric_table(AverageDrop, {"a": A}, X, sess, m.imgs, m.logits)
    assert np.isnan(table.values[0, 0]) and np.isfinite(table.values[0, 1])
    alone = AverageDrop(sess, A[1], X[1], m.imgs, m.logits, return_details=True)
    assert table.values[0, 1] == pytest.approx(alone.per_image[0])
    P = np.random.default_rng(2).normal(size=(2, 16, 16)).astype(np.float32)
    P[0] = np.tile([[1.0, -1.0], [-1.0, 1.0]], (8, 8))        # sums to 0 in every 4x4 patch
    with pytest.warns(RuntimeWarning, match=r"image\(s\) \[0\]"):
        table = metric_table(Deletion, {"p": P}, X, sess, m.imgs, m.logits,
                             superpixel_size=4)
    assert np.isnan(table.values[0, 0]) and np.isfinite(table.values[0, 1])
