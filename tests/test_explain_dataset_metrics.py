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
    on_maps = [m for m in de.EXTRA_METRICS if m not in de.METHOD_METRICS]   # below: those
    ex, settings = tiny_explainer(sess, ["--methods", "saliency,random", "--metrics",
                                         ",".join(on_maps), "--seed", "2",
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
    for col in (de.EXTRA_COLUMNS[m] for m in on_maps):
        assert np.isfinite(rows[col]).any(), col
    assert np.isnan(rows["average_drop"]).all()                   # not asked for


# ------------------------------------------------------------------ --masks

def photo_folder(root, sizes=((30, 40), (36, 24))):
    """root/cat/a.png and root/cat/b.png (heights x widths of ``sizes``): a dark image with
    a bright rectangle, and the matching masks in root.parent/masks/cat/*.png."""
    from PIL import Image
    (root / "cat").mkdir(parents=True)
    (root.parent / "masks" / "cat").mkdir(parents=True)
    for name, (h, w) in zip("ab", sizes):
        img = np.full((h, w, 3), 20, np.uint8)
        mask = np.zeros((h, w), np.uint8)
        mask[h // 4:h // 2, w // 3:w - 2] = 255
        img[mask > 0] = 230
        Image.fromarray(img).save(root / "cat" / f"{name}.png")
        Image.fromarray(mask).save(root.parent / "masks" / "cat" / f"{name}.png")
    return root, root.parent / "masks"


def listed(root):
    from attrkit.dataset.plan import Inputs
    inputs = Inputs()
    inputs.add(str(root))
    return inputs


def test_masks_are_found_checked_and_fitted_as_their_images(tmp_path):
    import hw3_utils
    from attrkit.dataset import masks as dm
    root, folder = photo_folder(tmp_path / "imgs")
    inputs = listed(root)
    found = dm.read_masks(inputs, str(folder))
    assert sorted(found) == [0, 1] and all("mask" in it for it in inputs.items)
    fitted = dm.fit_masks(found, inputs.items, (16, 16, 3))
    for it in inputs.items:                       # the same crop and size as the image
        image = hw3_utils.load_image(it["path"], (16, 16))
        bright = image[..., 0] > 125
        assert fitted[it["index"]].shape == (16, 16)
        assert (fitted[it["index"]] == bright).mean() >= 0.95
    np.savez(tmp_path / "m.npz", **{"cat/a": np.asarray(found[0], np.uint8)})
    by_key = dm.read_masks(listed(root), str(tmp_path / "m.npz"))
    assert list(by_key) == [0] and np.array_equal(by_key[0], found[0])   # b: none
    assert dm.mask_stem({"input": "x.npz", "item": "#3"}) == "3"
    assert dm.mask_stem({"input": "bundled", "item": "coffee"}) == "coffee"


def test_bad_masks_name_the_file_before_any_work(tmp_path):
    from PIL import Image
    from attrkit.dataset import masks as dm
    root, folder = photo_folder(tmp_path / "imgs")
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(folder / "cat" / "a.png")
    with pytest.raises(ed.UsageError, match=r"^--masks: .*cat/a.png marks no pixel"):
        dm.read_masks(listed(root), str(folder))
    Image.fromarray(np.ones((31, 40), np.uint8)).save(folder / "cat" / "a.png")
    with pytest.raises(ed.UsageError, match=r"^--masks: .*cat/a.png is 31 x 40; its input "
                                            r"'cat/a.png' is 30 x 40"):
        dm.read_masks(listed(root), str(folder))
    (folder / "cat" / "a.png").write_bytes(b"not a PNG")
    with pytest.raises(ed.UsageError, match=r"^--masks: cannot read .*cat/a.png"):
        dm.read_masks(listed(root), str(folder))
    with pytest.raises(ed.UsageError, match=r"^--masks: expected a folder"):
        dm.read_masks(listed(root), str(tmp_path / "nowhere"))
    args = ed.build_parser().parse_args(["--metrics", "pointing_game", "--out", "/tmp/u"])
    with pytest.raises(ed.UsageError, match=r"^--metrics: pointing_game score a map"):
        ed.check_args(args)
    args = ed.build_parser().parse_args(["--masks", str(folder), "--out", "/tmp/u"])
    assert ed.check_args(args)[1] == list(de.METRICS + de.MASK_METRICS)


def test_localisation_metrics_score_where_a_mask_exists(sess):
    """Shipped as a Ray row ships them (shard_rows, then the actor's call), the masks reach
    the metrics: each column equals the API on that image's map and mask, NaN without."""
    from attrkit.dataset.masks import LOCALISATION_METRICS
    from attrkit.metrics import localisation as L
    ex, settings = tiny_explainer(sess, ["--methods", "saliency", "--metrics",
                                         ",".join(de.MASK_METRICS), "--masks", "m.npz"])
    X = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    mask = np.zeros((16, 16), bool)
    mask[4:9, 3:12] = True
    items = [{"index": i, "input": "x.npz", "item": f"#{i}", "image_id": i,
              "true_class": 1, "digest": f"{i:024x}"} for i in range(2)]
    row = de.shard_rows({"name": "s", "items": items}, {0: X[0], 1: X[1]}, True, {1: mask})
    actor = de.ShardExplainer.__new__(de.ShardExplainer)
    actor.crash_once, actor.explainer = None, ex
    out = actor({k: [v] for k, v in row.items()})
    assert list(out["status"]) == ["ok"], out["message"]
    arrays, maps = de.from_bytes(out["payload"][0]), de.from_bytes(out["maps"][0])
    rows = {k[4:]: v for k, v in arrays.items() if k.startswith("row_")}
    A = maps["map_saliency"][1]
    for metric, (col, fn) in LOCALISATION_METRICS.items():
        kw = {"k": 255} if metric == "top_k_intersection" else {}
        assert np.isnan(rows[col][0]), col                          # image 0: no mask
        assert rows[col][1] == pytest.approx(getattr(L, fn)(A, mask, **kw)), col


# ------------------------------------------------------------- the method-based metrics

def variables_model():
    """A tiny ReLU conv net whose weights are variables (``model.variables``), so that the
    randomisation test can randomise them: conv1 (3x3, 4) -> conv2 (3x3, 6) -> mean ->
    fc (5) on 16 x 16 images."""
    import collections
    import tensorflow as tf
    from models import Model
    tf1 = tf.compat.v1
    init = tf1.glorot_uniform_initializer(seed=3)
    x = tf1.placeholder(tf.float32, [None, 16, 16, 3], name="imgs")
    variables, h, layers = collections.OrderedDict(), (x - 127.5) / 127.5, {}
    for name, shape in (("conv1", [3, 3, 3, 4]), ("conv2", [3, 3, 4, 6])):
        w = tf1.get_variable(name + "/weights", shape, initializer=init)
        b = tf1.get_variable(name + "/biases", shape[-1:], initializer=tf1.zeros_initializer())
        variables[name + "/weights"], variables[name + "/biases"] = w, b
        h = layers[name] = tf.nn.relu(tf.nn.conv2d(h, w, 1, "SAME") + b, name=name)
    w = tf1.get_variable("fc/weights", [6, 5], initializer=init)
    variables["fc/weights"] = w
    logits = tf.matmul(tf.reduce_mean(h, axis=[1, 2]), w)
    model = Model(x, logits, layers, default_layers={"gradcam": "conv2"})
    model.variables, model.class_names = variables, [f"class {k}" for k in range(5)]
    return model


def test_method_metrics_are_scored_as_the_api_scores_them(sess, monkeypatch):
    """max_sensitivity, avg_sensitivity, random_logit and model_parameter_randomisation call
    each method again with the run's settings (Saliency times the input here): each column
    is what the API gives for that method and budget; Random's is empty; the weights are
    put back."""
    import tensorflow as tf
    from attrkit.metrics import randomisation, robustness as R
    from hw3_attribution import SaliencyMap
    import models
    model = variables_model()
    sess.run(tf.compat.v1.global_variables_initializer())
    monkeypatch.setattr(models, "tiny_convnet", lambda: model)
    names = ",".join(de.METHOD_METRICS)
    ex, settings = tiny_explainer(sess, ["--methods", "saliency,random", "--metrics", names,
                                         "--seed", "2", "--robustness-samples", "3",
                                         "--batch-size", "8"])
    assert settings["robustness"] == {"samples": 3}
    X = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    items = [{"index": i, "input": "bundled", "item": f"x{i}", "image_id": i,
              "true_class": 1, "digest": f"{i:024x}"} for i in range(2)]
    before = sess.run(list(model.variables.values()))
    arrays, _ = ex.explain({"name": "s", "items": items}, {i: X[i] for i in range(2)})
    for a, b in zip(before, sess.run(list(model.variables.values()))):
        np.testing.assert_array_equal(a, b)
    rows = {k[4:]: v for k, v in arrays.items() if k.startswith("row_")}
    sal = rows["method"] == "saliency"
    x, out = model.imgs, model.logits
    t = sess.run(out, {x: X}).argmax(1)
    method = SaliencyMap(sess, x, out, None, progress=False)
    kw = dict(method_kwargs=dict(multiply_with_input=True, batch_size=8))
    want = {"max_sensitivity": R.MaxSensitivity(sess, method, X, x, out, t, nr_samples=3,
                                                seed=2, **kw),
            "avg_sensitivity": R.AvgSensitivity(sess, method, X, x, out, t, nr_samples=3,
                                                seed=2, **kw),
            "random_logit": R.RandomLogit(sess, method, X, x, out, t, **kw),
            "randomisation_similarity": list(randomisation.ModelParameterRandomisation(
                sess, model, method, X, t, blocks=randomisation.block_of, progress=False,
                **kw).values())[-1]}
    for col, v in want.items():
        np.testing.assert_allclose(rows[col][sal], v, rtol=1e-5, atol=1e-7, err_msg=col)
        assert np.isnan(rows[col][~sal]).all(), col          # Random: not an explanation
    assert np.isfinite(rows["randomisation_similarity"][sal]).all()


def test_every_metric_column_has_a_direction_in_the_summary():
    """summary.md says which way is better for the columns it shows, from the figure's
    titles, and every metric column has one."""
    from attrkit.dataset import report
    titles = dict(report.FIGURE_METRICS)       # (Average Increase: drawn with Average Drop)
    assert [c for c, _, _ in de.METRIC_COLUMNS if c not in titles] == ["average_increase"]
    assert report.directions(["average_increase"]) == "Higher is better for Average Increase."
    assert report.directions(["average_drop", "insertion_auc", "max_sensitivity",
                              "sparseness"]) == (
        "Lower is better for Average Drop %, Max-Sensitivity; higher is better for "
        "Insertion AUC.")
    assert report.directions(["sparseness"]) == ""
