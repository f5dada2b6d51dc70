"""The run folder's records: ``metrics.jsonl`` (one JSON object per evaluation) and TensorBoard.

Only the main process writes.  On resume the JSON-lines file is cut back to the records the
checkpoint knew about (a partial last line, left by a full disk or a kill while appending, is
dropped) and TensorBoard events after the checkpoint's step are purged, so a resumed run's records
match an uninterrupted run's.  :func:`read_records` reads the file without a partial last line.
"""

from __future__ import annotations

import json
from pathlib import Path

from dcal.errors import RunFolderError


#: The wall and CPU seconds a run's training took, summed over its parts (a resumed run adds to it).
TIMING_FILE = "ablation_timing.json"


def add_timing(run_dir, wall_s: float, cpu_s: float) -> None:
    """Add ``wall_s`` and ``cpu_s`` (the training process's) to ``run_dir``'s :data:`TIMING_FILE`."""
    before = read_timing(run_dir)
    timing = {"wall_s": round(before.get("wall_s", 0.0) + wall_s, 1), "cpu_s": round(before.get("cpu_s", 0.0) + cpu_s, 1)}
    (Path(run_dir) / TIMING_FILE).write_text(json.dumps(timing) + "\n", encoding="utf-8")


def read_timing(run_dir) -> dict:
    """``{"wall_s", "cpu_s"}`` of ``run_dir``'s training, or ``{}`` when they were not recorded."""
    try:
        return json.loads((Path(run_dir) / TIMING_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def complete_lines(path) -> list[str]:
    """The lines of ``metrics.jsonl`` that were written whole: a last line without its newline (a
    write cut short by a full disk or a kill) is left out."""
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_bytes().decode("utf-8", errors="replace")
    lines = text.split("\n")
    return [line for line in lines[:-1] if line.strip()]  # after the last newline: "" or a partial line


def read_records(path) -> list[dict]:
    """The evaluation records of a ``metrics.jsonl``, without a partial last line; a damaged line
    elsewhere raises :class:`~dcal.errors.RunFolderError` naming the file and line."""
    records = []
    for number, line in enumerate(complete_lines(path), start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise RunFolderError(f"{path}: line {number} is not a JSON record ({error.msg})") from None
    return records


class RunLog:
    """Append evaluation records to ``metrics.jsonl`` and scalars to TensorBoard (``<run>/tensorboard``)."""

    def __init__(self, run_dir, enabled: bool = True, keep_records: int | None = None, purge_step: int | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.enabled = enabled
        self.records = 0
        self.writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = complete_lines(self.path)[:keep_records] if keep_records is not None else []
        self.path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        self.records = len(lines)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=purge_step)

    def scalars(self, step: int, values: dict, prefix: str) -> None:
        """TensorBoard scalars ``prefix/name`` at ``step`` (``None`` values are skipped)."""
        if self.writer is None:
            return
        for name, value in values.items():
            if isinstance(value, (int, float)) and value is not None:
                self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def record(self, step: int, metrics: dict) -> None:
        """One evaluation: a line of metrics.jsonl and its numbers in TensorBoard under ``eval/``."""
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(metrics) + "\n")
        self.records += 1
        self.scalars(step, {k: v for k, v in metrics.items() if k not in ("epoch", "step")}, "eval")
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
