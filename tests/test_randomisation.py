"""The model parameter randomisation test of ``attrkit.metrics.randomisation`` (issue 27)
on a small CNN trained here: Saliency's similarity falls below 1 and keeps falling as more
layers are randomised, a "method" that returns its input is 1 at every layer, the weights
(and so the logits) come back bit for bit, also when the method raises halfway; the new
weights are PyTorch's default initialisation; VGG16 lists its weights bottom-up.
"""
import collections

import numpy as np
import pytest
import tensorflow as tf

from conftest import new_session
from helpers import n_ops, raises_exactly
from hw3_attribution import SaliencyMap
from attrkit.metrics import randomisation as R
from models import Model

tf1 = tf.compat.v1
S = 8


def quadrant_images(n, rng):
    """Images whose class is the bright quadrant (0..3), with noise."""
    X = rng.uniform(0, 60, (n, S, S, 3))
    y = rng.integers(0, 4, n)
    for i, c in enumerate(y):
        X[i, (c // 2) * 4:(c // 2) * 4 + 4, (c % 2) * 4:(c % 2) * 4 + 4] += 180
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def trained():
    """conv1 (3x3, 6) -> relu -> conv2 (3x3, 8) -> relu -> flatten -> fc (4), trained with
    Adam to name the bright quadrant; its weights are variables (``model.variables``)."""
    sess = new_session()
    rng = np.random.default_rng(0)
    with sess.graph.as_default():
        tf1.set_random_seed(0)
        x = tf1.placeholder(tf.float32, [None, S, S, 3], name="imgs")
        init = tf1.glorot_uniform_initializer(seed=1)
        variables, h = collections.OrderedDict(), x / 255.0
        layers = {}
        for name, shape in (("conv1", [3, 3, 3, 6]), ("conv2", [3, 3, 6, 8])):
            w = tf1.get_variable(name + "/weights", shape, initializer=init)
            b = tf1.get_variable(name + "/biases", shape[-1:], initializer=tf1.zeros_initializer())
            variables[name + "/weights"], variables[name + "/biases"] = w, b
            h = layers[name] = tf.nn.relu(tf.nn.conv2d(h, w, 1, "SAME") + b, name=name)
        w = tf1.get_variable("fc/weights", [S * S * 8, 4], initializer=init)
        b = tf1.get_variable("fc/biases", [4], initializer=tf1.zeros_initializer())
        variables["fc/weights"], variables["fc/biases"] = w, b
        logits = tf.matmul(tf.reshape(h, [-1, S * S * 8]), w) + b
        model = Model(x, logits, layers, name="quadrants", default_layers={"gradcam": "conv2"})
        model.variables = variables
        label = tf1.placeholder(tf.int64, [None])
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=label, logits=logits))
        step = tf1.train.AdamOptimizer(0.01).minimize(loss)
        sess.run(tf1.global_variables_initializer())
        for _ in range(150):
            X, y = quadrant_images(32, rng)
            sess.run(step, {x: X, label: y})
        X, y = quadrant_images(6, np.random.default_rng(1))
        assert (sess.run(logits, {x: X}).argmax(1) == y).mean() >= 5 / 6
        yield sess, model, X
    sess.close()


def weights(sess, model):
    return [v.copy() for v in sess.run(list(model.variables.values()))]


def test_saliency_similarity_falls_layer_after_layer(trained):
    """Cascading from the top, Saliency's maps move away from the trained model's: SSIM
    falls well below 1 with the classifier random and further with conv2 (here about 0.48,
    then 0.39); randomising conv1 as well leaves it there (0.38: gradient x input keeps the
    image's own structure, Adebayo et al.'s observation), below the first step."""
    sess, model, X = trained
    X, _ = quadrant_images(12, np.random.default_rng(5))
    before, logits = weights(sess, model), sess.run(model.logits, {model.imgs: X})
    with sess.graph.as_default():
        scores = R.ModelParameterRandomisation(sess, model, "saliency", X, progress=False)
        ops = n_ops(sess)
        again = R.ModelParameterRandomisation(sess, model, SaliencyMap, X, progress=False)
        assert n_ops(sess) == ops                    # a second instance adds no op
        ssim = R.ModelParameterRandomisation(sess, model, "saliency", X, similarity="ssim",
                                             progress=False)
    assert list(scores) == ["original", "fc", "conv2", "conv1"]
    np.testing.assert_allclose(scores["original"], 1.0)
    assert max(np.mean(scores[k]) for k in ("fc", "conv2", "conv1")) < 0.9
    means = [np.mean(ssim[k]) for k in ("original", "fc", "conv2", "conv1")]
    assert means[0] == pytest.approx(1.0)
    assert means[1] < 0.7 and means[2] < means[1] - 0.03 and means[3] < means[1] - 0.03, means
    for k in scores:
        np.testing.assert_array_equal(scores[k], again[k])          # seeded: the same
    for a, b in zip(weights(sess, model), before):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sess.run(model.logits, {model.imgs: X}), logits)


def test_no_op_is_built_by_a_second_call(trained):
    sess, model, X = trained
    with sess.graph.as_default():
        saliency = SaliencyMap(sess, model.imgs, model.logits, None, progress=False)
        R.ModelParameterRandomisation(sess, model, saliency, X[:2], progress=False)
        ops = n_ops(sess)
        R.ModelParameterRandomisation(sess, model, saliency, X[:2], progress=False,
                                      layer_order="independent")
        assert n_ops(sess) == ops


class Identity:
    """A "method" whose map is its input: it does not depend on the model at all."""

    def __init__(self, model):
        self.input_tensor = model.imgs

    def __call__(self, X, target_class=None):
        return X


def test_a_map_that_ignores_the_model_is_one_at_every_layer(trained):
    sess, model, X = trained
    for order in ("top_down", "independent"):
        for kind in ("spearman", "ssim"):
            scores = R.ModelParameterRandomisation(sess, model, Identity(model), X,
                                                   layer_order=order, similarity=kind,
                                                   progress=False)
            for k, v in scores.items():
                np.testing.assert_allclose(v, 1.0, rtol=1e-9, err_msg=f"{order} {kind} {k}")


class Failing(Identity):
    """Raises on its third call: the first layer is random by then."""

    def __init__(self, model, exc=RuntimeError):
        super().__init__(model)
        self.calls, self.exc = 0, exc

    def __call__(self, X, target_class=None):
        self.calls += 1
        if self.calls == 3:
            raise self.exc("halfway")
        return X


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_weights_come_back_when_the_method_raises(trained, exc):
    sess, model, X = trained
    before, logits = weights(sess, model), sess.run(model.logits, {model.imgs: X})
    with pytest.raises(exc, match="halfway"):
        R.ModelParameterRandomisation(sess, model, Failing(model, exc), X, progress=False)
    for a, b in zip(weights(sess, model), before):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sess.run(model.logits, {model.imgs: X}), logits)


def test_new_weights_are_pytorchs_default_initialisation(trained):
    sess, model, _ = trained
    layers = R.weight_layers(model)
    assert list(layers) == ["conv1", "conv2", "fc"]
    with R.Randomised(sess, layers) as w:
        w.randomise("conv2", np.random.default_rng(43))
        kernel, bias = sess.run([model.variables["conv2/weights"], model.variables["conv2/biases"]])
        rng = np.random.default_rng(43)
        bound = 1 / np.sqrt(3 * 3 * 6)
        np.testing.assert_array_equal(kernel, rng.uniform(-bound, bound, (3, 3, 6, 8))
                                      .astype(np.float32))
        np.testing.assert_array_equal(bias, rng.uniform(-bound, bound, 8).astype(np.float32))
    assert R.fan_in("fc/weights", (512, 4)) == 512
    assert R.fan_in("b/depthwise_kernel", (3, 3, 32, 1)) == 9


def test_independent_randomises_one_layer_at_a_time(trained):
    sess, model, X = trained
    cascade = R.ModelParameterRandomisation(sess, model, "gradient", X, progress=False)
    alone = R.ModelParameterRandomisation(sess, model, "gradient", X, progress=False,
                                          layer_order="independent")
    assert list(alone) == ["original", "conv1", "conv2", "fc"]
    np.testing.assert_array_equal(alone["fc"], cascade["fc"])   # the first step is the same
    assert not np.allclose(alone["conv1"], cascade["conv1"])    # the others are not


def test_vgg16_lists_its_weights_bottom_up(sess):
    import vgg16
    model = vgg16.vgg16()
    names = list(model.variables)
    assert names[:3] == ["conv1_1/weights", "conv1_1/biases", "conv1_2/weights"]
    assert names[-1] == "fc3/biases" and len(names) == 32
    assert list(R.weight_layers(model))[-3:] == ["fc1", "fc2", "fc3"]


def test_bad_input_names_the_argument(trained):
    sess, model, X = trained
    with raises_exactly(ValueError, R.ORDER_ERROR.format(actual="bottom_up")):
        R.ModelParameterRandomisation(sess, model, "saliency", X, layer_order="bottom_up")
    with pytest.raises(ValueError, match=r"^similarity: "):
        R.ModelParameterRandomisation(sess, model, "saliency", X, similarity="l2")
    with pytest.raises(ValueError, match=r"^method: expected an attribution"):
        R.ModelParameterRandomisation(sess, model, "lime_v2", X)
    frozen = Model(model.imgs, model.logits)
    with raises_exactly(TypeError, R.NO_WEIGHTS_ERROR.format(actual=frozen)):
        R.ModelParameterRandomisation(sess, frozen, "saliency", X)


@pytest.mark.slow
def test_the_bundled_model_cascades_and_comes_back(default_model, sample_data):
    """EfficientNet-Lite0's weights (variables fed once at load) randomised from the top,
    layer by layer, then put back: the logits are bit-equal to before."""
    model, sess = default_model
    X = sample_data[0][:1]
    with sess.graph.as_default():
        logits = sess.run(model.logits, {model.imgs: X})
        scores = R.ModelParameterRandomisation(sess, model, "gradient", X, progress=False)
        np.testing.assert_array_equal(sess.run(model.logits, {model.imgs: X}), logits)
    layers = list(R.weight_layers(model))
    assert list(scores) == ["original"] + layers[::-1]
    assert layers[0] == "stem" and layers[-1] == "fc"
    assert scores["original"] == pytest.approx(1.0) and scores["stem"] < 0.5


def test_blocks_randomise_consecutive_layers_in_one_step(trained):
    sess, model, X = trained
    both = R.ModelParameterRandomisation(
        sess, model, "gradient", X, progress=False, return_maps=True,
        blocks=lambda name: "conv" if name.startswith("conv") else name)
    scores, maps = both
    layered = R.ModelParameterRandomisation(sess, model, "gradient", X, progress=False)
    assert list(scores) == list(maps) == ["original", "fc", "conv"]
    np.testing.assert_array_equal(scores["fc"], layered["fc"])
    np.testing.assert_allclose(scores["conv"], layered["conv1"])   # the same weights by then
    assert maps["original"].shape[:3] == X.shape[:3] and maps["conv"].min() >= 0
    assert np.abs(maps["original"]).max() == pytest.approx(1.0)
    assert [R.block_of(n) for n in ("conv5_3", "block6a/expand", "fc1", "layer4/1/conv2",
                                    "stem")] == ["conv5", "block6", "fc1", "layer4", "stem"]


def test_cached_spearman_equals_scipys():
    import scipy.stats
    rng = np.random.default_rng(0)
    a = np.round(rng.normal(size=(3, 50)), 1)                  # ties, as |maps| have
    b = np.round(rng.normal(size=(3, 50)), 1)
    got = R.similarity_to(a, "spearman")(b)
    np.testing.assert_allclose(got, [scipy.stats.spearmanr(x, y)[0] for x, y in zip(a, b)],
                               rtol=1e-12)


def test_a_constant_map_is_undefined_with_the_toolkits_warning():
    a = np.random.default_rng(0).normal(size=(2, 30))
    b = a.copy()
    b[1] = 0.0                                                 # an all-zero map
    with pytest.warns(RuntimeWarning, match=r"image\(s\) \[1\] \(a map is constant\)"):
        got = R.similarity_to(a, "spearman")(b)
    assert got[0] == pytest.approx(1.0) and np.isnan(got[1])
