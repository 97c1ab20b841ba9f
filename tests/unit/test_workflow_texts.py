"""Reply texts: both languages complete, every key the code uses exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import snapreport.workflow
from snapreport.errors import ConfigurationError
from snapreport.session.model import STATES
from snapreport.workflow.texts import LANGUAGES, load_texts, placeholders

WORKFLOW_DIR = Path(snapreport.workflow.__file__).parent
# where texts are looked up: the dialogue, and the channel that speaks for itself
CODE_DIRS = (WORKFLOW_DIR, WORKFLOW_DIR.parent / "channels" / "wecom")
_KEY_IN_CODE = re.compile(
    r"""(?:say|_say|_texts|texts)\(\s*"([a-z_]+(?:\.[a-z_]+)*)"|"([a-z]+\.[a-z_]+)\""""
)


def _keys_used_in_code() -> set[str]:
    keys: set[str] = set()
    for path in (p for d in CODE_DIRS for p in d.rglob("*.py")):
        for match in _KEY_IN_CODE.finditer(path.read_text(encoding="utf-8")):
            key = match[1] or match[2]
            if not key.startswith("snapreport."):  # a logger or module name, not a text
                keys.add(key)
    keys.update(f"help.{state}" for state in STATES)  # looked up by state name
    return keys


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    zh, en = load_texts("zh-CN"), load_texts("en")
    assert zh.keys() == en.keys()
    for key in sorted(zh.keys()):
        assert placeholders(zh.template(key)) == placeholders(en.template(key)), key


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_key_the_code_uses_exists(language: str) -> None:
    used = _keys_used_in_code()
    assert "summary.no_description" in used  # the scan does find keys
    assert "wecom.image.too_large" in used
    missing = used - load_texts(language).keys()
    assert not missing


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_text_is_empty(language: str) -> None:
    texts = load_texts(language)
    keys = texts.keys()
    assert all(texts.template(key).strip() for key in keys)


def test_placeholders_are_filled() -> None:
    texts = load_texts("en")
    assert texts("close.not_found", number="WO-1") == (
        "There is no work order WO-1; please check the number."
    )
    with pytest.raises(KeyError):
        texts("close.not_found")


def test_an_unknown_language_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="zh-CN, en"):
        load_texts("fr")
