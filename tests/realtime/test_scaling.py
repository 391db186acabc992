"""Several API processes (and gunicorn workers) behind their own ports each deliver to their own sockets."""
from __future__ import annotations

from tests.support.processes import ApiProcess
from tests.support.realtime import PhoenixSocket, insert_result

RESULTS = {"event": "*", "schema": "public", "table": "segmentation_results"}


def test_every_api_process_and_worker_delivers_to_its_own_sockets(api_server, relay, settings, anon_key, user):
    two_workers = ApiProcess(settings.model_copy(update={"api_workers": 2})).start()
    sockets = [PhoenixSocket(api_server.url, anon_key, "2.0.0")]
    try:
        # gunicorn's workers share the port; the kernel spreads these sockets over both of them.
        sockets += [PhoenixSocket(two_workers.url, anon_key, vsn) for vsn in ("1.0.0", "2.0.0") * 3]
        for index, sock in enumerate(sockets):
            assert sock.join(f"realtime:s{index}", [RESULTS], user.access_token)["payload"]["status"] == "ok"
        result_id = insert_result(settings, user.id)
        for sock in sockets:
            change = sock.wait(lambda m: m["event"] == "postgres_changes")
            assert change["payload"]["data"]["record"]["id"] == result_id
    finally:
        for sock in sockets:
            sock.close()
        two_workers.stop()
