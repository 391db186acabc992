"""Presence across two API processes: presence_state on join, presence_diff on track, update and untrack with the
shapes the clients merge, and the members of a killed process leave once their Redis entries expire."""
from __future__ import annotations

import uuid

import pytest

from tests.support.processes import ApiProcess
from tests.support.realtime import PhoenixSocket


def event_is(name: str):
    return lambda m: m["event"] == name


@pytest.fixture
def two_processes(settings):
    quick = settings.model_copy(update={"realtime_presence_ttl_seconds": 5})
    first, second = ApiProcess(quick), ApiProcess(quick)
    try:
        first.start()
        second.start()
        yield first, second
    finally:
        first.stop()
        second.stop()


def track(sock: PhoenixSocket, topic: str, payload) -> dict:
    ref = sock.send(topic, "presence", {"type": "presence", "event": "track", "payload": payload},
                    join_ref=sock.join_refs[topic])
    return sock.wait(lambda m: m["event"] == "phx_reply" and m["ref"] == ref)["payload"]


def test_presence_state_and_diffs_across_processes_and_a_crashed_process_leaves(two_processes, anon_key):
    first, second = two_processes
    room = f"realtime:lobby-{uuid.uuid4().hex[:6]}"
    ada = PhoenixSocket(first.url, anon_key, "2.0.0")
    bob = PhoenixSocket(second.url, anon_key, "1.0.0")
    try:
        assert ada.join(room, [], None, presence={"key": "ada", "enabled": True})["payload"]["status"] == "ok"
        assert ada.wait(event_is("presence_state"))["payload"] == {}
        assert track(ada, room, {"name": "Ada"}) == {"status": "ok", "response": {}}
        joined = ada.wait(event_is("presence_diff"))["payload"]  # the tracker receives its own diff too
        assert joined["leaves"] == {} and joined["joins"]["ada"]["metas"][0]["name"] == "Ada"
        first_ref = joined["joins"]["ada"]["metas"][0]["phx_ref"]

        assert bob.join(room, [], None, presence={"key": "bob", "enabled": True})["payload"]["status"] == "ok"
        state = bob.wait(event_is("presence_state"))["payload"]
        assert state == {"ada": {"metas": [{"name": "Ada", "phx_ref": first_ref}]}}
        assert track(bob, room, {"name": "Bob"})["status"] == "ok"
        assert ada.wait(event_is("presence_diff"))["payload"]["joins"]["bob"]["metas"][0]["name"] == "Bob"

        # An identical re-track changes nothing; a changed one is a leave and a join of the key.
        assert track(ada, room, {"name": "Ada"})["status"] == "ok"
        assert track(ada, room, {"name": "Ada L"})["status"] == "ok"
        update = bob.wait(lambda m: m["event"] == "presence_diff" and "ada" in m["payload"]["joins"])["payload"]
        assert update["leaves"]["ada"]["metas"][0]["phx_ref"] == first_ref
        assert update["joins"]["ada"]["metas"][0]["phx_ref_prev"] == first_ref
        assert update["joins"]["ada"]["metas"][0]["name"] == "Ada L"

        bad = track(bob, room, "not a map")
        assert bad["status"] == "error" and "map" in bad["response"]["reason"]

        ref = ada.send(room, "presence", {"type": "presence", "event": "untrack"}, join_ref=ada.join_refs[room])
        assert ada.wait(lambda m: m["event"] == "phx_reply" and m["ref"] == ref)["payload"]["status"] == "ok"
        left = bob.wait(lambda m: m["event"] == "presence_diff" and "ada" in m["payload"]["leaves"])["payload"]
        assert left["joins"] == {}

        # The second process dies without a word: its member leaves once its entry expires.
        second.kill()
        gone = ada.wait(lambda m: m["event"] == "presence_diff" and "bob" in m["payload"]["leaves"], timeout=40)
        assert gone["payload"]["leaves"]["bob"]["metas"][0]["name"] == "Bob"
        fresh = PhoenixSocket(first.url, anon_key, "1.0.0")
        try:
            assert fresh.join(room, [], None, presence={"key": "", "enabled": True})["payload"]["status"] == "ok"
            assert fresh.wait(event_is("presence_state"))["payload"] == {}
        finally:
            fresh.close()
    finally:
        ada.close()
        bob.close()


def test_leaving_a_channel_untracks(api_server, anon_key):
    room = f"realtime:lobby-{uuid.uuid4().hex[:6]}"
    stays, goes = PhoenixSocket(api_server.url, anon_key, "1.0.0"), PhoenixSocket(api_server.url, anon_key, "2.0.0")
    try:
        assert stays.join(room, [], None, presence={"key": "s", "enabled": True})["payload"]["status"] == "ok"
        assert goes.join(room, [], None, presence={"key": "g", "enabled": True})["payload"]["status"] == "ok"
        assert track(goes, room, {"at": 1})["status"] == "ok"
        stays.wait(lambda m: m["event"] == "presence_diff" and "g" in m["payload"]["joins"])
        goes.close()
        stays.wait(lambda m: m["event"] == "presence_diff" and "g" in m["payload"]["leaves"])
    finally:
        stays.close()
