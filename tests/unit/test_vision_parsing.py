"""Defensive parsing of the model's JSON answers."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapreport.config import DEFAULT_ALARM_TYPES
from snapreport.errors import VisionUnavailable
from snapreport.vision.base import UNCLASSIFIED, Analysis, Verification
from snapreport.vision.parsing import (
    MAX_DESCRIPTION_CHARS,
    extract_json_object,
    match_alarm_type,
    normalise_confidence,
    parse_analysis,
    parse_bool,
    parse_verification,
)

CATALOG = DEFAULT_ALARM_TYPES
OBJ = {"alarm_type": "漏水", "description": "d", "confidence": 0.5}
RAW = json.dumps(OBJ, ensure_ascii=False)


@pytest.mark.parametrize(
    "text",
    [
        RAW,
        f"  {RAW}\n",
        f"\ufeff{RAW}",
        f"```json\n{RAW}\n```",
        f"```JSON\n{RAW}\n```",
        f"```\n{RAW}\n```",
        f"Here is the answer:\n```json\n{RAW}\n```\nLet me know!",
        f"分析如下:{RAW}。以上。",
        f"{RAW} and some trailing words {{not json}}",
        f"first {{oops}} then {RAW}",
        '{"alarm_type": "漏水", "description": "d", "confidence": 0.5,}',
        "{'alarm_type': '漏水', 'description': 'd', 'confidence': 0.5}",
        f"[{RAW}]",
    ],
    ids=[
        "plain",
        "spaces",
        "bom",
        "fence-json",
        "fence-JSON",
        "fence-bare",
        "fence-with-prose",
        "prose-around",
        "trailing-braces",
        "leading-braces",
        "trailing-comma",
        "python-literal",
        "list-of-one",
    ],
)
def test_extract_finds_the_object(text: str) -> None:
    assert extract_json_object(text) == OBJ


@pytest.mark.parametrize(
    "text",
    ["", "   ", "no json here", "[1, 2, 3]", '"just a string"', "{broken", "```json\n```"],
)
def test_extract_without_an_object_is_unavailable(text: str) -> None:
    with pytest.raises(VisionUnavailable):
        extract_json_object(text)


def test_extract_refuses_non_text() -> None:
    with pytest.raises(VisionUnavailable, match="not text"):
        extract_json_object(None)


def test_python_literal_is_never_evaluated_as_code() -> None:
    with pytest.raises(VisionUnavailable):
        extract_json_object("{'a': __import__('os').system('true')}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.9, 0.9),
        (1, 1.0),
        (0, 0.0),
        ("0.9", 0.9),
        (" 0.75 ", 0.75),
        (90, 0.9),
        ("90", 0.9),
        ("85%", 0.85),
        ("85 %", 0.85),
        (100, 1.0),
        ("high", 0.9),
        ("高", 0.9),
        ("Low", 0.3),
        (150, None),
        (-0.1, None),
        ("abc", None),
        (None, None),
        (True, None),
        (float("nan"), None),
        ([0.9], None),
    ],
)
def test_confidence_is_normalised(value: object, expected: float | None) -> None:
    assert normalise_confidence(value) == expected


@settings(deadline=None)
@given(st.one_of(st.floats(), st.integers(), st.text(max_size=12), st.none(), st.booleans()))
def test_confidence_is_always_in_range_or_none(value: object) -> None:
    result = normalise_confidence(value)
    assert result is None or (0.0 <= result <= 1.0 and not math.isnan(result))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("True", True),
        ("yes", True),
        ("Y", True),
        ("是", True),
        ("已解决", True),
        ("resolved", True),
        (1, True),
        ("false", False),
        ("no", False),
        ("否", False),
        ("未解决", False),
        ("not resolved", False),
        (0, False),
        ("maybe", None),
        (2, None),
        (None, None),
        ([], None),
    ],
)
def test_bool_words(value: object, expected: bool | None) -> None:
    assert parse_bool(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("消防通道堵塞", "消防通道堵塞"),
        (" 漏水 ", "漏水"),
        ("漏 水", "漏水"),
        ("消防通道堵塞问题", "消防通道堵塞"),
        ("消防设施损坏", "消防设施损坏"),  # not the shorter 设施损坏 it contains
        ("疑似消防设施损坏", "消防设施损坏"),
        ("违规", "违规停车"),  # a fragment of exactly one entry
        ("损坏", "其他"),  # a fragment of two entries: ambiguous
        ("高空坠物", "其他"),
        ("", "其他"),
        (None, "其他"),
        (3, "其他"),
        (["漏水", "垃圾堆放"], "漏水"),
    ],
)
def test_alarm_type_matching(value: object, expected: str) -> None:
    assert match_alarm_type(value, CATALOG) == expected


def test_alarm_type_matching_is_case_and_width_blind() -> None:
    catalog = ("Fire Exit Blocked", "Leak", "其他")
    assert match_alarm_type("fire exit blocked", catalog) == "Fire Exit Blocked"
    assert match_alarm_type("LEAK", catalog) == "Leak"
    assert match_alarm_type("Ｌｅａｋ", catalog) == "Leak"


def test_unknown_type_without_other_in_catalog_is_unclassified() -> None:
    assert match_alarm_type("火灾", ("漏水", "垃圾堆放")) == UNCLASSIFIED


@settings(deadline=None)
@given(st.text(max_size=40))
def test_alarm_type_is_always_from_the_catalog_or_other(value: str) -> None:
    assert match_alarm_type(value, CATALOG) in CATALOG


def test_parse_analysis_full() -> None:
    text = (
        '```json\n{"alarm_type": "垃圾堆放", "description": " 楼道\\n堆放垃圾 ", '
        '"confidence": "80%"}\n```'
    )
    assert parse_analysis(text, CATALOG) == Analysis("垃圾堆放", "楼道 堆放垃圾", 0.8)


def test_parse_analysis_renamed_fields_and_missing_parts() -> None:
    assert parse_analysis('{"类型": "漏水", "描述": "渗水"}', CATALOG) == Analysis(
        "漏水", "渗水", None
    )
    assert parse_analysis('{"AlarmType": "漏水"}', CATALOG) == Analysis("漏水", "", None)
    assert parse_analysis("{}", CATALOG) == Analysis("其他", "", None)


def test_parse_analysis_caps_the_description() -> None:
    text = json.dumps({"alarm_type": "漏水", "description": "水" * 5000})
    assert len(parse_analysis(text, CATALOG).description) == MAX_DESCRIPTION_CHARS


def test_parse_analysis_list_description() -> None:
    text = json.dumps({"alarm_type": "漏水", "description": ["a", "b"]})
    assert parse_analysis(text, CATALOG).description == "a;b"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"resolved": true, "note": "已清理"}', Verification(True, "已清理")),
        ('{"resolved": "no", "note": "仍有杂物"}', Verification(False, "仍有杂物")),
        ('{"is_resolved": "是", "reason": "ok"}', Verification(True, "ok")),
        ('```json\n{"resolved": false}\n```', Verification(False, "")),
        ("结论 {'resolved': True, 'note': 'fine'} 完", Verification(True, "fine")),
    ],
)
def test_parse_verification(text: str, expected: Verification) -> None:
    result = parse_verification(text)
    assert result == expected
    assert result.verified


@pytest.mark.parametrize("text", ['{"note": "看不清"}', '{"resolved": "maybe"}', "已解决"])
def test_verification_without_a_verdict_is_unavailable(text: str) -> None:
    with pytest.raises(VisionUnavailable):
        parse_verification(text)


@settings(deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises_anything_else(text: str) -> None:
    try:
        result = parse_analysis(text, CATALOG)
    except VisionUnavailable:
        return
    assert result.alarm_type in CATALOG
    assert result.confidence is None or 0 <= result.confidence <= 1


@settings(deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["alarm_type", "description", "confidence", "type", "x"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(allow_nan=False),
            st.text(max_size=20),
            st.lists(st.text(max_size=5), max_size=3),
        ),
    )
)
def test_any_json_object_gives_a_valid_analysis(obj: dict[str, object]) -> None:
    result = parse_analysis(json.dumps(obj), CATALOG)
    assert result.alarm_type in CATALOG
    assert isinstance(result.description, str)
    assert result.confidence is None or 0 <= result.confidence <= 1
