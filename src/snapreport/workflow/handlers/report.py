"""Handlers of the report flow: photo → location → confirmation → alarm and work order."""

from __future__ import annotations

from snapreport.orders.base import NewReport
from snapreport.session.model import Slots
from snapreport.vision.base import UNCLASSIFIED
from snapreport.workflow.commands import pick_choice
from snapreport.workflow.handlers.context import (
    MAX_ECHO_CHARS,
    Context,
    Step,
    analyse,
    check_location,
    fit,
    summary,
)


async def start_report(ctx: Context) -> Step:
    """A photo in idle: keep it, have it analysed, ask where it is."""
    ctx.session.slots = Slots()
    lines = await _take_photo(ctx)
    if ctx.slots.alarm_type == UNCLASSIFIED:
        return _ask_type(ctx, lines)
    return Step("waiting_location", ("\n".join([*lines, ctx.say("report.ask_location")]),))


async def replace_photo(ctx: Context) -> Step:
    """Another photo while a report is pending: it replaces the first and is analysed again."""
    lines = [ctx.say("report.replaced"), *await _take_photo(ctx)]
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
    listing = [ctx.say("type.item", index=i, name=name) for i, name in enumerate(catalog, 1)]
    question = [ctx.say("report.ask_type"), *listing, ctx.say("report.ask_type_hint")]
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
    return Step("waiting_confirm", (summary(ctx),))


async def correct_location(ctx: Context) -> Step:
    ctx.slots.location = check_location(ctx, _location_given(ctx))
    return Step("waiting_confirm", (ctx.say("location.updated"), summary(ctx)))


def _location_given(ctx: Context) -> str:
    if ctx.place is not None:
        return ctx.place
    # "位置 X" / "location X" carry it as the argument; a plain text is the location itself
    return ctx.arg if ctx.trigger == "set_location" else ctx.text


async def ask_location(ctx: Context) -> Step:
    """A yes before any location was given: a location is still needed."""
    return Step("waiting_location", (ctx.say("location.still_needed"),))


async def correct_type(ctx: Context) -> Step:
    """``类型 X`` / ``type X``: X is a catalog name or its 1-based number."""
    catalog = ctx.services.catalog
    chosen = _pick_type(ctx.arg, catalog)
    if chosen is None:
        listing = "\n".join(
            ctx.say("type.item", index=i, name=name) for i, name in enumerate(catalog, 1)
        )
        key = "type.unknown" if ctx.arg else "type.choose"
        heading = ctx.say(key, value=fit(ctx.arg, MAX_ECHO_CHARS))
        return Step(ctx.state, ("\n".join([heading, listing]),))
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
    """Yes: create the alarm and its work order.

    This is the turn's last act, so a failing orders store (``StoreUnavailable``) leaves the
    whole turn rolled back and the report still pending: the user can simply confirm again.
    The order is keyed by the message: if this message already created it (its turn failed
    after the write), the store answers with that order and the reply is the same.
    """
    slots = ctx.slots
    order = await ctx.services.orders.create(
        NewReport(
            reporter=ctx.user_id,
            alarm_type=slots.alarm_type or UNCLASSIFIED,
            location=slots.location,
            description=slots.analysis,
            image_key=slots.image_key or None,
            confidence=slots.confidence,
            message=ctx.message,
        )
    )
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
