#!/usr/bin/env python
"""Necessity Ordering before and after the step weighting (issue 11), on the main job's set.

    .venv/bin/python benchmarks/nord_weighting.py [--reference-M 10] [--out FILE]

The images, methods and maps of ``hw3_vc.py``'s metrics part (5 correctly and 5 incorrectly
predicted sample photos; Saliency, Integrated Gradients with 50 steps, the influence
expert of the default layer). For each map it prints N_Ord with M = 1000 as the toolkit
computed it before the change (``1/(N+1) Σ_k max(f_c(R(r_k)) − f_c(0), 0)``, N the number
of steps) and after it (step k weighted by the ``r_k − r_{k−1}`` pixels it removes, divided
by P + 1, as DESIGN.md defines), both from the same curves, next to a fine reference
(``--reference-M``, default 10 pixels per step) that approximates the pixel-by-pixel
definition (M = 1).
"""
import argparse
import os
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def unweighted(details):
    """The formula before the change, from the same curves: ``1/(N+1) Σ_k max(., 0)``."""
    return np.array([np.maximum(cv - f0, 0).sum() / (len(cv) + 1)
                     for cv, f0 in zip(details["curves"], details["blank_scores"])])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference-M", type=int, default=10,
                   help="pixels per step of the fine reference (1: the definition itself)")
    p.add_argument("--M", type=int, default=1000, help="the homework's M (default 1000)")
    p.add_argument("--out", default=os.path.join(HERE, "nord_weighting.md"),
                   help="also write the Markdown table here (default: "
                        "benchmarks/nord_weighting.md)")
    args = p.parse_args(argv)
    from hw3_evaluation import write_text
    text = table(args, measure(args))
    print(text)
    if args.out:
        write_text(args.out, "# Necessity Ordering before and after the step weighting\n\n"
                   + text)
    return 0


def main_job_maps(sess, model):
    """The main job's comparison images and their three maps (Saliency, IG, the influence
    expert): ``(images, targets, ImageNet indices, {method: maps})``."""
    from hw3_attribution import IntegratedGrad, SaliencyMap
    from hw3_infl import InflDirected, qoi_predicted
    from hw3_utils import load_ImageNet
    from hw3_vc import FULL, select_images
    X, y, pred, idx = load_ImageNet("bundled", model=model, sess=sess)
    sel = select_images(y, pred, FULL.n_right, FULL.n_wrong)
    Xs, c = X[sel].astype(np.float32), pred[sel].astype(np.int32)
    x, out = model.imgs, model.logits
    infl = InflDirected(sess, x, model.layers[model.default_layers["influence"]], out,
                        qoi_predicted())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        part = infl.influence_partial(X)
        unit = infl.expert_from_partial(part)
        if infl.last_info["expert_inactive"]:
            unit = infl.expert_from_partial(part, active_only=True)
    maps = {"Saliency": SaliencyMap(sess, x, out, c)(Xs),
            "Integrated Gradients": IntegratedGrad(sess, x, out, c)(
                Xs, "black", num_steps=FULL.ig_main_steps),
            f"Influence (unit {unit})": infl.expert_attribution(unit, Xs)}
    return Xs, c, idx[sel], maps


def measure(args):
    """``[(method, image, P, before, after, reference)]`` over the main job's maps."""
    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    from hw3_attribution import new_session
    from hw3_evaluation import N_Ord
    from hw3_utils import get_model
    sess = new_session(tf.Graph())
    rows = []
    with sess.graph.as_default():
        model = get_model(sess, "efficientnet_lite0")
        Xs, c, idx, maps = main_job_maps(sess, model)
        x, out = model.imgs, model.logits
        for name, A in maps.items():
            for j in range(len(Xs)):
                if not A[j].any():   # e.g. an expert inactive on this image: undefined
                    rows.append((name, int(idx[j]), 0, np.nan, np.nan, np.nan))
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    d = N_Ord(sess, A[j], Xs[j], x, out, c[j], args.M, return_details=True,
                              progress=False)
                    ref = N_Ord(sess, A[j], Xs[j], x, out, c[j], args.reference_M,
                                progress=False)
                rows.append((name, int(idx[j]), int(d["positives"][0]), unweighted(d)[0],
                             d["scores"][0], ref))
                print(rows[-1], file=sys.stderr, flush=True)
    return rows


def table(args, rows):
    """The Markdown table of ``rows`` and the mean relative distances to the reference."""
    lines = [f"| method | image | P | before (M={args.M}, unweighted) | after (M={args.M}, "
             f"weighted) | reference (M={args.reference_M}) |",
             "| --- | --- | --- | --- | --- | --- |"]
    f = lambda v: "undefined" if not np.isfinite(v) else f"{v:.4g}"  # noqa: E731
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]} | {r[2]} | {f(r[3])} | {f(r[4])} | {f(r[5])} |")
    arr = np.array([r[3:] for r in rows], np.float64)
    ok = np.isfinite(arr).all(axis=1)
    err = np.abs(arr[ok, :2] - arr[ok, 2:3]) / np.abs(arr[ok, 2:3])
    lines += ["", f"Mean relative distance to the reference over {ok.sum()} maps: before "
              f"{100 * err[:, 0].mean():.1f}%, after {100 * err[:, 1].mean():.1f}% "
              f"(worst {100 * err[:, 0].max():.1f}% and {100 * err[:, 1].max():.1f}%)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
