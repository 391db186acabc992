"""Object responses (authenticated, public, signed, rendered): streamed bytes with headers that keep an uploaded
file from ever acting as a page of the API's origin.

Every object response carries `X-Content-Type-Options: nosniff` and `Content-Security-Policy: default-src 'none';
sandbox`. HTML, XHTML and XML are served as `text/plain` (as Supabase Storage does), SVG as an attachment, so
neither a navigation nor an `<iframe>` runs a stored file's script with the API's cookies or origin. Range requests
(206/416), `ETag` + `If-None-Match` (304) and `?download[=name]` follow supabase/storage src/storage/renderer.

A file-backend blob read to its end is handed to the server's `wsgi.file_wrapper` (PEP 3333): `segbase api`
(gunicorn) then sends it with os.sendfile, without copying the bytes through Python (segbase/server.py).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from urllib.parse import quote

from flask import Request, Response

from db.storage.backends import READ_CHUNK_BYTES, FileChunks
from db.storage.errors import ErrorCode, StorageError
from db.storage.objects import StoredObject

SAFETY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
# Served as text/plain: a browser never parses them as markup on our origin.
MARKUP_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/xml", "application/xml", "text/xsl",
                          "application/xslt+xml", "text/xml-external-parsed-entity", "application/rss+xml",
                          "application/atom+xml", "application/mathml+xml", "text/vtt"})
ATTACHMENT_TYPES = frozenset({"image/svg+xml"})


def served_type(mimetype: str) -> tuple[str, bool]:
    """(Content-Type to send, whether to force an attachment) for a stored mimetype."""
    base = mimetype.split(";")[0].strip().lower()
    if base in MARKUP_TYPES or (base.endswith("+xml") and base not in ATTACHMENT_TYPES):
        return "text/plain; charset=utf-8", False
    if base in ATTACHMENT_TYPES:
        return base, True
    return mimetype, False


def content_disposition(filename: str | None) -> str:
    if not filename:
        return "attachment;"
    encoded = quote(filename, safe="")
    return f"attachment; filename={encoded}; filename*=UTF-8''{encoded}"


def with_safety_headers(response: Response) -> Response:
    for name, value in SAFETY_HEADERS.items():
        response.headers[name] = value
    return response


def choose_range(request: Request) -> Callable[[StoredObject], tuple[int, int | None]]:
    """The byte range a request asks for, resolved against the object's size (416 when unsatisfiable)."""
    def resolve(found: StoredObject) -> tuple[int, int | None]:
        if "Range" not in request.headers or _not_modified(request, found):
            return 0, None
        parsed = request.range
        if parsed is None:
            return 0, None  # an unparsable Range is ignored (RFC 9110 §14.2)
        ranges = parsed.range_for_length(found.size)
        if ranges is None:
            raise StorageError(416, ErrorCode.INVALID_RANGE, f"Range not satisfiable (object size {found.size})")
        return ranges
    return resolve


def _not_modified(request: Request, found: StoredObject) -> bool:
    tags = request.if_none_match
    return bool(tags) and (tags.contains_weak(found.etag.strip('"')) or "*" in tags)


def object_response(request: Request, found: StoredObject, chunks: Iterator[bytes], span: tuple[int, int | None],
                    *, download: str | None, content_type: str | None = None, etag: str | None = None,
                    size: int | None = None) -> Response:
    """Stream an object (or a range of it) with its caching, range and safety headers."""
    etag = etag or found.etag
    size = found.size if size is None else size
    if request.if_none_match and (request.if_none_match.contains_weak(etag.strip('"')) or "*" in request.if_none_match):
        _close(chunks)
        response = Response(status=304)
        response.headers["ETag"] = etag
        return with_safety_headers(response)
    mimetype, attachment = served_type(content_type or found.mimetype)
    start, end = span
    partial = "Range" in request.headers and (start, end) != (0, None) and request.range is not None
    length = (end if end is not None else size) - start
    body: Iterator[bytes] | list[bytes] = chunks
    if request.method == "HEAD":
        _close(chunks)
        body = []
    elif isinstance(chunks, FileChunks) and start + length == size and "wsgi.file_wrapper" in request.environ:
        # The file is positioned at `start` and read to its end: the server may send it straight from the file.
        body = request.environ["wsgi.file_wrapper"](chunks.file, READ_CHUNK_BYTES)
    response = Response(body, status=206 if partial else 200, direct_passthrough=True)
    response.headers["Content-Type"] = mimetype
    response.headers["Content-Length"] = str(length)
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = found.metadata.get("cacheControl") or "no-cache"
    last_modified = found.metadata.get("lastModified")
    if last_modified:
        response.headers["Last-Modified"] = _http_date(last_modified)
    if partial:
        response.headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    if download is not None:
        response.headers["Content-Disposition"] = content_disposition(download)
    elif attachment:
        response.headers["Content-Disposition"] = content_disposition(found.name.rsplit("/", 1)[-1])
    return with_safety_headers(response)


def _http_date(iso_value: str) -> str:
    try:
        parsed = datetime.fromisoformat(iso_value.replace("Z", "+00:00"))
    except ValueError:
        return iso_value
    return parsed.strftime("%a, %d %b %Y %H:%M:%S GMT")


def _close(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close:
        close()
