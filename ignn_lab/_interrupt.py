"""Ctrl-C for the command line: one clean line and exit code 130, however many interrupts arrive and when.

:func:`run_interruptible` runs a command with its own SIGINT handler:

* The first SIGINT raises KeyboardInterrupt in the main thread, as Python's default does, so ``finally`` blocks
  run and an atomic write in progress removes its temporary file; the command then prints
  ``PROG: interrupted`` and returns 130.
* While a module is being imported, that KeyboardInterrupt waits until the import is done: raised inside the
  import machinery it can surface in C++ code that the import called into (torch registering its operators),
  where it aborts the process.
* A further SIGINT while stopping ends the process at once, with the same line and exit code, through
  ``os._exit``. Worker threads (a search's pool, an evaluation's executor) may still be inside torch or the C
  kernels then; a normal interpreter exit would run C++ destructors under them and abort with ``terminate
  called without an active exception``. Every output of the kit is written atomically (a temporary file, then
  a rename), so ending there leaves no half-written file behind a final name.

Commands that stop cooperatively (training saves its state first) install their own handler for the time they
run; this one is back in place when they return.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
from typing import Callable

__all__ = ["run_interruptible"]

_RETRY_S = 0.05  # how often a deferred interrupt checks whether the import is done


def _importing(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


class _Handler:
    def __init__(self, prog: str):
        self.prog = prog
        self.stopping = False  # a KeyboardInterrupt has been raised
        self.announced = False
        self.deferred = False  # an interrupt is waiting for an import to finish
        self._retrying = False

    def announce(self) -> None:
        if not self.announced:
            self.announced = True
            print(f"{self.prog}: interrupted", file=sys.stderr, flush=True)

    def hard_exit(self) -> None:
        self.announce()
        try:
            sys.stdout.flush()
        finally:
            os._exit(130)

    def _retry(self) -> None:
        self._retrying = True
        _thread.interrupt_main(signal.SIGINT)  # calls __call__ again, in the main thread

    def __call__(self, signum, frame) -> None:
        retry, self._retrying = self._retrying, False
        if self.stopping or (self.deferred and not retry):  # a second interrupt from the user
            self.hard_exit()
        if _importing(frame):
            self.deferred = True
            threading.Timer(_RETRY_S, self._retry).start()
            return
        self.deferred, self.stopping = False, True
        raise KeyboardInterrupt


def run_interruptible(fn: Callable[[], int], prog: str) -> int:
    """``fn()``, or 130 after a Ctrl-C (see the module docstring); the handler is installed only when called from
    the main thread, and stays installed once interrupted (the process is ending)."""
    if threading.current_thread() is not threading.main_thread():
        return fn()
    handler = _Handler(prog)
    previous = signal.signal(signal.SIGINT, handler)
    try:
        return fn()
    except KeyboardInterrupt:
        handler.stopping = True
        handler.announce()
        return 130
    finally:
        if not handler.stopping:
            signal.signal(signal.SIGINT, previous)
