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

TINY = replace(bench.QUICK, batch_sizes=(1, 4), raw_rows=4, rounds=1, images=2, steps=4,
               infl_images=3, nord_M=64, curve_superpixel=4, curve_step=4, metric_images=2,
               budgets=(4, 8), completeness_images=0, memory_steps=(4, 16), memory_batch=4)


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
    assert lines[0].startswith("| figure | measured | goal | status | notes |")
    for figure in ("raw forward throughput", "raw forward+backward", "IntegratedGrad (",
                   "SmoothGrad (", "homework loop", "InflDirected.influence", "N_Ord",
                   "Insertion", "Deletion", "peak memory of IG", "hw3_vc.py --quick",
                   "Completeness error versus budget", "Issue 8 goal"):
        assert figure in text, figure
    if bench.pair_available():
        assert "vs PAIR IntegratedGradients" in text
        assert "GetSmoothedMask" in text
    else:
        assert "not importable" in text
    # every table row has the five cells
    table = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| baseline")]
    rows = [ln for ln in table[2:] if ln.count("|") == 6]
    assert len(rows) >= 11
    # the hw3_vc row used the fake script's counts
    vc_row = next(ln for ln in lines if ln.startswith("| hw3_vc.py --quick"))
    assert "30 forwards + 12 gradients" in vc_row


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
    ig = IntegratedGrad(model, sess, progress=False)
    for rule in bench.RULES:
        _, info = ig(X, c, baseline="white", steps=8, method=rule, return_error=True)
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
