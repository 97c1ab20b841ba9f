"""What every handler gets (a ``Context``) and gives back (a ``Step``), and shared helpers.

A handler reads the event from the context, mutates ``ctx.session.slots``, talks to the ports,
and returns the state to move to (one of its rows' targets) with its replies. It never sets
``session.state`` or writes history itself: the assistant does both, after checking the move
against the table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Final

from snapreport.dispatch.lifecycle import Dispatch
from snapreport.errors import VisionUnavailable
from snapreport.identity.base import SignInLinkIssuer
from snapreport.logs import get_logger
from snapreport.media.base import MediaStore, StoredImage
from snapreport.orders.base import MessageKey, Order
from snapreport.session.model import Session, Slots, State
from snapreport.vision.base import UNCLASSIFIED, Analysis, Image, PreparedImage, VisionModel
from snapreport.workflow.languages import ChosenLanguages
from snapreport.workflow.texts import LANGUAGES, Texts, load_texts
from snapreport.workflow.triggers import Trigger

log = get_logger("snapreport.workflow")

MAX_LOCATION_CHARS: Final = 200
# slots are capped at 4000 characters; model output and external orders are cut well below
MAX_DESCRIPTION_CHARS: Final = 1000
MAX_LIST_ITEMS: Final = 10
MAX_ECHO_CHARS: Final = 40  # what a user typed is echoed back at most this long


@dataclass(frozen=True, slots=True)
class Services:
    """The ports and settings handlers use; one per assistant."""

    vision: VisionModel
    media: MediaStore
    orders: Dispatch
    texts: Texts  # the default language's
    catalog: tuple[str, ...]
    ttl_seconds: float
    languages: ChosenLanguages  # what users chose, beyond their sessions
    links: SignInLinkIssuer | None = None  # None: this assistant issues no sign-in links
    text_timeout_seconds: float = 8.0  # the most understanding a free text may take

    @property
    def language(self) -> str:
        return self.texts.language

    def texts_for(self, language: str) -> Texts:
        """The texts of ``language`` if it is one we speak, else the default's."""
        return _texts(language) if language in LANGUAGES else self.texts


@cache
def _texts(language: str) -> Texts:
    return load_texts(language)  # one Texts per language, not one per turn


@dataclass(frozen=True, slots=True)
class Upload:
    """A photo the media store accepted, with its bytes and, when the channel made one from
    its validating decode, the model's copy (for the model, this turn only)."""

    stored: StoredImage
    data: bytes = field(repr=False)
    preview: PreparedImage | None = field(default=None, repr=False)

    def image(self) -> Image:
        return Image(self.data, self.stored.mime, self.preview)


@dataclass(slots=True)
class Context:
    """One message being handled: the session, the event's content and the services."""

    services: Services
    session: Session
    trigger: Trigger
    text: str = ""  # the text, or an image's caption
    arg: str = ""  # what follows a command's keyword
    upload: Upload | None = None
    place: str | None = None  # a location event, as the location slot would keep it
    coordinates: tuple[float, float] | None = None  # a location event's latitude, longitude
    choices: tuple[str, ...] = ()  # the numbered list the previous reply offered, if any
    message: MessageKey | None = None  # keys the orders this message writes (exactly once)
    verified: bool = False  # the channel proved who is speaking (see TextEvent)
    texts: Texts | None = None  # the session's language; None: the default's
    reply: str = ""  # small talk the model already answered (see ``understanding``)

    @property
    def user_id(self) -> str:
        return self.session.user_id

    @property
    def slots(self) -> Slots:
        return self.session.slots

    @property
    def state(self) -> State:
        return self.session.state

    @property
    def language(self) -> str:
        return self.speaks.language

    @property
    def speaks(self) -> Texts:
        return self.texts if self.texts is not None else self.services.texts

    def say(self, key: str, /, **values: object) -> str:
        return self.speaks(key, **values)

    def keep_choices(self) -> None:
        """Let the numbered list still answer the next message (after help, for example)."""
        self.slots.choices = list(self.choices)

    def require_upload(self) -> Upload:
        if self.upload is None:
            raise AssertionError("an image handler ran without an image")
        return self.upload


@dataclass(frozen=True, slots=True)
class Step:
    """A handler's answer: the state to move to, the replies, and an order it made or closed."""

    target: State
    replies: tuple[str, ...]
    order: Order | None = None
    # what the history keeps instead of ``replies`` (a secret, like a sign-in link, stays out)
    history: tuple[str, ...] | None = None
    # the answers the last reply offers (a channel may show them as buttons)
    choices: tuple[str, ...] = ()


Handler = Callable[[Context], Awaitable[Step]]


class Rejected(Exception):  # control flow, not an error a caller sees
    """Input the dialogue cannot take. The reply says why; the turn changes nothing."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def fit(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis if it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def numbered(ctx: Context, names: Sequence[str]) -> list[str]:
    """``names`` as a numbered list, a line each (``1. 漏水``): how a reply lists its choices."""
    return [ctx.say("choice.item", index=i, name=name) for i, name in enumerate(names, 1)]


def check_location(ctx: Context, value: str) -> str:
    """A location as the slot keeps it (whitespace collapsed), or ``Rejected``."""
    location = " ".join(value.split())
    if not location:
        raise Rejected(ctx.say("location.empty"))
    if len(location) > MAX_LOCATION_CHARS:
        raise Rejected(ctx.say("location.too_long", max=MAX_LOCATION_CHARS))
    return location


async def analyse(ctx: Context, upload: Upload) -> tuple[Analysis, str | None]:
    """What the model says the photo shows, and None; or the manual-mode answer and the key
    of the text that explains why nobody looked at it. The photo stays stored either way."""
    services = ctx.services
    manual = Analysis(UNCLASSIFIED, "", None)
    if not services.vision.enabled:
        return manual, "report.manual"
    try:
        analysis = await services.vision.analyze(
            upload.image(), services.catalog, language=ctx.language
        )
    except VisionUnavailable as exc:
        log.warning("vision_analysis_failed", error=exc.message)
        return manual, "report.vision_failed"
    alarm_type = analysis.alarm_type if analysis.alarm_type in services.catalog else UNCLASSIFIED
    confidence = analysis.confidence
    if confidence is not None and not 0.0 <= confidence <= 1.0:
        confidence = None
    description = fit(" ".join(analysis.description.split()), MAX_DESCRIPTION_CHARS)
    return Analysis(alarm_type, description, confidence), None


def summary(ctx: Context) -> str:
    """The pending report and how to confirm, cancel or correct it."""
    slots = ctx.slots
    return ctx.say(
        "summary",
        alarm_type=slots.alarm_type or UNCLASSIFIED,
        location=slots.location,
        description=slots.analysis or ctx.say("summary.no_description"),
        photos=len([key for key in (slots.image_key, *slots.more_images) if key]),
    )
