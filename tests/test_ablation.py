"""`dcal ablate`: variants as overrides, the ablation.json contract, skipping finished runs and
continuing an interrupted ablation."""

import json
import shlex

import pytest

from dcal.cli import main
from dcal.config import load_config
from dcal.engine import ablation
from dcal.errors import ConfigError

TINY = ["model.timm_kwargs={patch_size: 8, embed_dim: 32, depth: 2, num_heads: 2}", "train.epochs=1",
        "train.warmup_epochs=0", "data.batch_size=8", "data.num_workers=0", "data.img_size=[32, 32]",
        "data.synthetic_options={train_per_class: 3, test_per_class: 2}",
        "data.resize_size=[32, 32]", "model.drop_path_rate=0.0"]


def test_variants_are_the_papers_ablation_settings():
    config = load_config(None, [])
    assert ablation.DEFAULT_VARIANTS == ("baseline", "glca", "pwca", "dcal", "dcal_random")
    resolved = {v: load_config(None, ablation.variant_overrides(v, config)).model for v in ablation.VARIANTS}
    assert (resolved["baseline"].glca, resolved["baseline"].pwca_blocks) == (False, 0)
    assert (resolved["glca"].glca, resolved["glca"].pwca_blocks) == (True, 0)
    assert not resolved["pwca"].glca and resolved["pwca"].pwca_blocks != 0
    assert (resolved["dcal"].glca_selection, resolved["dcal"].glca_readout) == ("rollout", "local")
    assert resolved["dcal_random"].glca_selection == "random" and resolved["dcal_last"].glca_selection == "last"
    assert resolved["dcal_cls"].glca_readout == "cls"
    off = load_config(None, ["model.pwca_blocks=0"])  # a config without PWCA still ablates it
    assert load_config(None, ["model.pwca_blocks=0", *ablation.variant_overrides("dcal", off)]).model.pwca_blocks is None
    with pytest.raises(ConfigError, match="unknown variant"):
        ablation.parse_variants("dcal,best")


def test_ablate_writes_the_contract_and_continues_where_it_stopped(tmp_path, capsys, monkeypatch):
    out = tmp_path / "the ablation"  # a space: the continue hint quotes it
    args = ["ablate", "--seeds", "0", "1", "--variants", "baseline,dcal", "--out", str(out),
            f"data.root={tmp_path / 'data'}", *TINY]
    real_train = ablation._train_here

    def interrupted_after(count):  # the first `count` runs train, then the ablation is interrupted
        calls = []

        def make(base):
            train_one = real_train(base)

            def wrapped(config, run_dir, resume):
                if len(calls) == count:
                    raise KeyboardInterrupt
                calls.append((run_dir.name, resume))
                train_one(config, run_dir, resume)
            return wrapped
        return make, calls

    make, calls = interrupted_after(3)
    monkeypatch.setattr(ablation, "_train_here", make)
    assert main(args) == 130
    hint = capsys.readouterr().err.strip().splitlines()[-1]  # the command that continues the whole ablation
    assert hint.startswith("dcal ablate: interrupted by SIGINT;")
    continued = shlex.split(hint.split("continue the ablation with: ")[1])  # pasted into a shell
    assert continued[:2] == ["dcal", "ablate"] and sorted(continued[2:]) == sorted(args[1:])
    assert [name for name, _ in calls] == ["baseline-s0", "baseline-s1", "dcal-s0"]
    partial = json.loads((out / "ablation.json").read_text())
    assert len(partial["variants"]["dcal"]["runs"]) == 1

    finished = {name: (out / name / "checkpoints" / "last.pt").stat().st_mtime_ns for name, _ in calls}
    make, calls = interrupted_after(99)
    monkeypatch.setattr(ablation, "_train_here", make)
    assert main(continued[1:]) == 0
    assert calls == [("dcal-s1", False)]  # only the run that had not been trained
    for name, mtime in finished.items():
        assert (out / name / "checkpoints" / "last.pt").stat().st_mtime_ns == mtime

    result = json.loads((out / "ablation.json").read_text())
    assert result["metric"] == "top1" and list(result["variants"]) == ["baseline", "dcal"]
    for name, entry in result["variants"].items():
        assert entry["overrides"] == ablation.variant_overrides(name, load_config(None, TINY))
        assert [run["seed"] for run in entry["runs"]] == [0, 1]
        values = [run["metrics"]["top1"] for run in entry["runs"]]
        assert entry["mean"] == pytest.approx(sum(values) / 2)
        assert entry["std"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
        for run in entry["runs"]:  # timings survive the interruption: each run folder keeps its own
            assert run["cpu_s"] > 0 and run["wall_s"] > 0
            assert run["run_dir"] == str(out / f"{name}-s{run['seed']}")
            assert run["metrics"]["epoch"] == 1 and "top1_sa" in run["metrics"]
    assert result["variants"]["baseline"]["runs"][0]["metrics"]["top1_glca"] is None
    # An invocation interrupted before it reaches the dcal runs rewrites ablation.json without them;
    # their timings still come back, from their run folders.
    make, calls = interrupted_after(0)
    monkeypatch.setattr(ablation, "_train_here", make)
    assert main([*args[:2], "0", "1", "2", *args[4:]]) == 130
    assert list(json.loads((out / "ablation.json").read_text())["variants"]) == ["baseline"]
    assert main(args) == 0
    again = json.loads((out / "ablation.json").read_text())
    assert [run["cpu_s"] for run in again["variants"]["dcal"]["runs"]] == [run["cpu_s"] for run in result["variants"]["dcal"]["runs"]]
    table = (out / "ablation.md").read_text()
    assert "| baseline |" in table and "| dcal |" in table and "pointing game" in table
    assert table in capsys.readouterr().out
