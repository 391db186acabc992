"""A 429 from /auth/v1 names the setting that limits it, so whoever hits it in development knows what to raise."""
from __future__ import annotations

import uuid

import pytest
import redis

from api.auth.errors import RateLimitedError
from api.auth.limits import RateLimiter
from tests.support.database import make_test_settings


@pytest.mark.parametrize(("hit", "setting", "limit_field"), [
    (lambda limiter: limiter.sign_in_ip("192.0.2.1"), "AUTH_RATE_LIMIT_SIGN_IN", "auth_rate_limit_sign_in"),
    (lambda limiter: limiter.sign_in_email("a@example.com"), "AUTH_RATE_LIMIT_SIGN_IN", "auth_rate_limit_sign_in"),
    (lambda limiter: limiter.refresh("192.0.2.1"), "AUTH_RATE_LIMIT_REFRESH", "auth_rate_limit_refresh"),
])
def test_the_429_message_names_the_limit_and_its_setting(settings, hit, setting, limit_field):
    limited = make_test_settings(settings.database_url, f"{settings.instance_id}rl{uuid.uuid4().hex[:4]}",
                                 auth_rate_limit_window_seconds=120, **{limit_field: 1})
    client = redis.Redis.from_url(limited.redis_url)
    try:
        limiter = RateLimiter(client, limited)
        hit(limiter)
        with pytest.raises(RateLimitedError) as raised:
            hit(limiter)
    finally:
        client.close()
    assert raised.value.message == (f"Request rate limit reached: 1 per 120 s ({setting} per "
                                    "AUTH_RATE_LIMIT_WINDOW_SECONDS)")
    assert raised.value.body() == {"code": "over_request_rate_limit", "message": raised.value.message}
