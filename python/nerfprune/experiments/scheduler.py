"""Running a DAG of cells on an engine: every cell after the cells it needs, as many at once as the
engine takes, exclusive cells (timings) alone in the driver process.

The scheduler knows cells only by name, dependencies and the `exclusive` flag; what a cell computes
is `cells.run_cell`'s business and where it runs the engine's (`experiments/engines.py`). A cell that
fails does not stop the others: its dependents are blocked, every independent cell still runs, and
`DagOutcome` lists what ran, what failed (with the error) and what was blocked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from nerfprune.errors import ConfigError, NerfpruneError

log = logging.getLogger(__name__)


class CellFailed(NerfpruneError):
    """One or more cells of a study failed; the message names each with its error."""


class Node(Protocol):
    """What the scheduler needs of a cell (`grid.Cell` has it; a node without `work` counts as none)."""

    name: str
    deps: tuple[str, ...]
    exclusive: bool
    # work: float  -- optional: the cell's own cost in any unit (the study: training iterations)


class Handle(Protocol):
    """A cell in flight (a `concurrent.futures.Future`, a submitit `Job`)."""

    def done(self) -> bool: ...
    def result(self): ...


class Engine(Protocol):
    """Runs cells by name somewhere (a process pool, a cluster); `capacity` of them at once."""

    capacity: int

    def submit(self, name: str) -> Handle: ...
    def wait(self, handles: dict[str, Handle]) -> list[str]: ...  # blocks until at least one is done; their names
    def close(self, cancel: bool) -> None: ...


def topological_order(nodes: dict[str, Node]) -> list[str]:
    """The names in an order where each comes after its dependencies (ties: the order given).

    `ConfigError` for a dependency that is not a node, or a cycle (naming the cells in it).
    """
    for node in nodes.values():
        unknown = [d for d in node.deps if d not in nodes]
        if unknown:
            raise ConfigError(f"cell {node.name} depends on unknown cell(s) {', '.join(unknown)}")
    order: list[str] = []
    placed: set[str] = set()
    remaining = list(nodes)
    while remaining:
        ready = [n for n in remaining if all(d in placed for d in nodes[n].deps)]
        if not ready:
            raise ConfigError(f"cells depend on each other in a cycle: {', '.join(remaining)}")
        for n in ready:
            order.append(n)
            placed.add(n)
        remaining = [n for n in remaining if n not in placed]
    return order


def critical_paths(nodes: dict[str, Node], order: list[str]) -> dict[str, float]:
    """Each node's work plus the longest chain of work that waits on it (`order`: a topological order).

    Starting the ready node with the longest such chain first (ties: `order`) keeps the study's long
    dense chain (5k -> 10k -> 20k -> 40k) and the cells behind it moving while the short cells fill
    the other workers, instead of leaving the chain for last, alone.
    """
    children: dict[str, list[str]] = {n: [] for n in nodes}
    for name in nodes:
        for d in nodes[name].deps:
            children[d].append(name)
    tail: dict[str, float] = {}
    for name in reversed(order):
        tail[name] = float(getattr(nodes[name], "work", 0.0)) + max((tail[c] for c in children[name]), default=0.0)
    return tail


@dataclass
class DagOutcome:
    """What one run of the DAG did."""

    ran: list[str] = field(default_factory=list)  # cells computed by this run, in the order they finished
    failed: dict[str, str] = field(default_factory=dict)  # cell -> its error
    blocked: dict[str, str] = field(default_factory=dict)  # cell -> the failed cell it needed

    def raise_for_failures(self) -> None:
        if self.failed:
            first = "; ".join(f"{name}: {error}" for name, error in list(self.failed.items())[:3])
            more = f" (and {len(self.failed) - 3} more)" if len(self.failed) > 3 else ""
            blocked = f"; {len(self.blocked)} cell(s) waiting on them did not run" if self.blocked else ""
            raise CellFailed(f"{len(self.failed)} cell(s) failed: {first}{more}{blocked}; "
                             f"fix the cause and run the same command again (finished cells are kept)")


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, NerfpruneError) else f"{type(error).__name__}: {text}"


def run_dag(nodes: dict[str, Node], finished: Iterable[str], engine: Engine,
            in_driver: Callable[[str], object]) -> DagOutcome:
    """Run every node not in `finished`, each after its dependencies.

    Non-exclusive nodes go to `engine`, up to its capacity, the one with the longest chain of work behind
    it first (`critical_paths`); an exclusive node runs through `in_driver` when nothing is in flight
    and no other node is ready (timings measured on an idle machine).
    KeyboardInterrupt cancels what is in flight (`engine.close(cancel=True)`) and propagates.
    """
    order = topological_order(nodes)
    tail, index = critical_paths(nodes, order), {n: i for i, n in enumerate(order)}
    # Still a topological order: a node's chain is at least its dependent's, and ties keep `order`.
    order = sorted(order, key=lambda n: (-tail[n], index[n]))
    done = set(finished)
    todo = [n for n in order if n not in done]
    outcome = DagOutcome()
    running: dict[str, Handle] = {}

    def settle(name: str, get_result: Callable[[], object]) -> None:
        try:
            get_result()
        except Exception as e:  # a failed cell blocks its dependents, not the study
            outcome.failed[name] = _one_line(e)
            log.error("study cell %s failed: %s", name, outcome.failed[name], exc_info=log.isEnabledFor(logging.DEBUG))
            _block_dependents(nodes, name, todo, outcome)
            return
        done.add(name)
        outcome.ran.append(name)

    try:
        while todo or running:
            ready = [n for n in todo if all(d in done for d in nodes[n].deps)]
            for name in [n for n in ready if not nodes[n].exclusive][: max(engine.capacity - len(running), 0)]:
                todo.remove(name)
                running[name] = engine.submit(name)
            if not running:
                exclusive = [n for n in ready if nodes[n].exclusive]
                if not exclusive:
                    break  # what is left waits on failed cells
                todo.remove(exclusive[0])
                settle(exclusive[0], lambda: in_driver(exclusive[0]))
                continue
            for name in engine.wait(running):
                settle(name, running.pop(name).result)
    except BaseException:
        engine.close(cancel=True)
        raise
    engine.close(cancel=False)
    return outcome


def _block_dependents(nodes: dict[str, Node], failed: str, todo: list[str], outcome: DagOutcome) -> None:
    """Take every node that needs `failed` (directly or not) out of `todo`, as blocked by it."""
    stuck = {failed}
    for name in list(todo):  # `todo` is in topological order: a dependent comes after what it needs
        if any(d in stuck for d in nodes[name].deps):
            stuck.add(name)
            todo.remove(name)
            outcome.blocked[name] = failed
