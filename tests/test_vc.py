"""hw3_vc.py: helpers, argument errors, and the quick run end to end on the default model."""
import dataclasses
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import hw3_vc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_select_images_takes_right_then_wrong_in_data_order():
    y_true = np.array([1, 2, 3, 4, 5, 6])
    y_pred = np.array([1, 0, 3, 0, 5, 0])
    np.testing.assert_array_equal(hw3_vc.select_images(y_true, y_pred, 2, 2), [0, 2, 1, 3])
    np.testing.assert_array_equal(hw3_vc.select_images(y_true, y_pred, 1, 1, [5, 4]), [5, 4])
    with pytest.raises(ValueError, match=r"--images: expected data-set row indices in \[0, 6\)"):
        hw3_vc.select_images(y_true, y_pred, 1, 1, [6])


def test_tables_markdown_and_csv():
    from hw3_evaluation import csv_table, markdown_table
    md = markdown_table(["a", "b"], [["x|y", 0.123456], ["z", float("nan")]])
    assert md.splitlines() == ["| a | b |", "| --- | --- |", "| x/y | 0.1235 |",
                               "| z | undefined |"]
    csv = csv_table(["a", "b"], [["p, q", 0.5]])
    assert csv == 'a,b\n"p, q",0.5\n'


def test_keep_top_keeps_exactly_the_top_positive_pixels():
    X = np.full((1, 4, 4, 3), 100.0, np.float32)
    X[0, 0, 0] = 200.0
    A = np.zeros((1, 4, 4, 3))
    A[0, 0, 0] = 1.0   # the only positive pixel
    A[0, 1, 1] = -1.0
    out = hw3_vc.keep_top(X, A, 0.25)
    assert out[0, 0, 0, 0] == 200.0                     # kept as it is
    assert np.all(out[0, 1:, 1:] < 200) and np.all(out[0, 1:, 1:] > 100)  # blurred


@pytest.mark.parametrize("settings", [hw3_vc.FULL, hw3_vc.QUICK])
def test_study_step_counts_each_divide_the_largest(settings):
    assert settings.ig_main_steps in hw3_vc.study_steps(settings, "black")
    for baseline in hw3_vc.STUDY_BASELINES:
        steps = hw3_vc.study_steps(settings, baseline)
        assert steps and all(max(steps) % n == 0 for n in steps), (baseline, steps)


def test_write_text_is_atomic(tmp_path):
    path = tmp_path / "t.md"
    hw3_vc.write_text(str(path), "one")
    hw3_vc.write_text(str(path), "two")
    assert path.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["t.md"]


@pytest.mark.parametrize("argv, message", [
    (["--parts", "nope"], "--parts: expected a comma-separated subset"),
    (["--images", "1,x"], "--images: expected comma-separated integers"),
])
def test_bad_arguments_name_the_option(argv, message, capsys):
    with pytest.raises(SystemExit):
        hw3_vc.parse_args(argv)
    assert message in capsys.readouterr().err


def test_out_that_is_a_file_is_refused_and_kept(tmp_path, capsys):
    f = tmp_path / "report.txt"
    f.write_text("mine")
    with pytest.raises(SystemExit):
        hw3_vc.parse_args(["--out", str(f)])
    assert "--out: expected a folder" in capsys.readouterr().err
    assert f.read_text() == "mine"


def test_help_runs():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "hw3_vc.py"), "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--quick" in out.stdout and "--parts" in out.stdout


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    out = tmp_path / "figs"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")          # an existing folder is updated
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "hw3_vc.py"), "--quick",
                           "--no-progress", "--out", str(out)], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=1200, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "mine.txt").read_text() == "keep me"
    index = (out / "index.md").read_text()
    named = set(re.findall(r"\]\(([^)]+)\)", index))
    assert len(named) >= 20            # every PNG and every table's CSV is linked
    for name in named:
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    tables = [e["file"] for p in report["parts"].values() for e in p["entries"]
              if e["kind"] == "table"]
    assert len(tables) >= 5
    for name in tables:                  # the tables themselves are inlined in index.md
        assert (out / name).read_text().strip() in index
    for part in hw3_vc.PART_TITLES.values():
        assert part in index
    pngs = {p.name for p in out.glob("*.png")}
    assert pngs <= named and len(pngs) >= 15
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]
    assert set(os.listdir(tmp_path)) == {"figs"}      # nothing written outside --out
    stats = json.loads((out / "run_stats.json").read_text())
    assert stats["forwards"] > 0 and stats["gradients"] > 0
    assert re.search(r"passes: forwards=\d+ gradients=\d+", proc.stdout)


# ------------------------------------------------------------------- the two homes

def test_takes_arguments_reads_signatures():
    assert hw3_vc.takes_arguments(lambda sess: 0, 1)
    assert not hw3_vc.takes_arguments(lambda sess: 0, 3)
    assert hw3_vc.takes_arguments(lambda sess, name=None, weights=None: 0, 3)
    assert not hw3_vc.takes_arguments(lambda: 0, 1)


@pytest.fixture
def course_home(monkeypatch):
    """Home() as it finds the course's folder: the course's hw3_utils, no visualization."""
    from course_standins import load_course_utils
    monkeypatch.setitem(sys.modules, "hw3_utils", load_course_utils())
    for name in ("attrkit", "attrkit.figures", "attrkit.methods"):
        monkeypatch.setitem(sys.modules, name, None)     # import raises ImportError
    return hw3_vc.Home()


def test_home_finds_the_course_helpers_by_looking(course_home):
    home = course_home
    assert home.course and not home.own_model and not home.own_data and home.viz is None
    assert home.default_parts == hw3_vc.HOMEWORK_PARTS
    assert set(home.skipped(None)) == {"ig_study", "gradients", "sanity"}
    assert home.skipped(["ig_study"]) == {}          # parts named on the command line run
    # the course's point_cloud and binary_mask draw the panels, on copies of the arrays
    cloud, mask = home.panels()
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (6, 6, 3))
    attr = rng.normal(size=(6, 6, 3))
    kept_image, kept_attr = image.copy(), attr.copy()
    c, m = cloud(attr), mask(image, attr)
    assert c.shape == (6, 6) and m.shape == (6, 6, 3) and m.dtype == np.uint8
    np.testing.assert_allclose(c, sys.modules["hw3_utils"].point_cloud(attr[None])[0])
    np.testing.assert_array_equal(image, kept_image)
    np.testing.assert_array_equal(attr, kept_attr)


@pytest.mark.parametrize("argv, message", [
    (["--model", "vgg16"], "--model: this folder's hw3_utils.get_model(sess) is the course's"),
    (["--weights", "x.npz"], "--weights: this folder's hw3_utils.get_model(sess)"),
    (["--data", "x.npz"], "--data: this folder's hw3_utils.load_ImageNet() is the course's"),
])
def test_course_home_refuses_what_its_helpers_cannot_do(course_home, argv, message, capsys,
                                                        tmp_path):
    with pytest.raises(SystemExit) as err:
        hw3_vc.parse_args(argv + ["--out", str(tmp_path / "f")], probe=True)
    assert err.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "f").exists()


def test_project_home_runs_every_part_with_its_own_helpers():
    home = hw3_vc.Home()
    assert home.own_model and home.own_data and home.viz is not None and not home.course
    assert home.default_parts == hw3_vc.PARTS and home.skipped(None) == {}
    from attrkit.figures import plots as visualization
    assert home.panels() == (visualization.magnitude_cloud, visualization.highlight_top_pixels)


def test_influence_layer_default_then_fc1_then_none(sess):
    import tensorflow as tf
    x = tf.compat.v1.placeholder(tf.float32, [None, 3])
    h = tf.nn.relu(x)

    class Course:                    # the course's vgg16: attributes, no layers dict
        fc1 = h

    class Named:
        layers = {"pool": h}
        default_layers = {"influence": "pool"}

    assert hw3_vc.influence_layer(Course()) == ("fc1", h)
    assert hw3_vc.influence_layer(Named()) == ("pool", h)
    assert hw3_vc.influence_layer(object()) == (None, None)


# ---------------------------------------------------------------- bad input at the door

def _script(tmp_path, *args, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, os.path.join(ROOT, "hw3_vc.py"), *args],
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=timeout,
                          env=env)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize("make, message", [
    (lambda d: ["--images", "99"], "--images: expected data-set row indices in [0, 17), got [99]"),
    (lambda d: ["--images", "-1"], "--images: expected data-set row indices in [0, 17), got [-1]"),
    (lambda d: ["--data", str(d / "missing.npz")], "--data: no such file"),
    (lambda d: ["--data", str(d)], "--data: expected images (.png"),   # no class folder
    (lambda d: ["--data", (d / "t.npz").write_text("a,b\n") and str(d / "t.npz")],
     "--data: '"),
    (lambda d: ["--data", _npz(d / "l.npz", X=np.zeros((2, 8, 8, 3)), Y=np.array([5000, -3]))],
     "--data: key 'Y' of"),
])
def test_bad_options_stop_before_any_model_loads(tmp_path, make, message):
    """Each bad option: exit 2, ``hw3_vc.py: error: --flag: ...``, no traceback, no model
    built (get_model says which model it uses: it never speaks), nothing written."""
    args = make(tmp_path)
    before = sorted(os.listdir(tmp_path))
    proc = _script(tmp_path, *args, "--out", "figs")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "hw3_vc.py: error: " + message in proc.stderr
    if message == "--data: '":
        assert "t.npz' is not an .npz archive" in proc.stderr
    assert "Traceback" not in proc.stderr and "using efficientnet" not in proc.stderr
    assert sorted(os.listdir(tmp_path)) == before


def test_tensorflow_start_up_notices_only_with_verbose(tmp_path):
    quiet = _script(tmp_path, "--images", "99")
    loud = _script(tmp_path, "--images", "99", "--verbose")
    assert quiet.returncode == loud.returncode == 2
    assert "oneDNN" not in quiet.stderr and "absl" not in quiet.stderr
    assert "oneDNN" in loud.stderr          # the notice exists; --verbose shows it


def test_out_that_cannot_be_written_is_refused(capsys, tmp_path):
    with pytest.raises(SystemExit) as err:
        hw3_vc.parse_args(["--out", "/proc/hw3_vc_figures"])
    assert err.value.code == 2
    assert "--out: expected a folder this user can write" in capsys.readouterr().err
    assert hw3_vc.writable_folder(str(tmp_path / "a" / "b"))        # made when needed
    assert not (tmp_path / "a").exists() and os.listdir(tmp_path) == []


def test_settings_scale_with_the_image_and_stay_at_224():
    for s in (hw3_vc.FULL, hw3_vc.QUICK):
        assert s.scaled(224, 224) == s
    half = hw3_vc.FULL.scaled(112, 112)
    assert half.metric_superpixel == 4 and half.nord_M == 250 and half.occlusion_sizes == (
        2, 4, 8) and half.blur_sigmas == (1.0, 2.5, 5.0) and half.study_blur == 5.0
    odd = hw3_vc.QUICK.scaled(64, 48)          # lengths by the side of the area's square
    assert odd.metric_superpixel == round(28 * np.sqrt(64 * 48) / 224) == 7
    assert odd.nord_M == round(5000 * 64 * 48 / 224 ** 2)
    assert hw3_vc.FULL.scaled(8, 8).occlusion_sizes == (1,)   # never below one pixel


# ------------------------------------------------- the perturbation methods' figure

def tiny_run(sess, out, settings):
    """A :class:`hw3_vc.Run` on the tiny conv net (16 x 16 images, 5 classes) and three
    random images, built without a model file: what the gradients part's figures use."""
    from models import tiny_convnet
    model = tiny_convnet()
    run = hw3_vc.Run.__new__(hw3_vc.Run)
    run._raw_sess, run.x, run.logits, run.model = sess, model.imgs, model.logits, model
    run.sess = hw3_vc.CountingSession(sess, model.imgs)
    run.X = np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 3)).astype(np.float32)
    run.y_pred = sess.run(model.logits, {model.imgs: run.X}).argmax(1)
    run.y_true, run.idx = run.y_pred.copy(), np.arange(3) + 100
    run.names = {c: f"class {c}" for c in range(5)}
    run.settings, run.sel, run.out, run.progress = settings, np.arange(3), str(out), False
    run.cache, run._methods, run.entries = {}, {}, {}
    run._writer = hw3_vc.FigureWriter()
    return run


@pytest.mark.filterwarnings("ignore:KernelSHAP")     # 128 coalitions for 256 1-px cells
def test_perturbation_figure_on_the_quick_budgets(sess, tmp_path, monkeypatch):
    """5_perturbation_methods.png on the quick budgets: the five methods beside each of
    the first three images, every panel titled with its budget, listed in the part's
    entries (index.md) like the other figures."""
    drawn = []
    plot_grid = hw3_vc.plot_grid
    monkeypatch.setattr(hw3_vc, "plot_grid", lambda *a, **k: drawn.append(a) or plot_grid(*a, **k))
    settings = dataclasses.replace(hw3_vc.QUICK, segments="grid")
    run = tiny_run(sess, tmp_path, settings)
    hw3_vc.perturbation_methods_figure(run, run.sel[:3])
    run.finish_figures()
    assert (tmp_path / "5_perturbation_methods.png").is_file()
    entry, = run.entries["gradients"]
    assert entry["file"] == "5_perturbation_methods.png" and "LIME" in entry["caption"]
    grid, titles, modes = drawn[0]
    assert len(grid) == 3 and all(len(row) == 1 + len(hw3_vc.PERTURBATION_PANELS)
                                  for row in grid)
    assert titles[0][1:] == ["LIME\n100 samples, 256 grid segments",
                             "KernelSHAP\n128 coalitions, 256 grid segments",
                             "RISE\n300 masks, 7x7 cells",
                             "Feature ablation\n256 grid segments",
                             "PartitionSHAP\n100 evaluations, blur(9,9)"]
    assert titles[2][0] == run.label(2) and modes[0] == ["image", "signed", "signed", "abs",
                                                         "signed", "signed"]
    assert all(m.shape == (16, 16) for row in grid for m in row[1:])
    assert grid[0][3].min() == 0.0            # RISE drawn above its own minimum
    # the maps are the methods' own, called with the run's budgets and the image's class
    from attrkit.methods.perturbation import LIME
    lime = LIME(sess, run.x, run.logits, None, progress=False)(
        run.X, segments="grid", num_samples=100, seed=0, target_class=run.y_pred)
    np.testing.assert_allclose(grid[1][1], lime[1], rtol=1e-6)


def test_perturbation_figure_is_skipped_with_the_reason_without_the_package(
        monkeypatch, capsys):
    """In the course's folder (no attrkit) the figure is skipped and the run says why."""
    monkeypatch.setitem(sys.modules, "attrkit", None)     # import raises ImportError
    monkeypatch.setitem(sys.modules, "attrkit.methods", None)

    class NoRun:            # any use of the run would fail: nothing is computed
        pass

    hw3_vc.perturbation_methods_figure(NoRun(), [0, 1, 2])
    err = capsys.readouterr().err
    assert err.startswith("skipped 5_perturbation_methods.png: The perturbation methods "
                          "(LIME, KernelSHAP, RISE, feature ablation) live in the project's "
                          "package attrkit, which this folder")


def test_propagation_and_cam_figures(sess, tmp_path, monkeypatch):
    """5_propagation_methods.png (six methods) on the first three images and
    5_cam_methods.png (Grad-CAM and the family's seven, on the model's Grad-CAM layer) on
    the first ``cam_images``: each panel is the method's own map with the run's budgets
    and the image's class."""
    drawn = []
    plot_grid = hw3_vc.plot_grid
    monkeypatch.setattr(hw3_vc, "plot_grid", lambda *a, **k: drawn.append(a) or plot_grid(*a, **k))
    run = tiny_run(sess, tmp_path, dataclasses.replace(hw3_vc.QUICK, cam_images=2))
    hw3_vc.propagation_methods_figure(run, run.sel[:3])
    hw3_vc.cam_methods_figure(run, run.sel[:run.settings.cam_images])
    run.finish_figures()
    for name in ("5_propagation_methods.png", "5_cam_methods.png"):
        assert (tmp_path / name).is_file()
    assert [e["file"] for e in run.entries["gradients"]] == ["5_propagation_methods.png",
                                                             "5_cam_methods.png"]
    (grid, titles, modes), (cams, cam_titles, _) = drawn
    assert len(grid) == 3 and titles[0][1:] == [t for t, *_ in hw3_vc.propagation_panels(
        run, run.X)]
    assert titles[0][3] == "GradientSHAP (10 samples)" and modes[0][4] == "abs"
    assert len(cams) == 2 and cam_titles[0][1:] == ["Grad-CAM"] + list(hw3_vc.CAM_PANELS)
    from attrkit.methods.cam import ScoreCAM
    from attrkit.methods.lrp import LRP
    x, out, c = run.x, run.logits, run.y_pred
    lrp = LRP(sess, x, out, None, progress=False)(run.X, "epsilon_plus_flat", target_class=c)
    np.testing.assert_allclose(grid[2][6], lrp[2].sum(-1), rtol=1e-5, atol=1e-7)
    score = ScoreCAM(sess, x, out, None, run.model.layers["conv2"], progress=False)(
        run.X[:2], target_class=c[:2])
    np.testing.assert_allclose(cams[1][7], score[1], rtol=1e-5, atol=1e-7)


def test_propagation_and_cam_figures_are_skipped_without_the_package(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "attrkit", None)     # import raises ImportError
    monkeypatch.setitem(sys.modules, "attrkit.methods", None)

    class NoRun:
        pass

    hw3_vc.propagation_methods_figure(NoRun(), [0, 1, 2])
    hw3_vc.cam_methods_figure(NoRun(), [0, 1, 2])
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("skipped 5_propagation_methods.png: The propagation methods")
    assert err[1].startswith("skipped 5_cam_methods.png: The CAM family")


def test_perturbation_figure_leaves_out_what_needs_scikit_image(sess, tmp_path, monkeypatch):
    """Without scikit-image the segment methods are left out with the reason in the
    caption, and RISE (which needs none) is still drawn."""
    from attrkit.methods import segmentation

    def no_skimage(image, kind):
        raise ImportError(segmentation.SKIMAGE_KIND_ERROR.format(kind=kind))
    monkeypatch.setattr(segmentation, "segment_image", no_skimage)
    settings = dataclasses.replace(hw3_vc.QUICK, rise_masks=16)
    run = tiny_run(sess, tmp_path, settings)
    hw3_vc.perturbation_methods_figure(run, run.sel[:3])
    run.finish_figures()
    entry, = run.entries["gradients"]
    assert "Left out: LIME (segments: 'quickshift' segments need scikit-image" in \
        entry["caption"]
    assert "Feature ablation (segments:" in entry["caption"]
    assert (tmp_path / "5_perturbation_methods.png").is_file()
