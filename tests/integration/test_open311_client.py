"""Open311 as a real client sees it: the live server under uvicorn on SQLite and PostgreSQL,
read with ``georeport`` (an independent GeoReport v2 client from the package index, in JSON and
XML) and written with ``requests`` as the specification's example request does (form-encoded,
and multipart with a ``media`` photo). ``georeport`` only reads: filing is plain HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from georeport import GeoReport

from snapreport.channels.http import create_app
from tests.harness.metadata_photos import has_metadata, photo_with_metadata
from tests.integration.live_server import live_server
from tests.integration.open311_kit import API_KEY, SPEC_REQUEST, open311_settings

FIRE = "消防通道堵塞"
TIMEOUT = 30


@pytest.fixture(params=["sqlite", "postgresql"])
def orders_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
def endpoint(tmp_path: Path, orders_url: str) -> Iterator[str]:
    settings = open311_settings(tmp_path, orders={"url": orders_url})
    with live_server(create_app(settings)) as url:
        yield f"{url}/open311/v2"


def _post(endpoint: str, fmt: str = "json", **kwargs: object) -> requests.Response:
    return requests.post(f"{endpoint}/requests.{fmt}", timeout=TIMEOUT, **kwargs)  # type: ignore[arg-type]


def test_georeport_reads_the_catalog_in_json_and_xml(endpoint: str) -> None:
    as_json = GeoReport(endpoint).get_service_list()
    as_xml = GeoReport(endpoint, output_format="xml").get_service_list()
    assert [s["service_code"] for s in as_json][:2] == [FIRE, "消防设施损坏"]
    assert [s["service_code"] for s in as_xml] == [s["service_code"] for s in as_json]
    assert as_xml[0]["metadata"] == "false"
    assert as_json[0]["metadata"] is False
    assert as_xml[0]["type"] == as_json[0]["type"] == "realtime"


def test_requests_filed_over_http_are_read_back_with_georeport(endpoint: str) -> None:
    # the specification's example request, with our service code and key
    form = {
        "api_key": API_KEY,
        "jurisdiction_id": "city.example",
        "service_code": FIRE,
        "lat": "37.76524078",
        "long": "-122.4212043",
        "address_string": "1234 5th street",
        "email": "smit333@example.edu",
        "device_id": "tt222111",
        "account_id": "123456",
        "first_name": "john",
        "last_name": "smith",
        "phone": "111111111",
        "description": "A large sinkhole is destroying the street",
        "media_url": "http://farm3.static.example.com/2002/2212426634_5ed477a060.jpg",
        "attribute[WHISPAWN]": "123456",
    }
    filed = _post(endpoint, "xml", data=form)
    assert filed.status_code == 200, filed.text
    assert filed.headers["content-type"] == "text/xml; charset=utf-8"
    photo = photo_with_metadata()
    with_photo = _post(
        endpoint,
        data={"api_key": API_KEY, "service_code": "漏水", "address_string": "B区 地下车库"},
        files={"media": ("leak.jpg", photo, "image/jpeg")},
    )
    assert with_photo.status_code == 200, with_photo.text
    second = with_photo.json()[0]["service_request_id"]

    client = GeoReport(endpoint)
    listed = client.get_service_requests()
    first = next(r["service_request_id"] for r in listed if r["service_code"] == FIRE)
    assert [r["service_request_id"] for r in listed] == [second, first]
    assert all(tuple(r) == SPEC_REQUEST for r in listed)

    one = client.get_service_request(first)
    assert one["status"] == "open"
    assert one["address"] == "1234 5th street"
    assert (one["lat"], one["long"]) == (37.76524078, -122.4212043)
    assert one["media_url"] == form["media_url"]
    assert one["description"] == form["description"]
    assert one["requested_datetime"].endswith("Z")

    xml_client = GeoReport(endpoint, output_format="xml")
    xml_one = xml_client.get_service_request(second)
    assert xml_one["service_request_id"] == second
    assert xml_one["status"] == "open"
    picked = xml_client.get_service_requests(service_request_id=f"{first},{second}")
    assert {r["service_request_id"] for r in picked} == {first, second}
    assert client.get_service_requests(status="closed") == []
    assert [r["service_request_id"] for r in client.get_service_requests(service_code="漏水")] == [
        second
    ]

    served = requests.get(client.get_service_request(second)["media_url"], timeout=TIMEOUT)
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/jpeg"
    assert not has_metadata(served.content)


def test_a_client_without_a_key_gets_the_specification_error(endpoint: str) -> None:
    refused = _post(endpoint, "xml", data={"service_code": FIRE, "address_string": "A区"})
    assert refused.status_code == 403
    assert b"<errors><error><code>403</code>" in refused.content
    with pytest.raises(requests.HTTPError):
        GeoReport(endpoint).get_service_request("WO-20000101-0001")
