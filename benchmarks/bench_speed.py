"""The speed figures: every method and metric as rows per second against the raw model,
measured side by side (and beside an earlier revision's modules with ``--before``)."""
import time
from collections import OrderedDict

import numpy as np

from bench_common import (GRADED, TimedSession, fmt, has_homework_api, log, raw_rate,
                          table_row)


def pair_available():
    try:
        import saliency.tf1  # noqa: F401
        return True
    except Exception:  # not installed (it is a benchmark-only dependency)
        return False


class Cases:
    """The timed workloads, on the toolkit as it is now (or on ``mods``, an earlier
    revision's graded modules with the same API). Each case returns ``(work, kind)``: the
    rows of ``kind`` ('gradient' or 'forward') that it did, which its rate is counted in.
    ``counted`` cases take their rows from the session proxy."""

    GOALS = OrderedDict([  # name -> (kind, goal, issue)
        ("ig", ("gradient", 0.95)), ("smoothgrad", ("gradient", 0.95)),
        ("expert_attribution", ("gradient", 0.95)), ("occlusion", ("forward", 0.95)),
        ("insertion", ("forward", 0.95)), ("deletion", ("forward", 0.95)),
        ("n_ord", ("forward", 0.95)), ("average_drop", ("forward", 0.95)),
        ("influence", ("forward", 0.9))])

    def __init__(self, model, sess, X, c, s, pair=True, mods=None):
        import tensorflow as tf
        if mods is None:
            import hw3_attribution
            import hw3_evaluation
            import hw3_infl
            mods = {"hw3_attribution": hw3_attribution, "hw3_infl": hw3_infl,
                    "hw3_evaluation": hw3_evaluation}
        A, I, self.E = (mods[n] for n in GRADED)
        self.model, self.X, self.c, self.s = model, X, c, s
        self.tsess = TimedSession(sess, model.imgs)
        x, out = model.imgs, model.logits
        kw = dict(progress=False)
        layer = model.layers[getattr(model, "default_layers", {}).get("influence", "fc1")]
        with sess.graph.as_default():
            self.ig = A.IntegratedGrad(self.tsess, x, out, None, **kw)
            self.sg = A.SmoothGrad(self.tsess, x, out, None, **kw)
            self.occ = A.Occlusion(self.tsess, x, out, None, **kw)
            self.infl = I.InflDirected(self.tsess, x, layer, out, I.qoi_predicted(), **kw)
            self.layer_name = layer.name
            self.ops = A.model_ops(x, out)
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
        return self._counted(lambda: self.E.N_Ord(self.tsess, self.Am, self.Xm, self.model.imgs,
                                           self.model.logits, self.cm, self.s.nord_M,
                                           batch_size=self.s.batch_size, progress=False))

    def _curve(self, fn):
        return self._counted(lambda: fn(self.tsess, self.Am, self.Xm, self.model.imgs,
                                        self.model.logits, self.cm,
                                        superpixel_size=self.s.curve_superpixel,
                                        step=self.s.curve_step, batch_size=self.s.batch_size,
                                        progress=False))

    def case_insertion(self):
        return self._curve(self.E.Insertion)

    def case_deletion(self):
        return self._curve(self.E.Deletion)

    def case_average_drop(self):
        return self._counted(lambda: self.E.AverageDrop(self.tsess, self.Aa, self.Xa,
                                                 self.model.imgs, self.model.logits, self.ca,
                                                 batch_size=self.s.batch_size,
                                                 progress=False))


class BeforeCases(Cases):
    """The same workloads on the graded modules of an earlier revision with the old API
    (classes built from ``(model, sess)``, metrics as classes; e94ed74 and before). Only
    the cases that revision has; PAIR and the homework loop do not depend on the toolkit
    and are not repeated."""

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


class SameAPICases(Cases):
    """The workloads on an earlier revision's graded modules that already have the
    homework's API (``Method(sess, input_tensor, output_tensor, target_class)``): the same
    cases as now; PAIR and the homework loop are not repeated."""

    def __init__(self, model, sess, X, c, s, mods):
        super().__init__(model, sess, X, c, s, pair=False, mods=mods)

    def names(self):
        return BeforeCases.names(self)


def before_cases(model, sess, X, c, s, mods):
    """The cases of an earlier revision's modules, in the API that revision has."""
    if has_homework_api(mods["hw3_attribution"]):
        return SameAPICases(model, sess, X, c, s, mods)
    return BeforeCases(model, sess, X, c, s, mods)


def speed_cases(model, sess, X, c, s, pair=True, before=None, progress=log, cases=None):
    """Run every case ``s.rounds`` times, each followed by a raw measurement of its kind at
    ``s.batch_size``; with ``before`` (modules from :func:`load_before`) the earlier
    revision's cases run in the same rounds, each right after its current twin.
    ``cases``: the workloads to run (a :class:`Cases` of one's own, e.g. a subset of the
    cases on another model: ``bench_own_model``); default: every case of :class:`Cases`.

    Returns ``{'now': {case: stats}, 'before': {case: stats}}`` with stats ``{'ratio':
    median of rate / raw rate, 'rate': median rate, 'outside': median fraction of wall time
    outside sess.run, 'inside_ratio': median rows/s inside sess.run / raw rate, 'calls',
    'rows', 'ratios', 'rates'}``.
    """
    sets = {"now": cases if cases is not None else Cases(model, sess, X, c, s, pair=pair)}
    if before is not None:
        sets["before"] = before_cases(model, sess, X, c, s, before)
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




def speed_rows(res, cases, s):
    """The table rows of the speed cases (``res`` from :func:`speed_cases`)."""
    out, old, bs = res["now"], res.get("before", {}), s.batch_size
    fill = dict(n=len(cases.Xs), S=s.steps, ni=len(cases.Xi), no=len(cases.Xo),
                so=s.occlusion_superpixel, sc=s.curve_superpixel, st=s.curve_step,
                nm=len(cases.Xm), M=s.nord_M, na=len(cases.Xa))
    rows = []
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
        rows.append(table_row(
            CASE_FIGURES[name].format(**fill) + f", bs {bs}",
            f"{fmt(o['ratio'])} ({o['rate']:.2f}/s)", f"≥ {goal}",
            "met" if ok else "**not met**", note,
            before=(f"{fmt(old[name]['ratio'])} ({old[name]['rate']:.2f}/s)" if name in old
                    else "—")))
    return rows


def homework_loop_row(out):
    """IntegratedGrad against IG written as the homework's starter loop."""
    o = out["homework_loop"]
    sp = [x / y for x, y in zip(out["ig"]["rates"], o["rates"])]
    return table_row("IntegratedGrad vs the homework loop (one sess.run per step, batch 1)",
                     f"{fmt(float(np.median(sp)))}x faster", "report", "—",
                     f"homework loop at {fmt(o['ratio'])}x raw forward+backward "
                     f"({o['rate']:.2f} gradients/s, {100 * o['outside_median']:.0f}% of "
                     "wall outside sess.run)")
