"""Python warnings, as a command prints them: ``dcal <command>: warning: <message>``, each message once.

Python's own format is two lines (the file and line of the code that warned, then that line of
source), and the same message can repeat from many places (an unreadable image skipped every
epoch).  Inside :func:`warnings_as_lines` a warning is one line in the command's words, and a
message already shown is not shown again.
"""

from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager


@contextmanager
def warnings_as_lines(command: str):
    """Show warnings raised inside as one line each, prefixed with ``dcal <command>: warning:``, once."""
    shown = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        if text in shown:
            return
        shown.add(text)
        print(f"dcal {command}: warning: {text}", file=file or sys.stderr, flush=True)

    original = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original
