"""textual-serve's server with every page and websocket behind a token in the path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp_jinja2
import jinja2
from aiohttp import web
from textual_serve.server import Server

from .serve import token_matches

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TokenServer(Server):
    """Routes under ``/TOKEN/``; anything else but the static files is refused (403)."""

    def __init__(
        self, command: str, token: str, *, host: str, port: int, title: str, public_url: str
    ) -> None:
        super().__init__(command, host=host, port=port, title=title, public_url=public_url)
        self.token = token

    async def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._check_token])
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates_path))
        prefix = f"/{self.token}"
        app.add_routes(
            [
                web.get(f"{prefix}/", self.handle_index, name="index"),
                web.get(f"{prefix}/ws", self.handle_websocket, name="websocket"),
                web.get(f"{prefix}/download/{{key}}", self.handle_download, name="download"),
                web.static("/static", self.statics_path, name="static"),
            ]
        )
        app.on_startup.append(self.on_startup)
        app.on_shutdown.append(self.on_shutdown)
        return app

    @web.middleware
    async def _check_token(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if request.path.startswith("/static/") or token_matches(request.path, self.token):
            return await handler(request)
        raise web.HTTPForbidden(text="mission-control serve: this URL needs the token it printed")

    async def on_startup(self, app: web.Application) -> None:
        """Quiet: the command printed the URL, token and all."""
