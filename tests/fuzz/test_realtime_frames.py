"""Property-based Phoenix frames against a live /realtime/v1/websocket: well-formed joins with random configs,
bindings of the wrong types, tokens, garbage, deep nesting, NULs — in both serializations. Whatever comes in, the
socket still answers a heartbeat or closes with a code that names a client problem (never 1011, the server's
failure), no traceback is logged, and the API stays healthy. Seeded like test_http.py (FUZZ_SEED, FUZZ_EXAMPLES)."""
from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.fuzz import FUZZ_EXAMPLES, FUZZ_SEED, FUZZ_SHRINK, frames
from tests.support.logs import LogWindow

# Normal, going away, protocol error, unsupported data, invalid payload (e.g. not UTF-8), policy, too big.
CLIENT_PROBLEM_CLOSE_CODES = {1000, 1001, 1002, 1003, 1007, 1008, 1009}
HEARTBEAT_REF = "fuzz-heartbeat"


def heartbeat(vsn: str) -> str:
    if vsn == "2.0.0":
        return json.dumps([None, HEARTBEAT_REF, "phoenix", "heartbeat", {}])
    return json.dumps({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": HEARTBEAT_REF})


def is_heartbeat_reply(raw: str | bytes) -> bool:
    try:
        frame = json.loads(raw)
    except ValueError:
        return False
    if isinstance(frame, list):
        return len(frame) == 5 and frame[1] == HEARTBEAT_REF
    return isinstance(frame, dict) and frame.get("ref") == HEARTBEAT_REF


@pytest.mark.xdist_group("fuzz")
@pytest.mark.parametrize("vsn", ["1.0.0", "2.0.0"])
def test_no_frame_breaks_a_socket_or_the_api(fuzz_stack, vsn: str) -> None:
    identities = fuzz_stack.identities
    url = (f"ws://127.0.0.1:{fuzz_stack.api.port}/realtime/v1/websocket?apikey={quote(identities.anon_key)}"
           f"&vsn={vsn}")

    @seed(FUZZ_SEED)
    @settings(max_examples=FUZZ_EXAMPLES * 2, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), print_blob=False,
              phases=[Phase.explicit, Phase.generate, *([Phase.shrink] if FUZZ_SHRINK else [])])
    @given(st.lists(frames(identities), min_size=1, max_size=4))
    def run(sent: list[str]) -> None:
        window = LogWindow(fuzz_stack.api)
        context = f"FUZZ_SEED={FUZZ_SEED} vsn={vsn} frames:\n" + "\n".join(f"  {frame[:300]!r}" for frame in sent)
        with connect(url, open_timeout=30, close_timeout=5, max_size=None) as ws:
            try:
                for frame in sent:
                    ws.send(frame)
                ws.send(heartbeat(vsn))
                while not is_heartbeat_reply(ws.recv(timeout=30)):
                    pass
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
                assert code in CLIENT_PROBLEM_CLOSE_CODES, f"closed with {code} {closed.rcvd}:\n{context}"
        assert window.tracebacks() == [], f"a traceback was logged:\n{context}\n{window.tracebacks()}"

    run()
    assert httpx.get(f"{fuzz_stack.api.url}/healthz", timeout=30).status_code == 200
