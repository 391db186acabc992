"""Realtime helpers: a raw Phoenix socket, the relay, and results written as a user or as service_role."""
from __future__ import annotations

import fcntl
import json
import struct
import termios
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from db.uow import Caller, unit_of_work
from db.urls import libpq_url
from schemas.settings import Settings
from tests.support.factories import TestUser
from tests.support.pipeline import event_body, post_event
from tests.support.processes import SegbaseProcess, wait_for


def wait_relay_active(relay: SegbaseProcess, timeout: float = 30) -> None:
    wait_for(lambda: "relay active" in relay.log_text() or not relay.alive(), timeout, message="relay active")
    assert relay.alive(), relay.log_text()


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

    def __init__(self, base_url: str, apikey: str, vsn: str = "1.0.0", headers: dict[str, str] | None = None) -> None:
        self.vsn = vsn
        url = base_url.replace("http://", "ws://") + f"/realtime/v1/websocket?apikey={apikey}&vsn={vsn}"
        self.ws = connect(url, open_timeout=10, max_size=2**22, additional_headers=headers)
        self._ref = 0
        self.inbox: list[dict[str, Any]] = []
        self.join_refs: dict[str, str] = {}

    def close(self) -> None:
        self.ws.close()

    def unread_bytes(self) -> int:
        """Bytes the kernel holds for this client that nobody has read yet (FIONREAD)."""
        return struct.unpack("i", fcntl.ioctl(self.ws.socket.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]

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

    def _normal(self, raw: str | bytes) -> dict[str, Any]:
        if isinstance(raw, bytes):  # realtime-js's binary USER_BROADCAST (kind 4)
            assert raw[0] == 4, raw
            t, e, m, enc = raw[1], raw[2], raw[3], raw[4]
            o = 5
            topic = raw[o:o + t].decode()
            event = raw[o + t:o + t + e].decode()
            meta = raw[o + t + e:o + t + e + m]
            body = raw[o + t + e + m:]
            payload = {"type": "broadcast", "event": event, "payload": body if enc == 0 else json.loads(body)}
            if meta:
                payload["meta"] = json.loads(meta)
            return {"join_ref": None, "ref": None, "topic": topic, "event": "broadcast", "payload": payload,
                    "raw": raw, "binary": True}
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

    def join(self, topic: str, bindings: list[dict], access_token: str | None, **config: Any) -> dict[str, Any]:
        """Join as the clients do; `config` overrides parts of the join config (broadcast, presence, private)."""
        ref = self.next_ref()
        payload: dict[str, Any] = {"config": {"broadcast": {"ack": False, "self": False},
                                              "presence": {"key": "", "enabled": False},
                                              "postgres_changes": bindings, "private": False, **config}}
        self.join_refs[topic] = ref
        if access_token is not None:
            payload["access_token"] = access_token
        self.send(topic, "phx_join", payload, ref=ref, join_ref=ref)
        return self.wait(lambda m: m["event"] == "phx_reply" and m["ref"] == ref)


def user_broadcast_push(join_ref: str, ref: str, topic: str, event: str, body: bytes, *, json_payload: bool = True,
                        metadata: bytes = b"") -> bytes:
    """realtime-js's binary broadcast push (kind 3), as `lib/serializer.ts` encodes `channel.send(...)`."""
    parts = [join_ref.encode(), ref.encode(), topic.encode(), event.encode(), metadata]
    return bytes([3, *(len(part) for part in parts), 1 if json_payload else 0]) + b"".join(parts) + body


def close_code(sock: PhoenixSocket, timeout: float = 30) -> tuple[int, str]:
    """Read until the server closes the socket; its close frame's code and reason."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                sock.recv(timeout=max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                continue
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, f"closed without a close frame: {closed}"
        return closed.rcvd.code, closed.rcvd.reason
    raise AssertionError(f"the server did not close the socket within {timeout}s")


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame (RFC 6455 §5.2) with any payload, valid or not, for what a library refuses to send."""
    mask = b"\x01\x02\x03\x04"
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    elif len(payload) < 2**16:
        head += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", len(payload))
    return head + mask + bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))


@contextmanager
def published_table(settings: Settings, name: str, ddl: str, *setup: str) -> Iterator[str]:
    """Create `public.<name>` with `ddl` (its column list and constraints) and the `setup` statements (`{t}` is the
    table), add it to the supabase_realtime publication the way a user does, and drop it afterwards."""
    table = f"public.{name}"
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        conn.execute(f"create table {table} ({ddl})")
        try:
            for statement in setup:
                conn.execute(statement.format(t=table))
            conn.execute(f"alter publication supabase_realtime add table {table}")
            yield table
        finally:
            conn.execute(f"drop table if exists {table} cascade")


def changes(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["event"] == "postgres_changes"]


def submit_as_user(engine, user: TestUser, result_id: str, prompt: str = "a cat") -> None:
    """Submit a result the way the data API does: as the user, under RLS and the reservation trigger."""
    caller = Caller("authenticated", {"sub": user.id, "role": "authenticated", "aud": "authenticated"})
    with unit_of_work(engine, caller) as uow:
        uow.execute(text("insert into public.segmentation_results (id, source_image_url, text_prompt) "
                         "values (cast(:id as uuid), 'https://img.example/in.png', :prompt)"),
                    {"id": result_id, "prompt": prompt})


def delete_as_user(engine, user: TestUser, result_id: str) -> None:
    caller = Caller("authenticated", {"sub": user.id, "role": "authenticated", "aud": "authenticated"})
    with unit_of_work(engine, caller) as uow:
        assert uow.execute(text("delete from public.segmentation_results where id = cast(:id as uuid)"),
                           {"id": result_id}).rowcount == 1


def job_lifecycle(settings: Settings, engine, api_url: str, user: TestUser, watched: str) -> str:
    """What the issue's client tests watch: a rolled-back submission (delivers nothing), an unwatched result,
    then `watched` submitted by the user, moved to processing and done by process-webhook + the worker (which
    charges the credit), and deleted by the user. Returns the unwatched result's id."""
    with pytest.raises(RuntimeError):
        with psycopg.connect(libpq_url(settings.database_url)) as conn:
            conn.execute("insert into public.segmentation_results (id, user_id, source_image_url, text_prompt) "
                         "values (%s, %s, 'https://img.example/in.png', 'rolled back')", (str(uuid.uuid4()), user.id))
            raise RuntimeError("roll back")
    unwatched = str(uuid.uuid4())
    submit_as_user(engine, user, unwatched, prompt="not watched")
    submit_as_user(engine, user, watched, prompt="watched")

    def status_is(wanted: str):
        with psycopg.connect(libpq_url(settings.database_url)) as conn:
            row = conn.execute("select status::text from public.segmentation_results where id = %s",
                               (watched,)).fetchone()
        return row and row[0] == wanted

    with httpx.Client(timeout=30) as client:
        for status in ("processing", "done"):
            response = post_event(client, api_url, event_body(watched, status))
            assert response.status_code in (200, 202), response.text
            wait_for(lambda: status_is(status), 60, interval=0.1, message=f"result {status}")
    delete_as_user(engine, user, watched)
    return unwatched
