"""The memory figure: IG's peak memory at many steps against few, each in a fresh
process (benchmarks/README.md)."""
import json
import os
import resource
import subprocess
import sys
import time

from bench_common import (HERE, ROOT, build_model, fmt, has_homework_api, load_before, log,
                          table_row)

# --------------------------------------------------------------------------- memory

def _rss_kib():
    """``(VmRSS, VmHWM)`` of this process in KiB (``ru_maxrss`` for both off Linux)."""
    try:
        with open("/proc/self/status") as f:
            vals = dict(line.split(":", 1) for line in f if ":" in line)
        return int(vals["VmRSS"].split()[0]), int(vals["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return ru, ru


def _reset_peak():
    """Reset the kernel's peak-RSS mark (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_probe(model_name, steps, batch_size, rev=None):
    """In this (fresh) process: build the model, run IG on one image, return memory figures
    in MiB: ``rss_before``, ``peak`` (VmHWM after the call, reset before it), ``increment``
    (peak - rss_before), ``tracemalloc_peak`` (Python/numpy allocations during the call),
    ``ru_maxrss`` (the process's lifetime peak). ``rev``: the modules of that revision."""
    import tracemalloc
    import tensorflow as tf
    from hw3_attribution import new_session
    tf.compat.v1.disable_eager_execution()
    sess = new_session(tf.Graph())
    with sess.graph.as_default():
        model, X = build_model(model_name, sess, n_images=1)
        if rev is None:
            import hw3_attribution as A
        else:
            A = load_before(rev)["hw3_attribution"]
        if has_homework_api(A):
            ig = A.IntegratedGrad(sess, model.imgs, model.logits, 0, progress=False)

            def call():
                ig(X[:1], "black", batch_size, steps)
        else:   # e94ed74 and before: (model, sess)
            ig = A.IntegratedGrad(model, sess, batch_size=batch_size, progress=False)

            def call():
                ig(X[:1], 0, steps=steps)
        rss0, _ = _rss_kib()
        reset = _reset_peak()
        tracemalloc.start()
        t0 = time.perf_counter()
        call()
        seconds = time.perf_counter() - t0
        _, tm_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss1, hwm = _rss_kib()
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = hwm if reset else ru
    return {"rss_before": rss0 / 1024, "peak": peak / 1024,
            "increment": (peak - rss0) / 1024, "tracemalloc_peak": tm_peak / 2 ** 20,
            "ru_maxrss": ru / 1024, "peak_reset": reset, "seconds": seconds,
            "steps": steps, "batch_size": batch_size}


def memory_ratio(model_name, steps_pair, batch_size, rev=None, progress=log):
    """Run :func:`memory_probe` in a fresh subprocess per setting; returns both results."""
    out = []
    for steps in steps_pair:
        progress(f"memory: IG with {steps} steps, batch_size {batch_size} ({model_name}"
                 f"{', revision ' + rev if rev else ''}), fresh subprocess")
        cmd = [sys.executable, os.path.join(HERE, "run.py"), "--_memory-probe", model_name,
               str(steps), str(batch_size)] + ([rev] if rev else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"memory probe failed ({' '.join(cmd)}):\n{proc.stderr[-2000:]}")
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out




def memory_rows(memory_model, s, rev, progress=log):
    """The memory row: IG's peak at ``s.memory_steps[1]`` steps ÷ at ``[0]``."""
    def ratio_of(rv):
        a, b = memory_ratio(memory_model, s.memory_steps, s.memory_batch, rv, progress)
        inc = b["increment"] / a["increment"] if a["increment"] > 0 else float("inf")
        return inc, a, b

    inc, a, b = ratio_of(None)
    old_val, old_note = "—", ""
    if rev:
        o_inc, oa, ob = ratio_of(rev)
        old_val = fmt(o_inc)
        old_note = (f"; before: {oa['increment']:.0f} vs {ob['increment']:.0f} MiB, "
                    f"tracemalloc peak {oa['tracemalloc_peak']:.1f} vs "
                    f"{ob['tracemalloc_peak']:.1f} MiB")
    ok = inc <= 1.2
    return [table_row(
        f"peak memory of IG at {s.memory_steps[1]} steps ÷ at {s.memory_steps[0]} "
        f"(batch_size {s.memory_batch})", fmt(inc), "≤ 1.2", "met" if ok else "**not met**",
        f"peak RSS above the RSS before the call: {a['increment']:.0f} MiB vs "
        f"{b['increment']:.0f} MiB (whole process {a['peak']:.0f} vs {b['peak']:.0f} MiB, "
        f"{fmt(b['peak'] / a['peak'])}x); tracemalloc peak (numpy) "
        f"{a['tracemalloc_peak']:.1f} vs {b['tracemalloc_peak']:.1f} MiB; fresh "
        f"subprocess per setting, VmHWM reset before the call: {a['peak_reset']}"
        + old_note, old_val)]
