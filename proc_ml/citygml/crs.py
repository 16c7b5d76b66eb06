"""Coordinate reference systems: parse a CRS name, refuse geographic / unknown ones.

proc-ml grids are in metres with z up, so a building is imported only when its
coordinates are projected metres. Without a CRS database (pyproj would add ~30 MB for one
yes/no question) the rule is:

1. the CRS name must give an EPSG code: ``EPSG:32632``, ``urn:ogc:def:crs:EPSG::25832``,
   ``urn:ogc:def:crs,crs:EPSG::25832,crs:EPSG::5783`` (compound: the first, horizontal,
   code), ``http://www.opengis.net/def/crs/EPSG/0/7415``, ``EPSG:25832+5783``, the old
   GML form ``http://www.opengis.net/gml/srs/epsg.xml#25832``, or the German AdV names
   ``urn:adv:crs:ETRS89_UTM32*DE_DHHN2016_NH`` / ``DE_DHDN_3GK3*...``;
   no name, or one that gives no code, is "unknown" and refused (a caller who knows the
   CRS passes ``crs=`` to the reader);
2. a code from the list of geographic / geocentric CRSs used for city models (WGS 84,
   ETRS89, NAD83, GDA, JGD2011 -- Japan's PLATEAU CityGML --, CGCS2000, ...) is refused, and
   so is Web Mercator (EPSG:3857 and its aliases 900913, 3785, ESRI 102100 / 102113): it is
   projected, but a metre of it is 1 / cos(latitude) metres on the ground (1.6 at 50 N),
   so buildings would come out too big;
3. whatever the name says, a building whose x/y look like degrees (longitude and latitude
   in either order: |x| <= 180 and |y| <= 90, or |x| <= 90 and |y| <= 180, and a horizontal
   extent under 0.01 units while it is more than 1 unit tall) is refused.
"""

from __future__ import annotations

import re

import numpy as np

from .model import short

# Geographic 2D/3D and geocentric EPSG codes that city-model files actually use.
GEOGRAPHIC_EPSG = frozenset({
    4326, 4979, 4978, 4258, 4937, 4936, 4269, 4617, 4283, 4938, 4939, 7843, 7844, 7842,
    4612, 6668, 6697, 6667, 4490, 4479, 4480, 4167, 4171, 4230, 4314, 4019, 4047, 4030,
    4322, 4277, 4289, 4275, 4149, 4150, 4151, 4152, 4203, 4202, 4618, 4674, 4686, 9000,
    9057, 4988, 4989, 7789, 7912, 7931, 7930, 4896,
})

# Web Mercator ("Pseudo-Mercator") and its old / ESRI aliases: not metres on the ground.
WEB_MERCATOR_EPSG = frozenset({3857, 900913, 3785, 102100, 102113})

_EPSG_PATTERNS = (
    re.compile(r"epsg\.xml#(\d+)", re.I),                 # .../gml/srs/epsg.xml#25832 (GML 2)
    re.compile(r"EPSG/[^/]+/(\d+)", re.I),                 # http://www.opengis.net/def/crs/EPSG/0/7415
    re.compile(r"EPSG:[0-9.]*:(\d+)", re.I),               # urn:ogc:def:crs:EPSG::25832, EPSG:6.12:31467
    re.compile(r"EPSG:(\d+)", re.I),                       # EPSG:32632, EPSG:25832+5783
)
_ADV_UTM = re.compile(r"ETRS89_UTM(\d{2})", re.I)          # urn:adv:crs:ETRS89_UTM32*DE_DHHN92_NH
_ADV_GK = re.compile(r"DE_DHDN_3GK(\d)", re.I)              # urn:adv:crs:DE_DHDN_3GK3*DE_DHHN92_NH
_GEOGRAPHIC_NAMES = re.compile(r"CRS84|WGS\s*84(?!.*UTM)|ETRS89_(LAT|LON|h)\b", re.I)
_WEB_MERCATOR_NAMES = re.compile(r"pseudo[\s_-]*mercator|web[\s_-]*mercator|"
                                 r"ESRI:+(102100|102113)\b", re.I)


def parse_epsg(name: str | None) -> int | None:
    """The EPSG code a CRS name gives (the horizontal one of a compound CRS), else None."""
    if not name:
        return None
    for pattern in _EPSG_PATTERNS:
        m = pattern.search(name)
        if m:
            return int(m.group(1))
    m = _ADV_UTM.search(name)
    if m:
        return 25800 + int(m.group(1))
    m = _ADV_GK.search(name)
    if m:
        return 31464 + int(m.group(1))
    return None


def crs_problem(name: str | None, epsg: int | None) -> str | None:
    """Why a CRS cannot be used (one phrase), or None when it is a projected CRS."""
    if not name:
        return ("no CRS (no srsName / referenceSystem); pass --crs EPSG:... (crs= in Python) if "
                "you know it")
    if _WEB_MERCATOR_NAMES.search(name) or (epsg is not None and epsg in WEB_MERCATOR_EPSG):
        return (f"Web Mercator CRS '{short(name)}': its units are not metres on the ground "
                f"(~1.6 m per unit at 50 deg N); reproject to a projected metric CRS (e.g. the "
                f"local UTM zone) first")
    if _GEOGRAPHIC_NAMES.search(name) or (epsg is not None and epsg in GEOGRAPHIC_EPSG):
        return (f"geographic or geocentric CRS '{short(name)}' (degrees); reproject to a projected "
                f"CRS in metres first")
    if epsg is None:
        return (f"unknown CRS '{short(name)}' (no EPSG code); pass --crs EPSG:... (crs= in "
                f"Python) if you know it")
    return None


def looks_geographic(points: np.ndarray) -> bool:
    """x/y that look like degrees (either axis order): within +-180 / +-90, a tiny horizontal
    extent, tall."""
    if len(points) == 0:
        return False
    lo, hi = points.min(axis=0), points.max(axis=0)
    x, y = np.abs(points[:, 0]), np.abs(points[:, 1])
    # longitude first (GeoJSON, most GIS exports) or latitude first (EPSG axis order: JGD2011
    # in Japan's PLATEAU CityGML, ETRS89 / WGS 84 in GML 3.2)
    in_range = bool((np.all(x <= 180) and np.all(y <= 90)) or (np.all(x <= 90) and np.all(y <= 180)))
    return bool(in_range and max(hi[0] - lo[0], hi[1] - lo[1]) < 0.01 and hi[2] - lo[2] > 1.0)
