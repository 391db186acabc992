"""Abuse limits: per IP and per email in Redis, 429 + Retry-After + over_request_rate_limit, reset after the window,
X-Forwarded-For believed only from TRUSTED_PROXIES."""
from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from api.auth.limits import client_ip
from schemas.settings import Settings
from tests.support.auth import GoTrue, new_email, start_api
from tests.support.factories import create_user
from tests.support.processes import ApiProcess

LIMIT = 4
WINDOW = 2


@pytest.fixture(scope="module")
def proxied_api(settings) -> Iterator[ApiProcess]:
    """Tight limits, and the test process (127.0.0.1) is a trusted proxy."""
    server = start_api(settings, auth_rate_limit_sign_in=LIMIT, auth_rate_limit_refresh=3, auth_rate_limit_user=3,
                       auth_rate_limit_window_seconds=WINDOW, trusted_proxies=["127.0.0.1/32"])
    yield server
    server.stop()


@pytest.fixture
def strict(strict_api, anon_key) -> Iterator[GoTrue]:
    client = GoTrue(strict_api.url, anon_key)
    yield client
    client.close()


@pytest.fixture
def proxied(proxied_api, anon_key) -> Iterator[GoTrue]:
    client = GoTrue(proxied_api.url, anon_key)
    yield client
    client.close()


def first_limited(send, attempts: int):
    """Send a burst at once and return (how many passed, a 429). At once, because requests sent one after another
    on a loaded machine can spread over several windows and never meet the limit; a fixed window may still split
    the burst, so at most 2 × limit pass."""
    with ThreadPoolExecutor(max_workers=attempts) as pool:
        responses = list(pool.map(send, range(attempts)))
    limited = [response for response in responses if response.status_code == 429]
    assert limited, f"no 429 in {attempts} requests: {[response.status_code for response in responses]}"
    return len(responses) - len(limited), limited[0]


def assert_limited(response) -> int:
    assert response.status_code == 429
    assert response.headers["x-supabase-api-version"] == "2024-01-01"
    assert response.json()["code"] == "over_request_rate_limit" and set(response.json()) == {"code", "message"}
    assert response.json()["message"].startswith("Request rate limit reached: ")
    assert "AUTH_RATE_LIMIT_" in response.json()["message"] and "AUTH_RATE_LIMIT_WINDOW_SECONDS" in response.json()["message"]
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= WINDOW + 1
    return retry_after


def test_sign_in_limit_per_ip_trips_and_resets(strict):
    # Sign-up shares the bucket: right after a burst of sign-ins was refused, a sign-up is refused too — unless the
    # window rolled over between the two (a 2 s window on a loaded machine), in which case the burst is repeated.
    for _ in range(3):
        attempt, response = first_limited(lambda _: strict.password_grant(new_email()), 2 * LIMIT + 1)
        assert attempt >= LIMIT
        retry_after = assert_limited(response)
        if strict.signup().status_code == 429:
            break
    else:
        pytest.fail("a sign-up right after the sign-in limit tripped was never refused")
    time.sleep(retry_after)
    email = new_email()
    assert strict.signup(email).status_code == 200
    assert strict.password_grant(email).status_code == 200


def test_forwarded_for_is_not_believed_by_default(strict):
    attempt, response = first_limited(
        lambda n: strict.password_grant(new_email(), headers={"X-Forwarded-For": f"203.0.113.{n}"}), 2 * LIMIT + 1)
    assert_limited(response)
    time.sleep(int(response.headers["Retry-After"]))


def test_refresh_limit_per_ip(strict):
    _, response = first_limited(lambda _: strict.refresh("no-such-refresh-token"), 2 * 3 + 1)
    time.sleep(assert_limited(response))
    assert strict.refresh("no-such-refresh-token").json()["code"] == "refresh_token_not_found"


def put_user(client: GoTrue, token: str, body: dict, **headers: str):
    return client.http.put(client.url + "/user", headers=client.headers(token, **headers), json=body)


def test_put_user_is_limited_per_ip(strict, settings):
    user = create_user(settings)
    _, response = first_limited(lambda n: put_user(strict, user.access_token, {"data": {"n": n}}), 2 * 3 + 1)
    time.sleep(assert_limited(response))
    assert put_user(strict, user.access_token, {"data": {"n": "after"}}).status_code == 200


def test_put_user_is_limited_per_user_from_any_address(proxied, settings):
    user, other = create_user(settings), create_user(settings)
    _, response = first_limited(
        lambda n: put_user(proxied, user.access_token, {"data": {"n": n}},
                           **{"X-Forwarded-For": f"198.51.100.{n}"}), 2 * 3 + 1)
    assert_limited(response)
    # Another user from a fresh address is not held back by the first user's requests.
    other_response = put_user(proxied, other.access_token, {"data": {"x": 1}}, **{"X-Forwarded-For": "198.51.100.201"})
    assert other_response.status_code == 200
    time.sleep(int(response.headers["Retry-After"]))


def test_trusted_proxy_forwarded_for_separates_clients_and_email_limit_holds(proxied):
    # Each client address has its own bucket: many addresses, one email → the per-email limit trips.
    email = new_email()
    attempt, response = first_limited(
        lambda n: proxied.password_grant(email, "wrong password", headers={"X-Forwarded-For": f"198.51.100.{n}"}),
        2 * LIMIT + 1)
    assert attempt >= LIMIT
    assert_limited(response)
    # ...while one more address with another email is not limited by the others' traffic.
    assert proxied.password_grant(new_email(), headers={"X-Forwarded-For": "198.51.100.200"}).status_code == 400


def test_rate_limit_keys_are_namespaced(proxied_api, proxied):
    proxied.password_grant(new_email(), headers={"X-Forwarded-For": "192.0.2.55"})
    client = redis.Redis.from_url(proxied_api.settings.redis_url)
    try:
        keys = [key.decode() for key in client.scan_iter(match=f"{proxied_api.settings.instance_id}:auth:rate:*")]
    finally:
        client.close()
    assert any(":sign_in_ip:192.0.2.55:" in key for key in keys)
    assert not any("@" in key for key in keys)  # emails are hashed


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "expected"), [
    ("10.0.0.1", "1.2.3.4", [], "10.0.0.1"),                                # default: never believed
    ("10.0.0.1", "1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),
    ("10.0.0.1", "6.6.6.6, 1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),            # a client-written left hop is ignored
    ("10.0.0.1", "1.2.3.4, 10.0.0.2", ["10.0.0.0/8"], "1.2.3.4"),           # a chain of trusted proxies
    ("192.0.2.1", "1.2.3.4", ["10.0.0.0/8"], "192.0.2.1"),                  # the peer is not a proxy
    ("10.0.0.1", "garbage", ["10.0.0.0/8"], "10.0.0.1"),
])
def test_client_ip(peer, forwarded, trusted, expected):
    settings = Settings(_env_file=None, trusted_proxies=trusted)
    assert client_ip(peer, forwarded, settings) == expected
