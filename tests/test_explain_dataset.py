"""explain_dataset.py: argument checks, input listing, shard naming, the summary maths, and
(slow) whole runs on Ray with 2 actors: rows equal to the single-process API, influence
merged exactly, bad inputs skipped, a killed worker retried, finished shards reused."""
import importlib.util
import json
import os
import pathlib
import pickle
import shutil
import socket
import subprocess
import sys
import warnings

import numpy as np
import pytest

from attrkit.dataset import engine as de
from attrkit.dataset import plan as dp
from attrkit.dataset import report as dr
import explain_dataset as ed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# small budgets: IG 8 steps, SmoothGrad 4 samples, N_Ord M=5000, 28-px superpixels, 32
# masked copies per image for LIME, KernelSHAP and RISE (lime's quickshift segments), and
# the CAM family on block6 (192 channels, where the default head has 1,280), so that
# Score-CAM's row per channel keeps the runs short
SMALL = ["--ig-steps", "8", "--sg-samples", "4", "--occlusion-size", "28", "--nord-m",
         "5000", "--curve-superpixel", "28", "--curve-step", "4", "--perturbation-samples",
         "32", "--gradcam-layer", "block6", "--no-progress"]


def run_cli(*args, timeout=600, env=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "explain_dataset.py"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chelsea_png():
    spec = importlib.util.find_spec("skimage")
    return os.path.join(list(spec.submodule_search_locations)[0], "data", "chelsea.png")


# ------------------------------------------------------------------ fast: arguments

def test_help_lists_the_engine_flags():
    r = run_cli("--help", timeout=60)
    assert r.returncode == 0
    for flag in ("--methods", "--metrics", "--out", "--workers", "--address", "--save-maps",
                 "--ig-steps", "--sg-samples", "--nord-m", "--layer", "--qoi", "--model"):
        assert flag in r.stdout
    assert "_crash" not in r.stdout


@pytest.mark.parametrize("flag, value, bad", [("--methods", "saliency,anchors", "anchors"),
                                              ("--metrics", "n_ord,iou", "iou")])
def test_unknown_name_stops_before_any_work(tmp_path, flag, value, bad):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier results")
    r = run_cli("--out", str(out), flag, value, timeout=60)
    assert r.returncode == 2
    assert bad in r.stderr and "expected a comma list of" in r.stderr
    assert sorted(os.listdir(out)) == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "earlier results"


@pytest.mark.parametrize("how", ["flag", "env"])
def test_unreachable_address_stops_before_any_work(tmp_path, how):
    address = f"127.0.0.1:{free_port()}"
    args, env = ["--out", str(tmp_path / "out")], {}
    if how == "flag":
        args += ["--address", address]
    else:
        env["RAY_ADDRESS"] = address
    r = run_cli(*args, timeout=60, env=env)
    assert r.returncode == 2
    assert "cannot reach a Ray cluster" in r.stderr and address in r.stderr
    assert not (tmp_path / "out").exists()


def test_missing_input_is_a_usage_error(tmp_path):
    r = run_cli(str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"), timeout=60)
    assert r.returncode == 2 and "no such file or folder" in r.stderr


def _digests(folder):
    import hashlib
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


def test_out_that_is_a_file_is_a_usage_error(tmp_path):
    f = tmp_path / "results"
    f.write_text("my notes")
    r = run_cli("--out", str(f), timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "explain_dataset.py: error: --out: expected a folder (created if missing), got " \
           "the file" in r.stderr
    assert f.read_text() == "my notes"


def test_weights_and_unwritable_out_are_named_as_options(tmp_path):
    with pytest.raises(ed.UsageError, match="^--out: expected a folder this user can write"):
        ed.check_args(ed.build_parser().parse_args(["--out", "/proc/hw3_results"]))
    r = run_cli("--weights", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "o"),
                timeout=120)
    assert r.returncode == 2 and "explain_dataset.py: error: --weights: no such file" in r.stderr
    assert not (tmp_path / "o").exists()


def test_nothing_to_explain_stops_before_ray_and_keeps_an_earlier_run(tmp_path):
    """Only fake .jpg files: exit 2 naming the reasons, no actor, no Ray, and an --out
    that holds an earlier run keeps every file as it was."""
    root = tmp_path / "imgs" / "tabby"
    root.mkdir(parents=True)
    (root / "a.jpg").write_bytes(b"not a JPEG at all")
    (root / "b.jpg").write_text("neither is this")
    out = tmp_path / "out"
    (out / "shards").mkdir(parents=True)
    (out / "results.parquet").write_bytes(b"an earlier run's table")
    (out / "summary.md").write_text("# an earlier run")
    before = _digests(out)
    r = run_cli(str(tmp_path / "imgs"), "--out", str(out), timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "inputs: expected at least one image that can be explained, got none: 2 " \
           "input(s) skipped (cannot read as an image" in r.stderr
    assert "ray:" not in r.stderr and "Traceback" not in r.stderr
    assert _digests(out) == before


def test_an_empty_shard_is_never_recorded_as_done():
    """An actor whose shard yields no image reports it as failed (not written, so the
    next run tries it again) with the reasons, instead of an empty shard file."""
    class NoImages:
        def explain(self, spec, pixels):
            arrays = {"meta": np.array(json.dumps({"images": 0})),
                      "skipped_reason": np.array(["cannot read as an image: truncated"])}
            return arrays, {}

    actor = de.ShardExplainer.__new__(de.ShardExplainer)
    actor.crash_once, actor.explainer = None, NoImages()
    spec = json.dumps({"name": "s1", "items": [], "save_maps": False})
    out = actor({"shard": ["s1"], "spec": [spec], "pixels": [b""]})
    assert list(out["status"]) == ["error"] and out["payload"][0] == b""
    assert "never recorded as done" in out["message"][0] and "truncated" in out["message"][0]


def test_parse_names_and_qoi():
    assert ed.parse_names("all", de.METHODS, "methods") == list(de.METHODS)
    assert ed.parse_names("IG, saliency,ig", de.METHODS, "methods") == ["ig", "saliency"]
    assert ed.parse_names("none", de.METRICS, "metrics", allow_none=True) == []
    with pytest.raises(ed.UsageError, match="unknown name"):
        ed.parse_names("ig,foo", de.METHODS, "methods")
    with pytest.raises(ed.UsageError, match="at least one"):
        ed.parse_names("", de.METHODS, "methods")
    assert ed.parse_qoi("predicted") == ["predicted"]
    assert ed.parse_qoi("354,356") == [354, 356]
    assert ed.parse_qoi("true, predicted") == ["true", "predicted"]
    for bad in ("camel", "1,2,3", "-4"):
        with pytest.raises(ed.UsageError, match="qoi"):
            ed.parse_qoi(bad)


def test_bad_sizes_are_usage_errors():
    for argv in (["--occlusion-size", "0"], ["--curve-superpixel", "0"], ["--nord-m", "0"],
                 ["--ig-steps", "0"], ["--workers", "0"], ["--perturbation-samples", "0"]):
        with pytest.raises(ed.UsageError):
            ed.check_args(ed.build_parser().parse_args(argv))


# ------------------------------------------------------- fast: the perturbation methods

PERTURBATION = ["lime", "kernel_shap", "rise", "feature_ablation"]


def test_perturbation_names_are_accepted_and_listed():
    args = ed.build_parser().parse_args(["--methods", "LIME, rise,kernel_shap,"
                                         "feature_ablation", "--out", "/tmp/unused"])
    methods, _, _ = ed.check_args(args)
    assert methods == ["lime", "rise", "kernel_shap", "feature_ablation"]
    assert set(PERTURBATION) <= set(de.METHODS) and set(PERTURBATION) <= set(de.METHOD_TITLES)
    assert ed.parse_names("all", de.METHODS, "--methods")[-5:] == PERTURBATION + [
        "partition_shap"]
    assert de.METHOD_TITLES["partition_shap"] == "PartitionSHAP"
    assert de.perturbation_call("partition_shap", {"perturbation": {
        "segments": None, "samples": 40}, "seed": 1, "batch_size": 8}) == {
        "max_evals": 40, "seed": 1, "batch_size": 8}
    from attrkit.methods.segmentation import SEGMENT_KINDS
    assert set(de.SEGMENT_KINDS) == set(SEGMENT_KINDS)      # --segments' choices
    r = run_cli("--help", timeout=60)
    for text in ("--segments", "--perturbation-samples", "lime, kernel_shap, rise,"):
        assert text in r.stdout, text


@pytest.mark.parametrize("argv, needs, message", [
    (["--methods", "lime,rise"], ["lime"], "--segments: lime need scikit-image (their "
     "--segments 'quickshift'), which is not installed here: install it (pip install "
     "scikit-image) or pass --segments grid"),
    (["--methods", "xrai,feature_ablation", "--segments", "slic"], ["xrai", "feature_ablation"],
     "--segments: xrai, feature_ablation need scikit-image (their --segments 'slic'; XRAI's "
     "Felzenszwalb segments), which is not installed here: install it (pip install "
     "scikit-image) or pass --segments grid and leave xrai out of --methods"),
    (["--methods", "xrai,rise"], ["xrai"], "--methods: xrai need scikit-image (XRAI's "
     "Felzenszwalb segments)"),
])
def test_missing_scikit_image_is_a_usage_error_before_any_work(monkeypatch, tmp_path, argv,
                                                               needs, message):
    """Without scikit-image, the methods that need it are named with what to do, by
    check_args (before TensorFlow, the model and Ray); grid segments and RISE need none."""
    monkeypatch.setattr(ed, "skimage_missing", lambda: True)
    args = ed.build_parser().parse_args(argv + ["--out", str(tmp_path / "o")])
    assert de.skimage_methods(ed.parse_names(args.methods, de.METHODS, "m"),
                              args.segments) == needs
    with pytest.raises(ed.UsageError) as err:
        ed.check_args(args)
    assert str(err.value).startswith(message)
    ok = ed.build_parser().parse_args(["--methods", "lime,kernel_shap,feature_ablation,rise",
                                       "--segments", "grid", "--out", str(tmp_path / "o")])
    assert ed.check_args(ok)[0] == PERTURBATION[:2] + PERTURBATION[3:] + ["rise"]
    assert not (tmp_path / "o").exists()


def tiny_explainer(sess, argv):
    """An :class:`Explainer` on the tiny conv net (16 x 16 images, 5 classes) with the
    settings ``argv`` gives, without a model file and without Ray."""
    from models import tiny_convnet
    model = tiny_convnet()
    model.class_names = [f"class {k}" for k in range(5)]
    args = ed.build_parser().parse_args(argv + ["--no-influence", "--out", "/tmp/unused"])
    methods, metrics, qoi = ed.check_args(args)
    options = {"name_or_path": "tiny", "weights": None, "preprocess": None, "labels": None,
               "input_size": None}
    settings = dp.make_settings(args, methods, metrics, qoi, model, options)
    ex = de.Explainer.__new__(de.Explainer)
    ex.raw_sess, ex.model = sess, model
    ex.sess = de.CountingSession(sess, model.imgs)
    ex.shape = model.imgs.shape.as_list()[1:]
    ex.class_name = lambda c: model.class_names[c]
    ex.configure(settings)
    return ex, settings


def test_perturbation_methods_are_mapped_and_scored_without_ray(sess):
    """--methods lime,kernel_shap,rise,feature_ablation on the tiny model: each name runs
    its class with the run's segments, budget, seed and the image's class (the map equals
    the API's call), and every metric scores the map, as for the other methods."""
    from attrkit.methods import perturbation as pm
    argv = ["--methods", ",".join(PERTURBATION), "--segments", "grid",
            "--perturbation-samples", "24", "--seed", "3", "--batch-size", "8"]
    ex, settings = tiny_explainer(sess, argv)
    assert settings["perturbation"] == {"segments": "grid", "samples": 24}
    assert {k: type(v).__name__ for k, v in ex.methods.items()} == {
        "lime": "LIME", "kernel_shap": "KernelSHAP", "rise": "RISE",
        "feature_ablation": "FeatureAblation"}
    X = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    items = [{"index": i, "input": "bundled", "item": f"x{i}", "image_id": i,
              "true_class": 1, "digest": f"{i:024x}"} for i in range(2)]
    spec = {"name": "s", "items": items}
    arrays, maps = ex.explain(spec, {i: X[i] for i in range(2)})
    rows = {k[4:]: v for k, v in arrays.items() if k.startswith("row_")}
    assert list(rows["method"]) == [m for m in PERTURBATION for _ in range(2)]
    for col in ("average_drop", "n_ord", "insertion_auc", "deletion_auc"):
        assert np.isfinite(rows[col]).all(), col
    assert np.isnan(rows["ig_completeness_error"]).all()
    targets = sess.run(ex.model.logits, {ex.model.imgs: X}).argmax(1)
    api = {"lime": pm.LIME(sess, ex.model.imgs, ex.model.logits, None, progress=False)(
               X, segments="grid", num_samples=24, seed=3, target_class=targets),
           "rise": pm.RISE(sess, ex.model.imgs, ex.model.logits, None, progress=False)(
               X, num_masks=24, seed=3, target_class=targets),
           "feature_ablation": pm.FeatureAblation(sess, ex.model.imgs, ex.model.logits, None,
                                                  progress=False)(
               X, segments="grid", target_class=targets)}
    with pytest.warns(RuntimeWarning, match="singular"):   # 24 coalitions, 256 segments
        api["kernel_shap"] = pm.KernelSHAP(sess, ex.model.imgs, ex.model.logits, None,
                                           progress=False)(
            X, segments="grid", num_samples=24, seed=3, target_class=targets)
    for name, A in api.items():
        assert maps[f"map_{name}"].shape == (2, 16, 16)
        np.testing.assert_allclose(maps[f"map_{name}"], A, rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    counts = json.loads(str(arrays["meta"]))["counts"]
    assert counts["rise"][0] == 2 * 24 and counts["lime"][0] == 2 * 24   # rows, no forward
    assert counts["feature_ablation"][0] == 2 + 2 * 256     # f(x) + one row per 1-px cell


PROPAGATION_AND_CAM = list(de.PROPAGATION_METHODS) + list(de.CAM_METHODS)


def test_propagation_and_cam_methods_are_mapped_and_scored_without_ray(sess):
    """Every propagation and CAM name runs its class with the run's settings (DeepLIFT:
    IG's white baseline; the SHAP methods: black, grey and white; GradientSHAP:
    SmoothGrad's samples and the seed; LRP: --lrp-rule; the CAMs: the Grad-CAM layer),
    the map equals the API's call, and every metric scores it."""
    from attrkit.methods import cam, lrp, propagation as pg
    argv = ["--methods", ",".join(PROPAGATION_AND_CAM), "--ig-baseline", "white",
            "--sg-samples", "6", "--seed", "4", "--lrp-rule", "zplus", "--batch-size", "8"]
    ex, settings = tiny_explainer(sess, argv)
    assert settings["lrp"] == {"rule": "zplus"} and de.LRP_RULES == lrp.RULES
    X = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    items = [{"index": i, "input": "bundled", "item": f"x{i}", "image_id": i,
              "true_class": 1, "digest": f"{i:024x}"} for i in range(2)]
    arrays, maps = ex.explain({"name": "s", "items": items}, {i: X[i] for i in range(2)})
    rows = {k[4:]: v for k, v in arrays.items() if k.startswith("row_")}
    assert list(rows["method"]) == [m for m in PROPAGATION_AND_CAM for _ in range(2)]
    for col in ("average_drop", "n_ord", "insertion_auc", "deletion_auc"):
        assert np.isfinite(rows[col]).all(), col
    m, t = ex.model, sess.run(ex.model.logits, {ex.model.imgs: X}).argmax(1)
    greys = np.stack([np.full(X.shape[1:], v, np.float32) for v in (0, 127.5, 255)])
    api = {"deeplift": pg.DeepLIFT(sess, m.imgs, m.logits, t)(X, "white"),
           "deeplift_shap": pg.DeepLiftSHAP(sess, m.imgs, m.logits, t)(X, greys),
           "gradient_shap": pg.GradientSHAP(sess, m.imgs, m.logits, t)(
               X, greys, num_samples=6, seed=4),
           "deconvnet": pg.DeconvNet(sess, m.imgs, m.logits, t)(X),
           "lrp": lrp.LRP(sess, m.imgs, m.logits, t, rules=("zplus",))(X, "zplus")}
    for name, (cls, _) in de.CAM_METHODS.items():
        api[name] = getattr(cam, cls)(sess, m.imgs, m.logits, t, m.layers["conv2"],
                                      progress=False)(X)
    for name, A in api.items():                 # maps are kept per pixel (channel mean)
        np.testing.assert_allclose(maps[f"map_{name}"], de.pixel_map(A), rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    assert de.METHOD_TITLES["gradcam_plus_plus"] == "Grad-CAM++"
    r = run_cli("--help", timeout=60)
    assert "--lrp-rule" in r.stdout and "score_cam" in r.stdout


# ------------------------------------------------------------------ fast: pieces

def test_gallery_reads_the_maps_the_shards_saved(tmp_path):
    """The gallery's maps are those the shards saved (--save-maps, now or in an earlier
    run), picked by item; an item whose shard saved none is computed by the probe model."""
    from types import SimpleNamespace
    job = ed.Job.__new__(ed.Job)
    job.args = SimpleNamespace(out=str(tmp_path))
    job.shards = [{"name": "a", "items": [{"index": 3}, {"index": 7}]},
                  {"name": "b", "items": [{"index": 9}]}]
    (tmp_path / "maps").mkdir()
    maps = np.random.RandomState(0).normal(size=(2, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "maps" / "a.npz", index=np.array([3, 7]), map_ig=maps)
    np.testing.assert_array_equal(job.maps_of("ig", [7, 3], np.zeros(2, np.int32)),
                                  maps[[1, 0]])
    assert job.saved_map("ig", 9) is None and job.saved_map("lime", 3) is None
    computed = []
    job._configured = True
    job.probe = SimpleNamespace(attribute=lambda m, X, t, items: (
        computed.append((m, [it["index"] for it in items])) or np.ones(X.shape), None))
    job.images_of = lambda idx: np.zeros((len(idx), 4, 4, 3), np.float32)
    job.inputs = SimpleNamespace(items=[{"index": 3}, {"index": 7}, {"index": 9}])
    got = job.maps_of("ig", [3, 9], np.zeros(2, np.int32))
    assert computed == [("ig", [3, 9])] and got.shape == (2, 4, 4)


def test_mean_ci_is_the_student_t_interval():
    n, mean, lo, hi = dr.mean_ci([1.0, 2.0, 3.0, 4.0, np.nan])
    # t_{0.975, 3} = 3.182446; s = 1.290994; half = t s / 2
    assert n == 4 and mean == 2.5
    assert hi - mean == pytest.approx(3.182446305 * 1.290994449 / 2, rel=1e-8)
    assert mean - lo == pytest.approx(hi - mean)
    assert dr.mean_ci([5.0])[:2] == (1, 5.0) and np.isnan(dr.mean_ci([5.0])[2])
    assert dr.mean_ci([np.nan])[0] == 0


def test_zero_maps_find_what_the_metrics_cannot_rank():
    A = np.zeros((3, 8, 8, 3))
    A[1, 0, 0] = [1, -1, 0]           # channel mean 0 everywhere: no pixel ranking
    A[2, 0, 0, 0] = 1.0
    assert de.zero_maps(A).tolist() == [True, True, False]
    P = np.zeros((2, 8, 8))
    P[0, 0, 0], P[0, 0, 1] = 1.0, -1.0     # pixels differ, 4x4 superpixel sums are 0
    P[1, 0, 0] = 1.0
    assert de.zero_maps(P).tolist() == [False, False]
    assert de.zero_maps(P, superpixel=4).tolist() == [True, False]


def _items(n, group="g", digest="d"):
    return [{"index": i, "input": "/data/x", "item": f"c/{i}.png", "image_id": -1,
             "true_class": 1, "digest": f"{digest}{i}", "group": group} for i in range(n)]


def test_shard_names_come_from_content_and_settings():
    settings = {"methods": ["ig"], "ig": {"steps": 8}}
    a = dp.plan_shards(_items(5), settings, 2)
    assert [len(s["items"]) for s in a] == [2, 2, 1]
    assert [s["name"] for s in a] == [s["name"] for s in dp.plan_shards(_items(5), settings, 2)]
    changed = dp.plan_shards(_items(5, digest="e"), settings, 2)
    assert not {s["name"] for s in a} & {s["name"] for s in changed}
    other = dp.plan_shards(_items(5), dict(settings, ig={"steps": 9}), 2)
    assert not {s["name"] for s in a} & {s["name"] for s in other}
    # the same bytes at two paths are two results, not one
    twins = _items(2, digest="same")
    twins[1]["digest"] = twins[0]["digest"]
    names = [s["name"] for s in dp.plan_shards(twins, settings, 1)]
    assert len(set(names)) == 2
    # shards never mix groups
    mixed = _items(2, group="a") + [dict(it, group="b", index=2 + k)
                                    for k, it in enumerate(_items(2, digest="z"))]
    assert [len(s["items"]) for s in dp.plan_shards(mixed, settings, 16)] == [2, 2]


def test_write_bytes_replaces_atomically(tmp_path):
    path = tmp_path / "a" / "f.bin"
    de.write_bytes(str(path), b"one")
    de.write_bytes(str(path), b"two")
    assert path.read_bytes() == b"two"
    assert os.listdir(path.parent) == ["f.bin"]


def make_folder(root):
    """tabby/: one real photo, one broken .jpg, one text file; not_a_class/: a photo."""
    (root / "tabby").mkdir(parents=True)
    shutil.copy(chelsea_png(), root / "tabby" / "chelsea.png")
    (root / "tabby" / "broken.jpg").write_bytes(b"this is not a JPEG")
    (root / "tabby" / "readme.txt").write_text("notes")
    (root / "tabby" / ".hidden.png").write_bytes(b"ignored")
    (root / "not_a_class").mkdir()
    shutil.copy(chelsea_png(), root / "not_a_class" / "cat.png")
    (root / "stray.png").write_bytes(b"outside every class folder")
    return root


def test_folder_listing_skips_bad_entries(tmp_path):
    root = make_folder(tmp_path / "imgs")
    import hw3_utils
    inputs = dp.Inputs()
    inputs.add(str(root))
    assert inputs.folders() == ["not_a_class", "tabby"]
    inputs.fit(list(hw3_utils.class_names), [224, 224, 3])   # an ImageNet model's classes
    assert [it["item"] for it in inputs.items] == ["tabby/chelsea.png"]
    assert all(it["true_class"] == 281 for it in inputs.items)
    reasons = {s["item"]: s["reason"] for s in inputs.skipped}
    assert set(reasons) == {"not_a_class/cat.png", "stray.png", "tabby/readme.txt",
                            "tabby/broken.jpg"}     # decoded in the driver: never shipped
    assert reasons["tabby/broken.jpg"].startswith("cannot read as an image")
    assert "not an ImageNet class" in reasons["not_a_class/cat.png"]
    assert "not an image file" in reasons["tabby/readme.txt"]
    assert "class sub-folder" in reasons["stray.png"]
    idx = [s["index"] for s in inputs.skipped] + [it["index"] for it in inputs.items]
    assert sorted(idx) == list(range(5))


# ------------------------------------------------------------------ slow: on Ray

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A folder (1 good photo, bad entries) and a course-style .npz of 2 sample photos."""
    import hw3_utils
    root = make_folder(tmp_path_factory.mktemp("explain") / "imgs")
    X, y, _ = hw3_utils.load_samples()
    npz = root.parent / "two.npz"
    np.savez(npz, X=X[[1, 3]], Y=y[[1, 3]], Pred=y[[1, 3]], Idx=np.array([101, 103]))
    return root, npz


@pytest.fixture(scope="module")
def clean_run(data, tmp_path_factory):
    root, npz = data
    out = tmp_path_factory.mktemp("clean") / "out"
    args = [str(root), str(npz), "--out", str(out), "--workers", "2", "--threads", "1",
            "--shard-size", "1", "--save-maps", *SMALL]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, args, r


def one_thread_model():
    """The default model in a session with one TensorFlow thread, as each actor of the
    runs here has (--threads 1): TF's CPU kernels can round differently with another
    thread count or batch size (in the last float32 bit of a logit). TensorFlow sizes one
    intra-op pool per process, at the process's first session, so this must run in a
    fresh process (see :func:`one_thread_reference`)."""
    import tensorflow as tf
    import hw3_utils
    from hw3_attribution import new_session
    session = new_session(tf.Graph(), threads=1)
    with session.graph.as_default():
        model = hw3_utils.get_model(session, "efficientnet_lite0")
    return model, session


def one_thread_reference(root, npz, result):
    """In a fresh process: the 3 good images through the single-process API with one
    TensorFlow thread, pickled to ``result``: images, labels, predictions, and for each
    image every method's metrics and pixel map."""
    model, sess = one_thread_model()
    X, y = reference_images((root, npz), model, sess)
    pred = sess.run(model.logits, {model.imgs: X}).argmax(1)
    digests = [dp.sha256_file(os.path.join(root, "tabby", "chelsea.png"))] + [
        dp.sha256_array(X[1]), dp.sha256_array(X[2])]
    rows = [api_rows(sess, model, X[k:k + 1], digests[k]) for k in range(len(X))]
    with open(result, "wb") as f:
        pickle.dump(dict(X=X, y=y, pred=pred, rows=rows), f)


def read_table(out):
    import pandas as pd
    return pd.read_parquet(os.path.join(out, "results.parquet"))


def reference_images(data, model, sess):
    """The 3 good images as the single-process API sees them: the folder's photo read by
    make_dataset.build_dataset, and the .npz read by hw3_utils.load_ImageNet."""
    import hw3_utils
    import make_dataset
    root, npz = map(pathlib.Path, data)
    clean = root.parent / "clean"
    (clean / "tabby").mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "tabby" / "chelsea.png", clean / "tabby" / "chelsea.png")
    with sess.graph.as_default():
        folder, _ = make_dataset.build_dataset(hw3_utils.ImageFolder(str(clean)), model,
                                               sess)
        d = hw3_utils.load_ImageNet(str(npz), model=model, sess=sess)
    X = np.concatenate([folder["X"].astype(np.float32), d.X])
    y = np.concatenate([folder["y_true"], d.Y])
    return X, y


def api_rows(sess, model, X, digest):
    """One image through the single-process API, as the README's calls: each method's map
    and each metric on it (target None: the predicted class), with the test's budgets."""
    import hw3_attribution as ha
    import hw3_evaluation as he
    from attrkit.methods import pair
    x, logits = model.imgs, model.logits
    kw = dict(progress=False)
    ig, info = ha.IntegratedGrad(sess, x, logits, None, **kw)(X, "black", num_steps=8,
                                                                return_error=True)
    maps = {
        "saliency": ha.SaliencyMap(sess, x, logits, None, **kw)(X),
        "ig": ig,
        "smoothgrad": ha.SmoothGrad(sess, x, logits, None, **kw)(X, samples=4),
        "gradient": ha.VanillaGradient(sess, x, logits, None, **kw)(X),
        "gradcam": ha.GradCAM(sess, x, logits, None, model.layers["block6"], **kw)(X),
        "occlusion": ha.Occlusion(sess, x, logits, None, **kw)(X, superpixel_size=28),
        "random": ha.RandomAttribution(sess, x, logits, None, seed=dp.image_seed(0, digest),
                                       **kw)(X),
        "xrai": pair.XRAI(sess, x, logits, None, **kw)(X, num_steps=8),
        "guided_ig": pair.GuidedIG(sess, x, logits, None, **kw)(X, num_steps=8),
        "blur_ig": pair.BlurIG(sess, x, logits, None, **kw)(X, num_steps=8),
        "guided_backprop": pair.GuidedBackprop(sess, x, logits, None, **kw)(X),
    }
    from attrkit.methods import perturbation as pm
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # KernelSHAP: 32 coalitions may be singular
        maps.update({
            "lime": pm.LIME(sess, x, logits, None, **kw)(X, num_samples=32, seed=0),
            "kernel_shap": pm.KernelSHAP(sess, x, logits, None, **kw)(X, num_samples=32,
                                                                      seed=0),
            "rise": pm.RISE(sess, x, logits, None, **kw)(X, num_masks=32, seed=0),
            "feature_ablation": pm.FeatureAblation(sess, x, logits, None, **kw)(X),
            "partition_shap": pm.PartitionSHAP(sess, x, logits, None, **kw)(X, max_evals=32,
                                                                          seed=0),
        })
    out = {}
    for m, A in maps.items():
        row = {
            "average_drop": he.AverageDrop(sess, A, X, x, logits, None,
                                           return_details=True, **kw).per_image[0],
            "n_ord": he.N_Ord(sess, A, X, x, logits, None, M=5000, **kw)[0],
            "insertion_auc": he.auc(*he.Insertion(sess, A, X, x, logits, None,
                                                  superpixel_size=28, step=4, **kw))[0],
            "deletion_auc": he.auc(*he.Deletion(sess, A, X, x, logits, None,
                                                superpixel_size=28, step=4, **kw))[0],
            "ig_completeness_error": info["completeness_error"][0] if m == "ig" else np.nan,
        }
        out[m] = (row, de.pixel_map(A)[0])
    return out


@pytest.mark.slow
def test_rows_equal_the_single_process_api(clean_run, data, tmp_path):
    """Every method and metric on two actors, against the API called on the same images (one
    per call, as the run's shards of one image) in a fresh process with one TF thread, as
    each actor: equal, bit for bit. (TensorFlow's CPU kernels round differently at other
    batch sizes and thread counts: a forward of 3 images can differ from 3 forwards of 1 in
    the last float32 bit of a logit; and the thread count is fixed per process by its
    first session, hence the fresh process.)"""
    out, _, r = clean_run
    result = tmp_path / "reference.pkl"
    code = ("import sys; sys.path[:0] = [{root!r}, {tests!r}]; import test_explain_dataset as t; "
            "t.one_thread_reference(*sys.argv[1:])").format(
        root=ROOT, tests=os.path.join(ROOT, "tests"))
    ref = subprocess.run([sys.executable, "-c", code, str(data[0]), str(data[1]), str(result)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    with open(result, "rb") as f:
        want_all = pickle.load(f)
    pred, y = want_all["pred"], want_all["y"]
    df = read_table(out)
    assert sorted(df["item"].unique()) == ["#0", "#1", "tabby/chelsea.png"]
    assert len(df) == 3 * len(de.METHODS)
    shard_maps = {}
    for f in os.listdir(os.path.join(out, "maps")):
        with np.load(os.path.join(out, "maps", f)) as z:
            for k, idx in enumerate(z["index"]):
                for m in de.METHODS:
                    shard_maps[(int(idx), m)] = z[f"map_{m}"][k]
    order = sorted(df["index"].unique())        # folder photo first, then the .npz rows
    rows = df.set_index(["index", "method"])
    for k, idx in enumerate(order):
        for m, (metrics, pmap) in want_all["rows"][k].items():
            got = rows.loc[(idx, m)]
            assert got["predicted_class"] == pred[k] == got["target"]
            assert got["true_class"] == y[k]
            for col, v in metrics.items():
                np.testing.assert_array_equal(got[col], v, err_msg=f"{m} {col}")
            np.testing.assert_array_equal(shard_maps[(idx, m)], pmap, err_msg=m)
        assert np.isfinite(rows.loc[(idx, "ig"), "ig_completeness_error"])


@pytest.mark.slow
def test_influence_merged_from_shards_equals_one_pass(clean_run, data, default_model):
    import pandas as pd
    from hw3_infl import InflDirected, qoi_predicted
    model, sess = default_model
    out, _, _ = clean_run
    X, y = reference_images(data, model, sess)
    infl = InflDirected(sess, model.imgs, model.layers["head_pool"], model.logits,
                        qoi_predicted(), progress=False)
    experts = pd.read_csv(os.path.join(out, "experts.csv"))
    got = experts.set_index("class")["expert"].to_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert got[-1] == infl.dis_influence(X)
        for c in np.unique(y):
            assert got[int(c)] == infl.dis_influence(X[y == c])
    assert experts.set_index("class").loc[-1, "n"] == 3


@pytest.mark.slow
def test_bad_inputs_are_skipped_and_named(clean_run):
    import pandas as pd
    out, _, _ = clean_run
    skipped = pd.read_csv(os.path.join(out, "skipped.csv"))
    reasons = dict(zip(skipped["item"], skipped["reason"]))
    assert set(reasons) == {"not_a_class/cat.png", "stray.png", "tabby/broken.jpg",
                            "tabby/readme.txt"}
    assert reasons["tabby/broken.jpg"].startswith("cannot read as an image")
    summary = open(os.path.join(out, "summary.md")).read()
    assert "tabby/broken.jpg" in summary and "## Skipped" in summary
    for name in ("results.parquet", "summary.csv", "experts.csv", "run.json"):
        assert os.path.isfile(os.path.join(out, name))
    rows = pd.read_csv(os.path.join(out, "summary.csv"))
    ig = rows[(rows["method"] == "ig") & (rows["metric"] == "n_ord")].iloc[0]
    assert ig["n"] == 3 and ig["ci_low"] <= ig["mean"] <= ig["ci_high"]


@pytest.mark.slow
def test_killed_worker_and_resume_give_the_clean_table(clean_run, tmp_path):
    """Half the shards already on disk (resume); one actor dies on its first shard
    (os._exit): Ray restarts it and retries that shard. The table equals the clean run's."""
    import pandas as pd
    out, args, _ = clean_run
    out2 = tmp_path / "out2"
    shards = sorted(os.listdir(os.path.join(out, "shards")))
    assert len(shards) == 3             # tabby/chelsea.png and the two .npz photos
    for folder in ("shards", "maps"):         # a shard is done with its maps (--save-maps)
        os.makedirs(out2 / folder)
        for f in shards[:1]:
            shutil.copy(os.path.join(out, folder, f), out2 / folder / f)
    marker = tmp_path / "crashed"
    argv = list(args)
    argv[argv.index("--out") + 1] = str(out2)
    r = run_cli(*argv, "--_crash-once", str(marker))
    assert r.returncode == 0, r.stderr[-3000:]
    assert marker.exists(), "no actor died: the test did not test a retry"
    assert "(1 already done)" in r.stderr
    run = json.load(open(out2 / "run.json"))["stats"]
    assert run["shards_computed_now"] == 2 and run["shards_reused"] == 1
    pd.testing.assert_frame_equal(read_table(out), read_table(out2))
    assert open(out2 / "experts.csv").read() == open(os.path.join(out, "experts.csv")).read()
    assert sorted(os.listdir(out2 / "shards")) == shards


@pytest.mark.slow
def test_rerun_skips_every_finished_shard(clean_run):
    out, args, _ = clean_run
    before = {f: os.stat(os.path.join(out, "shards", f)).st_mtime_ns
              for f in os.listdir(os.path.join(out, "shards"))}
    table = read_table(out)
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "(3 already done)" in r.stderr and "ray:" not in r.stderr
    after = {f: os.stat(os.path.join(out, "shards", f)).st_mtime_ns
             for f in os.listdir(os.path.join(out, "shards"))}
    assert after == before
    import pandas as pd
    pd.testing.assert_frame_equal(table, read_table(out))


def test_bench_estimate_arithmetic():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import ray_bench
    counts = {"forward": [4, 0], "ig": [8, 200], "ig:metrics": [40, 0], "influence": [0, 4]}
    f, g, by = ray_bench.per_image(counts, 4)
    assert (f, g) == (13.0, 51.0)
    assert by["ig"] == [12.0, 50.0] and by["influence"] == [0.0, 1.0]
    # 50,000 images x (13 / 100 + 51 / 50) s = 57,500 s on one device, 7,187.5 s on 8
    assert ray_bench.estimate(f, g, 100.0, 50.0) == pytest.approx(57_500.0)
    assert ray_bench.estimate(f, g, 100.0, 50.0, devices=8) == pytest.approx(7_187.5)
    assert ray_bench.hours(7200) == "2 h" and ray_bench.hours(90) == "1.5 min"


def test_bench_report_has_every_section(tmp_path):
    """ray_bench.report on made-up runs: the ratios (1 actor / loop = 10/11), the cost per
    image and the ImageNet estimate, written to --out."""
    import types
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import ray_bench

    def run(wall):
        return {"images": 4, "wall_seconds": wall, "compute_seconds": 0.9 * wall,
                "engine_seconds": 0.8 * wall, "shard_seconds": 0.7 * wall,
                "load": (1.0, 1.2), "layout": "1 x 2",
                "raw": {"forward": 100.0, "backward": 40.0},
                "counts": {"forward": [4, 0], "ig": [8, 200]}}
    args = types.SimpleNamespace(quick=True, shard_size=2, flags=[], rounds=3, raw_runs=2,
                                 gpu_forward=5000.0, gpu_backward=1700.0,
                                 out=str(tmp_path / "r.md"))
    text = ray_bench.report(args, [{"loop": run(10.0), "one": run(11.0), "two": run(5.5)}])
    assert f"**1 actor ÷ single-process loop: {10 / 11:.3f}**" in text
    assert "**2 actors ÷ 1 actor: 2.000**" in text
    assert "| **total** | **3.0** | **50.0** |" in text and "## ImageNet validation" in text
    assert (tmp_path / "r.md").read_text() == text


def test_pool_layout():
    gib = 1 << 30
    # CPUs only: one 1-thread actor per CPU, capped by memory and by the shards to do
    assert de.pool_layout({"CPU": 2.0, "memory": 16 * gib}, 10) == (2, 1, 1.0, 0.0)
    assert de.pool_layout({"CPU": 16.0, "memory": 8 * gib}, 10) == (4, 4, 4.0, 0.0)
    assert de.pool_layout({"CPU": 16.0, "memory": 64 * gib}, 3) == (3, 5, 5.0, 0.0)
    # asked for: one actor on 2 CPUs gets both; 4 actors on 2 CPUs share them
    assert de.pool_layout({"CPU": 2.0}, 10, workers=1) == (1, 2, 2.0, 0.0)
    assert de.pool_layout({"CPU": 2.0}, 10, workers=4) == (4, 1, 0.5, 0.0)
    # GPUs: one actor per GPU with one GPU each; more actors share them
    assert de.pool_layout({"CPU": 32.0, "GPU": 4.0}, 100) == (4, 8, 8.0, 1.0)
    assert de.pool_layout({"CPU": 32.0, "GPU": 4.0}, 100, workers=8)[3] == 0.5
    with pytest.raises(ed.UsageError, match="GPUs"):
        de.pool_layout({"CPU": 8.0, "GPU": 1.0}, 10, workers=2, gpus_per_worker=1)


def test_default_shard_size_depends_on_the_data_alone():
    assert [dp.default_shard_size(n) for n in (1, 8, 17, 100, 128, 50_000)] == \
        [1, 1, 3, 13, 16, 16]
