"""Your own model through every script, as a researcher would run them: a small Keras CNN
trained in the session (tests/own_model.py: three colour classes of its own names, the
evidence in the top-left quarter), class folders of PNG files named after its classes,
``hw3_vc.py --model`` and ``explain_dataset.py --model``; and the maps put their mass where
the evidence is."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import own_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Class folders of fresh synthetic images, one sub-folder per class name."""
    root = tmp_path_factory.mktemp("own_images")
    X, y = own_model.synthetic_images(12, seed=11)
    for i, (x, c) in enumerate(zip(X, y)):
        folder = root / own_model.CLASS_NAMES[c]
        folder.mkdir(exist_ok=True)
        Image.fromarray(x.astype(np.uint8)).save(folder / f"img{i:02d}.png")
    return root


def script(name, *args, cwd, timeout=900):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, os.path.join(ROOT, name), *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_hw3_vc_runs_every_part_on_an_own_model(own, folders, cache_dir, tmp_path):
    out = tmp_path / "figs"
    proc = script("hw3_vc.py", "--model", own / "own.keras", "--labels", own / "labels.txt",
                  "--data", folders, "--quick", "--no-progress", "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads((out / "report.json").read_text())
    assert sorted(report["parts"]) == sorted(["comparison", "influence", "metrics",
                                              "ig_study", "gradients", "sanity"])
    assert all(p["model"] == "own_cnn" for p in report["parts"].values())
    comparison = report["parts"]["comparison"]["entries"]
    assert len(comparison) >= 3 and all((out / e["file"]).is_file() for e in comparison)
    influence = report["parts"]["influence"]["entries"][0]
    assert "Expert neurons of layer gap" in influence["caption"]   # the classifier's input
    names = set(own_model.CLASS_NAMES)
    assert any(n in (out / "3_necessity_ordering.md").read_text() for n in names)
    ad = dict(r.split(",") for r in (out / "3_average_drop.csv").read_text().splitlines()[1:])
    assert np.isfinite(float(ad["Saliency"])) and np.isfinite(float(ad["Integrated Gradients"]))
    assert len(ad) == 3       # and the expert's (NaN when it is zero on these few images)


@pytest.mark.slow
def test_scripts_refuse_what_an_own_model_cannot_take(own, folders, cache_dir, tmp_path):
    proc = script("hw3_vc.py", "--model", own / "own.keras", "--out", tmp_path / "figs",
                  cwd=tmp_path, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--data: the model has 3 classes, not ImageNet's 1000" in proc.stderr
    assert not (tmp_path / "figs").exists()
    (tmp_path / "two.txt").write_text("red\ngreen\n")
    for name in ("hw3_vc.py", "make_dataset.py"):
        args = [folders, "--out", tmp_path / "d.npz"] \
            if name == "make_dataset.py" else ["--out", tmp_path / "figs"]
        proc = script(name, *args, "--model", own / "own.keras", "--labels",
                      tmp_path / "two.txt", cwd=tmp_path, timeout=300)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert f"{name}: error: --labels: the file {tmp_path / 'two.txt'} has 2 class " \
               "names; the model has 3 classes" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.txt"]


@pytest.mark.slow
def test_explain_dataset_on_an_own_model_finds_the_evidence(own, folders, cache_dir,
                                                          tmp_path):
    """Rows for every image and method, the figures linked from summary.md, and the
    saliency and occlusion maps with more of their mass in the evidence quarter than
    chance (a quarter)."""
    import pandas as pd
    out = tmp_path / "res"
    proc = script("explain_dataset.py", folders, "--model", own / "own.keras", "--labels",
                  own / "labels.txt", "--methods", "saliency,occlusion", "--metrics",
                  "deletion,average_drop", "--save-maps", "--workers", "1", "--out", out,
                  "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = pd.read_parquet(out / "results.parquet")
    assert len(rows) == 2 * 12 and set(rows["true_name"]) <= set(own_model.CLASS_NAMES)
    assert rows["correct"].mean() > 0.8                 # the model works on its classes
    summary = (out / "summary.md").read_text()
    assert "![metrics.png](metrics.png)" in summary and "![gallery.png](gallery.png)" in summary
    assert (out / "metrics.png").is_file() and (out / "gallery.png").is_file()
    region = own_model.evidence_mask()
    for method, part in (("saliency", np.abs), ("occlusion", lambda a: np.maximum(a, 0))):
        shares = []
        for f in (out / "maps").iterdir():
            with np.load(f) as m:
                for a in part(m[f"map_{method}"]):
                    shares.append(a[region].sum() / a.sum())
        assert len(shares) == 12 and np.mean(shares) > 0.5, (method, np.mean(shares))


@pytest.mark.slow
def test_class_folders_name_the_classes_when_the_model_has_no_names(own, folders, cache_dir,
                                                                    tmp_path):
    """make_dataset.py on the model's class folders: without --labels, a 3-class model with
    no names of its own takes the 3 folders' names sorted (Keras' order); with them, its
    own order, and it predicts its classes."""
    out = tmp_path / "d.npz"
    proc = script("make_dataset.py", folders, "--model", own / "own.keras", "--out", out,
                  cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as d:
        assert list(d["class_names"]) == sorted(own_model.CLASS_NAMES)
        assert d["X"].shape == (12, 32, 32, 3)
    proc = script("make_dataset.py", folders, "--model", own / "own.keras", "--labels",
                  own / "labels.txt", "--out", out, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as d:
        assert list(d["class_names"]) == list(own_model.CLASS_NAMES)
        assert (d["y_true"] == d["y_pred"]).mean() > 0.8
