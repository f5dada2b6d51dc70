"""Ctrl-C (SIGINT), SIGTERM and SIGUSR2 during training: finish the optimiser step, checkpoint it, stop.

Cluster schedulers send SIGTERM some time before they kill a pre-empted job; SIGUSR2 is the
signal Slurm sends before a job's time limit when asked to (``--signal=USR2@90``, what submitit
asks for), and submitit's pre-emption signal: a job of ``--launcher slurm`` then requeues itself
(:mod:`dcal.engine.cluster_job`).  While :class:`StopSignals` is active, each signal only sets :attr:`StopSignals.signum`; the training
loop checks it after each optimiser step, writes ``last.pt`` of that step and raises
:class:`TrainingInterrupted`, whose one-line message says how to resume.  Inside
:meth:`StopSignals.abortable` (an evaluation, after which nothing unsaved would be lost) a signal
raises at once.  A second signal before the checkpoint is written stops at once as well.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

import torch

from dcal.errors import TrainingInterrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)


class StopSignals:
    """Context manager turning SIGINT, SIGTERM and SIGUSR2 into a stop request (main thread only)."""

    def __init__(self):
        #: signum -> the message of :class:`TrainingInterrupted` (set by the training loop)
        self.describe_stop = lambda signum: f"interrupted by {signal_name(signum)}"
        self.signum: int | None = None
        self._abortable = False
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
        return False

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def requested_everywhere(self, context, device) -> bool:
        """Whether any process was asked to stop (one all-reduce under DDP), so all stop at one step."""
        if not context.distributed:
            return self.requested
        flag = torch.tensor([float(self.signum or 0)], device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item() and self.signum is None:
            self.signum = int(flag.item())
        return bool(flag.item())

    def stop(self):
        """Raise the :class:`TrainingInterrupted` of the signal received."""
        self._raise(self.signum)

    @contextmanager
    def abortable(self, enabled: bool = True):
        """While inside, a signal raises :class:`TrainingInterrupted` immediately (if ``enabled``:
        not under DDP, where every process must stop at the same step)."""
        if not enabled:
            yield
            return
        self._abortable = True
        try:
            if self.signum is not None:
                self._raise(self.signum)
            yield
        finally:
            self._abortable = False

    def _handle(self, signum, frame):
        if self._abortable or self.signum is not None:
            self._raise(signum)
        self.signum = signum

    def _raise(self, signum):
        self._abortable = False
        raise TrainingInterrupted(self.describe_stop(signum), signum)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def ignore_stop_signals(_worker_id: int = 0) -> None:
    """A DataLoader ``worker_init_fn``: workers leave SIGINT and SIGTERM to the training process,
    which stops them after its checkpoint (a worker killed by Ctrl-C would fail the step in progress)."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)
