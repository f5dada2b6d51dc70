"""``dcal search --checkpoint FILE --query IMAGE_OR_DIR... --gallery DIR_OR_NPZ [--topk 10] [--json] [--out DIR]``

Ranks the gallery's images by their distance to each query in the model's inference features
(:mod:`dcal.export.gallery_search`): Re-ID finds the person or vehicle of the query, FGVC the images
most like it.  The gallery is a folder of images, searched recursively, whose features are cached in
``DIR/.dcal-features-<checkpoint hash>.npz`` (the next search extracts only new or changed images),
or a ``.npz`` written by ``dcal extract``.

Prints each query's top-k gallery paths with their distances; ``--json`` prints only
``{"queries": [{"query": path, "results": [{"path": ..., "distance": ...}, ...]}, ...]}`` on stdout
(what was extracted goes to stderr); ``--out DIR`` writes one contact sheet per query,
``DIR/<query name>.png``, drawn like the rank lists of ``dcal visualize``.  An unreadable gallery
image stops the search unless ``--skip-corrupt`` is given; then it is left out and counted.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by dcal train (.pt)")
    parser.add_argument("--query", required=True, nargs="+", metavar="IMAGE_OR_DIR", help="query images or folders of them")
    parser.add_argument("--gallery", required=True, metavar="DIR_OR_NPZ",
                        help="a folder of images (searched recursively) or a .npz written by dcal extract")
    parser.add_argument("--topk", type=int, default=10, help="gallery images per query (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--out", help="folder to write one contact-sheet PNG per query to")
    parser.add_argument("--skip-corrupt", action="store_true", help="leave unreadable gallery images out (and count them)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    parser.add_argument("--workers", type=int, default=0, help="image-loading processes (default 0: in this process)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")


def run(args) -> int:
    from dcal.commands.json_output import emit
    import sys
    from pathlib import Path

    from dcal.commands.output_paths import check_output_folder
    from dcal.commands.visualize import _unique_names
    from dcal.errors import ConfigError, DatasetError
    from dcal.export.gallery import open_gallery
    from dcal.export.gallery_search import contact_sheet, search
    from dcal.data.image_files import image_paths
    from dcal.engine.trained_model import load_trained

    for name in ("topk", "batch_size"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    try:
        queries = image_paths(args.query)
    except DatasetError as error:
        raise DatasetError(f"--query: {error}") from None
    if args.out:  # checked before the work: a file in the way fails at once
        names = _unique_names(queries)
        out = check_output_folder(args.out, [Path(args.out) / name for name in names], queries)
    trained = load_trained(args.checkpoint, device=args.device)
    gallery = open_gallery(trained, args.gallery, skip_corrupt=args.skip_corrupt, batch_size=args.batch_size,
                           num_workers=args.workers)
    if Path(args.gallery).is_dir():
        note = f", {len(gallery.skipped)} unreadable skipped" if gallery.skipped else ""
        print(f"gallery {args.gallery}: {len(gallery)} images, {gallery.extracted} extracted, {gallery.reused} "
              f"from the cache, {gallery.removed} removed from it{note}", file=sys.stderr, flush=True)
    results = search(trained, queries, gallery, args.topk, batch_size=args.batch_size, num_workers=args.workers)
    if args.json:
        emit({"queries": results})
    else:
        for result in results:
            print(result["query"])
            for rank, hit in enumerate(result["results"], start=1):
                print(f"  {rank:>3}. {hit['distance']:.4f}  {hit['path']}")
    if args.out:
        out.mkdir(parents=True, exist_ok=True)
        for result, name in zip(results, names):
            contact_sheet(result, trained.input_size).save(out / name)
            print(f"wrote {out / name}", file=sys.stderr)
    return 0
