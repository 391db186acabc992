"""Console helpers: operators made the way `segbase operator grant` makes them, and reads of the audit log."""
from __future__ import annotations

import re

import httpx
import psycopg
from sqlalchemy import Engine

from db import console as console_db
from db.uow import Caller, unit_of_work
from schemas.settings import Settings
from tests.support.factories import TestUser, create_user


def make_operator(settings: Settings, engine: Engine, **user_fields) -> TestUser:
    """A new user with the operator role, granted through the CLI's SQL function."""
    user = create_user(settings, **user_fields)
    with unit_of_work(engine, Caller.service()) as uow:
        console_db.set_operator_role(uow=uow, email=user.email, operator=True)
    return user


def audit_rows(conn: psycopg.Connection, target_id: str) -> list[dict]:
    """Every audit row about one object, oldest first, as the owner reads them."""
    cursor = conn.execute("select actor, action, operator_id::text, before, after, reason "
                          "from internal.operator_audit where target_id = %s order by id", (target_id,))
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf_from(html: str) -> str:
    """The CSRF token of the first form on a console page."""
    match = CSRF_INPUT.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


class ConsoleClient:
    """A browser-like HTTP client of /console: keeps cookies, reads each form's CSRF token from the page."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=30, follow_redirects=False)

    def sign_in(self, email: str, password: str, **form: str) -> httpx.Response:
        page = self.http.get("/console/login")
        return self.http.post("/console/login", data={"csrf_token": csrf_from(page.text), "email": email,
                                                      "password": password, **form})

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post_form(self, page_path: str, action: str, data: dict[str, str] | None = None) -> httpx.Response:
        """Open `page_path`, then post `data` to `action` with the page's CSRF token (as the browser would)."""
        page = self.http.get(page_path)
        assert page.status_code == 200, page.text
        return self.http.post(action, data={"csrf_token": csrf_from(page.text), **(data or {})})

    def close(self) -> None:
        self.http.close()
