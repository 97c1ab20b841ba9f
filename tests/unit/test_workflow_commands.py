"""What a user's text means: the words of the dialogue contract, folded the same way."""

from __future__ import annotations

import pytest

from snapreport.workflow.commands import (
    CANCEL_WORDS,
    NO_WORDS,
    YES_WORDS,
    Command,
    clean,
    parse,
    pick_choice,
)


@pytest.mark.parametrize(
    "text", ["确认", "是", "是的", "对", "好", "好的", "提交", "ok", "yes", "y"]
)
def test_every_yes_word_of_the_contract_is_yes(text: str) -> None:
    assert parse(text) == Command("yes")


@pytest.mark.parametrize("text", ["否", "不", "不用了", "no", "n"])
def test_every_no_word_of_the_contract_is_no(text: str) -> None:
    assert parse(text) == Command("no")


def test_the_word_lists_are_exactly_the_contract() -> None:
    contract = {
        "yes": ["确认", "是", "是的", "对", "好", "好的", "提交", "ok", "yes", "y"],
        "no": ["否", "不", "不用了", "no", "n"],
        "cancel": ["取消", "退出", "cancel"],
    }
    ours = {"yes": YES_WORDS, "no": NO_WORDS, "cancel": CANCEL_WORDS}
    assert {k: sorted(v) for k, v in ours.items()} == {k: sorted(v) for k, v in contract.items()}


@pytest.mark.parametrize(
    "text", ["确认。", " OK! ", "ＹＥＳ", "Yes!!", "好的～", "确认 ", "y.", "好！", "确认？"]
)
def test_case_whitespace_full_width_and_trailing_punctuation_are_ignored(text: str) -> None:
    assert parse(text).trigger == "yes"


@pytest.mark.parametrize("text", ["不了吧", "yes please", "okay", "确认一下位置", "nope"])
def test_words_are_matched_whole_not_as_prefixes(text: str) -> None:
    assert parse(text).trigger == "text"


@pytest.mark.parametrize(
    ("text", "trigger"),
    [
        ("取消", "cancel"),
        ("退出。", "cancel"),
        ("Cancel", "cancel"),
        ("帮助", "help"),
        ("HELP?", "help"),
        ("我的工单", "my_orders"),
        ("My  Orders", "my_orders"),
        ("强制结单", "force_close"),
        ("Force close!", "force_close"),
    ],
)
def test_global_commands_and_force_close(text: str, trigger: str) -> None:
    assert parse(text).trigger == trigger


@pytest.mark.parametrize(
    ("text", "arg"),
    [
        ("结单 WO-20261124-0001", "WO-20261124-0001"),
        ("结单WO-20261124-0001", "WO-20261124-0001"),
        ("结单：WO-20261124-0001。", "WO-20261124-0001"),
        ("close wo-20261124-0001", "wo-20261124-0001"),
        ("CLOSE: WO-1", "WO-1"),
        ("结单", ""),
        ("close", ""),
        ("结单 2", "2"),
    ],
)
def test_close_with_or_without_a_number(text: str, arg: str) -> None:
    assert parse(text) == Command("close", arg)


@pytest.mark.parametrize("text", ["close the door", "closet", "closed", "请结单吧 谢谢"])
def test_close_needs_one_word_after_it(text: str) -> None:
    assert parse(text).trigger == "text"


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("类型 漏水", Command("set_type", "漏水")),
        ("类型2", Command("set_type", "2")),
        ("类型：垃圾堆放", Command("set_type", "垃圾堆放")),
        ("type 3", Command("set_type", "3")),
        ("Type: fire exit blocked", Command("set_type", "fire exit blocked")),
        ("类型", Command("set_type", "")),
        ("位置 3号楼东侧", Command("set_location", "3号楼东侧")),
        (
            "location Building 3, east stairwell",
            Command("set_location", "Building 3, east stairwell"),
        ),
    ],
)
def test_corrections_carry_their_argument(text: str, command: Command) -> None:
    assert parse(text) == command


@pytest.mark.parametrize("text", ["types of damage", "typed", "locations", "3号楼东侧楼梯间"])
def test_plain_text_stays_text_with_its_words(text: str) -> None:
    assert parse(text) == Command("text", text)


def test_clean_collapses_whitespace_and_folds_full_width() -> None:
    assert clean("  ＷＯ－１  \n 二  。") == "WO-1 二"


def test_pick_choice_by_number_or_by_value() -> None:
    choices = ("WO-20261124-0002", "WO-20261124-0001")
    assert pick_choice("1", choices) == "WO-20261124-0002"
    assert pick_choice("２。", choices) == "WO-20261124-0001"
    assert pick_choice("wo-20261124-0001", choices) == "WO-20261124-0001"
    assert pick_choice("3", choices) == ""
    assert pick_choice("0", choices) == ""
    assert pick_choice("hello", choices) is None
    assert pick_choice("1", ()) is None
