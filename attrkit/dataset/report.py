"""The tables of ``explain_dataset.py``: the rows of every finished shard, each method's
mean with a 95% confidence interval per metric, the influence experts merged exactly from
the shards' partial sums, and what was skipped; written through the one atomic writer.
"""
import json
import os
import warnings

import numpy as np

from attrkit.dataset.engine import (METHOD_TITLES, METRIC_COLUMNS, ROW_COLUMNS, SKIPPED_COLUMNS,
                            _dtype, shard_path, write_bytes, write_text)


# ---------------------------------------------------------------------- the outputs

def read_shards(out, shards):
    """Concatenate the shard files of ``shards``: (row columns, skipped, partials, metas)."""
    rows = {c: [] for c, _ in ROW_COLUMNS}
    skipped, partials, metas = [], [], []
    for sh in shards:
        path = shard_path(out, sh["name"])
        if not os.path.isfile(path):
            continue
        items = sh["items"]
        with np.load(path, allow_pickle=False) as f:
            slots = f["row_slot"]
            for c, _ in ROW_COLUMNS:
                col = f[f"row_{c}"]
                if c in ("index", "input", "item", "image_id"):   # from the current plan
                    col = np.array([items[k][c] for k in slots],
                                   dtype=str if c in ("input", "item") else np.int64)
                rows[c].append(col)
            for k in f["skipped_slot"]:
                it = items[int(k)]
                i = int(np.flatnonzero(f["skipped_slot"] == k)[0])
                skipped.append({"index": it["index"], "input": it["input"],
                                "item": it["item"], "reason": str(f["skipped_reason"][i])})
            if "infl_classes" in f.files:
                partials.append({k: f[k] for k in f.files if k.startswith("infl_")})
            metas.append(json.loads(str(f["meta"])))
    cols = {c: (np.concatenate(v) if v else np.array([], dtype=_dtype(t)))
            for (c, t), v in zip(ROW_COLUMNS, rows.values())}
    return cols, skipped, partials, metas


def sort_rows(cols, methods):
    order = {m: k for k, m in enumerate(methods)}
    key = np.array([order.get(str(m), len(order)) for m in cols["method"]], np.int64)
    idx = np.lexsort((key, cols["index"]))
    return {c: v[idx] for c, v in cols.items()}


def write_parquet(path, cols):
    import pyarrow as pa
    import pyarrow.parquet as pq
    types = {"int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(),
             "str": pa.string()}
    table = pa.table({c: pa.array(cols[c].tolist(), type=types[t]) for c, t in ROW_COLUMNS})
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    return write_bytes(path, buf.getvalue().to_pybytes())


def mean_ci(values, level=0.95):
    """``(n, mean, low, high)`` of the finite values: Student-t interval of the mean."""
    from scipy import stats
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return 0, np.nan, np.nan, np.nan
    mean = float(v.mean())
    if n == 1:
        return 1, mean, np.nan, np.nan
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / np.sqrt(n))
    return n, mean, mean - half, mean + half


def summarise(cols, methods):
    """Long-form summary rows: method, metric, n, mean, ci_low, ci_high."""
    out = []
    for m in methods:
        sel = cols["method"] == m
        if not sel.any():
            continue
        for c, title, _ in METRIC_COLUMNS:
            n, mean, lo, hi = mean_ci(cols[c][sel])
            if n:
                out.append({"method": m, "metric": c, "title": title, "n": n, "mean": mean,
                            "ci_low": lo, "ci_high": hi})
    return out


def merge_experts(partials, settings, explainer_infl, class_name):
    """Merge the shard partials (hw3_infl.merge) overall and per true class; the expert of
    each with ``InflDirected.expert_from_partial``."""
    from hw3_infl import InactiveExpertWarning, InfluencePartial, merge
    per_class = {}
    for p in partials:
        for k, c in enumerate(p["infl_classes"]):
            per_class.setdefault(int(c), []).append(InfluencePartial(
                p["infl_grad_sum"][k], int(p["infl_count"][k]), p["infl_act_sum"][k],
                p["infl_active_count"][k], str(p["infl_layer"]), str(p["infl_qoi"])))
    if not per_class:
        return []
    scopes = [("all", merge([q for qs in per_class.values() for q in qs]))]
    scopes += [(c, merge(per_class[c])) for c in sorted(per_class)]
    rows = []
    for scope, part in scopes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InactiveExpertWarning)
            top = explainer_infl.expert_from_partial(part, k=min(5, explainer_infl.units))
        info = explainer_infl.last_info
        top = np.atleast_1d(top)
        rows.append({"scope": "all" if scope == "all" else "class",
                     "class": -1 if scope == "all" else scope,
                     "class_name": "all images" if scope == "all" else class_name(scope),
                     "n": part.count, "layer": part.layer, "qoi": part.qoi,
                     "expert": int(top[0]), "influence": float(info["influence"][top[0]]),
                     "expert_active": bool(info["active"][top[0]]),
                     "top5": " ".join(str(int(t)) for t in top)})
    return rows


def write_outputs(args, settings, cols, skipped, experts, stats, inputs, figures=()):
    """Every table of a run under ``args.out``: results.parquet, summary.csv, experts.csv,
    skipped.csv, summary.md (linking ``figures``, ``[(file, caption)]``) and run.json."""
    from hw3_evaluation import csv_table, markdown_table   # (TensorFlow: when needed)
    out = args.out
    write_parquet(os.path.join(out, "results.parquet"), cols)
    summary = summarise(cols, settings["methods"])
    header = ["method", "metric", "n", "mean", "ci_low", "ci_high"]
    write_text(os.path.join(out, "summary.csv"), csv_table(
        header, [[r[h] for h in header] for r in summary]))
    eh = ["scope", "class", "class_name", "n", "layer", "qoi", "expert", "influence",
          "expert_active", "top5"]
    write_text(os.path.join(out, "experts.csv"), csv_table(eh, [[r[h] for h in eh]
                                                               for r in experts]))
    skipped = sorted(skipped, key=lambda r: r["index"])
    write_text(os.path.join(out, "skipped.csv"), csv_table(
        list(SKIPPED_COLUMNS), [[r[c] for c in SKIPPED_COLUMNS] for r in skipped]))
    lines = (summary_head(settings, cols, summary, skipped, inputs)
             + figures_section(figures) + experts_section(experts) + skipped_section(skipped)
             + ["## Run", "", markdown_table(["what", "value"], [[k, v] for k, v in stats.items()])])
    write_text(os.path.join(out, "summary.md"), "\n".join(lines))
    write_text(os.path.join(out, "run.json"), json.dumps(
        {"settings": settings, "inputs": inputs, "stats": stats}, indent=1, default=str))


def summary_head(settings, cols, summary, skipped, inputs):
    """summary.md's title, what was run, and one row per method, one column per metric:
    mean [95% CI]."""
    from hw3_evaluation import markdown_table, table_cell   # (TensorFlow: when needed)
    shown = [(c, t) for c, t, _ in METRIC_COLUMNS
             if any(r["metric"] == c for r in summary)]
    table = []
    for m in settings["methods"]:
        by = {r["metric"]: r for r in summary if r["method"] == m}
        if not by:
            continue
        cells = [METHOD_TITLES[m], max(r["n"] for r in by.values())]
        for c, _ in shown:
            r = by.get(c)
            cells.append("" if r is None else f"{table_cell(r['mean'])} [{table_cell(r['ci_low'])}, "
                                              f"{table_cell(r['ci_high'])}]"
                         + ("" if r["n"] == cells[1] else f" (n={r['n']})"))
        table.append(cells)
    n_img = len(np.unique(cols["index"]))
    correct = cols["correct"][np.unique(cols["index"], return_index=True)[1]] \
        if n_img else np.array([])
    return [
        "# Data-set explanations", "",
        f"Inputs: {', '.join(inputs)}; model `{settings['model']}`; target: "
        f"{settings['target']} class; {n_img} images explained"
        + (f" ({int(correct.sum())} predicted right)" if n_img else "")
        + f", {len(skipped)} skipped.", "",
        "Each cell: the mean over images with a 95% confidence interval (Student t). "
        + directions([c for c, _ in shown]) + " Images where a metric is undefined "
        "(an all-zero map; Average Drop when f_c(x) <= 0) are left out of its n.", "",
        markdown_table(["method", "n"] + [t for _, t in shown], table) if table else "(no rows)\n",
        "Settings: " + ", ".join(f"{k}={json.dumps(settings[k])}" for k in
                                 ("ig", "smoothgrad", "occlusion", "n_ord", "curves", "seed",
                                  "batch_size")), "",
    ]


def directions(columns):
    """Which way is better for the metric ``columns`` shown, from :data:`FIGURE_METRICS`'
    titles: 'Lower is better for A, B; higher for C.' ('' when none is known)."""
    titles = dict(FIGURE_METRICS, average_increase="Average Increase (higher is better)")
    ways = {"lower": [], "higher": []}
    for c in columns:
        title = titles.get(c, "")
        for way in ways:
            if f"({way} is better)" in title:
                ways[way].append(title.split(" (")[0])
    text = "; ".join(f"{way} is better for {', '.join(names)}"
                     for way, names in ways.items() if names)
    return text[:1].upper() + text[1:] + "." if text else ""


def experts_section(experts):
    from hw3_evaluation import markdown_table   # (TensorFlow: when needed)
    if not experts:
        return []
    return ["## Influence experts", "",
            f"Layer `{experts[0]['layer']}`, quantity of interest `{experts[0]['qoi']}`"
            ", merged exactly from per-shard partial sums (hw3_infl.merge).", "",
            markdown_table(["scope", "class", "n", "expert", "influence", "active", "top 5"],
                     [[r["scope"], r["class_name"], r["n"], r["expert"], r["influence"],
                       "yes" if r["expert_active"] else "no", r["top5"]] for r in experts])]


def skipped_section(skipped):
    from hw3_evaluation import markdown_table   # (TensorFlow: when needed)
    return ["## Skipped", "",
            markdown_table(["index", "input", "item", "reason"],
                     [[r[c] for c in SKIPPED_COLUMNS] for r in skipped]) if skipped
            else "Nothing was skipped.\n"]


def figures_section(figures):
    if not figures:
        return []
    lines = ["## Figures", ""]
    for name, caption in figures:
        lines += [caption, "", f"![{name}]({name})", ""]
    return lines


# ----------------------------------------------------------------------- the figures

# The metrics a figure shows, their titles and which way is better.
FIGURE_METRICS = (("average_drop", "Average Drop % (lower is better)"),
                  ("n_ord", "Necessity Ordering (lower is better)"),
                  ("insertion_auc", "Insertion AUC (higher is better)"),
                  ("deletion_auc", "Deletion AUC (lower is better)"),
                  ("ig_completeness_error", "IG completeness error (lower is better)"),
                  ("sparseness", "Sparseness (higher: more concentrated)"),
                  ("complexity", "Complexity (lower: more concentrated)"),
                  ("effective_complexity", "Effective complexity (lower is simpler)"),
                  ("pixel_flipping_auc", "Pixel Flipping AUC (lower is better)"),
                  ("region_perturbation_aopc", "Region Perturbation AOPC (higher is better)"),
                  ("faithfulness_correlation", "Faithfulness Correlation (higher is better)"),
                  ("monotonicity_correlation", "Monotonicity Correlation (higher is better)"),
                  ("max_sensitivity", "Max-Sensitivity (lower is better)"),
                  ("avg_sensitivity", "Avg-Sensitivity (lower is better)"),
                  ("random_logit", "Random Logit (lower is better)"),
                  ("randomisation_similarity", "Randomisation similarity (lower is better)"),
                  ("pointing_game", "Pointing Game (higher is better)"),
                  ("relevance_mass_accuracy", "Relevance Mass Accuracy (higher is better)"),
                  ("relevance_rank_accuracy", "Relevance Rank Accuracy (higher is better)"),
                  ("top_k_intersection", "Top-K Intersection (higher is better)"),
                  ("attribution_localisation", "Attribution Localisation (higher is better)"),
                  ("localisation_auc", "Localisation AUC (higher is better)"))


def metrics_figure(cols, methods):
    """Each metric's distribution per method (box plots of the images' values, the mean
    marked), one panel per metric that has values; None when none has."""
    from matplotlib.figure import Figure
    shown = [(c, t) for c, t in FIGURE_METRICS
             if c in cols and np.isfinite(np.asarray(cols[c], np.float64)).any()]
    if not shown:
        return None
    fig = Figure(figsize=(4.2 * len(shown), 3.6 + 0.12 * len(methods)))
    for ax, (col, title) in zip(np.atleast_1d(fig.subplots(1, len(shown))), shown):
        data, labels = [], []
        for m in methods:
            v = np.asarray(cols[col], np.float64)[cols["method"] == m]
            v = v[np.isfinite(v)]
            if len(v):
                data.append(v)
                labels.append(METHOD_TITLES.get(m, m))
        ax.boxplot(data, vert=False, showmeans=True)
        ax.set_yticks(range(1, len(labels) + 1), labels, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.invert_yaxis()
    fig.tight_layout()
    return fig


def gallery_picks(cols, methods, by="deletion_auc"):
    """``{method: [(label, row), ...]}``: the rows of the best, median and worst image of
    each method by ``by`` (Deletion AUC, lower is better; else the first metric with
    values), and the metric used."""
    if by not in cols or not np.isfinite(np.asarray(cols[by], np.float64)).any():
        by = next((c for c, _ in FIGURE_METRICS if c in cols
                   and np.isfinite(np.asarray(cols[c], np.float64)).any()), None)
    picks = {}
    for m in methods:
        rows = np.flatnonzero(cols["method"] == m)
        if by is None or not len(rows):
            continue
        values = np.asarray(cols[by], np.float64)[rows]
        rows, values = rows[np.isfinite(values)], values[np.isfinite(values)]
        if not len(rows):
            continue
        order = rows[np.argsort(values, kind="stable")]
        higher = "higher is better" in dict(FIGURE_METRICS)[by]
        best, worst = (order[-1], order[0]) if higher else (order[0], order[-1])
        picks[m] = [("best", best), ("median", order[len(order) // 2]), ("worst", worst)]
    return picks, by


def gallery_figure(cols, picks, by, images_of, maps_of):
    """Per method, its best, median and worst image by ``by``: the image and its pixel
    map, every panel titled; ``images_of(indices)`` gives the images and
    ``maps_of(method, indices, targets)`` the maps."""
    from hw3_vc import plot_grid, short_name
    metric = dict(FIGURE_METRICS)[by].split(" (")[0]
    grid, titles, modes = [], [], []
    for m, chosen in picks.items():
        idx = [int(cols["index"][r]) for _, r in chosen]
        X = images_of(idx)
        A = maps_of(m, idx, np.array([int(cols["target"][r]) for _, r in chosen], np.int32))
        row, trow = [], []
        for (label, r), x, a in zip(chosen, X, A):
            ok = "right" if cols["correct"][r] else "wrong"
            head = (f"{METHOD_TITLES.get(m, m)}, {label}: {metric} {cols[by][r]:.3g}\n"
                    f"{cols['item'][r]} ({short_name(str(cols['true_name'][r]))}, "
                    f"predicted {ok})")
            row += [x[..., 0] / 255.0 if x.shape[-1] == 1 else x, a]
            trow += [head, "map (red +, blue -)"]
        grid.append(row)
        titles.append(trow)
        modes.append(["gray" if X.shape[-1] == 1 else "image", "signed"] * len(chosen))
    return plot_grid(grid, titles, modes) if grid else None


def write_figures(out, cols, methods, images_of, maps_of):
    """metrics.png and gallery.png under ``out``; ``[(file, caption)]`` of those written."""
    from hw3_vc import save_figure
    written = []
    fig = metrics_figure(cols, methods)
    if fig is not None:
        save_figure(fig, os.path.join(out, "metrics.png"))
        written.append(("metrics.png", "Each metric's distribution over the images, per "
                        "method (box: quartiles; whiskers: 1.5 IQR; triangle: the mean)."))
    picks, by = gallery_picks(cols, methods)
    fig = gallery_figure(cols, picks, by, images_of, maps_of) if picks else None
    if fig is not None:
        save_figure(fig, os.path.join(out, "gallery.png"))
        written.append(("gallery.png", f"Per method, the best, median and worst image by "
                        f"{dict(FIGURE_METRICS)[by]}, with the method's pixel map."))
    return written
