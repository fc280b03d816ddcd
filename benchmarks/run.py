#!/usr/bin/env python
"""Benchmarks: does the toolkit run at the speed of the model itself?

    .venv/bin/python benchmarks/run.py [--before REV] [--vgg16] [--quick] [--out FILE]

Prints a Markdown table (and writes it atomically to ``--out``) of ratios measured side by
side in one run, each with its goal (issues 7 and 13), and the table of Integrated
Gradients completeness error versus gradient budget per quadrature rule (issue 8).
Progress goes to stderr. Machines are shared and noisy, so every speed figure is a ratio of
two measurements taken next to each other (the raw model is re-measured right after each
method, at the same batch size), repeated over ``rounds`` and reduced by the median.

``--before REV`` also runs every case on the graded modules as they were at git revision
``REV`` (loaded from ``git show`` into a temporary folder, called through their own API),
in the same process and rounds, and ``hw3_vc.py`` of that revision (``git archive``), so
each row shows before and after measured side by side.

The measuring functions take ``(model, sess, X, ...)`` so that the test suite can run the
whole table on a tiny model (``tests/test_benchmarks.py``); nothing here asserts a time.
See benchmarks/README.md for how each figure is measured. This file runs the table; each
figure's measurement lives in its own module: ``bench_common`` (settings, the timed
session, raw rates, models, ``--before``), ``bench_speed``, ``bench_pair``,
``bench_pair_methods``, ``bench_perturbation``, ``bench_occlusion``, ``bench_vc``, ``bench_memory``,
``bench_completeness``.
"""
import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# The figures' modules; their names are this module's too (tests/test_benchmarks.py).
from bench_common import (FULL, GRADED, QUICK, ROOT, Settings, TimedSession,  # noqa: E402,F401
                          before_tree, build_model, fmt, git_commit, load_before,
                          loadavg, log, predicted, raw_rate, raw_rows, raw_throughput)
from bench_completeness import (RULES, completeness, completeness_markdown,  # noqa: E402,F401
                                completeness_rows, completeness_verdict, node_set)
from bench_memory import memory_probe, memory_ratio, memory_rows  # noqa: E402,F401
from bench_pair import no_pair_rows, pair_agreement, pair_rows  # noqa: E402,F401
from bench_pair_methods import pair_methods_rows  # noqa: E402,F401
from bench_perturbation import Budgets, perturbation_rows, run_budgets  # noqa: E402,F401
from bench_speed import (BeforeCases, Cases, homework_loop_row,  # noqa: E402,F401
                         pair_available, speed_cases, speed_rows)
from bench_vc import VC_GOAL, vc_measure, vc_row, vc_rows  # noqa: E402,F401


def benchmark(model, sess, X, s, pair=True, memory_model=None, vc_cmd=None,
              completeness_set=True, notes=None, before=None, before_vc=None,
              perturbation=True, progress=log):
    """Every figure for one model: returns Markdown lines (the section of the table).

    ``memory_model``: the name :func:`build_model` rebuilds in the memory subprocesses
    (None: not measured). ``vc_cmd``: ``(cmd, out_dir)`` for the hw3_vc row, the string
    reason when it is not measured, or None to leave the row out. ``before``: ``(rev,
    modules)`` of an earlier revision to measure beside (``before_vc``: its hw3_vc
    ``(cmd, out_dir, cwd)``). ``perturbation``: the perturbation methods' rows
    (``bench_perturbation``: against the raw forward, and beside lime and shap where they
    are installed).
    """
    rev = before[0] if before else None
    c = predicted(model, sess, X)
    bs = s.batch_size
    progress(f"raw throughput at batch sizes {sorted(set(s.batch_sizes) | {bs})}")
    table = raw_throughput(model, sess, X, s)
    rows = raw_rows(table, bs)
    use_pair = pair and pair_available()
    progress("speed cases (" + ("with" if use_pair else "without") + " PAIR"
             + (f", and revision {rev} beside" if rev else "") + ")")
    res, cases = speed_cases(model, sess, X, c, s, pair=use_pair,
                             before=before[1] if before else None, progress=progress)
    rows += speed_rows(res, cases, s)
    if vc_cmd is not None:
        rows += vc_rows(vc_cmd, before_vc, s, table[bs]["forward"], table[bs]["gradient"],
                        rev, progress)
    if memory_model is not None:
        rows += memory_rows(memory_model, s, rev, progress)
    rows += (pair_rows(model, sess, X, c, res["now"], len(cases.Xs), s, progress)
             if use_pair else no_pair_rows())
    if use_pair:
        k = s.pair_method_images
        rows += pair_methods_rows(model, sess, X[:k], c[:k], s.pair_method_steps, bs,
                                  s.rounds, progress)
    if perturbation:
        k = s.perturbation_images
        rows += perturbation_rows(model, sess, X[:k], c[:k], run_budgets(s), bs, s.rounds,
                                  progress=progress)
    rows.append(homework_loop_row(res["now"]))
    below = []
    if completeness_set:
        row, res_c, n_images = completeness_rows(model, sess, X, c, s, progress)
        rows += row
        below = (["", "#### Completeness error versus budget (issue 8)", ""]
                 + completeness_markdown(res_c, s.budgets, n_images))
    return markdown_table(rows, rev) + below + ([""] + list(notes) if notes else [])


def markdown_table(rows, rev=None):
    """The table's Markdown lines: a header (naming the earlier revision) and the rows."""
    head = f"| figure | before ({rev}) | after | goal | status | notes |" if rev else \
        "| figure | before | after | goal | status | notes |"
    return [head, "| --- | --- | --- | --- | --- | --- |"] + [
        "| " + " | ".join(str(x).replace("|", "/").replace("\n", " ") for x in row) + " |"
        for row in rows]


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    from hw3_evaluation import write_text
    write_text(path, text)


def header(args, s):
    import tensorflow as tf
    commit, load = git_commit(), loadavg()
    return [
        "# Benchmarks",
        "",
        f"`{' '.join(['benchmarks/run.py'] + sys.argv[1:])}` on {platform.node()} "
        f"({os.cpu_count()} CPUs, {platform.processor() or platform.machine()}), "
        f"TensorFlow {tf.__version__}, Python {platform.python_version()}, commit {commit}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, load average at start "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.",
        "",
        "Every speed figure is a ratio to the bare model measured right after it at the "
        f"same batch size ({s.batch_size}, the toolkit's default) over as many rows (up to "
        f"1024), repeated {s.rounds}x "
        "(median; the per-round values are in the notes). With `--before REV` the earlier "
        "revision's graded modules run the same cases in the same rounds, each right after "
        "its current twin. Sessions use `hw3_attribution.new_session()`'s thread settings. "
        "See `benchmarks/README.md` for how each figure is measured.",
        "",
    ]




def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Figures, goals and methods: benchmarks/README.md")
    p.add_argument("--before", metavar="REV",
                   help="also measure the graded modules and hw3_vc.py of git revision REV "
                        "side by side (e.g. the commit before a change)")
    p.add_argument("--vgg16", action="store_true",
                   help="also benchmark VGG16 with random (He-initialised) weights")
    p.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run")
    p.add_argument("--out", default=os.path.join("benchmarks", "results.md"),
                   help="Markdown file written atomically (default: benchmarks/results.md)")
    p.add_argument("--no-pair", action="store_true", help="skip the PAIR comparison")
    p.add_argument("--no-vc", action="store_true", help="skip the hw3_vc.py row")
    p.add_argument("--vc-quick", action="store_true",
                   help="measure hw3_vc.py --quick instead of the full run")
    p.add_argument("--no-perturbation", action="store_true",
                   help="skip the perturbation methods' rows (bench_perturbation.py)")
    p.add_argument("--no-occlusion", action="store_true",
                   help="skip incremental occlusion's rows and VGG16's per-layer table "
                        "(bench_occlusion.py; the table needs --vgg16)")
    p.add_argument("--no-completeness", action="store_true",
                   help="skip the completeness table (issue 8)")
    p.add_argument("--completeness-images", type=int, default=None,
                   help="limit the completeness table to the first N sample images "
                        "(default: all of them; --quick: 2)")
    p.add_argument("--rounds", type=int, default=None, help="repeats of each speed case")
    p.add_argument("--_memory-probe", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    return p.parse_args(argv)




def vc_commands(args, cleanup):
    """``(vc_cmd, before_vc)`` of the hw3_vc rows: this tree's and the earlier revision's
    runs (None when not measured); their output folders are added to ``cleanup``."""
    if args.no_vc:
        return None, None
    quick = ["--quick"] if (args.vc_quick or args.quick) else []
    out_dir = tempfile.mkdtemp(prefix="bench_vc_")
    cleanup.append(out_dir)
    vc = ([sys.executable, os.path.join(ROOT, "hw3_vc.py")] + quick
          + ["--no-progress", "--out", out_dir, "--model", "efficientnet_lite0",
             "--data", "bundled"], out_dir)
    if not args.before:
        return vc, None
    tree = before_tree(args.before)
    old_out = tempfile.mkdtemp(prefix="bench_vc_before_")
    cleanup += [tree, old_out]
    return vc, ([sys.executable, os.path.join(tree, "hw3_vc.py")] + quick
                + ["--no-progress", "--out", old_out, "--model", "efficientnet_lite0"],
                old_out, tree)


def model_section(name, args, s, before, cleanup):
    """The Markdown lines of one model's section."""
    from hw3_attribution import new_session
    import tensorflow as tf
    log(f"=== {name} ===")
    sess = new_session(tf.Graph())
    with sess.graph.as_default():
        model, X = build_model(name, sess)
        vc, before_vc = (vc_commands(args, cleanup) if name == "efficientnet_lite0"
                         else (None, None))
        title = ("EfficientNet-Lite0 (the default model, bundled weights)"
                 if name == "efficientnet_lite0" else
                 "VGG16 with random He-initialised weights")
        notes = None
        if name == "vgg16_random":
            notes = ["Completeness is not measured on VGG16 with random weights "
                     "(its scores mean nothing); hw3_vc.py runs on the default model."]
        section = benchmark(model, sess, X, s, pair=not args.no_pair, memory_model=name,
                            vc_cmd=vc, completeness_set=(name == "efficientnet_lite0"
                                                         and not args.no_completeness),
                            notes=notes, before=before, before_vc=before_vc,
                            perturbation=not args.no_perturbation)
    sess.close()
    return [f"## {title}", ""] + section + [""]


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    if args._memory_probe:
        name, steps, bs = args._memory_probe[:3]
        rev = args._memory_probe[3] if len(args._memory_probe) > 3 else None
        print(json.dumps(memory_probe(name, int(steps), int(bs), rev)))
        return 0
    s = QUICK if args.quick else FULL
    if args.completeness_images is not None:
        s = replace(s, completeness_images=args.completeness_images)
    if args.rounds:
        s = replace(s, rounds=args.rounds)
    before = (args.before, load_before(args.before)) if args.before else None
    lines = header(args, s)
    t_start, cleanup = time.time(), []
    for name in ["efficientnet_lite0"] + (["vgg16_random"] if args.vgg16 else []):
        lines += model_section(name, args, s, before, cleanup)
    if not args.no_occlusion:
        from bench_occlusion import occlusion_section
        log("=== occlusion (issue 24) ===")
        models = ["efficientnet_lite0", "resnet18"] + (["vgg16_random"] if args.vgg16 else [])
        lines += ["## " + occlusion_section(models, rounds=s.rounds).lstrip("# "), ""]
    for folder in cleanup:
        shutil.rmtree(folder, ignore_errors=True)
    lines.append(f"Total benchmark time: {(time.time() - t_start) / 60:.1f} min.")
    text = "\n".join(lines) + "\n"
    print(text)
    write_atomic(args.out, text)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
