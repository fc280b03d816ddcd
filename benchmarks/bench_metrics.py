#!/usr/bin/env python
"""The model-based metrics' rate (issue 27): Pixel Flipping, Region Perturbation,
Faithfulness Correlation and Monotonicity Correlation, each one call on the images, its
model rows per second (counted by the session proxy: the rows the graph builds, plus the
forward of the images themselves) ÷ the bare model's forward rate at the same batch size,
measured just before and just after the call over as many rows (their mean); the median
over rounds. Goal ≥ 0.95.

    .venv/bin/python benchmarks/bench_metrics.py [--model efficientnet_lite0] [--images 2]
                                                 [--rounds 3] [--out FILE]

Also the randomisation test's overhead: ``ModelParameterRandomisation`` with the vanilla
gradient by layer block on the images, its seconds per step ÷ the seconds of one call of the
method itself (the same images, the trained weights), goal ≤ 1.1 (issue 27: no re-import, no
rebuilt ops; a step is an assign of the block's weights and one explanation).

The budgets are set so that each call evaluates a few hundred rows per image (Pixel
Flipping in steps of 224·3 values, Region Perturbation 100 regions of 8 x 8, Faithfulness
Correlation 100 runs, Monotonicity Correlation 4 samples in steps of 224·3·8 values); the
map is a seeded random one (the rate does not depend on it).
"""
import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from bench_common import TimedSession, emit, fmt, graph_model, log, raw_rate  # noqa: E402

GOAL = 0.95
BATCH = 16


def budgets(h, w, c):
    """Each metric and its keywords, a few hundred rows per image at 224 x 224."""
    return {"PixelFlipping": dict(features_in_step=w * c),
            "RegionPerturbation": dict(patch_size=8, regions_evaluation=100),
            "FaithfulnessCorrelation": dict(nr_runs=100, subset_size=224, seed=0),
            "MonotonicityCorrelation": dict(nr_samples=4, features_in_step=w * c * 8,
                                            seed=0)}


def measure(model, sess, X, rounds):
    """``{name: [ratio per round]}`` and the rows per call."""
    from attrkit.metrics import faithfulness
    tsess = TimedSession(sess, model.imgs)
    A = np.random.default_rng(0).normal(size=X.shape[:3])
    plan = budgets(*X.shape[1:])
    ratios, rows = {name: [] for name in plan}, {}

    def call(name, images, maps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return getattr(faithfulness, name)(tsess, maps, images, model.imgs, model.logits,
                                               None, batch_size=BATCH, progress=False,
                                               **plan[name])

    with sess.graph.as_default():
        for name in plan:                          # warm up: the first run allocates
            call(name, X[:1], A[:1])
        for r in range(rounds):
            for name in plan:
                tsess.reset()
                span = rows.get(name, 256)
                before = raw_rate(model, sess, X, "forward", BATCH, span)
                t0 = time.perf_counter()
                call(name, X, A)
                rate = tsess.rows / (time.perf_counter() - t0)
                after = raw_rate(model, sess, X, "forward", BATCH, span)
                rows[name] = tsess.rows
                ratios[name].append(rate / ((before + after) / 2))
                log(f"round {r}: {name}: {tsess.rows} rows, {rate:.1f} rows/s, "
                    f"ratio {ratios[name][-1]:.3f}")
    return ratios, rows


def randomisation_overhead(model, sess, X, rounds):
    """``(seconds per step ÷ seconds per explanation, steps)``, the median over rounds."""
    from attrkit.metrics.randomisation import ModelParameterRandomisation, block_of
    from hw3_attribution import VanillaGradient
    with sess.graph.as_default():
        method = VanillaGradient(sess, model.imgs, model.logits, None, progress=False)
        t = sess.run(model.logits, {model.imgs: X}).argmax(1)
        method(X, target_class=t)                                  # warm up
        ratios = []
        for r in range(rounds):
            t0 = time.perf_counter()
            method(X, target_class=t)
            one = time.perf_counter() - t0
            t0 = time.perf_counter()
            scores = ModelParameterRandomisation(sess, model, method, X, t, blocks=block_of,
                                                 progress=False)
            steps = len(scores) + 1          # the two explanations of 'original', the rest
            ratios.append((time.perf_counter() - t0) / steps / one)
            log(f"round {r}: randomisation {ratios[-1]:.3f} x one explanation per step")
    return float(np.median(ratios)), len(scores) - 1


def report(model_name, X, ratios, rows, randomisation=None):
    lines = [f"# Model-based metrics: masked rows/s ÷ raw forward (batch {BATCH})", "",
             f"Model {model_name}, {len(X)} images {list(X.shape[1:])}; median over "
             f"{len(next(iter(ratios.values())))} rounds; goal ≥ {GOAL}.", "",
             "| metric | rows per call | ratio (median) | rounds | goal |",
             "| --- | --- | --- | --- | --- |"]
    for name, rs in ratios.items():
        med = float(np.median(rs))
        lines.append(f"| {name} | {rows[name]} | {fmt(med)} | "
                     f"{', '.join(fmt(v) for v in rs)} | "
                     f"{'met' if med >= GOAL else 'not met'} |")
    if randomisation is not None:
        ratio, steps = randomisation
        lines += ["", "| randomisation (vanilla gradient, by layer block) | steps | seconds "
                  "per step ÷ one explanation | goal |", "| --- | --- | --- | --- |",
                  f"| ModelParameterRandomisation | {steps} | {fmt(ratio)} | "
                  f"{'met' if ratio <= 1.1 else 'not met'} (≤ 1.1) |"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="efficientnet_lite0",
                   help="efficientnet_lite0 (default), vgg16_random or tiny")
    p.add_argument("--images", type=int, default=2, help="images per call (default 2)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--out", help="also write the table (Markdown) to this file")
    args = p.parse_args(argv)
    sess, model, X = graph_model(args.model, args.images)
    ratios, rows = measure(model, sess, X, args.rounds)
    randomisation = (randomisation_overhead(model, sess, X, args.rounds)
                     if hasattr(model, "variables") else None)
    emit(report(args.model, X, ratios, rows, randomisation), args.out)


if __name__ == "__main__":
    main()
