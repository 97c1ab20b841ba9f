"""The conversation corpus: every ``tests/corpus/*.json`` conversation, step by step, through
``POST /api/v1/messages`` on an in-process app, with the fake model or in manual mode.

Each conversation runs on its own app (fresh sessions, orders and media); its speaker is
``u1`` unless a step says ``"as": "<user>"``. The format is strict: an unknown key, a missing
``send``, a bad value fails the run, so a typo in a corpus file cannot pass silently.

A conversation: ``name`` (unique in its file), ``language`` ("zh-CN" or "en": sent as the
channel's hint with every message), ``model`` ("fake" or "manual"), optional ``rules`` (a named
routing-rules fixture: "default" for none, "teams" for the dispatch examples' teams), and
``steps``. A step is ``{"model": {...}}`` (queue the fake model's next photo answer),
``{"model_intent": {...}}`` (queue its next text-understanding answer), or ``{"send": {...},
"expect": {...}}``: ``send`` holds one of ``text``, ``photo`` (a colour name; ``caption`` and
``gps: [lat, lon]`` optional) or ``location`` (``latitude``, ``longitude``, ``label``), and
``as``; ``expect`` may check ``state``, ``reply_has``, ``reply_lacks``, ``choices`` (the
buttons offered), ``language`` (the session's reply language) and ``order`` (fields of the
order the reply names, or of the last one filed, read back from the admin API; ``image_count``
counts its photos).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.harness.fake_vlm import FakeVLM
from tests.integration.dispatch_kit import RULES
from tests.integration.http_kit import ADMIN_TOKEN, API_TOKEN, bearer, make_settings, running

CORPUS_DIR = Path(__file__).resolve().parents[1] / "corpus"
DEFAULT_USER = "u1"
LANGUAGES = ("zh-CN", "en")
MODELS = ("fake", "manual")
RULES_FIXTURES: dict[str, str | None] = {"default": None, "teams": RULES}
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 210),
    "yellow": (230, 200, 40),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "black": (10, 10, 10),
    "white": (245, 245, 245),
}

CONVERSATION_KEYS = frozenset({"name", "language", "model", "rules", "steps"})
STEP_KEYS = frozenset({"model", "model_intent", "send", "expect"})
SEND_KEYS = frozenset({"text", "photo", "caption", "gps", "location", "as"})
LOCATION_KEYS = frozenset({"latitude", "longitude", "label"})
EXPECT_KEYS = frozenset({"state", "reply_has", "reply_lacks", "choices", "language", "order"})
STATES = frozenset({"idle", "waiting_location", "waiting_confirm", "waiting_close_photo"})


class CorpusError(Exception):
    """A corpus file that does not follow the format."""


@dataclass(frozen=True, slots=True)
class Conversation:
    source: str
    name: str
    language: str
    model: str
    rules: str
    steps: tuple[Mapping[str, Any], ...]

    @property
    def id(self) -> str:
        return f"{self.source}::{self.name}"


def _only(obj: object, allowed: frozenset[str], where: str) -> Mapping[str, Any]:
    if not isinstance(obj, dict):
        raise CorpusError(f"{where}: expected an object, got {type(obj).__name__}")
    unknown = set(obj) - allowed
    if unknown:
        raise CorpusError(f"{where}: unknown key(s) {sorted(unknown)}")
    return obj


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CorpusError(f"{where}: expected a list of strings")
    return value


def _check_send(send: object, where: str) -> None:
    send = _only(send, SEND_KEYS, where)
    kinds = [k for k in ("text", "photo", "location") if k in send]
    if len(kinds) != 1:
        raise CorpusError(f"{where}: exactly one of text, photo, location (got {kinds})")
    if "text" in send and not isinstance(send["text"], str):
        raise CorpusError(f"{where}.text: expected a string")
    if "photo" in send and send["photo"] not in COLOURS:
        raise CorpusError(f"{where}.photo: one of {sorted(COLOURS)}")
    if ("caption" in send or "gps" in send) and "photo" not in send:
        raise CorpusError(f"{where}: caption and gps go with a photo")
    if "caption" in send and not isinstance(send["caption"], str):
        raise CorpusError(f"{where}.caption: expected a string")
    gps = send.get("gps")
    if gps is not None and not (
        isinstance(gps, list) and len(gps) == 2 and all(isinstance(v, int | float) for v in gps)
    ):
        raise CorpusError(f"{where}.gps: expected [latitude, longitude]")
    if "location" in send:
        location = _only(send["location"], LOCATION_KEYS, f"{where}.location")
        if not {"latitude", "longitude"} <= set(location):
            raise CorpusError(f"{where}.location: latitude and longitude are required")
    if "as" in send and not (isinstance(send["as"], str) and send["as"]):
        raise CorpusError(f"{where}.as: expected a user id")


def _check_expect(expect: object, where: str) -> None:
    expect = _only(expect, EXPECT_KEYS, where)
    if "state" in expect and expect["state"] not in STATES:
        raise CorpusError(f"{where}.state: one of {sorted(STATES)}")
    for key in ("reply_has", "reply_lacks", "choices"):
        if key in expect:
            _strings(expect[key], f"{where}.{key}")
    if "language" in expect and expect["language"] not in LANGUAGES:
        raise CorpusError(f"{where}.language: one of {LANGUAGES}")
    if "order" in expect and not isinstance(expect["order"], dict):
        raise CorpusError(f"{where}.order: expected an object")


def _conversation(source: str, index: int, raw: object) -> Conversation:
    where = f"{source} conversation {index}"
    obj = _only(raw, CONVERSATION_KEYS, where)
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise CorpusError(f"{where}: a non-empty name is required")
    where = f"{source} {name!r}"
    language, model = obj.get("language"), obj.get("model")
    if language not in LANGUAGES:
        raise CorpusError(f"{where}.language: one of {LANGUAGES}")
    if model not in MODELS:
        raise CorpusError(f"{where}.model: one of {MODELS}")
    rules = obj.get("rules", "default")
    if rules not in RULES_FIXTURES:
        raise CorpusError(f"{where}.rules: one of {sorted(RULES_FIXTURES)}")
    steps = obj.get("steps")
    if not isinstance(steps, list) or not steps:
        raise CorpusError(f"{where}.steps: a non-empty list is required")
    for i, step in enumerate(steps):
        at = f"{where} step {i}"
        step = _only(step, STEP_KEYS, at)
        kinds = [k for k in ("model", "model_intent", "send") if k in step]
        if len(kinds) != 1:
            raise CorpusError(f"{at}: exactly one of model, model_intent, send (got {kinds})")
        if "expect" in step and "send" not in step:
            raise CorpusError(f"{at}: expect goes with send")
        if kinds[0] in ("model", "model_intent"):
            if model != "fake":
                raise CorpusError(f'{at}: {kinds[0]} needs "model": "fake"')
            if not isinstance(step[kinds[0]], dict):
                raise CorpusError(f"{at}.{kinds[0]}: expected an object")
        else:
            _check_send(step["send"], f"{at}.send")
            if "expect" in step:
                _check_expect(step["expect"], f"{at}.expect")
    return Conversation(source, name, language, model, rules, tuple(steps))


def load_corpus(directory: Path = CORPUS_DIR) -> list[Conversation]:
    """Every conversation of every ``*.json`` file in ``directory``, checked."""
    conversations: list[Conversation] = []
    for path in sorted(directory.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        data = _only(json.loads(text), frozenset({"conversations"}), path.name)
        raw = data.get("conversations")
        if not isinstance(raw, list) or not raw:
            raise CorpusError(f"{path.name}: a non-empty 'conversations' list is required")
        found = [_conversation(path.name, i, c) for i, c in enumerate(raw)]
        names = [c.name for c in found]
        if len(set(names)) != len(names):
            raise CorpusError(f"{path.name}: conversation names must be unique")
        conversations.extend(found)
    return conversations


CORPUS = load_corpus()


def test_the_corpus_has_enough_exchanges() -> None:
    exchanges = sum(1 for c in CORPUS for step in c.steps if "send" in step)
    assert exchanges >= 40, f"the corpus holds {exchanges} exchanges; at least 40 are wanted"


@pytest.mark.parametrize(
    ("obj", "complaint"),
    [
        ({"name": "x", "language": "zh-CN", "model": "manual", "steps": [{"sned": {}}]}, "sned"),
        (
            {
                "name": "x",
                "language": "zh-CN",
                "model": "manual",
                "steps": [{"send": {"text": "hi"}, "expect": {"stat": "idle"}}],
            },
            "stat",
        ),
        ({"name": "x", "language": "fr", "model": "manual", "steps": []}, "language"),
        (
            {"name": "x", "language": "en", "model": "manual", "steps": [{"model": {}}]},
            "needs",
        ),
    ],
)
def test_a_malformed_conversation_fails_the_run(obj: dict[str, Any], complaint: str) -> None:
    with pytest.raises(CorpusError, match=complaint):
        _conversation("bad.json", 0, obj)


# -- running a conversation ------------------------------------------------------------------


def photo_bytes(colour: str, gps: list[float] | None = None) -> bytes:
    """A small JPEG of one colour; with ``gps``, EXIF GPS tags holding that position."""
    buffer = io.BytesIO()
    image = Image.new("RGB", (64, 48), COLOURS[colour])
    if gps is None:
        image.save(buffer, "JPEG", quality=85)
        return buffer.getvalue()
    exif = Image.Exif()
    lat, lon = gps
    exif.get_ifd(0x8825).update(
        {
            1: "N" if lat >= 0 else "S",
            2: _dms(abs(lat)),
            3: "E" if lon >= 0 else "W",
            4: _dms(abs(lon)),
        }
    )
    image.save(buffer, "JPEG", quality=85, exif=exif)
    return buffer.getvalue()


def test_a_gps_photo_carries_its_position_in_exif() -> None:
    with Image.open(io.BytesIO(photo_bytes("red", [31.2304, -121.4737]))) as image:
        gps = image.getexif().get_ifd(0x8825)
    assert (gps[1], gps[3]) == ("N", "W")
    lat = gps[2][0] + gps[2][1] / 60 + gps[2][2] / 3600
    lon = gps[4][0] + gps[4][1] / 60 + gps[4][2] / 3600
    assert (round(float(lat), 4), round(float(lon), 4)) == (31.2304, 121.4737)
    with Image.open(io.BytesIO(photo_bytes("blue"))) as image:
        assert not image.getexif().get_ifd(0x8825)


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60, 4)
    return (float(degrees), float(minutes), seconds)


@dataclass
class _Run:
    conversation: Conversation
    last_order: str | None = None
    turns: list[str] = field(default_factory=list)

    def where(self, index: int) -> str:
        trail = "\n".join(self.turns[-6:])
        return f"{self.conversation.id} step {index}\n{trail}"


def _body(conversation: Conversation, send: Mapping[str, Any], index: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user_id": send.get("as", DEFAULT_USER),
        "message_id": f"corpus-{index}",
        "language": conversation.language,
    }
    if "text" in send:
        body["text"] = send["text"]
    elif "photo" in send:
        data = photo_bytes(send["photo"], send.get("gps"))
        body["image"] = {"data": base64.b64encode(data).decode(), "mime": "image/jpeg"}
        if "caption" in send:
            body["text"] = send["caption"]
    else:
        body["location"] = dict(send["location"])
    return body


def _said(send: Mapping[str, Any]) -> str:
    if "text" in send:
        return repr(send["text"])
    if "photo" in send:
        return f"[photo {send['photo']}] {send.get('caption', '')}"
    return f"[location {send['location']}]"


def _image_count(order: Mapping[str, Any]) -> int:
    keys = order.get("image_keys")
    if isinstance(keys, list):
        return len(keys)
    return 1 if order.get("image_key") else 0


@pytest.mark.parametrize("conversation", CORPUS, ids=[c.id for c in CORPUS])
async def test_conversation(conversation: Conversation, tmp_path: Path, fake_vlm: FakeVLM) -> None:
    overrides: dict[str, Any] = {"api_token": API_TOKEN, "admin_token": ADMIN_TOKEN}
    if conversation.model == "fake":
        overrides["vision"] = {
            "base_url": fake_vlm.url,
            "api_key": fake_vlm.api_key,
            "model": fake_vlm.model,
            "max_retries": 0,
        }
    rules = RULES_FIXTURES[conversation.rules]
    if rules is not None:
        rules_file = tmp_path / "rules.toml"
        rules_file.write_text(rules, encoding="utf-8")
        overrides["dispatch"] = {"rules_file": rules_file}
    run = _Run(conversation)
    async with running(make_settings(tmp_path, **overrides)) as r:
        for index, step in enumerate(conversation.steps):
            if "model" in step:
                fake_vlm.enqueue_json(step["model"])
                continue
            if "model_intent" in step:
                fake_vlm.enqueue_intent(step["model_intent"])
                continue
            send = step["send"]
            response = await r.client.post(
                "/api/v1/messages",
                json=_body(conversation, send, index),
                headers=bearer(API_TOKEN),
            )
            assert response.status_code == 200, f"{run.where(index)}\n{response.text}"
            answer = response.json()
            text = "\n".join(reply["text"] for reply in answer["replies"])
            run.turns += [f"> {_said(send)}", f"< [{answer['state']}] {text}"]
            if answer.get("order") is not None:
                run.last_order = answer["order"]["number"]
            expect = step.get("expect", {})
            where = run.where(index)
            if "state" in expect:
                assert answer["state"] == expect["state"], where
            for wanted in expect.get("reply_has", []):
                assert wanted in text, f"{where}\nwanted in the reply: {wanted!r}"
            for unwanted in expect.get("reply_lacks", []):
                assert unwanted not in text, f"{where}\nnot wanted in the reply: {unwanted!r}"
            if "choices" in expect:
                assert answer.get("choices", []) == expect["choices"], where
            if "language" in expect:
                assert answer.get("language") == expect["language"], where
            if "order" in expect:
                number = (answer.get("order") or {}).get("number") or run.last_order
                assert number is not None, f"{where}\nno order was filed"
                detail = await r.client.get(f"/api/v1/orders/{number}", headers=bearer(ADMIN_TOKEN))
                assert detail.status_code == 200, f"{where}\n{detail.text}"
                order = detail.json()
                for key, value in expect["order"].items():
                    actual = (
                        _image_count(order) if key == "image_count" else order.get(key, KeyError)
                    )
                    assert actual == value, (
                        f"{where}\norder {number} {key}: {actual!r} != {value!r}"
                    )
