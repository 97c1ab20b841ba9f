"""Open311 test helpers: the element names of the specification's example documents, a rules
file, settings with API keys, and readers of our XML (parsed with defusedxml, as a careful
client would)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from defusedxml import ElementTree

from snapreport.config import Settings
from tests.integration.dispatch_kit import RULES
from tests.integration.http_kit import make_settings

API_KEY = "open311-key-0123456789"
OTHER_KEY = "open311-key-second-abcdef"
MEDIA_SECRET = "open311-media-secret-0123456789abcdef"

# Element names, in order, of the records in the specification's example documents
# (GeoReport v2: GET Service List, POST Service Request, GET Service Requests, Errors;
# Service Discovery). Our documents must carry exactly these elements.
SPEC_SERVICE = (
    "service_code",
    "service_name",
    "description",
    "metadata",
    "type",
    "keywords",
    "group",
)
SPEC_CREATED = ("service_request_id", "service_notice", "account_id")
SPEC_REQUEST = (
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
)
SPEC_ERROR = ("code", "description")
SPEC_DISCOVERY = ("changeset", "contact", "key_service", "endpoints")
SPEC_ENDPOINT = ("specification", "url", "changeset", "type", "formats")


def open311_settings(tmp_path: Path, *, rules: bool = True, **overrides: Any) -> Settings:
    """Settings with two Open311 keys, a media secret and (by default) the example rules."""
    values: dict[str, Any] = {
        "open311": {"api_keys": [API_KEY, OTHER_KEY], "media_secret": MEDIA_SECRET},
        "language": "en",
    }
    if rules:
        path = tmp_path / "rules.toml"
        path.write_text(RULES, encoding="utf-8")
        values["dispatch"] = {"rules_file": path}
    values.update(overrides)
    return make_settings(tmp_path, **values)


def xml_root(body: bytes) -> Any:
    """The root element of an XML answer, which must declare UTF-8 first."""
    assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    return ElementTree.fromstring(body)


def xml_records(body: bytes, root: str, item: str) -> list[dict[str, str | None]]:
    """The records of a list document: one mapping of element name to text per item."""
    element = xml_root(body)
    assert element.tag == root
    records = []
    for child in element:
        assert child.tag == item
        records.append({field.tag: field.text for field in child})
    return records


def tags(body: bytes, root: str, item: str) -> list[tuple[str, ...]]:
    """The element names of each record, in document order."""
    element = xml_root(body)
    assert element.tag == root
    return [tuple(field.tag for field in child) for child in element]
