"""One typed settings object for the whole platform, read from ``SHGOV_*`` environment variables.

Nested sections use ``__`` as the delimiter, e.g. ``SHGOV_DATABASE__URL`` — the common ones also have
short aliases (``SHGOV_DATABASE_URL``, ``SHGOV_EVENTS_URL``) because operators type them most.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A well-known placeholder: accepted only in the dev environment so that a forgotten secret in
# production fails at start-up instead of signing sessions with a value printed in the docs.
DEV_SECRET = "dev-only-insecure-secret-change-me"  # noqa: S105

Environment = Literal["dev", "test", "prod"]


class DatabaseSettings(BaseModel):
    """Transactional storage (SQLite by default, PostgreSQL in production)."""

    url: str = ""
    echo: bool = False
    pool_size: int = Field(default=10, ge=1)
    # How long a unit of work waits for its turn to write (SQLite: one writer at a time) before the
    # database counts as unavailable (503).
    write_wait_seconds: float = Field(default=15.0, gt=0)


class AnalyticsSettings(BaseModel):
    """DuckDB over Parquet: where the lake lives and how much memory DuckDB may take."""

    lake_dir: Path | None = None
    memory_limit: str = "2GB"
    threads: int = Field(default=2, ge=1)
    # For each query of the open-data portal (many at once, public): sorts and downloads spill to disk.
    open_data_memory_limit: str = "512MB"


class EventSettings(BaseModel):
    """The outbox relay: in-process delivery by default, NATS JetStream when ``url`` is set."""

    url: str = ""
    stream: str = "SHGOV"
    subject_prefix: str = "shgov.events"
    poll_seconds: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=100, ge=1)
    max_attempts: int = Field(default=10, ge=1)


class WebSettings(BaseModel):
    """HTTP serving: bind address, request-size limit and the session signing key."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Processes serving requests: each has its own caches, gateway rate buckets and audit checkpoints.
    workers: int = Field(default=1, ge=1, le=64)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # After SIGTERM, how long open requests and live streams may take to finish before they are cut (the
    # background workers are then stopped and the outbox and audit flushed).
    shutdown_seconds: float = Field(default=5.0, gt=0, le=120)
    session_secret: SecretStr = SecretStr(DEV_SECRET)
    default_locale: str = "zh_CN"
    public_url: str = "http://127.0.0.1:8000"


class OIDCSettings(BaseModel):
    """Sign-in through an external OpenID Connect provider (off unless ``enabled``)."""

    enabled: bool = False
    metadata_url: str = ""
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    scope: str = "openid profile"
    username_claim: str = "preferred_username"
    name_claim: str = "name"
    # The claims that carry the proven 身份证号 of a person / 统一社会信用代码 of an enterprise ("" to ignore).
    id_number_claim: str = "id_number"
    credit_code_claim: str = "credit_code"
    button_label: str = "统一身份认证"


class SecuritySettings(BaseModel):
    """Sign-in, tokens, sessions and the audit log."""

    token_ttl_seconds: int = Field(default=3600, ge=60)
    session_ttl_seconds: int = Field(default=8 * 3600, ge=300)
    max_failed_logins: int = Field(default=5, ge=1)
    lockout_minutes: int = Field(default=15, ge=1)
    cookie_secure: bool | None = None
    # The audit chain's HMAC-SM3 key, kept outside the database: this secret (32+ characters) or, when empty,
    # the key file (default <data_dir>/keys/audit-hmac.key, created 0600 on first use).
    audit_key: SecretStr = SecretStr("")
    audit_key_file: Path | None = None
    # The SM2 key that signs the audit checkpoints (default <data_dir>/keys/audit-sm2.key, created on first use).
    audit_signing_key_file: Path | None = None
    # Signed checkpoints of the chain's end go here (default <data_dir>/audit/checkpoints): every this many
    # records or seconds, and at shutdown. Point it at storage the database's administrators cannot rewrite.
    audit_checkpoint_dir: Path | None = None
    audit_checkpoint_records: int = Field(default=1000, ge=1)
    audit_checkpoint_seconds: float = Field(default=10.0, gt=0)
    # The most audit records one group commit of the sharing gateway writes in one transaction.
    audit_batch_size: int = Field(default=500, ge=1)
    # How long the sharing gateway reuses a client's checked token + grant (0: check every call). A change
    # made in this process is seen at once; one made by another process within this time.
    decision_cache_seconds: float = Field(default=1.0, ge=0, le=60)
    oidc: OIDCSettings = OIDCSettings()

    @field_validator("audit_key_file", "audit_signing_key_file", "audit_checkpoint_dir", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: object) -> object:
        return None if value == "" else value


class ServicesSettings(BaseModel):
    """一网通办: e-licence signing, deadline warnings and kiosk sessions."""

    # The SM2 key that signs issued e-licences (hex private key on the first line). Created on first use
    # under ``<data_dir>/keys/`` when not set; production points this at a key kept outside the data folder.
    licence_key_file: Path | None = None

    @field_validator("licence_key_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    # A task or case is flagged "due soon" this many working days before its promised deadline.
    warn_working_days: int = Field(default=2, ge=0, le=30)
    # A kiosk signs its visitor out after this much inactivity.
    kiosk_idle_seconds: int = Field(default=90, ge=15, le=1800)


class WorkOrdersSettings(BaseModel):
    """一网统管: when a person triages, how long the warnings run, what counts as a duplicate."""

    # Below this classifier confidence an order waits in the human triage queue instead of being dispatched.
    triage_confidence: float = Field(default=0.4, ge=0.0, le=1.0)
    # A step's warning starts this many hours before its limit.
    warn_hours: float = Field(default=24, ge=0, le=240)
    # A new order this close (metres) and this recent (hours) to an open one with similar text is a likely duplicate.
    duplicate_metres: float = Field(default=150, ge=1, le=5000)
    duplicate_hours: float = Field(default=72, ge=1, le=2160)
    # …and this similar (character-bigram Jaccard, plus 0.15 for the same category).
    duplicate_similarity: float = Field(default=0.3, ge=0.0, le=1.0)
    # Open311 GeoReport v2: the jurisdiction this server answers for.
    open311_jurisdiction: str = "shanghai.gov.cn"
    # The demo city starts with this many orders of the past fortnight (0: none), so the centre has work to show.
    demo_orders: int = Field(default=360, ge=0, le=100_000)


class SensingSettings(BaseModel):
    """城市运行数字体征: where readings come from, how long a reading may be late, how durable an ack is."""

    # The MQTT broker the web process subscribes to (mqtt://host:port); empty: readings come over HTTP only,
    # or through a separate `shgov sensing ingest` process.
    mqtt_url: str = ""
    # Several ingest processes share the topics through this MQTT shared-subscription group.
    mqtt_group: str = "shgov-ingest"
    # The first level of the topics: <root>/{tenant}/readings/{device_type}.
    mqtt_root: str = Field(default="shgov", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    # The ingest process's name: it owns ``<data_dir>/sensing/wal/<node>/`` and names its Parquet files.
    node: str = Field(default="main", pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    # Accepted readings go from the write-ahead log to Parquet this often.
    flush_seconds: float = Field(default=5.0, gt=0, le=3600)
    # An acknowledgement waits for the log to reach the disk (fsync); off only for throw-away benchmarks.
    fsync: bool = True
    # A reading stamped further ahead than this is "in the future" (clocks of gateways drift).
    max_future_seconds: int = Field(default=120, ge=0, le=86_400)
    # Readings older than this are refused as too old (the replay command takes any age).
    max_age_hours: float = Field(default=72, gt=0, le=24 * 366)
    # Accepted timestamps kept per device and measure to recognise a repeated reading.
    dedupe_window: int = Field(default=4, ge=1, le=64)
    # The web process drives its registered devices with the simulator (the demo city; never in production).
    simulate: bool = False
    # The web process evaluates the vital signs and their warnings this often.
    watch_seconds: float = Field(default=15.0, gt=0, le=3600)
    # The device registry is re-read this often (a bulk import also asks for it at once).
    registry_seconds: float = Field(default=30.0, gt=0, le=3600)
    # Seasonal anomalies: a district's mean over the last ``seasonal_window_minutes`` against the same window on
    # each of the last ``seasonal_days`` days; an area with fewer than ``seasonal_min_days`` of them is learning.
    seasonal_window_minutes: int = Field(default=60, ge=5, le=24 * 60)
    seasonal_days: int = Field(default=28, ge=2, le=366)
    seasonal_min_days: int = Field(default=7, ge=2, le=366)

    @model_validator(mode="after")
    def _learning_fits(self) -> SensingSettings:
        if self.seasonal_min_days > self.seasonal_days:
            raise ValueError("seasonal_min_days cannot exceed seasonal_days")
        return self


_SOURCES = SettingsConfigDict(
    env_prefix="SHGOV_",
    env_nested_delimiter="__",
    env_file=".env",
    env_file_encoding="utf-8",
    extra="ignore",
)


class Settings(BaseSettings):
    """Every setting of SH-GOV. ``.env.example`` documents each one."""

    model_config = _SOURCES

    env: Environment = "prod"
    city_code: str = "310000"
    city_name: str = "上海市"
    # The city's time zone: times shown to people are local times.
    timezone: str = "Asia/Shanghai"
    data_dir: Path = Path("var")
    secret_key: SecretStr = SecretStr(DEV_SECRET)
    log_level: str = "INFO"
    log_json: bool = True
    demo_persons: int = Field(default=20_000, ge=100)
    dispute_deadline_days: int = Field(default=5, ge=1, le=60)
    max_upload_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)

    database: DatabaseSettings = DatabaseSettings()
    analytics: AnalyticsSettings = AnalyticsSettings()
    events: EventSettings = EventSettings()
    web: WebSettings = WebSettings()
    security: SecuritySettings = SecuritySettings()
    services: ServicesSettings = ServicesSettings()
    workorders: WorkOrdersSettings = WorkOrdersSettings()
    sensing: SensingSettings = SensingSettings()

    # Short aliases for the settings operators set most often.
    database_url: str = ""
    events_url: str = ""

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        if self.database_url and not self.database.url:
            self.database.url = self.database_url
        if self.events_url and not self.events.url:
            self.events.url = self.events_url
        if not self.database.url:
            self.database.url = f"sqlite:///{(self.data_dir / 'shgov.db').as_posix()}"
        if self.analytics.lake_dir is None:
            self.analytics.lake_dir = self.data_dir / "lake"
        if self.security.oidc.enabled and not (self.security.oidc.metadata_url and self.security.oidc.client_id):
            raise ValueError("SHGOV_SECURITY__OIDC__METADATA_URL and __CLIENT_ID are needed when OIDC is enabled")
        if self.env != "dev":
            defaults = [
                name
                for name, secret in (
                    ("SHGOV_SECRET_KEY", self.secret_key),
                    ("SHGOV_WEB__SESSION_SECRET", self.web.session_secret),
                )
                if secret.get_secret_value() == DEV_SECRET or len(secret.get_secret_value()) < 16
            ]
            if defaults:
                raise ValueError(
                    f"{', '.join(defaults)} must be set to a secret of at least 16 characters "
                    f"when SHGOV_ENV={self.env} (the built-in default is allowed only with SHGOV_ENV=dev)"
                )
        return self

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry ``Secure`` unless set otherwise (off in dev, where the demo runs on http)."""
        if self.security.cookie_secure is not None:
            return self.security.cookie_secure
        return self.env == "prod"

    @property
    def lake_dir(self) -> Path:
        """The Parquet lake directory (always set after validation)."""
        assert self.analytics.lake_dir is not None  # noqa: S101 - set by the validator
        return self.analytics.lake_dir
