"""A map tile server on loopback in PDOK's path layout (the BRT-Achtergrondkaart in Web
Mercator, as docs/maps.md recommends it), answering every tile with one small PNG and
recording which tiles were asked for."""

from __future__ import annotations

import io
import re

from aiohttp import web
from PIL import Image, ImageDraw

from fakes.loopback import LoopbackServer

#: PDOK's tile path, as MAP_TILES_URL takes it.
PATH = "/brt/achtergrondkaart/wmts/v2_0/standaard/EPSG:3857/{z}/{x}/{y}.png"
TILE = re.compile(r"/brt/achtergrondkaart/wmts/v2_0/standaard/EPSG:3857/(\d+)/(\d+)/(\d+)\.png")


def png() -> bytes:
    """A 256 × 256 tile: pale land with a road across, as a base map tile looks."""
    image = Image.new("RGB", (256, 256), (238, 234, 222))
    ImageDraw.Draw(image).line((0, 128, 256, 140), fill=(250, 200, 90), width=6)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


class TileServer(LoopbackServer):
    """Answers PDOK's tile paths with `png()`; records (z, x, y) of every tile asked for, in
    order, and every other path asked for (answered 404)."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self.requests: list[tuple[int, int, int]] = []
        self.misses: list[str] = []
        self._body = png()

    @property
    def template(self) -> str:
        """The MAP_TILES_URL that points at this server."""
        return f"{self.url}{PATH}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.tile)
        return app

    async def tile(self, request: web.Request) -> web.Response:
        match = TILE.fullmatch(request.raw_path)
        if match is None:
            self.misses.append(request.raw_path)
            raise web.HTTPNotFound()
        self.requests.append((int(match[1]), int(match[2]), int(match[3])))
        return web.Response(body=self._body, content_type="image/png")
