"""``lakehouse`` console script: ``lakehouse serve`` runs the app under Granian;
``ingest``, ``sql``, ``datasets``, ``describe`` and ``history`` are the client
(``lakehouse.client``), which talks to a server over HTTP.

Granian runs embedded in this process (one process, one event loop), so the
in-memory DuckDB database and the catalog index are shared by every request.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import logging
import signal
import socket
import sys

from lakehouse import client
from lakehouse.config import ConfigError, Settings, load_settings
from lakehouse.logs import configure_logging

log = logging.getLogger("lakehouse.cli")

EXIT_CONFIG = 2
EXIT_BIND = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lakehouse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--config", help="path of lakehouse.toml (else $LAKEHOUSE_CONFIG)")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="allow binding a non-loopback address without an auth token",
    )
    client.add_commands(sub)
    args = parser.parse_args(argv)
    if args.command != "serve":
        return client.run(args)

    # Log the config loading itself as JSON already; reconfigure once we know the level.
    configure_logging()
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        log.error("cannot start: %s", exc)
        print(f"lakehouse: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.host:
        settings.server.host = args.host
    if args.port is not None:
        settings.server.port = args.port
    configure_logging(settings.logging.level, settings.logging.format)
    return serve_forever(settings, insecure=args.insecure)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bindable(host: str, port: int) -> str | None:
    """Try to bind the address now, so a port in use fails fast and clearly."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            return f"cannot listen on {host}:{port}: {reason}"
    return None


def serve_forever(settings: Settings, *, insecure: bool = False) -> int:
    host, port = settings.server.host, settings.server.port
    if not is_loopback(host) and not settings.server.auth_token and not insecure:
        message = (
            f"refusing to listen on non-loopback address {host} without an auth token: "
            "set [server] auth_token or LAKEHOUSE_AUTH_TOKEN, or pass --insecure"
        )
        log.error(message)
        print(f"lakehouse: {message}", file=sys.stderr)
        return EXIT_CONFIG
    problem = check_bindable(host, port)
    if problem:
        log.error(problem, extra={"host": host, "port": port})
        print(f"lakehouse: {problem}", file=sys.stderr)
        return EXIT_BIND
    return asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    # Imported here so `lakehouse --help` stays fast.
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server

    from lakehouse.app import build_services, create_app

    services = build_services(settings)
    app = create_app(settings, services)
    server = Server(
        app,
        address=settings.server.host,
        port=settings.server.port,
        interface=Interfaces.ASGI,
        log_enabled=False,
        log_level=LogLevels.warning,
        backlog=1024,
    )
    server.workers_kill_timeout = int(settings.server.shutdown_timeout_seconds)

    loop = asyncio.get_running_loop()
    stopping = False

    def stop(signum: int) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            log.info("shutting down", extra={"signal": signal.Signals(signum).name})
            services.begin_shutdown()
            server.stop()  # type: ignore[no-untyped-call]  # granian's embed API is untyped

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)

    try:
        await server.serve()
    except Exception:
        if services.startup_failure is None:
            log.exception("server failed")
            return 1
    if services.startup_failure is not None:  # already logged, with its traceback if a bug
        print(f"lakehouse: cannot start: {services.startup_failure}", file=sys.stderr)
        return 1
    if server.interrupt_children:
        log.error("server stopped unexpectedly (application start-up failed?)")
        return 1
    log.info("stopped")
    return 0
