"""Targets for the signal tests: python functions whose worker process ends by a signal."""

from __future__ import annotations

import ctypes
import os
import signal


def killed_from_outside() -> None:
    """The worker receives SIGKILL as the OOM killer would send it."""
    print("loading 40000 rows", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def crashes() -> None:
    """A crash of the program's own making: reading address 0 (SIGSEGV)."""
    print("calling the C library", flush=True)
    ctypes.string_at(0)
