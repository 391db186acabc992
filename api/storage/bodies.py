"""Upload bodies as the three clients send them, streamed, never buffered whole.

- multipart/form-data (storage-js Blobs, storage3, Flutter): the first file part is the object whatever its field
  name (storage-js and Flutter name it "", storage3 "file"); `cacheControl`, `metadata`/`userMetadata` and
  `contentType` are read only from fields before it (supabase/storage src/storage/uploader.ts); the part's own
  Content-Type is the object's unless a `contentType` field said otherwise.
- anything else is the raw object (storage-js ArrayBuffer/Buffer/stream): `Content-Type`, `Cache-Control`
  verbatim, `x-metadata` = base64 of a JSON object.

Parsing uses werkzeug's sans-IO MultipartDecoder, so at most one read chunk is in memory.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import os
import select
from collections.abc import Callable, Iterator
from typing import Any

from flask import Request
from werkzeug.datastructures import Headers
from werkzeug.sansio.multipart import NEED_DATA, Data, Epilogue, Field, File, MultipartDecoder
from werkzeug.http import parse_options_header

from api.http import JsonInputError, parse_json
from api.services import services
from db.storage.errors import ErrorCode, StorageError, invalid_request
from db.storage.store import UploadBody

READ_CHUNK_BYTES = 4 * 1024 * 1024  # one read of an upload body (what an upload holds in memory, twice at most)
MAX_FIELD_BYTES = 1024 * 1024  # user metadata above 1 MiB is refused upstream too (MAX_CUSTOM_METADATA_SIZE)
MAX_FIELDS = 10  # upstream's multipart limit
MULTIPART_OVERHEAD_BYTES = MAX_FIELD_BYTES + 64 * 1024  # what a multipart body may add around the file
DEFAULT_RAW_CONTENT_TYPE = "application/octet-stream"
PIPE_BYTES = 1024 * 1024  # Linux's default pipe-max-size: one splice(2) step of an upload
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def wait_read(fd: int, timeout: float | None) -> None:
    """Wait until `fd` is readable: in gevent's event loop under `segbase api` (a patched `select` yields to other
    greenlets), a plain wait elsewhere."""
    if not select.select([fd], [], [], timeout)[0]:
        raise TimeoutError("the client sent nothing within the socket's timeout")


def is_multipart(request: Request) -> bool:
    return (request.mimetype or "").lower() == "multipart/form-data"


def _user_metadata(text: str | None, source: str) -> dict[str, Any] | None:
    if text is None or text == "":
        return None
    if len(text) > MAX_FIELD_BYTES:
        raise StorageError(413, ErrorCode.ENTITY_TOO_LARGE, f"{source} is larger than {MAX_FIELD_BYTES} bytes")
    try:
        value = parse_json(text, max_depth=services().settings.max_json_depth)
    except JsonInputError as exc:
        if exc.status == 422:  # a NUL or a lone surrogate: jsonb cannot hold it; name the field under its source
            raise JsonInputError(exc.problem, f"{source}.{exc.field}" if exc.field != "body" else source,
                                 exc.data["fields"][0]["message"]) from exc
        raise invalid_request(f"{source} must be a JSON object ({exc.data['fields'][0]['message']})") from exc
    if not isinstance(value, dict):
        raise invalid_request(f"{source} must be a JSON object")
    return value


class _DeclaredLengthBody:
    """A body with a Content-Length (already checked against the route's limit by `limit_body`), read straight from
    `wsgi.input` up to that length (PEP 3333 allows no more): werkzeug's LimitedStream would copy every chunk
    twice more (into a bytearray, then into bytes), a third of an upload's CPU."""

    def __init__(self, stream, length: int) -> None:
        self.stream = stream
        self.remaining = length

    def read(self, size: int) -> bytes:
        if self.remaining <= 0:
            return b""
        chunk = self.stream.read(min(size, self.remaining))
        self.remaining -= len(chunk)
        return chunk


class _SocketBody:
    """Under gunicorn, a body with a Content-Length read with `recv_into` straight from the client socket
    (`gunicorn.socket`) into the buffer handed to the blob writer: gunicorn's own body reader copies every chunk
    four more times through BytesIO buffers, most of an upload's remaining CPU. What gunicorn had already received
    past the headers is taken from its reader first, and its reader is told how much of the body is consumed, so
    the connection's next request starts where it should."""

    def __init__(self, body, reader, unreader, sock, length: int) -> None:
        self.body, self.reader, self.sock = body, reader, sock
        buffered = unreader.take_buffered()
        if len(buffered) > length:  # the client already sent its next request: give that back
            unreader.unread(buffered[length:])
            buffered = buffered[:length]
        self.buffered = buffered
        self.remaining = length

    @staticmethod
    def applies(request: Request) -> bool:
        """Whether the body is gunicorn's socket body as this code knows it (else it is read through wsgi.input)."""
        environ = request.environ
        body, sock = environ.get("wsgi.input"), environ.get("gunicorn.socket")
        reader = getattr(body, "reader", None)
        unreader = getattr(reader, "unreader", None)
        return not (request.content_length is None or sock is None or getattr(unreader, "sock", None) is not sock
                    or not hasattr(unreader, "take_buffered")
                    or getattr(reader, "length", None) != request.content_length or body.buf.tell())

    @classmethod
    def of(cls, request: Request) -> _SocketBody | None:
        """Take over the body (and what gunicorn buffered of it): only once it is about to be read, since a body
        left unread (an upload refused before streaming) is drained by gunicorn from what it still holds."""
        if not cls.applies(request):
            return None
        environ = request.environ
        body = environ["wsgi.input"]
        return cls(body, body.reader, body.reader.unreader, environ["gunicorn.socket"], request.content_length)

    def read(self, size: int) -> bytes | bytearray:
        if self.buffered:
            chunk, self.buffered = self.buffered, b""
        else:
            if self.remaining <= 0:
                return b""
            chunk = bytearray(min(size, self.remaining))
            view, received = memoryview(chunk), 0
            try:
                while received < len(chunk) and (count := self.sock.recv_into(view[received:])):
                    received += count
            except OSError:
                self.body.failed = True  # gunicorn then closes the connection instead of reading a next request
                raise
            if received < len(chunk):  # the client went away; the caller sees the body end short
                self.body.failed = True
                del chunk[received:]
        self.remaining -= len(chunk)
        self.reader.length -= len(chunk)
        return chunk

    def splice_into(self, fd: int, on_progress: Callable[[int], None]) -> int:
        """Move the rest of the body into the file `fd` with splice(2) through a pipe: the kernel moves the pages
        from the socket to the file, nothing is copied through Python. Waits for the socket in the event loop. A
        body that ends short (the client went away) is refused, as `_raw_chunks` refuses it."""
        declared = self.remaining
        moved = 0
        if self.buffered:  # what gunicorn received with the headers
            buffered, self.buffered = self.buffered, b""
            view = memoryview(buffered)
            while view:
                view = view[os.write(fd, view):]
            self.remaining -= len(buffered)
            self.reader.length -= len(buffered)
            moved = len(buffered)
            on_progress(moved)
        read_end, write_end = os.pipe()
        try:
            with contextlib.suppress(OSError):  # a bigger pipe means fewer calls; the default 64 KiB works too
                fcntl.fcntl(write_end, F_SETPIPE_SZ, PIPE_BYTES)
            sock_fd = self.sock.fileno()
            while self.remaining > 0:
                try:
                    in_pipe = os.splice(sock_fd, write_end, min(PIPE_BYTES, self.remaining))
                except BlockingIOError:
                    wait_read(sock_fd, timeout=self.sock.gettimeout())
                    continue
                except OSError:
                    self.body.failed = True  # gunicorn then closes the connection instead of reading a next request
                    raise
                if not in_pipe:
                    self.body.failed = True
                    break
                self.remaining -= in_pipe
                self.reader.length -= in_pipe
                while in_pipe:
                    done = os.splice(read_end, fd, in_pipe)
                    in_pipe -= done
                    moved += done
                on_progress(moved)
        finally:
            os.close(read_end)
            os.close(write_end)
        if self.remaining > 0:
            raise _ended_short(declared - self.remaining, declared)
        return moved


def body_stream(request: Request):
    """What an upload reads its body from: the socket itself under gunicorn, else `wsgi.input` when the length is
    declared, else werkzeug's stream (a chunked body, bounded by `request.max_content_length` as it arrives)."""
    if request.content_length is not None and "wsgi.input" in request.environ:
        return _SocketBody.of(request) or _DeclaredLengthBody(request.environ["wsgi.input"], request.content_length)
    return request.stream


class _SpliceSource:
    """The upload's socket body for a blob writer that moves it with splice(2), taken over only when it does."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def splice_into(self, fd: int, on_progress: Callable[[int], None]) -> int:
        body = _SocketBody.of(self.request)
        assert body is not None, "checked by raw_body"
        return body.splice_into(fd, on_progress)


def _raw_chunks(request: Request) -> Iterator[bytes]:
    stream = body_stream(request)
    received = 0
    while chunk := stream.read(READ_CHUNK_BYTES):
        received += len(chunk)
        yield chunk
    # gunicorn ends a body short, without an error, when the client disconnects: never store a truncated object.
    if request.content_length is not None and received != request.content_length:
        raise _ended_short(received, request.content_length)


def _ended_short(received: int, declared: int) -> StorageError:
    return invalid_request(f"the body ended after {received} of {declared} bytes (the client disconnected?)")


def raw_body(request: Request) -> UploadBody:
    encoded = request.headers.get("x-metadata")
    metadata_text = None
    if encoded:
        try:
            metadata_text = base64.b64decode(encoded, validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise invalid_request("x-metadata must be base64 of a JSON object") from exc
    splice = _SocketBody.applies(request)
    return UploadBody(content_type=request.headers.get("Content-Type") or DEFAULT_RAW_CONTENT_TYPE,
                      cache_control=request.headers.get("Cache-Control") or "no-cache",
                      user_metadata=_user_metadata(metadata_text, "x-metadata"),
                      chunks=_raw_chunks(request), socket_source=_SpliceSource(request) if splice else None)


class MultipartUpload:
    """Reads a multipart body up to the first file part's headers, then yields that part's bytes."""

    def __init__(self, request: Request) -> None:
        boundary = parse_options_header(request.headers.get("Content-Type", ""))[1].get("boundary")
        if not boundary:
            raise invalid_request("multipart/form-data without a boundary")
        self.stream = body_stream(request)
        # No decoder limits: they count file bytes too; fields are bounded below, the file by the route's limit.
        self.decoder = MultipartDecoder(boundary.encode("latin-1"))
        self.fields: dict[str, str] = {}
        self.file_headers: Headers | None = None
        self.file_done = False

    def _events(self):
        while True:
            event = self.decoder.next_event()  # ValueError once the input ended where more was needed
            if event is NEED_DATA:
                self.decoder.receive_data(self.stream.read(READ_CHUNK_BYTES) or None)
                continue
            yield event
            if isinstance(event, Epilogue):
                return

    def read_head(self) -> None:
        """Consume the fields before the file part and the file part's headers."""
        self.events = self._events()
        field_name: str | None = None
        field_value = bytearray()
        try:
            for event in self.events:
                if isinstance(event, Field):
                    if len(self.fields) >= MAX_FIELDS:
                        raise invalid_request(f"more than {MAX_FIELDS} form fields before the file")
                    field_name, field_value = event.name, bytearray()
                elif isinstance(event, File):
                    self.file_headers = event.headers
                    return
                elif isinstance(event, Data):
                    if field_name is not None:
                        field_value += event.data
                        if len(field_value) > MAX_FIELD_BYTES:
                            raise StorageError(413, ErrorCode.ENTITY_TOO_LARGE,
                                               f"form field {field_name!r} is larger than {MAX_FIELD_BYTES} bytes")
                        if not event.more_data:
                            self.fields[field_name] = field_value.decode("utf-8", "replace")
                            field_name = None
                elif isinstance(event, Epilogue):
                    break
        except ValueError as exc:  # werkzeug: malformed multipart, too many parts, field too large
            raise invalid_request(f"malformed multipart body: {exc}") from exc
        raise invalid_request("the multipart body has no file part")

    def chunks(self) -> Iterator[bytes]:
        try:
            for event in self.events:
                if isinstance(event, Data):
                    if event.data:
                        yield event.data
                    if not event.more_data:
                        self.file_done = True
                        break
        except ValueError as exc:
            raise invalid_request(f"malformed multipart body: {exc}") from exc
        if not self.file_done:
            raise invalid_request("the multipart body ended inside the file part")
        # Later parts are not part of the object; read them away (bounded by the route's body limit).
        while self.stream.read(READ_CHUNK_BYTES):
            pass


def multipart_body(request: Request) -> UploadBody:
    upload = MultipartUpload(request)
    upload.read_head()
    fields = upload.fields
    assert upload.file_headers is not None
    part_type = upload.file_headers.get("Content-Type")
    content_type = fields.get("contentType") or part_type or DEFAULT_RAW_CONTENT_TYPE
    cache_seconds = fields.get("cacheControl")
    cache_control = f"max-age={cache_seconds}" if cache_seconds else "no-cache"
    metadata_text = fields.get("metadata", fields.get("userMetadata"))
    return UploadBody(content_type=content_type, cache_control=cache_control,
                      user_metadata=_user_metadata(metadata_text, "metadata"), chunks=upload.chunks())


def upload_body(request: Request) -> UploadBody:
    return multipart_body(request) if is_multipart(request) else raw_body(request)
