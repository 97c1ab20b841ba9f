"""A walk through the session engine with two users, printed as it happens.

Run it with ``python examples/session_walkthrough.py``. Time comes from a manual clock, so the
ten-minute expiry takes no time at all.
"""

from __future__ import annotations

import asyncio

from snapreport.session.engine import EngineConfig, SessionEngine
from snapreport.session.history import ImagePart
from snapreport.session.stores.memory import MemorySessionStore


class _Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _say(who: str, text: str) -> None:
    print(f"  {who:>9}: {text}")


async def run_demo() -> None:
    """Two users, a photo report, an expiry mid-report, concurrent messages, the VLM view."""
    clock = _Clock()
    engine = SessionEngine(MemorySessionStore(clock=clock), EngineConfig(), clock=clock)
    photo = ImagePart("media/2026/11/exit-3f.jpg", "image/jpeg", 2_400_000, 4000, 3000)

    print("1. alice sends a photo; the assistant asks where it is")
    async with engine.turn("alice") as session:
        session.history.add_user([photo, "门口堵了"])
        session.state = "waiting_location"
        session.slots.image_key = photo.key
        session.slots.analysis = "消防通道被杂物堵塞"
        session.slots.alarm_type = "fire_exit_blocked"
        session.history.add_assistant("识别为消防通道堵塞。请发送位置。")
    _say("alice", "[photo] 门口堵了")
    _say("assistant", "识别为消防通道堵塞。请发送位置。")
    print(f"     alice is now {session.state!r}, version {session.version}")

    print("2. bob says hello; his session is his own")
    async with engine.turn("bob") as session:
        session.history.add_user("你好")
        session.history.add_assistant("你好！发一张现场照片即可上报。")
    _say("bob", "你好")
    print(f"     bob is {session.state!r}; active sessions: {await engine.active_count()}")

    print("3. alice answers with the place; the assistant asks to confirm")
    clock.now += 60
    async with engine.turn("alice") as session:
        session.history.add_user("3号楼3层东侧")
        session.slots.location = "3号楼3层东侧"
        session.state = "waiting_confirm"
        session.history.add_assistant("位置：3号楼3层东侧。回复“确认”提交。")
    _say("alice", "3号楼3层东侧")

    print("4. a handler fails mid-turn: nothing it changed is written")
    try:
        async with engine.turn("alice") as session:
            session.history.add_user("确认")
            session.state = "idle"
            raise ConnectionError("the order service is down")
    except ConnectionError as exc:
        print(f"     the turn raised {exc!r}")
    info = await engine.peek("alice")
    assert info is not None
    print(f"     alice is still {info.session.state!r}, version {info.session.version}")

    print("5. alice comes back 11 minutes later: the pending report expired, and she is told")
    clock.now += 11 * 60
    await engine.purge_expired()
    async with engine.turn("alice") as session:
        lost = session.expired_from
        assert lost is not None
        session.history.add_user("确认")
        session.history.add_assistant("上一次上报已超时（10 分钟）未确认，请重新拍照上报。")
    _say("alice", "确认")
    _say("assistant", "上一次上报已超时（10 分钟）未确认，请重新拍照上报。")
    print(f"     lost: state {lost.state!r}, analysis {lost.slots.analysis!r}")
    print(f"     alice is {session.state!r} with {len(session.history)} turn(s) of history")

    print("6. bob sends three messages at once: they run one at a time, in order")

    async def message(n: int) -> None:
        async with engine.turn("bob") as session:
            await asyncio.sleep(0.01)  # the vision model would be called here
            session.history.add_user(f"message {n}")

    await asyncio.gather(message(1), message(2), message(3))
    info = await engine.peek("bob")
    assert info is not None
    print(f"     bob's history: {[m.text for m in info.session.history]}")

    print("7. what a vision model is shown: only the latest photo, older ones as a placeholder")
    async with engine.turn("bob") as session:
        for n in (1, 2):
            session.history.add_user([ImagePart(f"media/b{n}.jpg", "image/jpeg", 9, 3, 2), "看"])
        for shown in session.history_for_vision()[-2:]:
            parts = [
                f"<image {p.key}>" if isinstance(p, ImagePart) else repr(p.text)
                for p in shown.content
            ]
            print(f"     {shown.role}: {', '.join(parts)}")

    page = await engine.list_active()
    print(f"8. active sessions: {[s.user_id for s in page.sessions]}")
    await engine.clear("bob")
    print(f"   after clearing bob: {[s.user_id for s in (await engine.list_active()).sessions]}")


if __name__ == "__main__":
    asyncio.run(run_demo())
