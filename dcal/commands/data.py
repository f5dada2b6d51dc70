"""``dcal data --dataset NAME --root DIR [--verify] [--json] [--option key=value ...]``: check a download.

Prints, per split, the number of images, of classes (FGVC) or identities (Re-ID), of cameras where
there are cameras, and every difference from the official sizes.  With ``--json``: one object keyed
by split name, each ``{"images": n, "classes" | "ids": n, "cameras": n}`` (with ``--verify`` also
``"unreadable": [paths]``), and nothing else on stdout.  An empty training, test, query or gallery
split is an error (exit status 2).  ``--verify`` decodes every image and lists those that cannot be
decoded (also exit status 2).
"""

from __future__ import annotations

import argparse
import warnings

import yaml

from dcal.commands.json_output import emit
from dcal.data.catalog import DATASETS, load_dataset
from dcal.data.layout import SYNTHETIC_MARKER, SplitSizeWarning, synthetic_sizes
from dcal.data.splits import summarize
from dcal.data.verify import require_images, undecodable, used_splits
from dcal.errors import DatasetError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help=f"one of: {', '.join(DATASETS)}")
    parser.add_argument("--root", required=True, help="the folder the dataset was unpacked to")
    parser.add_argument("--json", action="store_true", help="print one JSON object keyed by split name")
    parser.add_argument("--verify", action="store_true", help="decode every image and list those that cannot be read")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a parser option, e.g. level=family (aircraft) or include_val=false (msmt17)")


def parse_options(pairs: list[str]) -> dict:
    """``["level=family", "include_val=false"]`` → ``{"level": "family", "include_val": False}`` (YAML scalars)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DatasetError(f"option '{pair}' is not KEY=VALUE")
        options[key] = yaml.safe_load(value)
    return options


def run(args) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SplitSizeWarning)  # reported below instead
        data = load_dataset(args.dataset, args.root, **parse_options(args.option))
    summary = summarize(data.splits)
    unreadable = {}
    if args.verify:
        unreadable = undecodable([r for records in data.splits.values() for r in records])
    if args.json:
        if args.verify:
            for split, records in data.splits.items():
                summary[split]["unreadable"] = sorted({r.path for r in records} & set(unreadable))
        emit(summary, indent=1)
        _report_problems(data, unreadable, list_them=False)
        return 0
    print(f"{data.name} ({data.task}) at {data.root}")
    for split, counts in summary.items():
        print(f"  {split:<9}" + "  ".join(f"{key} {value:>6}" for key, value in counts.items()))
    if data.task == "fgvc":
        print(f"  training split: {data.train_split}; {data.num_classes} classes")
    else:
        print(f"  {data.num_classes} training identities")
        from dcal.evaluation.camera_filter import NO_CAMERA_NOTE, has_cameras
        from dcal.evaluation.vehicleid_protocol import NUM_DRAWS

        if data.reid_protocol == "gallery_draws":
            print(f"  evaluation: {NUM_DRAWS} galleries of one image per identity drawn from test "
                  "(query and gallery above are the first draw)")
        if not has_cameras([r.camid for split in data.eval_splits for r in data.splits[split]]):
            print(f"  {NO_CAMERA_NOTE}")
    if data.mismatches:
        print("differences from the expected sizes:")
        for message in data.mismatches:
            print(f"  {message}")
    elif synthetic_sizes(data.root) is not None:
        print(f"all counts match the sizes declared in {SYNTHETIC_MARKER} (a synthetic set)")
    elif data.name not in ("image_folder", "reid_list", "reid_folder"):
        print("all counts match the official sizes")
    _report_problems(data, unreadable, list_them=True, verified=args.verify)
    return 0


def _report_problems(data, unreadable: dict, list_them: bool, verified: bool = False) -> None:
    """List the undecodable images (stdout), then raise for them or for an empty split that is used."""
    if list_them and unreadable:
        print(f"images that cannot be decoded ({len(unreadable)}):")
        for reason in sorted(unreadable.values()):
            print(f"  {reason}")
    elif list_them and verified:
        print(f"every image decodes ({sum(len(r) for r in data.splits.values())} images checked)")
    require_images(data, used_splits(data))
    if unreadable:
        raise DatasetError(f"{data.name} at {data.root}: {len(unreadable)} image(s) cannot be decoded "
                           "(listed in the output; data.skip_corrupt=true skips them in training)")
