"""The run's summary: which checkpoint to report, and its test metrics (``summary.json``).

``best.pt`` is chosen on the validation metrics (``val_top1`` for FGVC, ``val_mAP`` for Re-ID) when
the run has a validation set (``data.val_split`` or ``data.val_fraction``), else on the test
metrics themselves — which picks the epoch that happens to score best on the test split, an
optimistic figure.  The summary reports the last epoch's test metrics and the test metrics of the
selected epoch, says which selection was made, and under ``paper`` gives the paper's figures for
the run's dataset, backbone and variant (:mod:`dcal.evaluation.paper_figures`; null without a match).
"""

from __future__ import annotations

import json
from pathlib import Path

from dcal.config import Config
from dcal.evaluation.paper_figures import format_reference, paper_reference

VAL_PREFIX = "val_"


def has_validation(config: Config) -> bool:
    """Whether the run evaluates a validation set beside the test split."""
    return config.data.val_split is not None or config.data.val_fraction is not None


def selection_metric(config: Config) -> str:
    """The metric that decides ``best.pt``: (validation) combined top-1 for FGVC, mAP for Re-ID."""
    name = "top1" if config.task == "fgvc" else "mAP"
    return VAL_PREFIX + name if has_validation(config) else name


def split_metrics(record: dict) -> tuple[dict, dict]:
    """``(test metrics, validation metrics)`` of one evaluation record, without ``epoch``/``step``."""
    test = {k: v for k, v in record.items() if not k.startswith(VAL_PREFIX) and k not in ("epoch", "step")}
    val = {k[len(VAL_PREFIX):]: v for k, v in record.items() if k.startswith(VAL_PREFIX)}
    return test, val


def run_summary(config: Config, last: dict | None, best: dict | None) -> dict:
    """The summary of a run whose last evaluation is ``last`` and whose ``best.pt`` holds ``best``."""
    validated = has_validation(config)
    metric = selection_metric(config)

    def epoch_entry(record):
        if record is None:
            return None
        test, val = split_metrics(record)
        return {"epoch": record.get("epoch"), "step": record.get("step"), "test": test, "val": val or None}

    if validated:
        note = f"best.pt is the epoch with the best validation {metric[len(VAL_PREFIX):]}; report its test metrics"
    else:
        note = (f"no validation set (data.val_split or data.val_fraction): best.pt is the epoch with the best "
                f"test {metric}, so its test metrics are optimistic; report the last epoch's, or set a validation set")
    return {
        "task": config.task,
        "selected_on": "validation" if validated else "test",
        "selection_metric": metric,
        "optimistic": not validated,
        "note": note,
        "last_epoch": epoch_entry(last),
        "best_epoch": epoch_entry(best),
        "paper": paper_reference(config),
    }


def write_summary(run_dir, summary: dict) -> Path:
    """``summary.json`` in the run folder."""
    path = Path(run_dir) / "summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return path


def format_summary(summary: dict, format_metrics) -> str:
    """Lines a person reads at the end of a run; ``format_metrics(metrics)`` formats one test record."""
    lines = []
    for key, title in (("last_epoch", "last epoch"), ("best_epoch", f"best.pt (best {summary['selection_metric']})")):
        entry = summary[key]
        if entry is not None:
            lines.append(f"{title}, epoch {entry['epoch']}, test: {format_metrics(entry['test'])}")
    if summary.get("paper") is not None:
        lines.append(format_reference(summary["task"], summary["paper"]))
    lines.append(summary["note"])
    return "\n".join(lines)
