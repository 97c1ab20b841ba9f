"""``OpenAICompatVision``: a vision model behind an OpenAI-compatible chat-completions API.

Works with Qwen-VL (DashScope compatible mode), GLM-4V (Zhipu), vLLM and Ollama. Each photo is
sent inline as a downscaled JPEG data URL (private models cannot fetch object-storage URLs).

Failure policy, so that a user waits a bounded time and then goes on in manual mode:

- every attempt has a hard deadline of ``timeout_seconds`` (connect, send and read together);
  a timeout is not retried, since it has already cost the user that long;
- 408, 429 and 5xx answers, dropped connections and refused connections are retried up to
  ``max_retries`` times with exponential backoff and jitter; a ``Retry-After`` of at most
  ``max_retry_after_seconds`` is honoured, a longer one ends the attempts at once;
- other 4xx answers (a wrong key, a bad request) fail at once, except a 400 that names
  ``response_format``: that server lacks JSON mode, so the request is sent again without it
  (the prompt asks for JSON anyway) and JSON mode stays off for this adapter;
- every failure, and an answer that holds no usable JSON, raises ``VisionUnavailable``.

Neither image bytes nor the API key are ever logged or put in an error message.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import httpx
import msgspec

from snapreport.errors import InvalidImage, VisionUnavailable
from snapreport.logs import get_logger
from snapreport.session.history import ImagePart, Message, TextPart
from snapreport.vision import prompts
from snapreport.vision.base import (
    MAX_INLINE_IMAGES,
    Analysis,
    Image,
    PreparedImage,
    TextQuery,
    Verification,
)
from snapreport.vision.imaging import JPEG_QUALITY, MAX_EDGE, downscale
from snapreport.vision.parsing import extract_json_object, parse_analysis, parse_verification

log = get_logger(__name__)

RETRYABLE_STATUS: Final = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF_SECONDS: Final = 8.0
MAX_CHAT_ANSWER_CHARS: Final = 2000
_USER_AGENT: Final = "snapreport/0.1"

_encode = msgspec.json.Encoder().encode

Sleep = Callable[[float], Awaitable[None]]
JSONObject = dict[str, Any]


class OpenAICompatVision:
    """A ``VisionModel`` speaking the OpenAI chat-completions protocol over httpx."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        text_model: str = "",
        timeout_seconds: float = 30.0,
        max_retries: int = 2,
        backoff_seconds: float = 0.5,
        max_retry_after_seconds: float = 10.0,
        max_tokens: int = 800,
        max_edge: int = MAX_EDGE,
        jpeg_quality: int = JPEG_QUALITY,
        extra_body: Mapping[str, Any] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not base_url:
            raise ValueError("base_url is required")
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        base = base_url.rstrip("/").removesuffix("/chat/completions")
        self.base_url = base
        self.model = model
        self.text_model = text_model or model
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_retry_after_seconds = max_retry_after_seconds
        self.max_tokens = max_tokens
        self.max_edge = max_edge
        self.jpeg_quality = jpeg_quality
        self.extra_body = dict(extra_body or {})
        self._url = f"{base}/chat/completions"
        self._json_mode_supported = True
        self._sleep = sleep
        headers = {"User-Agent": _USER_AGENT, "Accept": "application/json"}
        if api_key:  # Ollama and some vLLM setups take no key
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.AsyncClient(
            transport=transport,
            headers=headers,
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 10.0)),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"OpenAICompatVision(base_url={self.base_url!r}, model={self.model!r})"

    @property
    def enabled(self) -> bool:
        return True

    async def analyze(self, image: Image, catalog: Sequence[str], *, language: str) -> Analysis:
        """Classify one photo into one of ``catalog`` (or 其他) and describe it."""
        prepared = await self._prepare(image)
        messages: list[JSONObject] = [
            {"role": "system", "content": prompts.analysis_system_prompt(language)},
            {
                "role": "user",
                "content": [
                    _image_part(prepared),
                    _text_part(prompts.analysis_prompt(catalog, language)),
                ],
            },
        ]
        answer = await self._complete(messages, json_mode=True, purpose="analysis")
        return parse_analysis(answer, catalog)

    async def verify_close(
        self,
        original: Image,
        close: Image,
        *,
        description: str,
        language: str,
        more: Sequence[Image] = (),
    ) -> Verification:
        """Compare the report's photos (the original and ``more``, within
        ``MAX_INLINE_IMAGES`` in all) with the close photo in ONE request: is the original
        problem resolved?"""
        originals = [original, *more][: MAX_INLINE_IMAGES - 1]
        *before, after = await asyncio.gather(*(self._prepare(i) for i in [*originals, close]))
        lead, between, question = prompts.verification_prompt(
            description, language, count=len(before)
        )
        messages: list[JSONObject] = [
            {"role": "system", "content": prompts.analysis_system_prompt(language)},
            {
                "role": "user",
                "content": [
                    _text_part(lead),
                    *(_image_part(image) for image in before),
                    _text_part(between),
                    _image_part(after),
                    _text_part(question),
                ],
            },
        ]
        answer = await self._complete(messages, json_mode=True, purpose="verification")
        return parse_verification(answer)

    async def chat(
        self, messages: Sequence[Message], images: Mapping[str, Image], *, language: str
    ) -> str:
        """A short answer to the conversation; images whose bytes are given go inline."""
        if not messages:
            raise VisionUnavailable("there is no conversation to answer")
        wanted = list(dict.fromkeys(p.key for m in messages for p in m.images if p.key in images))
        results = await asyncio.gather(
            *(self._prepare(images[k]) for k in wanted), return_exceptions=True
        )
        # small talk goes on without a photo that cannot be prepared (it becomes a placeholder)
        prepared = {
            key: result
            for key, result in zip(wanted, results, strict=True)
            if isinstance(result, PreparedImage)
        }
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, VisionUnavailable):
                raise result
        payload: list[JSONObject] = [
            {"role": "system", "content": prompts.chat_system_prompt(language)}
        ]
        for message in messages:
            converted = _convert_message(message, prepared, prompts.missing_image_text(language))
            if converted is not None:
                payload.append(converted)
        answer = await self._complete(payload, json_mode=False, purpose="chat")
        answer = answer.strip()
        if len(answer) > MAX_CHAT_ANSWER_CHARS:
            answer = answer[: MAX_CHAT_ANSWER_CHARS - 1] + "…"
        return answer

    async def understand(self, query: TextQuery, *, language: str) -> dict[str, Any]:
        """One request to ``text_model``, no retry (the dialogue bounds the wait and falls back
        to its words); the first JSON object of the answer, unchecked."""
        messages: list[JSONObject] = [
            {"role": "system", "content": prompts.understanding_system_prompt(language)},
            {"role": "user", "content": prompts.understanding_prompt(query)},
        ]
        answer = await self._complete(
            messages, json_mode=True, purpose="understanding", model=self.text_model, retries=0
        )
        return extract_json_object(answer)

    async def aclose(self) -> None:
        await self._client.aclose()

    # ------------------------------------------------------------------ internals

    async def _prepare(self, image: Image) -> PreparedImage:
        """The copy to send: the one made when the upload was validated, if it fits this
        model's ``max_edge``; else a downscale of the bytes (one more decode)."""
        preview = image.preview
        if preview is not None and max(preview.width, preview.height) <= self.max_edge:
            return preview
        try:
            return await asyncio.to_thread(
                downscale, image.data, max_edge=self.max_edge, quality=self.jpeg_quality
            )
        except InvalidImage as exc:
            raise VisionUnavailable(f"the photo cannot be prepared for the model: {exc}") from exc

    def _body(self, messages: list[JSONObject], *, json_mode: bool, model: str) -> bytes:
        body: JSONObject = {
            "model": model,
            "messages": messages,
            "max_tokens": self.max_tokens,
            "temperature": 0.1 if json_mode else 0.5,
            "stream": False,
        }
        if json_mode and self._json_mode_supported:
            body["response_format"] = {"type": "json_object"}
        body.update(self.extra_body)
        return _encode(body)  # compact UTF-8 JSON; msgspec writes a photo's 0.5 MB in 0.3 ms

    async def _complete(
        self,
        messages: list[JSONObject],
        *,
        json_mode: bool,
        purpose: str,
        model: str = "",
        retries: int | None = None,
    ) -> str:
        model = model or self.model
        max_retries = self.max_retries if retries is None else retries
        body = self._body(messages, json_mode=json_mode, model=model)
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.timeout_seconds):
                    response = await self._client.post(
                        self._url, content=body, headers={"Content-Type": "application/json"}
                    )
            except (TimeoutError, httpx.TimeoutException) as exc:
                log.warning("vision_timeout", purpose=purpose, timeout_seconds=self.timeout_seconds)
                raise VisionUnavailable(
                    f"the vision model gave no answer within {self.timeout_seconds:g} s"
                ) from exc
            except httpx.UnsupportedProtocol as exc:
                raise VisionUnavailable(
                    f"the vision model's base URL is not http(s): {self.base_url!r}"
                ) from exc
            except httpx.TransportError as exc:
                if attempt >= max_retries:
                    raise VisionUnavailable(
                        f"cannot reach the vision model ({type(exc).__name__}) "
                        f"after {attempt + 1} attempt(s)"
                    ) from exc
                delay = self._backoff(attempt)
                log.warning(
                    "vision_retry", purpose=purpose, error=type(exc).__name__, delay=round(delay, 2)
                )
                await self._sleep(delay)
                attempt += 1
                continue
            elapsed = time.monotonic() - started
            status = response.status_code
            if status == 200:
                log.info(
                    "vision_answered", purpose=purpose, seconds=round(elapsed, 2), sent=len(body)
                )
                return _answer_text(response)
            detail = _status_detail(response)
            if (
                status == 400
                and json_mode
                and self._json_mode_supported
                and "response_format" in detail.lower()
            ):
                # Some compatible servers lack JSON mode; the prompt still asks for JSON and
                # the parser copes with what comes back. Remember it for later requests.
                log.warning("vision_json_mode_refused", purpose=purpose, detail=detail)
                self._json_mode_supported = False
                body = self._body(messages, json_mode=json_mode, model=model)
                continue
            if status not in RETRYABLE_STATUS and status < 500:
                log.warning("vision_refused", purpose=purpose, detail=detail)
                raise VisionUnavailable(f"the vision model refused the request: {detail}")
            if attempt >= max_retries:
                raise VisionUnavailable(
                    f"the vision model failed: {detail} after {attempt + 1} attempt(s)"
                )
            retry_after = _retry_after_seconds(response)
            if retry_after is not None and retry_after > self.max_retry_after_seconds:
                raise VisionUnavailable(
                    f"the vision model is busy (HTTP {status}) and asks to wait {retry_after:g} s"
                )
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            log.warning("vision_retry", purpose=purpose, status=status, delay=round(delay, 2))
            await self._sleep(delay)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        # full exponential with jitter, so many workers do not retry in step
        ceiling = min(MAX_BACKOFF_SECONDS, self.backoff_seconds * (2**attempt))
        return float(ceiling * random.uniform(0.5, 1.0))


def _text_part(text: str) -> JSONObject:
    return {"type": "text", "text": text}


def _image_part(image: PreparedImage) -> JSONObject:
    return {"type": "image_url", "image_url": {"url": image.data_url()}}


def _convert_message(
    message: Message, prepared: Mapping[str, PreparedImage], missing: str
) -> JSONObject | None:
    if message.role == "assistant":
        # plain strings for assistant turns: some compatible servers take parts only from users
        text = message.text.strip()
        return {"role": "assistant", "content": text} if text else None
    parts: list[JSONObject] = []
    for part in message.content:
        if isinstance(part, TextPart):
            if part.text:
                parts.append(_text_part(part.text))
        elif isinstance(part, ImagePart):
            image = prepared.get(part.key)
            parts.append(_image_part(image) if image is not None else _text_part(missing))
    if not parts:
        return None
    return {"role": "user", "content": parts}


def _answer_text(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError as exc:
        raise VisionUnavailable("the vision model's reply is not JSON") from exc
    if not isinstance(data, dict):
        raise VisionUnavailable("the vision model's reply is not a chat completion")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        reason = _error_message(data)
        raise VisionUnavailable(f"the vision model's reply has no choices {reason}".rstrip())
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        # some servers answer with content parts, like the ones they accept
        content = "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    if not isinstance(content, str) or not content.strip():
        raise VisionUnavailable("the vision model's reply is empty")
    return content


def _error_message(data: object) -> str:
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("code") or ""
            return str(message)[:200]
        if isinstance(error, str):
            return error[:200]
        message = data.get("message")
        if isinstance(message, str):
            return message[:200]
    return ""


def _status_detail(response: httpx.Response) -> str:
    try:
        message = _error_message(response.json())
    except ValueError:
        message = ""
    detail = f"HTTP {response.status_code}"
    return f"{detail} ({message})" if message else detail


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
