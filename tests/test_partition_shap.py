"""PartitionSHAP (issue 25): shap 0.51's Partition explainer of images, on the row engine.

Against shap itself: its values on tiny_convnet's logits for blur and constant maskers,
several budgets and both fixed contexts, recorded by tests/record_shap_reference.py into
tests/data/partition_shap_reference.npz (and run live where shap and OpenCV are
importable); its partition trees; OpenCV's box blur. By hand, without TensorFlow: the Owen
search on games whose values are known (two players: Shapley's; an additive game: each
value its own term; no budget: the score change spread evenly). Then efficiency, the
engine's masked copies (exactly ``x`` where kept, the masked image elsewhere, channel by
channel), and the discipline: batch = one by one, seeds, no graph growth, session
calls, feed mode, bad input.
"""
import json

import numpy as np
import pytest
import tensorflow as tf

import hw3_attribution as A
import record_shap_reference as R
from attrkit.methods import perturbation as P
from attrkit.methods.perturbation import OwenSearch, PartitionSHAP, PartitionTree, box_blur
from helpers import CountingSession, Reference, chunks, n_ops, raises_exactly, tensors

tf1 = tf.compat.v1


@pytest.fixture(scope="module")
def reference():
    with np.load(R.FIXTURE, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def cases():
    return [dict(zip(("name", "model", "masker", "max_evals", "targets", "seed", "context",
                      "queue"), case)) for case in R.CASES]


@pytest.fixture(scope="module")
def models():
    """Each fixture model in a graph of its own, built once: name -> (sess, model, X)."""
    out = {}
    for name in R.MODELS:
        graph = tf.Graph()
        with graph.as_default():
            sess = tf1.Session(graph=graph)
            out[name] = (sess, R.build_model(name), R.model_images(name))
    yield out
    for sess, _, _ in out.values():
        sess.close()


def ours(models, case, **kw):
    sess, model, X = models[case["model"]]
    method = PartitionSHAP(sess, *tensors(model), list(case["targets"]), progress=False)
    return method(X, masker=case["masker"], max_evals=case["max_evals"],
                  fixed_context=case["context"], queue_batch=case["queue"],
                  seed=case["seed"], return_details=True, **kw)


# ================================================================== shap itself

def test_the_fixture_is_this_models(reference, models):
    """The recorded images and logits are those of the model the tests build."""
    assert json.loads(str(reference["cases"])) == [list(c) for c in R.CASES]
    for name, (sess, model, X) in models.items():
        np.testing.assert_array_equal(reference[f"images_{name}"], X)
        np.testing.assert_allclose(sess.run(model.logits, {model.imgs: X}),
                                   reference[f"logits_{name}"], rtol=1e-5, atol=1e-6,
                                   err_msg="tiny_convnet changed: rerun "
                                           "tests/record_shap_reference.py")


@pytest.mark.parametrize("case", cases(), ids=lambda c: c["name"])
def test_equals_shaps_partition_explainer(reference, models, case):
    """Our values are shap's (recorded) to float32 rounding; so are the base values."""
    values, info = ours(models, case)
    want = reference[f"values_{case['name']}"]
    np.testing.assert_allclose(values, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    np.testing.assert_allclose(info["f_masked"], reference[f"base_{case['name']}"],
                               rtol=1e-6, atol=1e-7)
    assert values.shape == want.shape and values.dtype == np.float32


def test_equals_shap_live(models):
    """shap 0.51 and OpenCV themselves where importable (not dependencies: skipped
    otherwise), on every recorded case."""
    pytest.importorskip("cv2")
    pytest.importorskip("shap")
    for case in cases():
        sess, model, X = models[case["model"]]
        want, base = R.shap_partition(sess, model, X, case["masker"], case["max_evals"],
                                      case["targets"], case["seed"], case["context"],
                                      case["queue"])
        values, info = ours(models, case)
        np.testing.assert_allclose(values, want, rtol=1e-5, atol=1e-6 * np.abs(want).max(),
                                   err_msg=case["name"])
        np.testing.assert_allclose(info["f_masked"], base, rtol=1e-6, atol=1e-7)


def test_the_tree_is_shaps(reference):
    """shap's clustering (left, right, size) for each recorded shape; each node keeps the
    values of its two children, the leaves are the values in flat order, the root all."""
    for shape in R.TREE_SHAPES:
        tree = PartitionTree(shape)
        np.testing.assert_array_equal(tree.clustering()[:, [0, 1, 3]],
                                      reference["tree_" + "x".join(map(str, shape))])
        m = tree.size
        assert tree.root == 2 * m - 2
        np.testing.assert_array_equal(tree.boxes[tree.root], [0, shape[0], 0, shape[1], 0,
                                                              shape[2]])
        for node in range(2 * m - 1):
            kept = box_mask(tree, [node]).ravel()
            if node < m:
                np.testing.assert_array_equal(np.flatnonzero(kept), [node])
            else:
                left, right = tree.children[node - m]
                both = box_mask(tree, [left]).ravel() + box_mask(tree, [right]).ravel()
                np.testing.assert_array_equal(both.astype(bool), kept)
                assert both.max() == 1 and kept.sum() == tree.sizes[node]


def test_box_blur_is_cv2_blur(reference):
    """cv2.blur (recorded), BORDER_REFLECT_101, kernels wider and taller than the array and
    even ones included."""
    for k, (shape, (kx, ky)) in enumerate(json.loads(str(reference["blur_cases"]))):
        x = reference[f"blur_in_{k}"]
        np.testing.assert_allclose(box_blur(x[None], kx, ky)[0], reference[f"blur_out_{k}"],
                                   rtol=1e-6, atol=1e-4, err_msg=str((shape, kx, ky)))


def test_box_blur_by_hand():
    """One row 0, 10, 20, 30: a box of 3 mirrors -1 to 1 and 4 to 2; a box of 2 covers
    i - 1 and i; a box of 9 on 4 entries reflects again and again."""
    x = np.array([0.0, 10.0, 20.0, 30.0]).reshape(1, 1, 4, 1)
    np.testing.assert_allclose(box_blur(x, 3, 1).ravel(), [20 / 3, 10, 20, 70 / 3], rtol=1e-6)
    np.testing.assert_allclose(box_blur(x, 2, 1).ravel(), [5, 5, 15, 25], rtol=1e-6)
    # entries -4..4 of 0 10 20 30 mirrored: 20 30 20 10 | 0 10 20 30 | 20
    np.testing.assert_allclose(box_blur(x, 9, 1).ravel()[0], 160 / 9, rtol=1e-6)
    np.testing.assert_array_equal(box_blur(x, 1, 5), x)          # one row: nothing to mix


# ================================================================== the search by hand

def box_mask(tree, nodes):
    """The values the nodes keep, as a bool array of the image's shape."""
    out = np.zeros(tree.shape, bool)
    for node in nodes:
        r0, r1, c0, c1, k0, k1 = tree.boxes[node]
        out[r0:r1, c0:c1, k0:k1] = True
    return out


def search(tree, game, max_evals, **kw):
    """Run an OwenSearch on ``game`` (a function of the kept values, a bool array)."""
    s = OwenSearch(tree, max_evals, **kw)
    while True:
        masks = s.ask()
        if not masks:
            return s
        s.tell([game(box_mask(tree, m)) for m in masks])


def test_two_values_get_their_shapley_values():
    """Two values (one pixel, two channels): Owen = Shapley, φ_0 = (v(0) + v(01) - v(1)) / 2."""
    tree = PartitionTree((1, 1, 2))
    v = {(False, False): 1.0, (True, False): 3.0, (False, True): -2.0, (True, True): 7.0}
    s = search(tree, lambda kept: v[tuple(kept.ravel())], 4)
    np.testing.assert_allclose(s.values().ravel(), [(2 + 9) / 2, (-3 + 4) / 2])
    assert s.evals == 2 and (s.f00, s.f11) == (1.0, 7.0)


@pytest.mark.parametrize("context, budget", [(None, 2000), (0, 2 * 24 - 2 + 2), (1, 48)])
def test_an_additive_game_gives_each_value_its_term(context, budget):
    """v(S) = Σ_S a: every split is exact, so once the search reaches every leaf each value
    gets its own a (fixed contexts need 2(M - 1) evaluations, both contexts more)."""
    tree = PartitionTree((2, 3, 4))
    a = np.random.RandomState(0).normal(0, 1, tree.shape)
    s = search(tree, lambda kept: float(a[kept].sum()), budget, fixed_context=context)
    np.testing.assert_allclose(s.values(), a, atol=1e-12)
    assert s.evals < budget - 2 if context is None else s.evals == 2 * 23


def test_without_a_budget_the_change_is_spread_evenly():
    """max_evals = 2: only f(x) and f(masked); every value gets (f11 - f00) / M."""
    tree = PartitionTree((3, 2, 3))
    s = search(tree, lambda kept: 5.0 * kept.sum() ** 2, 2)
    np.testing.assert_allclose(s.values(), np.full(tree.shape, 5.0 * 18 ** 2 / 18))
    assert s.evals == 0


def test_steps_pop_queue_batch_masks_within_the_budget():
    """shap's batches: 2 masks per node, at most queue_batch (an odd one rounds up), the
    budget max_evals - 2 never passed by more than one."""
    tree = PartitionTree((8, 8, 3))
    rng = np.random.RandomState(1)
    w = rng.normal(0, 1, tree.shape)
    for queue, max_evals in ((10, 100), (5, 51), (1, 9)):
        s, steps = OwenSearch(tree, max_evals, queue_batch=queue), []
        while True:
            masks = s.ask()
            if not masks:
                break
            steps.append(len(masks))
            s.tell([np.tanh((w * box_mask(tree, m)).sum()) for m in masks])
        assert steps[0] == 4 and max(steps[1:]) == queue + queue % 2
        assert s.evals + 2 in (max_evals, max_evals + 1)


# ================================================================== on the graph

@pytest.fixture(scope="module")
def small(models):
    """The 16 x 16 model and its images, with one PartitionSHAP: (sess, model, X, method)."""
    sess, model, X = models["16"]
    with sess.graph.as_default():
        method = PartitionSHAP(sess, *tensors(model), 0, progress=False)
    return sess, model, X, method


@pytest.mark.parametrize("masker", [None, 0, "blur(4,6)"])
def test_efficiency(small, masker):
    """The values sum to f(x) - f(x fully masked), the masked image computed here (blur:
    box_blur; a number: that constant), its score by a plain forward pass."""
    sess, model, X, method = small
    values, info = method(X, masker=masker, max_evals=120, return_details=True)
    ref = Reference(sess, model)
    masked = (box_blur(X, 9, 9) if masker is None else box_blur(X, 4, 6)
              if isinstance(masker, str) else np.full_like(X, masker))
    for i in range(len(X)):
        f_x, f_masked = ref.f(X[i], 0), ref.f(masked[i], 0)
        assert values[i].astype(np.float64).sum() == pytest.approx(f_x - f_masked, rel=1e-5,
                                                                   abs=1e-6)
        assert info["f_x"][i] == pytest.approx(f_x, rel=1e-6)
        assert info["f_masked"][i] == pytest.approx(f_masked, rel=1e-6, abs=1e-7)
    np.testing.assert_allclose(info["pixel_maps"], values.astype(np.float64).sum(-1),
                               rtol=1e-5, atol=1e-6 * np.abs(info["pixel_maps"]).max())
    assert info["masker"] == ("blur(9,9)" if masker is None else masker)
    assert list(info["evals"]) == [120, 120]


def test_the_rows_are_the_masked_copies(small):
    """The engine's rows for a step's masks: x exactly where a mask keeps a value (channel
    by channel), the masked image exactly elsewhere."""
    sess, model, X, _ = small
    tree = PartitionTree(X.shape[1:])
    rng = np.random.RandomState(4)
    nodes = rng.choice(2 * tree.size - 1, 40)
    masks = [(tree.root,), ()] + [tuple(nodes[k:k + 1 + k % 5]) for k in range(30)]
    masked = box_blur(X[:1], 5, 3)
    bank = A.ImageBank(X[:1], masked, ranks=np.zeros((1, 16, 16), np.int32))
    rows = P.step_rows(bank, [(0, masks)], np.zeros(1, np.int32), tree)
    run = A.ModelRunner(sess, *tensors(model), "PartitionSHAP", progress=False)
    built = run.run_rows(rows, bank, ["rows", "score"], 7, None)
    for k, m in enumerate(masks):
        np.testing.assert_array_equal(built["rows"][k],
                                      np.where(box_mask(tree, m), X[0], masked[0]))
    np.testing.assert_allclose(built["score"], sess.run(model.logits, {
        model.imgs: built["rows"]})[:, 0], rtol=1e-6, atol=1e-6)


def test_default_blur_scales_with_the_image():
    """shap's examples' 'blur(128,128)' at 224 x 224, scaled: 9 at 16 x 16."""
    assert P.parse_masker(None, np.zeros((1, 224, 224, 3), np.float32))[1] == "blur(128,128)"
    assert P.parse_masker(None, np.zeros((1, 16, 16, 3), np.float32))[1] == "blur(9,9)"
    assert P.parse_masker(None, np.zeros((1, 12, 20, 3), np.float32))[1] == "blur(9,9)"


def test_maskers_of_one_value_agree(small):
    """A number, one image of it and one image of it per input are the same masker."""
    sess, model, X, method = small
    kw = dict(max_evals=60, seed=0)
    want = method(X, masker=64, **kw)
    np.testing.assert_array_equal(method(X, masker=np.full(X.shape[1:], 64.0), **kw), want)
    np.testing.assert_array_equal(method(X, masker=np.full(X.shape, 64.0), **kw), want)


def test_batch_equals_one_by_one_and_repeats_exactly(small):
    sess, model, X, method = small
    for masker in (None, 128):
        batch = method(X, masker=masker, max_evals=80, batch_size=7, seed=2)
        assert batch.shape == X.shape and batch.dtype == np.float32
        np.testing.assert_array_equal(method(X, masker=masker, max_evals=80, batch_size=7,
                                             seed=2), batch)
        for i in range(len(X)):
            single = method(X[i], masker=masker, max_evals=80, batch_size=3, seed=2)
            assert single.shape == X.shape[1:]
            np.testing.assert_allclose(single, batch[i], rtol=1e-5,
                                       atol=1e-6 * np.abs(batch).max())


def test_seeds(small):
    """The seed draws only the queue's tie-breakers (an image equal to the masker on its
    right half has many nodes of priority 0): the same seed gives the same values; None
    draws one from numpy's global generator and keeps it."""
    sess, model, X, method = small
    x = X[:1].copy()
    x[:, :, 8:] = 128.0
    kw = dict(masker=128, max_evals=40)
    np.testing.assert_array_equal(method(x, seed=5, **kw), method(x, seed=5, **kw))
    np.random.seed(0)
    unseeded = method(x, **kw)
    assert isinstance(method.last_info["seed"], int)
    np.testing.assert_array_equal(method(x, seed=method.last_info["seed"], **kw), unseeded)
    # the kept half alone carries the change: the masked half's values are all 0
    assert np.all(unseeded[0, :, 8:] == 0) and np.any(unseeded[0, :, :8] != 0)


def test_target_none_is_the_predicted_class(small):
    sess, model, X, _ = small
    predicted = sess.run(model.logits, {model.imgs: X}).argmax(1)
    method = PartitionSHAP(sess, *tensors(model), None, progress=False)
    got, info = method(X, max_evals=40, seed=0, return_details=True)
    np.testing.assert_array_equal(info["targets"], predicted)
    np.testing.assert_array_equal(got, method(X, max_evals=40, seed=0,
                                              target_class=list(predicted)))


def test_no_graph_growth_and_second_instances_reuse_ops(small):
    sess, model, X, method = small
    method(X, max_evals=30)
    ops = n_ops(sess)
    method(X, max_evals=50, masker=3.0, fixed_context=1)
    method(X[0], max_evals=20, target_class=2)
    with sess.graph.as_default():
        PartitionSHAP(sess, *tensors(model), None)
    assert n_ops(sess) == ops


@pytest.mark.parametrize("bs", [1, 16])
def test_session_calls(small, bs):
    """Per step, ceil(rows / batch_size) sess.run: the first step 4 rows per image (f(x),
    f(masked) and the root's halves), the second 8 (the root's split left 4 nodes in the
    queue), then queue_batch per image until max_evals; plus ceil(N / batch_size)
    forwards when the target is None."""
    sess, model, X, _ = small
    spy = CountingSession(sess)
    steps = [4, 8] + [10] * 8 + [8]                    # max_evals 100: 2 + 98 evaluations
    for target, forwards in ((0, []), (None, chunks(2, bs))):
        spy.rows, spy.calls = [], 0
        PartitionSHAP(spy, *tensors(model), target, progress=False)(
            X, max_evals=100, batch_size=bs, seed=0)
        assert spy.rows == forwards + [r for s in steps for r in chunks(2 * s, bs)]


def test_feed_mode_gives_the_same_values(monkeypatch):
    """Where the model cannot be copied the rows are fetched and fed: the same values."""
    X = R.model_images("16")
    out = {}
    for clone in (True, False):
        monkeypatch.setattr(A, "CLONE_MODEL", clone)
        with tf.Graph().as_default() as graph, tf1.Session(graph=graph) as sess:
            model = R.build_model("16")
            out[clone] = PartitionSHAP(sess, *tensors(model), 1, progress=False)(
                X, max_evals=60, seed=0)
            assert A.row_ops(*tensors(model)).mode == ("clone" if clone else "feed")
    np.testing.assert_allclose(out[False], out[True], rtol=1e-5, atol=1e-7)


def test_bad_input_names_the_argument(small):
    sess, model, X, _ = small
    spy = CountingSession(sess)
    method = PartitionSHAP(spy, *tensors(model), 0, progress=False)

    def masker_error(actual, expected="[16, 16, 3]"):
        return P.MASKER_ERROR.format(expected=expected, actual=actual)

    for bad in ("blur(3)", "blur(0,3)", "blur(3,3,3)", "gaussian", "128", "blur(-1,2)"):
        with raises_exactly(ValueError, masker_error(repr(bad))):
            method(X, masker=bad)
    with raises_exactly(ValueError, P.INPAINT_ERROR.format(actual="inpaint_telea")):
        method(X, masker="inpaint_telea")
    with raises_exactly(ValueError, masker_error("shape [4, 4]",
                                                 "[16, 16, 3] (or [2, 16, 16, 3])")):
        method(X, masker=np.zeros((4, 4)))
    with raises_exactly(ValueError, masker_error("float64 array of shape []",
                                                 "[16, 16, 3] of finite numbers")):
        method(X, masker=np.nan)
    for bad, exc in ((1, ValueError), (-5, ValueError), (1.5, TypeError), (True, TypeError),
                     ("auto", TypeError)):
        with raises_exactly(exc, P.MAX_EVALS_ERROR.format(actual=bad)):
            method(X, max_evals=bad)
    for bad in (2, -1, True, "none"):
        with raises_exactly(ValueError, P.FIXED_CONTEXT_ERROR.format(actual=bad)):
            method(X, fixed_context=bad)
    with raises_exactly(ValueError, A.POSITIVE_INT_ERROR.format(arg="queue_batch", actual=0)):
        method(X, queue_batch=0)
    assert spy.calls == 0                                  # nothing ran


def test_inputs_that_are_not_images(sess):
    from helpers import XL, W
    from models import linear
    model = linear(W)
    with raises_exactly(ValueError, A.NOT_IMAGE_ERROR.format(
            arg="X", method="PartitionSHAP", name=model.imgs.name, actual=[3, 4])):
        PartitionSHAP(sess, *tensors(model), 0)(XL)
