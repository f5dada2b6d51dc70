"""``dcal extract --checkpoint FILE [--config FILE] --split SPLIT --out FILE.npz [key=value ...]``

Writes the features of every image of a dataset split (``query``, ``gallery``, ``test``, ``train``,
...) with their labels or identities, cameras and paths, for retrieval or analysis outside dcal.
The dataset is the checkpoint's own (its config's ``data`` section) unless ``--config`` names
another config of the same architecture or ``key=value`` overrides change it (``data.root=...``).
The ``.npz`` format (``numpy.load`` reads it) is described in :mod:`dcal.export.features`:
``features``, ``labels``, ``cameras``, ``paths``, ``scores`` (FGVC) and a JSON ``metadata`` string.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by dcal train (.pt)")
    parser.add_argument("--config", help="YAML config naming the dataset (default: the checkpoint's own)")
    parser.add_argument("--split", required=True, help="the split to extract: query, gallery (Re-ID), test, train, ...")
    parser.add_argument("--out", required=True, help="the .npz file to write")
    parser.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default: eval.batch_size)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.root=...")


def run(args) -> int:
    from dcal.config import load_config
    from dcal.commands.output_paths import check_output_file
    from dcal.engine.data_setup import build_eval_data
    from dcal.export.features import extract_features
    from dcal.export.gallery import file_sha256
    from dcal.engine.trained_model import load_trained

    check_output_file(args.out, {"checkpoint": args.checkpoint, "config": args.config})
    config = load_config(args.config) if args.config else None
    trained = load_trained(args.checkpoint, config=config, overrides=args.overrides, device=args.device)
    config = trained.config
    dataset = build_eval_data(config, args.split)
    features = extract_features(
        trained.model,
        dataset,
        batch_size=args.batch_size or config.eval.batch_size,
        num_workers=config.data.num_workers,
        metadata={"split": args.split, "dataset": config.data.dataset, "root": str(config.data.root),
                  "checkpoint": str(args.checkpoint), "checkpoint_sha256": file_sha256(args.checkpoint),
                  "class_names": trained.class_names},
    )
    path = features.save(args.out)
    print(f"wrote {path}: {features.features.shape[0]} {args.split} images, features of dimension "
          f"{features.features.shape[1]} ({features.metadata['feature']})")
    return 0
