"""Max- and Avg-Sensitivity and Random Logit of ``attrkit.metrics.robustness`` (issue 27):
the closed forms (a constant map, the gradient of a linear model: sensitivity 0; a map that
ignores the class: similarity 1), Quantus' own loops in numpy with the same draws, and
seeded draws, batch against one by one, bad input.
"""
import numpy as np
import pytest
import scipy.stats
from skimage.metrics import structural_similarity

from conftest import new_session
from helpers import raises_exactly
from hw3_attribution import SaliencyMap, VanillaGradient
from attrkit.metrics import robustness as R
from models import additive_image, tiny_convnet

H, W, C = 6, 7, 3


@pytest.fixture(scope="module")
def net():
    """A tiny ReLU conv net, its Saliency (gradient x input) and 3 images."""
    sess = new_session()
    with sess.graph.as_default():
        model = tiny_convnet(size=H, width=W, classes=5, seed=3)
        saliency = SaliencyMap(sess, model.imgs, model.logits, None, progress=False)
        X = np.random.default_rng(0).uniform(0, 255, (3, H, W, C)).astype(np.float32)
        yield sess, model, saliency, X
    sess.close()


class Constant:
    """A "method" whose map is the same whatever the image and the class."""

    def __init__(self, input_tensor, value):
        self.input_tensor, self.value = input_tensor, value

    def __call__(self, X, target_class=None):
        return np.broadcast_to(self.value, (len(X),) + self.value.shape).copy()


def test_sensitivity_is_zero_for_a_constant_map_and_a_linear_models_gradient():
    w = np.random.default_rng(1).normal(size=(H, W, C))
    X = np.random.default_rng(2).uniform(0, 255, (2, H, W, C)).astype(np.float32)
    sess = new_session()
    with sess.graph.as_default():
        model = additive_image(w)
        gradient = VanillaGradient(sess, model.imgs, model.logits, 0, progress=False)
        constant = Constant(model.imgs, np.arange(H * W, dtype=float).reshape(H, W))
        for metric in (R.MaxSensitivity, R.AvgSensitivity):
            for method in (gradient, constant):
                got = metric(sess, method, X, model.imgs, model.logits, 0, nr_samples=5,
                             seed=0)
                np.testing.assert_array_equal(got, [0.0, 0.0])


def sensitivity_loop(saliency, X, targets, samples, bound, seed):
    """Quantus' loop: per sample, noise on every value, the ratio of Frobenius norms."""
    a = saliency(X, target_class=targets).reshape(len(X), -1).astype(np.float64)
    ratios = np.zeros((len(X), samples))
    for i in range(len(X)):
        noise = np.random.default_rng(seed).uniform(-bound, bound, (samples,) + X.shape[1:])
        for s in range(samples):
            x = (X[i] + noise[s]).astype(np.float32)[None]
            b = saliency(x, target_class=targets[i:i + 1]).reshape(-1).astype(np.float64)
            ratios[i, s] = np.linalg.norm(a[i] - b) / np.linalg.norm(a[i])
    return ratios


def test_sensitivity_equals_quantus_loop(net):
    sess, model, saliency, X = net
    targets = np.array([1, 4, 0], np.int32)
    ratios = sensitivity_loop(saliency, X, targets, 6, 2.0, 7)
    with sess.graph.as_default():
        got_max = R.MaxSensitivity(sess, saliency, X, model.imgs, model.logits, targets,
                                   nr_samples=6, lower_bound=2.0, seed=7)
        got_avg = R.AvgSensitivity(sess, saliency, X, model.imgs, model.logits, targets,
                                   nr_samples=6, lower_bound=2.0, seed=7)
        one = R.MaxSensitivity(sess, saliency, X[1], model.imgs, model.logits, 4,
                               nr_samples=6, lower_bound=2.0, seed=7)
    np.testing.assert_allclose(got_max, ratios.max(1), rtol=1e-6)
    np.testing.assert_allclose(got_avg, ratios.mean(1), rtol=1e-6)
    assert (got_max > 0).all() and (got_avg <= got_max).all()
    assert one == pytest.approx(got_max[1], rel=1e-6)                 # batch = one by one


def test_random_logit_equals_quantus(net):
    sess, model, saliency, X = net
    with sess.graph.as_default():
        got = R.RandomLogit(sess, saliency, X, model.imgs, model.logits, None)
        spearman = R.RandomLogit(sess, saliency, X, model.imgs, model.logits, None,
                                 similarity="spearman", seed=3)
    y = sess.run(model.logits, {model.imgs: X}).argmax(1)
    for seed, result, kind in ((42, got, "ssim"), (3, spearman, "spearman")):
        np.random.seed(seed)                                         # Quantus' draws
        index = np.random.randint(0, 5 - 1, len(X))
        off = np.array([[c for c in range(5) if c != t][i] for t, i in zip(y, index)])
        assert (off != y).all()
        a = saliency(X, target_class=y).reshape(len(X), -1).astype(np.float64)
        b = saliency(X, target_class=off).reshape(len(X), -1).astype(np.float64)
        a, b = a / np.abs(a).max(), b / np.abs(b).max()
        if kind == "ssim":
            want = [structural_similarity(p, q, data_range=float(np.ptp(np.concatenate([p, q]))))
                    for p, q in zip(a, b)]
        else:
            want = [scipy.stats.spearmanr(p, q)[0] for p, q in zip(a, b)]
        np.testing.assert_allclose(result, want, rtol=1e-6)
    assert (np.asarray(got) < 1).all()


def test_random_logit_is_one_for_a_map_that_ignores_the_class(net):
    sess, model, _, X = net
    same = Constant(model.imgs, np.random.default_rng(4).normal(size=(H, W)))
    with sess.graph.as_default():
        for kind in ("ssim", "spearman"):
            got = R.RandomLogit(sess, same, X, model.imgs, model.logits, 2, similarity=kind)
            np.testing.assert_allclose(got, 1.0, rtol=1e-9)


def test_bad_input_names_the_argument(net):
    sess, model, saliency, X = net
    with sess.graph.as_default():
        other = new_session()
        with other.graph.as_default():
            elsewhere = tiny_convnet(size=H, width=W)
        with pytest.raises(TypeError, match=r"^method: expected an attribution method"):
            R.MaxSensitivity(sess, Constant(elsewhere.imgs, np.ones((H, W))), X, model.imgs,
                             model.logits)
        with pytest.raises(TypeError, match=r"^method: "):
            R.RandomLogit(sess, "saliency", X, model.imgs, model.logits)
        with raises_exactly(ValueError, R.SIMILARITY_ERROR.format(actual="ssd")):
            R.RandomLogit(sess, saliency, X, model.imgs, model.logits, similarity="ssd")
        with raises_exactly(ValueError, R.NUM_CLASSES_ERROR.format(k=5, actual=6)):
            R.RandomLogit(sess, saliency, X, model.imgs, model.logits, num_classes=6)
        with pytest.raises(ValueError, match=r"^method: expected maps"):
            R.AvgSensitivity(sess, Constant(model.imgs, np.ones((H, 5))), X, model.imgs,
                             model.logits, nr_samples=2)
        with pytest.raises(ValueError, match=r"^lower_bound: "):
            R.MaxSensitivity(sess, saliency, X, model.imgs, model.logits, lower_bound=-1)
        with pytest.raises(TypeError, match=r"^nr_samples: "):
            R.MaxSensitivity(sess, saliency, X, model.imgs, model.logits, nr_samples=1.5)
    other.close()


def test_feed_dict_reaches_the_methods_runs():
    """A graph with another placeholder (a temperature with no default): the call's
    ``feed_dict`` is fed to the targets' run and to every run of the method."""
    import tensorflow as tf
    sess = new_session()
    with sess.graph.as_default():
        model = tiny_convnet(size=H, width=W, classes=5, seed=3)
        temperature = tf.compat.v1.placeholder(tf.float32, [], name="temperature")
        logits = model.logits / temperature
        saliency = SaliencyMap(sess, model.imgs, logits, None, progress=False)
        X = np.random.default_rng(0).uniform(0, 255, (2, H, W, C)).astype(np.float32)
        feed = {temperature: 2.0}
        got = R.MaxSensitivity(sess, saliency, X, model.imgs, logits, None, nr_samples=3,
                               lower_bound=2.0, seed=1, feed_dict=feed)
        targets = sess.run(logits, {model.imgs: X, **feed}).argmax(1)
        ratios = sensitivity_loop(lambda x, target_class: saliency(
            x, target_class=target_class, feed_dict=feed), X, targets, 3, 2.0, 1)
        np.testing.assert_allclose(got, ratios.max(1), rtol=1e-6)
        logit = R.RandomLogit(sess, saliency, X, model.imgs, logits, None, feed_dict=feed)
        assert np.isfinite(logit).all()
