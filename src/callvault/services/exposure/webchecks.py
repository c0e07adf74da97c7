"""Checks of a web server that need no crawl: transport, banners, guessable paths.

Old banners: a product series its makers stopped supporting years ago
(Apache httpd before 2.4, nginx before 1.16, lighttpd before 1.4.50, IIS
before 10).  Distributions backport fixes, so an old number is a strong hint,
not proof; a version in the banner at all is only noted.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from callvault.services.exposure.model import HIGH, MEDIUM, TargetResult

#: Ports where clients expect TLS; plain HTTP there is what the 1177 archive did.
TLS_PORTS = frozenset({443, 4443, 8443, 9443, 10443})

_BANNER = re.compile(
    r"(Apache|nginx|lighttpd|Microsoft-IIS|SimpleHTTP|BaseHTTP)/([0-9]+(?:\.[0-9]+)*)", re.ASCII
)
_OLDEST_SUPPORTED = {
    "Apache": (2, 4),
    "nginx": (1, 16),
    "lighttpd": (1, 4, 50),
    "Microsoft-IIS": (10,),
}
OLD_BANNER = "old-server-banner"


def check_banners(result: TargetResult, headers: Mapping[str, str], footer: str = "") -> None:
    """Old server versions in ``Server``/``X-Powered-By`` or a listing's footer."""
    texts = [headers.get("server", ""), headers.get("x-powered-by", ""), footer]
    for product, version in _BANNER.findall(" ".join(t for t in texts if t)):
        shown = f"{product}/{version}"
        numbers = tuple(int(n) for n in version.split("."))
        oldest = _OLDEST_SUPPORTED.get(product)
        if oldest is not None and numbers < oldest:
            if shown not in _examples(result, OLD_BANNER):
                result.add(OLD_BANNER, MEDIUM, "server software past its end of support", shown)
        elif product in ("SimpleHTTP", "BaseHTTP"):
            result.note(f"a development web server answers ({shown})")
        else:
            result.note(f"the server names its version ({shown})")


def _examples(result: TargetResult, code: str) -> list[str]:
    return next((f.examples for f in result.findings if f.code == code), [])


def check_tls_version(result: TargetResult, version: str | None) -> None:
    """TLS 1.0 and 1.1 are retired (RFC 8996); a server that still agrees to them is old."""
    if version is not None:
        result.add("old-tls", MEDIUM, "the server agrees to a retired TLS version", version)


def check_transport(result: TargetResult, scheme: str, port: int) -> None:
    """Plain HTTP on a port where clients expect TLS."""
    if scheme == "http" and port in TLS_PORTS:
        result.add(
            "plain-http-on-tls-port",
            HIGH,
            "plain HTTP (no TLS) on a port clients expect to be encrypted",
            f"port {port}",
        )


_YEAR = re.compile(r"(19|20)[0-9]{2}", re.ASCII)
_DATE = re.compile(r"(19|20)[0-9]{2}-?(0[1-9]|1[0-2])-?(0[1-9]|[12][0-9]|3[01])", re.ASCII)


def layout_of(folder_name: str) -> str | None:
    """``"year_folders"`` or ``"date_folders"`` for names recorders give their folders."""
    if _YEAR.fullmatch(folder_name):
        return "year_folders"
    if _DATE.fullmatch(folder_name):
        return "date_folders"
    return None


def recorder_paths(today: dt.date) -> list[str]:
    """Folders where call recorders and their web front ends keep recordings."""
    days = [today, today - dt.timedelta(days=1)]
    paths = [
        "orkweb/stream/",
        "orkweb/",
        "orkaudio/",
        "recordings/",
        "recording/",
        "records/",
        "calls/",
        "audio/",
        "voice/",
        "voicelogs/",
        "archive/",
        f"{today.year}/",
        f"recordings/{today.year}/",
    ]
    for day in days:
        paths += [
            f"{day:%Y}/{day:%m}/{day:%d}/",
            f"{day:%Y-%m-%d}/",
            f"{day:%Y%m%d}/",
        ]
    return paths
