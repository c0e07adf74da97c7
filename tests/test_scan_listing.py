"""Directory listings of Apache, lighttpd, IIS, nginx and Python's http.server are
recognised and crawled (R25).  The Apache, lighttpd and IIS pages are written here
in each server's format and served by a real nginx as static index pages; Python's
own server makes its own pages."""

# The pages keep each server's own long lines.
# ruff: noqa: E501

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time

import pytest

from callvault.bootstrap import App
from callvault.config import Settings
from callvault.entrypoints.cli.main import main
from callvault.services.exposure.listing import parse_listing
from callvault.testing.audio import make_mp3, make_tone_wav
from callvault.testing.nginx import NginxServer, free_port

PHONE_NAME = "0701740605_20190314-101112.wav"


def apache_page(path: str, folders: list[str], files: list[str]) -> str:
    """mod_autoindex with FancyIndexing, as Apache 2.2 on Ubuntu wrote it."""
    rows = [
        '<tr><td valign="top"><img src="/icons/back.gif" alt="[PARENTDIR]"></td>'
        '<td><a href="/">Parent Directory</a></td><td>&nbsp;</td><td align="right">  - </td></tr>'
    ]
    rows += [
        f'<tr><td valign="top"><img src="/icons/folder.gif" alt="[DIR]"></td>'
        f'<td><a href="{f}/">{f}/</a></td><td align="right">14-Mar-2019 10:11  </td>'
        f'<td align="right">  - </td></tr>'
        for f in folders
    ]
    rows += [
        f'<tr><td valign="top"><img src="/icons/sound2.gif" alt="[SND]"></td>'
        f'<td><a href="{f}">{f}</a></td><td align="right">14-Mar-2019 10:11  </td>'
        f'<td align="right">1.2M</td></tr>'
        for f in files
    ]
    return f"""<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
<html>
 <head>
  <title>Index of {path.rstrip("/")}</title>
 </head>
 <body>
<h1>Index of {path.rstrip("/")}</h1>
  <table>
   <tr><th valign="top"><img src="/icons/blank.gif" alt="[ICO]"></th><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th><th><a href="?C=S;O=A">Size</a></th></tr>
   <tr><th colspan="4"><hr></th></tr>
{chr(10).join(rows)}
   <tr><th colspan="4"><hr></th></tr>
</table>
<address>Apache/2.2.22 (Ubuntu) Server at 10.1.2.3 Port 443</address>
</body></html>
"""


def lighttpd_page(path: str, folders: list[str], files: list[str]) -> str:
    """mod_dirlisting's table with its footer."""
    rows = [
        '<tr class="d"><td class="n"><a href="../">Parent Directory</a>/</td><td class="m">&nbsp;</td><td class="s">- &nbsp;</td><td class="t">Directory</td></tr>'
    ]
    rows += [
        f'<tr class="d"><td class="n"><a href="{f}/">{f}</a>/</td><td class="m">2019-Mar-14 10:11:12</td><td class="s">- &nbsp;</td><td class="t">Directory</td></tr>'
        for f in folders
    ]
    rows += [
        f'<tr><td class="n"><a href="{f}">{f}</a></td><td class="m">2019-Mar-14 10:11:12</td><td class="s">1.2M</td><td class="t">audio/x-wav</td></tr>'
        for f in files
    ]
    return f"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en">
<head>
<title>Index of {path}</title>
<style type="text/css">a, a:active {{text-decoration: none; color: blue;}}</style>
</head>
<body>
<h2>Index of {path}</h2>
<div class="list">
<table summary="Directory Listing" cellpadding="0" cellspacing="0">
<thead><tr><th class="n">Name</th><th class="m">Last Modified</th><th class="s">Size</th><th class="t">Type</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</div>
<div class="foot">lighttpd/1.4.35</div>
</body>
</html>
"""


def iis_page(path: str, folders: list[str], files: list[str]) -> str:
    """IIS directory browsing: absolute links, upper-case tags, one <pre>."""
    entries = [
        f' 3/14/2019 10:11 AM        &lt;dir&gt; <A HREF="{path}{f}/">{f}</A><br>' for f in folders
    ]
    entries += [f' 3/14/2019 10:11 AM      1234567 <A HREF="{path}{f}">{f}</A><br>' for f in files]
    return (
        f"<html><head><title>recorder01 - {path}</title></head><body><H1>recorder01 - {path}</H1><hr>\n\n"
        f'<pre><A HREF="/">[To Parent Directory]</A><br><br>{"".join(entries)}</pre><hr></body></html>'
    )


FORMATS = {"apache": apache_page, "lighttpd": lighttpd_page, "iis": iis_page}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    wav = make_tone_wav(src / "a.wav", 0.3)
    return wav, make_mp3(src / "a.mp3", wav)


def build(root, sources, page) -> None:
    """/rec/ with a year folder holding a WAV named with a phone number and an MP3."""
    wav, mp3 = sources
    year = root / "rec" / "2019"
    year.mkdir(parents=True)
    shutil.copyfile(wav, year / PHONE_NAME)
    shutil.copyfile(mp3, year / "call 2.mp3")
    (root / "rec" / "notes.txt").write_text("nothing here\n")
    if page is not None:
        (root / "rec" / "index.html").write_text(page("/rec/", ["2019"], ["notes.txt"]))
        (year / "index.html").write_text(page("/rec/2019/", [], [PHONE_NAME, "call%202.mp3"]))


def scan_json(capsys, url: str) -> tuple[int, dict]:
    code = main(["scan", "--json", "--rate", "500", url], app=App(Settings.from_env({})))
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_captured_listing_formats_are_crawled_to_the_recordings(capsys, tmp_path, sources, kind):
    build(tmp_path / "site", sources, FORMATS[kind])
    with NginxServer(tmp_path / "site", tmp_path / "nginx", autoindex=False) as web:
        code, report = scan_json(capsys, web.base_url + "rec/")
    target = report["targets"][0]
    found = {f["code"]: f for f in target["findings"]}
    assert code == 1
    assert f"directory listings are served ({kind} format)" in target["notes"]
    assert found["audio-reachable"]["count"] == 2
    assert found["personal-data-in-names"]["count"] == 1
    if kind == "apache":
        assert found["old-server-banner"]["examples"] == ["Apache/2.2.22"]
    if kind == "lighttpd":
        assert found["old-server-banner"]["examples"] == ["lighttpd/1.4.35"]


def test_python_http_server_listing_is_crawled(capsys, tmp_path, sources):
    build(tmp_path / "site", sources, None)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(tmp_path / "site"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.05)
        code, report = scan_json(capsys, f"http://127.0.0.1:{port}/")
    finally:
        server.terminate()
        server.wait(10)
    target = report["targets"][0]
    found = {f["code"]: f for f in target["findings"]}
    assert code == 1
    assert "directory listings are served (python format)" in target["notes"]
    assert found["audio-reachable"]["count"] == 2
    assert any("development web server" in n for n in target["notes"])


# --- the parser on its own ---------------------------------------------------------


def test_nginx_listing_entries_are_split_into_folders_and_files():
    body = (
        b"<html><head><title>Index of /a/</title></head><body><h1>Index of /a/</h1><hr><pre>"
        b'<a href="../">../</a>\n<a href="2019/">2019/</a>  14-Mar-2019 10:11  -\n'
        b'<a href="x%20y.wav">x y.wav</a>  14-Mar-2019 10:11  5\n</pre><hr></body></html>'
    )
    listing = parse_listing("http://h/a/", body)
    assert listing is not None and listing.kind == "nginx"
    assert listing.folders == ["http://h/a/2019/"]
    assert listing.files == ["http://h/a/x%20y.wav"]


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_each_format_is_recognised_and_parent_and_sort_links_dropped(kind):
    page = FORMATS[kind]("/rec/", ["2019"], ["a.wav"]).encode()
    listing = parse_listing("http://h/rec/", page)
    assert listing is not None and listing.kind == kind
    assert listing.folders == ["http://h/rec/2019/"]
    assert listing.files == ["http://h/rec/a.wav"]


@pytest.mark.parametrize(
    "body",
    [
        b"<html><head><title>Welcome</title></head><body><a href='a.wav'>a</a></body></html>",
        b'{"error": "unauthenticated"}',
        b"",
        b"\xff\xfb\x90\x00" * 100,
        b"<html><title>Index of /x/</title><a href='http://other/x/a.wav'>a</a></html>",
    ],
)
def test_pages_that_are_not_listings_give_nothing(body):
    listing = parse_listing("http://h/x/", body)
    assert listing is None or (listing.files == [] and listing.folders == [])


def test_links_to_other_hosts_and_deeper_paths_are_not_entries():
    body = (
        b'<html><title>Index of /a/</title><pre><a href="../">../</a>'
        b'<a href="http://evil.example/a/b.wav">b</a><a href="c/d.wav">d</a>'
        b'<a href="//evil.example/x">x</a><a href="ok.wav">ok</a></pre></html>'
    )
    listing = parse_listing("http://h/a/", body)
    assert listing is not None
    assert listing.files == ["http://h/a/ok.wav"]
    assert listing.folders == []
