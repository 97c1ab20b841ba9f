"""``/wecom/callback`` end to end: a real server, pushes signed and encrypted like WeCom's, and
the fake WeCom API receiving the replies."""

from __future__ import annotations

import base64
import io
import re
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from snapreport.channels.http.app import create_app
from snapreport.config import DEFAULT_ALARM_TYPES
from snapreport.orders.base import MessageKey
from snapreport.orders.repository import SqlOrderRepository
from tests.harness.fake_vlm import FakeVLM
from tests.harness.fake_wecom import (
    TEST_CORP_ID,
    FakeWeCom,
    WeComPusher,
    raw_seal,
    wecom_settings,
)
from tests.integration.live_server import live_server

USER = "zhangsan"
HELP_MARK = "发送一张现场照片"  # in the idle help text
NOTHING_PENDING = "当前没有进行中的上报或结单"


def jpeg(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def server(tmp_path: Path, fake_wecom: FakeWeCom) -> Iterator[WeComPusher]:
    """The service (the HTTP app, WeCom enabled, manual vision), and a pusher aimed at its
    callback."""
    settings = wecom_settings(tmp_path, fake_wecom.url)
    with live_server(create_app(settings)) as url:
        pusher = WeComPusher(f"{url}/wecom/callback")
        try:
            yield pusher
        finally:
            pusher.close()


def accepted(response: Any) -> None:
    assert response.status_code == 200, response.text
    assert response.content == b""


# -- the URL check --------------------------------------------------------------------------


def test_url_check_answers_the_plaintext_alone(server: WeComPusher) -> None:
    response = server.url_check("1288432023552776189")
    assert response.status_code == 200
    assert response.content == b"1288432023552776189"


def test_url_check_restores_plus_signs_turned_into_spaces(server: WeComPusher) -> None:
    for attempt in range(20):  # enough tries that some echostr holds a "+"
        response = server.url_check(f"echo-{attempt}", raw_query=True)
        assert response.status_code == 200
        assert response.content == f"echo-{attempt}".encode()


def test_url_check_with_a_bad_signature_is_refused(server: WeComPusher) -> None:
    response = server.url_check("12345", signature="0" * 40)
    assert response.status_code == 403
    assert b"12345" not in response.content


def _url_check_with(server: WeComPusher, sealed: str, timestamp: str) -> Any:
    nonce = "1372623149"
    params = {
        "msg_signature": server.crypto.sign(timestamp, nonce, sealed),
        "timestamp": timestamp,
        "nonce": nonce,
        "echostr": sealed,
    }
    return server.http.get(server.callback_url, params=params)


def test_url_check_refuses_a_stale_timestamp(server: WeComPusher) -> None:
    # a push captured three days ago, replayed as the URL check's echostr
    old = str(int(time.time()) - 3 * 86_400)
    replayed = _url_check_with(server, server.crypto.encrypt("1288432023552776189"), old)
    assert replayed.status_code == 403
    assert replayed.text == "invalid_signature"


def test_url_check_does_not_decrypt_a_message(server: WeComPusher) -> None:
    # a validly signed push sent as echostr: its plaintext is a message, not a URL-check string
    sealed = server.crypto.encrypt(server.text_xml(USER, "3号楼东侧楼梯间"))
    response = _url_check_with(server, sealed, str(int(time.time())))
    assert response.status_code == 403
    assert response.text == "invalid_signature"
    assert "楼梯间" not in response.text


def test_url_check_answers_within_a_second(server: WeComPusher) -> None:
    started = time.monotonic()
    response = server.url_check("42")
    assert response.status_code == 200
    assert time.monotonic() - started < 1.0


# -- messages -------------------------------------------------------------------------------


def test_text_is_answered_at_once_and_replied_by_message_send(
    server: WeComPusher, fake_wecom: FakeWeCom
) -> None:
    accepted(server.push(server.text_xml(USER, "帮助")))
    [message] = fake_wecom.wait_for_sent(1)
    assert message["touser"] == USER
    assert message["msgtype"] == "text"
    assert message["agentid"] == 1000002
    assert HELP_MARK in message["text"]["content"]
    assert fake_wecom.gettoken_calls == 1


def test_login_sends_a_member_a_sign_in_link_that_works_once(
    server: WeComPusher, fake_wecom: FakeWeCom
) -> None:
    accepted(server.push(server.text_xml(USER, "登录")))
    [message] = fake_wecom.wait_for_sent(1)
    assert message["touser"] == USER
    found = re.search(r"/auth/link/[A-Za-z0-9_-]+", message["text"]["content"])
    assert found is not None, message
    base = server.callback_url.removesuffix("/wecom/callback")
    first = httpx.get(base + found.group(0))
    assert first.status_code == 303
    assert "snapreport_session=" in first.headers["set-cookie"]
    again = httpx.get(base + found.group(0))
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "signin_link_invalid"


def test_bad_signature_is_refused_and_nothing_is_handled(
    server: WeComPusher, fake_wecom: FakeWeCom
) -> None:
    response = server.push(server.text_xml(USER, "取消"), signature="0" * 40)
    assert response.status_code == 403
    # the same member's messages are handled in order: had the refused one been handled, its
    # reply would come first
    accepted(server.push(server.text_xml(USER, "帮助")))
    fake_wecom.wait_for_sent(1)
    texts = fake_wecom.sent_texts()
    assert len(texts) == 1
    assert HELP_MARK in texts[0]
    assert NOTHING_PENDING not in texts[0]


def test_stale_timestamp_is_refused(server: WeComPusher) -> None:
    sealed = server.crypto.encrypt(server.text_xml(USER, "帮助"))
    timestamp, nonce = str(int(time.time()) - 3 * 86_400), "5"
    response = server.http.post(
        server.callback_url,
        params={
            "msg_signature": server.crypto.sign(timestamp, nonce, sealed),
            "timestamp": timestamp,
            "nonce": nonce,
        },
        content=f"<xml><Encrypt><![CDATA[{sealed}]]></Encrypt></xml>".encode(),
    )
    assert response.status_code == 403


def envelope(msg: bytes, receive_id: bytes = TEST_CORP_ID.encode()) -> bytes:
    return b"0123456789abcdef" + struct.pack(">I", len(msg)) + msg + receive_id


def pkcs7(data: bytes) -> bytes:
    pad = 32 - len(data) % 32
    return data + bytes([pad]) * pad


def _fill(body: bytes, minimum: int = 1) -> int:
    fill = -len(body) % 32 or 32
    return fill if fill >= minimum else fill + 32


def other_receive_id(xml: bytes) -> str:
    return raw_seal(pkcs7(envelope(xml, receive_id=b"ww0000000000000000")))


def zero_padding(xml: bytes) -> str:
    body = envelope(xml)
    return raw_seal(body + b"\x00" * _fill(body))


def inconsistent_padding(xml: bytes) -> str:
    body = envelope(xml)
    fill = _fill(body, minimum=2)
    return raw_seal(body + b"\x07" * (fill - 1) + bytes([fill]))


def corrupted_ciphertext(xml: bytes) -> str:
    data = bytearray(base64.b64decode(raw_seal(pkcs7(envelope(xml)))))
    data[-20] ^= 0x5A  # garbles the blocks that hold the receive id and the padding
    return base64.b64encode(bytes(data)).decode()


def truncated(xml: bytes) -> str:
    return raw_seal(pkcs7(envelope(xml)))[:-8]


@pytest.mark.parametrize(
    "make",
    [other_receive_id, zero_padding, inconsistent_padding, corrupted_ciphertext, truncated],
)
def test_bad_envelopes_are_refused_even_when_signed(
    server: WeComPusher, fake_wecom: FakeWeCom, make: Any
) -> None:
    sealed = make(server.text_xml(USER, "取消").encode())
    response = server.push("", encrypt=sealed)  # signed over the bad envelope
    assert response.status_code == 403
    accepted(server.push(server.text_xml(USER, "帮助")))
    fake_wecom.wait_for_sent(1)
    assert len(fake_wecom.sent_texts()) == 1
    assert HELP_MARK in fake_wecom.sent_texts()[0]


def test_malformed_xml_is_refused(server: WeComPusher) -> None:
    response = server.http.post(
        server.callback_url,
        params={"msg_signature": "x", "timestamp": "1", "nonce": "1"},
        content=b"<xml><Encrypt>unterminated",
    )
    assert response.status_code == 400


def test_a_doctype_is_refused_in_the_envelope_and_in_the_message(
    server: WeComPusher, fake_wecom: FakeWeCom
) -> None:
    doctype = '<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/wecom.dtd">'
    inner = server.push(doctype + server.text_xml(USER, "取消"))
    sealed = server.crypto.encrypt(server.text_xml(USER, "取消"))
    timestamp, nonce = str(int(time.time())), "77"
    outer = server.http.post(
        server.callback_url,
        params={
            "msg_signature": server.crypto.sign(timestamp, nonce, sealed),
            "timestamp": timestamp,
            "nonce": nonce,
        },
        content=f"{doctype}<xml><Encrypt><![CDATA[{sealed}]]></Encrypt></xml>".encode(),
    )
    assert (inner.status_code, inner.text) == (400, "invalid_input")
    assert (outer.status_code, outer.text) == (400, "invalid_input")
    # neither was handled: the next message's reply is the only one, and nothing was cancelled
    accepted(server.push(server.text_xml(USER, "帮助")))
    fake_wecom.wait_for_sent(1)
    assert len(fake_wecom.sent_texts()) == 1
    assert HELP_MARK in fake_wecom.sent_texts()[0]


def test_the_same_msgid_three_times_makes_one_alarm(
    server: WeComPusher, fake_wecom: FakeWeCom
) -> None:
    fake_wecom.add_media("photo-1", jpeg())
    accepted(server.push(server.image_xml(USER, "photo-1")))
    fake_wecom.wait_for_sent(1)
    accepted(server.push(server.location_xml(USER, 23.1291, 113.2644, "3号楼东侧楼梯间")))
    fake_wecom.wait_for_sent(2)
    confirm = server.text_xml(USER, "确认")
    for _ in range(3):
        accepted(server.push(confirm))  # WeCom's retries: the very same push
    fake_wecom.wait_for_sent(3)
    accepted(server.push(server.text_xml(USER, "我的工单")))
    sent = fake_wecom.wait_for_sent(4)
    texts = [m["text"]["content"] for m in sent]
    assert len(texts) == 4
    assert "上报成功" in texts[2]
    assert "您有 1 个未关闭的工单" in texts[3]


async def test_the_confirmations_msgid_keys_its_order(
    server: WeComPusher, fake_wecom: FakeWeCom, tmp_path: Path
) -> None:
    fake_wecom.add_media("photo-1", jpeg())
    accepted(server.push(server.image_xml(USER, "photo-1")))
    accepted(server.push(server.location_xml(USER, 23.1291, 113.2644, "3号楼东侧楼梯间")))
    accepted(server.push(server.text_xml(USER, "确认", msg_id="7300000000000000042")))
    fake_wecom.wait_for_sent(3)
    orders = await SqlOrderRepository.connect(f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}")
    try:
        [order] = await orders.list()
        key = MessageKey("wecom", USER, "7300000000000000042")
        assert await orders.written_by(key) == ("create", order)
    finally:
        await orders.aclose()


def test_replies_of_one_turn_go_out_as_one_message(
    server: WeComPusher, fake_wecom: FakeWeCom
) -> None:
    fake_wecom.add_media("photo-2", jpeg((10, 120, 10)))
    accepted(server.push(server.image_xml(USER, "photo-2")))
    fake_wecom.wait_for_sent(1)
    accepted(server.push(server.text_xml(USER, "地下车库入口")))
    fake_wecom.wait_for_sent(2)
    # correcting the place at the confirmation is answered with two replies
    accepted(server.push(server.text_xml(USER, "位置 地下车库出口")))
    sent = fake_wecom.wait_for_sent(3)
    assert len(sent) == 3
    first, second = sent[2]["text"]["content"].split("\n\n", 1)
    assert "位置已更新" in first
    assert "请确认上报信息" in second
    assert "地下车库出口" in second


def test_the_type_question_is_a_short_numbered_list_and_a_number_answers(
    server: WeComPusher, fake_wecom: FakeWeCom
) -> None:
    fake_wecom.add_media("photo-5", jpeg())
    accepted(server.push(server.image_xml(USER, "photo-5")))
    question = fake_wecom.wait_for_sent(1)[0]["text"]["content"]
    assert "这是哪一类问题" in question
    listed = [line for line in question.splitlines() if line[:1].isdigit()]
    assert listed == [f"{i}. {name}" for i, name in enumerate(DEFAULT_ALARM_TYPES, 1)]
    accepted(server.push(server.text_xml(USER, "６")))
    answer = fake_wecom.wait_for_sent(2)[1]["text"]["content"]
    assert f"「{DEFAULT_ALARM_TYPES[5]}」" in answer
    accepted(server.push(server.text_xml(USER, "English")))
    assert "in English" in fake_wecom.wait_for_sent(3)[2]["text"]["content"]
    accepted(server.push(server.text_xml(USER, "B2 car park")))
    summary = fake_wecom.wait_for_sent(4)[3]["text"]["content"]
    assert "Please confirm the report" in summary
    assert f"Type: {DEFAULT_ALARM_TYPES[5]}" in summary


def test_the_duplicate_offer_is_a_numbered_list_and_a_number_answers(
    server: WeComPusher, fake_wecom: FakeWeCom
) -> None:
    sent = 0
    for user, photo in ((USER, "photo-6"), ("lisi", "photo-7")):
        fake_wecom.add_media(photo, jpeg())
        for push in (
            server.image_xml(user, photo),
            server.text_xml(user, "3号楼东侧楼梯间"),
            server.text_xml(user, "确认"),
        ):
            accepted(server.push(push))
            sent += 1
            fake_wecom.wait_for_sent(sent)
    first, offer = (m["text"]["content"] for m in fake_wecom.wait_for_sent(sent)[2::3])
    number = re.search(r"WO-\d{8}-\d{4}", first)
    assert number is not None
    assert number.group() in offer
    assert offer.splitlines()[-2:] == ["1. 追加", "2. 仍然上报"]
    accepted(server.push(server.text_xml("lisi", "1")))
    merged = fake_wecom.wait_for_sent(sent + 1)[sent]["text"]["content"]
    assert f"已追加到工单 {number.group()}" in merged


def test_location_while_waiting_for_it_moves_to_confirmation(
    server: WeComPusher, fake_wecom: FakeWeCom
) -> None:
    fake_wecom.add_media("photo-3", jpeg())
    accepted(server.push(server.image_xml(USER, "photo-3")))
    fake_wecom.wait_for_sent(1)
    accepted(server.push(server.location_xml(USER, 31.2304, 121.4737, "南门岗亭")))
    sent = fake_wecom.wait_for_sent(2)
    assert "请确认上报信息" in sent[1]["text"]["content"]
    assert "南门岗亭" in sent[1]["text"]["content"]


def test_unknown_media_is_answered_politely(server: WeComPusher, fake_wecom: FakeWeCom) -> None:
    accepted(server.push(server.image_xml(USER, "no-such-media")))
    [message] = fake_wecom.wait_for_sent(1)
    assert "照片没能取回" in message["text"]["content"]
    assert fake_wecom.media_calls == 1


def test_media_that_is_not_an_image_is_refused(server: WeComPusher, fake_wecom: FakeWeCom) -> None:
    fake_wecom.add_media("doc-1", b"%PDF-1.4 not a photo", content_type="application/pdf")
    accepted(server.push(server.image_xml(USER, "doc-1")))
    [message] = fake_wecom.wait_for_sent(1)
    assert "JPEG、PNG 或 WebP" in message["text"]["content"]


def test_image_bytes_are_validated_like_every_upload(
    server: WeComPusher, fake_wecom: FakeWeCom
) -> None:
    fake_wecom.add_media("fake-jpeg", b"\xff\xd8\xff not really a jpeg", "image/jpeg")
    accepted(server.push(server.image_xml(USER, "fake-jpeg")))
    [message] = fake_wecom.wait_for_sent(1)
    content = message["text"]["content"]
    assert "无法识别" in content or "已损坏" in content
    assert "照片已收到" not in content


def test_other_message_types_get_a_polite_not_supported(
    server: WeComPusher, fake_wecom: FakeWeCom
) -> None:
    accepted(server.push(server.voice_xml(USER)))
    [message] = fake_wecom.wait_for_sent(1)
    assert "暂不支持" in message["text"]["content"]


def test_events_are_accepted_without_a_reply(server: WeComPusher, fake_wecom: FakeWeCom) -> None:
    accepted(server.push(server.event_xml(USER)))
    accepted(server.push(server.text_xml(USER, "帮助")))
    fake_wecom.wait_for_sent(1)
    assert len(fake_wecom.sent) == 1
    assert HELP_MARK in fake_wecom.sent_texts()[0]


def test_token_expiring_mid_flow_is_refreshed_once_and_retried(
    server: WeComPusher, fake_wecom: FakeWeCom
) -> None:
    accepted(server.push(server.text_xml(USER, "帮助")))
    fake_wecom.wait_for_sent(1)
    assert fake_wecom.gettoken_calls == 1
    fake_wecom.expire_tokens()
    fake_wecom.add_media("photo-4", jpeg())
    accepted(server.push(server.image_xml(USER, "photo-4")))
    sent = fake_wecom.wait_for_sent(2)
    assert "照片已收到" in sent[1]["text"]["content"]
    assert fake_wecom.gettoken_calls == 2  # media/get refreshed; message/send reused it
    assert fake_wecom.media_calls == 2  # the refused call and its one retry


def test_members_are_answered_separately(server: WeComPusher, fake_wecom: FakeWeCom) -> None:
    accepted(server.push(server.text_xml("lisi", "帮助")))
    accepted(server.push(server.text_xml("wangwu", "取消")))
    fake_wecom.wait_for_sent(2)
    assert HELP_MARK in fake_wecom.sent_texts("lisi")[0]
    assert NOTHING_PENDING in fake_wecom.sent_texts("wangwu")[0]


def test_slow_vision_model_does_not_delay_the_callback(
    tmp_path: Path, fake_wecom: FakeWeCom, fake_vlm: FakeVLM
) -> None:
    fake_vlm.delay = 20.0
    settings = wecom_settings(
        tmp_path,
        fake_wecom.url,
        vision={
            "base_url": fake_vlm.url,
            "api_key": fake_vlm.api_key,
            "model": fake_vlm.model,
            "timeout_seconds": 60,
            "max_retries": 0,
        },
    )
    fake_wecom.add_media("photo-slow", jpeg())
    with live_server(create_app(settings)) as url:
        pusher = WeComPusher(f"{url}/wecom/callback")
        try:
            started = time.monotonic()
            accepted(pusher.push(pusher.image_xml(USER, "photo-slow")))
            # WeCom's deadline is 5 s; waiting for the model would take its 20 s delay
            assert time.monotonic() - started < 5.0
            assert fake_wecom.sent == []
            [message] = fake_wecom.wait_for_sent(1, timeout=60)
        finally:
            pusher.close()
    assert "消防通道堵塞" in message["text"]["content"]
    assert len(fake_vlm.requests) == 1


def test_shutdown_waits_for_messages_in_flight(
    tmp_path: Path, fake_wecom: FakeWeCom, fake_vlm: FakeVLM
) -> None:
    fake_vlm.delay = 2.0
    settings = wecom_settings(
        tmp_path,
        fake_wecom.url,
        vision={"base_url": fake_vlm.url, "api_key": fake_vlm.api_key, "max_retries": 0},
    )
    fake_wecom.add_media("photo-late", jpeg())
    with live_server(create_app(settings)) as url:
        pusher = WeComPusher(f"{url}/wecom/callback")
        try:
            accepted(pusher.push(pusher.image_xml(USER, "photo-late")))
        finally:
            pusher.close()
        assert fake_wecom.sent == []
    # the server has stopped: it finished the turn and sent the reply first
    [message] = fake_wecom.sent
    assert "消防通道堵塞" in message["text"]["content"]


def test_without_wecom_settings_the_callback_is_not_found(tmp_path: Path) -> None:
    settings = wecom_settings(tmp_path, "http://127.0.0.1:9", wecom={})
    with live_server(create_app(settings)) as url:
        pusher = WeComPusher(f"{url}/wecom/callback")
        try:
            assert pusher.url_check("1").status_code == 404
            assert pusher.push(pusher.text_xml(USER, "帮助")).status_code == 404
        finally:
            pusher.close()
