"""Storage throughput: upload and download MB/s of one large file through /storage/v1 (file backend), next to `cp`
of the same file on the same disk, in the same run. Goal: each ≥ 0.5× of `cp`. Medians of `repeats` runs, each
run timing `cp`, `dd`, then the transfers with two clients in turn:

- the headline client is bench/bulk_http.py, in the bench process (no process start, as `cp` needs ~1 ms): the
  upload leaves with os.sendfile, the download goes from the socket to a file on the same disk with os.splice
  (as `cp` writes its copy, inside the kernel) — a client that costs little, so the figure is the server's;
- curl beside it (`curl -T` up, `-o file` down), whose own costs are described below.

A 2xx upload is durable (fsynced), which `cp` is not, so the upload is also set against the same copy made durable
the plain way (`dd … conv=fsync`: write it all, then fsync; the upload starts its writeback as it streams, see
db/storage/backends.py, so it may beat this), and against a floor that no server over TCP goes below: the same
bytes sent the same way to bench/durable_receiver.py, which commits them with segbase's own blob writer and nothing
else (no HTTP, no database) — upload ÷ floor is what segbase adds, floor ÷ `cp` what TCP and durability cost. The API process tree's CPU time per transfer (from /proc) separates
segbase's own cost from the client's and the disk's; the load average is recorded, as other work on the machine
weighs on every figure.

With curl, the times are whole processes, `cp`'s and curl's alike. Two figures say what of that is the client's
own: each command's CPU time (user + system, from the children's rusage) and curl's `time_total` (connect to last byte,
without curl's start-up and exit, which cost it ~10 ms where `cp` needs ~1). curl is not a cheap downloader: it
hands the body to its output file in 16 KiB pieces, which stdio writes as 4 + 12 KiB write(2)s (~13,000 per
100 MB, `strace -c`), so a download costs curl several times the CPU `cp` spends on the same bytes, whatever the
server does; that client CPU bounds curl's download ratio. Writing 100 MB of new page cache costs ~30 ms of system
time when the kernel reuses memory it just freed, and up to ~300 ms in a VM whose free memory the host has taken
back (free page reporting): that falls on `cp`, `dd`, the upload's writes and curl's download alike, and the
client CPU figures show when it did. So that no transfer draws the expensive kind of memory while the one it is
compared with draws the cheap kind, each timed transfer starts right after a scratch file of the same size was
written and removed (`_equal_start`): every one writes into just-freed memory, the state in which `cp` is fastest.

    .venv/bin/python -m bench.run --only storage
"""
from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench import bulk_http
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


def _timed(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, the command's own CPU seconds (user + system: the children's rusage grows by exactly this
    child, the only one reaped meanwhile) and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {completed.stderr.strip()[:300]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, completed.stdout


def _same_bytes(left: Path, right: Path) -> bool:
    with open(left, "rb") as a, open(right, "rb") as b:
        while True:
            block_a, block_b = a.read(CHUNK * 4), b.read(CHUNK * 4)
            if block_a != block_b:
                return False
            if not block_a:
                return True


def _equal_start(directory: Path, size: int) -> None:
    """Write and remove `size` bytes, so the next transfer writes its page cache into memory just freed (the kernel
    hands recently freed pages out first) rather than memory the VM's host may have taken back."""
    scratch = directory / "scratch.bin"
    block = b"\1" * CHUNK
    with open(scratch, "wb") as out:
        for _ in range(size // CHUNK):
            out.write(block)
    scratch.unlink()


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run(stack: Stack, *, size_mb: int = 100, repeats: int = 5) -> dict:
    size = size_mb * CHUNK
    work = Path(tempfile.mkdtemp(prefix="segbase-bench-storage-"))
    storage_dir = work / "storage"
    api = ApiProcess(stack.settings.model_copy(update={"storage_max_file_size": size + CHUNK,
                                                        "storage_dir": str(storage_dir)}), name="storage-api")
    api.start()
    floor: subprocess.Popen | None = None
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
        seconds: dict[str, list[float]] = {name: [] for name in ("cp", "durable_copy", "floor", "upload",
                                                                 "download", "curl_upload", "curl_download")}
        floor = subprocess.Popen([sys.executable, "-m", "bench.durable_receiver", "--dir", str(work / "floor"),
                                  "--size", str(size), "--count", str(repeats)], stdout=subprocess.PIPE, text=True)
        floor_port = int(floor.stdout.readline())
        client_cpu: dict[str, list[float]] = {name: [] for name in ("cp", "upload", "download", "curl_upload",
                                                                    "curl_download")}
        api_cpu: dict[str, list[float]] = {name: [] for name in ("upload", "download", "curl_upload",
                                                                 "curl_download")}
        curl_total: dict[str, list[float]] = {"upload": [], "download": []}

        def measured(name: str, transfer) -> str:
            """Run one transfer, recording its wall time, the client's CPU and the API's; returns its output."""
            _equal_start(work, size)
            before = _cpu_seconds(api_pids)
            elapsed, cpu, out = transfer()
            api_cpu[name].append(_cpu_seconds(api_pids) - before)
            seconds[name].append(elapsed)
            client_cpu[name].append(cpu)
            return out

        def in_process(call) -> tuple[float, float, str]:
            cpu, started = time.thread_time(), time.perf_counter()
            status, count = call()
            elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
            if status != 200:
                raise RuntimeError(f"the transfer was answered {status}: {count!r}"[:300])
            return elapsed, cpu, ""

        for attempt in range(repeats):
            target = work / f"copy-{attempt}.bin"
            _equal_start(work, size)
            elapsed, cpu, _ = _timed(["cp", str(source), str(target)])
            seconds["cp"].append(elapsed)
            client_cpu["cp"].append(cpu)
            target.unlink()
            _equal_start(work, size)
            seconds["durable_copy"].append(
                _timed(["dd", f"if={source}", f"of={target}", "bs=4M", "conv=fsync", "status=none"])[0])
            target.unlink()
            _equal_start(work, size)
            started = time.perf_counter()
            if bulk_http.send_raw(floor_port, source, 2) != b"ok":
                raise RuntimeError("the durable receiver did not answer ok")
            seconds["floor"].append(time.perf_counter() - started)
            url = f"{api.url}/storage/v1/object/{bucket}/big-{attempt}.bin"
            measured("upload", lambda url=url: in_process(lambda: bulk_http.upload(
                url, source, {**headers, "Content-Type": "application/octet-stream"})))
            downloaded = work / f"download-{attempt}.bin"
            measured("download", lambda url=url: in_process(lambda: bulk_http.download(url, downloaded, headers)))
            if downloaded.stat().st_size != size or not _same_bytes(source, downloaded):
                raise RuntimeError("the download is not the uploaded file")
            downloaded.unlink()
            curl_url = f"{api.url}/storage/v1/object/{bucket}/big-{attempt}-curl.bin"
            out = measured("curl_upload", lambda: _timed(
                ["curl", "-sS", "--fail", "-X", "POST", "-T", str(source), *curl_headers,
                 "-H", "Content-Type: application/octet-stream", "-o", os.devnull, "-w", "%{time_total}", curl_url]))
            curl_total["upload"].append(float(out))
            out = measured("curl_download", lambda: _timed(
                ["curl", "-sS", "--fail", *curl_headers, "-o", str(downloaded), "-w", "%{time_total}", curl_url]))
            curl_total["download"].append(float(out))
            if downloaded.stat().st_size != size:
                raise RuntimeError("the download is not the uploaded size")
            downloaded.unlink()
        mb = size / CHUNK

        def rate(samples: list[float]) -> float:
            return round(mb / statistics.median(samples), 1)

        def per_100_mb(samples: list[float]) -> float:
            return round(statistics.median(samples) * 100 / mb, 3)

        curl_wall = seconds["curl_upload"] + seconds["curl_download"]
        result = {"size_mb": size_mb, "repeats": repeats, "disk": str(work),
                  "client": "bench/bulk_http.py in the bench process (upload: os.sendfile; download: os.splice "
                            "through a pipe into the file)",
                  "cp_mb_per_s": rate(seconds["cp"]), "durable_copy_mb_per_s": rate(seconds["durable_copy"]),
                  "floor_mb_per_s": rate(seconds["floor"]),
                  "upload_mb_per_s": rate(seconds["upload"]), "download_mb_per_s": rate(seconds["download"]),
                  "api_cpu_s_per_100_mb": {"upload": per_100_mb(api_cpu["upload"]),
                                           "download": per_100_mb(api_cpu["download"])},
                  "client_cpu_s_per_100_mb": {name: per_100_mb(client_cpu[name])
                                              for name in ("cp", "upload", "download")},
                  "curl": {"upload_mb_per_s": rate(seconds["curl_upload"]),
                           "download_mb_per_s": rate(seconds["curl_download"]),
                           "client_cpu_s_per_100_mb": {"upload": per_100_mb(client_cpu["curl_upload"]),
                                                       "download": per_100_mb(client_cpu["curl_download"])},
                           "api_cpu_s_per_100_mb": {"upload": per_100_mb(api_cpu["curl_upload"]),
                                                    "download": per_100_mb(api_cpu["curl_download"])},
                           "in_transfer_mb_per_s": {name: rate(samples) for name, samples in curl_total.items()},
                           "startup_exit_ms": round(statistics.median(
                               [whole - inside for whole, inside in
                                zip(curl_wall, curl_total["upload"] + curl_total["download"])]) * 1000, 1)},
                  "load_average": {"before": load_before, "after": os.getloadavg()},
                  "seconds": {**seconds, "curl_time_total": curl_total}}
        result["ratio_upload_vs_cp"] = round(result["upload_mb_per_s"] / result["cp_mb_per_s"], 2)
        result["ratio_download_vs_cp"] = round(result["download_mb_per_s"] / result["cp_mb_per_s"], 2)
        result["ratio_upload_vs_durable_copy"] = round(result["upload_mb_per_s"] / result["durable_copy_mb_per_s"], 2)
        result["ratio_upload_vs_floor"] = round(result["upload_mb_per_s"] / result["floor_mb_per_s"], 2)
        result["ratio_floor_vs_cp"] = round(result["floor_mb_per_s"] / result["cp_mb_per_s"], 2)
        for direction in ("upload", "download"):
            result["curl"][f"ratio_{direction}_vs_cp"] = round(
                result["curl"][f"{direction}_mb_per_s"] / result["cp_mb_per_s"], 2)
        return result
    finally:
        if floor is not None:
            floor.kill()
            floor.wait()
        api.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)
