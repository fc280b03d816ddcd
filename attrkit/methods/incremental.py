"""Exact incremental inference for occlusion: an occluded copy recomputes only the window of
each early layer that its patch can change, from the unoccluded image's activations, and
runs the rest of the network as it is (Krypton: Nakandala, Kumar and Ioannidis, SIGMOD 2019).

``Occlusion`` uses it whenever the plan is exact and predicted faster (``incremental=None``);
:class:`IncrementalOps` is the plan of one model for one patch size and image size:

- Walking the model's ops from the input placeholder, each op's output gets a **window**:
  per patch position, the rows and columns that the patch can change (an :class:`Axis` per
  spatial axis). Conv2D and depthwise convolutions (stride, padding, dilation) and max and
  average pooling widen it by their receptive field; element-wise ops (bias, batch norm at
  inference, activations, arithmetic with per-channel constants) keep it; ``Add`` of two
  branches takes the union of theirs; a constant ``Pad`` shifts it. Every patch position
  shares one window size per tensor (clamped inside the map), so the windowed ops run on a
  batch of patches at once.
- A windowed op runs on a region gathered from its input: the input's recomputed window
  where the region overlaps it, the unoccluded image's cached activations elsewhere, and
  the op's padding value outside the map (one ``tf.gather`` from the three stacked).
- The walk stops at an op whose window would cover its whole map, or that mixes the map (a
  global pool, a reshape before a dense layer, a squeeze-excite gate): its inputs are
  spliced into the cached maps in full and the rest of the model is copied onto them.

Exact: every value is the model's own op on the same numbers (to float32 rounding, as a
different batch size rounds). Cost per image: one run of the unoccluded image for the
caches, then one run per chunk of at most ``batch_size`` patches.
"""
import numpy as np
import tensorflow as tf

from hw3_attribution import (_ops_between, cached_ops, chunk_slices, copy_ops,
                             descendants, tqdm)

tf1 = tf.compat.v1

ELEMENTWISE = frozenset({
    "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Sigmoid", "Tanh", "Softplus", "Softsign",
    "Neg", "Abs", "Square", "Sqrt", "Rsqrt", "Exp", "Erf", "Cast", "Identity", "BiasAdd",
    "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "Add", "AddV2", "Sub", "Mul",
    "RealDiv", "Maximum", "Minimum", "SquaredDifference"})
SPATIAL = frozenset({"Conv2D", "DepthwiseConv2dNative", "MaxPool", "AvgPool"})
PADS = frozenset({"Pad", "PadV2"})
LOWEST = float(np.finfo(np.float32).min)      # max pooling's padding
MIN_SAVED_MACS = 5e7        # multiply-adds a patch must save for the plan to be worth it
MIN_SPEEDUP = 1.2           # and the predicted ratio of the full model's to the plan's


class Axis:
    """One spatial axis of a tensor's window: for each patch position along the axis, the
    positions ``[lo, hi]`` that can change, and the recomputed window ``[start, start +
    size)``, one size for every position, inside the map of ``length``."""

    def __init__(self, lo, hi, length):
        self.lo = np.clip(lo, 0, length - 1)
        self.hi = np.maximum(np.clip(hi, 0, length - 1), self.lo)
        self.length = length
        self.size = int((self.hi - self.lo + 1).max())
        self.start = np.clip(self.lo, 0, length - self.size)

    @classmethod
    def nowhere(cls, length):
        """An empty window: regions read only the map."""
        axis = cls.__new__(cls)
        axis.lo = axis.hi = axis.start = np.zeros(length, np.int64)
        axis.length, axis.size = length, 0
        return axis

    def same(self, other):
        return self.size == other.size and np.array_equal(self.start, other.start)

    @staticmethod
    def union(axes):
        return Axis(np.min([a.lo for a in axes], 0), np.max([a.hi for a in axes], 0),
                    axes[0].length)


class Window:
    """A tensor's window (``rows``, ``cols``: :class:`Axis`) and its recomputed values
    ``value`` ``[R, rows.size, cols.size, C]`` for the R patches of a chunk."""

    def __init__(self, tensor, rows, cols, value):
        self.tensor, self.rows, self.cols, self.value = tensor, rows, cols, value
        self.channels = int(tensor.shape[-1])


class Gather:
    """A region ``[R, rh, rw, C]`` of ``window``'s tensor: per patch, rows ``q_rows[i] +
    [0, rh)`` and columns ``q_cols[j] + [0, rw)``, read from the window, else from the cached
    map, else ``pad`` (outside the map). ``index`` is fed per chunk (:meth:`feed`)."""

    def __init__(self, window, cache, q_rows, rh, q_cols, rw, pad=0.0):
        self.window, self.q_rows, self.rh, self.q_cols, self.rw = window, q_rows, rh, q_cols, rw
        self.index = tf1.placeholder(tf.int32, [None, rh, rw], name="region_index")
        c = window.channels
        source = tf.concat([cache, tf.fill([1, c], pad), tf.reshape(window.value, [-1, c])], 0)
        self.value = tf.gather(source, self.index)
        self.outside = window.tensor.shape[1] * window.tensor.shape[2]   # the pad's index

    def feed(self, i, j):
        """The index of patches at rows ``i`` and columns ``j`` (position arrays)."""
        w = self.window
        return region_index(w.tensor.shape[1], w.tensor.shape[2], w.rows.size, w.cols.size,
                            w.rows.start[i], w.cols.start[j], self.q_rows[i], self.rh,
                            self.q_cols[j], self.rw)


def region_index(h, w, wh, ww, sr, sc, qr, rh, qc, rw):
    """Indices into ``concat([map [h·w], pad [1], windows [R·wh·ww]])`` of the regions that
    start at ``(qr, qc)`` ``[R]``, of windows that start at ``(sr, sc)``."""
    rows = qr[:, None] + np.arange(rh)                       # [R, rh]
    cols = qc[:, None] + np.arange(rw)                       # [R, rw]
    wr, wc = rows - sr[:, None], cols - sc[:, None]
    in_window = (((wr >= 0) & (wr < wh))[:, :, None] & ((wc >= 0) & (wc < ww))[:, None, :])
    in_map = (((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :])
    window_base = h * w + 1 + np.arange(len(qr))[:, None, None] * (wh * ww)
    idx = np.where(in_window, window_base + wr[:, :, None] * ww + wc[:, None, :],
                   np.where(in_map, rows[:, :, None] * w + cols[:, None, :], h * w))
    return idx.astype(np.int32)


def spatial_geometry(op):
    """``(kernel, stride, dilation, pad_before)`` per spatial axis of a Conv2D, depthwise
    convolution or pooling op in NHWC, or None when it is not NHWC."""
    attr = op.node_def.attr
    if attr["data_format"].s not in (b"NHWC", b""):
        return None
    if op.type in ("MaxPool", "AvgPool"):
        kernel, dilation = list(attr["ksize"].list.i)[1:3], [1, 1]
    else:
        kernel = op.inputs[1].shape.as_list()[:2]
        dilation = list(attr["dilations"].list.i)[1:3] or [1, 1]
    stride = list(attr["strides"].list.i)[1:3]
    padding = attr["padding"].s
    n_in, n_out = op.inputs[0].shape.as_list()[1:3], op.outputs[0].shape.as_list()[1:3]
    pads = []
    for a in range(2):
        if padding == b"VALID":
            pads.append(0)
        elif padding == b"EXPLICIT":
            pads.append(int(attr["explicit_paddings"].list.i[2 + 2 * a]))
        else:   # SAME: TensorFlow puts the odd pixel after
            span = (n_out[a] - 1) * stride[a] + (kernel[a] - 1) * dilation[a] + 1
            pads.append(max(span - n_in[a], 0) // 2)
    return kernel, stride, dilation, pads


def widened(axis, kernel, stride, dilation, pad, n_out):
    """The output axis of an op whose input can change on ``axis``."""
    lo = -((-(axis.lo + pad - (kernel - 1) * dilation)) // stride)      # ceil
    hi = (axis.hi + pad) // stride
    return Axis(lo, hi, n_out)


def conv_macs(op, rows, cols):
    """Multiply-adds of a convolution op over ``rows x cols`` outputs (0 for other ops)."""
    if op.type not in ("Conv2D", "DepthwiseConv2dNative", "MatMul"):
        return 0
    kernel = op.inputs[1].shape.as_list()
    return rows * cols * int(np.prod(kernel))


class IncrementalOps:
    """The incremental plan of one model for patches of ``size`` on images of ``height x
    width``, and its ops unless ``build`` is False (a plan only: the windows, the op lists
    and :attr:`macs`, nothing added to the graph). Built once per graph and key:
    :func:`incremental_plan`, :func:`incremental_ops`."""

    def __init__(self, x, out, size, height, width, build=True):
        self.x, self.out, self.build = x, out, build
        self.down = descendants(x.op)
        self.caches, self.gathers, self.windows, self.scope_of = {}, [], {}, {}
        positions = (np.arange(height - size + 1), np.arange(width - size + 1))
        rows, cols = (Axis(p, p + size - 1, n) for p, n in zip(positions, (height, width)))
        with tf1.name_scope("incremental"):
            patch = None
            if build:
                self.baseline = tf1.placeholder(tf.float32, [height * width, x.shape[-1]],
                                                name="baseline")
                nowhere = Window(x, Axis.nowhere(height), Axis.nowhere(width),
                                 tf.zeros([0, 1, 1, x.shape[-1]]))
                patch = Gather(nowhere, self.baseline, rows.start, size, cols.start, size)
                self.gathers.append(patch)
            self.windows[x.name] = Window(x, rows, cols, patch and patch.value)
            ops = _ops_between(x, [out])
            plannable = static(x) and x.dtype == tf.float32
            self.windowed = [op for op in ops if plannable and self._windowed(op)]
            self.rest = [op for op in ops if op not in set(self.windowed)]
            if build:
                self._build_rest()
        self.macs = self._macs(self.windowed, self.rest)

    def _build_rest(self):
        """The rest of the model, copied onto the windows it reads spliced into full maps,
        and the target's score of each row."""
        full = {}
        for t in (t for op in self.rest for t in op.inputs):
            if t.name in self.windows and t.name not in full:
                full[t.name] = self._full(self.windows[t.name])
        (logits,) = copy_ops(self.x.graph, self.rest, full, [self.out], name="rest")
        self.target = tf1.placeholder(tf.int32, [None], name="target")
        self.score = tf.gather(logits, self.target, axis=1, batch_dims=1)

    # ---------------------------------------------------------------------------- the walk
    def _depends(self, t):
        return t.op is self.x.op or t.op in self.down

    def _windowed(self, op):
        """Give ``op``'s output a window, if it can have one; True when it did. The ops
        built for it are in a name scope of its own (:attr:`scope_of`, for traces)."""
        kind = (self._spatial if op.type in SPATIAL else self._padded if op.type in PADS
                else self._elementwise if op.type in ELEMENTWISE else None)
        if kind is None or not static(op.outputs[0]):
            return False
        with tf1.name_scope(op.name.replace("/", "_")) as scope:
            window = kind(op)
        if window is not None:
            self.windows[op.outputs[0].name] = window
            self.scope_of[op.name] = scope
        return window is not None

    def _spatial(self, op):
        src = self.windows.get(op.inputs[0].name)
        geometry = spatial_geometry(op)
        if src is None or geometry is None or any(self._depends(t) for t in op.inputs[1:]):
            return None
        kernel, stride, dilation, pads = geometry
        n_out = op.outputs[0].shape.as_list()[1:3]
        axes = [widened(a, kernel[k], stride[k], dilation[k], pads[k], n_out[k])
                for k, a in enumerate((src.rows, src.cols))]
        if all(a.size >= a.length for a in axes):
            return None                     # covers its map: the rest of the model runs it
        starts = [a.start * stride[k] - pads[k] for k, a in enumerate(axes)]
        spans = [(a.size - 1) * stride[k] + (kernel[k] - 1) * dilation[k] + 1
                 for k, a in enumerate(axes)]
        value = None
        if self.build:
            pad = LOWEST if op.type == "MaxPool" else 0.0
            region = self._gather(src, starts[0], spans[0], starts[1], spans[1], pad)
            value = self._apply(op, region, stride, dilation, kernel)
        return Window(op.outputs[0], axes[0], axes[1], value)

    def _apply(self, op, region, stride, dilation, kernel):
        """``op`` on a gathered region, without padding (the region holds it)."""
        strides = [1, stride[0], stride[1], 1]
        if op.type == "Conv2D":
            return tf.nn.conv2d(region.value, op.inputs[1], strides, "VALID",
                                dilations=[1, dilation[0], dilation[1], 1])
        if op.type == "DepthwiseConv2dNative":
            return tf1.nn.depthwise_conv2d_native(region.value, op.inputs[1], strides, "VALID",
                                                 dilations=[1, dilation[0], dilation[1], 1])
        ksize = [1, kernel[0], kernel[1], 1]
        if op.type == "MaxPool":
            return tf.nn.max_pool2d(region.value, ksize, strides, "VALID")
        # average pooling divides by the pixels inside the map, as SAME padding does
        inside = tf.cast(tf.not_equal(region.index, region.outside), tf.float32)[..., None]
        return (tf.nn.avg_pool2d(region.value, ksize, strides, "VALID")
                / tf.nn.avg_pool2d(inside, ksize, strides, "VALID"))

    def _padded(self, op):
        src = self.windows.get(op.inputs[0].name)
        if src is None or any(self._depends(t) for t in op.inputs[1:]):
            return None
        pads = tf.get_static_value(op.inputs[1])
        if pads is None or op.node_def.attr["mode"].s not in (b"", b"CONSTANT") \
                or np.any(pads[[0, 3]]):
            return None
        n_out = op.outputs[0].shape.as_list()[1:3]
        axes = [Axis(a.lo + pads[k + 1][0], a.hi + pads[k + 1][0], n_out[k])
                for k, a in enumerate((src.rows, src.cols))]
        return Window(op.outputs[0], axes[0], axes[1], src.value)

    def _elementwise(self, op):
        out = op.outputs[0]
        if out.shape.rank != 4 or any(t.consumers() for t in op.outputs[1:]):
            return None
        inside = [t for t in op.inputs if self._depends(t)]
        if any(t.name not in self.windows for t in inside):
            return None                      # reads a tensor that mixes the map
        for t in op.inputs:
            if not self._depends(t) and not per_channel(t):
                return None
        srcs = [self.windows[t.name] for t in inside]
        if any(s.tensor.shape.as_list()[1:3] != out.shape.as_list()[1:3] for s in srcs):
            return None
        rows, cols = srcs[0].rows, srcs[0].cols
        same = all(s.rows.same(rows) and s.cols.same(cols) for s in srcs)
        if not same:
            rows, cols = Axis.union([s.rows for s in srcs]), Axis.union([s.cols for s in srcs])
        if not self.build:
            return Window(out, rows, cols, None)
        values = {s.tensor.name: s.value if same else self._gather(
            s, rows.start, rows.size, cols.start, cols.size).value for s in srcs}
        if op.type == "Identity":
            return Window(out, rows, cols, values[inside[0].name])
        (value,) = copy_ops(op.graph, [op], values, [out], name="window")
        return Window(out, rows, cols, value)

    # ------------------------------------------------------------------------ the regions
    def _gather(self, src, q_rows, rh, q_cols, rw, pad=0.0):
        g = Gather(src, self._cache(src.tensor), q_rows, rh, q_cols, rw, pad)
        self.gathers.append(g)
        return g

    def _cache(self, t):
        """The placeholder fed with ``t``'s unoccluded map ``[h·w, C]``."""
        if t.name not in self.caches:
            shape = t.shape.as_list()
            self.caches[t.name] = tf1.placeholder(
                tf.float32, [shape[1] * shape[2], shape[3]], name="cache")
        return self.caches[t.name]

    def _full(self, window):
        """``window``'s tensor in full ``[R, h, w, C]``: the window spliced into the map."""
        h, w = window.tensor.shape.as_list()[1:3]
        zero_r, zero_c = (np.zeros_like(a.start) for a in (window.rows, window.cols))
        return self._gather(window, zero_r, h, zero_c, w).value

    def _macs(self, windowed, rest):
        """Multiply-adds per patch ``(incremental, full model)`` of the convolutions and
        dense layers."""
        def full(op):      # a size the graph does not know counts as 1
            shape = op.outputs[0].shape
            dims = shape.as_list()[1:3] if shape.rank == 4 else (1, 1)
            return conv_macs(op, *(d or 1 for d in dims))
        window = sum(conv_macs(op, self.windows[op.outputs[0].name].rows.size,
                               self.windows[op.outputs[0].name].cols.size) for op in windowed)
        rest_macs = sum(full(op) for op in rest)
        return window + rest_macs, sum(full(op) for op in windowed) + rest_macs

    @property
    def worth_it(self):
        """True when the plan is predicted faster than running every copy in full."""
        incremental, whole = self.macs
        return whole - incremental >= MIN_SAVED_MACS and whole >= MIN_SPEEDUP * incremental

    # --------------------------------------------------------------------------- running
    def scores(self, runner, X, baselines, corners, targets, batch_size, desc="occlusion"):
        """``f_c`` of every occluded copy, ``[N, P]``: image ``n`` with the patch at
        ``corners[p]`` replaced by its baseline (``baselines``: None for black, else
        ``[1 or N, H, W, C]``)."""
        names = list(self.caches)
        fetch = [self.x.graph.get_tensor_by_name(name) for name in names]
        n, P = len(X), len(corners)
        out = np.empty((n, P), np.float32)
        H, W, C = X.shape[1:]
        chunks = [(sl, {g.index: g.feed(*corners[sl].T) for g in self.gathers})
                  for sl in chunk_slices(P, batch_size)]        # the same for every image
        with tqdm(total=n * P, desc=desc, unit="row", leave=False,
                  disable=(not runner.progress) or n * P <= batch_size) as bar:
            for k in range(n):
                values = runner.run(fetch, {self.x: X[k:k + 1]})
                feed = {self.caches[name]: v.reshape(-1, v.shape[-1])
                        for name, v in zip(names, values)}
                feed[self.baseline] = (np.zeros((H * W, C), np.float32) if baselines is None
                                       else baselines[min(k, len(baselines) - 1)]
                                       .reshape(H * W, C))
                for sl, index in chunks:
                    rows = sl.stop - sl.start
                    feed.update(index)
                    feed[self.target] = np.full(rows, targets[k], np.int32)
                    out[k, sl] = runner.run(self.score, feed)
                    bar.update(rows)
        return out


def static(t):
    """True for a float map ``[N, h, w, C]`` whose h, w and C the graph knows."""
    return t.shape.rank == 4 and None not in t.shape.as_list()[1:]


def per_channel(t):
    """True when the constant operand ``t`` varies at most along channels (no spatial
    extent), so that it applies to a window as to the whole map."""
    shape = t.shape
    if shape.rank is None:
        return False
    dims = shape.as_list()
    return len(dims) < 3 or (dims[-3] == 1 and dims[-2] == 1)


def incremental_plan(x, out, size, height, width):
    """The plan of :class:`IncrementalOps` (no op built), once per graph and key."""
    return cached_ops(x.graph, ("incremental_plan", x.name, out.name, size, height, width),
                      lambda: IncrementalOps(x, out, size, height, width, build=False))


def incremental_ops(x, out, size, height, width):
    """The :class:`IncrementalOps` of a model for one patch size and image size, built once
    per graph."""
    return cached_ops(x.graph, ("incremental", x.name, out.name, size, height, width),
                      lambda: IncrementalOps(x, out, size, height, width))
