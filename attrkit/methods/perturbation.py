"""Perturbation methods: what a class score does when parts of the image are hidden.

Each is constructed as the homework's methods are and returns one float32 map ``[N, H, W]``
per call (one image ``[H, W, C]`` -> ``[H, W]``)::

    LIME(sess, input_tensor, output_tensor, target_class)
        (X, segments=None, num_samples=1000, kernel_width=0.25, baseline='black')
    KernelSHAP(sess, input_tensor, output_tensor, target_class)
        (X, segments=None, num_samples=None, baseline='black')
    FeatureAblation(sess, input_tensor, output_tensor, target_class)
        (X, segments=None, baseline='black')
    RISE(sess, input_tensor, output_tensor, target_class)
        (X, num_masks=4000, cell_size=7, p=0.5)

and every call also takes ``batch_size=16``, ``seed=None``, ``return_details=False``,
``target_class=`` and ``feed_dict=None`` (keyword only). The first three give each pixel
its segment's value (segments: :func:`attrkit.methods.segmentation.segment_labels`); RISE
gives each pixel the mean score of the random soft masks that keep it. Scores are the
pre-softmax ``output_tensor`` (DESIGN.md), where lime, shap and the RISE paper take the
probabilities the classifier returns.

In reading order: the four methods; :class:`PerturbationCall` (what they share: a call's
checks and the masked-row runner every method's rows go through) and
:class:`SegmentGame` (the segment methods' game: a coalition of segments in, a score
out); every row is built in the graph by the row engine of ``hw3_attribution``
(:meth:`Rows.coalitions`, :meth:`Rows.gridded`). Then each
method's sampler and solver, in numpy: LIME's samples and weighted ridge
(:func:`lime_samples`, :func:`lime_fit`), KernelSHAP's coalitions and constrained least
squares (:func:`shap_coalitions`, :func:`shap_solve`), RISE's shifts.
"""
import itertools
import warnings

import numpy as np
from scipy.special import binom

from hw3_attribution import (DEFAULT_BATCH_SIZE, NOT_IMAGE_ERROR, ROWS_PER_GROUP, _UNSET,
                             AttributionMethod, ImageBank, Rows, check_number,
                             check_positive_int, check_rows_per_input, check_seed,
                             check_targets, is_image_batch, parse_baseline,
                             resolve_targets, unbatch)
from attrkit.methods.segmentation import segment_labels, segment_means

OPEN_FRACTION_ERROR = "{arg}: expected a number in (0, 1), got {actual!r}"
SINGULAR_WARNING = ("KernelSHAP: the weighted least squares of image {image} is singular "
                    "({coalitions} coalitions for {players} segments); a least-squares "
                    "solution is used instead (as shap's): raise num_samples or use fewer "
                    "segments")

SEGMENT_BASELINES = ("black", "white", "mean")


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
