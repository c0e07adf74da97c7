"""The JobDataRepo port: recording id ranges and waveform peaks for the job kinds."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select, update
from sqlalchemy import exc as sa_exc

from callvault.adapters.db.schema import recordings
from callvault.adapters.db.store import translate
from callvault.adapters.jobs.sql import read_all
from callvault.core.recordings import ACTIVE


class SqlJobData:
    """The JobDataRepo port: recording id ranges and peaks, on the vault's engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def recording_ids(
        self, lo: uuid.UUID, hi: uuid.UUID, after: uuid.UUID | None, limit: int
    ) -> list[uuid.UUID]:
        where = and_(recordings.c.id >= lo, recordings.c.id <= hi)
        if after is not None:
            where = and_(where, recordings.c.id > after)
        query = select(recordings.c.id).where(where).order_by(recordings.c.id).limit(limit)
        return [r.id for r in self._all(query)]

    def count_recordings(self, lo: uuid.UUID, hi: uuid.UUID) -> int:
        query = select(func.count()).where(and_(recordings.c.id >= lo, recordings.c.id <= hi))
        return int(self._all(query)[0][0])

    def missing_peaks(self, after: uuid.UUID | None, limit: int) -> list[uuid.UUID]:
        where = and_(
            recordings.c.state == ACTIVE,
            or_(recordings.c.enc_peaks.is_(None), func.length(recordings.c.enc_peaks) == 0),
        )
        if after is not None:
            where = and_(where, recordings.c.id > after)
        query = select(recordings.c.id).where(where).order_by(recordings.c.id).limit(limit)
        return [r.id for r in self._all(query)]

    def set_peaks_if_missing(self, recording_id: uuid.UUID, enc_peaks: bytes) -> bool:
        try:
            with self._engine.begin() as conn:
                result = conn.execute(
                    update(recordings)
                    .where(
                        and_(
                            recordings.c.id == recording_id,
                            recordings.c.state == ACTIVE,
                            or_(
                                recordings.c.enc_peaks.is_(None),
                                func.length(recordings.c.enc_peaks) == 0,
                            ),
                        )
                    )
                    .values(enc_peaks=enc_peaks)
                )
                return result.rowcount == 1
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc) from exc

    def _all(self, query: Any) -> list[Any]:
        return read_all(self._engine, query)
