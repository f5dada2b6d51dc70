"""The table of ``dcal ablate`` over several configs and backbones, shaped like the paper's Tables 1
and 2: rows backbones, columns datasets, each cell the measured baseline → DCAL (mean over the
seeds) with the paper's pair beside it (Zhu et al., CVPR 2022; :mod:`dcal.evaluation.paper_figures`).

FGVC cells give top-1, Re-ID cells mAP/Rank-1, in %; a config set of both tasks gives one table per
task.  ``…`` marks a variant with no finished run yet, ``—`` a paper figure the paper does not have
(any synthetic demo, a backbone or dataset outside its tables).

``paper_table.json``: ``{TASK: {"metrics": [...], "columns": [title, ...], "rows": {BACKBONE:
{title: {"baseline": {metric: mean} | null, "dcal": ..., "paper": {"baseline": {...}, "dcal":
{...}} | null, "ablation": folder}}}}}``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from dcal.evaluation.paper_figures import PAPER_METRICS, paper_row

TITLES = {"fgvc": "Top-1 accuracy (%), baseline → DCAL", "reid": "mAP / Rank-1 (%), baseline → DCAL"}


def paper_table(cells: list) -> dict:
    """``cells``: ``(backbone, ablation, result)`` of each ablation (its
    :class:`~dcal.engine.ablation.Ablation` and ``ablation.json`` content); returns the JSON table."""
    tables = {}
    for backbone, ablation, result in cells:
        config = ablation.runs[0].config
        metrics = PAPER_METRICS[config.task]
        table = tables.setdefault(config.task, {"metrics": list(metrics), "columns": [], "rows": {}})
        title = config.paper.title or config.name
        if title not in table["columns"]:
            table["columns"].append(title)
        table["rows"].setdefault(backbone, {})[title] = {
            **{variant: _means(result["variants"].get(variant), metrics) for variant in ("baseline", "dcal")},
            "paper": paper_row(config), "ablation": str(ablation.out_dir)}
    return tables


def markdown(tables: dict) -> str:
    """The tables as Markdown, one per task."""
    blocks = []
    for task, table in tables.items():
        lines = [f"{TITLES[task]} (measured, mean over seeds; paper's in brackets)", "",
                 "| backbone | " + " | ".join(table["columns"]) + " |", "|---" * (1 + len(table["columns"])) + "|"]
        for backbone, row in table["rows"].items():
            cells = []
            for column in table["columns"]:
                cell = row.get(column)
                if cell is None:
                    cells.append("")
                    continue
                paper = cell["paper"] or {}
                cells.append(f"{_pair(cell['baseline'], cell['dcal'], table['metrics'])} "
                             f"[{_pair(paper.get('baseline'), paper.get('dcal'), table['metrics'], missing='—')}]")
            lines.append(f"| {backbone} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def write_table(tables: dict, out_dir) -> None:
    """``paper_table.json`` and ``paper_table.md`` in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "paper_table.json").write_text(json.dumps(tables, indent=1) + "\n", encoding="utf-8")
    (out_dir / "paper_table.md").write_text(markdown(tables), encoding="utf-8")


def _means(entry: dict | None, metrics) -> dict | None:
    runs = entry["runs"] if entry else []
    means = {}
    for metric in metrics:
        values = [run["metrics"][metric] for run in runs if run["metrics"].get(metric) is not None]
        if values:
            means[metric] = statistics.fmean(values)
    return means or None


def _pair(baseline: dict | None, dcal: dict | None, metrics, missing: str = "…") -> str:
    def one(figures):
        if not figures:
            return missing
        return "/".join(f"{figures[m]:.1f}" if m in figures else missing for m in metrics)

    return f"{one(baseline)} → {one(dcal)}"
