"""Play the course's autograder and a grader: the graded files alone, beside the course's
own helpers.

The autograder unpacks submission.zip next to ITS OWN hw3_utils.py, vgg16.py and
imagenet_classes.py and calls the starter signatures with positional arguments; a grader
runs hw3_vc.py there. These tests build the zip once with make_submission.py (which itself
runs the zipped ``hw3_vc.py --quick`` beside the stand-ins), unpack it into a temporary
folder beside the stand-ins of the course's helpers in ``course/`` (the course's code in
substance: an unnamed placeholder, ``vgg16(imgs, 'imagenet', sess)``, ``Domains``,
``imagenet_14c_vgg16.npz``, ``binary_mask``, ``point_cloud``), and run the calls and the
script in subprocesses whose ``sys.path`` does not see the project.
"""
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import make_submission as MS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRADED = ("hw3_attribution.py", "hw3_infl.py", "hw3_vc.py", "hw3_evaluation.py")

PRELUDE = """\
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import tensorflow as tf
tf.compat.v1.disable_eager_execution()
HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = %r
assert not any(os.path.abspath(p or '.') == PROJECT for p in sys.path), sys.path
from hw3_attribution import SaliencyMap, IntegratedGrad
from hw3_infl import InflDirected
from hw3_evaluation import AverageDrop, N_Ord
import hw3_attribution, hw3_infl, hw3_evaluation, hw3_vc, hw3_utils, vgg16
for mod in (hw3_attribution, hw3_infl, hw3_evaluation, hw3_vc, hw3_utils, vgg16):
    assert os.path.dirname(os.path.abspath(mod.__file__)) == HERE, mod.__file__
try:
    from attrkit.figures import plots as visualization
    raise AssertionError('the project is visible: ' + visualization.__file__)
except ModuleNotFoundError:
    pass
out = {}
"""

# Toy graphs whose answers are known by hand.
TOY_CALLS = """\
g = tf.Graph()
with g.as_default():
    sess = tf.compat.v1.Session()
    x = tf.compat.v1.placeholder(tf.float32, [None, 2])
    f = tf.minimum(2 * x[:, 0] + 3 * x[:, 1], 1.0)
    scores = tf.stack([f, -f], axis=1)
    # Written exercise 6: IG of min(2 x1 + 3 x2, 1) at (2, 1), black baseline
    ig = IntegratedGrad(sess, x, scores, 0)(np.array([[2.0, 1.0]]), 'black', 16, 7000)
    out['ig_ex6'] = ig.tolist()
    # Saliency of a linear model: x * W[:, c]
    W = np.array([[1.0, -2.0], [3.0, 0.5]], np.float32)
    lin = tf.matmul(x, W)
    X = np.array([[1.0, 2.0], [-1.0, 4.0]], np.float32)
    out['sal'] = SaliencyMap(sess, x, lin, 1)(X).tolist()
    out['sal_grad'] = SaliencyMap(sess, x, lin, 1)(X, 16, False).tolist()
    # Influence of a two-layer net: hidden = relu(W1 x + b1) all active, q = s_1 -> W2[1]
    W1 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    W2 = np.array([[1.0, 2.0, 3.0], [-1.0, 5.0, 0.5]], np.float32)
    hidden = tf.nn.relu(tf.matmul(x, W1.T) + 1.0)
    logits = tf.matmul(hidden, W2.T)
    infl = InflDirected(sess, x, hidden, logits, lambda o: o[1])
    out['expert'] = infl.dis_influence(np.abs(X), 16)
    out['expert_attr'] = infl.expert_attribution(out['expert'], np.abs(X)).tolist()
"""

VGG16_CALLS = """\
sess = tf.compat.v1.Session()
from hw3_utils import get_model, load_ImageNet
model = get_model(sess)
x = tf.compat.v1.get_default_graph().get_tensor_by_name('Placeholder:0')
data = load_ImageNet()
X = data.X[:1].astype(np.float32)
n_ops = len(tf.compat.v1.get_default_graph().get_operations())
S = SaliencyMap(sess, x, model.fc3l, 356)(X)
G = SaliencyMap(sess, x, model.fc3l, 356)(X, 16, False)
ig = IntegratedGrad(sess, x, model.fc3l, 356)
A = ig(X, 'black', num_steps=50)
info = ig.last_info
infl = InflDirected(sess, x, model.fc1, model.fc3l, qoi=lambda out: out[354])
e = infl.dis_influence(data.X, batch_size=16)
E = infl.expert_attribution(e, X)
attr_map = A.mean(axis=-1)
ad = AverageDrop(sess, attr_map, X, x, model.fc3l, 356)
no = N_Ord(sess, attr_map[0], X[0], x, model.fc3l, 356)
grown = len(tf.compat.v1.get_default_graph().get_operations())
# calling everything again (new instances too) adds no op; small budgets, same ops
SaliencyMap(sess, x, model.fc3l, 356)(X)
IntegratedGrad(sess, x, model.fc3l, 356)(X, 'white', num_steps=2)
InflDirected(sess, x, model.fc1, model.fc3l, qoi=infl.qoi.fn).expert_attribution(e, X)
AverageDrop(sess, attr_map, X, x, model.fc3l, 356)
N_Ord(sess, attr_map[0], X[0], x, model.fc3l, 356, 100000)
again = len(tf.compat.v1.get_default_graph().get_operations())
# independent check of the saliency map: x * d fc3l[:, 356] / dx
g = tf.gradients(model.fc3l[:, 356], x)[0]
grad = sess.run(g, {x: X})
out.update(shapes=[list(S.shape), list(A.shape), list(E.shape)], expert=int(e),
           sal_err=float(np.abs(S - X * grad).max() / np.abs(X * grad).max()),
           grad_err=float(np.abs(G - grad).max() / np.abs(grad).max()),
           completeness=float(info['completeness_error'][0]), ad=float(ad), nord=float(no),
           finite=bool(np.isfinite(S).all() and np.isfinite(A).all() and np.isfinite(E).all()),
           ops_growth=again - grown, ops_built=grown - n_ops)
"""

EPILOGUE = """\
print('RESULT ' + json.dumps(out))
"""


@pytest.fixture(scope="module")
def submission(tmp_path_factory):
    """submission.zip built once by make_submission.py, its grader check included."""
    zip_path = tmp_path_factory.mktemp("zip") / "submission.zip"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "make_submission.py"), "--out",
                           str(zip_path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "checked: the zipped hw3_vc.py --quick ran beside the course's helpers" \
        in proc.stdout
    return zip_path


def build_folder(tmp_path, zip_path, data=None):
    """The autograder's folder: the unpacked submission and the course's helpers."""
    with zipfile.ZipFile(zip_path) as zf:
        assert sorted(zf.namelist()) == sorted(GRADED)
    return Path(MS.write_course_folder(tmp_path / "autograder", zip_path, data))


def run_in(folder, body):
    """Run PRELUDE + body in a subprocess from ``folder``; return its RESULT dict."""
    script = folder / "grader.py"
    script.write_text(PRELUDE % ROOT + textwrap.dedent(body) + EPILOGUE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run([sys.executable, "-s", str(script)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_graded_files_alone_on_toy_graphs(tmp_path, submission):
    """The starter's call forms on toy graphs with answers known by hand."""
    out = run_in(build_folder(tmp_path, submission), TOY_CALLS)
    np.testing.assert_allclose(out["ig_ex6"], [[4 / 7, 3 / 7]], atol=1e-3)
    X = np.array([[1.0, 2.0], [-1.0, 4.0]])
    np.testing.assert_allclose(out["sal"], X * np.array([-2.0, 0.5]), rtol=1e-6)
    np.testing.assert_allclose(out["sal_grad"], [[-2.0, 0.5]] * 2, rtol=1e-6)
    # influence of hidden on s_1 is W2[1] = [-1, 5, 0.5]: the expert is unit 1, whose
    # gradient with respect to x is W1[1] = [0, 1]
    assert out["expert"] == 1
    np.testing.assert_allclose(out["expert_attr"], np.abs(X) * np.array([0.0, 1.0]))


@pytest.mark.slow
def test_graded_files_alone_on_course_vgg16(tmp_path, submission):
    """Every call of the issue on the course's VGG16 (random weights), in the autograder's
    layout: get_model(sess), the input found as 'Placeholder:0', model.fc1 / model.fc3l."""
    rng = np.random.default_rng(0)
    data = {"X": rng.uniform(0, 255, (3, 224, 224, 3)).astype(np.float32),
            "Y": np.array([354, 356, 354]), "Pred": np.array([354, 356, 1]),
            "Idx": np.array([10, 11, 12])}
    out = run_in(build_folder(tmp_path, submission, data), VGG16_CALLS)
    assert out["shapes"] == [[1, 224, 224, 3]] * 3
    assert out["finite"]
    assert 0 <= out["expert"] < 4096
    assert out["sal_err"] < 1e-5 and out["grad_err"] < 1e-5
    assert np.isfinite(out["ad"]) and out["ad"] >= 0
    assert np.isfinite(out["nord"]) and out["nord"] >= 0
    assert out["ops_growth"] == 0
    assert np.isfinite(out["completeness"])


@pytest.mark.slow
def test_starter_calls_on_the_default_model(default_model, sample_data):
    """The same calls work on the bundled default model: its input is the model's ``imgs``
    (also found as 'Placeholder:0' after get_model), its scores ``logits``."""
    import tensorflow as tf
    from hw3_attribution import IntegratedGrad, SaliencyMap
    from hw3_evaluation import AverageDrop, N_Ord
    from hw3_infl import InflDirected
    model, sess = default_model
    X, y, pred, _ = sample_data
    c = int(pred[1])                                  # espresso, predicted right
    with sess.graph.as_default():
        assert sess.graph.get_tensor_by_name("Placeholder:0") is model.imgs
        S = SaliencyMap(sess, model.imgs, model.logits, c)(X[1:3])
        ig = IntegratedGrad(sess, model.imgs, model.logits, c)
        A = ig(X[1:3], "black", num_steps=32)
        infl = InflDirected(sess, model.imgs, model.layers["head_pool"], model.logits,
                            qoi=lambda out: out[c])
        e = infl.dis_influence(X, batch_size=16)
        E = infl.expert_attribution(e, X[1:3])
        ad = AverageDrop(sess, A.mean(-1), X[1:3], model.imgs, model.logits, c)
        no = N_Ord(sess, A[0].mean(-1), X[1], model.imgs, model.logits, c)
        # the expert of s_c on head_pool is the unit with the largest weight into logit c
        # (head_pool feeds the logits through one dense layer: ds_c/dh is that row)
        w = [v for v in tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.MODEL_VARIABLES)
             if v.name.endswith("fc/kernel:0")][0]
        assert e == int(np.argmax(sess.run(w)[:, c]))
    assert S.shape == A.shape == E.shape == X[1:3].shape
    # IG's completeness on the real model with 32 steps: within the errors measured for
    # right-Riemann on these photos (issue 8's table: a few percent at 64 steps)
    assert np.all(ig.last_info["completeness_error"] < 0.5)
    # Average Drop by hand: keep the pixels of positive mean attribution, black the rest
    with sess.graph.as_default():
        keep = (A.mean(-1) > 0)[..., None]
        f = sess.run(model.logits, {model.imgs: X[1:3]})[:, c].astype(np.float64)
        fm = sess.run(model.logits, {model.imgs: X[1:3] * keep})[:, c].astype(np.float64)
    assert np.all(f > 0)
    assert ad == pytest.approx(100 * np.mean(np.maximum(f - fm, 0) / f), rel=1e-5)
    assert np.isfinite(no) and no >= 0


# ---------------------------------------------------------------- hw3_vc.py as a grader runs it

def run_script(folder, *args, timeout=1200):
    """``python hw3_vc.py ARGS`` in the grader's folder, the stand-in VGG16 narrowed."""
    return subprocess.run([sys.executable, "-s", "hw3_vc.py", *args], cwd=folder,
                          env=MS.course_env(), capture_output=True, text=True,
                          timeout=timeout)


def digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()
            if p.is_file()}


def csv_rows(path):
    import csv
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))[1:]


@pytest.mark.slow
def test_hw3_vc_regenerates_exercise_14_beside_the_course_helpers(tmp_path, submission):
    """``python hw3_vc.py`` (full settings) in the course's folder: written exercise 14 for
    Saliency, IG and the influence expert on 5 right + 5 wrong images with the course's
    point_cloud and binary_mask, the influence, Average Drop and N_Ord tables with
    numbers, the extra studies skipped with the reason; nothing of the folder changed."""
    folder = build_folder(tmp_path, submission, MS.course_data())
    before = digests(folder)
    proc = run_script(folder, "--no-progress", "--out", "figures")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert digests(folder) == before                   # no file of the folder changed
    assert "skipped ig_study, gradients, sanity: an extra study" in proc.stderr
    out = folder / "figures"
    report = json.loads((out / "report.json").read_text())
    assert sorted(report["parts"]) == ["comparison", "influence", "metrics"]
    figures = report["parts"]["comparison"]["entries"]
    names = [e["file"] for e in figures]
    assert names[:2] == ["1_comparison_1_saliency.png",
                         "1_comparison_2_integrated_gradients.png"]
    assert names[2].startswith("1_comparison_3_influence_expert_") and "of_fc1" in names[2]
    for e in figures:
        from PIL import Image
        with Image.open(out / e["file"]) as im:      # ten rows of titled panels
            assert im.format == "PNG" and im.size[1] > 10 * 250 and im.size[0] > 3 * 250
        assert len(e["images"]) == 10
        assert [i["correct"] for i in e["images"]] == [True] * 5 + [False] * 5
        assert "the course's point_cloud and binary_mask" in e["caption"]
    experts = csv_rows(out / "2_influence_experts.csv")
    assert len(experts) == 10 and all(0 <= int(r[4]) < 4096 // 16 for r in experts)
    ad = csv_rows(out / "3_average_drop.csv")
    assert [r[0] for r in ad][:2] == ["Saliency", "Integrated Gradients"] and len(ad) == 3
    assert all(np.isfinite(float(r[1])) and float(r[1]) >= 0 for r in ad)
    nord = csv_rows(out / "3_necessity_ordering.csv")
    assert len(nord) == 11 and nord[-1][0] == "mean"   # 10 images and the mean
    assert all(np.isfinite(float(v)) for r in nord for v in r[1:])
    index = (out / "index.md").read_text()
    assert "## Skipped" in index and "Integrated Gradients: baselines and steps" in index


@pytest.mark.parametrize("option, message", [
    (["--model", "vgg16"], "--model: this folder's hw3_utils.get_model(sess) is the course's"),
    (["--weights", "w.npz"], "--weights: this folder's hw3_utils.get_model(sess) is the "),
    (["--data", "mine.npz"], "--data: this folder's hw3_utils.load_ImageNet() is the course's"),
])
def test_hw3_vc_refuses_options_the_course_helpers_cannot_honour(tmp_path, submission,
                                                                 option, message):
    folder = build_folder(tmp_path, submission)
    proc = run_script(folder, *option, "--out", "figures", timeout=300)
    assert proc.returncode == 2 and message in proc.stderr
    assert "Traceback" not in proc.stderr and not (folder / "figures").exists()
