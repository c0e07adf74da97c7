"""What names give away: audio extensions and personal identifiers in paths."""

from __future__ import annotations

import datetime as dt
import posixpath

from callvault.services.exposure.model import HIGH, TargetResult, identifier_kinds, mask

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".mp3", ".gsm", ".ogg", ".opus", ".m4a", ".wma", ".au", ".aif", ".aiff"}
    | {".flac", ".amr", ".vox", ".spx", ".mp2", ".wave"}
)

PII_IN_NAMES = "personal-data-in-names"
_PII_TITLE = "phone numbers or personnummer in file or folder names"


def has_audio_extension(name: str) -> bool:
    return posixpath.splitext(name.lower())[1] in AUDIO_EXTENSIONS


def check_name(result: TargetResult, name: str, shown: str, today: dt.date) -> bool:
    """Record a finding if ``name`` (one path segment) carries an identifier.

    ``shown`` is the path to print as the example; it is masked here.
    """
    kinds = identifier_kinds(name, today)
    if not kinds:
        return False
    result.add(PII_IN_NAMES, HIGH, _PII_TITLE, mask(shown, today))
    for kind in sorted(kinds):
        result.bump(f"names_with_{kind}")
    return True
