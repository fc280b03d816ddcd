"""Build submission.zip: the four homework files at the zip's top level.

    python make_submission.py [--out submission.zip] [--src DIR]

Before writing, every file is checked: it exists, it compiles, and every import in it
(anywhere in the file, inside functions too) is one that the autograder provides; only an
import inside ``try: ... except ImportError:`` counts as optional and is not checked. The
autograder brings its own ``hw3_utils.py``, ``vgg16.py`` and ``imagenet_classes.py`` and has
the standard library, numpy, scipy, tensorflow, Pillow, tqdm and matplotlib; from
``hw3_utils`` only the course's names exist there (``HW3_UTILS_NAMES``, the list in
DESIGN.md). Any other import is named with its file and line, and nothing is written. The
zip goes to a temporary name in the destination folder and is renamed into place, so an
existing zip is either kept or replaced whole.

Then it does what a grader does: it unpacks the new zip into a scratch folder beside
stand-ins of the course's own helpers (``course/``: ``get_model(sess)``, ``load_ImageNet()``,
``binary_mask``, ``point_cloud``), a small random-weight VGG16 and a small course-style data
file written for the check, and runs the zipped ``hw3_vc.py --quick`` there. A crash, or a
run that does not write written exercise 14's figures, means no zip, with the reason
(``--no-run`` skips this run; the import check always runs).
"""
import argparse
import ast
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile

SUBMISSION_FILES = ("hw3_attribution.py", "hw3_infl.py", "hw3_vc.py", "hw3_evaluation.py")
THIRD_PARTY = frozenset({"numpy", "scipy", "tensorflow", "PIL", "tqdm", "matplotlib"})
# The course's own files that the autograder puts beside the submission.
AUTOGRADER_MODULES = frozenset({"hw3_utils", "vgg16", "imagenet_classes"})
# The names the course's hw3_utils.py has (DESIGN.md, "The course's helper API").
HW3_UTILS_NAMES = frozenset({
    "get_model", "load_ImageNet", "Domains", "get_tensor_names", "ImageNet_name2idx",
    "ImageNet_idx2name", "binary_mask", "point_cloud", "class_names", "img_to_array",
    "load_img", "resize_images"})
STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}

HERE = os.path.dirname(os.path.abspath(__file__))
# Stand-ins of the course's own hw3_utils.py and vgg16.py (course/README.md); the course's
# imagenet_classes.py is the project's own list.
COURSE_DIR = os.path.join(HERE, "course")
COURSE_FILES = (os.path.join(COURSE_DIR, "hw3_utils.py"), os.path.join(COURSE_DIR, "vgg16.py"),
                os.path.join(HERE, "imagenet_classes.py"))
COURSE_DATA_FILE = "imagenet_14c_vgg16.npz"
CHECK_VGG16_DIVISOR = 16      # the check's VGG16: every layer 16 times narrower
CHECK_TIMEOUT = 1800          # seconds for the check's run

MISSING = "{file}: missing (expected in {folder})"
SYNTAX = "{file}:{line}: does not compile: {msg}"
NOT_PROVIDED = ("{file}:{line}: imports {what}, which the autograder does not provide "
                "(allowed: the standard library, {third}, the four homework files, vgg16, "
                "imagenet_classes, and from hw3_utils only {names})")
UTILS_NAME = ("{file}:{line}: uses hw3_utils.{name}, which the autograder's hw3_utils "
              "does not have (it has only {names})")
RELATIVE = "{file}:{line}: relative import {what}; the submission is flat, import by name"
SUBMODULE = "{file}:{line}: imports {what}, but {top} is a single module, not a package"
STAR = "{file}:{line}: 'from {module} import *' hides which names are used; import them by name"
RUN_FAILED = ("the zipped hw3_vc.py --quick failed beside the course's helpers (exit status "
              "{code}); the end of what it printed:\n{tail}")
RUN_TIMEOUT = "the zipped hw3_vc.py --quick ran past {seconds} s beside the course's helpers"
RUN_MISSING = ("the zipped hw3_vc.py --quick exited 0 beside the course's helpers but wrote "
               "no {what}")


def _allowed_names():
    return ", ".join(sorted(HW3_UTILS_NAMES))


def _local_modules():
    return {os.path.splitext(f)[0] for f in SUBMISSION_FILES}


def _module_problem(module, fname, line):
    """A problem string if ``import module`` would fail on the autograder, else None."""
    top = module.split(".")[0]
    local = _local_modules() | AUTOGRADER_MODULES
    if top in local:
        if module != top:
            return SUBMODULE.format(file=fname, line=line, what=f"'{module}'", top=top)
        return None
    if top in STDLIB or top in THIRD_PARTY:
        return None
    return NOT_PROVIDED.format(file=fname, line=line, what=f"'{module}'",
                               third=", ".join(sorted(THIRD_PARTY)), names=_allowed_names())


def _guarded_imports(tree):
    """Import nodes in the body of a ``try`` that catches ImportError: optional imports
    that cannot break the autograder (their ``except`` branch is still checked)."""
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_import_error(h.type)
                                             for h in node.handlers):
            for stmt in node.body:
                guarded.update(id(n) for n in ast.walk(stmt)
                               if isinstance(n, (ast.Import, ast.ImportFrom)))
    return guarded


def _catches_import_error(expr):
    names = expr.elts if isinstance(expr, ast.Tuple) else [expr]
    return any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError")
               for n in names)


def check_tree(tree, fname):
    """The import problems of one parsed file, as ``'file:line: ...'`` strings."""
    problems = []
    utils_aliases = set()   # names bound to the hw3_utils module by 'import hw3_utils'
    guarded = _guarded_imports(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                problem = _module_problem(alias.name, fname, line)
                if problem:
                    problems.append(problem)
                elif alias.name == "hw3_utils":
                    utils_aliases.add(alias.asname or "hw3_utils")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                what = "from " + "." * node.level + module
                problems.append(RELATIVE.format(file=fname, line=line, what=repr(what)))
                continue
            problem = _module_problem(module, fname, line)
            if problem:
                problems.append(problem)
            elif module == "hw3_utils":
                for alias in node.names:
                    if alias.name == "*":
                        problems.append(STAR.format(file=fname, line=line, module=module))
                    elif alias.name not in HW3_UTILS_NAMES:
                        problems.append(NOT_PROVIDED.format(
                            file=fname, line=line,
                            what=f"'{alias.name}' from hw3_utils",
                            third=", ".join(sorted(THIRD_PARTY)), names=_allowed_names()))
            elif module in _local_modules() | AUTOGRADER_MODULES:
                if any(alias.name == "*" for alias in node.names):
                    problems.append(STAR.format(file=fname, line=line, module=module))
        elif isinstance(node, ast.Call) and _dynamic_import_target(node) is not None:
            problem = _module_problem(_dynamic_import_target(node), fname, line)
            if problem:
                problems.append(problem)
    if utils_aliases:
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in utils_aliases and node.attr not in HW3_UTILS_NAMES):
                problems.append(UTILS_NAME.format(file=fname, line=node.lineno,
                                                  name=node.attr, names=_allowed_names()))
    return problems


def _dynamic_import_target(call):
    """The module named by ``importlib.import_module('m')`` or ``__import__('m')``."""
    func = call.func
    named = ((isinstance(func, ast.Name) and func.id in ("__import__", "import_module"))
             or (isinstance(func, ast.Attribute) and func.attr == "import_module"))
    if named and call.args and isinstance(call.args[0], ast.Constant) \
            and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def check_sources(paths):
    """Check the files that go into the zip; returns a list of problems (empty: fine).

    Each problem is one line that names the file (and the line for import problems):
    a missing file, a syntax error, or an import the autograder cannot satisfy.
    """
    problems = []
    for path in paths:
        fname = os.path.basename(path)
        if not os.path.isfile(path):
            problems.append(MISSING.format(file=fname,
                                           folder=os.path.dirname(os.path.abspath(path))))
            continue
        with open(path, "rb") as handle:
            source = handle.read()
        try:
            tree = ast.parse(source, filename=fname)
            compile(tree, fname, "exec")
        except (SyntaxError, ValueError) as err:
            problems.append(SYNTAX.format(file=fname, line=getattr(err, "lineno", "?"),
                                          msg=getattr(err, "msg", str(err))))
            continue
        problems.extend(check_tree(tree, fname))
    return problems


def write_zip(paths, out):
    """Write ``paths`` at the top level of the zip ``out`` atomically.

    Returns ``[(name, size, compressed size), ...]`` read back from the written zip.
    """
    out = os.path.abspath(out)
    folder = os.path.dirname(out)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(out)}.{os.getpid()}."
                               f"{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as handle:
            with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in paths:
                    zf.write(path, arcname=os.path.basename(path))
        with zipfile.ZipFile(tmp) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise OSError(f"{out}: entry {bad} failed its CRC check after writing")
            entries = [(i.filename, i.file_size, i.compress_size) for i in zf.infolist()]
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return entries


def course_data(n=12, seed=0):
    """A small course-style data set (the keys of ``imagenet_14c_vgg16.npz``): ``X``
    ``[n, 224, 224, 3]`` RGB 0-255 (seeded smooth noise), ``Y``, ``Pred``, ``Idx``, over the
    homework's camel and weasel and four more classes, the first image of each class
    predicted right and the second wrong, so that every table of the written part has
    rows (``n`` even, at most 12)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (n, 7, 7, 3))
    X = np.repeat(np.repeat(coarse, 32, axis=1), 32, axis=2)        # blobs of 32 x 32
    X = np.clip(X + rng.normal(0, 20, X.shape), 0, 255).astype(np.float32)
    classes = np.array([354, 356, 1, 163, 250, 283])
    Y = np.concatenate([classes, classes])[:n]
    wrong = np.roll(classes, 1)
    Pred = np.concatenate([classes, wrong])[:n]
    return {"X": X, "Y": Y, "Pred": Pred, "Idx": np.arange(1000, 1000 + n)}


def write_course_folder(folder, zip_path=None, data=None):
    """A grader's folder: the zip unpacked (if given) beside the course's helpers
    (``COURSE_FILES``) and, if given, a course-style data file ``imagenet_14c_vgg16.npz``
    (a dict of arrays)."""
    os.makedirs(folder, exist_ok=True)
    if zip_path is not None:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(folder)
    for path in COURSE_FILES:
        shutil.copy(path, os.path.join(folder, os.path.basename(path)))
    if data is not None:
        import numpy as np
        np.savez(os.path.join(folder, COURSE_DATA_FILE), **data)
    return folder


def course_env(divisor=CHECK_VGG16_DIVISOR):
    """The environment of a run in a grader's folder: nothing of the project on the path,
    the stand-in VGG16 narrowed by ``divisor``, TensorFlow's start-up notices off."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["HW3_STANDIN_VGG16_DIVISOR"] = str(divisor)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_check(zip_path, timeout=CHECK_TIMEOUT):
    """Run the zipped ``hw3_vc.py --quick`` as a grader would (module docstring).

    Returns ``(problems, summary)``: a list of problem strings (empty: it ran and wrote
    written exercise 14's figures and the homework's tables) and a one-line summary.
    """
    scratch = tempfile.mkdtemp(prefix="hw3_grader_check_")
    try:
        write_course_folder(scratch, zip_path, course_data())
        start = time.time()
        try:
            proc = subprocess.run([sys.executable, "-s", "hw3_vc.py", "--quick",
                                   "--no-progress", "--out", "figures"], cwd=scratch,
                                  env=course_env(), capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return [RUN_TIMEOUT.format(seconds=timeout)], ""
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            return [RUN_FAILED.format(code=proc.returncode, tail=tail)], ""
        out = os.path.join(scratch, "figures")
        problems = [RUN_MISSING.format(what=what) for what, pattern in (
            ("exercise-14 figure (1_comparison_*.png)", "1_comparison_*.png"),
            ("influence table (2_influence_experts.csv)", "2_influence_experts.csv"),
            ("Average Drop table (3_average_drop.csv)", "3_average_drop.csv"),
            ("Necessity Ordering table (3_necessity_ordering.csv)",
             "3_necessity_ordering.csv")) if not glob.glob(os.path.join(out, pattern))]
        files = len(os.listdir(out)) if os.path.isdir(out) else 0
        return problems, (f"the zipped hw3_vc.py --quick ran beside the course's helpers "
                          f"(small random VGG16) in {time.time() - start:.0f} s and wrote "
                          f"{files} files")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def refuse(problems, out):
    """Say why no zip was written; an existing zip stays as it was. Returns exit status 1."""
    print(f"make_submission: {len(problems)} problem(s); no zip written:", file=sys.stderr)
    for problem in problems:
        print("  " + problem, file=sys.stderr)
    if os.path.exists(out):
        print(f"  (the existing {out} is from an earlier run and was left unchanged)",
              file=sys.stderr)
    return 1


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Build the Gradescope zip with " + ", ".join(SUBMISSION_FILES)
                    + " at its top level, after checking that each file compiles and "
                    "imports only what the autograder provides.")
    parser.add_argument("--out", default="submission.zip",
                        help="the zip to write (default: submission.zip in the current "
                             "folder; Gradescope wants exactly that name)")
    parser.add_argument("--src", default=HERE,
                        help="the folder holding the four files (default: this script's "
                             "folder, %(default)s)")
    parser.add_argument("--no-run", action="store_true",
                        help="only check the imports; do not run the zipped hw3_vc.py "
                             "--quick beside the course's helpers first")
    args = parser.parse_args(argv)

    paths = [os.path.join(args.src, f) for f in SUBMISSION_FILES]
    problems = check_sources(paths)
    summary = ""
    if not problems and not args.no_run:
        with tempfile.TemporaryDirectory(prefix="hw3_zip_") as scratch:
            trial = os.path.join(scratch, "submission.zip")
            write_zip(paths, trial)
            print("running the zipped hw3_vc.py --quick beside the course's helpers "
                  "(a minute or two)...", file=sys.stderr)
            problems, summary = run_check(trial)
    if problems:
        return refuse(problems, args.out)
    try:
        entries = write_zip(paths, args.out)
    except OSError as err:
        print(f"make_submission: could not write {args.out}: {err}; no zip written",
              file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes) with {len(entries)} "
          "entries at its top level:")
    for name, size, packed in entries:
        print(f"  {name:<22} {size:>8} bytes ({packed} compressed)")
    if summary:
        print("checked: " + summary)
    if os.path.basename(args.out) != "submission.zip":
        print("note: Gradescope accepts only the name submission.zip; rename it before "
              "uploading", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
