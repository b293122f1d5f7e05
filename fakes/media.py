"""A local media host on loopback that behaves like a provider's media links, well and badly:
files, redirects (to itself under another name, elsewhere, or in a loop), a body that drips
and one that is too large. It records every request with its Authorization header."""

from __future__ import annotations

import asyncio

from aiohttp import web

from fakes.loopback import LoopbackServer


class MediaServer(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, tuple[bytes, str]] = {}
        #: (path, Authorization header or None) of every request, in order.
        self.requests: list[tuple[str, str | None]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/media/{name}", self.media)
        app.router.add_get("/api/{name}", self.api)
        app.router.add_get("/redirect", self.redirect)
        app.router.add_get("/loop/{n}", self.loop)
        app.router.add_get("/drip", self.drip)
        app.router.add_get("/big", self.big)
        return app

    def _seen(self, request: web.Request) -> None:
        self.requests.append((request.path_qs, request.headers.get("Authorization")))

    async def media(self, request: web.Request) -> web.Response:
        self._seen(request)
        body, kind = self.files.get(request.match_info["name"], (b"", ""))
        if not kind:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type=kind)

    async def api(self, request: web.Request) -> web.Response:
        """Like Twilio's API: a 307 to the file on the 'CDN' (this server as localhost)."""
        self._seen(request)
        raise web.HTTPTemporaryRedirect(
            f"http://localhost:{self.port}/media/{request.match_info['name']}")

    async def redirect(self, request: web.Request) -> web.Response:
        self._seen(request)
        raise web.HTTPFound(request.query["to"])

    async def loop(self, request: web.Request) -> web.Response:
        self._seen(request)
        raise web.HTTPFound(f"/loop/{int(request.match_info['n']) + 1}")

    async def drip(self, request: web.Request) -> web.StreamResponse:
        """A byte every 50 ms, for ever: every read is quick, the download never ends."""
        self._seen(request)
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        await response.prepare(request)
        while True:
            await response.write(b"\xff")
            await asyncio.sleep(0.05)

    async def big(self, request: web.Request) -> web.StreamResponse:
        """More than 5 MB, chunked, without a Content-Length to refuse it by."""
        self._seen(request)
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        await response.prepare(request)
        for _ in range(6 * 16):
            await response.write(b"\0" * 65536)
        await response.write_eof()
        return response
