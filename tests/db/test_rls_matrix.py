"""The RLS matrix: table × command × caller, each cell run the way the API runs it (an `authenticator`
connection, `SET LOCAL ROLE`, `request.jwt.claims`) and rolled back, each asserting the exact outcome.

Outcomes: `n` — the statement returned/affected n rows (a 0 for UPDATE/DELETE also proves the row unchanged);
`PRIV` — 42501 from a missing privilege ("permission denied for table"); `RLS` — 42501 from a WITH CHECK
("new row violates row-level security policy"). docs/DATABASE.md shows this table.
"""
from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError

from tests.support.db import World, rolled_back, snapshot, sqlstate

PRIV = "permission denied"
RLS = "new row violates row-level security policy"
CALLERS = ("anon", "owner", "other", "service")

# (table, command) -> (statement, the column an UPDATE changes, outcome per caller in CALLERS order)
MATRIX: dict[tuple[str, str], tuple[str, str | None, tuple]] = {
    ("users_profile", "SELECT"): ("select id from public.users_profile where id = :target", None, (0, 1, 0, 1)),
    ("users_profile", "INSERT"): ("insert into public.users_profile (id, display_name) values (:new_profile, 'x')",
                                  None, (PRIV, PRIV, PRIV, 1)),
    ("users_profile", "UPDATE"): ("update public.users_profile set display_name = 'changed' where id = :target",
                                  "display_name", (PRIV, 1, 0, 1)),
    ("users_profile", "DELETE"): ("delete from public.users_profile where id = :target", None, (PRIV, PRIV, PRIV, 1)),
    ("projects", "SELECT"): ("select id from public.projects where id = :target", None, (0, 1, 0, 1)),
    ("projects", "INSERT"): ("insert into public.projects (user_id, name) values (:owner_id, 'new')",
                             None, (PRIV, 1, RLS, 1)),
    ("projects", "UPDATE"): ("update public.projects set name = 'changed' where id = :target",
                             "name", (PRIV, 1, 0, 1)),
    ("projects", "DELETE"): ("delete from public.projects where id = :target", None, (PRIV, 1, 0, 1)),
    ("segmentation_results", "SELECT"): ("select id from public.segmentation_results where id = :target",
                                         None, (0, 1, 0, 1)),
    ("segmentation_results", "INSERT"): (
        "insert into public.segmentation_results (user_id, project_id, source_image_url, text_prompt) "
        "values (:owner_id, :owner_project, 'https://img.example/new.png', 'a dog')", None, (PRIV, 1, RLS, 1)),
    ("segmentation_results", "UPDATE"): ("update public.segmentation_results set project_id = null where id = :target",
                                         "project_id", (PRIV, 1, 0, 1)),
    ("segmentation_results", "DELETE"): ("delete from public.segmentation_results where id = :target",
                                         None, (PRIV, 1, 0, 1)),
    ("usage_logs", "SELECT"): ("select id from public.usage_logs where id = :target", None, (0, 1, 0, 1)),
    ("usage_logs", "INSERT"): ("insert into public.usage_logs (user_id, action, credits_used) "
                               "values (:owner_id, 'upload', 0)", None, (PRIV, PRIV, PRIV, 1)),
    ("usage_logs", "UPDATE"): ("update public.usage_logs set metadata = '{\"edited\": true}' where id = :target",
                               "metadata", (PRIV, PRIV, PRIV, 1)),
    ("usage_logs", "DELETE"): ("delete from public.usage_logs where id = :target", None, (PRIV, PRIV, PRIV, 1)),
    # Written only by internal.grant_credits (with the balance and the audit row): not even service_role writes it.
    ("credit_grants", "SELECT"): ("select id from public.credit_grants where id = :target", None, (0, 1, 0, 1)),
    ("credit_grants", "INSERT"): ("insert into public.credit_grants (user_id, amount, reason, credits_after) "
                                  "values (:owner_id, 100, 'free money', 100)", None, (PRIV, PRIV, PRIV, PRIV)),
    ("credit_grants", "UPDATE"): ("update public.credit_grants set amount = 1000 where id = :target",
                                  "amount", (PRIV, PRIV, PRIV, PRIV)),
    ("credit_grants", "DELETE"): ("delete from public.credit_grants where id = :target", None,
                                  (PRIV, PRIV, PRIV, PRIV)),
}

CELLS = [
    pytest.param(table, command, caller, outcome, id=f"{table}-{command}-{caller}")
    for (table, command), (_, _, outcomes) in MATRIX.items()
    for caller, outcome in zip(CALLERS, outcomes)
]


def target_of(world: World, table: str) -> str:
    return {"users_profile": world.owner.id, "projects": world.owner_project,
            "segmentation_results": world.done_result, "usage_logs": world.usage_log,
            "credit_grants": world.credit_grant}[table]


@pytest.mark.parametrize(("table", "command", "caller", "outcome"), CELLS)
def test_matrix_cell(engine, world: World, table: str, command: str, caller: str, outcome) -> None:
    statement, changed_column, _ = MATRIX[(table, command)]
    target = target_of(world, table)
    params = {"target": target, "owner_id": world.owner.id, "owner_project": world.owner_project,
              # service_role may create the one profile that is missing; any other caller is refused before
              # uniqueness matters
              "new_profile": world.orphan_auth_user}

    def probe(uow):
        before = snapshot(uow, table, target)
        uow.execute("select set_config('role', :role, true)", {"role": world.caller(caller).role})
        result = uow.execute(statement, params)
        count = len(result.fetchall()) if command == "SELECT" else result.rowcount
        return count, before, snapshot(uow, table, target)

    if isinstance(outcome, int):
        count, before, after = rolled_back(engine, world.caller(caller), probe)
        assert count == outcome
        if command in ("UPDATE", "DELETE"):
            if outcome == 0:
                assert after == before, "a statement RLS filtered out must leave the row unchanged"
            elif command == "DELETE":
                assert after is None
            else:
                assert after[changed_column] != before[changed_column]
    else:
        with pytest.raises(DBAPIError) as raised:
            rolled_back(engine, world.caller(caller), probe)
        assert sqlstate(raised.value) == "42501"
        assert outcome in str(raised.value.orig)


def test_matrix_covers_every_table_command_and_caller() -> None:
    tables = {"users_profile", "projects", "segmentation_results", "usage_logs", "credit_grants"}
    assert set(MATRIX) == {(t, c) for t in tables for c in ("SELECT", "INSERT", "UPDATE", "DELETE")}


def matrix_markdown() -> str:
    """The matrix as the markdown table docs/DATABASE.md carries (`python -m tests.db.test_rls_matrix`)."""
    def cell(outcome) -> str:
        if outcome == PRIV:
            return "42501 (privilege)"
        if outcome == RLS:
            return "42501 (RLS WITH CHECK)"
        return f"{outcome} row" + ("" if outcome == 1 else "s")
    lines = ["| table | command | anon | owner | another user | service_role |", "|---|---|---|---|---|---|"]
    for (table, command), (_, _, outcomes) in MATRIX.items():
        lines.append(f"| {table} | {command} | " + " | ".join(cell(o) for o in outcomes) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(matrix_markdown())


OWNER_COLUMN = {"users_profile": "id", "projects": "user_id", "segmentation_results": "user_id",
                "usage_logs": "user_id", "credit_grants": "user_id"}


@pytest.mark.parametrize("table", list(OWNER_COLUMN))
@pytest.mark.parametrize("caller", CALLERS)
def test_an_unfiltered_listing_shows_only_what_the_caller_may_see(engine, world: World, table: str,
                                                                  caller: str) -> None:
    """`select *` with no filter, as a client's list call makes it: RLS alone narrows it."""
    owners = rolled_back(engine, world.caller(caller), lambda uow: {
        str(owner) for (owner,) in uow.execute(f"select {OWNER_COLUMN[table]} from public.{table}")})
    expected = {"anon": set(), "owner": {world.owner.id}, "other": {world.other.id}}.get(caller)
    if expected is None:  # service_role sees every user's rows
        assert {world.owner.id, world.other.id} <= owners
    else:
        assert owners == expected
