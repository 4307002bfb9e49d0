"""``serve``: the app of a run in a browser, through textual-serve.

Each browser session runs ``mission-control attach RUN`` in a terminal of its own,
so the browser can do what the app can, no more. The server listens on 127.0.0.1
unless ``--host`` says otherwise, and the page and its websocket live under a random
token in the URL it prints: a request without the token is refused (the static
files, the same for everyone, are not behind it). The token is in the path, not
the query, because the page's script appends its own query to the websocket URL.
"""

from __future__ import annotations

import argparse
import hmac
import secrets
import shlex
import socket
import sys
from pathlib import Path

from .common import read_run, state_dir_of


def cmd_serve(args: argparse.Namespace) -> int:
    _, record = read_run(args)
    from ..errors import SetupError

    try:
        from .serve_app import TokenServer
    except ImportError as err:  # pragma: no cover - textual-serve is a dependency
        raise SetupError(
            f"serve needs textual-serve, which is not installed ({err.name})"
        ) from None
    port = args.port or _free_port(args.host)
    token = secrets.token_urlsafe(24)
    command = [sys.executable, "-m", "mission_control", "attach", record.run_id]
    command += ["--state-dir", str(Path(state_dir_of(args)).resolve())]
    shown = socket.gethostname() if args.host in ("0.0.0.0", "::", "") else args.host
    public = f"http://{shown}:{port}"
    server = TokenServer(
        shlex.join(command),
        token,
        host=args.host,
        port=port,
        title=f"mission-control {record.run_id}",
        public_url=public,
    )
    print(f"run {record.run_id} of {record.plan_name} in a browser: {public}/{token}/", flush=True)
    server.serve()
    return 0


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def token_matches(path: str, token: str) -> bool:
    """``/TOKEN/...``: the first part of the path is the token (compared in constant time)."""
    first = path.lstrip("/").split("/", 1)[0]
    return hmac.compare_digest(first.encode(), token.encode())
