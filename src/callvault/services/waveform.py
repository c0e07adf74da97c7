"""A recording's waveform: its sealed peaks, opened for someone who may view it.

The peaks are stored sealed under the recording's key (``details.open_peaks``);
they are a coarse outline of loudness (at most 1000 min/max pairs), shown
beside the player.  Opening them is a view of the recording and is audited
like one (``recording:view`` with ``part: waveform``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from callvault.core.access import Operation, Principal
from callvault.core.audit import Action
from callvault.services import audit, keyring
from callvault.services.context import Vault
from callvault.services.details import open_peaks
from callvault.services.guard import flag, reachable

PEAK_SCALE = 127  # a stored value v means amplitude v / 127 of full scale


@dataclass(frozen=True)
class Waveform:
    """``peaks`` is min_0, max_0, min_1, max_1, ... each in -127..127."""

    recording_id: uuid.UUID
    duration_seconds: float
    peaks: list[int]


def waveform(vault: Vault, principal: Principal, recording_id: uuid.UUID) -> Waveform:
    """The peaks of one recording ``principal`` may view (empty if none were stored)."""
    row, decision = reachable(
        vault, principal, recording_id, Operation.RECORDING_VIEW, Action.RECORDING_VIEW
    )
    raw = b""
    if row.enc_peaks:
        raw = open_peaks(row.id, keyring.dek_for(vault, row), row.enc_peaks)
    detail: dict[str, str | int | bool | None] = {"part": "waveform", **(flag(decision) or {})}
    audit.record_alone(vault, principal, Action.RECORDING_VIEW, recording_id=row.id, detail=detail)
    # int8 two's complement, one byte each.
    peaks = [b - 256 if b > PEAK_SCALE else b for b in raw]
    return Waveform(row.id, row.duration_ms / 1000, peaks)
