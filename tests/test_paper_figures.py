"""The paper's figures beside measured ones: matching a run to a row of the dataset config, in
summary.json, `dcal eval` and ablation.md; the paper-shaped table of `dcal ablate` over several
configs and backbones."""

import json
from pathlib import Path

import pytest

from dcal.cli import main
from dcal.config import load_config
from dcal.engine.ablation import markdown_table
from dcal.errors import ConfigError
from dcal.evaluation.paper_figures import paper_reference
from run_helpers import TINY_RUN
from tiny_datasets import write_tiny_fgvc

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BASELINE = ["model.glca=false", "model.pwca_blocks=0"]


def test_a_run_matches_the_row_of_its_dataset_backbone_and_variant():
    cub = CONFIGS / "fgvc" / "cub200.yaml"
    deit_t = ["model.backbone=deit_tiny_patch16_224.fb_in1k"]
    # Table 1, DeiT-T on CUB-200-2011: 82.1 -> 84.6; Table 2, ViT-B on Market-1501: 87.1/94.3 -> 87.5/94.7
    assert paper_reference(load_config(cub, deit_t))["top1"] == 84.6
    assert paper_reference(load_config(cub, [*deit_t, *BASELINE]))["top1"] == 82.1
    market = paper_reference(load_config(CONFIGS / "reid" / "market1501.yaml", BASELINE))
    assert (market["backbone"], market["mAP"], market["rank1"]) == ("vit_base_patch16_224", 87.1, 94.3)
    for unmatched in (["model.pwca_blocks=0"], ["model.glca_selection=random"], ["data.synthetic=true"],
                      ["data.dataset=aircraft"], ["model.backbone=vit_small_patch16_224"]):
        assert paper_reference(load_config(cub, [*deit_t, *unmatched])) is None, unmatched
    with pytest.raises(ConfigError, match="paper.results"):
        load_config(None, ["paper.results={deit_tiny_patch16_224: {best: {top1: 1}}}"])


def test_eval_summary_and_ablation_table_show_the_paper_beside(tmp_path, capsys):
    root = write_tiny_fgvc(tmp_path / "data", classes=4, train_per_class=4, test_per_class=2)
    run = tmp_path / "run"
    paper = ["paper.dataset=image_folder", "paper.title=Tiny",
             "paper.results={vit_tiny_patch16_224: {baseline: {top1: 11.5}, dcal: {top1: 12.5}}}"]
    assert main(["train", "--out", str(run), *TINY_RUN, f"data.root={root}", *paper]) == 0
    expected = {"dataset": "Tiny", "backbone": "vit_tiny_patch16_224", "variant": "dcal", "top1": 12.5}
    assert json.loads((run / "summary.json").read_text())["paper"] == expected
    assert "paper (dcal, vit_tiny_patch16_224, Tiny): top-1 12.5" in capsys.readouterr().out
    assert main(["eval", "--checkpoint", str(run / "checkpoints" / "last.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["paper"] == expected
    assert main(["eval", "--checkpoint", str(run / "checkpoints" / "last.pt")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "paper (dcal, vit_tiny_patch16_224, Tiny): top-1 12.5"

    result = {"metric": "top1", "variants": {
        name: {"overrides": [], "mean": 50.0, "std": 0.0, "paper": figures,
               "runs": [{"seed": 0, "metrics": {"top1": 50.0, "top1_sa": 40.0, "top1_glca": 45.0}}]}
        for name, figures in (("baseline", {"top1": 82.1}), ("glca", None), ("dcal", {"top1": 84.6}))}}
    rows = markdown_table(result).splitlines()
    assert rows[0].startswith("| variant | top-1 (%), mean ± std | per seed | paper | SA top-1")
    assert rows[2].startswith("| baseline | 50.00 ± 0.00 | s0: 50.00 | 82.1 |")
    assert rows[3].startswith("| glca | 50.00 ± 0.00 | s0: 50.00 | — |")
    assert rows[4].startswith("| dcal | 50.00 ± 0.00 | s0: 50.00 | 84.6 |")


def test_reid_ablation_table_has_per_branch_columns_when_the_runs_report_them():
    metrics = {"mAP": 60.0, "rank1": 80.0, "mAP_sa": 55.0, "mAP_glca": 57.0, "rank1_sa": 75.0, "rank1_glca": 77.0}
    result = {"metric": "mAP", "variants": {"dcal": {"overrides": [], "mean": 60.0, "std": 0.0, "paper": None,
                                                     "runs": [{"seed": 0, "metrics": metrics}]}}}
    header, _, row, *_ = markdown_table(result).splitlines()
    assert header == "| variant | mAP (%), mean ± std | per seed | Rank-1 | SA mAP | GLCA mAP | SA Rank-1 | GLCA Rank-1 |"
    assert row == "| dcal | 60.00 ± 0.00 | s0: 60.00 | 80.00 ± 0.00 | 55.00 ± 0.00 | 57.00 ± 0.00 | 75.00 ± 0.00 | 77.00 ± 0.00 |"
    result["variants"]["dcal"]["runs"][0]["metrics"] = {"mAP": 60.0, "rank1": 80.0}
    assert "SA mAP" not in markdown_table(result)


def test_ablate_over_configs_and_backbones_writes_the_paper_shaped_table(tmp_path, capsys):
    out = tmp_path / "table"
    tiny = ["model.timm_kwargs={patch_size: 8, embed_dim: 16, depth: 1, num_heads: 1}", "train.epochs=1",
            "train.warmup_epochs=0", "data.batch_size=8", "data.img_size=[32, 32]", "data.resize_size=[32, 32]",
            "data.synthetic_options={train_per_class: 2, test_per_class: 1}", f"data.root={tmp_path / 'data'}"]
    configs = [str(CONFIGS / "demo" / "fgvc.yaml"), str(CONFIGS / "demo" / "fgvc_few.yaml")]
    assert main(["ablate", "--config", configs[0], "--config", configs[1], "--backbones", "vit_tiny_patch16_224,deit_tiny_patch16_224.fb_in1k",
                 "--seeds", "0", "--out", str(out), *tiny]) == 0
    table = json.loads((out / "paper_table.json").read_text())["fgvc"]
    names = [load_config(path).name for path in configs]
    assert table["metrics"] == ["top1"] and table["columns"] == names
    assert list(table["rows"]) == ["vit_tiny_patch16_224", "deit_tiny_patch16_224"]
    for backbone, row in table["rows"].items():
        for name in names:
            cell = row[name]
            ablation = json.loads((Path(cell["ablation"]) / "ablation.json").read_text())
            assert Path(cell["ablation"]) == out / f"{name}-{backbone}" and list(ablation["variants"]) == ["baseline", "dcal"]
            for variant in ("baseline", "dcal"):
                assert cell[variant]["top1"] == ablation["variants"][variant]["runs"][0]["metrics"]["top1"]
            assert cell["paper"] is None  # synthetic demo sets: the paper has no figure
    markdown = (out / "paper_table.md").read_text()
    assert f"| backbone | {names[0]} | {names[1]} |" in markdown and markdown.count("[— → —]") == 4
    assert markdown in capsys.readouterr().out
