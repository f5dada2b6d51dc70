"""``dcal predict --checkpoint FILE IMAGE_OR_DIR... [--topk K] [--json]``

The top-k classes of each image (FGVC checkpoints): name and score, where the score is the
model's inference score, softmax(SA) + softmax(GLCA) (paper §3.4; :mod:`dcal.model.inference`),
the same as ``dcal eval`` ranks and the ONNX export outputs: it sums to 2 over the classes with
GLCA, to 1 without.  Folders are expanded to the images in them.  ``--json`` prints one JSON list:
``[{"image": path, "predictions": [{"rank": 1, "class": name, "index": i, "score": s}, ...]}, ...]``.
"""

from __future__ import annotations

import argparse

from dcal.commands.json_output import emit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="an FGVC checkpoint written by dcal train (.pt)")
    parser.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files or folders of images")
    parser.add_argument("--topk", type=int, default=5, help="classes to show per image (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of text")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")


def run(args) -> int:
    import numpy as np

    from dcal.errors import ConfigError
    from dcal.data.image_files import image_paths, load_images
    from dcal.engine.trained_model import load_trained

    if args.topk < 1:
        raise ConfigError(f"--topk must be at least 1, got {args.topk}")
    trained = load_trained(args.checkpoint, device=args.device, task="fgvc", purpose="dcal predict")
    paths = image_paths(args.images)
    results = []
    for start in range(0, len(paths), args.batch_size):
        chunk = paths[start : start + args.batch_size]
        for path, out in zip(chunk, trained.branches(load_images(chunk), batch_size=args.batch_size)):
            order = np.argsort(-out["scores"], kind="stable")[: args.topk]
            predictions = [
                {"rank": rank, "class": trained.class_name(int(i)), "index": int(i), "score": float(out["scores"][i])}
                for rank, i in enumerate(order, start=1)
            ]
            results.append({"image": str(path), "predictions": predictions})
    if args.json:
        emit(results, indent=1)
    else:
        for result in results:
            print(result["image"])
            for p in result["predictions"]:
                print(f"  {p['rank']:>2}. {p['score']:.4f}  {p['class']}")
    return 0
