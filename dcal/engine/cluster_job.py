"""A run as a job: ``--launcher local`` (a process on this machine) or ``--launcher slurm``, through submitit.

submitit (the optional extra ``cluster``) pickles :class:`TrainJob` with the run's config and
folder, submits it (``sbatch``, or a local process) and runs it there.  The job trains exactly as
``dcal train`` does, in the run folder; its submitit logs go to ``<run folder>/jobs/``, and
``<run folder>/job.json`` records the job (:func:`write_record`).

- **Slurm settings** come from the config's ``slurm`` section (partition, nodes, GPUs per node,
  CPUs per GPU, memory, time, account, QoS, constraint, other sbatch options): one task per GPU,
  and the tasks form one DDP run over every GPU of the job, as under ``torchrun``.
- **Pre-emption and time limits**: Slurm sends SIGUSR2 before the time limit (``--signal=USR2@90``)
  and submitit uses it as its pre-emption signal.  The training loop takes it like SIGTERM
  (:mod:`dcal.engine.interrupts`): it finishes the optimiser step and writes ``last.pt``; then the
  job hands the signal back to submitit, which calls :meth:`TrainJob.checkpoint` and requeues the
  job.  A job always resumes from ``last.pt`` when its run folder has one, so the requeued job
  continues the run exactly (bitwise on the CPU).  SIGTERM (``scancel``) checkpoints and stops.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import time
from pathlib import Path

from dcal.config import Config, config_from_dict
from dcal.engine.run_log import add_timing
from dcal.errors import DCALError, TrainingInterrupted

LAUNCHERS = ("inline", "local", "slurm")
RECORD_FILE = "job.json"
#: sacct states of a job that will still run (or runs)
WAITING_STATES = {"PENDING", "REQUEUED", "CONFIGURING", "SUSPENDED", "RESIZING", "REQUEUE_HOLD", "REQUEUE_FED",
                  "UNKNOWN", "RUNNING", "COMPLETING", "STAGE_OUT"}


class LauncherError(DCALError):
    """A job cannot be submitted or found (submitit missing, the cluster refused it)."""


def submitit_module():
    """submitit, or a one-line error naming the extra that installs it."""
    try:
        import submitit
    except ImportError:
        raise LauncherError("--launcher local/slurm needs submitit: pip install 'dcal[cluster]' "
                            "(or pip install submitit)") from None
    return submitit


class TrainJob:
    """The callable a job runs: train ``config`` in ``run_dir``, resuming from its ``last.pt`` if any."""

    def __call__(self, config: dict, run_dir: str) -> dict | None:
        from dcal.engine import distributed, trainer

        submitit = submitit_module()
        if submitit.JobEnvironment().num_tasks > 1:  # RANK, WORLD_SIZE, MASTER_ADDR, ... as torchrun sets them
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        config = config_from_dict(config, source=f"{run_dir} job")
        context = distributed.setup(config.train.device, config.train.threads)
        resume = (Path(run_dir) / "checkpoints" / "last.pt").is_file()
        print(f"{'resuming' if resume else 'starting'} the run in {run_dir}", flush=True)
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            metrics = trainer.train(config, run_dir, resume=resume, context=context).metrics
            if context.is_main:  # the seconds an ablation reports beside the run
                add_timing(run_dir, time.perf_counter() - wall, time.process_time() - cpu)
        except TrainingInterrupted as stopped:
            if stopped.signum == submitit.JobEnvironment._usr_sig():
                # last.pt is written: submitit's own handler (restored now) calls checkpoint() and requeues
                signal.raise_signal(stopped.signum)
            raise
        if context.distributed:  # leave the process group without distributed.finish's os._exit:
            import torch.distributed  # submitit still writes the job's result after this returns

            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
        return metrics

    def checkpoint(self, config: dict, run_dir: str):
        """submitit's requeue hook: the same job again (it resumes from the ``last.pt`` just written)."""
        return submitit_module().helpers.DelayedSubmission(self, config, run_dir)


def make_executor(launcher: str, folder, config: Config, gpu: int | None = None):
    """A submitit executor writing its logs to ``folder``; ``gpu``: the local job's one visible GPU."""
    submitit = submitit_module()
    s = config.slurm
    if launcher == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=s.time_min, tasks_per_node=1,
                                   **({"gpus_per_node": 1, "visible_gpus": (gpu,)} if gpu is not None else {}))
        return executor
    if launcher != "slurm":
        raise LauncherError(f"unknown launcher {launcher!r}; the launchers are {', '.join(LAUNCHERS)}")
    executor = submitit.SlurmExecutor(folder=folder)
    optional = {"partition": s.partition, "account": s.account, "qos": s.qos, "constraint": s.constraint,
                "mem": f"{s.mem_gb:g}GB" if s.mem_gb is not None else None,
                "gpus_per_node": s.gpus_per_node or None}
    executor.update_parameters(job_name=f"dcal-{config.name}", nodes=s.nodes, ntasks_per_node=max(1, s.gpus_per_node),
                               cpus_per_task=s.cpus_per_gpu, time=s.time_min, additional_parameters=dict(s.additional),
                               **{k: v for k, v in optional.items() if v is not None})
    return executor


def submit(launcher: str, config: Config, run_dir, gpu: int | None = None) -> dict:
    """Submit the run; returns (and writes to ``run_dir/job.json``) its record."""
    run_dir = Path(run_dir)
    folder = run_dir.resolve() / "jobs"
    try:
        job = make_executor(launcher, folder, config, gpu).submit(TrainJob(), config.to_dict(), str(run_dir.resolve()))
    except (OSError, RuntimeError) as error:  # no sbatch, sbatch refused the job, ...
        raise LauncherError(f"{launcher}: could not submit {run_dir}: {str(error).strip().splitlines()[-1]}") from None
    record = {"launcher": launcher, "job_id": str(job.job_id), "folder": str(folder), "gpu": gpu}
    write_record(run_dir, record)
    return record


def launch_run(launcher: str, config: Config, run_dir, wait: bool = False, poll_s: float = 5.0) -> int:
    """``dcal train --launcher local|slurm``: submit the run (not while a job of it still waits or
    runs) and return, or with ``wait`` wait for the job and report how it ended."""
    record = read_record(run_dir)
    if record is not None and job_status(record)[0] == "waiting":
        raise LauncherError(f"{run_dir}: {record['launcher']} job {record['job_id']} of this run folder is still "
                            "queued or running; wait for it (or cancel it) first")
    record = submit(launcher, config, run_dir)
    print(f"submitted {launcher} job {record['job_id']} for {run_dir} (logs in {record['folder']})", flush=True)
    if not wait:
        return 0
    while (status := job_status(record))[0] == "waiting":
        time.sleep(poll_s)
    if status[1] is not None:
        raise LauncherError(f"{launcher} job {record['job_id']} of {run_dir} failed: {status[1]}")
    print(f"{launcher} job {record['job_id']} finished; the run's summary is {Path(run_dir) / 'summary.json'}", flush=True)
    return 0


def write_record(run_dir, record: dict) -> None:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RECORD_FILE).write_text(json.dumps(record) + "\n", encoding="utf-8")


def read_record(run_dir) -> dict | None:
    """The last job submitted for ``run_dir`` (its ``job.json``), or None."""
    try:
        return json.loads((Path(run_dir) / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def job_status(record: dict) -> tuple[str, str | None]:
    """``("waiting" | "ended", error)`` of a recorded job: waiting = queued or running; ``error`` is
    the last line of a job that ended with an error (its exception, or else its stderr)."""
    submitit = submitit_module()
    if record["launcher"] == "local":
        job = submitit.local.local.LocalJob(record["folder"], record["job_id"])
        if not job.paths.result_pickle.exists() and _process_alive(int(record["job_id"])):
            return "waiting", None
    else:
        job = submitit.SlurmJob(record["folder"], record["job_id"])
        state = job.state.split()[0] if job.state else "UNKNOWN"
        if state in WAITING_STATES:
            return "waiting", None
    return "ended", _last_error(job)


def _last_error(job) -> str | None:
    if job.paths.result_pickle.exists():
        with job.paths.result_pickle.open("rb") as file:
            outcome, value = pickle.load(file)
        return None if outcome == "success" else _last_line(str(value))
    try:
        return _last_line(job.paths.stderr.read_text(encoding="utf-8", errors="replace")) or "ended without a result"
    except OSError:
        return "ended without a result or a log"


def _last_line(text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (ended, not yet reaped by the process that started it) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return True
