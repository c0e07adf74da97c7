"""Recognising directory-listing pages and reading their entries.

Formats recognised (by their fixed texts, never by the ``Server`` header,
which proxies rewrite):

* nginx ``autoindex``: ``<title>Index of /p/</title>``, a ``<pre>`` with ``../``;
* Apache ``mod_autoindex``: ``Index of /p`` with ``Parent Directory`` or the
  ``?C=N;O=D`` sort links, often an ``<address>Apache/2.x ...</address>`` footer;
* lighttpd ``mod_dirlisting``: ``Index of /p/``, ``<div class="list">``, a
  ``<div class="foot">lighttpd/1.4.x</div>`` footer;
* IIS directory browsing: ``<title>host - /p/</title>`` and ``[To Parent Directory]``;
* Python ``http.server``: ``Directory listing for /p/``.

An entry whose link ends in ``/`` is a folder.  Links that leave the listed
folder (parents, sort orders, other hosts, icons) are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

_MAX_HTML = 4 << 20


@dataclass(frozen=True)
class Listing:
    kind: str  # "nginx" | "apache" | "lighttpd" | "iis" | "python"
    folders: list[str]  # absolute URLs, ending in "/"
    files: list[str]  # absolute URLs
    footer: str = ""  # a server banner printed in the page, if any


class _Page(HTMLParser):
    """Title, links and footer text of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.hrefs: list[str] = []
        self.footer = ""
        self._in = ""
        self._foot = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("title", "address"):
            self._in = tag
        elif tag == "div" and values.get("class") == "foot":
            self._foot = True
        elif tag == "a" and values.get("href"):
            self.hrefs.append(values["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("title", "address"):
            self._in = ""
        elif tag == "div":
            self._foot = False

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data
        elif self._in == "address" or self._foot:
            self.footer += data


def _kind(page: _Page, raw: str) -> str | None:
    title = page.title.strip()
    if title.startswith("Directory listing for "):
        return "python"
    if "[To Parent Directory]" in raw:
        return "iis"
    if not title.startswith("Index of "):
        return None
    if 'class="list"' in raw or "lighttpd" in page.footer:
        return "lighttpd"
    if "Parent Directory" in raw or any(h.startswith("?C=") for h in page.hrefs):
        return "apache"
    if "../" in page.hrefs:
        return "nginx"
    return "apache" if "Apache" in page.footer else None


def parse_listing(url: str, body: bytes, content_type: str = "text/html") -> Listing | None:
    """The listing in ``body`` (fetched from ``url``), or ``None`` if it is not one."""
    if "html" not in content_type.lower() and body.lstrip()[:1] != b"<":
        return None
    raw = body[:_MAX_HTML].decode("utf-8", errors="replace")
    page = _Page()
    try:
        page.feed(raw)
        page.close()
    except (ValueError, AssertionError):
        return None
    kind = _kind(page, raw)
    if kind is None:
        return None
    folders: list[str] = []
    files: list[str] = []
    for href in page.hrefs:
        child = _child(url, href)
        if child is None:
            continue
        bucket = folders if child.endswith("/") else files
        if child not in bucket:
            bucket.append(child)
    return Listing(kind, folders, files, " ".join(page.footer.split()))


def _child(page_url: str, href: str) -> str | None:
    """The absolute URL of ``href`` if it names something inside the listed folder."""
    if href.startswith(("?", "#", "mailto:", "javascript:")):
        return None
    target = urljoin(page_url, href)
    base, child = urlsplit(page_url), urlsplit(target)
    if (child.scheme, child.netloc) != (base.scheme, base.netloc) or child.query:
        return None
    folder = base.path if base.path.endswith("/") else base.path.rsplit("/", 1)[0] + "/"
    if not child.path.startswith(folder) or child.path == folder:
        return None
    rest = child.path[len(folder) :]
    # One level down only: "a/b.wav" from a folder page is not its own entry.
    if re.fullmatch(r"[^/]+/?", rest) is None:
        return None
    return child._replace(fragment="").geturl()
