"""Handlers of the report flow: photo → location → confirmation → alarm and work order.

A report may carry up to ``MAX_PHOTOS`` photos (``再发一张`` / ``add photo`` adds the next one
instead of replacing); a photo's EXIF GPS is offered as the location and used only on a yes;
at confirmation an open order of the same type at the same place is offered to add the report
to (``追加`` / ``add``) instead of filing it again (``仍然上报`` / ``file anyway``).
"""

from __future__ import annotations

from typing import Final

from snapreport.errors import OrderNotFound, OrderStateConflict
from snapreport.media.metadata import gps_position
from snapreport.orders.base import NewReport, Order
from snapreport.session.model import MAX_MORE_IMAGES, Slots
from snapreport.vision.base import UNCLASSIFIED
from snapreport.workflow.commands import parse, pick_choice
from snapreport.workflow.handlers.context import (
    MAX_ECHO_CHARS,
    Context,
    Step,
    analyse,
    check_location,
    fit,
    numbered,
    summary,
)
from snapreport.workflow.handlers.shared import cancel

MAX_PHOTOS: Final = 1 + MAX_MORE_IMAGES


async def start_report(ctx: Context) -> Step:
    """A photo in idle: keep it, have it analysed, ask where it is."""
    ctx.session.slots = Slots()
    lines = [*await _take_photo(ctx), *_offer_photo_location(ctx)]
    if ctx.slots.alarm_type == UNCLASSIFIED:
        return _ask_type(ctx, lines)
    return Step("waiting_location", ("\n".join([*lines, ctx.say("report.ask_location")]),))


async def replace_photo(ctx: Context) -> Step:
    """Another photo while a report is pending: it replaces the first and is analysed again
    (with several photos, the last is replaced; after ``再发一张`` it is added)."""
    if _adds_photo(ctx):
        return await _add_photo(ctx)
    if ctx.slots.more_images:
        return _replace_last_photo(ctx)
    lines = [ctx.say("report.replaced"), *await _take_photo(ctx), *_offer_photo_location(ctx)]
    if ctx.state == "waiting_confirm":
        return Step("waiting_confirm", ("\n".join(lines), summary(ctx)))
    if ctx.slots.alarm_type == UNCLASSIFIED:
        return _ask_type(ctx, lines)
    return Step("waiting_location", ("\n".join([*lines, ctx.say("report.ask_location")]),))


def _ask_type(ctx: Context, lines: list[str]) -> Step:
    """No model said what the photo shows: ask which type it is, with the numbered catalog
    (offered as choices too). A number or a name answers (``choose_type``); any other text
    is still the location, so nobody is held up by the question."""
    catalog = ctx.services.catalog
    ctx.slots.awaiting = "type"
    question = [
        ctx.say("report.ask_type"),
        *numbered(ctx, catalog),
        ctx.say("report.ask_type_hint"),
    ]
    return Step("waiting_location", ("\n".join([*lines, *question]),), choices=catalog)


async def choose_type(ctx: Context) -> Step:
    """The answer to ``_ask_type``: a catalog number or name (folded); then the location."""
    chosen = _pick_type(ctx.text, ctx.services.catalog)
    if chosen is None:
        raise AssertionError("choose_type ran for a text that names no type")
    ctx.slots.alarm_type = chosen
    ctx.slots.awaiting = ""
    updated = ctx.say("type.updated", alarm_type=chosen)
    return Step("waiting_location", ("\n".join([updated, ctx.say("report.ask_location")]),))


async def _take_photo(ctx: Context) -> list[str]:
    upload = ctx.require_upload()
    slots = ctx.slots
    slots.image_key = upload.stored.key
    slots.image_mime = upload.stored.mime
    analysis, manual_reason = await analyse(ctx, upload)
    slots.analysis = analysis.description
    slots.confidence = analysis.confidence
    if manual_reason is not None:
        # a replaced photo keeps the type already chosen (perhaps by the user) for this report
        slots.alarm_type = slots.alarm_type or UNCLASSIFIED
        return [ctx.say(manual_reason, alarm_type=slots.alarm_type)]
    slots.alarm_type = analysis.alarm_type
    confidence = (
        ""
        if analysis.confidence is None
        else ctx.say("report.confidence", percent=f"{analysis.confidence:.0%}")
    )
    lines = [ctx.say("report.recognised", alarm_type=analysis.alarm_type, confidence=confidence)]
    if analysis.description:
        lines.append(ctx.say("report.description", description=analysis.description))
    return lines


async def take_location(ctx: Context) -> Step:
    """The location, as text, as ``位置 X`` or as a location event: show the summary."""
    ctx.slots.location = check_location(ctx, _location_given(ctx))
    ctx.slots.awaiting = ""
    _remember_coordinates(ctx)
    return Step("waiting_confirm", (summary(ctx),))


async def correct_location(ctx: Context) -> Step:
    ctx.slots.location = check_location(ctx, _location_given(ctx))
    _remember_coordinates(ctx)
    return Step("waiting_confirm", (ctx.say("location.updated"), summary(ctx)))


def _location_given(ctx: Context) -> str:
    if ctx.place is not None:
        return ctx.place
    # "位置 X" / "location X" carry it as the argument; a plain text is the location itself
    return ctx.arg if ctx.trigger == "set_location" else ctx.text


async def ask_location(ctx: Context) -> Step:
    """A yes before any location was given: a location is still needed (or, when a photo's
    location was offered, that yes takes it)."""
    slots = ctx.slots
    if slots.gps_latitude is not None and slots.gps_longitude is not None:
        return _use_photo_location(ctx, slots.gps_latitude, slots.gps_longitude)
    return Step("waiting_location", (ctx.say("location.still_needed"),))


async def correct_type(ctx: Context) -> Step:
    """``类型 X`` / ``type X``: X is a catalog name or its 1-based number."""
    catalog = ctx.services.catalog
    chosen = _pick_type(ctx.arg, catalog)
    if chosen is None:
        key = "type.unknown" if ctx.arg else "type.choose"
        heading = ctx.say(key, value=fit(ctx.arg, MAX_ECHO_CHARS))
        return Step(ctx.state, ("\n".join([heading, *numbered(ctx, catalog)]),))
    ctx.slots.alarm_type = chosen
    ctx.slots.awaiting = ""
    updated = ctx.say("type.updated", alarm_type=chosen)
    if ctx.state == "waiting_confirm":
        return Step("waiting_confirm", (updated, summary(ctx)))
    return Step(ctx.state, ("\n".join([updated, ctx.say("report.ask_location")]),))


def _pick_type(value: str, catalog: tuple[str, ...]) -> str | None:
    """The catalog name ``value`` gives by 1-based number or name (case, width and spaces
    folded), or None."""
    return pick_choice(value, catalog) or None


async def repeat_summary(ctx: Context) -> Step:
    """Anything else while waiting for a confirmation: the summary again."""
    return Step("waiting_confirm", (ctx.say("confirm.unclear"), summary(ctx)))


async def submit(ctx: Context) -> Step:
    """Yes: create the alarm and its work order, unless an open order of the same type at the
    same place is offered first (``_offer_duplicate``)."""
    offered = await _offer_duplicate(ctx)
    if offered is not None:
        return offered
    return await file_report(ctx)


async def file_report(ctx: Context) -> Step:
    """Create the alarm and its work order (``仍然上报`` / ``file anyway`` comes here directly).

    This is the turn's last act, so a failing orders store (``StoreUnavailable``) leaves the
    whole turn rolled back and the report still pending: the user can simply confirm again.
    The order is keyed by the message: if this message already created it (its turn failed
    after the write), the store answers with that order and the reply is the same.
    """
    order = await ctx.services.orders.create(_new_report(ctx))
    reply = ctx.say(
        "confirm.created",
        number=order.number,
        alarm_type=order.alarm_type,
        location=order.location,
    )
    return Step("idle", (reply,), order)


async def need_photo(ctx: Context) -> Step:
    """A location in idle: a report starts with a photo."""
    return Step("idle", (ctx.say("idle.location_without_photo"),))


def _new_report(ctx: Context) -> NewReport:
    slots = ctx.slots
    return NewReport(
        reporter=ctx.user_id,
        alarm_type=slots.alarm_type or UNCLASSIFIED,
        location=slots.location,
        description=slots.analysis,
        image_key=slots.image_key or None,
        confidence=slots.confidence,
        message=ctx.message,
        latitude=slots.latitude,
        longitude=slots.longitude,
        more_image_keys=tuple(slots.more_images),
    )


# -- several photos -------------------------------------------------------------------------


def _photo_count(slots: Slots) -> int:
    return len([key for key in (slots.image_key, *slots.more_images) if key])


def _adds_photo(ctx: Context) -> bool:
    """After ``再发一张``, or with it as the photo's caption, a photo is added."""
    return ctx.slots.add_photo or (bool(ctx.text) and parse(ctx.text).trigger == "add_photo")


async def want_photo(ctx: Context) -> Step:
    """``再发一张`` / ``add photo``: the next photo is added instead of replacing."""
    count = _photo_count(ctx.slots)
    if count >= MAX_PHOTOS:
        return Step(ctx.state, (ctx.say("photos.full", max=MAX_PHOTOS),))
    ctx.slots.add_photo = True
    return Step(ctx.state, (ctx.say("photos.send_next", index=count + 1, max=MAX_PHOTOS),))


async def _add_photo(ctx: Context) -> Step:
    """The next photo of the report; the analysis already shown stays (the user corrects it
    with ``类型 X``). Past ``MAX_PHOTOS`` the photo is not added and the reply says so."""
    slots = ctx.slots
    slots.add_photo = False
    count = _photo_count(slots)
    if count >= MAX_PHOTOS:
        lines = [ctx.say("photos.full", max=MAX_PHOTOS)]
    else:
        slots.more_images.append(ctx.require_upload().stored.key)
        lines = [ctx.say("photos.added", count=count + 1, max=MAX_PHOTOS)]
        lines += _offer_photo_location(ctx)
    return _pending(ctx, lines)


def _replace_last_photo(ctx: Context) -> Step:
    """A photo (not added) when the report has several: it replaces the last one."""
    slots = ctx.slots
    slots.more_images[-1] = ctx.require_upload().stored.key
    return _pending(ctx, [ctx.say("photos.replaced_last", index=_photo_count(slots))])


def _pending(ctx: Context, lines: list[str]) -> Step:
    """The replies while the report is pending: ask for the location, or show the summary."""
    if ctx.state == "waiting_confirm":
        return Step("waiting_confirm", ("\n".join(lines), summary(ctx)))
    return Step("waiting_location", ("\n".join([*lines, ctx.say("report.ask_location")]),))


# -- coordinates: a location event, or a photo's GPS the user accepted -----------------------


def _remember_coordinates(ctx: Context) -> None:
    """The coordinates of a location event (a location typed as text has none)."""
    slots = ctx.slots
    slots.latitude, slots.longitude = ctx.coordinates or (None, None)
    slots.gps_latitude = slots.gps_longitude = None


def _offer_photo_location(ctx: Context) -> list[str]:
    """The photo's EXIF GPS, offered as the location (never used silently) while none was
    given; nothing when it has none, or one was offered already."""
    slots = ctx.slots
    if slots.location or slots.gps_latitude is not None:
        return []
    found = gps_position(ctx.require_upload().data)
    if found is None:
        return []
    slots.gps_latitude, slots.gps_longitude = found
    return [ctx.say("location.gps_offer", coordinates=_coordinates(*found))]


def _use_photo_location(ctx: Context, latitude: float, longitude: float) -> Step:
    """Yes to the offer: the photo's coordinates are the location ("lat,lon")."""
    slots = ctx.slots
    slots.location = _coordinates(latitude, longitude)
    slots.latitude, slots.longitude = latitude, longitude
    slots.awaiting = ""  # as any location given: the type question is no longer pending
    slots.gps_latitude = slots.gps_longitude = None
    return Step("waiting_confirm", (ctx.say("location.gps_used"), summary(ctx)))


async def refuse_in_location(ctx: Context) -> Step:
    """No while the location is asked: declines the photo's location if it was offered,
    otherwise cancels the report (as ``取消``)."""
    slots = ctx.slots
    if slots.gps_latitude is None:
        return await cancel(ctx)
    slots.gps_latitude = slots.gps_longitude = None
    reply = "\n".join([ctx.say("location.gps_declined"), ctx.say("report.ask_location")])
    return Step("waiting_location", (reply,))


def _coordinates(latitude: float, longitude: float) -> str:
    return f"{_degrees(latitude)},{_degrees(longitude)}"


def _degrees(value: float) -> str:
    """Degrees to at most six decimals (about 0.1 m), without trailing zeros."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


# -- duplicates -----------------------------------------------------------------------------


def _signature(slots: Slots) -> str:
    """What the duplicate check depends on: checked again when any of it changes."""
    return f"{slots.alarm_type}|{slots.location}|{slots.latitude}|{slots.longitude}"


async def _offer_duplicate(ctx: Context) -> Step | None:
    """At a yes: the open order this report duplicates, offered to add the report to; None
    to file it (no duplicate, or this very message filed it already and the store replays)."""
    slots = ctx.slots
    signature = _signature(slots)
    if slots.duplicate_of and slots.duplicate_checked == signature:
        return _ask_duplicate(ctx, ctx.say("duplicate.choose", number=slots.duplicate_of))
    services = ctx.services
    if ctx.message is not None and await services.orders.written_by(ctx.message) is not None:
        return None
    found = await services.orders.duplicate_of(_new_report(ctx))
    slots.duplicate_checked = signature
    slots.duplicate_of = "" if found is None else found.number
    if found is None:
        return None
    question = ctx.say(
        "duplicate.offer",
        number=found.number,
        alarm_type=found.alarm_type,
        location=fit(found.location, MAX_ECHO_CHARS),
        created=found.created_at.strftime("%Y-%m-%d %H:%M UTC"),
    )
    return _ask_duplicate(ctx, question)


def _ask_duplicate(ctx: Context, question: str) -> Step:
    """The question and its two answers, numbered and offered as choices (in the reply's
    language): by its number or its words, the next message picks ``追加`` or ``仍然上报``."""
    answers = (ctx.say("duplicate.add"), ctx.say("duplicate.file_anyway"))
    ctx.slots.choices = list(answers)
    reply = "\n".join([question, *numbered(ctx, answers)])
    return Step("waiting_confirm", (reply,), choices=answers)


async def merge_report(ctx: Context) -> Step:
    """``追加`` / ``add``: the report joins the offered order instead of filing a new one
    (keyed by the message: a retried message merges once, and gets the same reply)."""
    slots = ctx.slots
    number = slots.duplicate_of
    if not number or slots.duplicate_checked != _signature(slots):
        return Step("waiting_confirm", (ctx.say("duplicate.nothing_to_add"), summary(ctx)))
    try:
        order = await ctx.services.orders.merge(number, _new_report(ctx))
    except (OrderStateConflict, OrderNotFound):
        slots.duplicate_of = slots.duplicate_checked = ""
        return Step("waiting_confirm", (ctx.say("duplicate.gone", number=number),))
    return _merged(ctx, order)


def _merged(ctx: Context, order: Order) -> Step:
    reply = ctx.say(
        "duplicate.merged",
        number=order.number,
        alarm_type=order.alarm_type,
        location=fit(order.location, MAX_ECHO_CHARS),
    )
    return Step("idle", (reply,), order)
