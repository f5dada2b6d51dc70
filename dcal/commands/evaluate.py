"""``dcal eval --checkpoint FILE [--config FILE] [--json] [key=value ...]``

Rebuilds the model from the checkpoint alone and evaluates it on the test split(s) of the dataset
in the checkpoint's config — or of ``--config`` / the overrides (``data.root=...``), which must
describe the same architecture.  Prints top-1/top-5 per branch (FGVC) or mAP, mINP and CMC (Re-ID);
``--json`` prints one JSON object with the keys of ``metrics.jsonl``.  Runs under torchrun too.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by dcal train (.pt)")
    parser.add_argument("--config", help="YAML config to evaluate with (default: the checkpoint's own)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--ema", choices=("auto", "yes", "no"), default="auto",
                        help="use the EMA weights (auto: when the checkpoint has them)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.root=...")


def run(args) -> int:
    from dcal.config import apply_overrides, load_config
    from dcal.engine import distributed
    from dcal.engine.checkpoint import checkpoint_config, model_from_checkpoint, read_checkpoint
    from dcal.engine.data_setup import build_eval_data, eval_split_names, load_splits
    from dcal.engine.evaluator import evaluate
    from dcal.engine.trainer import format_metrics
    from dcal.errors import CheckpointError

    state = read_checkpoint(args.checkpoint)
    config = checkpoint_config(state, args.checkpoint)
    if args.config or args.overrides:
        config = load_config(args.config, args.overrides) if args.config else apply_overrides(config, args.overrides)
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
        metrics = {"epoch": state.get("epoch"), **evaluate(model, datasets, config, context)}
    except BaseException as error:
        if not context.distributed:
            raise
        distributed.abort(context, error)
    if context.is_main:
        print(json.dumps(metrics) if args.json else format_metrics(config.task, metrics), flush=True)
    return distributed.finish(context, 0)

