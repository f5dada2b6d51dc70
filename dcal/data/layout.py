"""Checks of a dataset folder against the layout its official download unpacks to.

- :func:`find_root` accepts the dataset folder itself or the folder it was unpacked into
  (``CUB_200_2011.tgz`` unpacks to ``CUB_200_2011/``, Market-1501 to ``Market-1501-v15.09.15/``, ...).
- :func:`require` raises :class:`~dcal.errors.DatasetError` naming a missing path and the expected
  layout; :func:`malformed_line` is the error for an annotation line that is not what the layout
  says (file, line number, the line, the expected form).
- :func:`check_split_sizes` compares what was found with the official sizes and issues a
  :class:`SplitSizeWarning` (with both numbers) per difference.  A folder written by
  ``dcal demo-data`` carries a ``SYNTHETIC.json`` marker with its own sizes, which then replace the
  official ones.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from dcal.errors import DatasetError

SYNTHETIC_MARKER = "SYNTHETIC.json"
DEMO_HINT = "(to try dcal without a download, `dcal demo-data --task fgvc|reid --out DIR` writes a synthetic set)"


class SplitSizeWarning(UserWarning):
    """A split's image, class or identity count differs from the official one."""


def find_root(root, signature: str, dataset: str, layout: str) -> Path:
    """The folder holding ``signature`` (a file or folder name): ``root`` itself or its one subfolder that does."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{dataset}: dataset root {root} is not a folder; expected layout: {layout} {DEMO_HINT}")
    if (root / signature).exists():
        return root.resolve()
    candidates = [sub for sub in sorted(root.iterdir()) if sub.is_dir() and (sub / signature).exists()]
    if len(candidates) == 1:
        return candidates[0].resolve()
    raise DatasetError(
        f"{dataset}: {root / signature} not found; expected layout under the root: {layout} {DEMO_HINT}"
    )


def require(path: Path, dataset: str, layout: str) -> Path:
    """``path`` if it exists, else a :class:`DatasetError` naming it and the expected layout."""
    if not path.exists():
        raise DatasetError(f"{dataset}: {path} not found; expected layout under the root: {layout} {DEMO_HINT}")
    return path


def read_numbered_lines(path: Path, dataset: str, layout: str) -> list[tuple[int, str]]:
    """``(line number in the file, 1-based; the line stripped)`` for the non-empty lines of a required
    text file."""
    text = require(path, dataset, layout).read_text(encoding="utf-8")
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def read_lines(path: Path, dataset: str, layout: str) -> list[str]:
    """The non-empty, stripped lines of a required text file."""
    return [line for _, line in read_numbered_lines(path, dataset, layout)]


def read_name_id_lines(path: Path, dataset: str, layout: str, expected: str) -> list[tuple[int, str, str, int]]:
    """``(line number, line, name, id)`` for each line ``<name> <integer id> ...`` of a required list
    file (MSMT17's and VehicleID's lists); a line of another form is a :func:`malformed_line` error."""
    rows = []
    for number, line in read_numbered_lines(path, dataset, layout):
        fields = line.split()
        try:
            rows.append((number, line, fields[0], int(fields[1])))
        except (IndexError, ValueError):
            raise malformed_line(dataset, path, number, line, expected) from None
    return rows


def malformed_line(dataset: str, path: Path, number: int, line: str, expected: str, hint: str = "") -> DatasetError:
    """The error for line ``number`` of ``path`` not being of the ``expected`` form, e.g.
    ``aircraft: line 3 of .../images_box.txt ('0034309 12') is not '<image id> <xmin> <ymin> <xmax> <ymax>'``,
    followed by ``hint`` if given."""
    return DatasetError(f"{dataset}: line {number} of {path} ('{line}') is not '{expected}'" + (f" {hint}" if hint else ""))


def require_files(paths, dataset: str, listed_in: Path) -> None:
    """Every path listed in an annotation file must exist; the error names the first missing ones."""
    listings: dict[Path, set] = {}
    missing = []
    for path in paths:
        path = Path(path)
        if path.parent not in listings:
            listings[path.parent] = set(_listdir(path.parent))
        if path.name not in listings[path.parent]:
            missing.append(str(path))
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise DatasetError(f"{dataset}: {len(missing)} image(s) listed in {listed_in} are missing: {shown}")


def _listdir(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


def synthetic_sizes(root: Path):
    """The sizes a ``dcal demo-data`` folder declares for itself, or ``None`` for a real download."""
    marker = Path(root) / SYNTHETIC_MARKER
    if not marker.is_file():
        return None
    return json.loads(marker.read_text(encoding="utf-8"))["sizes"]


def check_split_sizes(dataset: str, root: Path, found: dict, official: dict) -> list[str]:
    """Compare ``found`` with ``official``, both ``{split: {"images": n, "classes"|"ids"|"cameras": n}}``.

    Entries present in only one of them are ignored.  Returns the mismatch messages; each is also
    issued as a :class:`SplitSizeWarning`.
    """
    declared = synthetic_sizes(root)
    expected = declared if declared is not None else official
    source = f"as declared in {SYNTHETIC_MARKER}" if declared is not None else "official"
    messages = []
    for split, counts in found.items():
        for key, count in counts.items():
            want = expected.get(split, {}).get(key)
            if want is not None and want != count:
                message = f"{dataset} at {root}: {split} {key}: expected {want} ({source}), found {count}"
                warnings.warn(message, SplitSizeWarning, stacklevel=3)
                messages.append(message)
    return messages


def synthetic_set_written(root, identity: dict) -> bool:
    """Whether ``root`` holds a complete synthetic set written by ``identity`` (generator, format
    version, seed).  The marker is written last, so its presence means the set is complete."""
    marker = Path(root) / SYNTHETIC_MARKER
    if not marker.is_file():
        return False
    written = json.loads(marker.read_text(encoding="utf-8"))
    return {k: v for k, v in written.items() if k != "sizes"} == identity


def write_synthetic_marker(root, identity: dict, sizes: dict) -> None:
    """Write the marker that completes a synthetic set: its ``identity`` and declared split ``sizes``."""
    (Path(root) / SYNTHETIC_MARKER).write_text(json.dumps({**identity, "sizes": sizes}, indent=1) + "\n", encoding="utf-8")
