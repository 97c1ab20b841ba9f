"""Where a report is: the folded location text two reports are compared by, and distances.

``location_key`` folds what people type differently for the same place: NFKC (full-width
letters, digits and punctuation become plain ones), case, and every space, punctuation mark and
control character dropped, so "３号楼 东侧。" and "3号楼东侧" are one place. Distances are
great-circle distances on a sphere of the Earth's mean radius (haversine), good to well under a
metre at the 50 m the duplicate search asks about.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from typing import Final

EARTH_RADIUS_M: Final = 6_371_008.8
MAX_KEY_CHARS: Final = 200
_DROPPED: Final = ("P", "Z", "C")  # punctuation, separators (spaces), control and format


def location_key(text: str) -> str:
    """``text`` folded for comparison (see module doc); "" when nothing is left."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(ch for ch in folded if not unicodedata.category(ch).startswith(_DROPPED))
    return kept[:MAX_KEY_CHARS]


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The great-circle distance between two points, in metres (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True, slots=True)
class Box:
    """A latitude/longitude box that holds every point within some distance of a centre (and
    a little more): what an index narrows to before the exact distance is computed."""

    south: float
    north: float
    west: float
    east: float

    @classmethod
    def around(cls, latitude: float, longitude: float, radius_m: float) -> Box:
        dlat = math.degrees(radius_m / EARTH_RADIUS_M)
        cos_lat = math.cos(math.radians(latitude))
        # near a pole every longitude is close: the box spans them all
        dlon = 180.0 if cos_lat < 1e-6 else min(180.0, dlat / cos_lat)
        return cls(
            south=max(-90.0, latitude - dlat),
            north=min(90.0, latitude + dlat),
            west=longitude - dlon,
            east=longitude + dlon,
        )

    def wraps(self) -> bool:
        """Whether the box crosses the antimeridian (±180° longitude)."""
        return self.west < -180.0 or self.east > 180.0
