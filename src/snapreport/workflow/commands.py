"""What a user's text means: a global command, a yes or a no, a correction, or plain text.

Commands are recognised in both languages whatever the reply language is. Words are compared
after folding: NFKC (full-width letters and punctuation from Chinese input methods become
plain ones), whitespace collapsed, trailing punctuation dropped, case ignored — so "确认。",
" OK! " and "ＹＥＳ" all mean yes. The words are exactly those of the dialogue contract.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final, Literal

TextTrigger = Literal[
    "cancel",
    "help",
    "my_orders",
    "login",
    "close",
    "force_close",
    "yes",
    "no",
    "set_type",
    "set_location",
    "accept",
    "transfer",
    "reject",
    "reopen",
    "my_tasks",
    "language",
    "add_photo",
    "merge",
    "file_anyway",
    "text",
]

CANCEL_WORDS: Final = frozenset({"取消", "退出", "cancel"})
HELP_WORDS: Final = frozenset({"帮助", "help"})
MY_ORDERS_WORDS: Final = frozenset({"我的工单", "my orders"})
MY_TASKS_WORDS: Final = frozenset({"待办", "我的待办", "my tasks"})
LOGIN_WORDS: Final = frozenset({"登录", "login"})
FORCE_CLOSE_WORDS: Final = frozenset({"强制结单", "force close"})
YES_WORDS: Final = frozenset({"确认", "是", "是的", "对", "好", "好的", "提交", "ok", "yes", "y"})
NO_WORDS: Final = frozenset({"否", "不", "不用了", "no", "n"})
# the reply language a word chooses
LANGUAGE_WORDS: Final[dict[str, str]] = {
    "中文": "zh-CN",
    "简体中文": "zh-CN",
    "chinese": "zh-CN",
    "english": "en",
    "英文": "en",
    "英语": "en",
}
ADD_PHOTO_WORDS: Final = frozenset({"再发一张", "再拍一张", "add photo", "add a photo"})
MERGE_WORDS: Final = frozenset({"追加", "add"})
FILE_ANYWAY_WORDS: Final = frozenset({"仍然上报", "还是上报", "file anyway"})

_WORDS: Final[tuple[tuple[frozenset[str], TextTrigger], ...]] = (
    (CANCEL_WORDS, "cancel"),
    (HELP_WORDS, "help"),
    (MY_ORDERS_WORDS, "my_orders"),
    (MY_TASKS_WORDS, "my_tasks"),
    (LOGIN_WORDS, "login"),
    (FORCE_CLOSE_WORDS, "force_close"),
    (YES_WORDS, "yes"),
    (NO_WORDS, "no"),
    (ADD_PHOTO_WORDS, "add_photo"),
    (MERGE_WORDS, "merge"),
    (FILE_ANYWAY_WORDS, "file_anyway"),
)

# Chinese keywords need no space before their argument; English ones do, so that "types of
# damage" or "closet" stay plain text. An order number is one token, so "close the door" is
# small talk, not an attempt to close order "the door".
_SEP = r"[\s:]"
_NUMBER = r"\S*\d\S*"  # a word with a digit, as order numbers have
_PREFIXED: Final[tuple[tuple[re.Pattern[str], TextTrigger], ...]] = (
    (re.compile(rf"(?:结单{_SEP}*|close(?:{_SEP}+|$))(?P<arg>\S*)", re.IGNORECASE), "close"),
    (re.compile(rf"(?:类型{_SEP}*|type(?:{_SEP}+|$))(?P<arg>.*)", re.IGNORECASE), "set_type"),
    (
        re.compile(rf"(?:位置{_SEP}*|location(?:{_SEP}+|$))(?P<arg>.*)", re.IGNORECASE),
        "set_location",
    ),
    # the staff commands: an order number, then what the command needs (a user or team, a
    # reason). In English the first word after the keyword must hold a digit, as order numbers
    # do, so "reject that idea" stays small talk.
    (re.compile(rf"接单{_SEP}*(?P<arg>\S*)"), "accept"),
    (re.compile(rf"accept(?:{_SEP}+(?P<arg>{_NUMBER}))?", re.IGNORECASE), "accept"),
    (re.compile(rf"转派{_SEP}*(?P<arg>.*)"), "transfer"),
    (re.compile(rf"transfer(?:{_SEP}+(?P<arg>{_NUMBER}(?:\s+.*)?))?", re.IGNORECASE), "transfer"),
    (re.compile(rf"退回{_SEP}*(?P<arg>.*)"), "reject"),
    (re.compile(rf"reject(?:{_SEP}+(?P<arg>{_NUMBER}(?:\s+.*)?))?", re.IGNORECASE), "reject"),
    (re.compile(rf"没修好{_SEP}*(?P<arg>.*)"), "reopen"),
    (re.compile(rf"reopen(?:{_SEP}+(?P<arg>{_NUMBER}(?:\s+.*)?))?", re.IGNORECASE), "reopen"),
)

_TRAILING_PUNCTUATION: Final = ".。!?~,;、…"


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed text: its trigger and the argument after a keyword (if any)."""

    trigger: TextTrigger
    arg: str = ""


def clean(text: str) -> str:
    """NFKC, whitespace collapsed to single spaces, trailing punctuation dropped."""
    folded = " ".join(unicodedata.normalize("NFKC", text).split())
    return folded.rstrip(_TRAILING_PUNCTUATION + "～ ").strip()


def fold(text: str) -> str:
    """``clean`` and case-insensitive: the form words are compared in."""
    return clean(text).casefold()


def parse(text: str) -> Command:
    """What ``text`` asks for, independent of the state (the state table decides the rest)."""
    cleaned = clean(text)
    folded = cleaned.casefold()
    for words, trigger in _WORDS:
        if folded in words:
            return Command(trigger)
    if folded in LANGUAGE_WORDS:
        return Command("language", LANGUAGE_WORDS[folded])
    for pattern, trigger in _PREFIXED:
        match = pattern.fullmatch(cleaned)
        if match is not None:
            return Command(trigger, (match["arg"] or "").strip())
    return Command("text", text.strip())


def pick_choice(text: str, choices: tuple[str, ...]) -> str | None:
    """The choice ``text`` names, by 1-based number or by value; None if it names none.

    A number out of range returns ``""``, so the caller can say which numbers are valid.
    Values are compared folded and without spaces (``垃圾 堆放``, ``ＡＢ`` match).
    """
    if not choices:
        return None
    folded = squeeze(text)
    if folded.isdecimal():
        index = int(folded)
        return choices[index - 1] if 1 <= index <= len(choices) else ""
    for choice in choices:
        if squeeze(choice) == folded:
            return choice
    return None


def squeeze(text: str) -> str:
    """``fold`` without any spaces: how a choice or a catalog name is compared."""
    return "".join(fold(text).split())
