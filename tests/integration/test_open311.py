"""Open311 GeoReport v2 in-process: the documents' shapes against the specification's
examples, API keys, filing (routed like any order), listing and its filters, the status
mapping, signed photo links, and errors in the specification's format."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.harness.clock import FakeClock
from tests.harness.metadata_photos import has_metadata, photo_with_metadata
from tests.integration.http_kit import running
from tests.integration.open311_kit import (
    API_KEY,
    OTHER_KEY,
    SPEC_CREATED,
    SPEC_DISCOVERY,
    SPEC_ENDPOINT,
    SPEC_ERROR,
    SPEC_REQUEST,
    SPEC_SERVICE,
    open311_settings,
    tags,
    xml_records,
    xml_root,
)

BASE = "/open311/v2"
FIRE = "消防通道堵塞"


def _form(**fields: str) -> dict[str, str]:
    values = {
        "api_key": API_KEY,
        "service_code": FIRE,
        "address_string": "A区 3号楼东侧",
        "description": "楼梯间堆满杂物",
        "email": "Citizen@Example.org",
    }
    values.update(fields)
    return {k: v for k, v in values.items() if v is not None}


async def _file(client: httpx.AsyncClient, **fields: str) -> str:
    answer = await client.post(f"{BASE}/requests.json", data=_form(**fields))
    assert answer.status_code == 200, answer.text
    [created] = answer.json()
    number: str = created["service_request_id"]
    return number


async def test_services_list_the_alarm_types_as_the_specification_shows(tmp_path: Path) -> None:
    settings = open311_settings(tmp_path)
    async with running(settings) as app:
        as_json = await app.client.get(f"{BASE}/services.json")
        as_xml = await app.client.get(f"{BASE}/services.xml")
    assert as_json.headers["content-type"] == "application/json; charset=utf-8"
    assert as_xml.headers["content-type"] == "text/xml; charset=utf-8"
    services = as_json.json()
    assert [s["service_code"] for s in services] == settings.alarm_types
    assert all(tuple(s) == SPEC_SERVICE for s in services)
    fire = services[0]
    assert fire["metadata"] is False
    assert fire["type"] == "realtime"
    assert fire["service_name"] == FIRE
    assert fire["group"] == "消防安全组"  # the team the rules send this type to
    assert all(t == SPEC_SERVICE for t in tags(as_xml.content, "services", "service"))
    xml_fire = xml_records(as_xml.content, "services", "service")[0]
    assert xml_fire["metadata"] == "false"
    assert xml_fire["service_code"] == FIRE


async def test_discovery_names_this_endpoint_and_both_formats(tmp_path: Path) -> None:
    async with running(open311_settings(tmp_path)) as app:
        as_json = (await app.client.get(f"{BASE}/discovery.json")).json()
        as_xml = await app.client.get(f"{BASE}/discovery.xml")
    assert tuple(as_json) == SPEC_DISCOVERY
    [endpoint] = as_json["endpoints"]
    assert tuple(endpoint) == SPEC_ENDPOINT
    assert endpoint["url"] == "http://localhost/open311/v2"
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["formats"] == ["text/xml", "application/json"]
    root = xml_root(as_xml.content)
    assert root.tag == "discovery"
    assert [e.tag for e in root] == list(SPEC_DISCOVERY)
    formats = root.find("endpoints/endpoint/formats")
    assert [f.text for f in formats] == ["text/xml", "application/json"]
    assert all(f.tag == "format" for f in formats)


@pytest.mark.parametrize(
    ("key", "reason"),
    [(None, "api_key is missing"), ("wrong-key-000000", "invalid api_key")],
)
async def test_a_missing_or_wrong_key_is_refused_with_403_in_both_formats(
    tmp_path: Path, key: str | None, reason: str
) -> None:
    async with running(open311_settings(tmp_path)) as app:
        data = _form(api_key=key) if key else {k: v for k, v in _form().items() if k != "api_key"}
        as_json = await app.client.post(f"{BASE}/requests.json", data=data)
        as_xml = await app.client.post(f"{BASE}/requests.xml", data=data)
        listed = await app.client.get(f"{BASE}/requests.json")
    assert as_json.status_code == as_xml.status_code == 403
    [error] = as_json.json()
    assert tuple(error) == SPEC_ERROR
    assert error["code"] == 403
    assert reason in error["description"]
    [xml_error] = xml_records(as_xml.content, "errors", "error")
    assert tuple(xml_error) == SPEC_ERROR
    assert xml_error["code"] == "403"
    assert listed.json() == []  # nothing was filed


async def test_without_configured_keys_every_post_is_refused(tmp_path: Path) -> None:
    settings = open311_settings(tmp_path, open311={"api_keys": []})
    async with running(settings) as app:
        answer = await app.client.post(f"{BASE}/requests.json", data=_form())
    assert answer.status_code == 403
    assert "no API keys are configured" in answer.json()[0]["description"]


async def test_a_key_in_the_query_is_checked_before_the_body_is_read(tmp_path: Path) -> None:
    async with running(open311_settings(tmp_path)) as app:
        # a body that is not a form at all: a wrong key must be refused before it matters
        refused = await app.client.post(
            f"{BASE}/requests.json?api_key=wrong-key-000000",
            content=b"\x00" * 1000,
            headers={"content-type": "multipart/form-data; boundary=nothing"},
        )
        accepted = await app.client.post(
            f"{BASE}/requests.json?api_key={OTHER_KEY}",
            data={k: v for k, v in _form().items() if k != "api_key"},
        )
    assert refused.status_code == 403
    assert accepted.status_code == 200


async def test_a_request_becomes_a_routed_work_order(tmp_path: Path) -> None:
    async with running(open311_settings(tmp_path)) as app:
        answer = await app.client.post(
            f"{BASE}/requests.xml", data=_form(lat="31.2304", long="121.4737", account_id="a-7")
        )
        assert answer.status_code == 200, answer.text
        assert tags(answer.content, "service_requests", "request") == [SPEC_CREATED]
        [created] = xml_records(answer.content, "service_requests", "request")
        number = created["service_request_id"]
        assert number is not None
        assert number.startswith("WO-")
        assert created["account_id"] == "a-7"
        assert "消防安全组" in (created["service_notice"] or "")
        order = await app.ctx.dispatch.get(number)
    assert order.reporter == "open311:citizen@example.org"
    assert order.team == "fire"
    assert order.due_resolve_at is not None
    assert order.alarm_type == FIRE
    assert order.location == "A区 3号楼东侧"
    assert (order.latitude, order.longitude) == (31.2304, 121.4737)


async def test_a_request_reads_back_as_the_specification_shows(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 11, 29, 8, 0, tzinfo=UTC).timestamp())
    async with running(open311_settings(tmp_path), clock=clock) as app:
        number = await _file(app.client, address_string="", lat="31.5", long="121.25")
        as_json = (await app.client.get(f"{BASE}/requests/{number}.json")).json()
        as_xml = await app.client.get(f"{BASE}/requests/{number}.xml")
    [record] = as_json
    assert tuple(record) == SPEC_REQUEST
    assert record["service_request_id"] == number
    assert record["status"] == "open"
    assert record["status_notes"] is None
    assert record["service_code"] == record["service_name"] == FIRE
    assert record["requested_datetime"] == "2026-11-29T08:00:00Z"
    assert record["expected_datetime"] == "2026-11-30T08:00:00Z"  # the default's 24 h
    assert record["agency_responsible"] == "消防安全组"
    assert (record["lat"], record["long"]) == (31.5, 121.25)
    assert record["address"] == "31.5,121.25"
    assert record["media_url"] is None
    assert tags(as_xml.content, "service_requests", "request") == [SPEC_REQUEST]


async def test_status_maps_accepted_to_open_and_rejected_to_closed_with_notes(
    tmp_path: Path,
) -> None:
    async with running(open311_settings(tmp_path)) as app:
        accepted = await _file(app.client)
        rejected = await _file(app.client)
        closed = await _file(app.client)
        dispatch = app.ctx.dispatch
        await dispatch.accept(accepted, "lisi")
        await dispatch.reject(rejected, "zhaoliu", "a duplicate of an earlier report")
        await dispatch.accept(closed, "lisi")
        await dispatch.close(
            closed, by="lisi", close_image_key=None, verified=None, note="cleared", forced=False
        )
        listed = (await app.client.get(f"{BASE}/requests.json")).json()
        only_closed = (await app.client.get(f"{BASE}/requests.json?status=closed")).json()
    by_id = {r["service_request_id"]: r for r in listed}
    assert by_id[accepted]["status"] == "open"
    assert by_id[accepted]["status_notes"] == "Accepted: someone is working on it."
    assert by_id[rejected]["status"] == "closed"
    assert by_id[rejected]["status_notes"] == "a duplicate of an earlier report"
    assert by_id[closed]["status"] == "closed"
    assert by_id[closed]["status_notes"] == "cleared"
    assert {r["service_request_id"] for r in only_closed} == {rejected, closed}


async def test_listing_filters_and_pages(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 11, 1, tzinfo=UTC).timestamp())
    async with running(open311_settings(tmp_path), clock=clock) as app:
        old = await _file(app.client)
        clock.advance(20 * 86_400)  # 2026-11-21
        numbers = [await _file(app.client) for _ in range(4)]
        water = await _file(app.client, service_code="漏水")
        get = app.client.get
        recent = (await get(f"{BASE}/requests.json")).json()
        in_span = (
            await get(
                f"{BASE}/requests.json",
                params={"start_date": "2026-10-31T00:00:00Z", "end_date": "2026-11-02T00:00:00Z"},
            )
        ).json()
        leaks = (await get(f"{BASE}/requests.json", params={"service_code": "漏水"})).json()
        page2 = (await get(f"{BASE}/requests.json", params={"page": "2", "page_size": "2"})).json()
        picked = (
            await get(
                f"{BASE}/requests.json",
                params={"service_request_id": f"{old},{water}", "status": "closed"},
            )
        ).json()
        too_long = await get(
            f"{BASE}/requests.xml",
            params={"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-11-01T00:00:00+08:00"},
        )
        naive = await get(f"{BASE}/requests.json", params={"start_date": "2026-11-01T00:00:00"})
    assert [r["service_request_id"] for r in recent] == [water, *reversed(numbers), old]
    assert [r["service_request_id"] for r in in_span] == [old]
    assert [r["service_request_id"] for r in leaks] == [water]
    # newest first: page 1 is water and numbers[3]; page 2 the two before
    assert [r["service_request_id"] for r in page2] == [numbers[2], numbers[1]]
    # service_request_id overrides every other filter
    assert {r["service_request_id"] for r in picked} == {old, water}
    assert too_long.status_code == 400
    [error] = xml_records(too_long.content, "errors", "error")
    assert error["code"] == "400"
    assert "90 days" in (error["description"] or "")
    assert naive.status_code == 400
    assert "time zone" in naive.json()[0]["description"]


async def test_a_photo_is_served_by_a_signed_expiring_link_without_metadata(
    tmp_path: Path, clock: FakeClock
) -> None:
    original = photo_with_metadata()
    assert has_metadata(original)
    async with running(open311_settings(tmp_path), clock=clock) as app:
        answer = await app.client.post(
            f"{BASE}/requests.json",
            data=_form(),
            files={"media": ("scene.jpg", original, "image/jpeg")},
        )
        assert answer.status_code == 200, answer.text
        number = answer.json()[0]["service_request_id"]
        [record] = (await app.client.get(f"{BASE}/requests/{number}.json")).json()
        link = urlsplit(record["media_url"])
        assert link.path.startswith(f"{BASE}/media/img/")
        served = await app.client.get(f"{link.path}?{link.query}")
        tampered = await app.client.get(
            f"{link.path}?{link.query.replace('expires=', 'expires=9')}"
        )
        other = await app.client.get(f"{link.path.rsplit('/', 1)[0]}/{'0' * 64}.jpg?{link.query}")
        clock.advance(3601)
        expired = await app.client.get(f"{link.path}?{link.query}")
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/jpeg"
    assert served.content != original
    assert not has_metadata(served.content)
    for refused in (tampered, other, expired):
        assert refused.status_code == 403
    assert "expired" in expired.content.decode()


async def test_a_client_media_url_is_recorded_and_never_fetched(tmp_path: Path) -> None:
    # nothing listens on port 9: fetching it would fail; it must simply be recorded
    url = "http://127.0.0.1:9/photos/1.jpg"
    async with running(open311_settings(tmp_path)) as app:
        number = await _file(app.client, media_url=url, description="broken hydrant")
        [record] = (await app.client.get(f"{BASE}/requests/{number}.json")).json()
        order = await app.ctx.dispatch.get(number)
    assert record["media_url"] == url
    assert record["description"] == "broken hydrant"
    assert url in order.description  # staff see it on the order


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        ({"service_code": "pothole"}, 404, "service_code 'pothole' was not found"),
        ({"service_code": ""}, 400, "service_code was not provided"),
        ({"address_string": ""}, 400, "a location is required"),
        ({"lat": "31.2"}, 400, "lat and long must be sent together"),
        ({"lat": "91", "long": "0"}, 400, "within -90..90"),
        ({"description": "x" * 4001}, 400, "longer than 4000"),
        ({"media_url": "file:///etc/passwd"}, 400, "http or https URL"),
        ({"email": "not an email"}, 400, "not an email address"),
    ],
)
async def test_bad_requests_are_refused_in_the_specification_format(
    tmp_path: Path, fields: dict[str, str], status: int, words: str
) -> None:
    async with running(open311_settings(tmp_path)) as app:
        answer = await app.client.post(f"{BASE}/requests.json", data=_form(**fields))
        listed = (await app.client.get(f"{BASE}/requests.json")).json()
    assert answer.status_code == status
    [error] = answer.json()
    assert error["code"] == status
    assert words in error["description"]
    assert listed == []


async def test_unknown_requests_formats_and_bodies_answer_in_the_specification_format(
    tmp_path: Path,
) -> None:
    async with running(open311_settings(tmp_path)) as app:
        missing = await app.client.get(f"{BASE}/requests/WO-20000101-0001.json")
        unknown_format = await app.client.get(f"{BASE}/services.csv")
        unknown_path = await app.client.get(f"{BASE}/nothing.xml")
        as_json_body = await app.client.post(
            f"{BASE}/requests.json", json=_form(), headers={"content-type": "application/json"}
        )
        not_an_image = await app.client.post(
            f"{BASE}/requests.json",
            data=_form(),
            files={"media": ("x.jpg", b"not an image at all", "image/jpeg")},
        )
        listed = (await app.client.get(f"{BASE}/requests.json")).json()
    assert missing.status_code == 404
    assert missing.json()[0]["code"] == 404
    assert unknown_format.status_code == 404
    assert xml_records(unknown_format.content, "errors", "error")[0]["code"] == "404"
    assert unknown_path.status_code == 404
    assert xml_root(unknown_path.content).tag == "errors"
    assert as_json_body.status_code == 400
    assert "x-www-form-urlencoded" in as_json_body.json()[0]["description"]
    assert not_an_image.status_code == 400
    assert listed == []


async def test_text_is_escaped_in_xml_and_characters_xml_cannot_carry_are_dropped(
    tmp_path: Path,
) -> None:
    hostile = '</description><status>closed</status><x a="1">&amp; \x01\x1b]0;title\x07 ok'
    async with running(open311_settings(tmp_path)) as app:
        number = await _file(app.client, description=hostile, address_string="<A区> & 'B'")
        as_xml = await app.client.get(f"{BASE}/requests/{number}.xml")
        as_json = (await app.client.get(f"{BASE}/requests/{number}.json")).json()
    [record] = xml_records(as_xml.content, "service_requests", "request")
    assert record["status"] == "open"
    assert (
        record["description"] == '</description><status>closed</status><x a="1">&amp; ]0;title ok'
    )
    assert record["address"] == "<A区> & 'B'"
    assert json.loads(json.dumps(as_json))[0]["description"] == hostile


async def test_a_retry_with_the_same_idempotency_key_files_nothing_twice(tmp_path: Path) -> None:
    retry = {"Idempotency-Key": "client-retry-42"}
    async with running(open311_settings(tmp_path)) as app:
        post = app.client.post
        first = await post(f"{BASE}/requests.json", data=_form(), headers=retry)
        again = await post(f"{BASE}/requests.json", data=_form(), headers=retry)
        # another client (another key) may use the same Idempotency-Key for its own request
        other = await post(f"{BASE}/requests.json", data=_form(api_key=OTHER_KEY), headers=retry)
        bad = await post(
            f"{BASE}/requests.json", data=_form(), headers={"Idempotency-Key": "no spaces"}
        )
        listed = (await app.client.get(f"{BASE}/requests.json")).json()
    assert first.status_code == again.status_code == other.status_code == 200
    assert again.content == first.content
    assert other.json()[0]["service_request_id"] != first.json()[0]["service_request_id"]
    assert bad.status_code == 400
    assert len(listed) == 2


async def test_updated_datetime_is_the_last_change_rejection_included(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 11, 29, 8, 0, tzinfo=UTC).timestamp())
    async with running(open311_settings(tmp_path), clock=clock) as app:
        untouched = await _file(app.client)
        rejected = await _file(app.client)
        clock.advance(3600)
        await app.ctx.dispatch.reject(rejected, "zhaoliu", "out of scope")
        listed = (await app.client.get(f"{BASE}/requests.json")).json()
        [one] = (await app.client.get(f"{BASE}/requests/{rejected}.json")).json()
    by_id = {r["service_request_id"]: r for r in listed}
    assert by_id[untouched]["updated_datetime"] == "2026-11-29T08:00:00Z"
    assert by_id[rejected]["updated_datetime"] == "2026-11-29T09:00:00Z"
    assert one["updated_datetime"] == "2026-11-29T09:00:00Z"


@pytest.mark.parametrize(
    "params",
    [
        {"page_size": "1001"},
        {"page": "0"},
        {"page": "x"},
        {"status": "pending"},
        {"service_request_id": ",".join(f"WO-20261129-{i:04d}" for i in range(201))},
        {"start_date": "yesterday"},
        {"start_date": "2026-11-02T00:00:00Z", "end_date": "2026-11-01T00:00:00Z"},
    ],
)
async def test_listing_parameters_are_bounded(tmp_path: Path, params: dict[str, str]) -> None:
    async with running(open311_settings(tmp_path)) as app:
        answer = await app.client.get(f"{BASE}/requests.xml", params=params)
    assert answer.status_code == 400
    [error] = xml_records(answer.content, "errors", "error")
    assert error["code"] == "400"


async def test_a_form_with_too_many_fields_is_refused(tmp_path: Path) -> None:
    fields = {**_form(), **{f"attribute[a{i}]": "x" for i in range(64)}}
    async with running(open311_settings(tmp_path)) as app:
        answer = await app.client.post(f"{BASE}/requests.json", data=fields)
        listed = (await app.client.get(f"{BASE}/requests.json")).json()
    assert answer.status_code == 400
    assert "Too many fields" in answer.json()[0]["description"]
    assert listed == []
