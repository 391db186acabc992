"""A minimal Supabase Realtime subscriber for the benchmarks: asyncio + websockets, vsn 1.0.0 frames, one channel
with one postgres_changes binding per socket (what supabase-js sends, without the client's own overhead)."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import websockets

HEARTBEAT_SECONDS = 25


def websocket_url(api_url: str, anon_key: str) -> str:
    return api_url.replace("http://", "ws://", 1) + f"/realtime/v1/websocket?apikey={anon_key}&vsn=1.0.0"


async def subscribe(api_url: str, anon_key: str, token: str, user_id: str, topic: str,
                    event: str = "UPDATE", timeout: float = 60, binding: dict[str, Any] | None = None):
    """Open a socket, join `realtime:<topic>` for changes to the user's own results (or to `binding`); return the
    socket once the join is acknowledged."""
    ws = await websockets.connect(websocket_url(api_url, anon_key), max_queue=None, ping_interval=None,
                                  open_timeout=timeout, close_timeout=2)
    join = {"topic": f"realtime:{topic}", "event": "phx_join", "ref": "1", "join_ref": "1",
            "payload": {"config": {"broadcast": {"ack": False, "self": False}, "presence": {"key": ""},
                                   "postgres_changes": [binding or {"event": event, "schema": "public",
                                                                    "table": "segmentation_results",
                                                                    "filter": f"user_id=eq.{user_id}"}],
                                   "private": False},
                        "access_token": token}}
    await ws.send(json.dumps(join))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame.get("event") == "phx_reply" and frame.get("ref") == "1":
            status = frame["payload"].get("status")
            if status != "ok":
                await ws.close()
                raise RuntimeError(f"join refused: {frame['payload']}")
            return ws


def change_record(frame: dict[str, Any]) -> dict[str, Any] | None:
    """The `record` of a postgres_changes frame, else None."""
    if frame.get("event") != "postgres_changes":
        return None
    payload = frame.get("payload") or {}
    data = payload.get("data") or payload
    return data.get("record")


async def receive(ws, on_record: Callable[[dict[str, Any], float], None], clock: Callable[[], float]) -> None:
    """Call `on_record(record, received_at)` for every change until the socket closes; heartbeat meanwhile."""
    async def heartbeat() -> None:
        ref = 100
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            ref += 1
            await ws.send(json.dumps({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": str(ref)}))

    beat = asyncio.create_task(heartbeat())
    try:
        async for message in ws:
            received = clock()
            record = change_record(json.loads(message))
            if record is not None:
                on_record(record, received)
    except websockets.ConnectionClosed:
        pass
    finally:
        beat.cancel()
