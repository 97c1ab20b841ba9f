"""Understanding free text: what a text that matches none of the dialogue's words means.

The model (``VisionModel.understand``) answers with the contract's JSON object
``{"intent", "alarm_type", "location", "order_number", "reply"}``. This module only turns that
answer into the trigger and argument the same words would have given (``confirm`` is a yes,
``set_type`` is ``类型 X`` with X the model's ``alarm_type``, ``close_order`` is ``结单 [单号]``,
...); the assistant then dispatches them by the state table to the very handlers the words
reach, so every permission check and every reply is the words'. The model can therefore never
do more than the user could by typing.

Anything unusable (no model, a failure, a slow answer, an unknown intent, a field of the wrong
type or too long, an order number that is not one word) gives ``None``: the dialogue goes on as
it would without understanding. Understanding never takes longer than
``Services.text_timeout_seconds``.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from snapreport.errors import VisionUnavailable
from snapreport.session.history import TextPart
from snapreport.session.model import Session
from snapreport.vision.base import TextQuery
from snapreport.workflow.handlers.context import (
    MAX_DESCRIPTION_CHARS,
    MAX_LOCATION_CHARS,
    Services,
    log,
)
from snapreport.workflow.triggers import Trigger

MAX_TURNS: Final = 6  # the last messages the model sees
MAX_TURN_CHARS: Final = 300
MAX_TYPE_CHARS: Final = 64
MAX_REPLY_CHARS: Final = 1000
_ORDER_NUMBER: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,39}")

# intent → the trigger of the equivalent words, and the answer field that is its argument
INTENTS: Final[Mapping[str, tuple[Trigger, str | None]]] = {
    "confirm": ("yes", None),
    "cancel": ("cancel", None),
    "set_type": ("set_type", "alarm_type"),
    "set_location": ("set_location", "location"),
    "close_order": ("close", "order_number"),
    "accept_order": ("accept", "order_number"),
    "my_orders": ("my_orders", None),
    "my_tasks": ("my_tasks", None),
    "help": ("help", None),
    "smalltalk": ("text", "reply"),
}
# an argument the words cannot do without
_REQUIRED: Final = frozenset({"set_type", "set_location", "accept_order", "smalltalk"})


@dataclass(frozen=True, slots=True)
class Understood:
    """What a free text means: ``trigger`` and ``arg`` as the words would give them; for
    small talk, ``trigger`` is "text" and ``reply`` the model's answer."""

    intent: str
    trigger: Trigger
    arg: str = ""
    reply: str = ""


async def understand(
    services: Services, session: Session, text: str, language: str
) -> Understood | None:
    """Ask the model what ``text`` means; None when its answer is of no use (see above)."""
    query = TextQuery(
        text=text,
        state=session.state,
        pending=_pending(session),
        catalog=services.catalog,
        turns=_last_turns(session),
    )
    try:
        async with asyncio.timeout(services.text_timeout_seconds):
            answer = await services.vision.understand(query, language=language)
    except TimeoutError:
        log.warning("understanding_timeout", timeout_seconds=services.text_timeout_seconds)
        return None
    except VisionUnavailable as exc:
        log.warning("understanding_failed", error=exc.message)
        return None
    understood = read_answer(answer)
    if understood is None:
        log.info("understanding_unusable", state=session.state)
    else:
        log.info("text_understood", intent=understood.intent, state=session.state)
    return understood


def read_answer(answer: Mapping[str, Any]) -> Understood | None:
    """The model's answer as trigger and argument, or None if any part of it is unusable."""
    intent = answer.get("intent")
    if not isinstance(intent, str) or intent not in INTENTS:
        return None
    trigger, field = INTENTS[intent]
    if field is None:
        return Understood(intent, trigger)
    value = _field(answer.get(field), field)
    if value is None or (not value and intent in _REQUIRED):
        return None
    if intent == "smalltalk":
        return Understood(intent, trigger, reply=value)
    return Understood(intent, trigger, arg=value)


def _field(value: object, field: str) -> str | None:
    """A string field, checked: "" for null, None when it is of no use."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return None
    value = " ".join(value.split())
    if field == "order_number":
        value = unicodedata.normalize("NFKC", value)
        return value if not value or _ORDER_NUMBER.fullmatch(value) else None
    limit = {"alarm_type": MAX_TYPE_CHARS, "location": MAX_LOCATION_CHARS}.get(
        field, MAX_REPLY_CHARS
    )
    return value if len(value) <= limit else None


def _pending(session: Session) -> dict[str, str]:
    slots = session.slots
    return {
        "type": slots.alarm_type,
        "location": slots.location,
        "description": slots.analysis[:MAX_DESCRIPTION_CHARS],
        "order": slots.order_id,
    }


def _last_turns(session: Session) -> list[tuple[str, str]]:
    """The last messages before this one, as text (photos are left out)."""
    messages = session.history.messages()[:-1][-MAX_TURNS:]
    turns: list[tuple[str, str]] = []
    for message in messages:
        text = " ".join(p.text for p in message.content if isinstance(p, TextPart))
        if text:
            turns.append((message.role, text[:MAX_TURN_CHARS]))
    return turns
