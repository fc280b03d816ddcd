"""PAIR saliency's methods (issue 19): XRAI, Guided IG, Blur IG and Guided Backprop.

PAIR's own tests (saliency 0.2.1: saliency/tf1/*_test.py and saliency/core/*_test.py) are
recreated on our classes with PAIR's graphs, inputs, expected values and tolerances. The
adaptations, each said where it is made:

* PAIR explains a scalar output ``y`` ``[None]``; ours explains a class of pre-softmax
  scores ``[None, K]``: ``y`` becomes ``tf.stack([y], 1)`` and the target class 0.
* PAIR's ``feed_dict={'foo': 'bar'}`` is a mock's argument; ours are fed to a real
  session, so keys must be tensors of the graph: a real extra placeholder stands in.
* PAIR's core tests mock IG; ours computes it, so the mocked IG's output is passed as
  ``base_attribution`` (PAIR's own argument for a precomputed attribution), and the IG
  part is checked against :class:`IntegratedGrad` instead.
* PAIR's IG rule (``linspace(0, 1, S)``, equal weights) is ``method='pair'`` here; with our
  default rule (the homework's right Riemann sum) an expected value changes by that
  rule's documented bias, which the test computes.

Then the issue's own tests: Blur IG completeness, XRAI ranking the evidence's segment
first, a dropout ``keep_prob`` model explained with ``feed_dict``, batch = one by one,
determinism, no graph growth and session-call counts.
"""
import numpy as np
import pytest
import tensorflow as tf
from scipy.ndimage import gaussian_filter

import hw3_attribution as A
from attrkit.methods import pair as P
from attrkit.methods import segmentation as S
from attrkit.methods.pair import XRAI, BlurIG, GuidedBackprop, GuidedIG, GuidedIGPath
from hw3_attribution import IntegratedGrad, SaliencyMap
from helpers import CountingSession, chunks, images, n_ops, raises_exactly, tensors
from models import Model, tiny_convnet

tf1 = tf.compat.v1


def scalar_model(x, y, name):
    """PAIR's ``(x, y)`` with ``y`` ``[None]``, as our contract model: ``[None, 1]``."""
    return Model(x, tf.stack([y], axis=1), name=name)


class FeedSpy(CountingSession):
    """A CountingSession that also keeps every sess.run's feed_dict keys."""

    def __init__(self, sess):
        super().__init__(sess)
        self.feeds = []

    def run(self, fetches, feed_dict=None, **kwargs):
        self.feeds.append(dict(feed_dict or {}))
        return super().run(fetches, feed_dict, **kwargs)


# ====================================================================== Guided IG
# PAIR saliency/tf1/guided_ig_test.py (and core/guided_ig_test.py, the same cases)

def guided(sess, kind):
    x = tf1.placeholder(tf.float32, (None, 2), "input")
    y = {"linear": 2 * x[:, 0] + x[:, 1],                     # 2 x1 + x2
         "indep": 2 * x[:, 0] ** 2 + x[:, 1] ** 2,            # 2 x1² + x2²
         "dep": (2 * x[:, 0] + x[:, 1]) ** 2}[kind]           # (2 x1 + x2)²
    return GuidedIG(sess, *tensors(scalar_model(x, y, kind)), 0)


def test_pair_guided_ig_linear_with_and_without_baseline(sess):
    """testGuidedIGLinearWithBaseline, testLinearWithoutBaseline: a linear function's
    Guided IG is IG, whatever the parameters."""
    gig = guided(sess, "linear")
    mask = gig(np.array([10.0, 5.0]), np.array([-1.0, -3.0]), num_steps=10, fraction=0.1,
               max_dist=0.5)
    np.testing.assert_allclose(mask, [22.0, 8.0])
    mask = gig(np.array([10.0, 5.0]), num_steps=10, fraction=0.1, max_dist=0.5)
    np.testing.assert_allclose(mask, [20.0, 5.0])            # PAIR's x_baseline=None: 0


def test_pair_guided_ig_independent_quadratic(sess):
    """testIndependentQuadratic, ...InputIsLessThanBaseline: independent partials."""
    gig = guided(sess, "indep")
    np.testing.assert_allclose(gig(np.array([3.0, 3.0]), num_steps=1000, fraction=0.1,
                                   max_dist=0.4), [18.0, 9.0], rtol=0.01)
    np.testing.assert_allclose(gig(np.array([0.0, 0.0]), np.array([3.0, 3.0]), num_steps=1000,
                                   fraction=0.1, max_dist=0.4), [-18.0, -9.0], rtol=0.01)


def test_pair_guided_ig_dependent_quadratic(sess):
    """testDependentQuadraticIG (max_dist 0, or fraction 1: IG), ...Unbound (max_dist 1),
    testDependentQuadratic (bounded: complete, between the two)."""
    gig = guided(sess, "dep")
    x = np.array([3.0, 3.0])
    np.testing.assert_allclose(gig(x, num_steps=1000, fraction=0.1, max_dist=0.0),
                               [54.0, 27.0], rtol=0.01)
    np.testing.assert_allclose(gig(x, num_steps=1000, fraction=1.0, max_dist=0.5),
                               [54.0, 27.0], rtol=0.01)
    np.testing.assert_allclose(gig(x, num_steps=1000, fraction=0.1, max_dist=1.0),
                               [72.0, 9.0], rtol=0.01)
    mask = gig(x, num_steps=1000, fraction=0.1, max_dist=0.2)
    assert mask.sum() == pytest.approx(81.0, abs=0.1)
    assert 55.0 < mask[0] < 71.0 and 10.0 < mask[1] < 26.0


def test_guided_ig_path_without_tensorflow():
    """The rule alone (numpy): a batch of inputs, one gradient call per step for all of
    them; an input equal to its baseline takes none and gets zeros."""
    calls = []

    def gradients(inputs, points):                  # f = (2 x1 + x2)²
        calls.append(list(inputs))
        s = 2 * points[:, 0] + points[:, 1]
        return np.stack([4 * s, 2 * s], 1).astype(np.float32)

    x = np.array([[3.0, 3.0], [1.0, 2.0], [0.0, 0.0]])
    attr, info = GuidedIGPath(50, 0.1, 1.0).run(gradients, x, np.zeros_like(x))
    assert calls == [[0, 1]] * 50
    np.testing.assert_array_equal(info["gradients"], [50, 50, 0])
    np.testing.assert_array_equal(attr[2], [0.0, 0.0])
    np.testing.assert_allclose(attr.sum(1)[:2], [81.0, 16.0], rtol=0.05)   # complete


# ======================================================================== Blur IG
# PAIR saliency/tf1/blur_ig_test.py and core/blur_ig_test.py: y = Σ sin x on a 5 x 5 x 1
# image black but for two pixels; each pixel independent, so the expected Blur IG is
# sin(x) - sin(blurred x) per pixel.

MAX_SIGMA = 10
BLUR_IMAGE = np.zeros((5, 5, 1))
BLUR_IMAGE[1, 1, 0], BLUR_IMAGE[2, 2, 0] = 0.5, 1.0


@pytest.fixture
def blur_case(sess):
    x = tf1.placeholder(tf.float32, [None, 5, 5, 1])
    spy = FeedSpy(sess)
    model = scalar_model(x, tf.reduce_sum(tf.sin(x), [1, 2, 3]), "sin")
    expected = np.sin(BLUR_IMAGE) - np.sin(gaussian_filter(
        BLUR_IMAGE, sigma=[MAX_SIGMA, MAX_SIGMA, 0], mode="constant"))
    return BlurIG(spy, *tensors(model), 0), spy, expected


@pytest.mark.parametrize("steps, batch_size, calls", [
    (2000, 1, 2000),    # tf1 testBlurIGGetMask (PAIR's default batch_size=1)
    (1001, 500, 3),     # tf1 testBlurIGGetMaskBatched
    (999, 1000, 1),     # tf1 testBlurIGGetMaskSingleBatch
    (2001, 100, 21),    # core testBlurIGGetMaskBatched
])
def test_pair_blur_ig(blur_case, steps, batch_size, calls):
    big, spy, expected = blur_case
    mask = big(BLUR_IMAGE, max_sigma=MAX_SIGMA, num_steps=steps, batch_size=batch_size)
    # the blurred baseline gives every pixel some attribution
    assert np.count_nonzero(mask) == mask.size
    np.testing.assert_almost_equal(mask, expected, decimal=2)
    assert spy.calls == calls


def test_pair_blur_ig_feed_dict_reaches_every_run(blur_case, sess):
    """testBlurIGGetMaskArgs: the feed_dict reaches sess.run (a real extra placeholder
    stands in for PAIR's mock key 'foo')."""
    big, spy, _ = blur_case
    with sess.graph.as_default():
        extra = tf1.placeholder_with_default(1.0, [], name="foo")
    big(BLUR_IMAGE, max_sigma=MAX_SIGMA, num_steps=5, feed_dict={extra: 2.0})
    assert spy.feeds and all(f[extra] == 2.0 for f in spy.feeds)


def test_blur_ig_blurs_as_scipy(sess):
    """The path points built in the graph are scipy's constant-mode Gaussian blurs."""
    rng = np.random.RandomState(0)
    X = rng.uniform(0, 255, (2, 9, 7, 2)).astype(np.float32)
    sigma = np.array([0.0, 0.6, 3.0, 40.0], np.float32)
    with sess.graph.as_default():
        ph = tf1.placeholder(tf.float32, [None, 9, 7, 2])
        s = tf1.placeholder(tf.float32, [None])
        op = A.gaussian_blur(ph, s)
        diff = A.blur_difference(ph, s, tf.fill(tf.shape(s), 0.01))
    rows = np.repeat(X, 2, axis=0)
    got, got_diff = sess.run([op, diff], {ph: rows, s: sigma})
    for r in range(4):
        want = gaussian_filter(rows[r].astype(np.float64), (sigma[r], sigma[r], 0),
                               mode="constant")
        np.testing.assert_allclose(got[r], want, rtol=1e-5, atol=1e-4)
        # the path's finite difference, as scipy in float64 (no float32 cancellation)
        s1 = float(np.float64(sigma[r]) + np.float64(np.float32(0.01)))
        want = gaussian_filter(rows[r].astype(np.float64), (s1, s1, 0), mode="constant") - want
        np.testing.assert_allclose(got_diff[r], want, atol=2e-5 * np.abs(rows[r]).max())


def test_blur_ig_completeness(sess):
    """Σ BlurIG = f(x) - f(blur(x, max_sigma)) up to quadrature error, which shrinks as
    the steps grow (a smooth model: softplus units)."""
    rng = np.random.RandomState(1)
    x = tf1.placeholder(tf.float32, [None, 8, 8, 3])
    w1 = rng.normal(0, 0.05, (192, 6)).astype(np.float32)
    w2 = rng.normal(0, 1.0, (6, 3)).astype(np.float32)
    h = tf.nn.softplus(tf.matmul(tf.reshape(x / 255.0 * 4.0, [-1, 192]), w1))
    model = Model(x, tf.matmul(h, w2))
    X = rng.uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    big = BlurIG(sess, *tensors(model), None)
    errors = []
    for steps, rtol in ((20, 0.1), (200, 0.01)):
        attr, info = big(X, max_sigma=4, num_steps=steps, return_error=True)
        f = sess.run(model.logits, {x: np.concatenate([X, gaussian_filter(
            X, (0, 4, 4, 0), mode="constant")])})
        c = info["targets"]
        delta = f[[0, 1], c] - f[[2, 3], c]
        np.testing.assert_allclose(info["f_x"] - info["f_baseline"], delta, rtol=1e-4)
        np.testing.assert_allclose(attr.reshape(2, -1).sum(1), delta, rtol=rtol)
        errors.append(info["completeness_error"])
    assert np.all(errors[1] < errors[0]) and np.all(errors[1] < 0.01)


# =========================================================================== XRAI
# PAIR saliency/tf1/xrai_test.py: y = 5 x0 + x1² + 2 x2 on a 1 x 3 "image", two custom
# segments, min_pixel_diff 0 (PAIR's experimental_params), batch_size 9, 100 steps.

def xrai_case(sess):
    x = tf1.placeholder(tf.float32, [None, 3])
    y = 5 * x[:, 0] + x[:, 1] * x[:, 1] + 2 * x[:, 2]
    spy = FeedSpy(sess)
    return XRAI(spy, *tensors(scalar_model(x, y, "xrai")), 0), spy


XRAI_X = np.array([3.0, 2.0, 3.0])
XRAI_BASELINES = np.array([[0.0, 0.0, 3.0], [0.0, 0.0, 0.0]])
XRAI_SEGMENTS = [[True, True, False], [False, False, True]]


@pytest.mark.parametrize("method", ["pair", "riemann_right"])
def test_pair_xrai_functional(sess, method):
    """testXraiFunctional. With PAIR's rule (method='pair') PAIR's expected values exactly;
    with our default rule (the right Riemann sum of 100 steps) the x1² term's IG is
    x1² · (N + 1) / N, not x1²: its integrand is linear in t, and the right sum of t over
    i/N is (N + 1) / (2N). Session calls: PAIR's 2 · ceil(100 / 9) = 24; ours one forward
    (the input and both baselines) and ceil(2 · 100 / 9) = 23 for both paths at once."""
    xrai, spy = xrai_case(sess)
    bias = 1.0 if method == "pair" else 101 / 100
    expected_ig = np.array([[XRAI_X[0] * 5, XRAI_X[1] ** 2 * bias, 0],
                            [XRAI_X[0] * 5, XRAI_X[1] ** 2 * bias, XRAI_X[2] * 2]])
    expected_mask = expected_ig.mean(axis=0)
    expected_mask[0:2] = expected_mask[0:2].mean()           # [9.5, 9.5, 3] for PAIR's rule
    mask, details = xrai(XRAI_X, XRAI_BASELINES, 100, XRAI_SEGMENTS, batch_size=9,
                         min_pixel_diff=0, method=method, return_details=True)
    np.testing.assert_almost_equal(mask, expected_mask, decimal=4)
    np.testing.assert_almost_equal(details["ig"], expected_ig, decimal=4)
    np.testing.assert_almost_equal(details["segments"], [1, 1, 2], decimal=4)
    assert spy.calls == 24 and max(spy.rows) <= 9


def test_pair_xrai_arguments_reach_the_computation(sess):
    """testXraiGetMaskArgs, testXraiGetMaskWithDetailsArgs: PAIR checks that feed_dict,
    baselines, segments, base_attribution, batch_size and steps are handed on; ours has
    no core to hand them to, so the test checks what each one does."""
    xrai, spy = xrai_case(sess)
    with sess.graph.as_default():
        extra = tf1.placeholder_with_default(0.0, [], name="foo")
    base = np.array([1.0, 2.0, 3.0])
    mask = xrai(XRAI_X, XRAI_BASELINES, 900, XRAI_SEGMENTS, batch_size=9,
                base_attribution=base, min_pixel_diff=0, feed_dict={extra: 1.0})
    assert spy.calls == 0                                     # no IG with base_attribution
    np.testing.assert_allclose(mask, [1.5, 1.5, 3.0])         # its own segment means
    xrai(XRAI_X, XRAI_BASELINES, 90, XRAI_SEGMENTS, batch_size=9, min_pixel_diff=0,
         feed_dict={extra: 1.0})
    assert spy.calls == 1 + 20 and all(f[extra] == 1.0 for f in spy.feeds)
    assert spy.rows[1:] == chunks(2 * 90, 9)


# PAIR saliency/core/xrai_test.py: a random 299 x 299 x 3 image and two random "IG"
# attributions (PAIR mocks IG; ours takes their mean as base_attribution).

IMAGE_SIZE = 299


@pytest.fixture(scope="module")
def core_case():
    rng = np.random.RandomState(0)
    graph = tf.Graph()
    with graph.as_default():
        sess = tf1.Session(graph=graph)
        x = tf1.placeholder(tf.float32, [None, IMAGE_SIZE, IMAGE_SIZE, 3])
        model = Model(x, tf.stack([tf.reduce_sum(x, [1, 2, 3])] * 2, 1))
        spy = CountingSession(sess)
        xrai = XRAI(spy, *tensors(model), 0)
    image = rng.rand(IMAGE_SIZE, IMAGE_SIZE, 3) * 0.3 + 0.5
    ig_mask = np.mean([rng.rand(IMAGE_SIZE, IMAGE_SIZE, 3) - 0.4,
                       rng.rand(IMAGE_SIZE, IMAGE_SIZE, 3) - 0.4], axis=0)
    yield xrai, spy, image, ig_mask
    sess.close()


def assert_xrai_correctness(ig_mask, heatmap, ranks, masks):
    """PAIR's _assert_xrai_correctness: complete w.r.t. the IG map (max over channels);
    flat segments numbered from 1; each segment of one value, holding the IG sum of its
    pixels, and in decreasing order of value but for the last (the rest)."""
    pixel = ig_mask.max(axis=2)
    assert heatmap.sum() == pytest.approx(pixel.sum(), rel=1e-6)
    assert ranks.min() == 1
    for i in range(ranks.max()):
        np.testing.assert_array_equal(ranks == i + 1, masks[i])
    prev = np.inf
    for i, m in enumerate(masks):
        assert m.sum() > 0
        values = heatmap[m]
        assert values.min() == values.max()
        assert values.sum() == pytest.approx(pixel[m].sum(), rel=1e-5, abs=1e-3)
        if i < len(masks) - 1:
            assert values.max() <= prev
        prev = values.max()


@pytest.mark.parametrize("algorithm", ["full", "fast"])
def test_pair_core_xrai_get_mask(core_case, algorithm):
    """testXraiGetMaskFullFlat, ...FastFlat, ...FullNonFlat, ...FastNonFlat: ours gives
    the flat segments and the masks of one call at once; GetMask = GetMaskWithDetails'
    map. (PAIR's heatmaps are float64; ours float32, hence the relative tolerances.)"""
    xrai, spy, image, ig_mask = core_case
    heatmap, details = xrai(image, algorithm=algorithm, base_attribution=ig_mask,
                            return_details=True)
    assert_xrai_correctness(ig_mask, heatmap, details["segments"], details["masks"])
    assert details["ig"] is None                      # base_attribution: no IG computed
    plain = xrai(image, algorithm=algorithm, base_attribution=ig_mask)
    np.testing.assert_array_equal(plain, heatmap)
    assert spy.calls == 0


def test_pair_core_xrai_custom_segments(core_case):
    """testCustomSegments: two rectangles (skimage.draw.rectangle's inclusive corners
    (10, 10)-(30, 30) and (60, 60)-(100, 100)); the one of higher mean attribution comes
    first, and the rest is a third segment."""
    xrai, _, image, ig_mask = core_case
    seg_1 = np.zeros((IMAGE_SIZE, IMAGE_SIZE), bool)
    seg_1[10:31, 10:31] = True
    seg_2 = np.zeros((IMAGE_SIZE, IMAGE_SIZE), bool)
    seg_2[60:101, 60:101] = True
    heatmap, details = xrai(image, segments=[seg_1, seg_2], base_attribution=ig_mask,
                            return_details=True)
    assert_xrai_correctness(ig_mask, heatmap, details["segments"], details["masks"])
    first = seg_1 if ig_mask[seg_1].max(axis=1).mean() >= ig_mask[seg_2].max(
        axis=1).mean() else seg_2
    np.testing.assert_array_equal(details["masks"][0], first)
    assert len(details["masks"]) == 3


def test_pair_core_xrai_base_attribution(core_case):
    """testBaseAttribution, testBaseAttributionMismatchedShape."""
    xrai, spy, image, _ = core_case
    base = np.random.RandomState(1).rand(IMAGE_SIZE, IMAGE_SIZE, 3)
    heatmap = xrai(image, base_attribution=base)
    assert not np.array_equal(base.max(axis=2), heatmap)
    assert heatmap.sum() == pytest.approx(base.max(axis=2).sum(), rel=1e-6)
    assert spy.calls == 0                                     # no IG
    bad = np.random.RandomState(2).rand(IMAGE_SIZE, IMAGE_SIZE + 1, 3)
    with raises_exactly(ValueError, P.BASE_ATTRIBUTION_ERROR.format(
            expected=[IMAGE_SIZE, IMAGE_SIZE, 3], actual=[IMAGE_SIZE, IMAGE_SIZE + 1, 3])):
        xrai(image, base_attribution=bad)


def test_pair_core_xrai_baselines_and_batch_size(sess):
    """testBaselines, testBatchSize: XRAI's IG is IntegratedGrad's from each of the given
    baselines (with the same rule), and batch_size bounds the rows of every sess.run."""
    model = tiny_convnet()
    spy = CountingSession(sess)
    xrai = XRAI(spy, *tensors(model), 1)
    ig = IntegratedGrad(sess, *tensors(model), 1)
    x = images(1)[0]
    b1, b2 = (np.random.RandomState(s).uniform(0, 255, x.shape) for s in (3, 4))
    _, details = xrai(x, [b1, b2], 6, batch_size=5, return_details=True)
    for b, got in zip((b1, b2), details["ig"]):
        np.testing.assert_allclose(got, ig(x, b, num_steps=6), rtol=1e-4, atol=1e-4)
    assert max(spy.rows) <= 5 and spy.calls == 1 + -(-2 * 6 // 5)


def test_felzenszwalb_segments_are_pairs(sess):
    """Our vectorised dilation gives PAIR's segments exactly (when saliency is installed),
    and XRAI's default segments are them."""
    pytest.importorskip("skimage")
    rng = np.random.RandomState(5)
    for shape in ((224, 224, 3), (64, 48, 1)):
        im = gaussian_filter(rng.uniform(0, 255, shape), (4, 4, 0)).astype(np.float32)
        masks = S.felzenszwalb_segments(im)
        assert masks.dtype == bool and masks.shape[1:] == shape[:2]
        try:
            from saliency.core.xrai import _get_segments_felzenszwalb
        except ImportError:
            continue
        np.testing.assert_array_equal(masks, np.stack(_get_segments_felzenszwalb(im)))


def test_xrai_ranks_the_evidence_segment_first(sess):
    """All the evidence (the model's weights) lies in the top-right quadrant: with the
    four quadrants as segments, and with Felzenszwalb's segments of an image whose bright
    square is that quadrant, the first region holds it."""
    w = np.zeros((32, 32, 3), np.float32)
    w[2:14, 18:30] = 1.0 / 255
    x = tf1.placeholder(tf.float32, [None, 32, 32, 3])
    model = Model(x, tf.stack([tf.reduce_sum(x * w, [1, 2, 3]), tf.zeros_like(x[:, 0, 0, 0])], 1))
    image = np.full((32, 32, 3), 40.0, np.float32)
    image[2:14, 18:30] = 220.0
    quadrants = np.zeros((32, 32), np.int64)
    quadrants[:16, 16:], quadrants[16:, :16], quadrants[16:, 16:] = 1, 2, 3
    xrai = XRAI(sess, *tensors(model), 0)
    maps, details = xrai(image, segments=quadrants, min_pixel_diff=1, return_details=True)
    np.testing.assert_array_equal(details["masks"][0], quadrants == 1)
    assert maps[quadrants == 1].min() > maps[quadrants != 1].max()
    pytest.importorskip("skimage")
    maps, details = xrai(image, return_details=True)
    first = details["masks"][0]
    assert first[2:14, 18:30].mean() > 0.9 and first[w[..., 0] == 0].mean() < 0.2


def test_xrai_bad_input(sess):
    xrai, spy = xrai_case(sess)
    with raises_exactly(ValueError, S.SEGMENTS_ERROR.format(
            shape=[3], actual="None, for inputs that are not images")):
        xrai(XRAI_X)
    with raises_exactly(ValueError, S.SEGMENTS_ERROR.format(
            shape=[3], actual="bool array of shape [2, 4]")):
        xrai(XRAI_X, segments=np.ones((2, 4), bool))
    with raises_exactly(TypeError, P.XRAI_BASELINES_ERROR.format(actual="'black'")):
        xrai(XRAI_X, "black", segments=XRAI_SEGMENTS)
    with raises_exactly(ValueError, A.BASELINE_NAME_ERROR.format(
            arg="baselines", expected=list(P.XRAI_BASELINES), actual="grey")):
        xrai(XRAI_X, ("black", "grey"), segments=XRAI_SEGMENTS)
    with raises_exactly(ValueError, A.CHOICE_ERROR.format(
            arg="algorithm", expected=["full", "fast"], actual="slow")):
        xrai(XRAI_X, segments=XRAI_SEGMENTS, algorithm="slow")
    assert spy.calls == 0


# ================================================================ Guided Backprop

def test_guided_backprop_by_hand(sess):
    """h = relu(W1 x), y = w2 · h. True gradient: W1ᵀ (w2 ⊙ [h > 0]); guided: the
    backward pass through the ReLU keeps only positive gradients of active units,
    W1ᵀ (max(w2, 0) ⊙ [h > 0]). The same graph's SaliencyMap keeps the true gradient."""
    W1 = np.array([[1.0, 2.0], [-1.0, 1.0], [2.0, -3.0]], np.float32)     # [3, 2]
    w2 = np.array([2.0, -1.0, -4.0], np.float32)
    x = tf1.placeholder(tf.float32, [None, 2])
    h = tf.nn.relu(tf.matmul(x, W1.T))
    model = Model(x, tf.stack([tf.reduce_sum(h * w2, 1), -tf.reduce_sum(h * w2, 1)], 1))
    X = np.array([[1.0, 1.0], [3.0, 1.0]], np.float32)
    active = X @ W1.T > 0                                     # [[1, 0, 0], [1, 0, 1]]
    guided = GuidedBackprop(sess, *tensors(model), 0)(X)
    np.testing.assert_allclose(guided, (np.maximum(w2, 0) * active) @ W1)
    true = SaliencyMap(sess, *tensors(model), 0)(X, multiply_with_input=False)
    np.testing.assert_allclose(true, (w2 * active) @ W1)
    assert not np.allclose(guided, true)
    # class 1 (y = -w2 · h): only the units whose weight -w2 is positive pass
    np.testing.assert_allclose(GuidedBackprop(sess, *tensors(model), 1)(X),
                               (np.maximum(-w2, 0) * active) @ W1)


def test_guided_backprop_relu6_gate(sess):
    """ReLU6 passes a positive gradient only where 0 < y < 6."""
    x = tf1.placeholder(tf.float32, [None, 3])
    y = tf.reduce_sum(tf.nn.relu6(x * 2.0), 1)
    model = Model(x, tf.stack([y, -y], 1))
    X = np.array([[-1.0, 1.0, 4.0]], np.float32)              # 2x: -2, 2, 8 -> gate 0, 1, 0
    np.testing.assert_allclose(GuidedBackprop(sess, *tensors(model), 0)(X), [[0, 2, 0]])
    np.testing.assert_allclose(GuidedBackprop(sess, *tensors(model), 1)(X), [[0, 0, 0]])


# ==================================================================== feed_dict

def dropout_model(dropout=True):
    """A conv net with a dropout layer whose keep_prob is a placeholder without default
    (``dropout=False``: the same net without that layer, and keep_prob None)."""
    rng = np.random.RandomState(2)
    x = tf1.placeholder(tf.float32, [None, 16, 16, 3], name="imgs")
    keep_prob = tf1.placeholder(tf.float32, [], name="keep_prob") if dropout else None
    h = tf.nn.relu(tf.nn.conv2d((x - 127.5) / 127.5,
                                rng.normal(0, 0.5, (3, 3, 3, 4)).astype(np.float32), 1, "SAME"))
    pool = tf.reduce_mean(h, [1, 2])
    if dropout:
        pool = tf.nn.dropout(pool, rate=1.0 - keep_prob, seed=1)
    logits = tf.matmul(pool, rng.normal(0, 1, (4, 3)).astype(np.float32))
    return Model(x, logits, layers={"conv": h, "pool": pool}), keep_prob


def every_call(sess, model, feed_dict):
    """Every method, InflDirected and metric on the model, with feed_dict."""
    from hw3_attribution import GradCAM, Occlusion, SmoothGrad, VanillaGradient
    from hw3_evaluation import AverageDrop, Deletion, Insertion, N_Ord
    from hw3_infl import InflDirected
    x, out = tensors(model)
    X = images(2)
    kw = {"feed_dict": feed_dict}
    res = {
        "saliency": SaliencyMap(sess, x, out, None)(X, **kw),
        "ig": IntegratedGrad(sess, x, out, None)(X, num_steps=3, **kw),
        "vanilla": VanillaGradient(sess, x, out, None)(X, **kw),
        "smoothgrad": SmoothGrad(sess, x, out, None)(X, samples=2, **kw),
        "gradcam": GradCAM(sess, x, out, None, model.layers["conv"])(X, **kw),
        "occlusion": Occlusion(sess, x, out, None)(X, superpixel_size=8, **kw),
        "xrai": XRAI(sess, x, out, None)(X, num_steps=2, segments=np.arange(256).reshape(
            16, 16) // 64, **kw),
        "guided_ig": GuidedIG(sess, x, out, None)(X, num_steps=3, **kw),
        "blur_ig": BlurIG(sess, x, out, None)(X, num_steps=3, **kw),
        "guided_backprop": GuidedBackprop(sess, x, out, None)(X, **kw),
    }
    infl = InflDirected(sess, x, model.layers["pool"], out, 0)
    expert = infl.dis_influence(X, **kw)
    res["expert"] = infl.expert_attribution(expert, X, **kw)
    A_ = np.abs(res["saliency"]).sum(-1)
    res["average_drop"] = AverageDrop(sess, A_, X, x, out, None, **kw)
    res["n_ord"] = N_Ord(sess, A_, X, x, out, None, **kw)
    res["insertion"] = Insertion(sess, A_, X, x, out, None, superpixel_size=8, **kw)[0]
    res["deletion"] = Deletion(sess, A_, X, x, out, None, superpixel_size=8, **kw)[0]
    return res


def test_dropout_keep_prob_model_explained_with_feed_dict(sess):
    """keep_prob = 1 through feed_dict gives what the same net without its dropout layer
    gives, for every method, InflDirected and metric; without it each says what is
    missing."""
    model, keep_prob = dropout_model()
    got = every_call(sess, model, {keep_prob: 1.0})
    with tf.Graph().as_default() as graph, tf1.Session(graph=graph) as ref_sess:
        want = every_call(ref_sess, dropout_model(dropout=False)[0], None)
    for name in got:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    missing = A.FEED_MISSING_ERROR.format(missing=["keep_prob:0"], first="keep_prob:0")
    with raises_exactly(ValueError, missing):
        SaliencyMap(sess, *tensors(model), 0)(images(1))
    from hw3_evaluation import AverageDrop
    with raises_exactly(ValueError, missing):
        AverageDrop(sess, np.ones((16, 16)), images(1)[0], *tensors(model), 0)
    # a tensor name works as a key, as in sess.run
    np.testing.assert_allclose(SaliencyMap(sess, *tensors(model), None)(
        images(2), feed_dict={"keep_prob:0": 1.0}), got["saliency"], rtol=1e-6)


def test_bad_feed_dicts(sess):
    model, keep_prob = dropout_model()
    x, out = tensors(model)
    spy = CountingSession(sess)
    sal = SaliencyMap(spy, x, out, 0)
    ops = n_ops(sess)
    X = images(1)
    with raises_exactly(ValueError, A.FEED_INPUT_ERROR.format(name="imgs:0")):
        sal(X, feed_dict={keep_prob: 1.0, x: X})
    with raises_exactly(ValueError, A.FEED_INSIDE_ERROR.format(name=model.layers["conv"].name)):
        sal(X, feed_dict={keep_prob: 1.0, model.layers["conv"]: np.zeros((1, 16, 16, 4))})
    with raises_exactly(ValueError, A.FEED_KEY_ERROR.format(actual="foo")):
        sal(X, feed_dict={keep_prob: 1.0, "foo": "bar"})           # PAIR's mock key
    with raises_exactly(TypeError, A.FEED_KEY_ERROR.format(actual=3)):
        sal(X, feed_dict={keep_prob: 1.0, 3: 1.0})
    with raises_exactly(TypeError, A.FEED_TYPE_ERROR.format(actual="list")):
        sal(X, feed_dict=[(keep_prob, 1.0)])
    with raises_exactly(TypeError, A.FEED_VALUE_ERROR.format(actual=x.name,
                                                             key="keep_prob:0")):
        sal(X, feed_dict={keep_prob: x})
    assert spy.rows == [] and n_ops(sess) == ops


# ======================================================= batching, growth, calls

@pytest.fixture(scope="module")
def pair_conv():
    """The tiny conv net with the four PAIR methods built once: (sess, model, calls)."""
    graph = tf.Graph()
    with graph.as_default():
        sess = tf1.Session(graph=graph)
        model = tiny_convnet()
        x, out = tensors(model)
        seg = np.arange(256).reshape(16, 16) // 32                  # 8 strips
        calls = {
            "xrai": (XRAI(sess, x, out, 0), dict(num_steps=4, segments=seg,
                                                  min_pixel_diff=4)),
            "xrai_fast": (XRAI(sess, x, out, 0), dict(num_steps=4, segments=seg,
                                                       algorithm="fast")),
            "guided_ig": (GuidedIG(sess, x, out, 0), dict(num_steps=5)),
            "blur_ig": (BlurIG(sess, x, out, 0), dict(num_steps=6, max_sigma=4)),
            "guided_backprop": (GuidedBackprop(sess, x, out, 0), {}),
        }
    yield sess, model, calls
    sess.close()


def test_batch_equals_one_by_one_and_repeats_exactly(pair_conv):
    sess, model, calls = pair_conv
    X = images(3)
    for name, (method, kw) in calls.items():
        batch = method(X, batch_size=4, **kw)
        again = method(X, batch_size=4, **kw)
        np.testing.assert_array_equal(batch, again, err_msg=name)      # deterministic
        for i in range(3):
            np.testing.assert_allclose(method(X[i], batch_size=7, **kw), batch[i],
                                       rtol=1e-4, atol=1e-5 * np.abs(batch).max(),
                                       err_msg=name)


def test_no_graph_growth_and_second_instances_reuse_ops(pair_conv):
    sess, model, calls = pair_conv
    X = images(2)
    for method, kw in calls.values():
        method(X, **kw)
    ops = n_ops(sess)
    for method, kw in calls.values():
        method(X, **kw)
        method(X[0], target_class=1, **kw)
    with sess.graph.as_default():
        for cls in (XRAI, GuidedIG, BlurIG, GuidedBackprop):
            cls(sess, *tensors(model), None)
    assert n_ops(sess) == ops


@pytest.mark.parametrize("bs", [1, 5])
def test_session_calls(pair_conv, bs):
    """Calls: XRAI one forward (inputs and B baselines) + ceil(N·B·S / bs); Guided IG S
    steps of ceil(N / bs); Blur IG ceil(N·S / bs); Guided Backprop ceil(N / bs)."""
    sess, model, calls = pair_conv
    spy = CountingSession(sess)
    x, out = tensors(model)
    n = 3
    X = images(n)
    expected = {
        "xrai": (XRAI, dict(num_steps=4, segments=np.arange(256).reshape(16, 16) // 32),
                 chunks(n + 2, bs) + chunks(n * 2 * 4, bs)),
        "guided_ig": (GuidedIG, dict(num_steps=5), chunks(n, bs) * 5),
        "blur_ig": (BlurIG, dict(num_steps=6), chunks(n * 6, bs)),
        "guided_backprop": (GuidedBackprop, {}, chunks(n, bs)),
    }
    for name, (cls, kw, rows) in expected.items():
        spy.rows, spy.calls = [], 0
        cls(spy, x, out, 0)(X, batch_size=bs, **kw)
        assert spy.rows == rows, name


def test_the_old_home_still_imports_with_a_warning_naming_the_new_one():
    """Issue 29: PAIR's methods moved to attrkit.methods.pair; ``from hw3_attribution
    import XRAI`` keeps working for one release, with a DeprecationWarning."""
    import importlib
    import warnings
    module = importlib.import_module("hw3_attribution")
    for name, home in (("XRAI", P), ("GuidedIGPath", P), ("felzenszwalb_segments", S),
                       ("SEGMENTS_ERROR", S)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert getattr(module, name) is getattr(home, name)
        assert [w.category for w in caught] == [DeprecationWarning]
        assert str(caught[0].message).startswith(
            f"hw3_attribution.{name} has moved to {home.__name__}; import it from there")
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchMethod'"):
        getattr(module, "NoSuchMethod")
    assert "XRAI" not in module.__all__
