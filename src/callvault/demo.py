"""``make run``: a demo vault in ./var with the bundled sample calls ingested,
then the HTTPS service on https://127.0.0.1:8443 in the foreground.

The demo keeps a random passphrase in ``var/demo-passphrase`` (mode 0600) so
that the commands it suggests work without a prompt.  A real vault keeps its
passphrase away from the machine (or uses an HSM); see docs/operations.md.
There is no default account: the first administrator is made with
``callvault users create-admin``, which prints a one-time enrolment link.
"""

from __future__ import annotations

import csv
import os
import secrets
import shlex
import sys
from pathlib import Path

from callvault.bootstrap import prepare_tls, run_cli, tls_files, tls_fingerprint
from callvault.config import Settings
from callvault.core.errors import CallvaultError

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
        rows = list(csv.DictReader(handle))
    # Purpose before recording (R19): the sample units get a policy first.
    units = sorted({row["care_unit"] for row in rows})
    _run(
        "policies", "set", "--class", "record", *(a for u in units for a in ("--care-unit", u)),
        "--purpose", "Advice calls kept as part of the patient record",
        "--legal-basis", "Patient Data Act, chapter 3: keeping patient records",
    )  # fmt: skip
    for row in rows:
        args = ["ingest", str(SAMPLES / row["file"]), "--care-unit", row["care_unit"]]
        args += ["--started-at", row["started_at"], "--agent", row["agent"]]
        args += ["--call-id", row["call_id"], "--caller", row["caller"]]
        if row["personnummer"]:
            args += ["--personnummer", row["personnummer"]]
        _run(*args)
    try:
        settings = Settings.from_env()
        # A vault made before the service existed has no certificate yet.
        prepare_tls(settings)
        print(_instructions(home, settings), flush=True)
    except CallvaultError as exc:
        print(f"callvault: error: {exc.message} [{exc.code}]", file=sys.stderr)
        return exc.exit_code
    return run_cli(["serve"])


def _instructions(home: Path, settings: Settings) -> str:
    env = f"export CALLVAULT_HOME={shlex.quote(str(home))} "
    env += f"CALLVAULT_PASSPHRASE_FILE={shlex.quote(os.environ['CALLVAULT_PASSPHRASE_FILE'])}"
    cv = f"{shlex.quote(sys.prefix)}/bin/callvault"
    host = settings.bind_host
    url = f"https://{f'[{host}]' if ':' in host else host}:{settings.bind_port}"
    cert = shlex.quote(str(tls_files(settings).cert))
    return f"""
The demo vault is ready in {home}
(data in {home}/data, the sealed key file in {home}/keys, outside the data).

The HTTPS service starts below on {url} (Ctrl+C stops it).
Its certificate is self-signed for localhost: {cert}
  SHA-256 fingerprint {tls_fingerprint(settings)}
  curl --cacert {cert} {url}/healthz

There are no default accounts. To sign in, create the first administrator
in another shell:
  {env}
  {cv} users create-admin <name>
and open the link it prints in a browser: it asks for a password, shows a QR
code for the authenticator app and the recovery codes once, then signs you in
at {url}/ (the API works too: README.md, "Signing in"). That administrator
creates the other users and care units on the Administration pages.

The command line works in that shell too, audited under your user name:
  {cv} search --caller 070-174 06 05
  {cv} show <id from the search>
  {cv} audit tail
  {cv} audit verify
"""


if __name__ == "__main__":
    raise SystemExit(main())
