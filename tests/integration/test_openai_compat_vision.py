"""``OpenAICompatVision`` against ``fake_vlm``, a real HTTP server speaking the protocol."""

from __future__ import annotations

import asyncio
import base64
import io
import socket
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from PIL import Image as PILImage

from snapreport.config import DEFAULT_ALARM_TYPES
from snapreport.errors import VisionUnavailable
from snapreport.logs import configure_logging
from snapreport.session.history import History, ImagePart
from snapreport.vision.base import UNCLASSIFIED, Analysis, Image, TextQuery, Verification
from snapreport.vision.manual import ManualVision
from snapreport.vision.openai_compat import OpenAICompatVision
from tests.harness.fake_vlm import FakeVLM

CATALOG = DEFAULT_ALARM_TYPES


def photo(
    width: int = 640, height: int = 480, *, fmt: str = "JPEG", orientation: int | None = None
) -> Image:
    img = PILImage.new("RGB", (width, height), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, width // 4, height // 4))  # a red mark in the top-left corner
    options: dict[str, object] = {}
    if orientation is not None:
        exif = PILImage.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif.tobytes()
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return Image(buf.getvalue(), f"image/{fmt.lower()}")


def sent_image(fake: FakeVLM, index: int = 0, request: int = -1) -> PILImage.Image:
    data = fake.requests[request].images[index]
    img = PILImage.open(io.BytesIO(data))
    img.load()
    return img


def rgb_at(img: PILImage.Image, x: int, y: int) -> tuple[int, int, int]:
    pixel = img.convert("RGB").getpixel((x, y))
    assert isinstance(pixel, tuple)
    return (int(pixel[0]), int(pixel[1]), int(pixel[2]))


def is_red(rgb: tuple[int, int, int]) -> bool:
    return rgb[0] > 200 and rgb[2] < 60


def is_blue(rgb: tuple[int, int, int]) -> bool:
    return rgb[2] > 200 and rgb[0] < 60


class SleepRecorder:
    """Records the backoff delays instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


VisionFactory = Callable[..., OpenAICompatVision]


@pytest.fixture
async def make_vision(fake_vlm: FakeVLM, sleeps: SleepRecorder) -> AsyncIterator[VisionFactory]:
    made: list[OpenAICompatVision] = []

    def make(**overrides: object) -> OpenAICompatVision:
        options: dict[str, object] = {
            "base_url": fake_vlm.url,
            "api_key": fake_vlm.api_key,
            "model": fake_vlm.model,
            "timeout_seconds": 10.0,
            "max_retries": 2,
            "backoff_seconds": 0.2,
            "sleep": sleeps,
        }
        options.update(overrides)
        vision = OpenAICompatVision(**options)  # type: ignore[arg-type]
        made.append(vision)
        return vision

    yield make
    for vision in made:
        await vision.aclose()


@pytest.fixture
def vision(make_vision: VisionFactory) -> OpenAICompatVision:
    return make_vision()


# ------------------------------------------------------------------ analysis


async def test_analysis_default_answer(vision: OpenAICompatVision, fake_vlm: FakeVLM) -> None:
    result = await vision.analyze(photo(), CATALOG, language="zh-CN")
    assert result == Analysis("消防通道堵塞", fake_vlm.default_analysis["description"], 0.9)
    assert vision.enabled


async def test_analysis_request_shape(vision: OpenAICompatVision, fake_vlm: FakeVLM) -> None:
    await vision.analyze(photo(4000, 3000), CATALOG, language="zh-CN")
    [request] = fake_vlm.requests
    assert request.status == 200
    assert request.headers["authorization"] == f"Bearer {fake_vlm.api_key}"
    assert request["model"] == fake_vlm.model
    assert request["response_format"] == {"type": "json_object"}
    assert request.image_count == 1
    url = request.image_urls[0]
    assert url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(url.split(",", 1)[1])[:3] == b"\xff\xd8\xff"
    sent = sent_image(fake_vlm)
    assert sent.format == "JPEG"
    assert max(sent.size) == 1600
    assert sent.size == (1600, 1200)
    prompt = "\n".join(request.texts)
    assert "JSON" in prompt
    for name in CATALOG:
        assert name in prompt
    assert request.size > len(url)  # the body carries the data URL


async def test_exif_rotated_photo_is_sent_upright(
    vision: OpenAICompatVision, fake_vlm: FakeVLM
) -> None:
    # stored 800x400 with the red mark top-left; orientation 6 shows it turned a quarter
    # clockwise: 400x800, the mark at the top-right
    await vision.analyze(photo(800, 400, orientation=6), CATALOG, language="zh-CN")
    sent = sent_image(fake_vlm).convert("RGB")
    assert sent.size == (400, 800)
    assert is_red(rgb_at(sent, sent.width - 20, 20))
    assert is_blue(rgb_at(sent, 20, 20))
    assert "exif" not in sent.info


async def test_png_with_alpha_is_sent_as_jpeg(
    vision: OpenAICompatVision, fake_vlm: FakeVLM
) -> None:
    img = PILImage.new("RGBA", (300, 200), (0, 0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    await vision.analyze(Image(buf.getvalue(), "image/png"), CATALOG, language="en")
    sent = sent_image(fake_vlm)
    assert sent.format == "JPEG"
    assert fake_vlm.requests[0].image_urls[0].startswith("data:image/jpeg;base64,")
    assert min(rgb_at(sent, 150, 100)) > 240  # transparent became white, not black


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            '```json\n{"alarm_type": "漏水", "description": "天花板渗水", "confidence": 0.8}\n```',
            Analysis("漏水", "天花板渗水", 0.8),
            id="fenced",
        ),
        pytest.param(
            '好的,分析结果如下:{"alarm_type": "垃圾堆放", "description": "角落堆放垃圾",'
            ' "confidence": 0.7} 希望有帮助!',
            Analysis("垃圾堆放", "角落堆放垃圾", 0.7),
            id="prose-around",
        ),
        pytest.param(
            '{"alarm_type": "违规停车", "description": "车辆停在消防通道", "confidence": "0.9"}',
            Analysis("违规停车", "车辆停在消防通道", 0.9),
            id="confidence-string",
        ),
        pytest.param(
            '{"alarm_type": "违规停车", "description": "x", "confidence": 90}',
            Analysis("违规停车", "x", 0.9),
            id="confidence-percent",
        ),
        pytest.param(
            '{"alarm_type": "高空坠物", "description": "阳台花盆", "confidence": 0.6}',
            Analysis("其他", "阳台花盆", 0.6),
            id="unknown-type",
        ),
        pytest.param(
            '{"type": "消防通道堵塞问题", "desc": 42}',
            Analysis("消防通道堵塞", "42", None),
            id="renamed-fields",
        ),
    ],
)
async def test_analysis_survives_messy_answers(
    vision: OpenAICompatVision, fake_vlm: FakeVLM, content: str, expected: Analysis
) -> None:
    fake_vlm.enqueue_content(content)
    assert await vision.analyze(photo(), CATALOG, language="zh-CN") == expected


async def test_unparseable_answer_is_unavailable(
    vision: OpenAICompatVision, fake_vlm: FakeVLM
) -> None:
    fake_vlm.enqueue_content("抱歉,我无法识别这张图片。")
    with pytest.raises(VisionUnavailable, match="no JSON object"):
        await vision.analyze(photo(), CATALOG, language="zh-CN")
    assert len(fake_vlm.requests) == 1


# ------------------------------------------------------------------ failures and retries


async def test_delay_beyond_timeout_is_unavailable_without_retry(
    make_vision: VisionFactory, fake_vlm: FakeVLM
) -> None:
    vision = make_vision(timeout_seconds=0.3)
    fake_vlm.delay = 30.0
    with pytest.raises(VisionUnavailable, match=r"no answer within 0\.3 s"):
        await vision.analyze(photo(), CATALOG, language="zh-CN")
    assert len(fake_vlm.requests) == 1


async def test_delay_within_timeout_is_fine(make_vision: VisionFactory, fake_vlm: FakeVLM) -> None:
    vision = make_vision(timeout_seconds=5.0)
    fake_vlm.enqueue_json({"alarm_type": "漏水", "description": "d", "confidence": 1}, delay=0.05)
    result = await vision.analyze(photo(), CATALOG, language="zh-CN")
    assert result.alarm_type == "漏水"


async def test_429_then_success_honours_retry_after(
    vision: OpenAICompatVision, fake_vlm: FakeVLM, sleeps: SleepRecorder
) -> None:
    fake_vlm.enqueue_error(429, retry_after=2)
    result = await vision.analyze(photo(), CATALOG, language="zh-CN")
    assert result.alarm_type == "消防通道堵塞"
    assert [r.status for r in fake_vlm.requests] == [429, 200]
    assert sleeps.delays == [2.0]


async def test_long_retry_after_gives_up_at_once(
    vision: OpenAICompatVision, fake_vlm: FakeVLM, sleeps: SleepRecorder
) -> None:
    fake_vlm.enqueue_error(429, retry_after=120)
    with pytest.raises(VisionUnavailable, match="wait 120 s"):
        await vision.analyze(photo(), CATALOG, language="zh-CN")
    assert len(fake_vlm.requests) == 1
    assert sleeps.delays == []


async def test_500_every_time_is_unavailable_after_retries(
    vision: OpenAICompatVision, fake_vlm: FakeVLM, sleeps: SleepRecorder
) -> None:
    for _ in range(5):
        fake_vlm.enqueue_error(500)
    with pytest.raises(VisionUnavailable, match=r"HTTP 500 .*after 3 attempt"):
        await vision.analyze(photo(), CATALOG, language="zh-CN")
    assert [r.status for r in fake_vlm.requests] == [500, 500, 500]
    # exponential backoff with jitter in [0.5, 1] of 0.2 s, then 0.4 s
    assert len(sleeps.delays) == 2
    assert 0.1 <= sleeps.delays[0] <= 0.2
    assert 0.2 <= sleeps.delays[1] <= 0.4


@pytest.mark.parametrize("status", [502, 503, 408])
async def test_other_transient_statuses_are_retried(
    vision: OpenAICompatVision, fake_vlm: FakeVLM, status: int
) -> None:
    fake_vlm.enqueue_error(status)
    assert (await vision.analyze(photo(), CATALOG, language="zh-CN")).alarm_type == "消防通道堵塞"
    assert [r.status for r in fake_vlm.requests] == [status, 200]


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """What the service logs during the test, as the JSON lines it writes."""
    out = io.StringIO()
    configure_logging("DEBUG", json=True, stream=out)
    yield out
    configure_logging("INFO")


async def test_wrong_key_is_unavailable_at_once(
    make_vision: VisionFactory, fake_vlm: FakeVLM, logged: io.StringIO
) -> None:
    secret = "sk-wrong-key-that-must-not-leak"
    vision = make_vision(api_key=secret)
    with pytest.raises(VisionUnavailable, match="HTTP 401") as caught:
        await vision.analyze(photo(), CATALOG, language="zh-CN")
    assert [r.status for r in fake_vlm.requests] == [401]
    assert secret not in str(caught.value)
    assert "vision_refused" in logged.getvalue()
    assert secret not in logged.getvalue()
    assert secret not in repr(vision)


async def test_bad_request_is_not_retried(vision: OpenAICompatVision, fake_vlm: FakeVLM) -> None:
    fake_vlm.enqueue_error(400, message="image too small")
    with pytest.raises(VisionUnavailable, match="image too small"):
        await vision.analyze(photo(), CATALOG, language="zh-CN")
    assert len(fake_vlm.requests) == 1


async def test_server_without_json_mode_is_asked_again_without_it(
    vision: OpenAICompatVision, fake_vlm: FakeVLM
) -> None:
    fake_vlm.enqueue_error(400, message="response_format is not supported by this model")
    assert (await vision.analyze(photo(), CATALOG, language="zh-CN")).alarm_type == "消防通道堵塞"
    await vision.analyze(photo(), CATALOG, language="zh-CN")
    assert [r.status for r in fake_vlm.requests] == [400, 200, 200]
    assert "response_format" in fake_vlm.requests[0]
    assert "response_format" not in fake_vlm.requests[1]
    assert "response_format" not in fake_vlm.requests[2]  # remembered


async def test_connection_refused_is_unavailable(
    sleeps: SleepRecorder, logged: io.StringIO
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    vision = OpenAICompatVision(
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key="k",
        model="m",
        timeout_seconds=5,
        max_retries=1,
        sleep=sleeps,
    )
    with pytest.raises(VisionUnavailable, match="cannot reach"):
        await vision.analyze(photo(), CATALOG, language="zh-CN")
    assert len(sleeps.delays) == 1
    assert "vision_retry" in logged.getvalue()
    assert "base64" not in logged.getvalue()
    await vision.aclose()


async def test_logs_hold_no_image_bytes(
    vision: OpenAICompatVision, fake_vlm: FakeVLM, logged: io.StringIO
) -> None:
    fake_vlm.enqueue_error(503)
    await vision.analyze(photo(), CATALOG, language="zh-CN")
    text = logged.getvalue()
    assert "vision_retry" in text  # the retry and the answer were logged
    assert "vision_answered" in text
    payload = fake_vlm.requests[-1].image_urls[0].split(",", 1)[1]
    assert payload[:40] not in text
    assert fake_vlm.api_key not in text


async def test_undecodable_photo_is_unavailable_without_a_request(
    vision: OpenAICompatVision, fake_vlm: FakeVLM
) -> None:
    with pytest.raises(VisionUnavailable, match="cannot be prepared"):
        await vision.analyze(Image(b"\xff\xd8\xffnot really", "image/jpeg"), CATALOG, language="en")
    assert fake_vlm.requests == []


# ------------------------------------------------------------------ close verification


async def test_verification_sends_both_photos_in_one_request(
    vision: OpenAICompatVision, fake_vlm: FakeVLM
) -> None:
    result = await vision.verify_close(
        photo(3000, 2000), photo(200, 100), description="通道堵塞", language="zh-CN"
    )
    assert result == Verification(True, fake_vlm.default_verification["note"], verified=True)
    [request] = fake_vlm.requests
    assert request.image_count == 2
    assert request["response_format"] == {"type": "json_object"}
    assert "通道堵塞" in "\n".join(request.texts)
    assert sent_image(fake_vlm, 0).size == (1600, 1067)
    assert sent_image(fake_vlm, 1).size == (200, 100)  # never enlarged


@pytest.mark.parametrize(
    ("content", "resolved"),
    [
        ('{"resolved": "yes", "note": "ok"}', True),
        ('{"resolved": "false", "note": "仍有杂物"}', False),
        ("```json\n{'resolved': False, 'note': '仍有杂物'}\n```", False),
        ('结论:{"resolved": 1, "note": "已清理",}', True),
    ],
)
async def test_verification_survives_messy_answers(
    vision: OpenAICompatVision, fake_vlm: FakeVLM, content: str, resolved: bool
) -> None:
    fake_vlm.enqueue_content(content)
    result = await vision.verify_close(photo(), photo(), description="", language="en")
    assert result.resolved is resolved
    assert result.note


async def test_verification_without_a_verdict_is_unavailable(
    vision: OpenAICompatVision, fake_vlm: FakeVLM
) -> None:
    fake_vlm.enqueue_json({"note": "看不清"})
    with pytest.raises(VisionUnavailable, match="resolved"):
        await vision.verify_close(photo(), photo(), description="d", language="zh-CN")


# ------------------------------------------------------------------ chat


def _history_with_photos(turns: int) -> History:
    history = History(max_turns=10)
    for i in range(turns):
        key = f"img/{i:064x}.jpg"
        history.add_user([f"第{i}张照片", ImagePart(key, "image/jpeg", 100, 64, 48)])
        history.add_assistant(f"收到第{i}张")
    history.add_user("你好,在吗?")
    return history


async def test_chat_inlines_only_the_images_given(
    vision: OpenAICompatVision, fake_vlm: FakeVLM
) -> None:
    history = _history_with_photos(3)
    messages = history.for_vision()
    latest = messages[-3].images[0].key
    answer = await vision.chat(messages, {latest: photo(64, 48)}, language="zh-CN")
    assert answer == fake_vlm.default_chat
    [request] = fake_vlm.requests
    assert "response_format" not in request
    assert request.image_count == 1
    roles = [m["role"] for m in request["messages"]]
    assert roles[0] == "system"
    assert roles[1:] == ["user", "assistant"] * 3 + ["user"]
    assert "安全" in request["messages"][0]["content"]
    assert request["messages"][-1]["content"] == [{"type": "text", "text": "你好,在吗?"}]
    assert request["messages"][2]["content"] == "收到第0张"


async def test_chat_image_missing_from_images_becomes_text(
    vision: OpenAICompatVision, fake_vlm: FakeVLM
) -> None:
    messages = _history_with_photos(1).for_vision()
    await vision.chat(messages, {}, language="en")
    [request] = fake_vlm.requests
    assert request.image_count == 0
    assert "[photo not available]" in request.texts
    assert "English" in request["messages"][0]["content"]


async def test_chat_goes_on_without_a_broken_photo(
    vision: OpenAICompatVision, fake_vlm: FakeVLM
) -> None:
    messages = _history_with_photos(1).for_vision()
    key = messages[0].images[0].key
    broken = Image(b"\xff\xd8\xff broken", "image/jpeg")
    assert await vision.chat(messages, {key: broken}, language="zh-CN") == fake_vlm.default_chat
    [request] = fake_vlm.requests
    assert request.image_count == 0
    assert "[图片不可用]" in request.texts


async def test_bad_base_url_scheme_is_unavailable_at_once(sleeps: SleepRecorder) -> None:
    vision = OpenAICompatVision(
        base_url="ftp://example.invalid/v1", api_key="k", model="m", sleep=sleeps
    )
    with pytest.raises(VisionUnavailable, match="not http"):
        await vision.analyze(photo(), CATALOG, language="en")
    assert sleeps.delays == []
    await vision.aclose()


async def test_chat_string_answer_is_returned_trimmed(
    vision: OpenAICompatVision, fake_vlm: FakeVLM
) -> None:
    fake_vlm.enqueue_content("  发照片给我就可以上报。\n")
    history = History()
    history.add_user("怎么上报?")
    assert await vision.chat(history.for_vision(), {}, language="zh-CN") == "发照片给我就可以上报。"


async def test_chat_failure_is_unavailable(vision: OpenAICompatVision, fake_vlm: FakeVLM) -> None:
    fake_vlm.enqueue_error(401)
    history = History()
    history.add_user("hi")
    with pytest.raises(VisionUnavailable):
        await vision.chat(history.for_vision(), {}, language="en")


# ------------------------------------------------------------------ understanding free text

QUERY = TextQuery(
    text="不对，是漏水",
    state="waiting_confirm",
    pending={"type": "消防通道堵塞", "location": "3号楼", "description": "", "order": ""},
    catalog=CATALOG,
    turns=[("user", "3号楼"), ("assistant", "请确认上报信息")],
)


async def test_understanding_asks_the_text_model_in_json_mode(
    make_vision: VisionFactory, fake_vlm: FakeVLM
) -> None:
    vision = make_vision(text_model="fake-text")
    fake_vlm.enqueue_intent({"intent": "set_type", "alarm_type": "漏水"})
    answer = await vision.understand(QUERY, language="zh-CN")
    assert answer == {"intent": "set_type", "alarm_type": "漏水"}
    (request,) = fake_vlm.intent_requests
    assert request["model"] == "fake-text"
    assert request["response_format"] == {"type": "json_object"}
    assert request.image_count == 0
    prompt = "\n".join(request.texts)
    for part in ("不对，是漏水", "waiting_confirm", "3号楼", "请确认上报信息", "set_location"):
        assert part in prompt


async def test_understanding_uses_the_vision_model_without_a_text_model(
    vision: OpenAICompatVision, fake_vlm: FakeVLM
) -> None:
    await vision.understand(QUERY, language="en")
    assert fake_vlm.intent_requests[0]["model"] == fake_vlm.model


async def test_understanding_is_never_retried(
    vision: OpenAICompatVision, fake_vlm: FakeVLM, sleeps: SleepRecorder
) -> None:
    fake_vlm.enqueue_intent_error(503)
    with pytest.raises(VisionUnavailable):
        await vision.understand(QUERY, language="zh-CN")
    assert len(fake_vlm.intent_requests) == 1
    assert sleeps.delays == []


async def test_understanding_without_json_is_unavailable(
    vision: OpenAICompatVision, fake_vlm: FakeVLM
) -> None:
    fake_vlm.enqueue_intent_content("Sure! The user wants to change the type.")
    with pytest.raises(VisionUnavailable):
        await vision.understand(QUERY, language="zh-CN")


# ------------------------------------------------------------------ manual mode


class TestManualVision:
    async def test_manual_mode_answers_without_a_model(self) -> None:
        manual = ManualVision()
        assert not manual.enabled
        assert await manual.analyze(photo(), CATALOG, language="zh-CN") == Analysis(
            UNCLASSIFIED, "", None
        )
        verdict = await manual.verify_close(photo(), photo(), description="d", language="en")
        assert verdict == Verification(resolved=True, note="", verified=False)
        history = History()
        history.add_user("hi")
        with pytest.raises(VisionUnavailable):
            await manual.chat(history.for_vision(), {}, language="en")
        with pytest.raises(VisionUnavailable):
            await manual.understand(QUERY, language="en")
        await manual.aclose()


# ------------------------------------------------------------------ the fake itself


class TestFakeVLMProtocol:
    """The fake must refuse what real providers refuse, or the tests above prove little."""

    @staticmethod
    def _body(
        url: object, *, json_mode: bool = False, text: str = "describe as JSON"
    ) -> dict[str, object]:
        body: dict[str, object] = {
            "model": "m",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": text},
                        {"type": "image_url", "image_url": url},
                    ],
                }
            ],
        }
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    @staticmethod
    def _data_url(fmt: str) -> str:
        buf = io.BytesIO()
        PILImage.new("RGB", (8, 8)).save(buf, fmt)
        mime = {"JPEG": "jpeg", "PNG": "png", "GIF": "gif"}[fmt]
        return f"data:image/{mime};base64," + base64.b64encode(buf.getvalue()).decode()

    async def _post(self, fake: FakeVLM, body: object, key: str | None = None) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.post(
                f"{fake.url}/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key or fake.api_key}"},
            )

    async def test_wrong_key_gets_an_openai_error(self, fake_vlm: FakeVLM) -> None:
        response = await self._post(fake_vlm, self._body({"url": self._data_url("PNG")}), "nope")
        assert response.status_code == 401
        assert set(response.json()["error"]) == {"message", "type", "code"}

    @pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
    async def test_image_url_as_object_or_string(self, fake_vlm: FakeVLM, fmt: str) -> None:
        for ref in ({"url": self._data_url(fmt)}, self._data_url(fmt)):
            response = await self._post(fake_vlm, self._body(ref))
            assert response.status_code == 200
            body = response.json()
            assert body["object"] == "chat.completion"
            assert isinstance(body["choices"][0]["message"]["content"], str)

    @pytest.mark.parametrize(
        "url",
        [
            "data:image/jpeg;base64,bm90IGFuIGltYWdl",
            "data:image/jpeg;base64,!!!",
            "https://example.com/a.jpg",
        ],
    )
    async def test_bad_images_are_refused(self, fake_vlm: FakeVLM, url: str) -> None:
        response = await self._post(fake_vlm, self._body({"url": url}))
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "invalid_request_error"

    async def test_gif_is_refused(self, fake_vlm: FakeVLM) -> None:
        response = await self._post(fake_vlm, self._body({"url": self._data_url("GIF")}))
        assert response.status_code == 400

    async def test_json_mode_needs_the_word_json(self, fake_vlm: FakeVLM) -> None:
        ref = {"url": self._data_url("JPEG")}
        refused = await self._post(fake_vlm, self._body(ref, json_mode=True, text="describe"))
        accepted = await self._post(fake_vlm, self._body(ref, json_mode=True))
        assert refused.status_code == 400
        assert accepted.status_code == 200
        assert [r.status for r in fake_vlm.requests] == [400, 200]
        assert fake_vlm.requests[1].size > 0
