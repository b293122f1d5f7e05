"""`burgernet api token ...`: API keys for dispatch systems from the command line."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from sqlalchemy import select

from core.cli import ROW_ID, Context, pass_context
from core.db import transaction
from core.errors import BurgernetError
from core.models import Organisation
from core.permissions import SCOPES
from core.tokens import create_token, list_tokens, revoke_token, set_scopes

SCOPE_HELP = ("what the key may make (repeat for more): an action kind, or amber_national for a "
              "national AMBER Alert; none given: the defaults of the organisation's kind "
              "(police: suspect, vehicle, missing_person, amber; municipality: "
              "neighbourhood_inquiry, preventive; fire, ambulance: preventive)")


class UnknownOrganisation(BurgernetError, LookupError):
    """No organisation by that name; the message lists the ones there are."""

    error_id = "unknown_organisation"


@click.group("api")
def api_command() -> None:
    """The JSON API for dispatch systems."""


@api_command.group("token")
def token_command() -> None:
    """API keys: each acts for one organisation."""


@token_command.command("create")
@click.option("--organisation", required=True, help="name of the organisation, exactly")
@click.option("--name", required=True, help="what uses the key, e.g. GMS Midden-Nederland")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(SCOPES), help=SCOPE_HELP)
@pass_context
def create_command(context: Context, organisation: str, name: str,
                   scopes: tuple[str, ...]) -> None:
    """Make a key and print it; it is shown this once and only its hash is kept."""
    context.ready_engine()
    with transaction(context.sessions) as session:
        found = session.scalar(select(Organisation).where(Organisation.name == organisation))
        if found is None:
            known = ", ".join(session.scalars(select(Organisation.name)
                                              .order_by(Organisation.name)))
            raise UnknownOrganisation(f"no organisation {organisation!r} (known: {known})")
        token, plain = create_token(session, found, name, now=datetime.now(UTC),
                                    scopes=scopes, actor="cli")
        token_id, granted = token.id, token.scopes
    click.echo(plain)
    click.echo(f"API key {token_id} for {organisation} (scopes: {granted}): store it now, it "
               "is not shown again", err=True)


@token_command.command("list")
@pass_context
def list_command(context: Context) -> None:
    """Every key: id, organisation, name, last use, revoked."""
    context.ready_engine()
    with context.sessions() as session:
        for token in list_tokens(session):
            used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at \
                else "never used"
            revoked = f", revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else ""
            click.echo(f"{token.id:4}  {token.organisation.name} / {token.name}: "
                       f"{used}{revoked}; scopes: {token.scopes or 'none'}")


@token_command.command("scopes")
@click.argument("token_id", type=ROW_ID)
@click.option("--scope", "scopes", multiple=True, type=click.Choice(SCOPES), help=SCOPE_HELP)
@pass_context
def scopes_command(context: Context, token_id: int, scopes: tuple[str, ...]) -> None:
    """Give a live key these scopes instead of the ones it has (e.g. grant amber_national)."""
    context.ready_engine()
    with transaction(context.sessions) as session:
        granted = set_scopes(session, token_id, scopes, actor="cli").scopes
    click.echo(f"API key {token_id} now has the scopes: {granted}")


@token_command.command("revoke")
@click.argument("token_id", type=ROW_ID)
@pass_context
def revoke_command(context: Context, token_id: int) -> None:
    """Revoke a key; requests with it get 401 from then on."""
    context.ready_engine()
    with transaction(context.sessions) as session:
        done = revoke_token(session, token_id, now=datetime.now(UTC), actor="cli")
    click.echo(f"API key {token_id} revoked" if done else f"API key {token_id} was already "
               "revoked; nothing done")
