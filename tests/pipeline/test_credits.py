"""Credits in PostgreSQL, whatever the path: the reservation at submit (race-safe), the status machine for every
role, exactly one charge when service_role sets `done` through plain SQL or the data API (/rest/v1), and the
release on `error`. Plus /functions/v1/credit-check over HTTP."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy.exc import DBAPIError

from db.uow import Caller, unit_of_work
from tests.support.factories import create_user
from tests.support.pipeline import (
    MASK_URL,
    balances,
    figures,
    submit_results,
    user_caller,
)


def sqlstate_and_hint(exc: DBAPIError) -> tuple[str, str]:
    return exc.orig.sqlstate, exc.orig.diag.message_hint


def as_service(engine, statement: str, params: dict | None = None) -> None:
    with unit_of_work(engine, Caller.service()) as uow:
        uow.execute(statement, params)


def set_status(engine, result_id: str, status: str) -> None:
    as_service(engine, "update public.segmentation_results set status = cast(:s as public.segmentation_status), "
                       "mask_image_url = coalesce(mask_image_url, :mask) where id = :id",
               {"s": status, "mask": MASK_URL, "id": result_id})


def test_twenty_concurrent_submissions_with_credits_for_five_accept_exactly_five(settings, engine, db) -> None:
    price = settings.credits_per_segmentation
    user = create_user(settings, credits=5 * price)

    def submit(_: int) -> str:
        try:
            submit_results(engine, user, 1)
            return "accepted"
        except DBAPIError as exc:
            assert sqlstate_and_hint(exc) == ("PT402", "insufficient_credits")
            assert exc.orig.diag.message_primary.startswith("Insufficient credits: ")
            return "refused"

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(submit, range(20)))
    assert outcomes.count("accepted") == 5 and outcomes.count("refused") == 15
    in_flight = db.execute("select count(*), sum(price) from public.segmentation_results where user_id = %s "
                           "and status = 'pending'", (user.id,)).fetchone()
    assert in_flight == (5, 5 * price)
    assert balances(db, [user]) == {user.id: 5 * price}  # reserving does not spend


def test_error_releases_the_reservation_and_done_turns_it_into_the_charge(settings, engine, db) -> None:
    price = settings.credits_per_segmentation
    user = create_user(settings, credits=2 * price)
    first, second = submit_results(engine, user, 2)
    with pytest.raises(DBAPIError) as refused:
        submit_results(engine, user, 1)
    assert sqlstate_and_hint(refused.value) == ("PT402", "insufficient_credits")

    set_status(engine, first, "error")
    [third] = submit_results(engine, user, 1)  # the released reservation makes room
    set_status(engine, second, "processing")
    set_status(engine, second, "done")
    set_status(engine, third, "done")
    assert balances(db, [user]) == {user.id: 0}
    assert figures(db, [first, second, third]).charges == 2
    with pytest.raises(DBAPIError) as empty:
        submit_results(engine, user, 1)
    assert sqlstate_and_hint(empty.value) == ("PT402", "insufficient_credits")


def test_service_role_setting_done_by_plain_sql_charges_exactly_once(settings, engine, db) -> None:
    price = settings.credits_per_segmentation
    user = create_user(settings, credits=10)
    [result_id] = submit_results(engine, user, 1)
    for _ in range(3):
        set_status(engine, result_id, "done")  # repeated: a no-op for the status, never a second charge
    as_service(engine, "update public.segmentation_results set labels = '[{\"label\": \"dog\"}]' where id = :id",
               {"id": result_id})
    assert balances(db, [user]) == {user.id: 10 - price}
    charge = db.execute("select credits_used, metadata from public.usage_logs where user_id = %s",
                        (user.id,)).fetchall()
    assert charge == [(price, {"result_id": result_id, "source": "direct"})]


ILLEGAL = [("processing", "pending"), ("done", "processing"), ("done", "error"), ("done", "pending"),
           ("error", "done"), ("error", "processing")]


@pytest.mark.parametrize(("start", "target"), ILLEGAL, ids=[f"{a}->{b}" for a, b in ILLEGAL])
def test_an_illegal_transition_is_refused_for_service_role(settings, engine, db, start, target) -> None:
    user = create_user(settings, credits=5)
    [result_id] = submit_results(engine, user, 1)
    set_status(engine, result_id, start)
    credits_before = balances(db, [user])
    with pytest.raises(DBAPIError) as refused:
        set_status(engine, result_id, target)
    assert sqlstate_and_hint(refused.value) == ("PT409", "illegal_status_transition")
    assert refused.value.orig.diag.message_primary == f"Illegal status transition: {start} -> {target}"
    assert db.execute("select status::text from public.segmentation_results where id = %s",
                      (result_id,)).fetchone()[0] == start
    assert balances(db, [user]) == credits_before


def test_the_price_is_fixed_at_submit_and_a_result_inserted_done_is_charged_once(settings, engine, db) -> None:
    user = create_user(settings, credits=3)
    [result_id] = submit_results(engine, user, 1)
    with pytest.raises(DBAPIError) as refused:
        as_service(engine, "update public.segmentation_results set price = 0 where id = :id", {"id": result_id})
    assert sqlstate_and_hint(refused.value) == ("PT409", "price_immutable")
    with unit_of_work(engine, Caller.service()) as uow:
        inserted = uow.execute("insert into public.segmentation_results (user_id, source_image_url, status, "
                               "mask_image_url, price) values (:u, 'https://img.example/a.png', 'done', :m, 0) "
                               "returning id, price", {"u": user.id, "m": MASK_URL}).one()
    assert inserted.price == settings.credits_per_segmentation  # the trigger sets it, whatever was sent
    assert figures(db, [str(inserted.id)]).charges == 1
    assert balances(db, [user]) == {user.id: 3 - settings.credits_per_segmentation}


def test_a_user_cannot_choose_their_price(settings, engine) -> None:
    user = create_user(settings, credits=3)
    with pytest.raises(DBAPIError) as refused:
        with unit_of_work(engine, user_caller(user.id)) as uow:
            uow.execute("insert into public.segmentation_results (source_image_url, price) "
                        "values ('https://img.example/a.png', 0)")
    assert refused.value.orig.sqlstate == "42501"


# --- the same rules through the data API (/rest/v1, PostgREST's wire shape) ------------------------------------

def rest_headers(key: str, token: str | None = None) -> dict:
    return {"apikey": key, "Authorization": f"Bearer {token or key}", "Content-Type": "application/json",
            "Prefer": "return=representation"}


def test_service_role_patch_to_done_through_the_data_api_charges_once(settings, engine, api_server, service_key,
                                                                       db) -> None:
    price = settings.credits_per_segmentation
    user = create_user(settings, credits=4)
    [result_id] = submit_results(engine, user, 1)
    url = f"{api_server.url}/rest/v1/segmentation_results?id=eq.{result_id}"
    with httpx.Client(timeout=30) as http:
        for _ in range(3):
            response = http.patch(url, headers=rest_headers(service_key),
                                  json={"status": "done", "mask_image_url": MASK_URL, "labels": [{"label": "cat"}]})
            assert response.status_code == 200, response.text
            assert response.json()[0]["status"] == "done"
        illegal = http.patch(url, headers=rest_headers(service_key), json={"status": "processing"})
    assert illegal.status_code == 409, illegal.text
    assert illegal.json()["code"] == "illegal_status_transition"
    assert illegal.json()["message"] == "Illegal status transition: done -> processing"
    assert figures(db, [result_id]).charges == 1
    assert balances(db, [user]) == {user.id: 4 - price}


def test_twenty_concurrent_submissions_through_the_data_api_accept_exactly_five(settings, api_server, anon_key,
                                                                                db) -> None:
    price = settings.credits_per_segmentation
    user = create_user(settings, credits=5 * price)
    url = f"{api_server.url}/rest/v1/segmentation_results"
    with httpx.Client(timeout=30) as http, ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda n: http.post(url, headers=rest_headers(anon_key, user.access_token),
                                                      json={"source_image_url": f"https://img.example/{n}.png",
                                                            "text_prompt": "a cat"}), range(20)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 5 + [402] * 15, [r.text for r in responses if r.status_code not in (201, 402)]
    refusal = next(r.json() for r in responses if r.status_code == 402)
    assert refusal["code"] == "insufficient_credits"
    assert refusal["message"].startswith("Insufficient credits: ")
    assert db.execute("select count(*) from public.segmentation_results where user_id = %s",
                      (user.id,)).fetchone()[0] == 5


# --- /functions/v1/credit-check ----------------------------------------------------------------------------------

def test_credit_check_reports_balance_reservations_and_whether_a_job_fits(settings, engine, api_server) -> None:
    price = settings.credits_per_segmentation
    user = create_user(settings, credits=3 * price, tier="pro")
    submit_results(engine, user, 2)
    url = f"{api_server.url}/functions/v1/credit-check"
    auth = {"Authorization": f"Bearer {user.access_token}"}
    with httpx.Client(timeout=30) as http:
        for response in (http.get(url, headers=auth), http.post(url, headers=auth, json={})):
            assert response.status_code == 200, response.text
            assert response.headers["Content-Type"] == "application/json"
            assert response.json() == {"credits": 3 * price, "reserved": 2 * price, "available": price,
                                       "tier": "pro", "cost_per_segmentation": price, "can_submit": True}
        submit_results(engine, user, 1)
        full = http.get(url, headers=auth).json()
    assert (full["available"], full["can_submit"]) == (0, False)


def test_credit_check_refuses_like_verify_jwt(settings, api_server, anon_key) -> None:
    user = create_user(settings, credits=1)
    url = f"{api_server.url}/functions/v1/credit-check"
    cases = [
        ({}, {"msg": "Error: Missing authorization header"}),
        ({"Authorization": f"Token {user.access_token}"}, {"msg": "Error: Auth header is not 'Bearer {token}'"}),
        ({"Authorization": "Bearer not-a-jwt"}, {"msg": "Invalid JWT"}),
        ({"Authorization": f"Bearer {user.access_token[:-4]}AAAA"}, {"msg": "Invalid JWT"}),
    ]
    with httpx.Client(timeout=30) as http:
        for headers, body in cases:
            response = http.get(url, headers={"apikey": anon_key, **headers})
            assert (response.status_code, response.json()) == (401, body), headers
        api_key_only = http.post(url, headers={"apikey": anon_key, "Authorization": f"Bearer {anon_key}"})
    assert api_key_only.status_code == 401
    assert "access token" in api_key_only.json()["msg"]
