"""What makes the dialogue move: a trigger comes from the event (``image``, ``location``),
from the text (see ``commands``), or from the session (``expired``, ``choice``: an answer to a
numbered list of orders, ``type_choice``: an answer to the question which type it is)."""

from __future__ import annotations

from typing import Final, Literal, get_args

from snapreport.workflow.commands import TextTrigger

Trigger = Literal[TextTrigger, "image", "location", "choice", "type_choice", "expired"]
TRIGGERS: Final[tuple[Trigger, ...]] = (
    *get_args(TextTrigger),
    "image",
    "location",
    "choice",
    "type_choice",
    "expired",
)

# Triggers every state answers itself; the others fall back to the state's "text" row.
BASE_TRIGGERS: Final[tuple[Trigger, ...]] = ("text", "image", "location")
