"""The numbers the report reads, looked up in the results dict: cells grouped over seeds, timings.

`results` is what `study.collect` returns: "plan" (every cell, finished or not, with its `info`),
"cells" (the finished ones' results) and "status". A group is a grid point without its seed
(`dense-5000`, `pruned-global-5000`); `Stat` is a metric over the group's finished seeds.
The 2022 study's figures are the only constants, cited as such.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

# The 2022 study as reported: small NeRF (2x128), Lego at 100x100, single timings on a shared machine.
STUDY_2022 = {
    "setting": "small NeRF 2x128, Lego at 100x100, 95 % global magnitude pruning + equal fine-tuning",
    "dense_psnr": {5000: None, 10000: 23.62, 20000: 24.47},  # val PSNR (dB) of dense k; 5k not reported
    "pruned_psnr": {5000: 23.74, 10000: 24.93, 20000: 26.2},  # val PSNR (dB) of pruned k + k fine-tuning
    "render_s": {"dense": 2.06, "pruned": 2.50},  # seconds per view, one timing each (the pruned one masked)
}


@dataclass
class Stat:
    """One metric over the finished seeds of a group."""

    values: list[float]  # one per finished seed
    planned: int  # seeds the grid has for the group

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def sd(self) -> float:
        """Sample standard deviation over seeds (0 for one seed)."""
        return statistics.stdev(self.values) if self.n > 1 else 0.0

    @property
    def se(self) -> float:
        """Standard error of the mean (0 for one seed: no spread is known)."""
        return self.sd / math.sqrt(self.n) if self.n > 1 else 0.0

    def fmt(self, digits: int = 2, unit: str = "") -> str:
        seeds = f"{self.n} seed{'s' if self.n > 1 else ''}" + (f" of {self.planned}" if self.n < self.planned else "")
        spread = f" ± {self.sd:.{digits}f}" if self.n > 1 else ""
        return f"{self.mean:.{digits}f}{spread}{unit} ({seeds})"


def grid_of(results: dict) -> list[int]:
    return list(results["grid"])


def top(results: dict) -> int:
    return max(results["grid"])


def first_seed(results: dict) -> int:
    return results["config"]["seeds"][0]


def recipes(results: dict) -> list[str]:
    return [r["name"] for r in results["config"]["recipes"]]


def group_cells(results: dict, group: str) -> tuple[list[dict], int]:
    """(finished results, number planned) of the model cells of `group`."""
    names = [n for n, p in results["plan"].items() if p["kind"] in ("dense", "pruned") and p["info"]["group"] == group]
    return [results["cells"][n] for n in names if n in results["cells"]], len(names)


def stat(results: dict, group: str, split: str = "val", metric: str = "psnr") -> Stat | None:
    """Mean over views of `metric` on `split`, per finished seed of `group`; None if none has finished."""
    done, planned = group_cells(results, group)
    if not done:
        return None
    return Stat([c[split][metric]["mean"] for c in done], planned)


def groups(results: dict) -> list[tuple[str, dict]]:
    """(group, the plan info of its first cell) for every model group, by total budget, dense first."""
    seen: dict[str, dict] = {}
    for p in results["plan"].values():
        if p["kind"] in ("dense", "pruned"):
            seen.setdefault(p["info"]["group"], p["info"])
    return sorted(seen.items(), key=lambda g: (g[1]["total_iterations"], "recipe" in g[1], g[1].get("sweep", False), g[0]))


def dense_group(iterations: int) -> str:
    return f"dense-{iterations}"


def pruned_group(recipe: str, n: int) -> str:
    return f"pruned-{recipe}-{n}"


def total_of(results: dict, group: str) -> int | None:
    for p in results["plan"].values():
        if p["info"].get("group") == group and p["kind"] in ("dense", "pruned"):
            return p["info"]["total_iterations"]
    return None


def timing(results: dict, model_cell: str) -> dict | None:
    """The `paths` of the timing cell of `model_cell` ({path: {median_s, q25_s, q75_s, psnr, ...}}), if finished."""
    cell = results["cells"].get(f"time-{model_cell}")
    return None if cell is None else cell["paths"]


def model_cell(group: str, seed: int) -> str:
    return f"{group}-s{seed}"


def missing(results: dict, *names: str) -> list[str]:
    """Of `names` (cells, or groups: any of their cells), the ones not finished."""
    out = []
    for name in names:
        if name in results["plan"]:
            if name not in results["cells"]:
                out.append(name)
        else:
            done, planned = group_cells(results, name)
            if not done:
                out.append(name if planned else f"{name}, which is not in this grid")
    return out


def pending_note(names: list[str]) -> str:
    return f"pending (needs {', '.join(names)})"


def profile_models(profile: dict) -> list[str]:
    """The profiled models along the pruning path: dense, masked, baked, compacted, other recipes' compacted."""
    order = ["dense", "masked", "baked", "compacted"]
    return sorted(profile["stages"], key=lambda m: (order.index(m) if m in order else len(order), m))
