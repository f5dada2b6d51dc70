"""``dcal visualize``: where the model looks (attention rollout, GLCA's selection) and Re-ID rank lists.

Attention maps (paper Fig. 1/4) — one PNG per image, ``[image | rollout heat map]`` with the patches
GLCA selected outlined in cyan, plus ``grid.png`` of all of them when there is more than one:

    dcal visualize --checkpoint C IMAGE_OR_DIR... --out DIR
    dcal visualize --checkpoint C --split test --num-images 16 --out DIR   # images of the dataset

With ``--split`` the images come from the checkpoint's dataset (or ``--config``'s), evenly spaced
over the split; captions give the true class, and a box in the annotations (the true part of the
synthetic FGVC set) is drawn in white.  FGVC captions end with the predicted class and its score.

Re-ID rank lists — each query (blue) followed by its ``--topk`` nearest gallery images, true
matches green and mistakes red, same-identity same-camera gallery images left out as in the
evaluation; written to ``DIR/rank_list.png``:

    dcal visualize --checkpoint C --rank-list [--num-queries 8] [--topk 10] --out DIR
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by dcal train (.pt)")
    parser.add_argument("images", nargs="*", metavar="IMAGE_OR_DIR", help="image files or folders of images")
    parser.add_argument("--out", required=True, help="folder to write the PNG files to")
    parser.add_argument("--config", help="YAML config naming the dataset for --split/--rank-list (default: the checkpoint's)")
    parser.add_argument("--split", help="draw images of this dataset split (e.g. test, query) instead of IMAGE_OR_DIR")
    parser.add_argument("--num-images", type=int, default=16, help="images taken from --split (default 16)")
    parser.add_argument("--columns", type=int, default=None, help="panels per row of grid.png (default: about square)")
    parser.add_argument("--rank-list", action="store_true", help="Re-ID: draw query rank lists instead")
    parser.add_argument("--num-queries", type=int, default=8, help="--rank-list: queries, evenly spaced (default 8)")
    parser.add_argument("--topk", type=int, default=10, help="--rank-list: gallery images per query (default 10)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")


def _evenly_spaced(total: int, count: int) -> list:
    import numpy as np

    return sorted({int(i) for i in np.linspace(0, total - 1, num=min(count, total)).round()}) if total else []


def _unique_names(paths) -> list:
    """``<stem>.png`` per path; a stem seen before gets ``_2``, ``_3``, ..."""
    names, seen = [], {}
    for path in paths:
        stem = path.stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(f"{stem}.png" if seen[stem] == 1 else f"{stem}_{seen[stem]}.png")
    return names


def run(args) -> int:
    from dcal.commands.output_paths import check_output_folder
    from dcal.config import load_config
    from dcal.errors import ConfigError
    from dcal.engine.trained_model import load_trained

    if args.rank_list and (args.images or args.split):
        raise ConfigError("--rank-list draws the config's query and gallery; give no IMAGE_OR_DIR or --split with it")
    if not (args.images or args.split or args.rank_list):
        raise ConfigError("nothing to draw: give IMAGE_OR_DIR..., --split SPLIT or --rank-list")
    if args.images and args.split:
        raise ConfigError("give either IMAGE_OR_DIR... or --split, not both")
    for name in ("num_images", "num_queries", "topk"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    config = load_config(args.config) if args.config else None
    trained = load_trained(args.checkpoint, config=config, device=args.device,
                           task="reid" if args.rank_list else None, purpose="dcal visualize --rank-list")
    out = check_output_folder(args.out, [], [])
    out.mkdir(parents=True, exist_ok=True)
    written = _rank_list(trained, args, out) if args.rank_list else _attention(trained, args, out)
    for path in written:
        print(path)
    return 0


def _attention(trained, args, out) -> list:
    from pathlib import Path

    from dcal.commands.output_paths import check_output_folder
    from dcal.data.image_dataset import load_record_image
    from dcal.engine.data_setup import build_eval_data
    from dcal.data.image_files import image_paths, load_images
    from dcal.viz.attention_map import attention_figures
    from dcal.viz.figure_grid import grid

    if args.split:
        records = build_eval_data(trained.config, args.split).records
        records = [records[i] for i in _evenly_spaced(len(records), args.num_images)]
        paths = [Path(r.path) for r in records]
        images = [load_record_image(r) for r in records]
        if trained.task == "fgvc":
            captions = [f"true: {trained.class_name(r.label)}," for r in records]
        else:
            captions = [f"id {r.original_pid}" + (f" c{r.camid + 1}" if r.camid >= 0 else "") for r in records]
        boxes = [getattr(r, "bbox", None) for r in records]
    else:
        paths = image_paths(args.images)
        images, captions, boxes = load_images(paths), [p.name for p in paths], None
    names = _unique_names(paths)
    check_output_folder(out, [out / name for name in names] + ([out / "grid.png"] if len(paths) > 1 else []), paths)
    panels = attention_figures(trained, images, captions, boxes)
    written = []
    for name, panel in zip(names, panels):
        panel.save(out / name)
        written.append(out / name)
    if len(panels) > 1:
        grid(panels, columns=args.columns).save(out / "grid.png")
        written.append(out / "grid.png")
    return written


def _rank_list(trained, args, out) -> list:
    from dcal.engine.data_setup import build_eval_data, load_splits
    from dcal.export.features import extract_features
    from dcal.viz.rank_list import rank_list_figure

    config = trained.config
    splits = load_splits(config)
    query, gallery = (
        extract_features(trained.model, build_eval_data(config, name, splits), batch_size=config.eval.batch_size,
                         num_workers=config.data.num_workers)
        for name in ("query", "gallery")
    )
    chosen = _evenly_spaced(len(query.labels), args.num_queries)
    figure = rank_list_figure(query, gallery, chosen, topk=args.topk, input_size=trained.input_size)
    figure.save(out / "rank_list.png")
    return [out / "rank_list.png"]
