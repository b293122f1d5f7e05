"""`burgernet route`: where a call would go, for operators checking the routing table."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from core.cli import Context, pass_context
from core.reference import load_national_fallback
from routing.resolve import RouteRequest, resolve


@click.command("route")
@click.option("--caller", default=None,
              help="caller id, e.g. +31612345678, 0612345678 or sip:...@host")
@click.option("--postcode", default=None, help="keyed postcode, e.g. 3441 or 3441#")
@click.option("--lat", type=float, default=None, help="caller latitude (WGS84)")
@click.option("--lon", type=float, default=None, help="caller longitude (WGS84)")
@click.option("--pidf", "pidf_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="file with a PIDF-LO document or a whole multipart INVITE body")
@click.option("--content-type", default=None, help="Content-Type of the --pidf body")
@click.option("--geolocation", default=None, help="value of the SIP Geolocation header")
@pass_context
def route_command(context: Context, caller: str | None, postcode: str | None,
                  lat: float | None, lon: float | None, pidf_file: Path | None,
                  content_type: str | None, geolocation: str | None) -> None:
    """Show which meldkamer a call with these details is put through to, and why."""
    national = load_national_fallback(context.settings.meldkamer_config)
    request = RouteRequest(caller=caller, caller_national="NL", postcode=postcode, lat=lat,
                           lon=lon, pidf=pidf_file.read_bytes() if pidf_file else None,
                           content_type=content_type, geolocation_header=geolocation)
    context.ready_engine()
    with context.sessions() as session:
        decision = resolve(session, request, datetime.now(UTC), national_fallback=national)
    click.echo(f"meldkamer  {decision.meldkamer_code} ({decision.meldkamer_name})")
    click.echo(f"phone      {decision.phone or '-'}")
    click.echo(f"SIP URI    {decision.sip_uri or '-'}")
    click.echo(f"fallback   {decision.fallback_code or '-'}")
    click.echo(f"action     {decision.action_id if decision.action_id is not None else '-'}")
    click.echo(f"reason     {decision.reason}")
    click.echo(f"detail     {decision.detail}")
