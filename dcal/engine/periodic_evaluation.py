"""The evaluation a training run makes after an epoch: the test split(s), the ``eval.datasets`` (keys
prefixed ``<name>/``, never choosing ``best.pt``) and the validation split (keys prefixed ``val_``),
as one record of ``metrics.jsonl``, printed on the main process.  A failing evaluation is one line
saying the epoch is saved and how to resume.
"""

from __future__ import annotations

from dcal.config import Config
from dcal.engine.data_setup import EvaluationSets
from dcal.engine.distributed import DistributedContext
from dcal.engine.evaluator import evaluate, evaluate_extra
from dcal.errors import DCALError, EvaluationFailed, TrainingInterrupted
from dcal.evaluation.report import extra_set_lines, format_metrics


def evaluate_after_epoch(model, eval_sets: dict, config: Config, context: DistributedContext, epoch: int, resume_hint: str) -> dict:
    """:func:`evaluate`, with a failure reported as one line that says the epoch is saved."""
    try:
        return evaluate(model, eval_sets, config, context)
    except (TrainingInterrupted, KeyboardInterrupt):
        raise
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if not isinstance(error, DCALError):
            reason = f"{type(error).__name__}: {reason}"
        raise EvaluationFailed(
            f"the evaluation after epoch {epoch} failed: {reason}. The epoch's training is saved in "
            f"checkpoints/last.pt; fix the cause and resume with: {resume_hint}"
        ) from error


def evaluate_epoch(model, sets: EvaluationSets, config: Config, context: DistributedContext, epoch: int, step: int,
                   resume_hint: str) -> dict:
    """The record of one periodic evaluation — test metrics, ``<name>/`` metrics of each extra test
    set (which never choose ``best.pt``), ``val_`` metrics — printed on the main process."""
    metrics = evaluate_after_epoch(model, sets.test, config, context, epoch, resume_hint)
    metrics.update(evaluate_extra(model, sets.extra, config, context))
    validation = evaluate_after_epoch(model, sets.validation, config, context, epoch, resume_hint) if sets.validation else None
    record = {"epoch": epoch, "step": step, **metrics}
    if config.data.skip_corrupt:
        record["skipped_images"] = sum(len(paths) for paths in sets.skipped.values())
    if validation:
        record.update({f"val_{k}": v for k, v in validation.items()})
    if context.is_main:
        print_record(record, sets, config, validation)
    return record


def print_record(record: dict, sets: EvaluationSets, config: Config, validation: dict | None) -> None:
    """The record as lines: the test metrics, the images left out, each extra test set, the validation."""
    print(format_metrics(config.task, record), flush=True)
    if config.data.skip_corrupt:
        print(f"  {record['skipped_images']} unreadable evaluation images skipped ("
              + ", ".join(f"{name} {len(paths)}" for name, paths in sets.skipped.items()) + ")", flush=True)
    for line in extra_set_lines(config.task, record, sets.extra):
        print(line, flush=True)
    if validation:
        print("  validation: " + format_metrics(config.task, validation), flush=True)
