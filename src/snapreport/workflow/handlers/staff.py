"""Handlers of the staff commands: ``接单``, ``转派``, ``退回``, ``没修好``, ``待办``.

They act on orders, not on the pending report or close, so every state answers them and the
state stays as it was. Every refusal of the lifecycle (``Dispatch``: who may, which status
allows) becomes a reply that says why: not found, not permitted (by which rule), taken by
someone else (naming them), or not in a status that allows it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from snapreport.errors import (
    InvalidInput,
    NotPermitted,
    OrderAlreadyAccepted,
    OrderNotFound,
    OrderStateConflict,
)
from snapreport.orders.base import Order
from snapreport.workflow.handlers.context import MAX_ECHO_CHARS, Context, Step, fit

MAX_TASKS_LISTED = 20
# reasons ``dispatch.roles`` gives for a refusal, each with its own reply
REFUSALS = frozenset(
    {
        "not_team_member",
        "assigned_to_other",
        "not_lead",
        "outside_team",
        "not_owner",
        "not_reporter",
        "reopen_window",
    }
)


async def accept_order(ctx: Context) -> Step:
    """``接单 <单号>`` / ``accept <number>``: take it; alone, the orders waiting for me."""
    number, _ = _split(ctx.arg)
    if not number:
        return await my_tasks(ctx)
    dispatch = ctx.services.orders
    return await _act(ctx, number, "accept.done", lambda: dispatch.accept(number, ctx.user_id))


async def transfer_order(ctx: Context) -> Step:
    """``转派 <单号> <用户或组>`` / ``transfer <number> <user|team>``."""
    number, target = _split(ctx.arg)
    if not number or not target:
        return Step(ctx.state, (ctx.say("transfer.usage"),))
    dispatch = ctx.services.orders
    return await _act(
        ctx, number, "transfer.done", lambda: dispatch.transfer(number, ctx.user_id, target)
    )


async def reject_order(ctx: Context) -> Step:
    """``退回 <单号> <原因>`` / ``reject <number> <reason>``: the reason is required."""
    number, reason = _split(ctx.arg)
    if not number or not reason:
        return Step(ctx.state, (ctx.say("reject.usage"),))
    dispatch = ctx.services.orders
    return await _act(
        ctx, number, "reject.done", lambda: dispatch.reject(number, ctx.user_id, reason)
    )


async def reopen_order(ctx: Context) -> Step:
    """``没修好 <单号> [原因]`` / ``reopen <number> [reason]``."""
    number, reason = _split(ctx.arg)
    if not number:
        return Step(ctx.state, (ctx.say("reopen.usage"),))
    dispatch = ctx.services.orders
    return await _act(
        ctx, number, "reopen.done", lambda: dispatch.reopen(number, ctx.user_id, reason)
    )


async def my_tasks(ctx: Context) -> Step:
    """``待办`` / ``my tasks``: orders waiting for my teams, and those I accepted."""
    ctx.keep_choices()
    tasks = await ctx.services.orders.tasks(ctx.user_id)
    return Step(ctx.state, (_task_list(ctx, tasks),))


def _task_list(ctx: Context, tasks: Sequence[Order]) -> str:
    if not tasks:
        return ctx.say("tasks.none")
    lines = [ctx.say("tasks.header", count=len(tasks))]
    for i, order in enumerate(tasks[:MAX_TASKS_LISTED], 1):
        mine = order.status == "accepted" and order.assignee == ctx.user_id
        lines.append(
            ctx.say(
                "tasks.item",
                index=i,
                number=order.number,
                alarm_type=order.alarm_type,
                location=fit(order.location, MAX_ECHO_CHARS),
                status=ctx.say("tasks.mine" if mine else "tasks.waiting"),
            )
        )
    if len(tasks) > MAX_TASKS_LISTED:
        lines.append(ctx.say("orders.more", count=len(tasks) - MAX_TASKS_LISTED))
    lines.append(ctx.say("tasks.hint"))
    return "\n".join(lines)


async def _act(
    ctx: Context, number: str, done_key: str, change: Callable[[], Awaitable[Order]]
) -> Step:
    echo = fit(number, MAX_ECHO_CHARS)
    try:
        order = await change()
    except (OrderNotFound, InvalidInput):
        return Step(ctx.state, (ctx.say("staff.not_found", number=echo),))
    except OrderAlreadyAccepted as taken:
        return Step(ctx.state, (ctx.say("accept.taken", number=echo, by=taken.by),))
    except OrderStateConflict as conflict:
        status = ctx.say(f"status.{conflict.status}") if conflict.status else "?"
        return Step(ctx.state, (ctx.say("staff.wrong_status", number=echo, status=status),))
    except NotPermitted as refused:
        reason = refused.reason if refused.reason in REFUSALS else "not_owner"
        return Step(ctx.state, (ctx.say(f"staff.refused_{reason}", number=echo),))
    reply = ctx.say(
        done_key,
        number=order.number,
        alarm_type=order.alarm_type,
        location=fit(order.location, MAX_ECHO_CHARS),
        assignee=order.assignee or "-",
        team=order.team or "-",
    )
    return Step(ctx.state, (reply,))


def _split(arg: str) -> tuple[str, str]:
    """``"WO-1 the rest"`` → ``("WO-1", "the rest")``."""
    number, _, rest = arg.strip().partition(" ")
    return number.strip(), rest.strip()
