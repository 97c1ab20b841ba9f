"""The handlers the transition table names, by name."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from snapreport.workflow import handlers_close, handlers_common, handlers_report
from snapreport.workflow.handlers_base import Handler

HANDLERS: Final[Mapping[str, Handler]] = MappingProxyType(
    {
        "expiry_notice": handlers_common.expiry_notice,
        "cancel": handlers_common.cancel,
        "help": handlers_common.show_help,
        "my_orders": handlers_common.my_orders,
        "chat": handlers_common.chat,
        "start_report": handlers_report.start_report,
        "replace_photo": handlers_report.replace_photo,
        "take_location": handlers_report.take_location,
        "correct_location": handlers_report.correct_location,
        "ask_location": handlers_report.ask_location,
        "correct_type": handlers_report.correct_type,
        "repeat_summary": handlers_report.repeat_summary,
        "submit": handlers_report.submit,
        "need_photo": handlers_report.need_photo,
        "start_close": handlers_close.start_close,
        "choose_order": handlers_close.choose_order,
        "check_close_photo": handlers_close.check_close_photo,
        "force_close": handlers_close.force_close,
        "ask_close_photo": handlers_close.ask_close_photo,
    }
)
