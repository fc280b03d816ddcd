"""explain_dataset.py's --metrics for Quantus' metrics of attrkit.metrics (issue 27), on the
tiny model without Ray: the names are accepted only when named ('all' keeps the homework's
four), each fills its column with what the API gives for the same maps and budgets, and the
summary and the metrics figure take the new columns."""
import numpy as np
import pytest

import explain_dataset as ed
from attrkit.dataset import engine as de
from attrkit.metrics import complexity, faithfulness as F
from test_explain_dataset import tiny_explainer


def test_all_keeps_the_four_and_the_extra_names_are_accepted():
    assert ed.parse_names("all", de.METRICS + de.EXTRA_METRICS, "--metrics",
                          everything=de.METRICS) == list(de.METRICS)
    args = ed.build_parser().parse_args(["--metrics", "sparseness,pixel_flipping",
                                         "--out", "/tmp/unused"])
    assert ed.check_args(args)[1] == ["sparseness", "pixel_flipping"]
    with pytest.raises(ed.UsageError, match="--metrics"):
        ed.check_args(ed.build_parser().parse_args(["--metrics", "gini", "--out", "/tmp/u"]))
    assert set(de.EXTRA_COLUMNS) == set(de.EXTRA_METRICS)


def test_extra_metrics_are_scored_as_the_api_scores_them(sess):
    ex, settings = tiny_explainer(sess, ["--methods", "saliency,random", "--metrics",
                                         ",".join(de.EXTRA_METRICS), "--seed", "2",
                                         "--batch-size", "8"])
    X = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    items = [{"index": i, "input": "bundled", "item": f"x{i}", "image_id": i,
              "true_class": 1, "digest": f"{i:024x}"} for i in range(2)]
    arrays, maps = ex.explain({"name": "s", "items": items}, {i: X[i] for i in range(2)})
    rows = {k[4:]: v for k, v in arrays.items() if k.startswith("row_")}
    sal = rows["method"] == "saliency"
    A = maps["map_saliency"]                                      # the pixel maps scored
    t = sess.run(ex.model.logits, {ex.model.imgs: X}).argmax(1)
    x, out = ex.model.imgs, ex.model.logits
    want = {"sparseness": complexity.Sparseness(A),
            "complexity": complexity.Complexity(A),
            "pixel_flipping_auc": F.PixelFlipping(sess, A, X, x, out, t, features_in_step=48,
                                                  return_auc=True, progress=False),
            "region_perturbation_aopc": F.RegionPerturbation(
                sess, A, X, x, out, t, patch_size=settings["curves"]["superpixel"],
                progress=False).mean(1),
            "faithfulness_correlation": F.FaithfulnessCorrelation(
                sess, A, X, x, out, t, seed=2, progress=False),
            "monotonicity_correlation": F.MonotonicityCorrelation(
                sess, A, X, x, out, t, nr_samples=10, features_in_step=48, seed=2,
                progress=False)}
    for col, v in want.items():
        np.testing.assert_allclose(rows[col][sal], v, rtol=1e-5, atol=1e-7, err_msg=col)
    for col in de.EXTRA_COLUMNS.values():
        assert np.isfinite(rows[col]).any(), col
    assert np.isnan(rows["average_drop"]).all()                   # not asked for
