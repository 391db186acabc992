"""Storage test helpers: raw /storage/v1 requests as the clients send them, real images, and a moto S3 server."""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass

import httpx
from PIL import Image

from tests.support.processes import ROOT, free_port, wait_for


def png_bytes(width: int = 32, height: int = 32, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def unique(prefix: str = "f") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class StorageHttp:
    """Requests with the headers supabase-js sends: apikey + Bearer (a user's token, else the key)."""

    url: str
    anon_key: str
    service_key: str
    http: httpx.Client

    def headers(self, token: str | None = None, *, service: bool = False, **extra: str) -> dict[str, str]:
        key = self.service_key if service else self.anon_key
        return {"apikey": key, "Authorization": f"Bearer {token or key}", **extra}

    def request(self, method: str, path: str, token: str | None = None, *, service: bool = False,
                headers: dict[str, str] | None = None, **kwargs) -> httpx.Response:
        return self.http.request(method, self.url + path,
                                 headers={**self.headers(token, service=service), **(headers or {})}, **kwargs)

    def upload(self, bucket: str, name: str, data: bytes, token: str | None = None, *, service: bool = False,
               content_type: str = "image/png", upsert: bool = False, method: str = "POST") -> httpx.Response:
        return self.request(method, f"/object/{bucket}/{name}", token, service=service, content=data,
                            headers={"Content-Type": content_type, "x-upsert": "true" if upsert else "false"})

    def download(self, bucket: str, name: str, token: str | None = None, *, service: bool = False,
                 **kwargs) -> httpx.Response:
        return self.request("GET", f"/object/authenticated/{bucket}/{name}", token, service=service, **kwargs)


class MotoServer:
    """moto's S3 in server mode, as a separate process on a free loopback port (a real S3-protocol server)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"moto server exited with {self.proc.returncode}")
            try:
                return httpx.get(f"{self.url}/moto-api/", timeout=2).status_code < 500
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=180, interval=0.2, message="moto server to start (a loaded machine imports slowly)")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


def run_node(script: str, config: dict) -> dict:
    """Run tests/node/<script> with one JSON argument; return the JSON object it prints."""
    completed = subprocess.run(["node", "--experimental-websocket", "--no-warnings", str(ROOT / "tests" / "node" / script), json.dumps(config)],
                               cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def child_pids(pid: int) -> list[int]:
    """Every descendant of `pid` (from /proc), e.g. a gunicorn master's workers under `segbase api`."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size (VmHWM)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def rss_growth_of_a_round_trip(server, settings, user, source_dir, size: int) -> dict[int, int]:
    """Upload then download a `size`-byte file through `server` (a started `segbase api`) as `user`, check the bytes
    came back whole, and return each API process's growth of peak RSS over the round trip (paths warmed up first)."""
    from api.tokens import api_key  # only here: the other helpers of this module need no keys

    headers = {"apikey": api_key(settings, "anon"), "Authorization": f"Bearer {user.access_token}"}
    source = source_dir / "big.png"
    digest = hashlib.sha256()
    with open(source, "wb") as out:
        block = os.urandom(1024 * 1024)
        for index in range(size // len(block)):
            chunk = block[:-4] + index.to_bytes(4, "big")
            digest.update(chunk)
            out.write(chunk)
    base = f"{server.url}/storage/v1/object/images/{user.id}"
    workers = child_pids(server.pid)
    with httpx.Client(timeout=600) as http:
        http.post(f"{base}/warm.png", content=b"\x89PNG" * 1000,
                  headers={**headers, "Content-Type": "image/png"}).raise_for_status()
        http.get(f"{base}/warm.png", headers=headers).raise_for_status()
        before = {pid: peak_rss_bytes(pid) for pid in workers}
        with open(source, "rb") as body:
            up = http.post(f"{base}/big.png", content=body, headers={**headers, "Content-Type": "image/png"})
        assert up.status_code == 200, up.text
        received = hashlib.sha256()
        with http.stream("GET", f"{base}/big.png", headers=headers) as down:
            assert down.status_code == 200
            for chunk in down.iter_bytes():
                received.update(chunk)
    assert received.hexdigest() == digest.hexdigest()
    return {pid: peak_rss_bytes(pid) - before[pid] for pid in workers}
