"""The model-free metrics of ``attrkit.metrics`` (issue 27), as Quantus 0.6.0 defines them:
each by hand on small maps (one axiom, one test), against Quantus' own values recorded in
tests/data/quantus_model_free.npz (regenerate: see tests/record_quantus_reference.py),
batch against one by one, and bad input.

No model and no session: every test is numpy on arrays of a few pixels.
"""
import json
import math
import os
import re
import warnings

import numpy as np
import pytest
import tensorflow as tf

from helpers import TESTS_DIR, prefix, raises_exactly
from hw3_attribution import INPUT_FINITE_ERROR, SYMBOLIC_ERROR
from hw3_evaluation import UNDEFINED_WARNING
from attrkit.metrics import maps as mp
from attrkit.metrics.complexity import Complexity, EffectiveComplexity, Sparseness
from attrkit.metrics.localisation import (AUC, AttributionLocalisation, PointingGame,
                                          RelevanceMassAccuracy, RelevanceRankAccuracy,
                                          TopKIntersection)

LOCALISATION = {f.__name__: f for f in (PointingGame, RelevanceMassAccuracy,
                                        RelevanceRankAccuracy, TopKIntersection,
                                        AttributionLocalisation, AUC)}
COMPLEXITY = {f.__name__: f for f in (Sparseness, Complexity, EffectiveComplexity)}
ALL = {**LOCALISATION, **COMPLEXITY}
# the metrics whose score ignores a positive factor on a map (to rounding): a batch gives
# what its maps give one by one
SCALE_FREE = ("PointingGame", "RelevanceMassAccuracy", "RelevanceRankAccuracy",
              "TopKIntersection", "AUC", "Complexity")
FIXTURE = os.path.join(TESTS_DIR, "data", "quantus_model_free.npz")


def score(name, attr_map, mask=None, **kw):
    """Metric ``name`` on ``attr_map`` (and ``mask`` where it takes one), quietly (NaN
    warnings are the subject of their own tests)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if name in COMPLEXITY:
            return COMPLEXITY[name](attr_map, **kw)
        if name == "TopKIntersection":
            kw.setdefault("k", 3)
        return LOCALISATION[name](attr_map, mask, **kw)


def warns_undefined(metric, indices, why):
    return pytest.warns(RuntimeWarning, match="^" + re.escape(UNDEFINED_WARNING.format(
        metric=metric, indices=indices, why=why)) + "$")


def grid(rows):
    return np.array(rows, np.float64)


def bools(rows):
    return np.array(rows, bool)


# --------------------------------------------------------------------- Pointing Game

def test_pointing_game_hits_when_the_maximum_is_on_the_mask():
    a = grid([[0.1, 0.9], [0.3, 0.2]])
    assert PointingGame(a, bools([[0, 1], [0, 0]])) == 1.0
    assert PointingGame(a, bools([[1, 0], [1, 1]])) == 0.0


def test_pointing_game_counts_every_pixel_of_a_tied_maximum():
    a = grid([[1.0, 0.2], [0.3, 1.0]])
    assert PointingGame(a, bools([[0, 0], [0, 1]])) == 1.0      # the second of the tie
    assert PointingGame(a, bools([[0, 1], [1, 0]])) == 0.0


def test_pointing_game_all_negative_map_points_at_its_least_negative_pixel():
    a = grid([[-3.0, -0.5], [-2.0, -1.0]])
    least, most = bools([[0, 1], [0, 0]]), bools([[1, 0], [0, 0]])
    assert PointingGame(a, least) == 1.0 and PointingGame(a, most) == 0.0
    assert PointingGame(a, least, abs=True) == 0.0 and PointingGame(a, most, abs=True) == 1.0


def test_pointing_game_weighted_hit_weighs_the_mask_size():
    a = grid([[0.1, 0.9, 0.0], [0.3, 0.2, 0.0]])
    mask = bools([[0, 1, 1], [0, 0, 0]])
    assert PointingGame(a, mask, weighted=True) == pytest.approx(1 - 2 / 6)
    assert PointingGame(a, ~mask, weighted=True) == 0.0


def test_pointing_game_empty_mask_is_nan_with_a_warning():
    a = np.stack([grid([[1.0, 0.0], [0.0, 0.0]])] * 2)
    mask = bools([[[1, 0], [0, 0]], [[0, 0], [0, 0]]])
    with warns_undefined("Pointing Game", [1], "empty mask"):
        out = PointingGame(a, mask)
    assert out[0] == 1.0 and np.isnan(out[1])


# ---------------------------------------------------------- Relevance Mass Accuracy

def test_relevance_mass_accuracy_is_the_share_of_the_sum_on_the_mask():
    a = grid([[1.0, 2.0], [3.0, 4.0]])
    assert RelevanceMassAccuracy(a, bools([[1, 1], [0, 0]])) == pytest.approx(3 / 10)


def test_relevance_mass_accuracy_sums_signed_values():
    a = grid([[2.0, -1.0], [0.0, 0.0]])      # Quantus' code: the signed sum, not positives
    assert RelevanceMassAccuracy(a, bools([[1, 0], [0, 0]])) == pytest.approx(2.0)
    assert RelevanceMassAccuracy(a, bools([[1, 0], [0, 0]]), abs=True) == pytest.approx(2 / 3)


def test_relevance_mass_accuracy_of_a_zero_sum_map_is_nan_with_a_warning():
    a = np.stack([grid([[1.0, -1.0]]), grid([[1.0, 0.0]])])
    with warns_undefined("Relevance Mass Accuracy", [0], "the map sums to 0"):
        out = RelevanceMassAccuracy(a, bools([[[1, 0]], [[1, 0]]]))
    assert np.isnan(out[0]) and out[1] == 1.0


# ---------------------------------------------------------- Relevance Rank Accuracy

def test_relevance_rank_accuracy_counts_the_mask_in_its_top_k():
    a = grid([[0.9, 0.8, 0.1], [0.7, 0.2, 0.3]])
    # K = 3: the top three are 0.9, 0.8, 0.7; two of them are on the mask
    assert RelevanceRankAccuracy(a, bools([[1, 0, 1], [1, 0, 0]])) == pytest.approx(2 / 3)


def test_relevance_rank_accuracy_stable_breaks_ties_in_raster_order():
    a = grid([[1.0, 1.0], [1.0, 0.0]])          # a tie of three across the first place
    first, third = bools([[1, 0], [0, 0]]), bools([[0, 0], [1, 0]])
    assert RelevanceRankAccuracy(a, first, stable=True) == 1.0
    assert RelevanceRankAccuracy(a, third, stable=True) == 0.0


def test_relevance_rank_accuracy_default_ranks_as_numpy_argsort():
    a = np.round(np.random.RandomState(3).randn(6, 5, 7))          # many ties
    mask = np.random.RandomState(4).rand(6, 5, 7) < 0.4
    flat, m = (a / np.abs(a).max()).reshape(6, -1), mask.reshape(6, -1)
    order = np.argsort(-flat, axis=-1)                             # Quantus' ranking
    k = m.sum(1)
    want = [m[i, order[i, :k[i]]].sum() / k[i] for i in range(6)]
    np.testing.assert_array_equal(RelevanceRankAccuracy(a, mask), want)


def test_relevance_rank_accuracy_ties_inside_the_top_k_change_nothing():
    a = grid([[2.0, 2.0, 2.0], [1.0, 0.0, 0.0]])     # the tie fills the top three
    mask = bools([[0, 1, 1], [1, 0, 0]])
    assert RelevanceRankAccuracy(a, mask) == RelevanceRankAccuracy(a, mask, stable=True)
    assert RelevanceRankAccuracy(a, mask) == pytest.approx(2 / 3)


# ---------------------------------------------------------------- Top-K Intersection

def test_top_k_intersection_is_the_share_of_the_top_k_on_the_mask():
    a = grid([[0.9, 0.8, 0.1], [0.7, 0.2, 0.3]])
    mask = bools([[1, 0, 0], [1, 1, 1]])
    assert TopKIntersection(a, mask, k=2) == 0.5
    assert TopKIntersection(a, mask, k=3) == pytest.approx(2 / 3)
    assert TopKIntersection(a, mask, k=5) == pytest.approx(4 / 5)


def test_top_k_intersection_concept_influence_scales_by_the_object_share():
    a = grid([[0.9, 0.8, 0.1], [0.7, 0.2, 0.3]])
    mask = bools([[1, 0, 0], [1, 1, 1]])
    assert (TopKIntersection(a, mask, k=2, concept_influence=True)
            == pytest.approx(0.5 * 6 / 4))


def test_top_k_intersection_stable_breaks_ties_in_raster_order():
    a = grid([[0.5, 0.5], [0.5, 1.0]])
    assert TopKIntersection(a, bools([[1, 0], [0, 0]]), k=2, stable=True) == 0.5
    assert TopKIntersection(a, bools([[0, 1], [0, 0]]), k=2, stable=True) == 0.0


def test_top_k_intersection_needs_k_below_the_map_size():
    a, mask = np.ones((4, 4)), np.ones((4, 4), bool)
    for k in (0, 16, 1000):
        with raises_exactly(ValueError, mp.K_ERROR.format(size=16, actual=k)):
            TopKIntersection(a, mask, k=k)
    for k in (2.0, True, "3"):
        with raises_exactly(TypeError, mp.K_ERROR.format(size=16, actual=k)):
            TopKIntersection(a, mask, k=k)
    assert TopKIntersection(a, mask, k=np.int64(15)) == 1.0


# ---------------------------------------------------------- Attribution Localisation

def test_attribution_localisation_is_the_inside_total_ratio_of_abs():
    a = grid([[1.0, -3.0], [0.0, 0.0]])
    # normalised: |a| / 3 = [1/3, 1, 0, 0]; on the mask 1 of 4/3
    assert (AttributionLocalisation(a, bools([[0, 1], [0, 0]]))
            == pytest.approx(1 / (4 / 3 + 1e-9), rel=1e-15))


def test_attribution_localisation_positive_attributions_clip_at_zero():
    a = grid([[1.0, -3.0], [2.0, 0.0]])
    mask = bools([[1, 1], [0, 0]])
    assert (AttributionLocalisation(a, mask, positive_attributions=True, abs=False)
            == pytest.approx((1 / 3) / (1.0 + 1e-9), rel=1e-15))


def test_attribution_localisation_ratio_above_one_is_nan_with_a_warning():
    a = grid([[2.0, -1.5]])
    with warns_undefined("Attribution Localisation", [0],
                         "more attribution on the mask than in total; abs=False?"):
        assert np.isnan(AttributionLocalisation(a, bools([[1, 0]]), abs=False))


def test_attribution_localisation_weighted_multiplies_by_the_object_share():
    a = grid([[1.0, 3.0], [2.0, 2.0]])
    mask = bools([[0, 1], [0, 0]])
    plain = AttributionLocalisation(a, mask)
    assert AttributionLocalisation(a, mask, weighted=True) == pytest.approx(plain / 4)


# ------------------------------------------------------------------------------- AUC

def test_auc_of_a_separating_map_is_one_and_of_its_reverse_zero():
    a = grid([[0.9, 0.8], [0.1, 0.2]])
    mask = bools([[1, 1], [0, 0]])
    assert AUC(a, mask) == 1.0 and AUC(-a, mask) == 0.0


def test_auc_counts_a_tie_as_one_half():
    a = grid([[3.0, 1.0], [1.0, 0.0]])
    # positives {3, 1}, negatives {1, 0}: 3 > 1, 3 > 0, 1 = 1 (1/2), 1 > 0 -> 3.5 / 4
    assert AUC(a, bools([[1, 1], [0, 0]])) == 0.875
    assert AUC(np.ones((3, 3)), np.eye(3, dtype=bool)) == 0.5


def test_auc_full_mask_is_nan_with_a_warning():
    with warns_undefined("AUC", [0], "the mask covers the whole map"):
        assert np.isnan(AUC(grid([[1.0, 2.0]]), bools([[1, 1]])))


def test_auc_equals_sklearn_roc_auc_on_maps_with_ties():
    metrics = pytest.importorskip("sklearn.metrics")
    rs = np.random.RandomState(5)
    a = np.round(2 * rs.randn(5, 6, 8)) / 2
    mask = rs.rand(5, 6, 8) < 0.3
    want = [metrics.roc_auc_score(m.ravel(), x.ravel()) for x, m in zip(a, mask)]
    np.testing.assert_allclose(AUC(a, mask), want, rtol=1e-12)


# ------------------------------------------------------------------------ Sparseness

def test_sparseness_of_a_uniform_map_is_zero():
    assert Sparseness(np.full((4, 5), 0.3)) == pytest.approx(0.0, abs=1e-15)
    assert Sparseness(np.zeros((4, 5))) == pytest.approx(0.0, abs=1e-15)


def test_sparseness_of_one_hot_pixel_is_the_gini_index_with_quantus_1e_7():
    a = np.zeros((4, 5))
    a[1, 2] = -7.0                                       # abs by default; normalised to 1
    n = 20
    assert Sparseness(a) == pytest.approx((n - 1) / (n * (1 + n * 1e-7)), rel=1e-14)


def test_sparseness_by_hand():
    # |a| = 1, 2, 3, 4 (normalised by 4, + 1e-7): Σ (2i - 5) a_(i) / (4 Σ a)
    a = np.abs(grid([[4.0, -1.0], [3.0, 2.0]])) / 4 + 1e-7
    want = ((-3 * a[0, 1] - a[1, 1] + a[1, 0] + 3 * a[0, 0]) / (4 * a.sum()))
    assert Sparseness(grid([[4.0, -1.0], [3.0, 2.0]])) == pytest.approx(want, rel=1e-14)


# ------------------------------------------------------------------------ Complexity

def test_complexity_of_a_uniform_map_is_log_n():
    n = 12
    want = -n * (1 / n) * math.log(1 / n + 1e-12)
    assert Complexity(np.full((3, 4), -2.5)) == pytest.approx(want, rel=1e-14)
    assert want == pytest.approx(math.log(n), rel=1e-10)


def test_complexity_of_one_hot_pixel_is_zero():
    a = np.zeros((3, 4))
    a[2, 1] = 5.0
    assert Complexity(a) == pytest.approx(0.0, abs=1e-11)


def test_complexity_of_an_all_zero_map_is_nan_with_a_warning():
    a = np.stack([np.zeros((2, 2)), np.eye(2)])
    with warns_undefined("Complexity", [0], "an all-zero map"):
        out = Complexity(a)
    assert np.isnan(out[0]) and out[1] == pytest.approx(math.log(2), rel=1e-10)


def test_complexity_of_negative_values_without_abs_is_nan_with_a_warning():
    with warns_undefined("Complexity", [0], "negative values (abs=False) have no logarithm"):
        assert np.isnan(Complexity(grid([[1.0, -0.5]]), abs=False))


# --------------------------------------------------------------- Effective Complexity

def test_effective_complexity_counts_values_above_eps_after_normalising():
    a = grid([[10.0, 1e-4, -0.5], [0.0, 2e-4, 3.0]])
    # normalised by 10: 1, 1e-5, 0.05, 0, 2e-5, 0.3; strictly above 1e-5: four
    assert EffectiveComplexity(a) == 4
    assert EffectiveComplexity(a, eps=0.1) == 2
    assert EffectiveComplexity(a, eps=1e-5, normalise=False) == 5
    assert isinstance(EffectiveComplexity(a), int)


def test_effective_complexity_of_a_batch_is_int64():
    out = EffectiveComplexity(np.ones((2, 3, 3)))
    assert out.dtype == np.int64 and out.tolist() == [9, 9]


def test_effective_complexity_eps_must_be_a_finite_number():
    for eps, err in ((float("nan"), ValueError), (np.inf, ValueError), ("0.1", TypeError),
                     (None, TypeError), (True, TypeError)):
        with raises_exactly(err, mp.EPS_ERROR.format(actual=eps)):
            EffectiveComplexity(np.eye(3), eps=eps)


# ---------------------------------------------------------- normalisation and batches

def batch():
    """Four maps of different scales, signs and masks (one map holds the batch's max)."""
    rs = np.random.RandomState(11)
    a = rs.randn(4, 6, 7) * np.array([1.0, 10.0, 0.01, 3.0])[:, None, None]
    a[2] = -np.abs(a[2])
    mask = rs.rand(4, 6, 7) < 0.3
    return a, mask


@pytest.mark.parametrize("name", list(ALL))
def test_batch_equals_each_map_divided_by_the_batchs_largest_value(name):
    a, mask = batch()
    whole = score(name, a, mask)
    largest = np.abs(a).max()
    for i in range(len(a)):
        alone = score(name, a[i] / largest, mask[i], normalise=False)
        assert whole[i] == pytest.approx(alone, rel=1e-13)


@pytest.mark.parametrize("name", SCALE_FREE)
def test_batch_equals_one_by_one_for_the_scale_free_metrics(name):
    a, mask = batch()
    whole = score(name, a, mask)
    np.testing.assert_allclose(whole, [score(name, a[i], mask[i]) for i in range(len(a))],
                               rtol=1e-13)


def test_batch_normalisation_changes_sparseness_and_effective_complexity():
    a, mask = batch()                     # map 2 is 1000 times smaller than map 1
    assert EffectiveComplexity(a, eps=1e-2)[2] == 0
    assert EffectiveComplexity(a[2], eps=1e-2) > 30
    assert Sparseness(a)[2] != pytest.approx(Sparseness(a[2]), rel=1e-6)


def test_normalise_divides_by_the_largest_absolute_value_of_the_call():
    a = grid([[[2.0, -8.0]], [[4.0, 1.0]]])
    np.testing.assert_array_equal(mp.read_maps(a).values, [[0.25, -1.0], [0.5, 0.125]])
    np.testing.assert_array_equal(mp.read_maps(a, abs=True).values,
                                  [[0.25, 1.0], [0.5, 0.125]])
    zero = mp.read_maps(np.zeros((2, 2, 2))).values         # all zero: left as it is
    assert not np.isnan(zero).any() and not zero.any()


def test_single_map_gives_a_scalar_equal_to_its_batch_of_one():
    a, mask = batch()
    for name in ALL:
        one = score(name, a[0], mask[0])
        assert np.isscalar(one) and isinstance(one, (float, int))
        assert one == score(name, a[:1], mask[:1])[0]


def test_inputs_are_not_changed():
    a, mask = batch()
    a0, mask0 = a.copy(), mask.copy()
    for name in ALL:
        score(name, a, mask, normalise=False, abs=False)
        score(name, a, mask)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(mask, mask0)


def test_float32_and_lists_are_read_as_float64():
    a, mask = batch()
    for name in ALL:
        np.testing.assert_array_equal(score(name, a.astype(np.float32), mask),
                                      score(name, a.astype(np.float32).astype(np.float64),
                                            mask))
    assert PointingGame([[0, 1], [0, 0]], bools([[0, 1], [0, 0]])) == 1.0


@pytest.mark.parametrize("name", list(LOCALISATION))
def test_empty_mask_is_nan_with_a_warning_naming_the_image(name):
    a, mask = batch()
    mask[1] = False
    metric = {"PointingGame": "Pointing Game", "TopKIntersection": "Top-K Intersection",
              "RelevanceMassAccuracy": "Relevance Mass Accuracy",
              "RelevanceRankAccuracy": "Relevance Rank Accuracy",
              "AttributionLocalisation": "Attribution Localisation", "AUC": "AUC"}[name]
    kw = {"k": 3} if name == "TopKIntersection" else {}
    with warns_undefined(metric, [1], "empty mask") as record:
        out = LOCALISATION[name](a, mask, **kw)
    assert record[0].filename == __file__          # the warning points at the caller
    assert np.isnan(out[1]) and not np.isnan(out[[0, 2, 3]]).any()


# ------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("name", list(ALL))
def test_attr_map_of_a_wrong_shape_is_an_error_naming_it(name):
    for shape in ((5,), (1, 2, 3, 4), (0, 3, 3), (3, 0)):
        with raises_exactly(ValueError, mp.MAP_SHAPE_ERROR.format(actual=list(shape))):
            score(name, np.zeros(shape), np.zeros(shape, bool))


@pytest.mark.parametrize("name", list(ALL))
def test_attr_map_of_strings_or_nan_is_an_error_naming_it(name):
    with raises_exactly(TypeError, mp.MAP_DTYPE_ERROR.format(actual=np.dtype("<U1"))):
        score(name, np.array([["a", "b"]]), bools([[1, 0]]))
    with raises_exactly(ValueError, INPUT_FINITE_ERROR.format(arg="attr_map", count=2)):
        score(name, grid([[np.nan, 1.0], [np.inf, 0.0]]), bools([[1, 0], [0, 0]]))


@pytest.mark.parametrize("name", list(LOCALISATION))
def test_mask_of_another_shape_or_not_bool_is_an_error_naming_it(name):
    a = np.ones((2, 3, 4))
    with raises_exactly(ValueError, mp.MASK_SHAPE_ERROR.format(expected=[2, 3, 4],
                                                               actual=[3, 4])):
        score(name, a, np.ones((3, 4), bool))
    for mask in (np.ones((2, 3, 4), int), np.ones((2, 3, 4), np.float32)):
        with raises_exactly(TypeError, mp.MASK_DTYPE_ERROR.format(actual=mask.dtype)):
            score(name, a, mask)


@pytest.mark.parametrize("name", list(ALL))
def test_flags_must_be_bools(name):
    a, mask = batch()
    for flag in ("abs", "normalise"):
        with raises_exactly(TypeError, mp.FLAG_ERROR.format(arg=flag, actual=1)):
            score(name, a, mask, **{flag: 1})


def test_a_graph_tensor_is_refused_by_name():
    with tf.Graph().as_default():
        t = tf.compat.v1.placeholder(tf.float32, [2, 2], name="attr")
        with pytest.raises(TypeError, match=prefix(SYMBOLIC_ERROR.replace("{arg}",
                                                                          "attr_map"))):
            Sparseness(t)


# ------------------------------------------------------------ against Quantus 0.6.0

def load_fixture():
    with np.load(FIXTURE, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    return data, json.loads(str(data["index"]))


FIX, INDEX = load_fixture()
TIE_CASES = {k[len("order_"):] for k in FIX if k.startswith("order_")}


def quirk(case, metric, kwargs):
    """Recorded entries where Quantus 0.6.0 differs from ours on purpose (tested below)."""
    n = len(FIX[f"maps_{case}"])
    return ((metric == "PointingGame" and not FIX[f"masks_{case}"].any(axis=(1, 2)).all())
            or (metric == "AttributionLocalisation" and kwargs.get("weighted") and n != 3))


def ours(case, metric, kwargs):
    """Our metric on a recorded case, with exactly the recorded kwargs (Quantus' names)."""
    args = (FIX[f"maps_{case}"],) + (() if metric in COMPLEXITY else (FIX[f"masks_{case}"],))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(ALL[metric](*args, **kwargs), np.float64)


def ties_as_recorded(case):
    """Whether this machine's numpy orders the case's ties as the recording's did."""
    maps = FIX[f"maps_{case}"].astype(np.float64).reshape(len(FIX[f"maps_{case}"]), -1)
    return np.array_equal(np.argsort(-(maps / np.abs(maps).max()), axis=-1),
                          FIX[f"order_{case}"])


@pytest.mark.parametrize("i", [i for i, e in enumerate(INDEX) if not quirk(*e)],
                         ids=lambda i: "{}-{}-{}".format(*INDEX[i]))
def test_matches_quantus(i):
    case, metric, kwargs = INDEX[i]
    if (case in TIE_CASES and metric in ("RelevanceRankAccuracy", "TopKIntersection")
            and not ties_as_recorded(case)):
        pytest.skip("this machine's numpy.argsort orders equal values differently from "
                    "the recording's; the tie-free cases still compare")
    np.testing.assert_allclose(ours(case, metric, kwargs), FIX[f"value_{i}"], rtol=1e-9,
                               atol=1e-12)


def test_fixture_covers_every_metric_and_the_hard_cases():
    metrics = {m for _, m, _ in INDEX}
    assert metrics == set(ALL)
    assert {"ties", "negative", "onehot", "empty_full", "blobs"} <= {c for c, _, _ in INDEX}
    assert ["blobs", "TopKIntersection", {}] in INDEX            # Quantus' k = 1000
    assert os.path.getsize(FIXTURE) < 100_000
    assert json.loads(str(FIX["versions"]))["quantus"] == "0.6.0"


def test_quantus_pointing_game_scores_an_empty_mask_true_where_ours_is_nan():
    i = INDEX.index(["empty_full", "PointingGame", {}])
    empty = ~FIX["masks_empty_full"].any(axis=(1, 2))
    recorded, mine = FIX[f"value_{i}"], ours("empty_full", "PointingGame", {})
    assert (recorded[empty] == 1.0).all() and np.isnan(mine[empty]).all()
    np.testing.assert_array_equal(mine[~empty], recorded[~empty])


def test_quantus_weighted_attribution_localisation_divides_by_the_batch_less_two():
    for i, (case, metric, kwargs) in enumerate(INDEX):
        if metric == "AttributionLocalisation" and kwargs.get("weighted"):
            n = len(FIX[f"maps_{case}"])             # x_batch[2:].size = (n - 2) H W
            np.testing.assert_allclose(FIX[f"value_{i}"] * (n - 2),
                                       ours(case, metric, kwargs), rtol=1e-12)


def test_quantus_weighted_pointing_game_raises_where_ours_weighs():
    errors = json.loads(str(FIX["errors"]))
    assert [e[:3] for e in errors] == [["gauss", "PointingGame", {"weighted": True}]]
    assert errors[0][3].startswith("TypeError: NumPy boolean array indexing assignment")
    out = ours("gauss", "PointingGame", {"weighted": True})
    masks = FIX["masks_gauss"]
    np.testing.assert_allclose(out, ours("gauss", "PointingGame", {})
                               * (1 - masks.sum(axis=(1, 2)) / masks[0].size))
