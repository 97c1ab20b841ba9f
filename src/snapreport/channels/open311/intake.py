"""A POSTed service request (form-encoded or multipart) checked and turned into a report.

Empty fields count as absent (the specification's "optional arguments"). A location is
``lat`` + ``long`` (both, WGS84) or ``address_string``; the order's location text is the
address, else ``"lat,long"`` as for a chat location. The reporter is ``open311:<email>``
(lower-cased), else ``open311:<device_id>``, ``open311:<account_id>``, or
``open311:anonymous``. A ``media_url`` is recorded as the description's last line, never
fetched. ``first_name``, ``last_name`` and ``phone`` are checked for size and not kept;
``jurisdiction_id`` and ``attribute[...]`` are ignored (one jurisdiction, no service
metadata).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final

from starlette.datastructures import FormData, UploadFile

from snapreport.channels.open311.views import MEDIA_URL_LINE
from snapreport.errors import InvalidInput, UnknownService
from snapreport.orders.base import MessageKey, NewReport

MAX_DESCRIPTION_CHARS: Final = 4000  # the specification's limit
MAX_ADDRESS_CHARS: Final = 500
MAX_NAME_CHARS: Final = 100
MAX_ID_CHARS: Final = 100
MAX_MEDIA_URL_CHARS: Final = 2048
SOURCE: Final = "open311"
REPORTER_PREFIX: Final = "open311:"
_IDENTIFIER: Final = re.compile(r"[^\s\x00-\x1f\x7f]{1,100}")
_EMAIL: Final = re.compile(r"[^\s@\x00-\x1f\x7f]{1,64}@[^\s@\x00-\x1f\x7f]{1,50}")
_URL: Final = re.compile(r"https?://[^\s\x00-\x1f\x7f]+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Submission:
    """A checked request: what becomes the order, and its photo (not yet read)."""

    service_code: str
    location: str
    latitude: float | None
    longitude: float | None
    description: str
    reporter: str
    account_id: str | None
    media: UploadFile | None

    def report(self, image_key: str | None, message: MessageKey | None = None) -> NewReport:
        return NewReport(
            reporter=self.reporter,
            alarm_type=self.service_code,
            location=self.location,
            description=self.description,
            image_key=image_key,
            source=SOURCE,
            latitude=self.latitude,
            longitude=self.longitude,
            message=message,
        )


def text(form: FormData, name: str, limit: int) -> str | None:
    """The field ``name``, trimmed; None when absent or empty; refused when too long."""
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a text field, not a file")
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(f"{name} is longer than {limit} characters")
    return value or None


def parse(form: FormData, catalog: tuple[str, ...]) -> Submission:
    """Check a POSTed request against the specification and ``catalog`` (the service codes)."""
    service_code = text(form, "service_code", 64)
    if service_code is None:
        raise InvalidInput("service_code was not provided")
    if service_code not in catalog:
        raise UnknownService(f"service_code {service_code!r} was not found (see services.xml)")
    latitude, longitude = _coordinates(form)
    address = text(form, "address_string", MAX_ADDRESS_CHARS)
    if address is None and latitude is None:
        raise InvalidInput("a location is required: lat and long, or address_string")
    location = address or f"{latitude},{longitude}"
    description = text(form, "description", MAX_DESCRIPTION_CHARS) or ""
    media_url = text(form, "media_url", MAX_MEDIA_URL_CHARS)
    if media_url is not None:
        if not _URL.fullmatch(media_url):
            raise InvalidInput("media_url must be an http or https URL")
        description = f"{description}\n\n{MEDIA_URL_LINE}{media_url}".lstrip("\n")
    for name in ("first_name", "last_name", "phone"):
        text(form, name, MAX_NAME_CHARS)
    account_id = _identifier(form, "account_id")
    media = form.get("media")
    if media is not None and not isinstance(media, UploadFile):
        raise InvalidInput("media must be a file (multipart/form-data)")
    return Submission(
        service_code=service_code,
        location=location,
        latitude=latitude,
        longitude=longitude,
        description=description,
        reporter=REPORTER_PREFIX + _reporter(form, account_id),
        account_id=account_id,
        media=media,
    )


def _coordinates(form: FormData) -> tuple[float | None, float | None]:
    lat, long = text(form, "lat", 32), text(form, "long", 32)
    if lat is None and long is None:
        return None, None
    if lat is None or long is None:
        raise InvalidInput("lat and long must be sent together")
    try:
        latitude, longitude = float(lat), float(long)
    except ValueError:
        raise InvalidInput("lat and long must be decimal degrees (WGS84)") from None
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        raise InvalidInput("lat and long must be finite numbers")
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise InvalidInput("lat must be within -90..90 and long within -180..180")
    return latitude, longitude


def _identifier(form: FormData, name: str) -> str | None:
    value = text(form, name, MAX_ID_CHARS)
    if value is not None and not _IDENTIFIER.fullmatch(value):
        raise InvalidInput(f"{name} must be printable characters without spaces")
    return value


def _reporter(form: FormData, account_id: str | None) -> str:
    email = text(form, "email", 115)
    if email is not None:
        if not _EMAIL.fullmatch(email):
            raise InvalidInput("email is not an email address")
        return email.lower()
    return _identifier(form, "device_id") or account_id or "anonymous"
