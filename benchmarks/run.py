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
See benchmarks/README.md for how each figure is measured.
"""
import argparse
import importlib
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

RULES = ("riemann_right", "riemann_left", "riemann_middle", "trapezoid", "gauss_legendre")
GRADED = ("hw3_attribution", "hw3_infl", "hw3_evaluation")


def log(msg):
    """Progress on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Settings:
    """Budgets of one benchmark run (``FULL`` or ``QUICK``)."""
    batch_size: int = 16        # the toolkit's default: every method row runs at it
    batch_sizes: tuple = (8, 16, 32, 64)   # the raw reference table
    raw_rows: int = 64          # rows per raw measurement (at least two runs of the batch)
    rounds: int = 3             # repeats of every speed case; medians are reported
    images: int = 2             # images per IG / SmoothGrad / PAIR / homework-loop case
    steps: int = 50             # IG steps, SmoothGrad samples, PAIR steps
    infl_images: int = 64       # influence (distribution of interest), expert attribution
    occlusion_images: int = 1
    occlusion_superpixel: int = 8
    nord_M: int = 1000          # N_Ord pixels removed per step
    curve_superpixel: int = 8   # Insertion / Deletion
    curve_step: int = 8
    metric_images: int = 4
    ad_images: int = 128        # Average Drop: two rows per image
    budgets: tuple = (16, 64, 256)
    completeness_images: int = 0   # 0: every sample image
    memory_steps: tuple = (50, 1000)
    memory_batch: int = 16
    vc_timeout: int = 3600


FULL = Settings()
QUICK = Settings(batch_size=4, batch_sizes=(1, 4), raw_rows=8, rounds=1, images=1, steps=8,
                 infl_images=4, occlusion_superpixel=56, nord_M=5000, curve_superpixel=16,
                 curve_step=16, metric_images=1, ad_images=4, budgets=(4, 8),
                 completeness_images=2, memory_steps=(8, 40), memory_batch=8)


# ------------------------------------------------------------------ session plumbing

class TimedSession:
    """A session proxy that counts the rows each ``run`` evaluates and times every run.

    A run evaluates the rows fed to the model's input, or (the toolkit's in-graph rows)
    one row per entry of the ``hw3_rows/front`` feed of ``hw3_attribution.RowOps``.
    """

    def __init__(self, sess, imgs):
        self._sess, self._imgs = sess, imgs
        self.graph = sess.graph
        self.reset()

    def reset(self):
        self.rows = self.calls = 0
        self.run_seconds = 0.0

    def __getattr__(self, name):
        return getattr(self._sess, name)

    def run(self, fetches, feed_dict=None, **kwargs):
        for t, v in (feed_dict or {}).items():
            if t is self._imgs or getattr(t, "name", "").startswith("hw3_rows/front:"):
                self.rows += len(v)
                break
        self.calls += 1
        t0 = time.perf_counter()
        try:
            return self._sess.run(fetches, feed_dict, **kwargs)
        finally:
            self.run_seconds += time.perf_counter() - t0


def predicted(model, sess, X, batch_size=32):
    """Predicted classes ``int32 [N]``."""
    out = [sess.run(model.logits, {model.imgs: X[i:i + batch_size]}).argmax(axis=1)
           for i in range(0, len(X), batch_size)]
    return np.concatenate(out).astype(np.int32)


def raw_rate(model, sess, X, kind, batch_size, rows):
    """Rows per second of the bare model: ``kind`` 'forward' (logits) or 'gradient'
    (d logit_c / d x), on a prepared batch of ``batch_size`` rows, at least 2 runs."""
    from hw3_attribution import model_ops
    ops = model_ops(model.imgs, model.logits)
    batch = np.ascontiguousarray(X[np.arange(batch_size) % len(X)], np.float32)
    if kind == "forward":
        fetch, feed = model.logits, {model.imgs: batch}
    else:
        fetch = ops.grad
        feed = {model.imgs: batch, ops.target: np.zeros(batch_size, np.int32)}
    calls = max(2, -(-rows // batch_size))
    t0 = time.perf_counter()
    for _ in range(calls):
        sess.run(fetch, feed)
    return calls * batch_size / (time.perf_counter() - t0)


def raw_throughput(model, sess, X, s):
    """Raw forward and forward+backward rows/s per batch size (medians over rounds).

    Returns ``table[bs] = {'forward': r, 'gradient': r}`` for every size of
    ``s.batch_sizes`` and ``s.batch_size``.
    """
    sizes = sorted(set(s.batch_sizes) | {s.batch_size})
    for bs in sizes:  # warm-up: the first run at each shape allocates
        for kind in ("forward", "gradient"):
            raw_rate(model, sess, X, kind, bs, 1)
    samples = {bs: {"forward": [], "gradient": []} for bs in sizes}
    for r in range(s.rounds):
        for bs in sizes:
            for kind in ("forward", "gradient"):
                samples[bs][kind].append(raw_rate(model, sess, X, kind, bs,
                                                  max(s.raw_rows, 2 * bs)))
        log(f"raw throughput round {r + 1}/{s.rounds}: " + ", ".join(
            f"bs {bs}: {samples[bs]['forward'][-1]:.1f} fwd/s {samples[bs]['gradient'][-1]:.1f}"
            f" grad/s" for bs in sizes))
    return {bs: {k: float(np.median(v)) for k, v in d.items()} for bs, d in samples.items()}


# ------------------------------------------------------------------ before (git REV)

def load_before(rev):
    """The graded modules as they were at git revision ``rev``, imported under the names
    ``before_hw3_*`` from a temporary folder (their imports of each other renamed)."""
    folder = tempfile.mkdtemp(prefix="bench_before_")
    for name in GRADED:
        src = subprocess.run(["git", "show", f"{rev}:{name}.py"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        src = re.sub(r"\bfrom (hw3_attribution|hw3_infl|hw3_evaluation) import",
                     r"from before_\1 import", src)
        with open(os.path.join(folder, f"before_{name}.py"), "w") as f:
            f.write(src)
    sys.path.insert(0, folder)
    mods = {name: importlib.import_module(f"before_{name}") for name in GRADED}
    sys.path.remove(folder)
    return mods


def before_tree(rev):
    """The whole project at ``rev`` in a temporary folder (for its hw3_vc.py)."""
    folder = tempfile.mkdtemp(prefix="bench_before_tree_")
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder


# ------------------------------------------------------------------------ speed cases

def pair_available():
    try:
        import saliency.tf1  # noqa: F401
        return True
    except Exception:  # not installed (it is a benchmark-only dependency)
        return False


class Cases:
    """The timed workloads, on the toolkit as it is now. Each case returns
    ``(work, kind)``: the rows of ``kind`` ('gradient' or 'forward') that it did, which its
    rate is counted in. ``counted`` cases take their rows from the session proxy."""

    GOALS = OrderedDict([  # name -> (kind, goal, issue)
        ("ig", ("gradient", 0.95)), ("smoothgrad", ("gradient", 0.95)),
        ("expert_attribution", ("gradient", 0.95)), ("occlusion", ("forward", 0.95)),
        ("insertion", ("forward", 0.95)), ("deletion", ("forward", 0.95)),
        ("n_ord", ("forward", 0.95)), ("average_drop", ("forward", 0.95)),
        ("influence", ("forward", 0.9))])

    def __init__(self, model, sess, X, c, s, pair=True):
        import tensorflow as tf
        from hw3_attribution import IntegratedGrad, SmoothGrad, Occlusion, model_ops
        from hw3_infl import InflDirected, qoi_predicted
        self.model, self.X, self.c, self.s = model, X, c, s
        self.tsess = TimedSession(sess, model.imgs)
        x, out = model.imgs, model.logits
        kw = dict(progress=False)
        layer = model.layers[getattr(model, "default_layers", {}).get("influence", "fc1")]
        with sess.graph.as_default():
            self.ig = IntegratedGrad(self.tsess, x, out, None, **kw)
            self.sg = SmoothGrad(self.tsess, x, out, None, **kw)
            self.occ = Occlusion(self.tsess, x, out, None, **kw)
            self.infl = InflDirected(self.tsess, x, layer, out, qoi_predicted(), **kw)
            self.layer_name = layer.name
            self.ops = model_ops(x, out)
            self.pair = None
            if pair and pair_available():
                import saliency.tf1 as saliency
                tf1 = tf.compat.v1
                self.pair_class = tf1.placeholder(tf.int32, [], name="bench_pair_class")
                y = tf.gather(model.logits, self.pair_class, axis=1)     # [N]
                self.pair = (saliency.IntegratedGradients(sess.graph, self.tsess, y, x),
                             saliency.GradientSaliency(sess.graph, self.tsess, y, x))
        self.setup(X, c, s)

    def setup(self, X, c, s):
        n = min(s.images, len(X))
        self.Xs, self.cs = X[:n], c[:n]
        take = np.arange(s.infl_images) % len(X)
        self.Xi, self.ci = X[take], c[take]
        self.Xo, self.co = X[:min(s.occlusion_images, len(X))], c[:s.occlusion_images]
        m = min(s.metric_images, len(X))
        self.Xm, self.cm = X[:m], c[:m]
        rng = np.random.default_rng(0)
        self.Am = rng.standard_normal(self.Xm.shape[:3])                 # pixel maps [m, H, W]
        take = np.arange(s.ad_images) % len(X)
        self.Xa, self.ca = X[take], c[take]
        self.Aa = rng.standard_normal(self.Xa.shape[:3])

    def names(self):
        names = ["ig", "smoothgrad", "expert_attribution", "occlusion"]
        if self.pair is not None:
            names += ["pair_ig", "pair_ig_bs1", "pair_smoothgrad"]
        names += ["homework_loop", "influence", "n_ord", "insertion", "deletion",
                  "average_drop"]
        return names

    def run(self, name):
        return getattr(self, "case_" + name)()

    def _counted(self, fn):
        self.tsess.reset()
        fn()
        return self.tsess.rows, "forward"

    def case_ig(self):
        self.ig(self.Xs, "black", self.s.batch_size, self.s.steps, target_class=self.cs)
        return len(self.Xs) * self.s.steps, "gradient"

    def case_smoothgrad(self):
        self.sg(self.Xs, self.s.batch_size, self.s.steps, target_class=self.cs)
        return len(self.Xs) * self.s.steps, "gradient"

    def case_expert_attribution(self):
        self.infl.expert_attribution(0, self.Xi, self.s.batch_size)
        return len(self.Xi), "gradient"

    def case_occlusion(self):
        return self._counted(lambda: self.occ(self.Xo, self.s.batch_size,
                                              self.s.occlusion_superpixel,
                                              target_class=self.co))

    def _pair_ig(self, batch_size):
        ig = self.pair[0]
        for x, c in zip(self.Xs, self.cs):
            ig.GetMask(x, feed_dict={self.pair_class: int(c)}, x_baseline=np.zeros_like(x),
                       x_steps=self.s.steps, batch_size=batch_size)
        return len(self.Xs) * self.s.steps, "gradient"

    def case_pair_ig(self):
        return self._pair_ig(self.s.batch_size)

    def case_pair_ig_bs1(self):
        return self._pair_ig(1)

    def case_pair_smoothgrad(self):
        grad = self.pair[1]
        for x, c in zip(self.Xs, self.cs):
            grad.GetSmoothedMask(x, feed_dict={self.pair_class: int(c)}, stdev_spread=0.15,
                                 nsamples=self.s.steps, magnitude=False)
        return len(self.Xs) * self.s.steps, "gradient"

    def case_homework_loop(self):
        """IG as the homework's starter code would: one sess.run per step, batch 1."""
        steps = self.s.steps
        for x, c in zip(self.Xs, self.cs):
            base = np.zeros_like(x)
            total = np.zeros_like(x)
            for k in range(1, steps + 1):
                point = base + (k / steps) * (x - base)
                total += self.tsess.run(self.ops.grad, {self.model.imgs: point[None],
                                                        self.ops.target: [int(c)]})[0]
            _ = (x - base) * total / steps
        return len(self.Xs) * steps, "gradient"

    def case_influence(self):
        self.infl.influence(self.Xi, self.s.batch_size)
        return len(self.Xi), "forward"

    def case_n_ord(self):
        from hw3_evaluation import N_Ord
        return self._counted(lambda: N_Ord(self.tsess, self.Am, self.Xm, self.model.imgs,
                                           self.model.logits, self.cm, self.s.nord_M,
                                           batch_size=self.s.batch_size, progress=False))

    def _curve(self, fn):
        return self._counted(lambda: fn(self.tsess, self.Am, self.Xm, self.model.imgs,
                                        self.model.logits, self.cm,
                                        superpixel_size=self.s.curve_superpixel,
                                        step=self.s.curve_step, batch_size=self.s.batch_size,
                                        progress=False))

    def case_insertion(self):
        from hw3_evaluation import Insertion
        return self._curve(Insertion)

    def case_deletion(self):
        from hw3_evaluation import Deletion
        return self._curve(Deletion)

    def case_average_drop(self):
        from hw3_evaluation import AverageDrop
        return self._counted(lambda: AverageDrop(self.tsess, self.Aa, self.Xa,
                                                 self.model.imgs, self.model.logits, self.ca,
                                                 batch_size=self.s.batch_size,
                                                 progress=False))


class BeforeCases(Cases):
    """The same workloads on the graded modules of an earlier revision (their old API:
    classes built from ``(model, sess)``, metrics as classes). Only the cases that revision
    has; PAIR and the homework loop do not depend on the toolkit and are not repeated."""

    def __init__(self, model, sess, X, c, s, mods):
        A, I, E = (mods[n] for n in GRADED)
        self.model, self.X, self.c, self.s = model, X, c, s
        self.tsess = TimedSession(sess, model.imgs)
        self.pair = None
        kw = dict(batch_size=s.batch_size, progress=False)
        with sess.graph.as_default():
            self.ig = A.IntegratedGrad(model, self.tsess, **kw)
            self.sg = A.SmoothGrad(model, self.tsess, **kw)
            self.occ = A.Occlusion(model, self.tsess, **kw)
            self.infl = I.InflDirected(model, self.tsess, **kw)
            self.nord = E.N_Ord(model, self.tsess, M=s.nord_M, **kw)
            self.ins = E.Insertion(model, self.tsess, superpixel_size=s.curve_superpixel,
                                   step=s.curve_step, **kw)
            self.dele = E.Deletion(model, self.tsess, superpixel_size=s.curve_superpixel,
                                   step=s.curve_step, **kw)
            self.ad = E.AverageDrop(model, self.tsess, **kw)
        self.setup(X, c, s)

    def names(self):
        return ["ig", "smoothgrad", "expert_attribution", "occlusion", "influence", "n_ord",
                "insertion", "deletion", "average_drop"]

    def case_ig(self):
        self.ig(self.Xs, self.cs, steps=self.s.steps)
        return len(self.Xs) * self.s.steps, "gradient"

    def case_smoothgrad(self):
        self.sg(self.Xs, self.cs, samples=self.s.steps)
        return len(self.Xs) * self.s.steps, "gradient"

    def case_expert_attribution(self):
        self.infl(self.Xi, 0)
        return len(self.Xi), "gradient"

    def case_occlusion(self):
        return self._counted(lambda: self.occ(self.Xo, self.co,
                                              superpixel_size=self.s.occlusion_superpixel))

    def case_influence(self):
        self.infl.influence(self.Xi)
        return len(self.Xi), "forward"

    def case_n_ord(self):
        return self._counted(lambda: self.nord(self.Xm, self.Am, self.cm))

    def case_insertion(self):
        return self._counted(lambda: self.ins.curves(self.Xm, self.Am, self.cm))

    def case_deletion(self):
        return self._counted(lambda: self.dele.curves(self.Xm, self.Am, self.cm))

    def case_average_drop(self):
        return self._counted(lambda: self.ad(self.Xa, self.Aa, self.ca))


def speed_cases(model, sess, X, c, s, pair=True, before=None, progress=log):
    """Run every case ``s.rounds`` times, each followed by a raw measurement of its kind at
    ``s.batch_size``; with ``before`` (modules from :func:`load_before`) the earlier
    revision's cases run in the same rounds, each right after its current twin.

    Returns ``{'now': {case: stats}, 'before': {case: stats}}`` with stats ``{'ratio':
    median of rate / raw rate, 'rate': median rate, 'outside': median fraction of wall time
    outside sess.run, 'inside_ratio': median rows/s inside sess.run / raw rate, 'calls',
    'rows', 'ratios', 'rates'}``.
    """
    sets = {"now": Cases(model, sess, X, c, s, pair=pair)}
    if before is not None:
        sets["before"] = BeforeCases(model, sess, X, c, s, before)
    out = {k: {} for k in sets}
    with sess.graph.as_default():
        for cases in sets.values():
            for name in cases.names():  # warm-up: first calls allocate per shape
                cases.run(name)
        for key, cases in sets.items():
            out[key] = {name: {"ratios": [], "rates": [], "outside": [], "inside": [],
                               "calls": 0, "rows": 0, "seconds": []}
                        for name in cases.names()}
        order = [(k, name) for name in sets["now"].names() for k in sets
                 if name in sets[k].names()]
        for r in range(s.rounds):
            for key, name in order:
                cases = sets[key]
                cases.tsess.reset()
                t0 = time.perf_counter()
                work, kind = cases.run(name)
                wall = time.perf_counter() - t0
                ts = cases.tsess
                # the raw reference over as many rows as the case (up to 1024), so that
                # both are timed over about as long a stretch of the machine's load
                raw = raw_rate(model, sess, X, kind, s.batch_size,
                               min(max(s.raw_rows, 2 * s.batch_size, int(work)), 1024))
                o = out[key][name]
                o["rates"].append(work / wall)
                o["ratios"].append(work / wall / raw)
                o["seconds"].append(wall)
                o["outside"].append(1.0 - ts.run_seconds / wall)
                o["inside"].append(ts.rows / max(ts.run_seconds, 1e-12) / raw)
                o["calls"], o["rows"] = ts.calls, ts.rows
                progress(f"round {r + 1}/{s.rounds} {key} {name}: {work / wall:.2f} {kind}/s "
                         f"= {work / wall / raw:.3f} x raw ({wall:.1f} s, {ts.calls} runs)")
    for per in out.values():
        for o in per.values():
            o["ratio"] = float(np.median(o["ratios"]))
            o["rate"] = float(np.median(o["rates"]))
            o["outside_median"] = float(np.median(o["outside"]))
            o["inside_ratio"] = float(np.median(o["inside"]))
    return out, sets["now"]


# ---------------------------------------------------------------- output agreement

def rel_l2(a, b):
    """``||a - b|| / ||b||``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def stateless_noise(shape, seed, samples):
    """The unit noise of SmoothGrad's samples ``[samples, *shape]``: what the toolkit draws
    in its graph, ``tf.random.stateless_normal(shape, seed=[seed, s])`` for sample s."""
    import tensorflow as tf
    g = tf.Graph()
    with g.as_default(), tf.compat.v1.Session(graph=g) as sess:
        seeds = tf.compat.v1.placeholder(tf.int64, [2])
        op = tf.random.stateless_normal(shape, seed=seeds)
        return np.stack([sess.run(op, {seeds: [seed, s]}) for s in range(samples)])


def pair_agreement(model, sess, X, c, steps, batch_size):
    """Relative L2 differences between PAIR and the toolkit on the same rule and inputs.

    PAIR's IG averages gradients at ``linspace(0, 1, S)`` with equal weights ``1/S`` (both
    path ends included), which is none of the toolkit's rules; with N = S - 1 it equals
    ``(N · IG_left(N) + (x - x_b) ⊙ ∇f(x)) / S``, which the toolkit computes from its
    left Riemann rule and its saliency map. SmoothGrad is compared on the same noise: PAIR's
    ``np.random.normal`` is replaced for the call by the toolkit's stateless noise.
    """
    import tensorflow as tf
    import saliency.tf1 as saliency
    from saliency.tf1 import base as pair_base
    from hw3_attribution import IntegratedGrad, SaliencyMap, SmoothGrad
    tf1 = tf.compat.v1
    x, out = model.imgs, model.logits
    with sess.graph.as_default():
        cls = tf1.placeholder(tf.int32, [], name="bench_agree_class")
        y = tf.gather(out, cls, axis=1)
        p_ig = saliency.IntegratedGradients(sess.graph, sess, y, x)
        p_grad = saliency.GradientSaliency(sess.graph, sess, y, x)
        ig = IntegratedGrad(sess, x, out, c, progress=False)
        sal = SaliencyMap(sess, x, out, c, progress=False)
        sg = SmoothGrad(sess, x, out, c, progress=False)
        n = steps - 1
        ours_ig = (n * ig(X, "black", batch_size, n, method="riemann_left")
                   + sal(X, batch_size)) / steps
        theirs_ig = np.stack([p_ig.GetMask(xx, feed_dict={cls: int(k)},
                                           x_baseline=np.zeros_like(xx), x_steps=steps,
                                           batch_size=batch_size) for xx, k in zip(X, c)])
        seed = 0
        # PAIR's SmoothGrad runs one sample per sess.run; TF's CPU kernels round a little
        # differently at other batch sizes, so the like-for-like comparison is at batch 1
        ours_sg = sg(X, 1, steps, 0.15, seed)
        ours_sg_bs = sg(X, batch_size, steps, 0.15, seed)
        unit = stateless_noise(X.shape[1:], seed, steps)
        theirs_sg = []
        real_normal = pair_base.np.random.normal
        for xx, k in zip(X, c):
            counter = iter(range(steps))

            def toolkit_noise(loc, scale, size, _counter=counter):
                return np.float32(scale) * unit[next(_counter)]

            pair_base.np.random.normal = toolkit_noise
            try:
                theirs_sg.append(p_grad.GetSmoothedMask(
                    xx, feed_dict={cls: int(k)}, stdev_spread=0.15, nsamples=steps,
                    magnitude=False))
            finally:
                pair_base.np.random.normal = real_normal
        theirs_sg = np.stack(theirs_sg)
    return {"ig": rel_l2(theirs_ig, ours_ig), "smoothgrad": rel_l2(theirs_sg, ours_sg),
            "smoothgrad_bs": rel_l2(theirs_sg, ours_sg_bs)}


# --------------------------------------------------------------------- completeness

def node_set(budgets, rules=RULES):
    """Every ``(rule, budget) -> (t, w, steps)`` and the union of their nodes ``T``.

    A rule's budget is its number of gradient evaluations: ``steps = budget`` for every
    rule except the trapezoid, whose ``steps`` intervals need ``steps + 1`` gradients; it
    is given ``steps = budget`` too (so ``budget + 1`` gradients) to share nodes with the
    Riemann rules.
    """
    from hw3_attribution import quadrature
    table = OrderedDict()
    for rule in rules:
        for b in budgets:
            t, w = quadrature(rule, b)
            table[(rule, b)] = (np.asarray(t, np.float64), np.asarray(w, np.float64), b)
    T = np.unique(np.concatenate([t for t, _, _ in table.values()]).round(12))
    return table, T


def path_integrands(model, sess, X, Xb, c, T, batch_size, progress=log):
    """``s[i, k] = ∇f_c(x_b + T_k (x - x_b)) · (x - x_b)`` and ``F[i, k]`` ``[N, len(T)]``,
    one batched gradient pass over every (image, node) row."""
    from hw3_attribution import model_ops
    ops = model_ops(model.imgs, model.logits)
    n, k = len(X), len(T)
    diff = (X - Xb).reshape(n, -1).astype(np.float64)
    s = np.empty((n, k))
    F = np.empty((n, k))
    rows = n * k
    done = 0
    t_last = time.time()
    for start in range(0, rows, batch_size):
        r = np.arange(start, min(rows, start + batch_size))
        img, node = r // k, r % k
        xb = Xb[img] if len(Xb) == len(X) else Xb[np.zeros_like(img)]
        t = T[node].astype(np.float32).reshape((-1,) + (1,) * (X.ndim - 1))
        pts = xb + t * (X[img] - xb)
        g, f = sess.run([ops.grad, ops.score], {model.imgs: pts, ops.target: c[img]})
        s[img, node] = np.einsum("ij,ij->i", g.reshape(len(r), -1).astype(np.float64),
                                 diff[img])
        F[img, node] = f
        done += len(r)
        if time.time() - t_last > 30:
            progress(f"completeness: {done}/{rows} path gradients")
            t_last = time.time()
    return s, F


def completeness(model, sess, X, c, budgets, baselines=("black", "white"), batch_size=32,
                 tol=0.01, check=True, progress=log):
    """Completeness error ``|Σ IG − Δf| / |Δf|`` per rule, budget, baseline and image.

    Uniform rules: the toolkit's ``quadrature`` nodes and weights applied to integrands
    measured once on the union of every rule's nodes; with ``check`` the smallest budget
    of every rule is recomputed by ``IntegratedGrad`` itself on the first image and the
    largest difference is returned. The adaptive rule: ``IntegratedGrad(method='adaptive',
    max_gradients=budget, tol=tol)``, with its cost ``gradients + forwards / 3``.

    Returns ``{'errors': {(baseline, rule, budget): [N]}, 'cost': {(baseline, 'adaptive',
    budget): [N]}, 'gradients': {(rule, budget): int}, 'check': float}``.
    """
    from hw3_attribution import IntegratedGrad, relative_error
    table, T = node_set(budgets)
    errors, cost, grads = OrderedDict(), OrderedDict(), OrderedDict()
    for (rule, b), (t, w, steps) in table.items():
        grads[(rule, b)] = len(t)
    worst_check = 0.0
    with sess.graph.as_default():
        ig = IntegratedGrad(sess, model.imgs, model.logits, c, progress=False)
        for base in baselines:
            Xb = np.zeros_like(X[:1]) if base == "black" else np.full_like(X[:1], 255.0)
            progress(f"completeness, {base} baseline: {len(X)} images x {len(T)} nodes")
            s, F = path_integrands(model, sess, X, Xb, c, T, batch_size, progress)
            delta = F[:, -1] - F[:, 0]          # T runs from 0 to 1 (left and right rules)
            assert T[0] == 0.0 and T[-1] == 1.0
            for (rule, b), (t, w, _) in table.items():
                cols = np.searchsorted(T, t.round(12))
                errors[(base, rule, b)] = relative_error(s[:, cols] @ w, delta)
            if check:
                for rule in RULES:
                    b = budgets[0]
                    _, info = ig(X[:1], base, batch_size, b, method=rule, return_error=True,
                                 target_class=c[:1])
                    ours = errors[(base, rule, b)][0]
                    worst_check = max(worst_check, abs(float(info["completeness_error"][0])
                                                       - float(ours)))
            for b in budgets:
                progress(f"completeness, {base} baseline: adaptive, max_gradients={b}")
                _, info = ig(X, base, batch_size, method="adaptive", max_gradients=b,
                             tol=tol, return_error=True)
                errors[(base, "adaptive", b)] = np.asarray(info["completeness_error"])
                cost[(base, "adaptive", b)] = (np.asarray(info["gradients"], np.float64)
                                               + np.asarray(info["forwards"]) / 3.0)
    return {"errors": errors, "cost": cost, "gradients": grads, "check": worst_check}


def pct(v):
    return "undefined" if not np.isfinite(v) else f"{100 * v:.2f}%"


def completeness_markdown(res, budgets, n_images, baselines=("black", "white")):
    """The issue-8 table and the verdict on its goal, as Markdown lines."""
    errors, cost = res["errors"], res["cost"]
    lines = [f"Completeness error `|Σ IG − (f_c(x) − f_c(x_b))| / |f_c(x) − f_c(x_b)|`, "
             f"median / worst over {n_images} sample images, target = predicted class. "
             "Budget = gradient evaluations per image (trapezoid: budget + 1; adaptive: "
             "`max_gradients`, its spent cost `gradients + forwards/3` shown as median / max).",
             "",
             "| baseline | rule | " + " | ".join(f"{b} gradients" for b in budgets) + " |",
             "| --- | --- |" + " --- |" * len(budgets)]
    rules = list(RULES) + ["adaptive"]
    for base in baselines:
        for rule in rules:
            cells = []
            for b in budgets:
                e = errors[(base, rule, b)]
                cell = f"{pct(np.median(e))} / {pct(np.max(e))}"
                if rule == "adaptive":
                    cst = cost[(base, rule, b)]
                    cell += f" (cost {np.median(cst):.0f} / {np.max(cst):.0f})"
                cells.append(cell)
            lines.append(f"| {base} | {rule} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += completeness_verdict(res, budgets, baselines)
    lines.append("")
    lines.append(f"Check: the shared-node computation agrees with `IntegratedGrad`'s own "
                 f"`completeness_error` to {res['check']:.1e} (absolute, first image, "
                 f"every uniform rule at {budgets[0]} gradients).")
    return lines


def completeness_verdict(res, budgets, baselines=("black", "white")):
    """Issue 8's goal: median <= 1 % and worst <= 5 % with <= 256 gradients (+ forwards/3),
    and at 64 gradients a median at least 3x lower than right-Riemann."""
    errors, cost = res["errors"], res["cost"]
    out = []
    top = max(b for b in budgets if b <= 256) if any(b <= 256 for b in budgets) else None
    if top is None:
        return ["Issue 8 goal: not measured (no budget <= 256)."]
    met_all = True
    parts = []
    for base in baselines:
        e = errors[(base, "adaptive", top)]
        c = cost[(base, "adaptive", top)]
        med, worst = float(np.median(e)), float(np.max(e))
        ok = med <= 0.01 and worst <= 0.05 and float(np.max(c)) <= 256 * 4 / 3 + 1e-9
        met_all &= ok
        parts.append(f"{base}: median {pct(med)}, worst {pct(worst)}, max cost "
                     f"{np.max(c):.0f} ({'met' if ok else 'not met'})")
    out.append(f"Issue 8 goal (adaptive, max_gradients={top}: median <= 1 %, worst <= 5 %): "
               f"**{'met' if met_all else 'not met'}** — " + "; ".join(parts) + ".")
    mid = 64 if 64 in budgets else budgets[len(budgets) // 2]
    parts, met_all = [], True
    for base in baselines:
        a = float(np.median(errors[(base, "adaptive", mid)]))
        r = float(np.median(errors[(base, "riemann_right", mid)]))
        factor = r / a if a > 0 else float("inf")
        ok = factor >= 3
        met_all &= ok
        parts.append(f"{base}: {pct(a)} vs right-Riemann {pct(r)}, {factor:.1f}x "
                     f"({'met' if ok else 'not met'})")
    out.append(f"Issue 8 goal (at {mid} gradients, median >= 3x lower than right-Riemann): "
               f"**{'met' if met_all else 'not met'}** — " + "; ".join(parts) + ".")
    return out


# --------------------------------------------------------------------------- memory

def _rss_kib():
    """``(VmRSS, VmHWM)`` of this process in KiB (``ru_maxrss`` for both off Linux)."""
    try:
        with open("/proc/self/status") as f:
            vals = dict(line.split(":", 1) for line in f if ":" in line)
        return int(vals["VmRSS"].split()[0]), int(vals["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return ru, ru


def _reset_peak():
    """Reset the kernel's peak-RSS mark (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_probe(model_name, steps, batch_size, rev=None):
    """In this (fresh) process: build the model, run IG on one image, return memory figures
    in MiB: ``rss_before``, ``peak`` (VmHWM after the call, reset before it), ``increment``
    (peak - rss_before), ``tracemalloc_peak`` (Python/numpy allocations during the call),
    ``ru_maxrss`` (the process's lifetime peak). ``rev``: the modules of that revision."""
    import tracemalloc
    import tensorflow as tf
    from hw3_attribution import new_session
    tf.compat.v1.disable_eager_execution()
    sess = new_session(tf.Graph())
    with sess.graph.as_default():
        model, X = build_model(model_name, sess, n_images=1)
        if rev is None:
            from hw3_attribution import IntegratedGrad
            ig = IntegratedGrad(sess, model.imgs, model.logits, 0, progress=False)

            def call():
                ig(X[:1], "black", batch_size, steps)
        else:
            A = load_before(rev)["hw3_attribution"]
            ig = A.IntegratedGrad(model, sess, batch_size=batch_size, progress=False)

            def call():
                ig(X[:1], 0, steps=steps)
        rss0, _ = _rss_kib()
        reset = _reset_peak()
        tracemalloc.start()
        t0 = time.perf_counter()
        call()
        seconds = time.perf_counter() - t0
        _, tm_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss1, hwm = _rss_kib()
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = hwm if reset else ru
    return {"rss_before": rss0 / 1024, "peak": peak / 1024,
            "increment": (peak - rss0) / 1024, "tracemalloc_peak": tm_peak / 2 ** 20,
            "ru_maxrss": ru / 1024, "peak_reset": reset, "seconds": seconds,
            "steps": steps, "batch_size": batch_size}


def memory_ratio(model_name, steps_pair, batch_size, rev=None, progress=log):
    """Run :func:`memory_probe` in a fresh subprocess per setting; returns both results."""
    out = []
    for steps in steps_pair:
        progress(f"memory: IG with {steps} steps, batch_size {batch_size} ({model_name}"
                 f"{', revision ' + rev if rev else ''}), fresh subprocess")
        cmd = [sys.executable, os.path.abspath(__file__), "--_memory-probe", model_name,
               str(steps), str(batch_size)] + ([rev] if rev else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"memory probe failed ({' '.join(cmd)}):\n{proc.stderr[-2000:]}")
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


# --------------------------------------------------------------------------- hw3_vc

PASSES_RE = re.compile(r"passes:\s*forwards=(\d+)\s+gradients=(\d+)")


def vc_measure(cmd, out_dir, timeout, progress=log, cwd=ROOT):
    """Run the hw3_vc command; return ``{'forwards', 'gradients', 'seconds', 'wall'}``.

    ``seconds`` is the script's own (``run_stats.json``) when it writes one, else the wall
    time of the subprocess.
    """
    progress("hw3_vc: " + " ".join(cmd))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n"
                           f"{proc.stderr[-2000:]}")
    stats_path = os.path.join(out_dir, "run_stats.json")
    stats = {}
    if os.path.isfile(stats_path):
        with open(stats_path) as f:
            stats = json.load(f)
    m = PASSES_RE.search(proc.stdout)
    forwards = int(stats.get("forwards", m.group(1) if m else -1))
    gradients = int(stats.get("gradients", m.group(2) if m else -1))
    if forwards < 0 or gradients < 0:
        raise RuntimeError("hw3_vc printed no 'passes: forwards=<int> gradients=<int>' line "
                           "and wrote no run_stats.json")
    return {"forwards": forwards, "gradients": gradients,
            "seconds": float(stats.get("seconds", wall)), "wall": wall,
            "parts": stats.get("parts")}


def vc_profile(cmd, out_dir, timeout, raw_f, raw_g, progress=log, cwd=ROOT):
    """Run the hw3_vc command again under cProfile; say where its time went."""
    import pstats
    prof = os.path.join(out_dir, "vc.prof")
    pcmd = [cmd[0], "-m", "cProfile", "-o", prof] + cmd[1:]
    progress("hw3_vc missed its goal: profiling it (cProfile)")
    try:
        v = vc_measure(pcmd, out_dir, timeout, progress, cwd)
        st = pstats.Stats(prof).stats
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        return f"profile failed: {str(e).splitlines()[0][:200]}"

    def cum(fn_name, file_part):
        return max([v_[3] for k, v_ in st.items()
                    if k[2] == fn_name and file_part in k[0]] + [0.0])

    runs = [(v_[0], v_[3]) for k, v_ in st.items()
            if k[2] == "run" and k[0].endswith("client/session.py")]
    n_runs, t_run = max(runs, key=lambda r: r[1]) if runs else (0, 0.0)
    t_total = max(v_[3] for v_ in st.values())
    t_build = cum("get_model", "hw3_utils") + cum("load_ImageNet", "hw3_utils")
    ideal = v["forwards"] / raw_f + v["gradients"] / raw_g
    return (f"profile (cProfile, {t_total:.0f} s; the main thread's view, figures are "
            f"drawn in a background thread): sess.run {t_run:.0f} s over {n_runs} runs "
            f"({ideal:.0f} s of passes at raw rates, so the runs themselves are at "
            f"{ideal / max(t_run, 1e-9):.2f}x raw), model and data loading {t_build:.0f} s, "
            f"everything else {t_total - t_run - t_build:.0f} s")


def vc_row(cmd, out_dir, s, raw_f, raw_g, progress, cwd=ROOT, profile=True):
    """``(ratio, note)`` of a hw3_vc run: its wall time ÷ its passes at the raw rates."""
    v = vc_measure(cmd, out_dir, s.vc_timeout, progress, cwd)
    ideal = v["forwards"] / raw_f + v["gradients"] / raw_g
    ratio = v["seconds"] / ideal
    note = (f"{v['seconds']:.1f} s for {v['forwards']} forwards + {v['gradients']} "
            f"gradients = {ideal:.1f} s at the raw rates of bs {s.batch_size} (subprocess "
            f"wall {v['wall']:.1f} s)")
    if v.get("parts"):
        note += "; parts: " + ", ".join(f"{k} {t:.0f} s" for k, t in v["parts"].items())
    if profile and ratio > VC_GOAL:
        note += "; " + vc_profile(cmd, out_dir, s.vc_timeout, raw_f, raw_g, progress, cwd)
    return ratio, note


VC_GOAL = 1.15


# --------------------------------------------------------------------------- models

def vgg16_random(sess, seed=0):
    """VGG16 with He-initialised random weights (no weights file needed)."""
    from vgg16 import VGG16, WEIGHT_SHAPES
    rng = np.random.default_rng(seed)
    model = VGG16()
    weights = OrderedDict()
    for layer, (w_shape, b_shape) in WEIGHT_SHAPES.items():
        fan_in = int(np.prod(w_shape[:-1]))
        weights[layer] = (rng.normal(0.0, np.sqrt(2.0 / fan_in), w_shape).astype(np.float32),
                          np.zeros(b_shape, np.float32))
    model.assign_weights(weights, sess)
    return model


def build_model(name, sess, n_images=None):
    """``(model, X)`` for 'efficientnet_lite0', 'vgg16_random' or 'tiny' (tests/models.py),
    built in ``sess.graph``; X are the bundled sample photos (random images for tiny)."""
    if name == "tiny":
        sys.path.insert(0, os.path.join(ROOT, "tests"))
        from models import tiny_convnet
        model = tiny_convnet()
        X = np.random.default_rng(0).uniform(0, 255, (n_images or 3, 16, 16, 3))
        return model, X.astype(np.float32)
    from hw3_utils import get_model, load_samples
    model = vgg16_random(sess) if name == "vgg16_random" else get_model(sess, name)
    X, _, _ = load_samples()
    X = X.astype(np.float32)
    return model, (X[:n_images] if n_images else X)


# ---------------------------------------------------------------------------- table

def fmt(v, digits=3):
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}g}"


def why_slow(o, bs):
    """A profile line for a case that missed its goal."""
    return (f"profile: {100 * o['outside_median']:.0f}% of wall time outside sess.run "
            f"(numpy/Python between runs); the runs themselves at "
            f"{fmt(o['inside_ratio'])}x raw ({o['calls']} runs, "
            f"{o['rows'] / max(o['calls'], 1):.1f} rows/run at batch_size {bs})")


CASE_FIGURES = {
    "ig": "IntegratedGrad ({n} images x {S} steps)",
    "smoothgrad": "SmoothGrad ({n} images x {S} samples)",
    "expert_attribution": "InflDirected.expert_attribution ({ni} images)",
    "occlusion": "Occlusion ({no} image(s), {so}x{so} patches)",
    "insertion": "Insertion ({sc}px superpixels, step {st}, {nm} images)",
    "deletion": "Deletion ({sc}px superpixels, step {st}, {nm} images)",
    "n_ord": "N_Ord (M={M}, {nm} images)",
    "average_drop": "AverageDrop ({na} images)",
    "influence": "InflDirected.influence ({ni} images)",
}


def benchmark(model, sess, X, s, pair=True, memory_model=None, vc_cmd=None,
              completeness_set=True, notes=None, before=None, before_vc=None,
              progress=log):
    """Every figure for one model: returns Markdown lines (the section of the table).

    ``memory_model``: the name :func:`build_model` rebuilds in the memory subprocesses
    (None: not measured). ``vc_cmd``: ``(cmd, out_dir)`` for the hw3_vc row, the string
    reason when it is not measured, or None to leave the row out. ``before``: ``(rev,
    modules)`` of an earlier revision to measure beside (``before_vc``: its hw3_vc
    ``(cmd, out_dir, cwd)``).
    """
    rows = []   # (figure, before, after, goal, status, note)
    rev = before[0] if before else None

    def add(fig, val, goal, status, note="", old="—"):
        rows.append((fig, old, val, goal, status, note))

    c = predicted(model, sess, X)
    bs = s.batch_size
    progress(f"raw throughput at batch sizes {sorted(set(s.batch_sizes) | {bs})}")
    table = raw_throughput(model, sess, X, s)
    raw_f, raw_g = table[bs]["forward"], table[bs]["gradient"]
    best_f = max(table, key=lambda b: table[b]["forward"])
    best_g = max(table, key=lambda b: table[b]["gradient"])
    add(f"raw forward throughput (images/s) at batch_size {bs}", f"{raw_f:.1f}", "reference",
        "—", "all sizes: " + ", ".join(f"bs {b}: {table[b]['forward']:.1f}" for b in table)
        + f"; best bs {best_f}")
    add(f"raw forward+backward throughput (images/s) at batch_size {bs}", f"{raw_g:.1f}",
        "reference", "—", "all sizes: " + ", ".join(f"bs {b}: {table[b]['gradient']:.1f}"
                                                    for b in table) + f"; best bs {best_g}")

    use_pair = pair and pair_available()
    progress("speed cases (" + ("with" if use_pair else "without") + " PAIR"
             + (f", and revision {rev} beside" if rev else "") + ")")
    res, cases = speed_cases(model, sess, X, c, s, pair=use_pair,
                             before=before[1] if before else None, progress=progress)
    out, old = res["now"], res.get("before", {})
    fill = dict(n=len(cases.Xs), S=s.steps, ni=len(cases.Xi), no=len(cases.Xo),
                so=s.occlusion_superpixel, sc=s.curve_superpixel, st=s.curve_step,
                nm=len(cases.Xm), M=s.nord_M, na=len(cases.Xa))
    for name, (kind, goal) in Cases.GOALS.items():
        o = out[name]
        ok = o["ratio"] >= goal
        unit = ("gradient rows/s ÷ raw forward+backward" if kind == "gradient"
                else "model rows/s ÷ raw forward")
        note = f"{unit} at bs {bs}; rounds: " + ", ".join(fmt(r) for r in o["ratios"])
        if name in old:
            b = old[name]
            note += ("; before: rounds " + ", ".join(fmt(r) for r in b["ratios"])
                     + f", {100 * b['outside_median']:.0f}% of wall outside sess.run")
        if not ok:
            note += "; " + why_slow(o, bs)
        add(CASE_FIGURES[name].format(**fill) + f", bs {bs}",
            f"{fmt(o['ratio'])} ({o['rate']:.2f}/s)", f"≥ {goal}",
            "met" if ok else "**not met**", note,
            old=(f"{fmt(old[name]['ratio'])} ({old[name]['rate']:.2f}/s)" if name in old
                 else "—"))

    if vc_cmd is not None:
        quick = not isinstance(vc_cmd, str) and "--quick" in vc_cmd[0]
        fig = (f"hw3_vc.py{' --quick' if quick else ''}: wall ÷ (forwards/raw fwd + "
               "gradients/raw fwd+bwd)")
        if isinstance(vc_cmd, str):
            add(fig, "not measured", f"≤ {VC_GOAL}", "—", vc_cmd)
        else:
            old_val, old_note = "—", ""
            if before_vc is not None:
                try:
                    r_old, n_old = vc_row(before_vc[0], before_vc[1], s, raw_f, raw_g,
                                          progress, cwd=before_vc[2], profile=False)
                    old_val, old_note = fmt(r_old), f"; before ({rev}): {n_old}"
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    old_val, old_note = "failed", f"; before: {str(e).splitlines()[0][:200]}"
            try:
                ratio, note = vc_row(vc_cmd[0], vc_cmd[1], s, raw_f, raw_g, progress)
                add(fig, fmt(ratio), f"≤ {VC_GOAL}",
                    "met" if ratio <= VC_GOAL else "**not met**", note + old_note, old_val)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                add(fig, "failed", f"≤ {VC_GOAL}", "**not measured**",
                    str(e).splitlines()[0][:300], old_val)

    if memory_model is not None:
        def ratio_of(rv):
            a, b = memory_ratio(memory_model, s.memory_steps, s.memory_batch, rv, progress)
            inc = b["increment"] / a["increment"] if a["increment"] > 0 else float("inf")
            return inc, a, b
        inc, a, b = ratio_of(None)
        old_val, old_note = "—", ""
        if rev:
            o_inc, oa, ob = ratio_of(rev)
            old_val = fmt(o_inc)
            old_note = (f"; before: {oa['increment']:.0f} vs {ob['increment']:.0f} MiB, "
                        f"tracemalloc peak {oa['tracemalloc_peak']:.1f} vs "
                        f"{ob['tracemalloc_peak']:.1f} MiB")
        ok = inc <= 1.2
        add(f"peak memory of IG at {s.memory_steps[1]} steps ÷ at {s.memory_steps[0]} "
            f"(batch_size {s.memory_batch})", fmt(inc), "≤ 1.2",
            "met" if ok else "**not met**",
            f"peak RSS above the RSS before the call: {a['increment']:.0f} MiB vs "
            f"{b['increment']:.0f} MiB (whole process {a['peak']:.0f} vs {b['peak']:.0f} MiB, "
            f"{fmt(b['peak'] / a['peak'])}x); tracemalloc peak (numpy) "
            f"{a['tracemalloc_peak']:.1f} vs {b['tracemalloc_peak']:.1f} MiB; fresh "
            f"subprocess per setting, VmHWM reset before the call: {a['peak_reset']}"
            + old_note, old_val)

    if use_pair:
        # x_steps = 2^m + 1 puts PAIR's nodes k/2^m exactly on float32, so both feed the
        # very same path points; at other x_steps the points differ by float rounding,
        # which flips ReLU6 kinks (see the note)
        S = s.steps
        S_exact = 2 ** max(1, int(round(np.log2(max(S - 1, 2))))) + 1
        n = len(cases.Xs)
        progress(f"PAIR output agreement (x_steps {S_exact} and {S})")
        agree = pair_agreement(model, sess, X[:n], c[:n], S_exact, bs)
        agree_s = pair_agreement(model, sess, X[:n], c[:n], S, bs) if S != S_exact else agree
        for name, fig, key in (
                ("pair_ig", f"IntegratedGrad vs PAIR IntegratedGradients (x_steps={S}, "
                            f"PAIR batch_size={bs})", "ig"),
                ("pair_ig_bs1", f"IntegratedGrad vs PAIR IntegratedGradients (x_steps={S}, "
                                "PAIR default batch_size=1)", "ig"),
                ("pair_smoothgrad", f"SmoothGrad vs PAIR GetSmoothedMask (nsamples={S})",
                 "smoothgrad")):
            ours = "ig" if key == "ig" else "smoothgrad"
            sp = [x / y for x, y in zip(out[ours]["rates"], out[name]["rates"])]
            speed = float(np.median(sp))
            status = "met" if speed >= 1.5 and agree[key] <= 1e-4 else "**not met**"
            note = (f"speed-up per round: {', '.join(fmt(v) for v in sp)}; PAIR at "
                    f"{fmt(out[name]['ratio'])}x raw; outputs on the same rule and inputs: ")
            if key == "ig":
                note += (f"relative L2 difference {agree[key]:.1e} at {S_exact} steps (path "
                         f"points exact in float32), {agree_s[key]:.1e} at {S} steps; "
                         "PAIR's linspace(0,1,S) equal-weight rule = (N·IG_left(N) + "
                         "(x−x_b)⊙∇f(x))/S, N=S−1")
            else:
                note += (f"relative L2 difference {agree[key]:.1e} with the same stateless "
                         f"noise at {S_exact} samples, both one sample per run; "
                         f"{agree['smoothgrad_bs']:.1e} with the toolkit at batch {bs}")
            if speed < 1.5:
                note += ("; why: both run the same model passes and PAIR already reaches "
                         f"{fmt(out[name]['ratio'])}x raw here, so no implementation can be "
                         "1.5x faster (the toolkit's rate is capped by the raw model)")
            add(fig, f"{fmt(speed)}x faster", "≥ 1.5x faster, outputs equal to 1e-4", status,
                note)
    else:
        add("IntegratedGrad / SmoothGrad vs PAIR saliency", "not measured", "≥ 1.5x faster",
            "—", "saliency==0.2.1 not importable (pip install -r benchmarks/requirements.txt)")
    o = out["homework_loop"]
    sp = [x / y for x, y in zip(out["ig"]["rates"], o["rates"])]
    add("IntegratedGrad vs the homework loop (one sess.run per step, batch 1)",
        f"{fmt(float(np.median(sp)))}x faster", "report", "—",
        f"homework loop at {fmt(o['ratio'])}x raw forward+backward ({o['rate']:.2f} "
        f"gradients/s, {100 * o['outside_median']:.0f}% of wall outside sess.run)")

    res_c = None
    if completeness_set:
        Xc = X if not s.completeness_images else X[:s.completeness_images]
        res_c = completeness(model, sess, Xc, c[:len(Xc)], s.budgets, batch_size=bs,
                             progress=progress)
        add(f"IG completeness error at {', '.join(map(str, s.budgets))} gradients, per rule",
            "see the completeness table below", "issue 8: median ≤ 1%, worst ≤ 5% at ≤ 256; "
            "≥ 3x lower median than right-Riemann at 64", "report",
            " ".join(x.replace("|", "/") for x in completeness_verdict(res_c, s.budgets)))

    head = f"| figure | before ({rev}) | after | goal | status | notes |" if rev else \
        "| figure | before | after | goal | status | notes |"
    lines = [head, "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        lines.append("| " + " | ".join(str(x).replace("|", "/").replace("\n", " ")
                                       for x in row) + " |")
    if res_c is not None:
        lines += ["", "#### Completeness error versus budget (issue 8)", ""]
        lines += completeness_markdown(res_c, s.budgets, len(Xc))
    if notes:
        lines += [""] + list(notes)
    return lines


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    from hw3_evaluation import write_text
    write_text(path, text)


def header(args, s):
    import tensorflow as tf
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
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
    p.add_argument("--no-completeness", action="store_true",
                   help="skip the completeness table (issue 8)")
    p.add_argument("--completeness-images", type=int, default=None,
                   help="limit the completeness table to the first N sample images "
                        "(default: all of them; --quick: 2)")
    p.add_argument("--rounds", type=int, default=None, help="repeats of each speed case")
    p.add_argument("--_memory-probe", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    if args._memory_probe:
        name, steps, bs = args._memory_probe[:3]
        rev = args._memory_probe[3] if len(args._memory_probe) > 3 else None
        print(json.dumps(memory_probe(name, int(steps), int(bs), rev)))
        return 0
    from hw3_attribution import new_session
    s = QUICK if args.quick else FULL
    if args.completeness_images is not None:
        s = replace(s, completeness_images=args.completeness_images)
    if args.rounds:
        s = replace(s, rounds=args.rounds)
    before = (args.before, load_before(args.before)) if args.before else None
    lines = header(args, s)
    models = ["efficientnet_lite0"] + (["vgg16_random"] if args.vgg16 else [])
    t_start = time.time()
    cleanup = []
    for name in models:
        log(f"=== {name} ===")
        sess = new_session(tf.Graph())
        with sess.graph.as_default():
            model, X = build_model(name, sess)
            vc, before_vc = None, None
            if name == "efficientnet_lite0" and not args.no_vc:
                quick = ["--quick"] if (args.vc_quick or args.quick) else []
                out_dir = tempfile.mkdtemp(prefix="bench_vc_")
                cleanup.append(out_dir)
                vc = ([sys.executable, os.path.join(ROOT, "hw3_vc.py")] + quick
                      + ["--no-progress", "--out", out_dir, "--model", "efficientnet_lite0",
                         "--data", "bundled"], out_dir)
                if args.before:
                    tree = before_tree(args.before)
                    old_out = tempfile.mkdtemp(prefix="bench_vc_before_")
                    cleanup += [tree, old_out]
                    before_vc = ([sys.executable, os.path.join(tree, "hw3_vc.py")] + quick
                                 + ["--no-progress", "--out", old_out, "--model",
                                    "efficientnet_lite0"], old_out, tree)
            title = ("EfficientNet-Lite0 (the default model, bundled weights)"
                     if name == "efficientnet_lite0" else
                     "VGG16 with random He-initialised weights")
            notes = None
            if name == "vgg16_random":
                notes = ["Completeness is not measured on VGG16 with random weights "
                         "(its scores mean nothing); hw3_vc.py runs on the default model."]
            section = benchmark(model, sess, X, s, pair=not args.no_pair,
                                memory_model=name, vc_cmd=vc,
                                completeness_set=(name == "efficientnet_lite0"
                                                  and not args.no_completeness),
                                notes=notes, before=before, before_vc=before_vc)
        sess.close()
        lines += [f"## {title}", ""] + section + [""]
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
