"""WeCom callback XML: envelopes and typed messages, parsed safely and strictly."""

from __future__ import annotations

import pytest

from snapreport.channels.wecom.messages import (
    MAX_XML_BYTES,
    EventMessage,
    ImageMessage,
    LocationMessage,
    OtherMessage,
    TextMessage,
    parse_envelope,
    parse_message,
)
from snapreport.errors import InvalidInput
from tests.harness.fake_wecom import TEST_CORP_ID


def wrap(inner: str) -> str:
    return f"<xml>{inner}</xml>"


HEAD = (
    "<ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>"
    "<FromUserName><![CDATA[zhangsan]]></FromUserName>"
    "<CreateTime>1700000000</CreateTime><AgentID>1000002</AgentID>"
)


def test_parses_the_envelope() -> None:
    body = (
        b"<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>"
        b"<AgentID><![CDATA[1000002]]></AgentID><Encrypt><![CDATA[abc+/=]]></Encrypt></xml>"
    )
    envelope = parse_envelope(body)
    assert envelope.encrypt == "abc+/="
    assert envelope.agent_id == "1000002"
    assert envelope.to_user_name == TEST_CORP_ID


def test_envelope_without_encrypt_is_refused() -> None:
    with pytest.raises(InvalidInput, match="Encrypt"):
        parse_envelope(b"<xml><ToUserName>x</ToUserName></xml>")


def test_text_keeps_its_content_verbatim() -> None:
    message = parse_message(
        wrap(
            HEAD + "<MsgType>text</MsgType><Content><![CDATA[  两行\n文字 ]]></Content>"
            "<MsgId>9223372036854775807</MsgId>"
        )
    )
    assert isinstance(message, TextMessage)
    assert message.content == "  两行\n文字 "
    assert message.header.msg_id == "9223372036854775807"


def test_image() -> None:
    message = parse_message(
        wrap(
            HEAD + "<MsgType>image</MsgType><PicUrl>http://p/1.jpg</PicUrl>"
            "<MediaId><![CDATA[media-1]]></MediaId><MsgId>42</MsgId>"
        )
    )
    assert isinstance(message, ImageMessage)
    assert (message.media_id, message.pic_url) == ("media-1", "http://p/1.jpg")


def test_image_without_media_id_is_refused() -> None:
    with pytest.raises(InvalidInput, match="MediaId"):
        parse_message(wrap(HEAD + "<MsgType>image</MsgType><MsgId>42</MsgId>"))


def test_location() -> None:
    message = parse_message(
        wrap(
            HEAD + "<MsgType>location</MsgType><Location_X>23.134521</Location_X>"
            "<Location_Y>113.358803</Location_Y><Scale>20</Scale>"
            "<Label><![CDATA[广州市海珠区]]></Label><MsgId>43</MsgId>"
        )
    )
    assert isinstance(message, LocationMessage)
    assert message.latitude == pytest.approx(23.134521)
    assert message.longitude == pytest.approx(113.358803)
    assert message.scale == 20
    assert message.label == "广州市海珠区"


@pytest.mark.parametrize(("x", "y"), [("91", "0"), ("0", "-181"), ("nan", "1"), ("a", "1")])
def test_location_out_of_range_is_refused(x: str, y: str) -> None:
    with pytest.raises(InvalidInput, match="Location"):
        parse_message(
            wrap(
                HEAD + f"<MsgType>location</MsgType><Location_X>{x}</Location_X>"
                f"<Location_Y>{y}</Location_Y><MsgId>44</MsgId>"
            )
        )


def test_event_is_deduplicated_by_sender_and_time() -> None:
    message = parse_message(
        wrap(HEAD + "<MsgType>event</MsgType><Event>enter_agent</Event><EventKey></EventKey>")
    )
    assert isinstance(message, EventMessage)
    assert message.event == "enter_agent"
    assert message.header.dedupe_parts == ("event", "zhangsan", "1700000000")


def test_other_types_are_kept_as_other() -> None:
    message = parse_message(
        wrap(HEAD + "<MsgType>voice</MsgType><MediaId>v</MediaId><MsgId>45</MsgId>")
    )
    assert isinstance(message, OtherMessage)
    assert message.header.msg_type == "voice"


@pytest.mark.parametrize(
    "xml",
    [
        "not xml",
        "<root><FromUserName>a</FromUserName></root>",
        wrap("<MsgType>text</MsgType><CreateTime>1</CreateTime>"),  # no FromUserName
        wrap("<FromUserName>a</FromUserName><MsgType>text</MsgType>"),  # no CreateTime
        wrap("<FromUserName>a</FromUserName><CreateTime>x</CreateTime><MsgType>t</MsgType>"),
    ],
)
def test_malformed_messages_are_refused(xml: str) -> None:
    with pytest.raises(InvalidInput):
        parse_message(xml)


def test_entities_are_refused() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        "<xml><Encrypt>&b;</Encrypt></xml>"
    )
    with pytest.raises(InvalidInput, match="DOCTYPE"):
        parse_envelope(bomb.encode())


def test_external_entities_are_refused() -> None:
    xxe = (
        '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        "<xml><Encrypt>&e;</Encrypt></xml>"
    )
    with pytest.raises(InvalidInput, match="DOCTYPE"):
        parse_envelope(xxe.encode())


def test_oversized_bodies_are_refused_before_parsing() -> None:
    body = b"<xml><Encrypt>" + b"A" * MAX_XML_BYTES + b"</Encrypt></xml>"
    with pytest.raises(InvalidInput, match="limit"):
        parse_envelope(body)


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/wecom.dtd">',
        '<!DOCTYPE xml PUBLIC "-//W3C//DTD XHTML 1.0//EN" "wecom.dtd">',
        "<!DOCTYPE xml [<!ELEMENT xml ANY>]>",
        "<!DOCTYPE xml>",
    ],
)
def test_any_doctype_is_refused(doctype: str) -> None:
    body = doctype + wrap(HEAD + "<MsgType>text</MsgType><Content>hi</Content><MsgId>1</MsgId>")
    with pytest.raises(InvalidInput, match="DOCTYPE"):
        parse_message(body)
    with pytest.raises(InvalidInput, match="DOCTYPE"):
        parse_envelope((doctype + "<xml><Encrypt>abc</Encrypt></xml>").encode())
