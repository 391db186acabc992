"""The one Settings object: built at each entry point from the environment (and an optional `.env`), passed down.

Tests construct `Settings(...)` directly (with `_env_file=None`) and never edit `os.environ`; a child process
gets its settings through `Settings.to_env()`.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Supabase's published local-development secret: fine for ENV=dev, refused for ENV=prod.
DEV_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
DEV_AUTHENTICATOR_PASSWORD = "authenticator-dev-password"
DEV_WEBHOOK_API_KEY = "dev-webhook-key"
DEV_SITE_URL = "http://127.0.0.1:3000"  # the Supabase CLI's default site URL

CommaList = Annotated[list[str], NoDecode]


class SettingsError(ValueError):
    """A setting is missing or unsafe for the chosen ENV."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # --- deployment -------------------------------------------------------------------------------------
    env: Literal["dev", "prod"] = "dev"
    instance_id: str = Field("segbase", pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    log_level: str = "INFO"

    # --- PostgreSQL --------------------------------------------------------------------------------------
    database_url: str = "postgresql://postgres@127.0.0.1:5432/segbase"
    db_authenticator_password: SecretStr = SecretStr(DEV_AUTHENTICATOR_PASSWORD)
    db_pool_size: int = Field(5, ge=1, le=50)
    db_statement_timeout_ms: int = Field(15_000, ge=100)

    # --- Redis -------------------------------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"

    # --- HTTP API ----------------------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(54321, ge=0, le=65535)
    api_external_url: str | None = None  # how clients reach us; default http://{api_host}:{api_port}
    api_workers: int = Field(1, ge=1)
    api_worker_connections: int = Field(10_000, ge=10)
    api_graceful_timeout_seconds: int = Field(20, ge=1)
    cors_allowed_origins: CommaList = ["*"]
    max_request_bytes: int = Field(1024 * 1024, ge=1024)
    rest_max_rows: int = Field(1000, ge=1, le=100_000)  # /rest/v1 reads return at most this many rows
    metrics_enabled: bool = True
    metrics_token: SecretStr | None = None  # when set, /metrics needs `Authorization: Bearer <token>`

    # --- auth --------------------------------------------------------------------------------------------
    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_expiry_seconds: int = Field(3600, ge=30)
    auth_external_jwt_secret: SecretStr | None = None
    auth_mailer_autoconfirm: bool = True
    auth_password_min_length: int = Field(8, ge=6)
    auth_refresh_reuse_interval_seconds: int = Field(10, ge=0)
    auth_hash_threads: int = Field(2, ge=1)
    auth_rate_limit_window_seconds: int = Field(300, ge=1)
    auth_rate_limit_sign_in: int = Field(30, ge=1)  # sign-ins + sign-ups per IP (and per email) per window
    auth_rate_limit_refresh: int = Field(150, ge=1)  # refreshes per IP per window
    auth_rate_limit_user: int = Field(30, ge=1)  # PUT /user per IP and per user per window (GoTrue's user limiter)
    auth_site_url: str = DEV_SITE_URL  # where auth redirects land by default; must be set for ENV=prod
    auth_redirect_allow_list: CommaList = []  # more redirect_to targets, as globs (GoTrue's URI_ALLOW_LIST)
    trusted_proxies: CommaList = []

    # --- credits and retention ---------------------------------------------------------------------------
    credits_per_segmentation: int = Field(1, ge=0)
    starting_credits_free: int = Field(10, ge=0)
    starting_credits_pro: int = Field(100, ge=0)
    starting_credits_enterprise: int = Field(1000, ge=0)
    retention_days_free: int = Field(7, ge=1)
    retention_days_pro: int = Field(30, ge=1)
    retention_days_enterprise: int = Field(90, ge=1)

    # --- webhook pipeline --------------------------------------------------------------------------------
    webhook_api_keys: CommaList = [DEV_WEBHOOK_API_KEY]
    webhook_signing_secret: SecretStr | None = None
    webhook_mask_url_hosts: CommaList = []  # empty: any https host
    inbox_max_attempts: int = Field(5, ge=1)
    inbox_batch_size: int = Field(50, ge=1, le=1000)  # events one worker delivery claims and applies together
    inbox_sweep_enabled: bool = True
    inbox_sweep_delay_seconds: int = Field(60, ge=1)
    inbox_sweep_interval_seconds: int = Field(30, ge=1)
    result_timeout_seconds: int = Field(3600, ge=1)

    # --- Celery ------------------------------------------------------------------------------------------
    worker_concurrency: int = Field(2, ge=1)
    celery_visibility_timeout_seconds: int = Field(300, ge=10)

    # --- maintenance -------------------------------------------------------------------------------------
    cleanup_schedule_cron: str = "17 3 * * *"
    cleanup_batch_size: int = Field(2000, ge=1)
    inbox_retention_days: int = Field(30, ge=1)
    outbox_retention_hours: int = Field(24, ge=1)
    reconcile_interval_seconds: int = Field(60, ge=1)  # how often beat times out stuck results
    worker_metrics_port: int = Field(0, ge=0, le=65535)  # 0 = no metrics endpoint on `segbase worker`
    relay_metrics_port: int = Field(0, ge=0, le=65535)  # 0 = no metrics endpoint on `segbase relay`

    # --- realtime ----------------------------------------------------------------------------------------
    realtime_heartbeat_timeout_seconds: int = Field(60, ge=5)
    realtime_send_queue_size: int = Field(1000, ge=10)

    @field_validator("cors_allowed_origins", "webhook_api_keys", "trusted_proxies", "webhook_mask_url_hosts",
                     "auth_redirect_allow_list", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production_values(self) -> Settings:
        if len(self.jwt_secret.get_secret_value().encode()) < 32:
            raise SettingsError("JWT_SECRET must be at least 32 bytes")
        if self.env == "prod":
            if self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
                raise SettingsError("JWT_SECRET is the public development placeholder; set a secret for ENV=prod")
            if self.db_authenticator_password.get_secret_value() == DEV_AUTHENTICATOR_PASSWORD:
                raise SettingsError("DB_AUTHENTICATOR_PASSWORD is the development placeholder; set one for ENV=prod")
            if DEV_WEBHOOK_API_KEY in self.webhook_api_keys or not self.webhook_api_keys:
                raise SettingsError("WEBHOOK_API_KEYS must be set (not the development key) for ENV=prod")
            if "auth_site_url" not in self.model_fields_set:
                raise SettingsError("AUTH_SITE_URL must be set for ENV=prod (where auth redirects and mail links go)")
        return self

    @property
    def public_url(self) -> str:
        return (self.api_external_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @property
    def jwt_issuer(self) -> str:
        return f"{self.public_url}/auth/v1"

    def redis_key(self, *parts: str) -> str:
        """Namespace a Redis key, queue or pub/sub channel under INSTANCE_ID (pub/sub ignores database numbers)."""
        return ":".join((self.instance_id, *parts))

    def to_env(self) -> dict[str, str]:
        """Render as environment variables, for a child process that builds its own Settings."""
        env: dict[str, str] = {}
        for name, value in self:
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if isinstance(value, list):
                value = ",".join(value)
            elif isinstance(value, bool):
                value = "true" if value else "false"
            env[name.upper()] = str(value)
        return env


def documented_setting_names() -> set[str]:
    """Every environment variable Settings reads."""
    return {name.upper() for name in Settings.model_fields}
