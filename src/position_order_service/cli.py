"""Command line: `position-order-service serve|sim|check-consistency` (and `python main.py`)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Generator, Sequence
from typing import Any

import uvicorn


def _add_serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8020, help="port to listen on (default 8020)")
    p.add_argument("--reload", action="store_true", help="restart on code changes (development)")


def _add_role_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--role",
        choices=["all", "api", "worker"],
        default=None,
        help="all (default: one process does everything), api (HTTP + feed only, stateless) or worker "
        "(account actors, streams, trailing stops, rules, history, by lease); overrides ROLE",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes (ROLE=api replicas, or workers sharing the accounts by lease); needs "
        "an external Redis",
    )


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(host: str, port: int, reload: bool, role: str | None = None, workers: int = 1) -> int:
    import logging
    import os

    from .logging_setup import configure_logging
    from .preflight import ConfigError, preflight

    if role is not None:
        os.environ["ROLE"] = role  # the settings (and uvicorn's worker processes) read it
    try:
        settings = preflight()
    except ConfigError as exc:
        print(exc.line(), file=sys.stderr)
        return 2
    if workers < 1:
        print("--workers must be 1 or more", file=sys.stderr)
        return 2
    if workers > 1 and (settings.uses_embedded_redis or settings.runs_simulator):
        print(
            "--workers > 1 needs an external Redis (REDIS_URL) and exchanges (OKX_BASE_URL/BINANCE_BASE_URL "
            "or the real ones): the embedded Redis and simulators belong to one process",
            file=sys.stderr,
        )
        return 2
    configure_logging()
    log = logging.getLogger("position_order_service")
    if not settings.api_tokens.get_secret_value():
        if host not in LOOPBACK:
            print(
                f"refusing to serve on {host} without API_TOKENS: anyone who can reach it could trade. "
                "Set API_TOKENS='token=*' (or per-user grants), or bind 127.0.0.1.",
                file=sys.stderr,
            )
            return 2
        log.warning("no API_TOKENS configured: serving on loopback %s only, without authentication", host)
    if settings.role != "all":
        log.info("role %s%s", settings.role,
                 f", worker id {settings.resolved_worker_id()}" if settings.role == "worker" else "")  # fmt: skip
    if workers > 1:
        # one app per worker process (each a stateless api replica, or a worker with a lease id of its own)
        uvicorn.run(
            "position_order_service.cli:reload_app", factory=True, host=host, port=port, workers=workers,
            log_config=None,
        )  # fmt: skip
    elif reload:
        # the reloader's worker is a new process: it configures logging itself (reload_app), through the same
        # scrubbing handler; uvicorn's own log config (which prints query strings) stays off
        uvicorn.run(
            "position_order_service.cli:reload_app", factory=True, host=host, port=port, reload=True,
            log_config=None,
        )  # fmt: skip
    else:
        from .app import create_app

        _CleanStopServer(uvicorn.Config(create_app(settings), host=host, port=port, log_config=None)).run()
    return 0


def reload_app() -> Any:
    """The app factory of `--reload`'s worker process."""
    from .app import create_app
    from .logging_setup import configure_logging

    configure_logging()
    return create_app()


class _CleanStopServer(uvicorn.Server):
    """uvicorn re-raises the SIGTERM/SIGINT it handled once the server has stopped, so the process dies by the
    signal (SIGINT: a KeyboardInterrupt traceback). A stop that completed its shutdown is a clean exit: 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="position-order-service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve", help="run the service (HTTP API and workers)")
    _add_serve_args(serve_parser)
    _add_role_args(serve_parser)
    sim = sub.add_parser("sim", help="run an exchange simulator (OKX v5 or Binance USD-M wire formats)")
    sim.add_argument("--exchange", choices=["okx", "binance"], default="okx")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8090)
    sim.add_argument("--seed", type=int, default=0, help="seed of ids and random-walk prices")
    sim.add_argument("--demo", action="store_true", help="create the demo account and moving prices")
    sim.add_argument(
        "--no-limits",
        action="store_true",
        help="do not enforce the venue's WebSocket connection limits per client address (on by default)",
    )
    check = sub.add_parser(
        "check-consistency",
        help="compare the bots' legacy Redis keys with the new schema (needs REDIS_URL or REDIS_HOST)",
    )
    check.add_argument("--user", default=None, help="check one user only (default: everyone)")
    args = parser.parse_args(argv)
    if args.command == "check-consistency":
        from .integrations.consistency import run_check

        return run_check(args.user)
    if args.command == "serve":
        return serve(args.host, args.port, args.reload, args.role, args.workers)
    if args.command == "sim":
        from .logging_setup import configure_logging
        from .sim.server import run_sim

        configure_logging()
        run_sim(args.exchange, args.host, args.port, args.demo, args.seed, limits=not args.no_limits)
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


def main_py(argv: Sequence[str] | None = None) -> int:
    """`python main.py [--host] [--port] [--reload]`, as the seed's README shows."""
    parser = argparse.ArgumentParser(prog="main.py", description="run position-order-service")
    _add_serve_args(parser)
    args = parser.parse_args(argv)
    return serve(args.host, args.port, args.reload)


if __name__ == "__main__":
    sys.exit(main())
