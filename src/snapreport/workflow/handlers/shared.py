"""Handlers every state shares (cancel, help, my orders, the language, the expiry notice) and
idle chat."""

from __future__ import annotations

from collections.abc import Sequence

from snapreport.errors import MediaNotFound, MediaUnavailable, VisionUnavailable
from snapreport.orders.base import Order
from snapreport.session.history import IMAGE_PLACEHOLDER, Message, Part, TextPart
from snapreport.vision.base import Image
from snapreport.workflow.handlers.context import MAX_ECHO_CHARS, Context, Step, fit, log

MAX_CHAT_CHARS = 1000
MAX_ORDERS_LISTED = 20


async def expiry_notice(ctx: Context) -> Step:
    """The session expired while a report or close was pending: say so before anything."""
    expired = ctx.session.expired_from
    if expired is None:
        raise AssertionError("expiry_notice ran for a session that did not expire")
    minutes = max(1, round(ctx.services.ttl_seconds / 60))
    if expired.state == "waiting_close_photo":
        return Step(
            "idle", (ctx.say("expired.close", number=expired.slots.order_id, minutes=minutes),)
        )
    return Step("idle", (ctx.say("expired.report", minutes=minutes),))


async def cancel(ctx: Context) -> Step:
    """``取消`` / ``退出`` / ``cancel`` (and no at a confirmation): drop what is pending."""
    if ctx.state == "idle":
        return Step("idle", (ctx.say("cancel.nothing"),))
    if ctx.state == "waiting_close_photo":
        return Step("idle", (ctx.say("cancel.close", number=ctx.slots.order_id),))
    return Step("idle", (ctx.say("cancel.report"),))


async def show_help(ctx: Context) -> Step:
    """``帮助`` / ``help``: what the user can do in the current state."""
    ctx.keep_choices()
    lines = [ctx.say(f"help.{ctx.state}", number=ctx.slots.order_id)]
    if ctx.state == "waiting_close_photo" and ctx.slots.close_attempts > 0:
        lines.append(ctx.say("close.force_hint"))
    if ctx.choices:  # the orders to close in idle; elsewhere the answers a question offered
        hint = "close.choose_hint" if ctx.state == "idle" else "choice.hint"
        lines.append(ctx.say(hint, count=len(ctx.choices)))
    return Step(ctx.state, ("\n".join(lines),))


async def my_orders(ctx: Context) -> Step:
    """``我的工单`` / ``my orders``: the user's open orders, reported, assigned or merged into."""
    ctx.keep_choices()
    orders = await ctx.services.orders.active_orders_involving(ctx.user_id)
    return Step(ctx.state, (_order_list(ctx, orders),))


def _order_list(ctx: Context, orders: Sequence[Order]) -> str:
    if not orders:
        return ctx.say("orders.none")
    lines = [ctx.say("orders.header", count=len(orders))]
    for i, order in enumerate(orders[:MAX_ORDERS_LISTED], 1):
        role = "orders.role_reporter" if order.reporter == ctx.user_id else "orders.role_assignee"
        if order.assignee != ctx.user_id and ctx.user_id in order.also_reported_by:
            role = "orders.role_merged"
        lines.append(
            ctx.say(
                "orders.item",
                index=i,
                number=order.number,
                alarm_type=order.alarm_type,
                location=fit(order.location, MAX_ECHO_CHARS),
                role=ctx.say(role),
            )
        )
    if len(orders) > MAX_ORDERS_LISTED:
        lines.append(ctx.say("orders.more", count=len(orders) - MAX_ORDERS_LISTED))
    lines.append(ctx.say("orders.hint"))
    return "\n".join(lines)


async def set_language(ctx: Context) -> Step:
    """``中文`` / ``English``: answer in that language from now on, in this session and the
    next ones (remembered beyond the session); the state stays."""
    ctx.keep_choices()
    await ctx.services.languages.remember(ctx.user_id, ctx.arg)
    ctx.session.language = ctx.arg
    ctx.texts = ctx.services.texts_for(ctx.arg)
    return Step(ctx.state, (ctx.say("language.set"),), choices=ctx.choices)


async def sign_in_link(ctx: Context) -> Step:
    """``登录`` / ``login``: a one-time link that signs the sender in on the web page, sent
    only where the channel proved who is speaking. The link is a secret: the history keeps a
    note that it was sent, never the link."""
    ctx.keep_choices()
    links = ctx.services.links
    if not ctx.verified or links is None:
        return Step(ctx.state, (ctx.say("login.refused"),))
    link = await links.issue(ctx.user_id)
    minutes = f"{links.ttl_seconds / 60:g}"
    reply = ctx.say("login.link", link=link, minutes=minutes)
    return Step(ctx.state, (reply,), history=(ctx.say("login.sent"),))


async def chat(ctx: Context) -> Step:
    """Any other text in idle: a short answer from the model, or the help without one."""
    services = ctx.services
    if ctx.reply:  # the model answered it already, understanding the text as small talk
        return Step("idle", (fit(ctx.reply, MAX_CHAT_CHARS),))
    fallback = ctx.say("help.idle")
    if not services.vision.enabled:
        return Step("idle", (fallback,))
    messages, images = await _vision_view(ctx)
    try:
        answer = await services.vision.chat(messages, images, language=ctx.language)
    except VisionUnavailable as exc:
        log.warning("vision_chat_failed", error=exc.message)
        return Step("idle", (ctx.say("chat.unavailable") + "\n" + fallback,))
    answer = answer.strip()
    return Step("idle", (fit(answer, MAX_CHAT_CHARS) if answer else fallback,))


async def _vision_view(ctx: Context) -> tuple[list[Message], dict[str, Image]]:
    """The history as the model sees it, with the bytes of the (at most one) inline image.

    An image whose bytes are gone becomes the same placeholder as an older image.
    """
    messages = ctx.session.history_for_vision()
    images: dict[str, Image] = {}
    missing: set[str] = set()
    for key in {part.key for message in messages for part in message.images}:
        try:
            data, mime = await ctx.services.media.get(key)
        except (MediaNotFound, MediaUnavailable):
            # small talk goes on without the photo rather than failing the message
            missing.add(key)
            continue
        images[key] = Image(data, mime)
    if missing:
        messages = [_without(message, missing) for message in messages]
    return messages, images


def _without(message: Message, keys: set[str]) -> Message:
    parts: list[Part] = [
        TextPart(IMAGE_PLACEHOLDER) if not isinstance(part, TextPart) and part.key in keys else part
        for part in message.content
    ]
    return Message(message.role, tuple(parts))
