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
               completeness_images=0, memory_steps=(4, 16), memory_batch=4)


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
                   "Completeness error versus budget", "Issue 8 goal"):
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
