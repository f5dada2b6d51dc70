"""Writing a file so that it is never seen half-written: a temporary file beside it, then a rename.

A full disk, a read-only folder or a kill midway leaves either the earlier file or nothing — never
a truncated checkpoint, ``.npz`` or ``.onnx`` that a later command would read as if it were whole.
Temporary files are named ``.<name>.tmp<pid>`` (a killed writer's are removed by the next run,
:func:`dcal.engine.run_folder.remove_stale_temporaries`).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from dcal.errors import DCALError


def write_atomically(path, write, what: str = "file", error=DCALError) -> Path:
    """``write(file)`` into a temporary file beside ``path``, then rename it over ``path``.

    On any failure (disk full, read-only folder, ``path`` a folder, an interrupt) the temporary
    file is removed and ``path`` is left as it was; an OS error becomes a one-line ``error``
    naming ``what``, ``path`` and the reason.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException as failure:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if not isinstance(failure, OSError):
            raise
        reason = failure.strerror or str(failure)
        raise error(f"cannot write {what} {path}: {reason}; the earlier file, if any, is unchanged") from None
    return path
