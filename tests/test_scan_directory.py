"""`callvault scan FOLDER`: recordings by content, identifiers in names, modes that
let others read, and plaintext audio beside a vault (R25, R3)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from callvault.bootstrap import App
from callvault.config import Settings
from callvault.entrypoints.cli.main import main
from callvault.testing.audio import make_mp3, make_tone_wav


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    wav = make_tone_wav(src / "a.wav", 0.3)
    return wav, make_mp3(src / "a.mp3", wav)


def scan_json(capsys, *args) -> tuple[int, dict]:
    code = main(["scan", "--json", *map(str, args)], app=App(Settings.from_env({})))
    return code, json.loads(capsys.readouterr().out)


def codes(report) -> dict[str, dict]:
    return {f["code"]: f for f in report["targets"][0]["findings"]}


def put(path, data=b"", source=None, mode=0o600):
    path.parent.mkdir(parents=True, exist_ok=True)
    if source is not None:
        shutil.copyfile(source, path)
    else:
        path.write_bytes(data)
    path.chmod(mode)
    return path


def test_audio_is_found_by_content_and_names_by_their_identifiers(capsys, tmp_path, sources):
    wav, mp3 = sources
    root = tmp_path / "archive"
    put(root / "2019/03/14/0701740605_101112.wav", source=wav)
    put(root / "2019/03/14/sample.bin", source=mp3)  # MP3 under another name
    put(root / "2019/03/14/fake.wav", b"RIFF but not a wave file")
    put(root / "2019/03/14/+46701740606.txt", b"a note")
    put(root / "2019/03/15/notes.txt", b"nothing")
    for folder in root.rglob("*"):
        if folder.is_dir():
            folder.chmod(0o700)
    root.chmod(0o700)
    code, report = scan_json(capsys, root)
    found = codes(report)
    assert code == 1
    assert found["audio-files"]["count"] == 2
    assert found["personal-data-in-names"]["count"] == 2
    assert "readable-by-others" not in found
    assert report["targets"][0]["stats"]["audio_under_other_names"] == 1
    text = json.dumps(report)
    assert "0701740605" not in text and "701740606" not in text
    assert "+4670*****05" in text


def test_files_and_folders_readable_by_others_are_reported(capsys, tmp_path, sources):
    wav, _ = sources
    root = tmp_path / "shared"
    put(root / "calls/a.wav", source=wav, mode=0o644)
    put(root / "calls/b.wav", source=wav, mode=0o600)
    (root / "calls").chmod(0o755)
    code, report = scan_json(capsys, root)
    found = codes(report)
    assert code == 1
    assert sorted(found["readable-by-others"]["examples"]) == ["calls/", "calls/a.wav"]


def test_plaintext_audio_beside_a_vault_home_is_its_own_finding(capsys, tmp_path, sources):
    wav, _ = sources
    home = tmp_path / "home"
    put(home / "data/vault.db", b"SQLite format 3\x00")
    put(home / "keys/callvault.key", b"sealed")
    put(home / "incoming/call.wav", source=wav)
    code, report = scan_json(capsys, home)
    found = codes(report)
    assert code == 1
    assert found["plaintext-near-vault"]["severity"] == "high"
    code, report = scan_json(capsys, home / "incoming")
    assert "plaintext-near-vault" in codes(report)


def test_clean_folder_exits_0(capsys, tmp_path):
    root = tmp_path / "clean"
    put(root / "a/readme.txt", b"hello", mode=0o644)
    put(root / "a/2019-03-14/report.pdf", b"%PDF-1.4", mode=0o644)
    put(root / "b/fake.mp3", b"ID3 is not enough", mode=0o644)
    code, report = scan_json(capsys, root)
    assert code == 0
    assert report["targets"][0]["findings"] == []
    assert report["targets"][0]["stats"]["files"] == 3


def test_symlinks_are_not_followed(capsys, tmp_path, sources):
    wav, _ = sources
    outside = put(tmp_path / "outside/secret.wav", source=wav)
    root = tmp_path / "tree"
    root.mkdir()
    os.symlink(outside, root / "link.wav")
    os.symlink(outside.parent, root / "linkdir")
    code, report = scan_json(capsys, root)
    assert code == 0
    assert report["targets"][0]["stats"]["unreadable_or_special"] == 1


def test_file_budget_and_depth_bound_the_walk(capsys, tmp_path, sources):
    wav, _ = sources
    root = tmp_path / "deep"
    put(root / "a/b/c/d/e/call.wav", source=wav)
    for n in range(5):
        put(root / f"f{n}.txt", b"x")
    code, report = scan_json(capsys, "--max-depth", "3", root)
    assert code == 0
    assert report["targets"][0]["stats"]["folders_beyond_max_depth"] == 1
    code, report = scan_json(capsys, "--max-requests", "2", root)
    assert code == 2
    assert "stopped after 2 files" in report["targets"][0]["error"]
