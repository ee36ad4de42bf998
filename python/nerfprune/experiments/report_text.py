"""The report's sentences, each generated from the study's own numbers (so it says what they show).

The four questions of issue 15: does pruning help at the 2022 budget (pruned N + N against dense N)
and at equal budget (against dense 2N); why the 2022 pruned model rendered slower; how fast a
compacted pruned model is and what it costs in PSNR. A question whose cells have not finished is
answered "pending", naming them.
"""

from __future__ import annotations

import math

from nerfprune.experiments.report_data import (STUDY_2022, Stat, dense_group, first_seed, grid_of, missing,
                                               model_cell, pending_note, pruned_group, recipes, stat, timing,
                                               top, total_of)


def _compare(p: Stat, d: Stat) -> tuple[float, float]:
    """(mean difference, its standard error from the seed spreads; 0 when a side has one seed)."""
    return p.mean - d.mean, math.hypot(p.se, d.se) if p.n > 1 and d.n > 1 else 0.0


def budget_answer(results: dict, recipe: str, budget: str) -> str:
    """Pruned N + N (recipe) against dense N ("2022") or dense at the pruned total ("equal"), at every N."""
    label = "At the 2022 budget" if budget == "2022" else "At equal budget"
    against = "dense N" if budget == "2022" else "dense at the same total iterations"
    points, waiting = [], []
    for n in grid_of(results):
        pg = pruned_group(recipe, n)
        dg = dense_group(n if budget == "2022" else total_of(results, pg))
        p, d = stat(results, pg), stat(results, dg)
        if p is None or d is None:
            waiting += missing(results, pg, dg)
            continue
        diff, se = _compare(p, d)
        noise = ""
        if se > 0:
            noise = (f", {'more' if abs(diff) > 2 * se else 'less'} than twice its standard error of {se:.2f} dB "
                     f"over {p.n} and {d.n} seeds")
        points.append((diff, f"{p.mean:.2f} vs {d.mean:.2f} dB after {n} + {n} vs {d_iters(dg)} ({diff:+.2f} dB{noise})"))
    head = f"**{label}** ({recipe} pruning, pruned N + N iterations against {against}):"
    if not points and waiting and all(w.endswith("not in this grid") for w in waiting):
        return f"{head} not answered: {', '.join(waiting)}."
    if not points:
        return f"{head} {pending_note(waiting)}."
    wins = sum(diff > 0 for diff, _ in points)
    verdict = ("pruning helps at every grid point run" if wins == len(points)
               else "pruning does not help at any grid point run" if wins == 0
               else f"pruning helps at {wins} of {len(points)} grid points run")
    tail = f" Still {pending_note(waiting)}." if waiting else ""
    return f"{head} {verdict}: " + "; ".join(text for _, text in points) + "." + tail + _2022_note(recipe, budget)


def d_iters(group: str) -> str:
    return group.removeprefix("dense-")


def _2022_note(recipe: str, budget: str) -> str:
    if recipe != "global":
        return ""
    d, p = STUDY_2022["dense_psnr"], STUDY_2022["pruned_psnr"]
    if budget == "2022":
        pairs = [(k, k) for k in p if d.get(k) is not None]
    else:
        pairs = [(k, 2 * k) for k in p if d.get(2 * k) is not None]
    notes = [f"{p[k] - d[kd]:+.2f} dB ({k} + {k} vs {kd})" for k, kd in pairs]
    return f" The 2022 table at its schedule: {', '.join(notes)}." if notes else ""


def slower_answer(results: dict) -> str:
    """Why the 2022 pruned model (masked) rendered slower than the dense one, from the timing and profile."""
    k, s = top(results), first_seed(results)
    name = model_cell(pruned_group("global", k), s)
    t, prof = timing(results, name), results["cells"].get("profile")
    head = "**Why the 2022 pruned model was slower:**"
    if t is None or "masked" not in t:
        return f"{head} {pending_note(missing(results, f'time-{name}'))}."
    m, d = t["masked"]["median_s"], t["dense"]["median_s"]
    r = m / d
    text = [f"{head} it ran masked (`torch.nn.utils.prune`): before every layer call a pre-hook recomputes "
            f"weight = weight_orig x mask, then the full dense product runs, so a masked model costs what the dense "
            f"one costs plus the mask multiply. Here (one val view, interleaved) masked takes {m:.3f} s against "
            f"{d:.3f} s dense (x{r:.2f}" + ("; slower" if r > 1.02 else "; not measurably slower here") + ")."]
    if prof is not None and "masked" in prof["stages"]:
        st = prof["stages"]
        lm, ld = _layers(st["masked"]), _layers(st["dense"])
        text.append(f"The profile shows why: the layer products take {lm * 1e3:.1f} ms masked vs {ld * 1e3:.1f} ms "
                    f"dense (x{lm / max(ld, 1e-12):.2f}: a masked weight is a full dense matrix, its zeros multiplied "
                    f"like any other number) and the mask multiply adds {st['masked'].get('mask multiply', 0.0) * 1e3:.1f} ms.")
    else:
        text.append(pending_note(missing(results, "profile")).capitalize() + " for the per-stage split.")
    r22 = STUDY_2022["render_s"]
    text.append(f"The 2022 figures, {r22['pruned']:.2f} s vs {r22['dense']:.2f} s (x{r22['pruned'] / r22['dense']:.2f}, "
                f"one timing each on a shared machine), are consistent with that: no work saved, the mask multiply's "
                f"overhead, and the noise of single timings.")
    return " ".join(text)


def compacted_answer(results: dict, recipe: str) -> str:
    """Render time of the compacted `recipe` model at the largest N, and its PSNR against dense N and dense 2N."""
    k, s = top(results), first_seed(results)
    pg = pruned_group(recipe, k)
    name = model_cell(pg, s)
    t = timing(results, name)
    head = f"**Compacted after {recipe} pruning** ({k} + {k}):"
    if t is None or "compacted" not in t:
        return f"{head} {pending_note(missing(results, f'time-{name}'))}."
    cell = results["cells"][name]
    c, d = t["compacted"]["median_s"], t["dense"]["median_s"]
    text = [f"{head} at {cell['sparsity']:.1%} of the prunable weights removed it renders one view in {c:.3f} s "
            f"against {d:.3f} s dense (x{c / d:.2f}" + (f", {d / c:.1f}x as fast)." if c < d else ", no faster).")]
    costs = []
    p = stat(results, pg)
    for label, dg in (("the 2022 budget, dense", dense_group(k)), ("equal budget, dense", dense_group(total_of(results, pg)))):
        ds = stat(results, dg)
        if p is not None and ds is not None:
            costs.append(f"{p.mean - ds.mean:+.2f} dB against {label} {d_iters(dg)}")
    if costs:
        text.append("Its val PSNR: " + "; ".join(costs) + ".")
    if "masked" in t:
        text.append(f"Compaction itself changes the timed view's PSNR by {t['compacted']['psnr'] - t['masked']['psnr']:+.3f} dB "
                    f"(it removes dead neurons and folds constant ones: the same function up to float rounding).")
    return " ".join(text)


def answers(results: dict) -> list[str]:
    out = []
    for budget in ("2022", "equal"):
        out += [budget_answer(results, r, budget) for r in recipes(results)]
    out.append(slower_answer(results))
    out += [compacted_answer(results, r) for r in recipes(results)]
    return out


# -- the per-stage profile -------------------------------------------------------------------

def _layers(stages: dict) -> float:
    return sum(v for k, v in stages.items() if k.startswith("layer "))


def explain_profile(profile: dict, sparsity: float) -> str:
    """One paragraph reading the profile numbers: is the masked model slower, and which stage says why."""
    st = profile["stages"]
    d, m = st["dense"], st["masked"]
    diff = m["total"] - d["total"]
    rel = diff / d["total"]
    mask = m.get("mask multiply", 0.0)
    ld, lm = _layers(d), _layers(m)
    mlp_share = (ld + d.get("mlp glue", 0.0)) / d["total"]
    text = [f"Rendering val view {profile['view']}, the masked model took {m['total'] * 1e3:.1f} ms against "
            f"{d['total'] * 1e3:.1f} ms dense ({rel:+.0%})."]
    if rel > 0.02:
        share = f", {mask / diff:.0%} of the difference" if diff > 0 else ""
        text.append(f"The mask multiply (the pre-hook that recomputes weight = weight_orig x mask before every layer "
                    f"call, once per chunk of points) costs {mask * 1e3:.1f} ms{share}.")
    else:
        text.append(f"It is not slower by more than 2 %: the mask multiply costs {mask * 1e3:.1f} ms, "
                    f"{mask / m['total']:.1%} of the render.")
    ratio = lm / max(ld, 1e-12)
    same = "the same work" if 0.9 <= ratio <= 1.1 else "a difference due to noise or caching, not to fewer operations"
    text.append(f"The layer products take {lm * 1e3:.1f} ms masked vs {ld * 1e3:.1f} ms dense (x{ratio:.2f}), {same}: "
                f"{sparsity:.0%} zeros in a dense matrix are multiplied like any other numbers.")
    text.append(f"The MLP is {mlp_share:.0%} of the dense render; ray generation, sampling, positional encoding "
                f"({d.get('positional encoding', 0.0) * 1e3:.1f} ms) and compositing ({d.get('compositing', 0.0) * 1e3:.1f} ms) "
                f"are untouched by pruning and bound what any pruning can gain.")
    tail = [f"{label}: {s['total'] * 1e3:.1f} ms (layers {_layers(s) * 1e3:.1f} ms, x{s['total'] / d['total']:.2f} of dense)"
            for label, s in st.items() if label not in ("dense", "masked")]
    if tail:
        text.append("The other paths: " + "; ".join(tail) + ".")
    text.append("Hooks add a little overhead to every stage, so these totals sit slightly above the plain timings.")
    return " ".join(text)
