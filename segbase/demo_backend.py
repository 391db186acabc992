"""`segbase demo-backend`: a reference inference backend that runs out of the box, so a job goes pending →
processing → done with no other service.

Its "model" is a STAND-IN, not a segmentation model: it thresholds the image's grey levels at their mean with
Pillow. Everything around it is what a real backend does, and it talks to segbase only as any backend would, over
HTTP: it gets jobs by claim-jobs (DISPATCH_MODE=pull) or as signed Standard Webhooks POSTs on DEMO_BACKEND_PORT
(push), reports `processing`, downloads the source image from the job's URL, uploads the mask to the job's signed
upload URL (the `masks` bucket), and reports `done` with the mask's URL and labels — or `error` saying why.
"""
from __future__ import annotations

import io
import logging
import os
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from PIL import Image, ImageStat
from standardwebhooks import Webhook

from schemas.settings import Settings

log = logging.getLogger("segbase.demo_backend")

STAND_IN = "demo-threshold: a stand-in for a real segmentation model (grey levels above their mean)"
CONCURRENCY = 2
LEASE_SECONDS = 120
MAX_WAIT_SECONDS = 20
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000
MAX_MASK_SIDE = 2048
MAX_BODY_BYTES = 1024 * 1024
RETRY_SECONDS = 2.0


class JobFailedError(Exception):
    """The job cannot be done; the message is reported as the job's error."""


def stand_in_mask(image_bytes: bytes, prompt: str | None) -> tuple[bytes, list[dict[str, Any]]]:
    """The STAND-IN model: a black-and-white PNG of the pixels brighter than the image's mean grey, and one label
    with the share of such pixels as its score. Bounded: images over MAX_IMAGE_PIXELS are refused, masks are at
    most MAX_MASK_SIDE pixels a side."""
    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise JobFailedError(f"the image has more than {MAX_IMAGE_PIXELS} pixels")
            grey = image.convert("L")
    except (OSError, Image.DecompressionBombError, ValueError) as exc:
        raise JobFailedError(f"the source is not an image Pillow can read ({type(exc).__name__})") from exc
    grey.thumbnail((MAX_MASK_SIDE, MAX_MASK_SIDE))
    mean = ImageStat.Stat(grey).mean[0]
    mask = grey.point(lambda level: 255 if level > mean else 0)
    foreground = ImageStat.Stat(mask).mean[0] / 255
    out = io.BytesIO()
    mask.save(out, format="PNG")
    return out.getvalue(), [{"label": prompt or "object", "score": round(foreground, 4), "model": STAND_IN}]


class DemoBackend:
    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self.settings = settings
        self.stop = stop
        self.base = settings.public_url
        self.api_key = settings.webhook_api_keys[0]
        self.client = httpx.Client(timeout=30, follow_redirects=False)
        self.worker_id = f"demo-{socket.gethostname()}-{os.getpid()}"[:128]
        self.pool = ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="demo-job")
        self.busy = threading.Semaphore(CONCURRENCY)

    # --- talking to segbase ---------------------------------------------------------------------------------
    def report(self, job_id: str, status: str, **fields: Any) -> None:
        """POST process-webhook (X-API-Key, and a Standard Webhooks signature when WEBHOOK_SIGNING_SECRET is set);
        retried until segbase acknowledges it, with a webhook-id that makes a repeat a duplicate."""
        body = httpx.Request("POST", "/", json={"task_id": job_id, "status": status, **fields}).content
        message_id = f"demo_{job_id}_{status}"
        while True:
            headers = {"content-type": "application/json", "x-api-key": self.api_key, "webhook-id": message_id}
            if self.settings.webhook_signing_secret is not None:
                signer = Webhook(self.settings.webhook_signing_secret.get_secret_value())
                timestamp = datetime.now(timezone.utc)
                headers["webhook-timestamp"] = str(int(timestamp.timestamp()))
                headers["webhook-signature"] = signer.sign(message_id, timestamp, body.decode())
            try:
                response = self.client.post(f"{self.base}/functions/v1/process-webhook", content=body,
                                            headers=headers)
                if response.status_code < 500:
                    if response.status_code >= 400:
                        log.error("job %s: segbase refused the %s report: %s", job_id, status, response.text)
                    return
            except httpx.HTTPError as exc:
                log.warning("job %s: reporting %s failed (%s); retrying", job_id, status, type(exc).__name__)
            if self.stop.wait(RETRY_SECONDS):
                return

    def download(self, url: str) -> bytes:
        with self.client.stream("GET", url) as response:
            if response.status_code != 200:
                raise JobFailedError(f"downloading the source image answered HTTP {response.status_code}")
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > MAX_IMAGE_BYTES:
                    raise JobFailedError(f"the source image is larger than {MAX_IMAGE_BYTES} bytes")
            return bytes(data)

    def upload(self, url: str, mask: bytes) -> None:
        response = self.client.put(url, content=mask, headers={"content-type": "image/png"})
        if response.status_code not in (200, 201):
            raise JobFailedError(f"uploading the mask answered HTTP {response.status_code}: {response.text[:200]}")

    # --- one job --------------------------------------------------------------------------------------------
    def process(self, job: dict[str, Any]) -> None:
        job_id = job["job_id"]
        self.report(job_id, "processing", metadata={"model": STAND_IN, "worker": self.worker_id})
        try:
            if not job.get("mask_upload_url"):
                raise JobFailedError("the job has no mask upload URL (is segbase storage enabled?)")
            image = self.download(job["source_image_url"])
            mask, labels = stand_in_mask(image, job.get("text_prompt"))
            self.upload(job["mask_upload_url"], mask)
        except JobFailedError as exc:
            log.warning("job %s failed: %s", job_id, exc)
            self.report(job_id, "error", error=str(exc))
            return
        except httpx.HTTPError as exc:
            log.warning("job %s failed: %s", job_id, type(exc).__name__)
            self.report(job_id, "error", error=f"{type(exc).__name__} while fetching or storing")
            return
        mask_url = f"{self.base}/storage/v1/object/authenticated/{job['mask_path']}"
        self.report(job_id, "done", mask_url=mask_url, labels=labels)
        log.info("job %s done (%s)", job_id, STAND_IN.split(":")[0])

    def submit(self, job: dict[str, Any]) -> None:
        def run() -> None:
            try:
                self.process(job)
            except Exception:  # noqa: BLE001 — one job's bug must not stop the backend
                log.exception("job %s: unexpected failure", job.get("job_id"))
            finally:
                self.busy.release()
        self.pool.submit(run)

    # --- pull -----------------------------------------------------------------------------------------------
    def run_pull(self) -> None:
        log.info("demo backend (pull) claiming jobs from %s as %s", self.base, self.worker_id)
        while not self.stop.is_set():
            self.busy.acquire()
            free = 1
            while free < CONCURRENCY and self.busy.acquire(blocking=False):
                free += 1
            try:
                response = self.client.post(
                    f"{self.base}/functions/v1/claim-jobs", headers={"x-api-key": self.api_key},
                    json={"max": free, "lease_seconds": LEASE_SECONDS, "worker_id": self.worker_id,
                          "wait_seconds": min(MAX_WAIT_SECONDS, self.settings.dispatch_max_wait_seconds)},
                    timeout=MAX_WAIT_SECONDS + 30)
                jobs = response.json()["jobs"] if response.status_code == 200 else []
                if response.status_code != 200:
                    log.warning("claim-jobs answered %s: %s", response.status_code, response.text[:200])
                    self.stop.wait(RETRY_SECONDS)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                log.warning("claim-jobs failed (%s); retrying", type(exc).__name__)
                jobs = []
                self.stop.wait(RETRY_SECONDS)
            for job in jobs:
                self.submit(job)
            for _ in range(free - len(jobs)):
                self.busy.release()

    # --- push -----------------------------------------------------------------------------------------------
    def run_push(self) -> None:
        secret = self.settings.dispatch_signing_secret
        assert secret is not None, "DISPATCH_MODE=push needs DISPATCH_SIGNING_SECRET"
        verifier = Webhook(secret.get_secret_value())
        seen: set[str] = set()
        seen_lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 — the http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    return self.answer(413)
                body = self.rfile.read(length)
                try:
                    message = verifier.verify(body, {k.lower(): v for k, v in self.headers.items()})
                except Exception:  # noqa: BLE001 — any bad signature or header is a refusal
                    return self.answer(401)
                with seen_lock:
                    repeat = self.headers["webhook-id"] in seen
                    seen.add(self.headers["webhook-id"])
                if repeat:
                    return self.answer(200)  # already have it: same webhook-id on every attempt
                if not backend.busy.acquire(blocking=False):
                    with seen_lock:
                        seen.discard(self.headers["webhook-id"])
                    return self.answer(429, {"Retry-After": "5"})  # backpressure: segbase comes back later
                backend.submit(message["data"])
                self.answer(202)

            def answer(self, status: int, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((self.settings.api_host, self.settings.demo_backend_port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        log.info("demo backend (push) listening on http://%s:%d/ (set DISPATCH_URL to it)", self.settings.api_host,
                 self.settings.demo_backend_port)
        self.stop.wait()
        server.shutdown()
        server.server_close()

    def run(self) -> int:
        log.warning("the demo backend's model is a STAND-IN (%s), not a real segmentation model", STAND_IN)
        if self.settings.dispatch_mode == "pull":
            self.run_pull()
        elif self.settings.dispatch_mode == "push":
            self.run_push()
        else:
            log.error("DISPATCH_MODE is off: set DISPATCH_MODE=pull (or push) for the demo backend to get jobs")
            return 2
        self.pool.shutdown(wait=True)
        self.client.close()
        return 0


def run_demo_backend(settings: Settings) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return DemoBackend(settings, stop).run()
