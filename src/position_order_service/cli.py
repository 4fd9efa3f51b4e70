"""Command line: `position-order-service serve|sim|check-consistency` (and `python main.py`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _add_serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8020, help="port to listen on (default 8020)")
    p.add_argument("--reload", action="store_true", help="restart on code changes (development)")


def serve(host: str, port: int, reload: bool) -> int:
    import uvicorn

    from .logging_setup import configure_logging

    configure_logging()
    if reload:
        uvicorn.run("position_order_service.app:create_app", factory=True, host=host, port=port, reload=True)
    else:
        from .app import create_app

        uvicorn.run(create_app(), host=host, port=port, log_config=None)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="position-order-service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve_args(sub.add_parser("serve", help="run the service (HTTP API and workers)"))
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args.host, args.port, args.reload)
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
