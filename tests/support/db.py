"""Database helpers: rolled-back units of work as any caller, snapshots, SQLSTATEs, a small world of users."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from db.uow import Caller, UnitOfWork, unit_of_work
from db.urls import libpq_url
from schemas.settings import Settings
from tests.support.factories import TestUser


class _Rollback(Exception):
    """Raised at the end of a probe so its unit of work rolls back."""


def user_caller(user_id: str) -> Caller:
    return Caller("authenticated", {"sub": user_id, "role": "authenticated", "aud": "authenticated"})


def rolled_back(engine: Engine, caller: Caller, body: Callable[[UnitOfWork], Any]) -> Any:
    """Run `body` in a unit of work as `caller` and roll it back; database errors propagate."""
    outcome: dict[str, Any] = {}
    try:
        with unit_of_work(engine, caller) as uow:
            outcome["value"] = body(uow)
            raise _Rollback
    except _Rollback:
        pass
    return outcome["value"]


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error raised through SQLAlchemy."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(orig, "sqlstate", None)


def snapshot(uow: UnitOfWork, table: str, row_id: str) -> dict | None:
    """The row as service_role sees it, read inside the caller's transaction (after its statement ran)."""
    uow.execute("select set_config('role', 'service_role', true)")
    # `table` is one of the four names the tests spell out, never input.
    row = uow.execute(text(f"select to_jsonb(t) from public.{table} t where id = :id"), {"id": row_id}).scalar()
    return row


def as_service(engine: Engine, statement: str, params: dict | None = None) -> list:
    """Run and commit one statement as service_role (set-up through the path workers use)."""
    with unit_of_work(engine, Caller.service()) as uow:
        result = uow.execute(statement, params)
        return list(result) if result.returns_rows else []


@dataclass
class World:
    owner: TestUser
    other: TestUser
    owner_project: str
    other_project: str
    done_result: str
    error_result: str
    pending_result: str
    processing_result: str
    usage_log: str
    orphan_auth_user: str  # an auth user whose profile was removed: the one profile service_role may insert
    credit_grant: str = ""  # an operator's grant to the owner (only internal.grant_credits writes the table)

    def caller(self, name: str) -> Caller:
        return {
            "anon": Caller.anonymous(),
            "owner": user_caller(self.owner.id),
            "other": user_caller(self.other.id),
            "service": Caller.service(),
        }[name]


def new_result(engine: Engine, user_id: str, project_id: str | None, *, path: tuple[str, ...] = ()) -> str:
    """Submit a pending result, then move it along `path` as service_role (the pipeline's legal transitions)."""
    result_id = as_service(engine, "insert into public.segmentation_results (user_id, project_id, source_image_url, "
                                   "text_prompt) values (:u, :p, 'https://img.example/a.png', 'a cat') returning id",
                           {"u": user_id, "p": project_id})[0][0]
    for status in path:
        as_service(engine, "update public.segmentation_results set status = cast(:s as public.segmentation_status), "
                           "mask_image_url = case when :s = 'done' then 'https://img.example/m.png' end "
                           "where id = :id", {"s": status, "id": result_id})
    return str(result_id)


def create_orphan_auth_user(settings: Settings) -> str:
    user_id = str(uuid.uuid4())
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        conn.execute("insert into auth.users (id, aud, role, email, created_at, updated_at) "
                     "values (%s, 'authenticated', 'authenticated', %s, now(), now())",
                     (user_id, f"orphan-{user_id[:8]}@example.com"))
        conn.execute("delete from public.users_profile where id = %s", (user_id,))
    return user_id
