#!/usr/bin/env python
"""The PAIR methods figure (issue 19): XRAI and Blur IG beside PAIR saliency 0.2.1's on
the same graph, images and settings, in one run: PAIR's seconds per image ÷ ours, and
the largest difference between the two maps.

    .venv/bin/python benchmarks/bench_pair_methods.py [--quick] [--images N] [--rounds R]
                                                      [--out FILE]

Same settings: PAIR's defaults (XRAI: 100 IG steps per baseline, baselines black (0) and
white (255), Felzenszwalb segments, 'full' ranking; Blur IG: max_sigma 50, 100 steps,
grad_step 0.01), the predicted class, and PAIR's own IG rule for ours (XRAI's
``method='pair'``: nodes ``linspace(0, 1, S)``, equal weights) so that the maps are the
same maps. PAIR's Blur IG is given the images as float64, so that its scipy blurs and
their finite differences (``grad_step`` 0.01 px) are exact to float64, as ours are
(:func:`hw3_attribution.blur_difference`); the notes also give how far PAIR given float32
images is from PAIR given float64 ones (the blurs' float32 rounding, over 0.01). One
untimed warm-up call of each comes first (TensorFlow prepares a graph's kernels on its
first run). PAIR runs at its default ``batch_size=1``, one image per call; ours at the
toolkit's default ``batch_size=16``, all images in one call (seconds per image = the
call's time / N). Each round times PAIR then ours; the ratio is the median over rounds.
The maps are equal when their relative L2 difference ``||ours - PAIR|| / ||PAIR||`` is at
most 1e-4 (the criterion of the IG and SmoothGrad rows, ``bench_pair``); the notes also
give the largest ``|ours - PAIR|`` over all pixels, relative to the largest ``|PAIR|``. PAIR's Guided IG cannot run beside numpy 2 (it calls
``np.quantile(interpolation=)``), so Guided IG is checked against PAIR's tests only
(tests/test_pair_methods.py).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from bench_common import fmt, log, raw_rate, table_row  # noqa: E402
from bench_pair import rel_l2  # noqa: E402

GOAL = 2.0            # PAIR's seconds per image / ours
EQUAL = 1e-4          # the largest map difference, relative, that counts as equal maps


def pair_instances(model, sess):
    """PAIR's XRAI and BlurIG on the model's graph, explaining ``logits[:, class]`` with the
    class fed through ``feed_dict``: ``(xrai, blur_ig, class placeholder)``."""
    import tensorflow as tf
    import saliency.tf1 as saliency
    with sess.graph.as_default():
        cls = tf.compat.v1.placeholder(tf.int32, [], name="bench_pair_methods_class")
        y = tf.gather(model.logits, cls, axis=1)
        return (saliency.XRAI(sess.graph, sess, y, model.imgs),
                saliency.BlurIG(sess.graph, sess, y, model.imgs), cls)


def pair_maps(name, pair, cls, X, c, steps, dtype=np.float64):
    """PAIR's maps of the images, one ``GetMask`` per image at its defaults (Blur IG given
    the images as ``dtype``)."""
    from saliency.tf1 import xrai as pair_xrai
    out = []
    for x, k in zip(X, c):
        if name == "XRAI":
            params = pair_xrai.XRAIParameters(steps=steps)
            out.append(pair.GetMask(x, feed_dict={cls: int(k)},
                                    baselines=[np.zeros_like(x), np.full_like(x, 255.0)],
                                    extra_parameters=params))
        else:   # float64, so that scipy's blurs (and their differences) are float64
            out.append(pair.GetMask(x.astype(dtype), feed_dict={cls: int(k)},
                                    max_sigma=50, steps=steps))
    return np.stack(out)


def our_maps(name, method, X, c, steps, batch_size):
    """Ours on all the images in one call, with PAIR's settings."""
    if name == "XRAI":
        return method(X, ("black", "white"), steps, method="pair", batch_size=batch_size,
                      target_class=c)
    return method(X, max_sigma=50, num_steps=steps, batch_size=batch_size, target_class=c)


def measure(model, sess, X, c, steps, batch_size, rounds, progress=log):
    """``{name: {"pair": [s/image per round], "ours": [...], "diff": relative, "abs": ...}}``
    for XRAI and Blur IG."""
    from attrkit.methods.pair import XRAI, BlurIG
    pair_xrai, pair_blur, cls = pair_instances(model, sess)
    with sess.graph.as_default():
        ours = {"XRAI": XRAI(sess, model.imgs, model.logits, None, progress=False),
                "Blur IG": BlurIG(sess, model.imgs, model.logits, None, progress=False)}
    pair = {"XRAI": pair_xrai, "Blur IG": pair_blur}
    res = {}
    for name in ("XRAI", "Blur IG"):
        progress(f"{name}: warm-up (one image, 2 steps each, untimed)")
        pair_maps(name, pair[name], cls, X[:1], c[:1], 2)
        our_maps(name, ours[name], X[:1], c[:1], 2, batch_size)
        r = res[name] = {"pair": [], "ours": [], "raw": []}
        for k in range(rounds):
            progress(f"{name}: round {k + 1} of {rounds}, PAIR then ours ({len(X)} images)")
            t = time.perf_counter()
            theirs = pair_maps(name, pair[name], cls, X, c, steps)
            r["pair"].append((time.perf_counter() - t) / len(X))
            t = time.perf_counter()
            mine = our_maps(name, ours[name], X, c, steps, batch_size)
            r["ours"].append((time.perf_counter() - t) / len(X))
            r["raw"].append(raw_rate(model, sess, X, "gradient", batch_size, 4 * batch_size)
                            / raw_rate(model, sess, X, "gradient", 1, 4 * batch_size))
        theirs, mine = theirs.astype(np.float64), np.asarray(mine, np.float64)
        r["abs"] = float(np.abs(mine - theirs).max())
        r["diff"] = r["abs"] / max(float(np.abs(theirs).max()), 1e-300)
        r["l2"] = rel_l2(mine, theirs)
        if name == "Blur IG":    # PAIR on float32 images, beside PAIR on float64 ones
            f32 = pair_maps(name, pair[name], cls, X, c, steps, np.float32)
            r["pair32"] = (float(np.abs(f32 - theirs).max()) / float(np.abs(theirs).max()),
                           rel_l2(f32, theirs))
    return res


def pair_methods_rows(model, sess, X, c, steps, batch_size, rounds, progress=log):
    """The figure's table rows (``bench_common.table_row``)."""
    res = measure(model, sess, X, c, steps, batch_size, rounds, progress)
    rows = []
    for name, r in res.items():
        ratios = [p / o for p, o in zip(r["pair"], r["ours"])]
        speed = float(np.median(ratios))
        ok = speed >= GOAL and r["l2"] <= EQUAL
        note = (f"{len(X)} images, {steps} steps, PAIR batch_size 1 (its default), ours "
                f"{batch_size}; s/image PAIR {', '.join(fmt(v) for v in r['pair'])}, ours "
                f"{', '.join(fmt(v) for v in r['ours'])}; per round {', '.join(fmt(v) for v in ratios)}x; "
                f"maps: relative L2 difference {r['l2']:.1e}, largest difference "
                f"{r['diff']:.1e} of the largest |PAIR| value ({r['abs']:.2e} absolute)")
        note += ("; the bare model's forward+backward rows/s at batch_size "
                 f"{batch_size} ÷ at 1, measured after each round: "
                 f"{', '.join(fmt(v) for v in r['raw'])} (the most batching can gain on "
                 "the gradients, which are most of XRAI's time and part of Blur IG's)")
        if "pair32" in r:
            note += (f"; PAIR given float32 images vs PAIR given float64 ones: relative L2 "
                     f"{r['pair32'][1]:.1e}, largest {r['pair32'][0]:.1e}")
        rows.append(table_row(f"{name} vs PAIR {name.replace(' ', '')} (seconds per image, "
                              "PAIR ÷ ours)", f"{fmt(speed)}x faster",
                              f"≥ {GOAL:g}x at equal maps (relative L2 ≤ {EQUAL:g})",
                              "met" if ok else "**not met**", note))
    return rows


def machine():
    """Where and when: the command, host, CPUs, TensorFlow, commit, load average."""
    import platform
    import tensorflow as tf
    from bench_common import git_commit, loadavg
    load = loadavg()
    return (f"`{' '.join(['benchmarks/bench_pair_methods.py'] + sys.argv[1:])}` on "
            f"{platform.node()} ({os.cpu_count()} CPUs), TensorFlow {tf.__version__}, "
            f"commit {git_commit()}, {time.strftime('%Y-%m-%d %H:%M')}, load average at "
            f"start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="8 steps, 1 image, 1 round")
    p.add_argument("--images", type=int, default=3, help="sample images (default 3)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--steps", type=int, default=100, help="steps (PAIR's default 100)")
    p.add_argument("--out", default=None, help="also write the Markdown table here")
    args = p.parse_args(argv)
    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    from bench_common import build_model, loadavg, predicted
    from hw3_attribution import DEFAULT_BATCH_SIZE, new_session
    from run import markdown_table, write_atomic
    images, rounds, steps = ((1, 1, 8) if args.quick else
                             (args.images, args.rounds, args.steps))
    start = machine()
    sess = new_session(tf.Graph())
    with sess.graph.as_default():
        model, X = build_model("efficientnet_lite0", sess)
        X = X[:images]
        c = predicted(model, sess, X)
        rows = pair_methods_rows(model, sess, X, c, steps, DEFAULT_BATCH_SIZE, rounds)
    lines = ["# PAIR methods: XRAI and Blur IG beside PAIR saliency 0.2.1", "", start,
             f"Load average at the end {loadavg()[0]:.2f}.", ""] + markdown_table(rows)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_atomic(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
