"""Fixtures for the database tests: a small world of two users with rows in every table, set up through the real
paths (sign-up trigger, service_role writes through the status machine), and helpers that run one statement as a
caller the way the API does — on an `authenticator` connection, in a unit of work that is always rolled back."""
from __future__ import annotations

import pytest
from sqlalchemy import Engine

from schemas.settings import Settings
from tests.support.db import (
    World,
    as_service,
    create_orphan_auth_user,
    new_result,
)
from tests.support.console import make_operator
from tests.support.factories import create_user


@pytest.fixture(scope="module")
def world(settings: Settings, engine: Engine) -> World:
    owner = create_user(settings, credits=100, display_name="Owner")
    other = create_user(settings, credits=100, display_name="Other")
    owner_project = str(as_service(engine, "insert into public.projects (user_id, name) values (:u, 'mine') "
                                           "returning id", {"u": owner.id})[0][0])
    other_project = str(as_service(engine, "insert into public.projects (user_id, name) values (:u, 'theirs') "
                                           "returning id", {"u": other.id})[0][0])
    usage_log = str(as_service(engine, "insert into public.usage_logs (user_id, action, credits_used) "
                                       "values (:u, 'upload', 0) returning id", {"u": owner.id})[0][0])
    # The other user has a row in every table too, so listings show that RLS separates two populated owners.
    as_service(engine, "insert into public.usage_logs (user_id, action, credits_used) values (:u, 'upload', 0)",
               {"u": other.id})
    new_result(engine, other.id, other_project, path=("processing", "done"))
    return World(
        owner=owner,
        other=other,
        owner_project=owner_project,
        other_project=other_project,
        done_result=new_result(engine, owner.id, owner_project, path=("processing", "done")),
        error_result=new_result(engine, owner.id, owner_project, path=("error",)),
        pending_result=new_result(engine, owner.id, owner_project),
        processing_result=new_result(engine, owner.id, owner_project, path=("processing",)),
        usage_log=usage_log,
        orphan_auth_user=create_orphan_auth_user(settings),
        credit_grant=_grant(settings, engine, owner.id, other.id),
    )


def _grant(settings: Settings, engine: Engine, owner_id: str, other_id: str) -> str:
    """Credit grants to both users through the console's function; returns the owner's."""
    operator = make_operator(settings, engine)
    grants = [str(as_service(engine, "select grant_id from internal.grant_credits(:op, :u, 5, 'welcome')",
                             {"op": operator.id, "u": user_id})[0][0]) for user_id in (owner_id, other_id)]
    return grants[0]
