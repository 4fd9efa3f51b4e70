"""A process a test starts dies with the pytest process that started it (tests/orphans.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time


def test_a_grandchild_started_by_a_killed_test_process_dies_with_it() -> None:
    # A stand-in for a pytest worker: it installs the rule, starts a long sleeper, prints its pid, then is killed
    worker = (
        "import subprocess, sys, time; sys.path.insert(0, '.'); from tests import orphans; orphans.install(); "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(p.pid, flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", worker], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    sleeper = int(proc.stdout.readline())
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(sleeper, 0)
        except ProcessLookupError:
            return
        # a zombie until init reaps it: dead all the same
        with open(f"/proc/{sleeper}/stat") as stat:
            if stat.read().split(")")[-1].split()[0] == "Z":
                return
        time.sleep(0.05)
    os.kill(sleeper, 9)
    raise AssertionError("the test process' child outlived it")
