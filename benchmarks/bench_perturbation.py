#!/usr/bin/env python
"""The perturbation methods' figures (issue 25): LIME, KernelSHAP, RISE and feature
ablation against the model's own forward rate, and beside lime's and shap's explainers.

    .venv/bin/python benchmarks/bench_perturbation.py [--quick] [--images N] [--rounds R]
                                                      [--out FILE]

(a) **Rate.** Each method on the images in one call (the toolkit's default
``batch_size=16``, the predicted classes, the segments computed once beforehand and
passed in), its model rows per second (counted by the session proxy: the rows the graph
builds, plus any forward of the images themselves) ÷ the bare model's forward rate at the
same batch size, the mean of two measurements just before and just after the call over as
many rows (up to 1024), in the same round; the median over rounds. Goal ≥ 0.95. The
segmentation is timed apart (it is scikit-image's, the same for lime's explainer).

(b) **Beside the references**, on the same model, images, classes, segments (label maps,
given to both sides), hidden colour (black) and budgets, with the model called through a
numpy function (``sess.run`` of the logits on a batch of masked images that numpy built):
``lime.lime_image.LimeImageExplainer.explain_instance`` (lime 0.2.0.1; ``num_samples``,
``batch_size=16``, ``hide_color=0``, every segment a feature) against :class:`LIME`;
``shap.KernelExplainer`` (shap 0.51; one background row of zeros, the image the row of
ones over the segments, ``nsamples`` and ``l1_reg=False``, numpy's global seed set as
ours) against :class:`KernelSHAP`; and ``shap.explainers.Partition`` with a
``shap.maskers.Partition`` over the same segments (its hierarchy: Ward's clustering of the
segments' centroids, a spatial tree as shap's image masker builds one over pixels;
``max_evals``, ``batch_size=16``) against ours on as many model rows: ``PartitionSHAP``
where :data:`OURS` has it, else :class:`KernelSHAP` with that many coalitions (the same
game at the same cost in model rows, another estimator; the row says which). The
reference explains one image per call (its API); ours all the images in one call;
seconds per image, theirs ÷ ours per round, the median over rounds. The maps are compared
where the definitions agree (LIME's coefficients, KernelSHAP's values: the same draws
from the same seed). The first round runs the reference then ours, the next ours first,
and so on. lime and shap are optional
imports of this benchmark only (benchmarks/README.md says how to install them); a row
says why when one is missing.
"""
import argparse
import os
import sys
import time
import warnings
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from bench_common import TimedSession, fmt, log, raw_rate, table_row  # noqa: E402

GOAL = 0.95           # masked rows/s ÷ raw forward rows/s
SEED = 0


@dataclass(frozen=True)
class Budgets:
    """Budgets per image: the references' defaults (LIME 1000 samples, KernelSHAP shap's
    ``'auto'`` = ``2S + 2048`` coalitions, RISE 4000 masks, shap's Partition
    ``max_evals=500``); ``segments``: the kind of ``segment_labels`` (lime's quickshift)."""
    lime_samples: int = 1000
    shap_samples: object = None
    rise_masks: int = 4000
    partition_evals: int = 500
    segments: str = "quickshift"


FULL = Budgets()
QUICK = Budgets(lime_samples=32, shap_samples=32, rise_masks=32, partition_evals=32)


def run_budgets(s):
    """The budgets of ``run.py``'s settings ``s`` (``bench_common.Settings``):
    ``s.perturbation``, a :class:`Budgets`, ``'quick'`` or None (:data:`FULL`)."""
    if isinstance(s.perturbation, Budgets):
        return s.perturbation
    return QUICK if s.perturbation == "quick" else FULL


@dataclass(frozen=True)
class Ours:
    """One method of ours: its class in ``attrkit.methods.perturbation``, its keywords
    from the :class:`Budgets`, whether it takes the segments."""
    cls: str
    keywords: object            # Budgets -> dict
    segments: bool = True


# The methods measured, one entry each; PartitionSHAP (another branch) is one more entry,
#     "PartitionSHAP": Ours("PartitionSHAP", lambda b: dict(max_evals=b.partition_evals)),
# and then the Partition row compares shap's Partition with it.
OURS = {
    "LIME": Ours("LIME", lambda b: dict(num_samples=b.lime_samples)),
    "KernelSHAP": Ours("KernelSHAP", lambda b: dict(num_samples=b.shap_samples)),
    "RISE": Ours("RISE", lambda b: dict(num_masks=b.rise_masks), segments=False),
    "FeatureAblation": Ours("FeatureAblation", lambda b: {}),
}


def segments_of(X, kind):
    """``(labels [N, H, W], seconds per image)``: the images' segments, computed once."""
    from attrkit.methods.segmentation import segment_labels
    t = time.perf_counter()
    labels, _ = segment_labels(kind, X)
    return labels, (time.perf_counter() - t) / len(X)


class OurMethods:
    """The methods of :data:`OURS` on one graph, called through a timed session proxy."""

    def __init__(self, model, sess, names=None):
        from attrkit.methods import perturbation
        self.tsess = TimedSession(sess, model.imgs)
        with sess.graph.as_default():
            self.methods = {name: getattr(perturbation, OURS[name].cls)(
                self.tsess, model.imgs, model.logits, None, progress=False)
                for name in (names or OURS)}

    def __call__(self, name, X, c, labels, budgets, batch_size, **extra):
        """The method's maps (and details) of the images, with the budgets."""
        kw = dict(OURS[name].keywords(budgets), **extra)
        if OURS[name].segments:
            kw["segments"] = labels
        with warnings.catch_warnings():   # few coalitions for many segments: singular
            warnings.simplefilter("ignore", RuntimeWarning)
            return self.methods[name](X, target_class=c, seed=SEED, batch_size=batch_size,
                                      return_details=True, **kw)


# ---------------------------------------------------------------- (a) the rates

def rate_rounds(model, sess, X, c, labels, budgets, batch_size, rounds, progress=log):
    """``{name: {"ratios", "rates", "rows", "calls", "outside", "seconds", "raw"}}``: each
    method's model rows/s ÷ the raw forward rate measured just before and just after it
    (their mean), per round."""
    ours = OurMethods(model, sess)
    warm = Budgets(batch_size, batch_size, batch_size, batch_size, budgets.segments)
    for name in ours.methods:        # the first run at each shape allocates: warm up
        ours(name, X[:1], c[:1], labels[:1], warm, batch_size)
    raw_rate(model, sess, X, "forward", batch_size, 1)
    res = {name: {"ratios": [], "rates": [], "seconds": [], "outside": [], "raw": []}
           for name in OURS}
    rows = {name: batch_size for name in OURS}      # the last call's, for the raw span
    for r in range(rounds):
        for name in ours.methods:
            span = min(max(2 * batch_size, rows[name]), 1024)
            before = raw_rate(model, sess, X, "forward", batch_size, span)
            ours.tsess.reset()
            t0 = time.perf_counter()
            ours(name, X, c, labels, budgets, batch_size)
            wall = time.perf_counter() - t0
            rows[name], runs = ours.tsess.rows, ours.tsess.calls
            after = raw_rate(model, sess, X, "forward", batch_size, span)
            raw = (before + after) / 2     # the machine's drift during the call, halved
            o = res[name]
            o["rates"].append(rows[name] / wall)
            o["ratios"].append(rows[name] / wall / raw)
            o["seconds"].append(wall)
            o["outside"].append(1.0 - ours.tsess.run_seconds / wall)
            o["raw"].append((before, after))
            o["rows"], o["calls"] = rows[name], runs
            progress(f"round {r + 1}/{rounds} {name}: {rows[name]} rows in {wall:.1f} s = "
                     f"{rows[name] / wall / raw:.3f} x raw forward ({runs} runs; raw "
                     f"{before:.1f} before, {after:.1f} after)")
    return res


def composition_share(model, sess, X, c, labels, batch_size, reps=8, rounds=3):
    """Where a masked row's time beyond the model goes: the seconds of building a batch of
    ``batch_size`` rows in the graph alone (their sum fetched, no model) ÷ the bare model's
    forward of a prepared batch of that size, timed back to back (``reps`` runs each,
    ``rounds`` times, the median): ``{"coalitions": share, "grid": share}`` for LIME's and
    KernelSHAP's rows (segments kept or hidden, black) and for RISE's (a soft 7 x 7 grid).
    This uses the row engine's inside (``hw3_attribution``), as a diagnosis only."""
    import tensorflow as tf
    from hw3_attribution import ImageBank, Rows, _chunk_feed
    from attrkit.methods.perturbation import LIME, rise_shifts
    with sess.graph.as_default():
        ops = LIME(sess, model.imgs, model.logits, None, progress=False)._runner.row_ops()
        built = tf.reduce_sum(ops.rows)
    image, target = np.zeros(batch_size, int), np.full(batch_size, int(c[0]))
    on = np.random.RandomState(SEED).randint(0, 2, (batch_size, int(labels[0].max()) + 1))
    banks = {"coalitions": ImageBank(X[:1], None, ranks=labels[:1]), "grid": ImageBank(X[:1])}
    rows = {"coalitions": Rows.coalitions(image, banks["coalitions"].baseline_of(image), on,
                                          target),
            "grid": Rows.gridded(image, banks["grid"].baseline_of(image),
                                 np.stack([np.full(batch_size, SEED),
                                           np.arange(batch_size)], 1),
                                 rise_shifts(np.random.RandomState(SEED), batch_size, 7,
                                             *X.shape[1:3]), 7, 0.5, target)}
    batch = np.ascontiguousarray(X[np.arange(batch_size) % len(X)], np.float32)

    def seconds(fetch, feed):
        sess.run(fetch, feed)
        t = time.perf_counter()
        for _ in range(reps):
            sess.run(fetch, feed)
        return (time.perf_counter() - t) / reps

    out = {}
    for kind in rows:
        feed, _ = _chunk_feed(ops, rows[kind], banks[kind], slice(0, batch_size), None)
        out[kind] = float(np.median([seconds(built, feed) / seconds(model.logits,
                                                                    {model.imgs: batch})
                                     for _ in range(rounds)]))
    return out


def rate_rows(res, n_images, budgets, batch_size, segment_seconds, composition=None):
    """The table rows of (a); ``composition``: :func:`composition_share`'s, noted."""
    rows = []
    for name, o in res.items():
        ratio = float(np.median(o["ratios"]))
        budget = ", ".join(f"{k}={v}" for k, v in OURS[name].keywords(budgets).items()
                           if v is not None) or "one row per segment"
        if name == "KernelSHAP" and budgets.shap_samples is None:
            budget = "num_samples=None (2S + 2048)"
        note = (f"model rows/s ÷ raw forward at bs {batch_size} (the mean of the raw rate "
                f"measured just before and just after); {o['rows']} rows in {o['calls']} "
                f"runs per call; rounds: " + ", ".join(fmt(v) for v in o["ratios"])
                + "; raw rows/s before / after: "
                + ", ".join(f"{b:.0f} / {a:.0f}" for b, a in o["raw"])
                + f"; {100 * float(np.median(o['outside'])):.0f}% of the wall time outside "
                f"sess.run (sampling, solving, painting)")
        if o["calls"] * batch_size > 1.05 * o["rows"]:
            note += (f"; partly filled batches: {o['rows']} rows in {o['calls']} runs of at "
                     f"most {batch_size} (the most this call can reach is "
                     f"{o['rows'] / (o['calls'] * batch_size):.2f} of the raw rate)")
        kind = "grid" if name == "RISE" else "coalitions"
        if composition and name != "FeatureAblation":
            note += (f"; building a batch of these rows in the graph alone takes "
                     f"{composition[kind]:.3f} of the bare model's forward of a batch "
                     f"(timed back to back)")
        if OURS[name].segments:
            note += (f"; segments ({budgets.segments}) computed beforehand, "
                     f"{segment_seconds:.2f} s per image, not counted")
        rows.append(table_row(f"{name} ({n_images} images, {budget}), bs {batch_size}",
                              f"{fmt(ratio)} ({float(np.median(o['rates'])):.1f} rows/s)",
                              f"≥ {GOAL}", "met" if ratio >= GOAL else "**not met**", note))
    return rows


# --------------------------------------------------------------- (b) the references

def references_available():
    """``{name: None or why it cannot run}`` for lime and shap."""
    out = {}
    for name, module in (("lime", "lime.lime_image"), ("shap", "shap")):
        try:
            __import__(module)
            out[name] = None
        except Exception as e:   # optional: benchmark-only packages
            out[name] = f"{module} not importable ({type(e).__name__}: {e})"
    return out


class NumpyModel:
    """The model as the references call it: a numpy function of a batch, one ``sess.run``
    of the logits per ``batch_size`` rows; it counts the rows."""

    def __init__(self, model, sess, batch_size):
        self.model, self.sess, self.batch_size = model, sess, batch_size
        self.rows = 0

    def logits(self, images):
        """``[K, classes]`` logits of images ``[K, H, W, C]`` (RGB 0-255)."""
        images = np.asarray(images, np.float32)
        self.rows += len(images)
        return np.concatenate([self.sess.run(self.model.logits,
                                             {self.model.imgs: images[i:i + self.batch_size]})
                               for i in range(0, len(images), self.batch_size)])

    def game(self, x, labels, target):
        """``f(Z)``: the target's logit of ``x`` with the segments that are 0 in each row
        of ``Z`` ``[K, S]`` black, the images built in numpy a batch at a time."""
        def f(Z):
            Z = np.asarray(Z)
            out = []
            for i in range(0, len(Z), self.batch_size):
                keep = Z[i:i + self.batch_size][:, labels] > 0.5        # [b, H, W]
                out.append(self.logits(np.where(keep[..., None], x, 0.0))[:, target])
            return np.concatenate(out) if out else np.zeros(0)
        return f


def lime_reference(numpy_model, x, labels, target, budgets, batch_size):
    """lime's ``explain_instance`` on one image: the coefficients per segment ``[S]``."""
    from lime import lime_image
    explainer = lime_image.LimeImageExplainer(random_state=SEED)
    exp = explainer.explain_instance(
        np.asarray(x, np.float64), numpy_model.logits, labels=(int(target),), top_labels=None,
        hide_color=0, num_features=100000, num_samples=budgets.lime_samples,
        batch_size=batch_size, segmentation_fn=lambda image: labels)
    coef = np.zeros(int(labels.max()) + 1)
    for segment, value in exp.local_exp[int(target)]:
        coef[segment] = value
    return coef


def kernel_reference(numpy_model, x, labels, target, budgets, batch_size):
    """shap's ``KernelExplainer`` over the segments: the Shapley values ``[S]``."""
    import shap
    s = int(labels.max()) + 1
    explainer = shap.KernelExplainer(numpy_model.game(x, labels, target), np.zeros((1, s)))
    np.random.seed(SEED)                 # shap draws from numpy's global generator
    n = "auto" if budgets.shap_samples is None else budgets.shap_samples
    return np.asarray(explainer.shap_values(np.ones((1, s)), nsamples=n, l1_reg=False,
                                            silent=True)).reshape(-1)


def segment_tree(labels):
    """A hierarchy of the segments for shap's Partition masker: Ward's linkage of their
    centroids ``[S - 1, 4]`` (nearby segments merge first, as shap's image masker splits
    the image into nearby blocks)."""
    from scipy.cluster.hierarchy import linkage
    s = int(labels.max()) + 1
    ys, xs = np.indices(labels.shape)
    count = np.bincount(labels.ravel(), minlength=s)
    centroids = np.stack([np.bincount(labels.ravel(), ys.ravel(), s) / count,
                          np.bincount(labels.ravel(), xs.ravel(), s) / count], 1)
    return linkage(centroids, method="ward")


def partition_reference(numpy_model, x, labels, target, budgets, batch_size):
    """shap's Partition explainer over the segments: the Owen values ``[S]``."""
    import shap
    s = int(labels.max()) + 1
    masker = shap.maskers.Partition(np.zeros((1, s)), clustering=segment_tree(labels))
    explainer = shap.explainers.Partition(numpy_model.game(x, labels, target), masker)
    values = explainer(np.ones((1, s)), max_evals=budgets.partition_evals,
                       batch_size=batch_size, silent=True).values
    return np.asarray(values).reshape(-1)


REFERENCES = (  # (name, package, their function, ours, the details compared with theirs)
    ("lime LimeImageExplainer", "lime", lime_reference, "LIME", "coefficients"),
    ("shap KernelExplainer", "shap", kernel_reference, "KernelSHAP", "values"),
    ("shap Partition", "shap", partition_reference, "PartitionSHAP", None),
)


def reference_rounds(model, sess, X, c, labels, budgets, batch_size, rounds, progress=log):
    """``{name: {"theirs": [s/image], "ours": [...], "rows": (theirs, ours), "diff",
    "ours_name"}}`` for the references that can run, and ``{name: why}`` for the others."""
    available = references_available()
    run, missing = [r for r in REFERENCES if available[r[1]] is None], {}
    for name, package, *_ in REFERENCES:
        if available[package] is not None:
            missing[name] = available[package]
    if not run:
        return {}, missing
    numpy_model = NumpyModel(model, sess, batch_size)
    ours = OurMethods(model, sess, [n for n in ("LIME", "KernelSHAP", "PartitionSHAP")
                                    if n in OURS])
    res = {}
    for name, _, theirs_fn, ours_name, compare in run:
        progress(f"{name}: warm-up (one image, {batch_size} rows each, untimed)")
        warm = Budgets(batch_size, batch_size, batch_size, 4 * batch_size, budgets.segments)
        theirs_fn(numpy_model, X[0], labels[0], c[0], warm, batch_size)
        r = res[name] = {"theirs": [], "ours": [], "rows": None, "diff": None}
        call, extra = ours_name, {}
        for k in range(rounds):
            first = "theirs" if k % 2 == 0 else "ours"      # the order alternates
            progress(f"{name}: round {k + 1} of {rounds}, {first} first ({len(X)} images)")
            for side in ((("theirs", "ours") if first == "theirs" else ("ours", "theirs"))):
                if side == "theirs":
                    numpy_model.rows = 0
                    t = time.perf_counter()
                    ref = [theirs_fn(numpy_model, x, lab, t_, budgets, batch_size)
                           for x, lab, t_ in zip(X, labels, c)]
                    r["theirs"].append((time.perf_counter() - t) / len(X))
                    # no PartitionSHAP of ours yet: KernelSHAP on as many model rows per
                    # image as shap's Partition used (f(x) and v(∅) are 2 of them)
                    if ours_name not in OURS and not extra:
                        call = "KernelSHAP"
                        extra = {"num_samples": max(1, numpy_model.rows // len(X) - 2)}
                else:
                    ours.tsess.reset()
                    t = time.perf_counter()
                    _, details = ours(call, X, c, labels, budgets, batch_size, **extra)
                    r["ours"].append((time.perf_counter() - t) / len(X))
            r["rows"], r["ours_name"] = (numpy_model.rows, ours.tsess.rows), call
            if compare:
                mine, want = np.concatenate(details[compare]), np.concatenate(ref)
                r["diff"] = float(np.linalg.norm(mine - want) / max(np.linalg.norm(want),
                                                                     1e-300))
            if extra:
                r["ours_name"] = f"KernelSHAP, num_samples={extra['num_samples']}"
    return res, missing


def reference_rows(res, missing, n_images, budgets, batch_size):
    """The table rows of (b)."""
    budget = {"lime LimeImageExplainer": f"num_samples={budgets.lime_samples}",
              "shap KernelExplainer": "nsamples=" + ("'auto' (2S + 2048)"
                                                     if budgets.shap_samples is None
                                                     else str(budgets.shap_samples)),
              "shap Partition": f"max_evals={budgets.partition_evals}"}
    rows = []
    for name, _, _, ours_name, _ in REFERENCES:
        figure = (f"{name} vs ours ({n_images} images, {budget[name]}, {budgets.segments} "
                  "segments; seconds per image, theirs ÷ ours)")
        if name in missing:
            rows.append(table_row(figure, "not measured", "≥ 1x", "—", missing[name]))
            continue
        r = res[name]
        ratios = [t / o for t, o in zip(r["theirs"], r["ours"])]
        speed = float(np.median(ratios))
        note = (f"ours: {r['ours_name']}; s/image theirs "
                f"{', '.join(fmt(v) for v in r['theirs'])}, ours "
                f"{', '.join(fmt(v) for v in r['ours'])}; per round "
                f"{', '.join(fmt(v) for v in ratios)}x; model rows theirs {r['rows'][0]}, "
                f"ours {r['rows'][1]} (all images, the last round), both at batch_size "
                f"{batch_size}")
        if r["diff"] is not None:
            note += f"; maps: relative L2 difference {r['diff']:.1e} (same draws, same seed)"
        elif ours_name not in OURS:
            note += ("; no PartitionSHAP of ours yet: the maps are different estimators "
                     "(Owen values of shap's tree, Shapley values of ours) and are not "
                     "compared")
        rows.append(table_row(figure, f"{fmt(speed)}x", "≥ 1x",
                              "met" if speed >= 1 else "**not met**", note))
    return rows


# ---------------------------------------------------------------------------- table

def perturbation_rows(model, sess, X, c, budgets, batch_size, rounds, references=True,
                      progress=log):
    """Every row of this figure (``bench_common.table_row``): (a), then (b)."""
    labels, segment_seconds = segments_of(X, budgets.segments)
    progress(f"perturbation: {len(X)} images, {budgets.segments} segments "
             f"({', '.join(str(int(m.max()) + 1) for m in labels)}), "
             f"{segment_seconds:.2f} s per image")
    res = rate_rounds(model, sess, X, c, labels, budgets, batch_size, rounds, progress)
    composition = composition_share(model, sess, X, c, labels, batch_size)
    progress("building the rows alone ÷ the bare forward, per batch: " + ", ".join(
        f"{k} {v:.3f}" for k, v in composition.items()))
    rows = rate_rows(res, len(X), budgets, batch_size, segment_seconds, composition)
    if references:
        ref, missing = reference_rounds(model, sess, X, c, labels, budgets, batch_size,
                                        rounds, progress)
        rows += reference_rows(ref, missing, len(X), budgets, batch_size)
    return rows


def machine():
    """Where and when: the command, host, CPUs, TensorFlow, commit, load average."""
    import platform
    import tensorflow as tf
    from bench_common import git_commit, loadavg
    load = loadavg()
    return (f"`{' '.join(['benchmarks/bench_perturbation.py'] + sys.argv[1:])}` on "
            f"{platform.node()} ({os.cpu_count()} CPUs), TensorFlow {tf.__version__}, "
            f"commit {git_commit()}, {time.strftime('%Y-%m-%d %H:%M')}, load average at "
            f"start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.")


def versions():
    """The references' versions, or why they are missing."""
    out = []
    for name in ("lime", "shap", "numba"):
        try:
            from importlib.metadata import version
            out.append(f"{name} {version(name)}")
        except Exception:
            out.append(f"{name} not installed")
    return ", ".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="1 image, 32 samples / coalitions / masks / evaluations, 1 round")
    p.add_argument("--images", type=int, default=3, help="sample images (default 3)")
    p.add_argument("--rounds", type=int, default=2, help="rounds (default 2)")
    p.add_argument("--lime-samples", type=int, default=None, help="default: lime's 1000")
    p.add_argument("--shap-samples", type=int, default=None,
                   help="KernelSHAP coalitions (default: shap's 'auto', 2S + 2048)")
    p.add_argument("--rise-masks", type=int, default=None, help="default: 4000")
    p.add_argument("--partition-evals", type=int, default=None,
                   help="shap Partition's max_evals (default: shap's 500)")
    p.add_argument("--segments", default=None, help="default: quickshift (lime's)")
    p.add_argument("--no-references", action="store_true", help="only (a)")
    p.add_argument("--out", default=None, help="also write the Markdown table here")
    args = p.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")     # lime 0.2.0.1's bar over its samples
    import dataclasses
    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    from bench_common import build_model, loadavg, predicted
    from hw3_attribution import DEFAULT_BATCH_SIZE, new_session
    from run import markdown_table, write_atomic
    budgets = QUICK if args.quick else FULL
    given = {k: getattr(args, k) for k in ("lime_samples", "shap_samples", "rise_masks",
                                           "partition_evals", "segments")
             if getattr(args, k) is not None}
    budgets = dataclasses.replace(budgets, **given)
    images, rounds = (1, 1) if args.quick else (args.images, args.rounds)
    start, t0 = machine(), time.time()
    sess = new_session(tf.Graph())
    with sess.graph.as_default():
        model, X = build_model("efficientnet_lite0", sess)
        X = X[:images]
        c = predicted(model, sess, X)
        rows = perturbation_rows(model, sess, X, c, budgets, DEFAULT_BATCH_SIZE, rounds,
                                 references=not args.no_references)
    lines = ["# Perturbation methods: rate against the model, and beside lime and shap", "",
             start, f"References: {versions()}. Load average at the end "
             f"{loadavg()[0]:.2f}; {(time.time() - t0) / 60:.1f} min.", ""]
    text = "\n".join(lines + markdown_table(rows)) + "\n"
    print(text)
    if args.out:
        write_atomic(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
