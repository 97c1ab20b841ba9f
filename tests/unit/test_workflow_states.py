"""The transition table: complete, unambiguous, and wired to real handlers."""

from __future__ import annotations

import pytest

from snapreport.session.model import STATES, State
from snapreport.workflow.handlers import close, report, shared, staff
from snapreport.workflow.states import (
    ANY,
    SAME,
    TRANSITIONS,
    Transition,
    build_routes,
    route,
)
from snapreport.workflow.triggers import BASE_TRIGGERS, TRIGGERS, Trigger

GLOBAL_TRIGGERS: tuple[Trigger, ...] = ("cancel", "help", "my_orders")


def test_every_public_handler_is_in_the_table() -> None:
    named = {row.handler for row in TRANSITIONS}
    public = {
        function
        for module in (shared, report, close, staff)
        for name, function in vars(module).items()
        if callable(function)
        and getattr(function, "__module__", None) == module.__name__
        and not name.startswith("_")
    }
    assert public == named


def test_every_row_uses_known_states_and_triggers() -> None:
    for row in TRANSITIONS:
        assert row.source == ANY or row.source in STATES, row
        assert row.target == SAME or row.target in STATES, row
        assert row.trigger in TRIGGERS, row


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("trigger", GLOBAL_TRIGGERS)
def test_global_commands_work_in_every_state(state: State, trigger: Trigger) -> None:
    routes = build_routes(TRANSITIONS)
    found = routes[(state, trigger)]
    expected: set[State] = {"idle"} if trigger == "cancel" else {state}
    assert found.targets == expected


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("trigger", BASE_TRIGGERS)
def test_every_state_answers_text_photos_and_locations(state: State, trigger: Trigger) -> None:
    assert (state, trigger) in build_routes(TRANSITIONS)


def test_the_contract_moves() -> None:
    routes = build_routes(TRANSITIONS)
    assert routes[("idle", "image")].targets == {"waiting_location"}
    assert routes[("idle", "close")].targets == {"waiting_close_photo", "idle"}
    assert routes[("waiting_location", "text")].targets == {"waiting_confirm"}
    assert routes[("waiting_location", "location")].targets == {"waiting_confirm"}
    assert routes[("waiting_location", "image")].targets == {"waiting_location"}
    # a yes files the report, or first offers the open order it duplicates (Part 2)
    assert routes[("waiting_confirm", "yes")].targets == {"idle", "waiting_confirm"}
    assert routes[("waiting_confirm", "no")].handler is shared.cancel
    assert routes[("waiting_confirm", "image")].targets == {"waiting_confirm"}
    assert routes[("waiting_close_photo", "image")].targets == {"idle", "waiting_close_photo"}
    for state in ("waiting_location", "waiting_confirm", "waiting_close_photo"):
        assert routes[(state, "expired")].targets == {"idle"}


def test_a_command_without_a_row_is_handled_as_text() -> None:
    routes = build_routes(TRANSITIONS)
    trigger, found = route(routes, "waiting_close_photo", "yes")
    assert trigger == "text"
    assert found.handler is close.ask_close_photo
    trigger, found = route(routes, "waiting_confirm", "yes")
    assert (trigger, found.handler) == ("yes", report.submit)


def test_two_handlers_for_one_state_and_trigger_are_refused() -> None:
    rows = (
        *TRANSITIONS,
        Transition("idle", "image", "idle", shared.chat),
    )
    with pytest.raises(ValueError, match="idle on image"):
        build_routes(rows)


def test_a_state_without_a_text_row_is_refused() -> None:
    rows = tuple(r for r in TRANSITIONS if (r.source, r.trigger) != ("waiting_confirm", "text"))
    with pytest.raises(ValueError, match="waiting_confirm has no row for text"):
        build_routes(rows)


def test_a_specific_row_overrides_an_any_row() -> None:
    rows = (*TRANSITIONS, Transition("waiting_confirm", "help", SAME, report.repeat_summary))
    routes = build_routes(rows)
    assert routes[("waiting_confirm", "help")].handler is report.repeat_summary
    assert routes[("idle", "help")].handler is shared.show_help
