#!/usr/bin/env python
"""How fast does explain_dataset.py run on Ray, next to a plain loop in one process?

    .venv/bin/python benchmarks/ray_bench.py                 # default settings, 16 images
    .venv/bin/python benchmarks/ray_bench.py --quick         # small budgets, about 3 minutes

Measured side by side in one run, on the same bundled images, shards and settings, each
configuration in its own fresh process, one after the other (``--repeats`` times, the order
reversed on every other repeat; medians reported):

1. the single-process loop: ``explain_dataset.Explainer`` (the API calls, one TF graph
   and session, all cores) over the shards in one process, no Ray; before its shards the
   same process times the model's raw forward and forward+backward rates at batch 16
   (best of ``--rounds`` timings of ``--raw-runs`` sess.run each);
2. ``explain_dataset.py --workers 1`` (a local Ray cluster, one actor);
3. ``explain_dataset.py --workers 2`` (two actors, one TF thread each).

Figures: throughput (images per second of wall time, process start to exit: imports, the
model, Ray's start-up, the actors' graphs, the tables) of 1 actor ÷ the loop (goal >= 0.9),
of 2 actors ÷ 1 actor (reported), the same ratios on the engine's time alone (the loop's
shards; Ray from ``ray.init`` to the last shard written), and the forwards and gradients
per image that the settings cost (counted by the actors' session proxy), with the
ImageNet-val (50,000 images) cost they imply: wall time at the raw CPU rates measured here
and at an ASSUMED GPU rate (``--gpu-forward``, ``--gpu-backward``), for 1 to 64 GPUs.
Writes ``--out`` (default ``benchmarks/ray_results.md``, atomically).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from attrkit.dataset import engine as de  # noqa: E402
from attrkit.dataset import plan as dp  # noqa: E402
import explain_dataset as ed  # noqa: E402
from bench_common import loadavg  # noqa: E402

IMAGENET_VAL = 50_000
QUICK_FLAGS = ["--ig-steps", "8", "--sg-samples", "4", "--occlusion-size", "28", "--nord-m",
               "5000", "--curve-superpixel", "28", "--curve-step", "4"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--images", type=int, default=16, help="bundled images explained")
    p.add_argument("--shard-size", type=int, default=4)
    p.add_argument("--quick", action="store_true",
                   help="small budgets (IG 8 steps, SmoothGrad 4 samples, 28-px superpixels)")
    p.add_argument("--repeats", type=int, default=1,
                   help="times the three configurations are run (medians reported)")
    p.add_argument("--rounds", type=int, default=3, help="raw-rate timings (best kept)")
    p.add_argument("--raw-runs", type=int, default=10, help="sess.run per raw-rate timing")
    p.add_argument("--gpu-forward", type=float, default=5000.0,
                   help="ASSUMED forward images/s of one GPU (not measured here)")
    p.add_argument("--gpu-backward", type=float, default=1700.0,
                   help="ASSUMED forward+backward images/s of one GPU (not measured here)")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "ray_results.md"))
    p.add_argument("--_loop", dest="loop", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("flags", nargs="*", help="more explain_dataset.py flags (after --)")
    return p.parse_args(argv)


def explain_flags(args):
    """The explain_dataset.py flags every configuration shares."""
    return (["bundled", "--limit", str(args.images), "--shard-size", str(args.shard_size),
             "--no-progress"] + (QUICK_FLAGS if args.quick else []) + list(args.flags))


# ------------------------------------------------------------------ the plain loop

def loop_main(args):
    """In this process, no Ray: the Explainer over the same shards; prints JSON."""
    t0 = time.time()
    ea = ed.build_parser().parse_args(explain_flags(args))
    # the driver's own steps: one model, all cores (new_session's default)
    job = ed.Job(ea)
    job.read_files()
    job.probe_model()
    explainer, settings, inputs = job.probe, job.settings, job.inputs
    explainer.configure(settings)
    shards = dp.plan_shards(inputs.items, settings, ea.shard_size)
    t_raw = time.time()
    raw = raw_rates(explainer, np.stack(list(inputs.pixels.values())[:16]), args.rounds,
                    args.raw_runs)
    raw_seconds = time.time() - t_raw
    t1 = time.time()
    counts, seconds = {}, []
    for sh in shards:
        px = {it["index"]: inputs.pixels[it["index"]] for it in sh["items"]}
        arrays, _ = explainer.explain({"name": sh["name"], "items": sh["items"]}, px)
        meta = json.loads(str(arrays["meta"]))
        seconds.append(meta["seconds"])
        for k, (f, g) in meta["counts"].items():
            c = counts.setdefault(k, [0, 0])
            c[0] += f
            c[1] += g
    t2 = time.time()
    print(json.dumps({"images": len(inputs.items), "shards": len(shards), "raw": raw,
                      "setup_seconds": t1 - t0 - raw_seconds, "raw_seconds": raw_seconds,
                      "compute_seconds": t2 - t1,
                      "shard_seconds": sum(seconds), "counts": counts}))


def load():
    return round(loadavg()[0], 1)


def run_loop(args):
    l0, t0 = load(), time.time()
    argv = [sys.executable, os.path.abspath(__file__), "--_loop", "--images",
            str(args.images), "--shard-size", str(args.shard_size)]
    argv += ["--quick"] if args.quick else []
    argv += ["--"] + list(args.flags) if args.flags else []
    r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    wall = time.time() - t0
    if r.returncode:
        raise RuntimeError(f"the loop failed:\n{r.stderr[-3000:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["wall_seconds"] = wall - res["raw_seconds"]   # the raw-rate timing is no part of it
    res["load"] = (l0, load())
    return res


def run_ray(args, workers):
    with tempfile.TemporaryDirectory(prefix="ray_bench_") as out:
        l0, t0 = load(), time.time()
        r = subprocess.run([sys.executable, os.path.join(ROOT, "explain_dataset.py"),
                            *explain_flags(args), "--out", out, "--workers", str(workers)],
                           cwd=ROOT, capture_output=True, text=True)
        wall = time.time() - t0
        if r.returncode:
            raise RuntimeError(f"explain_dataset --workers {workers} failed:\n"
                               f"{r.stderr[-3000:]}")
        stats = json.load(open(os.path.join(out, "run.json")))["stats"]
        counts = {}
        for f in os.listdir(os.path.join(out, "shards")):
            with np.load(os.path.join(out, "shards", f)) as z:
                meta = json.loads(str(z["meta"]))
            for k, (fw, g) in meta["counts"].items():
                c = counts.setdefault(k, [0, 0])
                c[0] += fw
                c[1] += g
        line = [ln for ln in r.stderr.splitlines() if "explain_dataset: ray:" in ln]
    return {"images": stats["images"], "wall_seconds": wall,
            "engine_seconds": stats["engine_seconds"], "shard_seconds": stats["shard_seconds"],
            "counts": counts, "layout": line[0].split("ray: ", 1)[1] if line else "",
            "load": (l0, load())}


# ------------------------------------------------------------------------ raw rates

def raw_rates(explainer, images, rounds, runs, batch=16):
    """Forward and forward+backward images/s of the explainer's model and session (in the
    loop's process, right before its shards), best of ``rounds``."""
    import tensorflow as tf
    sess, m = explainer.raw_sess, explainer.model
    with sess.graph.as_default():
        score = tf.reduce_sum(tf.reduce_max(m.logits, axis=1))
        grad = tf.gradients(score, m.imgs)[0]
    X = np.resize(images, (batch,) + images.shape[1:]).astype(np.float32)
    rates = {}
    for name, fetch in (("forward", m.logits), ("backward", grad)):
        sess.run(fetch, {m.imgs: X})
        best = np.inf
        for _ in range(rounds):
            t = time.perf_counter()
            for _ in range(runs):
                sess.run(fetch, {m.imgs: X})
            best = min(best, time.perf_counter() - t)
        rates[name] = batch * runs / best
    return rates


# --------------------------------------------------------------------- the estimate

def per_image(counts, images):
    """Forwards and gradients per image, overall and per method (metrics included)."""
    total_f = sum(v[0] for v in counts.values())
    total_g = sum(v[1] for v in counts.values())
    by_method = {}
    for k, (f, g) in counts.items():
        m = k.split(":")[0]
        b = by_method.setdefault(m, [0.0, 0.0])
        b[0] += f / images
        b[1] += g / images
    return total_f / images, total_g / images, by_method


def estimate(forwards, gradients, rate_f, rate_g, n_images=IMAGENET_VAL, devices=1,
             efficiency=1.0):
    """Seconds for ``n_images`` on ``devices`` at the raw rates, divided by ``efficiency``
    (the share of the raw rate the toolkit reaches, 1 = none lost)."""
    return n_images * (forwards / rate_f + gradients / rate_g) / devices / efficiency


def hours(s):
    return f"{s / 3600:.3g} h" if s >= 3600 else f"{s / 60:.3g} min"


def report(args, runs):
    """The Markdown report of ``runs``: a list of ``{"loop", "one", "two"}`` dicts."""
    rows, med1, med2 = throughput_rows(runs)
    lines = report_head(args, runs, med1, med2) + rows + report_costs(args, runs)
    text = "\n".join(lines)
    de.write_text(args.out, text)
    return text


def throughput_rows(runs):
    """The table's rows (three configurations per repeat) and the medians of 1 actor /
    loop and 2 actors / 1 actor."""
    rows, r1, r2 = [], [], []
    for k, run in enumerate(runs, 1):
        loop, one, two = run["loop"], run["one"], run["two"]
        thr = {c: run[c]["images"] / run[c]["wall_seconds"] for c in run}
        r1.append(thr["one"] / thr["loop"])
        r2.append(thr["two"] / thr["one"])
        e1 = loop["compute_seconds"] / one["engine_seconds"]
        e2 = one["engine_seconds"] / two["engine_seconds"]
        rows += [
            f"| {k} | single-process loop (Explainer, no Ray, all cores) | "
            f"{loop['wall_seconds']:.1f} | {thr['loop']:.4f} | 1 | "
            f"{loop['compute_seconds']:.1f} | 1 | {loop['shard_seconds']:.1f} | "
            f"{loop['load'][0]} → {loop['load'][1]} |",
            f"| {k} | Ray, 1 actor ({one['layout']}) | {one['wall_seconds']:.1f} | "
            f"{thr['one']:.4f} | **{r1[-1]:.3f}** vs loop | {one['engine_seconds']:.1f} | "
            f"{e1:.3f} | {one['shard_seconds']:.1f} | {one['load'][0]} → "
            f"{one['load'][1]} |",
            f"| {k} | Ray, 2 actors ({two['layout']}) | {two['wall_seconds']:.1f} | "
            f"{thr['two']:.4f} | **{r2[-1]:.3f}** vs 1 actor | {two['engine_seconds']:.1f} | "
            f"{e2:.3f} | {two['shard_seconds']:.1f} | {two['load'][0]} → "
            f"{two['load'][1]} |"]
    return rows, float(np.median(r1)), float(np.median(r2))


def report_head(args, runs, med1, med2):
    n = runs[0]["loop"]["images"]
    settings = "quick budgets" if args.quick else "the default settings"
    return [
        "# explain_dataset.py on Ray: measured figures", "",
        f"Machine: {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"{platform.machine()}; `benchmarks/ray_bench.py{' --quick' if args.quick else ''}` "
        f"on {n} bundled images in shards of {args.shard_size}, {settings}"
        + (f" plus `{' '.join(args.flags)}`" if args.flags else "") + " (every method, "
        f"every metric, the influence partial sums); {len(runs)} repeat(s). Each "
        "configuration ran in its own fresh process, one after the other in this one run "
        "(the order reversed on every other repeat); the load average (1 min) before and "
        "after each shows how busy the machine was.", "",
        f"**1 actor ÷ single-process loop: {med1:.3f}** (median; goal >= 0.9: "
        f"{'met' if med1 >= 0.9 else 'MISSED'}). **2 actors ÷ 1 actor: {med2:.3f}** (2 "
        "cores: TensorFlow already uses both in one process, so a second actor cannot add "
        "throughput; each actor gets one TF thread).", "",
        "| repeat | configuration | wall s | images/s | ratio | engine s | engine ratio | "
        "sum of shard s | load |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]


def report_costs(args, runs):
    """What a run costs per image (counted), at the raw rates measured, and what
    ImageNet's validation set would cost on this CPU and on (assumed) GPUs."""
    n, loop = runs[0]["loop"]["images"], runs[0]["loop"]
    raw = {k: float(np.median([r["loop"]["raw"][k] for r in runs])) for k in loop["raw"]}
    f_img, g_img, by_method = per_image(runs[0]["one"]["counts"], runs[0]["one"]["images"])
    ideal = f_img / raw["forward"] + g_img / raw["backward"]        # seconds per image
    per_img = float(np.median([r["loop"]["shard_seconds"] for r in runs])) / n
    efficiency = ideal / per_img
    lines = [
        "",
        "Wall: process start to exit (imports, the model, listing, Ray's start-up, the "
        "actors' graphs, the tables; the loop's raw-rate timing is taken out). Engine: the "
        "loop's shards; Ray from `ray.init` to the last shard written (the cluster's and the "
        "actors' start-up included). Sum of shard s: the time each shard took inside its "
        "worker, added up.", "",
        "## Cost of the settings, per image (counted)", "",
        f"Raw rates of EfficientNet-Lite0 (measured in the loop's process right before its "
        f"shards, batch 16, best of {args.rounds} x {args.raw_runs} runs, median over "
        f"repeats): forward {raw['forward']:.1f} images/s, forward+backward "
        f"{raw['backward']:.1f} images/s.", "",
        "| part | forwards / image | gradients / image |", "| --- | ---: | ---: |"]
    for m, (f, g) in by_method.items():
        what = {"forward": "predicted class (one forward)",
                "influence": "influence partial sums (backward to the layer)"}.get(
            m, f"{m}: its map, then its metrics")
        lines.append(f"| {what} | {f:.1f} | {g:.1f} |")
    lines += [
        f"| **total** | **{f_img:.1f}** | **{g_img:.1f}** |", "",
        f"At the raw rates that is {ideal:.2f} s per image; the loop took {per_img:.2f} s per "
        f"image: the toolkit ran at {efficiency:.0%} of the raw rates (row building, "
        "partial chunks, Python between runs; above 100% means the raw timing was slowed "
        "by the machine's other load).", ""]
    return lines + imagenet_estimate(args, f_img, g_img, raw, efficiency)


def imagenet_estimate(args, f_img, g_img, raw, efficiency):
    settings = "quick budgets" if args.quick else "the default settings"
    cpu_1 = estimate(f_img, g_img, raw["forward"], raw["backward"])
    g1 = estimate(f_img, g_img, args.gpu_forward, args.gpu_backward)
    return [
        f"## ImageNet validation ({IMAGENET_VAL:,} images), {settings}", "",
        f"Cost: {IMAGENET_VAL * f_img:,.0f} forwards and {IMAGENET_VAL * g_img:,.0f} "
        "gradients (image-rows through the model).", "",
        "| where | rates | 1 device | 8 | 64 |", "| --- | --- | ---: | ---: | ---: |",
        f"| this CPU ({os.cpu_count()} cores), raw rates MEASURED above | "
        f"{raw['forward']:.0f} fwd/s, {raw['backward']:.0f} fwd+bwd/s | {hours(cpu_1)} | "
        f"{hours(cpu_1 / 8)} | {hours(cpu_1 / 64)} |",
        f"| same, at the toolkit's measured {efficiency:.0%} of raw | | "
        f"{hours(cpu_1 / efficiency)} | {hours(cpu_1 / efficiency / 8)} | "
        f"{hours(cpu_1 / efficiency / 64)} |",
        f"| one GPU per actor, ASSUMED rates (not measured) | {args.gpu_forward:.0f} fwd/s, "
        f"{args.gpu_backward:.0f} fwd+bwd/s | {hours(g1)} | {hours(g1 / 8)} | "
        f"{hours(g1 / 64)} |", "",
        "The GPU rates are an assumption, not a measurement (no GPU here); rerun with "
        "`--gpu-forward/--gpu-backward` set to your GPU's raw rates. Devices scale linearly "
        "in this estimate (shards are independent); Ray's start-up (tens of seconds) and the "
        "toolkit's efficiency on that device come on top.", ""]


def main(argv=None):
    args = parse_args(argv)
    if args.loop:
        return loop_main(args)
    runs = []
    for k in range(args.repeats):
        order = ["loop", "one", "two"] if k % 2 == 0 else ["two", "one", "loop"]
        run = {}
        for c in order:
            print(f"repeat {k + 1}: {c} ...", file=sys.stderr, flush=True)
            run[c] = run_loop(args) if c == "loop" else run_ray(args, 1 if c == "one" else 2)
            print(f"  {run[c]['wall_seconds']:.1f} s", file=sys.stderr, flush=True)
        runs.append(run)
    print(report(args, runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
