"""``WeComClient`` against the fake WeCom API: token sharing and refresh, media/get, send."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from snapreport.channels.wecom.client import MAX_TEXT_BYTES, WeComClient, truncate_utf8
from snapreport.errors import (
    ImageTooLarge,
    MediaNotFound,
    UnsupportedImageType,
    WeComUnavailable,
)
from snapreport.kv.base import KeyValueStore
from snapreport.kv.keys import key_of
from snapreport.kv.memory import MemoryKeyValueStore
from snapreport.kv.redis import RedisKeyValueStore
from snapreport.kv.sqlite import SqliteKeyValueStore
from tests.harness.fake_wecom import TEST_AGENT_ID, TEST_CORP_ID, TEST_SECRET, FakeWeCom

ClientFactory = Callable[..., WeComClient]


@pytest.fixture
async def kv() -> AsyncIterator[MemoryKeyValueStore]:
    store = MemoryKeyValueStore()
    yield store
    await store.aclose()


@pytest.fixture
async def make_client(fake_wecom: FakeWeCom) -> AsyncIterator[ClientFactory]:
    made: list[WeComClient] = []

    def make(kv: KeyValueStore, **kwargs: object) -> WeComClient:
        client = WeComClient(
            corp_id=TEST_CORP_ID,
            agent_id=TEST_AGENT_ID,
            secret=str(kwargs.pop("secret", TEST_SECRET)),
            kv=kv,
            base_url=fake_wecom.url,
            **kwargs,  # type: ignore[arg-type]
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


async def test_token_is_fetched_once_and_cached(
    fake_wecom: FakeWeCom, make_client: ClientFactory, kv: MemoryKeyValueStore
) -> None:
    client = make_client(kv)
    first = await client.access_token()
    assert await client.access_token() == first
    assert fake_wecom.gettoken_calls == 1


async def test_concurrent_callers_in_two_workers_share_one_refresh(
    fake_wecom: FakeWeCom, make_client: ClientFactory, kv: MemoryKeyValueStore
) -> None:
    # two clients on one store stand for two workers; each has its own in-process lock
    one, two = make_client(kv), make_client(kv)
    tokens = await asyncio.gather(*(c.access_token() for c in (one, two) * 10))
    assert len(set(tokens)) == 1
    assert fake_wecom.gettoken_calls == 1


async def test_workers_share_the_token_through_redis(
    fake_wecom: FakeWeCom, make_client: ClientFactory, redis_url: str, redis_prefix: str
) -> None:
    stores = [RedisKeyValueStore.from_url(redis_url, prefix=redis_prefix) for _ in range(2)]
    try:
        clients = [make_client(store) for store in stores]
        tokens = await asyncio.gather(*(c.access_token() for c in clients * 5))
        assert len(set(tokens)) == 1
        assert fake_wecom.gettoken_calls == 1
    finally:
        for store in stores:
            await store.aclose()


async def test_workers_share_the_token_through_sqlite(
    fake_wecom: FakeWeCom, make_client: ClientFactory, tmp_path: Path
) -> None:
    stores = [SqliteKeyValueStore(tmp_path / "sessions.db") for _ in range(2)]
    try:
        clients = [make_client(store) for store in stores]
        tokens = await asyncio.gather(*(c.access_token() for c in clients * 5))
        assert len(set(tokens)) == 1
        assert fake_wecom.gettoken_calls == 1
    finally:
        for store in stores:
            await store.aclose()


async def test_expired_token_is_refreshed_once_and_the_call_retried(
    fake_wecom: FakeWeCom, make_client: ClientFactory, kv: MemoryKeyValueStore
) -> None:
    client = make_client(kv)
    await client.send_text("zhangsan", "one")
    fake_wecom.expire_tokens()
    await client.send_text("zhangsan", "two")
    assert fake_wecom.sent_texts() == ["one", "two"]
    assert fake_wecom.gettoken_calls == 2
    assert fake_wecom.send_calls == 3  # one, the refused two, two again


async def test_concurrent_calls_after_expiry_refresh_only_once(
    fake_wecom: FakeWeCom, make_client: ClientFactory, kv: MemoryKeyValueStore
) -> None:
    one, two = make_client(kv), make_client(kv)
    await one.access_token()
    fake_wecom.expire_tokens()
    await asyncio.gather(*(c.send_text("lisi", f"m{i}") for i, c in enumerate((one, two) * 4)))
    assert sorted(fake_wecom.sent_texts()) == [f"m{i}" for i in range(8)]
    assert fake_wecom.gettoken_calls == 2


async def test_an_invalid_token_in_the_cache_is_replaced(
    fake_wecom: FakeWeCom, make_client: ClientFactory, kv: MemoryKeyValueStore
) -> None:
    token_key = key_of("wecom:token", TEST_CORP_ID, TEST_AGENT_ID)
    await kv.set(token_key, b"garbage", ttl_seconds=60)
    client = make_client(kv)
    await client.send_text("zhangsan", "hello")  # 40014 first, then a fresh token
    assert fake_wecom.sent_texts() == ["hello"]
    assert fake_wecom.gettoken_calls == 1


async def test_wrong_secret_is_unavailable(
    make_client: ClientFactory, kv: MemoryKeyValueStore
) -> None:
    client = make_client(kv, secret="wrong")
    with pytest.raises(WeComUnavailable, match="40001"):
        await client.access_token()


async def test_token_cache_expires_before_the_token(
    fake_wecom: FakeWeCom, make_client: ClientFactory
) -> None:
    store = MemoryKeyValueStore(clock=lambda: clock_now[0])
    clock_now = [1_000.0]
    fake_wecom.expires_in = 600
    client = make_client(store, token_margin_seconds=120)
    first = await client.access_token()
    clock_now[0] += 479  # 600 - 120 = 480 s of cache
    assert await client.access_token() == first
    clock_now[0] += 2
    assert await client.access_token() != first
    assert fake_wecom.gettoken_calls == 2


async def test_media_get_returns_bytes_and_content_type(
    fake_wecom: FakeWeCom, make_client: ClientFactory, kv: MemoryKeyValueStore
) -> None:
    fake_wecom.add_media("m1", b"\xff\xd8\xff\xe0 jpeg bytes", "image/jpeg")
    data, mime = await make_client(kv).media_get("m1")
    assert (data, mime) == (b"\xff\xd8\xff\xe0 jpeg bytes", "image/jpeg")


async def test_media_get_json_error_with_200_is_not_an_image(
    fake_wecom: FakeWeCom, make_client: ClientFactory, kv: MemoryKeyValueStore
) -> None:
    with pytest.raises(MediaNotFound, match="40007"):
        await make_client(kv).media_get("missing")


async def test_media_get_refreshes_an_expired_token(
    fake_wecom: FakeWeCom, make_client: ClientFactory, kv: MemoryKeyValueStore
) -> None:
    client = make_client(kv)
    await client.access_token()
    fake_wecom.expire_tokens()
    fake_wecom.add_media("m2", b"png-ish", "image/png")
    assert await client.media_get("m2") == (b"png-ish", "image/png")
    assert fake_wecom.gettoken_calls == 2


async def test_media_get_refuses_other_content_types(
    fake_wecom: FakeWeCom, make_client: ClientFactory, kv: MemoryKeyValueStore
) -> None:
    fake_wecom.add_media("v1", b"#!AMR", "audio/amr")
    with pytest.raises(UnsupportedImageType, match="audio/amr"):
        await make_client(kv).media_get("v1")


async def test_media_get_caps_the_size(
    fake_wecom: FakeWeCom, make_client: ClientFactory, kv: MemoryKeyValueStore
) -> None:
    fake_wecom.add_media("big", b"x" * 5000, "image/jpeg")
    with pytest.raises(ImageTooLarge):
        await make_client(kv, max_media_bytes=4096).media_get("big")


async def test_media_get_caps_a_streamed_body_without_length(kv: MemoryKeyValueStore) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/gettoken":
            return httpx.Response(200, json={"errcode": 0, "access_token": "t", "expires_in": 7200})

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"y" * 1000

        # a generator body is sent without Content-Length: only the streaming cap can stop it
        return httpx.Response(200, headers={"Content-Type": "image/jpeg"}, content=chunks())

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://wecom")
    client = WeComClient(
        corp_id=TEST_CORP_ID,
        agent_id=TEST_AGENT_ID,
        secret=TEST_SECRET,
        kv=kv,
        http=http,
        max_media_bytes=4096,
    )
    try:
        with pytest.raises(ImageTooLarge):
            await client.media_get("stream")
    finally:
        await http.aclose()


async def test_send_text_posts_the_documented_body(
    fake_wecom: FakeWeCom, make_client: ClientFactory, kv: MemoryKeyValueStore
) -> None:
    await make_client(kv).send_text("zhangsan", "你好")
    [message] = fake_wecom.sent
    assert message == {
        "touser": "zhangsan",
        "msgtype": "text",
        "agentid": int(TEST_AGENT_ID),
        "text": {"content": "你好"},
    }


async def test_send_text_cuts_long_text_to_2048_bytes(
    fake_wecom: FakeWeCom, make_client: ClientFactory, kv: MemoryKeyValueStore
) -> None:
    await make_client(kv).send_text("zhangsan", "工单" * 2000)
    [content] = fake_wecom.sent_texts()
    assert len(content.encode()) <= MAX_TEXT_BYTES
    assert content.endswith("…")
    assert content.startswith("工单工单")


async def test_send_errors_are_unavailable(
    fake_wecom: FakeWeCom, make_client: ClientFactory, kv: MemoryKeyValueStore
) -> None:
    fake_wecom.send_errcode = 45033
    with pytest.raises(WeComUnavailable, match="45033"):
        await make_client(kv).send_text("zhangsan", "x")


async def test_unreachable_api_is_unavailable_without_the_token_in_the_message(
    kv: MemoryKeyValueStore,
) -> None:
    client = WeComClient(
        corp_id=TEST_CORP_ID,
        agent_id=TEST_AGENT_ID,
        secret=TEST_SECRET,
        kv=kv,
        base_url="http://127.0.0.1:9",
        timeout_seconds=2,
    )
    try:
        with pytest.raises(WeComUnavailable) as caught:
            await client.access_token()
        assert TEST_SECRET not in str(caught.value)
    finally:
        await client.aclose()


def test_truncate_utf8_never_splits_a_character() -> None:
    assert truncate_utf8("short", 10) == "short"
    cut = truncate_utf8("汉字" * 10, 10)
    assert len(cut.encode()) <= 10
    assert cut == "汉字…"
    json.dumps(cut)  # still valid text
