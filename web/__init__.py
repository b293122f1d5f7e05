"""The web layer: `create_app` builds the app on the Runtime (`outbound.runtime`) and registers
the blueprints; views reach the Runtime and their session through `web.context`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

from core.schema import ensure_schema
from core.settings import Settings
from outbound.runtime import Runtime, build_runtime
from routing import directory
from routing import places as place_search  # not `places`: web.places would shadow it
from web.context import close_session, csrf
from web.i18n import current_language, translate
from web.nav import nav_items


def create_app(settings: Settings | None = None, runtime: Runtime | None = None,
               test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app on RUNTIME, or on one built from SETTINGS; without either it reads the
    environment (the one place it does)."""
    if runtime is None:
        runtime = build_runtime(settings or Settings.from_env())
        ensure_schema(runtime.engine, upgrade=runtime.settings.auto_migrate)
        with runtime.sessions() as session:
            directory.warm_up(session)  # the boundary index, before the first caller waits
            place_search.warm_up(session)  # the place search index, before the first keystroke
    settings = runtime.settings
    app = Flask(__name__)
    from web import inputs, request_ids

    request_ids.init_app(app)  # first: every answer names its request, refused ones too
    inputs.init_app(app)  # before any blueprint: its converter bounds every <int:...>
    from web import metrics

    metrics.init_app(app)  # first: its clock starts before any other hook of a request
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        REMEMBER_COOKIE_SECURE=settings.session_cookie_secure,
        REMEMBER_COOKIE_HTTPONLY=True,
        MAX_CONTENT_LENGTH=10 * 1024 * 1024,
    )
    if test_config:
        app.config.update(test_config)
    if settings.trusted_proxies:
        # The client address (and scheme, host, port) as the last TRUSTED_PROXIES hops saw
        # them; anything a client wrote further left in X-Forwarded-For is ignored. Every
        # per-client limit and the audit trail read request.remote_addr.
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app,  # type: ignore[method-assign]
                                x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
    app.extensions["runtime"] = runtime
    csrf.init_app(app)
    from web import staff_session

    staff_session.init_app(app, settings.staff_idle_minutes, settings.staff_session_hours)
    app.jinja_env.globals.update(_=translate, current_language=current_language,
                                 nav_items=nav_items)
    app.teardown_request(close_session)
    app.after_request(_security_headers(settings))

    from web import auth, health, voice, webhooks

    app.register_blueprint(health.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(voice.bp)
    app.register_blueprint(voice.sounds_bp)
    # one line per part of the console, added as each part lands
    from web import municipal; app.register_blueprint(municipal.bp)  # noqa: E702, I001
    from web import reaction; app.register_blueprint(reaction.bp)  # noqa: E702, I001
    from web import portal; app.register_blueprint(portal.bp)  # noqa: E702, I001
    from web import console; app.register_blueprint(console.bp)  # noqa: E702, I001
    from web import stats; app.register_blueprint(stats.bp)  # noqa: E702, I001
    from web import admin; app.register_blueprint(admin.bp)  # noqa: E702, I001
    from web import cap; app.register_blueprint(cap.bp)  # noqa: E702, I001
    from web import api; app.register_blueprint(api.bp)  # noqa: E702, I001
    from web import tokens; app.register_blueprint(tokens.bp)  # noqa: E702, I001
    from web import lost; app.register_blueprint(lost.bp)  # noqa: E702, I001
    return app


def _security_headers(settings: Settings) -> Callable[[Response], Response]:
    """Headers on every answer: scripts, styles and images only from this site (and the
    map's tile server, when one is configured), no framing, no sniffing, no referrer to
    other sites; HSTS behind HTTPS. A view that set its own (a photo's sandbox) keeps it.

    Nothing is cached unless its view says how (static files, the CAP feed, rendered
    prompts, the base map): a page of personal data (a participant's own page, the live
    tips, an inquiry's reactions, the audit log) must not stay in a shared computer's
    browser cache, where Back would show it after its session ended on the server (the
    cookie unchanged, so `Vary: Cookie` still matches)."""
    images = " ".join(["'self'", "data:", "blob:", _origin(settings.map_tiles_url)]).strip()
    policy = ("default-src 'self'; script-src 'self'; style-src 'self'; "
              f"img-src {images}; connect-src 'self'; object-src 'none'; base-uri 'self'; "
              "form-action 'self'; frame-ancestors 'none'")
    headers = {"Content-Security-Policy": policy, "X-Frame-Options": "DENY",
               "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
               "Cache-Control": "no-store"}
    if settings.session_cookie_secure:
        headers["Strict-Transport-Security"] = "max-age=31536000"

    def add(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    return add


def _origin(url: str) -> str:
    """scheme://host[:port] of a tile URL template such as https://tile.example/{z}/{x}/{y}.png"""
    if not url:
        return ""
    parts = urlsplit(url.replace("{s}.", ""))
    return f"{parts.scheme}://*.{parts.netloc}" if "{s}." in url else \
        f"{parts.scheme}://{parts.netloc}"
