"""``IncidentAssistant``: the incident dialogue on the session engine and its three ports.

One message is one ``engine.turn(user_id)``: the user's lock is held throughout, and the
session is written once, at the end, or not at all.

Order of work within a turn, and what a failure leaves behind:

1. An expired session (``session.expired_from``) first gets its notice; the message is then
   handled from ``idle``.
2. The input is checked and an upload is stored in the media store FIRST, so a photo is kept
   whatever fails later. Input the dialogue cannot take (not an image, empty text, text or a
   location that is too long, impossible coordinates) is answered with a reply saying why, and
   the turn is rolled back: state, slots, history and expiry stay exactly as they were. (When
   the session had expired, the expiry itself is written, so its notice is said only once.)
3. The user's message is recorded in history and dispatched by the state table
   (``states.TRANSITIONS``) to one handler. The model is asked before anything is written to
   the orders store; when it fails (``VisionUnavailable``) the dialogue goes on in manual mode.
4. Writes to the orders store (create, close, the event log) are each handler's last act. If
   the store fails (``StoreUnavailable``), the error propagates, the turn is rolled back and
   nothing of it is kept except the stored photo; the channel answers with an error and the
   user can simply send the message again. If the orders write succeeded but saving the session
   then fails (the session store went away, the lock was lost, the process died), the order
   exists while the session still shows the report or close pending. The message's ``Origin``
   (channel and message id) keys each create and close in the orders store, so when the same
   message comes again the store answers with the order it already wrote, the reply is the
   one the first attempt would have given, and the session moves on to ``idle``. A message
   without an origin has no such key: sent again, it is handled again (at least once).
5. The replies are recorded in history and returned with the new state and the order the turn
   created or closed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

from snapreport.config import DEFAULT_ALARM_TYPES
from snapreport.dispatch.lifecycle import Dispatch
from snapreport.errors import (
    ConfigurationError,
    DecompressionBomb,
    ImageTooLarge,
    InvalidImage,
    InvalidInput,
    UnsupportedImageType,
)
from snapreport.identity.base import SignInLinkIssuer
from snapreport.media.base import CheckedImage, MediaStore
from snapreport.orders.base import MessageKey
from snapreport.session.engine import SessionEngine
from snapreport.session.history import ImagePart, Part, TextPart
from snapreport.session.model import Session, Slots
from snapreport.vision.base import VisionModel
from snapreport.workflow.commands import parse, pick_choice
from snapreport.workflow.events import (
    Event,
    ImageEvent,
    LocationEvent,
    Origin,
    Outcome,
    Reply,
    TextEvent,
)
from snapreport.workflow.handlers.context import (
    MAX_LOCATION_CHARS,
    Context,
    Rejected,
    Services,
    Step,
    Upload,
)
from snapreport.workflow.languages import ChosenLanguages
from snapreport.workflow.states import TRANSITIONS, Route, build_routes, route
from snapreport.workflow.texts import DEFAULT_LANGUAGE, Texts, load_texts
from snapreport.workflow.triggers import Trigger
from snapreport.workflow.understanding import understand

MAX_TEXT_CHARS: Final = 2000


@dataclass(frozen=True, slots=True)
class _Incoming:
    """A checked event: its trigger, what handlers read, and what history records."""

    trigger: Trigger
    content: tuple[Part, ...]
    text: str = ""
    arg: str = ""
    upload: Upload | None = None
    place: str | None = None
    coordinates: tuple[float, float] | None = None
    verified: bool = False
    free: bool = False  # a text message (not a caption): the model may say what it means


class _Unchanged(Exception):  # rolls the turn back; never leaves this module
    def __init__(self, outcome: Outcome) -> None:
        super().__init__("input rejected")
        self.outcome = outcome


class IncidentAssistant:
    """The incident dialogue of the API contract: report, close, and the global commands.

    ``catalog`` is the alarm-type catalog; ``language`` picks the reply texts ("zh-CN" or
    "en"). Commands are understood in both languages either way.
    """

    def __init__(
        self,
        engine: SessionEngine,
        *,
        vision: VisionModel,
        media: MediaStore,
        orders: Dispatch,
        languages: ChosenLanguages,
        catalog: Sequence[str] = DEFAULT_ALARM_TYPES,
        language: str = DEFAULT_LANGUAGE,
        max_text_chars: int = MAX_TEXT_CHARS,
        links: SignInLinkIssuer | None = None,
        text_timeout_seconds: float = 8.0,
    ) -> None:
        self.engine = engine
        self.max_text_chars = min(max_text_chars, engine.config.max_text_chars)
        self._services = Services(
            vision=vision,
            media=media,
            orders=orders,
            texts=load_texts(language),
            catalog=_check_catalog(catalog),
            ttl_seconds=engine.config.ttl_seconds,
            languages=languages,
            links=links,
            text_timeout_seconds=text_timeout_seconds,
        )
        self._routes = build_routes(TRANSITIONS)

    @property
    def language(self) -> str:
        return self._services.language

    @property
    def catalog(self) -> tuple[str, ...]:
        return self._services.catalog

    async def handle(
        self,
        user_id: str,
        event: Event,
        origin: Origin | None = None,
        *,
        language: str | None = None,
    ) -> Outcome:
        """Handle one user message within one session turn and answer it. With ``origin``,
        the orders it writes are keyed by it: sent again, it answers with the same order.
        ``language`` is the channel's hint (a browser's language, say "en-GB"): it chooses
        the reply language of a session that has none yet, unless the user chose one before
        (``中文`` / ``English`` choose it at any time, and that choice outlives the session);
        the session remembers it.

        Raises what the session engine raises (``InvalidUserId``, ``SessionBusy``,
        ``StoreUnavailable``, ``LockLost``) and what the ports raise besides the refusals the
        dialogue answers itself (``StoreUnavailable`` of orders, ``MediaUnavailable``); the
        turn is then rolled back.
        """
        message = None if origin is None else MessageKey(origin.channel, user_id, origin.message_id)
        try:
            async with self.engine.turn(user_id) as session:
                return await self._handle(session, event, message, language)
        except _Unchanged as unchanged:
            return unchanged.outcome

    async def _handle(
        self, session: Session, event: Event, message: MessageKey | None, hint: str | None
    ) -> Outcome:
        texts = await self._texts(session, hint)
        notices: tuple[str, ...] = ()
        if session.expired_from is not None:
            notices = await self._expiry_notice(session, texts)
        try:
            incoming = await self._receive(session, event, texts)
            session.history.add_user(incoming.content)
            step, texts = await self._dispatch(session, incoming, message, texts)
        except Rejected as rejected:
            if session.expired_from is None:
                raise _Unchanged(
                    Outcome((Reply(rejected.reply),), session.state, language=texts.language)
                ) from None
            session.clear()
            return Outcome(
                tuple(Reply(t) for t in (*notices, rejected.reply)),
                session.state,
                language=texts.language,
            )
        replies = (*notices, *step.replies)
        for text in (*notices, *(step.replies if step.history is None else step.history)):
            session.history.add_assistant(text)
        return Outcome(
            tuple(Reply(t) for t in replies),
            session.state,
            step.order,
            choices=step.choices,
            language=texts.language,
        )

    async def _texts(self, session: Session, hint: str | None) -> Texts:
        """The session's language. A new session (never stored: version 0) takes the one the
        user chose before, if any; a session still without one takes the channel's hint, if
        it names a language we speak. The session keeps what it took."""
        if not session.language and session.version == 0:
            session.language = await self._services.languages.recall(session.user_id) or ""
        if not session.language:
            hinted = language_of(hint)
            if hinted is not None:
                session.language = hinted
        return self._services.texts_for(session.language)

    async def _expiry_notice(self, session: Session, texts: Texts) -> tuple[str, ...]:
        assert session.expired_from is not None
        found = self._routes.get((session.expired_from.state, "expired"))
        if found is None:
            return ()
        step = await found.handler(Context(self._services, session, "expired", texts=texts))
        return step.replies

    async def _dispatch(
        self, session: Session, incoming: _Incoming, message: MessageKey | None, texts: Texts
    ) -> tuple[Step, Texts]:
        source = session.state
        trigger, found = route(self._routes, source, incoming.trigger)
        arg = incoming.arg if trigger == incoming.trigger else ""
        reply = ""
        if trigger == "text" and incoming.free and self._services.vision.enabled:
            # no word of this state matched: the model may say what the text means, which
            # is then carried out exactly as the equivalent words (same row, same handler)
            understood = await understand(self._services, session, incoming.text, texts.language)
            if understood is not None:
                meant, row = route(self._routes, source, understood.trigger)
                if meant == understood.trigger and (meant != "text" or source == "idle"):
                    trigger, found, arg, reply = meant, row, understood.arg, understood.reply
        # a numbered list answers only the message right after it
        choices = tuple(session.slots.choices)
        session.slots.choices = []
        ctx = Context(
            self._services,
            session,
            trigger,
            text=incoming.text,
            arg=arg,
            upload=incoming.upload,
            place=incoming.place,
            coordinates=incoming.coordinates,
            choices=choices,
            message=message,
            verified=incoming.verified,
            texts=texts,
            reply=reply,
        )
        step = await found.handler(ctx)
        self._check_move(found, source, trigger, step)
        if step.target == "idle" and source != "idle":
            session.slots = Slots()  # the report or close is over, whichever way it ended
        if not step.choices and session.slots.choices:
            # a list kept for the next message (after help, say) is offered again with it
            step = replace(step, choices=tuple(session.slots.choices))
        session.state = step.target
        return step, ctx.speaks  # a handler may have changed the language

    @staticmethod
    def _check_move(found: Route, source: str, trigger: str, step: Step) -> None:
        if step.target not in found.targets:
            raise AssertionError(
                f"{found.handler.__name__} moved {source} on {trigger} to {step.target}, "
                f"which the state table does not allow"
            )

    # -- checking input ------------------------------------------------------------------

    async def _receive(self, session: Session, event: Event, texts: Texts) -> _Incoming:
        if isinstance(event, TextEvent):
            return self._receive_text(session, event, texts)
        if isinstance(event, ImageEvent):
            return await self._receive_image(event, texts)
        if isinstance(event, LocationEvent):
            return self._receive_location(event, texts)
        raise InvalidInput(f"unsupported event {type(event).__name__}")

    def _receive_text(self, session: Session, event: TextEvent, texts: Texts) -> _Incoming:
        text = self._check_text(event.text, texts)
        if not text:
            raise Rejected(texts("input.empty"))
        command = parse(text)
        trigger: Trigger = command.trigger
        offered = tuple(session.slots.choices)
        if trigger == "text" and session.state == "idle" and pick_choice(text, offered) is not None:
            trigger = "choice"  # an order of the numbered list to close (or a number out of it)
        elif trigger == "text" and (picked := pick_choice(text, offered)):
            # an answer the last reply offered, by its number: it means what its words mean
            command = parse(picked)
            trigger = command.trigger
        elif (
            trigger == "text"
            and session.state == "waiting_location"
            and session.slots.awaiting == "type"
            and pick_choice(text, self._services.catalog)  # a number in range, or a name
        ):
            trigger = "type_choice"
        return _Incoming(
            trigger,
            (TextPart(text),),
            text=text,
            arg=command.arg,
            verified=event.verified,
            free=True,
        )

    async def _receive_image(self, event: ImageEvent, texts: Texts) -> _Incoming:
        caption = self._check_text(event.caption, texts)
        data = event.data if isinstance(event.data, CheckedImage) else bytes(event.data)
        try:
            stored = await self._services.media.put_image(data, declared_mime=event.mime)
        except InvalidImage as exc:
            raise Rejected(self._image_refusal(exc, texts)) from None
        image = ImagePart(stored.key, stored.mime, stored.size, stored.width, stored.height)
        content: tuple[Part, ...] = (image, TextPart(caption)) if caption else (image,)
        upload = Upload(stored, event.raw, preview=event.preview)
        return _Incoming("image", content, text=caption, upload=upload)

    def _receive_location(self, event: LocationEvent, texts: Texts) -> _Incoming:
        lat, lon = event.latitude, event.longitude
        if not (_coordinate(lat, 90.0) and _coordinate(lon, 180.0)):
            raise Rejected(texts("input.bad_coordinates"))
        label = " ".join(str(event.label).split())
        if len(label) > MAX_LOCATION_CHARS:
            raise Rejected(texts("location.too_long", max=MAX_LOCATION_CHARS))
        coordinates = f"{_degrees(lat)},{_degrees(lon)}"
        said = " ".join(p for p in (texts("history.location"), label, f"({coordinates})") if p)
        return _Incoming(
            "location", (TextPart(said),), place=label or coordinates, coordinates=(lat, lon)
        )

    def _check_text(self, text: str, texts: Texts) -> str:
        text = text.strip()
        if len(text) > self.max_text_chars:
            raise Rejected(texts("input.too_long", max=self.max_text_chars))
        return text

    @staticmethod
    def _image_refusal(exc: InvalidImage, texts: Texts) -> str:
        if isinstance(exc, UnsupportedImageType):
            return texts("input.image_unsupported")
        if isinstance(exc, ImageTooLarge | DecompressionBomb):
            return texts("input.image_too_large")
        return texts("input.image_invalid")


def language_of(hint: str | None) -> str | None:
    """The language we speak that a channel's hint names ("zh", "zh-TW", "en-GB", ...), or
    None: zh-CN for any Chinese, en for any English."""
    if not hint:
        return None
    primary = hint.strip().replace("_", "-").split("-")[0].casefold()
    return {"zh": "zh-CN", "en": "en"}.get(primary)


def _check_catalog(catalog: Sequence[str]) -> tuple[str, ...]:
    names = tuple(name.strip() for name in catalog)
    if not names or not all(names):
        raise ConfigurationError("the alarm-type catalog needs at least one non-empty name")
    if len(set(names)) != len(names):
        raise ConfigurationError("the alarm-type catalog names a type twice")
    return names


def _coordinate(value: object, limit: float) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and -limit <= value <= limit
    )


def _degrees(value: float) -> str:
    """Degrees to at most six decimals (about 0.1 m), without trailing zeros."""
    return f"{value:.6f}".rstrip("0").rstrip(".")
