"""make_submission.py on a temporary folder of four small stand-in files."""
import os
import subprocess
import sys
import zipfile

import pytest

import make_submission as MS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "make_submission.py")

GOOD = {
    "hw3_attribution.py": (
        "import os, sys\n"
        "import numpy as np\n"
        "import tensorflow as tf\n"
        "from hw3_utils import get_model, binary_mask, point_cloud, Domains, class_names\n"
        "import hw3_utils\n"
        "from imagenet_classes import class_names as names\n"
        "def f():\n"
        "    return hw3_utils.load_ImageNet, hw3_utils.Domains, hw3_utils.resize_images\n"),
    "hw3_infl.py": (
        "from hw3_attribution import f\n"
        "import scipy.ndimage\n"
        "from tqdm.auto import tqdm\n"),
    "hw3_evaluation.py": (
        "from __future__ import annotations\n"
        "import collections.abc\n"
        "from PIL import Image\n"
        "import vgg16\n"
        "try:\n"
        "    import pandas  # optional, guarded\n"
        "except ImportError:\n"
        "    pandas = None\n"),
    "hw3_vc.py": (
        "import argparse\n"
        "import matplotlib\n"
        "from matplotlib.figure import Figure\n"
        "import hw3_infl, hw3_evaluation\n"
        "def main():\n"
        "    import importlib\n"
        "    return importlib.import_module('json')\n"
        "if __name__ == '__main__':\n"
        "    main()\n"),
}


def _write(folder, files):
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return [str(folder / name) for name in MS.SUBMISSION_FILES]


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_good_sources_have_no_problems(tmp_path):
    assert MS.check_sources(_write(tmp_path / "src", GOOD)) == []


@pytest.mark.parametrize("line, needle", [
    ("import pandas", "imports 'pandas'"),
    ("import visualization", "imports 'visualization'"),
    ("import hw3_utils.visualization", "imports 'hw3_utils.visualization'"),
    ("from hw3_utils import aggregate_attribution",
     "imports 'aggregate_attribution' from hw3_utils"),
    ("from hw3_utils.visualization import binary_mask",
     "imports 'hw3_utils.visualization'"),
    ("from . import hw3_attribution", "relative import"),
    ("from hw3_utils import *", "import *"),
    ("import hw3_utils as U; x = U.normalize_attribution", "hw3_utils.normalize_attribution"),
    ("from hw3_utils import center_crop_resize",  # ours only: not in the course's file
     "imports 'center_crop_resize' from hw3_utils"),
    ("from hw3_utils import load_rgb_image", "imports 'load_rgb_image' from hw3_utils"),
    ("import hw3_utils; hw3_utils.choose_model()", "hw3_utils.choose_model"),
    ("import imagenet_classes.names", "imports 'imagenet_classes.names'"),
    ("from efficientnet_lite0 import EfficientNetLite0", "imports 'efficientnet_lite0'"),
    ("__import__('sklearn')", "imports 'sklearn'"),
])
def test_offending_import_is_named_with_file_and_line(tmp_path, line, needle):
    files = dict(GOOD)
    # inside a function, after two good lines: the check must look everywhere
    files["hw3_infl.py"] = "import numpy\n\ndef g():\n    " + line + "\n"
    problems = MS.check_sources(_write(tmp_path / "src", files))
    assert len(problems) == 1, problems
    assert problems[0].startswith("hw3_infl.py:4: ") and needle in problems[0]


def test_allowed_helper_names_are_exactly_the_course_api():
    """DESIGN.md's list of the course's hw3_utils names, and the course's three files."""
    assert MS.HW3_UTILS_NAMES == {
        "get_model", "load_ImageNet", "Domains", "get_tensor_names", "ImageNet_name2idx",
        "ImageNet_idx2name", "binary_mask", "point_cloud", "class_names", "img_to_array",
        "load_img", "resize_images"}
    assert MS.AUTOGRADER_MODULES == {"hw3_utils", "vgg16", "imagenet_classes"}


def test_allowed_helper_names_match_design_md():
    """When the course folder is there, the list in DESIGN.md is the one checked."""
    import re
    design = os.path.join(ROOT, "..", "shared", "DESIGN.md")
    if not os.path.isfile(design):
        pytest.skip("no ../shared/DESIGN.md next to the repository")
    with open(design, encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("## The course's helper API"):]
    listed = section[section.index("only these names"):section.index("- `get_model(sess)`")]
    assert set(re.findall(r"`(\w+)`", listed)) == MS.HW3_UTILS_NAMES


def test_missing_and_broken_files_are_reported(tmp_path):
    files = dict(GOOD)
    del files["hw3_vc.py"]
    files["hw3_evaluation.py"] = "import numpy\ndef broken(:\n"
    problems = MS.check_sources(_write(tmp_path / "src", files))
    assert any(p.startswith("hw3_vc.py: missing") for p in problems)
    assert any(p.startswith("hw3_evaluation.py:2: does not compile") for p in problems)
    assert len(problems) == 2


def test_script_writes_exactly_the_four_files_at_top_level(tmp_path):
    src = tmp_path / "src"
    _write(src, GOOD)
    out = tmp_path / "out" / "submission.zip"
    result = _run("--src", str(src), "--out", str(out), "--no-run")
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == sorted(MS.SUBMISSION_FILES)
        for name in MS.SUBMISSION_FILES:
            assert zf.read(name).decode() == GOOD[name]
    assert os.listdir(out.parent) == ["submission.zip"]     # no temporary file left
    for name in MS.SUBMISSION_FILES:                          # says what it wrote
        assert name in result.stdout
    assert "4 entries" in result.stdout and "bytes" in result.stdout


def test_script_refuses_a_bad_import_and_writes_nothing(tmp_path):
    files = dict(GOOD)
    files["hw3_vc.py"] = GOOD["hw3_vc.py"] + "\nimport pandas\n"
    src = tmp_path / "src"
    _write(src, files)
    out = tmp_path / "submission.zip"
    result = _run("--src", str(src), "--out", str(out))
    assert result.returncode == 1
    assert "hw3_vc.py:11: imports 'pandas'" in result.stderr
    assert "no zip written" in result.stderr
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["src"]


def test_failed_check_keeps_an_existing_zip_unchanged(tmp_path):
    files = dict(GOOD)
    del files["hw3_infl.py"]
    src = tmp_path / "src"
    _write(src, files)
    out = tmp_path / "submission.zip"
    out.write_bytes(b"old zip")
    result = _run("--src", str(src), "--out", str(out))
    assert result.returncode == 1 and "hw3_infl.py: missing" in result.stderr
    assert out.read_bytes() == b"old zip" and "left unchanged" in result.stderr


def test_failed_write_leaves_no_zip_and_no_temporary_file(tmp_path):
    src = tmp_path / "src"
    paths = _write(src, GOOD)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(FileNotFoundError):
        MS.write_zip(paths + [str(src / "not_there.py")], out_dir / "submission.zip")
    assert os.listdir(out_dir) == []


def test_help():
    result = _run("--help")
    assert result.returncode == 0 and "--out" in result.stdout and "--src" in result.stdout
    assert "--no-run" in result.stdout


@pytest.mark.parametrize("vc, reason", [
    ("import sys\nprint('boom: no figures today', file=sys.stderr)\nsys.exit(3)\n",
     "failed beside the course's helpers (exit status 3)"),
    ("print('did nothing')\n", "exited 0 beside the course's helpers but wrote no "
                               "exercise-14 figure"),
])
def test_a_hw3_vc_that_fails_as_a_grader_runs_it_means_no_zip(tmp_path, vc, reason):
    """The run check: the zipped hw3_vc.py --quick beside the course's helpers must exit 0
    and write exercise 14's figures; otherwise no zip, the reason said, the old zip kept."""
    files = dict(GOOD, **{"hw3_vc.py": vc})
    src = tmp_path / "src"
    _write(src, files)
    out = tmp_path / "submission.zip"
    out.write_bytes(b"old zip")
    result = _run("--src", str(src), "--out", str(out))
    assert result.returncode == 1, result.stdout
    assert "no zip written" in result.stderr and reason in result.stderr
    if "boom" in vc:
        assert "boom: no figures today" in result.stderr          # what it printed
    assert out.read_bytes() == b"old zip" and sorted(os.listdir(tmp_path)) == [
        "src", "submission.zip"]


def test_course_folder_holds_the_stand_ins_and_the_data(tmp_path):
    folder = MS.write_course_folder(tmp_path / "f", data=MS.course_data())
    assert sorted(os.listdir(folder)) == ["hw3_utils.py", "imagenet_14c_vgg16.npz",
                                          "imagenet_classes.py", "vgg16.py"]
    import numpy as np
    with np.load(os.path.join(folder, "imagenet_14c_vgg16.npz")) as d:
        assert d["X"].shape == (12, 224, 224, 3) and d["X"].min() >= 0 and d["X"].max() <= 255
        right = d["Y"] == d["Pred"]
        assert right.sum() == 6 and {354, 356} <= set(d["Y"].tolist())


def test_the_repository_files_that_exist_pass_the_check():
    """A guard on the real graded files: whichever of them exist import only what the
    autograder provides (missing ones are skipped: they may not be written yet)."""
    paths = [os.path.join(ROOT, f) for f in MS.SUBMISSION_FILES]
    present = [p for p in paths if os.path.isfile(p)]
    if not present:
        pytest.skip("none of the graded files exists yet")
    assert MS.check_sources(present) == []
