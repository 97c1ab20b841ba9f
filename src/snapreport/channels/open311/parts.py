"""What the Open311 endpoint is given by ``bootstrap``: its keys, its link signer, its texts."""

from __future__ import annotations

from dataclasses import dataclass

from snapreport.channels.open311.keys import ApiKeys
from snapreport.channels.open311.links import MediaLinks
from snapreport.workflow.texts import Texts


@dataclass(frozen=True, slots=True)
class Open311Parts:
    """The Open311 channel's own parts (the orders, media and rules come with the ``App``)."""

    keys: ApiKeys
    links: MediaLinks
    texts: Texts
    contact: str
    key_service: str
