"""The benchmark's plumbing on a tiny model with a tiny budget (no time is asserted)."""
import json
import os
import sys
from dataclasses import replace

import numpy as np
import pytest

from models import tiny_convnet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import run as bench  # noqa: E402

TINY = replace(bench.QUICK, batch_size=4, batch_sizes=(1, 4), raw_rows=4, rounds=1, images=2,
               steps=4, infl_images=3, occlusion_superpixel=4, nord_M=64, curve_superpixel=4,
               curve_step=4, metric_images=2, ad_images=3, budgets=(4, 8),
               completeness_images=0, memory_steps=(4, 16), memory_batch=4,
               perturbation_images=2,
               perturbation=bench.Budgets(lime_samples=12, shap_samples=12, rise_masks=12,
                                          partition_evals=24, segments="slic"))


def quiet(_msg):
    pass


@pytest.fixture
def tiny(sess):
    model = tiny_convnet()
    X = np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 3)).astype(np.float32)
    return model, sess, X


def test_table_on_tiny_model(tiny, tmp_path):
    model, sess, X = tiny
    fake_vc = tmp_path / "fake_vc.py"
    out_dir = tmp_path / "vc"
    out_dir.mkdir()
    fake_vc.write_text(
        "import json, os, sys\n"
        "out = sys.argv[sys.argv.index('--out') + 1]\n"
        "json.dump({'forwards': 30, 'gradients': 12, 'seconds': 0.5},\n"
        "          open(os.path.join(out, 'run_stats.json'), 'w'))\n"
        "print('passes: forwards=30 gradients=12')\n")
    lines = bench.benchmark(model, sess, X, TINY, pair=True, memory_model="tiny",
                            vc_cmd=([sys.executable, str(fake_vc), "--out", str(out_dir)],
                                    str(out_dir)), progress=quiet)
    text = "\n".join(lines)
    assert lines[0].startswith("| figure | before | after | goal | status | notes |")
    for figure in ("raw forward throughput", "raw forward+backward", "IntegratedGrad (",
                   "SmoothGrad (", "InflDirected.expert_attribution", "Occlusion (",
                   "homework loop", "InflDirected.influence", "N_Ord", "Insertion",
                   "Deletion", "AverageDrop (", "peak memory of IG", "hw3_vc.py: wall",
                   "Completeness error versus budget", "Issue 8 goal", "LIME (2 images",
                   "KernelSHAP (2 images", "RISE (2 images", "FeatureAblation (2 images",
                   "lime LimeImageExplainer vs ours", "shap Partition vs ours"):
        assert figure in text, figure
    if bench.pair_available():
        assert "vs PAIR IntegratedGradients" in text
        assert "GetSmoothedMask" in text
        assert "XRAI vs PAIR XRAI" in text and "Blur IG vs PAIR BlurIG" in text
    else:
        assert "not importable" in text
    # every table row has the six cells
    table = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| baseline")]
    rows = [ln for ln in table[2:] if ln.count("|") == 7]
    assert len(rows) >= 14
    # the hw3_vc row used the fake script's counts
    vc_row = next(ln for ln in lines if ln.startswith("| hw3_vc.py"))
    assert "30 forwards + 12 gradients" in vc_row


def test_counted_cases_count_rows_built_in_the_graph(tiny):
    """The session proxy counts the rows of the toolkit's in-graph row feed: Occlusion of
    one 16x16 image with 4x4 patches evaluates 16 occluded copies (+ 1 forward at x)."""
    model, sess, X = tiny
    c = bench.predicted(model, sess, X)
    cases = bench.Cases(model, sess, X, c, TINY, pair=False)
    rows, kind = cases.case_occlusion()
    assert (rows, kind) == (16 + 1, "forward")
    rows, _ = cases.case_average_drop()
    assert rows == 2 * TINY.ad_images


def test_before_revision_cases_run_old_modules(tiny, tmp_path):
    """--before REV loads the graded modules of an earlier revision beside the current
    ones; on the revision before the homework API they are the (model, sess) classes."""
    import subprocess
    rev = subprocess.run(["git", "rev-list", "-1", "HEAD", "--", "hw3_attribution.py"],
                         cwd=ROOT, capture_output=True, text=True).stdout.strip()
    old = subprocess.run(["git", "rev-parse", "--verify", "-q", "e94ed74"], cwd=ROOT,
                         capture_output=True, text=True).stdout.strip()
    if not rev or not old:
        pytest.skip("no git history here")
    mods = bench.load_before(old)
    assert set(mods) == set(bench.GRADED)
    assert mods["hw3_infl"].__name__ == "before_hw3_infl"
    model, sess, X = tiny
    c = bench.predicted(model, sess, X)
    res, _ = bench.speed_cases(model, sess, X, c, TINY, pair=False, before=mods,
                               progress=quiet)
    assert set(res["before"]) == set(bench.BeforeCases.names(None))
    for name, o in res["before"].items():
        assert o["rows"] > 0 and np.isfinite(o["ratio"]), name


def test_pair_agreement_on_tiny_model(tiny):
    pytest.importorskip("saliency.tf1")
    model, sess, X = tiny
    c = bench.predicted(model, sess, X)
    agree = bench.pair_agreement(model, sess, X[:2], c[:2], steps=5, batch_size=4)
    assert agree["ig"] < 1e-4
    assert agree["smoothgrad"] < 1e-4


def test_completeness_matches_integrated_grad(tiny):
    """The shared-node computation equals IntegratedGrad's own completeness_error."""
    from hw3_attribution import IntegratedGrad
    model, sess, X = tiny
    c = bench.predicted(model, sess, X)
    res = bench.completeness(model, sess, X, c, (4, 8), batch_size=5, check=True,
                             progress=quiet)
    assert res["check"] < 1e-5
    ig = IntegratedGrad(sess, model.imgs, model.logits, c, progress=False)
    for rule in bench.RULES:
        _, info = ig(X, "white", num_steps=8, method=rule, return_error=True)
        np.testing.assert_allclose(res["errors"][("white", rule, 8)],
                                   info["completeness_error"], rtol=0, atol=1e-5)
    assert res["gradients"][("trapezoid", 4)] == 5
    assert res["gradients"][("gauss_legendre", 8)] == 8
    for key, cost in res["cost"].items():
        assert np.all(cost <= key[2] + 1e-9 + 1e6)  # cost is reported, finite
        assert np.all(np.isfinite(cost))
    lines = bench.completeness_markdown(res, (4, 8), len(X))
    assert any("adaptive" in ln for ln in lines)


def test_node_set_shares_nodes():
    table, T = bench.node_set((16, 64, 256))
    # right/left/trapezoid/middle all lie on the 1/512 grid; Gauss-Legendre adds its own
    assert len(T) == 257 + 256 + 16 + 64 + 256
    assert T[0] == 0.0 and T[-1] == 1.0


def test_vc_measure_reads_passes_line(tmp_path):
    script = tmp_path / "vc.py"
    script.write_text("print('done')\nprint('passes: forwards=7 gradients=3 seconds=1.0')\n")
    v = bench.vc_measure([sys.executable, str(script)], str(tmp_path), 60, progress=quiet)
    assert (v["forwards"], v["gradients"]) == (7, 3)
    assert v["seconds"] > 0
    bad = tmp_path / "bad.py"
    bad.write_text("print('no counts')\n")
    with pytest.raises(RuntimeError, match="passes"):
        bench.vc_measure([sys.executable, str(bad)], str(tmp_path / "none"), 60,
                         progress=quiet)


def test_memory_probe_json(tmp_path):
    out = bench.memory_ratio("tiny", (2, 8), 2, progress=quiet)
    assert [o["steps"] for o in out] == [2, 8]
    for o in out:
        assert o["peak"] >= o["rss_before"] > 0
        assert o["tracemalloc_peak"] >= 0
        json.dumps(o)


def test_write_atomic(tmp_path):
    path = tmp_path / "sub" / "results.md"
    bench.write_atomic(str(path), "| a |\n")
    assert path.read_text() == "| a |\n"
    assert [p.name for p in path.parent.iterdir()] == ["results.md"]


def test_own_model_table_on_tiny_model(tiny):
    """bench_own_model (issue 20): our three cases against the raw graph in one round, and
    the table: the Xplique rows say why they are missing, or divide the rates per round
    and report the maps' agreement. No Xplique (nor eager TensorFlow) is needed here."""
    import bench_own_model as own
    model, sess, X = tiny
    c = bench.predicted(model, sess, X)
    s = replace(TINY, occlusion_images=1)
    stats, maps = own.ours_round(model, sess, X, c, s, progress=quiet)
    assert set(stats) == {"ig", "smoothgrad", "occlusion", "ig_trapezoid"}
    assert stats["occlusion"]["rows"] == 16 + 1          # 4x4 patches of 16x16, + x
    for o in stats.values():
        assert o["rate"] > 0 and np.isfinite(o["ratio"])
    assert maps["ig"].shape == maps["smoothgrad"].shape == X[:2].shape
    assert maps["occlusion"].shape == (1, 16, 16)

    rows = own.own_model_rows([stats], None, None, s, reason="xplique not importable")
    text = "\n".join(bench.markdown_table(rows))
    for figure in ("IntegratedGrad (2 images x 4 steps)", "SmoothGrad (2 images x 4 samples)",
                   "Occlusion (1 image(s), 4x4 patches)", "Xplique's rule (trapezoid, 3"):
        assert figure in text, figure
    assert "| not measured |" in text and "xplique not importable" in text
    assert all(row.count("|") == 7 for row in text.splitlines())

    # Xplique's side as its child reports it: half our rates, its maps channel-averaged
    theirs = {name: {"rate": stats[mine]["rate"] / 2, "raw": stats[mine]["rate"],
                     "seconds": 1.0, "rows": 1} for mine, name, _ in own.VERSUS}
    their_maps = {"ig": maps["ig"].mean(-1, keepdims=True),
                  "occlusion": maps["occlusion"][..., None],
                  "smoothgrad": -maps["smoothgrad"].mean(-1, keepdims=True),
                  "smoothgrad_same_noise": maps["smoothgrad"].mean(-1, keepdims=True)}
    agree = own.agreement(maps, their_maps)
    assert agree["ig"][0] < 1e-6 and agree["occlusion"][0] < 1e-6
    assert agree["smoothgrad"][1] > 0.999999 and agree["smoothgrad_own_noise"][1] < -0.999
    rows = own.own_model_rows([stats, stats], [theirs, theirs], agree, s)
    versus = [r for r in rows if "vs Xplique" in r[0]]
    assert [r[2] for r in versus] == ["2x"] * 3 and all(r[4] == "met" for r in versus)
    assert "ours ÷ Xplique per round: 2, 2" in versus[0][5]


def test_own_model_placeholder_modules():
    """Xplique's unused imports get placeholders that raise on first use; installed
    modules are left alone."""
    import bench_own_model as own
    name = "bench_own_model_no_such_module"
    try:
        assert own.stub_missing((name, "numpy")) == [name]
        module = sys.modules[name]
        with pytest.raises(ImportError, match="not installed"):
            module.anything
    finally:
        sys.modules.pop(name, None)


def test_perturbation_rows_on_tiny_model(tiny):
    """bench_perturbation (issue 25): the four methods' rows against the raw forward, the
    rows counted as the graph builds them; the references' rows measured where lime and
    shap are installed (their maps then equal ours: the same draws), else saying why."""
    import warnings
    import bench_perturbation as bp
    model, sess, X = tiny
    c = bench.predicted(model, sess, X[:2])
    labels, _ = bp.segments_of(X[:2], "slic")
    budgets = TINY.perturbation
    res = bp.rate_rounds(model, sess, X[:2], c, labels, budgets, 4, 1, progress=quiet)
    assert set(res) == set(bp.OURS) >= {"LIME", "KernelSHAP", "RISE", "FeatureAblation"}
    assert res["LIME"]["rows"] == res["RISE"]["rows"] == 2 * 12       # targets given
    assert res["KernelSHAP"]["rows"] == 2 * (12 + 2)                 # + f(x) and v(empty)
    assert res["FeatureAblation"]["rows"] == 2 + sum(int(m.max()) + 1 for m in labels)
    rows = bp.rate_rows(res, 2, budgets, 4, 0.1)
    assert [r[0].split(" (")[0] for r in rows] == list(bp.OURS)
    assert all(np.isfinite(float(r[2].split()[0])) for r in rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # shap: 12 coalitions for ~30 segments
        ref, missing = bp.reference_rounds(model, sess, X[:2], c, labels,
                                           bp.Budgets(lime_samples=24, shap_samples=200,
                                                      partition_evals=40, segments="slic"),
                                           4, 1, progress=quiet)
    text = "\n".join(bench.markdown_table(bp.reference_rows(ref, missing, 2, budgets, 4)))
    assert text.count("vs ours") == len(bp.REFERENCES)
    for name, package, *_ in bp.REFERENCES:
        if name in missing:
            assert "not importable" in missing[name] and "not measured" in text
            continue
        r = ref[name]
        assert abs(r["rows"][0] - r["rows"][1]) < 2          # as many model rows
        assert len(r["theirs"]) == len(r["ours"]) == 1
        if r["diff"] is not None:                  # LIME, KernelSHAP: the same estimates
            assert r["diff"] < 1e-6, (name, r["diff"])


def test_occlusion_benchmark_on_the_default_model(default_model, sample_data):
    """bench_occlusion's plumbing on the bundled model with 56-pixel patches (16 rows): the
    ratios, the plan's multiply-adds and the per-layer table from traced runs, whose windowed
    layers say their window and whose incremental time is below the plain one in total."""
    import bench_occlusion as bo
    model, sess = default_model
    X = sample_data[0][:1].astype(np.float32)
    ratios, ops = bo.measure("efficientnet_lite0", sess, model, X, 56, 1, True)
    assert set(ratios) == {"incremental", "plain"} and all(len(r) == 1 for r in ratios.values())
    with sess.graph.as_default():
        layers = bo.per_layer(sess, model, X, ops, 56)
    rows, plain_ms, inc_ms, gathers = layers
    assert any(part.startswith("window") for *_, part in rows) and 0 < gathers < inc_ms
    assert inc_ms > 0 and plain_ms > 0
    text = bo.report({"efficientnet_lite0": (dict(ratios), ops, 16)}, layers, 56)
    assert "| efficientnet_lite0 | incremental | 16 |" in text and "window " in text
