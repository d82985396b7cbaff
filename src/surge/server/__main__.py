"""``python -m surge.server``: run a control plane with its local agent (what ``surge server`` and the
embedded mode start)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

import uvicorn

from surge.config import DEFAULT_PORT
from surge.core.vhost import check_web_host
from surge.errors import Error
from surge.server.app import create_app
from surge.server.config import ServerConfig
from surge.server.tunnel import WebSocketTunnel


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="surge server")
    p.add_argument("--home", default=os.environ.get("SURGE_HOME") or str(Path.home() / ".surge"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--gpus", default=None)
    p.add_argument("--database-url", default=None)
    p.add_argument("--embedded", action="store_true")
    p.add_argument("--log-level", default="info")
    p.add_argument("--kill-grace", type=float, default=3.0, help="seconds between SIGTERM and SIGKILL")
    p.add_argument("--lease-ttl", type=float, default=15.0, help="seconds without heartbeat before a worker is lost")
    p.add_argument("--result-retention", type=float, default=7 * 86400.0, help="seconds spawned results are kept")
    limits = ServerConfig(home=Path("."))
    p.add_argument("--max-body-bytes", type=int, default=limits.max_body_bytes,
                   help="request bodies over this get 413 (0: no limit)")
    p.add_argument("--rate-limit", type=float, default=limits.rate_limit,
                   help="requests per second per API token, 429 beyond (0: no limit)")
    p.add_argument("--rate-burst", type=float, default=limits.rate_burst, help="requests a token may burst")
    p.add_argument("--max-queued", type=int, default=limits.max_queued,
                   help="queued inputs per function, 429 beyond (0: no limit)")
    p.add_argument("--allow-private-webhooks", action="store_true", default=None,
                   help="let job webhooks reach loopback and private addresses (or SURGE_ALLOW_PRIVATE_WEBHOOKS=1)")
    p.add_argument("--web-hold-timeout", type=float, default=150.0,
                   help="seconds a web request waits for a free container before a 503 (at most)")
    p.add_argument("--web-host", default=None,
                   help="serve web endpoints also at {label}.{app}.WEB_HOST (e.g. surge.localhost)")
    p.add_argument("--webhook-backoff", type=float, default=5.0,
                   help="seconds before a failed webhook's second attempt (doubling, up to 1 h, for 24 h)")
    p.add_argument("--sandbox", choices=("auto", "strict", "basic", "off"), default="auto",
                   help="container isolation (auto: strict for a standalone server where the host allows it)")
    p.add_argument("--sandbox-user", default=None, help="run every container as this account (default: a uid "
                   "per workspace)")
    p.add_argument("--sandbox-pids", type=int, default=limits.sandbox_pids, help="processes per container (0: no limit)")
    p.add_argument("--sandbox-nofile", type=int, default=limits.sandbox_nofile, help="open files per process")
    p.add_argument("--sandbox-fsize-mib", type=int, default=limits.sandbox_fsize_mib,
                   help="largest file a container may write, MiB")
    p.add_argument("--sandbox-tmp-mib", type=int, default=limits.sandbox_tmp_mib,
                   help="strict: size of a container's private /tmp, /var/tmp and /dev/shm, MiB each")
    return p.parse_args(argv)


def serve(config: ServerConfig, *, log_level: str = "info") -> None:
    home = config.home
    home.mkdir(parents=True, exist_ok=True)
    lock = open(home / "server.lock", "w")  # noqa: SIM115 - held for the process's lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(f"another surge server already runs on {home} (see {home / 'server.json'})")
    # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto says
    # TCP, and without it every response waits ~40 ms for a delayed ACK (Nagle)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        sys.exit(f"cannot listen on {config.host}:{config.port}: {exc}")
    config.port = sock.getsockname()[1]
    try:
        app = create_app(config)
    except Error as exc:   # e.g. an unsafe secrets.key: say what to fix, without a traceback
        sys.exit(f"surge server: {exc}")
    # ws=: WebSocket upgrades to web endpoints are spliced to containers (surge.server.tunnel)
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on",
                                           timeout_graceful_shutdown=5, ws=WebSocketTunnel))
    state_file = home / "server.json"
    url = f"http://{config.host}:{config.port}"

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                await task
                return
            await asyncio.sleep(0.01)
        tmp = state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": url, "pid": os.getpid(), "embedded": config.embedded}))
        tmp.replace(state_file)
        print(f"surge control plane listening on {url} (home {home})", flush=True)
        if config.embedded:
            loop = asyncio.get_running_loop()

            def watch_stdin() -> None:
                # the parent holds our stdin open; EOF means it is gone or wants us to stop
                with contextlib.suppress(Exception):
                    sys.stdin.buffer.read()
                loop.call_soon_threadsafe(setattr, server, "should_exit", True)

            threading.Thread(target=watch_stdin, daemon=True).start()
        await task

    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    try:
        asyncio.run(main())
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError):
            if json.loads(state_file.read_text()).get("pid") == os.getpid():
                state_file.unlink()


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.web_host is not None:
        try:
            args.web_host = check_web_host(args.web_host)
        except ValueError as exc:
            sys.exit(f"surge server: {exc}")
    config = ServerConfig(home=Path(args.home).expanduser(), host=args.host, port=args.port, gpus=args.gpus,
                          database_url=args.database_url, embedded=args.embedded,
                          kill_grace=args.kill_grace, lease_ttl=args.lease_ttl,
                          max_body_bytes=args.max_body_bytes, rate_limit=args.rate_limit,
                          rate_burst=args.rate_burst, max_queued=args.max_queued,
                          result_retention=args.result_retention, webhook_backoff=args.webhook_backoff,
                          web_hold_timeout=args.web_hold_timeout, web_host=args.web_host,
                          sandbox=args.sandbox, sandbox_user=args.sandbox_user, sandbox_pids=args.sandbox_pids,
                          sandbox_nofile=args.sandbox_nofile, sandbox_fsize_mib=args.sandbox_fsize_mib,
                          sandbox_tmp_mib=args.sandbox_tmp_mib)
    if args.allow_private_webhooks:
        config.allow_private_webhooks = True
    serve(config, log_level=args.log_level)


if __name__ == "__main__":
    main()
