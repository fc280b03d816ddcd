#!/usr/bin/env python
"""Regenerate every figure and table of the homework's written part.

    python hw3_vc.py                      # everything: bundled default model and photos
    python hw3_vc.py --quick              # every figure with smaller budgets
    python hw3_vc.py --model vgg16 --weights vgg16_weights.npz --data imagenet_14c_vgg16.npz
    python hw3_vc.py --parts comparison,metrics --out figures/

Parts, in order (``--parts`` picks some):

1. ``comparison``: written exercise 14, Saliency / Integrated Gradients / influence-directed
   expert on 5 correctly and 5 incorrectly predicted images: input | point cloud | binary mask.
2. ``influence``: exercises 11-13, expert neurons for two classes with the whole data set and
   with the class alone as the distribution of interest, and the expert for s_c1 - s_c2.
3. ``metrics``: Average Drop % (3 x 1), Necessity Ordering (images x 3), Insertion and
   Deletion curves and AUCs for Occlusion (8x8), SmoothGrad and Random.
4. ``ig_study``: Integrated Gradients with five baselines and 5 to 200 steps, scored by
   completeness error and by the probability kept by the top-attributed pixels; f_c along
   the path; the adaptive rule beside the uniform ones.
5. ``gradients``: vanilla gradient, SmoothGrad, IG with black and white baselines on the first
   three images; occlusion with 4x4 / 8x8 / 16x16 superpixels and with blurred baselines.

Everything goes into ``--out`` (default ``figures/``): PNG figures, Markdown and CSV tables,
and ``index.md`` that shows them in order. Every file is written under a temporary name and
renamed into place; an existing folder is updated, never wiped; nothing outside it is written.
Results are shared between parts (the same IG maps feed the comparison, the metrics and the
study), and every forward and backward pass is batched.
"""
import argparse
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

PARTS = ("comparison", "influence", "metrics", "ig_study", "gradients")
PART_TITLES = {
    "comparison": "1. Visual comparison (written exercise 14)",
    "influence": "2. Influence-directed explanations (written exercises 11-13)",
    "metrics": "3. Attribution metrics: Average Drop %, Necessity Ordering, Insertion, Deletion",
    "ig_study": "4. Integrated Gradients: baselines and steps",
    "gradients": "5. Gradient methods and occlusion",
}
STUDY_BASELINES = ("black", "white", "noise", "blur", "other image")
HOMEWORK_CLASSES = (354, 356)  # Arabian camel, weasel (written exercise 11)


@dataclass(frozen=True)
class Settings:
    """Budgets of one run. ``QUICK`` keeps every figure and shrinks the work."""
    n_right: int = 5                 # correctly predicted images in the comparison set
    n_wrong: int = 5                 # incorrectly predicted ones
    ig_steps: tuple = (5, 10, 20, 25, 50, 100, 200)   # every one divides the largest
    ig_main_steps: int = 50          # the IG maps used by the comparison and the metrics
    ig_other_max: int = 50           # most steps for the noise, blur and other-image paths
    smooth_samples: int = 50
    smooth_sigma: float = 0.15
    nord_M: int = 1000
    metric_superpixel: int = 8       # occlusion and insertion / deletion superpixels
    curve_step: int = 16             # superpixels added per point of a curve
    occlusion_sizes: tuple = (4, 8, 16)
    blur_sigmas: tuple = (2.0, 5.0, 10.0)
    blur_superpixel: int = 8
    path_points: int = 41            # f_c along the path, denser near the baseline
    path_images: int = 3
    adaptive_budget: int = 64
    keep_fraction: float = 0.2       # IG study score: keep the top 20 % of pixels
    noise_seed: int = 0


FULL = Settings()
QUICK = Settings(n_right=2, n_wrong=2, ig_steps=(5, 10), ig_main_steps=10, ig_other_max=10,
                 smooth_samples=10, nord_M=5000, metric_superpixel=28, curve_step=4,
                 occlusion_sizes=(16, 28, 56), blur_sigmas=(2.0, 8.0), blur_superpixel=28,
                 path_points=21, path_images=1, adaptive_budget=16)


# ------------------------------------------------------------------------ small helpers

def write_text(path, text):
    """Atomic text write (``hw3_evaluation.write_text``), imported when first needed so
    that ``--help`` does not wait for TensorFlow."""
    from hw3_evaluation import write_text as write
    return write(path, text)


def markdown_table(header, rows):
    """A Markdown table from a header and rows of cells (numbers formatted to 4 digits)."""
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "undefined" if not np.isfinite(v) else f"{v:.4g}"
        return str(v).replace("|", "/")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_table(header, rows):
    """CSV text with quoting where a cell needs it."""
    def cell(v):
        s = repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)
        return '"' + s.replace('"', '""') + '"' if any(ch in s for ch in ',"\n') else s
    return "\n".join(",".join(cell(v) for v in row) for row in [header] + list(rows)) + "\n"


def short(name):
    """The first synonym of an ImageNet class name."""
    return str(name).split(",")[0]


class CountingSession:
    """Wraps a session and counts the rows fed through forward and backward passes.

    A run feeds either the model's input (one row per image) or the rows the graph builds
    itself (``hw3_attribution.RowOps``: one row per entry of its ``front`` feed). A run whose
    fetches depend on the gradient of the model's first op (a backward pass all the way to
    the input: saliency, IG, SmoothGrad, expert attribution) counts as a gradient for every
    row; any other run that feeds rows counts as a forward pass (influence and Grad-CAM only
    differentiate back to an inner layer, which costs a small part of a forward).
    """

    def __init__(self, sess, imgs):
        self._sess, self._imgs = sess, imgs
        self.forwards = self.gradients = 0
        self._is_grad = {}

    def __getattr__(self, name):
        return getattr(self._sess, name)

    def _gradient(self, t):
        """Whether tensor ``t`` depends on a gradient with respect to the model's input
        (``hw3_attribution.input_gradients``); cached per tensor."""
        key = getattr(t, "name", None)
        if key not in self._is_grad:
            from hw3_attribution import input_gradients
            targets = {g.op.name for g in input_gradients(self._imgs.graph)}
            seen, stack, found = set(), [getattr(t, "op", t)], False
            while stack and not found:
                op = stack.pop()
                if op is None or op.name in seen:
                    continue
                seen.add(op.name)
                found = op.name in targets
                stack.extend(i.op for i in op.inputs)
            self._is_grad[key] = found
        return self._is_grad[key]

    def counts(self):
        """``(forwards, gradients)`` so far."""
        return self.forwards, self.gradients

    def run(self, fetches, feed_dict=None, **kwargs):
        import tensorflow as tf
        n = 0
        for t, v in (feed_dict or {}).items():
            name = getattr(t, "name", "")
            if t is self._imgs or name.startswith("hw3_rows/front:"):
                n = len(v)
                break
        if n:
            if any(self._gradient(t) for t in tf.nest.flatten(fetches)):
                self.gradients += n
            else:
                self.forwards += n
        return self._sess.run(fetches, feed_dict, **kwargs)


# ---------------------------------------------------------------------------- the run

class Run:
    """One run: the model, the data, shared results and the files written."""

    def __init__(self, args, settings):
        import tensorflow as tf
        from hw3_attribution import new_session
        from hw3_utils import get_model, load_ImageNet, ImageNet_idx2name
        tf.compat.v1.disable_eager_execution()
        self.args, self.s = args, settings
        self.out = args.out
        self.progress = not args.no_progress
        self._raw_sess = new_session(tf.Graph())
        with self._raw_sess.graph.as_default():
            self.model = get_model(self._raw_sess, args.model, args.weights)
        self.x, self.logits = self.model.imgs, self.model.logits
        layers = getattr(self.model, "default_layers", {})
        self.infl_layer_name = layers.get("influence", "fc1")
        self.infl_layer = self.model.layers[self.infl_layer_name]
        self.sess = CountingSession(self._raw_sess, self.x)
        with self.graph():
            data = load_ImageNet(args.data, model=self.model, sess=self.sess)
        self.X, self.y_true, self.y_pred, self.idx = data
        self.X = self.X.astype(np.float32)
        self.y_true = np.asarray(self.y_true).astype(int)
        self.y_pred = np.asarray(self.y_pred).astype(int)
        self.names = {c: ImageNet_idx2name(int(c)) for c in
                      set(self.y_true.tolist()) | set(self.y_pred.tolist())}
        self.sel = select_images(self.y_true, self.y_pred, settings.n_right, settings.n_wrong,
                                 args.images)
        self.cache = {}
        self.entries = {}  # part -> list of report entries
        self._methods = {}
        self._writer = FigureWriter()

    def graph(self):
        return self._raw_sess.graph.as_default()

    def method(self, cls, *args, **kwargs):
        """One instance per class and arguments (the ops are cached per graph anyway)."""
        key = (cls.__name__, tuple(map(_key, args)), tuple(sorted(
            (k, _key(v)) for k, v in kwargs.items())))
        if key not in self._methods:
            with self.graph():
                if cls.__name__ == "InflDirected":
                    self._methods[key] = cls(self.sess, self.x, self.infl_layer, self.logits,
                                             *args, progress=self.progress, **kwargs)
                else:
                    self._methods[key] = cls(self.sess, self.x, self.logits, *args,
                                             progress=self.progress, **kwargs)
        return self._methods[key]

    def cached(self, key, fn):
        if key not in self.cache:
            with self.graph():
                self.cache[key] = fn()
        return self.cache[key]

    # ---------------------------------------------------------------- image metadata
    def info(self, i, note=None):
        """Title info of dataset image ``i`` for visualization.panel_title."""
        info = {"index": int(self.idx[i]), "true_name": self.names[self.y_true[i]],
                "pred_name": self.names[self.y_pred[i]],
                "correct": bool(self.y_true[i] == self.y_pred[i])}
        if note:
            info["note"] = note
        return info

    def label(self, i):
        ok = "correct" if self.y_true[i] == self.y_pred[i] else "incorrect"
        return (f"image {int(self.idx[i])} (true {short(self.names[self.y_true[i]])}, "
                f"pred {short(self.names[self.y_pred[i]])}, {ok})")

    # ------------------------------------------------------------------- outputs
    def figure(self, part, name, fig, caption):
        """Queue ``fig`` to be written (in a background thread, while the next work runs)."""
        self._writer.submit(fig, os.path.join(self.out, name))
        self.entries.setdefault(part, []).append({"kind": "figure", "file": name,
                                                  "caption": caption})

    def finish_figures(self):
        """Wait until every queued figure is written; re-raise the first failure."""
        self._writer.wait()

    def table(self, part, name, header, rows, caption):
        md = markdown_table(header, rows)
        write_text(os.path.join(self.out, name + ".md"), md)
        write_text(os.path.join(self.out, name + ".csv"), csv_table(header, rows))
        self.entries.setdefault(part, []).append({"kind": "table", "file": name + ".md",
                                                  "csv": name + ".csv", "caption": caption,
                                                  "markdown": md})

    # ------------------------------------------------------------ shared results
    def targets(self, rows):
        return self.y_pred[rows].astype(np.int32)

    def saliency(self):
        from hw3_attribution import SaliencyMap
        return self.cached("saliency", lambda: self.method(SaliencyMap)(
            self.X[self.sel], target_class=self.targets(self.sel)))

    def ig_sweep(self, baseline):
        """Right-Riemann IG maps of the selected images for every step count, one pass."""
        from hw3_attribution import IntegratedGrad

        def run():
            ig = self.method(IntegratedGrad)
            return ig.sweep(self.X[self.sel], self.study_baseline(baseline),
                            steps=self.study_steps(baseline),
                            target_class=self.targets(self.sel))
        return self.cached(("ig", baseline), run)

    def study_steps(self, baseline):
        """The homework's black and white paths get every step count, the others fewer."""
        return study_steps(self.s, baseline)

    def ig(self):
        return self.ig_sweep("black")[0][self.s.ig_main_steps]

    def study_baseline(self, name):
        """The baseline of the IG study called ``name``, for the selected images."""
        X = self.X[self.sel]
        if name in ("black", "white"):
            return name
        if name == "noise":  # uniform noise over the whole pixel range, seeded
            rng = np.random.default_rng(self.s.noise_seed)
            return rng.uniform(0, 255, X.shape[1:]).astype(np.float32)
        if name == "blur":
            from scipy.ndimage import gaussian_filter
            return gaussian_filter(X, sigma=(0, 10, 10, 0), mode="reflect")
        if name == "other image":  # each image's path starts at another selected image
            return np.roll(X, 1, axis=0)
        raise ValueError(f"baseline: expected one of {STUDY_BASELINES}, got {name!r}")

    def influence(self, qoi):
        from hw3_infl import InflDirected
        return self.method(InflDirected, qoi)

    def influence_expert(self):
        """The exercise-14 expert: predicted-class QoI, whole data set, the layer fc1 (the
        model's default influence layer)."""
        from hw3_infl import qoi_predicted

        def run():
            infl = self.influence(qoi_predicted())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                part = infl.influence_partial(self.X)
                expert = infl.expert_from_partial(part)
                inactive = infl.last_info["expert_inactive"]
                active = infl.expert_from_partial(part, active_only=True) if inactive else None
            return {"layer": self.infl_layer_name, "expert": expert, "inactive": inactive,
                    "active_expert": active}
        return self.cached("expert", run)

    def influence_maps(self, neuron):
        from hw3_infl import qoi_predicted
        return self.cached(("infl_attr", neuron), lambda: self.influence(
            qoi_predicted()).expert_attribution(neuron, self.X[self.sel]))

    def smoothgrad(self):
        from hw3_attribution import SmoothGrad
        return self.cached("smoothgrad", lambda: self.method(SmoothGrad)(
            self.X[self.sel], samples=self.s.smooth_samples, sigma=self.s.smooth_sigma,
            seed=0, target_class=self.targets(self.sel)))

    def occlusion(self, size, baseline="black", blur_sigma=5.0, rows=None):
        from hw3_attribution import Occlusion
        whole = ("occlusion", size, baseline, blur_sigma, tuple(self.sel))
        if rows is not None and whole in self.cache and set(rows) <= set(self.sel):
            pos = [int(np.flatnonzero(self.sel == r)[0]) for r in rows]
            return self.cache[whole][pos]     # already computed for the whole set
        rows = self.sel if rows is None else rows
        key = ("occlusion", size, baseline, blur_sigma, tuple(rows))
        return self.cached(key, lambda: self.method(Occlusion)(
            self.X[rows], superpixel_size=size, baseline=baseline, blur_sigma=blur_sigma,
            target_class=self.targets(rows)))

    def random_maps(self):
        from hw3_attribution import RandomAttribution
        return self.cached("random", lambda: self.method(RandomAttribution, seed=0)(
            self.X[self.sel]))


def _key(v):
    """A hashable stand-in for a method argument (arrays by content, callables by id)."""
    if isinstance(v, np.ndarray):
        return ("array", v.shape, v.tobytes())
    try:
        hash(v)
        return v
    except TypeError:
        return ("id", id(v))


class FigureWriter:
    """Writes figures in one background thread, so drawing a PNG overlaps with the
    TensorFlow work that follows (TensorFlow releases the GIL inside sess.run)."""

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="figures")
        self._pending = []

    def submit(self, fig, path):
        self._pending.append(self._pool.submit(viz().save_figure, fig, path))

    def wait(self):
        pending, self._pending = self._pending, []
        for f in pending:
            f.result()


def study_steps(settings, baseline):
    """Step counts of the IG study for ``baseline``: all of them for black and white, those
    that divide ``ig_other_max`` for the others (one sweep serves every count it divides)."""
    if baseline in ("black", "white"):
        return settings.ig_steps
    return tuple(n for n in settings.ig_steps if settings.ig_other_max % n == 0)


def viz():
    """The plotting helpers of the toolkit (visualization.py)."""
    try:
        import visualization
    except ImportError as err:  # an autograder's environment has only the graded files
        raise RuntimeError("hw3_vc.py draws its figures with visualization.py from the "
                           "toolkit; put it next to hw3_vc.py") from err
    return visualization


def select_images(y_true, y_pred, n_right, n_wrong, chosen=None):
    """Indices of ``n_right`` correctly and ``n_wrong`` incorrectly predicted images.

    The first ones in data order of each kind; ``chosen`` (dataset row indices) overrides.
    """
    if chosen:
        bad = [i for i in chosen if not 0 <= i < len(y_true)]
        if bad:
            raise ValueError(f"--images: expected row indices in [0, {len(y_true)}), "
                             f"got {bad}")
        return np.asarray(chosen, int)
    right = np.flatnonzero(y_true == y_pred)[:n_right]
    wrong = np.flatnonzero(y_true != y_pred)[:n_wrong]
    if len(right) < n_right or len(wrong) < n_wrong:
        print(f"note: the data has {len(right)} correctly and {len(wrong)} incorrectly "
              f"predicted images to show (asked for {n_right} and {n_wrong})",
              file=sys.stderr)
    return np.concatenate([right, wrong]).astype(int)


# ------------------------------------------------------------------------------ parts

def part_comparison(run):
    """Written exercise 14: three methods x 10 images, input | point cloud | mask."""
    sel = run.sel
    expert = run.influence_expert()
    methods = [("Saliency", run.saliency()), ("Integrated Gradients", run.ig())]
    e = expert["expert"]
    note = None
    if expert["inactive"]:
        note = (f"expert {e} of {expert['layer']} is inactive on the whole data set: "
                "its attribution is zero")
    methods.append((f"Influence (expert {e} of {expert['layer']})", run.influence_maps(e)))
    if expert["inactive"]:
        a = expert["active_expert"]
        methods.append((f"Influence (most influential active unit {a})",
                        run.influence_maps(a)))
    for k, (name, maps) in enumerate(methods):
        rows = {name: [(run.X[i], maps[j], run.info(i, note if "expert" in name and note
                                                     and "active" not in name else None))
                       for j, i in enumerate(sel)]}
        fname = f"1_comparison_{k + 1}_{slug(name)}.png"
        caption = f"{name}: input, point cloud and binary mask for {len(sel)} images."
        if note and "active unit" in name:
            caption += (" The definition's expert is inactive on the data, so this shows the "
                        "most influential unit that is active on at least one image.")
        run.figure("comparison", fname, viz().comparison_figure(rows), caption)


def slug(text):
    keep = [ch.lower() if ch.isalnum() else "_" for ch in text]
    return "_".join(filter(None, "".join(keep).split("_")))[:40]


def pick_classes(run):
    """Two classes for exercise 11 and two related ones for exercises 12-13.

    Exercise 11 uses the homework's camel and weasel when the data has them, else the two
    most frequent true classes. The related pair is the two remaining classes whose logits
    move together most over the data set (highest correlation): related in the model's eyes.
    """
    present, counts = np.unique(run.y_true, return_counts=True)
    order = present[np.argsort(-counts, kind="stable")]
    if all(c in present for c in HOMEWORK_CLASSES):
        first = list(HOMEWORK_CLASSES)
    else:
        first = [int(c) for c in order[:2]]
    rest = [int(c) for c in order if c not in first] or first
    if len(rest) < 2:
        return first, first
    from hw3_attribution import SaliencyMap
    logits = run.cached("logits", lambda: run.method(SaliencyMap).logits(run.X))
    corr = np.corrcoef(logits[:, rest].T)
    np.fill_diagonal(corr, -np.inf)
    a, b = np.unravel_index(np.argmax(corr), corr.shape)
    return first, [rest[a], rest[b]]


def part_influence(run):
    """Written exercises 11-13: experts per class and distribution of interest."""
    from hw3_infl import qoi_class, qoi_difference
    first, related = pick_classes(run)
    layer = run.infl_layer_name
    rows, entries = [], []

    def expert_of(qoi, doi_rows, doi_name, exercise, rep_class):
        infl = run.influence(qoi_difference(*qoi) if isinstance(qoi, tuple)
                             else qoi_class(qoi))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            part = infl.influence_partial(run.X[doi_rows])
            e = infl.expert_from_partial(part)
            inactive = infl.last_info["expert_inactive"]
            active = infl.expert_from_partial(part, active_only=True) if inactive else e
        qname = (f"s_{qoi[0]} - s_{qoi[1]}" if isinstance(qoi, tuple) else f"s_{qoi}")
        rows.append([exercise, qname, doi_name, len(doi_rows), e,
                     "yes" if inactive else "no", active])
        members = np.flatnonzero(run.y_true == rep_class)
        rep = int(members[np.argmax(run.X[members].reshape(len(members), -1).std(1))]) \
            if len(members) else int(doi_rows[0])
        for unit, tag in [(e, "expert")] + ([(active, "active expert")] if inactive else []):
            attr = infl.expert_attribution(unit, run.X[rep])
            note = (f"ex. {exercise}, q = {qname}, DoI: {doi_name}; {tag} {unit}"
                    + (" (inactive on the DoI)" if tag == "expert" and inactive else ""))
            entries.append((f"{layer} unit {unit}", run.X[rep], attr,
                            run.info(rep, note)))

    for exercise, pair in (("11", first), ("12", related)):
        for c in pair:
            expert_of(int(c), np.arange(len(run.X)), "whole data set", exercise, c)
            own = np.flatnonzero(run.y_true == c)
            expert_of(int(c), own, f"class {c} only", exercise, c)
    c1, c2 = related
    expert_of((int(c1), int(c2)), np.arange(len(run.X)), "whole data set", "13", c1)
    expert_of((int(c1), int(c2)), np.flatnonzero(run.y_true == c1), f"class {c1} only",
              "13", c1)
    names = ", ".join(f"{c} {short(run.names.get(c, c))}" for c in first + related
                      if c in run.names)
    run.table("influence", "2_influence_experts",
              ["exercise", "quantity of interest", "distribution of interest", "images",
               "expert", "inactive on the DoI", "most influential active unit"], rows,
              f"Expert neurons of layer {layer} (classes: {names}). Exercise 11: two "
              "classes; 12: two related classes (logits most correlated over the data); "
              "13: the unit that separates them.")
    for k in range(0, len(entries), 6):
        run.figure("influence", f"2_influence_experts_{k // 6 + 1}.png",
                   viz().comparison_figure(entries[k:k + 6]),
                   "Each expert on a representative image of its class: input, point cloud, "
                   "binary mask of x * grad h_expert(x).")


def part_metrics(run):
    """Average Drop %, Necessity Ordering, Insertion and Deletion."""
    from hw3_evaluation import AverageDrop, Deletion, Insertion, N_Ord, metric_table
    sel, X = run.sel, run.X[run.sel]
    c = run.targets(sel)
    expert = run.influence_expert()
    unit = expert["active_expert"] if expert["inactive"] else expert["expert"]
    maps = {"Saliency": run.saliency(), "Integrated Gradients": run.ig(),
            f"Influence (unit {unit})": run.influence_maps(unit)}
    labels = [int(run.idx[i]) for i in sel]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        ad = metric_table(AverageDrop, maps, X, run.sess, run.x, run.logits, None, labels,
                          progress=run.progress)
    excluded = sorted({str(w.message) for w in caught})
    rows = [[m, v] for m, v in zip(ad.methods, ad.mean)]
    run.table("metrics", "3_average_drop", ["method", "Average Drop %"], rows,
              "Average Drop % (lower is better) over the comparison images, pre-softmax, "
              "pixels of positive attribution kept." + (" " + " ".join(excluded)
                                                        if excluded else ""))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        nord = metric_table(N_Ord, maps, X, run.sess, run.x, run.logits, c, labels,
                            M=run.s.nord_M, progress=run.progress)
    header = ["image"] + nord.methods
    rows = [[run.label(i)] + list(nord.values[:, j]) for j, i in enumerate(sel)]
    rows.append(["mean"] + list(nord.mean))
    run.table("metrics", "3_necessity_ordering", header, rows,
              f"Necessity Ordering (lower is better), M = {run.s.nord_M} pixels per step.")

    s = run.s.metric_superpixel
    importance = {f"Occlusion ({s}x{s})": run.occlusion(s), "SmoothGrad": run.smoothgrad(),
                  "Random": run.random_maps()}
    auc_rows, curve_tables = [], {}
    for cls in (Insertion, Deletion):
        table = metric_table(cls, importance, X, run.sess, run.x, run.logits, c, labels,
                             superpixel_size=s, step=run.s.curve_step,
                             progress=run.progress)
        curve_tables[cls.__name__] = table
        for m, mean in zip(table.methods, table.mean):
            auc_rows.append([cls.__name__, m, mean])
    run.table("metrics", "3_insertion_deletion_auc", ["curve", "method", "mean AUC"],
              auc_rows, f"Mean AUC over {len(sel)} images (Insertion: higher is better; "
              "Deletion: lower is better), black baseline, target = predicted class.")
    run.figure("metrics", "3_insertion_deletion_curves.png", curve_figure(curve_tables, s),
               "Average target-class probability as superpixels are inserted into a black "
               "image (left) or deleted from the image (right), most important first.")
    j = 0
    maps_row = [importance[m][j] for m in importance]
    pooled = [pool(a, s) for a in maps_row]
    fig = viz().plot_grid(
        [[X[j]] + maps_row, [X[j]] + pooled],
        [["input"] + [f"{m}, {run.label(sel[j])}" for m in importance],
         ["input"] + [f"{m}, summed per {s}x{s} superpixel" for m in importance]])
    run.figure("metrics", "3_metric_maps.png", fig,
               "The three explanations for one image, per pixel and summed per superpixel.")


def pool(a, s):
    """Sum a map ``[H, W]`` or ``[H, W, C]`` over non-overlapping s x s superpixels."""
    a = np.asarray(a, np.float64)
    if a.ndim == 3:
        a = a.sum(-1)
    h, w = a.shape
    return a.reshape(h // s, s, w // s, s).sum(axis=(1, 3))


def curve_figure(tables, s):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(10, 4))
    for ax, (name, table) in zip(fig.subplots(1, len(tables)), tables.items()):
        for m, j in zip(table.methods, range(len(table.methods))):
            mean = np.nanmean(table.curves[m], axis=0)  # NaN rows: undefined images
            ax.plot(table.num_feats, mean, label=f"{m} (AUC {table.mean[j]:.3f})")
        ax.set_xlabel(f"{s}x{s} superpixels {'inserted' if name == 'Insertion' else 'deleted'}")
        ax.set_ylabel("mean target-class probability")
        ax.set_title(f"{name}, mean over {table.values.shape[1]} images")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def part_ig_study(run):
    """IG with five baselines and many step counts, scored two ways."""
    from hw3_attribution import IntegratedGrad
    from matplotlib.figure import Figure
    sel, X = run.sel, run.X[run.sel]
    c = run.targets(sel)
    ig = run.method(IntegratedGrad)
    results = {b: run.ig_sweep(b) for b in STUDY_BASELINES}
    # Score 1: completeness error; score 2: probability with only the top pixels kept.
    kept = {}
    for b in STUDY_BASELINES:
        maps, bsteps = results[b][0], run.study_steps(b)
        masked = np.concatenate([keep_top(X, maps[n], run.s.keep_fraction) for n in bsteps])
        probs = run.cached(("keep", b), lambda: forward_probs(run, masked,
                                                              np.tile(c, len(bsteps))))
        kept[b] = probs.reshape(len(bsteps), len(sel))
    rows = []
    for b in STUDY_BASELINES:
        err = results[b][1]["completeness_error"]
        for k, n in enumerate(run.study_steps(b)):
            rows.append([b, n, float(np.median(err[n])), float(np.max(err[n])),
                         float(np.mean(kept[b][k]))])
    # The adaptive rule beside them, black and white baselines.
    adaptive = {}
    for b in ("black", "white"):
        attr, info = run.cached(("ig_adaptive", b), lambda: ig(
            X, b, method="adaptive", max_gradients=run.s.adaptive_budget,
            return_error=True, target_class=c))
        masked = keep_top(X, attr, run.s.keep_fraction)
        p = forward_probs(run, masked, c)
        cost = info["gradients"] + np.asarray(info["forwards"]) / 3.0
        adaptive[b] = (attr, info)
        rows.append([f"{b} (adaptive)", f"≤{run.s.adaptive_budget} gradients, "
                     f"mean cost {np.mean(cost):.0f}",
                     float(np.median(info["completeness_error"])),
                     float(np.max(info["completeness_error"])), float(np.mean(p))])
    run.table("ig_study", "4_ig_scores",
              ["baseline", "steps", "median completeness error", "worst completeness error",
               f"mean p(target) with top {run.s.keep_fraction:.0%} pixels kept"], rows,
              f"Integrated Gradients over {len(sel)} images: completeness error "
              "|sum IG - (f(x) - f(x_b))| / |f(x) - f(x_b)| (lower is better) and the target "
              "probability when only the most attributed pixels are kept, the rest blurred "
              "(higher is better). Right-Riemann rule; the 'noise' baseline is uniform noise "
              "0-255, 'blur' a Gaussian blur (sigma 10 px), 'other image' the previous image "
              "of the set.")
    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    for b in STUDY_BASELINES:
        err, bsteps = results[b][1]["completeness_error"], run.study_steps(b)
        ax1.plot(bsteps, [np.median(err[n]) for n in bsteps], marker="o", label=b)
        ax2.plot(bsteps, kept[b].mean(axis=1), marker="o", label=b)
    for b, (_, info) in adaptive.items():
        ax1.scatter([run.s.adaptive_budget], [np.median(info["completeness_error"])],
                    marker="*", s=120, label=f"{b}, adaptive")
    ax1.set(xscale="log", yscale="log", xlabel="steps (gradients)",
            ylabel="median completeness error", title="Completeness error")
    ax2.set(xscale="log", xlabel="steps", ylabel="mean p(target)",
            title=f"Top {run.s.keep_fraction:.0%} pixels kept")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    run.figure("ig_study", "4_ig_scores.png", fig,
               "Completeness error and kept-pixel probability against the number of steps, "
               "per baseline; stars: the adaptive rule at its gradient budget.")
    # f_c along the path: most of the change happens near the black baseline.
    n_path = min(run.s.path_images, len(sel))
    alphas = np.unique(np.concatenate([np.linspace(0, 0.1, run.s.path_points // 2 + 1),
                                       np.linspace(0.1, 1, run.s.path_points // 2 + 1)]))
    fig = Figure(figsize=(5 * n_path, 4))
    for j, ax in enumerate(np.atleast_1d(fig.subplots(1, n_path))):
        for b in STUDY_BASELINES:
            base = run.study_baseline(b)
            base = base[j:j + 1] if isinstance(base, np.ndarray) and base.ndim == 4 else base
            scores = run.cached(("path", b, j), lambda: ig.path_scores(
                X[j:j + 1], base, alphas=alphas, target_class=c[j:j + 1]))
            ax.plot(alphas, scores[0], label=b)
        ax.set(xlabel="position along the path (0 = baseline, 1 = image)",
               ylabel="target logit f_c", title=run.label(sel[j]))
        ax.legend(fontsize=7)
    fig.tight_layout()
    run.figure("ig_study", "4_ig_path_scores.png", fig,
               "The target score along each baseline's straight path. From black it "
               "saturates within the first few percent of the path, which is why uniform "
               "steps converge so slowly there.")
    # Maps side by side: per image, baselines x step counts (and adaptive).
    for j in range(min(3, len(sel))):
        grid, titles = [], []
        for b in STUDY_BASELINES:
            maps, info = results[b]
            bsteps = run.study_steps(b)
            show = [n for n in bsteps if n in (bsteps[0], run.s.ig_main_steps, bsteps[-1])]
            err = info["completeness_error"]
            row = [maps[n][j].sum(-1) for n in show]
            t = [f"{b}, {n} steps, err {err[n][j]:.0%}" for n in show]
            if b in adaptive:
                attr, ainfo = adaptive[b]
                row.append(attr[j].sum(-1))
                t.append(f"{b}, adaptive, err {ainfo['completeness_error'][j]:.0%}")
            grid.append([X[j]] + row)
            titles.append([run.label(sel[j]) if not titles else "input"] + t)
        run.figure("ig_study", f"4_ig_maps_{j + 1}.png",
                   viz().plot_grid(grid, titles),
                   f"IG maps (summed over channels, red positive, blue negative) for "
                   f"{run.label(sel[j])}: rows are baselines, columns step counts (noise, blur and "
                   f"other image up to {run.s.ig_other_max} steps).")


def keep_top(X, maps, fraction, blur_sigma=10.0):
    """Images with only the top ``fraction`` of pixels by positive attribution kept and
    every other pixel taken from a blurred copy (a black background leaves so little
    that every map scores near zero and the score cannot tell them apart)."""
    from scipy.ndimage import gaussian_filter
    a = np.asarray(maps, np.float64).sum(-1).reshape(len(X), -1)
    k = max(1, int(round(fraction * a.shape[1])))
    cut = np.partition(a, a.shape[1] - k, axis=1)[:, a.shape[1] - k][:, None]
    keep = ((a >= cut) & (a > 0)).reshape(X.shape[:3])[..., None]
    blurred = gaussian_filter(X, sigma=(0, blur_sigma, blur_sigma, 0), mode="reflect")
    return np.where(keep, X, blurred).astype(np.float32)


def forward_probs(run, images, targets):
    """Target-class probabilities of ``images``, batched."""
    from hw3_attribution import DEFAULT_BATCH_SIZE, chunk_slices
    out = np.empty(len(images), np.float32)
    for sl in chunk_slices(len(images), DEFAULT_BATCH_SIZE):
        p = run.sess.run(run.model.probs, {run.x: images[sl]})
        out[sl] = p[np.arange(len(p)), targets[sl]]
    return out


def part_gradients(run):
    """The XAI homework's gradient and occlusion figures on the first three images."""
    from hw3_attribution import VanillaGradient
    first = run.sel[:3]
    X = run.X[first]
    c = run.targets(first)
    vg = run.cached("vanilla", lambda: run.method(VanillaGradient)(X, target_class=c))
    sg = np.abs(run.smoothgrad()[:3]).sum(-1)
    igb = np.abs(run.ig_sweep("black")[0][run.s.ig_main_steps][:3]).sum(-1)
    igw = np.abs(run.ig_sweep("white")[0][run.s.ig_main_steps][:3]).sum(-1)
    n = run.s.ig_main_steps
    grid = [[X[j], vg[j], sg[j], igb[j], igw[j]] for j in range(len(first))]
    titles = [[run.label(i), "vanilla gradient |grad| summed",
               f"SmoothGrad ({run.s.smooth_samples} samples) |.| summed",
               f"IG black ({n} steps) |.| summed", f"IG white ({n} steps) |.| summed"]
              for i in first]
    modes = [["image"] + ["abs"] * 4 for _ in first]
    run.figure("gradients", "5_gradient_methods.png", viz().plot_grid(grid, titles, modes),
               "Vanilla gradient, SmoothGrad and Integrated Gradients with black and white "
               "baselines (magnitudes summed over channels) on the first three images.")
    s = run.s.metric_superpixel
    occ = run.occlusion(s)[:3]
    run.figure("gradients", "5_occlusion.png",
               viz().plot_grid([[X[j], occ[j]] for j in range(len(first))],
                               [[run.label(i), f"occlusion {s}x{s}, black"] for i in first],
                               [["image", "signed"] for _ in first]),
               f"Occlusion ({s}x{s} superpixels, black baseline) on the first three images: "
               "red = the score drops when the patch is hidden.")
    one = first[:1]
    sizes = run.s.occlusion_sizes
    maps = [run.occlusion(k, rows=one)[0] for k in sizes]
    run.figure("gradients", "5_occlusion_sizes.png",
               viz().plot_row(X[0], maps, [run.label(first[0])]
                              + [f"occlusion {k}x{k}" for k in sizes],
                              modes=["signed"] * len(sizes)),
               "Occlusion of the first image with superpixels of several sizes.")
    from scipy.ndimage import gaussian_filter
    k = run.s.blur_superpixel
    blurred = [gaussian_filter(X[0], sigma=(b, b, 0), mode="reflect")
               for b in run.s.blur_sigmas]
    maps = [run.occlusion(k, baseline="blur", blur_sigma=b, rows=one)[0]
            for b in run.s.blur_sigmas]
    grid = [[X[0]] + blurred, [X[0]] + maps]
    titles = [[run.label(first[0])] + [f"blurred, sigma {b:g} px" for b in run.s.blur_sigmas],
              ["input"] + [f"occlusion {k}x{k}, blur sigma {b:g}" for b in run.s.blur_sigmas]]
    modes = [["image"] * (1 + len(blurred)), ["image"] + ["signed"] * len(maps)]
    run.figure("gradients", "5_occlusion_blur.png", viz().plot_grid(grid, titles, modes),
               "Occlusion with blurred baselines of several strengths (top: the baselines).")


PART_FUNCTIONS = {"comparison": part_comparison, "influence": part_influence,
                  "metrics": part_metrics, "ig_study": part_ig_study,
                  "gradients": part_gradients}


# ----------------------------------------------------------------------------- report

def write_report(run, timings):
    """Merge this run's entries into report.json and rewrite index.md from it."""
    state_path = os.path.join(run.out, "report.json")
    state = {}
    if os.path.exists(state_path):
        try:
            with open(state_path, encoding="utf-8") as fh:
                state = json.load(fh)
        except (OSError, ValueError):
            state = {}
    parts = state.get("parts", {})
    for part in timings:
        parts[part] = {"entries": run.entries.get(part, []), "seconds": timings[part],
                       "model": run.model.name, "images": len(run.X),
                       "settings": "quick" if run.args.quick else "full"}
    state["parts"] = parts
    write_text(state_path, json.dumps(state, indent=1, default=str))
    lines = ["# Figures and tables", "",
             "Regenerated by `python hw3_vc.py`. Each part says the model, data size and "
             "settings it was run with.", ""]
    listed = []
    for part in PARTS:
        if part not in parts:
            continue
        p = parts[part]
        lines += [f"## {PART_TITLES[part]}", "",
                  f"*{p['model']}, {p['images']} images, {p['settings']} settings, "
                  f"{p['seconds']:.0f} s.*", ""]
        for e in p["entries"]:
            if not os.path.exists(os.path.join(run.out, e["file"])):
                continue
            lines.append(e["caption"])
            lines.append("")
            if e["kind"] == "figure":
                lines.append(f"![{e['file']}]({e['file']})")
            else:
                lines.append(e["markdown"].rstrip())
                lines.append("")
                lines.append(f"CSV: [{e['csv']}]({e['csv']})")
                listed.append(e["csv"])
            lines.append("")
            listed.append(e["file"])
    write_text(os.path.join(run.out, "index.md"), "\n".join(lines) + "\n")
    return listed


# ------------------------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Regenerate every figure and table of the homework's written part "
                    "into an output folder (index.md shows them in order).",
        epilog="Parts: " + ", ".join(PARTS) + ". The default model is the bundled "
               "EfficientNet-Lite0; VGG16 is used when its weights are given or found "
               "(HW3_VGG16_WEIGHTS, ./vgg16_weights.npz).")
    p.add_argument("--model", help="'vgg16' or 'efficientnet_lite0' (default: VGG16 if its "
                                   "weights are found, else the bundled default)")
    p.add_argument("--weights", help="weights file for the model (VGG16: the classic "
                                     "vgg16_weights.npz or Keras' .h5)")
    p.add_argument("--data", help="a course-style .npz data set, or 'bundled' for the bundled "
                                  "sample photographs (default: imagenet_14c_vgg16.npz from "
                                  "., .. or ../.. as the course's load_ImageNet finds it, else "
                                  "the bundled sample)")
    p.add_argument("--out", default="figures", help="output folder (default: figures/)")
    p.add_argument("--parts", default=",".join(PARTS),
                   help="comma-separated parts to run (default: all)")
    p.add_argument("--images", help="comma-separated data-set row indices to use instead of "
                                    "the first 5 correct and 5 incorrect predictions")
    p.add_argument("--quick", action="store_true",
                   help="every figure with smaller budgets (fewer images, steps and samples)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = [x for x in parts if x not in PARTS]
    if unknown or not parts:
        p.error(f"--parts: expected a comma-separated subset of {', '.join(PARTS)}, "
                f"got {args.parts!r}")
    args.parts = [x for x in PARTS if x in parts]
    if args.images:
        try:
            args.images = [int(x) for x in args.images.split(",") if x.strip()]
        except ValueError:
            p.error(f"--images: expected comma-separated integers, got {args.images!r}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        p.error(f"--out: expected a folder, got the file {args.out!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    from tqdm.auto import tqdm
    settings = QUICK if args.quick else FULL
    os.makedirs(args.out, exist_ok=True)
    start = time.time()
    run = Run(args, settings)
    print(f"model {run.model.name}; {len(run.X)} images; comparison set: "
          + ", ".join(run.label(i) for i in run.sel), file=sys.stderr)
    timings = {}
    for part in tqdm(args.parts, desc="parts", disable=args.no_progress):
        t0 = time.time()
        PART_FUNCTIONS[part](run)
        timings[part] = time.time() - t0
        print(f"{part}: {timings[part]:.1f} s", file=sys.stderr)
    run.finish_figures()
    files = write_report(run, timings)
    seconds = time.time() - start
    stats = {"forwards": run.sess.forwards, "gradients": run.sess.gradients,
             "seconds": seconds, "parts": timings, "model": run.model.name,
             "quick": bool(args.quick)}
    write_text(os.path.join(args.out, "run_stats.json"), json.dumps(stats, indent=1))
    print(f"Wrote {len(files)} files to {os.path.abspath(args.out)}; open "
          f"{os.path.join(args.out, 'index.md')}")
    print(f"passes: forwards={run.sess.forwards} gradients={run.sess.gradients} "
          f"seconds={seconds:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
