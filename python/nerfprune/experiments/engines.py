"""Where the study's cells run: in this process, in local worker processes, or as submitit jobs.

Every engine runs the same function, `cells.run_cell(out_dir, name, threads)`, which needs only the
study folder; a cell's result is its file `cells/<name>.json`, so nothing but names and paths
crosses a process or machine boundary.

- `SerialEngine` (`--workers 1`): each cell in this process, one at a time.
- `ProcessEngine` (`--workers N`): N local processes (spawned, so no torch or Taichi state is forked),
  each with `threads` = cores // N torch and Taichi threads.
- `SubmititEngine` (`--engine submitit`): each cell a submitit job, at most `workers` at once: on
  SLURM (`sbatch`, one job per cell, `cpus_per_task` = threads), or in submitit's local mode
  (subprocesses of this machine, what the tests use). The study folder must be on a filesystem the
  nodes share. Why submitit and not Ray: docs/study.md.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from nerfprune.config import check_choice, check_fields, check_range
from nerfprune.errors import ConfigError

ENGINES = {
    "local": "cells in this process (--workers 1) or in N local worker processes (--workers N)",
    "submitit": "each cell a submitit job: SLURM where sbatch exists, else submitit's local mode (subprocesses)",
}
CLUSTERS = {
    "auto": "SLURM if sbatch is on PATH, else local",
    "slurm": "one SLURM job per cell (the study folder on a shared filesystem)",
    "local": "submitit's local mode: one subprocess per cell on this machine (what the tests use)",
}


@dataclass
class RunConfig:
    """How the cells run; never what they compute (thread counts aside, see docs/study.md)."""

    workers: int = 1  # cells in flight at once: local worker processes, or submitit jobs
    engine: str = "local"  # "local": this machine's processes; "submitit": submitit jobs (SLURM or its local mode)
    threads: int = 0  # torch/Taichi threads per cell (0: cores // workers, at least 1)
    cluster: str = "auto"  # submitit only: "auto" (SLURM where sbatch exists), "slurm" or "local"
    partition: str = ""  # submitit on SLURM: the partition to submit to ("" : the cluster's default)
    timeout_min: int = 24 * 60  # submitit: wall-time limit of one cell's job, minutes (a cell resumes after a timeout)
    poll_s: float = 2.0  # submitit: seconds between looks at the jobs in flight

    def validate(self) -> None:
        check_fields(self)
        check_range("workers", self.workers, 1, 4096)
        check_choice("engine", self.engine, ENGINES, "study engine")
        check_range("threads", self.threads, 0, 4096)
        check_choice("cluster", self.cluster, CLUSTERS, "submitit cluster")
        check_range("timeout_min", self.timeout_min, 1, 10**6)
        check_range("poll_s", self.poll_s, 0.0, 3600.0, low_open=True)

    def cell_threads(self, cores: int | None = None) -> int:
        """Threads per cell: `threads`, or this machine's cores shared among the workers (at least 1)."""
        if self.threads:
            return self.threads
        return max(1, (cores or os.cpu_count() or 1) // self.workers)


def _run_cell(out_dir: str, name: str, threads: int) -> dict:
    from nerfprune.experiments.cells import run_cell

    return run_cell(out_dir, name, threads)


class SerialEngine:
    """Each cell in this process, when it is submitted (`threads` 0: this process's setting)."""

    capacity = 1

    def __init__(self, out_dir: Path, threads: int = 0):
        self.out, self.threads = str(out_dir), threads

    def submit(self, name: str) -> cf.Future:
        future: cf.Future = cf.Future()
        restore = _torch_threads() if self.threads else 0
        try:
            if self.threads:  # torch only: this process's Taichi keeps the thread count it started with
                _set_torch_threads(self.threads)
            future.set_result(_run_cell(self.out, name, 0))
        except Exception as e:  # KeyboardInterrupt propagates: the scheduler stops
            future.set_exception(e)
        finally:
            if restore:
                _set_torch_threads(restore)
        return future

    def wait(self, handles: dict) -> list[str]:
        return [n for n, h in handles.items() if h.done()]

    def close(self, cancel: bool) -> None:
        pass


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _set_torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


class ProcessEngine:
    """`workers` spawned local processes, each cell with `threads` torch/Taichi threads."""

    def __init__(self, out_dir: Path, workers: int, threads: int):
        self.out, self.threads, self.capacity = str(out_dir), threads, workers
        # spawn, not fork: the driver may hold torch / Taichi threads and state that a fork would copy half of
        self.pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, name: str) -> cf.Future:
        return self.pool.submit(_run_cell, self.out, name, self.threads)

    def wait(self, handles: dict) -> list[str]:
        cf.wait(list(handles.values()), return_when=cf.FIRST_COMPLETED)
        return [n for n, h in handles.items() if h.done()]

    def close(self, cancel: bool) -> None:
        if cancel:  # Ctrl-C for the workers too, so a training cell saves its checkpoint now instead of finishing
            for process in list(getattr(self.pool, "_processes", {}).values()):
                if process.is_alive():
                    os.kill(process.pid, signal.SIGINT)
        self.pool.shutdown(wait=True, cancel_futures=cancel)


class SubmititEngine:
    """Cells as submitit jobs; their logs and pickles in `<out>/submitit/`."""

    def __init__(self, out_dir: Path, cfg: RunConfig, threads: int):
        try:
            import submitit
        except ImportError:
            raise ConfigError("--engine submitit needs the submitit package: pip install 'nerfprune[cluster]' "
                              "(or pip install submitit)") from None
        from nerfprune.experiments.submitit_job import CellJob

        cluster = cfg.cluster if cfg.cluster != "auto" else ("slurm" if shutil.which("sbatch") else "local")
        self.out, self.threads, self.capacity, self.poll_s = str(out_dir), threads, cfg.workers, cfg.poll_s
        self.job = CellJob()
        self.executor = submitit.AutoExecutor(folder=Path(out_dir) / "submitit" / "%j", cluster=cluster)
        params = {"timeout_min": cfg.timeout_min, "cpus_per_task": threads, "name": f"nerfprune-{Path(out_dir).name}"}
        if cluster == "slurm" and cfg.partition:
            params["slurm_partition"] = cfg.partition
        self.executor.update_parameters(**params)
        self.cluster = cluster
        self.jobs: list = []

    def submit(self, name: str):
        job = self.executor.submit(self.job, self.out, name, self.threads)
        self.jobs.append(job)
        return job

    def wait(self, handles: dict) -> list[str]:
        while True:
            done = [n for n, h in handles.items() if h.done()]
            if done:
                return done
            time.sleep(self.poll_s)

    def close(self, cancel: bool) -> None:
        if cancel:  # jobs left running would train into folders a re-run also trains into
            for job in self.jobs:
                if not job.done():
                    job.cancel(check=False)


def make_engine(out_dir: Path, cfg: RunConfig):
    """The engine `cfg` asks for (validated)."""
    cfg.validate()
    threads = cfg.cell_threads()
    if cfg.engine == "submitit":
        return SubmititEngine(out_dir, cfg, threads)
    if cfg.workers == 1:
        return SerialEngine(out_dir, cfg.threads)
    return ProcessEngine(out_dir, cfg.workers, threads)
