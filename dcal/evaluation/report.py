"""The one line of evaluation metrics a person reads, printed by ``dcal train`` after each
evaluation and by ``dcal eval``."""

from __future__ import annotations

from dcal.evaluation.camera_filter import NO_CAMERA_NOTE, QUERY_IMAGE


def format_metrics(task: str, metrics: dict) -> str:
    """One line of the metrics a person reads: top-1 per branch (FGVC) or mAP and Rank-1, also per
    branch with GLCA (Re-ID)."""
    def pct(value):
        return "n/a" if value is None else f"{value:.2f}%"

    head = f"epoch {metrics['epoch']}: " if "epoch" in metrics else ""
    if task == "fgvc":
        line = (f"{head}top-1 SA {pct(metrics['top1_sa'])}  GLCA {pct(metrics['top1_glca'])}  "
                f"combined {pct(metrics['top1'])}  (top-5 combined {pct(metrics['top5'])}, {metrics['num_images']} images)")
        if "pointing_game" in metrics:
            line += f"  pointing game {pct(metrics['pointing_game'])} (chance {pct(metrics['pointing_game_chance'])})"
        return line
    def reid(key):  # VehicleID's gallery draws: mean ± standard deviation
        return pct(metrics[key]) + (f" ± {metrics[key + '_std']:.2f}" if key + "_std" in metrics else "")

    line = (f"{head}mAP {reid('mAP')}  Rank-1 {reid('rank1')}  Rank-5 {reid('rank5')}  "
            f"mINP {reid('mINP')}  ")
    if metrics.get("mAP_glca") is not None:  # each branch's feature alone
        line += (f"(SA mAP {pct(metrics['mAP_sa'])} Rank-1 {pct(metrics['rank1_sa'])}, "
                 f"GLCA mAP {pct(metrics['mAP_glca'])} Rank-1 {pct(metrics['rank1_glca'])})  ")
    line += f"({metrics['num_images']} images"
    line += f", {metrics['gallery_draws']} gallery draws)" if "gallery_draws" in metrics else ")"
    if metrics.get("gallery_exclusion") == QUERY_IMAGE:
        line += f"  [{NO_CAMERA_NOTE}]"
    return line


def extra_set_lines(task: str, metrics: dict, names) -> list[str]:
    """One indented line per extra test set of ``eval.datasets`` in ``names``, from its metrics under
    the ``<name>/`` prefix (``dukemtmc/mAP``) with which they sit beside the main test set's."""
    return [f"  {name}: " + format_metrics(task, {key[len(name) + 1:]: value for key, value in metrics.items()
                                                  if key.startswith(f"{name}/")})
            for name in names]
