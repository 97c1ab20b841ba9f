"""Open311 under faults: the orders database going away and coming back (the refusal is the
specification's error with a 503, nothing half-filed is left, and the client's retry with the
same Idempotency-Key files exactly one order), and two workers sharing one deployment (a
request retried at both is filed once; a photo link made by one works on the other)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

from tests.harness.postgres_server import fresh_database, start_postgres
from tests.integration.http_kit import jpeg_bytes, running
from tests.integration.open311_kit import API_KEY, open311_settings, xml_records

BASE = "/open311/v2"


async def test_a_database_outage_answers_503_and_the_retry_files_once(tmp_path: Path) -> None:
    server = await asyncio.to_thread(start_postgres)
    try:
        async with fresh_database(server.admin_url) as url:
            settings = open311_settings(tmp_path, orders={"url": url})
            form = {"api_key": API_KEY, "service_code": "漏水", "address_string": "B区 车库"}
            retry = {"Idempotency-Key": "outage-1"}
            async with running(settings) as app:
                post = app.client.post
                await asyncio.to_thread(server.stop)
                down = await post(f"{BASE}/requests.json", data=form, headers=retry)
                await asyncio.to_thread(server.start)
                up = await post(f"{BASE}/requests.json", data=form, headers=retry)
                again = await post(f"{BASE}/requests.json", data=form, headers=retry)
                listed = (await app.client.get(f"{BASE}/requests.json")).json()
    finally:
        await asyncio.to_thread(server.destroy)
    assert down.status_code == 503
    [error] = down.json()
    assert error["code"] == 503
    assert "unavailable" in error["description"]
    assert str(server.port) not in error["description"]  # no host or port shown
    assert up.status_code == 200
    assert again.content == up.content
    assert [r["service_request_id"] for r in listed] == [up.json()[0]["service_request_id"]]


async def test_two_workers_file_a_retried_request_once_and_serve_each_others_links(
    tmp_path: Path,
) -> None:
    # two app instances on one machine: sessions and the key-value store in SQLite, one
    # orders database, one photo directory, one media secret
    settings = open311_settings(
        tmp_path, session={"backend": "sqlite", "url": str(tmp_path / "sessions.db")}
    )
    form = {"api_key": API_KEY, "service_code": "漏水", "address_string": "B区 车库"}
    photo = ("leak.jpg", jpeg_bytes(), "image/jpeg")
    retry = {"Idempotency-Key": "both-workers"}
    async with running(settings) as one, running(settings) as two:
        answers = await asyncio.gather(
            *(
                app.client.post(
                    f"{BASE}/requests.json", data=form, files={"media": photo}, headers=retry
                )
                for app in (one, two, one, two)
            )
        )
        [record] = (await one.client.get(f"{BASE}/requests.json")).json()
        link = urlsplit(record["media_url"])
        served = await two.client.get(f"{link.path}?{link.query}")
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    assert record["service_request_id"] == answers[0].json()[0]["service_request_id"]
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/jpeg"


async def test_a_retry_whose_first_answer_was_lost_gets_the_same_order_from_the_database(
    tmp_path: Path,
) -> None:
    # the first process filed the request and died: its key-value store (memory) and the
    # answer kept there are gone; the retry reaches another process on the same database
    settings = open311_settings(tmp_path)
    form = {"api_key": API_KEY, "service_code": "漏水", "address_string": "B区 车库"}
    photo = ("leak.jpg", jpeg_bytes(), "image/jpeg")
    retry = {"Idempotency-Key": "lost-answer-7"}
    async with running(settings) as first:
        filed = await first.client.post(
            f"{BASE}/requests.json", data=form, files={"media": photo}, headers=retry
        )
    photos_after_first = _files(tmp_path / "media")
    async with running(settings) as second:
        again = await second.client.post(
            f"{BASE}/requests.xml", data=form, files={"media": photo}, headers=retry
        )
        fresh = await second.client.post(
            f"{BASE}/requests.json", data=form, headers={"Idempotency-Key": "another-one"}
        )
        listed = (await second.client.get(f"{BASE}/requests.json")).json()
    assert filed.status_code == again.status_code == fresh.status_code == 200
    number = filed.json()[0]["service_request_id"]
    [record] = xml_records(again.content, "service_requests", "request")
    assert record["service_request_id"] == number
    assert fresh.json()[0]["service_request_id"] != number
    assert sorted(r["service_request_id"] for r in listed) == sorted(
        [number, fresh.json()[0]["service_request_id"]]
    )
    assert photos_after_first  # the first request's photo was stored...
    assert _files(tmp_path / "media") == photos_after_first  # ...and the retry's was not


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())
