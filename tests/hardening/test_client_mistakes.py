"""What only a client's input can cause is a 400 without a traceback, wherever it surfaces: PostgreSQL's data
exceptions (class 22), a value psycopg refuses to send (a NUL), text that cannot be encoded (a lone surrogate),
input nested past Python's recursion limit. Anything else is still a 500 with an error id and a logged traceback."""
from __future__ import annotations

import logging

import psycopg
import pytest
from sqlalchemy.exc import DataError as SADataError

from api import create_app
from tests.support.database import make_test_settings


def raise_from_database(sql: str):
    def view():
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres") as conn:
            conn.execute(sql)
    return view


@pytest.fixture(scope="module")
def client():
    app = create_app(make_test_settings("postgresql://postgres@127.0.0.1:5432/postgres", "tmistakes"))
    app.add_url_rule("/probe/cast", "cast", raise_from_database("select 'abc'::uuid"))
    app.add_url_rule("/probe/nul", "nul", lambda: psycopg.connect(
        "postgresql://postgres@127.0.0.1:5432/postgres").execute("select %s", ("a\x00b",)))
    app.add_url_rule("/probe/range", "range", raise_from_database("select 2147483648::int4"))

    def wrapped():
        try:
            raise_from_database("select 'x'::int")()
        except psycopg.DataError as exc:
            raise SADataError("select", {}, exc) from exc
    app.add_url_rule("/probe/wrapped", "wrapped", wrapped)
    app.add_url_rule("/probe/surrogate", "surrogate", lambda: "\ud800".encode())
    app.add_url_rule("/probe/bug", "bug", lambda: {}["missing"])
    yield app.test_client()
    app.extensions["segbase"].engine.dispose()


@pytest.mark.parametrize("path", ["/probe/cast", "/probe/nul", "/probe/range", "/probe/wrapped", "/probe/surrogate"])
def test_a_client_mistake_is_400_without_a_traceback(client, caplog, path) -> None:
    with caplog.at_level(logging.INFO):
        response = client.get(path)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "invalid_input"
    assert [record for record in caplog.records if record.exc_info] == []


def test_a_bug_is_still_a_500_with_a_traceback(client, caplog) -> None:
    with caplog.at_level(logging.INFO):
        response = client.get("/probe/bug")
    assert response.status_code == 500
    assert response.get_json()["error"]["error_id"]
    assert any(record.exc_info for record in caplog.records)
