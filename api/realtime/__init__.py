"""/realtime/v1/websocket — Supabase Realtime's Phoenix protocol (postgres_changes, Broadcast, Presence, private
channels) over flask-sock, and /realtime/v1/api/broadcast (`rest`).

One job per module: `protocol` the frames, `bindings` what a channel subscribes to, `channels` a joined channel
and the subscriber interface, `registry` this process's sockets and channels, `listener` the Redis subscription,
`sweeper` token expiry and revocation, `fanout` change → frames, `hub` puts them together per process,
`connection` one socket; `join_config`, `broadcast`, `presence`, `recovery` the rest of a channel. A new kind
of channel message goes in `connection` (reading) and its own module (what it does). Design and delivery
contract: docs/REALTIME.md.
"""
from __future__ import annotations

import resource

from flask import Flask, g, jsonify, request
from flask_sock import Sock

from api.auth.limits import client_ip
from api.identity import TokenError, resolve_caller
from api.realtime import protocol
from api.realtime.connection import SERVER_OPTIONS, Connection
from api.realtime.hub import Hub
from api.realtime.limits import ProcessFullError
from api.realtime.rest import bp as rest_bp
from api.services import services

WEBSOCKET_PATH = "/realtime/v1/websocket"


def hub() -> Hub:
    """This process's hub, created on first use (after gunicorn forked and gevent patched)."""
    svc = services()
    if svc.realtime is None:
        svc.realtime = Hub(svc.settings, svc.engine)
    return svc.realtime


def close_all_sockets(app: Flask, reason: str) -> int:
    """Close every realtime socket this process serves with 1001 going away (graceful shutdown: clients reconnect
    to another API process at once); returns how many."""
    svc = app.extensions.get("segbase")
    if svc is None or svc.realtime is None:
        return 0
    return svc.realtime.close_all(reason, protocol.CLOSE_GOING_AWAY)


def _apikey() -> str | None:
    return request.args.get("apikey") or request.headers.get("apikey") or request.headers.get("x-api-key")


def _before_upgrade():
    """Refuse a bad apikey or vsn with an HTTP error instead of the 101, as Realtime's endpoint does; otherwise
    prepare the environ flask-sock's handshake reads (no compression)."""
    if request.path != WEBSOCKET_PATH:
        return None
    vsn = request.args.get("vsn", protocol.VSN_OBJECTS)
    if vsn not in protocol.SUPPORTED_VSN:
        return jsonify(message=f"unsupported vsn {vsn!r}; use 1.0.0 or 2.0.0"), 400
    settings = services().settings
    try:
        resolve_caller(apikey=_apikey(), bearer=None, settings=settings)
    except TokenError as exc:
        return jsonify(message=exc.message), 401 if exc.kind == "missing_apikey" else 403
    try:
        g.realtime_admission = hub().counts.admit(client_ip(request.remote_addr,
                                                            request.headers.get("X-Forwarded-For"), settings))
    except ProcessFullError as exc:
        # Before the 101: a refused upgrade holds no connection, so HTTP keeps its reserve; clients retry later.
        response = jsonify(message=f"ConnectionRateLimitReached: {exc}")
        response.headers["Retry-After"] = "5"
        return response, 503
    decline_compression()
    return None


def _release_admission(_exc: BaseException | None) -> None:
    """The socket's slot is free once its request ends (closed socket, or an upgrade that never happened)."""
    admission = g.pop("realtime_admission", None)
    if admission is not None:
        hub().counts.release(admission)


def decline_compression() -> None:
    """Answer the upgrade without permessage-deflate, as Supabase Realtime does (Phoenix sockets default to
    `compress: false`; clients that offer it — browsers, supabase-py's `websockets` — fall back to plain frames).
    simple-websocket accepts any offered deflate, and compressing every frame was a third of the hub's CPU in
    the fan-out benchmark; without the client's offer in the environ there is nothing to accept."""
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


def raise_fd_limit() -> int:
    """Every idle socket is a file descriptor: lift this process's soft RLIMIT_NOFILE to its hard limit (the
    operator sets the hard limit, e.g. `LimitNOFILE=` in systemd or `ulimit -Hn`; see docs/REALTIME.md)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def init_app(app: Flask) -> None:
    """Register the WebSocket route."""
    raise_fd_limit()
    settings = app.extensions["segbase"].settings
    # simple-websocket closes the socket with 1009 "Message is too big" past this (counted as it arrives); it starts
    # no reader thread of its own (the connection's greenlet reads, see connection.NoReaderThread).
    app.config["SOCK_SERVER_OPTIONS"] = {"max_message_size": settings.realtime_max_message_bytes, **SERVER_OPTIONS}
    sock = Sock(app)
    app.register_blueprint(rest_bp, url_prefix="/realtime/v1")
    app.before_request(_before_upgrade)
    app.teardown_request(_release_admission)

    @sock.route(WEBSOCKET_PATH)
    def realtime_websocket(ws) -> None:
        Connection(ws, hub(), request.args.get("vsn", protocol.VSN_OBJECTS), _apikey() or "",
                   g.realtime_admission).serve()
