"""The row engine of hw3_attribution on its own: each graph stage against a numpy twin,
the Rows constructors end to end (the rows the graph builds, fetched), the noise cache,
and the adaptive IG rule on pure-numpy paths (no TensorFlow)."""
import numpy as np
import pytest
import tensorflow as tf

import hw3_attribution as A
from helpers import images, tensors
from models import tiny_convnet

tf1 = tf.compat.v1
RNG = np.random.RandomState(0)


def run(sess, tensor):
    return sess.run(tensor)


# ----------------------------------------------------------------------- the stages

def test_interpolate_is_back_plus_alpha_times_front_minus_back(sess):
    front = RNG.uniform(0, 255, (4, 3, 3, 2)).astype(np.float32)
    back = RNG.uniform(0, 255, (4, 3, 3, 2)).astype(np.float32)
    alpha = np.array([0.0, 0.25, 1.0, 0.7], np.float32)
    got = run(sess, A.interpolate(tf.constant(front), lambda: tf.constant(back),
                                  tf.constant(alpha)))
    a = alpha[:, None, None, None]
    np.testing.assert_allclose(got, back + a * (front - back), rtol=1e-6)
    np.testing.assert_array_equal(got[2], front[2])              # alpha = 1: front exactly
    np.testing.assert_array_equal(got[0], back[0])
    ones = run(sess, A.interpolate(tf.constant(front), lambda: tf.constant(back),
                                   tf.ones([4])))
    np.testing.assert_array_equal(ones, front)


def mask_twin(rows, back, rank_maps, ranked_by, start, stop, patch):
    """numpy: a pixel keeps its row where start <= rank < stop and it lies in the patch
    (height 0: no patch), else it takes back."""
    rank = rank_maps[ranked_by]                                           # [R, H, W]
    keep = (rank >= start[:, None, None]) & (rank < stop[:, None, None])
    H, W = rank.shape[1:]
    i, j = np.arange(H)[None, :, None], np.arange(W)[None, None, :]
    top, left, ph, pw = (patch[:, k, None, None] for k in range(4))
    inside = (i >= top) & (i < top + ph) & (j >= left) & (j < left + pw)
    keep &= (ph == 0) | inside
    return np.where(keep[..., None], rows, back)


@pytest.mark.parametrize("case", ["window", "patch", "both", "neither"])
def test_mask_of_rank_window_and_patch(sess, case):
    R, H, W = 5, 6, 7
    rows = RNG.uniform(0, 255, (R, H, W, 3)).astype(np.float32)
    back = RNG.uniform(0, 255, (R, H, W, 3)).astype(np.float32)
    rank_maps = np.stack([RNG.permutation(H * W).reshape(H, W) for _ in range(2)]).astype(
        np.int32)
    ranked_by = np.array([0, 1, 1, 0, 1], np.int32)
    start = np.array([0, 3, 0, 10, 0], np.int32)
    stop = np.array([5, 20, 42, 11, 0], np.int32)
    patch = np.array([[0, 0, 2, 3], [1, 2, 4, 4], [0, 0, 0, 0], [4, 5, 2, 2], [2, 2, 3, 3]],
                     np.int32)
    if case in ("patch", "neither"):
        start, stop = np.zeros(R, np.int32), np.full(R, A.INT32_MAX, np.int32)
    if case in ("window", "neither"):
        patch = np.zeros((R, 4), np.int32)
    rank = A.rank_window(tf.constant(rank_maps), tf.constant(ranked_by), tf.constant(start),
                         tf.constant(stop))
    got = run(sess, A.mask(tf.constant(rows), lambda: tf.constant(back), rank,
                           A.patch_window(tf.constant(patch), H, W)))
    np.testing.assert_array_equal(got, mask_twin(rows, back, rank_maps, ranked_by, start,
                                                 stop, patch))
    if case == "neither":
        np.testing.assert_array_equal(got, rows)


def test_noise_stages_equal_one_stateless_draw_per_seed(sess):
    shape = (4, 3, 2)
    seeds = np.array([[7, 0], [7, 1], [9, 4]], np.int64)
    with sess.graph.as_default():
        seed = tf1.placeholder(tf.int64, [2])
        one = tf.random.stateless_normal(shape, seed=seed)
    twin = {tuple(s): sess.run(one, {seed: s}) for s in seeds}
    drawn = A.draw_noise(tf.constant(seeds), tf.constant(shape), tf.float32)
    np.testing.assert_array_equal(run(sess, drawn), np.stack([twin[tuple(s)] for s in seeds]))
    fed = RNG.normal(size=(2,) + shape).astype(np.float32)
    noise_of = np.array([4, 0, 2, 1, 3, 2], np.int32)          # fed first, then drawn
    pool = np.concatenate([fed, np.stack([twin[tuple(s)] for s in seeds])])
    rows = RNG.uniform(0, 255, (6,) + shape).astype(np.float32)
    scale = np.array([0.0, 1.5, 2.0, 0.5, 3.0, 1.0], np.float32)
    got = run(sess, A.add_noise(tf.constant(rows), tf.constant(scale), lambda: A.unit_noise(
        tf.constant(fed), drawn, tf.constant(noise_of))))
    np.testing.assert_array_equal(got, rows + scale[:, None, None, None] * pool[noise_of])
    in_order = run(sess, A.unit_noise(tf.zeros((0,) + shape), drawn, tf.range(3)))
    np.testing.assert_array_equal(in_order, run(sess, drawn))
    nan = tf.fill((6,) + shape, np.nan)
    quiet = run(sess, A.add_noise(tf.constant(rows), tf.zeros([6]), lambda: nan))
    np.testing.assert_array_equal(quiet, rows)     # no scale > 0: no noise is added


def test_weighted_sums_are_weights_transposed_times_gradients(sess):
    grads = RNG.normal(size=(5, 12)).astype(np.float32)
    weights = RNG.uniform(size=(5, 2)).astype(np.float32)
    sums, sums_sq = run(sess, A.weighted_sums(tf.constant(grads), tf.constant(weights),
                                              tf.constant([3, 4])))
    np.testing.assert_allclose(sums, (weights.T @ grads).reshape(2, 3, 4), rtol=1e-5)
    np.testing.assert_allclose(sums_sq, (weights.T @ grads ** 2).reshape(2, 3, 4), rtol=1e-5)


def test_sum_weights_matrix():
    into = np.array([[3, -1], [5, 3], [-1, -1]])
    weight = np.array([[0.5, 9.0], [1.0, 2.0], [7.0, 7.0]], np.float32)
    matrix, ids = A.sum_weights(into, weight)
    np.testing.assert_array_equal(ids, [3, 5])
    np.testing.assert_array_equal(matrix, [[0.5, 0.0], [2.0, 1.0], [0.0, 0.0]])


# ------------------------------------------------------- constructors, end to end

def built_rows(sess, rows, bank, mode, monkeypatch, batch_size=3):
    """The rows the graph builds for ``rows`` (fetched), in clone or feed mode."""
    if mode == "feed":
        monkeypatch.setattr(A, "CLONE_MODEL", False)
    model = tiny_convnet(size=8)
    runner = A.ModelRunner(sess, *tensors(model), "test", progress=False)
    out = runner.run_rows(rows, bank, ["rows"], batch_size, None)["rows"]
    assert runner.row_ops().mode == mode
    return out


@pytest.fixture(params=["clone", "feed"])
def mode(request):
    return request.param


def test_path_points(sess, monkeypatch, mode):
    X, base = images(2, 8), images(2, 8, seed=3)
    for baselines, dense in [(None, np.zeros_like(X)), (base[:1], base[[0, 0]]),
                             (base, base)]:
        bank = A.ImageBank(X, baselines)
        inputs = np.array([0, 0, 1, 1, 1])
        alpha = np.array([0.0, 0.5, 0.1, 1.0, 0.75])
        got = built_rows(sess, A.Rows.path_points(inputs, bank.baseline_of(inputs), alpha,
                                                  target=np.zeros(5)),
                         bank, mode, monkeypatch)
        a = alpha.astype(np.float32)[:, None, None, None]
        b = dense[inputs]
        np.testing.assert_allclose(got, b + a * (X[inputs] - b), rtol=1e-6, atol=1e-4)


def test_patched_copies(sess, monkeypatch, mode):
    X, base = images(2, 8), images(1, 8, seed=3)
    bank = A.ImageBank(X, base)
    corners = np.array([[0, 0], [4, 2], [2, 6], [6, 6]])
    inputs = np.array([0, 1, 1, 0])
    got = built_rows(sess, A.Rows.patched(inputs, bank.baseline_of(inputs), corners, 2,
                                          target=np.zeros(4)), bank, mode, monkeypatch)
    for r, ((i, j), n) in enumerate(zip(corners, inputs)):
        expect = X[n].copy()
        expect[i:i + 2, j:j + 2] = base[0][i:i + 2, j:j + 2]
        np.testing.assert_array_equal(got[r], expect)


def test_ranked_copies(sess, monkeypatch, mode):
    X, base = images(2, 8), images(2, 8, seed=3)
    ranks = np.stack([RNG.permutation(64).reshape(8, 8) for _ in range(2)]).astype(np.int32)
    bank = A.ImageBank(X, base, ranks=ranks)
    inputs = np.array([0, 1, 1, 0, 1])
    stop = np.array([0, 10, 64, 30, 1])
    rows = A.Rows.ranked(take=inputs, rest=bank.baseline_of(inputs), ranked_by=inputs,
                         stop=stop, target=np.zeros(5))
    got = built_rows(sess, rows, bank, mode, monkeypatch)
    for r, n in enumerate(inputs):
        inside = (ranks[n] < stop[r])[..., None]
        np.testing.assert_array_equal(got[r], np.where(inside, X[n], base[n]))
    removed = A.Rows.ranked(take=A.BLACK, rest=inputs, ranked_by=inputs, stop=stop,
                            target=np.zeros(5))
    got = built_rows(sess, removed, bank, mode, monkeypatch)
    for r, n in enumerate(inputs):
        np.testing.assert_array_equal(got[r], np.where((ranks[n] < stop[r])[..., None], 0,
                                                       X[n]))


def test_noisy_copies_draw_each_seed_once_per_call(sess, monkeypatch, mode):
    X = images(3, 8)
    with sess.graph.as_default():
        seed = tf1.placeholder(tf.int64, [2])
        one = tf.random.stateless_normal([8, 8, 3], seed=seed)
    inputs = np.repeat(np.arange(3), 4)
    seeds = np.stack([np.full(12, 5), np.tile(np.arange(4), 3)], 1)
    scale = np.array([1.0, 2.0, 0.5], np.float32)[inputs]
    got = built_rows(sess, A.Rows.noisy(inputs, scale, seeds, target=np.zeros(12)),
                     A.ImageBank(X), mode, monkeypatch, batch_size=5)
    for r in range(12):
        expect = X[inputs[r]] + scale[r] * sess.run(one, {seed: seeds[r]})
        np.testing.assert_array_equal(got[r], expect)


# -------------------------------------------------------------------- noise cache

class Feeds:
    """Stands in for RowOps: the noise feeds' keys."""
    noise_seeds, noise_of, noise_fed = "seeds", "of", "fed"


def replay(cache, seeds, batch_size):
    """Run a NoiseCache over every chunk with fake noise (a seed's noise is its numbers):
    returns each row's noise and the seeds drawn."""
    def fake(s):
        return np.full((2, 2), s[0] * 100.0 + s[1], np.float32)

    noise, drawn_seeds = [], []
    for sl in A.chunk_slices(len(seeds), batch_size):
        feed = cache.feed(Feeds, sl)
        drawn = np.stack([fake(s) for s in feed["seeds"]]) if len(feed["seeds"]) else \
            np.zeros((0, 2, 2), np.float32)
        drawn_seeds += [tuple(s) for s in feed["seeds"]]
        if cache.pending is not None:
            cache.keep(drawn)
        pool = np.concatenate([feed.get("fed", np.zeros((0, 2, 2), np.float32)), drawn])
        noise.append(pool[feed["of"]])
        assert all(np.array_equal(n, fake(s)) for n, s in zip(noise[-1], seeds[sl]))
    return np.concatenate(noise), drawn_seeds


def test_noise_cache_draws_each_seed_once():
    seeds = np.stack([np.full(15, 3), np.tile(np.arange(5), 3)], 1)    # 3 inputs x 5
    cache = A.NoiseCache(seeds, A.NoiseStore((2, 2), np.float32))
    _, drawn = replay(cache, seeds, 4)
    assert sorted(drawn) == [(3, s) for s in range(5)]                  # each once


def test_noise_cache_without_room_draws_again(monkeypatch):
    monkeypatch.setattr(A, "NOISE_CACHE_BYTES", 0)
    seeds = np.stack([np.full(15, 3), np.tile(np.arange(5), 3)], 1)
    _, drawn = replay(A.NoiseCache(seeds, A.NoiseStore((2, 2), np.float32)), seeds, 4)
    assert len(drawn) == 15


def test_noise_store_feeds_a_later_call_and_keeps_its_bound(monkeypatch):
    """The noise drawn by one call is fed to the next call of the same seeds (none drawn);
    a store with room for 3 seeds keeps 3 and the others are drawn each time."""
    seeds = np.stack([np.full(10, 3), np.tile(np.arange(5), 2)], 1)    # 2 inputs x 5
    store = A.NoiseStore((2, 2), np.float32)
    _, first = replay(A.NoiseCache(seeds, store), seeds, 4)
    assert sorted(first) == [(3, s) for s in range(5)]
    _, second = replay(A.NoiseCache(seeds, store), seeds, 4)
    assert second == []
    other = np.stack([np.full(5, 4), np.arange(5)], 1)                  # another seed
    _, drawn = replay(A.NoiseCache(other, store), other, 4)
    assert sorted(drawn) == [(4, s) for s in range(5)]

    monkeypatch.setattr(A, "NOISE_CACHE_BYTES", 3 * 4 * 4)              # 3 seeds of 2x2
    small = A.NoiseStore((2, 2), np.float32)
    _, first = replay(A.NoiseCache(seeds, small), seeds, 4)
    _, second = replay(A.NoiseCache(seeds, small), seeds, 4)
    assert len(small.slot_of) == 3 and small.array.shape == (3, 2, 2)
    assert sorted(set(second)) == [(3, 3), (3, 4)]       # the two not kept, in each chunk
    assert sorted(set(first)) == [(3, s) for s in range(5)]


def test_smoothgrad_second_call_draws_no_noise(sess):
    """A second SmoothGrad call with the same seed feeds the kept noise (no seed drawn)
    and gives the same numbers, to the bit; every chunk feeds the same placeholders (a
    new set would make TensorFlow prune and optimise the graph again, seconds on a large
    model)."""
    model = tiny_convnet()
    X = images(2)
    sg = A.SmoothGrad(sess, *tensors(model), [0, 2], progress=False)
    first = sg(X, 4, samples=5, sigma=0.2, seed=7)
    drawn, keys = [], set()
    real = A.NoiseCache.feed

    def feed(self, ops, sl):
        out = real(self, ops, sl)
        drawn.append(len(out[ops.noise_seeds]))
        keys.add(frozenset(out))
        return out
    A.NoiseCache.feed = feed
    try:
        again = sg(X, 4, samples=5, sigma=0.2, seed=7)
        other = sg(X, 4, samples=5, sigma=0.2, seed=8)
    finally:
        A.NoiseCache.feed = real
    np.testing.assert_array_equal(first, again)
    assert sum(drawn[:3]) == 0 and sum(drawn[3:]) == 5          # seed 8: each sample once
    assert len(keys) == 1     # the same feeds, drawing or not: TensorFlow reuses one executor
    assert not np.array_equal(first, other)


def test_smoothgrad_numbers_are_unchanged(sess, monkeypatch):
    """Drawing each sample's noise once per call gives the numbers of drawing it for
    every row (as before the NoiseCache), to the bit; the values pinned here were
    computed by f2f40b9, which drew the noise per row."""
    model = tiny_convnet()
    X = images(3)
    sg = A.SmoothGrad(sess, *tensors(model), [0, 2, 4], progress=False)
    kw = dict(samples=5, sigma=0.2, seed=7)
    got = {kind: sg(X, 4, kind=kind, **kw) for kind in ("smoothgrad", "vargrad")}
    monkeypatch.setattr(A, "NOISE_CACHE_BYTES", 0)                 # every row draws
    for kind, value in got.items():
        np.testing.assert_array_equal(value, sg(X, 4, kind=kind, **kw))
    pinned = {"smoothgrad": ([0.023559453500865857, -0.028369673954557584,
                              -0.022360481137866373],
                             [0.00020045370911248028, -0.00023900784435682,
                              -0.00012597772001754493]),
              "vargrad": ([1.4039135885712817e-05, 1.0985188842155269e-05,
                           9.621258236044983e-06],
                          [4.521404761703707e-08, 4.8602628588412244e-09,
                           1.3316081570735605e-08])}
    for kind, (sums, entries) in pinned.items():
        np.testing.assert_allclose(got[kind].reshape(3, -1).sum(1, dtype=np.float64), sums,
                                   rtol=1e-5)
        np.testing.assert_allclose(got[kind][:, 5, 7, 1], entries, rtol=1e-5)


# ------------------------------------------------- the adaptive rule, numpy only

class StepPath:
    """f(z) = 10 σ(k (z0 + z1 - s)) along z = t x from the black baseline, in numpy: the
    path crosses the step at t = s / (x0 + x1)."""

    def __init__(self, X, k=2000.0, s=0.7):
        self.X, self.k, self.s = np.asarray(X, np.float64), k, s

    def f(self, z):
        return 5 * (1 + np.tanh(self.k * (z.sum(1) - self.s) / 2))      # 10 σ(u), stable

    def scores(self, i, t):
        return self.f(np.asarray(t)[:, None] * self.X[i])

    def gradients(self, i, t):
        z = np.asarray(t)[:, None] * self.X[i]
        f = self.f(z)
        slope = self.k * f * (1 - f / 10)                            # df/du, u = z0 + z1
        grad = np.repeat(slope[:, None], 2, 1)
        return grad.astype(np.float32), f, (grad * self.X[i]).sum(1)


def test_adaptive_rule_on_a_numpy_step():
    X = np.array([[1.0, 1.0], [0.5, 1.5]])
    path = StepPath(X)
    f0, f1 = path.f(0 * X), path.f(X)
    mean_grad, info = A.AdaptiveIG(tol=0.01, max_gradients=64).run(path, f0, f1)
    attr = X * mean_grad
    assert mean_grad.shape == X.shape and mean_grad.dtype == np.float64
    error = np.abs(attr.sum(1) - (f1 - f0)) / np.abs(f1 - f0)
    assert np.all(error <= 0.01)
    assert set(info) == {"gradients", "forwards", "uncorrected_error", "error_bound", "nodes"}
    assert np.all(info["gradients"] <= 64) and np.all(info["forwards"] == 33)
    # the certificate is the error of the map (gradients kept in float32)
    np.testing.assert_allclose(info["uncorrected_error"], error, rtol=1e-4)
    assert np.all(error <= info["error_bound"] + 1e-12)
    for nodes in info["nodes"]:                          # crowded around the step
        assert nodes[0] == 0.0 and nodes[-1] == 1.0
        assert np.mean(np.abs(nodes - 0.35) < 0.02) > 0.5


def test_adaptive_kink_correction_is_exact_for_one_kink():
    """Written exercise 6 in numpy: f(z) = min(2 z0 + 3 z1, 1) from 0 to (2, 1)."""
    class Kink:
        X = np.array([[2.0, 1.0]])

        def scores(self, i, t):
            return np.minimum(7 * np.asarray(t), 1.0)

        def gradients(self, i, t):
            t = np.asarray(t)
            grad = np.where((7 * t < 1)[:, None], [[2.0, 3.0]], 0.0)
            return grad.astype(np.float32), self.scores(i, t), grad @ self.X[0]

    mean_grad, info = A.AdaptiveIG(tol=0.5, max_gradients=4, correction="kink").run(
        Kink(), np.array([0.0]), np.array([1.0]))
    np.testing.assert_allclose(Kink.X * mean_grad, [[4 / 7, 3 / 7]], atol=1e-6)
    assert info["uncorrected_error"][0] > 1e-3


def test_a_model_of_unknown_image_size(sess):
    """A fully convolutional model on ``[None, None, None, 3]``: the row engine's methods
    (IG, SmoothGrad, Occlusion, also with incremental=True, which has no window to plan
    without the map's size) give the maps of the same graph on a placeholder of known size
    (the rows without noise used to fail: an empty map_fn of noise cannot stack an unknown
    shape)."""
    k = tf.constant(RNG.normal(0, 0.3, (3, 3, 3, 4)).astype(np.float32))
    wd = tf.constant(RNG.normal(0, 1.0, (4, 3)).astype(np.float32))

    def model(shape):
        x = tf1.placeholder(tf.float32, shape)
        feat = tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(x / 255.0 - 0.5, k, 1, "SAME")), [1, 2])
        return x, tf.matmul(feat, wd)

    X = images(2)
    maps = []
    for shape in ([None, None, None, 3], [None, 16, 16, 3]):
        x, out = model(shape)
        maps.append([A.IntegratedGrad(sess, x, out, 1, progress=False)(X, num_steps=4),
                     A.SmoothGrad(sess, x, out, 1, progress=False)(X, samples=3),
                     A.Occlusion(sess, x, out, 1, progress=False)(X, superpixel_size=4,
                                                                  incremental=True)])
    for got, want in zip(*maps):
        assert np.abs(want).max() > 0
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
