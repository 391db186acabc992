"""Image transformations, as Supabase's `/render/image/{authenticated|public|sign}/<bucket>/<path>` and the clients'
`transform` option: `width`, `height` (1–2500), `resize` = cover (default) | contain | fill, `quality` (20–100,
default 80), `format` = origin | webp | png | jpeg | avif (absent: WebP when the client accepts it, else the
source's format), with Pillow (supabase/supabase:apps/docs/content/guides/storage/serving/image-transformations.mdx).

Bounded: a source above STORAGE_RENDER_MAX_SOURCE_BYTES or STORAGE_RENDER_MAX_PIXELS is refused before it is
decoded; decoding and resizing run on a small pool of real threads, never on the gevent loop. Cached: blobs are
immutable, so a rendering is keyed by (version, parameters) and kept in a per-process LRU of
STORAGE_RENDER_CACHE_BYTES; its ETag lets browsers and CDNs cache it too.
"""
from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Request, Response, request
from PIL import Image, ImageOps, UnidentifiedImageError

from api.auth.passwords import gevent_is_active
from api.storage import bp
from api.storage.common import current_caller, download_param, names, store
from api.storage.errors import storage_errors
from api.storage.objects import public_object
from api.storage.responses import content_disposition, with_safety_headers
from db.storage import signing
from db.storage import store as storage
from db.storage.errors import ErrorCode, StorageError
from db.storage.objects import StoredObject
from db.uow import Caller

T = TypeVar("T")
MAX_DIMENSION = 2500
DEFAULT_QUALITY = 80
RENDER_THREADS = 2
FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp"),
           "avif": ("AVIF", "image/avif")}
PILLOW_TO_FORMAT = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "AVIF": "avif", "GIF": "png", "BMP": "png",
                    "TIFF": "png"}


@dataclass(frozen=True)
class RenderSpec:
    width: int | None
    height: int | None
    resize: str
    quality: int
    format: str  # origin | webp | png | jpeg | avif

    def claim(self) -> str:
        return f"width:{self.width},height:{self.height},resize:{self.resize},quality:{self.quality},format:{self.format}"


def _int_param(values: dict[str, str], name: str, low: int, high: int) -> int | None:
    raw = values.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(float(raw))
    except ValueError:
        raise StorageError(400, ErrorCode.INVALID_PARAMETER, f"{name} must be a number") from None
    if value <= 0 and name in ("width", "height"):
        return None
    return max(low, min(high, value))


def parse_spec(values: dict[str, str], accept: str) -> RenderSpec:
    resize = (values.get("resize") or "cover").lower()
    if resize not in ("cover", "contain", "fill"):
        raise StorageError(400, ErrorCode.INVALID_PARAMETER, "resize must be cover, contain or fill")
    fmt = (values.get("format") or "").lower()
    if fmt and fmt not in ("origin", *FORMATS):
        raise StorageError(400, ErrorCode.INVALID_PARAMETER, "format must be origin, webp, png, jpeg or avif")
    if not fmt:
        fmt = "webp" if "image/webp" in accept else "origin"
    if fmt == "avif" and "AVIF" not in Image.registered_extensions().values():
        fmt = "webp"  # this Pillow build cannot write AVIF
    return RenderSpec(width=_int_param(values, "width", 1, MAX_DIMENSION),
                      height=_int_param(values, "height", 1, MAX_DIMENSION), resize=resize,
                      quality=_int_param(values, "quality", 20, 100) or DEFAULT_QUALITY, format=fmt)


def spec_from_claim(claim: str, accept: str) -> RenderSpec:
    values = dict(part.split(":", 1) for part in claim.split(",") if ":" in part)
    return parse_spec({key: value for key, value in values.items() if value != "None"}, accept)


def render_image(data: bytes, spec: RenderSpec, max_pixels: int) -> tuple[bytes, str]:
    """Decode, transform and encode one image (runs on a pool thread); a file Pillow cannot decode (truncated,
    corrupt, not an image) is the client's 422, never a 500."""
    try:
        return _render(data, spec, max_pixels)
    except StorageError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        raise StorageError(422, ErrorCode.INVALID_REQUEST,
                           "the object is not an image segbase can transform") from None


def _render(data: bytes, spec: RenderSpec, max_pixels: int) -> tuple[bytes, str]:
    image = Image.open(io.BytesIO(data))
    if image.width * image.height > max_pixels:
        raise StorageError(413, ErrorCode.ENTITY_TOO_LARGE,
                           f"the image has {image.width}x{image.height} pixels; at most {max_pixels} are transformed")
    source_format = image.format or "PNG"
    image = ImageOps.exif_transpose(image)
    target = _target_size(image.size, spec)
    if target != image.size:
        if spec.resize == "fill" or not (spec.width and spec.height):
            image = image.resize(target, Image.Resampling.LANCZOS)
        elif spec.resize == "contain":
            image = ImageOps.contain(image, target, Image.Resampling.LANCZOS)
        else:
            image = ImageOps.fit(image, target, Image.Resampling.LANCZOS)
    fmt = PILLOW_TO_FORMAT.get(source_format, "png") if spec.format == "origin" else spec.format
    pillow_format, mimetype = FORMATS[fmt]
    if pillow_format == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    elif image.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
        image = image.convert("RGBA")
    out = io.BytesIO()
    options: dict[str, Any] = {"quality": spec.quality} if pillow_format in ("JPEG", "WEBP", "AVIF") else {}
    image.save(out, pillow_format, **options)
    return out.getvalue(), mimetype


def _target_size(size: tuple[int, int], spec: RenderSpec) -> tuple[int, int]:
    width, height = size
    if spec.width and spec.height:
        return spec.width, spec.height
    if spec.width:
        return spec.width, max(1, round(height * spec.width / width))
    if spec.height:
        return max(1, round(width * spec.height / height)), spec.height
    return width, height


class RenderCache:
    """Renderings by (version, spec), least recently used dropped first, at most `capacity` bytes."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self.items: OrderedDict[tuple[str, RenderSpec], tuple[bytes, str]] = OrderedDict()
        self.lock = threading.Lock()
        self.hits = 0

    def get(self, key: tuple[str, RenderSpec]) -> tuple[bytes, str] | None:
        with self.lock:
            found = self.items.get(key)
            if found is not None:
                self.items.move_to_end(key)
                self.hits += 1
            return found

    def put(self, key: tuple[str, RenderSpec], value: tuple[bytes, str]) -> None:
        size = len(value[0])
        if size > self.capacity:
            return
        with self.lock:
            if key in self.items:
                return
            self.items[key] = value
            self.used += size
            while self.used > self.capacity:
                _, (dropped, _) = self.items.popitem(last=False)
                self.used -= len(dropped)


class RenderPool:
    """A few real threads for Pillow (it releases the GIL while decoding and resampling)."""

    def __init__(self, threads: int) -> None:
        self.uses_gevent = gevent_is_active()
        if self.uses_gevent:
            from gevent.threadpool import ThreadPool  # only under gevent (see gevent_is_active)

            self.pool = ThreadPool(maxsize=threads)
        else:
            self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="render")

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.uses_gevent:
            return self.pool.apply(fn, args)
        return self.executor.submit(fn, *args).result()


_state: dict[str, Any] = {}


def _cache_and_pool() -> tuple[RenderCache, RenderPool]:
    if "pool" not in _state:
        _state["cache"] = RenderCache(store().settings.storage_render_cache_bytes)
        _state["pool"] = RenderPool(RENDER_THREADS)
    return _state["cache"], _state["pool"]


def rendered(req: Request, caller: Caller, found: StoredObject, spec: RenderSpec) -> Response:
    settings = store().settings
    if found.size > settings.storage_render_max_source_bytes:
        raise StorageError(413, ErrorCode.ENTITY_TOO_LARGE,
                           f"the image is larger than {settings.storage_render_max_source_bytes} bytes; "
                           "it cannot be transformed")
    etag = f'"{hashlib.sha256(f"{found.version}|{spec.claim()}".encode()).hexdigest()[:32]}"'
    if req.if_none_match and req.if_none_match.contains_weak(etag.strip('"')):
        response = Response(status=304)
        response.headers["ETag"] = etag
        return with_safety_headers(response)
    cache, pool = _cache_and_pool()
    key = (found.version or "", spec)
    result = cache.get(key)
    if result is None:
        found, _, chunks = storage.open_blob(store(), caller, found, lambda _: (0, None))
        data = b"".join(chunks)
        result = pool.run(render_image, data, spec, settings.storage_render_max_pixels)
        cache.put((found.version or "", spec), result)
    body, mimetype = result
    response = Response(b"" if req.method == "HEAD" else body, status=200, mimetype=mimetype)
    response.headers["Content-Length"] = str(len(body))
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = found.metadata.get("cacheControl") or "no-cache"
    download = download_param()
    if download is not None:
        response.headers["Content-Disposition"] = content_disposition(download)
    return with_safety_headers(response)


def _spec() -> RenderSpec:
    return parse_spec(request.args.to_dict(), request.headers.get("Accept", ""))


@bp.route("/render/image/authenticated/<bucket_id>/<path:name>", methods=["GET", "HEAD"])
@storage_errors()
def render_authenticated(bucket_id: str, name: str) -> Response:
    caller = current_caller()
    bucket_id, name = names(bucket_id, name)
    return rendered(request, caller, storage.find_visible(store(), caller, bucket_id, name), _spec())


@bp.route("/render/image/public/<bucket_id>/<path:name>", methods=["GET", "HEAD"])
@storage_errors()
def render_public(bucket_id: str, name: str) -> Response:
    return rendered(request, Caller.service(), public_object(bucket_id, name), _spec())


@bp.route("/render/image/sign/<bucket_id>/<path:name>", methods=["GET", "HEAD"])
@storage_errors()
def render_signed(bucket_id: str, name: str) -> Response:
    """The transform is the one baked into the token, whatever the query says (upstream's rule)."""
    bucket_id, name = names(bucket_id, name)
    claims = signing.verify(store().settings, request.args.get("token"), "download", bucket_id, name)
    accept = request.headers.get("Accept", "")
    spec = spec_from_claim(claims.get("transformations") or "", accept)
    found = storage.find_visible(store(), Caller.service(), bucket_id, name)
    return rendered(request, Caller.service(), found, spec)
