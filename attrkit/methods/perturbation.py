"""Perturbation methods: what a class score does when parts of the image are hidden.

Each is constructed as the homework's methods are and returns one float32 map ``[N, H, W]``
per call (one image ``[H, W, C]`` -> ``[H, W]``), PartitionSHAP one of ``X``'s shape::

    LIME(sess, input_tensor, output_tensor, target_class)
        (X, segments=None, num_samples=1000, kernel_width=0.25, baseline='black')
    KernelSHAP(sess, input_tensor, output_tensor, target_class)
        (X, segments=None, num_samples=None, baseline='black')
    FeatureAblation(sess, input_tensor, output_tensor, target_class)
        (X, segments=None, baseline='black')
    RISE(sess, input_tensor, output_tensor, target_class)
        (X, num_masks=4000, cell_size=7, p=0.5)
    PartitionSHAP(sess, input_tensor, output_tensor, target_class)
        (X, masker=None, max_evals=500, fixed_context=None, queue_batch=10)

and every call also takes ``batch_size=16``, ``seed=None``, ``return_details=False``,
``target_class=`` and ``feed_dict=None`` (keyword only). The first three give each pixel
its segment's value (segments: :func:`attrkit.methods.segmentation.segment_labels`); RISE
gives each pixel the mean score of the random soft masks that keep it; PartitionSHAP gives
each value (pixel and channel) its Owen value over shap's hierarchical partition of the
image. Scores are the pre-softmax ``output_tensor`` (DESIGN.md), where lime, shap and the
RISE paper take the probabilities the classifier returns.

In reading order: the five methods; :class:`PerturbationCall` (what they share: a call's
checks and the masked-row runner every method's rows go through) and
:class:`SegmentGame` (the segment methods' game: a coalition of segments in, a score
out), and PartitionSHAP's lockstep runner (:func:`run_searches`); every row is built in
the graph by the row engine of ``hw3_attribution`` (:meth:`Rows.coalitions`,
:meth:`Rows.gridded`). Then each method's sampler and solver, in numpy: LIME's samples and
weighted ridge (:func:`lime_samples`, :func:`lime_fit`), KernelSHAP's coalitions and
constrained least squares (:func:`shap_coalitions`, :func:`shap_solve`), RISE's shifts,
PartitionSHAP's tree, blur and search (:class:`PartitionTree`, :func:`box_blur`,
:class:`OwenSearch`, :func:`mask_labels`).
"""
import copy
import functools
import heapq
import itertools
import re
import warnings

import numpy as np
from scipy.special import binom

from tqdm import tqdm

from hw3_attribution import (DEFAULT_BATCH_SIZE, NOT_IMAGE_ERROR, ROWS_PER_GROUP, _UNSET,
                             AttributionMethod, ImageBank, Rows, check_number,
                             check_positive_int, check_rows_per_input, check_seed,
                             check_targets, is_image_batch, is_int, parse_baseline,
                             resolve_targets, scaled_size, unbatch)
from attrkit.methods.segmentation import segment_labels, segment_means

OPEN_FRACTION_ERROR = "{arg}: expected a number in (0, 1), got {actual!r}"
SINGULAR_WARNING = ("KernelSHAP: the weighted least squares of image {image} is singular "
                    "({coalitions} coalitions for {players} segments); a least-squares "
                    "solution is used instead (as shap's): raise num_samples or use fewer "
                    "segments")

MASKER_ERROR = ("masker: expected 'blur(kx,ky)' (two positive ints: the box's width and "
                "height, cv2.blur's ksize), a number, or an array of shape {expected}, got "
                "{actual}")
INPAINT_ERROR = ("masker: expected 'blur(kx,ky)', a number or an array, got {actual!r}: "
                 "shap's inpainting maskers (OpenCV's cv2.inpaint) are not offered")
MAX_EVALS_ERROR = ("max_evals: expected an int >= 2 (f(x) and f(x fully masked) are two), "
                   "got {actual!r}")
FIXED_CONTEXT_ERROR = "fixed_context: expected None, 0 or 1, got {actual!r}"

SEGMENT_BASELINES = ("black", "white", "mean")
INPAINT_MASKERS = ("inpaint_telea", "inpaint_ns")
BLUR_AT_224 = 128       # shap's image examples blur with 'blur(128,128)' at 224 x 224
PARTITION_GROUP = 64    # images PartitionSHAP searches in lockstep (their label maps)


class LIME(AttributionMethod):
    """LIME for images (Ribeiro, Singh and Guestrin, KDD 2016, "Why should I trust you?"),
    as ``lime.lime_image.LimeImageExplainer`` (lime 0.2.0.1) defines it: a weighted linear
    model of the target's score on which segments are shown.

    ``LIME(sess, input_tensor, output_tensor, target_class)(X, segments=None,
    num_samples=1000, kernel_width=0.25, baseline='black')``: images ``[N, H, W, C]``
    (RGB 0-255) -> float32 ``[N, H, W]``, each pixel its segment's coefficient.

    For each image with S segments: sample 0 shows every segment, the other
    ``num_samples - 1`` show each segment or not with probability 1/2 (lime's
    ``data_labels``: ``random_state.randint(0, 2, num_samples·S)``); a hidden segment
    takes the ``baseline``'s pixels (lime's ``hide_color``). A sample ``z`` weighs
    ``sqrt(exp(-d² / kernel_width²))``, ``d`` the cosine distance from ``z`` to the
    all-shown vector (sklearn's ``pairwise_distances(metric='cosine')``); the map is the
    coefficients of ``Ridge(alpha=1, fit_intercept=True)`` fitted with those weights
    (:func:`lime_fit`, in closed form).

    Args:
        segments: None (lime's default, ``quickshift(kernel_size=4, max_dist=200,
            ratio=0.2)``), ``'grid'``, ``'felzenszwalb'``, ``'slic'``, ``'quickshift'``, or
            an int label map ``[H, W]`` or ``[N, H, W]`` (:func:`segment_labels`).
        baseline: ``'black'`` (0), ``'white'`` (255), ``'mean'`` (each segment's mean
            colour: lime's default ``hide_color=None``) or an array of one image's shape
            or of ``X``'s shape.
        seed: the samples of every image are those of ``numpy.random.RandomState(seed)``
            drawn as lime draws them with ``LimeImageExplainer(random_state=seed)`` (one
            ``randint(0, 1000)`` for its segmentation seed, then the samples), so every
            image of a batch gets the same draws it would get alone. None: a seed drawn
            from numpy's global generator (lime's ``random_state=None``), kept in
            ``last_info['seed']``.
        return_details: also return a dict (kept as ``last_info``): per image the
            ``intercept``, ``local_pred`` (the fit at the all-shown sample) and ``score``
            (the fit's weighted R²), as lime's ``explain_instance_with_data`` returns
            them; ``coefficients``, ``samples`` ``[num_samples, S]``, ``scores`` (the
            model's) and ``weights`` (the kernel's) per image; ``segments`` (the label
            maps); ``targets``; ``seed``.

    Where ours differs from lime's: the score is the pre-softmax ``output_tensor`` (lime
    regresses the probabilities ``classifier_fn`` returns); the default hidden colour is
    black (lime's is each segment's mean, ``baseline='mean'`` here); every segment is a
    feature (lime's ``num_features=100000`` keeps them all too, after a feature selection
    that then changes nothing); scikit-image segments the 0-255 pixels as the uint8 photo
    they stand for (:func:`segment_image`). Session calls: ``ceil(N·num_samples /
    batch_size)`` (+ ``ceil(N / batch_size)`` forwards when the target is None).
    """

    needs_rows = True
    api = "LIME(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, segments=None, num_samples=1000, kernel_width=0.25,
                 baseline="black", *, batch_size=DEFAULT_BATCH_SIZE, seed=None,
                 return_details=False, target_class=_UNSET, feed_dict=None):
        call = PerturbationCall(self, X, feed_dict, batch_size, seed, target_class)
        num_samples = check_rows_per_input(check_positive_int(num_samples, "num_samples"),
                                           "num_samples", "samples")
        width = check_number(kernel_width, "kernel_width", positive=True)
        game = SegmentGame(call, segments, baseline)
        call.resolve_targets(forward=False)
        samples = [lime_samples(call.rng(), s, num_samples) for s in game.counts]
        scores = game.values(samples, "LIME")
        fits = [lime_fit(z, y, width) for z, y in zip(samples, scores)]
        details = {k: np.array([f[k] for f in fits]) for k in ("intercept", "local_pred",
                                                               "score")}
        details.update(coefficients=[f["coef"] for f in fits], samples=samples,
                       scores=scores, weights=[f["weights"] for f in fits])
        return call.finish(game.paint(details["coefficients"]), game.details(details),
                           return_details)


class KernelSHAP(AttributionMethod):
    """Kernel SHAP (Lundberg and Lee, NeurIPS 2017, "A unified approach to interpreting
    model predictions") over segments, as shap's ``KernelExplainer`` (shap 0.51) computes
    it with one background image: the Shapley values of the game ``v(S) = f_c(x with the
    segments outside S at the baseline)``, estimated by a least squares weighted with the
    Shapley kernel under the efficiency constraint ``Σ φ = f_c(x) - f_c(baseline)``.

    ``KernelSHAP(sess, input_tensor, output_tensor, target_class)(X, segments=None,
    num_samples=None, baseline='black')``: images ``[N, H, W, C]`` -> float32 ``[N, H, W]``,
    each pixel its segment's value.

    The coalitions (:func:`shap_coalitions`, shap's ``explain``): of the M segments that
    differ from the baseline (the others get 0), whole subset sizes (with their
    complements) from both ends while the budget allows, each weighted by the kernel, then
    random coalitions of the remaining sizes drawn with the kernel's weights (a repeat adds
    to its weight). With ``num_samples >= 2^M - 2`` every coalition is enumerated and the
    values are exactly the Shapley values of ``v``. The constrained least squares
    (:func:`shap_solve`) eliminates the last segment's value with the constraint, as shap
    does.

    Args:
        segments: as :class:`LIME` (default: lime's quickshift, as LIME's).
        num_samples: coalitions per image; None is shap's ``nsamples='auto'``,
            ``2M + 2048``; either is capped at ``2^M - 2`` (all of them, the exact values).
        baseline: ``'black'`` (0), ``'white'`` (255), ``'mean'`` (each segment's mean
            colour) or an array of one image's shape or of ``X``'s shape: shap's single
            background sample.
        seed: the coalitions are those shap draws after ``numpy.random.seed(seed)``
            (``numpy.random.RandomState(seed)``, fresh for every image); None: a seed
            drawn from numpy's global generator, kept in ``last_info['seed']``.
        return_details: also return a dict (kept as ``last_info``): ``values`` (per
            image, one per segment), ``f_x``, ``f_baseline``, ``coalitions`` (their count
            per image), ``exact`` (every coalition enumerated), ``segments``,
            ``targets``, ``seed``.

    Where ours differs from shap's: the score is the pre-softmax ``output_tensor`` (shap
    explains whatever the model function returns, often probabilities); no L1 feature
    selection (shap 0.51's default ``l1_reg='num_features(10)'`` keeps only the 10
    segments a LARS path picks first when more vary; ours keeps all, shap's
    ``l1_reg=False``, which needs no scikit-learn); the features are segments of one
    image, not columns of a table. Session calls: ``ceil(N / batch_size)`` forwards plus
    ``ceil(Σ (K_i + 1) / batch_size)`` for the ``K_i`` coalitions and the baseline of
    each image.
    """

    needs_rows = True
    api = "KernelSHAP(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, segments=None, num_samples=None, baseline="black", *,
                 batch_size=DEFAULT_BATCH_SIZE, seed=None, return_details=False,
                 target_class=_UNSET, feed_dict=None):
        call = PerturbationCall(self, X, feed_dict, batch_size, seed, target_class)
        if num_samples is not None:
            num_samples = check_rows_per_input(check_positive_int(num_samples, "num_samples"),
                                               "num_samples", "coalitions")
        game = SegmentGame(call, segments, baseline)
        f_x = call.resolve_targets(forward=True)
        players = game.varying()
        plans = [shap_coalitions(len(p), num_samples, call.rng()) for p in players]
        on = [np.vstack([game.spread(masks, p, s), np.zeros((1, s), np.uint8)])  # + v(∅)
              for (masks, _), p, s in zip(plans, players, game.counts)]
        scores = game.values(on, "KernelSHAP")
        f_null = np.array([v[-1] for v in scores])
        values = []
        for i, ((masks, weights), p) in enumerate(zip(plans, players)):
            phi = np.zeros(game.counts[i])
            phi[p] = shap_solve(masks, weights, scores[i][:-1] - f_null[i],
                                f_x[i] - f_null[i], image=i)
            values.append(phi)
        exact = np.array([len(m) >= 2 ** len(p) - 2 for (m, _), p in zip(plans, players)])
        details = {"values": values, "f_x": f_x, "f_baseline": f_null, "exact": exact,
                   "coalitions": np.array([len(m) for m, _ in plans])}
        return call.finish(game.paint(values), game.details(details), return_details)


class FeatureAblation(AttributionMethod):
    """Feature ablation over segments, as Captum's ``FeatureAblation`` (Captum 0.7) with a
    ``feature_mask``: each segment's value is ``f_c(x) - f_c(x with that segment at the
    baseline)``, given to each of its pixels.

    ``FeatureAblation(sess, input_tensor, output_tensor, target_class)(X, segments=None,
    baseline='black')``: images ``[N, H, W, C]`` -> float32 ``[N, H, W]``.

    ``segments`` as :class:`LIME` (default: lime's quickshift, as LIME's and KernelSHAP's);
    ``baseline`` as :class:`KernelSHAP` (Captum's ``baselines``, default 0). ``seed`` is
    accepted so that the four methods share one call form; nothing here is random.
    ``return_details`` adds ``values`` (per image, one per segment), ``f_x``,
    ``segments`` and ``targets``.

    Where ours differs from Captum's: the score is the pre-softmax ``output_tensor``
    (Captum's is whatever ``forward_func`` returns); without a mask Captum ablates every
    input element alone, ours ablates lime's quickshift segments (pass ``segments`` an
    int label map to choose them); the map has no channel axis (a mask shared by the
    channels, as Captum's ``[1, 1, H, W]`` mask, gives each channel the same value).
    Session calls: ``ceil(N / batch_size)`` forwards plus ``ceil(Σ S_i / batch_size)``.
    """

    needs_rows = True
    api = "FeatureAblation(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, segments=None, baseline="black", *, batch_size=DEFAULT_BATCH_SIZE,
                 seed=None, return_details=False, target_class=_UNSET, feed_dict=None):
        call = PerturbationCall(self, X, feed_dict, batch_size, seed, target_class)
        game = SegmentGame(call, segments, baseline)
        f_x = call.resolve_targets(forward=True)
        ablated = [1 - np.eye(s, dtype=np.uint8) for s in game.counts]   # one off per row
        scores = game.values(ablated, "feature ablation")
        values = [f - v for f, v in zip(f_x, scores)]
        details = {"values": values, "f_x": f_x}
        return call.finish(game.paint(values), game.details(details, seeded=False),
                           return_details)


class RISE(AttributionMethod):
    """RISE (Petsiuk, Das and Saenko, BMVC 2018, "RISE: randomized input sampling for
    explanation of black-box models"): the score of the image under random soft masks,
    averaged per pixel over the masks, weighted by how much each keeps of it.

    ``RISE(sess, input_tensor, output_tensor, target_class)(X, num_masks=4000,
    cell_size=7, p=0.5)``: images ``[N, H, W, C]`` -> float32 ``[N, H, W]``.

    Mask ``m``: a ``cell_size`` x ``cell_size`` grid of cells, each kept (1) with
    probability ``p``, upsampled bilinearly to ``(cell_size + 1)·ceil(H / cell_size)``
    (and likewise W) and cropped at a random shift in ``[0, ceil(H / cell_size))`` (and
    ``[0, ceil(W / cell_size))``), as the paper's code (``generate_masks``: skimage's
    ``resize(order=1, mode='reflect')``) makes them. The row is ``x ⊙ m``; the map is
    ``Σ_m f_c(x ⊙ m)·m / Σ_m m`` per pixel (0 where no mask keeps it), as Xplique 2.0
    normalises; the paper divides by ``num_masks · p`` (its expectation of ``Σ m``).
    The masks are built in the graph from two numbers per row, a seed (the grid is
    ``tf.random.stateless_uniform(seed=(seed, mask))`` < p) and a shift (numpy's
    ``RandomState(seed)``), and summed in the graph: only ``[N, H, W]`` sums come back.
    Every image of a call gets the same masks (Xplique's, too).

    Parameter names: the paper's code calls them ``N``, ``s``, ``p1``; Xplique
    ``nb_samples=4000``, ``grid_size=7``, ``preservation_probability=0.5`` (the same
    defaults). ``seed``: None draws one from numpy's global generator (kept in
    ``last_info['seed']``). ``return_details`` adds ``mask_sums`` ``[N, H, W]`` (``Σ m``),
    ``targets`` and ``seed``.

    Where ours differs: the score is the pre-softmax ``output_tensor`` (the paper's and
    Xplique's are the model's outputs, probabilities); the random numbers are
    TensorFlow's and numpy's, not the paper's stream. Session calls:
    ``ceil(N·num_masks / batch_size)`` (+ ``ceil(N / batch_size)`` forwards when the
    target is None).
    """

    needs_rows = True
    api = "RISE(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, num_masks=4000, cell_size=7, p=0.5, *, batch_size=DEFAULT_BATCH_SIZE,
                 seed=None, return_details=False, target_class=_UNSET, feed_dict=None):
        call = PerturbationCall(self, X, feed_dict, batch_size, seed, target_class)
        num_masks = check_rows_per_input(check_positive_int(num_masks, "num_masks"),
                                         "num_masks", "masks")
        cells = check_positive_int(cell_size, "cell_size")
        keep = check_open_fraction(p, "p")
        call.resolve_targets(forward=False)
        n, h, w = call.X.shape[:3]
        shifts = rise_shifts(call.rng(), num_masks, cells, h, w)              # [M, 2]
        seeds = np.stack([np.full(num_masks, call.seed), np.arange(num_masks)], 1)

        def masked(group):                   # every mask of every image of the group
            image = np.repeat(group, num_masks)
            mask = np.tile(np.arange(num_masks), len(group))
            rows = Rows.gridded(image, call.bank.baseline_of(image), seeds[mask],
                                shifts[mask], cells, keep, call.targets[image])
            return rows.summed(into=image - group[0], weight=np.ones(len(image), np.float32))

        num, den = np.empty((n, h, w)), np.empty((n, h, w))
        for group, res in call.masked_rows([num_masks] * n, masked,
                                           ["score_weight_sums", "weight_sums"], "RISE"):
            num[group], den[group] = res["score_weight_sums"], res["weight_sums"]
        maps = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        details = {"mask_sums": den, "targets": call.targets, "seed": call.seed}
        return call.finish(maps.astype(np.float32), details, return_details)


class PartitionSHAP(AttributionMethod):
    """Partition SHAP, shap's default explainer of images (shap 0.51:
    ``shap.Explainer(f, shap.maskers.Image(masker, shape))``, a ``PartitionExplainer``):
    the Owen values of the image's values over a hierarchical partition of its rows,
    columns and channels (Owen 1977, "Values of games with a priori unions"; Lundberg et
    al.'s hierarchical Shapley values), estimated by a search that spends ``max_evals``
    model evaluations where the score changes most.

    ``PartitionSHAP(sess, input_tensor, output_tensor, target_class)(X, masker=None,
    max_evals=500)``: images ``[N, H, W, C]`` (RGB 0-255) -> float32 ``X.shape``, each
    value's Owen value (shap's ``Explanation.values`` for ``outputs=[c]``); their sum over
    the channels is the pixel map (``pixel_maps`` in the details).

    The game is ``v(S) = f_c(x on the values of S, the masker's image elsewhere)``; the
    masker's image is ``x`` blurred, a constant or a given image. The partition
    (:class:`PartitionTree`) halves each box along its longer side (rows on a tie) until
    it is one pixel, then splits its channels. The search (:class:`OwenSearch`) is
    shap's ``owen``: a node's two halves are scored with its sibling masked and kept,
    the halves whose score changed most are split next, ``queue_batch`` masks a step,
    and when ``max_evals`` is spent each node left gives its score change evenly to its
    values. The values sum to ``f_c(x) - f_c(x fully masked)``.

    Args:
        masker: None (``'blur(k,k)'`` with ``k`` 128 at 224 x 224, shap's examples' blur,
            scaled with the image by :func:`scaled_size`), ``'blur(kx,ky)'`` (OpenCV's
            ``cv2.blur(x, (kx, ky))``, ``kx`` columns by ``ky`` rows, mirrored edges:
            :func:`box_blur`), a number (every value), or an array of one image's shape
            (shap's mask image) or of ``X``'s shape (one per image).
        max_evals: model evaluations per image, counted as shap counts them (``f_c(x)``
            and the fully masked image included), at least 2.
        fixed_context: shap's: None (both contexts, each with half the weight), 0 (the
            sibling always masked) or 1 (always kept).
        queue_batch: the masks shap's queue pops per step (shap's ``batch_size``, whose
            ``'auto'`` is 10 for images). It decides which nodes the budget reaches, so
            it is part of the definition; ``batch_size`` bounds one ``sess.run``.
        seed: the tie-breakers of shap's priority queue (a ``randn()`` per node pushed;
            they decide only between equal priorities) come from
            ``numpy.random.RandomState(seed)``, fresh for every image (shap's after
            ``numpy.random.seed(seed)`` on one image); None draws a seed from numpy's
            global generator, kept in ``last_info['seed']``.
        return_details: also return a dict (kept as ``last_info``): ``pixel_maps``
            float32 ``[N, H, W]``, ``f_x``, ``f_masked`` (shap's ``base_values``),
            ``evals`` (model evaluations per image), ``masker`` (the default's string),
            ``targets``, ``seed``.

    Where ours differs from shap's: the score is the pre-softmax ``output_tensor`` (shap
    explains whatever ``f`` returns; our tests run shap on the same scores); one target
    per image; every masked copy is built in the graph from the image, its masked image
    and a label map of the step's nodes with a weight per channel (:func:`mask_labels`,
    :meth:`Rows.coalitions`), never fed; a call's images are searched in lockstep, a step
    of all of them in ``ceil(rows / batch_size)`` ``sess.run`` (each image's values are
    those it gets alone); shap's inpainting maskers are not offered. Session calls per
    step: the first has 4 rows per image (``f_c(x)``, the fully masked image and the
    root's halves), the others ``queue_batch`` until ``max_evals`` is spent; plus
    ``ceil(N / batch_size)`` forwards when the target is None.
    """

    needs_rows = True
    api = "PartitionSHAP(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, masker=None, max_evals=500, *, fixed_context=None, queue_batch=10,
                 batch_size=DEFAULT_BATCH_SIZE, seed=None, return_details=False,
                 target_class=_UNSET, feed_dict=None):
        call = PerturbationCall(self, X, feed_dict, batch_size, seed, target_class)
        masked, masker = parse_masker(masker, call.X)
        max_evals = check_max_evals(max_evals)
        queue_batch = check_positive_int(queue_batch, "queue_batch")
        context = check_fixed_context(fixed_context)
        call.resolve_targets(forward=False)
        tree = partition_tree(call.X.shape[1:])
        searches = [OwenSearch(tree, max_evals, queue_batch, context, call.rng())
                    for _ in range(len(call.X))]
        run_searches(call, masked, searches)
        values = np.stack([s.values() for s in searches])                  # [N, H, W, C]
        details = {"pixel_maps": values.sum(-1).astype(np.float32),
                   "f_x": np.array([s.f11 for s in searches]),
                   "f_masked": np.array([s.f00 for s in searches]),
                   "evals": np.array([s.evals + 2 for s in searches]), "masker": masker,
                   "targets": call.targets, "seed": call.seed}
        return call.finish(values.astype(np.float32), details, return_details)


# ====================================================================== the shared parts

class PerturbationCall:
    """One call of a perturbation method: its checked inputs and shared arguments, the
    model with the call's feeds and the targets, and :meth:`masked_rows`, the masked-row
    runner every method's rows go through; :meth:`finish` returns the maps.

    Attributes: ``X`` (float32 ``[N, H, W, C]``), ``single``, ``run`` (the
    :class:`ModelRunner` of the call), ``batch_size``, ``seed``, ``targets`` (int32
    ``[N]`` once :meth:`resolve_targets` ran), ``bank`` (the images rows are built from).
    """

    def __init__(self, method, X, feed_dict, batch_size, seed, target_class):
        self.method = method
        self.X, self.single, self.run = method._begin(X, feed_dict)
        if not is_image_batch(self.X):
            raise ValueError(NOT_IMAGE_ERROR.format(arg="X", method=type(method).__name__,
                                                    name=method.input_tensor.name,
                                                    actual=list(self.X.shape)))
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self._seed = None if seed is None else check_seed(seed)
        spec = method.target_class if target_class is _UNSET else target_class
        self.targets = check_targets(spec, len(self.X), method.num_classes)   # before runs
        self.bank = ImageBank(self.X)

    def masked_rows(self, sizes, rows_of, fetch, desc):
        """Run the masked copies of the images, a group at a time: ``sizes`` the rows of
        each image, ``rows_of(group)`` the :class:`Rows` of a group of images (their rows
        in order; sums, if any, one per image of the group). Yields ``(group, result)``,
        :func:`run_rows`' dict, in ``ceil(rows / batch_size)`` ``sess.run`` per group."""
        for group in row_groups(sizes):
            yield group, self.run.run_rows(rows_of(group), self.bank, fetch,
                                           self.batch_size, desc, n_sums=len(group))

    @property
    def seed(self):
        """The call's seed: the one given, or one drawn from numpy's global generator when
        first asked for (lime's and shap's ``None``: their global state)."""
        if self._seed is None:
            self._seed = int(np.random.randint(0, 2 ** 31))
        return self._seed

    def rng(self):
        """A fresh ``numpy.random.RandomState`` of the call's seed (the legacy generator
        lime and shap draw from; seeds beyond 2**32 go through ``MT19937``'s seeding)."""
        if self.seed < 2 ** 32:
            return np.random.RandomState(self.seed)
        return np.random.RandomState(np.random.MT19937(self.seed))

    def resolve_targets(self, forward):
        """Resolve the targets (None: each image's predicted class). With ``forward`` (or
        when the targets are None) the images' logits are computed and ``f_c(x)``
        float64 ``[N]`` returned; else None."""
        if not forward and self.targets is not None:
            return None
        logits = self.run.logits(self.X, self.batch_size)
        self.targets = resolve_targets(self.targets, logits, self.method.num_classes)
        return logits[np.arange(len(self.X)), self.targets].astype(np.float64)

    def finish(self, maps, details, return_details):
        """The maps (unbatched for one image), with the details when asked; the details
        are kept as the method's ``last_info``."""
        if self.single:
            details = {k: v[0] if isinstance(v, (list, np.ndarray)) and len(v) == 1 else v
                       for k, v in details.items()}
        self.method.last_info = details
        out = unbatch(maps, self.single)
        return (out, details) if return_details else out


class SegmentGame:
    """The game of the segment methods: one call's images, their segments
    (:func:`segment_labels`) and baselines, and the value of a coalition of segments,
    ``v_i(z) = f_c(x_i with the segments of z = 0 at its baseline)``, for many
    coalitions of many images in as few ``sess.run`` as ``batch_size`` allows (through
    :meth:`PerturbationCall.masked_rows`; every row built in the graph from its image, its
    baseline and ``z``: :meth:`Rows.coalitions`).
    """

    def __init__(self, call, segments, baseline):
        self.call = call
        X = call.X
        self.labels, self.counts = segment_labels(segments, X)
        self.baselines = parse_baseline(baseline, X, SEGMENT_BASELINES,
                                        make=lambda _: segment_means(X, self.labels))
        call.bank = ImageBank(X, self.baselines, ranks=self.labels)

    def values(self, coalitions, desc):
        """``v_i(z)`` float64 ``[K_i]`` for each image's coalitions ``[K_i, S_i]`` (1: the
        segment is shown)."""
        call, out = self.call, [None] * len(coalitions)

        def rows_of(group):
            image = np.concatenate([np.full(len(coalitions[i]), i) for i in group])
            on = np.zeros((len(image), max(self.counts[group])), np.uint8)      # [R, S]
            start = 0
            for i in group:
                z = coalitions[i]
                on[start:start + len(z), :z.shape[1]] = z
                start += len(z)
            return Rows.coalitions(image, call.bank.baseline_of(image), on,
                                   call.targets[image])

        for group, res in call.masked_rows([len(z) for z in coalitions], rows_of, ["score"],
                                           desc):
            ends = np.cumsum([len(coalitions[i]) for i in group])[:-1]
            for i, part in zip(group, np.split(res["score"].astype(np.float64), ends)):
                out[i] = part
        return out

    def varying(self):
        """Per image, the segments that differ from the baseline somewhere (shap's
        ``varying_groups``): int arrays."""
        out = []
        for i, (x, lab) in enumerate(zip(self.call.X, self.labels)):
            b = 0.0 if self.baselines is None else self.baselines[min(i, len(self.baselines)
                                                                      - 1)]
            differs = np.any(x != b, axis=-1).reshape(-1)
            hits = np.bincount(lab.reshape(-1), weights=differs, minlength=self.counts[i])
            out.append(np.flatnonzero(hits > 0))
        return out

    def spread(self, masks, players, count):
        """Coalitions of ``players`` ``[K, M]`` as coalitions of all the image's ``count``
        segments ``[K, count]`` (the others hidden: they equal the baseline)."""
        out = np.zeros((len(masks), count), np.uint8)
        out[:, players] = masks
        return out

    def paint(self, values):
        """Each image's per-segment ``values`` at its pixels: float32 ``[N, H, W]``."""
        return np.stack([np.asarray(v, np.float64)[lab] for v, lab in
                         zip(values, self.labels)]).astype(np.float32)

    def details(self, details, seeded=True):
        """``details`` with the segments, the targets and (``seeded``) the seed."""
        out = dict(details, segments=self.labels, targets=self.call.targets)
        return dict(out, seed=self.call.seed) if seeded else out


def row_groups(sizes, limit=ROWS_PER_GROUP):
    """Consecutive images whose rows (``sizes``) add up to at most ``limit`` (an image with
    more is a group of its own), as arrays of indices."""
    groups, current, total = [], [], 0
    for i, size in enumerate(sizes):
        if current and total + size > limit:
            groups.append(np.array(current))
            current, total = [], 0
        current.append(i)
        total += size
    return groups + ([np.array(current)] if current else [])


def check_open_fraction(value, arg):
    """``value`` as a float in (0, 1)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(OPEN_FRACTION_ERROR.format(arg=arg, actual=value))
    if not 0 < float(value) < 1:
        raise ValueError(OPEN_FRACTION_ERROR.format(arg=arg, actual=value))
    return float(value)


def run_searches(call, masked, searches):
    """Run the Owen searches of a call's images (:class:`OwenSearch`, one per image) in
    lockstep, :data:`PARTITION_GROUP` images at a time: each step's masks of a group as
    rows built in the graph from the images, their masked images ``masked`` (``[1, ...]``
    shared or ``[N, ...]``) and the step's label maps (:func:`step_rows`), in
    ``ceil(rows / batch_size)`` ``sess.run``."""
    quiet = copy.copy(call.run)
    quiet.progress = False                       # one bar for the call, not one per step
    n, (h, w) = len(searches), call.X.shape[1:3]
    with tqdm(total=sum(s.budget + 2 for s in searches), desc="PartitionSHAP", unit="row",
              leave=False, disable=not call.run.progress) as bar:
        for start in range(0, n, PARTITION_GROUP):
            stop = min(start + PARTITION_GROUP, n)
            group = searches[start:stop]
            bank = ImageBank(call.X[start:stop],
                             masked if len(masked) == 1 else masked[start:stop],
                             ranks=np.zeros((stop - start, h, w), np.int32))
            while True:
                asked = [(i, s.ask()) for i, s in enumerate(group)]
                asked = [(i, masks) for i, masks in asked if masks]
                if not asked:
                    break
                rows = step_rows(bank, asked, call.targets[start:stop], group[0].tree)
                scores = quiet.run_rows(rows, bank, ["score"], call.batch_size, None)["score"]
                ends = np.cumsum([len(masks) for _, masks in asked])[:-1]
                for (i, _), part in zip(asked, np.split(scores.astype(np.float64), ends)):
                    group[i].tell(part)
                bar.update(len(scores))


def step_rows(bank, asked, targets, tree):
    """The rows of one step: for each ``(image, masks)`` of ``asked``, the image with the
    values its masks keep and its masked image elsewhere (:meth:`Rows.coalitions`, a
    weight per channel); each image's label map of the step (:func:`mask_labels`) becomes
    its rank map in ``bank``."""
    parts = []
    for i, masks in asked:
        bank.ranks[i], on = mask_labels(tree, masks)
        parts.append(on)                                                  # [K_i, S_i, C]
    on = np.zeros((sum(len(p) for p in parts), max(p.shape[1] for p in parts),
                   tree.shape[2]), np.uint8)                                 # [R, S, C]
    start = 0
    for p in parts:
        on[start:start + len(p), :p.shape[1]] = p
        start += len(p)
    image = np.concatenate([np.full(len(p), i) for (i, _), p in zip(asked, parts)])
    return Rows.coalitions(image, bank.baseline_of(image), on, targets[image])


def parse_masker(masker, X):
    """shap's image masker as the masked images of ``X``: ``(float32 [1, ...] or [N, ...],
    the masker)``; None is ``'blur(k,k)'``, ``k`` = :data:`BLUR_AT_224` scaled to the
    image."""
    if masker is None:
        k = scaled_size(BLUR_AT_224, *X.shape[1:3])
        masker = f"blur({k},{k})"
    if isinstance(masker, str):
        if masker in INPAINT_MASKERS:
            raise ValueError(INPAINT_ERROR.format(actual=masker))
        match = re.fullmatch(r"blur\(\s*(\d+)\s*,\s*(\d+)\s*\)", masker)
        if not match or min(int(k) for k in match.groups()) < 1:
            raise ValueError(MASKER_ERROR.format(expected=list(X.shape[1:]),
                                                 actual=repr(masker)))
        return box_blur(X, *(int(k) for k in match.groups())), masker
    return parse_baseline(masker, X, names=(), numbers=True, arg="masker",
                          error=MASKER_ERROR), masker


def check_max_evals(value):
    """``max_evals`` as an int >= 2 (at most :data:`ROWS_PER_INPUT_LIMIT`)."""
    if not is_int(value):
        raise TypeError(MAX_EVALS_ERROR.format(actual=value))
    if value < 2:
        raise ValueError(MAX_EVALS_ERROR.format(actual=value))
    return check_rows_per_input(int(value), "max_evals", "evaluations")


def check_fixed_context(value):
    """shap's ``fixed_context``: None, 0 or 1."""
    if value is not None and (not is_int(value) or value not in (0, 1)):
        raise ValueError(FIXED_CONTEXT_ERROR.format(actual=value))
    return None if value is None else int(value)


# ============================================================== samplers and solvers

def lime_samples(rng, num_features, num_samples):
    """LIME's samples ``[num_samples, num_features]`` of 0/1, the first all 1, as
    ``LimeImageExplainer(random_state=rng).explain_instance`` draws them: first its
    segmentation seed (``randint(0, 1000)``, drawn even though it is not used here), then
    ``randint(0, 2, num_samples·num_features)``."""
    rng.randint(0, high=1000)
    data = rng.randint(0, 2, num_samples * num_features).reshape((num_samples, num_features))
    data[0, :] = 1
    return data.astype(np.uint8)


def lime_fit(samples, scores, kernel_width, alpha=1.0):
    """lime's ``explain_instance_with_data`` with every feature: the kernel weights
    ``sqrt(exp(-d² / w²))`` of the cosine distances ``d`` to sample 0, and
    ``Ridge(alpha, fit_intercept=True).fit(samples, scores, sample_weight=weights)`` in
    closed form. Returns a dict: ``coef`` ``[S]``, ``intercept``, ``score`` (weighted R²,
    sklearn's ``Ridge.score``), ``local_pred`` (the fit at sample 0), ``weights``."""
    z = np.asarray(samples, np.float64)
    y = np.asarray(scores, np.float64)
    weights = np.sqrt(np.exp(-cosine_distances(z, z[0]) ** 2 / kernel_width ** 2))
    coef, intercept = weighted_ridge(z, y, weights, alpha)
    fitted = intercept + z @ coef
    return {"coef": coef, "intercept": intercept, "score": weighted_r2(y, fitted, weights),
            "local_pred": float(intercept + z[0] @ coef), "weights": weights}


def cosine_distances(z, ref):
    """sklearn's ``pairwise_distances(z, ref[None], metric='cosine')``: ``1 - cos``, a zero
    vector at distance 1, clipped to [0, 2]: ``[K]``."""
    norms = np.linalg.norm(z, axis=1) * np.linalg.norm(ref)
    cos = np.divide(z @ ref, norms, out=np.zeros(len(z)), where=norms > 0)
    return np.clip(1.0 - cos, 0.0, 2.0)


def weighted_ridge(X, y, w, alpha):
    """``(coef, intercept)`` of sklearn's ``Ridge(alpha, fit_intercept=True)`` fitted with
    ``sample_weight=w``: centred on the weighted means, ``coef = (Xcᵀ W Xc + αI)⁻¹ Xcᵀ W
    yc``, ``intercept = ȳ - x̄ · coef``."""
    x_mean = np.average(X, axis=0, weights=w)
    y_mean = np.average(y, weights=w)
    Xc, yc = X - x_mean, y - y_mean
    WX = w[:, None] * Xc
    coef = np.linalg.solve(Xc.T @ WX + alpha * np.eye(X.shape[1]), WX.T @ yc)
    return coef, float(y_mean - x_mean @ coef)


def weighted_r2(y, fitted, w):
    """sklearn's ``r2_score(y, fitted, sample_weight=w)``: 1 for a perfect fit of constant
    ``y``, 0 for an imperfect one."""
    residual = np.sum(w * (y - fitted) ** 2)
    total = np.sum(w * (y - np.average(y, weights=w)) ** 2)
    if total == 0:
        return 1.0 if residual == 0 else 0.0
    return float(1.0 - residual / total)


def shap_coalitions(m, num_samples, rng):
    """KernelSHAP's coalitions of ``m`` players, as shap 0.51's ``KernelExplainer.explain``
    picks them: ``(masks [K, m] of 0/1, kernel weights [K])``, none for ``m < 2``.

    The budget is ``num_samples`` (None: ``2m + 2048``), at most ``2^m - 2``. Subset sizes
    ``s = 1, 2, ...`` (each with its complement size ``m - s``) are enumerated whole while
    the budget's share of the kernel weight covers them, each coalition weighted by the
    kernel; the rest of the budget draws sizes with the remaining kernel weights and a
    random coalition of that size (plus its complement), a repeat adding 1 to its weight;
    those weights are then scaled to the kernel weight left.
    """
    if m < 2:
        return np.zeros((0, m), np.uint8), np.zeros(0)
    budget = 2 * m + 2 ** 11 if num_samples is None else num_samples
    if m <= 30:
        budget = min(budget, 2 ** m - 2)
    sizes, paired = int(np.ceil((m - 1) / 2.0)), int(np.floor((m - 1) / 2.0))
    kernel = np.array([(m - 1.0) / (i * (m - i)) for i in range(1, sizes + 1)])
    kernel[:paired] *= 2
    kernel /= kernel.sum()
    masks, weights = [], []
    full = enumerate_sizes(m, budget, kernel, paired, masks, weights)
    if full != sizes:
        sample_sizes(m, budget - len(masks), kernel, paired, full, rng, masks, weights)
    return np.array(masks, np.uint8).reshape(-1, m), np.array(weights, np.float64)


def enumerate_sizes(m, budget, kernel, paired, masks, weights):
    """The whole subset sizes shap enumerates (appended to ``masks`` and ``weights``);
    returns how many sizes it took."""
    left, remaining, full = budget, kernel.copy(), 0
    for size in range(1, len(kernel) + 1):
        count = binom(m, size) * (2 if size <= paired else 1)
        if left * remaining[size - 1] / count < 1.0 - 1e-8:
            break
        full += 1
        left -= count
        if remaining[size - 1] < 1.0:
            remaining /= 1 - remaining[size - 1]
        w = kernel[size - 1] / binom(m, size) / (2.0 if size <= paired else 1.0)
        for inds in itertools.combinations(range(m), size):
            mask = np.zeros(m)
            mask[list(inds)] = 1.0
            masks.append(mask)
            weights.append(w)
            if size <= paired:
                masks.append(1.0 - mask)
                weights.append(w)
    return full


def sample_sizes(m, left, kernel, paired, full, rng, masks, weights):
    """shap's random coalitions of the sizes not enumerated (appended), their weights
    scaled to the kernel weight those sizes hold."""
    first = len(masks)
    rest = kernel.copy()
    rest[:paired] /= 2                                  # two coalitions per draw there
    rest = rest[full:] / rest[full:].sum()
    draws, pos, seen = rng.choice(len(rest), 4 * left, p=rest), 0, {}
    while left > 0 and pos < len(draws):
        size = draws[pos] + full + 1
        pos += 1
        mask = np.zeros(m)
        mask[rng.permutation(m)[:size]] = 1.0
        key = mask.tobytes()
        new = key not in seen
        if new:
            seen[key] = len(masks)
            left -= 1
            masks.append(mask)
            weights.append(1.0)
        else:
            weights[seen[key]] += 1.0
        if left > 0 and size <= paired:
            if new:
                left -= 1
                masks.append(1.0 - mask)
                weights.append(1.0)
            else:
                weights[seen[key] + 1] += 1.0
    drawn = np.array(weights[first:])
    if len(drawn):
        weights[first:] = list(drawn * kernel[full:].sum() / drawn.sum())


def shap_solve(masks, weights, values, total, image=0):
    """shap's ``solve`` without feature selection: the values ``φ`` ``[M]`` minimising
    ``Σ_k w_k (values_k - masks_k · φ)²`` subject to ``Σ φ = total``, the last player's
    value eliminated with the constraint (``values``: the coalitions' ``v(S) - v(∅)``,
    ``total = v(all) - v(∅)``); ``|φ| < 1e-10`` is set to 0, as shap does. One player gets
    ``total``; none, nothing."""
    m = masks.shape[1]
    if m < 2:
        return np.full(m, float(total))
    z = masks.astype(np.float64)
    y = values - z[:, -1] * total
    X = z[:, :-1] - z[:, -1:]
    WX = weights[:, None] * X
    try:
        w = np.linalg.solve(X.T @ WX, WX.T @ y)
    except np.linalg.LinAlgError:
        warnings.warn(SINGULAR_WARNING.format(image=image, coalitions=len(z), players=m),
                      RuntimeWarning, stacklevel=3)
        root = np.sqrt(weights)
        w = np.linalg.lstsq(root[:, None] * X, root * y, rcond=None)[0]
    phi = np.append(w, total - w.sum())
    phi[np.abs(phi) < 1e-10] = 0.0
    return phi


def rise_shifts(rng, num_masks, cells, height, width):
    """RISE's crop shifts ``[num_masks, 2]`` (top, left), each uniform in ``[0,
    ceil(side / cells))``, as the paper's ``generate_masks`` draws them."""
    return rng.randint(0, (-(-height // cells), -(-width // cells)),
                       size=(num_masks, 2)).astype(np.int32)


# ================================================ PartitionSHAP's tree, blur and search

class PartitionTree:
    """The hierarchical partition of an image's ``H·W·C`` values that shap 0.51's
    ``maskers.Image`` builds (``build_partition_tree``): the whole box is split in two, along
    its rows if they are at least as many as its columns, else along its columns, and along
    the channels only once a box is one pixel; a split at ``lo + width // 2``.

    Node ids are shap's (its ``clustering`` matrix): the leaves ``0..M-1`` are the values in
    flattened (row, column, channel) order; the ``M - 1`` inner nodes are numbered down
    from the root ``2M - 2`` in the order shap's heap pops their boxes (by size, larger
    first, then by the box's coordinates). shap's heap gives the leaf of its box at flat
    index ``f`` the id ``M - 1 - f``, so a node whose box is ``B`` in shap's build stands
    for the values of ``B`` turned by 180 degrees (rows, columns and channels reversed):
    ``boxes`` holds those, the values each node keeps.

    Attributes: ``shape`` ``(H, W, C)``, ``size`` (M), ``root``, ``children`` int64
    ``[M - 1, 2]`` (the left and right child of node ``M + k``), ``sizes`` ``[2M - 1]``,
    ``boxes`` int64 ``[2M - 1, 6]`` (row, column and channel ranges, each ``[lo, hi)``).
    """

    def __init__(self, shape):
        self.shape = tuple(int(s) for s in shape)
        h, w, c = self.shape
        m = self.size = h * w * c
        self.root = 2 * m - 2
        built, parent, is_left = split_boxes(self.shape)          # shap's boxes [2M-1, 6]
        sizes = np.prod(built[:, 1::2] - built[:, ::2], axis=1)
        inner = sizes > 1
        ids = np.empty(len(built), np.int64)
        flat = (built[:, 0] * w + built[:, 2]) * c + built[:, 4]
        ids[~inner] = m - 1 - flat[~inner]
        keys = tuple(built[inner][:, k] for k in (5, 4, 3, 2, 1, 0)) + (-sizes[inner],)
        rank = np.empty(int(inner.sum()), np.int64)
        rank[np.lexsort(keys)] = np.arange(len(rank))              # shap's heap order
        ids[inner] = self.root - rank
        self.children = np.zeros((max(m - 1, 0), 2), np.int64)
        child = parent >= 0
        self.children[ids[parent[child]] - m, np.where(is_left[child], 0, 1)] = ids[child]
        self.sizes = np.empty(len(built), np.int64)
        self.sizes[ids] = sizes
        turned = np.array([h, h, w, w, c, c]) - built[:, [1, 0, 3, 2, 5, 4]]
        self.boxes = np.empty_like(built)
        self.boxes[ids] = turned

    def clustering(self):
        """shap's ``masker.clustering``: ``[M - 1, 4]`` float64 (left, right, distance 0,
        size), row ``k`` for node ``M + k``."""
        out = np.zeros((len(self.children), 4))
        out[:, :2] = self.children
        out[:, 3] = self.sizes[self.size:]
        return out

    def paint(self, node_values):
        """Each node's value spread evenly over the values it keeps, summed: float64
        ``[H, W, C]`` (shap's ``lower_credit``, in closed form: a leaf gets ``v / size``
        of each of its ancestors' ``v``)."""
        out = np.zeros(self.shape)
        for node, v in node_values.items():
            r0, r1, c0, c1, k0, k1 = self.boxes[node]
            out[r0:r1, c0:c1, k0:k1] += v / self.sizes[node]
        return out


@functools.lru_cache(maxsize=4)
def partition_tree(shape):
    """The :class:`PartitionTree` of images of ``shape`` ``(H, W, C)`` (kept for reuse)."""
    return PartitionTree(shape)


def split_boxes(shape):
    """Every box of shap's partition, level by level from the whole ``shape``: ``(boxes
    [2M - 1, 6], parent [2M - 1] (position of the parent, -1 for the root), is_left)``."""
    h, w, c = shape
    level, parent, left = np.array([[0, h, 0, w, 0, c]]), np.array([-1]), np.array([False])
    boxes, parents, lefts, start = [], [], [], 0
    while len(level):
        boxes.append(level), parents.append(parent), lefts.append(left)
        widths = level[:, 1::2] - level[:, ::2]                                   # [k, 3]
        split = widths.prod(1) > 1
        where = start + np.flatnonzero(split)
        start += len(level)
        level, widths = level[split], widths[split]
        axis = np.where((widths[:, 0] >= widths[:, 1]) & (widths[:, 0] > 1), 0,
                        np.where(widths[:, 1] > 1, 1, 2))
        k = np.arange(len(level))
        mid = level[k, 2 * axis] + widths[k, axis] // 2
        low, high = level.copy(), level.copy()
        low[k, 2 * axis + 1] = mid
        high[k, 2 * axis] = mid
        level = np.concatenate([low, high])
        parent = np.concatenate([where, where])
        left = np.repeat([True, False], len(k))
    return np.concatenate(boxes), np.concatenate(parents), np.concatenate(lefts)


def box_blur(images, kx, ky):
    """OpenCV's ``cv2.blur(image, (kx, ky))`` of each image ``[N, H, W, C]``: the mean of
    the ``ky`` x ``kx`` box (``kx`` along the width, as OpenCV's ``ksize``) anchored at its
    centre (offset ``k // 2``), the image mirrored beyond its edges without repeating them
    (``BORDER_REFLECT_101``, cv2's default; again and again for a box larger than the
    image). Two separable averages in float64 (:func:`box_matrix`), rounded to float32."""
    images = np.asarray(images)
    along_h = box_matrix(images.shape[1], ky)
    along_w = box_matrix(images.shape[2], kx)
    out = np.empty(images.shape, np.float32)
    for i, x in enumerate(images):
        rows = np.einsum("ij,jwc->iwc", along_h, x.astype(np.float64))
        out[i] = np.einsum("kw,iwc->ikc", along_w, rows)
    return out


def box_matrix(n, k):
    """``[n, n]``: row ``i`` averages entries ``i - k//2 .. i - k//2 + k - 1`` of a
    length-``n`` axis, those beyond the ends mirrored about the end entries (OpenCV's
    ``borderInterpolate`` with ``BORDER_REFLECT_101``: period ``2n - 2``; ``n = 1``
    repeats its one entry)."""
    pos = np.arange(n)[:, None] - k // 2 + np.arange(k)[None, :]                 # [n, k]
    if n == 1:
        src = np.zeros_like(pos)
    else:
        src = np.abs(pos) % (2 * n - 2)
        src = np.where(src >= n, 2 * n - 2 - src, src)
    out = np.zeros((n, n))
    np.add.at(out, (np.repeat(np.arange(n), k), src.ravel()), 1.0)
    return out / k


class OwenSearch:
    """shap 0.51's ``PartitionExplainer.owen`` for one image, as an ask-and-tell loop
    (:meth:`ask` the masks of the next step, :meth:`tell` their scores, until ``ask``
    returns none), with no model of its own: the Owen values of the values of a
    :class:`PartitionTree`, each node's split evaluated in the contexts where its sibling
    is masked and where it is kept, the nodes whose score changes most first.

    As shap: a priority queue of (context, f(context), f(context + node), node, weight),
    the root first; a step pops up to ``queue_batch`` masks' worth of nodes (two masks
    each, within the budget ``max_evals - 2``); a leaf popped gives its ``(f11 - f00) ·
    weight`` to itself; a split node's children are pushed in both contexts (or the one
    of ``fixed_context``) with half the weight (the whole weight for a fixed context),
    each with priority ``-|Δf| · weight`` and a tie-breaker ``rng.randn()`` (shap's
    ``np.random.randn()``, drawn in the same order); when the budget is spent every node
    left in the queue gets its ``(f11 - f00) · weight``. :meth:`values` spreads the node
    values onto the leaves (shap's ``lower_credit``).

    A mask is a tuple of node ids whose values it keeps: ``(root,)`` is the image itself,
    ``()`` the image fully masked; the first step asks for those two (shap's ``f11`` and
    ``f00``) with the root's split.
    """

    def __init__(self, tree, max_evals, queue_batch=10, fixed_context=None, rng=None):
        self.tree, self.budget = tree, max_evals - 2          # shap: owen(max_evals - 2)
        self.queue_batch, self.context = queue_batch, fixed_context
        self.rng = np.random.RandomState(0) if rng is None else rng
        self.f00 = self.f11 = None
        self.evals, self.node_values, self.asked, self._count = 0, {}, [], 0
        self._root = [(), None, None, tree.root, 1.0]           # its scores come first
        self.heap = [(0.0, 0.0, -1, self._root)]

    def ask(self):
        """The masks of the next step (none: the search is over)."""
        if self.f11 is None:
            inner = self.tree.root >= self.tree.size
            return [(self.tree.root,), ()] + (self._pop() if inner else [])
        while self.heap:
            if self.evals >= self.budget:
                while self.heap:                        # the rest stay on their nodes
                    context, f00, f11, node, weight = heapq.heappop(self.heap)[-1]
                    self._credit(node, (f11 - f00) * weight)
                break
            masks = self._pop()
            if masks:
                return masks
        return []

    def tell(self, scores):
        """The scores of the masks :meth:`ask` gave, in its order."""
        scores = [float(s) for s in scores]
        if self.f11 is None:
            self.f11, self.f00 = scores[:2]
            self._root[1:3] = [self.f00, self.f11]
            scores = scores[2:]
        self.evals += len(scores)
        for (item, left, right), f10, f01 in zip(self.asked, scores[::2], scores[1::2]):
            self._split(item, left, right, f10, f01)
        self.asked = []

    def _pop(self):
        """shap's batch: nodes off the queue while the step and the budget have room."""
        masks, self.asked = [], []
        while (self.heap and len(masks) < self.queue_batch
               and self.evals + len(masks) < self.budget):
            item = heapq.heappop(self.heap)[-1]
            context, f00, f11, node, weight = item
            if node < self.tree.size:
                self._credit(node, (f11 - f00) * weight)
                continue
            left, right = (int(c) for c in self.tree.children[node - self.tree.size])
            self.asked.append((item, left, right))
            masks += [context + (left,), context + (right,)]
        return masks

    def _split(self, item, left, right, f10, f01):
        """One split's results, as shap's loop takes them: the interaction for a fixed
        context, then the children pushed with their priorities."""
        context, f00, f11, node, weight = item
        new_weight = weight / 2 if self.context is None else weight
        if self.context is not None:
            interaction = (f11 - f10 - f01 + f00) * weight
            self._credit(node, interaction if self.context == 0 else -interaction)
        if self.context in (None, 0):                      # the sibling masked
            self._push(context, f00, f10, left, new_weight)
            self._push(context, f00, f01, right, new_weight)
        if self.context in (None, 1):                      # the sibling kept
            self._push(context + (right,), f01, f11, left, new_weight)
            self._push(context + (left,), f10, f11, right, new_weight)

    def _push(self, context, f00, f11, node, weight):
        priority = -abs(f11 - f00) * weight
        heapq.heappush(self.heap, (priority, self.rng.randn(), self._count,
                                   [context, f00, f11, node, weight]))
        self._count += 1

    def _credit(self, node, value):
        self.node_values[node] = self.node_values.get(node, 0.0) + value

    def values(self):
        """The Owen values of every value of the image: float64 ``[H, W, C]``."""
        return self.tree.paint(self.node_values)


def mask_labels(tree, masks):
    """The masks of one image's step as a label map and per-channel coalitions for the row
    engine (:meth:`Rows.coalitions`): ``(labels int32 [H, W], on uint8 [K, S, C])``. The
    labels are the distinct pixel rectangles of the masks' nodes (1..S-1, each pixel its
    smallest; 0 for pixels in none), and ``on[k, s, c]`` is 1 where mask ``k`` keeps
    channel ``c`` of rectangle ``s``: some node of the mask holds the rectangle (the
    rectangles of a partition are nested or apart) and that channel."""
    h, w, c = tree.shape
    nodes = np.unique(np.fromiter((n for m in masks for n in m), np.int64))
    rects = np.unique(tree.boxes[nodes, :4], axis=0).reshape(-1, 4)
    rects = rects[np.argsort(-(rects[:, 1] - rects[:, 0]) * (rects[:, 3] - rects[:, 2]),
                             kind="stable")]
    labels = np.zeros((h, w), np.int32)
    for s, (r0, r1, c0, c1) in enumerate(rects, 1):          # larger first: smaller win
        labels[r0:r1, c0:c1] = s
    on = np.zeros((len(masks), len(rects) + 1, c), np.uint8)
    for k, mask in enumerate(masks):
        if mask:
            b = tree.boxes[list(mask)]                                            # [t, 6]
            holds = ((b[:, None, 0] <= rects[:, 0]) & (b[:, None, 1] >= rects[:, 1])
                     & (b[:, None, 2] <= rects[:, 2]) & (b[:, None, 3] >= rects[:, 3]))
            channel = (np.arange(c) >= b[:, 4:5]) & (np.arange(c) < b[:, 5:6])    # [t, C]
            on[k, 1:] = (holds[:, :, None] & channel[:, None, :]).any(0)
    return labels, on
