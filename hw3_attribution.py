"""Attribution methods for image classifiers in TensorFlow graph mode (tf.compat.v1).

The homework's API, exactly (DESIGN.md, "The homework's API: exact")::

    SaliencyMap(sess, input_tensor, output_tensor, target_class)
        (X, batch_size=16, multiply_with_input=True)
    IntegratedGrad(sess, input_tensor, output_tensor, target_class)
        (X, baseline='black', batch_size=16, num_steps=50, multiply_with_input=True)

and in the same form ``VanillaGradient``, ``SmoothGrad``, ``GradCAM`` (the conv layer as a
tensor), ``Occlusion`` and ``RandomAttribution``. ``input_tensor`` is the model's input
placeholder (images ``[None, H, W, C]``, RGB 0-255, preprocessing inside the graph) and
``output_tensor`` its pre-softmax scores ``[None, K]`` (VGG16: ``fc3l``). Everything beyond
the homework is a keyword argument after the homework's, with a default that keeps the
homework's behaviour; every call takes ``feed_dict`` (the graph's other placeholders).
Every op is built in ``_define_ops()`` (called from ``__init__``) and cached per graph and
tensors, so ``__call__`` only feeds and fetches; a constructor that fails builds nothing.

The file, in reading order:

1. **The methods**: ``AttributionMethod`` (what they share), ``SaliencyMap``,
   ``IntegratedGrad``, ``VanillaGradient``, ``SmoothGrad``, ``GradCAM``, ``Occlusion``,
   ``RandomAttribution``; then their helpers (quadrature rules, the completeness error,
   patch positions and the sizes that scale from 224, the one blur).
2. **Checks and parsers**: the error templates, argument checks, and the one parser each
   for inputs, targets and baselines.
3. **Running the model**: ``ModelRunner`` (the checked model in its session, a call's
   ``feed_dict``, and the one loop that runs work in chunks of at most ``batch_size``
   rows), the bounds on rows, what the graph says about the model (``ModelFacts``), the
   op cache, ``ModelOps``, ``new_session``.
4. **The row engine**: methods that evaluate many variants of an input describe them as
   :class:`Rows`, built by constructors that say what a row is (a path point between an
   input and its baseline, a noisy copy, a copy with a patch replaced, a copy whose pixels
   ranked in a window come from another image, a blur of an input, a copy with some
   segments hidden, or some channels of some segments, a copy under a RISE mask); the graph
   (:class:`RowOps`, one function per stage) builds those rows from a few images and
   per-row numbers, runs them through a copy of the model and sums gradients per input,
   so a ``sess.run`` feeds a few images and fetches a few maps instead of
   ``[rows, H, W, 3]``.
5. **The adaptive path**: :class:`AdaptiveIG` (IG's adaptive rule), numpy only, given the
   model as functions.

The methods beyond the homework (PAIR saliency's ``XRAI``, ``GuidedIG``, ``BlurIG``,
``GuidedBackprop``, and the families after them) live in the package ``attrkit``
(``attrkit.methods``), built on this engine; no graded file needs them.

It is longer than the other files because the graded zip holds only the four graded
files: the engine that ``hw3_infl`` and ``hw3_evaluation`` share has to live in one of them,
and it lives here, after the methods that use most of it.
"""
import copy
import warnings
import weakref

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

tf1 = tf.compat.v1

DEFAULT_BATCH_SIZE = 16          # the homework's default: rows per sess.run
_UNSET = object()                # "keyword not given": keeps the instance's setting
# Build rows in the graph and run them through a copy of the model (RowOps); False builds
# new RowOps in 'feed' mode (rows fetched, then fed), the fallback for graphs that cannot be
# copied. Read when a graph's RowOps are first built; tests set it to compare both modes.
CLONE_MODEL = True


# ============================================================================ the methods

class AttributionMethod:
    """Base of every method: ``(sess, input_tensor, output_tensor, target_class)``.

    Args:
        sess: the ``tf.compat.v1.Session`` whose graph holds the model.
        input_tensor: the model's input placeholder ``[None, ...]`` (images
            ``[None, H, W, 3]``, RGB 0-255).
        output_tensor: the model's pre-softmax scores ``[None, K]`` (VGG16: ``fc3l``).
        target_class: the class to explain: an int (the homework's), None (each input's
            own predicted class, computed once at the input), or a sequence of ints, one
            per input of the next call.
        progress: show a tqdm progress bar on stderr for long work (keyword only).

    Every call also takes ``feed_dict`` (keyword only, default None): values for the other
    placeholders of the user's graph (a dropout rate, ``is_training``), merged into each
    ``sess.run`` as PAIR saliency's calls do; it must not feed ``input_tensor`` and must
    feed every placeholder without a default that the output reads.

    The model, its ops and the batching live in ``self._runner`` (:class:`ModelRunner`);
    a call works with ``self._runner.fed(feed_dict)``, the same model with the call's
    extra feeds (:meth:`_begin`).
    """

    needs_rows = False     # True: the method builds rows in the graph (the row engine)
    api = "Method(sess, input_tensor, output_tensor, target_class)"

    def __init__(self, sess, input_tensor, output_tensor, target_class=None, *,
                 progress=True):
        self._runner = ModelRunner(sess, input_tensor, output_tensor, self.api, progress)
        self.sess, self.input_tensor = sess, input_tensor
        self.output_tensor, self.num_classes = output_tensor, self._runner.num_classes
        self.target_class = check_target_spec(target_class, self.num_classes)
        self.progress = progress
        self.last_info = {}
        with sess.graph.as_default():
            self._define_ops()

    def _define_ops(self):
        self._ops = self._runner.model_ops()
        if self.needs_rows:
            self._rows = self._runner.row_ops()

    def logits(self, X, batch_size=DEFAULT_BATCH_SIZE, *, feed_dict=None):
        """Pre-softmax scores ``[N, K]`` of inputs ``X``."""
        X, _, run = self._begin(X, feed_dict)
        return run.logits(X, check_positive_int(batch_size, "batch_size"))

    def _begin(self, X, feed_dict, arg="X"):
        """The start of a call: ``(X, single, run)``: the inputs checked (float32
        ``[N, ...]``, and whether one unbatched input was given) and the model for this
        call, ``run`` (the session checked open, ``feed_dict`` checked and merged into
        each of its ``sess.run``)."""
        run = self._runner.fed(feed_dict)
        X, single = as_batch(X, self.input_tensor, arg)
        return X, single, run

    def _targets(self, run, X, target_class=_UNSET, batch_size=DEFAULT_BATCH_SIZE,
                 logits=None):
        """int32 targets ``[N]`` for a checked batch: the spec, or the predictions."""
        spec = self.target_class if target_class is _UNSET else target_class
        return run.targets(X, spec, batch_size, logits)


class SaliencyMap(AttributionMethod):
    """Saliency map ``S_c(x) = x ⊙ ∇_x f_c(x)`` of the pre-softmax score (Simonyan et al.
    2014, "Deep inside convolutional networks"; input x gradient as in the homework).

    ``SaliencyMap(sess, input_tensor, output_tensor, target_class)(X, batch_size=16,
    multiply_with_input=True)``: ``X`` ``[N, ...]`` (images ``[N, H, W, 3]``, RGB 0-255) or
    one input; returns float32 of ``X``'s shape, ``x ⊙ ∇f_c`` or (``multiply_with_input=
    False``) ``∇f_c``. Session calls: ``ceil(N / batch_size)`` (+ as many forwards to find
    the predicted classes when ``target_class`` is None).
    """

    api = "SaliencyMap(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, batch_size=DEFAULT_BATCH_SIZE, multiply_with_input=True, *,
                 target_class=_UNSET, feed_dict=None):
        X, single, run = self._begin(X, feed_dict)
        bs = check_positive_int(batch_size, "batch_size")
        targets = self._targets(run, X, target_class, bs)
        fetch = self._ops.saliency if multiply_with_input else self._ops.grad
        return unbatch(run.gradients(fetch, X, targets, "saliency", bs), single)


ADAPTIVE_MEMORY_BYTES = 1 << 30   # gradients the adaptive rule keeps in memory at once
ADAPTIVE_MAX_BYTES = 1 << 33      # the most it may keep for one input (it keeps them all)
IG_BASELINES = ("black", "white", "random")


class IntegratedGrad(AttributionMethod):
    """Integrated Gradients (Sundararajan, Taly and Yan, ICML 2017, "Axiomatic attribution
    for deep networks") of the pre-softmax score ``f_c``:

        IG_c(x, x_b) = (x - x_b) ⊙ ∫_0^1 ∇f_c(x_b + t (x - x_b)) dt.

    The default rule is the homework's right Riemann sum
    ``(x - x_b) ⊙ (1/N) Σ_{i=1..N} ∇f_c(x_b + (i/N)(x - x_b))``; ``method`` offers
    ``'riemann_left'``, ``'riemann_middle'``, ``'trapezoid'`` (N + 1 gradients),
    ``'gauss_legendre'`` and ``'adaptive'`` (:class:`AdaptiveIG`).

    Call::

        ig = IntegratedGrad(sess, input_tensor, output_tensor, target_class)
        attr = ig(X, 'black', num_steps=50)                  # the homework's
        mean_grad = ig(X, 'black', num_steps=50, multiply_with_input=False)
        attr, info = ig(X, method='adaptive', tol=0.01, return_error=True)

    Args:
        X: inputs ``[N, ...]`` (images ``[N, H, W, 3]``, RGB 0-255) or one input.
        baseline: ``'black'`` (0), ``'white'`` (255), ``'random'`` (Gaussian, mean 0, std
            ``random_std``, drawn once from ``seed`` and shared by every input; with pixel
            values 0-255 the homework's std of 0.1 is a nearly black image), or an array of
            one input's shape (shared) or of ``X``'s shape (one per input).
        batch_size: the most path points one ``sess.run`` sees.
        num_steps: N, the number of steps of a uniform rule (a positive int).
        multiply_with_input: return ``(x - x_b) ⊙ mean gradient`` (True) or the mean
            gradient ``Σ_k w_k ∇f_c(x_k)`` itself (False).
        method: the quadrature rule, one of ``IG_METHODS`` (keyword only, as the rest);
            ``'pair'`` is PAIR saliency's (:func:`quadrature`).
        random_std, seed: the random baseline's std (pixel units) and seed.
        return_error: also return ``info`` (the dict kept as ``self.last_info``); the
            name says what the homework's users look for in it, the completeness error.
        tol, max_gradients, forward_steps, correction: the adaptive rule's settings
            (:class:`AdaptiveIG`).
        target_class: overrides the instance's target for this call.

    Returns:
        float32 of ``X``'s shape (and ``info`` with ``return_error``). ``self.last_info``
        after every call holds, per input (arrays ``[N]``): ``completeness_error``
        ``|Σ IG - (f_c(x) - f_c(x_b))| / |f_c(x) - f_c(x_b)|`` (0 when both are 0, inf when
        only the difference is), ``f_x``, ``f_baseline``, ``gradients`` and ``forwards``
        spent (a forward costs about a third of a gradient), ``targets``; the adaptive rule
        adds ``nodes`` (the path points used), ``uncorrected_error`` and ``error_bound``.

    In the graph: each chunk feeds the inputs it needs, their baselines, the positions
    ``alpha`` and the weights; the graph forms ``x_b + alpha (x - x_b)``, differentiates,
    and sums ``w_k ∇f`` per input, so a chunk fetches one map per input, not one per path
    point. Session calls (uniform rules): ``ceil((N + B) / batch_size)`` forwards (the
    inputs and the B distinct baselines: both end scores and the predicted classes) then
    ``ceil(N·G / batch_size)`` for G gradients per input.

    Measured (EfficientNet-Lite0, the 17 bundled sample photos, predicted class, tol 0.01),
    completeness error median / worst: black baseline, right Riemann 64 steps 9.8% / 27.8%,
    256 steps 1.7% / 7.5%; adaptive with at most 64 gradients 0.36% / 3.1% (38 gradients
    and 33 forwards on average), at most 256: 0.60% / 0.88% (97 gradients, 129 forwards).
    """

    needs_rows = True
    api = "IntegratedGrad(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, baseline="black", batch_size=DEFAULT_BATCH_SIZE, num_steps=50,
                 multiply_with_input=True, *, method="riemann_right", random_std=0.1, seed=0,
                 return_error=False, tol=0.01, max_gradients=256, forward_steps=None,
                 correction=None, target_class=_UNSET, feed_dict=None):
        X, single, run = self._begin(X, feed_dict)
        method = check_choice(method, IG_METHODS, "method")
        bs = check_positive_int(batch_size, "batch_size")
        if method == "adaptive":
            rule = AdaptiveIG(tol, max_gradients, forward_steps, correction)
            most = max(2, ADAPTIVE_MAX_BYTES // X[0].nbytes)
            if rule.max_gradients > most:
                raise ValueError(ADAPTIVE_MEMORY_ERROR.format(
                    most=most, shape=list(X.shape[1:]), actual=rule.max_gradients))
        else:
            num_steps = check_rows_per_input(check_positive_int(num_steps, "num_steps"),
                                             "num_steps", "path points")
        path = self._path(run, X, target_class, baseline, random_std, seed, bs)
        if method == "adaptive":
            mean_grad, info = self._adaptive(path, rule, bs)
        else:
            alpha, weight = quadrature(method, num_steps)
            mean_grad = self._mean_gradients(path, alpha, weight[:, None], bs)[0]
            info = {"gradients": np.full(len(X), len(alpha)),
                    "forwards": np.full(len(X), 2)}
        attr = (path.difference() * mean_grad).astype(np.float32)
        info.update(completeness_error=path.completeness_error(attr), f_x=path.f_x,
                    f_baseline=path.f_baseline, targets=path.targets, method=method)
        self.last_info = info
        out = unbatch(attr if multiply_with_input else mean_grad.astype(np.float32), single)
        return (out, info) if return_error else out

    def _path(self, run, X, target_class, baseline, random_std, seed, bs):
        """The straight paths of a call (:class:`Path`): baselines, targets, end scores."""
        random_std = check_number(random_std, "random_std")
        seed = check_seed(seed)
        baselines = parse_baseline(
            baseline, X, IG_BASELINES,
            make=lambda _: np.random.default_rng(seed).normal(0.0, random_std,
                                                              (1,) + X.shape[1:]))
        spec = self.target_class if target_class is _UNSET else target_class
        targets = check_targets(spec, len(X), self.num_classes)
        return Path(run, X, baselines, targets, bs)

    @staticmethod
    def _mean_gradients(path, alpha, weights, bs, desc="integrated gradients"):
        """``Σ_k weights[k, j] ∇f_c(x_b + alpha_k (x - x_b))`` per input, for every column j.

        ``weights`` ``[K, J]``: the weight of node k in sum j (0: not in it). Returns
        float64 ``[J, N, ...]``. Rows are the (input, node) pairs of a non-zero weight,
        run for a group of inputs at a time (:func:`input_groups`: bounded memory).
        """
        n, k, sums = path.n, len(alpha), weights.shape[1]
        out = np.empty((sums, n) + path.shape, np.float64)
        for group in input_groups(n, k):
            g = len(group)
            local = np.repeat(np.arange(g), k)
            node = np.tile(np.arange(k), g)
            weight = weights[node].astype(np.float32)                           # [R, J]
            into = (np.arange(sums)[None, :] * g + local[:, None]).astype(np.int64)  # [R, J]
            rows = path.points(group[local], alpha[node]).summed(
                into=np.where(weight != 0, into, -1), weight=weight)
            res = path.runner.run_rows(rows, path.bank, ["sums"], bs, desc, n_sums=sums * g)
            out[:, group] = res["sums"].reshape((sums, g) + path.shape)
        return out

    def sweep(self, X, baseline="black", batch_size=DEFAULT_BATCH_SIZE,
              steps=(5, 10, 20, 25, 50, 100, 200), multiply_with_input=True, *,
              random_std=0.1, seed=0, target_class=_UNSET, feed_dict=None):
        """Right-Riemann IG for several step counts from one set of gradients.

        The nodes ``i/N`` of N steps are a subset of those of ``M = max(steps)`` steps
        whenever N divides M, so the M gradients per input are computed once and every
        coarser rule is a weighted sum over a subset of them (the graph sums each rule
        per input): the cost of the finest rule alone.

        Returns:
            ``(maps, info)``: ``maps[N]`` float32 attributions of ``X``'s shape for each N
            (unbatched for one input); ``info`` as ``last_info`` of ``__call__`` except that
            ``completeness_error`` is a dict ``{N: [n]}``.
        """
        X, single, run = self._begin(X, feed_dict)
        bs = check_positive_int(batch_size, "batch_size")
        steps = sorted({check_positive_int(n, "steps") for n in np.atleast_1d(steps)})
        top = check_rows_per_input(steps[-1], "steps", "path points")
        if any(top % n for n in steps):
            raise ValueError(STEPS_DIVIDE_ERROR.format(actual=steps, top=top))
        path = self._path(run, X, target_class, baseline, random_std, seed, bs)
        alpha = np.arange(1, top + 1) / top                       # right-Riemann nodes
        i = np.arange(1, top + 1)
        weights = np.stack([np.where(i % (top // n) == 0, 1.0 / n, 0.0) for n in steps], 1)
        sums = self._mean_gradients(path, alpha, weights, bs)
        maps, err = {}, {}
        for k, n in enumerate(steps):
            attr = (path.difference() * sums[k]).astype(np.float32)
            err[n] = path.completeness_error(attr)
            maps[n] = unbatch(attr if multiply_with_input else sums[k].astype(np.float32),
                              single)
        info = {"completeness_error": err, "f_x": path.f_x, "f_baseline": path.f_baseline,
                "targets": path.targets, "gradients": np.full(len(X), top),
                "forwards": np.full(len(X), 2), "method": "riemann_right"}
        self.last_info = info
        return maps, info

    def path_scores(self, X, baseline="black", batch_size=DEFAULT_BATCH_SIZE, alphas=None,
                    *, random_std=0.1, seed=0, target_class=_UNSET, feed_dict=None):
        """The target score ``f_c(x_b + a (x - x_b))`` along the path, forwards only.

        Args:
            X, baseline, batch_size, random_std, seed, target_class: as for ``__call__``.
            alphas: positions ``[T]`` in [0, 1] (default 101 uniform points).

        Returns:
            float64 ``[N, T]`` (``[T]`` for one input) pre-softmax scores of the target
            (the predicted class at ``x`` when the target is None).
        """
        X, single, run = self._begin(X, feed_dict)
        bs = check_positive_int(batch_size, "batch_size")
        alphas = (np.linspace(0, 1, 101) if alphas is None
                  else as_array(alphas, "alphas").astype(np.float64))
        if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas)):
            raise ValueError(ALPHAS_ERROR.format(actual=np.shape(alphas)))
        check_rows_per_input(len(alphas), "alphas", "path points")
        path = self._path(run, X, target_class, baseline, random_std, seed, bs)
        scores = np.empty((len(X), len(alphas)))
        for group in input_groups(len(X), len(alphas)):
            rows = path.points(np.repeat(group, len(alphas)), np.tile(alphas, len(group)))
            scores[group] = run.run_rows(rows, path.bank, ["score"], bs,
                                         "IG path")["score"].reshape(len(group), -1)
        return unbatch(scores, single)

    def _adaptive(self, path, rule, bs):
        """:class:`AdaptiveIG` over groups of inputs whose gradients fit in memory."""
        n = path.n
        group = max(1, int(ADAPTIVE_MEMORY_BYTES // (rule.max_gradients * path.X[0].nbytes)))
        mean_grad = np.zeros(path.X.shape, np.float64)
        info = {"gradients": np.zeros(n, np.int64), "forwards": np.zeros(n, np.int64),
                "uncorrected_error": np.zeros(n), "error_bound": np.zeros(n),
                "nodes": [None] * n}
        for start in range(0, n, group):
            inputs = np.arange(start, min(n, start + group))
            mean_grad[inputs], part = rule.run(PathFunctions(path, inputs, bs),
                                               path.f_baseline[inputs], path.f_x[inputs])
            for key, values in part.items():
                for i, value in zip(inputs, values):
                    info[key][i] = value
        return mean_grad, info


class VanillaGradient(AttributionMethod):
    """``|∇_x f_c(x)|`` (Simonyan et al. 2014), summed over the channel axis for images.

    ``VanillaGradient(sess, input_tensor, output_tensor, target_class)(X, batch_size=16)``:
    images ``[N, H, W, C]`` give maps ``[N, H, W]`` (the sum is taken in the graph);
    inputs of other ranks keep their shape.
    """

    api = "VanillaGradient(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, batch_size=DEFAULT_BATCH_SIZE, *, target_class=_UNSET,
                 feed_dict=None):
        X, single, run = self._begin(X, feed_dict)
        bs = check_positive_int(batch_size, "batch_size")
        targets = self._targets(run, X, target_class, bs)
        if is_image_batch(X):
            out = run.gradients(self._ops.abs_grad_sum, X, targets, "gradient", bs)
        else:
            out = np.abs(run.gradients(self._ops.grad, X, targets, "gradient", bs))
        return unbatch(out, single)


SMOOTHGRAD_KINDS = ("smoothgrad", "squared", "vargrad")


class SmoothGrad(AttributionMethod):
    """SmoothGrad (Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise"):
    the mean of ``∇f_c(x + ε)`` over ``samples`` draws of ``ε ~ N(0, (sigma·(max - min))²)``,
    with max and min those of each input. ``kind='squared'`` averages the squared gradients
    and ``kind='vargrad'`` gives their variance (Adebayo et al. 2018). With
    ``multiply_with_input`` the result is multiplied by ``x``.

    ``SmoothGrad(sess, input_tensor, output_tensor, target_class)(X, batch_size=16,
    samples=50, sigma=0.15, seed=0)``: float32 of ``X``'s shape. The noise is drawn in the
    graph: sample ``s`` of every input is ``sigma·(max - min)`` times the unit noise
    ``tf.random.stateless_normal`` of the seed ``(seed, s)``, so the result depends only
    on ``seed`` (not on ``batch_size`` or the other inputs of the batch). That unit noise
    is the same for every input, so each sample's is drawn once and fed back to the other
    inputs' rows and to later calls with the same seed (:class:`NoiseCache`, kept up to
    :data:`NOISE_CACHE_BYTES` per graph); the graph sums the gradients per input.
    Session calls: ``ceil(N·samples / batch_size)`` (+ forwards when the target is None).
    """

    needs_rows = True
    api = "SmoothGrad(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, batch_size=DEFAULT_BATCH_SIZE, samples=50, sigma=0.15, seed=0,
                 kind="smoothgrad", multiply_with_input=False, *, target_class=_UNSET,
                 feed_dict=None):
        X, single, run = self._begin(X, feed_dict)
        bs = check_positive_int(batch_size, "batch_size")
        samples = check_rows_per_input(check_positive_int(samples, "samples"), "samples",
                                       "noisy copies")
        sigma = check_number(sigma, "sigma")
        kind = check_choice(kind, SMOOTHGRAD_KINDS, "kind")
        seed = check_seed(seed)
        targets = self._targets(run, X, target_class, bs)
        res = self._sums(run, X, targets, samples, sigma, seed, kind, bs)
        mean = res["sums"]                                             # E[g]
        if kind == "smoothgrad":
            out = mean
        elif kind == "squared":
            out = res["sums_sq"]                                       # E[g²]
        else:
            out = np.maximum(res["sums_sq"] - mean ** 2, 0.0)          # E[g²] - E[g]²
        if multiply_with_input:
            out = out * X
        return unbatch(out.astype(np.float32), single)

    @staticmethod
    def _sums(run, X, targets, samples, sigma, seed, kind, bs):
        """``sums`` = E[g] (and ``sums_sq`` = E[g²]) ``[N, ...]`` over the noisy copies,
        a group of inputs at a time (:func:`input_groups`)."""
        n = len(X)
        flat = X.reshape(n, -1)
        scale = (sigma * (flat.max(axis=1) - flat.min(axis=1))).astype(np.float32)   # [N]
        fetch = ["sums"] if kind == "smoothgrad" else ["sums", "sums_sq"]
        out = {f: np.empty(X.shape, np.float64) for f in fetch}
        for group in input_groups(n, samples):
            inputs = np.repeat(group, samples)
            sample = np.tile(np.arange(samples), len(group))
            rows = Rows.noisy(inputs, scale=scale[inputs],
                              seeds=np.stack([np.full(len(inputs), seed), sample], 1),
                              target=targets[inputs])
            rows.summed(into=inputs - group[0],
                        weight=np.full(len(inputs), 1.0 / samples, np.float32))
            res = run.run_rows(rows, ImageBank(X), fetch, bs, "smoothgrad",
                               n_sums=len(group))
            for f in fetch:
                out[f][group] = res[f]
        return out


class GradCAM(AttributionMethod):
    """Grad-CAM (Selvaraju et al., ICCV 2017): ``ReLU(Σ_k α_k A^k)`` with ``A`` a conv
    layer's activations and ``α_k`` the spatial mean of ``∂f_c / ∂A^k``, upsampled
    bilinearly to the input's height and width.

    ``GradCAM(sess, input_tensor, output_tensor, target_class, internal_layer)``:
    ``internal_layer`` is the conv layer's tensor ``[None, h, w, C]`` (VGG16:
    ``model.conv5_3``; EfficientNet-Lite0: ``model.layers['head']``). Call
    ``(X, batch_size=16)`` with images ``[N, H, W, C]`` -> maps ``[N, H, W]``
    (unnormalised, >= 0). Session calls: ``ceil(N / batch_size)`` (+ forwards when the
    target is None).
    """

    api = "GradCAM(sess, input_tensor, output_tensor, target_class, internal_layer)"

    def __init__(self, sess, input_tensor, output_tensor, target_class=None,
                 internal_layer=None, *, progress=True):
        check_session(sess, self.api)
        if internal_layer is None:
            raise TypeError(LAYER_RANK_ERROR.format(actual="None"))
        check_tensor(internal_layer, "internal_layer", sess, what=GRADCAM_LAYER_HINT)
        if internal_layer.shape.rank != 4:
            raise ValueError(LAYER_RANK_ERROR.format(
                actual=f"{internal_layer.name!r} of shape {internal_layer.shape}"))
        if check_input(input_tensor, sess).shape.rank != 4:
            raise ValueError(NOT_IMAGE_ERROR.format(arg="input_tensor",
                                                    method=type(self).__name__,
                                                    name=input_tensor.name,
                                                    actual=input_tensor.shape))
        self.internal_layer = internal_layer
        super().__init__(sess, input_tensor, output_tensor, target_class, progress=progress)

    def _define_ops(self):
        self._runner.check_layer(self.internal_layer)
        super()._define_ops()
        x, out, layer = self.input_tensor, self.output_tensor, self.internal_layer
        self._cam = cached_ops(x.graph, ("gradcam", x.name, out.name, layer.name),
                               lambda: self._build_cam(x, layer, self._ops.score))

    @staticmethod
    def _build_cam(x, acts, score):
        with tf1.name_scope("hw3_gradcam"):
            d_acts = tf.gradients(score, acts)[0]                       # [N, h, w, k]
            if d_acts is None:
                raise ValueError(LAYER_UNCONNECTED_ERROR.format(arg="internal_layer",
                                                                name=acts.name))
            alpha = tf.reduce_mean(d_acts, axis=[1, 2], keepdims=True)  # [N, 1, 1, k]
            cam = tf.nn.relu(tf.reduce_sum(alpha * acts, axis=-1, keepdims=True))
            return tf.image.resize(cam, tf.shape(x)[1:3], method="bilinear")[..., 0]

    def __call__(self, X, batch_size=DEFAULT_BATCH_SIZE, *, target_class=_UNSET,
                 feed_dict=None):
        X, single, run = self._begin(X, feed_dict)
        bs = check_positive_int(batch_size, "batch_size")
        targets = self._targets(run, X, target_class, bs)
        return unbatch(run.gradients(self._cam, X, targets, "grad-cam", bs), single)


OCCLUSION_BASELINES = ("black", "blur")


class Occlusion(AttributionMethod):
    """Occlusion (Zeiler and Fergus, ECCV 2014): the importance of a square patch is
    ``f_c(x) - f_c(x with the patch replaced by a baseline)``, given to each of its pixels.

    ``Occlusion(sess, input_tensor, output_tensor, target_class)(X, batch_size=16,
    superpixel_size=None, baseline='black')`` with images ``[N, H, W, C]`` (any size, any
    channel count) -> maps ``[N, H, W]``.

    ``superpixel_size``: the patch side, at most H and W; None is the homework's 8 at
    224 x 224, scaled with the image (:func:`scaled_size`: 8 · sqrt(H·W) / 224, so 2 at
    64 x 48). ``stride`` (default ``superpixel_size``): patches start every ``stride``
    pixels and the last row and column of patches is aligned with the image's edge, as in
    PAIR saliency's occlusion, so a size that does not divide the image works (the last
    patches overlap the ones before). Where patches overlap, a pixel's importance is the
    **mean** of theirs (PAIR sums them: its map is ours times the number of windows that
    cover each pixel). ``baseline``: ``'black'`` (0), ``'blur'`` (each image blurred per
    channel by :func:`blurred` with ``blur_sigma`` pixels) or an array of one image's
    shape or of ``X``'s shape. The graph builds each occluded copy from the image, the
    baseline and the patch's corner; only the scores come back. Session calls:
    ``ceil(N / batch_size)`` forwards at the inputs plus ``ceil(N·P / batch_size)`` for the
    P occluded copies per image.
    """

    needs_rows = True
    api = "Occlusion(sess, input_tensor, output_tensor, target_class)"

    def __call__(self, X, batch_size=DEFAULT_BATCH_SIZE, superpixel_size=None, baseline="black",
                 blur_sigma=5.0, stride=None, *, target_class=_UNSET, feed_dict=None,
                 incremental=None):
        X, single, run = self._begin(X, feed_dict)
        bs, size, stride, blur_sigma = self._check(X, batch_size, superpixel_size, stride,
                                                   blur_sigma)
        incremental = None if incremental is None else check_flag(incremental, "incremental")
        baselines = parse_baseline(baseline, X, OCCLUSION_BASELINES,
                                   make=lambda _: blurred(X, blur_sigma))
        bank = ImageBank(X, baselines)
        spec = self.target_class if target_class is _UNSET else target_class
        targets = check_targets(spec, len(X), self.num_classes)       # before any run
        logits = run.logits(X, bs)
        targets = resolve_targets(targets, logits, self.num_classes)
        n, H, W = X.shape[:3]
        f_x = logits[np.arange(n), targets].astype(np.float64)
        corners = np.array([(i, j) for i in patch_starts(H, size, stride)
                            for j in patch_starts(W, size, stride)])             # [P, 2]
        plan = self._incremental(incremental, size, H, W)
        if plan is not None:
            scores = plan.scores(run, X, baselines, corners, targets, bs)
        else:
            images = np.repeat(np.arange(n), len(corners))
            corner = np.tile(np.arange(len(corners)), n)
            rows = Rows.patched(images, baselines=bank.baseline_of(images),
                                corners=corners[corner], size=size, target=targets[images])
            scores = run.run_rows(rows, bank, ["score"], bs, "occlusion")["score"]
        drop = f_x[:, None] - scores.reshape(n, len(corners)).astype(np.float64)  # [N, P]
        total = np.zeros((n, H, W), np.float64)
        cover = np.zeros((H, W))
        for k, (i, j) in enumerate(corners):
            total[:, i:i + size, j:j + size] += drop[:, k, None, None]
            cover[i:i + size, j:j + size] += 1
        return unbatch((total / cover).astype(np.float32), single)

    def _incremental(self, incremental, size, H, W):
        """The incremental ops of patches of ``size`` on ``H x W`` images when the call
        should use them (see ``incremental``), else None."""
        if incremental is False:
            return None
        try:
            from attrkit.methods.incremental import incremental_ops, incremental_plan
        except ImportError:       # the graded file alone, in the course's folder
            return None
        plan = incremental_plan(self.input_tensor, self.output_tensor, size, H, W)
        if not plan.windowed or (incremental is None and not plan.worth_it):
            return None
        return incremental_ops(self.input_tensor, self.output_tensor, size, H, W)

    def _check(self, X, batch_size, superpixel_size, stride, blur_sigma):
        """``(batch_size, size, stride, blur_sigma)`` checked against the images ``X``."""
        if not is_image_batch(X):
            raise ValueError(NOT_IMAGE_ERROR.format(arg="X", method="Occlusion",
                                                    name=self.input_tensor.name,
                                                    actual=list(X.shape)))
        bs = check_positive_int(batch_size, "batch_size")
        H, W = X.shape[1:3]
        size = (scaled_size(8, H, W) if superpixel_size is None
                else check_positive_int(superpixel_size, "superpixel_size"))
        if size > min(H, W):
            raise ValueError(SUPERPIXEL_ERROR.format(arg="superpixel_size", h=H, w=W,
                                                     actual=size))
        stride = size if stride is None else stride
        if not is_int(stride) or not 0 < stride <= size:
            raise ValueError(STRIDE_ERROR.format(arg="stride", size=size, actual=stride))
        return bs, size, stride, check_number(blur_sigma, "blur_sigma")


class RandomAttribution(AttributionMethod):
    """A seeded Gaussian noise map, the random baseline of the metrics.

    ``RandomAttribution(sess, input_tensor, output_tensor, target_class, seed=0)(X)``:
    images ``[N, H, W, C]`` -> ``[N, H, W]`` (one image ``[H, W, C]`` -> ``[H, W]``); other
    inputs -> their shape. It never runs the model; every call with the same seed gives the
    same map for the same shape.
    """

    api = "RandomAttribution(sess, input_tensor, output_tensor, target_class)"

    def __init__(self, sess, input_tensor, output_tensor, target_class=None, *, seed=0,
                 progress=True):
        self.seed = check_seed(seed)
        super().__init__(sess, input_tensor, output_tensor, target_class, progress=progress)

    def _define_ops(self):
        pass   # no op: the map does not look at the model

    def __call__(self, X, batch_size=DEFAULT_BATCH_SIZE, *, target_class=_UNSET,
                 feed_dict=None):
        X, single = as_batch(X, self.input_tensor)      # feed_dict: nothing is run
        check_positive_int(batch_size, "batch_size")
        shape = X.shape[:3] if is_image_batch(X) else X.shape
        out = np.random.default_rng(self.seed).standard_normal(shape).astype(np.float32)
        return unbatch(out, single)


# ------------------------------------------------------------------------ method helpers

IG_METHODS = ("riemann_right", "riemann_left", "riemann_middle", "trapezoid",
              "gauss_legendre", "pair", "adaptive")


def quadrature(method, steps):
    """Nodes ``t`` in [0, 1] and weights ``w`` (summing to 1) of a rule with ``steps`` steps.

    ``riemann_right`` (the homework's, ``t = i/N``, i = 1..N), ``riemann_left`` (i = 0..N-1),
    ``riemann_middle`` (``(i - 1/2)/N``), ``trapezoid`` (N intervals, N + 1 nodes, so N + 1
    gradients), ``gauss_legendre`` (N Gauss-Legendre nodes mapped from [-1, 1] to [0, 1])
    and ``pair`` (PAIR saliency's rule: N nodes ``linspace(0, 1, N)``, both ends included,
    equal weights 1/N; its mean of the path is biased by half a step towards the ends).
    """
    n = steps
    if method == "riemann_right":
        return np.arange(1, n + 1) / n, np.full(n, 1.0 / n)
    if method == "riemann_left":
        return np.arange(n) / n, np.full(n, 1.0 / n)
    if method == "riemann_middle":
        return (np.arange(n) + 0.5) / n, np.full(n, 1.0 / n)
    if method == "trapezoid":
        w = np.full(n + 1, 1.0 / n)
        w[[0, -1]] = 0.5 / n
        return np.arange(n + 1) / n, w
    if method == "gauss_legendre":
        x, w = np.polynomial.legendre.leggauss(n)
        return (x + 1) / 2, w / 2
    if method == "pair":
        return np.linspace(0, 1, n), np.full(n, 1.0 / n)
    raise ValueError(CHOICE_ERROR.format(arg="method", expected=list(IG_METHODS), actual=method))


def relative_error(total, delta):
    """``|total - delta| / |delta|`` per input; 0 when both are 0, inf when only delta is."""
    total, delta = np.asarray(total, np.float64), np.asarray(delta, np.float64)
    num = np.abs(total - delta)
    den = np.abs(delta)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0),
                        np.where(num > 0, np.inf, 0.0))


class Path:
    """The straight paths of one IG call, from each input's baseline to the input: the
    inputs ``X`` ``[N, ...]``, their ``baselines`` (None: black; ``[1, ...]`` shared or
    ``[N, ...]``; a list of such sets for several paths per input, as XRAI's), the
    ``targets`` and the end scores ``f_x`` and ``f_baseline`` (float64 ``[N]``; for a list,
    ``f_baselines[k]`` of set k), from one forward pass over the N inputs and the distinct
    baselines, which also gives the predicted classes when the targets are None."""

    def __init__(self, runner, X, baselines, targets, batch_size):
        self.runner, self.X = runner, X
        self.sets = list(baselines) if isinstance(baselines, list) else [baselines]
        self.n, self.shape = len(X), X.shape[1:]
        self.bank = ImageBank(X, self.sets)
        ends = [self.dense_baselines(k) for k in range(len(self.sets))]   # [1 or N, ...]
        logits = runner.bank_logits(ImageBank(X, ends), self.n + sum(map(len, ends)),
                                    batch_size)
        self.targets = resolve_targets(targets, logits[:self.n], runner.num_classes)
        r, start = np.arange(self.n), self.n
        self.f_x = logits[r, self.targets].astype(np.float64)
        self.f_baselines = []
        for end in ends:
            b = r if len(end) == self.n else np.zeros(self.n, int)
            self.f_baselines.append(logits[start + b, self.targets].astype(np.float64))
            start += len(end)
        self.f_baseline = self.f_baselines[0]

    def points(self, inputs, alpha, which=None):
        """Rows ``x_b + alpha (x - x_b)`` of the (``inputs``, ``alpha``) pairs ``[R]``, on
        the path from the baseline of set ``which`` (``[R]``; None: the first)."""
        inputs = np.asarray(inputs, np.int64)
        if which is None:
            baselines = self.bank.baseline_of(inputs)
        else:
            baselines = np.empty(len(inputs), np.int64)
            for k in np.unique(which):
                baselines[which == k] = self.bank.baseline_of(inputs[which == k], k)
        return Rows.path_points(inputs, baselines=baselines, alpha=alpha,
                                target=self.targets[inputs])

    def dense_baselines(self, which=0):
        """The baselines of set ``which`` as an array ``[1 or N, ...]`` (zeros for black)."""
        if self.sets[which] is None:
            return np.zeros((1,) + self.shape, np.float32)
        return self.sets[which]

    def difference(self, which=0):
        """``x - x_b`` ``[N, ...]``."""
        return self.X - self.dense_baselines(which)

    def completeness_error(self, attr, which=0):
        """``|Σ attr - (f_c(x) - f_c(x_b))| / |f_c(x) - f_c(x_b)|`` per input ``[N]``."""
        total = attr.reshape(self.n, -1).sum(axis=1, dtype=np.float64)
        return relative_error(total, self.f_x - self.f_baselines[which])


class PathFunctions:
    """Some inputs' paths as the functions :class:`AdaptiveIG` asks for: ``scores(i, t)``
    (forwards) and ``gradients(i, t)`` at the rows (local input ``i``, position ``t``)."""

    def __init__(self, path, inputs, batch_size):
        self.path, self.inputs, self.batch_size = path, inputs, batch_size

    def _run(self, local, alpha, fetch, desc):
        rows = self.path.points(self.inputs[np.asarray(local)], alpha)
        return self.path.runner.run_rows(rows, self.path.bank, fetch, self.batch_size, desc)

    def scores(self, local, alpha):
        """``F(t)`` ``[R]`` at the rows, forwards only."""
        return self._run(local, alpha, ["score"], "IG adaptive forwards")["score"]

    def gradients(self, local, alpha):
        """``(∇f [R, ...], F [R], g = ∇f · (x - x_b) [R])`` at the rows."""
        res = self._run(local, alpha, ["grad", "score", "integrand"], "IG adaptive gradients")
        return res["grad"], res["score"], res["integrand"]


HOMEWORK_SIDE = 224   # the homework's image side: sizes it fixes scale from 224 x 224


def scaled_size(at_224, height, width):
    """A length the homework fixes for 224 x 224 images (a patch or superpixel side), for
    an H x W image: ``at_224 · sqrt(H·W) / 224`` (the side of a square of the image's
    area), rounded half up, at least 1. Exactly ``at_224`` at 224 x 224."""
    return max(1, int(np.floor(at_224 * np.sqrt(height * width) / HOMEWORK_SIDE + 0.5)))


def scaled_count(at_224, height, width):
    """A pixel count the homework fixes for 224 x 224 images (N_Ord's M), for an H x W
    image: proportional to the area, ``at_224 · H·W / 224²``, rounded half up, at least 1.
    Exactly ``at_224`` at 224 x 224."""
    return max(1, int(np.floor(at_224 * height * width / HOMEWORK_SIDE ** 2 + 0.5)))


def patch_starts(length, size, stride):
    """Patch offsets along one axis; the last patch is aligned with the edge."""
    s = list(range(0, length - size + 1, stride))
    return s if s[-1] == length - size else s + [length - size]


def blurred(images, sigma):
    """Images blurred per channel by a Gaussian of ``sigma`` pixels (scipy, reflected
    edges): a batch ``[N, H, W, C]`` image by image, or one image ``[H, W, C]``. The one
    blur of the graded files (Occlusion's and the curves' ``'blur'`` baselines)."""
    from scipy.ndimage import gaussian_filter
    images = np.asarray(images)
    spatial = (sigma, sigma, 0) if images.ndim == 3 else (0, sigma, sigma, 0)
    return gaussian_filter(images, sigma=spatial).astype(np.float32)


# ===================================================================== checks and parsers

# Error messages, kept as data so that tests match the same templates.
SESSION_ERROR = ("sess: expected a tf.compat.v1.Session (the API is {api}), got {actual}")
MODEL_OBJECT_ERROR = ("{arg}: expected a tf.Tensor, got a model object ({actual}); pass "
                      "its {what}")
TENSOR_ERROR = "{arg}: expected a tf.Tensor of the model's graph, got {actual}"
GRAPH_ERROR = ("{arg}: expected a tensor of the session's graph (sess.graph), got {name!r} "
               "from another graph")
EAGER_ERROR = ("{arg}: expected a graph-mode tensor (call "
               "tf.compat.v1.disable_eager_execution() before building the model), got an "
               "eager tensor")
OUTPUT_RANK_ERROR = ("output_tensor: expected pre-softmax scores of shape [None, K], got "
                     "{name!r} of shape {shape}")
INPUT_RANK_ERROR = ("input_tensor: expected a batched input of shape [None, ...], got "
                    "{name!r} of shape {shape}")
INPUT_SHAPE_ERROR = ("{arg}: expected an array of shape [N, {dims}] (a batch) or [{dims}] "
                     "(one input) to fit input_tensor {name!r}, got shape {actual}")
INPUT_DTYPE_ERROR = "{arg}: expected a numeric array, got dtype {actual}"
INPUT_EMPTY_ERROR = "{arg}: expected at least one input, got an empty batch of shape {actual}"
INPUT_FINITE_ERROR = "{arg}: expected finite values, got {count} NaN or inf entries"
INPUT_OVERFLOW_ERROR = ("{arg}: expected values that fit float32 (magnitude below 3.4e38, "
                        "what the model computes in), got {count} finite entries that "
                        "overflow it (largest magnitude {largest:.3g})")
ARRAY_ERROR = ("{arg}: expected numbers or an array, got a {actual} that numpy cannot read "
               "as one ({reason})")
COMPLEX_ERROR = ("{arg}: expected real values, got a complex array (dtype {actual}) whose "
                 "imaginary part would be lost; pass its .real if that part is zero")
SYMBOLIC_ERROR = ("{arg}: expected values (a numpy array), got the graph tensor {name!r}; "
                  "pass the values to feed (e.g. the images, data.X), not a tensor of the "
                  "graph")
INPUT_PLACEHOLDER_ERROR = ("input_tensor: expected the model's input placeholder (the tensor "
                           "the images are fed to), got {name!r}, computed by a {type} op "
                           "from {source}; feeding it would skip the ops before it (the "
                           "preprocessing): pass {hint}")
INPUT_FLOAT_ERROR = ("input_tensor: expected a float placeholder (gradients need one), got "
                     "{name!r} of dtype {dtype}; cast inside the graph after a float "
                     "placeholder")
OUTPUT_FLOAT_ERROR = ("output_tensor: expected float pre-softmax scores, got {name!r} of "
                      "dtype {dtype}")
SESSION_CLOSED_ERROR = ("sess: expected an open session, got one that is closed (sess.close() "
                        "was called, or its with-block ended); the API is {api}")
ROWS_LIMIT_ERROR = ("{arg}: expected at most {limit} {what} per input (2**24: each is a "
                    "model pass and rows of bookkeeping; beyond that a call would not "
                    "finish), got {actual}")
FEED_TYPE_ERROR = ("feed_dict: expected None or a dict from the graph's extra placeholders "
                   "(a dropout rate, is_training) to values, got {actual}")
FEED_KEY_ERROR = ("feed_dict: expected keys that are tensors of the session's graph (or their "
                  "names), got {actual!r}")
FEED_INPUT_ERROR = ("feed_dict: expected the graph's extra placeholders, not input_tensor "
                    "{name!r}: the inputs go in X (the method feeds them in chunks of "
                    "batch_size)")
FEED_INSIDE_ERROR = ("feed_dict: expected the graph's extra placeholders, got {name!r}, which "
                     "is computed from input_tensor; feeding it would replace part of the "
                     "model")
FEED_VALUE_ERROR = ("feed_dict: expected values (numbers or arrays) to feed, got the graph "
                    "tensor {actual!r} for {key!r}")
FEED_MISSING_ERROR = ("feed_dict: expected a value for every placeholder that output_tensor "
                      "reads besides input_tensor, missing {missing} (e.g. feed_dict="
                      "{{graph.get_tensor_by_name({first!r}): value}})")
TARGET_LENGTH_ERROR = ("{arg}: expected one target class per input ({expected} inputs), "
                       "got {actual} targets")
TARGET_RANGE_ERROR = "{arg}: expected class indices in [0, {k}), got {actual}"
TARGET_TYPE_ERROR = ("{arg}: expected an int, a sequence of ints (one per input) or None "
                     "(the predicted class), got {actual!r}")
# Baselines: the methods' messages (names, then array shapes), and the metrics' one message
# for a keyword that also takes a number (hw3_evaluation's Insertion / Deletion).
BASELINE_NAME_ERROR = "{arg}: expected one of {expected} or an array, got {actual!r}"
BASELINE_SHAPE_ERROR = ("{arg}: expected an array of shape {one} (one for every input) or "
                        "{batch} (one per input), got shape {actual}")
BASELINE_ERROR = ("baseline: expected 'black', 'blur', a number or an array of shape "
                  "{expected}, got {actual}")
STEPS_DIVIDE_ERROR = ("steps: expected step counts that each divide the largest ({top}), "
                      "got {actual}")
ALPHAS_ERROR = "alphas: expected a 1-D array of finite path positions, got shape {actual}"
POSITIVE_INT_ERROR = "{arg}: expected a positive int, got {actual!r}"
CHOICE_ERROR = "{arg}: expected one of {expected}, got {actual!r}"
NONNEGATIVE_ERROR = "{arg}: expected a finite number >= 0, got {actual!r}"
POSITIVE_ERROR = "{arg}: expected a finite number > 0, got {actual!r}"
LAYER_RANK_ERROR = ("internal_layer: expected a 4-D conv layer tensor [None, h, w, channels] "
                    "between input_tensor and output_tensor (VGG16: model.conv5_3), got "
                    "{actual}")
LAYER_UNCONNECTED_ERROR = ("{arg}: expected a tensor between input_tensor and output_tensor "
                           "(output_tensor must depend on it, and it on input_tensor), got "
                           "{name!r}")
FRACTION_ERROR = "{arg}: expected a number in [0, 1], got {actual!r}"
FLAG_ERROR = "{arg}: expected True or False, got {actual!r}"
COUNT_ERROR = "{arg}: expected an int >= 0, got {actual!r}"
NOT_IMAGE_ERROR = ("{arg}: expected image inputs [N, H, W, C] for {method}, got "
                   "input_tensor {name!r} of shape {actual}")
SUPERPIXEL_ERROR = ("{arg}: expected a size no larger than the image's height and width "
                    "({h} x {w}), got {actual}")
STRIDE_ERROR = "{arg}: expected a positive int <= superpixel_size ({size}), got {actual!r}"
SEED_ERROR = "{arg}: expected an int in [0, 2**63), got {actual!r}"
CLONE_WARNING = ("could not copy the model's ops to build rows in the graph ({reason}); "
                 "rows are built in the graph, fetched and fed to input_tensor instead "
                 "(same results, two sess.run per chunk)")
MAX_GRADIENTS_ERROR = ("{arg}: expected an int >= 2 (both path ends need a gradient), got "
                       "{actual!r}")
ADAPTIVE_MEMORY_ERROR = ("max_gradients: expected at most {most} for inputs of shape {shape} "
                         "(the adaptive rule keeps every gradient of an input until the end: "
                         "at most 8 GiB), got {actual}")

# What to pass instead of a model object, per argument.
MODEL_HINTS = {
    "input_tensor": "input placeholder, model.imgs",
    "output_tensor": "pre-softmax scores, model.logits (VGG16: model.fc3l)",
    "internal_layer": "layer tensor, e.g. model.fc1 or model.layers['<name>']",
}
GRADCAM_LAYER_HINT = ("conv layer tensor [None, h, w, C], e.g. model.conv5_3 (VGG16) or "
                      "model.layers['head'] (EfficientNet-Lite0)")


def check_session(sess, api="Method(sess, input_tensor, output_tensor, target_class)"):
    """Return ``sess`` if it is a session; say what was passed otherwise."""
    if isinstance(sess, tf1.Session) or (callable(getattr(sess, "run", None))
                                         and isinstance(getattr(sess, "graph", None),
                                                        tf.Graph)):
        check_open(sess, api)
        return sess
    what = type(sess).__name__
    if hasattr(sess, "imgs") or hasattr(sess, "logits"):
        what += " (a model object: pass its tensors, e.g. model.imgs and model.logits)"
    raise TypeError(SESSION_ERROR.format(api=api, actual=what))


def check_open(sess, api="Method(sess, input_tensor, output_tensor, target_class)"):
    """Raise unless ``sess`` is open. A ``tf.compat.v1.Session`` says so itself; a wrapper
    is found closed at its first ``sess.run`` (:meth:`ModelRunner.run`)."""
    if getattr(sess, "_closed", False) is True:
        raise ValueError(SESSION_CLOSED_ERROR.format(api=api))


def check_tensor(t, arg, sess, what=None):
    """Return ``t`` if it is a graph tensor of ``sess.graph``, else raise naming ``arg``."""
    if not isinstance(t, tf.Tensor):
        if any(hasattr(t, a) for a in ("imgs", "logits", "layers", "fc3l")):
            raise TypeError(MODEL_OBJECT_ERROR.format(arg=arg, actual=type(t).__name__,
                                                      what=what or MODEL_HINTS.get(arg, "")))
        raise TypeError(TENSOR_ERROR.format(arg=arg, actual=type(t).__name__))
    if not hasattr(t, "graph") or not hasattr(t, "op"):
        raise TypeError(EAGER_ERROR.format(arg=arg))
    if t.graph is not sess.graph:
        raise ValueError(GRAPH_ERROR.format(arg=arg, name=t.name))
    return t


def check_output(t, sess):
    """``output_tensor`` checked: a graph tensor ``[None, K]``; returns K (None if unknown)."""
    check_tensor(t, "output_tensor", sess)
    if t.shape.rank != 2:
        raise ValueError(OUTPUT_RANK_ERROR.format(name=t.name, shape=t.shape))
    if not t.dtype.is_floating:
        raise TypeError(OUTPUT_FLOAT_ERROR.format(name=t.name, dtype=t.dtype.name))
    k = t.shape[-1]
    return None if k is None else int(k)


PLACEHOLDER_OPS = ("Placeholder", "PlaceholderWithDefault")


def check_input(t, sess):
    """``input_tensor`` checked: a float placeholder ``[None, ...]`` of the session's graph
    (a tensor computed from one, such as the preprocessed image, names that one)."""
    check_tensor(t, "input_tensor", sess)
    if t.op.type not in PLACEHOLDER_OPS:
        found = sorted(op.outputs[0].name for op in ancestors([t.op])
                       if op.type in PLACEHOLDER_OPS)
        source = (f"placeholder {found[0]!r}" if len(found) == 1 else
                  f"placeholders {found}" if found else "no placeholder")
        hint = (f"the placeholder {found[0]!r} (model.imgs)" if len(found) == 1
                else "the placeholder the images are fed to (model.imgs)")
        raise ValueError(INPUT_PLACEHOLDER_ERROR.format(name=t.name, type=t.op.type,
                                                        source=source, hint=hint))
    if not t.dtype.is_floating:
        raise TypeError(INPUT_FLOAT_ERROR.format(name=t.name, dtype=t.dtype.name))
    if t.shape.rank is None or t.shape.rank < 2:
        raise ValueError(INPUT_RANK_ERROR.format(name=t.name, shape=t.shape))
    return t


def is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_numeric(arr):
    """True for an array of numbers (or booleans), False for strings and objects."""
    return arr.dtype != object and (np.issubdtype(arr.dtype, np.number)
                                    or arr.dtype == np.bool_)


def check_positive_int(value, arg):
    """Return ``value`` as an int if it is a positive integer, else raise."""
    if not is_int(value):
        raise TypeError(POSITIVE_INT_ERROR.format(arg=arg, actual=value))
    if value <= 0:
        raise ValueError(POSITIVE_INT_ERROR.format(arg=arg, actual=value))
    return int(value)


def check_seed(seed, arg="seed"):
    """A seed both numpy's and TensorFlow's stateless generators take: an int in
    ``[0, 2**63)``."""
    if not is_int(seed):
        raise TypeError(SEED_ERROR.format(arg=arg, actual=seed))
    if not 0 <= seed < 2 ** 63:
        raise ValueError(SEED_ERROR.format(arg=arg, actual=seed))
    return int(seed)


def check_number(value, arg, positive=False):
    """Return ``value`` as a float if it is finite and >= 0 (> 0 with ``positive``)."""
    template = POSITIVE_ERROR if positive else NONNEGATIVE_ERROR
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(template.format(arg=arg, actual=value))
    v = float(value)
    if not np.isfinite(v) or v < 0 or (positive and v == 0):
        raise ValueError(template.format(arg=arg, actual=value))
    return v


def check_fraction(value, arg):
    """``value`` as a float in [0, 1]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(FRACTION_ERROR.format(arg=arg, actual=value))
    if not 0 <= float(value) <= 1:
        raise ValueError(FRACTION_ERROR.format(arg=arg, actual=value))
    return float(value)


def check_flag(value, arg):
    """``value`` if it is a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(FLAG_ERROR.format(arg=arg, actual=value))
    return bool(value)


def check_count(value, arg):
    """``value`` as an int >= 0."""
    if not is_int(value):
        raise TypeError(COUNT_ERROR.format(arg=arg, actual=value))
    if value < 0:
        raise ValueError(COUNT_ERROR.format(arg=arg, actual=value))
    return int(value)


def check_choice(value, choices, arg):
    """Return ``value`` if it is one of ``choices`` (strings), else raise ValueError."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(CHOICE_ERROR.format(arg=arg, expected=list(choices), actual=value))
    return value


def finite_float32(arr, arg):
    """``arr`` as float32, checked finite: NaN and inf are named as such, and so are
    finite values too large for float32 (which the cast would turn into inf)."""
    arr = np.asarray(arr)
    with np.errstate(over="ignore", invalid="ignore"):   # checked just below
        out = arr.astype(np.float32, copy=False)
    bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
    if bad:
        if out is not arr and np.issubdtype(arr.dtype, np.inexact):
            was_finite = np.isfinite(arr)
            overflow = int(np.count_nonzero(was_finite & ~np.isfinite(out)))
            if overflow and overflow == bad:
                raise ValueError(INPUT_OVERFLOW_ERROR.format(
                    arg=arg, count=overflow, largest=float(np.abs(arr[was_finite]).max())))
        raise ValueError(INPUT_FINITE_ERROR.format(arg=arg, count=bad))
    return out


def is_symbolic(value):
    """True for a graph tensor or variable (which has no values until it is run)."""
    return isinstance(value, (tf.Tensor, tf.Variable)) and hasattr(value, "graph")


def as_array(value, arg):
    """``value`` as a numpy array of real numbers (or other non-numeric dtypes, left for
    the caller's dtype check): a graph tensor or a complex array is refused by name."""
    if is_symbolic(value):
        raise TypeError(SYMBOLIC_ERROR.format(arg=arg, name=value.name))
    try:
        arr = np.asarray(value)
    except (NotImplementedError, TypeError, ValueError) as err:   # e.g. a list of tensors
        raise TypeError(ARRAY_ERROR.format(arg=arg, actual=type(value).__name__,
                                           reason=f"{type(err).__name__}: {err}")) from None
    if np.iscomplexobj(arr):
        raise TypeError(COMPLEX_ERROR.format(arg=arg, actual=arr.dtype))
    return arr


def as_batch(X, input_tensor, arg="X"):
    """The one parser of inputs: ``X`` checked against ``input_tensor``, as
    ``(float32 [N, ...], single)``.

    A single input (the shape of one row of ``input_tensor``) is accepted and reported by
    ``single=True`` so that callers can return an unbatched result.
    """
    arr = as_array(X, arg)
    if not is_numeric(arr):
        raise TypeError(INPUT_DTYPE_ERROR.format(arg=arg, actual=arr.dtype))
    shape = tuple(input_tensor.shape.as_list()[1:])

    def fits(s):
        return len(s) == len(shape) and all(e is None or e == a for e, a in zip(shape, s))

    if fits(arr.shape):
        arr, single = arr[None], True
    elif arr.ndim == len(shape) + 1 and fits(arr.shape[1:]):
        single = False
    else:
        dims = ", ".join("?" if d is None else str(d) for d in shape)
        raise ValueError(INPUT_SHAPE_ERROR.format(arg=arg, dims=dims, name=input_tensor.name,
                                                  actual=list(arr.shape)))
    if arr.shape[0] == 0:
        raise ValueError(INPUT_EMPTY_ERROR.format(arg=arg, actual=list(arr.shape)))
    return finite_float32(arr, arg), single


def unbatch(result, single):
    """Drop the batch axis of ``result`` when the caller passed a single input."""
    return result[0] if single else result


def is_image_batch(X):
    """True for ``[N, H, W, C]`` batches (the maps of spatial methods are ``[N, H, W]``)."""
    return X.ndim == 4


# Targets: one parser, in two steps. check_target_spec checks what can be checked before
# the inputs are known (at construction); check_targets makes it one class per input
# (None stays None: the predicted class), and resolve_targets fills in the predictions
# from the logits the caller computed anyway.

def check_target_spec(c, k, arg="target_class"):
    """A target spec checked as far as it can be without the inputs: None, an int in
    ``[0, k)`` or a 1-D sequence of them. Returns None, an int, or an int32 array."""
    if c is None:
        return None
    if isinstance(c, (bool, np.bool_)) or is_symbolic(c):
        raise TypeError(TARGET_TYPE_ERROR.format(arg=arg, actual=c))
    arr = np.asarray(c)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.integer) or arr.ndim > 1:
        raise TypeError(TARGET_TYPE_ERROR.format(arg=arg, actual=c))
    if k is not None:
        out = arr[(arr < 0) | (arr >= k)]
        if out.size:
            raise ValueError(TARGET_RANGE_ERROR.format(arg=arg, k=k,
                                                       actual=sorted(set(out.tolist()))))
    elif np.any(arr < 0):
        raise ValueError(TARGET_RANGE_ERROR.format(arg=arg, k="K", actual=arr[arr < 0]))
    return int(arr) if arr.ndim == 0 else arr.astype(np.int32)


def check_targets(c, n, k, arg="target_class"):
    """Turn a target spec into an int32 array ``[n]``; ``None`` stays ``None``."""
    c = check_target_spec(c, k, arg)
    if c is None:
        return None
    if isinstance(c, int):
        return np.full(n, c, np.int32)
    if len(c) != n:
        raise ValueError(TARGET_LENGTH_ERROR.format(arg=arg, expected=n, actual=len(c)))
    return c


def resolve_targets(targets, logits, k, arg="target_class"):
    """The targets of checked ``targets`` (from :func:`check_targets`) given the inputs'
    ``logits`` ``[N, K]``: the predicted classes for None; checked against the logits'
    K when the output tensor's was unknown (``k`` None)."""
    if targets is None:
        return logits.argmax(axis=1).astype(np.int32)
    if k is None:
        return check_targets(targets, len(logits), logits.shape[1], arg)
    return targets


def parse_baseline(baseline, X, names=("black", "white"), make=None, arg="baseline",
                   numbers=False, error=None):
    """The one parser of baselines: a loose user value as the baseline images of ``X``
    ``[N, ...]``: None for black (all zeros, which the graph makes itself), else float32
    ``[1, ...]`` (shared by every input) or ``[N, ...]`` (one per input).

    Args:
        baseline: a name in ``names`` (``'black'``, ``'white'`` = 255 in pixel units, any
            other name is ``make(name)``), or an array of one input's shape or of ``X``'s
            shape; with ``numbers`` also a number (every pixel) and a ``[1, ...]`` array.
        error: None for the methods' messages (:data:`BASELINE_NAME_ERROR`,
            :data:`BASELINE_SHAPE_ERROR`, :data:`INPUT_FINITE_ERROR`), or one template with
            ``{expected}`` and ``{actual}`` for every failure (the metrics' BASELINE_ERROR).
    """
    if isinstance(baseline, str):
        if baseline not in names:
            if error:
                raise ValueError(error.format(expected=list(X.shape[1:]), actual=repr(baseline)))
            raise ValueError(BASELINE_NAME_ERROR.format(arg=arg, expected=list(names),
                                                        actual=baseline))
        if baseline == "black":
            return None
        if baseline == "white":
            return np.full((1,) + X.shape[1:], 255.0, np.float32)
        return np.asarray(make(baseline), np.float32)
    arr = as_array(baseline, arg)
    if error is None:
        ok = is_numeric(arr)
    else:   # the metrics' keyword: numbers only (no booleans), finite
        ok = (arr.dtype != object and np.issubdtype(arr.dtype, np.number)
              and bool(np.all(np.isfinite(arr))))
    if not ok:
        if error:
            raise ValueError(error.format(expected=f"{list(X.shape[1:])} of finite numbers",
                                          actual=f"{arr.dtype} array of shape "
                                                 f"{list(arr.shape)}"))
        raise TypeError(BASELINE_NAME_ERROR.format(arg=arg, expected=list(names),
                                                   actual=baseline))
    shapes = [X.shape[1:], X.shape] + ([(), (1,) + X.shape[1:]] if numbers else [])
    if arr.shape not in shapes:
        if error:
            raise ValueError(error.format(expected=f"{list(X.shape[1:])} (or "
                                                   f"{list(X.shape)})",
                                          actual=f"shape {list(arr.shape)}"))
        raise ValueError(BASELINE_SHAPE_ERROR.format(arg=arg, one=list(X.shape[1:]),
                                                     batch=list(X.shape),
                                                     actual=list(arr.shape)))
    if arr.ndim == 0:
        return np.full((1,) + X.shape[1:], arr, np.float32)
    return finite_float32(arr[None] if arr.shape == X.shape[1:] else arr, arg)


# ===================================================================== running the model

class ModelRunner:
    """A model in its session: the two tensors, checked, and the one loop that runs work on
    them in chunks of at most ``batch_size`` rows (one ``sess.run`` per chunk, a tqdm bar
    on stderr for long work). Every method holds one (``self._runner``), and so do the
    metrics of ``hw3_evaluation`` and ``hw3_infl.InflDirected``: they are composed with it,
    not derived from it. :meth:`fed` gives the same model with a call's extra feeds.
    """

    def __init__(self, sess, input_tensor, output_tensor, api, progress=True):
        self.sess = check_session(sess, api)
        self.x = check_input(input_tensor, sess)
        self.num_classes = check_output(output_tensor, sess)
        self.out = output_tensor
        self.progress, self.api = progress, api
        self.graph_facts = model_facts(self.x, output_tensor)
        if not self.graph_facts.connected:     # checked before any op is built
            raise ValueError(LAYER_UNCONNECTED_ERROR.format(arg="output_tensor",
                                                            name=output_tensor.name))
        self.extra = {}

    def fed(self, feed_dict):
        """This model for one call: the session checked open and ``feed_dict`` (the user
        graph's extra placeholders, :func:`check_feed_dict`) merged into each of its
        ``sess.run``. Returns a copy (or ``self`` when there is nothing to feed)."""
        check_open(self.sess, self.api)
        extra = check_feed_dict(feed_dict, self)
        if not extra:
            return self
        run = copy.copy(self)
        run.extra = extra
        return run

    def run(self, fetches, feed):
        """One ``sess.run`` of ``fetches`` with ``feed`` and the call's extra feeds."""
        if self.extra:
            feed = {**self.extra, **feed}
        try:
            return self.sess.run(fetches, feed)
        except RuntimeError as err:     # a wrapped session closed since the call began
            if "closed" in str(err).lower():
                raise ValueError(SESSION_CLOSED_ERROR.format(api=self.api)) from err
            raise

    def check_layer(self, layer, arg="internal_layer"):
        """Raise unless ``layer`` lies between the input and the output (found by walking
        the graph: no op is built)."""
        facts = self.graph_facts
        if layer.op not in facts.upstream or layer.op not in facts.downstream:
            raise ValueError(LAYER_UNCONNECTED_ERROR.format(arg=arg, name=layer.name))

    def model_ops(self):
        """The :class:`ModelOps` of the two tensors (built once per graph)."""
        return model_ops(self.x, self.out)

    def row_ops(self):
        """The row engine's :class:`RowOps` of the two tensors (built once per graph)."""
        return row_ops(self.x, self.out)

    # --------------------------------------------------------------------------- the loop
    def slices(self, n_rows, batch_size, desc=None):
        """The chunks of ``range(n_rows)`` as slices, advancing the progress bar."""
        with tqdm(total=n_rows, desc=desc, unit="row", leave=False,
                  disable=(not self.progress) or n_rows <= batch_size) as bar:
            for sl in chunk_slices(n_rows, batch_size):
                yield sl
                bar.update(sl.stop - sl.start)

    def chunks(self, fetches, n_rows, feed, desc, batch_size):
        """Yield ``(slice, values)``: one ``sess.run(fetches, feed(slice))`` per chunk, so
        that callers build a chunk's feeds only when it is needed and memory stays
        bounded."""
        for sl in self.slices(n_rows, batch_size, desc):
            yield sl, self.run(fetches, feed(sl))

    def collect(self, fetch, n_rows, feed, desc, batch_size, dtype=np.float32):
        """``fetch`` for every row, as one array ``[n_rows, ...]``."""
        out = None
        for sl, value in self.chunks(fetch, n_rows, feed, desc, batch_size):
            if out is None:
                out = np.empty((n_rows,) + value.shape[1:], dtype)
            out[sl] = value
        return out

    # ------------------------------------------------------------------- what it runs
    def logits(self, X, batch_size):
        """Pre-softmax scores ``[N, K]`` of a checked batch ``X``."""
        return self.collect(self.out, len(X), lambda s: {self.x: X[s]}, None, batch_size)

    def bank_logits(self, bank, n_rows, batch_size):
        """Logits ``[n_rows, K]`` of the first ``n_rows`` images of an :class:`ImageBank`."""
        return self.collect(self.out, n_rows, lambda s: {
            self.x: bank.take(np.arange(s.start, s.stop))}, "IG ends", batch_size)

    def targets(self, X, spec, batch_size, logits=None):
        """int32 targets ``[N]`` of a checked batch: the spec (:func:`check_targets`), or
        the predictions (from ``logits``, or a forward pass when they are not given)."""
        targets = check_targets(spec, len(X), self.num_classes)
        if targets is None and logits is None:
            logits = self.logits(X, batch_size)
        if logits is None:
            return targets
        return resolve_targets(targets, logits, self.num_classes)

    def gradients(self, fetch, X, targets, desc, batch_size):
        """``fetch`` (a :class:`ModelOps` tensor of the target rows) for every input."""
        ops = self.model_ops()
        return self.collect(fetch, len(X), lambda s: {self.x: X[s], ops.target: targets[s]},
                            desc, batch_size)

    def run_rows(self, rows, bank, fetch, batch_size, desc, n_sums=0):
        """:func:`run_rows` on this model."""
        return run_rows(self, rows, bank, fetch, batch_size, desc, n_sums)


def chunk_slices(total, batch_size):
    """Slices that cover ``range(total)`` in chunks of at most ``batch_size``."""
    return [slice(i, min(i + batch_size, total)) for i in range(0, total, batch_size)]


ROWS_PER_INPUT_LIMIT = 1 << 24   # path points, samples, steps: the most one input may ask
ROWS_PER_GROUP = 1 << 20         # rows a method describes at once (their bookkeeping)


def check_rows_per_input(count, arg, what):
    """``count`` if one input's rows (``what``: 'path points', 'noisy copies', ...) stay
    within :data:`ROWS_PER_INPUT_LIMIT`, else a clear refusal (``num_steps=10**12`` would
    ask numpy for terabytes of row indices)."""
    if count > ROWS_PER_INPUT_LIMIT:
        raise ValueError(ROWS_LIMIT_ERROR.format(arg=arg, limit=ROWS_PER_INPUT_LIMIT,
                                                 what=what, actual=count))
    return count


def input_groups(n, per_input):
    """Consecutive groups of the ``n`` inputs (index arrays) whose rows, ``per_input``
    each, number at most :data:`ROWS_PER_GROUP` (at least one input per group): a method
    describes and runs the rows of one group at a time, so its memory stays bounded
    however many inputs a call has. Almost every call is one group."""
    size = max(1, ROWS_PER_GROUP // max(1, per_input))
    return [np.arange(i, min(i + size, n)) for i in range(0, n, size)]


def ancestors(ops):
    """Every op that ``ops`` read, directly or not (data and control inputs), with them."""
    seen, stack = set(), list(ops)
    while stack:
        op = stack.pop()
        if op not in seen:
            seen.add(op)
            stack.extend(i.op for i in op.inputs)
            stack.extend(op.control_inputs)
    return seen


def descendants(op):
    """Every op computed from ``op``'s outputs, directly or not."""
    seen, stack = set(), [op]
    while stack:
        for t in stack.pop().outputs:
            for c in t.consumers():
                if c not in seen:
                    seen.add(c)
                    stack.append(c)
    return seen


class ModelFacts:
    """What the graph says about a model's two tensors, found by walking its ops once (so
    a check that fails has built nothing): ``upstream`` (the ops the output reads),
    ``downstream`` (the ops computed from the input), ``connected`` (the output reads the
    input) and ``required`` (the names of the placeholders without a default that the
    output reads besides the input: what ``feed_dict`` must feed)."""

    def __init__(self, x, out):
        self.upstream = ancestors([out.op])
        self.downstream = descendants(x.op)
        self.connected = x.op in self.upstream
        self.required = sorted(op.outputs[0].name for op in self.upstream
                               if op.type == "Placeholder" and op is not x.op)


def model_facts(x, out):
    return cached_ops(x.graph, ("facts", x.name, out.name), lambda: ModelFacts(x, out))


def check_feed_dict(feed_dict, runner):
    """``feed_dict`` checked against the model of ``runner``: a dict (None: empty) whose
    keys are tensors of the session's graph (or their names) that are not computed from
    the input (nor are it), whose values are values, and that feeds every placeholder
    the output needs besides the input. Returns it with tensor keys."""
    graph, facts = runner.sess.graph, runner.graph_facts
    if feed_dict is None:
        feed_dict = {}
    if not isinstance(feed_dict, dict):
        raise TypeError(FEED_TYPE_ERROR.format(actual=type(feed_dict).__name__))
    out = {}
    for key, value in feed_dict.items():
        t = key
        if isinstance(key, str):
            try:
                t = graph.get_tensor_by_name(key)
            except (KeyError, ValueError, TypeError):
                raise ValueError(FEED_KEY_ERROR.format(actual=key)) from None
        if not isinstance(t, tf.Tensor) or not hasattr(t, "graph") or t.graph is not graph:
            raise TypeError(FEED_KEY_ERROR.format(actual=key))
        if t.op is runner.x.op:
            raise ValueError(FEED_INPUT_ERROR.format(name=t.name))
        if t.op in facts.downstream:
            raise ValueError(FEED_INSIDE_ERROR.format(name=t.name))
        if is_symbolic(value):
            raise TypeError(FEED_VALUE_ERROR.format(actual=value.name, key=t.name))
        out[t] = value
    missing = [name for name in facts.required if name not in {t.name for t in out}]
    if missing:
        raise ValueError(FEED_MISSING_ERROR.format(missing=missing, first=missing[0]))
    return out


def new_session(graph=None, threads=0, jit=False):
    """A ``tf.compat.v1.Session`` with the toolkit's thread settings.

    ``threads=0`` lets TensorFlow use every core for one op (the fastest for a single
    model on a small machine); inter-op parallelism is kept at 1 because these graphs are
    a chain of large ops. TensorFlow keeps one intra-op thread pool per process, sized by
    the process's first session: a later session's ``threads`` does not change it (run a
    one-thread job in a process of its own, as each actor of ``explain_dataset.py`` is).
    ``jit=True`` sets XLA's ``global_jit_level`` to ``ON_1``; it is off by default because
    it changes numbers, and TensorFlow ignores it on CPU unless
    ``TF_XLA_FLAGS=--tf_xla_cpu_global_jit`` is set (then much slower there: see
    benchmarks/README.md), so ``hw3_vc.py`` does not offer it. It is meant for GPUs.
    """
    config = tf1.ConfigProto(intra_op_parallelism_threads=threads,
                             inter_op_parallelism_threads=1)
    if jit:
        config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
    return tf1.Session(graph=graph, config=config)


_OP_CACHE = weakref.WeakKeyDictionary()   # graph -> {key: ops}


def cached_ops(graph, key, build):
    """``build()`` once per graph and key (a tuple of names); later calls reuse it."""
    per_graph = _OP_CACHE.setdefault(graph, {})
    if key not in per_graph:
        with graph.as_default():
            per_graph[key] = build()
    return per_graph[key]


def input_gradients(graph):
    """The tensors of the toolkit's ops in ``graph`` that are gradients with respect to a
    model's input (a backward pass all the way to the input), for counting passes: every
    cached ops object lists its own in ``input_grads``."""
    return [t for ops in _OP_CACHE.get(graph, {}).values()
            for t in getattr(ops, "input_grads", ())]


class ModelOps:
    """The ops every method shares, built once per (input_tensor, output_tensor).

    ``target`` is fed one class index per row, so one gradient op serves every class:
    ``score[r] = out[r, target[r]]`` and ``grad[r] = d score[r] / d x[r]`` (rows are
    independent, so the gradient of the summed scores is the per-row gradient).
    """

    def __init__(self, x, out):
        with tf1.name_scope("hw3_model_ops"):
            self.target = tf1.placeholder(tf.int32, [None], name="target")
            self.score = tf.gather(out, self.target, axis=1, batch_dims=1)      # [N]
            self.grad = tf.gradients(self.score, x)[0]                           # x's shape
            if self.grad is None:
                raise ValueError(LAYER_UNCONNECTED_ERROR.format(arg="output_tensor",
                                                                name=out.name))
            self.saliency = x * self.grad
            self.pred = tf.argmax(out, axis=1, output_type=tf.int32)
            self.probs = tf.nn.softmax(out)
            self.input_grads = (self.grad,)
            if x.shape.rank == 4:   # |grad| summed over channels: [N, H, W]
                self.abs_grad_sum = tf.reduce_sum(tf.abs(self.grad), axis=-1)


def model_ops(x, out):
    return cached_ops(x.graph, ("model", x.name, out.name), lambda: ModelOps(x, out))


# ======================================================================== the row engine

BLACK = -1                         # the bank index of the all-zero image (the graph makes it)
INT32_MAX = np.iinfo(np.int32).max
NOISE_CACHE_BYTES = 1 << 27        # unit noise kept (per RowOps) to feed back to rows


class Rows:
    """What a method evaluates: one row per variant of an input, as numpy arrays over all
    the rows of a call, built by the constructors below, which say what a row is.

    A row is composed in the graph from two images of an :class:`ImageBank`, ``front``
    over ``back`` (bank indices; :data:`BLACK` is the all-zero image):
    ``back + alpha (front - back)`` on the pixels it selects and ``back`` elsewhere, plus
    ``noise_scale`` times unit Gaussian noise drawn from its ``noise_seed``; ``front`` is
    first multiplied by the row's ``front_scale`` (an all-ones image times it is a
    constant image). A row selects the pixels inside its ``patch`` (top, left, height,
    width) and whose rank lies in ``[rank_start, rank_stop)`` in the rank map of input
    ``ranked_by``; every pixel when it has neither. A rank map ``[H, W, C]`` ranks each
    channel value on its own, and the row then selects values rather than pixels. An
    image row may be blurred by a Gaussian of ``sigma`` pixels (before the selection and
    the noise). An image row may also weigh each pixel: ``back + m ⊙
    (row - back)`` (after the selection, before the noise; ``m = 1`` keeps the row exactly,
    ``m = 0`` gives ``back`` exactly), with ``m`` ``[H, W]`` built in the graph from a few
    numbers per row: its ``segment_on`` ``[S]`` read through the label map of input
    ``ranked_by`` (the bank's ``ranks``: ``m = segment_on[label]``, a coalition of segments;
    ``[S, C]`` gives each segment a weight per channel, ``m`` ``[H, W, C]``),
    and/or a RISE grid, ``grid_cells`` x ``grid_cells`` cells kept with probability
    ``grid_keep``, drawn from the row's ``grid_seed`` (a pair), upsampled bilinearly and
    cropped at its ``grid_shift`` (:func:`grid_weights`). ``target`` is the class whose
    score, probability and gradient it gives; :meth:`summed` adds its gradient (or its
    weights ``m``, and ``m`` times its score), weighted, into per-input sums.
    A row's *velocity* is the derivative of the row along its path: ``front - back`` on a
    straight path, ``∂ blur / ∂ sigma`` (a finite difference of ``sigma_step``) on a blur
    path.
    """

    def __init__(self, front, back, target, *, alpha=None, patch=None, ranked_by=None,
                 rank_start=None, rank_stop=None, noise_scale=None, noise_seed=None,
                 sigma=None, sigma_step=None, segment_on=None, grid_seed=None,
                 grid_shift=None, grid_cells=None, grid_keep=None, front_scale=None):
        self.target = np.asarray(target, np.int32)
        self.n = n = len(self.target)
        self.front = np.broadcast_to(np.asarray(front, np.int64), (n,))
        self.back = np.broadcast_to(np.asarray(back, np.int64), (n,))
        self.alpha = _per_row(alpha, np.float32, n)
        self.front_scale = _per_row(front_scale, np.float32, n)
        self.patch = None if patch is None else np.asarray(patch, np.int32)
        self.ranked_by = None if ranked_by is None else np.asarray(ranked_by, np.int64)
        self.rank_start = _per_row(rank_start, np.int32, n)
        self.rank_stop = _per_row(rank_stop, np.int32, n)
        self.noise_scale = _per_row(noise_scale, np.float32, n)
        self.noise_seed = None if noise_seed is None else np.asarray(noise_seed, np.int64)
        self.sigma = _per_row(sigma, np.float32, n)
        self.sigma_step = _per_row(sigma_step, np.float32, n)
        self.segment_on = (None if segment_on is None               # [R, S] or [R, S, C]
                           else np.asarray(segment_on))
        self.grid_seed = None if grid_seed is None else np.asarray(grid_seed, np.int64)
        self.grid_shift = None if grid_shift is None else np.asarray(grid_shift, np.int32)
        self.grid_cells, self.grid_keep = grid_cells, grid_keep        # one per call
        self.sum_into = self.sum_weight = None

    @classmethod
    def path_points(cls, inputs, baselines, alpha, target):
        """``baseline + alpha (input - baseline)``: the point at ``alpha`` on the straight
        path from each baseline to its input (``alpha = 1`` is the input exactly)."""
        return cls(front=inputs, back=baselines, target=target, alpha=alpha)

    @classmethod
    def noisy(cls, images, scale, seeds, target):
        """``image + scale · ε``: ``ε`` is ``tf.random.stateless_normal`` of the row's seed
        ``seeds[r]`` (a pair), so rows with the same seed get the same ``ε``."""
        return cls(front=images, back=images, target=target, noise_scale=scale,
                   noise_seed=seeds)

    @classmethod
    def patched(cls, images, baselines, corners, size, target):
        """Each image with the ``size`` x ``size`` patch at ``corners`` ``[R, 2]`` (top,
        left) replaced by its baseline."""
        patch = np.concatenate([corners, np.full((len(corners), 2), size)], 1)
        return cls(front=baselines, back=images, target=target, patch=patch)

    @classmethod
    def blurred(cls, images, sigma, step, target):
        """Each image blurred by a Gaussian of ``sigma`` pixels (:func:`gaussian_blur`: zeros
        beyond the edges), a point on Blur IG's path; its velocity is the finite difference
        ``(blur(σ + step) - blur(σ)) / step``."""
        return cls(front=images, back=images, target=target, sigma=sigma, sigma_step=step)

    @classmethod
    def ranked(cls, take, rest, ranked_by, stop, target, start=0):
        """The pixels ranked in ``[start, stop)`` in the rank map of input ``ranked_by``
        (:class:`ImageBank`'s ``ranks``) from image ``take``, the others from ``rest``."""
        return cls(front=take, back=rest, target=target, ranked_by=ranked_by,
                   rank_start=start, rank_stop=stop)

    @classmethod
    def filled(cls, images, ones, fill, ranked_by, stop, target, start=0):
        """Each image with the values ranked in ``[start, stop)`` in the rank map of input
        ``ranked_by`` set to the constant ``fill`` (per row): ``ones`` is the bank index of
        an all-ones image, scaled by ``fill``; the other values are the image's."""
        return cls(front=ones, back=images, target=target, ranked_by=ranked_by,
                   rank_start=start, rank_stop=stop, front_scale=fill)

    @classmethod
    def coalitions(cls, images, baselines, on, target):
        """Each image with the segments ``s`` of ``on[r, s] = 1`` kept and those of
        ``on[r, s] = 0`` from its baseline (a fraction blends them): ``on`` ``[R, S]``,
        the segments the labels ``0..S-1`` of the image's label map (the bank's
        ``ranks``); ``on`` ``[R, S, C]`` keeps or hides each channel of a segment on its
        own (``on[r, s, c]``)."""
        return cls(front=images, back=baselines, target=target, ranked_by=images,
                   segment_on=on)

    @classmethod
    def gridded(cls, images, baselines, seeds, shifts, cells, keep, target):
        """RISE's masked copies ``baseline + m ⊙ (image - baseline)``: ``m`` a random
        ``cells`` x ``cells`` grid (each cell kept with probability ``keep``) drawn from
        the row's seed ``seeds[r]`` (a pair), upsampled bilinearly and cropped at the row's
        ``shifts[r]`` (top, left) (:func:`grid_weights`)."""
        return cls(front=images, back=baselines, target=target, grid_seed=seeds,
                   grid_shift=shifts, grid_cells=int(cells), grid_keep=float(keep))

    def summed(self, into, weight):
        """Add each row's gradient times ``weight`` into the sums ``into`` (``[R]``, or
        ``[R, J]`` for J sums per row; -1: none): fetch ``sums`` (and ``sums_sq``, the
        weighted squares, or ``path_sums``, the weighted gradient ⊙ velocity; or, for rows
        that weigh their pixels, ``weight_sums`` and ``score_weight_sums``: the weighted
        ``m`` and ``score · m``, ``[H, W]`` each). Returns the rows."""
        self.sum_into, self.sum_weight = np.asarray(into), np.asarray(weight, np.float32)
        return self


def _per_row(value, dtype, n):
    """``value`` (None, a number or ``[n]`` values) as an array ``[n]``, or None."""
    return None if value is None else np.broadcast_to(np.asarray(value, dtype), (n,))


class ImageBank:
    """The images a call's rows are built from, addressed by one index: the inputs ``X``
    ``[N, ...]``, then their ``baselines`` (one shared ``[1, ...]`` or one per input
    ``[N, ...]``; None: black, which the graph makes; a list of such sets for several
    baselines per input, as XRAI's), and the inputs' pixel ``ranks`` (int32 ``[N, H, W]``:
    ranks for :meth:`Rows.ranked`, or segment labels for :meth:`Rows.coalitions`; ``[N, H,
    W, C]`` ranks each channel value; any object that returns such maps when indexed by an
    array of input indices, e.g. maps made per chunk)."""

    def __init__(self, inputs, baselines=None, ranks=None):
        sets = list(baselines) if isinstance(baselines, (list, tuple)) else [baselines]
        self.arrays = [inputs] + [b for b in sets if b is not None]
        self.offsets = np.cumsum([0] + [len(a) for a in self.arrays])
        starts = iter(self.offsets[1:-1])
        self.set_start = [None if b is None else int(next(starts)) for b in sets]
        self.n_inputs, self.shape = len(inputs), inputs.shape[1:]
        self.baseline_sets, self.ranks = sets, ranks

    def baseline_of(self, inputs, which=0):
        """Bank indices of the baselines of ``inputs`` in set ``which``: BLACK, the shared
        one, or each its own."""
        inputs = np.asarray(inputs, np.int64)
        baselines, start = self.baseline_sets[which], self.set_start[which]
        if baselines is None:
            return np.full(len(inputs), BLACK, np.int64)
        if len(baselines) == 1:
            return np.full(len(inputs), start, np.int64)
        return start + inputs

    def take(self, idx):
        """The images ``idx`` (sorted, unique) as one float32 array; a view, not a copy,
        when they are consecutive rows of one float32 array."""
        which = np.searchsorted(self.offsets, idx, side="right") - 1
        if len(idx) and which[0] == which[-1] and idx[-1] - idx[0] == len(idx) - 1:
            arr = self.arrays[which[0]]
            if arr.dtype == np.float32:
                start = idx[0] - self.offsets[which[0]]
                return arr[start:start + len(idx)]
        out = np.empty((len(idx),) + self.shape, np.float32)
        for k, arr in enumerate(self.arrays):
            sel = which == k
            if sel.any():
                out[sel] = arr[idx[sel] - self.offsets[k]]
        return out


SUM_FETCHES = ("sums", "sums_sq", "path_sums", "weight_sums", "score_weight_sums")
PIXEL_FETCHES = ("weights", "weight_sums", "score_weight_sums")   # [..., H, W]: no channel


def run_rows(runner, rows, bank, fetch, batch_size, desc, n_sums=0):
    """Evaluate :class:`Rows` in chunks of at most ``batch_size``: one ``sess.run`` per
    chunk (two in the fallback 'feed' mode).

    ``fetch``: names of per-row fetches of :class:`RowOps` (``score``, ``prob``,
    ``logits``, ``grad``, ``integrand``, ``weights``) and of sums (``sums``, ``sums_sq``,
    ``path_sums``, ``weight_sums``, ``score_weight_sums``: what the rows'
    :meth:`Rows.summed` adds up). Returns a dict: per-row arrays ``[R, ...]`` and float64
    sums ``[n_sums, ...]``.
    """
    ops = runner.row_ops()
    per_row = [f for f in fetch if f not in SUM_FETCHES]
    summed = [f for f in fetch if f in SUM_FETCHES]
    out = {f: np.zeros((n_sums,) + (bank.shape[:2] if f in PIXEL_FETCHES else bank.shape),
                       np.float64) for f in summed}
    noise = (None if rows.noise_seed is None
             else NoiseCache(rows.noise_seed, ops.noise_store(bank.shape)))
    fetches = [getattr(ops, f) for f in per_row + summed]
    for sl in runner.slices(rows.n, batch_size, desc):
        feed, sums = _chunk_feed(ops, rows, bank, sl, noise)
        values = _run_chunk(runner, ops, fetches, feed, noise)
        for f, v in zip(per_row, values):
            if f not in out:
                out[f] = np.empty((rows.n,) + v.shape[1:], v.dtype)
            out[f][sl] = v
        for f, v in zip(summed, values[len(per_row):]):
            out[f][sums] += v
    for f in per_row:         # no rows at all (e.g. N_Ord with nothing to remove)
        if f not in out:
            out[f] = np.zeros((0,) + {"grad": tuple(bank.shape), "weights": bank.shape[:2],
                                      "logits": (runner.num_classes or 0,)}.get(f, ()),
                              np.float32)
    return out


def _chunk_feed(ops, rows, bank, sl, noise):
    """The feed dict of the rows ``sl`` and the ids of the sums its reduction adds to.

    The chunk feeds only the images it uses (its own small bank, re-indexed), the rank maps
    its rows read, and the per-row numbers its rows set (the others keep their defaults).
    """
    front, back = rows.front[sl], rows.back[sl]
    used = np.unique(np.concatenate([front, back]))
    used = used[used >= 0]

    def local(a):
        return np.where(a < 0, -1, np.searchsorted(used, a)).astype(np.int32)

    images = bank.take(used) if len(used) else np.zeros((1,) + bank.shape, np.float32)
    feed = {ops.images: images, ops.front: local(front), ops.back: local(back),
            ops.target: rows.target[sl]}
    for name in ("alpha", "front_scale", "patch", "noise_scale", "rank_start", "rank_stop",
                 "sigma", "sigma_step"):
        if getattr(rows, name) is not None:
            feed[getattr(ops, name)] = getattr(rows, name)[sl]
    if rows.ranked_by is not None:
        maps = np.unique(rows.ranked_by[sl])
        ranks = np.asarray(bank.ranks[maps])
        feed[ops.rank_maps] = ranks[..., None] if ranks.ndim == 3 else ranks   # [r, H, W, K]
        feed[ops.ranked_by] = np.searchsorted(maps, rows.ranked_by[sl]).astype(np.int32)
    if rows.segment_on is not None:
        on = rows.segment_on[sl]
        feed[ops.segment_on] = (on[..., None] if on.ndim == 2 else on).astype(np.float32)
    if rows.grid_seed is not None:
        feed.update({ops.grid_seed: rows.grid_seed[sl], ops.grid_shift: rows.grid_shift[sl],
                     ops.grid_cells: rows.grid_cells, ops.grid_keep: rows.grid_keep})
    if noise is not None:
        feed.update(noise.feed(ops, sl))
    sums = None
    if rows.sum_into is not None:
        feed[ops.sum_weights], sums = sum_weights(rows.sum_into[sl], rows.sum_weight[sl])
    return feed, sums


def sum_weights(into, weight):
    """A chunk's reduction matrix ``[R, K]`` (row r adds ``weight`` times its gradient
    into the sums ``into``, -1: none) and the ids of its K sums."""
    if into.ndim == 1:
        into, weight = into[:, None], weight[:, None]
    valid = into >= 0
    ids = np.unique(into[valid])
    matrix = np.zeros((len(into), len(ids)), np.float32)
    row = np.broadcast_to(np.arange(len(into))[:, None], into.shape)
    np.add.at(matrix, (row[valid], np.searchsorted(ids, into[valid])), weight[valid])
    return matrix, ids


def _run_chunk(runner, ops, fetches, feed, noise):
    """One chunk's values: one ``sess.run``, or in 'feed' mode two (build the rows, then
    feed them to the model). The noise the chunk draws comes back too, to be kept."""
    keep = noise is not None       # the drawn noise is always fetched (one set of fetches)
    side = [ops.drawn_noise] if keep else []
    if ops.mode == "feed":
        built = runner.run([ops.rows] + side, feed)
        feed[runner.x] = built[0]
        values, side_values = runner.run(fetches, feed), built[1:]
    else:
        both = runner.run(fetches + side, feed)
        values, side_values = both[:len(fetches)], both[len(fetches):]
    if keep:
        noise.keep(side_values[0])
    return values


class NoiseStore:
    """Unit noise kept between calls, for one image shape and dtype: seed pair -> a slot of
    one contiguous array of at most :data:`NOISE_CACHE_BYTES` (a later call with the same
    seeds, as every SmoothGrad call with the default ``seed=0`` is, feeds it back instead of
    drawing it again; values are the same as drawing it)."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.room = NOISE_CACHE_BYTES // (self.dtype.itemsize * max(1, int(np.prod(shape))))
        self.array, self.slot_of = None, {}

    def slots(self, seeds):
        """The slot of each seed pair ``[K, 2]`` (-1: not kept)."""
        return np.array([self.slot_of.get((int(a), int(b)), -1) for a, b in seeds], np.int64)

    def add(self, seeds, noise):
        """Keep ``noise`` ``[k, ...]`` of the seed pairs ``seeds`` while there is room;
        returns the slots given (-1 where none was left)."""
        out = np.full(len(seeds), -1, np.int64)
        first = len(self.slot_of)
        take = min(len(seeds), self.room - first)
        if take <= 0:
            return out
        if self.array is None:
            self.array = np.empty((self.room,) + self.shape, self.dtype)
        self.array[first:first + take] = noise[:take]
        for j in range(take):
            self.slot_of[(int(seeds[j][0]), int(seeds[j][1]))] = out[j] = first + j
        return out


class NoiseCache:
    """The unit noise of one call's rows, drawn once per seed: a seed's noise drawn in one
    chunk is fetched, kept in the :class:`NoiseStore` and fed back to later rows of the same
    seed, in this call and in later ones (SmoothGrad: sample s of every input uses the seed
    ``(seed, s)``, so each sample's noise is drawn once, not once per input and call). Values
    are the same as drawing it again; seeds beyond the store's room are drawn again.
    """

    def __init__(self, seeds, store):
        self.seeds, key = np.unique(seeds, axis=0, return_inverse=True)       # [K, 2]
        self.key_of_row = key.reshape(-1)
        self.store = store
        self.slot = store.slots(self.seeds)                # where a seed's noise is kept
        self.pending = None

    def feed(self, ops, sl):
        """The noise feeds of the rows ``sl``: the seeds to draw, the kept noise to feed,
        and each row's entry in the two (the fed ones first)."""
        distinct, local = np.unique(self.key_of_row[sl], return_inverse=True)
        kept = self.slot[distinct] >= 0
        fed, new = distinct[kept], distinct[~kept]
        entry = np.empty(len(distinct), np.int64)
        entry[kept] = np.arange(len(fed))
        entry[~kept] = len(fed) + np.arange(len(new))
        self.pending = new
        out = {ops.noise_seeds: self.seeds[new], ops.noise_of: entry[local].astype(np.int32)}
        if len(fed):
            slots = self.slot[fed]
            consecutive = np.all(np.diff(slots) == 1)
            out[ops.noise_fed] = (self.store.array[slots[0]:slots[-1] + 1] if consecutive
                                  else self.store.array[slots])
        else:   # fed all the same: every chunk of every call runs with one set of feeds
            out[ops.noise_fed] = np.zeros((0,) + self.store.shape, self.store.dtype)
        return out

    def keep(self, drawn):
        """Keep the noise ``drawn`` ``[S, ...]`` for the chunk's new seeds, while room."""
        if len(self.pending):
            self.slot[self.pending] = self.store.add(self.seeds[self.pending], drawn)
        self.pending = None


class RowOps:
    """The row engine's graph, built once per (input_tensor, output_tensor): rows composed
    from a few fed images and per-row numbers, run through a copy of the model, and
    reduced per input.

    Feeds (filled by :func:`run_rows` from :class:`Rows`; those not fed keep a default
    that changes nothing): ``images`` ``[m, ...]`` (the chunk's bank), per row ``front``,
    ``back`` (indices into it, -1 black), ``target``, ``alpha``, ``front_scale``,
    ``noise_scale``,
    ``noise_of`` (with ``noise_seeds`` ``[S, 2]`` to draw and ``noise_fed`` ``[F, ...]``);
    for images also ``sigma``, ``sigma_step``, ``patch`` ``[R, 4]``, ``ranked_by``,
    ``rank_start``, ``rank_stop`` (with ``rank_maps`` ``[r, H, W, K]``, K = 1 or C),
    ``segment_on``
    ``[R, S, K]`` (read through the same maps, as segment labels; K = 1, or one weight per
    channel), ``grid_seed`` and
    ``grid_shift`` ``[R, 2]`` (with the scalars ``grid_cells`` and ``grid_keep``);
    ``sum_weights`` ``[R, K]``.

    The stages, one function each and each run only on the chunks it changes (a tf.cond
    per chunk): :func:`interpolate`, :func:`blur`, :func:`mask` (of a :func:`rank_window`
    and a :func:`patch_window`), :func:`weigh` (of :func:`segment_weights` and
    :func:`grid_weights`), :func:`add_noise`; then the model, and :func:`weighted_sums`.

    Fetches: ``score`` (pre-softmax ``f_target``), ``prob``, ``logits``, ``grad``,
    ``integrand`` (``grad · (front - back)``), ``weights`` (``m`` ``[H, W]``, its channel
    mean for per-channel weights; ones for rows that weigh nothing) per row; ``sums``,
    ``sums_sq``, ``path_sums`` (:func:`path_velocity`) ``[K, ...]``, ``weight_sums``,
    ``score_weight_sums`` ``[K, H, W]``; ``drawn_noise`` ``[S, ...]``; ``rows``. The
    model is copied (:func:`clone_subgraph`) so that its input is the built rows; if a
    graph cannot be copied, ``mode`` is ``'feed'``: the rows are fetched and fed to
    ``input_tensor`` (two ``sess.run`` per chunk, the same results).
    """

    def __init__(self, x, out):
        shape = x.shape.as_list()
        self.image = len(shape) == 4
        with tf1.name_scope("hw3_rows"):
            self._feeds(x.dtype, shape)
            self.rows = self._compose(x.dtype)
            self._model(x, out)
            flat = tf.reshape(self.grad, [self.n_rows, -1])                    # [R, D]
            self.sums, self.sums_sq = weighted_sums(flat, self.sum_weights,
                                                    tf.shape(self.images)[1:])
            along = flat * tf.reshape(self.velocity, [self.n_rows, -1])          # [R, D]
            self.path_sums = weighted_sums(along, self.sum_weights,
                                           tf.shape(self.images)[1:])[0]
            self.integrand = tf.reduce_sum(flat * tf.reshape(self.direction,
                                                             [self.n_rows, -1]), 1)
            if self.image:
                self._weight_sums()

    def _weight_sums(self):
        """``weights`` ``[R, H, W]`` (``m``, or its mean over the channels where it has
        one per channel; ones where a row weighs nothing) and their weighted sums ``[K, H,
        W]``: ``weight_sums`` of ``m``, ``score_weight_sums`` of ``score · m``."""
        some, pixel = self.pixel_weights
        shape = tf.shape(self.images)[1:3]
        self.weights = tf.cond(some, lambda: tf.reduce_mean(pixel(), -1),
                               lambda: tf.ones(tf.concat([[self.n_rows], shape], 0)))
        flat = tf.reshape(self.weights, [self.n_rows, -1])                     # [R, H·W]
        scored = flat * tf.cast(self.score, tf.float32)[:, None]
        self.weight_sums, self.score_weight_sums = (
            tf.reshape(tf.matmul(self.sum_weights, m, transpose_a=True),
                       tf.concat([[-1], shape], 0)) for m in (flat, scored))

    def _feeds(self, dtype, shape):
        placeholder, default = tf1.placeholder, tf1.placeholder_with_default
        self.images = placeholder(dtype, [None] + shape[1:], name="images")
        self.front = placeholder(tf.int32, [None], name="front")
        self.back = placeholder(tf.int32, [None], name="back")
        self.target = placeholder(tf.int32, [None], name="target")
        self.sum_weights = placeholder(tf.float32, [None, None], name="sum_weights")
        self.n_rows = n_rows = tf.shape(self.front)[0]
        one = tf.shape(self.images)[1:]                                  # one image's shape
        self.alpha = default(tf.ones([n_rows]), [None], name="alpha")
        self.front_scale = default(tf.ones([n_rows]), [None], name="front_scale")
        self.noise_scale = default(tf.zeros([n_rows]), [None], name="noise_scale")
        self.noise_seeds = default(tf.zeros([0, 2], tf.int64), [None, 2], name="noise_seeds")
        self.noise_fed = default(tf.zeros(tf.concat([[0], one], 0), dtype),
                                 [None] + shape[1:], name="noise_fed")
        self.noise_of = default(tf.range(n_rows), [None], name="noise_of")
        if self.image:
            zeros = tf.zeros([n_rows], tf.int32)
            self.rank_maps = default(tf.zeros(tf.concat([[1], one[:2], [1]], 0), tf.int32),
                                     [None] + shape[1:3] + [None], name="rank_maps")
            self.ranked_by = default(zeros, [None], name="ranked_by")
            self.rank_start = default(zeros, [None], name="rank_start")
            self.rank_stop = default(tf.fill([n_rows], INT32_MAX), [None], name="rank_stop")
            self.patch = default(tf.zeros([n_rows, 4], tf.int32), [None, 4], name="patch")
            self.sigma = default(tf.zeros([n_rows]), [None], name="sigma")
            self.sigma_step = default(tf.zeros([n_rows]), [None], name="sigma_step")
            self.segment_on = default(tf.zeros([n_rows, 0, 1]), [None, None, None],
                                      name="segment_on")
            self.grid_seed = default(tf.zeros([0, 2], tf.int64), [None, 2], name="grid_seed")
            self.grid_shift = default(tf.zeros([n_rows, 2], tf.int32), [None, 2],
                                      name="grid_shift")
            self.grid_cells = default(tf.constant(1), [], name="grid_cells")
            self.grid_keep = default(tf.constant(0.5), [], name="grid_keep")

    def _compose(self, dtype):
        """The rows ``[R, ...]``: front over back, stage by stage."""
        m = tf.shape(self.images)[0]
        bank = tf.concat([self.images, tf.zeros_like(self.images[:1])], 0)   # m: black
        front = scaled(tf.gather(bank, tf.where(self.front < 0, m, self.front)),
                       self.front_scale)                                      # [R, ...]
        back_index = tf.where(self.back < 0, m, self.back)

        def back():   # gathered inside the stages that need it, so that only they pay
            return tf.gather(bank, back_index)

        self.direction = front - back()            # x - x_b on a path, for the integrand
        rows = interpolate(front, back, self.alpha)
        self.velocity = self.direction
        if self.image:
            rows = blur(rows, self.sigma)
            self.velocity = path_velocity(self.direction, front, self.sigma, self.sigma_step)
            height, width = tf.shape(self.images)[1], tf.shape(self.images)[2]
            rows = mask(rows, back, rank_window(self.rank_maps, self.ranked_by,
                                                self.rank_start, self.rank_stop),
                        patch_window(self.patch, height, width))
            self.pixel_weights = pixel_weights(
                segment_weights(self.segment_on, self.rank_maps, self.ranked_by),
                grid_weights(self.grid_seed, self.grid_shift, self.grid_cells,
                             self.grid_keep, height, width))
            rows = weigh(rows, back, self.pixel_weights)
        self.drawn_noise = draw_noise(self.noise_seeds, tf.shape(self.images)[1:], dtype)
        rows = add_noise(rows, self.noise_scale,
                         lambda: unit_noise(self.noise_fed, self.drawn_noise, self.noise_of))
        rows.set_shape(front.shape)
        return rows

    def noise_store(self, shape):
        """The :class:`NoiseStore` of unit noise for images of ``shape`` (one kept at a
        time: another shape replaces it)."""
        dtype = self.drawn_noise.dtype.as_numpy_dtype
        key = (tuple(shape), np.dtype(dtype).str, NOISE_CACHE_BYTES)
        if getattr(self, "_noise_key", None) != key:
            self._noise_key, self._noise_store = key, NoiseStore(shape, dtype)
        return self._noise_store

    def _model(self, x, out):
        """The model on the rows: a copy of its ops reading them (``mode`` 'clone'), or
        ``x`` itself, fed with the fetched rows ('feed')."""
        self.mode, self.clone_error = "clone", None
        try:
            if not CLONE_MODEL:
                raise RuntimeError("CLONE_MODEL is False")
            (self.logits,) = clone_subgraph(x, [out], self.rows, name="model_clone")
            self.model_in = self.rows
        except Exception as err:   # an op that cannot be copied: fetch and feed rows
            self.mode, self.clone_error = "feed", f"{type(err).__name__}: {err}"
            if CLONE_MODEL:
                warnings.warn(CLONE_WARNING.format(reason=self.clone_error),
                              RuntimeWarning, stacklevel=4)
            self.logits, self.model_in = out, x
        self.score = tf.gather(self.logits, self.target, axis=1, batch_dims=1)
        self.prob = tf.gather(tf.nn.softmax(self.logits), self.target, axis=1, batch_dims=1)
        self.grad = tf.gradients(self.score, self.model_in)[0]
        if self.grad is None:
            raise ValueError(LAYER_UNCONNECTED_ERROR.format(arg="output_tensor",
                                                            name=out.name))
        self.input_grads = (self.grad,)


def row_ops(x, out):
    return cached_ops(x.graph, ("rows", x.name, out.name), lambda: RowOps(x, out))


# The stages of RowOps. Each takes and returns tensors; ``back`` arguments are functions
# that gather the back images, so that a stage's branch alone pays for them.

def per_row(values, like):
    """``values`` ``[R]`` shaped to broadcast over the rows ``like`` ``[R, ...]``."""
    return tf.reshape(values, tf.concat([[-1], tf.ones([like.shape.rank - 1], tf.int32)], 0))


def interpolate(front, back, alpha):
    """Path points ``back + alpha (front - back)`` ``[R, ...]``; rows of ``alpha = 1`` are
    ``front`` exactly, and a chunk of only those gathers no back image."""
    at_front = tf.equal(alpha, 1.0)

    def blend():
        b = back()
        return select_leading(at_front, front, b + per_row(alpha, front) * (front - b))

    return tf.cond(tf.reduce_all(at_front), lambda: front, blend)


def scaled(front, scale):
    """Front images ``[R, ...]`` times each row's ``scale`` ``[R]`` (a constant image from
    an all-ones bank image, say), on the chunks where some ``scale`` is not 1."""
    return tf.cond(tf.reduce_all(tf.equal(scale, 1.0)), lambda: front,
                   lambda: front * per_row(scale, front))


def blur(rows, sigma):
    """Image rows ``[R, H, W, C]`` blurred by a Gaussian of ``sigma`` ``[R]`` pixels each
    (:func:`gaussian_blur`), on the chunks where some ``sigma`` is > 0."""
    return tf.cond(tf.reduce_any(sigma > 0), lambda: gaussian_blur(rows, sigma),
                   lambda: rows)


def path_velocity(direction, front, sigma, step):
    """Each row's derivative along its path: ``direction`` (``front - back``) on a straight
    path, and on a blur path (rows of ``step`` > 0) the finite difference
    ``(blur(front, σ + step) - blur(front, σ)) / step``, as PAIR's Blur IG computes it
    (:func:`blur_difference`: without the cancellation of two float32 blurs)."""
    def along_blur():
        h = tf.where(step > 0, step, tf.ones_like(step))
        d = blur_difference(front, sigma, step) / per_row(h, front)
        return select_leading(step > 0, d, direction)

    return tf.cond(tf.reduce_any(step > 0), along_blur, lambda: direction)


def gaussian_blur(images, sigma):
    """``images`` ``[R, H, W, C]`` each blurred over height and width by a Gaussian of
    ``sigma[r]`` pixels, as ``scipy.ndimage.gaussian_filter(image, (σ, σ, 0),
    mode='constant')`` (zeros beyond the edges, the kernel truncated at 4σ): two
    separable matrix products with :func:`blur_matrices`, in float64 and then rounded to
    the images' dtype once, as scipy's blur of a float64 image is (a float32 product
    rounds differently, and the model's ReLU kinks make its gradients sensitive to that);
    ``σ = 0`` leaves a row as is."""
    shape = tf.shape(images)
    blurred = separable(tf.cast(images, tf.float64), blur_matrices(sigma, shape[1], None),
                        blur_matrices(sigma, shape[2], None))
    return tf.cast(blurred, images.dtype)


def blur_difference(images, sigma, step):
    """``blur(images, σ + step) - blur(images, σ)`` ``[R, H, W, C]``, computed as
    ``(K'_H - K_H) x K'_Wᵀ + K_H x (K'_W - K_W)ᵀ`` with the kernels' differences taken in
    float64 (``K'`` at ``σ + step``, also summed in float64): subtracting two float32
    blurs would lose about ``1e-7 · 255 / step`` per pixel to cancellation."""
    shape = tf.shape(images)
    s0 = tf.cast(sigma, tf.float64)
    s1 = s0 + tf.cast(step, tf.float64)
    h0, h1 = blur_matrices(s0, shape[1], None), blur_matrices(s1, shape[1], None)
    w0, w1 = blur_matrices(s0, shape[2], None), blur_matrices(s1, shape[2], None)
    f32 = tf.float32
    return (separable(images, tf.cast(h1 - h0, f32), tf.cast(w1, f32))
            + separable(images, tf.cast(h0, f32), tf.cast(w1 - w0, f32)))


def separable(images, along_h, along_w):
    """``along_h[r] @ image[r] @ along_w[r]ᵀ`` for each row and channel: ``[R, H, W, C]``."""
    rows = tf.einsum("rij,rjwc->riwc", along_h, images)
    return tf.einsum("rkw,riwc->rikc", along_w, rows)


def blur_matrices(sigma, n, dtype=tf.float32):
    """``[R, n, n]``: each row's 1-D Gaussian blur of a length-``n`` axis as a matrix,
    ``K[i, j] = φ(i - j) / Σ_{|k| <= r} φ(k)`` for ``|i - j| <= r`` (else 0), with
    ``φ(k) = exp(-k² / (2σ²))`` and ``r = int(4σ + 0.5)`` (scipy's kernel and truncation;
    beyond the edges the image is zero); the identity for ``σ = 0``. Built in float64,
    returned as ``dtype`` (None: float64)."""
    s = tf.cast(sigma, tf.float64)
    safe = tf.where(s > 0, s, tf.ones_like(s))[:, None, None]              # [R, 1, 1]
    radius = tf.floor(4.0 * s + 0.5)[:, None, None]
    i = tf.cast(tf.range(n), tf.float64)
    d = i[None, :, None] - i[None, None, :]                                  # [1, n, n]
    phi = tf.exp(-0.5 * tf.square(d) / tf.square(safe))
    phi *= tf.cast(tf.abs(d) <= radius, tf.float64)
    k = tf.range(-tf.reduce_max(radius), tf.reduce_max(radius) + 1.0)[None, None, :]
    norm = tf.reduce_sum(tf.exp(-0.5 * tf.square(k) / tf.square(safe))
                         * tf.cast(tf.abs(k) <= radius, tf.float64), -1, keepdims=True)
    eye = tf.eye(n, dtype=tf.float64)[None]
    out = tf.where((s > 0)[:, None, None], phi / norm, eye)
    return out if dtype is None else tf.cast(out, dtype)


def rank_window(rank_maps, ranked_by, start, stop):
    """The pixels of each row ranked in ``[start, stop)`` in its rank map
    ``rank_maps[ranked_by]``: ``(everywhere, inside)``, a scalar (every pixel of every row
    is in its window) and a function returning bool ``[R, H, W]``."""
    axes = list(range(1, rank_maps.shape.rank))
    r_min = tf.gather(tf.reduce_min(rank_maps, axes), ranked_by)
    r_max = tf.gather(tf.reduce_max(rank_maps, axes), ranked_by)
    everywhere = tf.reduce_all((start <= r_min) & (stop > r_max))

    def compare():
        rank = tf.gather(rank_maps, ranked_by)                        # [R, H, W(, K)]
        return (rank >= per_row(start, rank)) & (rank < per_row(stop, rank))

    def inside():
        shape = tf.concat([tf.shape(ranked_by), tf.shape(rank_maps)[1:]], 0)
        return tf.cond(everywhere, lambda: tf.ones(shape, tf.bool), compare)

    return everywhere, inside


def patch_window(patch, height, width):
    """The pixels of each row inside its rectangle ``patch`` ``[R, 4]`` (top, left, height,
    width; height 0: the whole image): ``(whole, inside)``, a scalar (no row has a
    rectangle) and a function returning bool ``[R, H, W]``."""
    top, left, size_i, size_j = (patch[:, k, None, None] for k in range(4))
    whole = tf.reduce_all(tf.equal(patch[:, 2], 0))

    def inside():
        i = tf.range(height)[None, :, None]
        j = tf.range(width)[None, None, :]
        return tf.equal(size_i, 0) | (((i >= top) & (i < top + size_i))           # [R, H, 1]
                                      & ((j >= left) & (j < left + size_j)))      # [R, 1, W]

    return whole, inside


def mask(rows, back, rank, patch):
    """``rows`` on the pixels that both the rank window and the patch select (from
    :func:`rank_window` and :func:`patch_window`), ``back()`` elsewhere."""
    everywhere, in_window = rank
    whole, in_patch = patch

    def select():
        keep = in_window()                                            # [R, H, W(, K)]

        def in_both():
            patch_keep = in_patch()                                               # [R, H, W]
            return keep & (patch_keep[..., None] if keep.shape.rank == 4 else patch_keep)

        keep = tf.cond(whole, lambda: keep, in_both)
        return select_leading(keep, rows, back())

    return tf.cond(everywhere & whole, lambda: rows, select)


def segment_weights(on, label_maps, labelled_by):
    """Each row's pixel weights from its segments' entries ``on`` ``[R, S, K]`` (S = 0: no
    row has any; K = 1, or C for a weight per channel): ``(some, weights)``, a scalar and
    a function returning ``[R, H, W, K]``, ``on[r, label]`` at each pixel of the label map
    ``label_maps[labelled_by[r]]``."""
    def weights():
        labels = tf.gather(label_maps, labelled_by)                    # [R, H, W(, 1)]
        if labels.shape.rank == 4:
            labels = labels[..., 0]
        return tf.gather(on, labels, axis=1, batch_dims=1)                 # [R, H, W, K]

    return tf.shape(on)[1] > 0, weights


def grid_weights(seeds, shifts, cells, keep, height, width):
    """RISE's masks (Petsiuk et al. 2018, as the paper's code makes them): for each row a
    ``cells`` x ``cells`` grid of 0/1, each 1 with probability ``keep``
    (``tf.random.stateless_uniform`` of the row's seed ``seeds[r]`` < keep), upsampled
    bilinearly to ``(cells + 1)·ceil(H / cells)`` (and likewise W; :func:`upsampling`)
    and cropped at the row's ``shifts[r]`` (top, left). ``(some, weights)``: a scalar
    (rows were given seeds) and a function returning ``[R, H, W, 1]``."""
    def weights():
        grid = tf.map_fn(lambda s: tf.random.stateless_uniform(tf.stack([cells, cells]),
                                                               seed=s, dtype=tf.float64),
                         seeds, fn_output_signature=tf.float64)
        grid = tf.cast(grid < tf.cast(keep, tf.float64), tf.float64)         # [R, c, c]
        along_h = cropped(upsampling(cells, height), shifts[:, 0], height)    # [R, H, c]
        along_w = cropped(upsampling(cells, width), shifts[:, 1], width)      # [R, W, c]
        rows = tf.einsum("rhi,rij->rhj", along_h, grid)
        return tf.cast(tf.einsum("rhj,rwj->rhw", rows, along_w), tf.float32)[..., None]

    return tf.shape(seeds)[0] > 0, weights


def upsampling(cells, length):
    """``[(cells + 1)·ceil(length / cells), cells]`` float64: linear interpolation of
    ``cells`` values to that many, as ``skimage.transform.resize(order=1, mode='reflect')``
    does it (pixel centres aligned, ``c = (o + ½)·cells/up - ½``, mirrored at both ends)."""
    n = tf.cast(cells, tf.float64)
    up = (cells + 1) * ((length + cells - 1) // cells)
    c = (tf.cast(tf.range(up), tf.float64) + 0.5) * n / tf.cast(up, tf.float64) - 0.5
    c = tf.abs(c)                                                   # mirrored below 0
    c = tf.where(c > n - 1, 2 * (n - 1) - c, c)                     # and above cells - 1
    c = tf.clip_by_value(c, 0.0, tf.maximum(n - 1, 0.0))
    low = tf.cast(tf.floor(c), tf.int32)
    high = tf.minimum(low + 1, cells - 1)
    frac = (c - tf.floor(c))[:, None]
    return (tf.one_hot(low, cells, dtype=tf.float64) * (1 - frac)
            + tf.one_hot(high, cells, dtype=tf.float64) * frac)


def cropped(matrix, starts, length):
    """Rows ``starts[r] .. starts[r] + length`` of ``matrix`` for each row: ``[R, length,
    ...]``."""
    return tf.gather(matrix, starts[:, None] + tf.range(length)[None, :])


def pixel_weights(segments, grid):
    """The pixel weights of the two sources, each ``(some, weights)`` (from
    :func:`segment_weights` and :func:`grid_weights`): ``(some, weights)``, their product
    on a chunk that has both, else the one it has."""
    (on_some, on), (grid_some, on_grid) = segments, grid

    def weights():
        return tf.cond(on_some & grid_some, lambda: on() * on_grid(),
                       lambda: tf.cond(on_some, on, on_grid))

    return on_some | grid_some, weights


def weigh(rows, back, weights):
    """``back() + m ⊙ (rows - back())`` per pixel (or per pixel and channel), with
    ``(some, m)`` from :func:`pixel_weights` (``m`` ``[R, H, W, 1]`` or ``[R, H, W, C]``),
    on the chunks where some row weighs its pixels; ``m = 1`` keeps a value of ``rows``
    exactly (and ``m = 0`` gives ``back`` exactly)."""
    some, pixel = weights

    def blend():
        b = back()
        m = pixel()                                                        # [R, H, W, K]
        mixed = b + tf.cast(m, rows.dtype) * (rows - b)
        return select_leading(m >= 1, rows, mixed)

    return tf.cond(some, blend, lambda: rows)


def draw_noise(seeds, shape, dtype):
    """Unit Gaussian noise ``[S, ...]`` of one input's ``shape``: one
    ``tf.random.stateless_normal`` per seed pair of ``seeds`` ``[S, 2]`` (none for S = 0:
    an empty map_fn cannot stack when the graph does not know the input's size)."""
    def draw():
        return tf.map_fn(lambda s: tf.random.stateless_normal(shape, seed=s, dtype=dtype),
                         seeds, fn_output_signature=dtype)

    return tf.cond(tf.shape(seeds)[0] > 0, draw,
                   lambda: tf.zeros(tf.concat([[0], shape], 0), dtype))


def unit_noise(fed, drawn, noise_of):
    """Each row's unit noise ``[R, ...]``: entry ``noise_of[r]`` of the fed noise followed by
    the drawn; no copy when the rows take the entries in order."""
    def pool():
        return tf.cond(tf.equal(tf.shape(fed)[0], 0), lambda: drawn,
                       lambda: tf.cond(tf.equal(tf.shape(drawn)[0], 0), lambda: fed,
                                       lambda: tf.concat([fed, drawn], 0)))

    entries = pool()
    in_order = (tf.equal(tf.shape(entries)[0], tf.shape(noise_of)[0])
                & tf.reduce_all(tf.equal(noise_of, tf.range(tf.shape(noise_of)[0]))))
    return tf.cond(in_order, lambda: entries, lambda: tf.gather(entries, noise_of))


def add_noise(rows, scale, noise):
    """``rows + scale · noise()`` per row, on the chunks where some ``scale`` is > 0."""
    return tf.cond(tf.reduce_any(scale > 0), lambda: rows + per_row(scale, rows) * noise(),
                   lambda: rows)


def weighted_sums(grads, weights, shape):
    """``Σ_r weights[r, k] grads[r]`` and ``Σ_r weights[r, k] grads[r]²`` for each of the K
    columns of ``weights`` ``[R, K]``: flat gradients ``[R, D]`` summed into ``[K, ...]``
    of one input's ``shape``."""
    out_shape = tf.concat([[-1], shape], 0)
    return (tf.reshape(tf.matmul(weights, grads, transpose_a=True), out_shape),
            tf.reshape(tf.matmul(weights, tf.square(grads), transpose_a=True), out_shape))


def select_leading(cond, a, b):
    """``a`` where ``cond`` (the leading dimensions of ``a``: ``[R]`` rows, ``[R, H, W]``
    pixels or ``[R, H, W, C]`` values; a trailing 1 counts as none) is true, else ``b``.
    The same values as ``tf.where`` broadcasting ``cond``, but several times faster on
    CPU: a broadcast select runs element by element, a select of whole trailing slices
    (``tf.compat.v1.where`` with a vector condition) copies them."""
    lead = tf.size(cond)
    out = tf1.where(tf.reshape(cond, [-1]), tf.reshape(a, tf.stack([lead, -1])),
                    tf.reshape(b, tf.stack([lead, -1])))
    return tf.reshape(out, tf.shape(a))


FUNCTION_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall", "While",
                          "StatelessWhile", "If", "StatelessIf", "Case", "StatelessCase"})


def clone_subgraph(x, outputs, new_x, name, gradient_override=None):
    """Copy the ops that lie between ``x`` and ``outputs`` with ``new_x`` in place of ``x``.

    Everything the copied ops read that does not depend on ``x`` (weights, variable reads,
    constants) is shared with the original, not copied, so the copy computes exactly what
    the model computes. ``gradient_override`` ``{op type: registered gradient name}``
    (or a function of the original op giving that name, or None) gives the copies of
    those ops another gradient (the originals keep theirs). Returns the copied
    ``outputs``.
    """
    return copy_ops(x.graph, _ops_between(x, outputs), {x.name: new_x}, outputs, name,
                    gradient_override)


def copy_ops(graph, ops, replace, outputs, name, gradient_override=None):
    """Copy ``ops`` (in graph order) reading ``replace`` ``{tensor name: tensor}`` in place
    of those tensors; whatever else they read from outside ``ops`` is shared with the
    original. Returns the copies of ``outputs`` (:func:`clone_subgraph`)."""
    names = {op.name for op in ops}
    sub = tf1.GraphDef()
    sub.versions.CopyFrom(graph.graph_def_versions)
    if any(op.type in FUNCTION_OPS or any(a.HasField("func") or len(a.list.func)
                                           for a in op.node_def.attr.values()) for op in ops):
        # functions the copied ops call; only then serialise the whole graph (a graph can
        # hold hundreds of MB of constants, e.g. weights loaded by assign)
        sub.library.CopyFrom(graph.as_graph_def().library)
    input_map = {}
    for op in ops:
        copy = sub.node.add()
        copy.CopyFrom(op.node_def)
        if "_class" in copy.attr:          # colocation with nodes that are not copied
            del copy.attr["_class"]
        override = (gradient_override(op) if callable(gradient_override)
                    else (gradient_override or {}).get(copy.op))
        if override:
            copy.attr["_gradient_op_type"].s = override.encode()
        inputs = []
        for inp in copy.input:
            src = inp.lstrip("^").split(":")[0]
            if inp.startswith("^"):
                if src in names:
                    inputs.append(inp)
                continue
            if src not in names:
                key = inp if ":" in inp else inp + ":0"
                input_map[key] = replace[key] if key in replace else graph.get_tensor_by_name(key)
            inputs.append(inp)
        del copy.input[:]
        copy.input.extend(inputs)
    return tf1.import_graph_def(sub, input_map=input_map,
                                return_elements=[t.name for t in outputs], name=name)


def register_gradients(functions):
    """Register ``{name: gradient function}`` with TensorFlow, for ``gradient_override``;
    a name registered already (its module loaded twice) is left as it is."""
    for name, fn in functions.items():
        try:
            tf.RegisterGradient(name)(fn)
        except KeyError:
            pass


def _ops_between(x, outputs):
    """The ops that depend on ``x`` and that ``outputs`` depend on, in graph order."""
    down, up = descendants(x.op), ancestors(t.op for t in outputs)
    return [op for op in x.graph.get_operations() if op in down and op in up]


# ===================================================================== the adaptive paths

class AdaptiveIG:
    """The adaptive quadrature rule of ``IntegratedGrad(method='adaptive')``, in numpy.

    Completeness only holds in the limit for uniform steps, and on real ReLU networks the
    score changes within a few percent of the path, where uniform nodes are too sparse.
    With ``F(t) = f_c(x_b + t (x - x_b))`` and the integrand ``g(t) = ∇f_c · (x - x_b)``
    at the path point, the rule

    1. measures ``F`` on a uniform grid of ``forward_steps`` intervals with forward passes
       only (default ``max(16, max_gradients // 2)``);
    2. places a quarter of the gradient budget (at least 2, both ends included) so that
       each interval carries an equal share of a measure that is half uniform and half the
       variation ``Σ|ΔF|`` of the grid;
    3. repeats: on each interval ``[a, b]`` between gradient nodes compares the trapezoid
       estimate of ``Δf``, ``(b - a)/2 · (g(a) + g(b))``, with the measured ``F(b) - F(a)``
       (every gradient also returns ``F`` at its node); splits the intervals that carry
       half of the total disagreement (at least an eighth of them), each at the point that
       halves ``F``'s measured variation inside it (:func:`split_point`), until the
       completeness error is ``<= tol`` or ``max_gradients`` gradients are spent. Every
       round is one batched pass over all inputs that are not done.

    The map is the composite trapezoid rule on the final nodes, so ``completeness_error``
    is an honest certificate of it. ``error_bound`` is ``Σ_intervals |disagreement| /
    |Δf|``, an upper bound of that error. ``correction='kink'`` replaces, on each interval,
    the trapezoid's equal weights by ``λ g(a) + (1 - λ) g(b)`` with ``λ ∈ [0, 1]`` chosen
    so that the interval's contribution equals its measured ``ΔF``: for a piecewise-linear
    (ReLU) network whose path crosses one linear region boundary in the interval that is
    the exact integral (λ is where the kink lies). Its certificate is ``uncorrected_error``
    (the plain trapezoid's, which the stopping rule uses). The final weights are known only
    at the end, so the rule keeps each node's gradient (up to ``max_gradients`` per input).

    The path comes as two functions (:meth:`run`), so the rule runs without TensorFlow.
    """

    def __init__(self, tol=0.01, max_gradients=256, forward_steps=None, correction=None):
        self.tol = check_number(tol, "tol")
        if not is_int(max_gradients) or max_gradients < 2:
            raise ValueError(MAX_GRADIENTS_ERROR.format(arg="max_gradients",
                                                        actual=max_gradients))
        self.max_gradients = check_rows_per_input(int(max_gradients), "max_gradients",
                                                  "gradients")
        self.forward_steps = check_rows_per_input(
            max(16, self.max_gradients // 2) if forward_steps is None
            else check_positive_int(forward_steps, "forward_steps"), "forward_steps",
            "forward passes")
        if correction not in (None, "kink"):
            raise ValueError(CHOICE_ERROR.format(arg="correction", expected=[None, "kink"],
                                                 actual=correction))
        self.correction = correction

    def run(self, path, f_start, f_end):
        """The rule on n paths.

        Args:
            path: ``scores(i, t)`` -> ``F`` ``[R]`` (forwards) and ``gradients(i, t)`` ->
                ``(∇f [R, ...], F [R], g [R])`` at the rows (path ``i``, position ``t``),
                in the order given.
            f_start, f_end: ``F(0)`` and ``F(1)`` ``[n]`` (float64).

        Returns:
            ``(mean_gradient, info)``: float64 ``[n, ...]``, the weighted mean of the
            gradients on each path; ``info`` per path: ``gradients``, ``forwards``,
            ``uncorrected_error``, ``error_bound`` (arrays ``[n]``) and ``nodes`` (a list
            of the node positions).
        """
        grid_t, grid_f = self._grid(path, f_start, f_end)
        nodes = PathNodes(len(f_start), self.max_gradients)
        nodes.evaluate(path, *self._initial_nodes(grid_t, grid_f))
        self._refine(path, nodes, grid_t, grid_f, f_end - f_start)
        return self._result(nodes, f_end - f_start)

    def _grid(self, path, f_start, f_end):
        """1. ``F`` on a uniform grid: positions ``[m + 1]`` and scores ``[n, m + 1]``."""
        n, m = len(f_start), self.forward_steps
        grid_t = np.arange(m + 1) / m
        grid_f = np.empty((n, m + 1))
        grid_f[:, 0], grid_f[:, -1] = f_start, f_end
        if m > 1:
            inputs = np.repeat(np.arange(n), m - 1)
            grid_f[:, 1:-1] = path.scores(inputs, np.tile(grid_t[1:-1], n)).reshape(n, m - 1)
        return grid_t, grid_f

    def _initial_nodes(self, grid_t, grid_f):
        """2. ``(inputs, t)`` of the first gradients: equal shares of a measure half uniform,
        half the measured variation of ``F``."""
        m = self.forward_steps
        first = min(self.max_gradients, max(2, self.max_gradients // 4))
        inputs, positions = [], []
        for i, f in enumerate(grid_f):
            var = np.abs(np.diff(f))
            mu = np.full(m, 0.5 / m) + (0.5 * var / var.sum() if var.sum() > 0 else 0.5 / m)
            cum = np.concatenate([[0.0], np.cumsum(mu)])
            t = np.interp(np.linspace(0, 1, first), cum / cum[-1], grid_t)
            t[0], t[-1] = 0.0, 1.0
            t = np.unique(t)
            inputs += [i] * len(t)
            positions += list(t)
        return inputs, positions

    def _refine(self, path, nodes, grid_t, grid_f, delta):
        """3. Split where the two estimates of ``Δf`` disagree, one pass per round."""
        active = np.ones(len(delta), bool)
        while True:
            inputs, positions = [], []
            for i in np.flatnonzero(active):
                splits = self._splits(nodes.intervals(i), self.max_gradients - nodes.count[i],
                                      delta[i], grid_t, grid_f[i])
                if not splits:
                    active[i] = False
                    continue
                inputs += [i] * len(splits)
                positions += splits
            if not inputs:
                return
            nodes.evaluate(path, inputs, positions)

    def _splits(self, iv, room, delta, grid_t, grid_f):
        """Where to split one path's :class:`Intervals` this round; none when its error is
        within ``tol``, its budget is spent or no interval disagrees."""
        if relative_error(iv.estimate.sum(), delta) <= self.tol or room <= 0:
            return []
        disagreement = np.where(iv.width > 1e-7, np.abs(iv.disagreement), 0.0)
        if not disagreement.any():
            return []
        order = np.argsort(-disagreement, kind="stable")
        cum = np.cumsum(disagreement[order])
        k = int(np.searchsorted(cum, 0.5 * cum[-1])) + 1
        k = min(max(k, -(-len(iv.width) // 8)), room, int(np.count_nonzero(disagreement)))
        known_t, known_f = np.concatenate([grid_t, iv.t]), np.concatenate([grid_f, iv.f])
        return [split_point(iv.t[j], iv.t[j + 1], known_t, known_f) for j in order[:k]]

    def _result(self, nodes, delta):
        """4. The mean gradient: composite trapezoid (or kink-corrected) weights on the
        final nodes, and the diagnostics."""
        n = len(delta)
        mean_grad = np.zeros((n,) + nodes.grads.shape[2:], np.float64)
        info = {"gradients": nodes.count.copy(), "forwards": np.full(n, self.forward_steps + 1),
                "uncorrected_error": np.zeros(n), "error_bound": np.zeros(n),
                "nodes": [None] * n}
        for i in range(n):
            iv = nodes.intervals(i)
            mean_grad[i] = np.tensordot(self._weights(iv), nodes.grads[i, :nodes.count[i]]
                                        [iv.order], axes=1)
            info["uncorrected_error"][i] = relative_error(iv.estimate.sum(), delta[i])
            bad = np.abs(iv.disagreement)
            info["error_bound"][i] = (bad.sum() / abs(delta[i]) if delta[i] != 0
                                      else (0.0 if not bad.any() else np.inf))
            info["nodes"][i] = iv.t
        return mean_grad, info

    def _weights(self, iv):
        """The node weights of one path: trapezoid, or with ``correction='kink'`` each
        interval's ``(λ, 1 - λ)`` that makes its contribution its measured ``ΔF``."""
        h, g = iv.width, iv.g
        w = np.zeros(len(iv.t))
        if self.correction != "kink":
            w[:-1] += h / 2
            w[1:] += h / 2
            return w
        df = np.diff(iv.f)
        den = g[:-1] - g[1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = np.where(np.abs(den) > 1e-12 * (np.abs(g[:-1]) + np.abs(g[1:]) + 1e-30),
                           (np.where(h > 0, df / np.where(h > 0, h, 1), 0) - g[1:])
                           / np.where(den != 0, den, 1), 0.5)
        lam = np.clip(lam, 0.0, 1.0)
        w[:-1] += h * lam
        w[1:] += h * (1 - lam)
        return w


class PathNodes:
    """What an adaptive run has measured on each of n paths: node positions ``t``, scores
    ``f = F(t)``, integrands ``g``, and the gradients (up to ``capacity`` per path)."""

    def __init__(self, n, capacity):
        self.t = [np.empty(0) for _ in range(n)]
        self.f = [np.empty(0) for _ in range(n)]
        self.g = [np.empty(0) for _ in range(n)]
        self.count = np.zeros(n, np.int64)
        self.capacity, self.grads = capacity, None

    def evaluate(self, path, inputs, t):
        """Gradients, scores and integrands at the (path, t) rows, in one batched pass
        (rows sorted by path, then t)."""
        inputs, t = np.asarray(inputs), np.asarray(t, np.float64)
        order = np.lexsort((t, inputs))
        inputs, t = inputs[order], t[order]
        grads, scores, integrands = path.gradients(inputs, t)
        if self.grads is None:
            self.grads = np.empty((len(self.t), self.capacity) + grads.shape[1:], np.float32)
        for i in np.unique(inputs):
            sel = inputs == i
            k = int(sel.sum())
            self.grads[i, self.count[i]:self.count[i] + k] = grads[sel]
            self.t[i] = np.concatenate([self.t[i], t[sel]])
            self.f[i] = np.concatenate([self.f[i], scores[sel].astype(np.float64)])
            self.g[i] = np.concatenate([self.g[i], integrands[sel].astype(np.float64)])
            self.count[i] += k

    def intervals(self, i):
        return Intervals(self.t[i], self.f[i], self.g[i])


class Intervals:
    """The intervals between one path's nodes, in order of position: ``t``, ``f``, ``g``
    sorted (``order`` sorts the nodes as measured), ``width``, the trapezoid ``estimate``
    of each interval's ``Δf`` and its ``disagreement`` with the measured ``ΔF``."""

    def __init__(self, t, f, g):
        self.order = np.argsort(t, kind="stable")
        self.t, self.f, self.g = t[self.order], f[self.order], g[self.order]
        self.width = np.diff(self.t)
        self.estimate = self.width / 2 * (self.g[:-1] + self.g[1:])
        self.disagreement = self.estimate - np.diff(self.f)


def split_point(a, b, known_t, known_f):
    """Where to split ``[a, b]``: the point that halves F's measured variation inside it
    (F linear between known points), kept within the middle 80%; the midpoint when no
    known point lies strictly inside."""
    h = b - a
    inside = (known_t > a) & (known_t < b)
    if not inside.any():
        return 0.5 * (a + b)
    at = np.concatenate([[a], known_t[inside], [b]])
    af = np.concatenate([known_f[np.argmin(np.abs(known_t - a))][None],
                         known_f[inside],
                         known_f[np.argmin(np.abs(known_t - b))][None]])
    o = np.argsort(at, kind="stable")
    at, af = at[o], af[o]
    var = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(af)))])
    if var[-1] <= 0:
        return 0.5 * (a + b)
    mid = float(np.interp(0.5 * var[-1], var, at))
    return float(np.clip(mid, a + 0.1 * h, b - 0.1 * h))


__all__ = ["SaliencyMap", "IntegratedGrad", "VanillaGradient", "SmoothGrad", "GradCAM",
           "Occlusion", "RandomAttribution", "AdaptiveIG", "new_session", "quadrature",
           "IG_METHODS", "DEFAULT_BATCH_SIZE"]

# Names that moved to the package ``attrkit`` (issue 29): ``from hw3_attribution import
# XRAI`` keeps working for one release, with a DeprecationWarning naming the new home.
MOVED = {name: "attrkit.methods.pair" for name in (
    "XRAI", "GuidedIG", "BlurIG", "GuidedBackprop", "GuidedIGPath", "GuidedOps",
    "guided_ops", "XRAI_BASELINES", "XRAI_ALGORITHMS", "XRAI_BASELINES_ERROR",
    "BASE_ATTRIBUTION_ERROR", "GUIDED_COPY_ERROR", "xrai_full", "xrai_fast", "blur_sigmas")}
MOVED.update({name: "attrkit.methods.segmentation" for name in (
    "felzenszwalb_segments", "parse_segments", "segment_masks", "SEGMENTS_ERROR",
    "SKIMAGE_ERROR")})


def __getattr__(name):
    """A moved name, from its new home, with a DeprecationWarning (PEP 562)."""
    if name not in MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    warnings.warn(f"hw3_attribution.{name} has moved to {MOVED[name]}; import it from there "
                  "(the old name goes in the next release)", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(MOVED[name]), name)
