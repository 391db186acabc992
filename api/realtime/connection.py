"""One WebSocket: reads client frames in the request greenlet, writes every frame from a writer greenlet fed by a
bounded queue, so a slow or stuck client only ever fills its own queue (and is closed when it overflows).

An idle joined socket is the unit of realtime capacity (docs/REALTIME.md, "Memory per socket"), so it holds one
greenlet and no more: the request greenlet reads the socket itself (simple-websocket's reader thread is not
started, see `NoReaderThread`), and the writer greenlet exists only while frames are waiting to be written."""
from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter, deque
from typing import Any

import redis
from simple_websocket import ConnectionClosed
from wsproto.events import BytesMessage, TextMessage
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from api.identity import TokenError, resolve_caller
from api.realtime import bindings, broadcast, join_config, protocol, recovery
from api.realtime.channels import Channel
from api.realtime.hub import Hub
from api.realtime.limits import (
    MAX_PRESENCE_BYTES,
    REFUSED_SOCKET_SECONDS,
    TOO_MANY_CHANNELS,
    TOO_MANY_FOR_USER,
    TOO_MANY_JOINS,
    TOO_MANY_MESSAGES,
    TRACK_TOO_LARGE,
    Admission,
    TokenBucket,
)
from db import realtime as realtime_db
from db.errors import is_unavailable
from db.uow import Caller
from observability.metrics import WS_CONNECTIONS, WS_DROPPED
from schemas.realtime import BroadcastEvent

log = logging.getLogger("segbase.realtime")

CLOSE_GRACE_SECONDS = 5.0
RECEIVE_BYTES = 4096  # simple-websocket's default read size
_CLOSE = object()
ALL_EXTENSIONS = frozenset(realtime_db.EXTENSIONS)  # what a public channel may read and write (one set for all)

TOKEN_ERROR_REASONS = {
    "malformed": "MalformedJWT: The token provided is not a valid JWT",
    "signature": "JwtSignatureError: Failed to validate JWT signature",
    "claims": "InvalidJWTToken: Fields `role` and `exp` are required in JWT",
    "session": "InvalidJWTToken: Session from session_id claim in JWT does not exist",
    "invalid_apikey": "InvalidJWTToken: Invalid API key",
    "missing_apikey": "InvalidJWTToken: No API key found in request",
}


def token_error_reason(exc: TokenError) -> str:
    if exc.kind == "expired":
        return "InvalidJWTToken: Token has expired"
    return TOKEN_ERROR_REASONS.get(exc.kind, f"InvalidJWTToken: {exc.message}")


class WholeFrameSocket:
    """The socket under a simple-websocket connection, made to write whole frames.

    simple-websocket 1.1.0 writes each frame with one `socket.send`, which writes only part of it when the
    client's receive window is full (miguelgrinberg/simple-websocket#45, fixed upstream after 1.1.0): the rest is
    lost and the client sees a corrupt stream. Here every `send` is a `sendall`, under one lock, so a pong or
    close frame written by the reading greenlet never lands inside a half-written frame of the writer."""

    __slots__ = ("_sock", "_lock")

    def __init__(self, sock) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def send(self, data: bytes, *flags: int) -> int:
        with self._lock:
            self._sock.sendall(data, *flags)
        return len(data)

    def send_now(self, data: bytes) -> int | None:
        """Write what the socket takes of `data` without waiting: None (nothing written) while another greenlet
        is writing; else how many bytes were written. Less than all of them leaves the lock held: the caller
        must then `finish` the frame."""
        # Not acquire(blocking=False): gevent's yields to other greenlets when the lock is taken.
        if self._lock.locked():
            return None
        self._lock.acquire()  # free: taken without waiting
        try:
            sent = self._sock.send(data, 0, 0.0)  # gevent: timeout 0 = raise instead of waiting
        except BlockingIOError:
            sent = 0
        except BaseException:
            self._lock.release()
            raise
        if sent == len(data):
            self._lock.release()
        return sent

    def finish(self, rest: memoryview) -> None:
        """Write the rest of a frame `send_now` began (waiting for the socket as long as it takes), then let other
        writers in."""
        try:
            self._sock.sendall(rest)
        finally:
            self._lock.release()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class NoReaderThread:
    """simple-websocket's `thread_class` for the realtime route: a thread that is never started.

    simple-websocket reads every socket in a thread (a greenlet under gevent) of its own and hands messages to
    `receive()` through an event; segbase's request greenlet already waits for each client frame, so it reads the
    socket itself (`Connection.receive`) and a socket keeps one greenlet instead of three (reader, request,
    writer): each parked greenlet holds a copy of its C stack, a few KiB per socket."""

    __slots__ = ("name",)

    def __init__(self, target=None) -> None:
        self.name = "realtime-reader"

    def start(self) -> None:
        pass


class NoEvent:
    """simple-websocket's `event_class` with no reader thread: `_handle_events` sets it, nothing waits on it."""

    __slots__ = ()

    def set(self) -> None:
        pass

    def clear(self) -> None:
        pass

    def wait(self, timeout: float | None = None) -> bool:
        return True


SERVER_OPTIONS = {"thread_class": NoReaderThread, "event_class": NoEvent}


def _spawn(function) -> None:
    """Run `function` in a new greenlet (a bare one: no Thread bookkeeping, nothing kept once it returns)."""
    from gevent import spawn_raw  # the realtime route only runs in gunicorn's gevent worker

    spawn_raw(function)


class Connection:
    # Thousands per process: no per-instance dict.
    __slots__ = ("ws", "hub", "vsn", "apikey", "admission", "settings", "queue", "channels", "users", "joins",
                 "messages", "closing", "close_reason", "_writing", "_writer_done", "_closed", "_read_eof", "_rest")

    def __init__(self, ws, hub: Hub, vsn: str, apikey: str, admission: Admission) -> None:
        ws.sock = WholeFrameSocket(ws.sock)
        self.ws = ws
        self.hub = hub
        self.vsn = vsn
        self.apikey = apikey
        self.admission = admission
        self.settings = hub.settings
        # Frames waiting for the writer greenlet, which runs only while there are some (`_writing`); made when the
        # first frame waits (an empty deque is ~0.7 KiB, and most frames to an idle socket never wait).
        self.queue: deque | None = None
        self.channels: dict[str, Channel] = {}
        # Channels per user on this socket: the socket counts once for each user it has a channel of.
        self.users: Counter[str] = Counter()
        self.joins = TokenBucket(self.settings.realtime_joins_per_second, self.settings.realtime_max_channels_per_socket)
        rate = self.settings.realtime_messages_per_second
        self.messages = TokenBucket(rate, max(1, int(rate)))
        self.closing = False
        self.close_reason: str | None = None
        self._writing = False
        self._writer_done: threading.Event | None = None  # made when someone waits for the writer to finish
        self._closed = False  # the close frame was queued: nothing is written after it
        self._read_eof = False  # the client's side has ended (close frame, EOF, protocol error)
        self._rest: memoryview | None = None  # the unwritten end of a frame `_write_now` began (the writer's first)

    # --- outgoing ---------------------------------------------------------------------------------------
    def push(self, frame: str | bytes) -> bool:
        """Queue a frame without ever blocking the caller; a full queue closes this socket with a reason."""
        if self.closing:
            return False
        if self.queue is not None and len(self.queue) >= self.settings.realtime_send_queue_size:
            WS_DROPPED.inc()
            self.abort(f"send queue overflowed ({self.settings.realtime_send_queue_size} frames): "
                       "the client is not reading fast enough")
            return False
        if not self._writing and self._write_now(frame):
            return True
        self._enqueue(frame)
        return True

    def _write_now(self, frame: str | bytes) -> bool:
        """Write a frame from the caller's greenlet when nothing is queued before it and the socket takes it at once
        (an idle socket's common case: no writer greenlet, no switch); what the socket does not take at once, the
        writer greenlet writes. False: nothing was written (queue the frame)."""
        ws = self.ws
        if not ws.connected:
            return False
        try:
            data = ws.ws.send(BytesMessage(data=frame) if isinstance(frame, bytes) else TextMessage(data=frame))
            sent = ws.sock.send_now(data)
        except (OSError, LocalProtocolError):
            self.closing = True  # the client is gone; the request greenlet sees it on its next read
            return True
        if sent is None:
            return False
        if sent < len(data):
            self._rest = memoryview(data)[sent:]
            self._writing = True
            _spawn(self._write_queued)
        return True

    def _enqueue(self, item) -> None:
        """Queue a frame (or the close) and make sure a writer greenlet is draining the queue."""
        if self._closed:
            return
        if isinstance(item, tuple) and item and item[0] is _CLOSE:
            self._closed = True
        if self.queue is None:
            self.queue = deque()
        self.queue.append(item)
        if not self._writing:
            self._writing = True
            _spawn(self._write_queued)

    def abort(self, reason: str, code: int = protocol.CLOSE_POLICY) -> None:
        """Drop what is queued, tell the client why (system message + close frame), force it after a grace."""
        if self.closing:
            return
        self.closing = True
        self.close_reason = reason
        log.warning("closing realtime socket: %s", reason)
        for channel in list(self.channels.values()):
            self.hub.unregister(channel)
        self.queue = None
        for channel in list(self.channels.values()):
            if self.queue is not None and len(self.queue) >= self.settings.realtime_send_queue_size - 1:
                break
            self._enqueue(protocol.encode(self.vsn, channel.topic, "system", protocol.system_payload(
                channel.topic, "error", reason, extension="system"), None, channel.join_ref))
        self._enqueue((_CLOSE, code, reason))
        _spawn(self._force_close)

    def _force_close(self) -> None:
        """A client that stopped reading blocks the writer's send: shut the TCP socket after a grace period."""
        time.sleep(CLOSE_GRACE_SECONDS)
        if self.ws.connected:
            try:
                self.ws.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _write_queued(self) -> None:
        """The writer greenlet: write queued frames in order until the queue is empty (or the close is sent)."""
        try:
            rest, self._rest = self._rest, None
            if rest is not None:
                self.ws.sock.finish(rest)
            while self.queue:  # read each time: abort() replaces the queue
                item = self.queue.popleft()
                if isinstance(item, tuple) and item and item[0] is _CLOSE:
                    self.queue = None
                    self.ws.close(reason=item[1], message=item[2][:120])
                    return
                self.ws.send(item)
        except (ConnectionClosed, OSError):
            self.closing = True
            self.queue = None
        except Exception:
            log.exception("realtime writer failed")
            self.closing = True
            self.queue = None
        finally:
            if not self.queue:
                self.queue = None
            self._writing = False
            if self._writer_done is not None:
                self._writer_done.set()

    def _wait_written(self, timeout: float) -> None:
        """Wait (up to `timeout`) until the writer greenlet has written what is queued."""
        if self._writing:
            self._writer_done = threading.Event()
            self._writer_done.wait(timeout)

    def send_reply(self, message: protocol.Message, status: str, response: dict[str, Any]) -> None:
        self.push(protocol.reply(self.vsn, message, status, response))

    def send_system(self, channel_topic: str, join_ref: str | None, status: str, text: str,
                    extension: str = "postgres_changes") -> None:
        self.push(protocol.encode(self.vsn, channel_topic, "system",
                                  protocol.system_payload(channel_topic, status, text, extension), None, join_ref))

    # --- lifecycle --------------------------------------------------------------------------------------
    def receive(self, timeout: float | None) -> str | bytes | None:
        """The next client message, or None after `timeout` seconds without one; ConnectionClosed once the client's
        side has ended. simple-websocket's reader thread, run in the request greenlet (see `NoReaderThread`):
        pings are answered, a close frame is answered and ends the socket, a message over the size limit is
        closed with 1009."""
        from gevent import Timeout  # the realtime route only runs in gunicorn's gevent worker

        ws = self.ws
        while not ws.input_buffer:
            if self._read_eof:
                raise ConnectionClosed(ws.close_reason, ws.close_message)
            data = None
            try:
                with Timeout(timeout, False):
                    data = ws.sock.recv(RECEIVE_BYTES)
                if data is None:
                    return None
                if not data:
                    raise OSError("the client closed the connection")
                ws.ws.receive_data(data)
                if not ws._handle_events():
                    self._read_eof = True
                    ws.connected = False
            except (OSError, LocalProtocolError, RemoteProtocolError):
                self._read_eof = True
                ws.connected = False
        return ws.input_buffer.pop(0)

    def serve(self) -> None:
        """The request greenlet: read and handle frames until the client leaves or stops heartbeating."""
        timeout = self.settings.realtime_heartbeat_timeout_seconds
        refused_until = time.monotonic() + REFUSED_SOCKET_SECONDS if self.admission.refused else None
        WS_CONNECTIONS.inc()
        self.hub.registry.add_socket(self)
        try:
            while not self.closing:
                if refused_until is not None:
                    text = self.receive(max(refused_until - time.monotonic(), 0))
                    if text is None:
                        self.abort(self.admission.refused or "", protocol.CLOSE_POLICY)
                        break
                else:
                    text = self.receive(timeout)
                if text is None:
                    if self.closing:
                        break
                    self.abort(f"heartbeat timeout: nothing received for {timeout} s", protocol.CLOSE_GOING_AWAY)
                    break
                try:
                    self.handle(text)
                except protocol.ProtocolError as exc:
                    log.info("refused a realtime frame: %s", exc.reason)
                except Exception:
                    log.exception("realtime frame handling failed")
                text = None  # not kept while waiting for the next frame (a join frame is ~1 KiB per idle socket)
        except ConnectionClosed:
            pass
        finally:
            WS_CONNECTIONS.dec()
            self.hub.registry.remove_socket(self)
            self.closing = True
            for channel in list(self.channels.values()):
                self._detach(channel)
            self._enqueue((_CLOSE, protocol.CLOSE_GOING_AWAY, self.close_reason or "bye"))
            self._wait_written(CLOSE_GRACE_SECONDS + 1)

    def handle(self, text: str | bytes) -> None:
        if isinstance(text, bytes) and text[:1] == bytes([broadcast.USER_BROADCAST_PUSH]):
            push = broadcast.decode_user_push(text, max_depth=self.settings.max_json_depth)
            channel = self.channels.get(push.message.topic)
            if channel is None:
                self.send_reply(push.message, "error", {"reason": "unmatched topic"})
                return
            if "persist" in push.metadata and channel.broadcast_ack:
                # realtime-js asks to store the message for replay; segbase stores only database and REST sends
                # (realtime.messages): say so rather than acknowledge a message that will not be replayed.
                self.send_reply(push.message, "error", {"error": "persist is not supported by segbase; send with "
                                                                 "realtime.send() or httpSend to store a message"})
                return
            self.broadcast(channel, push.message, lambda: broadcast.event_from_binary(
                push, channel.sub_topic, channel.private, max_depth=self.settings.max_json_depth))
            return
        try:
            message = protocol.decode(text, self.vsn, max_depth=self.settings.max_json_depth)
        except protocol.FrameRefused as exc:
            if exc.message.ref is not None:
                self.send_reply(exc.message, "error", {"reason": exc.reason})
            raise
        if message.topic == "phoenix":
            if message.event == "heartbeat":
                self.send_reply(message, "ok", {})
            return
        if message.event == "phx_join":
            self.join(message)
            return
        channel = self.channels.get(message.topic)
        if channel is None:
            if message.ref is not None:
                self.send_reply(message, "error", {"reason": "unmatched topic"})
            return
        if message.event == "phx_leave":
            self._detach(channel)
            self.send_reply(message, "ok", {})
            self.push(protocol.encode(self.vsn, channel.topic, "phx_close", {}, channel.join_ref, channel.join_ref))
        elif message.event == "access_token":
            self.swap_token(channel, message.payload.get("access_token"))
        elif message.event == "presence":
            self.presence(channel, message)
        elif message.event == "broadcast":
            self.broadcast(channel, message, lambda: broadcast.event_from_text(
                message.payload, channel.sub_topic, channel.private))
        elif message.ref is not None:
            # Supabase Realtime logs an unknown event and answers nothing (the client then times out after
            # 10 s); an error reply lets the client's push fail at once, naming the event.
            self.send_reply(message, "error", {"reason": f"UnknownEvent: {message.event!r} is not handled"})

    def presence(self, channel: Channel, message: protocol.Message) -> None:
        """`track` / `untrack` (dispatched on `payload.event`, as Supabase does), answered with a reply, which
        realtime-js's `track()` waits for."""
        action = message.payload.get("event")
        action = action.lower() if isinstance(action, str) else action
        if action not in ("track", "untrack"):
            self.send_reply(message, "error", {"reason": f"unknown presence event {action!r}; use track or untrack"})
            return
        if not self.messages.take():
            self.send_reply(message, "error", {"reason": TOO_MANY_MESSAGES})
            return
        if "presence" not in channel.writable:
            self.send_reply(message, "error", {"reason": "Unauthorized: You do not have permissions to track "
                                                         f"presence on this Channel topic: {channel.sub_topic}"})
            return
        try:
            if action == "untrack":
                self.hub.presence.untrack(channel)
            else:
                payload = message.payload.get("payload")
                if not isinstance(payload, dict):
                    self.send_reply(message, "error", {"reason": "Presence track payload must be a map"})
                    return
                if len(protocol.dumps(payload)) > MAX_PRESENCE_BYTES:
                    self.send_reply(message, "error", {"reason": TRACK_TOO_LARGE})
                    return
                self.hub.presence.track(channel, payload)
        except redis.RedisError as exc:
            log.warning("presence %s failed: Redis is unavailable (%s)", action, exc.__class__.__name__)
            self.send_reply(message, "error", {"reason": "UnableToTrackPresence: the presence store is unavailable"})
            return
        self.send_reply(message, "ok", {})

    def broadcast(self, channel: Channel, message: protocol.Message, build) -> None:
        """A member's broadcast push: to every member of the topic in every API process (itself too with
        `self: true`), then the `ack` reply if asked. A private channel needs RLS's insert on realtime.messages
        for `broadcast`; without it the message is dropped, and an `ack` push is told why."""
        if not self.messages.take():
            if channel.broadcast_ack:
                self.send_reply(message, "error", {"reason": TOO_MANY_MESSAGES})
            return
        if "broadcast" not in channel.writable:
            log.info("dropped a broadcast on %s: no write permission", channel.topic)
            if channel.broadcast_ack:
                self.send_reply(message, "error", {"reason": "Unauthorized: You do not have permissions to write "
                                                             f"to this Channel topic: {channel.sub_topic}"})
            return
        try:
            event: BroadcastEvent = build()
        except protocol.ProtocolError as exc:
            if channel.broadcast_ack:
                self.send_reply(message, "error", {"reason": exc.reason})
            raise
        if not channel.broadcast_self:
            event = event.model_copy(update={"exclude": (self.hub.process_id, channel.serial)})
        try:
            self.hub.publish(event)
        except redis.RedisError as exc:
            log.warning("a broadcast was not sent: Redis is unavailable (%s)", exc.__class__.__name__)
            if channel.broadcast_ack:
                self.send_reply(message, "error", {"reason": "UnableToBroadcast: the message bus is unavailable"})
            return
        if channel.broadcast_ack:
            self.send_reply(message, "ok", {})

    # --- channels ---------------------------------------------------------------------------------------
    def authorize(self, token: Any) -> tuple[Caller, float | None, str | None]:
        """The caller a join (or token swap) acts as; a null or `sb_` token means the socket's apikey."""
        bearer = token if isinstance(token, str) and token and not token.startswith("sb_") else None
        caller = resolve_caller(apikey=self.apikey, bearer=bearer, settings=self.settings, engine=self.hub.engine)
        claims = caller.claims
        exp = claims.get("exp")
        expires_at = float(exp) if isinstance(exp, (int, float)) else None
        if expires_at is not None and expires_at <= time.time():
            raise TokenError("expired", "JWT expired")
        session_id = claims.get("session_id") if caller.role == "authenticated" else None
        return caller, expires_at, (str(session_id) if session_id else None)

    def join(self, message: protocol.Message) -> None:
        topic = message.topic
        old = self.channels.get(topic)
        if old is not None:  # Phoenix replaces a duplicate join of the same topic
            self._detach(old)
        refused = self._join_refusal(topic)
        if refused is not None:
            self.send_reply(message, "error", {"reason": refused})
            return
        try:
            caller, expires_at, session_id = self.authorize(_access_token(message.payload))
            config = _config(message.payload)
            options = join_config.parse(config)
            subscriptions = self.hub.parse_bindings(config.get("postgres_changes"))
            readable, writable = self._access(caller, options.private, protocol.sub_topic(topic))
            if not readable:
                self.send_reply(message, "error", {"reason": _unauthorized_read(topic)})
                return
        except TokenError as exc:
            self.send_reply(message, "error", {"reason": token_error_reason(exc)})
            return
        except protocol.ProtocolError as exc:
            self.send_reply(message, "error", {"reason": exc.reason})
            return
        except Exception as exc:
            if is_unavailable(exc):  # refuse this join (the client retries), keep the socket
                log.warning("realtime join refused: the database is unavailable (%s)", exc.__class__.__name__)
                self.send_reply(message, "error", {"reason": "UnableToConnectToProject: the database is unavailable"})
            else:  # segbase's own fault: say so, so the client does not wait for a reply that never comes
                log.exception("realtime join failed")
                self.send_reply(message, "error", {"reason": "InternalServerError: the join failed"})
            return
        channel = Channel(self, topic, message.join_ref or message.ref, subscriptions, caller, expires_at, session_id,
                          private=options.private, broadcast_self=options.broadcast_self,
                          broadcast_ack=options.broadcast_ack, presence_enabled=options.presence_enabled,
                          presence_key=options.presence_key, readable=readable, writable=writable)
        recovering = options.changes_since is not None and bool(subscriptions)
        if options.replay is not None or recovering:
            channel.held = []  # live frames wait until the replay is sent
        if not self._attach(channel):
            self.send_reply(message, "error", {"reason": TOO_MANY_FOR_USER})
            return
        subscribed = self.hub.wait_subscribed()
        if options.replay is not None:
            try:
                stored = recovery.stored_broadcasts(self.hub, channel, options.replay)
            except Exception:
                log.exception("broadcast replay failed")
                self._detach(channel)
                self.send_reply(message, "error", {"reason": "UnableToReplayMessages: Realtime was unable to "
                                                             "replay messages"})
                return
        self.send_reply(message, "ok", bindings.join_response(subscriptions))
        if subscriptions:
            if subscribed:
                self.send_system(topic, channel.join_ref, "ok", "Subscribed to PostgreSQL")
            else:
                self.send_system(topic, channel.join_ref, "error", "Realtime is reconnecting to its event stream")
        if channel.presence_enabled and "presence" in channel.readable:
            try:
                state = self.hub.presence.state(channel.sub_topic, channel.private)
            except redis.RedisError as exc:
                log.warning("presence state unavailable (%s)", exc.__class__.__name__)
                state = {}
            self.push(protocol.encode(self.vsn, topic, "presence_state", state, None, channel.join_ref))
        if channel.held is not None:
            try:
                if options.replay is not None:
                    recovery.send_broadcasts(channel, stored)
                if recovering:
                    recovery.replay_changes(self.hub, channel, options.changes_since)
            except Exception:
                log.exception("postgres_changes recovery failed")
                self.send_system(topic, channel.join_ref, "error",
                                 "UnableToRecoverChanges: the changes since `since` could not be replayed; "
                                 "re-read the rows you show")
            finally:
                channel.release()

    def _access(self, caller: Caller, private: bool, sub_topic: str) -> tuple[frozenset[str], frozenset[str]]:
        """What the channel may read and write: everything on a public channel; on a private one what RLS on
        realtime.messages allows this caller (probed in one rolled-back transaction, cached on the channel
        until the next access_token)."""
        if not private:
            return ALL_EXTENSIONS, ALL_EXTENSIONS
        return realtime_db.channel_access(self.hub.engine, caller, sub_topic)

    def _join_refusal(self, topic: str) -> str | None:
        """Why a join is refused before looking at its token, or None."""
        if not topic.startswith(protocol.TOPIC_PREFIX):
            return "unmatched topic"
        if self.admission.refused:
            return self.admission.refused
        if len(self.channels) >= self.settings.realtime_max_channels_per_socket:
            return TOO_MANY_CHANNELS
        if not self.joins.take():
            return TOO_MANY_JOINS
        return None

    def _attach(self, channel: Channel) -> bool:
        """Register a joined channel; False (nothing registered) when it would take its user past their cap."""
        owner = channel.owner
        if owner is not None:
            if self.users[owner] == 0 and not self.hub.counts.add_user(owner):
                return False
            self.users[owner] += 1
        self.channels[channel.topic] = channel
        self.hub.register(channel)
        return True

    def _detach(self, channel: Channel, leaving: bool = True) -> None:
        """Forget a channel (left, ended, errored, replaced or its socket closed; `leaving=False`: re-indexed after
        a token swap, its presence stays); idempotent."""
        self.hub.unregister(channel)
        if leaving:
            self.hub.presence.untrack(channel)
        if self.channels.get(channel.topic) is not channel:
            return
        del self.channels[channel.topic]
        owner = channel.owner
        if owner is not None:
            self.users[owner] -= 1
            if self.users[owner] <= 0:
                del self.users[owner]
                self.hub.counts.remove_user(owner)

    def swap_token(self, channel: Channel, token: Any) -> None:
        """`access_token`: re-authorize the channel with the new token (no reply, as Realtime); a refused
        token ends the channel with a system error."""
        if not isinstance(token, str) or not token or token.startswith("sb_"):
            return
        try:
            caller, expires_at, session_id = self.authorize(token)
        except TokenError as exc:
            self.end_channel(channel, token_error_reason(exc))
            return
        if channel.private:  # RLS on realtime.messages is asked again, as the new caller
            try:
                readable, writable = self._access(caller, True, channel.sub_topic)
            except Exception:
                log.exception("re-authorizing a private channel failed")
                self.end_channel(channel, "UnableToConnectToProject: the channel could not be re-authorized")
                return
            if not readable:
                self.end_channel(channel, _unauthorized_read(channel.topic))
                return
            channel.readable, channel.writable = readable, writable
        self._detach(channel, leaving=False)
        channel.caller, channel.expires_at, channel.session_id = caller, expires_at, session_id
        if not self._attach(channel):
            self.end_channel(channel, TOO_MANY_FOR_USER)

    def end_channel(self, channel: Channel, reason: str) -> None:
        """End one channel the way Realtime does: a system error, then phx_close."""
        self._detach(channel)
        self.send_system(channel.topic, channel.join_ref, "error", reason, extension="system")
        self.push(protocol.encode(self.vsn, channel.topic, "phx_close", {}, channel.join_ref, channel.join_ref))

    def channel_errored(self, channel: Channel) -> None:
        """phx_error: the client rejoins (with backoff) and resynchronises."""
        self._detach(channel)
        self.push(protocol.encode(self.vsn, channel.topic, "phx_error", {}, channel.join_ref, channel.join_ref))


def _unauthorized_read(topic: str) -> str:
    return ("Unauthorized: You do not have permissions to read from this Channel topic: "
            f"{protocol.sub_topic(topic)} (no SELECT policy on realtime.messages lets this caller read it)")


def _access_token(payload: dict[str, Any]) -> str | None:
    token = payload.get("access_token")
    if token is not None and not isinstance(token, str):
        raise protocol.ProtocolError("access_token must be a string or null")
    return token


def _config(payload: dict[str, Any]) -> dict[str, Any]:
    config = payload.get("config")
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise protocol.ProtocolError("config must be an object")
    return config
