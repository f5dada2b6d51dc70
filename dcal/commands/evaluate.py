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
    # imported when the command runs: `dcal <command> --help` and argument errors come back at once
    from dcal.config import apply_overrides, load_config
    from dcal.engine import distributed
    from dcal.engine.checkpoint import checkpoint_config, model_from_checkpoint, read_checkpoint
    from dcal.engine.data_setup import build_eval_data, eval_split_names, extra_eval_data, load_splits
    from dcal.engine.evaluator import evaluate, evaluate_extra, unprefixed
    from dcal.evaluation.paper_figures import format_reference, paper_reference
    from dcal.evaluation.report import format_metrics
    from dcal.errors import CheckpointError

    state = read_checkpoint(args.checkpoint)
    config = load_config(args.config) if args.config else checkpoint_config(state, args.checkpoint)
    if args.dataset or args.root:
        config = _on_dataset(config, args.dataset, args.root, args.checkpoint, state)
    config = apply_overrides(config, args.overrides)
    context = distributed.setup(config.train.device, config.train.threads)
    try:
        model, config = model_from_checkpoint(state, args.checkpoint, config=config,
                                              ema={"auto": None, "yes": True, "no": False}[args.ema])
        model.to(context.device)
        splits = load_splits(config)
        if config.task == "fgvc" and splits.num_classes != int(state["num_classes"]):
            raise CheckpointError(f"{args.checkpoint} has {state['num_classes']} classes, "
                                  f"{config.data.dataset} at {config.data.root} has {splits.num_classes}")
        datasets = {name: build_eval_data(config, name, splits) for name in eval_split_names(config, splits)}
        extra_sets = extra_eval_data(config, int(state["num_classes"]))
        metrics = {"epoch": state.get("epoch"), **evaluate(model, datasets, config, context),
                   **evaluate_extra(model, extra_sets, config, context)}
    except BaseException as error:
        if not context.distributed:
            raise
        distributed.abort(context, error)
    if context.is_main:
        reference = paper_reference(config)
        if args.json:
            emit({**metrics, "paper": reference})
        else:
            print(format_metrics(config.task, metrics), flush=True)
            print(format_reference(config.task, reference), flush=True)
        if not args.json:
            for name in extra_sets:
                print(f"  {name}: " + format_metrics(config.task, unprefixed(metrics, name)), flush=True)
    return distributed.finish(context, 0)


def _on_dataset(config, dataset: str, root: str, checkpoint, state: dict):
    """``config`` evaluating ``dataset`` at ``root`` alone (none of the old dataset's splits,
    options or ``eval.datasets``); the dataset must be of the checkpoint's task."""
    import copy

    from dcal.data.catalog import dataset_task
    from dcal.errors import CheckpointError, ConfigError

    if not (dataset and root):
        raise ConfigError("--dataset and --root go together: --dataset NAME --root FOLDER")
    task = state.get("task", config.task)
    if dataset_task(dataset) != task:
        raise CheckpointError(f"--dataset {dataset} is a {dataset_task(dataset)} dataset, but {checkpoint} is a "
                              f"{task} checkpoint; evaluate it on a {task} dataset")
    config = copy.deepcopy(config)
    d = config.data
    d.dataset, d.root, d.synthetic, d.options = dataset, str(root), False, {}
    d.train_split = d.test_split = d.val_split = d.val_fraction = None
    config.eval.datasets = []
    return config
