"""Realtime fixtures: a live relay beside the session's API, users, and a raw Phoenix socket for wire tests."""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from db.migrate import libpq_url
from schemas.settings import Settings
from tests.factories import TestUser, create_user
from tests.processes import SegbaseProcess, wait_for


def wait_relay_active(relay: SegbaseProcess, timeout: float = 30) -> None:
    wait_for(lambda: "relay active" in relay.log_text() or not relay.alive(), timeout, message="relay active")
    assert relay.alive(), relay.log_text()


@pytest.fixture(scope="session")
def relay(settings: Settings) -> Iterator[SegbaseProcess]:
    """The session's `segbase relay` (fault tests start their own after stopping nothing of this one)."""
    process = SegbaseProcess(settings, "relay").start()
    wait_relay_active(process)
    yield process
    process.stop()


@pytest.fixture
def user(settings: Settings) -> TestUser:
    return create_user(settings, credits=50)


@pytest.fixture
def other_user(settings: Settings) -> TestUser:
    return create_user(settings, credits=50)


def insert_result(settings: Settings, owner: str, *, status: str = "pending", prompt: str = "a cat") -> str:
    """A segmentation_results row written as service_role (the way the pipeline writes)."""
    result_id = str(uuid.uuid4())
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        with conn.transaction():
            conn.execute("set local role service_role")
            conn.execute("insert into public.segmentation_results (id, user_id, source_image_url, text_prompt, status) "
                         "values (%s, %s, 'https://example.com/a.png', %s, %s)", (result_id, owner, prompt, status))
    return result_id


def service_sql(settings: Settings, statement: str, params: tuple = ()) -> None:
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        with conn.transaction():
            conn.execute("set local role service_role")
            conn.execute(statement, params)


class PhoenixSocket:
    """A raw Phoenix client over `websockets`, speaking either serializer, for wire-level tests."""

    def __init__(self, base_url: str, apikey: str, vsn: str = "1.0.0") -> None:
        self.vsn = vsn
        url = base_url.replace("http://", "ws://") + f"/realtime/v1/websocket?apikey={apikey}&vsn={vsn}"
        self.ws = connect(url, open_timeout=10, max_size=2**22)
        self._ref = 0
        self.inbox: list[dict[str, Any]] = []

    def close(self) -> None:
        self.ws.close()

    def next_ref(self) -> str:
        self._ref += 1
        return str(self._ref)

    def send(self, topic: str, event: str, payload: dict, ref: str | None = None, join_ref: str | None = None) -> str:
        ref = ref if ref is not None else self.next_ref()
        if self.vsn == "2.0.0":
            self.ws.send(json.dumps([join_ref, ref, topic, event, payload]))
        else:
            self.ws.send(json.dumps({"topic": topic, "event": event, "payload": payload, "ref": ref,
                                     "join_ref": join_ref}))
        return ref

    def _normal(self, raw: str) -> dict[str, Any]:
        value = json.loads(raw)
        if self.vsn == "2.0.0":
            assert isinstance(value, list) and len(value) == 5, raw
            return {"join_ref": value[0], "ref": value[1], "topic": value[2], "event": value[3],
                    "payload": value[4], "raw": raw}
        assert set(value) == {"topic", "event", "payload", "ref"}, raw
        return {**value, "raw": raw}

    def recv(self, timeout: float = 10) -> dict[str, Any]:
        return self._normal(self.ws.recv(timeout=timeout))

    def wait(self, predicate, timeout: float = 15) -> dict[str, Any]:
        """The first message (buffered or new) satisfying predicate; others stay buffered."""
        for index, message in enumerate(self.inbox):
            if predicate(message):
                return self.inbox.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching frame within {timeout}s; got {self.inbox}")
            try:
                message = self.recv(remaining)
            except TimeoutError:
                continue
            if predicate(message):
                return message
            self.inbox.append(message)

    def drain(self, seconds: float) -> list[dict[str, Any]]:
        """Everything that arrives within `seconds` (plus what was buffered)."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                self.inbox.append(self.recv(remaining))
            except (TimeoutError, ConnectionClosed):
                break
        found, self.inbox = self.inbox, []
        return found

    def join(self, topic: str, bindings: list[dict], access_token: str | None) -> dict[str, Any]:
        ref = self.next_ref()
        payload: dict[str, Any] = {"config": {"broadcast": {"ack": False, "self": False},
                                              "presence": {"key": "", "enabled": False},
                                              "postgres_changes": bindings, "private": False}}
        if access_token is not None:
            payload["access_token"] = access_token
        self.send(topic, "phx_join", payload, ref=ref, join_ref=ref)
        return self.wait(lambda m: m["event"] == "phx_reply" and m["ref"] == ref)


def changes(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["event"] == "postgres_changes"]
