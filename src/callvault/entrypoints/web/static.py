"""Static files of the web UI, served by the application itself.

The files are read once at start-up into memory and served by exact name
only (no paths from the request reach the file system).  URLs carry a short
content hash (``/static/app.css?v=1a2b3c4d``), so responses may be cached for
a year and a new release is fetched at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request, Response
from starlette.exceptions import HTTPException

STATIC_DIR = Path(__file__).parent / "static"
LONG_CACHE = "public, max-age=31536000, immutable"
_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".ico": "image/x-icon",
}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str
    version: str  # the first 8 hex of the SHA-256


def _load() -> dict[str, StaticFile]:
    files: dict[str, StaticFile] = {}
    for path in sorted(STATIC_DIR.rglob("*")):
        media_type = _TYPES.get(path.suffix)
        if not path.is_file() or media_type is None:
            continue
        body = path.read_bytes()
        name = path.relative_to(STATIC_DIR).as_posix()
        files[name] = StaticFile(body, media_type, hashlib.sha256(body).hexdigest()[:8])
    return files


FILES = _load()


def url(name: str) -> str:
    """The versioned URL of a static file; an unknown name is a programming error."""
    return f"/static/{name}?v={FILES[name].version}"


router = APIRouter(include_in_schema=False)


@router.get("/static/{name:path}")
def static_file(name: str, request: Request) -> Response:
    found = FILES.get(name)
    if found is None:
        raise HTTPException(status_code=404)  # the API's own 404 shape, nothing echoed
    etag = f'"{found.version}"'
    headers = {"cache-control": LONG_CACHE, "etag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)
