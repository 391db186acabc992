"""A tiny run of every benchmark (bench/run.py --quick sizes) on its own stack, so none of them rots: the same
code `make bench` runs, at sizes that take seconds. It checks the runs completed and were correct (every event
applied once, every frame delivered) — never how fast."""
from __future__ import annotations

import pytest

from bench import run as bench_run
from bench.report import render


@pytest.fixture(scope="module")
def report():
    data = bench_run.run_all(bench_run.ORDER, bench_run.QUICK)
    data["finished"] = data.get("finished", "")
    return data


def test_pipeline_applies_every_event_once_and_pgbench_runs_the_worker_sql(report) -> None:
    result = report["results"]["pipeline"]
    assert result["statuses"] == {202: result["events"]} and result["sender"].startswith("wrk ")
    assert result["inbox_states"] == {"applied": result["events"]}
    assert result["charges"] == result["events"] == result["credits_spent"]
    assert result["pgbench"]["failed"] == 0 and result["pgbench"]["tps"] > 0
    assert result["pgbench_with_attempt_tx"]["tps"] > 0
    assert result["ratio_applied_vs_pgbench"] > 0
    # The worker stage from a backlog: batching off, then the default batch size; every event applied once.
    assert [drained["batch_size"] for drained in result["backlog"]] == [1, 50]
    for drained in result["backlog"]:
        assert drained["accepted"] == drained["events"] and drained["inbox_states"] == {"applied": drained["events"]}
        assert drained["applied_per_s"] > 0
        # Acceptance alone, next to the bare endpoint driven by the same wrk command: every request answered 202.
        accept = drained["accept"]
        for run in (accept["segbase"], accept["reference_before"], accept["reference_after"]):
            assert run["statuses"] == {202: run["events"]} and run["command"].startswith("wrk ")
        assert accept["ratio"] > 0


def test_end_to_end_delivers_every_update(report) -> None:
    for rate in report["results"]["e2e"]["rates"]:
        assert rate["delivered"] == rate["events"], rate
        assert rate["statuses"] == {202: rate["events"]} and rate["sender"].startswith("wrk ")
        assert rate["p99_ms"] > 0 and rate["from_send"]["p99_ms"] > 0


def test_fanout_delivers_to_every_socket_and_the_bare_reference_echoes(report) -> None:
    result = report["results"]["fanout"]
    ours = result["segbase"]
    assert ours["sockets"] == result["users"] * result["sockets_per_user"]
    assert ours["frames"] == ours["frames_expected"] > 0
    assert result["bare_echo"]["sockets"] == ours["sockets"]
    assert result["bare_echo"]["frames"] > 0


def test_rls_and_auth_produce_their_ratios(report) -> None:
    rls = report["results"]["rls"]
    assert rls["rows"] >= 30 * 25 and "segmentation_results_" in rls["plans"]["user"]
    assert rls["ratio_user_vs_service_p50"] > 0 and rls["http_rest_v1"]["n"] > 0
    auth = report["results"]["auth"]
    assert auth["sign_in"]["ok"] == 4 and auth["sign_in"]["failures"] == 0
    assert auth["token_verification"]["resolve_caller_us"]["p50"] > 0


def test_the_report_renders_every_section(report) -> None:
    text = render(report)
    for heading in ("## Figures and ratios", "## What dominates each path", "## Commands", "## Raw numbers"):
        assert heading in text
    for row in ("1. Pipeline throughput", "2. End-to-end latency", "3. WebSocket fan-out", "4. RLS overhead",
                "5. Auth sign-in"):
        assert row in text


def test_dispatch_delivers_every_job_and_leases_each_once(report) -> None:
    result = report["results"]["dispatch"]
    for push in (result["push_latency"], result["push_latency_relay_threads"]):
        assert push["received"] == push["jobs"] > 0 and push["reference_received"] == push["jobs"]
        assert push["segbase"]["p99_ms"] > 0
    assert result["push_latency"]["relay_threads"] == 0 and result["push_latency_relay_threads"]["relay_threads"] > 0
    for run in result["claim"]["runs"]:
        assert run["claimed_http"] == run["claimed_sql"] == run["jobs"] and run["unique_http"]


def test_storage_moves_the_file_and_measures_cp_beside_it(report) -> None:
    result = report["results"]["storage"]
    assert result["upload_mb_per_s"] > 0 and result["download_mb_per_s"] > 0 and result["cp_mb_per_s"] > 0
    assert result["durable_copy_mb_per_s"] > 0 and set(result["api_cpu_s_per_100_mb"]) == {"upload", "download"}
    assert result["floor_mb_per_s"] > 0 and result["ratio_upload_vs_floor"] > 0
    assert set(result["client_cpu_s_per_100_mb"]) == {"cp", "upload", "download"}
    curl = result["curl"]
    assert curl["upload_mb_per_s"] > 0 and curl["download_mb_per_s"] > 0
    assert curl["in_transfer_mb_per_s"]["upload"] > 0 and curl["in_transfer_mb_per_s"]["download"] > 0
    assert "7. Storage upload" in render(report) and "bench/durable_receiver.py" in render(report)


def test_scaling_applies_every_event_in_each_configuration_and_plots(report, tmp_path) -> None:
    from bench.scaling import plot  # here: the plot needs matplotlib, which only this test draws with

    result = report["results"]["scaling"]
    for row in (*result["configurations"], *result["cpu_by_load"]):
        assert row["accepted"] == row["events"] and row["applied_per_s"] > 0, row
        assert row["segbase_cpu_ms_per_event"] > 0
    assert "## Scaling" in render(report)
    plot(result, tmp_path / "scaling.png")
    assert (tmp_path / "scaling.png").read_bytes().startswith(b"\x89PNG")


def test_embedding_and_realtime_channels_run_beside_their_references(report) -> None:
    embed = report["results"]["rest_embed"]
    assert embed["http"]["plain"]["rps"] > 0 and embed["http"]["embedded"]["rps"] > 0
    assert set(embed["sql_p50_ms"]) == {"plain", "embedded", "hand-written join"}
    channels = report["results"]["realtime_rls"]
    for processes in ("one_api_process", "two_api_processes"):
        shared = channels[processes]["shared_rls"]
        assert shared["frames"] == shared["frames_expected"] > 0
        assert channels[processes]["owner_routed_reference"]["frames"] > 0
    assert channels["one_api_process"]["recovery"]["shared RLS table, since"]["replayed"] > 0
    text = render(report)
    assert "8. Embedding via /rest/v1" in text and "9. Realtime on a shared RLS table" in text
