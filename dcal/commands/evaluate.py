"""``dcal eval --checkpoint FILE [--config FILE] [--dataset NAME --root DIR] [--json] [key=value ...]``

Rebuilds the model from the checkpoint alone and evaluates it on the test split(s) of the dataset
in the checkpoint's config — or of ``--config`` / the overrides (``data.root=...``), which must
describe the same architecture — and on each test set of ``eval.datasets`` (keys prefixed
``<name>/``).  ``--dataset NAME --root DIR`` evaluates on that dataset alone, which must be of the
checkpoint's task: cross-domain Re-ID (a Market-1501 model on DukeMTMC-reID), or an FGVC dataset
with the same classes.  Prints top-1/top-5 per branch (FGVC) or mAP, mINP and CMC (Re-ID);
``--json`` prints one JSON object with the keys of ``metrics.jsonl``.  Beside them: the paper's
figures for the dataset, backbone and variant (``paper``: null, or "—" in text, without a match;
:mod:`dcal.evaluation.paper_figures`).  Runs under torchrun too.
"""

from __future__ import annotations

import argparse

from dcal.commands.json_output import emit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by dcal train (.pt)")
    parser.add_argument("--config", help="YAML config to evaluate with (default: the checkpoint's own)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--ema", choices=("auto", "yes", "no"), default="auto",
                        help="use the EMA weights (auto: when the checkpoint has them)")
    parser.add_argument("--dataset", help="evaluate on this dataset instead, of the checkpoint's task "
                                          "(cross-domain, e.g. dukemtmc for a Market-1501 model); needs --root")
    parser.add_argument("--root", help="the folder of --dataset")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.root=...")


def run(args) -> int:
    from dcal.config import apply_overrides, load_config
    from dcal.engine import distributed
    from dcal.engine.data_setup import eval_datasets, extra_eval_data, load_splits
    from dcal.engine.evaluator import evaluate, evaluate_extra
    from dcal.engine.trained_model import load_trained
    from dcal.evaluation.paper_figures import paper_reference
    from dcal.errors import CheckpointError

    trained = load_trained(args.checkpoint, config=load_config(args.config) if args.config else None,
                           overrides=args.overrides, device="cpu", ema={"auto": None, "yes": True, "no": False}[args.ema])
    config = trained.config
    if args.dataset or args.root:  # the overrides apply to the new dataset too
        config = apply_overrides(_on_dataset(config, args.dataset, args.root, args.checkpoint, trained.task), args.overrides)
    context = distributed.setup(config.train.device, config.train.threads)
    try:
        model = trained.model.to(context.device)
        splits = load_splits(config)
        if config.task == "fgvc" and splits.num_classes != trained.num_classes:
            raise CheckpointError(f"{args.checkpoint} has {trained.num_classes} classes, "
                                  f"{config.data.dataset} at {config.data.root} has {splits.num_classes}")
        extra_sets = extra_eval_data(config, trained.num_classes)
        metrics = {"epoch": trained.epoch, **evaluate(model, eval_datasets(config, splits), config, context),
                   **evaluate_extra(model, extra_sets, config, context)}
    except BaseException as error:
        if not context.distributed:
            raise
        distributed.abort(context, error)
    if context.is_main:
        print_results(metrics, paper_reference(config), extra_sets, config.task, args.json)
    return distributed.finish(context, 0)


def print_results(metrics: dict, reference, extra_sets: dict, task: str, as_json: bool) -> None:
    """The metrics and the paper's figures: one JSON object, or lines (one per extra test set)."""
    from dcal.evaluation.paper_figures import format_reference
    from dcal.evaluation.report import extra_set_lines, format_metrics

    if as_json:
        emit({**metrics, "paper": reference})
        return
    print(format_metrics(task, metrics), flush=True)
    print(format_reference(task, reference), flush=True)
    for line in extra_set_lines(task, metrics, extra_sets):
        print(line, flush=True)


def _on_dataset(config, dataset: str, root: str, checkpoint, task: str):
    """``config`` evaluating ``dataset`` at ``root`` alone (none of the old dataset's splits,
    options or ``eval.datasets``); the dataset must be of the checkpoint's task."""
    import copy

    from dcal.data.catalog import dataset_task
    from dcal.errors import CheckpointError, ConfigError

    if not (dataset and root):
        raise ConfigError("--dataset and --root go together: --dataset NAME --root FOLDER")
    if dataset_task(dataset) != task:
        raise CheckpointError(f"--dataset {dataset} is a {dataset_task(dataset)} dataset, but {checkpoint} is a "
                              f"{task} checkpoint; evaluate it on a {task} dataset")
    config = copy.deepcopy(config)
    d = config.data
    d.dataset, d.root, d.synthetic, d.options = dataset, str(root), False, {}
    d.train_split = d.test_split = d.val_split = d.val_fraction = None
    config.eval.datasets = []
    return config
