"""The patient's log extract as a PDF, in Swedish or English (R18).

A readable rendering of the JSON extract: the JSON, with its proofs, is the
evidence; the PDF says where to get it checked.  Drawn with fpdf2's core
fonts (Latin-1, which holds å, ä and ö); nothing is written to disk.
"""

from __future__ import annotations

from typing import Any, Final

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from callvault.core.errors import InvalidInput
from callvault.core.extract_verify import HOW

LANGUAGES: Final = ("sv", "en")

_TEXT: Final[dict[str, dict[str, str]]] = {
    "en": {
        "title": "Log extract: access to your recorded calls",
        "intro": (
            "This extract lists every recorded access to the recordings of your calls: "
            "which care unit (and, where shown, which user) accessed which recording, when "
            "and how. Times are in UTC."
        ),
        "recordings": "Your recordings",
        "accesses": "Accesses",
        "none": "No accesses are recorded.",
        "cols": "Time (UTC)|Care unit|User|Role|How|Outcome|Recording",
        "rec_cols": "Recording|Call started (UTC)|Care unit|State",
        "proof": (
            "Each entry carries a cryptographic proof against the signed log checkpoint "
            "of size {size}. The JSON version of this extract can be checked by anyone with "
            "the care provider's published verifier key: callvault audit verify-extract FILE "
            "--key KEY."
        ),
        "generated": "Produced {when} by {origin}",
    },
    "sv": {
        "title": "Loggutdrag: åtkomst till dina inspelade samtal",
        "intro": (
            "Utdraget visar varje registrerad åtkomst till inspelningarna av dina samtal: "
            "vilken vårdenhet (och, där det visas, vilken användare) som tog del av vilken "
            "inspelning, när och hur. Tider anges i UTC."
        ),
        "recordings": "Dina inspelningar",
        "accesses": "Åtkomster",
        "none": "Inga åtkomster är registrerade.",
        "cols": "Tid (UTC)|Vårdenhet|Användare|Roll|Hur|Utfall|Inspelning",
        "rec_cols": "Inspelning|Samtalet började (UTC)|Vårdenhet|Status",
        "proof": (
            "Varje post har ett kryptografiskt bevis mot den signerade loggkontrollpunkten "
            "med storlek {size}. JSON-versionen av utdraget kan kontrolleras av vem som helst "
            "med vårdgivarens publicerade verifieringsnyckel: callvault audit verify-extract "
            "FIL --key NYCKEL."
        ),
        "generated": "Framtaget {when} av {origin}",
    },
}
_OUTCOME: Final = {
    "sv": {"success": "utförd", "denied": "nekad", "failed": "misslyckad"},
    "en": {"success": "done", "denied": "refused", "failed": "failed"},
}
_WIDTHS: Final = (36, 26, 26, 26, 30, 18, 28)
_REC_WIDTHS: Final = (70, 45, 40, 35)


def _latin1(text: object) -> str:
    return str(text).encode("latin-1", "replace").decode("latin-1")


def _how(code: str, lang: str) -> str:
    for known, en, sv in HOW.values():
        if known == code:
            return sv if lang == "sv" else en
    return code


def render(document: dict[str, Any], lang: str) -> bytes:
    """The PDF of an extract document; ``InvalidInput`` for an unknown language."""
    if lang not in LANGUAGES:
        raise InvalidInput("language must be sv or en")
    t = _TEXT[lang]
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_creator("callvault")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.multi_cell(0, 8, _latin1(t["title"]), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 9)
    pdf.multi_cell(0, 5, _latin1(t["intro"]), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)
    _table(
        pdf,
        t["recordings"],
        t["rec_cols"].split("|"),
        _REC_WIDTHS,
        [
            [r["recording_id"][:8], r["started_at"], r["care_unit"], r["state"]]
            for r in document["recordings"]
        ],
    )
    rows = [
        [
            e["time"][:19].replace("T", " "),
            e["care_unit"] or "-",
            e["user"] or "-",
            e["role"],
            _how(e["how"], lang),
            _OUTCOME[lang].get(e["outcome"], e["outcome"]),
            e["recording_id"][:8],
        ]
        for e in document["entries"]
    ]
    _table(pdf, t["accesses"], t["cols"].split("|"), _WIDTHS, rows or [[t["none"]]])
    pdf.ln(3)
    pdf.set_font("Helvetica", "", 8)
    proof = t["proof"].format(size=document["checkpoint_size"])
    pdf.multi_cell(0, 4, _latin1(proof), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    made = t["generated"].format(when=document["generated_at"], origin=document["origin"])
    pdf.multi_cell(0, 4, _latin1(made), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())


def _table(
    pdf: FPDF, title: str, cols: list[str], widths: tuple[int, ...], rows: list[list[str]]
) -> None:
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, _latin1(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "B", 8)
    for col, width in zip(cols, widths, strict=True):
        pdf.cell(width, 5, _latin1(col), border=1)
    pdf.ln()
    pdf.set_font("Helvetica", "", 8)
    for row in rows:
        if len(row) == 1:
            pdf.cell(sum(widths), 5, _latin1(row[0]), border=1)
        else:
            for value, width in zip(row, widths, strict=True):
                pdf.cell(width, 5, _latin1(value), border=1)
        pdf.ln()
