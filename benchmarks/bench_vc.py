"""The ``hw3_vc.py`` figure: the main job's wall time against its passes at the raw
rates (benchmarks/README.md)."""
import json
import os
import re
import subprocess
import time

from bench_common import ROOT, fmt, log, table_row

# --------------------------------------------------------------------------- hw3_vc

PASSES_RE = re.compile(r"passes:\s*forwards=(\d+)\s+gradients=(\d+)")


def vc_measure(cmd, out_dir, timeout, progress=log, cwd=ROOT):
    """Run the hw3_vc command; return ``{'forwards', 'gradients', 'seconds', 'wall'}``.

    ``seconds`` is the script's own (``run_stats.json``) when it writes one, else the wall
    time of the subprocess.
    """
    progress("hw3_vc: " + " ".join(cmd))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n"
                           f"{proc.stderr[-2000:]}")
    stats_path = os.path.join(out_dir, "run_stats.json")
    stats = {}
    if os.path.isfile(stats_path):
        with open(stats_path) as f:
            stats = json.load(f)
    m = PASSES_RE.search(proc.stdout)
    forwards = int(stats.get("forwards", m.group(1) if m else -1))
    gradients = int(stats.get("gradients", m.group(2) if m else -1))
    if forwards < 0 or gradients < 0:
        raise RuntimeError("hw3_vc printed no 'passes: forwards=<int> gradients=<int>' line "
                           "and wrote no run_stats.json")
    return {"forwards": forwards, "gradients": gradients,
            "seconds": float(stats.get("seconds", wall)), "wall": wall,
            "parts": stats.get("parts")}


def vc_profile(cmd, out_dir, timeout, raw_f, raw_g, progress=log, cwd=ROOT):
    """Run the hw3_vc command again under cProfile; say where its time went."""
    import pstats
    prof = os.path.join(out_dir, "vc.prof")
    pcmd = [cmd[0], "-m", "cProfile", "-o", prof] + cmd[1:]
    progress("hw3_vc missed its goal: profiling it (cProfile)")
    try:
        v = vc_measure(pcmd, out_dir, timeout, progress, cwd)
        st = pstats.Stats(prof).stats
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        return f"profile failed: {str(e).splitlines()[0][:200]}"

    def cum(fn_name, file_part):
        return max([v_[3] for k, v_ in st.items()
                    if k[2] == fn_name and file_part in k[0]] + [0.0])

    runs = [(v_[0], v_[3]) for k, v_ in st.items()
            if k[2] == "run" and k[0].endswith("client/session.py")]
    n_runs, t_run = max(runs, key=lambda r: r[1]) if runs else (0, 0.0)
    t_total = max(v_[3] for v_ in st.values())
    t_build = cum("get_model", "hw3_utils") + cum("load_ImageNet", "hw3_utils")
    ideal = v["forwards"] / raw_f + v["gradients"] / raw_g
    return (f"profile (cProfile, {t_total:.0f} s; the main thread's view, figures are "
            f"drawn in a background thread): sess.run {t_run:.0f} s over {n_runs} runs "
            f"({ideal:.0f} s of passes at raw rates, so the runs themselves are at "
            f"{ideal / max(t_run, 1e-9):.2f}x raw), model and data loading {t_build:.0f} s, "
            f"everything else {t_total - t_run - t_build:.0f} s")


def vc_row(cmd, out_dir, s, raw_f, raw_g, progress, cwd=ROOT, profile=True):
    """``(ratio, note)`` of a hw3_vc run: its wall time ÷ its passes at the raw rates."""
    v = vc_measure(cmd, out_dir, s.vc_timeout, progress, cwd)
    ideal = v["forwards"] / raw_f + v["gradients"] / raw_g
    ratio = v["seconds"] / ideal
    note = (f"{v['seconds']:.1f} s for {v['forwards']} forwards + {v['gradients']} "
            f"gradients = {ideal:.1f} s at the raw rates of bs {s.batch_size} (subprocess "
            f"wall {v['wall']:.1f} s)")
    if v.get("parts"):
        note += "; parts: " + ", ".join(f"{k} {t:.0f} s" for k, t in v["parts"].items())
    if profile and ratio > VC_GOAL:
        note += "; " + vc_profile(cmd, out_dir, s.vc_timeout, raw_f, raw_g, progress, cwd)
    return ratio, note


VC_GOAL = 1.15



def vc_rows(vc_cmd, before_vc, s, raw_f, raw_g, rev, progress=log):
    """The hw3_vc row: ``vc_cmd`` ``(cmd, out_dir)``, or the reason it is not measured;
    ``before_vc`` the earlier revision's ``(cmd, out_dir, cwd)`` or None."""
    quick = not isinstance(vc_cmd, str) and "--quick" in vc_cmd[0]
    fig = (f"hw3_vc.py{' --quick' if quick else ''}: wall ÷ (forwards/raw fwd + "
           "gradients/raw fwd+bwd)")
    if isinstance(vc_cmd, str):
        return [table_row(fig, "not measured", f"≤ {VC_GOAL}", "—", vc_cmd)]
    old_val, old_note = "—", ""
    if before_vc is not None:
        try:
            r_old, n_old = vc_row(before_vc[0], before_vc[1], s, raw_f, raw_g,
                                  progress, cwd=before_vc[2], profile=False)
            old_val, old_note = fmt(r_old), f"; before ({rev}): {n_old}"
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            old_val, old_note = "failed", f"; before: {str(e).splitlines()[0][:200]}"
    try:
        ratio, note = vc_row(vc_cmd[0], vc_cmd[1], s, raw_f, raw_g, progress)
        return [table_row(fig, fmt(ratio), f"≤ {VC_GOAL}",
                          "met" if ratio <= VC_GOAL else "**not met**", note + old_note,
                          old_val)]
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return [table_row(fig, "failed", f"≤ {VC_GOAL}", "**not measured**",
                          str(e).splitlines()[0][:300], old_val)]
