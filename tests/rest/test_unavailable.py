"""Without a database the data API answers PostgREST's 503 (the clients retry reads), never a 500."""
from __future__ import annotations

from api import create_app
from api.tokens import api_key
from tests.support.database import make_test_settings
from tests.support.processes import free_port


def test_database_down_is_503_pgrst001(run_id) -> None:
    settings = make_test_settings(f"postgresql://postgres@127.0.0.1:{free_port()}/segbase_gone",
                                  f"t{run_id}down")
    app = create_app(settings)
    client = app.test_client()
    response = client.get("/rest/v1/projects", headers={"apikey": api_key(settings, "anon")})
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["code"] == "PGRST001"
    rpc = client.post("/rest/v1/rpc/my_credit_summary", json={}, headers={"apikey": api_key(settings, "anon")})
    assert rpc.status_code == 503
    app.extensions["segbase"].engine.dispose()
