"""Console helpers: operators made the way `segbase operator grant` makes them, and reads of the audit log."""
from __future__ import annotations

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
