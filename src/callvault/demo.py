"""``make run``: a demo vault in ./var with the bundled sample calls ingested.

The demo keeps a random passphrase in ``var/demo-passphrase`` (mode 0600) so
that the commands it suggests work without a prompt.  A real vault keeps its
passphrase away from the machine (or uses an HSM); see docs/operations.md.
"""

from __future__ import annotations

import csv
import os
import secrets
import shlex
import sys
from pathlib import Path

from callvault.bootstrap import run_cli

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"


def _passphrase_file(home: Path) -> Path:
    path = home / "demo-passphrase"
    if not path.exists():
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(24) + "\n")
    return path


def _run(*args: str) -> None:
    code = run_cli(list(args))
    if code != 0:
        raise SystemExit(code)


def main() -> int:
    os.umask(0o077)
    home = Path(os.environ.get("CALLVAULT_HOME", ROOT / "var")).resolve()
    os.environ["CALLVAULT_HOME"] = str(home)
    os.environ.setdefault("CALLVAULT_PASSPHRASE_FILE", str(_passphrase_file(home)))
    if not (home / "keys" / "callvault.key").exists():
        _run("init")
    with (SAMPLES / "manifest.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            args = ["ingest", str(SAMPLES / row["file"]), "--care-unit", row["care_unit"]]
            args += ["--started-at", row["started_at"], "--agent", row["agent"]]
            args += ["--call-id", row["call_id"], "--caller", row["caller"]]
            if row["personnummer"]:
                args += ["--personnummer", row["personnummer"]]
            _run(*args)
    env = f"export CALLVAULT_HOME={shlex.quote(str(home))} "
    env += f"CALLVAULT_PASSPHRASE_FILE={shlex.quote(os.environ['CALLVAULT_PASSPHRASE_FILE'])}"
    cv = f"{shlex.quote(sys.prefix)}/bin/callvault"
    print(
        f"""
The demo vault is ready in {home}
(data in {home}/data, the sealed key file in {home}/keys, outside the data).

Try, in this shell:
  {env}
  {cv} search --caller 070-174 06 05
  {cv} search --personnummer 121212+1212 --from 2019-01-01 --to 2019-12-31 --care-unit 1177-sthlm
  {cv} show <id from the search>
  {cv} export <id> -o /tmp/call.wav --reason "complaint 2019-77"
  {cv} verify
  {cv} keys status
  {cv} keys rotate
  {cv} audit tail
  {cv} audit verify

Every one of those is written to the audit log under your user name.
"""
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
