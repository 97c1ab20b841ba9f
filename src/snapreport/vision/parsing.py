"""Defensive parsing of a vision model's JSON answers.

Models asked for JSON still wrap it in code fences, put prose around it, use Python literals,
quote numbers, give percentages, say "yes" for true, rename fields, or invent alarm types. These
functions accept all of that and normalise it; an answer with no usable JSON object raises
``VisionUnavailable`` (the dialogue then goes on in manual mode).
"""

from __future__ import annotations

import ast
import json
import math
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from snapreport.errors import VisionUnavailable
from snapreport.vision.base import UNCLASSIFIED, Analysis, Verification

OTHER: Final = "其他"
MAX_DESCRIPTION_CHARS: Final = 500
MAX_NOTE_CHARS: Final = 500
_MAX_ANSWER_CHARS: Final = 100_000
_MAX_CANDIDATES: Final = 50

ALARM_TYPE_FIELDS: Final = ("alarm_type", "alarmType", "type", "category", "告警类型", "类型")
DESCRIPTION_FIELDS: Final = ("description", "desc", "summary", "描述", "说明")
CONFIDENCE_FIELDS: Final = ("confidence", "score", "probability", "置信度")
RESOLVED_FIELDS: Final = ("resolved", "is_resolved", "isResolved", "fixed", "已解决", "是否解决")
NOTE_FIELDS: Final = ("note", "reason", "explanation", "comment", "备注", "说明", "原因")

_FENCE = re.compile(r"```[ \t]*(?:json|JSON|json5)?[ \t]*\r?\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")

_TRUE_WORDS: Final = frozenset(
    {"true", "yes", "y", "1", "resolved", "fixed", "是", "是的", "对", "已解决", "已整改", "解决"}
)
_FALSE_WORDS: Final = frozenset(
    {
        "false",
        "no",
        "n",
        "0",
        "unresolved",
        "not resolved",
        "not fixed",
        "否",
        "不是",
        "未解决",
        "没有解决",
        "未整改",
    }
)
_CONFIDENCE_WORDS: Final = {
    "very high": 0.95,
    "high": 0.9,
    "medium": 0.6,
    "moderate": 0.6,
    "low": 0.3,
    "very low": 0.1,
    "很高": 0.95,
    "高": 0.9,
    "中": 0.6,
    "中等": 0.6,
    "低": 0.3,
    "很低": 0.1,
}


def extract_json_object(text: object) -> dict[str, Any]:
    """The first JSON object found in a model's answer; ``VisionUnavailable`` if there is none.

    Tried in order: the whole text, the contents of code fences, then every ``{`` from the
    left (``raw_decode`` stops at the object's end, so prose after it does not matter). Each
    candidate is also tried with trailing commas removed and as a Python literal.
    """
    if not isinstance(text, str):
        raise VisionUnavailable(f"the model's answer is not text but {type(text).__name__}")
    text = text.strip().lstrip("\ufeff")
    if not text:
        raise VisionUnavailable("the model's answer is empty")
    if len(text) > _MAX_ANSWER_CHARS:
        text = text[:_MAX_ANSWER_CHARS]
    for candidate in _candidates(text):
        found = _decode(candidate)
        if found is not None:
            return found
    raise VisionUnavailable(f"the model's answer holds no JSON object: {_preview(text)}")


def _candidates(text: str) -> Iterator[str]:
    yield text
    for match in _FENCE.finditer(text):
        yield match.group(1).strip()
    starts = [i for i, ch in enumerate(text) if ch == "{"][:_MAX_CANDIDATES]
    for start in starts:
        yield text[start:]


def _decode(candidate: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    for variant in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
        try:
            value, _ = decoder.raw_decode(variant)
        except ValueError:
            continue
        found = _first_object(value)
        if found is not None:
            return found
    return _decode_python_literal(candidate)


def _decode_python_literal(candidate: str) -> dict[str, Any] | None:
    # Some models answer {'resolved': True}; literal_eval parses literals only, never code.
    if not candidate.startswith("{"):
        return None
    end = _matching_brace(candidate)
    if end is None:
        return None
    try:
        value = ast.literal_eval(candidate[: end + 1])
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return _first_object(value)


def _matching_brace(text: str) -> int | None:
    depth = 0
    quote: str | None = None
    escaped = False
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _first_object(value: object) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return {str(k): v for k, v in value[0].items()}
    return None


def _preview(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "...")


def _field(obj: Mapping[str, Any], names: Sequence[str]) -> Any:
    for name in names:
        if name in obj and obj[name] is not None:
            return obj[name]
    lowered = {k.lower(): v for k, v in obj.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value is not None:
            return value
    return None


def normalise_confidence(value: object) -> float | None:
    """A confidence in 0..1, from 0.9, "0.9", 90, "90%" or "high"; None if meaningless."""
    number: float
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in _CONFIDENCE_WORDS:
            return _CONFIDENCE_WORDS[text]
        percent = text.endswith("%")
        try:
            number = float(text.rstrip("%").strip())
        except ValueError:
            return None
        if percent:
            number /= 100
    else:
        return None
    if math.isnan(number) or number < 0:
        return None
    if number > 1:
        # 1 < x <= 100 is a percentage; anything larger means nothing
        if number > 100:
            return None
        number /= 100
    return round(number, 4)


def parse_bool(value: object) -> bool | None:
    """True/False from booleans, 1/0 and words such as "yes", "否", "resolved"; else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().rstrip(".。!!").strip().lower()  # noqa: B005 - a set of marks
        if text in _TRUE_WORDS:
            return True
        if text in _FALSE_WORDS:
            return False
    return None


def _normal(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split()).casefold()


def match_alarm_type(value: object, catalog: Sequence[str]) -> str:
    """The catalog entry a model's ``alarm_type`` names.

    Exact match first, then ignoring width, case and spaces, then the longest catalog entry
    contained in the answer ("消防通道堵塞问题" is 消防通道堵塞), then an answer contained in
    exactly one entry. Anything else is ``其他`` (or ``未分类`` if the catalog has no ``其他``).
    """
    fallback = OTHER if OTHER in catalog else UNCLASSIFIED
    if isinstance(value, list | tuple) and value:
        value = value[0]
    if not isinstance(value, str) or not value.strip():
        return fallback
    answer = value.strip()
    if answer in catalog:
        return answer
    wanted = _normal(answer)
    by_normal = {_normal(name): name for name in catalog if name}
    if wanted in by_normal:
        return by_normal[wanted]
    contained = [name for norm, name in by_normal.items() if norm and norm in wanted]
    if contained:
        return max(contained, key=len)
    if len(wanted) >= 2:
        containing = [name for norm, name in by_normal.items() if wanted in norm]
        if len(containing) == 1:
            return containing[0]
    return fallback


def _text(value: object, limit: int) -> str:
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, list | tuple):
        text = ";".join(str(v) for v in value if v is not None)
    elif isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_analysis(text: str, catalog: Sequence[str]) -> Analysis:
    """An ``Analysis`` from a model's answer: type from ``catalog``, description, confidence."""
    obj = extract_json_object(text)
    return Analysis(
        alarm_type=match_alarm_type(_field(obj, ALARM_TYPE_FIELDS), catalog),
        description=_text(_field(obj, DESCRIPTION_FIELDS), MAX_DESCRIPTION_CHARS),
        confidence=normalise_confidence(_field(obj, CONFIDENCE_FIELDS)),
    )


def parse_verification(text: str) -> Verification:
    """A ``Verification`` from a model's answer.

    An answer that does not say whether the problem is resolved is treated as no answer
    (``VisionUnavailable``): guessing either way would close or block an order on nothing.
    """
    obj = extract_json_object(text)
    resolved = parse_bool(_field(obj, RESOLVED_FIELDS))
    if resolved is None:
        raise VisionUnavailable(
            f"the model's answer does not say resolved or not: {_preview(text)}"
        )
    return Verification(resolved=resolved, note=_text(_field(obj, NOTE_FIELDS), MAX_NOTE_CHARS))
