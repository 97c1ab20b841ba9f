"""The specification's documents in XML and JSON, from one description of each.

A document is plain data: a mapping (an element with children) or a list under a plural name
whose items take the singular name (``services``/``service``, ``service_requests``/
``request``, ``errors``/``error``, ``endpoints``/``endpoint``, ``formats``/``format``): the
"Spark convention" the specification's JSON follows. XML is built with ElementTree, which
escapes every text; characters XML 1.0 cannot carry at all (control characters) are dropped.
Nothing here parses XML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final, Literal
from xml.etree import ElementTree

import msgspec
from starlette.responses import Response

Format = Literal["xml", "json"]
Scalar = str | int | float | bool | None
Node = Scalar | Sequence["Node"] | Mapping[str, "Node"]

XML_TYPE: Final = "text/xml; charset=utf-8"
JSON_TYPE: Final = "application/json; charset=utf-8"
XML_DECLARATION: Final = b'<?xml version="1.0" encoding="utf-8"?>\n'
ITEM_NAMES: Final[Mapping[str, str]] = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "endpoints": "endpoint",
    "formats": "format",
}
# everything outside XML 1.0's Char production
_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render(fmt: Format, root: str, document: Node, *, status: int = 200) -> Response:
    """The answer carrying ``document`` as ``fmt``; ``root`` names its XML root element
    (JSON has none: a list document is a JSON array, a mapping an object)."""
    return answer(fmt, encode(fmt, root, document), status=status)


def answer(fmt: Format, body: bytes, *, status: int = 200) -> Response:
    """The answer carrying ``body``, a document already encoded as ``fmt``."""
    return Response(body, status, media_type=JSON_TYPE if fmt == "json" else XML_TYPE)


def encode(fmt: Format, root: str, document: Node) -> bytes:
    """``document`` encoded as ``fmt`` (see ``render``)."""
    if fmt == "json":
        return msgspec.json.encode(document)
    return to_xml(root, document)


def to_xml(root: str, document: Node) -> bytes:
    """``document`` as an XML document with the root element ``root``."""
    element = ElementTree.Element(root)
    _fill(element, document)
    body = ElementTree.tostring(element, encoding="unicode", short_empty_elements=False)
    return XML_DECLARATION + body.encode()


def _fill(element: ElementTree.Element, node: Node) -> None:
    if isinstance(node, Mapping):
        for name, child in node.items():
            _fill(ElementTree.SubElement(element, name), child)
    elif isinstance(node, str):
        element.text = _NOT_XML.sub("", node)
    elif isinstance(node, Sequence):
        item = ITEM_NAMES[element.tag]
        for child in node:
            _fill(ElementTree.SubElement(element, item), child)
    elif isinstance(node, bool):
        element.text = "true" if node else "false"
    elif node is not None:
        element.text = repr(node) if isinstance(node, float) else str(node)
