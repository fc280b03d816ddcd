"""The work of ``explain_dataset.py``: the Ray actor that explains a shard, and the driver
that runs the shards on an actor pool and writes each one as it arrives. The names of
``--methods`` map to classes here: :data:`METHODS`, the perturbation methods' table
:data:`PERTURBATION_METHODS` (one entry per method), and the propagation and CAM methods'
class names (:data:`PROPAGATION_METHODS`, :data:`CAM_METHODS`).

:class:`Explainer` builds one model in one TF1 graph and session with every method's ops,
once; ``explain(spec, pixels)`` does a shard: the images' classes, each method's maps, each
metric on each map, the per-class influence partial sums. :class:`ShardExplainer` is the
Ray Data callable class around it; :func:`run_shards` is the driver.
"""
import io
import json
import os
import socket
import time
import traceback
import warnings
from dataclasses import dataclass

import numpy as np

from attrkit.dataset.plan import (PROJECT_DIR, UsageError, image_seed,
                          load_folder_image)


@dataclass(frozen=True)
class Perturbation:
    """How ``--methods`` NAME runs a perturbation method (``attrkit.methods.perturbation``):
    its class there, its title, and which of the run's ``settings["perturbation"]``
    (:func:`perturbation_settings`) its call takes, as ``(argument, key)`` pairs; a setting
    that is None is left out, so that the method's own default applies. ``segments``: its
    default segments need scikit-image unless ``--segments grid``."""
    cls: str
    title: str
    keywords: tuple
    segments: bool = True


# attrkit.methods.segmentation.SEGMENT_KINDS, in --segments' order (named here so that the
# command line's checks need no TensorFlow; tests/test_explain_dataset.py compares them)
SEGMENT_KINDS = ("quickshift", "slic", "felzenszwalb", "grid")
SEGMENT_KEYWORDS = (("segments", "segments"), ("num_samples", "samples"))
# The perturbation methods of --methods, in their order: one entry each.
PERTURBATION_METHODS = {
    "lime": Perturbation("LIME", "LIME", SEGMENT_KEYWORDS),
    "kernel_shap": Perturbation("KernelSHAP", "KernelSHAP", SEGMENT_KEYWORDS),
    "rise": Perturbation("RISE", "RISE", (("num_masks", "samples"),), segments=False),
    "feature_ablation": Perturbation("FeatureAblation", "Feature ablation",
                                     (("segments", "segments"),)),
    # shap's image explainer: its own partition of rows, columns and channels (a blur
    # masker scaled with the image), --perturbation-samples as its max_evals
    "partition_shap": Perturbation("PartitionSHAP", "PartitionSHAP",
                                   (("max_evals", "samples"),), segments=False),
}
# attrkit.methods.lrp.RULES, --lrp-rule's choices (named here so that the command line's
# checks need no TensorFlow; tests/test_explain_dataset.py compares them)
LRP_RULES = ("epsilon", "zplus", "alpha_beta", "epsilon_plus_flat", "epsilon_gamma_box")
# The propagation methods (attrkit.methods.propagation, .lrp) and the CAM family
# (attrkit.methods.cam, on --gradcam-layer): name -> (class, title)
PROPAGATION_METHODS = {"deeplift": ("DeepLIFT", "DeepLIFT"),
                       "deeplift_shap": ("DeepLiftSHAP", "DeepLiftSHAP"),
                       "gradient_shap": ("GradientSHAP", "GradientSHAP"),
                       "deconvnet": ("DeconvNet", "DeconvNet"), "lrp": ("LRP", "LRP")}
CAM_METHODS = {"gradcam_plus_plus": ("GradCAMPlusPlus", "Grad-CAM++"),
               "xgrad_cam": ("XGradCAM", "XGrad-CAM"), "layer_cam": ("LayerCAM", "LayerCAM"),
               "hires_cam": ("HiResCAM", "HiResCAM"), "eigen_cam": ("EigenCAM", "Eigen-CAM"),
               "score_cam": ("ScoreCAM", "Score-CAM"),
               "ablation_cam": ("AblationCAM", "Ablation-CAM")}
METHODS = ("saliency", "ig", "smoothgrad", "gradient", "gradcam", "occlusion", "random",
           "xrai", "guided_ig", "blur_ig", "guided_backprop") + tuple(PROPAGATION_METHODS) \
    + tuple(CAM_METHODS) + tuple(PERTURBATION_METHODS)
METRICS = ("average_drop", "n_ord", "insertion", "deletion")       # --metrics all
# Quantus' metrics (attrkit.metrics), by name only: each column's definition, budget and
# which way is better (``extra_metric`` runs them)
EXTRA_METRICS = ("sparseness", "complexity", "effective_complexity", "pixel_flipping",
                 "region_perturbation", "faithfulness_correlation",
                 "monotonicity_correlation", "max_sensitivity", "avg_sensitivity",
                 "random_logit", "model_parameter_randomisation")
# those of them that call the method again (on noisy copies, another class, a randomised
# model): a column per method, as the others
METHOD_METRICS = ("max_sensitivity", "avg_sensitivity", "random_logit",
                  "model_parameter_randomisation")
# and those that score a map against a ground-truth mask (--masks; attrkit.dataset.masks)
MASK_METRICS = ("pointing_game", "relevance_mass_accuracy", "relevance_rank_accuracy",
                "top_k_intersection", "attribution_localisation", "auc")
METHOD_TITLES = {"saliency": "Saliency", "ig": "Integrated Gradients",
                 "smoothgrad": "SmoothGrad", "gradient": "Vanilla gradient",
                 "gradcam": "Grad-CAM", "occlusion": "Occlusion", "random": "Random",
                 "xrai": "XRAI", "guided_ig": "Guided IG", "blur_ig": "Blur IG",
                 "guided_backprop": "Guided Backprop",
                 **{k: title for k, (_, title) in PROPAGATION_METHODS.items()},
                 **{k: title for k, (_, title) in CAM_METHODS.items()},
                 **{k: p.title for k, p in PERTURBATION_METHODS.items()}}

# metric columns of the table, their titles, and which --metrics entry makes them
METRIC_COLUMNS = (("average_drop", "Average Drop %", "average_drop"),
                  ("average_increase", "Average Increase (share)", "average_drop"),
                  ("n_ord", "Necessity Ordering", "n_ord"),
                  ("insertion_auc", "Insertion AUC", "insertion"),
                  ("deletion_auc", "Deletion AUC", "deletion"),
                  ("ig_completeness_error", "IG completeness error", None),
                  ("sparseness", "Sparseness (Gini)", "sparseness"),
                  ("complexity", "Complexity (entropy)", "complexity"),
                  ("effective_complexity", "Effective complexity", "effective_complexity"),
                  ("pixel_flipping_auc", "Pixel Flipping AUC", "pixel_flipping"),
                  ("region_perturbation_aopc", "Region Perturbation AOPC",
                   "region_perturbation"),
                  ("faithfulness_correlation", "Faithfulness Correlation",
                   "faithfulness_correlation"),
                  ("monotonicity_correlation", "Monotonicity Correlation",
                   "monotonicity_correlation"),
                  ("max_sensitivity", "Max-Sensitivity", "max_sensitivity"),
                  ("avg_sensitivity", "Avg-Sensitivity", "avg_sensitivity"),
                  ("random_logit", "Random Logit (SSIM)", "random_logit"),
                  ("randomisation_similarity", "Randomisation similarity (all blocks)",
                   "model_parameter_randomisation"),
                  ("pointing_game", "Pointing Game", "pointing_game"),
                  ("relevance_mass_accuracy", "Relevance Mass Accuracy",
                   "relevance_mass_accuracy"),
                  ("relevance_rank_accuracy", "Relevance Rank Accuracy",
                   "relevance_rank_accuracy"),
                  ("top_k_intersection", "Top-K Intersection", "top_k_intersection"),
                  ("attribution_localisation", "Attribution Localisation",
                   "attribution_localisation"),
                  ("localisation_auc", "Localisation AUC", "auc"))
ROW_COLUMNS = (("index", "int64"), ("input", "str"), ("item", "str"), ("image_id", "int64"),
               ("true_class", "int64"), ("true_name", "str"), ("predicted_class", "int64"),
               ("predicted_name", "str"), ("target", "int64"), ("correct", "bool"),
               ("method", "str"), ("score", "float64"), ("prob", "float64")) + tuple(
    (c, "float64") for c, _, _ in METRIC_COLUMNS)
SKIPPED_COLUMNS = ("index", "input", "item", "reason")
EXTRA_COLUMNS = {m: c for c, _, m in METRIC_COLUMNS if m in EXTRA_METRICS}
SHIP_EXCLUDES = [".venv", ".git", "**/__pycache__", "results", "figures", "*.npz", "*.h5",
                 "*.parquet", ".pytest_cache"]

EMPTY_SHARD_ERROR = ("no image of this shard could be read ({reasons}); an empty shard is "
                     "never recorded as done")
ADDRESS_ERROR = ("--address: cannot reach a Ray cluster at {address!r} ({why}). Start one "
                 "with `ray start --head` on the head node and give its address "
                 "(host:6379), or leave --address and RAY_ADDRESS unset for a local run")
AUTH_HINT = (". The port answers: if the cluster uses token authentication (`ray start` "
             "turns it on when the head has ~/.ray/auth_token), set RAY_AUTH_MODE=token and "
             "give the head's token (RAY_AUTH_TOKEN, or a copy in ~/.ray/auth_token)")
CAPACITY_ERROR = ("workers: {workers} actors with {gpus} GPU each need {need} GPUs; the "
                  "cluster has {have}")


class RunMethod:
    """A method of the run as the robustness and randomisation metrics call one:
    ``(X, target_class=..., feed_dict=None)`` -> its maps, with the run's settings
    (:meth:`Explainer.attribute`)."""

    def __init__(self, explainer, name):
        self.explainer, self.name = explainer, name
        self.input_tensor = explainer.model.imgs

    def __call__(self, X, target_class=None, feed_dict=None):
        targets = np.asarray(target_class, np.int32)
        return self.explainer.attribute(self.name, X, targets, None, feed_dict)[0]


PAIR_PATH_METHODS = ("xrai", "guided_ig", "blur_ig")
SHAP_GREYS = (0.0, 127.5, 255.0)     # DeepLiftSHAP's and GradientSHAP's baselines


def shap_baselines(shape):
    """DeepLiftSHAP's and GradientSHAP's baselines: black, mid-grey and white images of
    one input's ``shape`` (fixed, so an image's maps do not depend on its shard)."""
    return np.stack([np.full(shape, v, np.float32) for v in SHAP_GREYS])


def propagation_call(name, s, shape):
    """The keywords of a propagation method's call from the run's settings: DeepLIFT's
    baseline is IG's when black or white (else black); GradientSHAP draws SmoothGrad's
    number of samples; LRP runs --lrp-rule."""
    if name == "deeplift":
        return {"baseline": s["ig"]["baseline"] if s["ig"]["baseline"] in ("black", "white")
                else "black"}
    if name == "deeplift_shap":
        return {"baselines": shap_baselines(shape)}
    if name == "gradient_shap":
        return {"baselines": shap_baselines(shape), "num_samples": s["smoothgrad"]["samples"],
                "seed": s["seed"]}
    if name == "lrp":
        return {"rule": s["lrp"]["rule"]}
    return {}


def pair_path_settings(name, ig):
    """XRAI's, Guided IG's and Blur IG's keywords from IG's settings (``--ig-steps``,
    ``--ig-rule``, ``--ig-baseline``): their path steps are IG's; XRAI integrates with IG's
    rule (from its black and white baselines), Guided IG starts at IG's baseline when it
    is black or white (else black)."""
    if name == "xrai":
        return {"num_steps": ig["steps"], "method": ig["rule"]}
    if name == "guided_ig":
        return {"num_steps": ig["steps"],
                "baseline": ig["baseline"] if ig["baseline"] in ("black", "white") else "black"}
    return {"num_steps": ig["steps"]}


def skimage_methods(methods, segments):
    """The ``methods`` that need scikit-image with ``--segments`` ``segments``: XRAI (its
    Felzenszwalb segments) and, unless the segments are the ``'grid'``, the perturbation
    methods that take segments."""
    return [m for m in methods if m == "xrai" or (
        segments != "grid" and m in PERTURBATION_METHODS and PERTURBATION_METHODS[m].segments)]


def perturbation_settings(segments, samples):
    """``settings["perturbation"]``: the segments of LIME, KernelSHAP and feature ablation
    (``--segments``: a kind of ``attrkit.methods.segmentation.segment_labels``) and the
    rows per image (``--perturbation-samples``: LIME's samples, KernelSHAP's coalitions,
    RISE's masks; None: each method's own default, 1000, shap's ``2S + 2048`` and 4000)."""
    return {"segments": segments, "samples": samples}


def perturbation_call(name, settings):
    """The keywords of perturbation method ``name``'s call from ``settings["perturbation"]``
    (:data:`PERTURBATION_METHODS`); the run's seed and batch size come with every call."""
    p = settings["perturbation"]
    kw = {arg: p[key] for arg, key in PERTURBATION_METHODS[name].keywords
          if p[key] is not None}
    return dict(kw, seed=settings["seed"], batch_size=settings["batch_size"])


def model_spec(options):
    """The settings an :class:`Explainer` needs to build a model, and no method: from
    ``get_model``'s arguments (``hw3_utils.parse_model_options``)."""
    return {"model": options["name_or_path"], "weights": options["weights"],
            "preprocess": options["preprocess"], "labels": options["labels"],
            "input_size": options["input_size"], "methods": [], "influence": None}


def make_qoi(spec):
    from hw3_infl import qoi_class, qoi_difference, qoi_predicted, qoi_true
    if len(spec) == 2:
        return qoi_difference(*spec)
    t = spec[0]
    return qoi_predicted() if t == "predicted" else qoi_true() if t == "true" else qoi_class(t)


# ------------------------------------------------------------------------ the worker

def CountingSession(sess, imgs):
    """The main job's session proxy (``hw3_vc.CountingSession``): counts forward and
    gradient rows, results are those of the wrapped session."""
    from hw3_vc import CountingSession as Counting
    return Counting(sess, imgs)


def pixel_map(A):
    """The pixel attribution ``[N, H, W]`` (channel mean of ``[N, H, W, C]``), float32."""
    A = np.asarray(A)
    return (A.astype(np.float64).mean(axis=-1) if A.ndim == 4 else A).astype(np.float32)


def zero_maps(A, superpixel=None):
    """``[N]`` True where the metrics find no ranking: an all-zero pixel attribution (or,
    with ``superpixel``, all-zero superpixel sums, as Insertion / Deletion rank them)."""
    from hw3_evaluation import unranked
    return unranked(A, superpixel)


def to_bytes(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def from_bytes(data):
    with np.load(io.BytesIO(data), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


class Explainer:
    """One model in one TF1 graph and session, with every method's ops built once.

    ``explain(spec, pixels)`` does one shard: images, targets, each method's maps, each
    metric on each map, the per-class influence partial sums. It is what a Ray actor runs;
    the benchmark also runs it in a plain loop in one process.
    """

    def __init__(self, settings, threads=0):
        from hw3_vc import import_tensorflow
        tf = import_tensorflow(os.environ.get("HW3_VERBOSE") == "1")
        tf.compat.v1.disable_eager_execution()
        import hw3_utils
        from hw3_attribution import new_session
        self.raw_sess = new_session(tf.Graph(), threads=int(threads or 0))
        with self.raw_sess.graph.as_default():
            self.model = hw3_utils.get_model(
                self.raw_sess, settings["model"], settings["weights"],
                preprocess=settings.get("preprocess"), labels=settings.get("labels"),
                input_size=settings.get("input_size"))
        self.sess = CountingSession(self.raw_sess, self.model.imgs)
        self.shape = self.model.imgs.shape.as_list()[1:]          # [H, W, C]
        self.class_name = lambda c: self.model.class_names[c]
        self.configure(settings)

    def configure(self, settings):
        """Build the ops of the methods and of the influence that ``settings`` ask for."""
        from attrkit.methods import cam, lrp, perturbation, propagation
        from attrkit.methods.pair import XRAI, BlurIG, GuidedBackprop, GuidedIG
        from hw3_attribution import (GradCAM, IntegratedGrad, Occlusion, SaliencyMap,
                                     SmoothGrad, VanillaGradient)
        from hw3_infl import InflDirected
        self.settings = s = settings
        m = self.model
        x, out = m.imgs, m.logits
        kw = dict(progress=False)
        self.methods = {}
        for name in s["methods"]:
            if name == "gradcam":
                self.methods[name] = GradCAM(self.sess, x, out, None,
                                             m.layers[s["gradcam_layer"]], **kw)
            elif name in CAM_METHODS:
                cls = getattr(cam, CAM_METHODS[name][0])
                self.methods[name] = cls(self.sess, x, out, None,
                                         m.layers[s["gradcam_layer"]], **kw)
            elif name == "lrp":
                self.methods[name] = lrp.LRP(self.sess, x, out, None,
                                             rules=(s["lrp"]["rule"],), **kw)
            elif name in PROPAGATION_METHODS:
                cls = getattr(propagation, PROPAGATION_METHODS[name][0])
                self.methods[name] = cls(self.sess, x, out, None, **kw)
            elif name in PERTURBATION_METHODS:
                cls = getattr(perturbation, PERTURBATION_METHODS[name].cls)
                self.methods[name] = cls(self.sess, x, out, None, **kw)
            elif name != "random":
                cls = {"saliency": SaliencyMap, "ig": IntegratedGrad, "smoothgrad": SmoothGrad,
                       "gradient": VanillaGradient, "occlusion": Occlusion, "xrai": XRAI,
                       "guided_ig": GuidedIG, "blur_ig": BlurIG,
                       "guided_backprop": GuidedBackprop}[name]
                self.methods[name] = cls(self.sess, x, out, None, **kw)
        self.infl = None
        if s["influence"]:
            self.infl = InflDirected(self.sess, x, m.layers[s["influence"]["layer"]], out,
                                     make_qoi(s["influence"]["qoi"]), **kw)

    # ---------------------------------------------------------------- one method
    def attribute(self, name, X, targets, items, feed_dict=None):
        """Method ``name``'s maps of ``X`` with the run's settings: ``(A, info)``;
        ``feed_dict`` reaches every run (the randomisation test feeds frozen weights)."""
        s, bs = self.settings, self.settings["batch_size"]
        info = {}
        fd = {"feed_dict": feed_dict} if feed_dict else {}
        if name == "saliency":
            A = self.methods[name](X, batch_size=bs, multiply_with_input=True,
                                   target_class=targets, **fd)
        elif name == "ig":
            A, res = self.methods[name](X, s["ig"]["baseline"], batch_size=bs,
                                        num_steps=s["ig"]["steps"], method=s["ig"]["rule"],
                                        seed=s["seed"], return_error=True,
                                        target_class=targets, **fd)
            info["ig_completeness_error"] = np.asarray(res["completeness_error"], np.float64)
        elif name == "smoothgrad":
            A = self.methods[name](X, batch_size=bs, samples=s["smoothgrad"]["samples"],
                                   sigma=s["smoothgrad"]["sigma"], seed=s["seed"],
                                   target_class=targets, **fd)
        elif name in ("gradient", "gradcam", "guided_backprop") or name in CAM_METHODS:
            A = self.methods[name](X, batch_size=bs, target_class=targets, **fd)
        elif name in PROPAGATION_METHODS:
            A = self.methods[name](X, batch_size=bs, target_class=targets,
                                   **propagation_call(name, s, X.shape[1:]), **fd)
        elif name in PAIR_PATH_METHODS:
            A = self.methods[name](X, batch_size=bs, target_class=targets,
                                   **pair_path_settings(name, s["ig"]), **fd)
        elif name == "occlusion":
            A = self.methods[name](X, batch_size=bs, superpixel_size=s["occlusion"]["size"],
                                   target_class=targets, **fd)
        elif name in PERTURBATION_METHODS:   # maps [N, H, W], one value per segment
            A = self.methods[name](X, target_class=targets, **perturbation_call(name, s), **fd)
        elif name == "random":
            from hw3_attribution import RandomAttribution
            m = self.model
            A = np.stack([RandomAttribution(self.sess, m.imgs, m.logits, None,
                                            seed=image_seed(s["seed"], it["digest"]),
                                            progress=False)(X[i:i + 1])[0]
                          for i, it in enumerate(items)])
        else:   # check_args keeps this from happening
            raise ValueError(f"unknown method {name!r}")
        return A, info

    # ---------------------------------------------------------------- the metrics
    def score(self, A, X, targets, scores, masks=None, name=None):
        """Each chosen metric on ``A`` for every image: ``{column: [N]}``, NaN where the
        metric is undefined (an all-zero map; Average Drop when f_c(x) <= 0; a
        localisation metric where the image has no mask: ``masks`` ``[N]``, bool
        ``[H, W]`` or None each)."""
        from hw3_evaluation import N_Ord, AverageDrop, Deletion, Insertion, auc
        s, bs = self.settings, self.settings["batch_size"]
        m, n = self.model, len(X)
        x, out = m.imgs, m.logits
        cols = {}
        for metric in s["metrics"]:
            sp = s["curves"]["superpixel"] if metric in ("insertion", "deletion") else None
            ok = np.flatnonzero(~zero_maps(A, sp))
            if metric == "average_drop":
                drop, inc = np.full(n, np.nan), np.full(n, np.nan)
                if len(ok) and np.any(scores[ok] > 0):
                    r = AverageDrop(self.sess, A[ok], X[ok], x, out, targets[ok],
                                    batch_size=bs, return_details=True, progress=False)
                    drop[ok] = r.per_image
                    inc[ok] = (r.masked_scores > r.scores).astype(np.float64)
                cols["average_drop"], cols["average_increase"] = drop, inc
            elif metric == "n_ord":
                v = np.full(n, np.nan)
                if len(ok):
                    v[ok] = np.atleast_1d(N_Ord(self.sess, A[ok], X[ok], x, out, targets[ok],
                                                M=s["n_ord"]["M"], batch_size=bs,
                                                progress=False))
                cols["n_ord"] = v
            elif metric in METHOD_METRICS:
                cols[EXTRA_COLUMNS[metric]] = self.method_metric(metric, name, X, targets)
            elif metric in EXTRA_METRICS:
                cols.update(self.extra_metric(metric, A, X, targets))
            elif metric in MASK_METRICS:
                from attrkit.dataset.masks import LOCALISATION_METRICS, localisation_scores
                cols[LOCALISATION_METRICS[metric][0]] = localisation_scores(
                    metric, pixel_map(A), masks if masks is not None else [None] * n)
            else:
                fn = Insertion if metric == "insertion" else Deletion
                v = np.full(n, np.nan)
                if len(ok):
                    curves, xs = fn(self.sess, A[ok], X[ok], x, out, targets[ok],
                                    superpixel_size=sp, baseline=s["curves"]["baseline"],
                                    step=s["curves"]["step"], batch_size=bs, progress=False)
                    v[ok] = auc(np.atleast_2d(curves), xs)
                cols[f"{metric}_auc"] = v
        return cols

    def extra_metric(self, metric, A, X, targets):
        """One of :data:`EXTRA_METRICS` on the pixel maps ``A``: ``{column: [N]}``.

        Budgets (Quantus' defaults where a data set can afford them): the complexity
        metrics on the pixel map, one image at a time (Quantus normalises by the largest
        ``|a|`` of a call: per image, a shard's other images change nothing); Pixel
        Flipping in steps of one image row (``W·C`` values, ``H`` points, the curve's
        ``np.trapezoid`` over them); Region Perturbation with the curves' superpixels, 100 regions, AOPC = the mean of its curve; Faithfulness
        Correlation with 100 runs of 224 values; Monotonicity Correlation in 16 steps of
        10 samples. The seed is the run's ``--seed``."""
        from attrkit.metrics import complexity, faithfulness as F
        s, bs = self.settings, self.settings["batch_size"]
        x, out = self.model.imgs, self.model.logits
        n, (h, w, c) = len(X), X.shape[1:]
        v = np.full(n, np.nan)
        ok = np.flatnonzero(~zero_maps(A))
        if not len(ok):
            return {EXTRA_COLUMNS[metric]: v}
        kw = dict(batch_size=bs, progress=False)
        maps, images, t = pixel_map(A)[ok], X[ok], targets[ok]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)     # NaN where undefined
            if metric in ("sparseness", "complexity", "effective_complexity"):
                fn = {"sparseness": complexity.Sparseness, "complexity": complexity.Complexity,
                      "effective_complexity": complexity.EffectiveComplexity}[metric]
                v[ok] = [fn(one) for one in maps]     # normalised per image, not per shard
            elif metric == "pixel_flipping":
                v[ok] = F.PixelFlipping(self.sess, maps, images, x, out, t,
                                        features_in_step=w * c, return_auc=True, **kw)
            elif metric == "region_perturbation":
                v[ok] = F.RegionPerturbation(self.sess, maps, images, x, out, t,
                                             patch_size=s["curves"]["superpixel"],
                                             **kw).mean(1)
            elif metric == "faithfulness_correlation":
                v[ok] = F.FaithfulnessCorrelation(self.sess, maps, images, x, out, t,
                                                  subset_size=min(224, h * w * c - 1),
                                                  seed=s["seed"], **kw)
            else:
                v[ok] = F.MonotonicityCorrelation(self.sess, maps, images, x, out, t,
                                                  nr_samples=10, seed=s["seed"],
                                                  features_in_step=-(-h * w * c // 16), **kw)
        return {EXTRA_COLUMNS[metric]: v}

    def method_metric(self, metric, name, X, targets):
        """One of :data:`METHOD_METRICS` of method ``name`` (called with the run's settings,
        :class:`RunMethod`) on the images: ``[N]``, NaN where undefined, and for the
        Random method (not an explanation of the model).

        Budgets: Max- and Avg-Sensitivity draw ``--robustness-samples`` noisy copies per
        image (Quantus: 200), noise U(±0.2) in pixel units, seeded by ``--seed``; Random
        Logit as Quantus (SSIM, seed 42); the randomisation test cascades from the top by
        layer block (``randomisation.block_of``) with Spearman similarity and reports the
        last step, every block randomised (lower: the method depends on the weights); a
        model that lists no weights gives NaN."""
        from attrkit.metrics import randomisation, robustness
        s, n = self.settings, len(X)
        if name == "random":
            return np.full(n, np.nan)
        method, x, out = RunMethod(self, name), self.model.imgs, self.model.logits
        kw = dict(batch_size=s["batch_size"])
        if metric in ("max_sensitivity", "avg_sensitivity"):
            fn = robustness.MaxSensitivity if metric == "max_sensitivity" else \
                robustness.AvgSensitivity
            return np.asarray(fn(self.sess, method, X, x, out, targets, seed=s["seed"],
                                 nr_samples=s["robustness"]["samples"], **kw))
        if metric == "random_logit":
            return np.asarray(robustness.RandomLogit(self.sess, method, X, x, out, targets,
                                                     **kw))
        try:
            steps = randomisation.ModelParameterRandomisation(
                self.sess, self.model, method, X, targets, blocks=randomisation.block_of,
                progress=False)
        except TypeError:                   # the model lists no weights to randomise
            return np.full(n, np.nan)
        return np.asarray(list(steps.values())[-1], np.float64)

    # ---------------------------------------------------------------- one shard
    def load(self, spec, pixels):
        """``(X [n, H, W, C], kept items, skipped entries)`` of a shard, at the model's
        input."""
        X, kept, skipped = [], [], []
        for slot, it in enumerate(spec["items"]):
            it = dict(it, slot=slot)
            if it["index"] in pixels:
                X.append(pixels[it["index"]])
                kept.append(it)
                continue
            try:
                X.append(load_folder_image(it["path"], self.shape))
                kept.append(it)
            except Exception as e:   # a file that is not a readable image: skipped
                skipped.append({"slot": slot, "index": it["index"], "input": it["input"],
                                "item": it["item"],
                                "reason": f"cannot read as an image: {type(e).__name__}: "
                                          f"{e}"})
        X = np.stack(X).astype(np.float32) if X else np.zeros([0] + self.shape, np.float32)
        return X, kept, skipped

    def explain(self, spec, pixels, masks=None):
        """One shard -> ``(arrays, maps)``: the shard file's arrays (rows, skipped,
        influence partials, meta) and the maps file's (``map_<method>``: pixel maps
        ``[n, H, W]`` float32; ``index``, ``item``, ``slot`` of each image). ``masks``:
        ``{index: bool [H, W]}`` of the items that have one (--masks)."""
        s, bs = self.settings, self.settings["batch_size"]
        m = self.model
        t_start = time.perf_counter()
        X, items, skipped = self.load(spec, pixels)
        n = len(X)
        timing, counts = {}, {}
        rows = {c: [] for c, _ in ROW_COLUMNS}
        rows["slot"] = []
        maps = {}
        partial = None
        if n:
            c0, t0 = self.sess.counts(), time.perf_counter()
            logits = np.concatenate([self.sess.run(m.logits, {m.imgs: X[i:i + bs]})
                                     for i in range(0, n, bs)])
            pred = logits.argmax(axis=1)
            y = np.array([it["true_class"] for it in items], np.int64)
            targets = (pred if s["target"] == "predicted" else y).astype(np.int32)
            scores = logits[np.arange(n), targets].astype(np.float64)
            z = logits - logits.max(axis=1, keepdims=True)
            probs = (np.exp(z) / np.exp(z).sum(axis=1, keepdims=True))[np.arange(n), targets]
            self._account("forward", timing, counts, t0, c0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")     # NaN marks what a metric leaves undefined
                for name in s["methods"]:
                    c0, t0 = self.sess.counts(), time.perf_counter()
                    A, info = self.attribute(name, X, targets, items)
                    self._account(name, timing, counts, t0, c0)
                    c0, t0 = self.sess.counts(), time.perf_counter()
                    cols = self.score(A, X, targets, scores,
                                      [(masks or {}).get(it["index"]) for it in items], name)
                    cols.update(info)
                    self._account(name + ":metrics", timing, counts, t0, c0)
                    maps[name] = pixel_map(A)
                    for i, it in enumerate(items):
                        self._row(rows, it, name, pred[i], targets[i], scores[i], probs[i],
                                  {k: v[i] for k, v in cols.items()})
                if self.infl is not None:
                    c0, t0 = self.sess.counts(), time.perf_counter()
                    partial = self.influence(X, y)
                    self._account("influence", timing, counts, t0, c0)
        arrays = {f"row_{c}": np.array(rows[c], dtype=_dtype(t)) for c, t in ROW_COLUMNS}
        arrays["row_slot"] = np.array(rows["slot"], np.int64)
        arrays["skipped_slot"] = np.array([sk["slot"] for sk in skipped], np.int64)
        for c in SKIPPED_COLUMNS:
            arrays[f"skipped_{c}"] = np.array([sk[c] for sk in skipped],
                                              dtype=np.int64 if c == "index" else str)
        if partial is not None:
            arrays.update(partial)
        meta = {"shard": spec["name"], "images": n, "skipped": len(skipped),
                "seconds": time.perf_counter() - t_start, "timing": timing, "counts": counts,
                "influence": None if partial is None else s["influence"],
                "host": socket.gethostname(), "pid": os.getpid()}
        arrays["meta"] = np.array(json.dumps(meta))
        maps_arrays = {f"map_{k}": v for k, v in maps.items()}   # none when n == 0
        maps_arrays["index"] = np.array([it["index"] for it in items], np.int64)
        maps_arrays["item"] = np.array([it["item"] for it in items], dtype=str)
        maps_arrays["slot"] = np.array([it["slot"] for it in items], np.int64)
        return arrays, maps_arrays

    def _account(self, key, timing, counts, t0, c0):
        f, g = self.sess.counts()
        timing[key] = timing.get(key, 0.0) + time.perf_counter() - t0
        prev = counts.get(key, [0, 0])
        counts[key] = [prev[0] + f - c0[0], prev[1] + g - c0[1]]

    def _row(self, rows, it, method, pred, target, score, prob, metrics):
        vals = {"index": it["index"], "input": it["input"], "item": it["item"],
                "image_id": it["image_id"], "true_class": it["true_class"],
                "true_name": self.class_name(int(it["true_class"])),
                "predicted_class": int(pred), "predicted_name": self.class_name(int(pred)),
                "target": int(target), "correct": bool(pred == it["true_class"]),
                "method": method, "score": float(score), "prob": float(prob)}
        for c, _, _ in METRIC_COLUMNS:
            vals[c] = float(metrics.get(c, np.nan))
        vals["slot"] = it["slot"]
        for c in rows:
            rows[c].append(vals[c])

    def influence(self, X, y):
        """Per true class in the shard: ``InflDirected.influence_partial`` sums, stacked."""
        classes = np.unique(y)
        parts = [self.infl.influence_partial(X[y == c], batch_size=self.settings["batch_size"],
                                             y=y[y == c]) for c in classes]
        return {"infl_classes": classes.astype(np.int64),
                "infl_grad_sum": np.stack([p.grad_sum for p in parts]),
                "infl_count": np.array([p.count for p in parts], np.int64),
                "infl_act_sum": np.stack([p.act_sum for p in parts]),
                "infl_active_count": np.stack([p.active_count for p in parts]),
                "infl_layer": np.array(parts[0].layer), "infl_qoi": np.array(parts[0].qoi)}


def _dtype(t):
    return {"int64": np.int64, "float64": np.float64, "bool": np.bool_, "str": str}[t]


class ShardExplainer:
    """The Ray Data callable class: one :class:`Explainer` per actor, built in the
    constructor; ``__call__`` takes a batch of shards (``batch_size=1``: one) and returns
    each shard's file as bytes (the driver writes it)."""

    def __init__(self, settings, threads=0, crash_once=None):
        self.crash_once = crash_once
        self.explainer = Explainer(settings, threads)

    def __call__(self, batch):
        if self.crash_once and not os.path.exists(self.crash_once):
            open(self.crash_once, "w").close()
            os._exit(1)   # testing aid: die mid-run, once, as a killed worker would
        out = {"shard": [], "status": [], "message": [], "payload": [], "maps": []}
        shipped_masks = batch.get("masks", [b""] * len(batch["shard"]))
        for name, spec, pixels, masks in zip(batch["shard"], batch["spec"], batch["pixels"],
                                             shipped_masks):
            spec = json.loads(str(spec))
            px, mk = ({int(k): v for k, v in from_bytes(bytes(b)).items()} if len(b) else {}
                      for b in (pixels, masks))
            try:
                arrays, maps = (self.explainer.explain(spec, px, mk) if mk
                                else self.explainer.explain(spec, px))
                empty = not json.loads(str(arrays["meta"]))["images"]
                message = EMPTY_SHARD_ERROR.format(reasons="; ".join(
                    str(r) for r in arrays["skipped_reason"])) if empty else ""
            except Exception:   # reported by the driver; the shard is not written
                arrays, message = None, traceback.format_exc()
            ok = not message
            out["payload"].append(to_bytes(arrays) if ok else b"")
            out["maps"].append(to_bytes(maps) if ok and spec.get("save_maps") else b"")
            out["status"].append("ok" if ok else "error")
            out["message"].append(message)
            out["shard"].append(str(name))
        return {"shard": np.array(out["shard"]), "status": np.array(out["status"]),
                "message": np.array(out["message"]),
                "payload": np.array(out["payload"], dtype=object),
                "maps": np.array(out["maps"], dtype=object)}


# ------------------------------------------------------------------------ the driver

def write_bytes(path, data):
    """``data`` to ``path`` through a temporary file in the same folder and a rename: the
    project's one atomic writer (``hw3_evaluation.write_bytes``), imported when first
    needed so that ``--help`` and the argument checks do not wait for TensorFlow."""
    from hw3_evaluation import write_bytes as write
    return write(path, data)


def write_text(path, text):
    return write_bytes(path, text.encode("utf-8"))


def shard_path(out, name):
    return os.path.join(out, "shards", f"{name}.npz")


def maps_path(out, name):
    return os.path.join(out, "maps", f"{name}.npz")


def is_done(out, name, save_maps):
    return os.path.isfile(shard_path(out, name)) and (
        not save_maps or os.path.isfile(maps_path(out, name)))


def shard_rows(shard, pixels, save_maps, masks=None):
    """The Ray Data row of a shard: its name, its spec (JSON), the pixels and the masks it
    ships."""
    spec = {"name": shard["name"], "items": shard["items"], "save_maps": save_maps}

    def shipped(arrays):
        found = {str(it["index"]): arrays[it["index"]] for it in shard["items"]
                 if it["index"] in arrays}
        return to_bytes(found) if found else b""
    return {"shard": shard["name"], "spec": json.dumps(spec), "pixels": shipped(pixels),
            "masks": shipped(masks or {})}


ACTOR_MEMORY = 2 << 30   # bytes an actor may need (measured: ~1.3 GB resident)


def pool_layout(resources, todo, workers=None, threads=None, gpus_per_worker=None):
    """``(workers, threads, num_cpus, num_gpus)`` of the actor pool for a cluster's
    ``resources`` (``ray.cluster_resources()``) and ``todo`` shards.

    Default workers: one per GPU when the cluster has GPUs; else one per CPU, each with
    one TensorFlow thread (measured on 2 cores: two 1-thread actors beat one 2-thread
    actor, see benchmarks/README.md), at most one per ``ACTOR_MEMORY`` of the cluster's
    memory; never more than the shards to do. Threads: the CPUs shared out. Each actor
    asks for ``min(threads, CPUs / workers)`` CPUs, so that the pool always fits, and for
    ``gpus_per_worker`` GPUs (default: one, or the GPUs shared out when fewer).
    """
    cpus = float(resources.get("CPU", 1))
    gpus = float(resources.get("GPU", 0))
    if workers is None:
        memory_cap = max(1, int(resources.get("memory", ACTOR_MEMORY) // ACTOR_MEMORY))
        workers = int(gpus) if gpus >= 1 else min(max(1, int(cpus)), memory_cap)
    workers = max(1, min(workers, todo))
    threads = threads or max(1, int(cpus // workers))
    num_cpus = min(float(threads), cpus / workers)
    if gpus_per_worker is None:
        gpus_per_worker = min(1.0, gpus / workers) if gpus else 0.0
    if gpus_per_worker * workers > gpus + 1e-9:
        raise UsageError(CAPACITY_ERROR.format(workers=workers, gpus=gpus_per_worker,
                                               need=gpus_per_worker * workers, have=gpus))
    return workers, threads, num_cpus, gpus_per_worker


def start_ray(args, address):
    """``ray.init``: a local cluster, or the one at ``address`` (code shipped along)."""
    import ray
    # actors that share a GPU must not each take all of its memory
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_FORCE_GPU_ALLOW_GROWTH": "true",
           "HW3_VERBOSE": "1" if getattr(args, "verbose", False) else "0"}
    if address is None:
        path = os.pathsep.join(p for p in (PROJECT_DIR, os.environ.get("PYTHONPATH")) if p)
        env["PYTHONPATH"] = path
        runtime_env = {"env_vars": env}
        # Ray starts its workers at nice 15 (so that its own daemons stay responsive); on a
        # machine shared with other work that starves the actors, which then run far slower
        # than the same code in a plain process. A local cluster exists for this run only:
        # its workers run at the driver's priority (RAY_worker_niceness, read by the raylet
        # this ray.init starts; a value already in the environment is kept).
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                 runtime_env=runtime_env, logging_level="WARNING")
    else:
        runtime_env = {"env_vars": env}
        if not args.no_ship_code:
            runtime_env.update(working_dir=PROJECT_DIR, excludes=SHIP_EXCLUDES)
        try:
            ray.init(address=address, runtime_env=runtime_env, logging_level="WARNING")
        except (ConnectionError, RuntimeError, ValueError) as e:
            hint = "" if os.environ.get("RAY_AUTH_MODE") else AUTH_HINT
            raise UsageError(ADDRESS_ERROR.format(address=address,
                                                  why=f"{type(e).__name__}: {e}")
                             + hint) from None
    return ray


def run_shards(args, settings, todo, pixels, address, log, masks=None):
    """Run the shards ``todo`` on Ray; write each finished shard as it arrives.

    Returns ``(written, errors)``: shard names written, and ``{name: message}``."""
    import ray
    if not ray.is_initialized():
        start_ray(args, address)
    res = ray.cluster_resources()
    workers, threads, num_cpus, per_gpu = pool_layout(res, len(todo), args.workers,
                                                      args.threads, args.gpus_per_worker)
    cpus, gpus = float(res.get("CPU", 1)), float(res.get("GPU", 0))
    log(f"ray: {len(todo)} shards on {workers} actor(s), {threads} TF thread(s) and "
        f"{num_cpus:g} CPU / {per_gpu:g} GPU each; cluster {cpus:g} CPU, {gpus:g} GPU")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = not args.no_progress
    ctx.execution_options.preserve_order = False
    rows = [shard_rows(sh, pixels, args.save_maps, masks) for sh in todo]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    retries = args.retries
    with warnings.catch_warnings():
        # Ray 2.60 deprecates ray_remote_args_fn (removal planned for 2.64) and offers no
        # other way to bound the retries of an actor task whose actor died (its default
        # is to retry forever, also a shard that kills its actor every time).
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ds.map_batches(
            ShardExplainer, batch_size=1, batch_format="numpy",
            fn_constructor_kwargs={"settings": settings, "threads": threads,
                                   "crash_once": args.crash_once},
            compute=ray.data.ActorPoolStrategy(size=workers,
                                               max_tasks_in_flight_per_actor=1),
            num_cpus=num_cpus, num_gpus=per_gpu or None,
            ray_remote_args_fn=lambda: {"max_restarts": -1, "max_task_retries": retries})
    written, errors = [], {}
    for b in ds.iter_batches(batch_size=1, batch_format="numpy"):
        for name, status, msg, payload, mp in zip(b["shard"], b["status"], b["message"],
                                                   b["payload"], b["maps"]):
            name = str(name)
            if status != "ok":
                errors[name] = str(msg)
                log(f"shard {name} failed (it will be retried by the next run):\n{msg}")
                continue
            if args.save_maps and len(mp):
                write_bytes(maps_path(args.out, name), bytes(mp))
            write_bytes(shard_path(args.out, name), bytes(payload))
            written.append(name)
    return written, errors
