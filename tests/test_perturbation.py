"""The perturbation methods (issue 25): LIME, KernelSHAP, FeatureAblation and RISE, and the
segmentations they share.

Each method against a case known by hand or by brute force on a small graph built here:
KernelSHAP with every coalition equals the Shapley values computed over all coalitions by
calling the model on the masked images; on a model additive in the segments KernelSHAP
(sampled) and FeatureAblation give each segment its contribution and LIME gives the
ridge's shrinkage of it, computed in closed form from the same samples; RISE on a linear
model approaches its expectation, derived from the paper's masks (skimage's bilinear
resize). Then the engine's discipline: batch = one by one, seeded determinism, no graph
growth, session-call counts, and bad input.
"""
import itertools
import math

import numpy as np
import pytest
import tensorflow as tf

import hw3_attribution as A
from attrkit.methods import perturbation as P
from attrkit.methods import segmentation as S
from attrkit.methods.perturbation import RISE, LIME, FeatureAblation, KernelSHAP
from helpers import CountingSession, chunks, n_ops, raises_exactly, tensors
from models import Model, additive_image

tf1 = tf.compat.v1

# A 6 x 6 label map of 5 irregular segments (labels not in order of appearance).
LABELS = np.array([[3, 3, 0, 0, 0, 1],
                   [3, 3, 0, 0, 1, 1],
                   [3, 4, 4, 0, 1, 1],
                   [2, 4, 4, 4, 1, 1],
                   [2, 2, 4, 4, 1, 1],
                   [2, 2, 2, 2, 2, 1]])


def toy_model(ignore=None):
    """A nonlinear model of 6 x 6 x 2 images in 0-255: with a = Σ w1·x, b = Σ w2·x,
    f0 = tanh(a)·b + relu(a + b - 0.5)², f1 = -a; ``ignore`` a segment of :data:`LABELS`
    that neither weight sees."""
    rng = np.random.RandomState(3)
    w1, w2 = (rng.normal(0, 1, (2, 6, 6, 2)) / 150).astype(np.float32)
    if ignore is not None:
        keep = (LABELS != ignore)[..., None].astype(np.float32)
        w1, w2 = w1 * keep, w2 * keep
    x = tf1.placeholder(tf.float32, [None, 6, 6, 2], name="imgs")
    a = tf.reduce_sum(x * w1, [1, 2, 3])
    b = tf.reduce_sum(x * w2, [1, 2, 3])
    f0 = tf.tanh(a) * b + tf.nn.relu(a + b - 0.5) ** 2
    return Model(x, tf.stack([f0, -a], 1), name="toy")


def toy_images(n=3, seed=2):
    return np.random.RandomState(seed).uniform(0, 255, (n, 6, 6, 2)).astype(np.float32)


def masked(x, baseline, labels, on):
    """x with the segments of ``on = 0`` at the baseline (numpy)."""
    keep = np.asarray(on)[labels][..., None].astype(bool)
    return np.where(keep, x, baseline)


def brute_force_shapley(sess, model, x, baseline, labels, c):
    """Shapley values of v(S) = f_c(x with the segments outside S at the baseline), every
    coalition run through the model."""
    m = labels.max() + 1
    subsets = list(itertools.product([0, 1], repeat=m))
    rows = np.stack([masked(x, baseline, labels, z) for z in subsets])
    v = dict(zip(subsets, sess.run(model.logits, {model.imgs: rows})[:, c].astype(np.float64)))
    phi = np.zeros(m)
    for z in subsets:
        size = sum(z)
        for i in range(m):
            if z[i] == 0:
                with_i = z[:i] + (1,) + z[i + 1:]
                weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
                phi[i] += weight * (v[with_i] - v[z])
    return phi, v[(1,) * m], v[(0,) * m]


# ================================================================== segmentations

def blocks(n=2, side=32, seed=0):
    """Images of 2 x 2 blocks of red, green, blue and white (in an order of their own) with
    a little noise: four clear segments."""
    rng = np.random.RandomState(seed)
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]], float)
    out = [np.kron(palette[rng.permutation(4)].reshape(2, 2, 3),
                   np.ones((side // 2, side // 2, 1))) + rng.normal(0, 3, (side, side, 3))
           for _ in range(n)]
    return np.clip(np.round(out), 0, 255).astype(np.float32)


@pytest.mark.parametrize("kind", [None] + list(S.SEGMENT_KINDS))
def test_each_kind_gives_labels_0_to_s_minus_1(kind):
    X = blocks()
    labels, counts = S.segment_labels(kind, X)
    assert labels.shape == (2, 32, 32) and labels.dtype == np.int32
    for lab, count in zip(labels, counts):
        np.testing.assert_array_equal(np.unique(lab), np.arange(count))
        assert count >= 2


def test_quickshift_default_is_limes_on_the_image_as_a_photo():
    """lime 0.2.0.1's default: quickshift(image, kernel_size=4, max_dist=200, ratio=0.2);
    our 0-255 floats are segmented as the uint8 photo they stand for."""
    from skimage.segmentation import quickshift
    assert S.LIME_QUICKSHIFT == {"kernel_size": 4, "max_dist": 200, "ratio": 0.2}
    X = blocks()
    labels, _ = S.segment_labels(None, X)
    for x, lab in zip(X, labels):
        want = quickshift(x.astype(np.uint8), kernel_size=4, max_dist=200, ratio=0.2)
        np.testing.assert_array_equal(lab, np.unique(want, return_inverse=True)[1]
                                      .reshape(want.shape))


def test_grid_cells_scale_with_the_image():
    assert S.segment_labels("grid", np.zeros((1, 224, 224, 3)))[1][0] == 14 * 14   # 16 px
    lab = S.segment_labels("grid", np.zeros((1, 10, 7, 3)))[0][0]                  # 1 px
    np.testing.assert_array_equal(lab, np.arange(70).reshape(10, 7))
    lab = S.segment_labels("grid", np.zeros((1, 56, 60, 3)))[0][0]                 # 4 px
    assert lab[3, 3] == 0 and lab[4, 0] == 15 and lab[55, 59] == 13 * 15 + 14


def test_label_maps_are_relabelled_in_order():
    X = np.zeros((2, 2, 3, 1), np.float32)
    shared = np.array([[9, -3, 9], [5, 5, -3]])
    labels, counts = S.segment_labels(shared, X)
    np.testing.assert_array_equal(labels[1], [[2, 0, 2], [1, 1, 0]])
    np.testing.assert_array_equal(counts, [3, 3])
    per_image = np.stack([shared, np.array([[0, 0, 0], [7, 7, 7]])])
    labels, counts = S.segment_labels(per_image, X)
    np.testing.assert_array_equal(labels[1], [[0, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(counts, [3, 2])


def test_without_scikit_image_the_kinds_say_what_to_do(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "skimage", None)
    X = blocks(1)
    for kind in (None, "slic", "felzenszwalb", "quickshift"):
        with raises_exactly(ImportError, S.SKIMAGE_KIND_ERROR.format(kind=kind or "quickshift")):
            S.segment_labels(kind, X)
    assert S.segment_labels("grid", X)[1][0] == 16 * 16                  # 2 px cells


def test_segment_means_are_limes_hidden_image():
    """lime's hide_color=None: every segment filled with its mean colour per channel."""
    X = toy_images(2)
    labels = np.stack([LABELS, LABELS.T])
    got = S.segment_means(X, labels)
    for x, lab, g in zip(X, labels, got):
        want = x.copy()
        for s in np.unique(lab):
            want[lab == s] = x[lab == s].mean(axis=0)
        np.testing.assert_allclose(g, want, rtol=1e-6)


# ================================================================== KernelSHAP

@pytest.mark.parametrize("baseline", ["black", "white", "array"])
def test_kernel_shap_enumerated_is_exactly_shapley(sess, baseline):
    model = toy_model()
    X = toy_images()
    b = {"black": np.zeros((6, 6, 2)), "white": np.full((6, 6, 2), 255.0),
         "array": np.random.RandomState(5).uniform(0, 255, (6, 6, 2))}[baseline]
    shap = KernelSHAP(sess, *tensors(model), 0)
    maps, info = shap(X, segments=LABELS, baseline=b if baseline == "array" else baseline,
                      return_details=True)
    assert info["exact"].all() and list(info["coalitions"]) == [2 ** 5 - 2] * 3
    for i, x in enumerate(X):
        phi, f_x, f_b = brute_force_shapley(sess, model, x, b.astype(np.float32), LABELS, 0)
        np.testing.assert_allclose(info["values"][i], phi, rtol=1e-5,
                                   atol=1e-6 * np.abs(phi).max())
        np.testing.assert_allclose(maps[i], phi[LABELS], rtol=1e-5,
                                   atol=1e-6 * np.abs(phi).max())
        # efficiency, to float32 rounding of the two scores
        assert info["values"][i].sum() == pytest.approx(f_x - f_b, rel=1e-6, abs=1e-6)


def test_kernel_shap_gives_an_ignored_segment_zero(sess):
    model = toy_model(ignore=4)
    values = KernelSHAP(sess, *tensors(model), 0)(toy_images(), segments=LABELS,
                                                  return_details=True)[1]["values"]
    for v in values:
        assert v[4] == 0.0 and np.all(v[:4] != 0)


def additive_case(seed=0, side=8, channels=3):
    """A model additive in the pixels (f0 = Σ w·x), images, and a label map of 12 strips."""
    rng = np.random.RandomState(seed)
    w = rng.normal(0, 0.1, (side, side, channels)).astype(np.float32)
    X = rng.uniform(0, 255, (2, side, side, channels)).astype(np.float32)
    labels = np.arange(side * side).reshape(side, side) * 12 // (side * side)
    return additive_image(w), w, X, labels


def contributions(w, X, labels, baseline=0.0):
    """Each segment's contribution to f0 = Σ w·x: Σ over its pixels of w·(x - baseline)."""
    per_pixel = (w * (X - baseline)).sum(-1)                                    # [N, H, W]
    return np.stack([np.bincount(labels.ravel(), weights=p.ravel()) for p in per_pixel])


def test_kernel_shap_sampled_recovers_an_additive_model(sess):
    """With fewer coalitions than 2^M - 2 (shap's sampling), a model additive in the
    segments still gets each segment's contribution: it is the least squares' exact fit."""
    model, w, X, labels = additive_case()
    maps, info = KernelSHAP(sess, *tensors(model), 0)(X, segments=labels, num_samples=60,
                                                      seed=1, return_details=True)
    assert not info["exact"].any() and list(info["coalitions"]) == [60, 60]
    want = contributions(w, X, labels)
    np.testing.assert_allclose(np.stack(info["values"]), want, rtol=1e-4,
                               atol=1e-5 * np.abs(want).max())


def test_shap_coalitions_enumerate_then_sample_as_shap():
    """Every coalition when the budget allows, weighted by the Shapley kernel; otherwise
    the whole sizes that fit first (paired), then sampled ones."""
    m = 5
    masks, weights = P.shap_coalitions(m, None, np.random.RandomState(0))
    assert len(masks) == 2 ** m - 2 == len({tuple(z) for z in masks})
    s = masks.sum(1)
    kernel = (m - 1) / (np.array([math.comb(m, k) for k in s]) * s * (m - s))
    np.testing.assert_allclose(weights, kernel / kernel.sum())
    masks, weights = P.shap_coalitions(10, 100, np.random.RandomState(0))
    assert len(masks) == 100 and weights.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(masks[:20].sum(1), [1, 9] * 10)    # size 1, paired
    assert set(masks[20:].sum(1)) <= set(range(2, 9))


# ================================================================== LIME

def test_lime_samples_are_limes_draws():
    """LimeImageExplainer(random_state=seed): one randint(0, 1000) for its segmentation
    seed, then randint(0, 2, num_samples·S), the first sample all 1."""
    rng = np.random.RandomState(7)
    rng.randint(0, high=1000)
    want = rng.randint(0, 2, 30 * 4).reshape(30, 4)
    want[0, :] = 1
    np.testing.assert_array_equal(P.lime_samples(np.random.RandomState(7), 4, 30), want)


def test_lime_fit_is_sklearns_ridge_and_distances():
    from sklearn.linear_model import Ridge
    from sklearn.metrics import pairwise_distances
    rng = np.random.RandomState(0)
    z = P.lime_samples(rng, 7, 40).astype(np.float64)
    z[5] = 0                                             # an all-hidden sample: distance 1
    y = rng.normal(0, 1, 40) + z @ rng.normal(0, 1, 7)
    fit = P.lime_fit(z, y, 0.25)
    d = pairwise_distances(z, z[0].reshape(1, -1), metric="cosine").ravel()
    np.testing.assert_allclose(fit["weights"], np.sqrt(np.exp(-d ** 2 / 0.25 ** 2)),
                               atol=1e-12)
    ridge = Ridge(alpha=1, fit_intercept=True).fit(z, y, sample_weight=fit["weights"])
    np.testing.assert_allclose(fit["coef"], ridge.coef_, rtol=1e-8, atol=1e-10)
    assert fit["intercept"] == pytest.approx(ridge.intercept_, rel=1e-8)
    assert fit["score"] == pytest.approx(ridge.score(z, y, sample_weight=fit["weights"]),
                                         rel=1e-8)
    assert fit["local_pred"] == pytest.approx(ridge.predict(z[:1])[0], rel=1e-8)


def test_lime_on_an_additive_model_is_the_ridge_shrinkage_of_the_contributions(sess):
    """y = f(baseline) + z · a exactly, so the weighted ridge's coefficients are
    (Zcᵀ Π Zc + I)⁻¹ Zcᵀ Π Zc a, computed here from the same samples and weights."""
    model, w, X, labels = additive_case()
    maps, info = LIME(sess, *tensors(model), 0)(X, segments=labels, num_samples=300, seed=3,
                                                return_details=True)
    a = contributions(w, X, labels)
    for i in range(2):
        z = info["samples"][i].astype(np.float64)
        pi = info["weights"][i]
        np.testing.assert_allclose(info["scores"][i], z @ a[i], rtol=1e-5,
                                   atol=1e-5 * np.abs(a[i]).sum())
        zc = z - np.average(z, axis=0, weights=pi)
        gram = zc.T @ (pi[:, None] * zc)
        want = np.linalg.solve(gram + np.eye(12), gram @ a[i])
        np.testing.assert_allclose(info["coefficients"][i], want, rtol=1e-4,
                                   atol=1e-5 * np.abs(want).max())
        np.testing.assert_allclose(maps[i], want[labels], rtol=1e-4,
                                   atol=1e-5 * np.abs(want).max())
        np.testing.assert_allclose(want, a[i], rtol=0.1)        # the shrinkage is small
        assert info["local_pred"][i] == pytest.approx(info["intercept"][i] + want.sum(),
                                                      rel=1e-4)
        assert 0.99 < info["score"][i] <= 1.0


def test_lime_mean_baseline_hides_with_segment_means(sess):
    """baseline='mean' (lime's hide_color=None): a hidden segment takes its mean colour,
    so on the additive model its contribution is Σ w·(x - mean)."""
    model, w, X, labels = additive_case()
    info = LIME(sess, *tensors(model), 0)(X, segments=labels, num_samples=50, seed=0,
                                          baseline="mean", return_details=True)[1]
    hidden = S.segment_means(X, np.stack([labels] * 2))
    a = np.stack([np.bincount(labels.ravel(), weights=(w * (x - h)).sum(-1).ravel())
                  for x, h in zip(X, hidden)])
    for i in range(2):
        z = info["samples"][i].astype(np.float64)
        offset = info["scores"][i] - z @ a[i]                      # f(hidden image)
        np.testing.assert_allclose(offset, offset[0], atol=1e-4 * np.abs(a).sum())


# ================================================================== FeatureAblation

def test_feature_ablation_by_hand(sess):
    model, w, X, labels = additive_case()
    values = FeatureAblation(sess, *tensors(model), 0)(X, segments=labels, baseline="white",
                                                       return_details=True)[1]["values"]
    want = contributions(w, X, labels, baseline=255.0)
    np.testing.assert_allclose(np.stack(values), want, rtol=1e-4,
                               atol=1e-5 * np.abs(want).max())


def test_feature_ablation_of_a_nonlinear_model(sess):
    model = toy_model()
    X = toy_images()
    maps = FeatureAblation(sess, *tensors(model), 1)(X, segments=LABELS)
    for x, m in zip(X, maps):
        f = sess.run(model.logits, {model.imgs: np.stack(
            [x] + [masked(x, 0.0, LABELS, np.arange(5) != s) for s in range(5)])})[:, 1]
        np.testing.assert_allclose(m, (f[0] - f[1:])[LABELS], rtol=1e-5, atol=1e-5)


# ================================================================== RISE

def upsampling_twin(cells, length):
    """The paper's upsampling as a matrix [up, cells]: skimage's resize(order=1,
    mode='reflect', anti_aliasing=False) of each one-hot column."""
    from skimage.transform import resize
    up = (cells + 1) * math.ceil(length / cells)
    return np.stack([resize(np.eye(cells)[:, i:i + 1], (up, 1), order=1, mode="reflect",
                            anti_aliasing=False)[:, 0] for i in range(cells)], 1)


def test_rise_masks_are_the_papers(sess):
    """The graph's masks: the stateless grid < p, resized by skimage as the paper's code
    does (bilinear, mirrored edges), cropped at the row's shift."""
    model, _, X, _ = additive_case(side=10)
    run = A.ModelRunner(sess, *tensors(model), "RISE")
    seeds = np.stack([np.full(6, 11), np.arange(6)], 1)
    shifts = np.array([[0, 0], [3, 1], [1, 3], [2, 2], [3, 3], [0, 2]], np.int32)
    rows = A.Rows.gridded(np.zeros(6, int), A.BLACK, seeds, shifts, 3, 0.4, np.zeros(6))
    got = run.run_rows(rows, A.ImageBank(X), ["weights"], 4, "masks")["weights"]
    grid = sess.run(tf.map_fn(lambda s: tf.random.stateless_uniform([3, 3], seed=s,
                                                                    dtype=tf.float64),
                              tf.constant(seeds), fn_output_signature=tf.float64)) < 0.4
    from skimage.transform import resize
    for r in range(6):
        up = resize(grid[r].astype(np.float64), (16, 16), order=1, mode="reflect",
                    anti_aliasing=False)
        np.testing.assert_allclose(got[r], up[shifts[r, 0]:shifts[r, 0] + 10,
                                              shifts[r, 1]:shifts[r, 1] + 10], atol=1e-6)


def test_rise_on_a_linear_model_approaches_its_expectation(sess):
    """f = Σ_p v_p m_p (v_p = Σ_c w·x at pixel p). A mask pixel is m_p = Σ_ij a_p,ij g_ij
    with interpolation weights a_p summing to 1 and independent cells g of mean p, so
    E[m_p m_q] = p² + p(1-p)·E_shift⟨a_p, a_q⟩ and E[f m_q] / E[m_q] = p·Σ_p v_p +
    (1-p)·Σ_p v_p·G_h[h_p, h_q]·G_w[w_p, w_q], G the shift-averaged Gram matrices of the
    paper's upsampling (:func:`upsampling_twin`)."""
    model, w, X, _ = additive_case(side=8)
    keep, cells = 0.5, 3
    maps = RISE(sess, *tensors(model), 0)(X, num_masks=20000, cell_size=cells, p=keep,
                                          seed=4, batch_size=5000)
    U = upsampling_twin(cells, 8)
    crops = [U[d:d + 8] for d in range(math.ceil(8 / cells))]
    G = np.mean([c @ c.T for c in crops], axis=0)                              # [8, 8]
    for x, m in zip(X, maps):
        v = (w * x).sum(-1)
        want = keep * v.sum() + (1 - keep) * G @ v @ G.T
        np.testing.assert_allclose(m, want, atol=0.05 * np.abs(want).max())


def test_rise_map_is_the_score_weighted_mean_of_its_masks(sess):
    """The map is Σ_m f(x ⊙ m)·m / Σ_m m over the masks the graph builds (seed (seed,
    m), shifts from RandomState(seed)), fetched here row by row."""
    model = toy_model()
    X = toy_images(2)
    maps, info = RISE(sess, *tensors(model), 1)(X, num_masks=30, cell_size=4, p=0.3, seed=9,
                                                return_details=True)
    run = A.ModelRunner(sess, *tensors(model), "RISE")
    shifts = P.rise_shifts(np.random.RandomState(9), 30, 4, 6, 6)
    seeds = np.stack([np.full(30, 9), np.arange(30)], 1)
    for i, x in enumerate(X):
        rows = A.Rows.gridded(np.full(30, i), A.BLACK, seeds, shifts, 4, 0.3, np.ones(30))
        res = run.run_rows(rows, A.ImageBank(X), ["weights", "score"], 8, "masks")
        m = res["weights"].astype(np.float64)
        f = sess.run(model.logits, {model.imgs: x * m[..., None].astype(np.float32)})[:, 1]
        np.testing.assert_allclose(res["score"], f, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(info["mask_sums"][i], m.sum(0), rtol=1e-6)
        np.testing.assert_allclose(maps[i], (f[:, None, None] * m).sum(0) / m.sum(0),
                                   rtol=1e-5, atol=1e-6)


def test_lime_and_shap_themselves_where_installed(sess):
    """lime 0.2.0.1 and shap 0.51 (not dependencies: skipped where absent) on the same
    game: LimeImageExplainer(random_state=seed) with hide_color=0 and our segments, and
    KernelExplainer on the segments as 0/1 features (background all 0, l1_reg=False,
    numpy.random.seed(seed)), give our values to float64 rounding."""
    lime_image = pytest.importorskip("lime.lime_image")
    shap = pytest.importorskip("shap")
    model = toy_model()
    x = toy_images(1)
    strips = np.arange(36).reshape(6, 6) * 12 // 36

    def scores(z):
        rows = np.stack([masked(x[0], 0.0, strips, zz) for zz in z])
        return sess.run(model.logits, {model.imgs: rows})[:, 0]

    ours = KernelSHAP(sess, *tensors(model), 0)(x, segments=strips, num_samples=40, seed=3,
                                                return_details=True)[1]["values"][0]
    np.random.seed(3)
    theirs = shap.KernelExplainer(scores, np.zeros((1, 12))).shap_values(
        np.ones((1, 12)), nsamples=40, l1_reg=False, silent=True)[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    info = LIME(sess, *tensors(model), 0)(x, segments=strips, num_samples=100, seed=11,
                                          return_details=True)[1]
    explanation = lime_image.LimeImageExplainer(random_state=11).explain_instance(
        x[0].astype(np.float64), lambda im: sess.run(model.logits, {model.imgs: im}),
        labels=(0,), top_labels=None, hide_color=0, num_samples=100,
        segmentation_fn=lambda im: strips)
    coef = np.zeros(12)
    for s, v in explanation.local_exp[0]:
        coef[s] = v
    np.testing.assert_allclose(info["coefficients"][0], coef, rtol=1e-10, atol=1e-12)
    assert info["intercept"][0] == pytest.approx(explanation.intercept[0], rel=1e-10)
    assert info["score"][0] == pytest.approx(explanation.score, rel=1e-10)


# ================================================================== the discipline

@pytest.fixture(scope="module")
def four():
    """The toy model with the four methods built once: (sess, model, calls)."""
    graph = tf.Graph()
    with graph.as_default():
        sess = tf1.Session(graph=graph)
        model = toy_model()
        x, out = tensors(model)
        calls = {
            "lime": (LIME(sess, x, out, 0), dict(segments=LABELS, num_samples=40, seed=1)),
            "shap": (KernelSHAP(sess, x, out, 0), dict(segments=LABELS, seed=1)),
            "shap_sampled": (KernelSHAP(sess, x, out, 0), dict(segments="grid",
                                                               num_samples=50, seed=1)),
            "ablation": (FeatureAblation(sess, x, out, 0), dict(segments=LABELS)),
            "rise": (RISE(sess, x, out, 0), dict(num_masks=60, cell_size=2, seed=1)),
        }
    yield sess, model, calls
    sess.close()


def test_batch_equals_one_by_one_and_repeats_exactly(four):
    sess, model, calls = four
    X = toy_images()
    for name, (method, kw) in calls.items():
        batch = method(X, batch_size=7, **kw)
        assert batch.shape == (3, 6, 6) and batch.dtype == np.float32, name
        np.testing.assert_array_equal(method(X, batch_size=7, **kw), batch, err_msg=name)
        for i in range(3):
            np.testing.assert_allclose(method(X[i], batch_size=5, **kw), batch[i],
                                       rtol=1e-5, atol=1e-6 * np.abs(batch).max(),
                                       err_msg=name)


def test_seeds(four):
    """The same seed gives the same map; another seed another map; None draws one from
    numpy's global generator and says which."""
    sess, model, calls = four
    X = toy_images(1)
    for name in ("lime", "shap_sampled", "rise"):
        method, kw = calls[name]
        kw = dict(kw, seed=None)
        np.testing.assert_array_equal(method(X, **dict(kw, seed=5)),
                                      method(X, **dict(kw, seed=5)), err_msg=name)
        assert not np.array_equal(method(X, **dict(kw, seed=5)), method(X, **dict(kw, seed=6)))
        np.random.seed(0)
        unseeded = method(X, **kw)
        np.testing.assert_array_equal(method(X, **dict(kw, seed=method.last_info["seed"])),
                                      unseeded, err_msg=name)


def test_no_graph_growth_and_second_instances_reuse_ops(four):
    sess, model, calls = four
    X = toy_images(2)
    for method, kw in calls.values():
        method(X, **kw)
    ops = n_ops(sess)
    for method, kw in calls.values():
        method(X, **kw)
        method(X[0], target_class=1, **kw)
    with sess.graph.as_default():
        for cls in (LIME, KernelSHAP, FeatureAblation, RISE):
            cls(sess, *tensors(model), None)
    assert n_ops(sess) == ops


@pytest.mark.parametrize("bs", [1, 6])
def test_session_calls(four, bs):
    """LIME ceil(N·num_samples / bs) (+ the forwards when the target is None);
    KernelSHAP the forwards + ceil(N·(2^M - 2 + 1) / bs); FeatureAblation the forwards +
    ceil(N·S / bs); RISE ceil(N·num_masks / bs)."""
    sess, model, _ = four
    spy = CountingSession(sess)
    x, out = tensors(model)
    n = 2
    X = toy_images(n)
    expected = {
        "lime": (LIME, 1, dict(segments=LABELS, num_samples=9), chunks(n * 9, bs)),
        "lime_predicted": (LIME, None, dict(segments=LABELS, num_samples=9),
                           chunks(n, bs) + chunks(n * 9, bs)),
        "shap": (KernelSHAP, 0, dict(segments=LABELS), chunks(n, bs) + chunks(n * 31, bs)),
        "ablation": (FeatureAblation, 0, dict(segments=LABELS),
                     chunks(n, bs) + chunks(n * 5, bs)),
        "rise": (RISE, 0, dict(num_masks=11, cell_size=2), chunks(n * 11, bs)),
    }
    for name, (cls, target, kw, rows) in expected.items():
        spy.rows, spy.calls = [], 0
        cls(spy, x, out, target, progress=False)(X, batch_size=bs, seed=0, **kw)
        assert spy.rows == rows, name


def test_bad_input_names_the_argument(four):
    sess, model, calls = four
    spy = CountingSession(sess)
    x, out = tensors(model)
    X = toy_images(2)
    lime, shap, rise = LIME(spy, x, out, 0), KernelSHAP(spy, x, out, 0), RISE(spy, x, out, 0)

    def labels_error(actual):
        return S.LABELS_ERROR.format(kinds=list(S.SEGMENT_KINDS), one=[6, 6], batch=[2, 6, 6],
                                     actual=actual)

    with raises_exactly(ValueError, labels_error("a int64 array of shape [6, 5]")):
        lime(X, segments=LABELS[:, :5])
    with raises_exactly(ValueError, labels_error("a int64 array of shape [3, 6, 6]")):
        shap(X, segments=np.stack([LABELS] * 3))
    with raises_exactly(ValueError, labels_error("a float64 array of shape [6, 6]")):
        lime(X, segments=LABELS.astype(float))
    with raises_exactly(ValueError, labels_error("'watershed'")):
        FeatureAblation(spy, x, out, 0)(X, segments="watershed")
    with raises_exactly(ValueError, labels_error("a label map with 1 segment for image 1")):
        shap(X, segments=np.stack([LABELS, np.zeros((6, 6), int)]))
    with raises_exactly(ValueError, A.POSITIVE_INT_ERROR.format(arg="num_samples", actual=0)):
        lime(X, segments=LABELS, num_samples=0)
    with raises_exactly(ValueError, A.POSITIVE_INT_ERROR.format(arg="num_samples", actual=0)):
        shap(X, segments=LABELS, num_samples=0)
    for p in (0, 1, 1.5, -0.2):
        with raises_exactly(ValueError, P.OPEN_FRACTION_ERROR.format(arg="p", actual=p)):
            rise(X, p=p)
    with raises_exactly(TypeError, P.OPEN_FRACTION_ERROR.format(arg="p", actual="half")):
        rise(X, p="half")
    with raises_exactly(ValueError, A.POSITIVE_ERROR.format(arg="kernel_width", actual=0)):
        lime(X, segments=LABELS, kernel_width=0)
    with raises_exactly(ValueError, A.BASELINE_NAME_ERROR.format(
            arg="baseline", expected=list(P.SEGMENT_BASELINES), actual="blur")):
        shap(X, segments=LABELS, baseline="blur")
    assert spy.calls == 0                                  # nothing ran


def test_feed_mode_gives_the_same_maps(monkeypatch):
    """Where the model cannot be copied the rows are fetched and fed (two sess.run per
    chunk): the same maps."""
    X = toy_images(2)
    kw = {LIME: dict(segments=LABELS, num_samples=20, seed=2), KernelSHAP: dict(
        segments=LABELS), FeatureAblation: dict(segments=LABELS), RISE: dict(
        num_masks=20, cell_size=3, seed=2)}
    maps = {}
    for clone in (True, False):
        monkeypatch.setattr(A, "CLONE_MODEL", clone)
        with tf.Graph().as_default() as graph, tf1.Session(graph=graph) as sess:
            model = toy_model()
            for cls, args in kw.items():
                maps[cls, clone] = cls(sess, *tensors(model), 0)(X, **args)
            assert A.row_ops(*tensors(model)).mode == ("clone" if clone else "feed")
    for cls in kw:
        np.testing.assert_allclose(maps[cls, False], maps[cls, True], rtol=1e-5, atol=1e-6)


def test_inputs_that_are_not_images(sess):
    from helpers import XL, W
    from models import linear
    model = linear(W)
    for cls in (LIME, KernelSHAP, FeatureAblation, RISE):
        with raises_exactly(ValueError, A.NOT_IMAGE_ERROR.format(
                arg="X", method=cls.__name__, name=model.imgs.name, actual=[3, 4])):
            cls(sess, *tensors(model), 0)(XL)


@pytest.mark.slow
def test_default_segments_on_the_default_model(default_model, sample_data):
    """lime's quickshift segments of a 224 photo, KernelSHAP's efficiency and LIME's fit on
    the real model (small budgets)."""
    model, sess = default_model
    x = sample_data.X[:1]
    shap, info = KernelSHAP(sess, model.imgs, model.logits, None)(
        x, num_samples=64, seed=0, batch_size=32, return_details=True)
    assert shap.shape == (1, 224, 224) and info["coalitions"][0] == 64
    assert 10 < len(info["values"][0]) < 200
    assert info["values"][0].sum() == pytest.approx(info["f_x"][0] - info["f_baseline"][0],
                                                     rel=1e-5)
    lime = LIME(sess, model.imgs, model.logits, None)(x, num_samples=64, seed=0,
                                                     batch_size=32)
    assert lime.shape == (1, 224, 224) and np.isfinite(lime).all()
