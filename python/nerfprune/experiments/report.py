"""The study's report: `report.md` and a self-contained `report.html` with the same content.

Every number comes from the results dict `study.collect` assembles from the finished cells; the
only constants are the 2022 study's reported figures, cited as such (`report_data.STUDY_2022`).
The sentences answering the study's questions are generated from those numbers
(`report_text.py`), the plots drawn from them (`plots.py`). Cells that have not finished appear as
"pending" (with what they wait for), so the report can be assembled at any point of a run.
"""

from __future__ import annotations

from pathlib import Path

from nerfprune.config import atomic_write_bytes
from nerfprune.experiments.plots import write_plots
from nerfprune.experiments.profile import stage_sort_key
from nerfprune.experiments.report_data import (STUDY_2022, dense_group, first_seed, grid_of, group_cells, groups,
                                               model_cell, profile_models, pruned_group, stat, timing, top)
from nerfprune.experiments.report_doc import Doc
from nerfprune.experiments.report_text import answers, explain_profile

PENDING = "pending"


def fmt_time(t: dict) -> str:
    """'median s (IQR q25-q75, n=repeats)' for a timing dict."""
    return f"{t['median_s']:.4f} s (IQR {t['q25_s']:.4f}-{t['q75_s']:.4f}, n={t['repeats']})"


def label(info: dict) -> str:
    if "recipe" not in info:
        return "dense"
    kind = "sweep, global" if info.get("sweep") else f"pruned {info['recipe']}"
    rounds = f", {info['rounds']} rounds" if info.get("rounds", 1) > 1 else ""
    return f"{kind} {info['target_sparsity']:.0%}{rounds}"


def marching_text(render: dict) -> str:
    """How the renderer marched: its rounds (if any) and the early-stop transmittance."""
    rounds = render.get("round_samples", 0)
    how = f"rounds of {rounds} samples" if rounds else "every sample in one call"
    return f"{how}, early stop at transmittance < {render['early_stop_eps']}"


def setting(results: dict) -> list[str]:
    cfg, scene, machine, tcfg = results["config"], results["scene"], results["machine"], results["config"]["train"]
    render = tcfg["render"]
    val_total = scene["splits"].get("val", 0)
    val_views = cfg["val_views"] or val_total
    dense_lengths = sorted({info["total_iterations"] for _, info in groups(results) if "recipe" not in info})
    recipes = "; ".join(f"`{r['name']}`: method {r['method']}" + (f", {r['overrides']}" if r["overrides"] else "")
                        for r in cfg["recipes"])
    seeded = grid_of(results)[: cfg["seeded_points"]]
    run = results.get("run", {})
    return [
        f"Scene `{scene['source']}` at {scene['width']}x{scene['height']} (factor {cfg['factor']} x resolution "
        f"divisor {results['resolution_divisor']}); splits {scene['splits']}.",
        f"Network preset `{tcfg['model']['preset']}`, {render['n_coarse']} + {render['n_fine']} samples per ray, batch "
        f"{tcfg['batch_size']} rays, lr {tcfg['lr']} decaying x{tcfg['lr_decay']} over {tcfg['lr_decay_steps']} steps, "
        f"occupancy grid {'on' if tcfg['occupancy']['enabled'] else 'off'}.",
        f"Scale {cfg['scale']}: pre-training N = {grid_of(results)} (the study's {list(cfg['iterations'])} x {cfg['scale']}); "
        f"dense models at {dense_lengths} (N and the pruned totals: the equal-budget controls); pruned to "
        f"{cfg['sparsity']:.0%} and fine-tuned N iterations in all; recipes {recipes}.",
        f"Seeds {list(cfg['seeds'])} at N = {seeded} (dense N, pruned N + N, dense 2N), seed {cfg['seeds'][0]} "
        f"elsewhere; a ± is the sample standard deviation over seeds.",
        f"Quality: PSNR / SSIM / L2 on {'all ' + str(val_total) if val_views >= val_total else f'the first {val_views} of the {val_total}'} "
        f"val views (a fixed subset, the same for every cell) and the first {cfg['train_views'] or 'all'} train views.",
        f"Render time: one val view, each inference path of a model interleaved with its dense parent, median and "
        f"interquartile range of {cfg['timing_repeats']} renders after a warm-up; every model on the same renderer "
        f"(backend {render['backend']}, {marching_text(render)}) and machine, with no other cell running.",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']} ({machine['torch_threads']} "
        f"threads in the driver), Taichi {machine['taichi']} on {machine['taichi_arch']}; cells run by engine "
        f"`{run.get('engine', 'local')}` with {run.get('workers', 1)} worker(s).",
    ]


def shown(path: Path) -> str:
    """`path` relative to the working directory when it is inside it (a report committed with the repository
    names its folder as a clone sees it), else as given."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def fmt_hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def compute_text(results: dict) -> str:
    """What the finished cells cost, per kind, and the wall span of the run log."""
    compute = results.get("compute") or {}
    kinds = compute.get("kinds") or {}
    if not kinds:
        return "No cell has finished yet."
    parts = ", ".join(f"{k} {fmt_hours(v['seconds'])} ({v['cells']} cells)" for k, v in sorted(kinds.items()))
    threads = sum(v["thread_seconds"] for v in kinds.values())
    span = compute.get("wall_span_s")
    wall = (f" Wall time, from the first cell's start to the last cell's finish in `run-log.jsonl` (every run that "
            f"contributed, and the gaps between them): {fmt_hours(span)}.") if span is not None else ""
    return (f"Compute of the finished cells: {parts}; {fmt_hours(threads)} of thread time in all (a cell's seconds "
            f"x its threads).{wall}")


def full_scale_estimate(results: dict) -> str:
    """Thread time of the training cells extrapolated to scale 1 (iterations scale linearly; evaluation does not)."""
    cfg, kinds = results["config"], (results.get("compute") or {}).get("kinds") or {}
    train = sum(kinds.get(k, {}).get("thread_seconds", 0.0) for k in ("dense", "pruned"))
    done = sum(s == "done" for s in results["status"].values()) == len(results["status"])
    if not train or not done or cfg["scale"] >= 1:
        return ""
    full = train / cfg["scale"]
    return (f" Estimated cost at scale 1, from this run's training and pruning cells ({fmt_hours(train)} of thread "
            f"time) x 1 / {cfg['scale']}: about {full / 3600:.0f} thread-hours on this machine's cores, an "
            f"extrapolation (it counts their evaluations as if they grew too); the longest chain of dependent cells (dense up to "
            f"{2 * max(cfg['iterations'])} iterations, as long as pruned N + N at the largest N) bounds the wall time however many workers run.")


def status_rows(results: dict) -> list[list[str]]:
    rows = []
    for name, status in results["status"].items():
        if status != "done":
            deps = [d for d in results["plan"][name]["deps"] if results["status"][d] != "done"]
            rows.append([name, status, ", ".join(deps) or "-"])
    return rows


def _psnr(results: dict, group: str) -> str:
    s = stat(results, group)
    return s.fmt(unit=" dB") if s is not None else PENDING


def side_by_side(results: dict) -> list[list[str]]:
    """The 2022 table's rows beside ours, by total budget (pruned k + k next to dense 2k); rows of the 2022 table
    this grid lacks, and ours it lacks, say so."""
    cfg = results["config"]
    ks = sorted(set(cfg["iterations"]) | set(STUDY_2022["pruned_psnr"]))
    ours = {k: max(1, round(k * cfg["scale"])) for k in cfg["iterations"]}
    planned = {g for g, _ in groups(results)}

    def our(group: str, schedule: str) -> list[str]:
        return [schedule, _psnr(results, group)] if group in planned else ["-", "not in this grid"]

    def reported(value: float | None, k: int) -> str:
        return f"{value:.2f}" if value is not None else "not reported" if k in STUDY_2022["pruned_psnr"] else "not run"

    rows = []
    for k in ks:
        n = ours.get(k, max(1, round(k * cfg["scale"])))
        rows.append((k, 1, ["dense", f"{k}", reported(STUDY_2022["dense_psnr"].get(k), k),
                            *our(dense_group(n), f"{n}")]))
        rows.append((2 * k, 0, ["pruned 95 % global + fine-tuned", f"{k} + {k}",
                                reported(STUDY_2022["pruned_psnr"].get(k), k), *our(pruned_group("global", n), f"{n} + {n}")]))
        if 2 * k not in ks:
            rows.append((2 * k, 1, ["dense (equal-budget control)", f"{2 * k}", reported(STUDY_2022["dense_psnr"].get(2 * k), 2 * k),
                                    *our(dense_group(2 * n), f"{2 * n}")]))
    return [r for _, _, r in sorted(rows, key=lambda r: (r[0], r[1]))]


def render_2022_rows(results: dict) -> list[list[str]]:
    name = model_cell(pruned_group("global", top(results)), first_seed(results))
    t = timing(results, name) or {}
    r22 = STUDY_2022["render_s"]
    ours = lambda path: fmt_time(t[path]) if path in t else PENDING  # noqa: E731
    return [["dense", f"{r22['dense']:.2f} s", ours("dense")],
            ["pruned 95 %, masked (the 2022 way)", f"{r22['pruned']:.2f} s", ours("masked")],
            ["pruned 95 %, compacted", "-", ours("compacted")]]


def quality_rows(results: dict) -> list[list[str]]:
    rows = []
    for group, info in groups(results):
        n, total = info["iterations"], info["total_iterations"]
        done, _ = group_cells(results, group)
        pre, fine = (f"{n}", f"{total - n}") if "recipe" in info else (f"{n}", "0")
        cells = [label(info), pre, fine, f"{total}"]
        if not done:
            rows.append(cells + [PENDING] * 6)
            continue
        val, train = stat(results, group), stat(results, group, "train")
        ssim, l2 = stat(results, group, "val", "ssim"), stat(results, group, "val", "l2")
        sparsity = sum(c["sparsity"] for c in done) / len(done)
        rows.append(cells + [val.fmt(), train.fmt(), ssim.fmt(4), l2.fmt(5), f"{sparsity:.3f}", f"{len(done)}"])
    return rows


def timing_rows(results: dict) -> list[list[str]]:
    rows = []
    for name, plan in results["plan"].items():
        if plan["kind"] != "time":
            continue
        model = name.removeprefix("time-")
        info = results["plan"][model]["info"]
        what = f"{label(info)}, {info['iterations']}" + (f" + {info['total_iterations'] - info['iterations']}"
                                                         if "recipe" in info else "")
        cell = results["cells"].get(name)
        if cell is None:
            rows.append([what, "-", PENDING, "", "", "", ""])
            continue
        dense = cell["paths"]["dense"]["median_s"]
        for path in path_order(cell):
            t = cell["paths"][path]
            sparsity = "0" if path == "dense" else f"{cell['sparsity']:.3f}"
            samples = "-" if t.get("samples_per_ray") is None else f"{t['samples_per_ray']:.1f}"  # older cells lack it
            rows.append([what, sparsity, path, fmt_time(t), f"{t['median_s'] / dense:.2f}", samples, f"{t['psnr']:.2f}"])
        for path, why in cell.get("unavailable", {}).items():
            rows.append([what, f"{cell['sparsity']:.3f}", path, f"unavailable ({why})", "", "", ""])
    return rows


def path_order(cell: dict) -> list[str]:
    """A timing cell's paths: dense first, then the variants in the study's order (JSON keeps them sorted)."""
    return [p for p in dict.fromkeys(["dense", *cell["spec"]["variants"]]) if p in cell["paths"]]


def profile_rows(profile: dict) -> tuple[list[str], list[list[str]]]:
    models = profile_models(profile)
    stages = sorted({s for m in models for s in profile["stages"][m]}, key=stage_sort_key)
    return (["stage (ms, median)"] + models,
            [[s] + [f"{profile['stages'][m].get(s, 0.0) * 1e3:.2f}" for m in models] for s in stages])


def build(results: dict, out: Path) -> Doc:
    """The report as blocks (Markdown and HTML render the same)."""
    cfg = results["config"]
    plots = write_plots(results, out)
    doc = Doc()
    doc.heading(1, f"nerfprune study: {results['scene']['source']}")
    done = sum(s == "done" for s in results["status"].values())
    doc.heading(2, "Status")
    doc.para(f"{done} of {len(results['status'])} cells finished ({len(results['ran_this_time'])} computed by the "
             f"run that wrote this report)." + ("" if done < len(results["status"]) else " The grid is complete."))
    doc.para(compute_text(results))
    rows = status_rows(results)
    if rows:
        doc.table(["cell", "status", "waits for"], rows)
    doc.heading(2, "Answers")
    doc.bullets(answers(results))
    doc.heading(2, "Setting")
    doc.bullets(setting(results))
    doc.heading(2, "The 2022 table beside ours")
    doc.para(f"2022 figures as reported ({STUDY_2022['setting']}); ours at {cfg['scale']} of its schedule, val PSNR "
             f"mean ± sd over seeds. Rows by total iterations: each pruned row is followed by the dense model with the "
             f"same total (the equal-budget control).")
    doc.table(["model", "2022 schedule", "2022 PSNR (dB)", "our schedule", "our PSNR val"], side_by_side(results))
    doc.table(["render time per view", "2022 (one timing)", f"ours ({top(results)} + {top(results)}, median, IQR)"],
              render_2022_rows(results))
    doc.heading(2, "Quality of every model")
    doc.table(["model", "pre-training", "fine-tuning", "total", "PSNR val (dB)", "PSNR train (dB)", "SSIM val", "L2 val",
               "sparsity", "seeds done"], quality_rows(results))
    doc.heading(2, "Render time of every model")
    doc.para("Each pruned model's inference paths are timed interleaved with its dense parent (x dense is that ratio); "
             "the PSNR is that of the timed view on that path. Every model renders through its own occupancy grid, so "
             "x dense mixes the MLP's cost per sample with the sample count: MLP samples/ray (coarse + fine, after "
             "early termination) tells the two apart.")
    doc.table(["model", "sparsity", "path", "render time", "x dense", "MLP samples/ray", "PSNR timed view"],
              timing_rows(results))
    doc.heading(2, "Where the time goes: per-stage profile")
    profile = results["cells"].get("profile")
    if profile is None:
        doc.para(f"{PENDING}: the profile runs after the largest models, alone.")
    else:
        doc.table(*profile_rows(profile))
        doc.para(explain_profile(profile, cfg["sparsity"]))
    doc.heading(2, "Plots")
    for name, path in plots.items():
        doc.image(name.replace("_", " "), path.relative_to(out).as_posix())
    if not plots:
        doc.para(f"{PENDING}: no plot has its cells yet.")
    images = sorted((out / "images").glob("*/*.png"))
    if images:
        doc.heading(2, "Rendered | ground truth | error (x4)")
        for p in images:
            doc.image(f"{p.parent.name} {p.stem}", p.relative_to(out).as_posix())
    doc.heading(2, "Reproduce")
    doc.bullets([
        f"This run: `nerfprune study --config {shown(out)}/study_config.json --out {shown(out)}` (finished cells are kept; "
        f"add `--workers N` for N local processes or `--engine submitit` for SLURM; `results.json` holds every number).",
        f"The full schedule: `nerfprune study --scene {cfg['scene']} --factor {cfg['factor']} --scale 1 --workers N "
        f"--out outputs/study-full` on a bigger machine, `--engine submitit --workers N` on SLURM, or "
        f"`--ti-arch cuda` on a GPU (docs/study.md: cost and engines).{full_scale_estimate(results)}",
    ])
    return doc


def write_report(results: dict, out_dir: str | Path) -> Path:
    """Write `report.md`, `report.html` and the plots into `out_dir`; returns report.md's path."""
    out = Path(out_dir)
    doc = build(results, out)
    path = out / "report.md"
    atomic_write_bytes(path, doc.markdown().encode())
    atomic_write_bytes(out / "report.html", doc.html(out, f"nerfprune study: {results['scene']['source']}").encode())
    return path
