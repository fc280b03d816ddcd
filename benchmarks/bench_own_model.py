#!/usr/bin/env python
"""Your own model (issue 20): an imported Keras ResNet50 at the speed of its own graph, and
the same methods beside Xplique's on the same Keras file.

    .venv/bin/python benchmarks/bench_own_model.py [--rounds 3] [--out benchmarks/own_model.md]
    .venv/bin/python benchmarks/bench_own_model.py --quick        # ResNet50 at 64 x 64, 1 round

The model: ``keras.applications.ResNet50(weights=None)``, seeded, 224 x 224, 1000 classes,
its normalisation layers randomised as the test fixtures do (tests/keras_families.py: random
BN scale and offset, moving statistics from one training-mode pass, so that the logits move
between images), saved as ``.keras`` by a child process (eager Keras). The images: the first
bundled sample photos (RGB 0-255); the target: the class the model predicts for each.

Two figures, from the same rounds of one run:

1. **Ours ÷ the raw graph.** ``IntegratedGrad`` (2 images x 50 steps), ``SmoothGrad``
   (2 x 50 samples) and ``Occlusion`` (1 image, 8x8 patches) on the model imported by
   ``hw3_utils.get_model(sess, path)``, measured as ``bench_speed`` measures the built-in
   models (its ``speed_cases``: one untimed warm-up of every case, then each case followed
   by the raw forward+backward or forward rate of the same graph at the same batch size over
   as many rows, up to 1024). Goal ≥ 0.95.
2. **Ours ÷ Xplique 2.0.2** (TF2, eager), on the same ``.keras`` file, images, targets,
   batch size (16) and budgets: gradients (or model rows) per second. Goal ≥ 1. Each side
   runs in a child process of its own in every round (ours needs graph mode, Xplique eager),
   the order alternating from round to round; the ratio of a round divides the two rates
   measured next to each other. Xplique is given the Keras model as a Keras user would
   (``keras.saving.load_model``), its final softmax switched to linear as Xplique's
   documentation advises (the toolkit peels it off too), behind a ``Lambda`` layer that
   applies the same preprocessing (``preprocessing.apply_preprocess``, here 'caffe'), so
   both sides explain the same function of the same RGB 0-255 images; the logits of the two
   are compared before timing. The settings: ``IntegratedGradients(model, steps=50,
   batch_size=16, baseline_value=0)`` beside ``IntegratedGrad(..., num_steps=49,
   method='trapezoid')`` (Xplique's rule: the trapezoid rule on ``linspace(0, 1, 50)``, both
   ends included: 50 gradients per image on both sides); ``SmoothGrad(model, nb_samples=50,
   noise=0.15 * (max - min))`` (Xplique's noise is an absolute standard deviation; ours is
   ``sigma=0.15`` of each image's value range: one Xplique explainer per distinct range);
   ``Occlusion(model, patch_size=8, patch_stride=8, batch_size=16, occlusion_value=0)``
   beside ``Occlusion(superpixel_size=8)`` (black patches). After each case each side also
   times its own raw rate (ours: the TF1 graph; Xplique: the Keras model under Xplique's own
   ``tf.function`` gradient / prediction operators), which says where a difference comes
   from. The maps are compared where the definitions agree (rounds' first outputs): IG and
   Occlusion as they are, SmoothGrad with Xplique's noise replaced for one untimed call by
   the toolkit's stateless noise (as ``bench_pair`` does with PAIR's).

Xplique is a benchmark-only dependency (``benchmarks/requirements.txt``, installed with
``--no-deps``); without it the Xplique rows say so and the rest is measured. ``import
xplique`` needs ``cv2`` and ``tensorflow_probability``, which only its CRAFT, segmentation
and HSIC code use: when they are not installed the Xplique child registers placeholder
modules that raise on first use, so nothing it measures can use them unnoticed.

The functions take ``(model, sess, X, ...)`` so that tests/test_benchmarks.py runs the
table on a tiny model; nothing asserts a time.
"""
import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import replace

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

from bench_common import (FULL, ROOT, Settings, TimedSession, fmt,  # noqa: E402
                          git_commit, loadavg, log, raw_rate, table_row)
from bench_pair import rel_l2  # noqa: E402
from bench_speed import CASE_FIGURES, Cases, speed_cases, why_slow  # noqa: E402

RAW_GOAL = 0.95        # ours ÷ the raw graph (as bench_speed's rows)
XPLIQUE_GOAL = 1.0     # ours ÷ Xplique
SIGMA = 0.15           # SmoothGrad's noise, a fraction of each image's value range
XPLIQUE_VERSION = "2.0.2"
PART1 = ("ig", "smoothgrad", "occlusion")
# ours -> Xplique's, the kind of row counted
VERSUS = (("ig_trapezoid", "ig", "gradient"), ("smoothgrad", "smoothgrad", "gradient"),
          ("occlusion", "occlusion", "forward"))
STUBBED = ("cv2", "tensorflow_probability")    # imported by xplique, unused by these methods


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The Keras model of the benchmark (keras.applications, random weights)."""
    family: str = "ResNet50"
    size: int = 224
    classes: int = 1000
    seed: int = 0


QUICK_MODEL = ModelSpec(size=64, classes=10)
QUICK = replace(FULL, rounds=1, steps=8, occlusion_superpixel=16)


def xplique_available():
    """Whether ``xplique`` is installed (not imported here: it needs eager TensorFlow)."""
    import importlib.util
    return importlib.util.find_spec("xplique") is not None


# ------------------------------------------------------------------ ours (graph mode)

class OwnModelCases(Cases):
    """``bench_speed``'s IG, SmoothGrad and Occlusion cases (the same calls), plus IG on
    Xplique's rule (``ig_trapezoid``: trapezoid on ``steps - 1`` intervals, ``steps``
    gradients per image); each keeps its last output in ``maps``."""

    def __init__(self, model, sess, X, c, s):
        from hw3_attribution import IntegratedGrad, Occlusion, SmoothGrad
        self.model, self.X, self.c, self.s = model, X, c, s
        self.tsess = TimedSession(sess, model.imgs)
        self.pair, self.maps = None, {}
        x, out = model.imgs, model.logits
        with sess.graph.as_default():
            self.ig = IntegratedGrad(self.tsess, x, out, None, progress=False)
            self.sg = SmoothGrad(self.tsess, x, out, None, progress=False)
            self.occ = Occlusion(self.tsess, x, out, None, progress=False)
        self.setup(X, c, s)

    def setup(self, X, c, s):
        n = min(s.images, len(X))
        self.Xs, self.cs = X[:n], c[:n]
        n = min(s.occlusion_images, len(X))
        self.Xo, self.co = X[:n], c[:n]

    def names(self):
        return ["ig", "smoothgrad", "occlusion", "ig_trapezoid"]

    def case_ig_trapezoid(self):
        self.maps["ig"] = self.ig(self.Xs, "black", self.s.batch_size, self.s.steps - 1,
                                  method="trapezoid", target_class=self.cs)
        return len(self.Xs) * self.s.steps, "gradient"

    def case_smoothgrad(self):
        self.maps["smoothgrad"] = self.sg(self.Xs, self.s.batch_size, self.s.steps, SIGMA, 0,
                                          target_class=self.cs)
        return len(self.Xs) * self.s.steps, "gradient"

    def case_occlusion(self):
        def run():
            self.maps["occlusion"] = self.occ(self.Xo, self.s.batch_size,
                                              self.s.occlusion_superpixel,
                                              target_class=self.co)
        return self._counted(run)


def ours_round(model, sess, X, c, s, progress=log):
    """One round of our cases (``bench_speed.speed_cases`` with one round): ``(stats,
    maps)``, stats ``{case: {'ratio', 'rate', 'outside', 'inside', 'calls', 'rows',
    'seconds'}}`` (ratio: the rate ÷ the raw rate measured right after it)."""
    cases = OwnModelCases(model, sess, X, c, s)
    for kind in ("forward", "gradient"):   # as bench_common.raw_throughput: the first run
        raw_rate(model, sess, X, kind, s.batch_size, 1)   # of a fetch optimises the graph
    res, _ = speed_cases(model, sess, X, c, replace(s, rounds=1), cases=cases,
                         progress=progress)
    stats = {name: {"ratio": o["ratios"][0], "rate": o["rates"][0], "outside": o["outside"][0],
                    "inside": o["inside"][0], "calls": o["calls"], "rows": o["rows"],
                    "seconds": o["seconds"][0]}
             for name, o in res["now"].items()}
    return stats, cases.maps


# ------------------------------------------------------------------ Xplique (eager)

def stub_missing(names=STUBBED):
    """Placeholder modules for Xplique's imports that these methods never use; any use
    raises ImportError. Returns the names stubbed (those really installed are left alone)."""
    import importlib.util
    stubbed = []
    for name in names:
        if name in sys.modules or importlib.util.find_spec(name) is not None:
            continue
        module = types.ModuleType(name)

        def missing(attr, _name=name):
            if attr.startswith("__"):
                raise AttributeError(attr)
            raise ImportError(f"{_name} is not installed (bench_own_model placeholder: "
                              f"{_name}.{attr} was used)")

        module.__getattr__ = missing
        sys.modules[name] = module
        stubbed.append(name)
    return stubbed


def keras_for_xplique(path, preprocess):
    """The Keras model as Xplique is given it: ``load_model``, a final softmax switched to
    linear (logits), behind a Lambda applying ``preprocess`` to RGB 0-255 inputs."""
    import keras
    from attrkit.models import preprocessing
    base = keras.saving.load_model(path, compile=False)
    last = base.layers[-1]
    if getattr(last, "activation", None) is not None and \
            getattr(last.activation, "__name__", "") == "softmax":
        last.activation = keras.activations.linear
    spec = preprocessing.parse_preprocess(preprocess)
    inp = keras.Input(tuple(base.inputs[0].shape[1:]))
    x = keras.layers.Lambda(lambda t: preprocessing.apply_preprocess(t, spec))(inp)
    return keras.Model(inp, base(x))


def xplique_cases(model, X, c, s):
    """Xplique's three explainers on ``model``: ``({case: (run, rows, kind)}, smoothgrad)``
    with ``smoothgrad`` the SmoothGrad run (for the same-noise comparison)."""
    from xplique.attributions import IntegratedGradients, Occlusion, SmoothGrad
    bs, steps = s.batch_size, s.steps
    Y = np.eye(int(model.outputs[0].shape[-1]), dtype=np.float32)[c]
    n, n_o = min(s.images, len(X)), min(s.occlusion_images, len(X))
    Xs, Ys, Xo, Yo = X[:n], Y[:n], X[:n_o], Y[:n_o]
    flat = Xs.reshape(n, -1)
    noise = (SIGMA * (flat.max(axis=1) - flat.min(axis=1))).astype(np.float32)
    groups = {float(v): np.flatnonzero(noise == v) for v in np.unique(noise)}
    ig = IntegratedGradients(model, steps=steps, batch_size=bs, baseline_value=0.0)
    occ = Occlusion(model, patch_size=s.occlusion_superpixel,
                    patch_stride=s.occlusion_superpixel, batch_size=bs, occlusion_value=0.0)
    sgs = {v: SmoothGrad(model, nb_samples=steps, noise=v, batch_size=bs) for v in groups}

    def smoothgrad():   # one explainer per noise level (Xplique's noise is absolute)
        out = np.empty(Xs.shape[:3] + (1,), np.float32)
        for v, idx in groups.items():
            out[idx] = sgs[v].explain(Xs[idx], Ys[idx]).numpy()
        return out

    patches = len(patch_corners(X.shape[1:3], s.occlusion_superpixel))
    cases = {"ig": (lambda: ig.explain(Xs, Ys).numpy(), n * steps, "gradient"),
             "smoothgrad": (smoothgrad, n * steps, "gradient"),
             "occlusion": (lambda: occ.explain(Xo, Yo).numpy(), n_o * (1 + patches),
                           "forward")}
    return cases, smoothgrad


def xplique_raw(model, X, c, bs):
    """``raw(kind, rows)``: rows per second of the Keras model under Xplique's own
    ``tf.function`` operators (gradient or prediction) on a prepared batch of ``bs``."""
    import tensorflow as tf
    from xplique.commons.operators import predictions_operator
    from xplique.commons.operators_operations import gradients_predictions
    take = np.arange(bs) % len(X)
    Y = np.eye(int(model.outputs[0].shape[-1]), dtype=np.float32)[c]
    batch, targets = tf.constant(X[take]), tf.constant(Y[take])
    raw_fn = {"gradient": gradients_predictions, "forward": predictions_operator}

    def raw(kind, rows):
        calls = max(2, -(-rows // bs))
        t0 = time.perf_counter()
        for _ in range(calls):
            raw_fn[kind](model, batch, targets).numpy()
        return calls * bs / (time.perf_counter() - t0)
    for kind in raw_fn:   # the first call of each traces its tf.function
        raw(kind, 1)
    return raw


def xplique_round(path, preprocess, X, c, s, agreement=False, progress=log):
    """One round of Xplique's cases in this (eager) process: ``(stats, maps, info)``.

    stats ``{case: {'rate', 'raw', 'seconds', 'rows'}}``: rows per second of the explain call
    and of the Keras model under Xplique's own ``tf.function`` operators (gradient or
    prediction, batch ``s.batch_size``, as many rows), timed right after it."""
    import tensorflow as tf
    stubbed = stub_missing()
    import xplique
    model = keras_for_xplique(path, preprocess)
    cases, smoothgrad = xplique_cases(model, X, c, s)
    raw = xplique_raw(model, X, c, s.batch_size)
    logits = model(X, training=False).numpy()
    maps, stats = {}, {}
    for fn, _, _ in cases.values():   # warm-up: tf.function traces per shape
        fn()
    for name, (fn, rows, kind) in cases.items():
        t0 = time.perf_counter()
        maps[name] = fn()
        wall = time.perf_counter() - t0
        rate = rows / wall
        ref = raw(kind, min(max(s.raw_rows, 2 * s.batch_size, rows), 1024))
        stats[name] = {"rate": rate, "raw": ref, "seconds": wall, "rows": rows}
        progress(f"xplique {name}: {rate:.2f} {kind}/s = {rate / ref:.3f} x its raw "
                 f"({wall:.1f} s)")
    if agreement:
        maps.update(xplique_floor(cases["ig"][0], smoothgrad, s.steps))
    info = {"xplique": xplique.__version__, "tensorflow": tf.__version__,
            "keras": __import__("keras").__version__, "stubbed": stubbed, "logits": logits,
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
    return stats, maps, info


def xplique_floor(ig, smoothgrad, steps):
    """The maps for the agreement: SmoothGrad on the toolkit's noise, and the float32 floor,
    Xplique against itself with its tf.functions run op by op (no graph optimisation: other
    kernels, other summation orders, ReLU gates near 0 flip, and the gradients through them)."""
    import tensorflow as tf
    maps = {"smoothgrad_same_noise": same_noise_smoothgrad(smoothgrad, steps)}
    tf.config.run_functions_eagerly(True)
    try:
        maps["ig_floor"] = ig()
        maps["smoothgrad_floor"] = same_noise_smoothgrad(smoothgrad, steps)
    finally:
        tf.config.run_functions_eagerly(False)
    return maps


def same_noise_smoothgrad(smoothgrad, samples, seed=0):
    """Xplique's SmoothGrad with its ``tf.random.normal`` replaced by the toolkit's noise:
    sample s of every image is ``noise · tf.random.stateless_normal(shape, seed=(seed, s))``
    (what ``hw3_attribution.SmoothGrad`` draws in its graph), for one call."""
    import tensorflow as tf
    from xplique.attributions.gradient_statistics.gradient_statistic import \
        GradientStatistic
    real = GradientStatistic.__dict__["_perturb_samples"]
    state = {"next": 0}

    def perturb(inputs, nb_perturbations, noise):
        first = state["next"]
        state["next"] = (first + nb_perturbations) % samples
        unit = tf.stack([tf.random.stateless_normal(
            inputs.shape[1:], seed=tf.constant([seed, first + j], tf.int64))
            for j in range(nb_perturbations)])
        unit = tf.tile(unit, [inputs.shape[0]] + [1] * (len(inputs.shape) - 1))
        return tf.repeat(inputs, nb_perturbations, axis=0) + np.float32(noise) * unit

    GradientStatistic._perturb_samples = staticmethod(perturb)
    try:
        return smoothgrad()
    finally:
        GradientStatistic._perturb_samples = real


def patch_corners(shape, size):
    """The patches of Xplique's (and our) occlusion with stride = size: corners at multiples
    of ``size`` that fit inside the image."""
    H, W = shape
    return [(i, j) for i in range(0, H - size + 1, size) for j in range(0, W - size + 1, size)]


# ------------------------------------------------------------------ the maps

def agreement(ours, theirs):
    """``{case: (relative L2, correlation)}`` of the channel-mean maps where both have one:
    IG (same rule), Occlusion, SmoothGrad on the same noise (``smoothgrad``) and on
    Xplique's own noise (``smoothgrad_own_noise``: correlation only means something), and
    the float32 floor: Xplique's IG / same-noise SmoothGrad against themselves with their
    ``tf.function``s run eagerly (``ig_floor``, ``smoothgrad_floor``)."""
    def flat(a):
        a = np.asarray(a, np.float64)
        return a.mean(axis=-1) if a.ndim == 4 else a

    pairs = {"ig": (ours, "ig", "ig"), "occlusion": (ours, "occlusion", "occlusion"),
             "smoothgrad": (ours, "smoothgrad", "smoothgrad_same_noise"),
             "smoothgrad_own_noise": (ours, "smoothgrad", "smoothgrad"),
             "ig_floor": (theirs, "ig_floor", "ig"),
             "smoothgrad_floor": (theirs, "smoothgrad_floor", "smoothgrad_same_noise")}
    out = {}
    for key, (first, a, b) in pairs.items():
        if a in first and b in theirs:
            x, y = flat(first[a]), flat(theirs[b])
            out[key] = (rel_l2(x, y), float(np.corrcoef(x.ravel(), y.ravel())[0, 1]))
    return out


# ------------------------------------------------------------------ the table

def median(values):
    return float(np.median(values)) if len(values) else float("nan")


def merge(rounds):
    """Per-round stats (one dict per round) -> ``{case: {key: [values per round]}}``."""
    out = {}
    for r in rounds:
        for name, o in r.items():
            d = out.setdefault(name, {})
            for key, v in o.items():
                d.setdefault(key, []).append(v)
    return out


def raw_rows(ours, s):
    """Part 1: each case ÷ the raw graph (as ``bench_speed.speed_rows``)."""
    bs = s.batch_size
    fill = dict(n=s.images, S=s.steps, no=s.occlusion_images, so=s.occlusion_superpixel)
    rows = []
    for name in PART1 + ("ig_trapezoid",):
        o = ours[name]
        ratio = median(o["ratio"])
        kind = "forward" if name == "occlusion" else "gradient"
        unit = ("gradient rows/s ÷ raw forward+backward" if kind == "gradient"
                else "model rows/s ÷ raw forward")
        note = f"{unit} at bs {bs}; rounds: " + ", ".join(fmt(r) for r in o["ratio"])
        ok = ratio >= RAW_GOAL
        if not ok:
            note += "; " + why_slow({"outside_median": median(o["outside"]),
                                     "inside_ratio": median(o["inside"]),
                                     "calls": o["calls"][-1], "rows": o["rows"][-1]}, bs)
        if name == "ig_trapezoid":
            figure = (f"IntegratedGrad, Xplique's rule (trapezoid, {s.steps - 1} intervals: "
                      f"{fmt(s.images)} images x {s.steps} gradients), bs {bs}")
            goal, status = "report", "—"
        else:
            figure = CASE_FIGURES[name].format(**fill) + f", bs {bs}"
            goal, status = f"≥ {RAW_GOAL}", "met" if ok else "**not met**"
        rows.append(table_row(figure, f"{fmt(ratio)} ({median(o['rate']):.2f}/s)", goal,
                              status, note))
    return rows


XPLIQUE_FIGURES = {
    "ig": "IntegratedGrad vs Xplique IntegratedGradients ({n} images x {S} gradients, "
          "trapezoid on linspace(0, 1, {S}) both sides), bs {bs}",
    "smoothgrad": "SmoothGrad vs Xplique SmoothGrad ({n} images x {S} samples, noise "
                  "{sigma} of the value range), bs {bs}",
    "occlusion": "Occlusion vs Xplique Occlusion ({no} image(s), {so}x{so} patches, stride "
                 "{so}, value 0), bs {bs}",
}


def xplique_rows(ours, theirs, agree, s, reason=None):
    """Part 2: ours ÷ Xplique per round (``theirs``: merged Xplique stats, None when not
    measured, then ``reason`` says why)."""
    bs = s.batch_size
    fill = dict(n=s.images, S=s.steps, no=s.occlusion_images, so=s.occlusion_superpixel,
                bs=bs, sigma=SIGMA)
    if theirs is None:
        return [table_row(f"IntegratedGrad / SmoothGrad / Occlusion vs Xplique "
                          f"{XPLIQUE_VERSION}", "not measured", f"≥ {XPLIQUE_GOAL:g}x", "—",
                          reason or "xplique not importable")]
    rows = []
    for mine, name, kind in VERSUS:
        o, t = ours[mine], theirs[name]
        per = [a / b for a, b in zip(o["rate"], t["rate"])]
        speed = median(per)
        unit = "gradients/s" if kind == "gradient" else "model rows/s"
        their_raw = [a / b for a, b in zip(t["rate"], t["raw"])]
        raw_vs = [a / r / b for a, r, b in zip(o["rate"], o["ratio"], t["raw"])]
        note = (f"{unit}, ours ÷ Xplique per round: {', '.join(fmt(v) for v in per)}; ours "
                f"{', '.join(f'{v:.2f}' for v in o['rate'])}, Xplique "
                f"{', '.join(f'{v:.2f}' for v in t['rate'])} {unit}; Xplique ÷ its own raw "
                f"rate (the Keras model under its tf.function operators, bs {bs}): "
                f"{', '.join(fmt(v) for v in their_raw)}; ours ÷ our raw: "
                f"{', '.join(fmt(v) for v in o['ratio'])}; our raw graph ÷ Keras' raw: "
                f"{', '.join(fmt(v) for v in raw_vs)}")
        a = (agree or {}).get(name)
        if a is not None:
            note += f"; maps (channel mean): relative L2 {a[0]:.1e}, correlation {a[1]:.6f}"
            if name == "smoothgrad":
                note += " on the same noise"
                own = (agree or {}).get("smoothgrad_own_noise")
                if own is not None:
                    note += f" ({own[1]:.3f} with each side's own noise)"
            floor = (agree or {}).get(name + "_floor")
            if floor is not None:
                note += (f"; the float32 floor, Xplique against itself with its "
                         f"tf.functions run eagerly: relative L2 {floor[0]:.1e}, correlation "
                         f"{floor[1]:.6f}")
        rows.append(table_row(XPLIQUE_FIGURES[name].format(**fill),
                              f"{fmt(speed)}x", f"≥ {XPLIQUE_GOAL:g}x",
                              "met" if speed >= XPLIQUE_GOAL else "**not met**", note))
    return rows


def own_model_rows(ours_rounds, theirs_rounds, agree, s, reason=None):
    """Every row of the figure from per-round stats (``ours_round`` / ``xplique_round``)."""
    ours = merge(ours_rounds)
    theirs = merge(theirs_rounds) if theirs_rounds else None
    return raw_rows(ours, s) + xplique_rows(ours, theirs, agree, s, reason)


# ------------------------------------------------------------------ children

def child_env(work):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow",
                HW3_CACHE_DIR=os.path.join(work, "cache"))


def run_child(kind, work, *args, progress=log):
    """Run this file as ``--_child kind work args`` and raise with its output's tail when
    it fails."""
    cmd = [sys.executable, os.path.abspath(__file__), "--_child", kind, work] + \
        [str(a) for a in args]
    proc = subprocess.run(cmd, env=child_env(work), capture_output=True, text=True)
    for line in proc.stderr.splitlines():
        if line.startswith("[bench"):
            print(line, file=sys.stderr, flush=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise RuntimeError(f"the {kind} child failed (status {proc.returncode}):\n{tail}")


def read_config(work):
    with open(os.path.join(work, "config.json")) as f:
        cfg = json.load(f)
    return ModelSpec(**cfg["model"]), Settings(**cfg["settings"])


def child_build(work):
    """Eager: the seeded keras.applications model, normalisation randomised, as .keras."""
    import keras
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import keras_families
    spec, _ = read_config(work)
    keras.utils.set_random_seed(spec.seed)
    model = getattr(keras.applications, spec.family)(
        weights=None, input_shape=(spec.size, spec.size, 3), classes=spec.classes)
    module, preprocess = keras_families.PREPROCESS[spec.family]
    calib = keras_families.images(8, size=spec.size, seed=2)
    if module is not None:
        calib = getattr(keras.applications, module).preprocess_input(calib.copy())
    keras_families.randomise_normalisation(model, calib, spec.seed)
    model.save(os.path.join(work, "model.keras"))
    with open(os.path.join(work, "preprocess.txt"), "w") as f:
        f.write(preprocess)


def sample_images(n, size):
    """The first ``n`` bundled sample photos at ``size`` x ``size`` (RGB 0-255)."""
    from hw3_utils import load_samples, resize_to
    X = load_samples()[0][:n].astype(np.float32)
    if X.shape[1] != size:
        X = resize_to(X, size)
    return X


def load_ours(work):
    """Graph mode: ``(model, sess)`` of the Keras file imported into a new session."""
    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    from hw3_attribution import new_session
    from hw3_utils import get_model
    with open(os.path.join(work, "preprocess.txt")) as f:
        preprocess = f.read().strip()
    sess = new_session(tf.Graph())
    with sess.graph.as_default():
        model = get_model(sess, os.path.join(work, "model.keras"), preprocess=preprocess)
    return model, sess, preprocess


def child_setup(work):
    """Graph mode: convert (into the run's cache), pick the images, predict the targets."""
    from bench_common import predicted
    spec, s = read_config(work)
    t0 = time.perf_counter()
    model, sess, _ = load_ours(work)
    seconds = time.perf_counter() - t0
    X = sample_images(max(s.images, s.occlusion_images), spec.size)
    with sess.graph.as_default():
        c = predicted(model, sess, X)
        logits = sess.run(model.logits, {model.imgs: X})
    np.savez(os.path.join(work, "setup.npz"), X=X, c=c, logits=logits)
    with open(os.path.join(work, "setup.json"), "w") as f:
        json.dump({"import_seconds": seconds, "name": model.name,
                   "graph_bytes": model.meta.get("graph_bytes"),
                   "convert_seconds": model.meta.get("seconds")}, f)


def child_ours(work, rnd):
    _, s = read_config(work)
    data = np.load(os.path.join(work, "setup.npz"))
    model, sess, _ = load_ours(work)
    with sess.graph.as_default():
        stats, maps = ours_round(model, sess, data["X"], data["c"], s)
    with open(os.path.join(work, f"ours_{rnd}.json"), "w") as f:
        json.dump(stats, f)
    if int(rnd) == 0:
        np.savez(os.path.join(work, "ours_maps.npz"), **maps)


def child_xplique(work, rnd):
    _, s = read_config(work)
    data = np.load(os.path.join(work, "setup.npz"))
    with open(os.path.join(work, "preprocess.txt")) as f:
        preprocess = f.read().strip()
    first = int(rnd) == 0
    stats, maps, info = xplique_round(os.path.join(work, "model.keras"), preprocess,
                                      data["X"], data["c"], s, agreement=first)
    logits, ref = info.pop("logits"), data["logits"]
    info["logits_diff"] = float(np.abs(logits - ref).max() / np.abs(ref).max())
    info["same_targets"] = bool(np.all(logits.argmax(axis=1) == data["c"]))
    with open(os.path.join(work, f"xplique_{rnd}.json"), "w") as f:
        json.dump({"stats": stats, "info": info}, f)
    if first:
        np.savez(os.path.join(work, "xplique_maps.npz"), **maps)


CHILDREN = {"build": child_build, "setup": child_setup, "ours": child_ours,
            "xplique": child_xplique}


# ------------------------------------------------------------------ the run

def measure(work, spec, s, use_xplique=True, progress=log):
    """Build, set up, then ``s.rounds`` rounds of the two children (order alternating).
    Returns a dict of everything the report needs."""
    with open(os.path.join(work, "config.json"), "w") as f:
        json.dump({"model": dataclasses.asdict(spec), "settings": dataclasses.asdict(s)}, f)
    progress(f"building {spec.family} ({spec.size} x {spec.size}, {spec.classes} classes)")
    run_child("build", work)
    progress("converting and importing it (graph mode), predicting the targets")
    t0 = time.perf_counter()
    run_child("setup", work)
    with open(os.path.join(work, "setup.json")) as f:
        setup = json.load(f)
    setup["setup_seconds"] = time.perf_counter() - t0
    res = {"setup": setup, "ours": [], "xplique": [], "info": None, "loads": [],
           "orders": [], "reason": None}
    sides = ["ours", "xplique"] if use_xplique else ["ours"]
    for r in range(s.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        res["orders"].append(order)
        for side in order:
            res["loads"].append((r, side, loadavg()[0]))
            progress(f"round {r + 1}/{s.rounds}: {side} (load {loadavg()[0]:.2f})")
            try:
                run_child(side, work, r)
            except RuntimeError as exc:
                if side != "xplique":
                    raise
                progress(f"Xplique failed: {exc}")   # the rest is measured without it
                res["reason"] = f"the Xplique child failed: {str(exc).splitlines()[-1]}"
                sides = ["ours"]
    for r in range(s.rounds):
        with open(os.path.join(work, f"ours_{r}.json")) as f:
            res["ours"].append(json.load(f))
        path = os.path.join(work, f"xplique_{r}.json")
        if res["reason"] is None and os.path.exists(path):
            with open(path) as f:
                got = json.load(f)
            res["xplique"].append(got["stats"])
            res["info"] = got["info"]
    res["agreement"] = None
    if res["xplique"]:
        ours_maps = dict(np.load(os.path.join(work, "ours_maps.npz")))
        their_maps = dict(np.load(os.path.join(work, "xplique_maps.npz")))
        res["agreement"] = agreement(ours_maps, their_maps)
    elif res["reason"] is None:
        res["reason"] = ("xplique not importable (pip install --no-deps -r "
                         "benchmarks/requirements.txt)")
    return res


def report(res, spec, s, argv, start_load, t_start):
    """The Markdown of ``benchmarks/own_model.md``."""
    import importlib.metadata as md
    from run import markdown_table
    commit = git_commit()
    end_load = loadavg()
    versions = {p: _version(md, p) for p in ("tensorflow-cpu", "tensorflow", "keras",
                                              "numpy", "xplique")}
    rows = own_model_rows(res["ours"], res["xplique"] or None, res["agreement"], s,
                          res["reason"])
    setup = res["setup"]
    loads = ", ".join(f"round {r + 1} {side} {v:.2f}" for r, side, v in res["loads"])
    lines = [
        f"# Your own model: a Keras {spec.family} through the toolkit, and beside Xplique",
        "",
        f"`{' '.join(['benchmarks/bench_own_model.py'] + argv)}` on {platform.node()} "
        f"({os.cpu_count()} CPUs), Python {platform.python_version()}, "
        + ", ".join(f"{k} {v}" for k, v in versions.items() if v) +
        f", commit {commit}, {time.strftime('%Y-%m-%d %H:%M')}. Load average (1 min) at "
        f"start {start_load[0]:.2f} / {start_load[1]:.2f} / {start_load[2]:.2f}, before "
        f"each child: {loads}; at the end {end_load[0]:.2f}. Total "
        f"{(time.time() - t_start) / 60:.1f} min.",
        "",
        f"Model: `keras.applications.{spec.family}(weights=None)`, seed {spec.seed}, "
        f"{spec.size} x {spec.size}, {spec.classes} classes, normalisation layers randomised "
        "(tests/keras_families.py), saved as `.keras`; imported by `get_model(sess, path)` "
        f"(conversion, import and first runs: {setup['setup_seconds']:.0f} s in the set-up "
        f"child; frozen graph {(setup.get('graph_bytes') or 0) / 1e6:.0f} MB). Images: the "
        f"first {max(s.images, s.occlusion_images)} bundled sample photos; targets: the "
        f"predicted classes. Batch size {s.batch_size}, {s.rounds} rounds, medians; each "
        "round runs each side in a fresh child process, the order alternating: "
        + "; ".join(f"round {i + 1}: {' then '.join(o)}" for i, o in enumerate(res["orders"]))
        + ".",
        "",
    ] + markdown_table(rows) + [""]
    info = res.get("info")
    if info:
        lines += [
            f"Xplique side: xplique {info['xplique']}, TensorFlow {info['tensorflow']} "
            f"(eager), Keras {info['keras']}, TensorFlow's default thread pools (intra-op "
            f"{info['intra_op'] or 'all cores'}, inter-op {info['inter_op'] or 'default'}); "
            f"the toolkit: `new_session()` (intra-op all cores, inter-op 1). Placeholder "
            f"modules for Xplique's unused imports: {', '.join(info['stubbed']) or 'none'}. "
            f"Logits of the Keras model given to Xplique vs the imported graph's: largest "
            f"difference {info['logits_diff']:.1e} of the largest logit, same predicted "
            f"classes: {info['same_targets']}.", ""]
    lines += NOTES
    return "\n".join(lines) + "\n"


def _version(md, name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


NOTES = [
    "What each side computes:",
    "",
    "- **Integrated Gradients.** Xplique: `IntegratedGradients(model, steps=50, "
    "batch_size=16, baseline_value=0)`: gradients of the target logit at the 50 points "
    "`linspace(0, 1, 50)` of the path from black, both ends included, averaged by the "
    "trapezoid rule (49 intervals) and multiplied by `x − 0`, then averaged over the "
    "colour channels (its default `reducer='mean'`). Xplique batches one image's path at a "
    "time (`batch_size // steps` images, at least 1): 16 + 16 + 16 + 2 rows per image. "
    "Ours beside it: `IntegratedGrad(..., num_steps=49, method='trapezoid')`, the same 50 "
    "nodes and weights, all images' path points in one stream of full batches (7 runs for "
    "100 rows), plus two forwards per image (`f(x)`, `f(baseline)`, for the completeness "
    "error; counted in our wall time). The ≥ 0.95 row uses the toolkit's default rule "
    "(right Riemann, 50 steps, also 50 gradients per image).",
    "- **SmoothGrad.** Xplique: the mean gradient over 50 copies `x + N(0, noise²)` with "
    "`noise` an absolute standard deviation (pixel units), drawn by `tf.random.normal` per "
    "batch, one image at a time (16 + 16 + 16 + 2 rows), channel mean. Ours: "
    "`SmoothGrad(sigma=0.15)`: noise of standard deviation 0.15 · (max − min) of each image, "
    "so Xplique is given `noise = 0.15 · (max − min)`, one explainer per distinct range; "
    "ours draws seeded stateless noise in the graph (sample s of every image from seed "
    "(0, s)). The maps are compared with Xplique's noise replaced by ours for one untimed "
    "call; on each side's own noise they are two different Monte-Carlo draws.",
    "- **Occlusion.** Both: `f_c(x) − f_c(x with an 8x8 patch set to 0)` over the 28 x 28 "
    "non-overlapping patches, given to the patch's pixels (Xplique sums over the patches "
    "that cover a pixel, ours averages: the same here, stride = size); 784 occluded copies "
    "+ 1 forward at x. Xplique builds each batch of copies with a `tf.function` from a "
    "stack of boolean masks; ours builds them in the graph from the image and the patch "
    "corners.",
    "- **Raw rates.** Ours: `sess.run` of the logits or of `∂f_c/∂x` on the imported TF1 graph "
    "(frozen: weights are constants, Grappler folds them). Xplique's: its own "
    "`gradients_predictions` / `predictions_operator` (`tf.function`s calling the Keras "
    "model) on a prepared batch, i.e. the fastest this Keras model runs under Xplique. "
    "'our raw graph ÷ Keras' raw' is the part of the speed-up that comes from the graph "
    "itself; 'Xplique ÷ its own raw' is Xplique's overhead (batching, tf.data, Python).",
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="ResNet50 at 64 x 64 with 10 classes, 8 steps, 16-px patches, 1 round")
    p.add_argument("--rounds", type=int, default=None, help="rounds (default 3)")
    p.add_argument("--family", default=None, help="keras.applications family (ResNet50)")
    p.add_argument("--no-xplique", action="store_true", help="leave Xplique out")
    p.add_argument("--out", default=None, help="also write the Markdown here (atomically)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--_child", nargs="+", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args._child:
        kind, work, *rest = args._child
        CHILDREN[kind](work, *rest)
        return 0
    spec, s = (QUICK_MODEL, QUICK) if args.quick else (ModelSpec(), FULL)
    if args.family:
        spec = replace(spec, family=args.family)
    if args.rounds:
        s = replace(s, rounds=args.rounds)
    start_load, t_start = loadavg(), time.time()
    work = tempfile.mkdtemp(prefix="bench_own_model_")
    try:
        use = not args.no_xplique and xplique_available()
        res = measure(work, spec, s, use_xplique=use)
        if args.no_xplique:
            res["reason"] = "left out (--no-xplique)"
        text = report(res, spec, s, argv, start_load, t_start)
    finally:
        if args.keep:
            log(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(text)
    if args.out:
        from run import write_atomic
        write_atomic(args.out, text)
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
