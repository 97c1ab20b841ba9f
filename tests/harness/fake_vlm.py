"""Pytest plugin: ``fake_vlm``, an OpenAI-compatible vision model on 127.0.0.1.

A real HTTP server (``http.server``, threaded) on an ephemeral port, in a background thread,
speaking the chat-completions protocol as the hosted VLMs do. One per test (function scope).

Attributes and methods (a stable API; other suites rely on it):

``url``
    Base URL ending in ``/v1``; the endpoint is ``{url}/chat/completions``.
``api_key`` / ``model``
    The Bearer key it accepts (anything else: 401 with an OpenAI error body) and a model name.
``enqueue_json(obj, *, delay=0.0)``
    The next answer's ``message.content`` is ``json.dumps(obj)``.
``enqueue_content(text, *, delay=0.0)``
    The next answer's content is ``text`` verbatim (fenced JSON, prose, garbage...).
``enqueue_intent(obj, *, delay=0.0)`` / ``enqueue_intent_content(text, *, delay=0.0)``
    The next answer to a text-understanding request (one whose system prompt names the
    ``"intent"`` field) is ``json.dumps(obj)`` / ``text`` verbatim. Such requests are answered
    from this queue only, so scripted photo and chat answers keep their order; when it is
    empty they get ``default_intent``.
``enqueue_intent_error(status)``
    The next text-understanding request gets an HTTP error ``status``.
``enqueue_error(status, *, retry_after=None, message=None, code=None)``
    The next answer is an HTTP error ``status`` with ``{"error": {"message", "type", "code"}}``
    and, if given, a ``Retry-After`` header.
``delay``
    Seconds to wait before every answer (0 by default); scripted answers may add their own.
``default_analysis`` / ``default_verification`` / ``default_chat``
    What is answered when the queue is empty: for a request with two or more images (a close
    verification) ``{"resolved": true, "note": ...}``; for other requests in JSON mode or whose
    prompt mentions JSON, the analysis ``{"alarm_type": "消防通道堵塞", "description": ...,
    "confidence": 0.9}``; for plain chat a short text. Tests may reassign them.
``default_intent``
    ``{"intent": "none"}``: an intent the dialogue does not know, so it goes on as it would
    without understanding.
``intent_requests`` / ``vision_requests``
    The text-understanding requests among ``requests``, and all the others.
``requests``
    Every request that reached ``/v1/chat/completions``, oldest first, as ``RecordedRequest``:
    a ``dict`` (the parsed JSON body, ``{}`` if it was not JSON) with ``.size`` (body bytes),
    ``.status`` (the status answered), ``.headers``, and helpers ``.images`` (decoded bytes of
    every image part), ``.image_count`` and ``.texts``.
``reset()``
    Empties the queue and the record and sets ``delay`` back to 0.

Checks made on every request, as real providers do: Bearer auth; a JSON body with ``model``
and a non-empty ``messages`` list; roles system/user/assistant; ``content`` a string or a list
of ``text`` / ``image_url`` parts, ``image_url`` either ``{"url": ...}`` or a bare string; each
image a ``data:`` URL whose bytes really are a JPEG or PNG; for ``response_format:
{"type": "json_object"}`` the word "json" somewhere in the prompt (DashScope's rule). A failed
check is a 400 with an OpenAI error body.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from PIL import Image

DEFAULT_ANALYSIS: dict[str, Any] = {
    "alarm_type": "消防通道堵塞",
    "description": "楼梯间消防通道堆放了纸箱和杂物,通行受阻。",
    "confidence": 0.9,
}
DEFAULT_VERIFICATION: dict[str, Any] = {"resolved": True, "note": "通道已清理干净,问题已解决。"}
DEFAULT_CHAT = "您好,我是现场安全助手。发送现场照片即可上报问题。"
DEFAULT_INTENT: dict[str, Any] = {"intent": "none"}
INTENT_MARKER = '"intent"'  # the understanding prompt describes the answer's fields


class RecordedRequest(dict[str, Any]):
    """One request's parsed JSON body, with its size in bytes and what was answered."""

    def __init__(self, body: dict[str, Any], *, size: int, headers: dict[str, str]) -> None:
        super().__init__(body)
        self.size = size
        self.headers = headers
        self.status = 0

    def _parts(self) -> Iterator[dict[str, Any]]:
        for message in self.get("messages") or []:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list):
                yield from (p for p in content if isinstance(p, dict))

    @property
    def image_urls(self) -> list[str]:
        urls: list[str] = []
        for part in self._parts():
            if part.get("type") == "image_url":
                ref = part.get("image_url")
                urls.append(str(ref.get("url", "")) if isinstance(ref, dict) else str(ref))
        return urls

    @property
    def images(self) -> list[bytes]:
        return [_decode_data_url(u)[1] for u in self.image_urls]

    @property
    def image_count(self) -> int:
        return len(self.image_urls)

    @property
    def texts(self) -> list[str]:
        out: list[str] = []
        for message in self.get("messages") or []:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                out.append(content)
        out.extend(str(p.get("text", "")) for p in self._parts() if p.get("type") == "text")
        return out


@dataclass
class _Scripted:
    status: int
    content: str | None = None
    error: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class _BadRequest(Exception):
    def __init__(self, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _decode_data_url(url: str) -> tuple[str, bytes]:
    if not url.startswith("data:"):
        raise _BadRequest("only data: URLs are accepted by this server", "invalid_image_url")
    header, sep, payload = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        raise _BadRequest("the image data URL must be base64", "invalid_image_url")
    mime = header.removesuffix(";base64")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _BadRequest("the image data URL is not valid base64", "invalid_image_url") from exc
    return mime, data


def _check_image(url: str) -> None:
    mime, data = _decode_data_url(url)
    if mime not in ("image/jpeg", "image/png", "image/jpg"):
        raise _BadRequest(f"unsupported image type {mime}", "invalid_image_format")
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG", "PNG"]) as img:
            img.load()
    except Exception as exc:
        raise _BadRequest("the image cannot be decoded as JPEG or PNG", "invalid_image") from exc


class FakeVLM:
    """The server and its script; see the module docstring."""

    def __init__(self, api_key: str = "test-vlm-key", model: str = "fake-vl") -> None:
        self.api_key = api_key
        self.model = model
        self.delay = 0.0
        self.default_analysis: dict[str, Any] = dict(DEFAULT_ANALYSIS)
        self.default_verification: dict[str, Any] = dict(DEFAULT_VERIFICATION)
        self.default_chat = DEFAULT_CHAT
        self.default_intent: dict[str, Any] = dict(DEFAULT_INTENT)
        self.requests: list[RecordedRequest] = []
        self._queue: deque[_Scripted] = deque()
        self._intents: deque[_Scripted] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ script

    def enqueue_json(self, obj: object, *, delay: float = 0.0) -> None:
        self.enqueue_content(json.dumps(obj, ensure_ascii=False), delay=delay)

    def enqueue_content(self, text: str, *, delay: float = 0.0) -> None:
        with self._lock:
            self._queue.append(_Scripted(200, content=text, delay=delay))

    def enqueue_intent(self, obj: object, *, delay: float = 0.0) -> None:
        self.enqueue_intent_content(json.dumps(obj, ensure_ascii=False), delay=delay)

    def enqueue_intent_content(self, text: str, *, delay: float = 0.0) -> None:
        with self._lock:
            self._intents.append(_Scripted(200, content=text, delay=delay))

    def enqueue_intent_error(self, status: int) -> None:
        error = {"message": f"scripted error {status}", "type": "server_error", "code": "x"}
        with self._lock:
            self._intents.append(_Scripted(status, error=error))

    @property
    def intent_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if _asks_for_intent(r)]

    @property
    def vision_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if not _asks_for_intent(r)]

    def enqueue_error(
        self,
        status: int,
        *,
        retry_after: float | str | None = None,
        message: str | None = None,
        code: str | None = None,
    ) -> None:
        kind = {
            400: "invalid_request_error",
            401: "invalid_request_error",
            429: "rate_limit_error",
        }.get(status, "server_error")
        error = {
            "message": message or f"scripted error {status}",
            "type": kind,
            "code": code or f"http_{status}",
        }
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        with self._lock:
            self._queue.append(_Scripted(status, error=error, headers=headers))

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._intents.clear()
            self.requests.clear()
            self.delay = 0.0

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake VLM is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        server = self._server
        self._thread = threading.Thread(
            # a short poll keeps shutdown (at every test's teardown) quick
            target=lambda: server.serve_forever(poll_interval=0.02),
            name="fake-vlm",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping on a delay
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeVLM:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ answering

    def _answer(
        self, record: RecordedRequest, authorized: bool
    ) -> tuple[int, dict[str, Any], dict[str, str], float]:
        """Status, JSON body, extra headers and delay for one request."""
        if not authorized:
            return (
                401,
                _error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
                {},
                0.0,
            )
        try:
            json_mode = self._validate(record)
        except _BadRequest as exc:
            return 400, _error(exc.message, "invalid_request_error", exc.code), {}, 0.0
        intent = _asks_for_intent(record)
        with self._lock:
            queue = self._intents if intent else self._queue
            scripted = queue.popleft() if queue else None
            delay = self.delay
        if scripted is None:
            if intent:
                content = json.dumps(self.default_intent, ensure_ascii=False)
            elif record.image_count >= 2:
                content = json.dumps(self.default_verification, ensure_ascii=False)
            elif json_mode or _asks_for_json(record):
                content = json.dumps(self.default_analysis, ensure_ascii=False)
            else:
                content = self.default_chat
            scripted = _Scripted(200, content=content)
        delay += scripted.delay
        if scripted.status != 200:
            return scripted.status, {"error": scripted.error}, scripted.headers, delay
        prompt_chars = sum(len(t) for t in record.texts)
        completion = scripted.content or ""
        body = {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(record.get("model")),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": completion},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_chars // 2 + 258 * record.image_count,
                "completion_tokens": len(completion) // 2,
                "total_tokens": prompt_chars // 2 + 258 * record.image_count + len(completion) // 2,
            },
        }
        return 200, body, {}, delay

    def _validate(self, record: RecordedRequest) -> bool:
        """Raise ``_BadRequest`` as a provider would; True if JSON mode was asked for."""
        if not record:
            raise _BadRequest("the request body must be a JSON object")
        if not isinstance(record.get("model"), str) or not record["model"]:
            raise _BadRequest("model is required", "missing_model")
        messages = record.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("messages must be a non-empty list", "invalid_messages")
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in (
                "system",
                "user",
                "assistant",
            ):
                raise _BadRequest("each message needs a role system, user or assistant")
            content = message.get("content")
            if isinstance(content, str):
                continue
            if not isinstance(content, list) or not content:
                raise _BadRequest("content must be a string or a non-empty list of parts")
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text":
                    if not isinstance(part.get("text"), str):
                        raise _BadRequest("a text part needs a string 'text'")
                elif kind == "image_url":
                    ref = part.get("image_url")
                    url = ref.get("url") if isinstance(ref, dict) else ref
                    if not isinstance(url, str):
                        raise _BadRequest("an image_url part needs a url", "invalid_image_url")
                    _check_image(url)
                else:
                    raise _BadRequest(f"unknown content part type {kind!r}")
        response_format = record.get("response_format")
        if response_format is None:
            return False
        if not isinstance(response_format, dict) or response_format.get("type") not in (
            "json_object",
            "text",
        ):
            raise _BadRequest("response_format.type must be json_object or text")
        if response_format["type"] != "json_object":
            return False
        if not _asks_for_json(record):
            raise _BadRequest(
                "'messages' must contain the word 'json' in some form, "
                "to use 'response_format' of type 'json_object'."
            )
        return True


def _asks_for_json(record: RecordedRequest) -> bool:
    return any("json" in text.lower() for text in record.texts)


def _asks_for_intent(record: RecordedRequest) -> bool:
    messages = record.get("messages") or []
    first = messages[0] if messages and isinstance(messages[0], dict) else {}
    system = first.get("content") if first.get("role") == "system" else None
    return isinstance(system, str) and INTENT_MARKER in system


def _error(message: str, kind: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code}}


class _Handler(BaseHTTPRequestHandler):
    owner: FakeVLM
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: pytest shows failures, not access logs

    def _send(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self._send(
                200, {"object": "list", "data": [{"id": self.owner.model, "object": "model"}]}
            )
        else:
            self._send(404, _error(f"no route {self.path}", "invalid_request_error", "not_found"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, _error(f"no route {self.path}", "invalid_request_error", "not_found"))
            return
        try:
            parsed = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            parsed = None
        record = RecordedRequest(
            parsed if isinstance(parsed, dict) else {},
            size=len(raw),
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        owner = self.owner
        with owner._lock:
            owner.requests.append(record)
        authorized = self.headers.get("Authorization") == f"Bearer {owner.api_key}"
        status, body, headers, delay = owner._answer(record, authorized)
        record.status = status
        if delay > 0 and owner._stopping.wait(delay):
            return  # shutting down: drop the answer, as a server that went away would
        # the client may have given up waiting (a timeout test)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._send(status, body, headers)


@pytest.fixture
def fake_vlm() -> Iterator[FakeVLM]:
    server = FakeVLM()
    server.start()
    try:
        yield server
    finally:
        server.stop()
