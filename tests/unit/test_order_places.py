"""Folded location text and distances for the duplicate search."""

from __future__ import annotations

import math

import pytest

from snapreport.orders.places import (
    EARTH_RADIUS_M,
    MAX_KEY_CHARS,
    Box,
    distance_m,
    location_key,
)


@pytest.mark.parametrize(
    ("typed", "other"),
    [
        ("3号楼东侧楼梯间", "３号楼 东侧楼梯间。"),
        ("A区 北门", "a区北门!"),
        ("Building 3, east stairs", "building3 EAST-stairs"),
        ("B区（车库）", "B区车库"),
    ],
)
def test_the_same_place_typed_differently_folds_to_one_key(typed: str, other: str) -> None:
    assert location_key(typed) == location_key(other)
    assert location_key(typed)


def test_different_places_keep_different_keys() -> None:
    assert location_key("3号楼东侧") != location_key("4号楼东侧")
    assert location_key("。，！ ") == ""
    assert len(location_key("楼" * 500)) == MAX_KEY_CHARS


def test_distances_are_great_circle_metres() -> None:
    assert distance_m(31.2304, 121.4737, 31.2304, 121.4737) == 0.0
    # a thousandth of a degree of latitude is about 111 m anywhere
    assert distance_m(31.2304, 121.4737, 31.2314, 121.4737) == pytest.approx(111.2, abs=0.5)
    # Shanghai to Beijing, about 1,067 km
    assert distance_m(31.2304, 121.4737, 39.9042, 116.4074) == pytest.approx(1_067_000, rel=0.01)


@pytest.mark.parametrize(
    ("latitude", "longitude"), [(31.2304, 121.4737), (-33.87, 151.21), (0.0, 179.9999)]
)
def test_the_box_holds_points_just_within_the_radius(latitude: float, longitude: float) -> None:
    box = Box.around(latitude, longitude, 50.0)
    dlat = math.degrees(49.9 / EARTH_RADIUS_M)
    dlon = dlat / math.cos(math.radians(latitude))
    for lat, lon in (
        (latitude + dlat, longitude),
        (latitude - dlat, longitude),
        (latitude, longitude + dlon),
        (latitude, longitude - dlon),
    ):
        assert distance_m(latitude, longitude, lat, lon) < 50.0
        assert box.south <= lat <= box.north
        assert box.wraps() or box.west <= lon <= box.east
    assert Box.around(0.0, 179.9999, 50.0).wraps()
    assert not Box.around(31.2304, 121.4737, 50.0).wraps()


def test_near_a_pole_the_box_spans_every_longitude() -> None:
    box = Box.around(89.99999999, 10.0, 50.0)
    assert (box.north, box.east - box.west) == (90.0, 360.0)
