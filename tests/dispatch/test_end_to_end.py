"""The loop a newcomer sees: `segbase run` as `make run` starts it (DISPATCH_MODE=pull, DEMO_BACKEND_ENABLED) and
the real supabase-js client — upload an image to storage, insert a pending result, watch it go processing → done
live over realtime, and download the mask (made by the demo backend's stand-in model) with a signed URL."""
from __future__ import annotations

import base64
import io
import signal

import httpx
import pytest
from PIL import Image

from api.tokens import api_key
from tests.support.database import make_test_settings
from tests.support.factories import create_user
from tests.support.processes import SegbaseProcess, free_port, wait_for
from tests.support.storage import run_node

PNG_MAGIC = "89504e470d0a1a0a"


def bright_square_png() -> bytes:
    image = Image.new("RGB", (64, 64), (20, 20, 20))
    image.paste((250, 250, 250), (16, 16, 48, 48))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.mark.node
def test_make_runs_loop_takes_a_job_from_pending_to_done_with_supabase_js(dispatch_settings, db):
    port = free_port()
    settings = make_test_settings(dispatch_settings.database_url, f"{dispatch_settings.instance_id}e", api_port=port,
                                  dispatch_mode="pull", demo_backend_enabled=True, result_url_allow_http=True,
                                  worker_concurrency=1)
    run = SegbaseProcess(settings, "run").start()
    try:
        def healthy() -> bool:
            try:
                return httpx.get(f"{settings.public_url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(lambda: healthy() or not run.alive(), 90, 0.2, message="segbase run to serve")
        for text in ("relay active", " ready.", "demo backend (pull) claiming"):
            wait_for(lambda: text in run.log_text() or not run.alive(), 90, 0.2, message=f"{text!r} in the log")
        assert run.alive(), run.log_text()

        user = create_user(settings, credits=3)
        out = run_node("dispatch_e2e.mjs", {"url": settings.public_url, "anonKey": api_key(settings, "anon"),
                                            "email": user.email, "password": user.password,
                                            "png": base64.b64encode(bright_square_png()).decode()})
        assert out["upload"]["error"] is None, out
        assert out["insert"]["data"]["status"] == "pending"
        job_id = out["insert"]["data"]["id"]
        assert out["statuses"][-2:] == ["processing", "done"], out["statuses"]
        final = out["final"]
        assert final["mask_image_url"].endswith(f"/storage/v1/object/authenticated/masks/{user.id}/{job_id}.png")
        assert final["labels"][0]["label"] == "a bright square" and "stand-in" in final["labels"][0]["model"]
        assert 0 < final["labels"][0]["score"] < 1
        assert out["mask"]["status"] == 200 and out["mask"]["magic"] == PNG_MAGIC
        # No signed URL reached a log of any process (they carry their token in the query string).
        assert "token=" not in run.log_text()
        # Charged once, as any done job.
        assert db.execute("select count(*) from public.usage_logs where action = 'segmentation' "
                          "and metadata ->> 'result_id' = %s", (job_id,)).fetchone()[0] == 1
    finally:
        run.signal(signal.SIGINT)
        run.stop(timeout=60)
