"""Settings, read from the environment (prefix ``SNAPREPORT_``, nested with ``__``) and ``.env``.

Only ``bootstrap`` and the command line read settings; everything else receives plain values.
Settings that cannot work together are refused here, when they are loaded, with a message naming
the setting to fix (pydantic raises them as one ``ValidationError``), not when a channel starts.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REDIS_SCHEMES: tuple[str, ...] = ("redis://", "rediss://", "unix://")

DEFAULT_ALARM_TYPES: tuple[str, ...] = (
    "消防通道堵塞",
    "消防设施损坏",
    "垃圾堆放",
    "违规停车",
    "设施损坏",
    "漏水",
    "安全隐患",
    "其他",
)


MIN_API_KEY_CHARS = 8
MAX_API_KEY_CHARS = 256

DEFAULT_ALLOWED_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "[::1]")
_HOST_NAME = re.compile(r"\[[0-9a-f:.]+\]|[a-z0-9._-]+")


class SessionSettings(BaseModel):
    backend: Literal["memory", "sqlite", "redis"] = "memory"
    url: str = Field("", description="redis://... for redis, a file path for sqlite")
    ttl_seconds: float = Field(600.0, gt=0)
    max_turns: int = Field(10, ge=1, le=100)
    lock_timeout_seconds: float = Field(60.0, gt=0)
    lock_ttl_seconds: float = Field(10.0, gt=0)
    notice_grace_seconds: float = Field(86_400.0, ge=0)
    key_prefix: str = "snapreport"
    memory_kv_max_entries: int = Field(50_000, ge=1)

    @model_validator(mode="after")
    def _redis_needs_a_url(self) -> SessionSettings:
        if self.backend == "redis" and not self.url.startswith(REDIS_SCHEMES):
            raise ValueError(
                "SNAPREPORT_SESSION__URL must be a redis://, rediss:// or unix:// URL "
                "for the redis session backend"
            )
        return self


class VisionSettings(BaseModel):
    base_url: str = ""
    api_key: SecretStr = SecretStr("")
    model: str = "qwen-vl-max"
    timeout_seconds: float = Field(30.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    # understanding free text: the model asked (empty: ``model``) and the most a turn waits
    text_model: str = ""
    text_timeout_seconds: float = Field(8.0, gt=0, le=60)

    @property
    def enabled(self) -> bool:
        return bool(self.base_url)


class MediaSettings(BaseModel):
    backend: Literal["local", "s3"] = "local"
    root: Path = Path("data/media")
    endpoint_url: str = ""
    bucket: str = ""
    region: str = ""
    addressing_style: Literal["auto", "virtual", "path"] = "auto"
    access_key_id: SecretStr = SecretStr("")
    secret_access_key: SecretStr = SecretStr("")
    max_bytes: int = Field(20 * 1024 * 1024, gt=0)
    max_pixels: int = Field(50_000_000, gt=0)
    max_decodes: int = Field(2, ge=1, le=64)
    decode_wait_seconds: float = Field(5.0, ge=0)

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> MediaSettings:
        if self.backend == "s3" and not self.bucket:
            raise ValueError("SNAPREPORT_MEDIA__BUCKET is required for the s3 media backend")
        return self


class HttpSettings(BaseModel):
    body_timeout_seconds: float = Field(30.0, gt=0)
    admin_max_body_bytes: int = Field(8 * 1024 * 1024, gt=0)


class OrdersSettings(BaseModel):
    url: str = "sqlite+aiosqlite:///data/orders.db"


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except binascii.Error:
        return False
    return True


class DispatchSettings(BaseModel):
    rules_file: Path | None = Field(None, description="the routing rules (TOML); none: no teams")
    reopen_days: float = Field(7.0, gt=0, le=3650)


class Open311Settings(BaseModel):
    """The Open311 GeoReport v2 endpoint (``/open311/v2``)."""

    # the keys that may file requests (POST); none: every POST is refused
    api_keys: list[SecretStr] = Field(default_factory=list)
    # signs the photo links (media_url); empty: a random one per process
    media_secret: SecretStr = SecretStr("")
    media_url_ttl_seconds: int = Field(3600, ge=60, le=7 * 86_400)
    contact: str = Field("", max_length=500)
    key_service: str = Field("", max_length=500)

    @field_validator("api_keys")
    @classmethod
    def _keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for key in keys:
            value = key.get_secret_value()
            fits = MIN_API_KEY_CHARS <= len(value) <= MAX_API_KEY_CHARS
            if not fits or not value.isprintable() or " " in value:
                raise ValueError(
                    f"SNAPREPORT_OPEN311__API_KEYS: every key must be {MIN_API_KEY_CHARS} to "
                    f"{MAX_API_KEY_CHARS} printable characters without spaces; make one with "
                    "python -c 'import secrets; print(secrets.token_urlsafe(24))'"
                )
        return keys

    @field_validator("media_secret")
    @classmethod
    def _secret(cls, secret: SecretStr) -> SecretStr:
        value = secret.get_secret_value()
        if value and len(value) < MIN_API_KEY_CHARS * 2:
            raise ValueError(
                f"SNAPREPORT_OPEN311__MEDIA_SECRET must have at least {MIN_API_KEY_CHARS * 2} "
                "characters; make one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return secret


class WeComSettings(BaseModel):
    corp_id: str = ""
    agent_id: str = ""
    secret: SecretStr = SecretStr("")
    token: SecretStr = SecretStr("")
    encoding_aes_key: SecretStr = SecretStr("")
    api_base_url: str = "https://qyapi.weixin.qq.com"
    # where WeCom's in-app browser is sent to sign a person in (OAuth2 网页授权)
    oauth_url: str = "https://open.weixin.qq.com"

    @model_validator(mode="after")
    def _all_or_none(self) -> WeComSettings:
        given = {
            "CORP_ID": self.corp_id,
            "AGENT_ID": self.agent_id,
            "SECRET": self.secret.get_secret_value(),
            "TOKEN": self.token.get_secret_value(),
            "ENCODING_AES_KEY": self.encoding_aes_key.get_secret_value(),
        }
        missing = [name for name, value in given.items() if not value]
        if missing and len(missing) < len(given):
            names = ", ".join(f"SNAPREPORT_WECOM__{name}" for name in missing)
            raise ValueError(f"the WeCom channel needs every WeCom setting: set {names}, or none")
        key = self.encoding_aes_key.get_secret_value()
        if key and (len(key) != 43 or not _is_base64(key + "=")):
            raise ValueError(
                "SNAPREPORT_WECOM__ENCODING_AES_KEY must be the 43-character EncodingAESKey "
                "shown on the application's callback page in the WeCom admin console"
            )
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.corp_id)


class WebSettings(BaseModel):
    """The web page's identity: who a browser speaks for (see docs/security.md)."""

    # None: ``declared`` when the service runs open (no token), else ``signin``
    identity: Literal["declared", "signin"] | None = None
    # signs the WeCom sign-in ``state``; empty: derived from SNAPREPORT_WECOM__SECRET, which
    # every worker shares (a random per-process key would fail across workers)
    secret: SecretStr = SecretStr("")
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    link_minutes: float = Field(5.0, gt=0, le=60)


class OutboxSettings(BaseModel):
    """The outbox workers (docs/outbox.md); one runs in every server process."""

    worker: bool = True
    batch_size: int = Field(100, ge=1, le=1000)
    concurrency: int = Field(64, ge=1, le=1000)
    poll_seconds: float = Field(0.1, gt=0, le=60)
    lease_seconds: float = Field(120.0, gt=0)
    handler_timeout_seconds: float = Field(90.0, gt=0)
    max_attempts: int = Field(16, ge=1, le=100)
    backoff_base_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(3600.0, gt=0)
    wecom_pacing_max_wait_seconds: float = Field(60.0, ge=0)

    @model_validator(mode="after")
    def _timeouts_fit(self) -> OutboxSettings:
        if self.handler_timeout_seconds >= self.lease_seconds:
            raise ValueError(
                "SNAPREPORT_OUTBOX__HANDLER_TIMEOUT_SECONDS must be below "
                "SNAPREPORT_OUTBOX__LEASE_SECONDS (a job still running when its lease ends "
                "would be delivered twice)"
            )
        if self.wecom_pacing_max_wait_seconds >= self.handler_timeout_seconds:
            raise ValueError(
                "SNAPREPORT_OUTBOX__WECOM_PACING_MAX_WAIT_SECONDS must be below "
                "SNAPREPORT_OUTBOX__HANDLER_TIMEOUT_SECONDS"
            )
        return self


class WebhooksSettings(BaseModel):
    """Outgoing webhooks (docs/integrations.md)."""

    allow_private: bool = False  # targets on private, loopback, link-local addresses
    timeout_seconds: float = Field(15.0, gt=0, le=60)
    max_endpoints: int = Field(100, ge=1, le=1000)
    # the delivery log and sent messages are kept this long; longer than the retry schedule
    keep_days: int = Field(30, ge=2, le=3650)


class LiveSettings(BaseModel):
    """The live feed of order changes, ``GET /api/v1/events`` (docs/console.md)."""

    max_streams: int = Field(200, ge=1, le=100_000)  # open streams per process; more: 503
    heartbeat_seconds: float = Field(15.0, gt=0, le=300)
    retry_ms: int = Field(3000, ge=100, le=600_000)  # the SSE ``retry:`` sent to clients
    max_queued: int = Field(256, ge=1, le=100_000)  # events a slow stream may fall behind


class Settings(BaseSettings):
    """Every setting snapreport reads. See docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix="SNAPREPORT_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    session: SessionSettings = SessionSettings()
    vision: VisionSettings = VisionSettings()
    media: MediaSettings = MediaSettings()
    orders: OrdersSettings = OrdersSettings()
    wecom: WeComSettings = WeComSettings()
    http: HttpSettings = HttpSettings()
    dispatch: DispatchSettings = DispatchSettings()
    outbox: OutboxSettings = OutboxSettings()
    web: WebSettings = WebSettings()
    webhooks: WebhooksSettings = WebhooksSettings()
    live: LiveSettings = LiveSettings()
    # the IANA zone the console's days are counted in (stats grouped by day, CSV file names)
    timezone: str = "Asia/Shanghai"
    # the address people reach the service at (https://snap.example.com): the base of links
    # (notifications, sign-in) and of WeCom's redirect back; https makes the cookie Secure
    public_url: str = Field(
        "", pattern=r"^(https?://[^\s/?#]+(/[^\s?#]*)?)?$", description="base URL of links"
    )
    open311: Open311Settings = Open311Settings()
    api_token: SecretStr = SecretStr("")
    admin_token: SecretStr = SecretStr("")
    language: Literal["zh-CN", "en"] = "zh-CN"
    alarm_types: list[str] = Field(default_factory=lambda: list(DEFAULT_ALARM_TYPES))
    data_dir: Path = Path("data")
    rate_limit_per_minute: int = Field(30, ge=1)
    # open (no tokens), only requests whose Host is one of these names (any port) are answered
    allowed_hosts: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOWED_HOSTS))
    log_level: str = "INFO"
    # FastAPI's native OpenTelemetry (traces, metrics, logs to the global providers); off, it
    # costs nothing per request (on, FastAPI looks the providers up on every request)
    opentelemetry: bool = False

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"SNAPREPORT_TIMEZONE: {name!r} is not an IANA time zone (e.g. Asia/Shanghai)"
            ) from exc
        return name

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, hosts: list[str]) -> list[str]:
        names = [h.strip().lower() for h in hosts]
        for name in names:
            if not _HOST_NAME.fullmatch(name):
                raise ValueError(
                    f"SNAPREPORT_ALLOWED_HOSTS: {name!r} is not a host name; give names without "
                    'scheme or port, IPv6 in brackets, e.g. ["localhost","127.0.0.1","[::1]"]'
                )
        return names
