"""The incident dialogue's states and transitions, in ONE table.

The table is the source of truth: the assistant dispatches by it, refuses a handler's move to
a state its rows do not declare, and ``diagram.mermaid()`` draws it. A handler that can end in
more than one state has one row per possible target.

Triggers come from the event (``image``, ``location``), from the text (see ``commands``), or
from the session (``expired``: it expired while not idle; ``choice``: an answer to a numbered
list of orders). A text trigger that has no row in the current state is handled as ``text``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from snapreport.session.model import STATES, State
from snapreport.workflow.handlers.close import (
    ask_close_photo,
    check_close_photo,
    choose_order,
    force_close,
    start_close,
)
from snapreport.workflow.handlers.context import Handler
from snapreport.workflow.handlers.report import (
    ask_location,
    choose_type,
    correct_location,
    correct_type,
    file_report,
    merge_report,
    need_photo,
    refuse_in_location,
    repeat_summary,
    replace_photo,
    start_report,
    submit,
    take_location,
    want_photo,
)
from snapreport.workflow.handlers.shared import (
    cancel,
    chat,
    expiry_notice,
    my_orders,
    set_language,
    show_help,
    sign_in_link,
)
from snapreport.workflow.handlers.staff import (
    accept_order,
    my_tasks,
    reject_order,
    reopen_order,
    transfer_order,
)
from snapreport.workflow.triggers import BASE_TRIGGERS, Trigger

ANY: Final = "*"  # a source: every state
SAME: Final = "="  # a target: the state stays as it was

Source = State | Literal["*"]
Target = State | Literal["="]


@dataclass(frozen=True, slots=True)
class Transition:
    """One row: in ``source``, ``trigger`` runs ``handler``, which may end in ``target``."""

    source: Source
    trigger: Trigger
    target: Target
    handler: Handler


T = Transition
W_LOC: Final = "waiting_location"
W_CONFIRM: Final = "waiting_confirm"
W_PHOTO: Final = "waiting_close_photo"

TRANSITIONS: Final[tuple[Transition, ...]] = (
    # source       trigger          target          handler
    # every state
    T(ANY,         "cancel",        "idle",         cancel),
    T(ANY,         "help",          SAME,           show_help),
    T(ANY,         "my_orders",     SAME,           my_orders),
    # staff commands act on orders, not on what is pending: every state, no move
    T(ANY,         "my_tasks",      SAME,           my_tasks),
    T(ANY,         "accept",        SAME,           accept_order),
    T(ANY,         "transfer",      SAME,           transfer_order),
    T(ANY,         "reject",        SAME,           reject_order),
    T(ANY,         "reopen",        SAME,           reopen_order),
    T(ANY,         "login",         SAME,           sign_in_link),
    T(ANY,         "language",      SAME,           set_language),
    # idle: start a report or a close, or chat
    T("idle",      "image",         W_LOC,          start_report),
    T("idle",      "close",         W_PHOTO,        start_close),
    T("idle",      "close",         "idle",         start_close),
    T("idle",      "choice",        W_PHOTO,        choose_order),
    T("idle",      "choice",        "idle",         choose_order),
    T("idle",      "location",      "idle",         need_photo),
    T("idle",      "text",          "idle",         chat),
    # waiting_location: where is it?
    T(W_LOC,       "text",          W_CONFIRM,      take_location),
    T(W_LOC,       "set_location",  W_CONFIRM,      take_location),
    T(W_LOC,       "location",      W_CONFIRM,      take_location),
    T(W_LOC,       "image",         W_LOC,          replace_photo),
    T(W_LOC,       "set_type",      W_LOC,          correct_type),
    T(W_LOC,       "type_choice",   W_LOC,          choose_type),
    T(W_LOC,       "add_photo",     W_LOC,          want_photo),
    T(W_LOC,       "yes",           W_LOC,          ask_location),
    T(W_LOC,       "yes",           W_CONFIRM,      ask_location),  # the photo's GPS taken
    T(W_LOC,       "no",            "idle",         refuse_in_location),
    T(W_LOC,       "no",            W_LOC,          refuse_in_location),  # its GPS declined
    # waiting_confirm: submit, cancel or correct
    T(W_CONFIRM,   "yes",           "idle",         submit),
    T(W_CONFIRM,   "yes",           W_CONFIRM,      submit),  # a duplicate offered
    T(W_CONFIRM,   "merge",         "idle",         merge_report),
    T(W_CONFIRM,   "merge",         W_CONFIRM,      merge_report),  # nothing (left) to add to
    T(W_CONFIRM,   "file_anyway",   "idle",         file_report),
    T(W_CONFIRM,   "add_photo",     W_CONFIRM,      want_photo),
    T(W_CONFIRM,   "no",            "idle",         cancel),
    T(W_CONFIRM,   "set_type",      W_CONFIRM,      correct_type),
    T(W_CONFIRM,   "set_location",  W_CONFIRM,      correct_location),
    T(W_CONFIRM,   "location",      W_CONFIRM,      correct_location),
    T(W_CONFIRM,   "image",         W_CONFIRM,      replace_photo),
    T(W_CONFIRM,   "text",          W_CONFIRM,      repeat_summary),
    # waiting_close_photo: a photo of the fixed scene
    T(W_PHOTO,     "image",         "idle",         check_close_photo),
    T(W_PHOTO,     "image",         W_PHOTO,        check_close_photo),
    T(W_PHOTO,     "force_close",   "idle",         force_close),
    T(W_PHOTO,     "force_close",   W_PHOTO,        force_close),
    T(W_PHOTO,     "location",      W_PHOTO,        ask_close_photo),
    T(W_PHOTO,     "text",          W_PHOTO,        ask_close_photo),
    # expiry (10 minutes without a message): noticed at the next message, then from idle
    T(W_LOC,       "expired",       "idle",         expiry_notice),
    T(W_CONFIRM,   "expired",       "idle",         expiry_notice),
    T(W_PHOTO,     "expired",       "idle",         expiry_notice),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Route:
    """What the dispatcher needs for one (state, trigger): the handler and where it may go."""

    handler: Handler
    targets: frozenset[State]


def sources(source: Source) -> tuple[State, ...]:
    return STATES if source == ANY else (source,)


def resolve_target(target: Target, source: State) -> State:
    return source if target == SAME else target


def build_routes(rows: Iterable[Transition]) -> dict[tuple[State, Trigger], Route]:
    """Index the table by (state, trigger); a specific row wins over an ``ANY`` row.

    Raises ``ValueError`` if one (state, trigger) names two handlers, or if a state lacks a
    row for a base trigger (it could not answer a plain text, photo or location).
    """
    handlers: dict[tuple[State, Trigger], Handler] = {}
    targets: dict[tuple[State, Trigger], set[State]] = {}
    specific: set[tuple[State, Trigger]] = set()
    ordered = sorted(rows, key=lambda row: row.source != ANY)  # ANY rows first, then override
    for row in ordered:
        for state in sources(row.source):
            key = (state, row.trigger)
            if row.source != ANY and key not in specific:
                specific.add(key)
                handlers.pop(key, None)
                targets.pop(key, None)
            known = handlers.setdefault(key, row.handler)
            if known != row.handler:
                raise ValueError(
                    f"{state} on {row.trigger} names {known.__name__} and {row.handler.__name__}"
                )
            targets.setdefault(key, set()).add(resolve_target(row.target, state))
    for state in STATES:
        for trigger in BASE_TRIGGERS:
            if (state, trigger) not in handlers:
                raise ValueError(f"state {state} has no row for {trigger}")
    return {key: Route(handlers[key], frozenset(targets[key])) for key in handlers}


def route(
    routes: Mapping[tuple[State, Trigger], Route], state: State, trigger: Trigger
) -> tuple[Trigger, Route]:
    """The row for ``trigger`` in ``state``, falling back to the state's ``text`` row."""
    found = routes.get((state, trigger))
    if found is not None:
        return trigger, found
    return "text", routes[(state, "text")]
