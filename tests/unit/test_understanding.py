"""Reading the model's answer about a free text: only what the words could do, checked field by
field; anything else is None (the dialogue then goes on as without understanding)."""

from __future__ import annotations

from typing import Any

import pytest

from snapreport.workflow.commands import parse, pick_choice
from snapreport.workflow.incident import language_of
from snapreport.workflow.understanding import INTENTS, Understood, read_answer


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"intent": "confirm"}, Understood("confirm", "yes")),
        ({"intent": "cancel", "location": "ignored"}, Understood("cancel", "cancel")),
        (
            {"intent": "set_type", "alarm_type": " 漏水 "},
            Understood("set_type", "set_type", "漏水"),
        ),
        (
            {"intent": "set_location", "location": "3号楼  东边楼梯"},
            Understood("set_location", "set_location", "3号楼 东边楼梯"),
        ),
        ({"intent": "close_order", "order_number": None}, Understood("close_order", "close")),
        (
            {"intent": "close_order", "order_number": "ＷＯ-20261124-0001"},
            Understood("close_order", "close", "WO-20261124-0001"),
        ),
        (
            {"intent": "accept_order", "order_number": "WO-20261124-0002"},
            Understood("accept_order", "accept", "WO-20261124-0002"),
        ),
        ({"intent": "my_orders"}, Understood("my_orders", "my_orders")),
        ({"intent": "my_tasks"}, Understood("my_tasks", "my_tasks")),
        ({"intent": "help"}, Understood("help", "help")),
        (
            {"intent": "smalltalk", "reply": "你好！"},
            Understood("smalltalk", "text", reply="你好！"),
        ),
    ],
)
def test_each_intent_becomes_the_words_trigger(
    answer: dict[str, Any], expected: Understood
) -> None:
    assert read_answer(answer) == expected


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"intent": None},
        {"intent": 3},
        {"intent": "CONFIRM"},
        {"intent": "login"},  # a word, but not one the model may say
        {"intent": "force_close"},
        {"intent": "set_type"},
        {"intent": "set_type", "alarm_type": ""},
        {"intent": "set_type", "alarm_type": {"name": "漏水"}},
        {"intent": "set_type", "alarm_type": "x" * 65},
        {"intent": "set_location", "location": "x" * 201},
        {"intent": "set_location", "location": ["A区"]},
        {"intent": "accept_order", "order_number": None},
        {"intent": "close_order", "order_number": "WO-1 WO-2"},
        {"intent": "close_order", "order_number": "../../etc"},
        {"intent": "close_order", "order_number": "W" * 41},
        {"intent": "close_order", "order_number": 20261124},
        {"intent": "smalltalk"},
        {"intent": "smalltalk", "reply": "x" * 1001},
    ],
    ids=lambda a: str(a)[:50],
)
def test_an_unusable_answer_is_none(answer: dict[str, Any]) -> None:
    assert read_answer(answer) is None


def test_the_intents_are_the_contracts() -> None:
    assert set(INTENTS) == {
        "confirm",
        "cancel",
        "set_type",
        "set_location",
        "close_order",
        "accept_order",
        "my_orders",
        "my_tasks",
        "help",
        "smalltalk",
    }


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("中文", "zh-CN"),
        ("English", "en"),
        ("ＥＮＧＬＩＳＨ", "en"),
        ("英文。", "en"),
        ("chinese", "zh-CN"),
    ],
)
def test_language_words(text: str, language: str) -> None:
    command = parse(text)
    assert (command.trigger, command.arg) == ("language", language)


@pytest.mark.parametrize(
    ("hint", "language"),
    [
        ("en-GB", "en"),
        ("EN", "en"),
        ("zh-TW", "zh-CN"),
        ("zh_Hans_CN", "zh-CN"),
        ("fr-FR", None),
        ("", None),
        (None, None),
    ],
)
def test_a_channels_hint_names_a_language_we_speak(hint: str | None, language: str | None) -> None:
    assert language_of(hint) == language


def test_choices_are_picked_with_case_width_and_spaces_folded() -> None:
    catalog = ("消防通道堵塞", "垃圾堆放", "Water leak")
    assert pick_choice("２", catalog) == "垃圾堆放"
    assert pick_choice("垃圾 堆放", catalog) == "垃圾堆放"
    assert pick_choice(" ＷＡＴＥＲ  LEAK。", catalog) == "Water leak"
    assert pick_choice("4", catalog) == ""  # a number out of range
    assert pick_choice("漏水", catalog) is None
