#!/usr/bin/env python
"""Explain and score whole data sets on Ray: locally by default, on a cluster when asked.

    python explain_dataset.py --out results/                       # the bundled sample
    python explain_dataset.py IMAGES/ more.npz --out results/ --workers 2
    python explain_dataset.py IMAGES/ --out results/ --address 10.0.0.1:6379

Inputs (any number, in order): a folder with one sub-folder of images per ImageNet class
(named as ``make_dataset.py`` reads them: a class name such as ``tabby`` or ``sports_car``,
or an index), a course-style ``.npz`` (keys ``X``, ``Y``, ``Pred``, ``Idx``, read by
``hw3_utils.load_ImageNet``), or ``bundled`` (the 17 sample photographs; the default when no
input is given).

Per image: the chosen attribution methods (``--methods``), each scored by the chosen metrics
(``--metrics``) on its own map, and the per-class partial sums of one layer's distributional
influence (``InflDirected.influence_partial``), merged exactly (``hw3_infl.merge``) at the end
into the expert neuron of the whole data set and of each true class.

Engine: the images are cut into shards (``--shard-size`` images of one input and class).
Ray Data runs ``ShardExplainer`` over them as a fixed pool of ``--workers`` actors
(``map_batches`` with a callable class); each actor builds the TF1 graph, session, model and
method ops once, in its constructor. ``ray.init`` starts a local cluster unless
``--address`` (or ``RAY_ADDRESS``) names one to join; actors ask for a GPU each when the
cluster has them (``pool_layout``). Progress is Ray Data's own progress display.

Nothing lost, nothing twice: a shard's name is a hash of its images (where each is, its
file bytes or pixels, its labels) and of every setting that changes a number (methods, metrics,
their parameters, model and weights, seed, batch size, and the toolkit's source code).
The driver writes each finished shard to ``OUT/shards/<name>.npz`` through a temporary file
and a rename, as soon as it arrives; a rerun skips the shards whose file exists. An actor
that dies is restarted by Ray and its shard retried (``--retries``); a shard that raises is
reported, not written, so the next run retries it.

Output under ``--out``: ``results.parquet`` (one row per image and method: index, true,
predicted and target class, the metrics, IG's completeness error), ``summary.md`` and
``summary.csv`` (each method's mean with a 95% confidence interval per metric),
``experts.csv`` (the influence expert over all images and per true class), ``skipped.csv``
(inputs that were not explained, and why), ``run.json`` (settings and counts), and with
``--save-maps`` the pixel maps as ``OUT/maps/<name>.npz``.

Rows equal the single-process API calls on the same images and seeds: every method and
metric is called as in the API with the image's target class; ``random`` uses
``RandomAttribution(seed=image_seed(seed, digest))``, a seed made from the image's content,
so that a map does not depend on which shard the image falls in.

This file is the command line (options, checks, the run's steps); the inputs and the plan
are in ``attrkit/dataset/plan.py``, the actors and the Ray driver in ``engine.py`` beside
it, the tables and figures in ``report.py``.
"""
import argparse
import importlib.util
import os
import socket
import sys
import time
import traceback

import numpy as np

from attrkit.dataset.engine import (ADDRESS_ERROR, EXTRA_METRICS, LRP_RULES, MASK_METRICS,
                                    METHODS, METRICS, PERTURBATION_METHODS, SEGMENT_KINDS,
                                    Explainer, is_done, make_qoi, maps_path, model_spec,
                                    pixel_map, run_shards, shard_path, skimage_methods,
                                    start_ray)
from attrkit.dataset.plan import (BUNDLED, Inputs, UsageError, default_shard_size,
                          load_folder_image, make_settings, plan_shards)
from attrkit.dataset.report import (merge_experts, read_shards, sort_rows, write_figures,
                            write_outputs)
from hw3_vc import add_model_options

# Error messages, kept as data so that tests match the same templates.
NAMES_ERROR = "{arg}: unknown name(s) {bad}; expected a comma list of {valid}"
EMPTY_NAMES_ERROR = "{arg}: expected at least one of {valid}, got none"
INPUT_ERROR = ("inputs: expected a folder of class sub-folders, a .npz file or 'bundled', "
               "got {actual!r} ({why})")
NOTHING_ERROR = ("inputs: expected at least one image that can be explained, got none: "
                 "{skipped} input(s) skipped ({reasons}); nothing was written")
OUT_ERROR = "--out: expected a folder (created if missing), got the file {actual!r}"
OUT_WRITE_ERROR = ("--out: expected a folder this user can write (created if missing), got "
                   "{actual!r}")
LAYER_ERROR = "{arg}: the model {model!r} has no layer {actual!r}; its layers: {valid}"
QOI_ARG_ERROR = ("--qoi: expected 'predicted', 'true', a class index, or two of those joined "
                 "by a comma (s_a - s_b), got {actual!r}")
SIZE_ERROR = ("{arg}: expected at most the model's input side ({size} pixels), got "
              "{actual!r}")
POSITIVE_ERROR = "{arg}: expected {what}, got {actual!r}"
SKIMAGE_ERROR = ("{arg}: {methods} need scikit-image ({why}), which is not installed here: "
                 "install it (pip install scikit-image) or {fix}")


# ------------------------------------------------------------------------ arguments

def parse_names(text, valid, arg, allow_none=False, everything=None):
    """A comma list of names checked against ``valid`` (``all``: every one, or those of
    ``everything``)."""
    names = [t.strip().lower() for t in str(text).split(",") if t.strip()]
    if names == ["all"]:
        return list(valid if everything is None else everything)
    if allow_none and names in ([], ["none"]):
        return []
    bad = [n for n in names if n not in valid]
    if bad:
        raise UsageError(NAMES_ERROR.format(arg=arg, bad=bad, valid=", ".join(valid)))
    if not names:
        raise UsageError(EMPTY_NAMES_ERROR.format(arg=arg, valid=", ".join(valid)))
    return list(dict.fromkeys(names))


def parse_qoi(text):
    """``'predicted'``, ``'true'``, ``'c'`` or ``'a,b'`` -> a JSON-able spec (list of terms)."""
    terms = [t.strip().lower() for t in str(text).split(",")]
    out = []
    for t in terms:
        if t in ("predicted", "true"):
            out.append(t)
        elif t.isdigit():
            out.append(int(t))
        else:
            raise UsageError(QOI_ARG_ERROR.format(actual=text))
    if len(out) not in (1, 2):
        raise UsageError(QOI_ARG_ERROR.format(actual=text))
    return out


def build_parser():
    p = argparse.ArgumentParser(
        prog="explain_dataset.py",
        description="Explain and score whole data sets on Ray (a local cluster by default, "
                    "an existing one with --address): attribution maps per image and method, "
                    "their metrics, and the data set's influence experts.",
        epilog="Outputs: OUT/results.parquet, summary.md, summary.csv, experts.csv, "
               "skipped.csv, run.json, shards/ (and maps/ with --save-maps). A rerun with "
               "the same settings skips finished shards.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("inputs", nargs="*", default=[BUNDLED],
                   help="folders with one sub-folder per ImageNet class, course-style .npz "
                        "files, or 'bundled' (the 17 sample photographs)")
    p.add_argument("--out", default="results", help="output folder (created; never wiped)")
    p.add_argument("--masks", metavar="FOLDER|NPZ",
                   help="ground-truth masks for the localisation metrics: a folder with each "
                        "input's mask at its relative path and stem (a row of an .npz: "
                        "<row>.png, a bundled photo: <name>.png), or an .npz with those "
                        "stems as keys; nonzero = the object, the input's own size. With "
                        "--masks, --metrics all adds " + ", ".join(MASK_METRICS))
    add_compute_options(p)
    add_method_options(p)
    add_metric_options(p)
    add_influence_options(p)
    add_engine_options(p)
    return p


def add_compute_options(p):
    g = p.add_argument_group("what to compute")
    g.add_argument("--methods", default="all",
                   help="comma list of " + ", ".join(METHODS) + " (or 'all'); the "
                        "perturbation methods (" + ", ".join(PERTURBATION_METHODS) + ") run "
                        "the model on thousands of masked copies per image: see "
                        "--perturbation-samples")
    g.add_argument("--metrics", default="all",
                   help="comma list of " + ", ".join(METRICS) + " ('all': these four; "
                        "'none') and of Quantus' " + ", ".join(EXTRA_METRICS) + " (named "
                        "only; the faithfulness ones run the model on about 100-200 "
                        "perturbed copies per image and method; max_sensitivity and "
                        "avg_sensitivity call the method again on --robustness-samples "
                        "noisy copies, random_logit once for another class, "
                        "model_parameter_randomisation once per layer block)")
    add_model_options(g)
    g.add_argument("--target", choices=("predicted", "true"), default="predicted",
                   help="the class each image is explained and scored for")
    g.add_argument("--batch-size", type=int, default=16, help="rows per sess.run")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of SmoothGrad's noise, IG's random baseline, Random's maps "
                        "and the samples of LIME, KernelSHAP and RISE")
    g.add_argument("--limit", type=int, default=None,
                   help="explain only the first N images of the inputs")


def add_method_options(p):
    m = p.add_argument_group("method parameters")
    m.add_argument("--ig-steps", type=int, default=50,
                   help="Integrated Gradients' steps (also XRAI's, Guided IG's and Blur IG's)")
    m.add_argument("--ig-baseline", choices=("black", "white", "random"), default="black")
    m.add_argument("--ig-rule", default="riemann_right",
                   choices=("riemann_right", "riemann_left", "riemann_middle", "trapezoid",
                            "gauss_legendre"), help="IG's quadrature rule")
    m.add_argument("--sg-samples", type=int, default=50, help="SmoothGrad's samples")
    m.add_argument("--sg-sigma", type=float, default=0.15,
                   help="SmoothGrad's noise, a fraction of each image's value range")
    m.add_argument("--occlusion-size", type=int, default=None,
                   help="Occlusion's square patch in pixels (default: 8 at 224 x 224, "
                        "scaled with the model's input)")
    m.add_argument("--gradcam-layer", default=None,
                   help="Grad-CAM's conv layer, also the CAM family's (default: the model's, "
                        "e.g. 'head')")
    m.add_argument("--robustness-samples", type=int, default=20,
                   help="noisy copies per image of Max- and Avg-Sensitivity (Quantus: 200; "
                        "each is a call of the method)")
    m.add_argument("--lrp-rule", default="epsilon", choices=LRP_RULES,
                   help="LRP's rule or Zennit composite (epsilon_plus_flat is Zennit's "
                        "recommendation for image classifiers). DeepLIFT's baseline is "
                        "--ig-baseline when black or white (else black); DeepLiftSHAP and "
                        "GradientSHAP use black, mid-grey and white baselines, GradientSHAP "
                        "--sg-samples draws")
    m.add_argument("--segments", choices=SEGMENT_KINDS, default="quickshift",
                   help="the segments of " + ", ".join(
                       k for k, p in PERTURBATION_METHODS.items() if p.segments)
                   + ": quickshift (lime's default), slic, felzenszwalb (scikit-image's, "
                     "which they need) or grid (16 x 16-pixel squares at 224 x 224, scaled "
                     "with the model's input; no scikit-image)")
    m.add_argument("--perturbation-samples", type=int, default=None,
                   help="masked copies per image of LIME (samples), KernelSHAP (coalitions) "
                        "and RISE (masks); default: each method's own, LIME 1000, "
                        "KernelSHAP shap's 2S + 2048 for S segments, RISE 4000 (feature "
                        "ablation takes one copy per segment)")


def add_metric_options(p):
    s = p.add_argument_group("metric parameters")
    s.add_argument("--nord-m", type=int, default=None,
                   help="Necessity Ordering: pixels removed per step (default: M = 1000 at "
                        "224 x 224, scaled with the model's input area)")
    s.add_argument("--curve-superpixel", type=int, default=None,
                   help="Insertion / Deletion superpixel side in pixels (default: 8 at "
                        "224 x 224, scaled with the model's input)")
    s.add_argument("--curve-step", type=int, default=16,
                   help="Insertion / Deletion: superpixels added per point of the curve")
    s.add_argument("--curve-baseline", choices=("black", "blur"), default="black")


def add_influence_options(p):
    i = p.add_argument_group("influence")
    i.add_argument("--layer", default=None,
                   help="layer whose influence is measured (default: the model's, e.g. "
                        "'head_pool'; VGG16: 'fc1')")
    i.add_argument("--qoi", default="predicted",
                   help="quantity of interest: 'predicted', 'true', a class index, or 'a,b' "
                        "for s_a - s_b")
    i.add_argument("--no-influence", action="store_true", help="skip the influence experts")


def add_engine_options(p):
    e = p.add_argument_group("engine")
    e.add_argument("--workers", type=int, default=None,
                   help="actors in the pool (default: one per GPU, else one per CPU "
                        "with one TF thread each, at most one per 2 GiB of memory)")
    e.add_argument("--threads", type=int, default=None,
                   help="TensorFlow threads per actor (default: the cluster's CPUs / "
                        "workers)")
    e.add_argument("--gpus-per-worker", type=float, default=None,
                   help="GPUs each actor asks for (default: 1 when the cluster has GPUs)")
    e.add_argument("--address", default=None,
                   help="join this Ray cluster (host:port, ray://host:port or 'auto'; "
                        "default: $RAY_ADDRESS, else start a local one)")
    e.add_argument("--no-ship-code", action="store_true",
                   help="with --address: do not upload this folder to the cluster (its "
                        "nodes already have the project on their PYTHONPATH)")
    e.add_argument("--shard-size", type=int, default=None,
                   help="images per shard (the unit of work, of retry and of resume; "
                        "default: 16, fewer for small data sets so that there are at least "
                        "8 shards; a rerun reuses shards of the same size)")
    e.add_argument("--retries", type=int, default=3,
                   help="times a shard is retried when its actor dies")
    e.add_argument("--save-maps", action="store_true",
                   help="also write each shard's pixel maps [n, 224, 224] to OUT/maps/")
    e.add_argument("--no-progress", action="store_true", help="no Ray progress bars")
    e.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's start-up notices (oneDNN, absl), hidden otherwise")
    # testing aid: the first actor to see no MARKER file creates it and dies (os._exit)
    e.add_argument("--_crash-once", dest="crash_once", default=None, help=argparse.SUPPRESS)


def check_args(args):
    """Every check that needs no model and no data; raises UsageError."""
    methods = parse_names(args.methods, METHODS, "--methods")
    metrics = parse_names(args.metrics, METRICS + EXTRA_METRICS + MASK_METRICS, "--metrics",
                          allow_none=True,
                          everything=METRICS + (MASK_METRICS if args.masks else ()))
    need = [m for m in metrics if m in MASK_METRICS]
    if need and not args.masks:
        from attrkit.dataset.masks import NEEDS_MASKS_ERROR
        raise UsageError(NEEDS_MASKS_ERROR.format(names=", ".join(need)))
    qoi = parse_qoi(args.qoi)
    for arg, v in (("batch-size", args.batch_size), ("ig-steps", args.ig_steps),
                   ("sg-samples", args.sg_samples), ("curve-step", args.curve_step)):
        if v is None or v < 1:
            raise UsageError(POSITIVE_ERROR.format(arg="--" + arg, what="a positive int",
                                                   actual=v))
    for arg, v in (("workers", args.workers), ("threads", args.threads),
                   ("limit", args.limit), ("shard-size", args.shard_size),
                   ("nord-m", args.nord_m), ("occlusion-size", args.occlusion_size),
                   ("curve-superpixel", args.curve_superpixel),
                   ("perturbation-samples", args.perturbation_samples),
                   ("robustness-samples", args.robustness_samples)):
        if v is not None and v < 1:
            raise UsageError(POSITIVE_ERROR.format(arg="--" + arg, what="a positive int",
                                                   actual=v))
    if args.retries < 0:
        raise UsageError(POSITIVE_ERROR.format(arg="--retries", what="an int >= 0",
                                               actual=args.retries))
    if args.gpus_per_worker is not None and (not np.isfinite(args.gpus_per_worker)
                                             or args.gpus_per_worker < 0):
        raise UsageError(POSITIVE_ERROR.format(arg="--gpus-per-worker", what="a number >= 0",
                                               actual=args.gpus_per_worker))
    if not np.isfinite(args.sg_sigma) or args.sg_sigma < 0:
        raise UsageError(POSITIVE_ERROR.format(arg="--sg-sigma", what="a number >= 0",
                                               actual=args.sg_sigma))
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(OUT_ERROR.format(actual=args.out))
    from hw3_vc import writable_folder
    if not writable_folder(args.out):
        raise UsageError(OUT_WRITE_ERROR.format(actual=args.out))
    check_skimage(methods, args.segments)
    for inp in args.inputs:
        if inp == BUNDLED:
            continue
        if os.path.isdir(inp):
            continue
        if os.path.isfile(inp):
            if not inp.lower().endswith(".npz"):
                raise UsageError(INPUT_ERROR.format(actual=inp, why="a file that is not .npz"))
            continue
        raise UsageError(INPUT_ERROR.format(actual=inp, why="no such file or folder"))
    return methods, metrics, qoi


def skimage_missing():
    """Whether scikit-image cannot be imported here (found without importing it)."""
    return importlib.util.find_spec("skimage") is None


def check_skimage(methods, segments):
    """Raise UsageError, before any model or Ray, when a chosen method needs scikit-image
    (:func:`skimage_methods`) and it is not installed."""
    needs = skimage_methods(methods, segments)
    if not needs or not skimage_missing():
        return
    segmented = [m for m in needs if m != "xrai"]
    why = "; ".join(([f"their --segments {segments!r}"] if segmented else [])
                    + (["XRAI's Felzenszwalb segments"] if "xrai" in needs else []))
    fix = " and ".join((["pass --segments grid"] if segmented else [])
                       + (["leave xrai out of --methods"] if "xrai" in needs else []))
    raise UsageError(SKIMAGE_ERROR.format(arg="--segments" if segmented else "--methods",
                                          methods=", ".join(needs), why=why, fix=fix))


def cluster_address(args):
    """The cluster to join: ``--address``, else ``$RAY_ADDRESS``, else None (local)."""
    return args.address or os.environ.get("RAY_ADDRESS") or None


def check_address(address, timeout=5.0):
    """Raise UsageError unless ``host:port`` (or ``ray://host:port``) accepts a connection."""
    if address in (None, "auto", "local"):
        return
    text = address.split("://", 1)[-1].rstrip("/")
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(ADDRESS_ERROR.format(address=address,
                                              why="expected host:port, e.g. 10.0.0.1:6379"))
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise UsageError(ADDRESS_ERROR.format(address=address,
                                              why=f"{type(e).__name__}: {e}")) from None












# ------------------------------------------------------------------------------ main

def log(msg):
    print("explain_dataset: " + msg, file=sys.stderr, flush=True)


def main(argv=None):
    """The command line: returns the exit status (0 done, 1 shards left to do)."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    finally:
        if "ray" in sys.modules and sys.modules["ray"].is_initialized():
            sys.modules["ray"].shutdown()


def run(args):
    """The run's steps; every check comes before any model is built or Ray is started."""
    job = Job(args)
    job.read_files()           # 1. the model options' files and the inputs, decoded
    job.probe_model()          # 2. the model in this process: model, weights, layers
    job.plan()                 # 3. a cluster is joined, the shards are named
    job.work()                 # 4. the shards still to do, on Ray
    return job.tables()        # 5. the tables, from every finished shard of the plan


class Job:
    """One run of the command line, step by step (:func:`run`)."""

    def __init__(self, args):
        self.t0 = time.time()
        self.args = args
        self.methods, self.metrics, self.qoi = check_args(args)
        self.address = cluster_address(args)
        check_address(self.address)

    def read_files(self):
        """The files the options name (model, weights, labels) and every input image."""
        from hw3_vc import import_tensorflow
        import_tensorflow(self.args.verbose)
        import hw3_utils
        a = self.args
        try:
            self.model_options = hw3_utils.parse_model_options(
                a.model, a.weights, a.labels, a.preprocess, a.input_size)
        except (ValueError, FileNotFoundError) as e:
            raise UsageError(str(e)) from None
        self.inputs = Inputs(limit=a.limit)
        for inp in a.inputs:
            self.inputs.add(inp)
        self.nothing_to_do()
        self.masks = {}
        if a.masks:             # read and checked before any model is loaded
            from attrkit.dataset.masks import read_masks
            self.masks = read_masks(self.inputs, a.masks)

    def nothing_to_do(self):
        if not self.inputs.items:
            reasons = sorted({r["reason"] for r in self.inputs.skipped})
            raise UsageError(NOTHING_ERROR.format(skipped=len(self.inputs.skipped),
                                                  reasons="; ".join(reasons[:3]) or "none"))

    def probe_model(self):
        """The model in this process: it checks the model, its weights and the layers
        named, fits the inputs to it (classes, size, channels), gives the settings, and
        merges the experts at the end."""
        import hw3_utils
        args, opts = self.args, dict(self.model_options)
        try:
            if opts["name_or_path"] is None:     # the choice rule, made once, here
                opts["name_or_path"], opts["weights"], _ = hw3_utils.choose_model(
                    None, opts["weights"])
            probe = Explainer(model_spec(opts), threads=0)
        except (FileNotFoundError, ValueError) as e:
            raise UsageError(hw3_utils.option_message(e)) from None
        model = probe.model
        names = hw3_utils.classes_from_folders(model.class_names, self.inputs.folders(),
                                               opts["labels"] is not None)
        self.inputs.fit(names, model.imgs.shape.as_list()[1:])
        self.nothing_to_do()
        if self.masks:
            from attrkit.dataset.masks import fit_masks
            self.masks = fit_masks(self.masks, self.inputs.items,
                                   model.imgs.shape.as_list()[1:])
        for arg, name in (("--gradcam-layer", args.gradcam_layer), ("--layer", args.layer)):
            if name is not None and name not in model.layers:
                raise UsageError(LAYER_ERROR.format(arg=arg, model=model.name, actual=name,
                                                    valid=", ".join(model.layers)))
        side = min(model.imgs.shape.as_list()[1:3])
        for arg, v in (("--occlusion-size", args.occlusion_size),
                       ("--curve-superpixel", args.curve_superpixel)):
            if v is not None and v > side:
                raise UsageError(SIZE_ERROR.format(arg=arg, size=side, actual=v))
        if names != list(model.class_names) or opts["labels"] is not None:
            opts["labels"] = names       # the names themselves (also the folders'): hashed
        self.settings = make_settings(args, self.methods, self.metrics, self.qoi, model,
                                      opts)
        self.class_names, self.probe = names, probe
        self.infl = None
        if self.settings["influence"]:
            from hw3_infl import InflDirected
            self.infl = InflDirected(probe.sess, model.imgs,
                                     model.layers[self.settings["influence"]["layer"]],
                                     model.logits, make_qoi(self.qoi), progress=False)

    def plan(self):
        args = self.args
        if self.address is not None:   # joined now; a local cluster starts with the work
            start_ray(args, self.address)
        os.makedirs(args.out, exist_ok=True)
        shard_size = args.shard_size or default_shard_size(len(self.inputs.items))
        self.shards = plan_shards(self.inputs.items, self.settings, shard_size)
        self.todo = [sh for sh in self.shards if not is_done(args.out, sh["name"],
                                                                 args.save_maps)]
        log(f"{len(self.inputs.items)} images in {len(self.shards)} shards "
            f"({len(self.shards) - len(self.todo)} already done), "
            f"{len(self.inputs.skipped)} inputs skipped; output in {args.out}")

    def work(self):
        self.written, self.errors, self.failure = [], {}, None
        t = time.time()
        if self.todo:
            try:
                self.written, self.errors = run_shards(self.args, self.settings, self.todo,
                                                       self.inputs.pixels, self.address, log,
                                                       self.masks)
            except UsageError:
                raise
            except Exception as e:   # the run broke off: what is on disk is kept, tabled
                self.failure = f"{type(e).__name__}: {e}"
                log(f"the Ray run stopped: {self.failure}\n{traceback.format_exc()}")
        self.engine_seconds = time.time() - t

    def tables(self):
        """Write the tables of every finished shard; the exit status (1: shards left)."""
        args, shards = self.args, self.shards
        cols, skipped, partials, metas = read_shards(args.out, shards)
        if not metas:   # no shard of this plan is on disk: an earlier run's tables stay
            log("no shard finished, so no table was written (the tables of an earlier run "
                f"in {args.out}, if any, are as they were); run the same command again")
            return 1
        cols = sort_rows(cols, self.methods)
        experts = (merge_experts(partials, self.settings, self.infl,
                                 lambda c: self.class_names[c])
                   if self.infl is not None else [])
        missing = [sh["name"] for sh in shards
                   if not os.path.isfile(shard_path(args.out, sh["name"]))]
        stats = self.stats(cols, skipped, metas, missing)
        figures = write_figures(args.out, cols, self.methods, self.images_of, self.maps_of)
        write_outputs(args, self.settings, cols, self.inputs.skipped + skipped, experts,
                      stats, list(args.inputs), figures)
        log(f"wrote {os.path.join(args.out, 'results.parquet')} ({stats['rows']} rows), "
            f"summary.md, summary.csv, experts.csv, skipped.csv ({stats['skipped']} "
            "skipped)")
        if missing:
            log(f"{len(missing)} shard(s) not finished; run the same command again to do "
                "them")
            return 1
        return 0

    def images_of(self, indices):
        """The images ``[n, H, W, C]`` of the items ``indices``, as the actors saw them."""
        items = {it["index"]: it for it in self.inputs.items}
        return np.stack([self.inputs.pixels[i] if i in self.inputs.pixels else
                         load_folder_image(items[i]["path"], self.settings["input_shape"])
                         for i in indices])

    def maps_of(self, method, indices, targets):
        """The pixel maps ``[n, H, W]`` of ``method`` for the items ``indices`` (for the
        gallery: a few images): those that this plan's shards saved (``--save-maps``, now or
        in an earlier run) as they are, else computed again here by the probe model."""
        saved = [self.saved_map(method, i) for i in indices]
        if all(a is not None for a in saved):
            return np.stack(saved)
        if not getattr(self, "_configured", False):
            self.probe.configure(self.settings)
            self._configured = True
        items = {it["index"]: it for it in self.inputs.items}
        A, _ = self.probe.attribute(method, self.images_of(indices), targets,
                                    [items[i] for i in indices])
        return pixel_map(A)

    def saved_map(self, method, index):
        """The pixel map of ``method`` for item ``index`` in its shard's maps file, or None
        when the shard saved none."""
        if not hasattr(self, "_shard_of"):
            self._shard_of = {it["index"]: sh["name"] for sh in self.shards
                              for it in sh["items"]}
        path = maps_path(self.args.out, self._shard_of.get(index, ""))
        if index not in self._shard_of or not os.path.isfile(path):
            return None
        with np.load(path, allow_pickle=False) as z:
            key, where = f"map_{method}", np.flatnonzero(z["index"] == index)
            return z[key][where[0]] if key in z.files and len(where) else None

    def stats(self, cols, skipped, metas, missing):
        return {"images": len(np.unique(cols["index"])), "rows": len(cols["index"]),
                "skipped": len(self.inputs.skipped) + len(skipped),
                "shards": len(self.shards), "shards_computed_now": len(self.written),
                "shards_reused": len(self.shards) - len(self.todo),
                "shards_failed": len(self.errors), "shards_missing": len(missing),
                "run_error": self.failure or "",
                "forwards": sum(sum(v[0] for v in mt["counts"].values()) for mt in metas),
                "gradients": sum(sum(v[1] for v in mt["counts"].values()) for mt in metas),
                "shard_seconds": round(sum(mt["seconds"] for mt in metas), 2),
                "engine_seconds": round(self.engine_seconds, 2),
                "wall_seconds": round(time.time() - self.t0, 2)}


def cli(argv=None):
    try:
        return main(argv)
    except UsageError as e:
        print(f"explain_dataset.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
