"""The model parameter randomisation test (Adebayo et al., "Sanity checks for saliency
maps", NeurIPS 2018), as Quantus 0.6.0's ``MPRT`` (``ModelParameterRandomisation``)::

    ModelParameterRandomisation(sess, model, method, input, target_class)
    -> {'original': [N], layer: [N], ...}

If a map barely changes when the model's weights are randomised, it does not explain the
model. The layers (each a group of the model's ``variables`` that share a name up to the
last ``/``: a kernel and its bias) are randomised one after the other, from the top
(``layer_order='top_down'``, cascading: each keeps the layers above it random) or one at a
time (``'independent'``); after each step the method explains the images again and its
maps are compared with the original model's, per image.

Variables are assigned in place (ops built once per graph) and put back exactly, also
when the method raises or the call is interrupted; the weights of an imported (frozen)
model are constants, which the method's runs feed over instead (``feed_dict``: TF1 lets
any tensor be fed), so nothing is changed in the graph at all. No op is built per layer and
the model is never re-imported. Layers without a kernel (a batch norm's scale and
statistics) are kept as trained.
"""
import collections
import warnings

import numpy as np
import tensorflow as tf

from hw3_attribution import AttributionMethod, DEFAULT_BATCH_SIZE, cached_ops, check_seed
from hw3_evaluation import UNDEFINED_WARNING
from attrkit.metrics.maps import normalise_by_max
from attrkit.metrics.robustness import SIMILARITY_ERROR, _MethodCall, similarities

tf1 = tf.compat.v1

# Error messages, kept as data so that tests match the same templates.
ORDER_ERROR = "layer_order: expected 'top_down' or 'independent', got {actual!r}"
NO_WEIGHTS_ERROR = ("model: expected a model whose weights are variables, listed bottom-up "
                    "in model.variables ('layer/weights' -> variable; VGG16, the bundled "
                    "model and torchvision ResNets have them), got {actual!r}")
METHOD_NAME_ERROR = ("method: expected an attribution instance, class or one of {names}, "
                     "got {actual!r}")

# method names -> (module, class); 'gradcam' takes the model's default Grad-CAM layer
METHOD_NAMES = {"saliency": ("hw3_attribution", "SaliencyMap"),
                "gradient": ("hw3_attribution", "VanillaGradient"),
                "ig": ("hw3_attribution", "IntegratedGrad"),
                "smoothgrad": ("hw3_attribution", "SmoothGrad"),
                "gradcam": ("hw3_attribution", "GradCAM"),
                "guided_backprop": ("attrkit.methods.pair", "GuidedBackprop")}


def ModelParameterRandomisation(sess, model, method, input, target_class=None, *,
                                layer_order="top_down", similarity="spearman", seed=42,
                                normalise=True, abs=True, method_kwargs=None, blocks=None,
                                return_maps=False, progress=True):
    """Each layer's similarity between the maps of the randomised and the original model.

    Args:
        sess: the session of the model's graph.
        model: what ``hw3_utils.get_model`` returns (``imgs``, ``logits``, ``variables``).
        method: an attribution instance built on ``model.imgs``, a class (built as
            ``method(sess, model.imgs, model.logits, None)``; Grad-CAM also takes
            ``model.layers[model.default_layers['gradcam']]``) or a name of
            :data:`METHOD_NAMES`. It is called as ``method(X, target_class=...,
            **method_kwargs)``.
        input: the images ``[N, H, W, C]`` (one image ``[H, W, C]``: floats come back).
        target_class: an int, one per image, or None (the original model's prediction,
            kept for every layer).
        layer_order: ``'top_down'`` (cascading from the output layer down) or
            ``'independent'`` (each layer alone, the others as trained).
        similarity: ``'spearman'`` (Quantus' default) or ``'ssim'`` (see
            :func:`attrkit.metrics.robustness.similarities`).
        seed: each layer's new weights are ``U(-1/√fan_in, 1/√fan_in)`` (PyTorch's default
            initialisation of a conv or dense layer, what Quantus' ``reset_parameters``
            gives; ``fan_in`` = kernel height x width x input channels, one channel for a
            depthwise kernel, the input width for a dense one; the bias uses its kernel's)
            drawn from ``numpy.random.default_rng(seed + 1)``, kernel first, as Quantus
            reseeds ``seed + 1`` before each layer. 42 as Quantus.
        normalise, abs: as Quantus (defaults True, True): each call's maps are divided by
            their largest ``|a|``, then made absolute.
        blocks: None (each layer a step, as Quantus), or a function from a layer's name to
            its block's (:func:`block_of` groups VGG16's ``conv5_1..3`` into ``conv5``,
            the bundled model's ``block6a..d`` into ``block6``): the consecutive layers of
            a block are randomised in one step, named by the block.
        return_maps: also return the maps compared, ``{'original' or step: [N, H, W(, C)]}``
            (normalised and made absolute as asked).

    Returns:
        ``{'original': [N], step: [N], ...}`` in the order of randomisation (with
        ``return_maps``, ``(scores, maps)``); ``'original'`` compares a second explanation
        of the unchanged model with the first (1 for a deterministic method). One image:
        floats (and maps without the batch axis).
    """
    if layer_order not in ("top_down", "independent"):
        raise ValueError(ORDER_ERROR.format(actual=layer_order))
    if similarity not in ("ssim", "spearman"):
        raise ValueError(SIMILARITY_ERROR.format(actual=similarity))
    layers = weight_layers(model)
    call = _MethodCall(sess, build_method(method, sess, model), input, model.imgs,
                       logits_of(model), target_class, method_kwargs, DEFAULT_BATCH_SIZE,
                       None)
    seed = check_seed(seed)
    maps = {}

    def explain(step, feed=None):
        a = call.maps(call.X, call.targets, feed)
        a = normalise_by_max(a) if normalise else a
        maps[step] = np.abs(a) if abs else a
        return maps[step].reshape(len(a), -1)

    original = explain("original")
    compare = similarity_to(original, similarity)
    scores = {"original": compare(explain("again"))}
    del maps["again"]
    order = list(layers)[::-1] if layer_order == "top_down" else list(layers)
    with Randomised(sess, layers) as weights:
        for step, group in _progress(steps(order, blocks), progress):
            if layer_order == "independent":
                weights.restore()
            for name in group:
                weights.randomise(name, np.random.default_rng(seed + 1))
            scores[step] = compare(explain(step, weights.feed))
    if call.single:
        scores = {k: v[0].item() for k, v in scores.items()}
        maps = {k: v[0] for k, v in maps.items()}
    return (scores, maps) if return_maps else scores


def similarity_to(original, kind):
    """``b -> [N]``: each row of ``b`` compared with the same row of ``original`` ``[N, D]``
    (:func:`attrkit.metrics.robustness.similarities`); for Spearman the original's ranks are
    computed once (Spearman's rho is Pearson's r of the average ranks, what scipy's
    ``spearmanr`` computes). Where a map is constant (an all-zero Grad-CAM, say) the
    correlation is undefined: NaN, with the toolkit's ``RuntimeWarning`` naming the
    images."""
    if kind != "spearman":
        return lambda b: similarities(kind, original, b)
    from scipy.stats import rankdata
    ranks = rankdata(original, axis=1)

    def spearman(b):
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.array([np.corrcoef(r, q)[0, 1]
                            for r, q in zip(ranks, rankdata(b, axis=1))])
        if np.isnan(out).any():
            warnings.warn(UNDEFINED_WARNING.format(
                metric="Model Parameter Randomisation", indices=np.flatnonzero(
                    np.isnan(out)).tolist(), why="a map is constant"), RuntimeWarning,
                stacklevel=3)
        return out
    return spearman


def steps(order, blocks):
    """``[(step, [layer, ...]), ...]``: the layers of ``order``, one step each, or with
    ``blocks`` the consecutive layers of one block in one step."""
    out = []
    for name in order:
        key = name if blocks is None else blocks(name)
        if out and out[-1][0] == key:
            out[-1][1].append(name)
        else:
            out.append((key, [name]))
    return out


def block_of(layer):
    """A layer's block: its first name component up to its stage number
    (``'conv5_3'`` -> ``'conv5'``, ``'block6a/expand'`` -> ``'block6'``, ``'fc1'``,
    ``'layer4/1/conv2'`` -> ``'layer4'``, ``'stem'``)."""
    import re
    first = layer.split("/", 1)[0]
    match = re.match(r"[A-Za-z]+\d*", first)
    return match.group(0) if match else first


def weight_layers(model):
    """The model's layers with a kernel, bottom-up: ``{layer: [(name, weight), ...]}``,
    the entries of ``model.variables`` (variables, or an imported model's frozen weight
    tensors) grouped by the name up to its last ``/`` (a model with only a ``parameters``
    list, as the course's VGG16, is read by the variables' own names)."""
    variables = getattr(model, "variables", None)
    if variables is None and isinstance(getattr(model, "parameters", None), list):
        variables = collections.OrderedDict((v.op.name, v) for v in model.parameters)
    if not variables or not all(isinstance(v, (tf.Variable, tf.Tensor))
                                for v in variables.values()):
        raise TypeError(NO_WEIGHTS_ERROR.format(actual=model))
    layers = collections.OrderedDict()
    for name, var in variables.items():
        layers.setdefault(name.rsplit("/", 1)[0], []).append((name, var))
    kernels = collections.OrderedDict((k, g) for k, g in layers.items()
                                      if any(v.shape.rank >= 2 for _, v in g))
    if not kernels:
        raise TypeError(NO_WEIGHTS_ERROR.format(actual=model))
    return kernels


def build_method(method, sess, model):
    """An attribution instance from ``method``: itself, a class or a name."""
    if isinstance(method, str):
        if method not in METHOD_NAMES:
            raise ValueError(METHOD_NAME_ERROR.format(names=sorted(METHOD_NAMES),
                                                      actual=method))
        import importlib
        module, cls = METHOD_NAMES[method]
        method = getattr(importlib.import_module(module), cls)
    if isinstance(method, type) and issubclass(method, AttributionMethod):
        extra = ()
        if method.__name__ == "GradCAM":
            extra = (model.layers[model.default_layers["gradcam"]],)
        with sess.graph.as_default():
            return method(sess, model.imgs, logits_of(model), None, *extra, progress=False)
    if callable(method):        # built on model.imgs: robustness._MethodCall checks it
        return method
    raise TypeError(METHOD_NAME_ERROR.format(names=sorted(METHOD_NAMES), actual=method))


def logits_of(model):
    """The model's pre-softmax scores: ``logits``, or the course's VGG16's ``fc3l``."""
    return model.logits if hasattr(model, "logits") else model.fc3l


def fan_in(name, shape):
    """PyTorch's ``fan_in`` of a TF kernel: ``[kh, kw, cin, cout]`` -> kh·kw·cin (a
    depthwise kernel ``[kh, kw, C, m]``, named so, -> kh·kw), ``[in, out]`` -> in."""
    if len(shape) == 4:
        return int(shape[0] * shape[1] * (1 if "depthwise" in name else shape[2]))
    return int(shape[0]) if len(shape) >= 2 else int(np.prod(shape))


class Randomised:
    """A context in which layers' weights may be replaced (:meth:`randomise`,
    :meth:`restore`); on exit, whatever happened, every variable is put back exactly as it
    was. The assign ops (a placeholder and an assign per variable) are built once per
    graph; a frozen weight (a tensor) is replaced by feeding it: :attr:`feed`, to merge
    into the runs that should see the new weights."""

    def __init__(self, sess, layers):
        self.sess, self.layers = sess, layers
        weights = [v for group in layers.values() for _, v in group]
        self.assign = {v: cached_ops(sess.graph, ("assign", v.op.name), lambda v=v: _assign(v))
                       for v in weights if isinstance(v, tf.Variable)}
        self.saved = dict(zip(weights, sess.run(weights)))
        self.changed, self.feed = set(), {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.restore()
        return False

    def randomise(self, layer, rng):
        """New weights for ``layer``: ``U(±1/√fan_in)`` from ``rng``, in the group's order."""
        group = self.layers[layer]
        shapes = [self.saved[v].shape for _, v in group]
        kernel = next((i for i, shape in enumerate(shapes) if len(shape) >= 2), None)
        n = (fan_in(group[kernel][0], shapes[kernel]) if kernel is not None
             else int(np.prod(shapes[0])))
        bound = 1.0 / np.sqrt(n)
        values = {v: rng.uniform(-bound, bound, self.saved[v].shape).astype(
            self.saved[v].dtype) for _, v in group}
        self._set(values)

    def restore(self):
        """Every changed weight back to its saved value (one ``sess.run``)."""
        self.feed = {}
        if self.changed:
            values = {v: self.saved[v] for v in self.changed}
            self.sess.run([self.assign[v][1] for v in values],
                          {self.assign[v][0]: x for v, x in values.items()})
            self.changed.clear()

    def _set(self, values):
        assigned = {v: x for v, x in values.items() if v in self.assign}
        if assigned:
            self.sess.run([self.assign[v][1] for v in assigned],
                          {self.assign[v][0]: x for v, x in assigned.items()})
            self.changed.update(assigned)
        self.feed.update({v: x for v, x in values.items() if v not in self.assign})


def _assign(var):
    value = tf1.placeholder(var.dtype.base_dtype, var.shape, name="randomised_value")
    return value, tf1.assign(var, value)


def _progress(order, progress):
    if not progress:
        return order
    from tqdm.auto import tqdm
    return tqdm(order, desc="randomising layers", leave=False)


__all__ = ["ModelParameterRandomisation", "weight_layers", "Randomised", "fan_in", "steps",
           "block_of"]
