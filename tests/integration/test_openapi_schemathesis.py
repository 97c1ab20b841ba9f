"""Property-based requests generated from our own OpenAPI document: never a 5xx.

The app runs under uvicorn on an ephemeral loopback port (lifespan included), open (no tokens)
so that every operation is really exercised, with a high rate limit so turns keep running.
Every operation gets a bounded number of examples, so the whole run stays near a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from snapreport.channels.http import create_app
from tests.integration.http_kit import make_settings
from tests.integration.live_server import live_server

MAX_EXAMPLES = 100
# answers that never end (Server-Sent Events): tested by test_console_events*.py instead
STREAMS = frozenset({"/api/v1/events"})
CHECKS: dict[GenerationMode, list[Any]] = {
    # valid requests must be answered as documented; invalid ones only never with a 5xx
    GenerationMode.POSITIVE: [
        not_a_server_error,
        content_type_conformance,
        response_schema_conformance,
    ],
    GenerationMode.NEGATIVE: [not_a_server_error],
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path: Path = tmp_path_factory.mktemp("schemathesis")
    app = create_app(make_settings(tmp_path, rate_limit_per_minute=100_000))
    with live_server(app) as url:
        yield url


def _operations(url: str) -> list[Any]:
    spec = httpx.get(f"{url}/openapi.json").json()
    api = schemathesis.openapi.from_dict(spec)
    operations = []
    for result in api.get_all_operations():
        assert isinstance(result, Ok), f"our own OpenAPI document is invalid: {result}"
        if result.ok().path in STREAMS:
            continue
        operations.append(result.ok())
    return operations


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_answers_5xx(served: str, mode: GenerationMode) -> None:
    failures: list[str] = []
    operations = _operations(served)
    assert len(operations) >= 14

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def exercise(case: Any) -> None:
            case.call_and_validate(base_url=served, checks=CHECKS[mode])

        try:
            exercise()
        except Unsatisfiable:
            continue  # nothing to negate: the operation takes no input
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
    if mode is GenerationMode.POSITIVE:
        # the generated messages really reached the dialogue, not only the validation: the
        # image examples carry random bytes, refused as unsupported images before any turn,
        # so a share of the examples, not all, become turns
        metrics = httpx.get(f"{served}/metrics").text
        turns = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("snapreport_turns_total{")
        )
        assert turns >= MAX_EXAMPLES * 2 / 5, metrics
