"""Tests of hw3_evaluation: Average Drop %, Necessity Ordering, Insertion / Deletion.

Most answers are known by hand on the additive image model ``f_0 = Σ w ⊙ x``, ``f_1 =
const`` (tests/models.additive_image), where removing a set of pixels lowers ``f_0`` by
exactly the sum of ``w ⊙ x`` over the set.
"""
import csv
import math
import re
import time
import warnings
from unittest import mock

import numpy as np
import pytest

import models
from hw3_evaluation import (ALL_EXCLUDED_ERROR, AverageDrop, Deletion, Insertion,
                            MetricTable, N_Ord, auc, metric_table)


def f0(w, X):
    """The additive model's class-0 logit, in numpy: Σ w ⊙ x per image."""
    return np.einsum("hwc,nhwc->n", w, np.asarray(X, np.float64))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def counted(sess):
    return mock.MagicMock(wraps=sess)


def pixel_sign_attr(signs):
    """A full attribution [N, H, W, 3] whose channel mean has the given per-pixel signs,
    though single channels disagree: (3, -1, -1) has mean +1/3, (1, 1, -3) has -1/3."""
    signs = np.asarray(signs)
    pos, neg = np.array([3.0, -1.0, -1.0]), np.array([1.0, 1.0, -3.0])
    return np.where(signs[..., None] > 0, pos, neg)


# ---------------------------------------------------------------------- Average Drop %

def test_average_drop_hand_computed_half_negative(sess):
    w = np.ones((2, 2, 3), np.float32)
    model = models.additive_image(w)
    X = np.stack([np.full((2, 2, 3), 10.0),                   # f_0 = 120
                  np.repeat(np.array([[1.0, 2.0], [3.0, 4.0]])[..., None], 3, -1)])  # 30
    A = pixel_sign_attr([[[1, 1], [-1, -1]],                  # keeps 60 of 120: drop 50 %
                         [[-1, -1], [-1, 1]]])                 # keeps 12 of 30: drop 60 %
    ad = AverageDrop(model, sess)
    res = ad.evaluate(X, A)
    np.testing.assert_allclose(res.per_image, [50.0, 60.0], rtol=1e-6)
    assert ad(X, A) == pytest.approx(55.0)
    assert res.increase == 0.0 and res.n_excluded == 0
    np.testing.assert_array_equal(res.targets, [0, 0])
    np.testing.assert_allclose(res.kept, [0.5, 0.25])
    # the pixel map [N, H, W] gives the same as the full attribution
    assert ad(X, A.mean(axis=-1)) == pytest.approx(55.0)


def test_average_drop_is_zero_when_every_pixel_is_kept(sess):
    rng = np.random.RandomState(0)
    model = models.additive_image(rng.uniform(0.1, 1, (4, 4, 3)))
    X = rng.uniform(0, 255, (3, 4, 4, 3))
    A = rng.uniform(0.01, 1, (3, 4, 4, 3))
    res = AverageDrop(model, sess).evaluate(X, A)
    assert res.mean == 0.0 and res.increase == 0.0
    np.testing.assert_array_equal(res.per_image, 0.0)


def test_zero_attribution_is_not_positive(sess):
    model = models.additive_image(np.ones((2, 2, 3)))
    x = np.full((2, 2, 3), 10.0)
    a = np.array([[[1.0, 1.0, 1.0], [1.0, -1.0, 0.0]],       # channel means 1 and 0
                  [[0.0, 0.0, 0.0], [2.0, -2.0, 0.0]]])      # 0 and 0
    assert AverageDrop(model, sess)(x, a) == pytest.approx(75.0)  # keeps 1 pixel of 4
    out = N_Ord(model, sess, M=1).evaluate(x, a)
    assert out["steps"][0] == 1                                # only that pixel is removed
    np.testing.assert_allclose(out["curves"][0], [90.0])
    assert out["scores"][0] == pytest.approx(90.0 / 2)


def test_average_increase_counts_images_whose_score_rises(sess):
    w = np.ones((2, 2, 3), np.float32)
    w[0, 1] = -1.0                       # f_0 = 10·3·(1 - 1 + 1 + 1) = 60 on a flat 10 image
    model = models.additive_image(w)
    X = np.full((2, 2, 2, 3), 10.0)
    A = pixel_sign_attr([[[1, -1], [1, 1]],                   # drops the negative pixel: 90
                         [[1, 1], [-1, 1]]])                   # drops a positive one: 30
    res = AverageDrop(model, sess).evaluate(X, A)
    np.testing.assert_allclose(res.masked_scores, [90.0, 30.0])
    np.testing.assert_allclose(res.per_image, [0.0, 50.0])
    assert res.increase == pytest.approx(50.0)
    assert res.mean == pytest.approx(25.0)


def test_average_drop_excludes_images_with_non_positive_score(sess):
    model = models.additive_image(np.ones((2, 2, 3)), second_logit=-1.0)
    # image 0 is black: f_0 = 0 > f_1 = -1, so c = 0 and f_c(x) = 0: the ratio is undefined
    X = np.stack([np.zeros((2, 2, 3)), np.full((2, 2, 3), 10.0)])
    A = pixel_sign_attr([[[1, 1], [-1, -1]]] * 2)
    ad = AverageDrop(model, sess)
    with pytest.warns(RuntimeWarning, match=r"undefined for image\(s\) \[0\]"):
        res = ad.evaluate(X, A)
    assert res.n_excluded == 1 and res.excluded == [0]
    assert np.isnan(res.per_image[0]) and res.per_image[1] == pytest.approx(50.0)
    assert res.mean == pytest.approx(50.0)
    assert np.isfinite(res.mean)


def test_average_drop_negative_score_excluded_and_all_excluded_raises(sess):
    # w = -1: f_0 = -Σx < 0 but above f_1 = -1000, so c = 0 with a negative score
    model = models.additive_image(-np.ones((2, 2, 3)), second_logit=-1000.0)
    X = np.full((2, 2, 2, 3), 10.0)
    A = pixel_sign_attr([[[1, 1], [-1, -1]]] * 2)
    with pytest.raises(ValueError, match=re.escape(ALL_EXCLUDED_ERROR.format(n=2))):
        AverageDrop(model, sess)(X, A)


def test_average_drop_session_calls(sess):
    rng = np.random.RandomState(1)
    model = models.additive_image(rng.uniform(0, 1, (4, 4, 3)))
    X, A = rng.uniform(0, 255, (5, 4, 4, 3)), rng.normal(size=(5, 4, 4, 3))
    spy = counted(sess)
    AverageDrop(model, spy, batch_size=2)(X, A)
    assert spy.run.call_count == 2 * math.ceil(5 / 2)   # the images, then the masked copies


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
    scores = N_Ord(model, sess, M=1)(X, A)
    expected = [n_ord_loop(w, x, a.mean(-1))[0] for x, a in zip(X, A)]
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert np.all(np.asarray(expected) > 0)  # a case where the terms are not all clipped


@pytest.mark.parametrize("M", [2, 3, 4, 100])
def test_n_ord_larger_m_samples_the_same_curve(sess, M):
    rng = np.random.RandomState(3)
    w = rng.normal(0.3, 1.0, (3, 3, 3))
    model = models.additive_image(w)
    x, a = rng.uniform(0, 255, (3, 3, 3)), rng.normal(size=(3, 3))
    _, g = n_ord_loop(w, x, a)
    P = len(g)
    removed = np.minimum(np.arange(1, -(-P // M) + 1) * M, P)
    out = N_Ord(model, sess, M=M).evaluate(x, a)
    np.testing.assert_array_equal(out["removed"][0], removed)
    assert out["steps"][0] == len(removed)
    expected = g[removed - 1].sum() / (len(removed) + 1)
    score = N_Ord(model, sess, M=M)(x, a)               # one unbatched image -> a float
    assert isinstance(score, float)
    assert score == pytest.approx(expected, rel=1e-5)


def test_n_ord_no_positive_pixel_is_nan_with_warning(sess):
    model = models.additive_image(np.ones((2, 2, 3)))
    X = np.full((2, 2, 2, 3), 10.0)
    A = np.stack([-np.ones((2, 2)), np.ones((2, 2))])
    with pytest.warns(RuntimeWarning, match=r"undefined for image\(s\) \[0\]"):
        scores = N_Ord(model, sess, M=1)(X, A)
    assert np.isnan(scores[0]) and np.isfinite(scores[1])


def test_n_ord_session_calls(sess):
    rng = np.random.RandomState(4)
    model = models.additive_image(rng.normal(size=(4, 4, 3)))
    X = rng.uniform(0, 255, (3, 4, 4, 3))
    A = rng.normal(size=(3, 4, 4))
    steps = -(-(A.reshape(3, -1) > 0).sum(1) // 3)
    spy = counted(sess)
    N_Ord(model, spy, M=3, batch_size=4)(X, A)
    assert spy.run.call_count == math.ceil((3 + 1) / 4) + math.ceil(steps.sum() / 4)


# ------------------------------------------------------------------ Insertion / Deletion

def ablation_setup(seed=5, size=8):
    """Small weights keep softmax(f_0, 0) = sigmoid(f_0) away from 0 and 1."""
    rng = np.random.RandomState(seed)
    w = rng.normal(0.0, 1.0, (size, size, 3)) / 2000.0
    x = rng.uniform(0, 255, (size, size, 3))
    return w, x


def test_insertion_curve_by_hand_and_endpoints(sess):
    w, x = ablation_setup()
    model = models.additive_image(w)
    imp = np.random.RandomState(0).normal(size=(4, 4))       # s = 2: 16 superpixels
    curve, xs = Insertion(model, sess, superpixel_size=2)(x[None], imp[None], c=0)
    contrib = (w * x).reshape(4, 2, 4, 2, 3).sum(axis=(1, 3, 4)).ravel()
    order = np.argsort(-imp.ravel(), kind="stable")
    expected = sigmoid(np.concatenate([[0.0], np.cumsum(contrib[order])]))
    np.testing.assert_array_equal(xs, np.arange(17))
    np.testing.assert_allclose(curve, expected, rtol=1e-5)
    assert curve[-1] == pytest.approx(sigmoid(f0(w, x[None])[0]), rel=1e-5)  # full image
    assert curve[0] == pytest.approx(0.5)                    # the black baseline: f_0 = 0


@pytest.mark.parametrize("baseline", ["black", "blur", "array", 100.0])
def test_curves_start_at_zero_and_end_at_all(sess, baseline):
    w, x = ablation_setup(6)
    model = models.additive_image(w)
    imp = np.random.RandomState(1).normal(size=(1, 8, 8))    # a pixel map
    b = np.random.RandomState(2).uniform(0, 255, x.shape) if baseline == "array" else baseline
    ins = Insertion(model, sess, superpixel_size=4, baseline=b)
    dele = Deletion(model, sess, superpixel_size=4, baseline=b)
    base = ins._baselines(x[None].astype(np.float32))[0]
    c = int(f0(w, x[None])[0] < 0)                             # c=None: the prediction
    p_x, p_b = (sigmoid((1 - 2 * c) * f0(w, img[None])[0]) for img in (x, base))
    ci, xi = ins(x, imp)
    cd, xd = dele(x, imp)
    for xs in (xi, xd):
        np.testing.assert_array_equal(xs, [0, 1, 2, 3, 4])
    assert ci[0] == pytest.approx(p_b, rel=1e-5) and ci[-1] == pytest.approx(p_x, rel=1e-5)
    assert cd[0] == pytest.approx(p_x, rel=1e-5) and cd[-1] == pytest.approx(p_b, rel=1e-5)
    if baseline == "blur":
        assert not np.allclose(base, x) and np.ptp(base) < np.ptp(x)


def test_pixel_map_is_summed_per_superpixel(sess):
    w, x = ablation_setup(7)
    model = models.additive_image(w)
    pix = np.random.RandomState(3).normal(size=(8, 8))
    grid = pix.reshape(4, 2, 4, 2).sum(axis=(1, 3))
    ins = Insertion(model, sess, superpixel_size=2)
    np.testing.assert_allclose(ins(x, pix)[0], ins(x, grid)[0])
    full = np.repeat(pix[..., None], 3, -1)                  # an attribution [H, W, 3]
    np.testing.assert_allclose(ins(x, full)[0], ins(x, grid)[0])


def test_step_subsamples_the_curve(sess):
    w, x = ablation_setup(8)
    model = models.additive_image(w)
    imp = np.random.RandomState(4).normal(size=(4, 4))
    full, _ = Deletion(model, sess, superpixel_size=2)(x, imp)
    part, xs = Deletion(model, sess, superpixel_size=2, step=5)(x, imp)
    np.testing.assert_array_equal(xs, [0, 5, 10, 15, 16])
    np.testing.assert_allclose(part, full[xs])


def test_ideal_attribution_beats_random_and_reversed(sess):
    w, x = ablation_setup(9)
    model = models.additive_image(w)
    assert f0(w, x[None])[0] > 0                              # class 0 is the prediction
    ideal = w * x                                              # each pixel's contribution
    rng = np.random.RandomState(10)
    attrs = {"ideal": ideal, "random": rng.normal(size=ideal.shape), "reversed": -ideal}
    n_ord = {k: N_Ord(model, sess, M=4)(x, a) for k, a in attrs.items()}
    ins = {k: auc(*Insertion(model, sess, superpixel_size=2)(x, a, c=0))
           for k, a in attrs.items()}
    dele = {k: auc(*Deletion(model, sess, superpixel_size=2)(x, a, c=0))
            for k, a in attrs.items()}
    assert n_ord["ideal"] < n_ord["random"] < n_ord["reversed"]
    assert dele["ideal"] < dele["random"] < dele["reversed"]
    assert ins["ideal"] > ins["random"] > ins["reversed"]


def test_ablation_session_calls_and_batches(sess):
    w, x = ablation_setup(11)
    model = models.additive_image(w)
    X = np.stack([x, x[::-1]])
    imp = np.random.RandomState(5).normal(size=(2, 4, 4))
    spy = counted(sess)
    ins = Insertion(model, spy, superpixel_size=2, batch_size=7)
    curves, xs = ins.curves(X, imp, c=[0, 1])
    assert curves.shape == (2, 17)
    assert spy.run.call_count == math.ceil(2 * 17 / 7)
    spy.run.reset_mock()
    ins.curves(X, imp)                                         # c=None: one more pass
    assert spy.run.call_count == math.ceil(2 / 7) + math.ceil(2 * 17 / 7)
    # batched curves equal one-image calls, with their own targets
    for i in range(2):
        np.testing.assert_allclose(curves[i], ins(X[i], imp[i], c=i)[0], rtol=1e-6)


def test_auc_trapezoid_normalised():
    assert auc([0.3, 0.3, 0.3], [0, 1, 2]) == pytest.approx(0.3)
    assert auc([0.0, 1.0], [0, 10]) == pytest.approx(0.5)
    assert auc([0.0, 1.0, 1.0], [0, 1, 3]) == pytest.approx((0.5 + 2.0) / 3)
    np.testing.assert_allclose(auc(np.array([[1.0, 1.0], [0.0, 0.5]]), [0, 1]), [1.0, 0.25])
    with pytest.raises(ValueError, match="num_feats: expected increasing"):
        auc([1.0, 2.0], [1, 1])
    with pytest.raises(ValueError, match="curve, num_feats"):
        auc([1.0, 2.0, 3.0], [0, 1])


# ------------------------------------------------------------------ graph discipline

def test_metrics_add_no_graph_ops(sess):
    w, x = ablation_setup(12)
    model = models.additive_image(np.abs(w))                   # f_c(x) > 0 for Average Drop
    n_ops = len(sess.graph.get_operations())
    metrics = [AverageDrop(model, sess), N_Ord(model, sess, M=5),
               Insertion(model, sess, superpixel_size=4), Deletion(model, sess,
                                                                   superpixel_size=4)]
    a = np.random.RandomState(0).normal(size=x.shape)
    for _ in range(3):
        metrics[0](x[None], a[None])
        metrics[1](x, a)
        metrics[2](x, a)
        metrics[3](x, a)
    assert len(sess.graph.get_operations()) == n_ops


# ------------------------------------------------------------------ bad input

@pytest.fixture
def small(sess):
    w, x = ablation_setup(13)
    return models.additive_image(w), sess, x


@pytest.mark.parametrize("cls", [AverageDrop, N_Ord])
@pytest.mark.parametrize("bad, match", [
    (np.ones((1, 8, 8, 2)), r"A: expected an attribution of the input's shape"),
    (np.ones((2, 8, 8)), r"A: expected an attribution .* got shape \[2, 8, 8\]"),
    (np.ones((1, 4, 4)), r"A: expected .* pixel map \[1, 8, 8\]"),
    (np.where(np.eye(8)[None, ..., None] > 0, np.nan, 1.0) * np.ones((1, 8, 8, 3)),
     r"A: expected finite values, got 24 NaN"),
    (np.zeros((1, 8, 8, 3)), r"A: .* is undefined for an all-zero attribution .*\[0\]"),
])
def test_bad_attribution(small, cls, bad, match):
    model, sess, x = small
    with pytest.raises(ValueError, match=match):
        cls(model, sess)(x[None], bad)


@pytest.mark.parametrize("cls", [AverageDrop, N_Ord])
def test_empty_set(small, cls):
    model, sess, _ = small
    with pytest.raises(ValueError, match="X: expected at least one input"):
        cls(model, sess)(np.zeros((0, 8, 8, 3)), np.zeros((0, 8, 8)))


@pytest.mark.parametrize("M, err", [(0, ValueError), (-3, ValueError), (2.5, TypeError)])
def test_n_ord_bad_m(small, M, err):
    model, sess, _ = small
    with pytest.raises(err, match="M: expected a positive int"):
        N_Ord(model, sess, M=M)


@pytest.mark.parametrize("cls", [Insertion, Deletion])
def test_ablation_bad_input(small, cls):
    model, sess, x = small
    with pytest.raises(ValueError, match=r"superpixel_size: .* divides .* got 3 for images "
                                         r"of 8x8"):
        cls(model, sess, superpixel_size=3)
    metric = cls(model, sess, superpixel_size=2)
    with pytest.raises(ValueError, match=r"importance: expected per-superpixel importance "
                                         r"\[1, 4, 4\] .* got shape \[1, 2, 2\]"):
        metric(x, np.ones((1, 2, 2)))
    with pytest.raises(ValueError, match="importance: expected finite values, got 1 NaN"):
        metric(x, np.where(np.arange(16).reshape(4, 4) == 3, np.nan, 1.0))
    with pytest.raises(ValueError, match=r"importance: .* undefined for an all-zero"):
        metric(x, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="x: expected at least one input"):
        metric.curves(np.zeros((0, 8, 8, 3)), np.zeros((0, 4, 4)))
    with pytest.raises(ValueError, match=r"x: expected one image .* got a batch of 2"):
        metric(np.stack([x, x]), np.ones((2, 4, 4)))
    with pytest.raises(ValueError, match="baseline: expected 'black', 'blur'"):
        cls(model, sess, baseline="white")
    with pytest.raises(ValueError, match=r"baseline: .* got shape \[4, 4, 3\]"):
        cls(model, sess, superpixel_size=2, baseline=np.zeros((4, 4, 3)))(x, np.ones((4, 4)))
    with pytest.raises(ValueError, match="c: expected class indices in"):
        metric(x, np.ones((4, 4)), c=7)


# ------------------------------------------------------------------ tables

def test_metric_table_values_markdown_and_csv(sess, tmp_path):
    w = np.ones((2, 2, 3), np.float32)
    model = models.additive_image(w)
    X = np.stack([np.full((2, 2, 3), 10.0),
                  np.repeat(np.array([[1.0, 2.0], [3.0, 4.0]])[..., None], 3, -1)])
    attrs = {"half": pixel_sign_attr([[[1, 1], [-1, -1]], [[-1, -1], [-1, 1]]]),
             "all": np.ones((2, 2, 2, 3))}
    table = metric_table(AverageDrop(model, sess), attrs, X, images=["a", "b"])
    assert isinstance(table, MetricTable)
    np.testing.assert_allclose(table.values, [[50.0, 60.0], [0.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(table.mean, [55.0, 0.0], rtol=1e-6)
    md = table.to_markdown()
    assert "| method | a | b | mean |" in md and "| half | 50 | 60 | 55 |" in md
    assert "| mean | 55 | 0 |" in table.to_markdown(by="image")
    assert "| half | 55 |" in table.to_markdown(per_image=False)
    path = tmp_path / "ad.csv"
    table.to_csv(str(path))
    rows = list(csv.reader(open(path)))
    assert rows[0] == ["method", "a", "b", "mean"]
    assert rows[1][0] == "half" and float(rows[1][3]) == pytest.approx(55.0)
    assert [p.name for p in tmp_path.iterdir()] == ["ad.csv"]  # no temporary left behind


def test_metric_table_curves(sess):
    w, x = ablation_setup(14)
    model = models.additive_image(w)
    X = np.stack([x, x[:, ::-1]])
    attrs = {"ideal": w * X, "reversed": -(w * X)}
    table = metric_table(Insertion(model, sess, superpixel_size=4), attrs, X, c=0)
    assert table.values.shape == (2, 2) and table.curves["ideal"].shape == (2, 5)
    np.testing.assert_allclose(table.values, [auc(table.curves[m], table.num_feats)
                                              for m in ("ideal", "reversed")])
    assert np.all(table.values[0] > table.values[1])
    with pytest.raises(ValueError, match="attributions: expected at least one method"):
        metric_table(Insertion(model, sess, superpixel_size=4), {}, X)


def test_metric_table_marks_an_all_zero_image_undefined_and_scores_the_rest(sess):
    w = np.ones((2, 2, 3), np.float32)
    model = models.additive_image(w)
    X = np.stack([np.full((2, 2, 3), 10.0),
                  np.repeat(np.array([[1.0, 2.0], [3.0, 4.0]])[..., None], 3, -1)])
    A = pixel_sign_attr([[[1, 1], [-1, -1]], [[-1, -1], [-1, 1]]])
    A[0] = 0.0                                    # image 0: the metric is undefined
    with pytest.warns(RuntimeWarning, match=r"image\(s\) \[0\]"):
        table = metric_table(AverageDrop(model, sess), {"m": A}, X)
    assert np.isnan(table.values[0, 0])
    assert table.values[0, 1] == pytest.approx(60.0)   # as when scored alone
    assert table.mean[0] == pytest.approx(60.0)
    w, x = ablation_setup(14)
    model = models.additive_image(w)
    X = np.stack([x, x[:, ::-1]])
    imp = w * X
    imp[1] = 0.0
    with pytest.warns(RuntimeWarning):
        table = metric_table(Deletion(model, sess, superpixel_size=4), {"m": imp}, X, c=[0, 0])
    assert np.isnan(table.curves["m"][1]).all() and np.isfinite(table.curves["m"][0]).all()
    with pytest.raises(ValueError, match="undefined for an all-zero attribution"):
        metric_table(Deletion(model, sess, superpixel_size=4), {"m": 0 * imp}, X, c=0)


# ------------------------------------------------------------------ the real model

@pytest.mark.slow
def test_metrics_on_default_model(default_model, sample_data):
    model, sess = default_model
    X = np.asarray(sample_data[0][:2], np.float32)
    rng = np.random.RandomState(0)
    A = rng.normal(size=X.shape[:3])                 # RandomAttribution-like pixel maps
    with sess.graph.as_default():
        metrics = {"AverageDrop": AverageDrop(model, sess, progress=False),
                   "N_Ord": N_Ord(model, sess, M=1000, progress=False),
                   # 7 x 7 superpixels, 8 points per curve: keeps the test short
                   "Insertion": Insertion(model, sess, superpixel_size=32, step=7,
                                          progress=False),
                   "Deletion": Deletion(model, sess, superpixel_size=32, step=7,
                                        progress=False)}
    seconds = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for name, m in metrics.items():
            t0 = time.perf_counter()
            out = m.per_image(X, A)
            seconds[name] = (time.perf_counter() - t0) / len(X)
            assert out.shape == (2,) and np.all(np.isfinite(out)), (name, out)
            if name in ("Insertion", "Deletion"):
                assert np.all((out >= 0) & (out <= 1))
    print("seconds per image:", {k: round(v, 2) for k, v in seconds.items()})
