"""`callvault scan` against real web servers: nginx serving an exposed 1177-style
archive, a clean tree, HTTPS, plain HTTP on port 443, a guessable recorder path,
and a running callvault (R25, R3)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from callvault.adapters.tls import ensure_self_signed
from callvault.bootstrap import App
from callvault.config import Settings
from callvault.core.identifiers import normalise_personnummer
from callvault.entrypoints.cli.main import main
from callvault.testing.audio import make_mp3, make_tone_wav
from callvault.testing.nginx import NginxServer, free_port
from callvault.testing.scan import identifier_forms

# PTS reserves 070-174 06 05 .. 070-174 06 99 for fiction; the personnummer are
# made-up dates with a valid Luhn digit (see luhn_pnr).
PHONES = ["0701740605", "0701740606", "+46701740607", "0701740608", "46701740609"]


def luhn_pnr(yymmdd: str, serial: str) -> str:
    """A 10-digit personnummer with a correct check digit, as YYMMDD-NNNC."""
    digits = yymmdd + serial
    total = 0
    for i, ch in enumerate(digits):
        n = int(ch) * (2 - i % 2)
        total += n - 9 if n > 9 else n
    return f"{yymmdd}-{serial}{(10 - total % 10) % 10}"


PNRS = [luhn_pnr("121212", "121"), luhn_pnr("850312", "123")]


@dataclass
class Tree:
    root: Path
    audio: int  # files whose content is audio
    pii_names: int  # files or folders whose name carries an identifier
    needles: list[bytes]  # every written form of the planted identifiers


@pytest.fixture(scope="module")
def audio_sources(tmp_path_factory) -> tuple[Path, Path]:
    src = tmp_path_factory.mktemp("audio-src")
    wav = make_tone_wav(src / "tone.wav", 0.5)
    return wav, make_mp3(src / "tone.mp3", wav)


def build_1177_tree(root: Path, wav: Path, mp3: Path) -> Tree:
    """Customer / year / date folders as the exposed recorder kept them."""
    p = PHONES
    planted = {
        # path: (source or text, carries an identifier in its name)
        f"kund-a/2019/2019-03-14/{p[0]}_20190314-101112.wav": (wav, True),
        f"kund-a/2019/2019-03-14/{p[1]}_20190314-101530.mp3": (mp3, True),
        f"kund-a/2019/2019-03-15/{PNRS[0]}_20190315-0800.wav": (wav, True),
        f"kund-a/2020/2020-01-02/{p[2]}_20200102-120000.mp3": (mp3, True),
        f"kund-b/2019/2019-06-01/{p[3]}_20190601-093000.txt": (mp3, True),  # MP3 named .txt
        "kund-b/2019/2019-06-01/rec-0001.dat": (wav, False),
        f"kund-b/2019/2019-06-02/{PNRS[1]}/samtal 1.wav": (wav, False),  # the folder is named
        "kund-b/2019/2019-06-02/x/inspelning.mp3": (mp3, False),
    }
    plain = {
        "kund-b/2019/2019-06-01/readme.txt": b"kundens inspelningar\n",
        "kund-b/2019/2019-06-01/fake.wav": b"not audio at all, just text\n",
        "kund-b/2019/2019-06-01/cover.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64,
        f"kund-a/2019/2019-03-14/{p[4]}_notes.txt": b"anteckning\n",  # identifier, no audio
        "index-of-nothing/empty.log": b"",
    }
    for rel, (source, _) in planted.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
    for rel, data in plain.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    needles = [f for n in PHONES for f in identifier_forms(phone_e164=_e164(n))]
    needles += [f for n in PNRS for f in identifier_forms(personnummer=_twelve(n))]
    # Five recordings named with an identifier, the personnummer folder (its file is
    # "samtal 1.wav") and the phone-numbered notes file.
    return Tree(root, audio=len(planted), pii_names=7, needles=needles)


def _twelve(pnr: str) -> str:
    return normalise_personnummer(pnr, today=dt.date.today())


def _e164(number: str) -> str:
    digits = number.lstrip("+")
    return "+46" + (digits[2:] if digits.startswith("46") else digits[1:])


def build_clean_tree(root: Path) -> Path:
    for rel, data in {
        "kund-a/2019/2019-03-14/protokoll.txt": b"inga inspelningar\n",
        "kund-a/2019/2019-03-14/schema.pdf": b"%PDF-1.4\n%\xe2\xe3\n",
        "kund-b/2020/bild.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64,
        "kund-b/2020/fake.mp3": b"this is a text file named like audio\n",
        "2019-03-14/README": b"tom\n",
    }.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.fixture(scope="module")
def exposed(tmp_path_factory, audio_sources) -> Tree:
    return build_1177_tree(tmp_path_factory.mktemp("exposed"), *audio_sources)


@pytest.fixture(scope="module")
def exposed_web(exposed, tmp_path_factory):
    with NginxServer(exposed.root, tmp_path_factory.mktemp("nginx-exposed")) as web:
        yield web


def scan(capsys, *args: str) -> tuple[int, dict]:
    code = main(["scan", "--rate", "500", "--json", *args], app=App(Settings.from_env({})))
    out = capsys.readouterr().out
    return code, json.loads(out)


def findings(report: dict, index: int = 0) -> dict[str, dict]:
    return {f["code"]: f for f in report["targets"][index]["findings"]}


def assert_no_identifier(text: str, needles: list[bytes]) -> None:
    for needle in needles:
        assert needle.decode("utf-8", errors="ignore") not in text


# --- the exposed archive -----------------------------------------------------------


def test_nginx_archive_every_recording_and_every_personal_name_is_found(
    capsys, exposed, exposed_web
):
    """R25: listings crawled, audio found by content (also an MP3 named .txt and a WAV
    named .dat), fake.wav not counted, every identifier-bearing name found."""
    code, report = scan(capsys, exposed_web.base_url)
    assert code == 1
    found = findings(report)
    assert found["audio-reachable"]["count"] == exposed.audio
    stats = report["targets"][0]["stats"]
    assert stats["audio_wav"] + stats["audio_mp3"] == exposed.audio
    assert stats["audio_under_other_names"] == 2
    assert found["personal-data-in-names"]["count"] == exposed.pii_names
    assert found["no-authentication"]["severity"] == "high"
    assert "plain-http" in found  # served without TLS
    assert "plain-http-on-tls-port" not in found
    assert report["targets"][0]["complete"] is True
    notes = report["targets"][0]["notes"]
    assert "directory listings are served (nginx format)" in notes
    assert "recorder-style layout: 3 year and 5 date folders" in notes


def test_report_examples_are_masked_in_text_and_json(capsys, exposed, exposed_web):
    """R3: the report names where, never the full number it found."""
    code, report = scan(capsys, exposed_web.base_url)
    text = json.dumps(report)
    assert_no_identifier(text, exposed.needles)
    assert "+4670*****05" in text or "+4670*****06" in text
    assert "20121212-****" in text
    code = main(["scan", "--rate", "500", exposed_web.base_url], app=App(Settings.from_env({})))
    readable = capsys.readouterr().out
    assert code == 1
    assert "recordings reachable without authentication: 8" in readable
    assert_no_identifier(readable, exposed.needles)


def test_a_target_url_that_carries_an_identifier_is_masked_in_the_report(
    capsys, exposed, exposed_web
):
    url = exposed_web.base_url + f"kund-b/2019/2019-06-02/{PNRS[1]}/"
    code = main(["scan", "--rate", "500", url], app=App(Settings.from_env({})))
    out = capsys.readouterr().out
    assert code == 1
    assert "recordings reachable without authentication: 1" in out
    assert "19850312-****" in out
    assert_no_identifier(out, exposed.needles)


def test_files_are_sniffed_with_range_requests_never_downloaded(capsys, exposed, tmp_path):
    """Every file is asked for its first 64 bytes only; the server log shows each
    request carried a Range header and got at most 64 body bytes back."""
    with NginxServer(exposed.root, tmp_path / "nginx", log_requests=True) as web:
        code, report = scan(capsys, web.base_url)
        time.sleep(0.2)  # nginx writes its log line after the response
        logged = web.requests()
    assert code == 1
    files = [r for r in logged if not r[0].endswith("/")]
    assert len(files) == report["targets"][0]["stats"]["files"] == 13
    assert all(rng == "bytes=0-63" for _, rng, _, _ in files)
    assert all(sent <= 64 for _, _, _, sent in files)
    # 206 with the range; nginx answers the empty file with a plain, empty 200.
    assert sorted({status for _, _, status, _ in files}) == [200, 206]


def test_a_server_that_ignores_range_still_sends_only_what_is_read(exposed, tmp_path):
    """The client stops reading after the cap and closes the connection."""
    from callvault.adapters.http_probe import HttpProbe

    big = tmp_path / "site" / "big.bin"
    big.parent.mkdir()
    big.write_bytes(os.urandom(4 << 20))
    with NginxServer(big.parent, tmp_path / "nginx") as web:
        answer = HttpProbe(timeout=5).get(web.base_url + "big.bin", max_body=64)
    assert answer.status == 200
    assert len(answer.body) == 64


def test_clean_tree_reports_nothing_and_exits_0(capsys, tmp_path):
    root = build_clean_tree(tmp_path / "clean")
    with NginxServer(root, tmp_path / "nginx") as web:
        code, report = scan(capsys, web.base_url)
    assert code == 0
    assert report["findings"] == 0
    assert report["targets"][0]["findings"] == []
    assert report["targets"][0]["stats"]["files"] == 5


def test_guessable_recorder_path_is_found_when_the_root_is_not_listed(
    capsys, tmp_path, audio_sources
):
    """Oreka's /orkweb/stream/ listed while / is not: the probe finds it, then the crawl."""
    wav, mp3 = audio_sources
    root = tmp_path / "ork"
    day = root / "orkweb" / "stream" / "2019" / "03" / "14"
    day.mkdir(parents=True)
    shutil.copyfile(wav, day / "0701740605-in.wav")
    shutil.copyfile(mp3, day / "call-2.mp3")
    (root / "index.html").write_text("<html><body>Welcome</body></html>")
    with NginxServer(root, tmp_path / "nginx", autoindex=["/orkweb/"]) as web:
        code, report = scan(capsys, web.base_url)
    assert code == 1
    found = findings(report)
    assert found["recorder-path-listed"]["examples"][0] == "/orkweb/stream/"
    assert found["audio-reachable"]["count"] == 2
    assert found["personal-data-in-names"]["count"] == 1


def test_recordings_listed_but_not_served_are_still_a_finding(capsys, exposed, tmp_path):
    """A listing that names calls leaks that they exist even when downloads are refused."""
    with NginxServer(exposed.root, tmp_path / "nginx", deny=[r"\.(wav|mp3)$"]) as web:
        code, report = scan(capsys, web.base_url + "kund-a/")
    found = findings(report)
    assert code == 1
    assert found["audio-names-listed"]["count"] == 4
    assert "audio-reachable" not in found
    assert found["personal-data-in-names"]["count"] == 5


# --- transport ----------------------------------------------------------------------


def _loopback_443() -> str:
    """A loopback address whose port 443 is free (the 127/8 block has many)."""
    for last in range(2, 250):
        host = f"127.0.{os.getpid() % 200}.{last}"
        with socket.socket() as sock:
            try:
                sock.bind((host, 443))
            except PermissionError:
                pytest.fail("binding port 443 needs root or net.ipv4.ip_unprivileged_port_start")
            except OSError:
                continue
            return host
    pytest.fail("no free loopback address for port 443")


def test_plain_http_on_port_443_is_a_finding_whichever_scheme_is_asked(capsys, exposed, tmp_path):
    host = _loopback_443()
    with NginxServer(exposed.root, tmp_path / "nginx", host=host, port=443):
        code_http, as_http = scan(capsys, f"http://{host}:443/kund-a/2020/")
        code_https, as_https = scan(capsys, f"https://{host}/kund-a/2020/")
    for code, report in ((code_http, as_http), (code_https, as_https)):
        assert code == 1
        found = findings(report)
        assert found["plain-http-on-tls-port"]["examples"] == ["port 443"]
        assert found["audio-reachable"]["count"] == 1


def test_https_nginx_finds_the_recordings_without_transport_findings(capsys, exposed, tmp_path):
    tls = ensure_self_signed(tmp_path / "tls")
    with NginxServer(exposed.root, tmp_path / "nginx", tls=(tls.cert, tls.key)) as web:
        assert web.base_url.startswith("https://")
        code, report = scan(capsys, web.base_url + "kund-a/")
    assert code == 1
    found = findings(report)
    assert found["audio-reachable"]["count"] == 4
    assert "plain-http" not in found
    assert "plain-http-on-tls-port" not in found
    assert "old-tls" not in found


def test_https_server_that_still_agrees_to_tls_1_1_is_a_finding(capsys, tmp_path):
    root = build_clean_tree(tmp_path / "clean")
    tls = ensure_self_signed(tmp_path / "tls")
    with NginxServer(
        root, tmp_path / "nginx", tls=(tls.cert, tls.key), tls_protocols="TLSv1.1 TLSv1.2"
    ) as web:
        code, report = scan(capsys, web.base_url)
    assert code == 1
    assert findings(report)["old-tls"]["examples"] == ["TLSv1.1"]
    assert list(findings(report)) == ["old-tls"]


def test_old_server_banner_is_a_finding(capsys, tmp_path):
    """A real http.server that announces itself as an Apache 2.2 (what 1177's NAS ran)."""
    root = build_clean_tree(tmp_path / "clean")
    port = free_port()
    code_text = (
        "import functools, http.server, sys\n"
        "class H(http.server.SimpleHTTPRequestHandler):\n"
        "    server_version = 'Apache/2.2.22 (Ubuntu)'\n"
        "    sys_version = ''\n"
        "    def log_message(self, *a): pass\n"
        f"h = functools.partial(H, directory={str(root)!r})\n"
        f"http.server.ThreadingHTTPServer(('127.0.0.1', {port}), h).serve_forever()\n"
    )
    server = subprocess.Popen([sys.executable, "-c", code_text])
    try:
        _wait_port(port, server)
        code, report = scan(capsys, f"http://127.0.0.1:{port}/")
    finally:
        server.terminate()
        server.wait(10)
    assert code == 1
    found = findings(report)
    assert list(found) == ["old-server-banner"]
    assert found["old-server-banner"]["examples"] == ["Apache/2.2.22"]


def _wait_port(port: int, process: subprocess.Popen, log: Path | None = None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited: {log.read_text() if log else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail("server did not listen")


# --- bounds and bad input ------------------------------------------------------------


def test_request_budget_stops_the_scan_and_exit_code_says_incomplete(capsys, tmp_path):
    root = build_clean_tree(tmp_path / "clean")
    with NginxServer(root, tmp_path / "nginx") as web:
        code, report = scan(capsys, "--max-requests", "3", web.base_url)
    assert code == 2
    target = report["targets"][0]
    assert target["complete"] is False
    assert target["stats"]["requests"] == 3
    assert "stopped after 3 requests" in target["error"]


def test_rate_limit_spaces_the_requests(capsys, tmp_path):
    root = build_clean_tree(tmp_path / "clean")
    with NginxServer(root, tmp_path / "nginx") as web:
        started = time.monotonic()
        code = main(
            ["scan", "--json", "--rate", "20", "--max-requests", "11", web.base_url],
            App(Settings.from_env({})),
        )
        elapsed = time.monotonic() - started
    report = json.loads(capsys.readouterr().out)
    assert report["targets"][0]["stats"]["requests"] == 11
    assert code == 2
    assert elapsed >= 10 / 20 * 0.95


def test_depth_limit_keeps_the_crawl_shallow(capsys, exposed, exposed_web):
    code, report = scan(capsys, "--max-depth", "1", exposed_web.base_url)
    stats = report["targets"][0]["stats"]
    assert stats["folders_beyond_max_depth"] > 0
    assert "audio-reachable" not in findings(report)  # recordings sit 3 levels down
    assert code == 0  # nothing sensitive within one level


@pytest.mark.parametrize(
    "argv",
    [
        ["ftp://127.0.0.1/"],
        ["http://user:secret@127.0.0.1/"],
        ["http:///nohost"],
        ["http://127.0.0.1:99999/"],
        ["s3://UPPER_case?endpoint=http://127.0.0.1:1"],
        ["s3://bucket?endpoint=ftp://127.0.0.1"],
        ["/no/such/folder/anywhere"],
        ["--rate", "0", "http://127.0.0.1/"],
        ["--max-requests", "0", "http://127.0.0.1/"],
        ["--max-depth", "-1", "http://127.0.0.1/"],
        ["--timeout", "0", "http://127.0.0.1/"],
    ],
)
def test_bad_targets_and_limits_are_refused_with_exit_2(capsys, argv):
    code = main(["scan", *argv], app=App(Settings.from_env({})))
    captured = capsys.readouterr()
    assert code == 2
    assert "callvault: error:" in captured.err
    assert "secret" not in captured.err
    assert captured.out == ""


def test_a_bad_target_stops_the_run_before_any_request(capsys, exposed_web, tmp_path):
    """Targets are all checked first: a typo never leaves half a scan behind."""
    code = main(["scan", exposed_web.base_url, "ftp://x/"], app=App(Settings.from_env({})))
    assert code == 2
    assert capsys.readouterr().out == ""


def test_unreachable_server_exits_2(capsys):
    code, report = scan(capsys, f"http://127.0.0.1:{free_port()}/")
    assert code == 2
    assert report["targets"][0]["error"].startswith("no HTTP answer")


# --- callvault itself ------------------------------------------------------------------


def test_a_running_callvault_shows_nothing(capsys, cli_vault, tmp_path):
    """R25: the scanner run against callvault's own service finds nothing."""
    vault = cli_vault()
    port = free_port()
    vault.env["CALLVAULT_BIND"] = f"127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "callvault", "serve"], env=vault.env, stdout=out, stderr=out
        )
    try:
        _wait_port(port, server, log)
        code, report = scan(capsys, f"https://127.0.0.1:{port}/")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    assert code == 0, report
    assert report["targets"][0]["findings"] == []
    assert report["targets"][0]["complete"] is True
    assert report["targets"][0]["stats"]["requests"] > 10
