"""Metrics that judge an attribution *method* by explaining again, as Quantus 0.6.0 defines
them::

    MaxSensitivity(sess, method, input, input_tensor, output_tensor, target_class)
    AvgSensitivity(sess, method, input, input_tensor, output_tensor, target_class)
    RandomLogit(sess, method, input, input_tensor, output_tensor, target_class)

``method`` is an attribution instance built on the same tensors (any of the toolkit's
classes, or any callable ``method(X, target_class=...)`` returning maps ``[N, H, W]`` or
``[N, H, W, C]``); ``target_class`` an int, one per image, or None (the prediction), and
the method is called with each image's class as ``target_class=``. Extra keywords of its
call go in ``method_kwargs``; ``feed_dict`` (the graph's other placeholders) goes into every
run, the method's included. One image without the batch axis gives a float.

* Sensitivity (Yeh et al., NeurIPS 2019): ``nr_samples`` times, uniform noise
  ``U(-lower_bound, lower_bound)`` on every input value; the map of the noisy image is
  compared with the image's, ``‖a - a_noisy‖ / ‖a‖`` (Frobenius norms of the flattened
  maps); the maximum (``MaxSensitivity``) or the mean (``AvgSensitivity``) over the
  samples. Quantus normalises nothing here, and neither do these.
* Random Logit (Sixt et al., ICML 2020): the map for a class drawn at random among the
  others, compared with the map for the image's class: SSIM of the two flattened maps
  (skimage's, 1-D window 7, data range from both), or their Spearman correlation. The maps
  are first divided by the largest ``|a|`` of their call, as Quantus does (so a map's score
  depends on the batch it comes in).
"""
import warnings

import numpy as np

from hw3_attribution import (DEFAULT_BATCH_SIZE, ModelRunner, as_batch, check_number,
                             check_positive_int, check_seed, check_target_spec, is_int)
from hw3_evaluation import UNDEFINED_WARNING
from attrkit.metrics.faithfulness import image_generators
from attrkit.metrics.maps import normalise_by_max

# Error messages, kept as data so that tests match the same templates.
METHOD_ERROR = ("method: expected an attribution method built on input_tensor {tensor!r} (a "
                "callable taking target_class=), got {actual!r}")
MAPS_ERROR = ("method: expected maps [N, H, W] or [N, H, W, C] for {n} images of shape "
              "{shape}, got shape {actual}")
SIMILARITY_ERROR = "similarity: expected 'ssim' or 'spearman', got {actual!r}"
NUM_CLASSES_ERROR = ("num_classes: expected an int with 2 <= num_classes <= {k} (the "
                     "model's classes), got {actual!r}")

API = "Metric(sess, method, input, input_tensor, output_tensor, target_class)"
NOISE_CHUNK = 64          # noisy copies explained per call of the method


def MaxSensitivity(sess, method, input, input_tensor, output_tensor, target_class=None, *,
                   nr_samples=200, lower_bound=0.2, seed=None, method_kwargs=None,
                   batch_size=DEFAULT_BATCH_SIZE, feed_dict=None):
    """Max-Sensitivity, as Quantus' ``MaxSensitivity`` (its defaults: 200 samples, noise
    ``U(-0.2, 0.2)`` in the input's units, no normalisation, no ``abs``).

    Args:
        seed: each image's noise is ``numpy.random.default_rng(seed).uniform(-lower_bound,
            lower_bound, [nr_samples, H, W, C])``, fresh per image (the same in a batch as
            alone); None: a seed drawn once per call.

    Returns:
        ``[N]`` (a float for one image); NaN, with a warning, for an image whose map is
        all zero (the ratio is undefined). Method calls: ``N · ceil(nr_samples / 64)``
        on the noisy copies, one on the images.
    """
    return _sensitivity(np.max, sess, method, input, input_tensor, output_tensor,
                        target_class, nr_samples, lower_bound, seed, method_kwargs,
                        batch_size, feed_dict, "Max-Sensitivity")


def AvgSensitivity(sess, method, input, input_tensor, output_tensor, target_class=None, *,
                   nr_samples=200, lower_bound=0.2, seed=None, method_kwargs=None,
                   batch_size=DEFAULT_BATCH_SIZE, feed_dict=None):
    """Avg-Sensitivity, as Quantus' ``AvgSensitivity``: :func:`MaxSensitivity`'s ratios,
    their mean over the samples instead of their maximum."""
    return _sensitivity(np.mean, sess, method, input, input_tensor, output_tensor,
                        target_class, nr_samples, lower_bound, seed, method_kwargs,
                        batch_size, feed_dict, "Avg-Sensitivity")


def RandomLogit(sess, method, input, input_tensor, output_tensor, target_class=None, *,
                num_classes=None, similarity="ssim", seed=42, method_kwargs=None,
                batch_size=DEFAULT_BATCH_SIZE, feed_dict=None):
    """Random Logit, as Quantus' ``RandomLogit``: how similar the map for another class is
    (lower: the method tells classes apart).

    Args:
        num_classes: the classes the other one is drawn from, ``0 .. num_classes - 1``;
            None: all the model's (Quantus' default 1000 is ImageNet's).
        similarity: ``'ssim'`` (Quantus' default) or ``'spearman'``.
        seed: the other classes are Quantus' draws, ``numpy.random.RandomState(seed)
            .randint(0, num_classes - 1, N)``, each the index among the classes other than
            the image's; 42 as Quantus; None: unseeded.

    Returns:
        ``[N]`` similarities (a float for one image). Method calls: two.
    """
    if similarity not in ("ssim", "spearman"):
        raise ValueError(SIMILARITY_ERROR.format(actual=similarity))
    call = _MethodCall(sess, method, input, input_tensor, output_tensor, target_class,
                       method_kwargs, batch_size, feed_dict)
    k = call.num_classes if num_classes is None else num_classes
    if not is_int(k) or not 2 <= k <= (call.num_classes or k):
        raise ValueError(NUM_CLASSES_ERROR.format(k=call.num_classes, actual=num_classes))
    rs = np.random.RandomState(None if seed is None else check_seed(seed))
    index = rs.randint(0, k - 1, len(call.X))
    others = np.array([np.delete(np.arange(k), t)[i] if t < k else i
                       for t, i in zip(call.targets, index)], np.int32)
    a = normalise_by_max(call.explain(call.X, call.targets))
    b = normalise_by_max(call.explain(call.X, others))
    return call.result(similarities(similarity, a, b))


# ------------------------------------------------------------------ what they share

class _MethodCall:
    """One call's checked images ``X``, their classes ``targets`` and the method, called
    on any images for any classes (:meth:`maps`, :meth:`explain`), with the call's
    ``feed_dict`` in every run (the targets' and the method's)."""

    def __init__(self, sess, method, input, input_tensor, output_tensor, target_class,
                 method_kwargs, batch_size, feed_dict):
        runner = ModelRunner(sess, input_tensor, output_tensor, API, False).fed(feed_dict)
        built_on = getattr(method, "input_tensor", input_tensor)
        if not callable(method) or built_on is not input_tensor:
            raise TypeError(METHOD_ERROR.format(tensor=input_tensor.name, actual=method))
        self.method, self.kwargs = method, dict(method_kwargs or {})
        self.feed_dict = dict(feed_dict or {})
        self.num_classes = runner.num_classes
        spec = check_target_spec(target_class, self.num_classes)
        self.X, self.single = as_batch(input, input_tensor, "input")
        self.targets = runner.targets(self.X, spec,
                                      check_positive_int(batch_size, "batch_size"))

    def maps(self, X, targets, feed=None):
        """The method's maps of ``X`` for ``targets``, float64 ``[n, H, W(, C)]``, checked;
        ``feed``: more values for its runs (the call's ``feed_dict`` comes too)."""
        feed = {**self.feed_dict, **(feed or {})}
        kwargs = dict(self.kwargs, feed_dict=feed) if feed else self.kwargs
        maps = np.asarray(self.method(X, target_class=np.asarray(targets, np.int32),
                                      **kwargs), np.float64)
        if maps.shape[:3] != X.shape[:3] or maps.ndim not in (3, 4):
            raise ValueError(MAPS_ERROR.format(n=len(X), shape=list(X.shape[1:]),
                                               actual=list(maps.shape)))
        return maps

    def explain(self, X, targets):
        """:meth:`maps` flattened, ``[n, H·W(·C)]``."""
        return self.maps(X, targets).reshape(len(X), -1)

    def result(self, values):
        return values[0].item() if self.single else values


def _sensitivity(reduce, sess, method, input, input_tensor, output_tensor, target_class,
                 nr_samples, lower_bound, seed, method_kwargs, batch_size, feed_dict, name):
    samples = check_positive_int(nr_samples, "nr_samples")
    bound = check_number(lower_bound, "lower_bound")
    call = _MethodCall(sess, method, input, input_tensor, output_tensor, target_class,
                       method_kwargs, batch_size, feed_dict)
    a = call.explain(call.X, call.targets)                                  # [N, D]
    norms = np.linalg.norm(a, axis=1)
    out = np.full(len(a), np.nan)
    for i, (x, rng) in enumerate(zip(call.X, image_generators(seed, len(a)))):
        ratios = []
        for start in range(0, samples, NOISE_CHUNK):
            m = min(NOISE_CHUNK, samples - start)
            noisy = (x[None] + rng.uniform(-bound, bound, (m,) + x.shape)).astype(x.dtype)
            diff = call.explain(noisy, np.full(m, call.targets[i])) - a[i]
            ratios.append(np.linalg.norm(diff, axis=1))
        if norms[i] > 0:
            out[i] = reduce(np.concatenate(ratios) / norms[i])
    if np.any(norms == 0):
        warnings.warn(UNDEFINED_WARNING.format(
            metric=name, indices=np.flatnonzero(norms == 0).tolist(),
            why="the map is all zero"), RuntimeWarning, stacklevel=3)
    return call.result(out)


def similarities(kind, a, b):
    """Per-row similarity of the flattened maps ``a`` and ``b`` ``[N, D]``: Quantus'
    ``ssim`` (skimage's ``structural_similarity`` of the 1-D arrays, window 7,
    ``data_range`` the span of both) or ``correlation_spearman``."""
    if kind == "spearman":
        import scipy.stats
        return np.array([scipy.stats.spearmanr(x, y)[0] for x, y in zip(a, b)])
    from skimage.metrics import structural_similarity
    out = []
    for x, y in zip(a, b):
        both = np.concatenate([x, y])
        out.append(structural_similarity(x, y, data_range=float(np.abs(both.max() - both.min()))))
    return np.array(out)


__all__ = ["MaxSensitivity", "AvgSensitivity", "RandomLogit", "similarities"]
