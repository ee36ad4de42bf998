"""The callable a submitit job runs: one study cell, requeued after a SLURM timeout or preemption.

Imported only by `engines.SubmititEngine` (it needs the submitit package). `Checkpointable`'s
`checkpoint` resubmits the same call; that is all a requeue needs, because the cell itself resumes
from its last training checkpoint (`cells.run_cell`).
"""

from __future__ import annotations

from submitit.helpers import Checkpointable


class CellJob(Checkpointable):
    """`CellJob()(out_dir, name, threads)` computes study cell `name` (see `cells.run_cell`)."""

    def __call__(self, out_dir: str, name: str, threads: int) -> dict:
        from nerfprune.experiments.cells import run_cell

        return run_cell(out_dir, name, threads)
