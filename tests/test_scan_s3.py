"""`callvault scan s3://…` against a real SeaweedFS S3 gateway: what an anonymous,
unsigned client can list and read in a public bucket, and that a private one shows
nothing (R25, R3)."""

from __future__ import annotations

import json

import pytest

from callvault.bootstrap import App
from callvault.config import Settings
from callvault.entrypoints.cli.main import main
from callvault.testing.audio import make_mp3, make_tone_wav
from callvault.testing.seaweedfs import SeaweedFS

OBJECTS = {
    "2019/03/14/0701740605_101112.wav": "wav",
    "2019/03/14/0701740606_101530.mp3": "mp3",
    "2019/03/14/rec-3.txt": "mp3",  # an MP3 under another name
    "2019/03/15/notes.txt": b"no audio here\n",
    "2020/index.html": b"<html></html>",
}
AUDIO = 3
PII = 2


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    root = tmp_path_factory.mktemp("s3")
    wav = make_tone_wav(root / "a.wav", 0.3)
    audio = {"wav": wav.read_bytes(), "mp3": make_mp3(root / "a.mp3", wav).read_bytes()}
    with SeaweedFS(root / "weed", anonymous_read=["cv-public"]) as server:
        client = server.client()
        for bucket in ("cv-public", "cv-private", "cv-policy"):
            server.make_bucket(bucket)
            for key, body in OBJECTS.items():
                data = audio[body] if isinstance(body, str) else body
                client.put_object(Bucket=bucket, Key=key, Body=data)
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": ["s3:GetObject", "s3:ListBucket"],
                    "Resource": ["arn:aws:s3:::cv-policy", "arn:aws:s3:::cv-policy/*"],
                }
            ],
        }
        client.put_bucket_policy(Bucket="cv-policy", Policy=json.dumps(policy))
        yield server


def scan_json(capsys, target: str) -> tuple[int, dict]:
    code = main(["scan", "--json", "--rate", "500", target], app=App(Settings.from_env({})))
    out = capsys.readouterr().out
    return code, json.loads(out)


def codes(report) -> dict[str, dict]:
    return {f["code"]: f for f in report["targets"][0]["findings"]}


@pytest.mark.parametrize("bucket", ["cv-public", "cv-policy"])
def test_public_bucket_listing_and_reading_by_anyone_are_found(capsys, s3, bucket):
    code, report = scan_json(capsys, f"s3://{bucket}?endpoint={s3.endpoint}")
    found = codes(report)
    assert code == 1
    assert found["anonymous-list"]["severity"] == "high"
    assert found["anonymous-get"]["count"] == len(OBJECTS)
    assert found["audio-reachable"]["count"] == AUDIO
    assert found["personal-data-in-names"]["count"] == PII
    assert report["targets"][0]["stats"]["keys_listed"] == len(OBJECTS)
    text = json.dumps(report)
    assert "0701740605" not in text and "701740606" not in text
    assert "+4670*****05" in text


def test_private_bucket_shows_nothing_and_exits_0(capsys, s3):
    code, report = scan_json(capsys, f"s3://cv-private?endpoint={s3.endpoint}")
    assert code == 0
    assert report["targets"][0]["findings"] == []
    assert "anonymous listing refused (HTTP 403)" in report["targets"][0]["notes"]


def test_prefix_limits_the_keys_examined(capsys, s3):
    code, report = scan_json(capsys, f"s3://cv-public/2020/?endpoint={s3.endpoint}")
    assert code == 1
    assert report["targets"][0]["stats"]["keys_listed"] == 1
    assert "audio-reachable" not in codes(report)


def test_request_budget_bounds_the_bucket_scan(capsys, s3):
    code = main(
        ["scan", "--json", "--max-requests", "3", f"s3://cv-public?endpoint={s3.endpoint}"],
        App(Settings.from_env({})),
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 1  # the listing alone is a finding
    assert report["targets"][0]["stats"]["requests"] == 3
    assert report["targets"][0]["complete"] is False


def test_unreachable_endpoint_exits_2(capsys):
    code, report = scan_json(capsys, "s3://cv-public?endpoint=http://127.0.0.1:9")
    assert code == 2
    assert "no HTTP answer" in report["targets"][0]["error"]
