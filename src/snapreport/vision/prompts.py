"""The prompts sent to a vision model, in Chinese (zh-CN, the default) and English.

JSON-mode prompts contain the word "JSON": DashScope refuses ``response_format: json_object``
otherwise. Catalog names are given verbatim so the model can copy one exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

from snapreport.vision.base import TextQuery


def _is_zh(language: str) -> bool:
    return language.lower().startswith("zh")


def _catalog_lines(catalog: Sequence[str]) -> str:
    return "\n".join(f"- {name}" for name in catalog)


def analysis_system_prompt(language: str) -> str:
    if _is_zh(language):
        return "你是现场安全巡检助手,负责识别随手拍照片中的安全隐患。只用 JSON 对象回答。"
    return (
        "You are a site-safety inspection assistant who classifies photos of hazards. "
        "Answer with a JSON object only."
    )


def analysis_prompt(catalog: Sequence[str], language: str) -> str:
    """Ask for ``alarm_type`` (one of ``catalog``), ``description`` and ``confidence``."""
    example = json.dumps(
        {"alarm_type": catalog[0] if catalog else "", "description": "...", "confidence": 0.8},
        ensure_ascii=False,
    )
    if _is_zh(language):
        return (
            "请查看这张现场照片,判断其中的问题属于下列哪一种告警类型:\n"
            f"{_catalog_lines(catalog)}\n\n"
            "只输出一个 JSON 对象,不要输出其他文字,字段如下:\n"
            "- alarm_type:上面列表中的一项,原样照抄;都不符合时填「其他」\n"
            "- description:用中文一两句话描述看到的问题和位置特征,不超过 80 字\n"
            "- confidence:0 到 1 之间的小数,表示你的把握\n"
            f"示例:{example}"
        )
    return (
        "Look at this site photo and decide which alarm type below it shows:\n"
        f"{_catalog_lines(catalog)}\n\n"
        "Output one JSON object and nothing else, with the fields:\n"
        "- alarm_type: one entry of the list above, copied exactly as written; "
        "if none fits, use 其他\n"
        "- description: one or two English sentences on the problem you see, at most 50 words\n"
        "- confidence: a number from 0 to 1, how sure you are\n"
        f"Example: {example}"
    )


def verification_prompt(description: str, language: str, *, count: int = 1) -> tuple[str, str, str]:
    """The text before the ``count`` original photos, between them and the close photo, and
    after the close photo."""
    description = description.strip() or ("(无描述)" if _is_zh(language) else "(none)")
    if _is_zh(language):
        if count > 1:
            return (
                f"前 {count} 张是上报问题时拍的原始照片,问题描述:{description}\n原始照片:",
                "最后一张是整改后拍的照片:",
                "请比较原始照片和整改后的照片,判断原来的问题是否已经解决(是同一地点,且问题已消除)。"
                "只输出一个 JSON 对象,不要输出其他文字,字段:"
                "resolved(true 或 false)、note(一句中文说明理由,不超过 60 字)。"
                '示例:{"resolved": true, "note": "通道已清理干净"}',
            )
        return (
            f"第一张是上报问题时拍的原始照片,问题描述:{description}\n原始照片:",
            "第二张是整改后拍的照片:",
            "请比较两张照片,判断原来的问题是否已经解决(是同一地点,且问题已消除)。"
            "只输出一个 JSON 对象,不要输出其他文字,字段:"
            "resolved(true 或 false)、note(一句中文说明理由,不超过 60 字)。"
            '示例:{"resolved": true, "note": "通道已清理干净"}',
        )
    if count > 1:
        return (
            f"The first {count} photos were taken when the problem was reported. "
            f"Problem: {description}\nOriginal photos:",
            "The last photo was taken after the fix:",
            "Compare the original photos with the last one and decide whether the original "
            "problem is resolved (the same place, with the problem gone). Output one JSON object "
            "and nothing else, with the fields resolved (true or false) and note (one English "
            "sentence saying why). "
            'Example: {"resolved": true, "note": "The passage has been cleared."}',
        )
    return (
        f"The first photo was taken when the problem was reported. Problem: {description}\n"
        "Original photo:",
        "The second photo was taken after the fix:",
        "Compare the two photos and decide whether the original problem is resolved (the same "
        "place, with the problem gone). Output one JSON object and nothing else, with the "
        "fields resolved (true or false) and note (one English sentence saying why). "
        'Example: {"resolved": true, "note": "The passage has been cleared."}',
    )


def chat_system_prompt(language: str) -> str:
    """A short system prompt for small talk in the user's language."""
    if _is_zh(language):
        return (
            "你是「随手拍」现场安全助手,帮助员工上报现场安全隐患和结单。"
            "请用中文简短回答(一般不超过三句话)。"
            "需要上报时,提醒用户直接发送现场照片;需要结单时,发送「结单 单号」。"
        )
    return (
        "You are a helpful site-safety assistant for snap-and-report: staff report hazards on "
        "site and close work orders. Reply briefly in English (usually at most three "
        "sentences). To report, the user sends a photo of the scene; to close an order, they "
        "send 'close <number>'."
    )


INTENTS: Final[tuple[str, ...]] = (
    "confirm",
    "cancel",
    "set_type",
    "set_location",
    "close_order",
    "accept_order",
    "my_orders",
    "my_tasks",
    "help",
    "smalltalk",
)
_MAX_TURN_CHARS: Final = 300


def understanding_system_prompt(language: str) -> str:
    """What the text-understanding request asks for: one JSON object of the contract's fields."""
    reply_language = "Chinese (zh-CN)" if _is_zh(language) else "English"
    return (
        "You read one message a user sent to a site-safety reporting assistant and say what "
        "the user wants. The assistant files reports (photo, then location, then "
        "confirmation) and handles work orders. Answer with one JSON object and nothing else: "
        '{"intent": one of ' + ", ".join(INTENTS) + ', "alarm_type": string or null, '
        '"location": string or null, "order_number": string or null, "reply": string or null}. '
        "confirm: submit the pending report. cancel: drop what is pending. set_type: the "
        "problem is of another type (alarm_type: exactly one name of the catalog). "
        "set_location: where the problem is (location: the place only, without filler words). "
        "close_order: close a work order (order_number if the user gave one, else null). "
        "accept_order: take a work order (order_number). my_orders: list my orders. my_tasks: "
        "orders waiting for me. help: how to use the assistant. smalltalk: anything else "
        f"(reply: a short friendly answer in {reply_language}). Use null for fields that do "
        "not apply. Never invent an order number."
    )


def understanding_prompt(query: TextQuery) -> str:
    """The user's text with the state, the pending report, the catalog and the last turns."""
    pending = "; ".join(f"{k}: {v}" for k, v in query.pending.items() if v) or "none"
    turns = "\n".join(f"{role}: {text[:_MAX_TURN_CHARS]}" for role, text in query.turns)
    return (
        f"State: {query.state}\n"
        f"Pending report: {pending}\n"
        f"Catalog of alarm types: {', '.join(query.catalog)}\n"
        f"Last turns:\n{turns or '(none)'}\n"
        f"The user's message: {query.text}\n"
        "Answer with the JSON object."
    )


def missing_image_text(language: str) -> str:
    """What stands in for an image whose bytes the caller did not provide."""
    return "[图片不可用]" if _is_zh(language) else "[photo not available]"


__all__ = [
    "analysis_prompt",
    "analysis_system_prompt",
    "chat_system_prompt",
    "missing_image_text",
    "understanding_prompt",
    "understanding_system_prompt",
    "verification_prompt",
]
