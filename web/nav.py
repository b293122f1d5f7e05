"""The console's menu: each entry shows when its page exists and the user's role may use it."""

from __future__ import annotations

from typing import NamedTuple

from flask import current_app
from flask_login import current_user

from core.models import Role

STAFF = (Role.ADMIN, Role.CENTRALIST, Role.MUNICIPALITY_OFFICER)


class NavItem(NamedTuple):
    endpoint: str
    label: str
    roles: tuple[Role, ...]


MENU = (
    NavItem("console.index", "Acties", (Role.ADMIN, Role.CENTRALIST)),
    NavItem("municipal.index", "Buurtonderzoek en berichten", STAFF),
    NavItem("stats.index", "Statistiek", STAFF),
    NavItem("admin.audit", "Auditlog", (Role.ADMIN,)),
    NavItem("tokens.index", "API-sleutels", (Role.ADMIN,)),
)


def nav_items() -> list[NavItem]:
    """The menu entries for the current user (none when logged out)."""
    if not current_user.is_authenticated:
        return []
    return [item for item in MENU
            if item.endpoint in current_app.view_functions and current_user.role in item.roles]
