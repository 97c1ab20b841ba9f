"""``TimedVision`` observes every model call by operation and outcome, and none in manual mode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from snapreport.errors import VisionUnavailable
from snapreport.metrics import Metrics, TimedVision
from snapreport.session.history import Message
from snapreport.vision.base import Analysis, Image, Verification
from snapreport.vision.manual import ManualVision

PHOTO = Image(b"\x89PNG", "image/png")


class FlakyModel(ManualVision):
    """An enabled model whose chat fails."""

    @property
    def enabled(self) -> bool:
        return True

    async def chat(
        self, messages: Sequence[Message], images: Mapping[str, Image], *, language: str
    ) -> str:
        raise VisionUnavailable("the model timed out")


def count(metrics: Metrics, operation: str, outcome: str) -> float:
    labels = {"operation": operation, "outcome": outcome}
    value = metrics.registry.get_sample_value("snapreport_vlm_seconds_count", labels)
    return value or 0.0


async def test_calls_are_observed_as_ok_or_error() -> None:
    metrics = Metrics()
    vision = TimedVision(FlakyModel(), metrics)
    assert isinstance(await vision.analyze(PHOTO, ["漏水"], language="en"), Analysis)
    verdict = await vision.verify_close(PHOTO, PHOTO, description="", language="en")
    assert isinstance(verdict, Verification)
    with pytest.raises(VisionUnavailable):
        await vision.chat([], {}, language="en")
    assert count(metrics, "analyze", "ok") == 1
    assert count(metrics, "verify_close", "ok") == 1
    assert count(metrics, "chat", "error") == 1
    assert count(metrics, "chat", "ok") == 0


async def test_manual_mode_is_not_a_model_latency() -> None:
    metrics = Metrics()
    vision = TimedVision(ManualVision(), metrics)
    await vision.analyze(PHOTO, ["漏水"], language="en")
    with pytest.raises(VisionUnavailable):
        await vision.chat([], {}, language="en")
    assert count(metrics, "analyze", "ok") == 0
    assert count(metrics, "chat", "error") == 0
