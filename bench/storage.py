"""Storage throughput: upload and download MB/s of one large file through /storage/v1 (file backend), next to `cp`
of the same file on the same disk, in the same run. The client is curl (cheap: the server is what is measured);
the upload is a streamed POST of the file (`curl -T`), the download is written to a file on the same disk, as `cp`
writes its copy. Goal: each ≥ 0.5× of `cp`.

A 2xx upload is durable (fsynced), which `cp` is not, so the upload is also set against the same copy made durable
(`dd … conv=fsync`, the floor of any durable write on this disk). The API process tree's CPU time per transfer
(from /proc) separates segbase's own cost from the client's and the disk's; the load average is recorded, as
other work on the machine weighs on every figure.

    .venv/bin/python -m bench.run --only storage
"""
from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.stack import Stack
from tests.support.processes import ApiProcess
from tests.support.storage import child_pids

CHUNK = 1024 * 1024


def _write_file(path: Path, size: int) -> None:
    block = os.urandom(CHUNK)
    with open(path, "wb") as out:
        for index in range(size // CHUNK):
            out.write(block[:-8] + index.to_bytes(8, "big"))
        out.flush()
        os.fsync(out.fileno())


def _timed(command: list[str]) -> float:
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {completed.stderr.strip()[:300]}")
    return elapsed


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run(stack: Stack, *, size_mb: int = 100, repeats: int = 3) -> dict:
    size = size_mb * CHUNK
    work = Path(tempfile.mkdtemp(prefix="segbase-bench-storage-"))
    storage_dir = work / "storage"
    api = ApiProcess(stack.settings.model_copy(update={"storage_max_file_size": size + CHUNK,
                                                        "storage_dir": str(storage_dir)}), name="storage-api")
    api.start()
    try:
        source = work / "source.bin"
        _write_file(source, size)
        key = stack.service_key()
        headers = {"apikey": key, "Authorization": f"Bearer {key}"}
        bucket = f"bench-{uuid.uuid4().hex[:6]}"
        httpx.post(f"{api.url}/storage/v1/bucket", headers=headers, json={"id": bucket, "name": bucket},
                   timeout=30).raise_for_status()
        curl_headers = [arg for key, value in headers.items() for arg in ("-H", f"{key}: {value}")]
        api_pids = [api.pid, *child_pids(api.pid)]
        load_before = os.getloadavg()
        cp_s, durable_s, up_s, down_s, up_cpu, down_cpu = [], [], [], [], [], []
        for attempt in range(repeats):
            target = work / f"copy-{attempt}.bin"
            cp_s.append(_timed(["cp", str(source), str(target)]))
            target.unlink()
            durable_s.append(_timed(["dd", f"if={source}", f"of={target}", "bs=4M", "conv=fsync", "status=none"]))
            target.unlink()
            url = f"{api.url}/storage/v1/object/{bucket}/big-{attempt}.bin"
            cpu = _cpu_seconds(api_pids)
            up_s.append(_timed(["curl", "-sS", "--fail", "-X", "POST", "-T", str(source), *curl_headers,
                                "-H", "Content-Type: application/octet-stream", "-o", os.devnull, url]))
            up_cpu.append(_cpu_seconds(api_pids) - cpu)
            downloaded = work / f"download-{attempt}.bin"
            cpu = _cpu_seconds(api_pids)
            down_s.append(_timed(["curl", "-sS", "--fail", *curl_headers, "-o", str(downloaded), url]))
            down_cpu.append(_cpu_seconds(api_pids) - cpu)
            if downloaded.stat().st_size != size:
                raise RuntimeError("the download is not the uploaded size")
            downloaded.unlink()
        mb = size / CHUNK

        def rate(samples: list[float]) -> float:
            return round(mb / statistics.median(samples), 1)

        result = {"size_mb": size_mb, "repeats": repeats, "disk": str(work),
                  "cp_mb_per_s": rate(cp_s), "durable_copy_mb_per_s": rate(durable_s),
                  "upload_mb_per_s": rate(up_s), "download_mb_per_s": rate(down_s),
                  "api_cpu_s_per_100_mb": {"upload": round(statistics.median(up_cpu) * 100 / mb, 3),
                                           "download": round(statistics.median(down_cpu) * 100 / mb, 3)},
                  "load_average": {"before": load_before, "after": os.getloadavg()},
                  "seconds": {"cp": cp_s, "durable_copy": durable_s, "upload": up_s, "download": down_s}}
        result["ratio_upload_vs_cp"] = round(result["upload_mb_per_s"] / result["cp_mb_per_s"], 2)
        result["ratio_download_vs_cp"] = round(result["download_mb_per_s"] / result["cp_mb_per_s"], 2)
        result["ratio_upload_vs_durable_copy"] = round(result["upload_mb_per_s"] / result["durable_copy_mb_per_s"], 2)
        return result
    finally:
        api.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)
