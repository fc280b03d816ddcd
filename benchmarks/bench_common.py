"""What every benchmark figure shares: settings, progress, the timed session proxy, the
raw model rates, the models and images, and an earlier revision's graded modules
(``--before REV``). See benchmarks/README.md for how each figure is measured."""
import importlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

GRADED = ("hw3_attribution", "hw3_infl", "hw3_evaluation")
# The row engine's per-row feed, one entry per row built in the graph: ``hw3_rows/front``
# (``hw3_rows/p`` before issue 18); a second copy of the graded modules in the same graph
# (``--before``) builds its own under ``hw3_rows_1``.
ROW_FEED = re.compile(r"^hw3_rows(_\d+)?/(front|p):")


def git_commit():
    """The project's short commit hash, or '?' where git cannot say."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True).stdout.strip() or "?"
    except OSError:
        return "?"


def loadavg():
    """The machine's 1, 5 and 15 minute load averages (NaN where the OS has none)."""
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def log(msg):
    """Progress on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Settings:
    """Budgets of one benchmark run (``FULL`` or ``QUICK``)."""
    batch_size: int = 16        # the toolkit's default: every method row runs at it
    batch_sizes: tuple = (8, 16, 32, 64)   # the raw reference table
    raw_rows: int = 64          # rows per raw measurement (at least two runs of the batch)
    rounds: int = 3             # repeats of every speed case; medians are reported
    images: int = 2             # images per IG / SmoothGrad / PAIR / homework-loop case
    steps: int = 50             # IG steps, SmoothGrad samples, PAIR steps
    infl_images: int = 64       # influence (distribution of interest), expert attribution
    occlusion_images: int = 1
    occlusion_superpixel: int = 8
    nord_M: int = 1000          # N_Ord pixels removed per step
    curve_superpixel: int = 8   # Insertion / Deletion
    curve_step: int = 8
    metric_images: int = 4
    ad_images: int = 128        # Average Drop: two rows per image
    budgets: tuple = (16, 64, 256)
    completeness_images: int = 0   # 0: every sample image
    memory_steps: tuple = (50, 1000)
    memory_batch: int = 16
    vc_timeout: int = 3600
    pair_method_images: int = 3   # XRAI and Blur IG beside PAIR's (bench_pair_methods)
    pair_method_steps: int = 100  # PAIR's default steps for both
    perturbation_images: int = 2  # LIME, KernelSHAP, RISE, feature ablation (issue 25):
    perturbation: object = None   # their bench_perturbation.Budgets (None: its FULL)


FULL = Settings()
QUICK = Settings(batch_size=4, batch_sizes=(1, 4), raw_rows=8, rounds=1, images=1, steps=8,
                 infl_images=4, occlusion_superpixel=56, nord_M=5000, curve_superpixel=16,
                 curve_step=16, metric_images=1, ad_images=4, budgets=(4, 8),
                 completeness_images=2, memory_steps=(8, 40), memory_batch=8,
                 pair_method_images=1, pair_method_steps=8, perturbation_images=1,
                 perturbation="quick")



# ------------------------------------------------------------------ session plumbing

class TimedSession:
    """A session proxy that counts the rows each ``run`` evaluates and times every run.

    A run evaluates the rows fed to the model's input, or (the toolkit's in-graph rows)
    one row per entry of the row engine's per-row feed (:data:`ROW_FEED`).
    """

    def __init__(self, sess, imgs):
        self._sess, self._imgs = sess, imgs
        self.graph = sess.graph
        self.reset()

    def reset(self):
        self.rows = self.calls = 0
        self.run_seconds = 0.0

    def __getattr__(self, name):
        return getattr(self._sess, name)

    def run(self, fetches, feed_dict=None, **kwargs):
        for t, v in (feed_dict or {}).items():
            if t is self._imgs or ROW_FEED.match(getattr(t, "name", "")):
                self.rows += len(v)
                break
        self.calls += 1
        t0 = time.perf_counter()
        try:
            return self._sess.run(fetches, feed_dict, **kwargs)
        finally:
            self.run_seconds += time.perf_counter() - t0



def predicted(model, sess, X, batch_size=32):
    """Predicted classes ``int32 [N]``."""
    out = [sess.run(model.logits, {model.imgs: X[i:i + batch_size]}).argmax(axis=1)
           for i in range(0, len(X), batch_size)]
    return np.concatenate(out).astype(np.int32)


def raw_rate(model, sess, X, kind, batch_size, rows):
    """Rows per second of the bare model: ``kind`` 'forward' (logits) or 'gradient'
    (d logit_c / d x), on a prepared batch of ``batch_size`` rows, at least 2 runs."""
    from hw3_attribution import model_ops
    ops = model_ops(model.imgs, model.logits)
    batch = np.ascontiguousarray(X[np.arange(batch_size) % len(X)], np.float32)
    if kind == "forward":
        fetch, feed = model.logits, {model.imgs: batch}
    else:
        fetch = ops.grad
        feed = {model.imgs: batch, ops.target: np.zeros(batch_size, np.int32)}
    calls = max(2, -(-rows // batch_size))
    t0 = time.perf_counter()
    for _ in range(calls):
        sess.run(fetch, feed)
    return calls * batch_size / (time.perf_counter() - t0)


def raw_throughput(model, sess, X, s):
    """Raw forward and forward+backward rows/s per batch size (medians over rounds).

    Returns ``table[bs] = {'forward': r, 'gradient': r}`` for every size of
    ``s.batch_sizes`` and ``s.batch_size``.
    """
    sizes = sorted(set(s.batch_sizes) | {s.batch_size})
    for bs in sizes:  # warm-up: the first run at each shape allocates
        for kind in ("forward", "gradient"):
            raw_rate(model, sess, X, kind, bs, 1)
    samples = {bs: {"forward": [], "gradient": []} for bs in sizes}
    for r in range(s.rounds):
        for bs in sizes:
            for kind in ("forward", "gradient"):
                samples[bs][kind].append(raw_rate(model, sess, X, kind, bs,
                                                  max(s.raw_rows, 2 * bs)))
        log(f"raw throughput round {r + 1}/{s.rounds}: " + ", ".join(
            f"bs {bs}: {samples[bs]['forward'][-1]:.1f} fwd/s {samples[bs]['gradient'][-1]:.1f}"
            f" grad/s" for bs in sizes))
    return {bs: {k: float(np.median(v)) for k, v in d.items()} for bs, d in samples.items()}


# ------------------------------------------------------------------ before (git REV)

def load_before(rev):
    """The graded modules as they were at git revision ``rev``, imported under the names
    ``before_hw3_*`` from a temporary folder (their imports of each other renamed)."""
    folder = tempfile.mkdtemp(prefix="bench_before_")
    for name in GRADED:
        src = subprocess.run(["git", "show", f"{rev}:{name}.py"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        src = re.sub(r"\bfrom (hw3_attribution|hw3_infl|hw3_evaluation) import",
                     r"from before_\1 import", src)
        with open(os.path.join(folder, f"before_{name}.py"), "w") as f:
            f.write(src)
    sys.path.insert(0, folder)
    mods = {name: importlib.import_module(f"before_{name}") for name in GRADED}
    sys.path.remove(folder)
    return mods


def has_homework_api(attribution_module):
    """True when a revision's ``hw3_attribution`` has the homework's API,
    ``IntegratedGrad(sess, input_tensor, ...)``; False for e94ed74's ``(model, sess)``."""
    import inspect
    params = inspect.signature(attribution_module.IntegratedGrad).parameters
    return list(params)[0] == "sess"


def before_tree(rev):
    """The whole project at ``rev`` in a temporary folder (for its hw3_vc.py)."""
    folder = tempfile.mkdtemp(prefix="bench_before_tree_")
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder


# --------------------------------------------------------------------------- models

def vgg16_random(sess, seed=0):
    """VGG16 with He-initialised random weights (no weights file needed)."""
    from vgg16 import VGG16, WEIGHT_SHAPES
    rng = np.random.default_rng(seed)
    model = VGG16()
    weights = OrderedDict()
    for layer, (w_shape, b_shape) in WEIGHT_SHAPES.items():
        fan_in = int(np.prod(w_shape[:-1]))
        weights[layer] = (rng.normal(0.0, np.sqrt(2.0 / fan_in), w_shape).astype(np.float32),
                          np.zeros(b_shape, np.float32))
    model.assign_weights(weights, sess)
    return model


def build_model(name, sess, n_images=None):
    """``(model, X)`` for 'efficientnet_lite0', 'vgg16_random' or 'tiny' (tests/models.py),
    built in ``sess.graph``; X are the bundled sample photos (random images for tiny)."""
    if name == "tiny":
        sys.path.insert(0, os.path.join(ROOT, "tests"))
        from models import tiny_convnet
        model = tiny_convnet()
        X = np.random.default_rng(0).uniform(0, 255, (n_images or 3, 16, 16, 3))
        return model, X.astype(np.float32)
    from hw3_utils import get_model, load_samples
    model = vgg16_random(sess) if name == "vgg16_random" else get_model(sess, name)
    X, _, _ = load_samples()
    X = X.astype(np.float32)
    return model, (X[:n_images] if n_images else X)


def graph_model(name, n_images=None):
    """``(sess, model, X)``: :func:`build_model` in a new graph-mode session."""
    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    sess = tf.compat.v1.Session(graph=tf.Graph())
    with sess.graph.as_default():
        model, X = build_model(name, sess, n_images)
    return sess, model, X


def emit(text, out=None):
    """Print a benchmark's table, and write it atomically to ``out`` when given."""
    print(text)
    if out:
        from run import write_atomic
        write_atomic(out, text)


# ---------------------------------------------------------------------------- table

def fmt(v, digits=3):
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}g}"




def table_row(figure, value, goal, status, note="", before="—"):
    """One row of the table: ``(figure, before, after, goal, status, notes)``."""
    return (figure, before, value, goal, status, note)


def raw_rows(table, bs):
    """The raw model rates (images/s) at ``bs``, the reference of every ratio."""
    rows = []
    for kind, what in (("forward", "forward"), ("gradient", "forward+backward")):
        best = max(table, key=lambda b: table[b][kind])
        rows.append(table_row(
            f"raw {what} throughput (images/s) at batch_size {bs}", f"{table[bs][kind]:.1f}",
            "reference", "—", "all sizes: " + ", ".join(f"bs {b}: {table[b][kind]:.1f}"
                                                         for b in table)
            + f"; best bs {best}"))
    return rows
