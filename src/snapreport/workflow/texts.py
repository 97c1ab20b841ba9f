"""Every text a user reads, one JSON file per language under ``texts/`` (zh-CN is the default):
the dialogue's replies and what a channel says itself (keys ``wecom.*``).

Each file maps a key to a template with ``{placeholders}``; both files have the same keys and
the same placeholders per key (a test checks it). Files are read when first asked for.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Final

from snapreport.errors import ConfigurationError

LANGUAGES: Final[tuple[str, ...]] = ("zh-CN", "en")
DEFAULT_LANGUAGE: Final = "zh-CN"


class Texts:
    """The reply texts of one language: ``texts("close.ask_photo", number=...)``."""

    __slots__ = ("_table", "language")

    def __init__(self, language: str, table: Mapping[str, str]) -> None:
        self.language = language
        self._table = dict(table)

    def __call__(self, key: str, /, **values: object) -> str:
        """The text of ``key`` with its placeholders filled (a missing one is a KeyError)."""
        return self._table[key].format_map(values)

    def keys(self) -> frozenset[str]:
        return frozenset(self._table)

    def template(self, key: str) -> str:
        return self._table[key]

    def duration(self, seconds: float) -> str:
        """A time span as people say it: minutes from two minutes up, else seconds."""
        if seconds >= 120:
            return self("duration.minutes", n=round(seconds / 60))
        return self("duration.seconds", n=max(1, round(seconds)))


def placeholders(template: str) -> frozenset[str]:
    """The names of the ``{placeholders}`` in a template."""
    return frozenset(
        name for _, name, _, _ in string.Formatter().parse(template) if name is not None
    )


@cache
def _table(language: str) -> Mapping[str, str]:
    resource = resources.files("snapreport.workflow").joinpath("texts", f"{language}.json")
    table = json.loads(resource.read_text(encoding="utf-8"))
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in table.items()
    ):
        raise ConfigurationError(f"texts/{language}.json must map keys to strings")
    return table


def load_texts(language: str = DEFAULT_LANGUAGE) -> Texts:
    """The texts of ``language`` (one of ``LANGUAGES``)."""
    if language not in LANGUAGES:
        raise ConfigurationError(
            f"unknown language {language!r}; expected one of {', '.join(LANGUAGES)}"
        )
    return Texts(language, _table(language))
