"""Pure logic of the console: chart scaling, the prod cookie's attributes, the sign-in redirect guard."""
from __future__ import annotations

import pytest
from flask import Flask, Response

from api.console import session as cookies
from api.console.charts import Point, bar_chart, bar_heights
from api.console.views import _safe_next, bp
from tests.support.database import make_test_settings


def test_bar_heights_scale_to_the_largest_value_and_keep_small_values_visible():
    assert bar_heights([0, 1, 50, 100], 40) == [0, 1, 20, 40]
    assert bar_heights([0, 0], 40) == [0, 0]
    assert bar_heights([], 40) == []


def test_a_chart_names_its_series_and_each_bar_value():
    svg = str(bar_chart("Events <rejected>", [Point("14:00", 2), Point("14:01", 0)]))
    assert 'role="img"' in svg and 'aria-label="Events &lt;rejected&gt;: 0 (last point), max 2"' in svg
    assert "<title>14:00: 2</title>" in svg and svg.count("<rect") == 3


@pytest.mark.parametrize(("value", "expected"), [
    ("/console/users?q=a", "/console/users?q=a"),
    ("//evil.example/console/", None),
    ("https://evil.example/console/", None),
    ("/console\\..\\x", None),
    ("/rest/v1/", None),
    (None, None),
])
def test_only_console_paths_are_followed_after_sign_in(value, expected):
    app = Flask(__name__)
    app.register_blueprint(bp, url_prefix="/console")
    with app.test_request_context():
        assert _safe_next(value) == (expected or "/console/overview")


def test_in_prod_the_cookie_is_host_bound_and_secure():
    settings = make_test_settings("postgresql://unused/none", "tunits", env="prod",
                                  jwt_secret="a" * 40, db_authenticator_password="not-the-dev-one",
                                  webhook_api_keys=["a-real-key"], metrics_token="a-metrics-token",
                                  auth_site_url="https://app.example.com")
    app = Flask(__name__)
    with app.test_request_context():
        response = Response()
        cookies.set_session_cookie(response, settings, "00000000-0000-0000-0000-000000000001")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-segbase-console=")
    for attribute in ("Secure", "HttpOnly", "Path=/", "SameSite=Strict"):
        assert attribute in cookie
    assert "Domain" not in cookie
