"""Helpers the test files share: the counting session (STYLE 8), op counts, small inputs,
message matchers and a plain numpy-loop reference. Imported by the test files and by
conftest.py; no test file imports another."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from models import Model

tf1 = tf.compat.v1
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

# A linear model's weights [D, K] and bias, and three inputs [3, D] (tests/models.linear)
W = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0], [-0.5, 4.0, 2.0], [2.0, 1.0, -3.0]])
B = np.array([0.1, -0.2, 0.3])
XL = np.array([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 2.0, -3.0], [0.0, 1.0, -2.0, 5.0]],
              np.float32)


class CountingSession:
    """A stand-in session that counts ``run`` calls and forwards them (STYLE 8).

    Per call, ``rows`` holds the rows the model saw: the longest feed other than the row
    engine's banks (the rows fed to ``input_tensor``, or one entry per row the graph
    builds), and ``bank`` the longest bank feed (the images and rank maps the rows are
    built from). A real object with ``graph = sess.graph`` passes the methods' session
    check; a MagicMock would not.
    """

    BANKS = ("images", "rank_maps", "noise_seeds", "noise_fed")

    def __init__(self, sess):
        self._sess, self.graph = sess, sess.graph
        self.calls, self.rows, self.bank = 0, [], []

    def run(self, fetches, feed_dict=None, **kwargs):
        self.calls += 1
        feeds = [(getattr(k, "op", None), v) for k, v in (feed_dict or {}).items()
                 if np.ndim(v)]
        banks = [len(v) for op, v in feeds if self._is_bank(op)]
        self.rows.append(max([len(v) for op, v in feeds if not self._is_bank(op)],
                             default=0))
        self.bank.append(max(banks, default=0))
        return self._sess.run(fetches, feed_dict, **kwargs)

    def _is_bank(self, op):
        return (op is not None and op.name.startswith("hw3_rows")
                and op.name.split("/")[-1] in self.BANKS)


def n_ops(sess_or_graph):
    """The number of ops in a session's graph (or a graph)."""
    return len(getattr(sess_or_graph, "graph", sess_or_graph).get_operations())


def chunks(total, bs):
    """Rows of each sess.run when ``total`` rows go in chunks of at most ``bs``."""
    return [min(bs, total - i) for i in range(0, total, bs)]


def doubled(rows):
    """The row engine in 'feed' mode: every chunk is two runs (build the rows, feed them)."""
    return [r for r in rows for _ in range(2)]


def images(n=3, size=16, seed=1):
    """``n`` random images ``[n, size, size, 3]`` in 0-255."""
    return np.random.RandomState(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def tensors(model):
    """The two tensors every method takes: (input_tensor, output_tensor)."""
    return model.imgs, model.logits


def ex6_model():
    """Written exercise 6: y = min(2 x1 + 3 x2, 1); IG at (2, 1) from 0 is (4/7, 3/7)."""
    x = tf1.placeholder(tf.float32, [None, 2])
    y = tf.minimum(2 * x[:, 0] + 3 * x[:, 1], 1.0)
    return Model(x, tf.stack([y, -y], axis=1), name="ex6")


def pair_model():
    """PAIR's analytic case: y = 5 x0 + x1² + sin x2; IG_i = f_i(x_i) - f_i(baseline_i)."""
    x = tf1.placeholder(tf.float32, [None, 3])
    y = 5 * x[:, 0] + x[:, 1] ** 2 + tf.sin(x[:, 2])
    return Model(x, tf.stack([y, tf.zeros_like(y)], axis=1), name="pair")


def raises_exactly(exc, message):
    """pytest.raises matching the whole message (a module-level template, formatted)."""
    return pytest.raises(exc, match="^" + re.escape(message) + "$")


def prefix(template):
    """A regex for a message template's fixed start (up to its first field)."""
    return re.escape(template.split("{")[0])


def assert_close(actual, expected, rtol=1e-4):
    """Equal to float32 rounding: relative, with an absolute floor at the map's scale."""
    expected = np.asarray(expected, np.float64)
    np.testing.assert_allclose(actual, expected, rtol=rtol,
                               atol=rtol * 0.1 * max(np.abs(expected).max(), 1e-30))


class Reference:
    """Plain references, built in the test before any op is counted: the target score,
    its gradient w.r.t. the input and w.r.t. a layer, one sess.run per row (``fs``: the
    scores of a stack of independent rows in one run)."""

    def __init__(self, sess, model, layer=None):
        self.sess, self.x = sess, model.imgs
        self.layer = layer
        with sess.graph.as_default():
            self.c = tf1.placeholder(tf.int32, [])
            self.score = model.logits[:, self.c]
            self.grad = tf.gradients(self.score, self.x)[0]
            if layer is not None:
                self.d_layer = tf.gradients(self.score, layer)[0]

    def f(self, x, c):
        return float(self.fs(x[None], c)[0])

    def fs(self, rows, c):
        """Scores of a stack of rows [R, ...] (rows are independent)."""
        return self.sess.run(self.score, {self.x: rows, self.c: c}).astype(np.float64)

    def g(self, x, c):
        return self.sess.run(self.grad, {self.x: x[None], self.c: c})[0].astype(np.float64)

    def acts(self, x, c):
        a, d = self.sess.run([self.layer, self.d_layer], {self.x: x[None], self.c: c})
        return a[0].astype(np.float64), d[0].astype(np.float64)


def all_methods(sess, model, target=None, layer="conv2", **kw):
    """One instance of every method on ``model`` with the keywords of a quick call."""
    from hw3_attribution import (GradCAM, IntegratedGrad, Occlusion, SaliencyMap, SmoothGrad,
                                 VanillaGradient)
    x, out = tensors(model)
    return {
        "saliency": (SaliencyMap(sess, x, out, target, **kw), {}),
        "gradient": (SaliencyMap(sess, x, out, target, **kw), {"multiply_with_input": False}),
        "ig": (IntegratedGrad(sess, x, out, target, **kw), {"num_steps": 5}),
        "ig_white": (IntegratedGrad(sess, x, out, target, **kw),
                     {"num_steps": 3, "baseline": "white", "method": "trapezoid"}),
        "ig_mean_grad": (IntegratedGrad(sess, x, out, target, **kw),
                         {"num_steps": 4, "multiply_with_input": False}),
        "vanilla": (VanillaGradient(sess, x, out, target, **kw), {}),
        "smoothgrad": (SmoothGrad(sess, x, out, target, **kw), {"samples": 4}),
        "gradcam": (GradCAM(sess, x, out, target, model.layers[layer], **kw), {}),
        "occlusion": (Occlusion(sess, x, out, target, **kw), {"superpixel_size": 4}),
        "occlusion_blur": (Occlusion(sess, x, out, target, **kw),
                           {"superpixel_size": 8, "baseline": "blur", "stride": 4}),
    }


def run_children(script, out, groups):
    """Run ``script OUT [args]`` once per group of arguments, the groups in parallel
    (the suite itself runs serially; the machine has 2 cores)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    procs = [subprocess.Popen([sys.executable, os.path.join(TESTS_DIR, script), str(out)] + g,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for g in groups]
    for proc in procs:
        _, err = proc.communicate()
        assert proc.returncode == 0, err[-3000:]
    return out


def check_propagation_methods(sess, model, X, layer, cams=("GradCAMPlusPlus", "ScoreCAM",
                                                          "AblationCAM"), rules=None):
    """Every propagation method and some CAMs run on a real architecture: LRP's rules
    (``rules``, default all five; each is a copy of the model to build) give finite,
    non-zero maps; DeepLIFT sums to delta from a black baseline (float32
    through the whole network: 1e-3 of the delta's size); DeconvNet is finite; each CAM is
    a finite map [N, H, W] >= 0."""
    from attrkit.methods import cam
    from attrkit.methods.lrp import LRP, RULES
    from attrkit.methods.propagation import DeconvNet, DeepLIFT
    x, out = model.imgs, model.logits
    with sess.graph.as_default():
        logits = sess.run(out, {x: X})
        t = logits.argmax(1)
        rules = RULES if rules is None else rules
        lrp = LRP(sess, x, out, None, rules=rules, progress=False)
        for rule in rules:
            R = lrp(X, rule, target_class=t)
            assert np.isfinite(R).all() and (np.abs(R).sum(axis=(1, 2, 3)) > 0).all(), rule
        delta = logits[np.arange(len(X)), t] - sess.run(out, {x: np.zeros_like(X)})[0, t]
        D = DeepLIFT(sess, x, out, None, progress=False)(X, target_class=t)
        np.testing.assert_allclose(D.sum(axis=(1, 2, 3)), delta,
                                   atol=1e-3 * max(1.0, np.abs(delta).max()))
        assert np.isfinite(DeconvNet(sess, x, out, None, progress=False)(
            X, target_class=t)).all()
        for name in cams:
            m = getattr(cam, name)(sess, x, out, None, layer, progress=False)(
                X[:1], batch_size=64, target_class=t[:1])
            assert m.shape == (1,) + X.shape[1:3] and np.isfinite(m).all() and m.min() >= 0


def call_twice(counting, method, X, **kw):
    """Call ``method`` (built on ``counting``, a :class:`CountingSession`) twice on ``X``:
    the second call adds no op and gives the same maps. Returns ``(maps, the second call's
    session calls)``."""
    first = method(X, **kw)
    size, counting.calls = n_ops(counting.graph), 0
    again = method(X, **kw)
    assert n_ops(counting.graph) == size
    np.testing.assert_array_equal(first, again)
    return first, counting.calls
