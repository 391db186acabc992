"""The one Settings object: built at each entry point from the environment (and an optional `.env`), passed down.

Tests construct `Settings(...)` directly (with `_env_file=None`) and never edit `os.environ`; a child process
gets its settings through `Settings.to_env()`.
"""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Supabase's published local-development secret: fine for ENV=dev, refused for ENV=prod.
DEV_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
DEV_AUTHENTICATOR_PASSWORD = "authenticator-dev-password"
DEV_WEBHOOK_API_KEY = "dev-webhook-key"
DEV_SITE_URL = "http://127.0.0.1:3000"  # the Supabase CLI's default site URL

CommaList = Annotated[list[str], NoDecode]
PROJECT_DIR = Path(__file__).resolve().parent.parent


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
    max_json_depth: int = Field(64, ge=1, le=500)  # deeper JSON bodies and frames are refused (400)
    rest_max_rows: int = Field(1000, ge=1, le=100_000)  # /rest/v1 reads return at most this many rows
    rest_schemas: CommaList = ["public"]  # schemas /rest/v1 exposes; the first is the default profile
    rest_aggregates_enabled: bool = False  # PostgREST's db-aggregates-enabled: count()/sum()/... in select
    metrics_enabled: bool = True
    metrics_token: SecretStr | None = None  # when set, /metrics needs `Authorization: Bearer <token>`; ENV=prod: required
    metrics_bind_address: str = "127.0.0.1"  # where the worker's and relay's metrics endpoints listen

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
    auth_admin_roles: CommaList = ["service_role", "supabase_admin"]  # token roles the admin API serves (GoTrue's)
    auth_disable_signup: bool = False  # refuse new sign-ups (admin creation and invites still work)
    auth_mailer_otp_expiry_seconds: int = Field(3600, ge=60, le=86_400)  # life of a mailed link or code
    auth_rate_limit_email_sent: int = Field(30, ge=1)  # auth mails per hour, all addresses (GoTrue's)
    auth_email_max_frequency_seconds: int = Field(60, ge=0)  # least time between two mails to one address
    smtp_host: str = "127.0.0.1"  # the development mail catcher `segbase run` starts
    smtp_port: int = Field(54325, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_pass: SecretStr | None = None
    smtp_sender: str = "segbase <noreply@segbase.localhost>"
    smtp_starttls: bool = False  # upgrade with STARTTLS (usually port 587)
    smtp_tls: bool = False  # implicit TLS from the first byte (usually port 465); neither: plain SMTP
    mail_catcher_port: int = Field(54324, ge=0, le=65535)  # dev: where `segbase run` shows caught mails (0: off)

    # --- credits and retention ---------------------------------------------------------------------------
    credits_per_segmentation: int = Field(1, ge=0)
    credits_per_upload: int = Field(0, ge=0)  # charged per object a user uploads to /storage/v1
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
    result_url_allow_http: bool = False  # source_image_url / mask_url may be http:// (development only)
    result_url_max_length: int = Field(2048, ge=64, le=65_536)
    inbox_max_attempts: int = Field(5, ge=1)
    inbox_batch_size: int = Field(50, ge=1, le=1000)  # events one worker delivery claims and applies together
    # process-webhook's group commit: concurrent requests' inbox rows committed in one transaction (1: one each).
    webhook_group_commit_max_events: int = Field(50, ge=1, le=1000)
    webhook_group_commit_window_ms: float = Field(1.0, ge=0, le=50)
    inbox_sweep_enabled: bool = True
    inbox_sweep_delay_seconds: int = Field(60, ge=1)
    inbox_sweep_interval_seconds: int = Field(30, ge=1)
    result_timeout_seconds: int = Field(3600, ge=1)

    # --- job dispatch to the inference backend (docs/DISPATCH.md) --------------------------------------------
    dispatch_mode: Literal["off", "push", "pull"] = "off"
    dispatch_url: str | None = None  # push: where jobs are POSTed
    dispatch_signing_secret: SecretStr | None = None  # push: `whsec_...` (Standard Webhooks)
    dispatch_timeout_seconds: float = Field(10.0, gt=0, le=300)  # one push attempt, connect to last byte
    dispatch_retry_schedule: CommaList = ["0", "5", "30", "120", "300", "900", "1800"]  # seconds before attempt n
    dispatch_retry_jitter: float = Field(0.2, ge=0, le=1)  # each delay is scaled by a random factor in 1 ± this
    dispatch_retry_after_max_seconds: int = Field(3600, ge=1)  # longest Retry-After honoured on 429/503
    dispatch_max_in_flight: int = Field(16, ge=1, le=10_000)  # push attempts in flight to the endpoint
    # push: attempts the active releaser delivers itself (threads of `segbase relay`); the rest go to workers
    dispatch_relay_threads: int = Field(0, ge=0, le=256)
    dispatch_circuit_failure_threshold: int = Field(5, ge=1)  # consecutive failures that open the circuit
    dispatch_circuit_open_seconds: int = Field(30, ge=1)  # first open period (doubles per failed probe)
    dispatch_circuit_max_open_seconds: int = Field(600, ge=1)
    dispatch_queue_timeout_seconds: int = Field(3600, ge=1)  # a job never delivered nor leased ends here
    dispatch_url_ttl_seconds: int = Field(900, ge=60, le=7 * 24 * 3600)  # signed URLs in a job
    dispatch_claim_max_jobs: int = Field(100, ge=1, le=1000)  # most jobs one claim-jobs call may ask for
    dispatch_max_lease_seconds: int = Field(3600, ge=5)  # longest lease claim-jobs/extend-lease grant
    dispatch_max_wait_seconds: int = Field(30, ge=0, le=300)  # longest claim-jobs long-poll
    dispatch_max_waiters: int = Field(200, ge=1)  # long-polling claim-jobs calls per API process
    demo_backend_enabled: bool = False  # `segbase run` also starts `segbase demo-backend` (stand-in model)
    demo_backend_port: int = Field(54329, ge=0, le=65535)  # push mode: where the demo backend listens

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
    # What one client may hold (docs/REALTIME.md, "Limits"); benchmarks and tests that need more raise them.
    realtime_max_message_bytes: int = Field(256 * 1024, ge=1024, le=1024 * 1024)  # larger → close 1009
    realtime_max_channels_per_socket: int = Field(100, ge=1)  # Supabase's per-connection channel limit
    realtime_max_sockets_per_ip: int = Field(100, ge=1)  # per API process
    realtime_max_sockets_per_user: int = Field(25, ge=1)  # per API process; counted once a channel joins as them
    realtime_joins_per_second: float = Field(10.0, gt=0)  # per socket, bursts up to the channel limit
    realtime_http_reserve: int = Field(200, ge=1)  # of API_WORKER_CONNECTIONS, never taken by sockets
    realtime_messages_retention_hours: int = Field(72, ge=1)  # realtime.messages kept for Broadcast Replay
    realtime_presence_ttl_seconds: int = Field(30, ge=5)  # a crashed process's presences leave after this
    realtime_messages_per_second: float = Field(100.0, gt=0)  # broadcast + presence pushes per socket
    realtime_recovery_max_age_seconds: int = Field(3600, ge=1)  # postgres_changes recovery looks back at most this
    realtime_recovery_max_changes: int = Field(500, ge=1)  # and replays at most this many changes per rejoin

    # --- storage (/storage/v1) ---------------------------------------------------------------------------
    storage_backend: Literal["file", "s3"] = "file"
    storage_dir: str = "data/storage"  # file backend; a relative path is taken from the project's folder
    storage_s3_endpoint: str | None = None  # e.g. http://127.0.0.1:9000; unset: AWS's endpoint for the region
    storage_s3_bucket: str = "segbase-storage"
    storage_s3_region: str = "us-east-1"
    storage_s3_access_key_id: str | None = None
    storage_s3_secret_access_key: SecretStr | None = None
    storage_max_file_size: int = Field(50 * 1024 * 1024, ge=1)  # bytes; a bucket's file_size_limit may lower it
    storage_signed_url_max_expiry_seconds: int = Field(365 * 24 * 3600, ge=1)  # most a signed download URL lives
    storage_signed_upload_expiry_seconds: int = Field(7200, ge=10)  # lifetime of a signed upload URL
    storage_upload_timeout_seconds: int = Field(3600, ge=60)  # an upload still writing after this is abandoned
    storage_janitor_interval_seconds: int = Field(300, ge=1)  # how often beat removes abandoned and deleted blobs
    storage_render_max_source_bytes: int = Field(25 * 1024 * 1024, ge=1)  # largest image /render/image/ reads
    storage_render_max_pixels: int = Field(50_000_000, ge=1)  # largest image (width x height) it decodes
    storage_render_cache_bytes: int = Field(64 * 1024 * 1024, ge=0)  # rendered images kept per API process
    # --- auth: Google and Apple sign-in (OpenID Connect ID tokens), identity linking ---------------------
    auth_google_enabled: bool = False
    auth_google_client_ids: CommaList = []  # web, iOS, Android client IDs; the first one runs the redirect flow
    auth_google_client_secret: SecretStr | None = None  # the web client's secret, for the redirect flow
    auth_google_discovery_url: str = "https://accounts.google.com/.well-known/openid-configuration"
    auth_google_skip_nonce_check: bool = False  # for iOS SDKs that put a nonce the app never sees in the token
    auth_apple_enabled: bool = False
    auth_apple_client_ids: CommaList = []  # bundle IDs and Services IDs
    auth_apple_discovery_url: str = "https://appleid.apple.com/.well-known/openid-configuration"
    auth_manual_linking_enabled: bool = True  # GET /user/identities/authorize and DELETE /user/identities/{id}
    # --- operator console --------------------------------------------------------------------------------
    console_enabled: bool = True
    console_external_url: str | None = None  # serve /console only on this origin (and nothing else there)
    console_session_hours: int = Field(12, ge=1, le=24 * 30)
    console_bulk_replay_max: int = Field(500, ge=1, le=10_000)  # events one bulk replay may move
    console_stuck_after_seconds: int = Field(600, ge=1)  # an unfinished result without progress this long is stuck

    @field_validator("cors_allowed_origins", "webhook_api_keys", "trusted_proxies", "webhook_mask_url_hosts",
                     "dispatch_retry_schedule", "rest_schemas",
                     "auth_redirect_allow_list", "auth_admin_roles", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _leave_room_for_http(self) -> Settings:
        if self.realtime_http_reserve >= self.api_worker_connections:
            raise SettingsError(f"REALTIME_HTTP_RESERVE ({self.realtime_http_reserve}) must be less than "
                                f"API_WORKER_CONNECTIONS ({self.api_worker_connections}): sockets need room too")
        return self

    @model_validator(mode="after")
    def _one_smtp_security(self) -> Settings:
        if self.smtp_starttls and self.smtp_tls:
            raise SettingsError("SMTP_STARTTLS and SMTP_TLS exclude each other: STARTTLS upgrades a plain connection, "
                                "SMTP_TLS starts with TLS")
        return self

    @property
    def realtime_max_sockets(self) -> int:
        """Sockets one API worker process holds at most: what API_WORKER_CONNECTIONS leaves after the HTTP reserve."""
        return self.api_worker_connections - self.realtime_http_reserve

    @model_validator(mode="after")
    def _refuse_unsafe_production_values(self) -> Settings:
        if len(self.jwt_secret.get_secret_value().encode()) < 32:
            raise SettingsError("JWT_SECRET must be at least 32 bytes")
        if self.env == "prod":
            if self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
                raise SettingsError("JWT_SECRET is the public development placeholder; set a secret for ENV=prod")
            if self.db_authenticator_password.get_secret_value() == DEV_AUTHENTICATOR_PASSWORD:
                raise SettingsError("DB_AUTHENTICATOR_PASSWORD is the development placeholder; set one for ENV=prod")
            if self.metrics_enabled and not (self.metrics_token and self.metrics_token.get_secret_value()):
                raise SettingsError("METRICS_TOKEN must be set for ENV=prod (the API serves /metrics only with "
                                    "`Authorization: Bearer <METRICS_TOKEN>`), or set METRICS_ENABLED=false")
            if self.result_url_allow_http:
                raise SettingsError("RESULT_URL_ALLOW_HTTP is for development; turn it off for ENV=prod")
            if DEV_WEBHOOK_API_KEY in self.webhook_api_keys or not self.webhook_api_keys:
                raise SettingsError("WEBHOOK_API_KEYS must be set (not the development key) for ENV=prod")
            if "auth_site_url" not in self.model_fields_set:
                raise SettingsError("AUTH_SITE_URL must be set for ENV=prod (where auth redirects and mail links go)")
        self._check_dispatch()
        return self

    def _check_dispatch(self) -> None:
        delays = self.dispatch_retry_delays
        if not delays or any(delay < 0 for delay in delays):
            raise SettingsError("DISPATCH_RETRY_SCHEDULE must list one or more delays in seconds, each >= 0")
        if sum(delays) >= self.dispatch_queue_timeout_seconds:
            raise SettingsError(f"DISPATCH_RETRY_SCHEDULE adds up to {sum(delays):g} s: it must fit inside "
                                f"DISPATCH_QUEUE_TIMEOUT_SECONDS ({self.dispatch_queue_timeout_seconds} s)")
        if self.dispatch_mode == "push":
            if not self.dispatch_url or not self.dispatch_url.startswith(("http://", "https://")):
                raise SettingsError("DISPATCH_MODE=push needs DISPATCH_URL (an http(s) URL)")
            secret = self.dispatch_signing_secret.get_secret_value() if self.dispatch_signing_secret else ""
            try:
                key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
            except ValueError:
                key = b""
            if not secret.startswith("whsec_") or len(key) < 24:
                raise SettingsError("DISPATCH_MODE=push needs DISPATCH_SIGNING_SECRET: whsec_ followed by the base64 "
                                    "of at least 24 random bytes (Standard Webhooks)")

    @field_validator("auth_google_client_ids", "auth_apple_client_ids", mode="before")
    @classmethod
    def _split_client_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _providers_have_audiences(self) -> Settings:
        for name, enabled, client_ids in (("GOOGLE", self.auth_google_enabled, self.auth_google_client_ids),
                                          ("APPLE", self.auth_apple_enabled, self.auth_apple_client_ids)):
            if enabled and not client_ids:
                raise SettingsError(f"AUTH_{name}_ENABLED needs AUTH_{name}_CLIENT_IDS: the client IDs its ID tokens "
                                    f"are issued to (every token's aud must be one of them)")
        return self

    @property
    def dispatch_retry_delays(self) -> list[float]:
        """DISPATCH_RETRY_SCHEDULE as seconds: the wait before attempt 1, 2, …; its length is the attempt budget."""
        try:
            return [float(delay) for delay in self.dispatch_retry_schedule]
        except ValueError as exc:
            raise SettingsError(f"DISPATCH_RETRY_SCHEDULE: {exc}") from exc

    @property
    def public_url(self) -> str:
        return (self.api_external_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @property
    def storage_object_url_prefix(self) -> str:
        """`//host[:port][/path]/storage/v1/object/authenticated/`: this deployment's authenticated object URLs
        without their scheme (a result may name an object by such a URL, http or https)."""
        return self.public_url.split(":", 1)[1] + "/storage/v1/object/authenticated/"

    @property
    def storage_path(self) -> Path:
        """STORAGE_DIR as an absolute path (a relative one is taken from the project's folder)."""
        path = Path(self.storage_dir)
        return path if path.is_absolute() else PROJECT_DIR / path

    @property
    def console_url(self) -> str:
        return (self.console_external_url or self.public_url).rstrip("/") + "/console"

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
