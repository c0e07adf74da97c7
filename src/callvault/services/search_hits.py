"""Which recordings a search listed, provably (R18).

The search's one audit entry carries the Merkle root of the listed ids
(``detail.hits``); the ids themselves go to ``audit_search_hits`` in the same
transaction.  A patient's log extract can then prove that a search showed
one of the patient's recordings, without naming anything else it showed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from callvault.core.extract_verify import HITS_KEY, encode_root, hits_order, hits_root
from callvault.core.ports import Transaction


def detail(recording_ids: Iterable[uuid.UUID]) -> dict[str, str]:
    """The audit detail naming the hits' root; empty for a search that found nothing."""
    ordered = hits_order(recording_ids)
    return {HITS_KEY: encode_root(hits_root(ordered))} if ordered else {}


def store(tx: Transaction, seq: int, recording_ids: Iterable[uuid.UUID]) -> None:
    """Keep the hits of search entry ``seq``, in the order their root was built."""
    tx.review.add_search_hits(seq, hits_order(recording_ids))
