"""The reference for the realtime benches: the barest flask-sock server under the same gunicorn + gevent.

`/echo` echoes frames (idle-connection memory reference); `/fanout` forwards every message published on the Redis
channel BARE_CHANNEL to each open socket, with no routing, no auth and no per-socket queue (latency reference).

    gunicorn -k gevent -w 1 --worker-connections 20000 -b 127.0.0.1:PORT bench.realtime_bare_server:app
"""
from __future__ import annotations

import os
import threading

import redis
from flask import Flask, request
from flask_sock import Sock

app = Flask(__name__)
sock = Sock(app)
_sockets: set = set()
_started = threading.Lock()
_running = False


def _forward() -> None:
    pubsub = redis.Redis.from_url(os.environ.get("BARE_REDIS_URL", "redis://127.0.0.1:6379/1")).pubsub(
        ignore_subscribe_messages=True)
    pubsub.subscribe(os.environ.get("BARE_CHANNEL", "bench:bare"))
    for message in pubsub.listen():
        for ws in list(_sockets):
            try:
                ws.send(message["data"].decode())
            except Exception:
                _sockets.discard(ws)


@app.before_request
def decline_compression() -> None:
    """Plain frames, as segbase's endpoint answers (api/realtime decline_compression): the same wire work."""
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


@sock.route("/echo")
def echo(ws) -> None:
    while True:
        ws.send(ws.receive())


@sock.route("/fanout")
def fanout(ws) -> None:
    global _running
    with _started:
        if not _running:
            _running = True
            threading.Thread(target=_forward, daemon=True).start()
    _sockets.add(ws)
    try:
        while ws.receive() is not None:
            pass
    finally:
        _sockets.discard(ws)


@app.get("/healthz")
def healthz():
    return "ok"
