"""Doc tests (issue 12 items 10 and 11): every fenced ```python and ```bash block of README.md and docs/*.md
runs, in document order, against a service this test starts on free ports with its simulators, the way a
reader runs them against `make run` (`localhost:8020`, `:8090`, `:8091`, `:6399` are rewritten to the test's
ports). A block that cannot run here carries `<!-- doctest: skip (reason) -->` on the line before its fence,
and shows up as skipped with that reason; nothing is left out silently. The files are read at test time, so
sections added later are covered too."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from position_order_service.store.embedded import free_port

from ..e2e.conftest import Service, clean_env, wait_until

ROOT = Path(__file__).resolve().parents[2]
BLOCK_TIMEOUT_S = 120
RUNNABLE = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")
SKIP = re.compile(r"^<!--\s*doctest:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->$")
RUNNER = """
import ast, asyncio, sys
source = open(sys.argv[1]).read()
code = compile(source, sys.argv[2], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
result = eval(code, {"__name__": "__main__"})
if asyncio.iscoroutine(result):
    asyncio.run(result)
"""
BASH_PRELUDE = """set -euo pipefail
curl() { command curl --silent --show-error --fail-with-body "$@"; echo; }
"""


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    code: str
    skip: str | None

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks() -> list[Block]:
    out: list[Block] = []
    for path in doc_files():
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m:
                i += 1
                continue
            start, lang = i, m.group(1).lower()
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            prev = next((lines[k].strip() for k in range(start - 1, -1, -1) if lines[k].strip()), "")
            skip = SKIP.match(prev)
            if lang in RUNNABLE:
                code = "\n".join(lines[start + 1 : j]) + "\n"
                out.append(
                    Block(path, start + 1, RUNNABLE[lang], code, skip.group("reason") if skip else None)
                )
            i = j + 1
    return out


@dataclass
class Running:
    port: int
    sim_okx: int
    sim_binance: int
    redis_port: int

    def rewrite(self, code: str) -> str:
        for host in ("localhost", "127.0.0.1"):
            code = code.replace(f"{host}:8020", f"127.0.0.1:{self.port}")
            code = code.replace(f"{host}:8090", f"127.0.0.1:{self.sim_okx}")
            code = code.replace(f"{host}:8091", f"127.0.0.1:{self.sim_binance}")
            code = code.replace(f"{host}:6399", f"127.0.0.1:{self.redis_port}")
        return code


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("doctest")
    running = Running(free_port(), free_port(), free_port(), free_port())
    env = clean_env(
        DATA_DIR=str(tmp / "var"), EMBEDDED_REDIS_PORT=str(running.redis_port), SIM="on",
        SIM_PORT=str(running.sim_okx), SIM_BINANCE_PORT=str(running.sim_binance), LOG_FORMAT="json",
    )  # fmt: skip
    svc = Service(env, running.port, tmp / "service.log")
    try:
        svc.wait_healthy()
        wait_until(lambda: httpx.get(f"{svc.url}/ready", timeout=5).status_code == 200, what="readiness")
        yield running
    finally:
        svc.kill()


def _env() -> dict[str, str]:
    env = clean_env(T="")
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


@pytest.mark.parametrize("block", blocks(), ids=lambda b: b.name)
def test_documented_example_runs(block: Block, service: Running, tmp_path: Path) -> None:
    if block.skip is not None:
        pytest.skip(f"{block.name}: {block.skip}")
    code = service.rewrite(block.code)
    if block.lang == "bash":
        argv = ["bash", "-c", BASH_PRELUDE + code]
    else:
        script, runner = tmp_path / "example.py", tmp_path / "runner.py"
        script.write_text(code)
        runner.write_text(RUNNER)
        argv = [sys.executable, str(runner), str(script), block.name]
    # its own process group: whatever the example starts is ended with it (a `make run` left unmarked would
    # otherwise keep a service running after the test)
    proc = subprocess.Popen(argv, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        out, err = "", f"timed out after {BLOCK_TIMEOUT_S} s"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0 and not err.startswith("timed out"), (
        f"{block.name} failed ({proc.returncode}):\n{code}\n--- stdout\n{out[-3000:]}\n--- stderr\n{err[-3000:]}"
    )


def test_the_doc_test_finds_the_examples() -> None:
    found = blocks()
    names = {b.path.name for b in found}
    assert "README.md" in names
    assert sum(1 for b in found if b.skip is None) >= 10
    assert all(b.skip.strip() for b in found if b.skip is not None)  # every skip gives its reason
