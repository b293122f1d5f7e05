"""What every web test needs: a form's CSRF token and a logged-in demo user."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from core.seed import DEMO_PASSWORD

#: The demo users by role, as seeded by `seed_demo`.
DEMO_EMAIL = {"admin": "beheer@example.org", "centralist": "centralist@example.org",
              "municipality_officer": "gemeente@example.org"}


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token on the page at PATH (a GET)."""
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or \
        re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def login(client: FlaskClient, email: str, password: str = DEMO_PASSWORD) -> TestResponse:
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": csrf_token(client)})


def login_as(client: FlaskClient, role: str) -> FlaskClient:
    """CLIENT logged in as the demo user of ROLE (admin, centralist, municipality_officer)."""
    response = login(client, DEMO_EMAIL[role])
    assert response.status_code == 302, response.get_data(as_text=True)
    return client
