"""The ONNX check: onnxruntime's output against PyTorch's, with the tolerance enforced.

(The export of a real DCAL checkpoint is tested end to end in tests/test_commands_ship.py; an
export costs seconds, so it happens once in the suite.)  Here the ONNX file is written by hand
with ``onnx.helper`` — a graph computing ``2 * images`` — so the check is tested on its own.
"""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from dcal.errors import ExportError
from dcal.export.onnx import check_onnx


def _doubling_onnx(path):
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["images", "two"], ["scores"])],
        "double",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 4, 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 3, 4, 4])],
        initializer=[two],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(path))
    return path


class Scale(torch.nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, images):
        return self.factor * images


def test_check_passes_when_onnxruntime_agrees(tmp_path):
    difference = check_onnx(_doubling_onnx(tmp_path / "m.onnx"), Scale(2.0), (4, 4), batch_size=3)
    assert difference <= 1e-6


def test_check_fails_above_the_tolerance_naming_the_file(tmp_path):
    path = _doubling_onnx(tmp_path / "m.onnx")
    # inputs are N(0, 1), so a factor off by 1e-3 differs by ~3e-3 at the largest input: above 1e-4
    with pytest.raises(ExportError, match="m.onnx.*largest absolute difference"):
        check_onnx(path, Scale(2.001), (4, 4))
    assert check_onnx(path, Scale(2.00001), (4, 4), tolerance=1e-3) < 1e-3


def _full_disk(first, second=None, *args, **kwargs):
    """A writer (``onnx.save_model(proto, file)``, ``np.savez(file, ...)``) that stops midway as a
    full disk does: part of the bytes, then ENOSPC."""
    import errno

    file = second if hasattr(second, "write") else first
    file.write(b"the first bytes of the file")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_leaves_no_partial_onnx_and_keeps_the_earlier_file(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from dcal.export.onnx import export_onnx

    earlier = _doubling_onnx(tmp_path / "model.onnx").read_bytes()
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: SimpleNamespace(model_proto=onnx.load(tmp_path / "model.onnx")))
    monkeypatch.setattr(onnx, "save_model", _full_disk)
    with pytest.raises(ExportError, match=r"cannot write the ONNX model .*model\.onnx: No space left on device"):
        export_onnx(Scale(2.0), tmp_path / "model.onnx", (4, 4), task="fgvc")
    assert (tmp_path / "model.onnx").read_bytes() == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_a_full_disk_leaves_no_partial_features_npz(tmp_path, monkeypatch):
    from dcal.errors import DCALError
    from dcal.export.features import Features

    features = Features(np.zeros((2, 4)), np.zeros(2), np.zeros(2), np.array(["a.png", "b.png"]))
    monkeypatch.setattr(np, "savez", _full_disk)
    with pytest.raises(DCALError, match=r"cannot write features .*f\.npz: No space left on device"):
        features.save(tmp_path / "f.npz")
    assert list(tmp_path.iterdir()) == []
