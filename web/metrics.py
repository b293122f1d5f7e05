"""/metrics for Prometheus, and the time every provider webhook takes.

Under `burgernet web` the gunicorn processes keep their values in one directory
(`core.metrics.use_directory`): whichever of them answers reads them all. The shared state
(queues, outbox, workers) is read at the scrape (`outbound.metrics.StateCollector`). Only a
direct connection from METRICS_NETWORKS, or a request with METRICS_TOKEN as its bearer token,
gets an answer: labels hold no participant data, but the traffic of an emergency service is
nobody else's business either.
"""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, g, request

from core.metrics import (
    CONTENT_TYPE,
    ScrapeAccess,
    directory_collector,
    exposition,
    forwarded,
    multiprocess_directory,
)
from outbound.metrics import StateCollector
from web.context import runtime

bp = Blueprint("metrics", __name__)
#: The provider webhooks, timed by their route template (never the path: no ids in labels).
TIMED = "/webhooks/"


@bp.get("/metrics")
def metrics() -> Response:
    """Everything this host's web processes counted, and the shared state."""
    rt = runtime()
    if not ScrapeAccess.of(rt.settings).allows(request.remote_addr,
                                               request.headers.get("Authorization"),
                                               forwarded(request.headers.get)):
        return Response("forbidden\n", status=403, mimetype="text/plain")
    directory = multiprocess_directory()
    counted = directory_collector(directory) if directory is not None else rt.metrics.registry
    return Response(exposition([counted, StateCollector(rt)]), content_type=CONTENT_TYPE)


def init_app(app: Flask) -> None:
    """Time the provider webhooks (from before any other hook of the request) and serve
    /metrics."""
    app.before_request(_start)
    app.after_request(_observe)
    app.register_blueprint(bp)


def _start() -> None:
    g.metrics_started = time.perf_counter()


def _observe(response: Response) -> Response:
    rule, started = request.url_rule, g.get("metrics_started")
    if rule is not None and started is not None and rule.rule.startswith(TIMED):
        runtime().metrics.webhook(rule.rule, response.status_code, time.perf_counter() - started)
    return response
