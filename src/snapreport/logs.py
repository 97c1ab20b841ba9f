"""Structured logs: JSON lines when the output is not a terminal, readable lines when it is.

Request handlers bind ``request_id`` and ``user_id`` to the context (structlog contextvars);
every line logged while the request runs carries them. A redaction step runs last before
rendering: values under secret-looking keys are masked and long byte strings or base64-like
text are replaced by their length, so neither image bytes nor tokens reach a log.
"""

from __future__ import annotations

import json as _json
import logging
import re
import sys
import time
from collections.abc import Mapping, MutableMapping
from typing import Any, Final, TextIO

import msgspec
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

SECRET_KEYS: Final = frozenset(
    {
        "authorization",
        "token",
        "api_token",
        "admin_token",
        "api_key",
        "secret",
        "password",
        "encoding_aes_key",
        "access_key_id",
        "secret_access_key",
        "cookie",
    }
)
BULKY_KEYS: Final = frozenset({"image", "data", "body", "content"})
MAX_VALUE_CHARS: Final = 500
NOISY_LOGGERS: Final = ("alembic", "botocore", "boto3", "urllib3", "aiosqlite", "httpx")
_BASE64ISH_MIN: Final = 200  # shorter runs are ids and keys (a sha256 is 64), worth logging
_BASE64ISH: Final = re.compile(rf"[A-Za-z0-9+/=_-]{{{_BASE64ISH_MIN},}}")


def _redact_value(key: str, value: Any) -> Any:
    lowered = key.lower()
    if _is_secret(key):
        return "[redacted]"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        if len(value) < _BASE64ISH_MIN:  # the common case: short, nothing to hide
            return value
        if lowered in BULKY_KEYS:
            return f"<{len(value)} chars>"
        value = _BASE64ISH.sub(lambda m: f"<{len(m.group())} chars>", value)
        if len(value) > MAX_VALUE_CHARS:
            return value[:MAX_VALUE_CHARS] + f"…<{len(value)} chars>"
        return value
    if isinstance(value, Mapping):
        return {str(k): _redact_value(str(k), v) for k, v in value.items()}
    return value


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return lowered in SECRET_KEYS or lowered.endswith(("_token", "_secret", "_key"))


_secret_keys: dict[str, bool] = {}  # key -> _is_secret(key): log keys are a small, fixed set
_MAX_CACHED_KEYS: Final = 4096
_PLAIN: Final = frozenset({int, float, bool})


def _secret(key: str) -> bool:
    verdict = _secret_keys.get(key)
    if verdict is None:
        verdict = _is_secret(key)
        if len(_secret_keys) < _MAX_CACHED_KEYS:
            _secret_keys[key] = verdict
    return verdict


def redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """A structlog processor: no secrets, no image bytes, no huge values."""
    verdicts = _secret_keys
    for key, value in event_dict.items():
        # the common case, short plain values under ordinary keys, is left alone quickly
        kind = type(value)
        if (kind is str and len(value) < _BASE64ISH_MIN) or kind in _PLAIN:
            secret = verdicts.get(key)
            if secret is None:
                secret = _secret(key)
            if not secret:
                continue
        elif value is None:
            continue
        event_dict[key] = _redact_value(key, value)
    return event_dict


def timestamp(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """A structlog processor: ``timestamp`` in UTC ISO 8601 with microseconds, as
    ``2026-01-02T03:04:05.123456Z`` (the date and time formatted once a second)."""
    now = time.time()
    second = int(now)
    global _stamp
    stamp = _stamp  # one (second, prefix) pair: safe when threads log too
    if stamp[0] != second:
        stamp = _stamp = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    event_dict["timestamp"] = f"{stamp[1]}.{int((now - second) * 1e6):06d}Z"
    return event_dict


_stamp: tuple[int, str] = (-1, "")


def _fallback(obj: Any) -> Any:
    """What a value JSON cannot hold becomes: its ``__structlog__()`` if it has one (as
    structlog's own JSON renderer does), else its ``repr``."""
    structlog_form = getattr(obj, "__structlog__", None)
    return structlog_form() if callable(structlog_form) else repr(obj)


_encoder: Final = msgspec.json.Encoder(enc_hook=_fallback)


def render_json(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    """A structlog renderer: the event as one compact JSON line (non-ASCII kept as is).

    msgspec encodes the usual values several times faster than ``json.dumps``; anything it
    refuses (say, a dict with tuple keys) goes through ``json.dumps`` with the same fallback.
    """
    try:
        return _encoder.encode(event_dict).decode()
    except (TypeError, ValueError, msgspec.EncodeError):
        return _json.dumps(event_dict, ensure_ascii=False, default=_fallback)


class _Stdout:
    """Writes to whatever ``sys.stdout`` is at the time (it may be swapped after configuring,
    by test runners or daemonising), never to a stream that has since been closed."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return sys.stdout.isatty()


def configure_logging(
    level: str = "INFO", *, json: bool | None = None, stream: TextIO | None = None
) -> None:
    """Configure structlog (and route the standard library's logging through it).

    ``json`` defaults to "not a terminal". Safe to call again (tests do, with a ``stream``).
    """
    out: TextIO = stream if stream is not None else _Stdout()  # type: ignore[assignment]
    if json is None:
        json = not out.isatty()
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        timestamp,
    ]
    renderer: Processor = (
        render_json if json else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # one write and one flush per line (print() writes the line and its newline apart)
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # the standard library's records (uvicorn, libraries) go through the same renderer
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                redact,
                renderer,
            ],
        )
    )
    global _generation
    _generation += 1  # every _Logger binds again, to this configuration
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    for noisy in NOISY_LOGGERS:  # their INFO lines say nothing an operator needs
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))


def uvicorn_log_config() -> dict[str, Any]:
    """A uvicorn ``log_config`` that leaves its loggers to the root handler set up above."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }


_generation = 0  # how many times configure_logging has run


class _Logger:
    """A structlog logger named ``name``, bound once per ``configure_logging``.

    structlog's lazy proxy binds a new logger on every call unless told to cache, and a cached
    one keeps the first configuration for good (tests configure again, with their own stream).
    This one binds on first use and again after each ``configure_logging``: one integer
    comparison per call instead of a logger built per line.
    """

    __slots__ = ("_bound", "_generation", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._bound: Any = None
        self._generation = -1

    def __getattr__(self, method: str) -> Any:
        if self._generation != _generation:
            self._bound = structlog.get_logger(self._name).bind()
            self._generation = _generation
        return getattr(self._bound, method)


def get_logger(name: str) -> Any:
    """A structlog logger named ``name`` (see ``_Logger``)."""
    return _Logger(name)


def bind(**values: Any) -> None:
    """Bind values to every log line of the current request (or task)."""
    structlog.contextvars.bind_contextvars(**values)


def context() -> MutableMapping[str, Any]:
    return structlog.contextvars.get_contextvars()
