"""Runs as jobs through submitit's local executor: an ablation submitted, collected and collected
again without resubmitting; a failed job's last error line; a pre-empted job requeued and resumed
bitwise; the Slurm settings and their errors."""

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from dcal.cli import main
from dcal.config import load_config
from dcal.engine import cluster_job
from dcal.errors import ConfigError

submitit = pytest.importorskip("submitit")

TINY = ["model.timm_kwargs={patch_size: 8, embed_dim: 16, depth: 1, num_heads: 1}", "train.epochs=1",
        "train.warmup_epochs=0", "data.batch_size=8", "data.img_size=[32, 32]", "data.resize_size=[32, 32]",
        "data.synthetic_options={train_per_class: 2, test_per_class: 1}", "train.threads=1"]


@pytest.fixture(autouse=True)
def _worktree_on_path(monkeypatch):
    """The jobs' processes import this checkout's dcal."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                      os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _job_ids(out: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text())["job_id"] for p in sorted(out.glob("*/job.json"))}


def test_ablation_submitted_collected_and_recollected_without_resubmitting(tmp_path, capsys):
    out = tmp_path / "ablation"
    args = ["ablate", "--launcher", "local", "--jobs", "2", "--seeds", "0", "--variants", "baseline,dcal",
            "--out", str(out), f"data.root={tmp_path / 'data'}", *TINY]
    assert main(args) == 0  # submits both runs and returns
    submitted = _job_ids(out)
    assert set(submitted) == {"baseline-s0", "dcal-s0"} and capsys.readouterr().out.count("ablation: submitted") == 2
    assert main(args) == 0  # queued, running or finished: nothing submitted again
    assert _job_ids(out) == submitted and "submitted" not in capsys.readouterr().out
    assert main([*args, "--wait"]) == 0
    result = json.loads((out / "ablation.json").read_text())
    assert "pending" not in result
    for variant in ("baseline", "dcal"):
        (run,) = result["variants"][variant]["runs"]
        assert run["metrics"]["epoch"] == 1 and 0 <= run["metrics"]["top1"] <= 100
        assert run["cpu_s"] > 0 and run["wall_s"] > 0  # the job's own training time, as an inline run's
    assert main(args) == 0 and _job_ids(out) == submitted  # collected again: still no job submitted


def test_a_failed_job_is_listed_with_its_last_error_line(tmp_path):
    out = tmp_path / "ablation"
    missing = tmp_path / "no-such-dataset"
    args = ["ablate", "--launcher", "local", "--wait", "--seeds", "0", "--variants", "baseline", "--out", str(out),
            f"data.root={missing}", "data.synthetic=false", *TINY]
    assert main(args) == 1
    (job,) = json.loads((out / "ablation.json").read_text())["pending"].values()
    assert job["state"] == "failed" and job["job"].startswith("local job ")
    assert "DatasetError" in job["error"] and str(missing) in job["error"]
    assert f"- baseline-s0: failed ({job['job']}): {job['error']}" in (out / "ablation.md").read_text()


def _task_pid(controller: int) -> int | None:
    try:
        children = Path(f"/proc/{controller}/task/{controller}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def test_a_preempted_job_is_requeued_and_resumes_bitwise(tmp_path):
    steps = ["train.epochs=3", "train.checkpoint_every=1", "data.synthetic_options={train_per_class: 4, test_per_class: 1}",
             "train.eval_every=3", "model.pwca_blocks=1"]
    run_args = [f"data.root={tmp_path / 'data'}", *TINY, *steps]
    assert main(["train", "--out", str(tmp_path / "inline"), *run_args]) == 0  # the uninterrupted run

    job_dir = tmp_path / "job"
    assert main(["train", "--launcher", "local", "--out", str(job_dir), *run_args]) == 0
    record = cluster_job.read_record(job_dir)
    last = job_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300  # generous: on a loaded 2-core machine the job starts slowly
    while not last.exists() and time.monotonic() < deadline:  # the first optimiser step is checkpointed
        time.sleep(0.005)
    os.kill(_task_pid(int(record["job_id"])), signal.SIGUSR2)  # Slurm's time-limit / pre-emption signal
    while cluster_job.job_status(record)[0] == "waiting" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cluster_job.job_status(record) == ("ended", None)
    log = (job_dir / "jobs" / f"{record['job_id']}_0_log.out").read_text()
    assert "starting the run" in log and "resuming the run" in log  # requeued, then resumed from last.pt
    assert "Caught signal SIGUSR2" in (job_dir / "jobs" / f"{record['job_id']}_0_log.err").read_text()
    a = torch.load(tmp_path / "inline" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["global_step"] == b["global_step"] == 3 * 5
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), key


def test_slurm_settings_reach_sbatch_and_their_errors_name_the_key(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"  # submitit writes `srun` into the script only where it finds one
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config = load_config(None, ["slurm.partition=gpu", "slurm.nodes=2", "slurm.gpus_per_node=4", "slurm.cpus_per_gpu=10",
                                "slurm.mem_gb=64", "slurm.time_min=600", "slurm.account=vision", "slurm.qos=high",
                                "slurm.constraint=a100", "slurm.additional={exclude: node12}"])
    script = cluster_job.make_executor("slurm", tmp_path, config)._make_submission_file_text("python job.py", "x")
    for line in ("--partition=gpu", "--nodes=2", "--gpus-per-node=4", "--ntasks-per-node=4", "--cpus-per-task=10",
                 "--mem=64GB", "--time=600", "--account=vision", "--qos=high", "--constraint=a100", "--exclude=node12",
                 "--signal=USR2@90"):
        assert f"#SBATCH {line}\n" in script, line
    with pytest.raises(ConfigError, match="did you mean 'slurm.partition'"):
        load_config(None, ["slurm.partion=gpu"])
    with pytest.raises(ConfigError, match="'slurm.time_min' must be at least 1 minute, got 0"):
        load_config(None, ["slurm.time_min=0"])


def test_without_submitit_a_launcher_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    assert main(["train", "--launcher", "slurm", "--out", str(tmp_path / "run"), *TINY]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "pip install 'dcal[cluster]'" in line
