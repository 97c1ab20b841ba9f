"""``App``: everything a channel needs, built by ``bootstrap.build`` from one ``Settings``; and
``Channel``, what a background channel (WeCom) offers the app that runs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from snapreport.channels.open311.parts import Open311Parts
from snapreport.config import Settings
from snapreport.dispatch.lifecycle import Dispatch
from snapreport.dispatch.rules import Rules
from snapreport.identity.service import Identity
from snapreport.kv.base import KeyValueStore
from snapreport.live.base import LiveFeed
from snapreport.media.base import MediaStore
from snapreport.orders.base import OrderRepository
from snapreport.outbox.base import NotificationStore, OutboxStore
from snapreport.session.engine import SessionEngine
from snapreport.vision.base import VisionModel
from snapreport.webhooks.base import WebhookStore
from snapreport.workflow.incident import IncidentAssistant
from snapreport.workflow.languages import ChosenLanguages


class Channel(Protocol):
    """A channel that runs in the background (WeCom): started with the app, closed with it."""

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class App:
    """Everything a channel needs, built from one ``Settings``."""

    settings: Settings
    engine: SessionEngine
    vision: VisionModel
    media: MediaStore
    orders: OrderRepository
    assistant: IncidentAssistant
    kv: KeyValueStore
    rules: Rules
    dispatch: Dispatch
    outbox: OutboxStore
    notifications: NotificationStore
    open311: Open311Parts
    identity: Identity
    webhooks: WebhookStore
    live: LiveFeed
    languages: ChosenLanguages
    wecom: Channel | None = None
