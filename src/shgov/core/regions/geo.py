"""Coordinates: WGS-84 / CGCS2000 internally; GCJ-02 and BD-09 converted on the way in.

SH-GOV stores and indexes every point in WGS-84 (GPS, EXIF and the district polygons, which are in
CGCS2000 — within a metre or so of WGS-84). Maps and apps used in mainland China (Amap, Tencent,
WeChat) report GCJ-02, which is offset by a few hundred metres; Baidu reports BD-09. Callers say which
system a point is in and it is converted to WGS-84 first. GCJ-02 → WGS-84 has no closed form: it is
inverted by fixed-point iteration to well under a centimetre.
"""

from __future__ import annotations

import math
from enum import StrEnum

from shgov.core.errors import InvalidError
from shgov.core.i18n import N_

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by GCJ-02
_EE = 0.00669342162296594323  # its first eccentricity squared
_BD = math.pi * 3000.0 / 180.0


class CRS(StrEnum):
    """Coordinate systems accepted from callers."""

    WGS84 = "wgs84"
    GCJ02 = "gcj02"
    BD09 = "bd09"


class CoordinateError(InvalidError, ValueError):
    """A coordinate pair is unusable; ``field`` names the culprit (``lng``, ``lat`` or ``point``)."""


def check_pair(lng: float, lat: float) -> None:
    """Refuse NaN, infinities and values outside the ranges of longitude and latitude."""
    for name, value in (("lng", lng), ("lat", lat)):
        if not math.isfinite(value):
            raise CoordinateError(N_("{name} must be a finite number, got {value}"), field=name, name=name, value=value)
    if not -180.0 <= lng <= 180.0:
        raise CoordinateError(N_("longitude {lng} is outside [-180, 180]"), field="lng", lng=lng)
    if not -90.0 <= lat <= 90.0:
        if -90.0 <= lng <= 90.0:
            raise CoordinateError(
                N_("latitude {lat} is outside [-90, 90] — latitude and longitude look swapped"), field="lat", lat=lat
            )
        raise CoordinateError(N_("latitude {lat} is outside [-90, 90]"), field="lat", lat=lat)


def _outside_china(lng: float, lat: float) -> bool:
    return not (72.004 <= lng <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _shift_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _shift_lng(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def wgs84_to_gcj02(lng: float, lat: float) -> tuple[float, float]:
    """Apply the GCJ-02 offset (points outside China are returned unchanged)."""
    if _outside_china(lng, lat):
        return lng, lat
    d_lat = _shift_lat(lng - 105.0, lat - 35.0)
    d_lng = _shift_lng(lng - 105.0, lat - 35.0)
    rad = lat / 180.0 * math.pi
    magic = 1 - _EE * math.sin(rad) ** 2
    sqrt_magic = math.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * math.pi)
    d_lng = (d_lng * 180.0) / (_A / sqrt_magic * math.cos(rad) * math.pi)
    return lng + d_lng, lat + d_lat


def gcj02_to_wgs84(lng: float, lat: float) -> tuple[float, float]:
    """Invert the GCJ-02 offset by iteration (error < 1e-9 degrees)."""
    if _outside_china(lng, lat):
        return lng, lat
    w_lng, w_lat = lng, lat
    for _ in range(30):
        g_lng, g_lat = wgs84_to_gcj02(w_lng, w_lat)
        d_lng, d_lat = g_lng - lng, g_lat - lat
        w_lng, w_lat = w_lng - d_lng, w_lat - d_lat
        if abs(d_lng) < 1e-10 and abs(d_lat) < 1e-10:
            break
    return w_lng, w_lat


def bd09_to_gcj02(lng: float, lat: float) -> tuple[float, float]:
    """Baidu's BD-09 to GCJ-02."""
    x, y = lng - 0.0065, lat - 0.006
    z = math.sqrt(x * x + y * y) - 0.00002 * math.sin(y * _BD)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _BD)
    return z * math.cos(theta), z * math.sin(theta)


def gcj02_to_bd09(lng: float, lat: float) -> tuple[float, float]:
    """GCJ-02 to Baidu's BD-09."""
    z = math.sqrt(lng * lng + lat * lat) + 0.00002 * math.sin(lat * _BD)
    theta = math.atan2(lat, lng) + 0.000003 * math.cos(lng * _BD)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def to_wgs84(lng: float, lat: float, crs: CRS = CRS.WGS84) -> tuple[float, float]:
    """Check a pair and convert it to WGS-84."""
    check_pair(lng, lat)
    if crs is CRS.GCJ02:
        return gcj02_to_wgs84(lng, lat)
    if crs is CRS.BD09:
        return gcj02_to_wgs84(*bd09_to_gcj02(lng, lat))
    return lng, lat


def distance_m(lng1: float, lat1: float, lng2: float, lat2: float) -> float:
    """Great-circle distance in metres (haversine on a 6,371 km sphere)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(h))
