"""Machine-readable output: with ``--json`` the JSON document is the only thing on stdout.

While a command given ``--json`` runs, :func:`dcal.cli.main` sends whatever else is printed
(progress notes such as "writing the synthetic demo set", library messages) to stderr; the command
writes its document with :func:`emit`, which goes to the real stdout.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager, redirect_stdout

_stdout = None  # the real stdout while a --json command runs


@contextmanager
def json_mode(enabled: bool):
    """Inside, ``print`` goes to stderr and :func:`emit` to the stdout of the caller (if ``enabled``)."""
    global _stdout
    if not enabled:
        yield
        return
    _stdout = sys.stdout
    try:
        with redirect_stdout(sys.stderr):
            yield
    finally:
        _stdout = None


def emit(document, **dumps_options) -> None:
    """Write ``document`` as JSON (one line unless ``indent`` is given) to stdout."""
    stream = _stdout if _stdout is not None else sys.stdout
    stream.write(json.dumps(document, **dumps_options) + "\n")
    stream.flush()
