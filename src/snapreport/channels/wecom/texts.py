"""What the WeCom channel itself says (the dialogue's replies come from the workflow)."""

from __future__ import annotations

from typing import Final

TEXTS: Final[dict[str, dict[str, str]]] = {
    "zh-CN": {
        "notice.report": "您有一条未完成的上报，因 {duration}内没有回复，已自动取消。"
        "如需上报，请重新发送现场照片。",
        "notice.close": "工单 {number} 的结单因 {duration}内没有回复，已自动取消。"
        "如需结单，请重新发起。",
        "unsupported": "抱歉，暂不支持这种消息。请发送文字、照片或位置。",
        "image.unavailable": "抱歉，照片没能取回，请重新发送。",
        "image.too_large": "照片太大了，请压缩后重新发送。",
        "image.unsupported": "无法识别这个文件，请发送 JPEG、PNG 或 WebP 格式的照片。",
        "busy": "抱歉，系统正忙，请稍后再发一次。",
        "seconds": "{n} 秒",
        "minutes": "{n} 分钟",
    },
    "en": {
        "notice.report": "Your pending report was cancelled after {duration} without a reply. "
        "Send the photo again to report it.",
        "notice.close": "Closing order {number} was cancelled after {duration} without a "
        "reply. Start the close again when you are ready.",
        "unsupported": "Sorry, this kind of message is not supported yet. "
        "Please send text, a photo or a location.",
        "image.unavailable": "Sorry, the photo could not be fetched. Please send it again.",
        "image.too_large": "The photo is too large. Please compress it and send it again.",
        "image.unsupported": "This file is not a photo we can read. "
        "Please send a JPEG, PNG or WebP photo.",
        "busy": "Sorry, the service is busy. Please send your message again in a moment.",
        "seconds": "{n} seconds",
        "minutes": "{n} minutes",
    },
}


def say(language: str, key: str, /, **values: object) -> str:
    """The text of ``key`` in ``language`` (zh-CN when the language is unknown)."""
    table = TEXTS.get(language, TEXTS["zh-CN"])
    return table[key].format_map(values)


def duration(seconds: float, language: str) -> str:
    """A session time to live as people say it: minutes from two minutes up, else seconds."""
    if seconds >= 120:
        return say(language, "minutes", n=round(seconds / 60))
    return say(language, "seconds", n=max(1, round(seconds)))
