"""Processes a test starts die with the pytest process that started them.

A test that times out, or a worker that is killed, skips its fixtures' teardown; the simulators, services and
redis-servers it started would live on and load the machine for every later test. Each child started from the
main thread asks the kernel (prctl PR_SET_PDEATHSIG) to be killed when its parent dies. Only the main thread:
the signal follows the thread that forked, and a pool thread may end before its child should."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def install() -> None:
    if not sys.platform.startswith("linux") or getattr(subprocess.Popen, "_dies_with_parent", False):
        return
    original: Callable[..., None] = subprocess.Popen.__init__

    def __init__(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        if kwargs.get("preexec_fn") is None and threading.current_thread() is threading.main_thread():
            kwargs["preexec_fn"] = _die_with_parent
        original(self, *args, **kwargs)

    subprocess.Popen.__init__ = __init__  # type: ignore[method-assign]
    subprocess.Popen._dies_with_parent = True  # type: ignore[attr-defined]
