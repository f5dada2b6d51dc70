"""ONNX export of the inference model (SA + GLCA; PWCA exists only in training, paper §3.3).

The exported graph is ``model(images)`` in eval mode, i.e. :mod:`dcal.model.inference`: for FGVC
the class scores ``softmax(SA logits) + softmax(GLCA logits)`` (§3.4; in [0, 2]), for Re-ID the
L2-normalised concatenation of the SA and GLCA features (before the BNNecks unless the model was
trained with ``neck_feat="after"``).  The input ``images`` is ``(batch, 3, height, width)``,
float32, normalised with the checkpoint's mean and std (the test transform's output); the batch
axis is dynamic.  The output is named ``scores`` (FGVC) or ``features`` (Re-ID).  The task, class
names, input size, mean, std and resize interpolation are stored as the ONNX model's metadata
(``onnx.load(path).metadata_props``), so the file is usable on its own.

Exporter: torch's ``torch.export``-based exporter (``dynamo=True``, the default since torch 2.9,
with ``onnxscript``).  The TorchScript exporter (``dynamo=False``) also works on this model and is
~10x faster on a tiny one, but it is deprecated since torch 2.9 and traces data-dependent Python
values into constants with only a warning; ``torch.export`` fails loudly instead, and the batch
axis is declared once as a symbolic dimension.

:func:`check_onnx` runs the file with onnxruntime on random input of another batch size than the
one exported with and compares it with PyTorch; ``dcal export`` always runs it and fails with
:class:`ExportError` if the largest absolute difference exceeds the tolerance (1e-4).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import torch

from dcal.atomic_write import write_atomically
from dcal.errors import ExportError

TOLERANCE = 1e-4


class InferenceModel(torch.nn.Module):
    """``model(images)`` in eval mode: what a deployment runs (no PWCA, no losses)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)


def output_name(task: str) -> str:
    return "scores" if task == "fgvc" else "features"


def export_onnx(model: torch.nn.Module, path, input_size, *, task: str, metadata: dict | None = None,
                batch_size: int = 2) -> Path:
    """Write ``model``'s inference graph to ``path`` with a dynamic batch axis; returns the path.

    ``input_size`` is ``(height, width)``; ``metadata`` (JSON-serialisable values) is stored as the
    ONNX model's metadata next to ``task`` and ``input_size``.  The file is written atomically
    (:mod:`dcal.atomic_write`): a full disk leaves no partial ``.onnx``.
    """
    import onnx  # the optional `export` extra: imported only when exporting

    path = Path(path)
    wrapper = InferenceModel(model).cpu()
    example = torch.randn(batch_size, 3, *input_size)
    batch = torch.export.Dim("batch", min=1)
    log = io.StringIO()
    try:
        with torch.no_grad(), contextlib.redirect_stdout(log):
            program = torch.onnx.export(
                wrapper,
                (example,),
                dynamo=True,
                input_names=["images"],
                output_names=[output_name(task)],
                dynamic_shapes=({0: batch},),
                external_data=False,
                verbose=False,
            )
    except Exception as error:  # torch.export reports why the graph cannot be captured
        raise ExportError(f"exporting to ONNX failed: {error}\n{log.getvalue()}") from error
    proto = program.model_proto
    props = {"task": task, "input_size": list(input_size), "input": "images", "output": output_name(task),
             **(metadata or {})}
    onnx.helper.set_model_props(proto, {key: json.dumps(value) for key, value in props.items()})
    return write_atomically(path, lambda f: onnx.save_model(proto, f), "the ONNX model", ExportError)


def check_onnx(path, model: torch.nn.Module, input_size, *, batch_size: int = 3, tolerance: float = TOLERANCE,
               seed: int = 0) -> float:
    """Largest absolute difference between onnxruntime and PyTorch on random input of
    ``batch_size`` images; raises :class:`ExportError` above ``tolerance``."""
    import onnxruntime  # the optional `export` extra: imported only when checking

    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch_size, 3, *input_size, generator=generator)
    with torch.no_grad():
        expected = InferenceModel(model).cpu()(images).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    difference = float(np.abs(got - expected).max())
    if got.shape != expected.shape or not difference <= tolerance:
        raise ExportError(
            f"{path}: onnxruntime disagrees with PyTorch on {batch_size} random images: output shape "
            f"{got.shape} vs {expected.shape}, largest absolute difference {difference:.3g} (tolerance {tolerance:g})"
        )
    return difference
