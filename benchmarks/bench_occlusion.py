#!/usr/bin/env python
"""Occlusion faster than the model (issue 24): incremental occlusion's occluded rows per
second ÷ the bare model's images per second at batch 16, measured side by side in one run
(the raw rate just before and just after each call, their mean; median over rounds), with
the plain path (every copy through the whole network) beside it, and where the time goes
per layer on VGG16 (one traced run of each path: the windowed part vs the full part).

    .venv/bin/python benchmarks/bench_occlusion.py [--models vgg16_random resnet18
        efficientnet_lite0] [--size 8] [--rounds 2] [--no-plain] [--out FILE]

Goals (8 x 8 patches, stride 8, 784 rows per image at 224 x 224): VGG16 (random He weights
through our loader) ≥ 4, torchvision ResNet-18 (seeded random weights written as a .pth and
imported by ``get_model('resnet18', path)``) ≥ 1.6, the bundled EfficientNet-Lite0 ≥ 1.2.
"""
import argparse
import collections
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from bench_common import ROOT, emit, fmt, graph_model, log, raw_rate  # noqa: E402

BATCH = 16
GOALS = {"vgg16_random": 4.0, "resnet18": 1.6, "efficientnet_lite0": 1.2}


def resnet18(tmp):
    """``(sess, model, X)``: torchvision's ResNet-18 with seeded random weights, imported."""
    import tensorflow as tf
    from hw3_utils import get_model, load_samples
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import resnet_ref
    from torch_writer import write_state_dict
    path = os.path.join(tmp, "resnet18.pth")
    write_state_dict(path, resnet_ref.reference_state("resnet18", num_classes=1000), "zip")
    sess = tf.compat.v1.Session(graph=tf.Graph())
    with sess.graph.as_default():
        model = get_model(sess, "resnet18", path)
    return sess, model, load_samples()[0].astype(np.float32)


def occlusion_rate(occ, X, size, incremental):
    """Occluded rows per second of one call on ``X``."""
    t0 = time.perf_counter()
    occ(X, batch_size=BATCH, superpixel_size=size, incremental=incremental)
    elapsed = time.perf_counter() - t0
    rows = len(X) * (X.shape[1] // size) * (X.shape[2] // size)
    return rows / elapsed, rows


def measure(name, sess, model, X, size, rounds, plain):
    """``{path: [ratio per round]}`` for 'incremental' (and 'plain'), and the plan."""
    from hw3_attribution import Occlusion
    from attrkit.methods.incremental import incremental_ops
    X = X[:1]
    with sess.graph.as_default():
        occ = Occlusion(sess, model.imgs, model.logits, None, progress=False)
        ops = incremental_ops(model.imgs, model.logits, size, *X.shape[1:3])
        occ(X, batch_size=BATCH, superpixel_size=size)           # warm up both paths
        occ(X[:, :, :], batch_size=BATCH, superpixel_size=X.shape[1] // 2, incremental=False)
        ratios = collections.defaultdict(list)
        for r in range(rounds):
            for path in ("incremental", "plain") if plain else ("incremental",):
                raw_rows = min(256, len(X) * (X.shape[1] // size) ** 2)
                before = raw_rate(model, sess, X, "forward", BATCH, raw_rows)
                rate, rows = occlusion_rate(occ, X, size, path == "incremental")
                after = raw_rate(model, sess, X, "forward", BATCH, raw_rows)
                ratios[path].append(rate / ((before + after) / 2))
                log(f"{name} round {r}: {path}: {rows} rows, {rate:.1f} rows/s, ratio "
                    f"{ratios[path][-1]:.3f}")
    return ratios, ops


def traced_ms(sess, fetch, feed):
    """Milliseconds per op name of one traced ``sess.run`` (after an untraced one)."""
    import tensorflow as tf
    tf1 = tf.compat.v1
    sess.run(fetch, feed)
    meta = tf1.RunMetadata()
    sess.run(fetch, feed, options=tf1.RunOptions(trace_level=tf1.RunOptions.FULL_TRACE),
             run_metadata=meta)
    ms = collections.Counter()
    for dev in meta.step_stats.dev_stats:
        for node in dev.node_stats:
            ms[node.node_name.split(":")[0]] += node.all_end_rel_micros / 1000.0
    return ms


def per_layer(sess, model, X, ops, size):
    """Rows ``(layer, plain ms/row, incremental ms/row, part)`` per layer of the model (its
    ops' first name component: VGG16's ``conv1_1``, ``pool1``, ``fc6``), from one traced run
    of a chunk of 16 rows each way, and the whole runs' ms/row and the splicing gathers'.
    TensorFlow fuses a convolution with its bias and ReLU into one kernel named after the
    last of them, so times are summed per layer, not per op."""
    from hw3_attribution import patch_starts
    corners = np.array([(i, j) for i in patch_starts(224, size, size)
                        for j in patch_starts(224, size, size)])[:BATCH]
    names = list(ops.caches)
    values = sess.run([sess.graph.get_tensor_by_name(n) for n in names], {model.imgs: X[:1]})
    feed = {ops.caches[n]: v.reshape(-1, v.shape[-1]) for n, v in zip(names, values)}
    feed[ops.baseline] = np.zeros((224 * 224, 3), np.float32)
    i, j = corners.T
    feed.update({g.index: g.feed(i, j) for g in ops.gathers})
    feed[ops.target] = np.zeros(BATCH, np.int32)
    inc = traced_ms(sess, ops.score, feed)
    full = traced_ms(sess, model.logits, {model.imgs: np.repeat(X[:1], BATCH, 0)})
    layer_of = {scope: op.name.split("/")[0] for op in ops.windowed
                for scope in [ops.scope_of[op.name]]}
    plain_ms, inc_ms = collections.Counter(), collections.Counter()
    for node, ms in full.items():
        plain_ms[node.split("/")[0]] += ms
    for node, ms in inc.items():
        if node.startswith("incremental/rest/"):
            inc_ms[node[len("incremental/rest/"):].split("/")[0]] += ms
        else:
            scope = next((sc for sc in layer_of if node.startswith(sc)), None)
            inc_ms[layer_of[scope] if scope else "(splicing into full maps)"] += ms
    parts = {}
    for op in ops.windowed:
        w = ops.windows[op.outputs[0].name]
        parts[op.name.split("/")[0]] = (f"window {w.rows.size}x{w.cols.size} of "
                                        f"{w.rows.length}x{w.cols.length}")
    layers = []
    for op in ops.windowed + ops.rest:
        layer = op.name.split("/")[0]
        if layer not in layers and (plain_ms[layer] or inc_ms[layer]):
            layers.append(layer)
    rows = [(layer, plain_ms[layer] / BATCH, inc_ms[layer] / BATCH, parts.get(layer, "full"))
            for layer in layers]
    rows.append(("(splicing into full maps)", 0.0,
                 inc_ms["(splicing into full maps)"] / BATCH, "gathers"))
    gathers = sum(v for k, v in inc.items() if "GatherV2" in k)
    return rows, sum(full.values()) / BATCH, sum(inc.values()) / BATCH, gathers / BATCH


def report(results, layers, size):
    lines = [f"# Occlusion: occluded rows/s ÷ the raw model's images/s (batch {BATCH})", "",
             f"One image, {size} x {size} patches, stride {size}; the raw forward rate is "
             "measured just before and just after each call (their mean); median over the "
             "rounds. `incremental`: each copy recomputes only the windows its patch changes "
             "(`Occlusion(..., incremental=None)`, the default, chose it on every model "
             "here); `plain`: every copy through the whole network (`incremental=False`).", "",
             "| model | path | rows per call | ratio (median) | rounds | multiply-adds: "
             "full ÷ plan | goal |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, (ratios, ops, rows) in results.items():
        incremental, whole = ops.macs
        for path, rs in ratios.items():
            med = float(np.median(rs))
            goal = GOALS.get(name)
            status = ("—" if path == "plain" or goal is None
                      else f"{'met' if med >= goal else 'not met'} (≥ {goal})")
            lines.append(f"| {name} | {path} | {rows} | {fmt(med)} | "
                         f"{', '.join(fmt(v) for v in rs)} | "
                         f"{fmt(whole / incremental) if path == 'incremental' else '—'} | "
                         f"{status} |")
    if layers:
        rows, full_ms, inc_ms, gather_ms = layers
        lines += ["", "## Where the time goes: VGG16, per layer (ms per row)", "",
                  f"One traced `sess.run` of {BATCH} occluded rows each way (op times from "
                  "TensorFlow's step stats, so they add up to a little more than the wall "
                  f"time). Whole run: plain {fmt(full_ms)} ms/row, incremental "
                  f"{fmt(inc_ms)} ms/row, of which the gathers that build the regions and "
                  f"splice the windows {fmt(gather_ms)} ms/row. A windowed layer's figure "
                  "includes its region's gather; the last row is the splicing of the walk's "
                  "last windows into full maps, where the rest of the model takes over.", "",
                  "| layer | plain | incremental | part |", "| --- | --- | --- | --- |"]
        for layer, full, inc, part in rows:
            lines.append(f"| {layer} | {fmt(full)} | {fmt(inc)} | {part} |")
    return "\n".join(lines) + "\n"


def occlusion_section(models, size=8, rounds=2, plain=True):
    """The Markdown of :func:`report` for ``models`` (names of :data:`GOALS`), measured now;
    VGG16 (when among them) in one round, with its per-layer table."""
    results, layers = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            sess, model, X = resnet18(tmp) if name == "resnet18" else graph_model(name)
            ratios, ops = measure(name, sess, model, X, size,
                                  1 if name == "vgg16_random" else rounds, plain)
            results[name] = (dict(ratios), ops, (224 // size) ** 2)
            if name == "vgg16_random":
                with sess.graph.as_default():
                    layers = per_layer(sess, model, X, ops, size)
            sess.close()
    return report(results, layers, size)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(GOALS), choices=list(GOALS))
    p.add_argument("--size", type=int, default=8, help="patch side (default 8)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--no-plain", action="store_true", help="skip the plain path's rows")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "occlusion.md"))
    args = p.parse_args(argv)
    emit(occlusion_section(args.models, args.size, args.rounds, not args.no_plain), args.out)


if __name__ == "__main__":
    main()
