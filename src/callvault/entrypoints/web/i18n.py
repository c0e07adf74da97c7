"""Languages of the web UI: Swedish (the default) and English.

Each language is a flat catalogue ``key -> text`` in its own module
(``messages_sv``, ``messages_en``); both must hold the same keys (a test
checks).  Texts may hold ``{name}`` fields filled by :meth:`Translator.t`.
Dates are shown in Swedish time (Europe/Stockholm); numbers and dates follow
the language's conventions: ``1 234,5`` and ``2026-03-02 10:22`` in Swedish.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from callvault.entrypoints.web.messages_en import MESSAGES as ENGLISH
from callvault.entrypoints.web.messages_sv import MESSAGES as SWEDISH

DEFAULT_LANGUAGE = "sv"
CATALOGUES: dict[str, dict[str, str]] = {"sv": SWEDISH, "en": ENGLISH}
LANGUAGE_NAMES = {"sv": "Svenska", "en": "English"}
LANGUAGE_COOKIE = "cv_lang"
LOCAL_TIME = ZoneInfo("Europe/Stockholm")
_NBSP = "\u00a0"
_MONTHS_EN = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip


def choose(query: str | None, cookie: str | None) -> str:
    """The language asked for in the query, else the cookie's, else Swedish."""
    for wanted in (query, cookie):
        if wanted in CATALOGUES:
            return str(wanted)
    return DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Translator:
    """Texts, numbers and times in one language; handed to every template as ``i18n``."""

    lang: str

    def t(self, key: str, **fields: object) -> str:
        """The text of ``key``; a missing key shows itself, so it is noticed, never hidden."""
        text = CATALOGUES[self.lang].get(key) or CATALOGUES[DEFAULT_LANGUAGE].get(key) or key
        return text.format(**fields) if fields else text

    def number(self, value: float, decimals: int = 0) -> str:
        text = f"{value:,.{decimals}f}"
        if self.lang == "sv":
            # 1,234.5 -> 1 234,5 (non-breaking space groups, decimal comma)
            text = text.replace(",", _NBSP).replace(".", ",")
        return text

    def datetime(self, moment: dt.datetime | None) -> str:
        if moment is None:
            return ""
        local = moment.astimezone(LOCAL_TIME)
        if self.lang == "sv":
            return local.strftime("%Y-%m-%d %H:%M")
        return f"{local.day} {_MONTHS_EN[local.month - 1]} {local.year}, {local:%H:%M}"

    def time(self, moment: dt.datetime | None) -> str:
        return "" if moment is None else moment.astimezone(LOCAL_TIME).strftime("%H:%M")

    def duration(self, seconds: float) -> str:
        """``m:ss`` (or ``h:mm:ss``), the same in both languages."""
        whole = round(seconds)
        hours, rest = divmod(whole, 3600)
        minutes, secs = divmod(rest, 60)
        return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"

    def bytes(self, size: int) -> str:
        if size >= 1024 * 1024:
            return f"{self.number(size / (1024 * 1024), 1)}{_NBSP}MB"
        return f"{self.number(size / 1024, 0)}{_NBSP}kB"
