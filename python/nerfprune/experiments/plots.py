"""The report's plots (PNG, matplotlib's Agg backend), drawn from the finished cells only.

- `psnr_vs_iterations`: val PSNR (mean ± sd over seeds) against total iterations (equal budget:
  pruned N + N beside dense 2N), and against pre-training iterations (the 2022 budget: pruned N + N
  beside dense N);
- `render_time_vs_sparsity`: median render time (IQR as error bars) of each inference path against
  sparsity, global pruning at the smallest grid point (the sweep), other recipes as single points;
- `profile_breakdown`: where a view's render time goes, per stage, for each profiled model.

A plot whose cells have not finished is not drawn (`write_plots` returns the ones it drew).
"""

from __future__ import annotations

from pathlib import Path

from nerfprune.experiments.profile import stage_sort_key
from nerfprune.experiments.report_data import (first_seed, grid_of, groups, model_cell, profile_models,
                                               pruned_group, recipes, stat, timing)

PLOTS = ("psnr_vs_iterations", "render_time_vs_sparsity", "profile_breakdown")


def _errorbar(ax, points: list[tuple[float, object]], label: str, fmt: str) -> None:
    """points: (x, Stat) -> mean ± sd."""
    if points:
        ax.errorbar([x for x, _ in points], [s.mean for _, s in points], yerr=[s.sd for _, s in points],
                    fmt=fmt, capsize=3, label=label)


def _log_x(ax, xs: list[float]) -> None:
    """Iteration counts double along the grid: a log axis, ticks at the counts themselves."""
    if xs and min(xs) > 0 and max(xs) / min(xs) >= 4:
        ax.set_xscale("log", base=2)
        ticks = sorted(set(xs))
        ax.set_xticks(ticks, [f"{x:g}" for x in ticks])
        ax.minorticks_off()


def psnr_vs_iterations(results: dict, ax_equal, ax_2022) -> bool:
    dense = [(info["total_iterations"], stat(results, g)) for g, info in groups(results) if "recipe" not in info]
    dense = [(x, s) for x, s in dense if s is not None]
    drawn = bool(dense)
    _errorbar(ax_equal, dense, "dense", "o-")
    _errorbar(ax_2022, [(x, s) for x, s in dense if x in grid_of(results)], "dense N", "o-")
    for recipe in recipes(results):
        pts = [(info["total_iterations"], info["iterations"], stat(results, g)) for g, info in groups(results)
               if info.get("recipe") == recipe and not info.get("sweep")]
        pts = [p for p in pts if p[2] is not None]
        drawn |= bool(pts)
        _errorbar(ax_equal, [(t, s) for t, _, s in pts], f"pruned {recipe} N + N", "s--")
        _errorbar(ax_2022, [(n, s) for _, n, s in pts], f"pruned {recipe} N + N", "s--")
    ax_equal.set(xlabel="total iterations (training + fine-tuning)", ylabel="val PSNR (dB)", title="Equal budget")
    ax_2022.set(xlabel="pre-training iterations N", ylabel="val PSNR (dB)", title="The 2022 budget (N + N vs N)")
    for ax in (ax_equal, ax_2022):
        _log_x(ax, [x for line in ax.get_lines() for x in line.get_xdata()])
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return drawn


def render_time_vs_sparsity(results: dict, ax) -> bool:
    """Median ± IQR per inference path; the sweep's models (global, smallest N) and each recipe's at that N."""
    n0, s0 = min(grid_of(results)), first_seed(results)
    names = [model_cell(g, s0) for g, info in groups(results)
             if info.get("iterations") == n0 and (info.get("recipe") == "global" or info.get("sweep"))]
    lines: dict[str, list[tuple[float, dict]]] = {}
    for name in names:
        t = timing(results, name)
        if t is None:
            continue
        sparsity = results["cells"][name]["sparsity"]
        lines.setdefault("dense", []).append((0.0, t["dense"]))
        for path, v in t.items():
            if path != "dense":
                lines.setdefault(path, []).append((sparsity, v))
    for path, pts in lines.items():
        pts = sorted(dict(pts).items())
        ax.errorbar([s for s, _ in pts], [v["median_s"] for _, v in pts],
                    yerr=[[v["median_s"] - v["q25_s"] for _, v in pts], [v["q75_s"] - v["median_s"] for _, v in pts]],
                    fmt="o" if path == "dense" else "o-", capsize=3, label=f"{path} (global)" if path != "dense" else path)
    drawn = bool(lines)
    for recipe in recipes(results):
        if recipe == "global":
            continue
        name = model_cell(pruned_group(recipe, n0), s0)
        t = timing(results, name)
        if t is not None and "compacted" in t:
            ax.plot([results["cells"][name]["sparsity"]], [t["compacted"]["median_s"]], "*", markersize=10,
                    label=f"compacted ({recipe})")
            drawn = True
    ax.set(xlabel="sparsity (0 = dense)", ylabel="render time per view (s, median, IQR)",
           title=f"Render time vs sparsity ({n0} + {n0} iterations)")
    if drawn:
        ax.legend(fontsize=7)
    return drawn


def profile_breakdown(results: dict, ax) -> bool:
    profile = results["cells"].get("profile")
    if profile is None:
        return False
    models = profile_models(profile)
    stages = sorted({s for m in models for s in profile["stages"][m]} - {"total"}, key=stage_sort_key)
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab20")
    bottom = [0.0] * len(models)
    for i, s in enumerate(stages):
        vals = [profile["stages"][m].get(s, 0.0) * 1e3 for m in models]
        ax.bar(models, vals, bottom=bottom, label=s, color=cmap(i % 20))
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set(ylabel="ms per view (median per stage)", title="Where the render time goes")
    ax.tick_params(axis="x", labelsize=7, labelrotation=20)
    ax.legend(fontsize=6, bbox_to_anchor=(1.01, 1), loc="upper left")
    return True


def write_plots(results: dict, out: Path) -> dict[str, Path]:
    """Draw every plot whose cells have finished into `out/plots/`; returns {name: path} of those drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    drawn = {}
    figures = {
        "psnr_vs_iterations": (lambda: plt.subplots(1, 2, figsize=(10, 3.8)), lambda axes: psnr_vs_iterations(results, *axes)),
        "render_time_vs_sparsity": (lambda: plt.subplots(figsize=(5.5, 3.8)), lambda ax: render_time_vs_sparsity(results, ax)),
        "profile_breakdown": (lambda: plt.subplots(figsize=(7.5, 4)), lambda ax: profile_breakdown(results, ax)),
    }
    for name, (make, draw) in figures.items():
        fig, ax = make()
        path = plots / f"{name}.png"
        if draw(ax):
            fig.tight_layout()
            fig.savefig(path, dpi=90)
            drawn[name] = path
        else:
            path.unlink(missing_ok=True)  # a plot of an earlier run must not stand for cells now pending
        plt.close(fig)
    return drawn

