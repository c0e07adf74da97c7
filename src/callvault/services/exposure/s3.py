"""Scanning an S3 bucket as an anonymous client: unsigned plain requests only.

Target form: ``s3://BUCKET[/PREFIX]?endpoint=URL`` (path-style, as SeaweedFS,
MinIO and Ceph serve it; without ``endpoint`` it is AWS,
``https://s3.amazonaws.com``).  Checks, each one request unless noted:

* ``GET /BUCKET?list-type=2`` answered with a ``ListBucketResult``: anyone
  can list it (then up to the budget more pages, and the keys are read);
* every listed key: ``GET`` with ``Range: bytes=0-63``; audio by content;
  identifiers in key names;
* ``GET /BUCKET?policy``: a readable policy that allows ``"Principal": "*"``;
* ``GET /BUCKET?acl``: a grant to ``AllUsers`` or ``AuthenticatedUsers``.
"""

from __future__ import annotations

import html
import json
import re
from urllib.parse import parse_qs, quote, urlsplit

from callvault.core.errors import InvalidInput
from callvault.services.exposure.model import HIGH, Budget, BudgetSpent, TargetResult, mask
from callvault.services.exposure.names import check_name, has_audio_extension
from callvault.services.exposure.ports import SNIFF_BYTES, HttpAnswer, Limits, Tools

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", re.ASCII)
_KEY = re.compile(r"<Key>(.*?)</Key>", re.DOTALL)
_TOKEN = re.compile(r"<NextContinuationToken>(.*?)</NextContinuationToken>", re.DOTALL)
AWS_ENDPOINT = "https://s3.amazonaws.com"


def parse_target(target: str) -> tuple[str, str, str]:
    """``(endpoint, bucket, prefix)``; ``InvalidInput`` for anything malformed."""
    parts = urlsplit(target)
    bucket = parts.netloc
    if parts.scheme != "s3" or not _BUCKET.fullmatch(bucket):
        raise InvalidInput("an S3 target is s3://bucket[/prefix]?endpoint=http(s)://host:port")
    query = parse_qs(parts.query)
    endpoint = (query.get("endpoint") or [AWS_ENDPOINT])[0].rstrip("/")
    ep = urlsplit(endpoint)
    if ep.scheme not in ("http", "https") or not ep.hostname or ep.username or ep.password:
        raise InvalidInput("the S3 endpoint must be an http(s) URL with a host, no credentials")
    return endpoint, bucket, parts.path.lstrip("/")


class S3Scan:
    def __init__(self, target: str, limits: Limits, tools: Tools) -> None:
        self.endpoint, self.bucket, self.prefix = parse_target(target)
        self.limits, self.tools = limits, tools
        self.budget = Budget(limits.max_requests, limits.rate, tools.sleep, tools.monotonic)
        self.result = TargetResult(mask(target, tools.today), "s3")
        self.result.max_examples = limits.max_examples

    def _get(self, query: str = "", key: str = "", **headers: str) -> HttpAnswer:
        self.budget.spend()
        self.result.bump("requests")
        url = f"{self.endpoint}/{self.bucket}" + (f"/{quote(key)}" if key else "")
        max_body = SNIFF_BYTES if key else 4 << 20
        return self.tools.http.get(url + (f"?{query}" if query else ""), headers, max_body)

    def run(self) -> TargetResult:
        try:
            keys = self._list()
            if keys is not None:
                for key in keys:
                    self._check_key(key)
            self._policy()
            self._acl()
        except BudgetSpent:
            self.result.error = (
                f"stopped after {self.budget.used} requests (--max-requests); results are partial"
            )
        except OSError as exc:
            self.result.error = f"no HTTP answer from the S3 endpoint ({exc})"
        return self.result

    def _list(self) -> list[str] | None:
        keys: list[str] = []
        token = ""
        while True:
            query = "list-type=2&max-keys=1000" + (
                f"&prefix={quote(self.prefix)}" if self.prefix else ""
            )
            if token:
                query += f"&continuation-token={quote(token)}"
            answer = self._get(query)
            text = answer.body.decode("utf-8", errors="replace")
            if answer.status == 404:
                self.result.error = "no such bucket (or the endpoint is not S3)"
                return None
            if answer.status != 200 or "<ListBucketResult" not in text:
                self.result.note(f"anonymous listing refused (HTTP {answer.status})")
                return None
            page = [html.unescape(k) for k in _KEY.findall(text)]
            keys += page
            more = _TOKEN.search(text)
            if not more or not page:
                break
            token = html.unescape(more.group(1))
        self.result.add(
            "anonymous-list", HIGH, "anyone can list the bucket", f"s3://{self.bucket}/"
        )
        self.result.stats["keys_listed"] = len(keys)
        return keys

    def _check_key(self, key: str) -> None:
        shown = mask(f"s3://{self.bucket}/{key}", self.tools.today)
        for segment in key.split("/"):
            check_name(self.result, segment, shown, self.tools.today)
        answer = self._get(key=key, Range=f"bytes=0-{SNIFF_BYTES - 1}")
        if answer.status not in (200, 206):
            return
        self.result.add("anonymous-get", HIGH, "anyone can read objects in the bucket", shown)
        kind = self.tools.sniff(answer.body[:SNIFF_BYTES])
        if kind is not None:
            self.result.bump(f"audio_{kind}")
            self.result.add("audio-reachable", HIGH, "recordings readable by anyone", shown)
            if not has_audio_extension(key):
                self.result.bump("audio_under_other_names")

    def _policy(self) -> None:
        answer = self._get("policy")
        if answer.status != 200:
            return
        try:
            policy = json.loads(answer.body)
        except ValueError:
            return
        statements = policy.get("Statement", []) if isinstance(policy, dict) else []
        for statement in statements if isinstance(statements, list) else []:
            if isinstance(statement, dict) and statement.get("Effect") == "Allow":
                principal = statement.get("Principal")
                if principal == "*" or (
                    isinstance(principal, dict) and principal.get("AWS") in ("*", ["*"])
                ):
                    self.result.add(
                        "public-policy",
                        HIGH,
                        "the bucket policy allows anyone (Principal *)",
                        f"s3://{self.bucket}?policy",
                    )
                    return

    def _acl(self) -> None:
        answer = self._get("acl")
        text = answer.body.decode("utf-8", errors="replace")
        if answer.status == 200 and re.search(
            r"/groups/global/(AllUsers|AuthenticatedUsers)", text
        ):
            self.result.add(
                "public-acl",
                HIGH,
                "the bucket ACL grants access to everyone",
                f"s3://{self.bucket}?acl",
            )
