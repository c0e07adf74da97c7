"""``GET /api/v1/recordings/{recording_id}/audio``: the hot path of playback, in plain ASGI.

A player asks for a range every few seconds and a seek brings bursts; this
one route carries nearly all of the service's requests.  It is a plain
Starlette route with an ASGI endpoint, not a FastAPI route: there is no
body to validate and no model to serialise, and FastAPI's dependency
resolution and thread hops cost more than the vault's own work for a
64 KiB range (see docs/benchmarks.md).  Everything else is as for every
route: the same middleware (security headers, request log, body limit), the
same error handlers, and one service call that resolves the principal and
decides (``playback.audio_request``).

One hop to a worker thread does the service call and, for a range of up to
:data:`WHOLE_BODY` bytes (what players ask for), reads the whole answer, so
nothing blocking runs on the event loop and nothing else leaves it.
"""

from __future__ import annotations

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from callvault.core.access import Principal
from callvault.entrypoints.http import deps
from callvault.entrypoints.http.middleware import PRINCIPAL_STATE
from callvault.services import playback

PATH = "/api/v1/recordings/{recording_id}/audio"
# Ranges up to this size are read whole in the worker thread and sent in one piece.
WHOLE_BODY = 1024 * 1024


def route() -> Route:
    return _AudioRoute(PATH, AudioEndpoint(), methods=["GET"], name="play_audio")


class _AudioRoute(Route):
    """A Starlette route that, like FastAPI's, names itself in the scope, where the
    request log reads the path *template* (never the raw path)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child


class AudioEndpoint:
    """The audio under an open playback grant; single and suffix byte ranges (206/416).

    HEAD (which Starlette routes here with GET) is checked the same way and
    answers the same headers; the server sends no body.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        vault = deps.vault(request)
        headers = Headers(scope=scope)
        ranges = headers.getlist("range")
        header = ",".join(ranges) if ranges else None
        recording_id = str(scope["path_params"]["recording_id"])
        client = scope.get("client")

        def serve() -> tuple[Principal, playback.AudioStream, bytes | None]:
            principal, stream = playback.audio_request(
                vault,
                recording_id,
                header,
                session_token=request.cookies.get(deps.SESSION_COOKIE),
                authorization=headers.get("authorization"),
                client=client[0] if client else None,
            )
            body = b"".join(stream.chunks) if stream.length <= WHOLE_BODY else None
            return principal, stream, body

        principal, stream, body = await anyio.to_thread.run_sync(serve)
        # The request log line names the session (never the user).
        scope.setdefault("state", {})[PRINCIPAL_STATE] = principal
        response: Response
        if body is None:
            response = StreamingResponse(
                stream.chunks, stream.status, audio_headers(stream), stream.media_type
            )
        else:
            response = Response(body, stream.status, audio_headers(stream), stream.media_type)
        await response(scope, receive, send)


def audio_headers(stream: playback.AudioStream) -> dict[str, str]:
    headers = {"accept-ranges": "bytes", "content-length": str(stream.length)}
    if stream.range is not None:
        headers["content-range"] = stream.range.content_range()
    if stream.filename is not None:
        headers["content-disposition"] = f'attachment; filename="{stream.filename}"'
    return headers
