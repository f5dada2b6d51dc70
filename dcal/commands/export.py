"""``dcal export --checkpoint FILE --format onnx --out FILE.onnx``

Writes the inference model (SA + GLCA; PWCA exists only in training) as ONNX with a dynamic batch
axis — input ``images`` (batch, 3, H, W), normalised as the test transform does; output ``scores``
(FGVC, softmax(SA) + softmax(GLCA)) or ``features`` (Re-ID, L2-normalised) — then runs it with
onnxruntime on random input and fails unless it agrees with PyTorch to ``--tolerance`` (1e-4).
See :mod:`dcal.export.onnx` for the metadata stored in the file.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by dcal train (.pt)")
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="export format (onnx)")
    parser.add_argument("--out", required=True, help="the file to write, e.g. model.onnx")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest absolute difference allowed between onnxruntime and PyTorch (default 1e-4)")


def run(args) -> int:
    from dcal.commands.output_paths import check_output_file
    from dcal.data.input_config import resolve_input_config
    from dcal.export.onnx import check_onnx, export_onnx, output_name
    from dcal.engine.trained_model import load_trained

    check_output_file(args.out, {"checkpoint": args.checkpoint})
    trained = load_trained(args.checkpoint, device="cpu")
    size = trained.input_size
    statistics = resolve_input_config(trained.config)
    metadata = {"class_names": trained.class_names, "mean": list(statistics.mean), "std": list(statistics.std),
                "interpolation": statistics.interpolation,
                "checkpoint": str(args.checkpoint), "backbone": trained.config.model.backbone,
                "glca": trained.config.model.glca}
    path = export_onnx(trained.model, args.out, size, task=trained.task, metadata=metadata)
    difference = check_onnx(path, trained.model, size, tolerance=args.tolerance)
    print(f"wrote {path}: images (batch, 3, {size[0]}, {size[1]}) -> {output_name(trained.task)}; "
          f"onnxruntime vs PyTorch on random input: largest absolute difference {difference:.2e} "
          f"(tolerance {args.tolerance:g})")
    return 0
