"""Scanning a web server: listings crawled, recordings found by their first bytes.

Only the given server is contacted, never a link to another host, and only
below the given path.  Files are never downloaded: each is asked for its
first :data:`SNIFF_BYTES` with a ``Range`` request and the client reads no
more even if the server ignores the range.  All requests share one budget
(count and rate) and folders are followed to ``max_depth`` levels.
"""

from __future__ import annotations

from collections import deque
from urllib.parse import unquote, urljoin, urlsplit

from callvault.core.errors import InvalidInput
from callvault.services.exposure import webchecks
from callvault.services.exposure.listing import Listing, parse_listing
from callvault.services.exposure.model import (
    HIGH,
    MEDIUM,
    Budget,
    BudgetSpent,
    TargetResult,
    mask,
)
from callvault.services.exposure.names import check_name, has_audio_extension
from callvault.services.exposure.ports import SNIFF_BYTES, HttpAnswer, Limits, Tools

AUDIO = "audio-reachable"
_AUDIO_TITLE = "recordings reachable without authentication"


def parse_target(url: str) -> str:
    """The URL to start from; ``InvalidInput`` for anything but plain http(s) URLs."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("a web target must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise InvalidInput("the scanner asks what anonymous clients get: no credentials in URLs")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise InvalidInput("malformed port in URL") from None
    path = parts.path or "/"
    return parts._replace(path=path, query="", fragment="").geturl()


class WebScan:
    """One web target; :meth:`run` fills and returns a :class:`TargetResult`."""

    def __init__(self, url: str, limits: Limits, tools: Tools) -> None:
        self.base = parse_target(url)
        self.limits, self.tools = limits, tools
        self.budget = Budget(limits.max_requests, limits.rate, tools.sleep, tools.monotonic)
        self.result = TargetResult(mask(self.base, tools.today), "web")
        self.result.max_examples = limits.max_examples
        self.seen: set[str] = set()
        self.queue: deque[tuple[str, int]] = deque()

    # -- requests --------------------------------------------------------------

    def _get(
        self, url: str, headers: dict[str, str] | None = None, max_body: int = 4 << 20
    ) -> HttpAnswer:
        self.budget.spend()
        self.result.bump("requests")
        return self.tools.http.get(url, headers, max_body)

    def _shown(self, url: str) -> str:
        return mask(unquote(urlsplit(url).path), self.tools.today)

    # -- the scan --------------------------------------------------------------

    def run(self) -> TargetResult:
        parts = urlsplit(self.base)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        webchecks.check_transport(self.result, parts.scheme, port)
        try:
            first = self._start(parts.scheme, parts.hostname or "", port)
            if first is None:
                return self.result
            self._check_old_tls(parts.hostname or "", port)
            self._visit(self.base, 0, first)
            self._probe_recorder_paths()
            while self.queue:
                url, depth = self.queue.popleft()
                try:
                    self._visit(url, depth, self._get(url))
                except OSError:
                    self.result.bump("unreachable_urls")
        except BudgetSpent:
            self.result.error = (
                f"stopped after {self.budget.used} requests (--max-requests); results are partial"
            )
        self._conclude()
        return self.result

    def _start(self, scheme: str, host: str, port: int) -> HttpAnswer | None:
        try:
            return self._get(self.base)
        except OSError as exc:
            if scheme == "https":
                return self._plain_http_instead(host, port)
            self.result.error = f"no HTTP answer ({exc})"
            return None

    def _check_old_tls(self, host: str, port: int) -> None:
        if urlsplit(self.base).scheme == "https":  # still TLS: not fallen back to plain
            self.budget.spend()
            self.result.bump("requests")
            webchecks.check_tls_version(self.result, self.tools.http.old_tls(host, port))

    def _plain_http_instead(self, host: str, port: int) -> HttpAnswer | None:
        """An https:// target that fails TLS: is it plain HTTP on that port?"""
        parts = urlsplit(self.base)
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        plain = parts._replace(scheme="http", netloc=netloc).geturl()
        try:
            answer = self._get(plain)
        except OSError:
            self.result.error = "no TLS and no HTTP answer"
            return None
        self.result.add(
            "plain-http-on-tls-port",
            HIGH,
            "plain HTTP (no TLS) on a port clients expect to be encrypted",
            f"port {port}",
        )
        self.base = plain
        return answer

    def _visit(self, url: str, depth: int, answer: HttpAnswer) -> None:
        self.seen.add(url)
        webchecks.check_banners(self.result, answer.headers)
        if answer.status in (401, 403, 407):
            self.result.bump("refused")
            if url == self.base:
                self.result.note("the start page asks for authentication or is forbidden")
            return
        if answer.status != 200:
            return
        listing = parse_listing(url, answer.body, answer.headers.get("content-type", ""))
        if listing is None:
            return
        self._read_listing(listing, depth)

    def _read_listing(self, listing: Listing, depth: int) -> None:
        self.result.bump("listings")
        self.result.note(f"directory listings are served ({listing.kind} format)")
        webchecks.check_banners(self.result, {}, listing.footer)
        for folder in listing.folders:
            name = unquote(folder.rstrip("/").rsplit("/", 1)[-1])
            check_name(self.result, name, self._shown(folder), self.tools.today)
            layout = webchecks.layout_of(name)
            if layout:
                self.result.bump(layout)
            if folder not in self.seen and depth + 1 <= self.limits.max_depth:
                self.seen.add(folder)
                self.queue.append((folder, depth + 1))
            elif depth + 1 > self.limits.max_depth:
                self.result.bump("folders_beyond_max_depth")
        for file_url in listing.files:
            if file_url not in self.seen:
                self.seen.add(file_url)
                self._check_file(file_url)

    def _check_file(self, url: str) -> None:
        name = unquote(url.rsplit("/", 1)[-1])
        self.result.bump("files")
        check_name(self.result, name, self._shown(url), self.tools.today)
        named_audio = has_audio_extension(name)
        if named_audio:
            self.result.bump("files_named_as_audio")
        try:
            answer = self._get(url, {"Range": f"bytes=0-{SNIFF_BYTES - 1}"}, SNIFF_BYTES)
        except OSError:
            self.result.bump("unreachable_urls")
            answer = None
        if answer is None or answer.status not in (200, 206):
            if named_audio:
                # The listing still tells anyone that the call exists, and when.
                self.result.add(
                    "audio-names-listed",
                    MEDIUM,
                    "recordings listed by name, content not served",
                    self._shown(url),
                )
            return
        kind = self.tools.sniff(answer.body[:SNIFF_BYTES])
        if kind is not None:
            self.result.bump(f"audio_{kind}")
            self.result.add(AUDIO, HIGH, _AUDIO_TITLE, self._shown(url))
            if not named_audio:
                self.result.bump("audio_under_other_names")

    def _probe_recorder_paths(self) -> None:
        for path in webchecks.recorder_paths(self.tools.today):
            url = urljoin(self.base, path)
            if url in self.seen:
                continue
            try:
                answer = self._get(url)
            except OSError:
                continue
            self.seen.add(url)
            if answer.status == 200 and parse_listing(
                url, answer.body, answer.headers.get("content-type", "")
            ):
                self.result.add(
                    "recorder-path-listed",
                    HIGH,
                    "a folder where call recorders keep recordings is listed",
                    self._shown(url),
                )
                self._visit(url, 1, answer)

    def _conclude(self) -> None:
        beyond = self.result.stats.get("folders_beyond_max_depth", 0)
        if beyond:
            self.result.note(f"{beyond} folder(s) below --max-depth were not followed")
        stats = self.result.stats
        if stats.get("year_folders") or stats.get("date_folders"):
            self.result.note(
                f"recorder-style layout: {stats.get('year_folders', 0)} year and "
                f"{stats.get('date_folders', 0)} date folders"
            )
        exposed = self.result.has(AUDIO) or self.result.has("personal-data-in-names")
        if not exposed:
            return
        self.result.add(
            "no-authentication",
            HIGH,
            "recordings or personal data served to anyone, with no sign-in",
            self._shown(self.base),
        )
        if urlsplit(self.base).scheme == "http":
            self.result.add(
                "plain-http",
                MEDIUM,
                "recordings or personal data sent unencrypted (plain HTTP)",
                self._shown(self.base),
            )
