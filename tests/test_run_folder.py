"""A run folder is never silently overwritten or changed: `dcal train` into a folder that holds a run,
--overwrite, --resume of a finished run, --resume with changed settings (--allow-changes), an
evaluation that fails after its epoch's checkpoint, checkpoint writes that fail (a disk that is
full, a read-only folder: real ones where the tests may mount them, i.e. as root)."""

import errno
import json
import os
import shutil
import subprocess

import pytest
import torch
import yaml

from dcal.cli import main
from dcal.engine.run_folder import CHANGES_FILE, run_state
from run_helpers import STEPS_PER_EPOCH, TINY_RUN, snapshot, temporaries
from tiny_datasets import write_tiny_fgvc


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_tiny_fgvc(tmp_path_factory.mktemp("data") / "tiny", classes=4, train_per_class=8, test_per_class=2)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_root):
    """A finished one-epoch run; tests that change it work on a copy."""
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", "--out", str(run), *TINY_RUN, f"data.root={data_root}"]) == 0
    return run


def copy_of(run, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


def test_run_state_of_absent_finished_and_unfinished_folders(finished, tmp_path):
    assert run_state(tmp_path / "nothing") == "absent"
    (tmp_path / "empty").mkdir()
    assert run_state(tmp_path / "empty") == "absent"
    assert run_state(finished) == "finished"
    started = tmp_path / "started"
    started.mkdir()
    shutil.copy(finished / "config.yaml", started / "config.yaml")  # stopped before its first checkpoint
    assert run_state(started) == "unfinished"


def test_a_second_run_into_the_same_folder_is_refused(finished, data_root, capsys):
    before = snapshot(finished)
    capsys.readouterr()
    assert main(["train", "--out", str(finished), *TINY_RUN, f"data.root={data_root}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{finished} already holds a finished run (1 of 1 epochs done)" in err
    assert "--resume" in err and "--overwrite" in err
    assert snapshot(finished) == before


def test_overwrite_moves_the_earlier_run_aside(finished, data_root, tmp_path, capsys):
    run = copy_of(finished, tmp_path)
    before = snapshot(run)
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--overwrite", *TINY_RUN, f"data.root={data_root}"]) == 0
    (old,) = tmp_path.glob("run.old-*")
    assert f"moved the earlier run in {run} to {old}" in capsys.readouterr().out
    assert snapshot(old) == before
    assert run_state(run) == "finished" and not temporaries(run)


def test_resume_of_a_finished_run_says_so_and_changes_nothing(finished, capsys):
    before = snapshot(finished)
    capsys.readouterr()
    assert main(["train", "--out", str(finished), "--resume"]) == 0
    assert f"{finished} is finished (1 of 1 epochs done); nothing to do" in capsys.readouterr().out
    assert snapshot(finished) == before


def test_resume_where_there_is_no_run(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert f"--resume: {tmp_path / 'none'} holds no run" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_resume_refuses_computing_changes_unless_allowed_and_records_them(finished, tmp_path, capsys):
    run = copy_of(finished, tmp_path)
    before = snapshot(run)
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "optim.lr=0.01", "train.epochs=2", "train.log_every=5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "optim.lr 0.002 -> 0.01" in err and "train.epochs 1 -> 2" in err and "--allow-changes" in err
    assert "train.log_every" not in err  # changes nothing the run computes
    assert snapshot(run) == before

    # The architecture cannot change even with --allow-changes.
    assert main(["train", "--out", str(run), "--resume", "--allow-changes", "model.glca=false"]) == 2
    assert "cannot change model.glca True -> False" in capsys.readouterr().err
    assert snapshot(run) == before

    assert main(["train", "--out", str(run), "--resume", "--allow-changes", "optim.lr=0.01", "train.epochs=2",
                 "train.log_every=5"]) == 0
    assert "resuming with changed settings: optim.lr 0.002 -> 0.01; train.epochs 1 -> 2; train.log_every 10 -> 5" \
        in capsys.readouterr().out
    assert (run / "config.yaml").read_bytes() == (finished / "config.yaml").read_bytes()  # the original, kept
    (entry,) = yaml.safe_load((run / CHANGES_FILE).read_text())
    assert entry["step"] == STEPS_PER_EPOCH and entry["epoch"] == 1
    assert entry["changes"] == {"optim.lr": {"from": 0.002, "to": 0.01}, "train.epochs": {"from": 1, "to": 2},
                                "train.log_every": {"from": 10, "to": 5}}
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["global_step"] == 2 * STEPS_PER_EPOCH and state["config"]["optim"]["lr"] == 0.01
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    # A later resume starts from the config the run is at (the checkpoint's), so it lists no change.
    assert main(["train", "--out", str(run), "--resume"]) == 0
    assert "is finished (2 of 2 epochs done)" in capsys.readouterr().out


def test_failed_evaluation_keeps_the_epoch_and_the_run_resumes(data_root, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    broken = root / "test" / "class_1" / "000.png"
    good = broken.read_bytes()
    broken.write_bytes(b"not an image")
    run = tmp_path / "run"
    capsys.readouterr()
    assert main(["train", "--out", str(run), *TINY_RUN, f"data.root={root}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"the evaluation after epoch 1 failed: cannot read image {broken}" in err
    assert f"resume with: dcal train --resume --out {run}" in err
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and state["global_step"] == STEPS_PER_EPOCH and state["pending_eval"]
    assert run_state(run) == "unfinished" and (run / "metrics.jsonl").read_text() == ""

    broken.write_bytes(good)
    assert main(["train", "--out", str(run), "--resume"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1] and records[0]["num_images"] == 8
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["global_step"] == STEPS_PER_EPOCH and not state["pending_eval"]  # evaluated, not retrained
    assert run_state(run) == "finished" and (run / "checkpoints" / "best.pt").is_file()


def test_disk_full_while_checkpointing_is_one_line_and_leaves_no_partial_file(data_root, tmp_path, capsys, monkeypatch):
    def full_disk(obj, f):
        f.write(b"partial checkpoint bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    run = tmp_path / "run"
    capsys.readouterr()
    assert main(["train", "--out", str(run), *TINY_RUN, f"data.root={data_root}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"dcal train: error: cannot write checkpoint {run / 'checkpoints' / 'last.pt'}: No space left on "
                   "device; the earlier file, if any, is unchanged")
    assert not temporaries(run) and not (run / "checkpoints" / "last.pt").exists()


def test_a_folder_where_the_checkpoint_goes_and_a_file_as_run_folder(finished, data_root, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints" / "last.pt").mkdir(parents=True)  # a folder in the checkpoint's way
    shutil.copy(finished / "config.yaml", run / "config.yaml")
    assert main(["train", "--out", str(run), "--resume"]) == 2
    assert f"cannot write checkpoint {run / 'checkpoints' / 'last.pt'}: Is a directory" in capsys.readouterr().err
    assert not temporaries(run)

    (tmp_path / "file").write_text("not a folder")
    assert main(["train", "--out", str(tmp_path / "file"), *TINY_RUN, f"data.root={data_root}"]) == 2
    assert f"run folder {tmp_path / 'file'} is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "not a folder"


def _mount(target, *options):
    """Mount ``options`` at ``target`` (root only); False where mounting is not permitted."""
    if os.geteuid() != 0:
        return False
    target.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", *options, str(target)], capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 KiB filesystem: a checkpoint does not fit."""
    disk = tmp_path / "disk"
    if not _mount(disk, "-t", "tmpfs", "-o", "size=64k", "tmpfs"):
        pytest.skip("needs root and permission to mount a tmpfs")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


@pytest.fixture
def read_only(tmp_path):
    """A folder that cannot be written: chmod for a user, a read-only bind mount for root."""
    source, folder = tmp_path / "source", tmp_path / "read_only"
    source.mkdir()
    if os.geteuid() != 0:
        source.chmod(0o555)
        yield source
        source.chmod(0o755)
        return
    if not (_mount(folder, "--bind", str(source)) and _mount(folder, "-o", "remount,bind,ro")):
        subprocess.run(["umount", str(folder)], capture_output=True)
        pytest.skip("needs permission to make a read-only bind mount")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_real_full_disk_stops_with_one_line_and_no_partial_file(small_disk, data_root, capsys):
    run = small_disk / "run"
    capsys.readouterr()
    assert main(["train", "--out", str(run), *TINY_RUN, f"data.root={data_root}"]) == 2
    err = one_line(capsys)
    assert f"{run / 'checkpoints' / 'last.pt'}: No space left on device" in err
    assert not temporaries(run) and not (run / "checkpoints" / "last.pt").exists()


def test_a_read_only_run_folder_stops_with_one_line(read_only, data_root, capsys):
    capsys.readouterr()
    assert main(["train", "--out", str(read_only / "run"), *TINY_RUN, f"data.root={data_root}"]) == 2
    err = one_line(capsys)
    assert f"cannot write the run folder {read_only / 'run'}" in err
    assert "Read-only file system" in err or "Permission denied" in err
    assert not (read_only / "run").exists()


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_failed_start_does_not_block_the_corrected_command(data_root, tmp_path, capsys):
    run = tmp_path / "runs" / "cub"
    missing = tmp_path / "not-downloaded"
    assert main(["train", "--out", str(run), *TINY_RUN, f"data.root={missing}"]) == 2
    assert str(missing) in one_line(capsys)
    assert not run.exists()  # the folder was made for the run: nothing is left of it

    run.mkdir(parents=True)
    (run / "notes.txt").write_text("mine")
    (run / "tensorboard").mkdir()  # a folder that was there before is not the start's to remove
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not weights")
    assert main(["train", "--out", str(run), *TINY_RUN, f"data.root={data_root}", f"model.init_from={broken}"]) == 2
    assert str(broken) in one_line(capsys)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt", "tensorboard"]

    assert main(["train", "--out", str(run), *TINY_RUN, f"data.root={data_root}"]) == 0
    assert run_state(run) == "finished" and (run / "notes.txt").read_text() == "mine"


def test_the_resume_hint_quotes_a_run_folder_with_a_space(data_root, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    (root / "test" / "class_1" / "000.png").write_bytes(b"not an image")
    run = tmp_path / "my run"
    capsys.readouterr()
    assert main(["train", "--out", str(run), *TINY_RUN, f"data.root={root}"]) == 2
    assert f"resume with: dcal train --resume --out '{run}'" in one_line(capsys)


def test_an_interrupted_allow_changes_resume_records_its_changes_once(finished, tmp_path, capsys, monkeypatch):
    import dcal.engine.checkpoint

    run = copy_of(finished, tmp_path)
    changes = ["--resume", "--allow-changes", "optim.lr=0.01", "train.epochs=2"]
    real_save = dcal.engine.checkpoint.save_checkpoint

    def killed(state, path):
        raise SystemExit(137)  # the process dies before the resumed run's first checkpoint

    monkeypatch.setattr(dcal.engine.checkpoint, "save_checkpoint", killed)
    with pytest.raises(SystemExit):
        main(["train", "--out", str(run), *changes])
    assert len(yaml.safe_load((run / CHANGES_FILE).read_text())) == 1
    monkeypatch.setattr(dcal.engine.checkpoint, "save_checkpoint", real_save)
    assert main(["train", "--out", str(run), *changes]) == 0
    (entry,) = yaml.safe_load((run / CHANGES_FILE).read_text())
    assert entry["step"] == STEPS_PER_EPOCH and entry["changes"] == {"optim.lr": {"from": 0.002, "to": 0.01},
                                                                     "train.epochs": {"from": 1, "to": 2}}
    assert main(["train", "--out", str(run), "--resume", "--allow-changes", "train.epochs=3"]) == 0
    assert [e["step"] for e in yaml.safe_load((run / CHANGES_FILE).read_text())] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]


def test_a_partial_metrics_line_is_dropped_on_resume_and_by_readers(finished, tmp_path):
    from dcal.engine.run_log import RunLog, read_records

    run = copy_of(finished, tmp_path)
    whole = (run / "metrics.jsonl").read_text()
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 2, "top1": 0.5, "to')  # a full disk while appending the next record
    assert read_records(run / "metrics.jsonl") == [json.loads(whole)]
    log = RunLog(run, keep_records=5, purge_step=STEPS_PER_EPOCH)  # more records than are whole
    log.close()
    assert (run / "metrics.jsonl").read_text() == whole and log.records == 1
