"""An ablation's runs as jobs (``dcal ablate --launcher local|slurm`` or ``--jobs N``).

:func:`launch_ablation` submits every run of its ablations (:class:`~dcal.engine.ablation.Ablation`) that is
neither finished nor waiting for a job already (queued or running), at most ``jobs`` of them
waiting at once, and records each job in its run folder (``job.json``,
:mod:`dcal.engine.cluster_job`).  It then collects what finished into ``ablation.json`` and
``ablation.md``, listing the runs still queued and those whose job failed (with the job's last
error line).  Without ``wait`` it returns at once; invoked again later it collects, and submits
what is left — never a finished run nor one whose job still waits; a failed run is submitted
again once per invocation, and resumes from its checkpoint.  With ``wait`` it stays until every
run has finished or failed, submitting as slots free.

Local jobs on a machine with GPUs get one GPU each (the GPU fewest of the waiting jobs use); on
the CPU each uses the config's ``train.threads``.  A stop signal while waiting stops this ablation's
local jobs after their current optimiser step (each writes ``last.pt``) and raises
:class:`~dcal.errors.TrainingInterrupted`; Slurm jobs keep running on the cluster.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Optional

from dcal.engine import cluster_job
from dcal.engine.ablation import collect
from dcal.engine.interrupts import StopSignals, signal_name
from dcal.errors import TrainingInterrupted


def launch_ablation(ablations: list, launcher: str, jobs: Optional[int] = None, wait: bool = False,
                    log=print, poll_s: float = 10.0) -> list:
    """Submit the runs of every ablation in ``ablations`` (at most ``jobs`` waiting at once over all
    of them), with ``wait`` wait, and collect; returns each ablation's ``ablation.json`` content."""
    submitted = set()  # runs submitted by this invocation: a failure is not resubmitted in the same one
    gpus = _gpu_count(launcher, ablations[0])
    runs = [run for ablation in ablations for run in ablation.runs]
    finished = set()  # a finished run stays finished: its checkpoint is read until it is
    with StopSignals() as stop:
        while True:
            pending, waiting, free = {}, [], []
            for run in runs:
                if run.run_dir in finished or run.finished():
                    finished.add(run.run_dir)
                    continue
                record = cluster_job.read_record(run.run_dir)
                state, error = cluster_job.job_status(record) if record else (None, None)
                job = f"{record['launcher']} job {record['job_id']}" if record else None
                if state == "waiting":
                    waiting.append(record)
                    pending[run.run_dir] = {"state": "queued or running", "job": job}
                elif run.run_dir in submitted:
                    pending[run.run_dir] = {"state": "failed", "job": job, "error": error}
                else:
                    free.append((run, error, job))
            for run, error, job in free:
                if jobs is not None and len(waiting) >= jobs:
                    pending[run.run_dir] = {"state": "not submitted yet", "job": None}
                    continue
                gpu = min(range(gpus), key=lambda g: sum(r.get("gpu") == g for r in waiting)) if gpus else None
                record = cluster_job.submit(launcher, run.config, run.run_dir, gpu=gpu)
                submitted.add(run.run_dir)
                waiting.append(record)
                log(f"ablation: submitted {run.variant}, seed {run.seed} as {launcher} job {record['job_id']}"
                    + (f" (the previous job failed: {error})" if error else ""))
                pending[run.run_dir] = {"state": "queued or running", "job": f"{launcher} job {record['job_id']}"}
            results = [collect(ablation, {path.name: job for path, job in pending.items() if path.parent == ablation.out_dir},
                               finished=finished)
                       for ablation in ablations]
            if not wait or not waiting:
                return results
            if stop.requested:
                _stop_local_jobs(waiting, stop.signum, log)
                raise TrainingInterrupted(f"interrupted by {signal_name(stop.signum)}", stop.signum)
            time.sleep(poll_s)


def _gpu_count(launcher: str, ablation) -> int:
    """GPUs the local jobs share out (0: CPU jobs, or a Slurm job's own GPUs)."""
    if launcher != "local" or ablation.runs[0].config.train.device == "cpu":
        return 0
    import torch

    return torch.cuda.device_count()


def _stop_local_jobs(records: list, signum: int, log, timeout_s: float = 120.0) -> None:
    """SIGTERM to this ablation's waiting local jobs (their controllers pass it to the training,
    which checkpoints and stops); wait for them to end.  Slurm jobs are left to the cluster."""
    local = [r for r in records if r["launcher"] == "local"]
    for record in local:
        try:
            os.kill(int(record["job_id"]), signal.SIGTERM)
        except ProcessLookupError:
            pass
    if local:
        log(f"ablation: {signal_name(signum)}: stopping {len(local)} local job(s) after their current step")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(cluster_job.job_status(r)[0] == "waiting" for r in local):
        time.sleep(0.5)
