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
   three images; occlusion with 4x4 / 8x8 / 16x16 superpixels and with blurred baselines;
   PAIR saliency's XRAI, Guided IG, Blur IG and Guided Backprop; the perturbation methods
   LIME, KernelSHAP, RISE, feature ablation and PartitionSHAP.
6. ``sanity``: Adebayo et al.'s cascading randomisation: Saliency, IG, SmoothGrad, Grad-CAM
   and Guided Backprop on the first image as the model's layer blocks are randomised from the
   top, and their Spearman similarity to the trained model's maps over five images (needs the
   project's package and a model that lists its weights, as every model of get_model does).

Everything goes into ``--out`` (default ``figures/``): PNG figures, Markdown and CSV tables,
and ``index.md`` that shows them in order. Every file is written under a temporary name and
renamed into place; an existing folder is updated, never wiped; nothing outside it is written.
Results are shared between parts (the same IG maps feed the comparison, the metrics and the
study), and every forward and backward pass is batched.

Two homes. In the project's folder it uses the project's helpers: ``get_model(sess, name,
weights)``, ``load_ImageNet(path, model=, sess=)``, the richer plots of
``attrkit.figures.plots`` and the methods of ``attrkit.methods``. In the course's folder
(the four graded files beside the course's own ``hw3_utils.py``, ``vgg16.py`` and
``imagenet_classes.py``) it finds, by looking at what is there, ``get_model(sess)``,
``load_ImageNet()`` and the course's ``point_cloud`` and ``binary_mask``: it draws written
exercise 14 with those, adds the influence tables and the metrics, and says which parts it
skipped and why (:class:`Home`). The figures are drawn here, with matplotlib alone, so that
the graded file needs no other module of the project.

The file is long because it is one of the four graded files, which the course asks for as
they are: the parts, the two homes and the figure layer must all live in it.
"""
import argparse
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

PARTS = ("comparison", "influence", "metrics", "ig_study", "gradients", "sanity")
PART_TITLES = {
    "comparison": "1. Visual comparison (written exercise 14)",
    "influence": "2. Influence-directed explanations (written exercises 11-13)",
    "metrics": "3. Attribution metrics: Average Drop %, Necessity Ordering, Insertion, Deletion",
    "ig_study": "4. Integrated Gradients: baselines and steps",
    "gradients": "5. Gradient methods and occlusion",
    "sanity": "6. Sanity checks: model parameter randomisation",
}
STUDY_BASELINES = ("black", "white", "noise", "blur", "other image")
HOMEWORK_CLASSES = (354, 356)  # Arabian camel, weasel (written exercise 11)
# The parts that the homework's written exercises ask for (14, 11-13, 17, 20): the default
# beside the course's helpers, where the model is VGG16 and the rest costs hours on a CPU.
HOMEWORK_PARTS = ("comparison", "influence", "metrics")


BASE_SIZE = 224      # the homework's image side, which the budgets below are set for


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
    study_blur: float = 10.0         # sigma (px) of the IG study's blurred baseline and
    noise_seed: int = 0              # of the background of its kept-pixel score
    lime_samples: int = 1000         # the perturbation methods' budgets per image (their
    shap_samples: object = None      # references' defaults; KernelSHAP's None is shap's
    rise_masks: int = 4000           # 'auto', 2S + 2048 coalitions for S segments)
    partition_evals: int = 500       # PartitionSHAP's max_evals (shap's default)
    segments: str = "quickshift"     # LIME's, KernelSHAP's, feature ablation's (lime's)
    sanity_images: int = 5           # the randomisation test's images (the figure: the first)
    cam_images: int = 3              # 5_cam_methods.png's images (Score-CAM: a forward pass
                                     # per channel of the layer and image)

    def scaled(self, height, width):
        """These budgets for images of ``height`` x ``width``: the lengths (superpixels,
        patches, blur sigmas) scale with the side of a square of the image's area, N_Ord's
        M with the area (``hw3_attribution.scaled_size`` / ``scaled_count``, the methods'
        own rule), from the homework's 224 x 224, where nothing changes."""
        import dataclasses
        from hw3_attribution import scaled_count, scaled_size
        f = np.sqrt(height * width) / BASE_SIZE

        def length(v):
            return scaled_size(v, height, width)
        return dataclasses.replace(
            self, nord_M=scaled_count(self.nord_M, height, width),
            metric_superpixel=length(self.metric_superpixel),
            occlusion_sizes=tuple(sorted({length(v) for v in self.occlusion_sizes})),
            blur_sigmas=tuple(v * f for v in self.blur_sigmas),
            blur_superpixel=length(self.blur_superpixel), study_blur=self.study_blur * f)


FULL = Settings()
QUICK = Settings(n_right=2, n_wrong=2, ig_steps=(5, 10), ig_main_steps=10, ig_other_max=10,
                 smooth_samples=10, nord_M=5000, metric_superpixel=28, curve_step=4,
                 occlusion_sizes=(16, 28, 56), blur_sigmas=(2.0, 8.0), blur_superpixel=28,
                 path_points=21, path_images=1, adaptive_budget=16, lime_samples=100,
                 shap_samples=128, rise_masks=300, partition_evals=100, sanity_images=1,
                 cam_images=1)


# ------------------------------------------------------------------------ small helpers

def write_text(path, text):
    """Atomic text write (``hw3_evaluation.write_text``), imported when first needed so
    that ``--help`` does not wait for TensorFlow."""
    from hw3_evaluation import write_text as write
    return write(path, text)


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


# ---------------------------------------------------------------------------- homes

MODEL_FLAGS = (("model", "model name"), ("weights", "weights file"),
               ("labels", "labels file"), ("preprocess", "preprocessing"),
               ("input_size", "input size"))
DATA_CLASSES_ERROR = ("--data: the model has {k} classes, not ImageNet's 1000, so the "
                      "bundled ImageNet photographs mean nothing to it: give its own images "
                      "(--data FOLDER with one sub-folder per class, or a course-style .npz)")
LABELS_RANGE_ERROR = ("--data: expected labels in [0, {k}) (the model's classes), got "
                      "{bad}")
COURSE_MODEL_ERROR = ("{flag}: this folder's hw3_utils.get_model(sess) is the course's: it "
                      "builds VGG16 with its own weights and takes no {what}")
IMAGES_ERROR = "--images: expected data-set row indices in [0, {n}), got {bad}"
COURSE_LOAD_ERROR = ("the course's hw3_utils.load_ImageNet() could not read "
                     "imagenet_14c_vgg16.npz from ., .. or ../.. ({reason})")
COURSE_DATA_ERROR = ("--data: this folder's hw3_utils.load_ImageNet() is the course's: it "
                     "reads imagenet_14c_vgg16.npz from ., .. or ../.. and takes no path")
SKIP_EXTRA = ("an extra study beyond the homework's written exercises; beside the course's "
              "own helpers (get_model(sess): VGG16) it is left out unless --parts names it, "
              "as it runs the model thousands of times (hours on a CPU)")
SKIP_PANELS = ("neither the project's attrkit.figures nor hw3_utils' point_cloud and "
               "binary_mask are here to draw the panels")
NO_PACKAGE = ("{what} live in the project's package attrkit, which this folder (the graded "
              "files beside the course's helpers) does not have")
SKIP_LAYER = ("the model names no influence layer (default_layers['influence']) and has "
              "no layer fc1")
SKIP_WEIGHTS = ("the model lists no weights to randomise (model.variables: 'layer/weight' "
                "-> variable or frozen tensor, bottom-up)")


class UsageError(ValueError):
    """An option that the model or data, once read, cannot honour (exit status 2)."""


def takes_arguments(fn, n):
    """Whether ``fn`` accepts ``n`` positional arguments (its signature says so)."""
    import inspect
    try:
        inspect.signature(fn).bind(*range(n))
    except TypeError:
        return False
    except ValueError:    # no signature to read (a builtin): assume it does
        return True
    return True


class Home:
    """What the folder beside hw3_vc.py offers, found by looking at it, never by a flag.

    - the model: the project's ``get_model(sess, name_or_path, weights, ...)`` (a built-in
      model or your own) or the course's ``get_model(sess)`` (VGG16 with its weights);
    - the data: the project's readers (an .npz, a folder of class folders, the bundled
      sample) or the course's ``load_ImageNet()`` (its file, with the predictions stored
      in it);
    - the comparison's panels: attrkit.figures.plots' richer point cloud and mask when the
      project is here, else the course's ``point_cloud`` and ``binary_mask``;
    - the default parts: all of them, or beside the course's helpers the homework's.
    """

    def __init__(self):
        import hw3_utils
        self.utils = hw3_utils
        try:
            from attrkit.figures import plots   # the project's; the course's folder has none
            self.viz = plots
        except ImportError:
            self.viz = None
        self.own_model = takes_arguments(hw3_utils.get_model, 3)
        self.own_data = takes_arguments(hw3_utils.load_ImageNet, 1)
        self.course = not self.own_model
        self.default_parts = HOMEWORK_PARTS if self.course else PARTS

    def check(self, args, error):
        """Refuse, through ``error`` (the parser's), options that this folder's helpers
        cannot honour."""
        for flag, what in MODEL_FLAGS:
            if getattr(args, flag) and not self.own_model:
                error(COURSE_MODEL_ERROR.format(flag="--" + flag.replace("_", "-"), what=what))
        if args.data and not self.own_data:
            error(COURSE_DATA_ERROR)
        if self.own_model:
            try:
                args.model_options = self.utils.parse_model_options(
                    args.model, args.weights, args.labels, args.preprocess, args.input_size)
            except (ValueError, FileNotFoundError) as e:
                error(str(e))

    def skipped(self, asked):
        """``{part: reason}`` of the parts left out of a run that did not name its parts."""
        if asked is not None:
            return {}
        return {p: SKIP_EXTRA for p in PARTS if p not in self.default_parts}

    def load_model(self, sess, args):
        if self.own_model:
            return self.utils.get_model(sess, **args.model_options)
        return self.utils.get_model(sess)

    def read_data(self, args, error):
        """The data set, read and checked before any model is built: the project's
        reader (``--data``, the course's file, or the bundled sample; its predictions come
        later, from the model in use) or the course's ``load_ImageNet()``. A failure goes
        to ``error`` naming ``--data``."""
        try:
            if self.own_data and args.data and os.path.isdir(args.data):
                return self.utils.ImageFolder(args.data, arg="--data")
            if self.own_data:
                return self.utils.read_dataset(args.data, arg="--data")
            return self.utils.load_ImageNet()
        except (OSError, ValueError, TypeError, KeyError) as e:
            text = str(e) if self.own_data else COURSE_LOAD_ERROR.format(
                reason=f"{type(e).__name__}: {e}")
            error(text if text.startswith("--data") else "--data: " + text)

    def fit(self, data, model, args):
        """The data at the model's input (size, channels) with labels among its classes:
        a folder's classes are its sub-folders' names when the model has no names of its
        own for them (``classes_from_folders``); raises :class:`UsageError` naming
        ``--data`` for data the model cannot take."""
        if not self.own_data:
            return data
        u, shape = self.utils, model.imgs.shape.as_list()[1:]
        names = list(getattr(model, "class_names", u.class_names))
        if isinstance(data, u.ImageFolder):
            names = u.classes_from_folders(names, data.folders, args.labels is not None)
            model.class_names = names
            try:
                data, skipped = data.load(names, tuple(shape[:2]), shape[2])
            except ValueError as e:
                raise UsageError(str(e)) from None
            for rel, why in skipped:
                print(f"skipped {rel}: {why}", file=sys.stderr)
            return data
        if args.data is None and len(names) != len(u.class_names):
            raise UsageError(DATA_CLASSES_ERROR.format(k=len(names)))
        outside = sorted({int(c) for c in data.Y if not 0 <= c < len(names)})
        if outside:
            raise UsageError(LABELS_RANGE_ERROR.format(k=len(names), bad=outside[:5]))
        return data._replace(X=u.fit_images(data.X, tuple(shape[:2]), shape[2]))

    def predictions(self, data, model, sess):
        """The classes that the model in use predicts (the project's home), or the ones
        the course's file stores (its VGG16's)."""
        if self.own_data:
            return self.utils.predict(model, sess, np.asarray(data.X, np.float32))
        return data.Pred

    def panels(self):
        """``(cloud, mask)`` for the comparison figure: ``cloud(attr)`` -> ``[H, W]`` and
        ``mask(image, attr)`` -> an image; None when nothing here can draw them."""
        if self.viz is not None:
            return self.viz.magnitude_cloud, self.viz.highlight_top_pixels
        cloud = getattr(self.utils, "point_cloud", None)
        mask = getattr(self.utils, "binary_mask", None)
        if cloud is None or mask is None:
            return None
        # The course's helpers may write into their arguments: give them copies.
        return (lambda a: cloud(np.array(a, np.float64)[None])[0],
                lambda image, a: mask(np.array(image, np.float64)[None],
                                      np.array(a, np.float64)[None])[0])


def influence_layer(model):
    """``(name, tensor)`` of the layer the influence-directed explanations use: the
    model's ``default_layers['influence']``, else the homework's ``fc1``; ``(None, None)``
    when the model has neither."""
    import tensorflow as tf
    name = getattr(model, "default_layers", {}).get("influence", "fc1")
    layers = getattr(model, "layers", None)
    if isinstance(layers, dict) and name in layers:
        return name, layers[name]
    tensor = getattr(model, name, None)
    return (name, tensor) if isinstance(tensor, tf.Tensor) else (None, None)


# ---------------------------------------------------------------------------- the run

class Run:
    """One run: the model, the data, shared results and the files written."""

    def __init__(self, args, settings, home):
        import tensorflow as tf
        from hw3_attribution import new_session
        tf.compat.v1.disable_eager_execution()
        self.args, self.settings, self.home = args, settings, home
        self.out = args.out
        self.progress = not args.no_progress
        self._raw_sess = new_session(tf.Graph())
        with self._raw_sess.graph.as_default():
            try:
                self.model = home.load_model(self._raw_sess, args)
            except (ValueError, FileNotFoundError) as e:   # e.g. labels that are not K
                if not home.own_model:
                    raise
                raise UsageError(home.utils.option_message(e)) from None
            self.x = self.model.imgs
            # the course's VGG16 calls its pre-softmax scores fc3l and has no name
            self.logits = self.model.logits if hasattr(self.model, "logits") \
                else self.model.fc3l
            self.probs = self.model.probs if hasattr(self.model, "probs") \
                else tf.nn.softmax(self.logits)
        self.model_name = getattr(self.model, "name", type(self.model).__name__)
        self.infl_layer_name, self.infl_layer = influence_layer(self.model)
        self.panels = home.panels()
        self.sess = CountingSession(self._raw_sess, self.x)
        data = home.fit(args.dataset, self.model, args)
        with self.graph():
            self.y_pred = np.asarray(home.predictions(data, self.model, self.sess)).astype(int)
        self.X = np.asarray(data.X, np.float32)
        self.y_true = np.asarray(data.Y).astype(int)
        self.idx = np.asarray(data.Idx).astype(int)
        names = getattr(self.model, "class_names", None)     # the course's VGG16: none
        idx2name = (lambda c: names[c]) if names else home.utils.ImageNet_idx2name
        self.names = {c: idx2name(int(c)) for c in
                      set(self.y_true.tolist()) | set(self.y_pred.tolist())}
        self.settings = settings.scaled(*self.X.shape[1:3])
        try:
            self.sel = select_images(self.y_true, self.y_pred, settings.n_right,
                                     settings.n_wrong, args.images)
        except ValueError as e:         # rows of a folder's classes: known only now
            raise UsageError(str(e)) from None
        self.cache = {}
        self.entries = {}  # part -> list of report entries
        self._methods = {}
        self._writer = FigureWriter()

    def cannot_run(self, part):
        """Why ``part`` cannot run with this model and these helpers, or None."""
        if part == "comparison" and self.panels is None:
            return SKIP_PANELS
        if part == "influence" and self.infl_layer is None:
            return SKIP_LAYER
        if part == "sanity":
            return sanity_skip(self.model)
        return None

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
        """Title info of dataset image ``i`` for :func:`info_title`."""
        info = {"index": int(self.idx[i]), "true_name": self.names[self.y_true[i]],
                "pred_name": self.names[self.y_pred[i]],
                "correct": bool(self.y_true[i] == self.y_pred[i])}
        if note:
            info["note"] = note
        return info

    def label(self, i):
        ok = "correct" if self.y_true[i] == self.y_pred[i] else "incorrect"
        return (f"image {int(self.idx[i])} (true {short_name(self.names[self.y_true[i]])}, "
                f"pred {short_name(self.names[self.y_pred[i]])}, {ok})")

    # ------------------------------------------------------------------- outputs
    def figure(self, part, name, fig, caption, images=None):
        """Queue ``fig`` to be written (in a background thread, while the next work runs);
        ``images``: the data-set rows it shows, recorded in report.json."""
        self._writer.submit(fig, os.path.join(self.out, name))
        entry = {"kind": "figure", "file": name, "caption": caption}
        if images is not None:
            entry["images"] = [{"index": int(self.idx[i]), "row": int(i),
                                "correct": bool(self.y_true[i] == self.y_pred[i])}
                               for i in images]
        self.entries.setdefault(part, []).append(entry)

    def finish_figures(self):
        """Wait until every queued figure is written; re-raise the first failure."""
        self._writer.wait()

    def table(self, part, name, header, rows, caption):
        from hw3_evaluation import csv_table, markdown_table
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
        return study_steps(self.settings, baseline)

    def ig(self):
        return self.ig_sweep("black")[0][self.settings.ig_main_steps]

    def study_baseline(self, name):
        """The baseline of the IG study called ``name`` (one of ``STUDY_BASELINES``) for the
        selected images: IG's own ``'black'`` and ``'white'``, or the arrays made here."""
        from hw3_attribution import blurred
        X = self.X[self.sel]
        if name in ("black", "white"):
            return name
        if name == "noise":  # uniform noise over the whole pixel range, seeded
            rng = np.random.default_rng(self.settings.noise_seed)
            return rng.uniform(0, 255, X.shape[1:]).astype(np.float32)
        if name == "blur":
            return blurred(X, self.settings.study_blur)
        return np.roll(X, 1, axis=0)   # 'other image': each path starts at another image

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
            self.X[self.sel], samples=self.settings.smooth_samples, sigma=self.settings.smooth_sigma,
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
        self._pending.append(self._pool.submit(save_figure, fig, path))

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


def select_images(y_true, y_pred, n_right, n_wrong, chosen=None):
    """Indices of ``n_right`` correctly and ``n_wrong`` incorrectly predicted images.

    The first ones in data order of each kind; ``chosen`` (dataset row indices) overrides.
    """
    if chosen:
        bad = [i for i in chosen if not 0 <= i < len(y_true)]
        if bad:
            raise ValueError(IMAGES_ERROR.format(n=len(y_true), bad=bad))
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
    """Written exercise 14: Saliency, Integrated Gradients and the influence-directed expert
    (pre-softmax score of the predicted class, the whole data set, the influence layer) on
    the 5 + 5 images: input | point cloud | binary mask, one figure per method."""
    sel = run.sel
    methods = [("Saliency", run.saliency(), None), ("Integrated Gradients", run.ig(), None)]
    if run.infl_layer is not None:
        methods += influence_methods(run)
    else:
        print(f"comparison: no influence-directed panels: {SKIP_LAYER}", file=sys.stderr)
    cloud, mask = run.panels
    helpers = ("the project's magnitude_cloud and highlight_top_pixels" if run.home.viz
               else "the course's point_cloud and binary_mask")
    for k, (name, maps, note) in enumerate(methods):
        entries = [(name, run.X[i], maps[j], run.info(i, note)) for j, i in enumerate(sel)]
        caption = (f"{name}: input, point cloud and binary mask ({helpers}) for "
                   f"{len(sel)} images.")
        if "active unit" in name:
            caption += (" The definition's expert is inactive on the data, so this shows the "
                        "most influential unit that is active on at least one image.")
        run.figure("comparison", f"1_comparison_{k + 1}_{slug(name)}.png",
                   comparison_figure(entries, cloud, mask), caption, images=sel)


def influence_methods(run):
    """``(name, maps, note)`` of the exercise-14 expert, and of the most influential
    active unit when the expert is inactive on the whole data set."""
    expert = run.influence_expert()
    e, layer = expert["expert"], expert["layer"]
    if not expert["inactive"]:
        return [(f"Influence (expert {e} of {layer})", run.influence_maps(e), None)]
    note = f"expert {e} of {layer} is inactive on the whole data set: its attribution is zero"
    a = expert["active_expert"]
    return [(f"Influence (expert {e} of {layer})", run.influence_maps(e), note),
            (f"Influence (most influential active unit {a})", run.influence_maps(a), None)]


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
    names = ", ".join(f"{c} {short_name(run.names.get(c, c))}" for c in first + related
                      if c in run.names)
    run.table("influence", "2_influence_experts",
              ["exercise", "quantity of interest", "distribution of interest", "images",
               "expert", "inactive on the DoI", "most influential active unit"], rows,
              f"Expert neurons of layer {layer} (classes: {names}). Exercise 11: two "
              "classes; 12: two related classes (logits most correlated over the data); "
              "13: the unit that separates them.")
    for k in range(0, len(entries) if run.panels else 0, 6):
        run.figure("influence", f"2_influence_experts_{k // 6 + 1}.png",
                   comparison_figure(entries[k:k + 6], *run.panels),
                   "Each expert on a representative image of its class: input, point cloud, "
                   "binary mask of x * grad h_expert(x).")


def part_metrics(run):
    """Average Drop %, Necessity Ordering, Insertion and Deletion."""
    from hw3_evaluation import (AverageDrop, Deletion, Insertion, N_Ord, metric_table,
                                superpixel_sums)
    sel, X = run.sel, run.X[run.sel]
    c = run.targets(sel)
    maps = {"Saliency": run.saliency(), "Integrated Gradients": run.ig()}
    if run.infl_layer is not None:
        expert = run.influence_expert()
        unit = expert["active_expert"] if expert["inactive"] else expert["expert"]
        maps[f"Influence (unit {unit})"] = run.influence_maps(unit)
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
                            M=run.settings.nord_M, progress=run.progress)
    header = ["image"] + nord.methods
    rows = [[run.label(i)] + list(nord.values[:, j]) for j, i in enumerate(sel)]
    rows.append(["mean"] + list(nord.mean))
    run.table("metrics", "3_necessity_ordering", header, rows,
              f"Necessity Ordering (lower is better), M = {run.settings.nord_M} pixels per step.")

    s = run.settings.metric_superpixel
    importance = {f"Occlusion ({s}x{s})": run.occlusion(s), "SmoothGrad": run.smoothgrad(),
                  "Random": run.random_maps()}
    auc_rows, curve_tables = [], {}
    for cls in (Insertion, Deletion):
        table = metric_table(cls, importance, X, run.sess, run.x, run.logits, c, labels,
                             superpixel_size=s, step=run.settings.curve_step,
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
    pooled = [superpixel_sums(per_pixel(a), s) for a in maps_row]
    fig = plot_grid(
        [[X[j]] + maps_row, [X[j]] + pooled],
        [["input"] + [f"{m}, {run.label(sel[j])}" for m in importance],
         ["input"] + [f"{m}, summed per {s}x{s} superpixel" for m in importance]])
    run.figure("metrics", "3_metric_maps.png", fig,
               "The three explanations for one image, per pixel and summed per superpixel.")


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
    """IG with five baselines and many step counts, scored two ways, beside the adaptive
    rule; f_c along each path; the maps side by side."""
    results = {b: run.ig_sweep(b) for b in STUDY_BASELINES}
    kept = {b: kept_probs(run, b) for b in STUDY_BASELINES}
    adaptive = {b: adaptive_ig(run, b) for b in ("black", "white")}
    ig_score_table(run, results, kept, adaptive)
    ig_score_figure(run, results, kept, adaptive)
    ig_path_figure(run)
    for j in range(min(3, len(run.sel))):
        ig_maps_figure(run, j, results, adaptive)


def kept_probs(run, baseline):
    """``[steps, n]``: the target probability of each selected image with only the top
    ``keep_fraction`` of its pixels kept (by the IG map of ``baseline`` at each of the
    study's step counts), the rest blurred."""
    X, c = run.X[run.sel], run.targets(run.sel)
    maps, steps = run.ig_sweep(baseline)[0], run.study_steps(baseline)
    masked = np.concatenate([keep_top(X, maps[n], run.settings.keep_fraction,
                                      run.settings.study_blur) for n in steps])
    probs = run.cached(("keep", baseline),
                       lambda: forward_probs(run, masked, np.tile(c, len(steps))))
    return probs.reshape(len(steps), len(run.sel))


def adaptive_ig(run, baseline):
    """``(attr, info, kept)`` of the adaptive rule on the selected images at the study's
    gradient budget, ``kept`` as :func:`kept_probs` gives it for one map."""
    from hw3_attribution import IntegratedGrad
    X, c = run.X[run.sel], run.targets(run.sel)
    attr, info = run.cached(("ig_adaptive", baseline), lambda: run.method(IntegratedGrad)(
        X, baseline, method="adaptive", max_gradients=run.settings.adaptive_budget,
        return_error=True, target_class=c))
    kept = forward_probs(run, keep_top(X, attr, run.settings.keep_fraction,
                                       run.settings.study_blur), c)
    return attr, info, kept


def ig_score_table(run, results, kept, adaptive):
    """Completeness error and kept-pixel probability per baseline and step count."""
    rows = []
    for b in STUDY_BASELINES:
        err = results[b][1]["completeness_error"]
        for k, n in enumerate(run.study_steps(b)):
            rows.append([b, n, float(np.median(err[n])), float(np.max(err[n])),
                         float(np.mean(kept[b][k]))])
    for b, (_, info, p) in adaptive.items():
        cost = info["gradients"] + np.asarray(info["forwards"]) / 3.0
        rows.append([f"{b} (adaptive)", f"≤{run.settings.adaptive_budget} gradients, "
                     f"mean cost {np.mean(cost):.0f}",
                     float(np.median(info["completeness_error"])),
                     float(np.max(info["completeness_error"])), float(np.mean(p))])
    run.table("ig_study", "4_ig_scores",
              ["baseline", "steps", "median completeness error", "worst completeness error",
               f"mean p(target) with top {run.settings.keep_fraction:.0%} pixels kept"], rows,
              f"Integrated Gradients over {len(run.sel)} images: completeness error "
              "|sum IG - (f(x) - f(x_b))| / |f(x) - f(x_b)| (lower is better) and the target "
              "probability when only the most attributed pixels are kept, the rest blurred "
              "(higher is better). Right-Riemann rule; the 'noise' baseline is uniform noise "
              "0-255, 'blur' a Gaussian blur (sigma 10 px), 'other image' the previous image "
              "of the set.")


def ig_score_figure(run, results, kept, adaptive):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    for b in STUDY_BASELINES:
        err, bsteps = results[b][1]["completeness_error"], run.study_steps(b)
        ax1.plot(bsteps, [np.median(err[n]) for n in bsteps], marker="o", label=b)
        ax2.plot(bsteps, kept[b].mean(axis=1), marker="o", label=b)
    for b, (_, info, _) in adaptive.items():
        ax1.scatter([run.settings.adaptive_budget], [np.median(info["completeness_error"])],
                    marker="*", s=120, label=f"{b}, adaptive")
    ax1.set(xscale="log", yscale="log", xlabel="steps (gradients)",
            ylabel="median completeness error", title="Completeness error")
    ax2.set(xscale="log", xlabel="steps", ylabel="mean p(target)",
            title=f"Top {run.settings.keep_fraction:.0%} pixels kept")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    run.figure("ig_study", "4_ig_scores.png", fig,
               "Completeness error and kept-pixel probability against the number of steps, "
               "per baseline; stars: the adaptive rule at its gradient budget.")


def ig_path_figure(run):
    """f_c along each baseline's path: most of the change happens near the black one."""
    from hw3_attribution import IntegratedGrad
    from matplotlib.figure import Figure
    sel, X, c = run.sel, run.X[run.sel], run.targets(run.sel)
    ig = run.method(IntegratedGrad)
    n_path = min(run.settings.path_images, len(sel))
    half = run.settings.path_points // 2 + 1
    alphas = np.unique(np.concatenate([np.linspace(0, 0.1, half), np.linspace(0.1, 1, half)]))
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


def ig_maps_figure(run, j, results, adaptive):
    """Selected image ``j``: rows are baselines, columns step counts (and adaptive)."""
    X, label = run.X[run.sel], run.label(run.sel[j])
    grid, titles = [], []
    for b in STUDY_BASELINES:
        maps, info = results[b]
        bsteps = run.study_steps(b)
        show = [n for n in bsteps if n in (bsteps[0], run.settings.ig_main_steps, bsteps[-1])]
        err = info["completeness_error"]
        row = [maps[n][j].sum(-1) for n in show]
        t = [f"{b}, {n} steps, err {err[n][j]:.0%}" for n in show]
        if b in adaptive:
            attr, ainfo, _ = adaptive[b]
            row.append(attr[j].sum(-1))
            t.append(f"{b}, adaptive, err {ainfo['completeness_error'][j]:.0%}")
        grid.append([X[j]] + row)
        titles.append([label if not titles else "input"] + t)
    run.figure("ig_study", f"4_ig_maps_{j + 1}.png", plot_grid(grid, titles),
               f"IG maps (summed over channels, red positive, blue negative) for {label}: "
               f"rows are baselines, columns step counts (noise, blur and other image up to "
               f"{run.settings.ig_other_max} steps).")


def keep_top(X, maps, fraction, blur_sigma=10.0):
    """Images with only the top ``fraction`` of pixels by positive attribution kept and
    every other pixel taken from a blurred copy (a black background leaves so little
    that every map scores near zero and the score cannot tell them apart)."""
    from hw3_attribution import blurred
    a = np.asarray(maps, np.float64).sum(-1).reshape(len(X), -1)
    k = max(1, int(round(fraction * a.shape[1])))
    cut = np.partition(a, a.shape[1] - k, axis=1)[:, a.shape[1] - k][:, None]
    keep = ((a >= cut) & (a > 0)).reshape(X.shape[:3])[..., None]
    return np.where(keep, X, blurred(X, blur_sigma)).astype(np.float32)


def forward_probs(run, images, targets):
    """Target-class probabilities of ``images``, batched."""
    from hw3_attribution import DEFAULT_BATCH_SIZE, chunk_slices
    out = np.empty(len(images), np.float32)
    for sl in chunk_slices(len(images), DEFAULT_BATCH_SIZE):
        p = run.sess.run(run.probs, {run.x: images[sl]})
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
    igb = np.abs(run.ig_sweep("black")[0][run.settings.ig_main_steps][:3]).sum(-1)
    igw = np.abs(run.ig_sweep("white")[0][run.settings.ig_main_steps][:3]).sum(-1)
    n = run.settings.ig_main_steps
    grid = [[X[j], vg[j], sg[j], igb[j], igw[j]] for j in range(len(first))]
    titles = [[run.label(i), "vanilla gradient |grad| summed",
               f"SmoothGrad ({run.settings.smooth_samples} samples) |.| summed",
               f"IG black ({n} steps) |.| summed", f"IG white ({n} steps) |.| summed"]
              for i in first]
    modes = [["image"] + ["abs"] * 4 for _ in first]
    run.figure("gradients", "5_gradient_methods.png", plot_grid(grid, titles, modes),
               "Vanilla gradient, SmoothGrad and Integrated Gradients with black and white "
               "baselines (magnitudes summed over channels) on the first three images.")
    s = run.settings.metric_superpixel
    occ = run.occlusion(s)[:3]
    run.figure("gradients", "5_occlusion.png",
               plot_grid([[X[j], occ[j]] for j in range(len(first))],
                               [[run.label(i), f"occlusion {s}x{s}, black"] for i in first],
                               [["image", "signed"] for _ in first]),
               f"Occlusion ({s}x{s} superpixels, black baseline) on the first three images: "
               "red = the score drops when the patch is hidden.")
    one = first[:1]
    sizes = run.settings.occlusion_sizes
    maps = [run.occlusion(k, rows=one)[0] for k in sizes]
    run.figure("gradients", "5_occlusion_sizes.png",
               plot_row(X[0], maps, [run.label(first[0])]
                              + [f"occlusion {k}x{k}" for k in sizes],
                              modes=["signed"] * len(sizes)),
               "Occlusion of the first image with superpixels of several sizes.")
    from scipy.ndimage import gaussian_filter
    k = run.settings.blur_superpixel
    blurred = [gaussian_filter(X[0], sigma=(b, b, 0), mode="reflect")
               for b in run.settings.blur_sigmas]
    maps = [run.occlusion(k, baseline="blur", blur_sigma=b, rows=one)[0]
            for b in run.settings.blur_sigmas]
    grid = [[X[0]] + blurred, [X[0]] + maps]
    titles = [[run.label(first[0])] + [f"blurred, sigma {b:g} px" for b in run.settings.blur_sigmas],
              ["input"] + [f"occlusion {k}x{k}, blur sigma {b:g}" for b in run.settings.blur_sigmas]]
    modes = [["image"] * (1 + len(blurred)), ["image"] + ["signed"] * len(maps)]
    run.figure("gradients", "5_occlusion_blur.png", plot_grid(grid, titles, modes),
               "Occlusion with blurred baselines of several strengths (top: the baselines).")
    pair_methods_figure(run, first)
    perturbation_methods_figure(run, first)
    propagation_methods_figure(run, first)
    cam_methods_figure(run, first[:run.settings.cam_images])


def pair_maps(run, X, c, pair):
    """PAIR saliency's four methods (the module ``pair``) on the images ``X`` (issue 19),
    with IG's budget of steps: ``{title: (maps [N, H, W], mode)}``, and a note on what was
    left out. XRAI's segments need scikit-image, which the course's folder may lack."""
    n = run.settings.ig_main_steps
    maps, note = {}, ""
    try:
        maps[f"XRAI ({n} steps, black + white)"] = (run.cached(
            ("xrai", n), lambda: run.method(pair.XRAI)(X, num_steps=n, target_class=c)),
            "signed")
    except ImportError as err:
        note = f" XRAI is left out: {err}"
    entries = (("Guided IG", pair.GuidedIG, dict(num_steps=n)),
               ("Blur IG", pair.BlurIG, dict(num_steps=n)),
               ("Guided Backprop", pair.GuidedBackprop, {}))
    for name, cls, kw in entries:
        a = run.cached((name, n), lambda: run.method(cls)(X, target_class=c, **kw))
        title = f"{name} ({n} steps)" if kw else name
        maps[title + " |.| summed"] = (np.abs(a).sum(-1), "abs")
    return maps, note


def pair_methods_figure(run, first):
    """XRAI, Guided IG, Blur IG and Guided Backprop beside the image, for the first three
    images (the methods of PAIR saliency's TF1 module), where the project's package is here
    (the course's folder holds the graded files alone: there it says what it skipped)."""
    try:
        from attrkit.methods import pair
    except ImportError:
        print("skipped 5_pair_methods.png: " + NO_PACKAGE.format(what="PAIR saliency's "
                                                                  "methods"), file=sys.stderr)
        return
    X, c = run.X[first], run.targets(first)
    maps, note = pair_maps(run, X, c, pair)
    run.figure("gradients", "5_pair_methods.png", method_grid(run, first, maps),
               "PAIR saliency's methods on the first three images: XRAI (regions ranked by "
               "their Integrated Gradients density, black and white baselines; each region "
               "shows its mean), Guided IG (an adaptive path that moves the features of "
               "smallest gradient first), Blur IG (a path through Gaussian blurs, up to 50 "
               "px) and Guided Backprop (only positive gradients through the ReLUs)." + note)


SHAP_GREYS = (0.0, 127.5, 255.0)     # the SHAP methods' baselines: black, grey, white


def propagation_panels(run, X):
    """The methods of 5_propagation_methods.png: ``(title, class name, constructor
    keywords, call keywords, mode)``."""
    s = run.settings
    greys = np.stack([np.full(X.shape[1:], v, np.float32) for v in SHAP_GREYS])
    lrp = dict(rules=("epsilon", "epsilon_plus_flat"))
    return (("DeepLIFT (black)", "DeepLIFT", {}, dict(baseline="black"), "signed"),
            ("DeepLiftSHAP (black, grey, white)", "DeepLiftSHAP", {}, dict(baselines=greys),
             "signed"),
            (f"GradientSHAP ({s.smooth_samples} samples)", "GradientSHAP", {},
             dict(baselines=greys, num_samples=s.smooth_samples, seed=0), "signed"),
            ("DeconvNet |.| summed", "DeconvNet", {}, {}, "abs"),
            ("LRP epsilon", "LRP", lrp, dict(rule="epsilon"), "signed"),
            ("LRP epsilon-plus-flat", "LRP", lrp, dict(rule="epsilon_plus_flat"), "signed"))


def propagation_methods_figure(run, first):
    """DeepLIFT, DeepLiftSHAP, GradientSHAP, DeconvNet and LRP (two rules) beside the
    image for the first three images, where the project's package is here."""
    try:
        from attrkit.methods import lrp, propagation
    except ImportError:
        print("skipped 5_propagation_methods.png: " + NO_PACKAGE.format(
            what="The propagation methods (DeepLIFT, LRP, ...)"), file=sys.stderr)
        return
    X, c = run.X[first], run.targets(first)
    modules = {"LRP": lrp}
    maps, left = {}, []
    for title, name, build, call, mode in propagation_panels(run, X):
        try:        # a model with an op the method has no rule for: said in the caption
            method = run.method(getattr(modules.get(name, propagation), name), None, **build)
        except ValueError as err:
            left.append(f"{title} ({err})")
            continue
        a = run.cached(("propagation", title), lambda: method(X, target_class=c, **call))
        maps[title] = (np.abs(a).sum(-1) if mode == "abs" else a.sum(-1), mode)
    run.figure("gradients", "5_propagation_methods.png", method_grid(run, first, maps),
               "Propagation methods on the first three images (channel sums): DeepLIFT's "
               "rescale rule from a black baseline and its mean over black, grey and white "
               "baselines (DeepLiftSHAP; each map sums to the score's change from its "
               "baseline), GradientSHAP (expected gradients over the same baselines), "
               "DeconvNet (ReLUs pass the positive part of the gradient back) and LRP with "
               "Zennit's epsilon rule and its epsilon-plus-flat composite (relevance from "
               "the target's score, passed back layer by layer); red raises the score, "
               "blue lowers it." + left_out(left), images=first)


CAM_PANELS = {"Grad-CAM++": "GradCAMPlusPlus", "XGrad-CAM": "XGradCAM", "LayerCAM": "LayerCAM",
              "HiResCAM": "HiResCAM", "Eigen-CAM": "EigenCAM", "Score-CAM": "ScoreCAM",
              "Ablation-CAM": "AblationCAM"}      # title -> class of attrkit.methods.cam


def cam_methods_figure(run, first):
    """Grad-CAM and the CAM family of pytorch-grad-cam on the model's Grad-CAM layer,
    beside the image, where the project's package is here."""
    try:
        from attrkit.methods import cam
    except ImportError:
        print("skipped 5_cam_methods.png: " + NO_PACKAGE.format(
            what="The CAM family (Grad-CAM++, Score-CAM, ...)"), file=sys.stderr)
        return
    from hw3_attribution import GradCAM
    name = getattr(run.model, "default_layers", {}).get("gradcam")
    layer = run.model.layers[name] if name else getattr(run.model, "conv5_3", None)
    if layer is None:
        print("skipped 5_cam_methods.png: the model names no Grad-CAM layer "
              "(default_layers['gradcam'])", file=sys.stderr)
        return
    X, c = run.X[first], run.targets(first)
    maps, left = {"Grad-CAM": (run.method(GradCAM, None, layer)(X, target_class=c), "abs")}, []
    for title, cls in CAM_PANELS.items():
        try:        # Ablation-CAM on a layer that a skip connection goes around
            method = run.method(getattr(cam, cls), None, layer)
        except ValueError as err:
            left.append(f"{title} ({err})")
            continue
        maps[title] = (run.cached(("cam", cls), lambda: method(X, target_class=c)), "abs")
    run.figure("gradients", "5_cam_methods.png", method_grid(run, first, maps),
               f"Class activation maps at the layer {layer.name.split(':')[0]!r} of the "
               f"first {len(first)} image(s), as pytorch-grad-cam defines each one's "
               "weights: Grad-CAM (mean gradient), Grad-CAM++ (positive gradients weighted "
               "by second and third derivatives), XGrad-CAM (gradients weighted by the "
               "activations), LayerCAM and HiResCAM (a weight per position), Eigen-CAM (the "
               "activations' first principal component: the same for every class), "
               "Score-CAM (the score of the image masked by each channel) and Ablation-CAM "
               "(the score lost when a channel is zeroed)." + left_out(left), images=first)


def method_grid(run, first, maps):
    """A figure of the images ``first`` (rows), each beside its map of every method:
    ``maps`` ``{title: (maps [N, H, W], mode)}``."""
    X = run.X[first]
    grid = [[X[j]] + [m[j] for m, _ in maps.values()] for j in range(len(first))]
    titles = [[run.label(i)] + list(maps) for i in first]
    modes = [["image"] + [mode for _, mode in maps.values()] for _ in first]
    return plot_grid(grid, titles, modes)


def left_out(reasons):
    """A caption's note on the methods left out, with why (or nothing)."""
    return " Left out: " + "; ".join(reasons) + "." if reasons else ""


def segment_count(details, j):
    """How many segments image ``j`` of a call had (its ``details['segments']``)."""
    return int(np.max(details["segments"][j])) + 1


@dataclass(frozen=True)
class PerturbationPanel:
    """One method of ``5_perturbation_methods.png``: its class in
    ``attrkit.methods.perturbation``, its call's keywords from the run's :class:`Settings`,
    the budget its panels are titled with (from the settings and the call's details, for
    image ``j``), and how its map is drawn (``'signed'``, or ``'relative'``: above the
    map's own minimum, for a map of mean scores)."""
    title: str
    cls: str
    keywords: object            # settings -> dict
    budget: object              # (settings, details, j) -> str
    mode: str = "signed"


# The methods of 5_perturbation_methods.png, one entry each, in their order.
PERTURBATION_PANELS = (
    PerturbationPanel("LIME", "LIME",
                      lambda s: dict(num_samples=s.lime_samples, segments=s.segments),
                      lambda s, d, j: f"{s.lime_samples} samples, {segment_count(d, j)} "
                                      f"{s.segments} segments"),
    PerturbationPanel("KernelSHAP", "KernelSHAP",
                      lambda s: dict(num_samples=s.shap_samples, segments=s.segments),
                      lambda s, d, j: f"{int(d['coalitions'][j])} coalitions, "
                                      f"{segment_count(d, j)} {s.segments} segments"),
    PerturbationPanel("RISE", "RISE", lambda s: dict(num_masks=s.rise_masks),
                      lambda s, d, j: f"{s.rise_masks} masks, 7x7 cells", mode="relative"),
    PerturbationPanel("Feature ablation", "FeatureAblation",
                      lambda s: dict(segments=s.segments),
                      lambda s, d, j: f"{segment_count(d, j)} {s.segments} segments"),
    PerturbationPanel("PartitionSHAP", "PartitionSHAP",
                      lambda s: dict(max_evals=s.partition_evals),
                      lambda s, d, j: f"{s.partition_evals} evaluations, {d['masker']}"),
)


def perturbation_maps(run, X, c, perturbation):
    """The perturbation methods of :data:`PERTURBATION_PANELS` on the images ``X`` (classes
    ``c``) with the run's budgets: ``{title: (maps [N, H, W], titles [N], mode)}``, and a
    note on what was left out (the segment methods need scikit-image, which the course's
    environment may lack; RISE does not)."""
    s, out, left = run.settings, {}, []
    for panel in PERTURBATION_PANELS:
        budget = panel.keywords(s)
        method = run.method(getattr(perturbation, panel.cls))
        try:
            maps, details = run.cached(
                ("perturbation", panel.cls, tuple(sorted(budget.items()))),
                lambda: method(X, target_class=c, seed=0, return_details=True, **budget))
        except ImportError as err:
            left.append(f"{panel.title} ({err})")
            continue
        except ValueError as err:     # e.g. quickshift finds one segment in a small image
            if not str(err).startswith("segments:"):
                raise
            left.append(f"{panel.title} ({str(err).split(', got ')[-1]}: too few segments "
                        f"with --segments {s.segments})")
            continue
        maps = np.asarray(maps, np.float64)
        if maps.ndim == 4:                  # PartitionSHAP's X.shape: the channel sum
            maps = maps.sum(axis=-1)
        if panel.mode == "relative":
            maps = maps - maps.reshape(len(maps), -1).min(axis=1)[:, None, None]
        titles = [f"{panel.title}\n{panel.budget(s, details, j)}" for j in range(len(X))]
        out[panel.title] = (maps, titles, "abs" if panel.mode == "relative" else "signed")
    return out, left_out(left)


def perturbation_methods_figure(run, first):
    """LIME, KernelSHAP, RISE, feature ablation and PartitionSHAP beside the image, for the
    first three images, each panel titled with its budget (samples, coalitions, masks,
    segments, evaluations),
    where the project's package is here (the course's folder holds the graded files
    alone: there it says what it skipped)."""
    try:
        from attrkit.methods import perturbation
    except ImportError:
        print("skipped 5_perturbation_methods.png: " + NO_PACKAGE.format(
            what="The perturbation methods (LIME, KernelSHAP, RISE, feature ablation)"),
            file=sys.stderr)
        return
    X, c = run.X[first], run.targets(first)
    maps, note = perturbation_maps(run, X, c, perturbation)
    if not maps:
        print("skipped 5_perturbation_methods.png:" + note, file=sys.stderr)
        return
    grid = [[X[j]] + [m[j] for m, _, _ in maps.values()] for j in range(len(first))]
    titles = [[run.label(i)] + [t[j] for _, t, _ in maps.values()]
              for j, i in enumerate(first)]
    modes = [["image"] + [mode for _, _, mode in maps.values()] for _ in first]
    run.figure("gradients", "5_perturbation_methods.png", plot_grid(grid, titles, modes),
               "Perturbation methods on the first three images, each from the target's "
               "pre-softmax score on masked copies of the image (hidden segments and "
               "masked pixels black): LIME (a weighted linear model of which segments are "
               "shown), KernelSHAP (the segments' Shapley values, estimated from "
               "coalitions), RISE (the mean score of random soft masks that keep a pixel, "
               "drawn above the map's minimum), feature ablation (the score lost when "
               "one segment is hidden) and PartitionSHAP (shap's Owen values over a "
               "partition of rows, columns and channels, blurred where masked; the "
               "channel sum); red raises the score, blue lowers it. Each panel "
               "names its budget." + note)


def sanity_skip(model):
    """Why the randomisation test cannot run here, or None: it needs the project's package
    and a model whose weights are variables."""
    try:
        from attrkit.metrics.randomisation import weight_layers
    except ImportError:
        return NO_PACKAGE.format(what="The randomisation test and Guided Backprop")
    try:
        weight_layers(model)
    except TypeError:
        return SKIP_WEIGHTS
    return None


def sanity_methods(run):
    """The methods of Adebayo et al.'s figure: ``(title, name, call keywords)``."""
    s = run.settings
    return (("Saliency", "saliency", {}),
            (f"IG ({s.ig_main_steps} steps)", "ig", dict(num_steps=s.ig_main_steps)),
            (f"SmoothGrad ({s.smooth_samples})", "smoothgrad",
             dict(samples=s.smooth_samples, sigma=s.smooth_sigma, seed=0)),
            ("Grad-CAM", "gradcam", {}), ("Guided Backprop", "guided_backprop", {}))


def part_sanity(run):
    """Adebayo et al.'s cascading randomisation (Sanity checks for saliency maps, NeurIPS
    2018): each method's map of the first image as the model's layer blocks are randomised
    from the top, and the Spearman similarity to the trained model's map over the images."""
    try:        # the project's package: cannot_run('sanity') has checked it is here
        from attrkit.metrics.randomisation import ModelParameterRandomisation, block_of
    except ImportError:
        print("skipped sanity: " + NO_PACKAGE.format(what="The randomisation test"),
              file=sys.stderr)
        return
    rows = run.sel[:run.settings.sanity_images]
    X, c = run.X[rows], run.targets(rows)
    results = {}
    for title, name, kw in sanity_methods(run):
        with run.graph(), warnings.catch_warnings():   # undefined: the table says so
            warnings.simplefilter("ignore", RuntimeWarning)
            results[title] = ModelParameterRandomisation(
                run.sess, run.model, name, X, c, method_kwargs=kw, blocks=block_of,
                return_maps=True, progress=run.progress)
    steps = list(next(iter(results.values()))[0])
    grid, titles = [], []
    for title, (_, maps) in results.items():
        grid.append([X[0]] + [_pixel(maps[k][0]) for k in steps])
        titles.append([run.label(rows[0]) if not grid[:-1] else "input"]
                      + [f"{title}: trained" if k == "original" else f"up to {k} random"
                         for k in steps])
    run.figure("sanity", "6_randomisation_maps.png",
               plot_grid(grid, titles, [["image"] + ["abs"] * len(steps)] * len(grid)),
               "Cascading randomisation: each method's map (|.|, normalised) of the first "
               "image with the model as trained, then with its layer blocks randomised from "
               "the top (PyTorch's default initialisation), left to right. A map that stays "
               "the same does not depend on what the model learned.", images=rows[:1])
    run.figure("sanity", "6_randomisation_curves.png", similarity_curves(results, steps),
               f"Spearman similarity to the trained model's map over {len(rows)} images "
               "(the line: their mean; the band: their range) as more blocks are randomised.",
               images=rows)
    run.table("sanity", "6_randomisation", ["method"] + steps,
              [[t] + [float(np.mean(sc[k])) for k in steps] for t, (sc, _) in results.items()],
              "Mean Spearman similarity to the trained model's map, per step of the "
              "cascade (Quantus' MPRT: |.| of each map normalised by its largest value); "
              "undefined where a map is constant (Grad-CAM's maps turn all zero once "
              "its layer's inputs are random).")


def _pixel(a):
    """A map ``[H, W]`` (channels summed) for a panel."""
    return a.sum(-1) if a.ndim == 3 else a


def similarity_curves(results, steps):
    """Each method's mean similarity per step, with its range over the images."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(max(6.0, 0.55 * len(steps)), 3.6))
    ax = fig.subplots()
    x = np.arange(len(steps))
    for title, (scores, _) in results.items():
        values = np.array([np.atleast_1d(scores[k]) for k in steps])      # [steps, N]
        ax.plot(x, values.mean(1), marker="o", label=title)
        ax.fill_between(x, values.min(1), values.max(1), alpha=0.15)
    ax.set_xticks(x, ["trained"] + steps[1:], rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("randomised from the top down to this block (cumulative)", fontsize=8)
    ax.set_ylabel("Spearman similarity")
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


PART_FUNCTIONS = {"comparison": part_comparison, "influence": part_influence,
                  "metrics": part_metrics, "ig_study": part_ig_study,
                  "gradients": part_gradients, "sanity": part_sanity}


# ---------------------------------------------------------------------------- figures
# Drawn here with matplotlib alone, so that the graded file draws its figures beside the
# course's helpers too; attrkit/figures/plots.py builds its richer panels on these.

PANEL_SIZE = 2.6         # inches per panel side
TITLE_WIDTH = 46         # characters per title line before wrapping
PANEL_MODES = ("auto", "signed", "abs", "gray", "image")
PANEL_MODE_ERROR = "mode: expected one of {expected}, got {actual!r}"
PANEL_COUNT_ERROR = "{arg}: expected {expected} entries, got {actual}"


def short_name(name):
    """The first synonym of an ImageNet class name ('goldfish, Carassius auratus' ->
    'goldfish'); anything that is not a string is formatted with ``str``."""
    if not isinstance(name, str):
        return str(name)
    return name.split(",")[0].strip()


def panel_title(method, index, true_name, pred_name, correct=None, width=TITLE_WIDTH):
    """The homework's panel title: method, image index, true and predicted class, e.g.
    ``'Saliency, image 354\\ntrue: Arabian camel\\npred: weasel (incorrect)'``.

    Long synonym lists are cut to the first one; ``correct`` None compares the two names;
    lines longer than ``width`` characters are wrapped.
    """
    import textwrap
    if correct is None:
        correct = true_name == pred_name
    lines = [f"{method}, image {index}", f"true: {short_name(true_name)}",
             f"pred: {short_name(pred_name)} ({'correct' if correct else 'incorrect'})"]
    return "\n".join(textwrap.fill(line, width) for line in lines)


def info_title(method, info):
    """A panel title from ``info``: a dict with ``index``, ``true_name``, ``pred_name``,
    optionally ``correct`` and ``note`` (a line added below), or a ready string, or None."""
    import textwrap
    if isinstance(info, str):
        return f"{method}, {info}"
    if info is None:
        return str(method)
    title = panel_title(method, info.get("index", "?"), info.get("true_name", "?"),
                        info.get("pred_name", "?"), info.get("correct"))
    note = info.get("note")
    return f"{title}\n{textwrap.fill(note, TITLE_WIDTH)}" if note else title


def per_pixel(a):
    """A map ``[H, W]`` (float64) from ``[H, W]`` or ``[H, W, C]`` (summed over channels)."""
    a = np.asarray(a, np.float64)
    return a.sum(axis=-1) if a.ndim == 3 else a


def _finish_axes(ax, title):
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=8)


def plot_signed(ax, attr, title=None, colorbar=False):
    """Diverging heat map of a signed map (summed over channels): seismic, limits
    +-max|a| (red +, blue -); an all-zero map is drawn white with limits +-1."""
    agg = per_pixel(attr)
    m = float(np.abs(agg).max())
    m = m if m > 0 else 1.0
    im = ax.imshow(agg, cmap="seismic", vmin=-m, vmax=m)
    _finish_axes(ax, title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return im


def plot_magnitude(ax, attr, title=None, cmap="hot", colorbar=False):
    """Heat map of the magnitude ``|sum_c a|`` with limits ``[0, max]``."""
    agg = np.abs(per_pixel(attr))
    m = float(agg.max())
    im = ax.imshow(agg, cmap=cmap, vmin=0.0, vmax=m if m > 0 else 1.0)
    _finish_axes(ax, title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return im


def show_image(ax, image, title=None):
    """Show an RGB 0-255 image (float or uint8) or a grey ``[H, W]`` map in [0, 1]."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        im = ax.imshow(arr, cmap="gray", vmin=0.0, vmax=1.0)
    else:
        im = ax.imshow(np.clip(np.asarray(arr, np.float64), 0, 255).astype(np.uint8))
    _finish_axes(ax, title)
    return im


def plot_map(ax, data, mode="auto", title=None):
    """Draw one panel. Modes: ``'signed'`` (plot_signed), ``'abs'`` (plot_magnitude),
    ``'gray'`` (a [0, 1] map such as a point cloud), ``'image'`` (RGB 0-255), and
    ``'auto'``: signed if the map has negative values, else magnitude."""
    if mode not in PANEL_MODES:
        raise ValueError(PANEL_MODE_ERROR.format(expected=PANEL_MODES, actual=mode))
    if mode == "auto":
        mode = "signed" if np.min(data) < 0 else "abs"
    if mode == "signed":
        return plot_signed(ax, data, title)
    if mode == "abs":
        return plot_magnitude(ax, data, title)
    return show_image(ax, data, title)


def plot_grid(rows, titles, modes=None, suptitle=None, panel_size=PANEL_SIZE):
    """A figure with one titled panel per entry of ``rows`` (a list of rows of arrays).

    ``titles`` has the same nesting (every panel is titled); ``modes`` too (``plot_map``
    modes; None: ``'auto'``). Rows may differ in length. Returns a
    ``matplotlib.figure.Figure`` (pass it to :func:`save_figure`).
    """
    from matplotlib.figure import Figure
    if not rows:
        raise ValueError(PANEL_COUNT_ERROR.format(arg="rows", expected="at least 1",
                                                  actual=0))
    if len(titles) != len(rows):
        raise ValueError(PANEL_COUNT_ERROR.format(arg="titles", expected=len(rows),
                                                  actual=len(titles)))
    modes = [["auto"] * len(r) for r in rows] if modes is None else modes
    n_cols = max(len(r) for r in rows)
    # room for the titles: about 0.15 inch per line of 8-point text
    lines = sum(max((str(t).count("\n") + 1 for t in row if t is not None), default=0)
                for row in titles)
    fig = Figure(figsize=(panel_size * n_cols, panel_size * len(rows) + 0.15 * lines
                          + 0.2 * len(rows) + (0.4 if suptitle else 0.0)))
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for r, row in enumerate(rows):
        if len(titles[r]) != len(row) or len(modes[r]) != len(row):
            raise ValueError(PANEL_COUNT_ERROR.format(arg=f"titles/modes of row {r}",
                                                      expected=len(row),
                                                      actual=(len(titles[r]), len(modes[r]))))
        for c in range(n_cols):
            if c < len(row):
                plot_map(axes[r, c], row[c], modes[r][c], titles[r][c])
            else:
                axes[r, c].axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def plot_row(image, maps, titles, modes=None, suptitle=None, panel_size=PANEL_SIZE):
    """The image and any number of maps in one row, every panel titled. ``titles``: one
    per map, the image's first (or one per map only: the image is titled 'input');
    ``modes``: one ``plot_map`` mode per map (None: 'auto')."""
    maps, titles = list(maps), list(titles)
    if len(titles) == len(maps):
        titles = ["input"] + titles
    if len(titles) != len(maps) + 1:
        raise ValueError(PANEL_COUNT_ERROR.format(
            arg="titles", expected=f"{len(maps) + 1} or {len(maps)}", actual=len(titles)))
    modes = ["auto"] * len(maps) if modes is None else list(modes)
    if len(modes) != len(maps):
        raise ValueError(PANEL_COUNT_ERROR.format(arg="modes", expected=len(maps),
                                                  actual=len(modes)))
    return plot_grid([[image] + maps], [titles], [["image"] + modes], suptitle, panel_size)


def comparison_figure(entries, cloud, mask, suptitle=None, panel_size=PANEL_SIZE):
    """Written exercise 14's layout: one row per ``(method, image, attribution, info)``
    entry, panels input | ``cloud(attribution)`` | ``mask(image, attribution)``, each
    titled with the method, the image's index, the true and predicted class and whether
    the prediction is right (:func:`info_title`)."""
    grid, titles, modes = [], [], []
    for method, image, attribution, info in entries:
        grid.append([image, cloud(attribution), mask(image, attribution)])
        titles.append([info_title(f"{method}: {panel}", info)
                       for panel in ("input", "point cloud", "binary mask")])
        modes.append(["image", "gray", "image"])
    return plot_grid(grid, titles, modes, suptitle, panel_size)


def save_figure(fig, path, dpi=120):
    """Write ``fig`` as a PNG to ``path`` through the project's one atomic writer
    (``hw3_evaluation.write_bytes``), then close it; returns ``path`` as a string. A
    failed drawing writes nothing and leaves an older file as it was."""
    import io
    from hw3_evaluation import write_bytes
    path = os.fspath(path)
    try:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
        write_bytes(path, buffer.getvalue())
    finally:
        from matplotlib.figure import Figure
        pyplot = sys.modules.get("matplotlib.pyplot")   # a pyplot figure is closed too
        if pyplot is not None and isinstance(fig, Figure):
            pyplot.close(fig)
    return path


# ----------------------------------------------------------------------------- report

def write_report(run, timings, skipped=None):
    """Merge this run's entries into report.json and rewrite index.md from it; the parts
    in ``skipped`` that no run has written are listed at the end with the reason."""
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
                       "model": run.model_name, "images": len(run.X),
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
    missing = {p: why for p, why in (skipped or {}).items() if p not in parts}
    if missing:
        lines += ["## Skipped", ""] + [f"- {PART_TITLES[p]}: {why}." for p, why in
                                       missing.items()] + [""]
    write_text(os.path.join(run.out, "index.md"), "\n".join(lines) + "\n")
    return listed


# ------------------------------------------------------------------------------- main

def writable_folder(path):
    """Whether ``path`` is, or can be made as, a folder this process may write into: a
    file can be made (and is removed at once) in the folder or, when it does not exist,
    in its nearest existing parent (permission bits alone say nothing to root)."""
    import tempfile
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    try:
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


def import_tensorflow(verbose=False):
    """Import TensorFlow; unless ``verbose``, its start-up notices are not shown.

    TensorFlow 2.21 prints its oneDNN notice and absl's "before InitializeLog" lines to
    file descriptor 2 while it loads, whatever ``TF_CPP_MIN_LOG_LEVEL`` says, so stderr
    is pointed at /dev/null for the import alone; the level set here (2, warnings and
    errors stay) quiets what comes later. Python errors of the import still show.
    """
    if verbose or "tensorflow" in sys.modules:
        import tensorflow as tf
        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            import tensorflow as tf
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tf



def group_by_reason(skipped):
    """``[(reason, 'part, part'), ...]`` from ``{part: reason}``, in the parts' order."""
    reasons = {}
    for part in PARTS:
        if part in skipped:
            reasons.setdefault(skipped[part], []).append(part)
    return [(why, ", ".join(names)) for why, names in reasons.items()]



def add_model_options(p):
    """The model options every script shares (``hw3_utils.parse_model_options`` checks
    them): ``--model``, ``--weights``, ``--labels``, ``--preprocess``, ``--input-size``."""
    p.add_argument("--model", help="vgg16, efficientnet_lite0, resnet18, resnet50 (with "
                                   "--weights, a torchvision .pth), or a path to your own Keras "
                                   ".keras / .h5 file or SavedModel folder (default: VGG16 if "
                                   "its weights are found, else the bundled EfficientNet-Lite0)")
    p.add_argument("--weights", help="weights file for the model (VGG16: the classic "
                                     "vgg16_weights.npz or Keras' .h5; ResNet: a .pth)")
    p.add_argument("--labels", help="your model's class names, one per line in index order "
                                    "(default: ImageNet's for 1000 classes, else the class "
                                    "folders' names sorted as Keras orders them, when as "
                                    "many, else 'class i')")
    p.add_argument("--preprocess", help="what your model expects, given RGB 0-255: none, "
                                        "unit (/255), tf (-1..1), caffe (BGR, mean "
                                        "subtracted), torch (ImageNet mean/std) or MEAN/STD "
                                        "per channel in 0-255 units, e.g. 127,127,127/64,64,64 "
                                        "(default: the model's own layers or family)")
    p.add_argument("--input-size", help="N or H,W: the input of a fully convolutional model")


def parse_args(argv=None, probe=False):
    """The options, checked; with ``probe``, also ``args.home`` (:class:`Home`), and the
    options that this folder's helpers cannot honour are refused."""
    p = argparse.ArgumentParser(
        description="Regenerate every figure and table of the homework's written part "
                    "into an output folder (index.md shows them in order).",
        epilog="Parts: " + ", ".join(PARTS) + ". The default model is the bundled "
               "EfficientNet-Lite0; VGG16 is used when its weights are given or found "
               "(HW3_VGG16_WEIGHTS, ./vgg16_weights.npz).")
    add_model_options(p)
    p.add_argument("--data", help="a course-style .npz data set, a folder with one sub-folder "
                                  "of images per class (any names), or 'bundled' for the "
                                  "bundled sample photographs (default: imagenet_14c_vgg16.npz "
                                  "from ., .. or ../.. as the course's load_ImageNet finds it, "
                                  "else the bundled sample)")
    p.add_argument("--out", default="figures", help="output folder (default: figures/)")
    p.add_argument("--parts",
                   help="comma-separated parts to run (default: all; beside the course's own "
                        "helpers, the homework's: " + ", ".join(HOMEWORK_PARTS) + ")")
    p.add_argument("--images", help="comma-separated data-set row indices to use instead of "
                                    "the first 5 correct and 5 incorrect predictions")
    p.add_argument("--quick", action="store_true",
                   help="every figure with smaller budgets (fewer images, steps and samples)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's start-up notices (oneDNN, absl), hidden otherwise")
    args = p.parse_args(argv)
    check_options(args, p.error)
    if probe:
        probe_home(args, p.error)
    return args


def check_options(args, error):
    """The options that need nothing but themselves: ``--parts``, ``--images``, ``--out``."""
    if args.parts is not None:
        parts = [x.strip() for x in args.parts.split(",") if x.strip()]
        unknown = [x for x in parts if x not in PARTS]
        if unknown or not parts:
            error(f"--parts: expected a comma-separated subset of {', '.join(PARTS)}, "
                  f"got {args.parts!r}")
        args.parts = [x for x in PARTS if x in parts]
    if args.images:
        try:
            args.images = [int(x) for x in args.images.split(",") if x.strip()]
        except ValueError:
            error(f"--images: expected comma-separated integers, got {args.images!r}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        error(f"--out: expected a folder, got the file {args.out!r}")
    if not writable_folder(args.out):
        error(f"--out: expected a folder this user can write (created if missing), got "
              f"{args.out!r}")


def probe_home(args, error):
    """What this folder's helpers offer (``args.home``) and the data (``args.dataset``),
    read before any model is built; the options they cannot honour go to ``error``."""
    import_tensorflow(args.verbose)
    args.home = Home()
    args.home.check(args, error)
    args.dataset = args.home.read_data(args, error)
    n = len(args.dataset.X) if hasattr(args.dataset, "X") else len(args.dataset.entries)
    bad = [i for i in args.images or () if not 0 <= i < n]
    if bad:
        error(IMAGES_ERROR.format(n=n, bad=bad))


def main(argv=None):
    args = parse_args(argv, probe=True)
    from tqdm.auto import tqdm
    settings = QUICK if args.quick else FULL
    start = time.time()
    try:
        run = Run(args, settings, args.home)
    except UsageError as e:
        print(f"hw3_vc.py: error: {e}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    skipped = args.home.skipped(args.parts)
    parts = args.parts or list(args.home.default_parts)
    skipped.update({p: run.cannot_run(p) for p in parts if run.cannot_run(p)})
    parts = [p for p in parts if p not in skipped]
    print(f"model {run.model_name}; {len(run.X)} images; comparison set: "
          + ", ".join(run.label(i) for i in run.sel), file=sys.stderr)
    print("parts: " + ", ".join(parts), file=sys.stderr)
    for why, names in group_by_reason(skipped):
        print(f"skipped {names}: {why}", file=sys.stderr)
    timings = {}
    for part in tqdm(parts, desc="parts", disable=args.no_progress):
        t0 = time.time()
        PART_FUNCTIONS[part](run)
        timings[part] = time.time() - t0
        print(f"{part}: {timings[part]:.1f} s", file=sys.stderr)
    run.finish_figures()
    files = write_report(run, timings, skipped)
    seconds = time.time() - start
    stats = {"forwards": run.sess.forwards, "gradients": run.sess.gradients,
             "seconds": seconds, "parts": timings, "model": run.model_name,
             "quick": bool(args.quick), "skipped": skipped}
    write_text(os.path.join(args.out, "run_stats.json"), json.dumps(stats, indent=1))
    print(f"Wrote {len(files)} files to {os.path.abspath(args.out)}; open "
          f"{os.path.join(args.out, 'index.md')}")
    for why, names in group_by_reason(skipped):
        print(f"Skipped {names}: {why}.")
    print(f"passes: forwards={run.sess.forwards} gradients={run.sess.gradients} "
          f"seconds={seconds:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
