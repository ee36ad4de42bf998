"""The study's DAG scheduler on made-up cells (no training): order, capacity, exclusive cells, failures."""

from __future__ import annotations

import concurrent.futures as cf
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfprune.errors import ConfigError
from nerfprune.experiments.engines import RunConfig
from nerfprune.experiments.scheduler import CellFailed, critical_paths, run_dag, topological_order


@dataclass
class Node:
    name: str
    deps: tuple[str, ...] = ()
    exclusive: bool = False
    work: float = 0.0


class FakeEngine:
    """Holds submitted cells in flight; `wait` finishes the oldest. Records what was in flight when."""

    def __init__(self, capacity: int, fail: set[str] = frozenset()):
        self.capacity, self.fail = capacity, fail
        self.in_flight: list[str] = []
        self.events: list[tuple[str, str, tuple[str, ...]]] = []  # (event, cell, in flight at that moment)
        self.closed: bool | None = None

    def submit(self, name: str) -> cf.Future:
        self.in_flight.append(name)
        self.events.append(("start", name, tuple(self.in_flight)))
        return cf.Future()

    def wait(self, handles: dict) -> list[str]:
        name = self.in_flight.pop(0)
        handle = handles[name]
        if name in self.fail:
            handle.set_exception(RuntimeError(f"{name} broke"))
        else:
            handle.set_result({"name": name})
        self.events.append(("done", name, tuple(self.in_flight)))
        return [name]

    def close(self, cancel: bool) -> None:
        self.closed = cancel


def driver(engine: FakeEngine):
    def run(name: str) -> dict:
        engine.events.append(("driver", name, tuple(engine.in_flight)))
        return {"name": name}
    return run


@st.composite
def dags(draw):
    """A random DAG: node i may depend on any nodes before it; then the nodes are shuffled."""
    n = draw(st.integers(1, 12))
    nodes = []
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=3)) if i else []
        nodes.append(Node(f"c{i}", tuple(f"c{d}" for d in deps), exclusive=draw(st.booleans()),
                          work=draw(st.sampled_from([0.0, 1.0, 5.0]))))
    return {node.name: node for node in draw(st.permutations(nodes))}


@settings(max_examples=60, deadline=None)
@given(dags(), st.integers(1, 3))
def test_every_cell_runs_after_its_dependencies_and_exclusive_ones_alone(nodes, capacity):
    engine = FakeEngine(capacity)
    outcome = run_dag(nodes, [], engine, driver(engine))
    assert sorted(outcome.ran) == sorted(nodes) and not outcome.failed
    finished_at = {name: i for i, name in enumerate(outcome.ran)}
    for node in nodes.values():
        assert all(finished_at[d] < finished_at[node.name] for d in node.deps), node
    for event, name, in_flight in engine.events:
        assert len(in_flight) <= capacity
        if event == "driver":
            assert nodes[name].exclusive and in_flight == (), "an exclusive cell ran beside another"
        if event == "start":
            assert not nodes[name].exclusive
    assert engine.closed is False


@given(dags())
def test_topological_order_puts_dependencies_first(nodes):
    order = topological_order(nodes)
    assert sorted(order) == sorted(nodes)
    assert all(order.index(d) < order.index(n) for n in nodes for d in nodes[n].deps)


def test_the_longest_chain_of_work_starts_first():
    """The study's shape: short independent cells listed first, a long chain behind one of them. With one
    slot the chain's head goes first; with two, the chain never waits while short cells run."""
    nodes = {n.name: n for n in (Node("s1", work=1), Node("s2", work=1), Node("s3", work=1), Node("d1", work=1),
                                 Node("d2", ("d1",), work=2), Node("d4", ("d2",), work=4), Node("p4", ("d2",), work=4),
                                 Node("t", ("d4",), exclusive=True))}
    order = topological_order(nodes)
    tail = critical_paths(nodes, order)
    assert tail == {"s1": 1, "s2": 1, "s3": 1, "d1": 7, "d2": 6, "d4": 4, "p4": 4, "t": 0}
    engine = FakeEngine(1)
    run_dag(nodes, [], engine, driver(engine))
    assert [e[1] for e in engine.events if e[0] == "start"][:3] == ["d1", "d2", "d4"]
    engine = FakeEngine(2)
    run_dag(nodes, [], engine, driver(engine))
    assert [e[1] for e in engine.events if e[0] == "start"][:2] == ["d1", "s1"]


def test_the_grid_gives_the_dense_chain_its_iterations_as_work():
    from nerfprune.experiments.grid import StudyConfig, plan_cells

    cells = plan_cells(StudyConfig(scale=0.1))
    assert [cells[f"dense-{n}-s0"].work for n in (500, 1000, 2000, 4000)] == [500, 500, 1000, 2000]
    assert cells["pruned-global-2000-s0"].work == 2000 and cells["time-dense-500-s0"].work == 0
    tail = critical_paths(cells, topological_order(cells))
    assert max(tail, key=tail.get) == "dense-500-s0" and tail["dense-500-s0"] == 4000


def test_finished_cells_are_not_run_again():
    nodes = {n.name: n for n in (Node("a"), Node("b", ("a",)), Node("c", ("b",)))}
    engine = FakeEngine(2)
    assert run_dag(nodes, ["a", "b"], engine, driver(engine)).ran == ["c"]
    assert [e[1] for e in engine.events if e[0] == "start"] == ["c"]


def test_a_failed_cell_blocks_its_dependents_only():
    nodes = {n.name: n for n in (Node("a"), Node("b", ("a",)), Node("c", ("b",)), Node("d"), Node("t", ("d",), True))}
    engine = FakeEngine(2, fail={"a"})
    outcome = run_dag(nodes, [], engine, driver(engine))
    assert outcome.failed == {"a": "RuntimeError: a broke"}
    assert outcome.blocked == {"b": "a", "c": "a"}
    assert sorted(outcome.ran) == ["d", "t"]
    with pytest.raises(CellFailed, match=r"1 cell\(s\) failed: a: RuntimeError: a broke; 2 cell\(s\) waiting"):
        outcome.raise_for_failures()


def test_an_interrupt_cancels_what_is_in_flight():
    class Interrupting(FakeEngine):
        def wait(self, handles):
            raise KeyboardInterrupt

    nodes = {"a": Node("a"), "b": Node("b")}
    engine = Interrupting(2)
    with pytest.raises(KeyboardInterrupt):
        run_dag(nodes, [], engine, driver(engine))
    assert engine.closed is True


@pytest.mark.parametrize("nodes, message", [
    ({"a": Node("a", ("x",))}, "cell a depends on unknown cell"),
    ({"a": Node("a", ("b",)), "b": Node("b", ("a",))}, "cycle: a, b"),
])
def test_bad_graphs_are_named(nodes, message):
    with pytest.raises(ConfigError, match=message):
        topological_order(nodes)


@pytest.mark.parametrize("workers, threads, cores, expected", [(1, 0, 16, 16), (4, 0, 16, 4), (3, 0, 2, 1), (4, 2, 16, 2)])
def test_threads_per_cell_share_the_cores(workers, threads, cores, expected):
    assert RunConfig(workers=workers, threads=threads).cell_threads(cores) == expected


@pytest.mark.parametrize("changes, message", [
    ({"workers": 0}, r"workers must be in \[1, 4096\]"),
    ({"engine": "ray"}, "unknown study engine 'ray'"),
    ({"cluster": "pbs"}, "unknown submitit cluster 'pbs'"),
])
def test_run_config_names_bad_fields(changes, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(**changes).validate()
