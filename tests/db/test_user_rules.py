"""Every abuse the original specification's policy table would allow is refused (42501, or a delete
that matches nothing), and the legitimate flows of a signed-in user and of service_role keep working."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy.exc import DBAPIError

from db.uow import Caller
from tests.support.db import (
    World,
    as_service,
    new_result,
    rolled_back,
    snapshot,
    sqlstate,
    user_caller,
)
from tests.support.factories import create_user

PRIV = "permission denied"
RLS = "new row violates row-level security policy"

ABUSES = {
    "raise own credits": ("update public.users_profile set credits = credits + 1000 where id = :me", PRIV),
    "change own tier": ("update public.users_profile set tier = 'enterprise' where id = :me", PRIV),
    "change own profile id": ("update public.users_profile set id = gen_random_uuid() where id = :me", PRIV),
    "forge profile timestamps": ("update public.users_profile set created_at = now() where id = :me", PRIV),
    "delete own profile": ("delete from public.users_profile where id = :me", PRIV),
    "re-create own profile": ("insert into public.users_profile (id, credits) values (:me, 1000)", PRIV),
    "upsert own profile": ("insert into public.users_profile (id, display_name) values (:me, 'x') "
                           "on conflict (id) do update set display_name = excluded.display_name", PRIV),
    "insert a usage log": ("insert into public.usage_logs (user_id, action, credits_used) "
                           "values (:me, 'upload', 0)", PRIV),
    "rewrite a usage log": ("update public.usage_logs set credits_used = 0 where id = :usage_log", PRIV),
    "delete a usage log": ("delete from public.usage_logs where id = :usage_log", PRIV),
    "truncate usage logs": ("truncate public.usage_logs", PRIV),
    "truncate results": ("truncate public.segmentation_results", PRIV),
    "set a result's status": ("update public.segmentation_results set status = 'done' where id = :pending", PRIV),
    "set a result's mask": ("update public.segmentation_results set mask_image_url = 'https://x/m.png' "
                            "where id = :pending", PRIV),
    "set a result's labels": ("update public.segmentation_results set labels = '[{\"a\": 1}]' where id = :done",
                              PRIV),
    "set a result's metadata": ("update public.segmentation_results set metadata = '{\"a\": 1}' where id = :done",
                                PRIV),
    "rewrite a result's input": ("update public.segmentation_results set source_image_url = 'https://x/b.png' "
                                 "where id = :done", PRIV),
    "hand a result to another user": ("update public.segmentation_results set user_id = :them where id = :done",
                                      PRIV),
    "insert a result already done": ("insert into public.segmentation_results (source_image_url, status) "
                                     "values ('https://x/a.png', 'done')", PRIV),
    "insert a result with a mask": ("insert into public.segmentation_results (source_image_url, mask_image_url) "
                                    "values ('https://x/a.png', 'https://x/m.png')", PRIV),
    "insert a result with labels": ("insert into public.segmentation_results (source_image_url, labels) "
                                    "values ('https://x/a.png', '[]')", PRIV),
    "insert a result with metadata": ("insert into public.segmentation_results (source_image_url, metadata) "
                                      "values ('https://x/a.png', '{}')", PRIV),
    "insert a result for another user": ("insert into public.segmentation_results (user_id, source_image_url) "
                                         "values (:them, 'https://x/a.png')", RLS),
    "insert a result into another user's project": (
        "insert into public.segmentation_results (project_id, source_image_url) "
        "values (:their_project, 'https://x/a.png')", RLS),
    "move a result into another user's project": (
        "update public.segmentation_results set project_id = :their_project where id = :done", RLS),
    "create a project for another user": ("insert into public.projects (user_id, name) values (:them, 'p')", RLS),
    "hand a project to another user": ("update public.projects set user_id = :them where id = :my_project", RLS),
    "forge project timestamps": ("update public.projects set created_at = now() where id = :my_project", PRIV),
}


def params(world: World) -> dict[str, str]:
    return {"me": world.owner.id, "them": world.other.id, "usage_log": world.usage_log,
            "pending": world.pending_result, "done": world.done_result, "my_project": world.owner_project,
            "their_project": world.other_project}


@pytest.mark.parametrize("abuse", list(ABUSES))
def test_abuse_is_refused(engine, world: World, abuse: str) -> None:
    statement, message = ABUSES[abuse]
    with pytest.raises(DBAPIError) as raised:
        rolled_back(engine, user_caller(world.owner.id), lambda uow: uow.execute(statement, params(world)))
    assert sqlstate(raised.value) == "42501"
    assert message in str(raised.value.orig)


@pytest.mark.parametrize("which", ["pending_result", "processing_result"])
def test_an_unfinished_result_cannot_be_deleted(engine, world: World, which: str) -> None:
    """Deleting a pending/processing result would dodge its charge: the delete policy matches nothing."""
    result_id = getattr(world, which)

    def probe(uow):
        before = snapshot(uow, "segmentation_results", result_id)
        uow.execute("select set_config('role', 'authenticated', true)")
        deleted = uow.execute("delete from public.segmentation_results where id = :id", {"id": result_id}).rowcount
        return deleted, before, snapshot(uow, "segmentation_results", result_id)

    deleted, before, after = rolled_back(engine, user_caller(world.owner.id), probe)
    assert deleted == 0
    assert after == before is not None


@pytest.mark.parametrize("which", ["done_result", "error_result"])
def test_a_finished_result_can_be_deleted_by_its_owner(engine, world: World, which: str) -> None:
    result_id = getattr(world, which)
    deleted = rolled_back(engine, user_caller(world.owner.id), lambda uow: uow.execute(
        "delete from public.segmentation_results where id = :id", {"id": result_id}).rowcount)
    assert deleted == 1


def test_a_signed_in_user_runs_the_seed_flows(settings, engine) -> None:
    """Create a project and a pending result (only the columns a client sends), edit the profile, rename the
    project, file the result elsewhere, delete the project (the result stays, unfiled)."""
    user = create_user(settings, credits=5)
    me = user_caller(user.id)

    def flow(uow):
        project = uow.execute("insert into public.projects (name, description) values ('cats', 'my cats') "
                              "returning id, user_id").one()
        assert str(project.user_id) == user.id
        result = uow.execute(
            "insert into public.segmentation_results (source_image_url, text_prompt, project_id) "
            "values ('https://img.example/cat.png', 'the cat', :p) returning id, user_id, status, mask_image_url, "
            "labels, metadata", {"p": project.id}).one()
        assert (str(result.user_id), result.status, result.mask_image_url) == (user.id, "pending", None)
        client_id = str(uuid.uuid4())
        with_id = uow.execute(
            "insert into public.segmentation_results (id, user_id, source_image_url, text_prompt, project_id) "
            "values (:id, :me, 'https://img.example/dog.png', 'the dog', null) returning id",
            {"id": client_id, "me": user.id}).scalar()
        assert str(with_id) == client_id
        assert uow.execute("update public.users_profile set display_name = 'New name', avatar_url = 'https://a/b.png' "
                           "where id = :me", {"me": user.id}).rowcount == 1
        assert uow.execute("update public.projects set name = 'felines', description = null where id = :p",
                           {"p": project.id}).rowcount == 1
        second = uow.execute("insert into public.projects (id, user_id, name) values (gen_random_uuid(), :me, "
                             "'second') returning id", {"me": user.id}).scalar()
        assert uow.execute("update public.segmentation_results set project_id = :p where id = :r",
                           {"p": second, "r": client_id}).rowcount == 1
        # PostgREST's upsert (merge-duplicates) of a project the user owns
        assert uow.execute("insert into public.projects (id, user_id, name) values (:p, :me, 'upserted') "
                           "on conflict (id) do update set id = excluded.id, user_id = excluded.user_id, "
                           "name = excluded.name", {"p": project.id, "me": user.id}).rowcount == 1
        assert uow.execute("delete from public.projects where id = :p", {"p": project.id}).rowcount == 1
        kept = uow.execute("select project_id, status from public.segmentation_results where id = :r",
                           {"r": result.id}).one()
        assert (kept.project_id, kept.status) == (None, "pending")
        profile = uow.execute("select display_name, avatar_url, credits, tier from public.users_profile").one()
        assert tuple(profile) == ("New name", "https://a/b.png", 5, "free")
        return True

    assert rolled_back(engine, me, flow)


def test_service_role_can_do_everything(settings, engine, world: World) -> None:
    """The pipeline and operators act as service_role (BYPASSRLS, all privileges)."""
    def flow(uow):
        uow.execute("update public.users_profile set credits = 7, tier = 'pro' where id = :u", {"u": world.other.id})
        result = uow.execute("insert into public.segmentation_results (user_id, project_id, source_image_url) "
                             "values (:u, :p, 'https://x/a.png') returning id",
                             {"u": world.other.id, "p": world.other_project}).scalar()
        uow.execute("update public.segmentation_results set status = 'processing', labels = '[{\"label\": \"cat\"}]', "
                    "metadata = '{\"model\": \"m\"}' where id = :r", {"r": result})
        uow.execute("insert into public.usage_logs (user_id, action, credits_used) values (:u, 'upload', 0)",
                    {"u": world.other.id})
        uow.execute("delete from public.usage_logs where user_id = :u", {"u": world.other.id})
        uow.execute("delete from public.segmentation_results where id = :r", {"r": world.pending_result})
        uow.execute("delete from public.users_profile where id = :u", {"u": world.other.id})
        return uow.execute("select count(*) from public.projects where user_id = :u", {"u": world.other.id}).scalar()

    assert rolled_back(engine, Caller.service(), flow) == 0


def test_a_result_submitted_by_service_role_for_a_user_is_theirs(engine, world: World) -> None:
    result_id = new_result(engine, world.other.id, None)
    try:
        seen = rolled_back(engine, user_caller(world.other.id), lambda uow: uow.execute(
            "select status from public.segmentation_results where id = :r", {"r": result_id}).scalar())
        assert seen == "pending"
    finally:
        as_service(engine, "update public.segmentation_results set status = 'error' where id = :r", {"r": result_id})
