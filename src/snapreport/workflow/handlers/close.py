"""Handlers of the close flow: ``结单`` → a photo of the fixed scene → verified, or forced.

Closing is the last act of its turn, so a failing orders store (``StoreUnavailable``) rolls
the whole turn back and the close stays pending. Refusals the store reports on purpose (not
found, already closed, not the user's) become replies. A close is keyed by its message: a
message that already closed its order (its turn failed after the write) gets that close's
reply again, without asking the model or writing anything.
"""

from __future__ import annotations

from snapreport.errors import (
    InvalidInput,
    MediaNotFound,
    NotOrderOwner,
    OrderNotFound,
    OrderStateConflict,
    VisionUnavailable,
)
from snapreport.orders.base import Order
from snapreport.session.model import Slots
from snapreport.vision.base import MAX_INLINE_IMAGES, Image, Verification
from snapreport.workflow.commands import pick_choice
from snapreport.workflow.handlers.context import (
    MAX_DESCRIPTION_CHARS,
    MAX_ECHO_CHARS,
    MAX_LIST_ITEMS,
    MAX_LOCATION_CHARS,
    Context,
    Step,
    Upload,
    fit,
    log,
)


async def start_close(ctx: Context) -> Step:
    """``结单 <单号>``, or ``结单`` alone: the one open order, or a numbered list to pick from."""
    if ctx.arg:
        picked = pick_choice(ctx.arg, ctx.choices) if ctx.arg.isdecimal() else None
        return await _open_close(ctx, picked or ctx.arg)
    orders = await ctx.services.orders.open_orders_for(ctx.user_id)
    if not orders:
        return Step("idle", (ctx.say("close.none"),))
    if len(orders) == 1:
        return _begin_close(ctx, orders[0])
    shown = orders[:MAX_LIST_ITEMS]
    ctx.slots.choices = [order.number for order in shown]
    lines = [ctx.say("close.choose", count=len(orders))]
    lines += [
        ctx.say(
            "close.choice_item",
            index=i,
            number=order.number,
            alarm_type=order.alarm_type,
            location=fit(order.location, MAX_ECHO_CHARS),
        )
        for i, order in enumerate(shown, 1)
    ]
    lines.append(ctx.say("close.choose_hint", count=len(shown)))
    return Step("idle", ("\n".join(lines),), choices=tuple(ctx.slots.choices))


async def choose_order(ctx: Context) -> Step:
    """The answer to the numbered list: its number or the order number itself."""
    picked = pick_choice(ctx.text, ctx.choices)
    if not picked:
        ctx.keep_choices()
        reply = ctx.say("close.choice_out_of_range", count=len(ctx.choices))
        return Step("idle", (reply,), choices=ctx.choices)
    return await _open_close(ctx, picked)


async def _open_close(ctx: Context, number: str) -> Step:
    echo = fit(number, MAX_ECHO_CHARS)
    try:
        order = await ctx.services.orders.check_can_close(number, ctx.user_id)
    except (OrderNotFound, InvalidInput):
        return Step("idle", (ctx.say("close.not_found", number=echo),))
    except OrderStateConflict as conflict:
        return Step("idle", (_not_closable(ctx, echo, conflict),))
    except NotOrderOwner:
        return Step("idle", (ctx.say("close.not_owner", number=echo),))
    return _begin_close(ctx, order)


def _not_closable(ctx: Context, number: str, conflict: OrderStateConflict) -> str:
    """Closed already, or rejected: the order's status does not allow a close."""
    if conflict.status == "closed":
        return ctx.say("close.already_closed", number=number)
    status = ctx.say(f"status.{conflict.status}") if conflict.status else "?"
    return ctx.say("staff.wrong_status", number=number, status=status)


def _begin_close(ctx: Context, order: Order) -> Step:
    ctx.session.slots = Slots(
        order_id=order.number,
        alarm_id=order.alarm_id,
        image_key=order.image_key or "",
        alarm_type=order.alarm_type,
        location=fit(order.location, MAX_LOCATION_CHARS),
        analysis=fit(order.description, MAX_DESCRIPTION_CHARS),
        # the report's further photos the close photo is compared with, within the inline limit
        more_images=list(order.image_keys[1 : MAX_INLINE_IMAGES - 1]),
    )
    reply = ctx.say(
        "close.ask_photo",
        number=order.number,
        alarm_type=order.alarm_type,
        location=ctx.slots.location,
    )
    return Step("waiting_close_photo", (reply,))


async def check_close_photo(ctx: Context) -> Step:
    """A photo of the fixed scene: resolved → closed; not resolved → say why and stay."""
    done = await _closed_by_this_message(ctx)
    if done is not None:
        return done
    upload = ctx.require_upload()
    slots = ctx.slots
    slots.close_image_key = upload.stored.key
    slots.close_attempts += 1
    verification = await _verify(ctx, upload)
    if verification is None:
        return await _close(ctx, "close.closed_unverified", verified=None, note="", forced=False)
    note = fit(" ".join(verification.note.split()), MAX_DESCRIPTION_CHARS)
    shown_note = note or ctx.say("close.no_note")
    if verification.resolved:
        return await _close(
            ctx, "close.closed_verified", verified=True, note=note, shown_note=shown_note
        )
    await ctx.services.orders.record_event(
        slots.order_id,
        kind="close_photo_rejected",
        actor=ctx.user_id,
        detail=f"photo {upload.stored.key} not accepted: {note}",
    )
    return Step("waiting_close_photo", (ctx.say("close.not_resolved", note=shown_note),))


async def _closed_by_this_message(ctx: Context) -> Step | None:
    """The reply of the close this very message already made, if it made one."""
    if ctx.message is None:
        return None
    found = await ctx.services.orders.written_by(ctx.message)
    if found is None or found[0] != "close":
        return None
    order = found[1]
    if order.forced:
        reply = ctx.say("close.closed_forced", number=order.number)
    elif order.close_verified:
        note = order.close_note or ctx.say("close.no_note")
        reply = ctx.say("close.closed_verified", number=order.number, note=note)
    else:
        reply = ctx.say("close.closed_unverified", number=order.number)
    return Step("idle", (reply,), order)


async def _verify(ctx: Context, upload: Upload) -> Verification | None:
    """The model's verdict, or None when nobody could compare (manual mode, the model failed,
    or the alarm has no original photo): the order is then closed as unverified."""
    services = ctx.services
    if not services.vision.enabled or not ctx.slots.image_key:
        return None
    try:
        data, mime = await services.media.get(ctx.slots.image_key)
    except MediaNotFound:
        log.warning(
            "original_photo_missing", image_key=ctx.slots.image_key, order=ctx.slots.order_id
        )
        return None
    more = await _more_originals(ctx)
    try:
        verification = await services.vision.verify_close(
            Image(data, mime),
            upload.image(),
            description=ctx.slots.analysis,
            language=ctx.language,
            more=more,
        )
    except VisionUnavailable as exc:
        log.warning("close_verification_failed", error=exc.message)
        return None
    return verification if verification.verified else None


async def _more_originals(ctx: Context) -> list[Image]:
    """The report's further photos (a missing one is left out: the first one decides)."""
    found: list[Image] = []
    for key in ctx.slots.more_images:
        try:
            data, mime = await ctx.services.media.get(key)
        except MediaNotFound:
            log.warning("report_photo_missing", image_key=key, order=ctx.slots.order_id)
            continue
        found.append(Image(data, mime))
    return found


async def force_close(ctx: Context) -> Step:
    """``强制结单`` / ``force close``: only after at least one close photo was sent."""
    attempts = ctx.slots.close_attempts
    if attempts < 1:
        return Step("waiting_close_photo", (ctx.say("close.force_needs_photo"),))
    note = f"forced after {attempts} close photo(s) not accepted"
    return await _close(ctx, "close.closed_forced", verified=False, note=note, forced=True)


async def _close(
    ctx: Context,
    reply_key: str,
    *,
    verified: bool | None,
    note: str,
    forced: bool = False,
    shown_note: str = "",
) -> Step:
    number = ctx.slots.order_id
    try:
        order = await ctx.services.orders.close(
            number,
            by=ctx.user_id,
            close_image_key=ctx.slots.close_image_key or None,
            verified=verified,
            note=note,
            forced=forced,
            message=ctx.message,
        )
    except OrderNotFound:
        return Step("idle", (ctx.say("close.not_found", number=number),))
    except OrderStateConflict as conflict:
        return Step("idle", (_not_closable(ctx, number, conflict),))
    except NotOrderOwner:
        return Step("idle", (ctx.say("close.not_owner", number=number),))
    return Step("idle", (ctx.say(reply_key, number=order.number, note=shown_note),), order)


async def ask_close_photo(ctx: Context) -> Step:
    """Anything but a photo while a close is pending: ask for the photo."""
    lines = [ctx.say("close.need_photo", number=ctx.slots.order_id)]
    if ctx.slots.close_attempts > 0:
        lines.append(ctx.say("close.force_hint"))
    return Step("waiting_close_photo", ("\n".join(lines),))
