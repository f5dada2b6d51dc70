"""The synthetic demo sets by task: FGVC in CUB-200-2011's layout, Re-ID in Market-1501's
(:mod:`dcal.data.synthetic_fgvc`, :mod:`dcal.data.synthetic_reid`)."""

from __future__ import annotations

from pathlib import Path

from dcal.data.synthetic_fgvc import write_fgvc_demo
from dcal.data.synthetic_reid import write_reid_demo
from dcal.errors import ConfigError

#: the dataset name whose parser reads each task's synthetic set
SYNTHETIC_LAYOUT = {"fgvc": "cub200", "reid": "market1501"}


def write_synthetic(task: str, out_dir, options: dict | None = None) -> Path:
    """Write the synthetic set of ``task`` into ``out_dir`` and return its root; ``options``
    (``data.synthetic_options``, ``--seed``) go to the writer as keyword arguments.  A folder that
    already holds the same complete set is left as it is."""
    write = write_fgvc_demo if task == "fgvc" else write_reid_demo
    try:
        return write(out_dir, **(options or {}))
    except TypeError as error:
        raise ConfigError(f"data.synthetic_options {options!r} are not options of the synthetic {task} set: {error}") from None
