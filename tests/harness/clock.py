"""A manual clock, so that tests move time instead of sleeping."""

from __future__ import annotations

import pytest


class FakeClock:
    """Callable clock; ``advance`` moves it forward."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
