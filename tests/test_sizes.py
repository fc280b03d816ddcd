"""Every method and metric at the model's own size (issue 20): the defaults the homework
fixes at 224 x 224 scale with the image and keep their values at 224; occlusion windows
and superpixels that do not divide the image; grayscale, non-square inputs through every
method and metric; PAIR saliency's occlusion tests recreated on :class:`Occlusion`."""
import numpy as np
import pytest
import tensorflow as tf

import hw3_attribution as A
from hw3_attribution import Occlusion, scaled_count, scaled_size
from hw3_evaluation import Deletion, Insertion, N_Ord, num_feats, superpixel_sums
from helpers import CountingSession, tensors
from models import Model, additive_image

tf1 = tf.compat.v1


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


# ------------------------------------------------------------------ scaled defaults

def test_scaled_defaults_are_the_homeworks_at_224():
    assert scaled_size(8, 224, 224) == 8 and scaled_count(1000, 224, 224) == 1000
    assert scaled_count(1, 224, 224) == 1
    # 64 x 48: the side of a square of the same area is sqrt(3072) = 55.4 px
    assert scaled_size(8, 64, 48) == 2                     # 8 * 55.4 / 224 = 1.98
    assert scaled_count(1000, 64, 48) == 61                # 1000 * 3072 / 50176 = 61.2
    assert scaled_count(1, 64, 48) == 1 and scaled_size(8, 4, 4) == 1   # at least 1
    assert scaled_size(8, 448, 448) == 16 and scaled_count(1000, 448, 448) == 4000
    assert scaled_count(1, 448, 448) == 4


def test_defaults_at_224_are_the_homeworks_numbers(sess):
    """At 224 x 224 a default call gives exactly what the homework's 8, 1000 and step 1
    give (an additive model: cheap rows)."""
    rng = np.random.RandomState(0)
    w = rng.normal(0, 1, (224, 224, 3)).astype(np.float32) / 3000
    model = additive_image(w)
    x = rng.uniform(0, 255, (224, 224, 3)).astype(np.float32)
    attr = rng.normal(size=(224, 224))
    args = (sess, attr, x, model.imgs, model.logits, 0)
    d = N_Ord(*args, return_details=True, batch_size=64, progress=False)
    assert d["steps"][0] == -(-d["positives"][0] // 1000)          # M = 1000
    assert N_Ord(*args, batch_size=64) == N_Ord(*args, 1000, batch_size=64)
    curve, xs = Deletion(*args, batch_size=256, progress=False)
    np.testing.assert_array_equal(xs, np.arange(785))              # 28 x 28 superpixels
    same, _ = Deletion(*args, superpixel_size=8, step=1, batch_size=256, progress=False)
    np.testing.assert_array_equal(curve, same)


# ---------------------------------------------------------------------- occlusion

def pair_occlusion_model(kind):
    """PAIR's occlusion test models on a 5 x 5 image, as ``[None, 5, 5, 1]`` images with a
    ``[None, 1]`` output (ours has a channel axis and a class axis): tf1's
    ``y = 3 x[1,1] + 3 x[3,3]``, core's ``y = 3 Σ x``."""
    x = tf1.placeholder(tf.float32, [None, 5, 5, 1])
    if kind == "tf1":
        y = x[:, 1, 1, 0] * 3 + x[:, 3, 3, 0] * 3
    else:
        y = tf.reduce_sum(x, axis=[1, 2, 3]) * 3
    return Model(x, tf.stack([y], axis=1), name=f"pair_occlusion_{kind}")


PAIR_IMAGE = np.zeros((5, 5, 1))
PAIR_IMAGE[1, 1] = PAIR_IMAGE[3, 3] = 1.0
PAIR_MASK = np.array([[3., 6., 6., 3., 0.],           # PAIR's expected_val / ref_mask
                      [6., 15., 18., 12., 3.],
                      [6., 18., 24., 18., 6.],
                      [3., 12., 18., 15., 6.],
                      [0., 3., 6., 6., 3.]])


def windows_covering(h, w, size, stride):
    """How many windows cover each pixel (the windows of A.patch_starts)."""
    cover = np.zeros((h, w))
    for i in A.patch_starts(h, size, stride):
        for j in A.patch_starts(w, size, stride):
            cover[i:i + size, j:j + size] += 1
    return cover


@pytest.mark.parametrize("kind", ["tf1", "core"])
def test_pair_occlusion_window_3_on_5x5(sess, kind):
    """PAIR's ``testOcclsuionGetMask`` (tf1) and ``testOcclusionGetMask`` (core): a 3-pixel
    window slid by one pixel over a 5 x 5 image, value 0, 10 session calls (one for the
    input, one per window: ours at batch_size=1). Adaptation: PAIR sums a pixel's window
    scores where ours averages them, so ours is PAIR's map divided by the number of
    windows that cover each pixel (Occlusion's docstring)."""
    model = pair_occlusion_model(kind)
    spy = CountingSession(sess)
    occ = Occlusion(spy, *tensors(model), 0)
    mask = occ(PAIR_IMAGE, batch_size=1, superpixel_size=3, stride=1)
    cover = windows_covering(5, 5, 3, 1)
    np.testing.assert_allclose(mask * cover, PAIR_MASK, atol=0.01)   # PAIR's atol
    np.testing.assert_allclose(mask * cover, PAIR_MASK, rtol=1e-6)   # float32 rounding
    assert spy.calls == 10                                           # PAIR's expected_calls
    assert cover[2, 2] == 9 and cover[0, 0] == 1


def test_occlusion_window_that_does_not_divide_the_image(sess):
    """A 3-pixel window on a 5 x 5 image with the default stride (3): windows at 0 and at
    2 = 5 - 3 (the last aligned with the edge), so rows and columns 2 are covered twice and
    get the mean of the two windows' drops. On the additive model a window's drop is the
    sum of w * x inside it."""
    rng = np.random.RandomState(3)
    w = rng.normal(size=(5, 5, 2)).astype(np.float32)
    x = rng.uniform(0, 255, (5, 5, 2)).astype(np.float32)
    model = additive_image(w)
    got = Occlusion(sess, *tensors(model), 0)(x, superpixel_size=3)
    contrib = (w * x).sum(-1).astype(np.float64)
    want = np.zeros((5, 5))
    cover = np.zeros((5, 5))
    for i in (0, 2):
        for j in (0, 2):
            want[i:i + 3, j:j + 3] += contrib[i:i + 3, j:j + 3].sum()
            cover[i:i + 3, j:j + 3] += 1
    np.testing.assert_allclose(got, want / cover, rtol=1e-4)
    assert A.patch_starts(5, 3, 3) == [0, 2] and A.patch_starts(224, 8, 8)[-1] == 216


# ------------------------------------------------------------- Insertion / Deletion

def test_superpixels_that_do_not_divide_the_image(sess):
    """5 x 7 image, superpixels of 2: a 3 x 4 grid whose last row is 1 pixel high and last
    column 1 pixel wide. Deletion removes them in order of their summed importance; on the
    additive model each removal lowers f_0 by the sum of w * x over the superpixel."""
    rng = np.random.RandomState(4)
    w = (rng.normal(size=(5, 7, 3)) / 500).astype(np.float32)
    x = rng.uniform(0, 255, (5, 7, 3)).astype(np.float32)
    model = additive_image(w)
    pix = rng.normal(size=(5, 7))
    grid = np.zeros((3, 4))
    contrib = np.zeros((3, 4))
    c = (w * x).sum(-1).astype(np.float64)
    for i in range(5):
        for j in range(7):
            grid[i // 2, j // 2] += pix[i, j]
            contrib[i // 2, j // 2] += c[i, j]
    np.testing.assert_allclose(superpixel_sums(pix, 2), grid)
    order = np.argsort(-grid.ravel(), kind="stable")
    left = c.sum() - np.concatenate([[0.0], np.cumsum(contrib.ravel()[order])])
    curve, xs = Deletion(sess, pix, x, model.imgs, model.logits, 0, superpixel_size=2)
    np.testing.assert_array_equal(xs, num_feats(12))
    np.testing.assert_allclose(curve, sigmoid(left), rtol=1e-5)
    same, _ = Deletion(sess, grid, x, model.imgs, model.logits, 0, superpixel_size=2)
    np.testing.assert_allclose(same, curve)                  # the grid [3, 4] itself
    ins, _ = Insertion(sess, pix, x, model.imgs, model.logits, 0, superpixel_size=2)
    assert ins[0] == pytest.approx(0.5) and ins[-1] == pytest.approx(sigmoid(c.sum()), 1e-5)


# ----------------------------------------------------- grayscale, non-square inputs

GRAY = (64, 48, 1)


def gray_methods(sess, model):
    """Every method on the 64 x 48 x 1 model, with the keywords of a quick call."""
    from attrkit.methods.pair import XRAI, BlurIG, GuidedBackprop, GuidedIG
    from hw3_attribution import (GradCAM, IntegratedGrad, RandomAttribution, SaliencyMap,
                                 SmoothGrad, VanillaGradient)
    x, out = tensors(model)
    return {
        "xrai": (XRAI(sess, x, out, None), {"num_steps": 3}),     # Felzenszwalb's segments
        "guided_ig": (GuidedIG(sess, x, out, None), {"num_steps": 3}),
        "blur_ig": (BlurIG(sess, x, out, None), {"num_steps": 3, "max_sigma": 5}),
        "guided_backprop": (GuidedBackprop(sess, x, out, None), {}),
        "saliency": (SaliencyMap(sess, x, out, None), {}),
        "ig": (IntegratedGrad(sess, x, out, None), {"num_steps": 4}),
        "vanilla": (VanillaGradient(sess, x, out, None), {}),
        "smoothgrad": (SmoothGrad(sess, x, out, None), {"samples": 3}),
        "gradcam": (GradCAM(sess, x, out, None, model.layers["conv2"]), {}),
        "occlusion": (Occlusion(sess, x, out, None), {}),          # default: 2 x 2 patches
        "random": (RandomAttribution(sess, x, out, None), {}),
    }


@pytest.fixture(scope="module")
def gray():
    """A 5-class tiny conv net on grayscale 64 x 48 images, two images, every method's
    maps: (sess, model, X, maps)."""
    from models import tiny_convnet
    graph = tf.Graph()
    with graph.as_default():
        sess = tf1.Session(graph=graph)
        model = tiny_convnet(size=64, width=48, channels=1, classes=5)
        X = np.random.RandomState(0).uniform(0, 255, (2,) + GRAY).astype(np.float32)
        maps = {name: m(X, **kw) for name, (m, kw) in gray_methods(sess, model).items()}
    yield sess, model, X, maps
    sess.close()


def test_every_method_on_grayscale_non_square_images(gray):
    sess, model, X, maps = gray
    for name, A_ in maps.items():
        assert A_.shape in ((2, 64, 48, 1), (2, 64, 48)), name
        assert np.all(np.isfinite(A_)) and np.any(A_ != 0), name
    occ = maps["occlusion"]
    assert occ.shape == (2, 64, 48)
    # default patches are 2 x 2 (scaled from 8 at 224): constant on each 2 x 2 block
    np.testing.assert_array_equal(occ[:, ::2, ::2], occ[:, 1::2, 1::2])


def test_influence_on_grayscale_non_square_images(gray):
    from hw3_infl import InflDirected
    sess, model, X, _ = gray
    with sess.graph.as_default():
        infl = InflDirected(sess, model.imgs, model.layers["pool"], model.logits, 0)
    expert = infl.dis_influence(X)
    attr = infl.expert_attribution(expert, X)
    assert attr.shape == (2,) + GRAY and np.all(np.isfinite(attr))


# XRAI's maps here have no positive region (the predicted class scores higher on the white
# baseline than on the image): N_Ord is NaN for them, with a warning
@pytest.mark.filterwarnings("ignore:Necessity Ordering is undefined")
def test_every_metric_on_grayscale_non_square_images(gray):
    from hw3_evaluation import AverageDrop
    sess, model, X, maps = gray
    x, out = tensors(model)
    with sess.graph.as_default():
        for name, A_ in maps.items():
            assert np.isfinite(AverageDrop(sess, A_, X, x, out, None))
            d = N_Ord(sess, A_, X, x, out, None, return_details=True)   # M = 61
            P = d["positives"]
            np.testing.assert_array_equal(d["steps"], -(-P // 61))
            for metric in (Insertion, Deletion):
                curves, xs = metric(sess, A_, X, x, out, None, batch_size=256)
                assert curves.shape == (2, 32 * 24 + 1), name          # 2 x 2 superpixels
                assert np.all((curves >= 0) & (curves <= 1))
