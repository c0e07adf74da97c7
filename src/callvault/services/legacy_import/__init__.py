"""Legacy archive import (R26): an exposed recorder archive into vault records.

``run_import`` is the use case; the modules beside it each do one job:
``patterns`` (names to call details), ``sources`` (directory and web-listing
walks), ``journal`` (resumable progress without names), ``worker`` and
``pool`` (ingest, verify, originals, in parallel), ``verify``,
``originals`` and ``report``.
"""

from callvault.services.legacy_import.originals import KEEP, MOVE, SHRED, SHRED_WARNING
from callvault.services.legacy_import.patterns import PRESETS, PathPattern, parse_unit_map
from callvault.services.legacy_import.report import ImportReport, mask_path
from callvault.services.legacy_import.runner import ImportOptions, Progress, run_import

__all__ = [
    "KEEP",
    "MOVE",
    "PRESETS",
    "SHRED",
    "SHRED_WARNING",
    "ImportOptions",
    "ImportReport",
    "PathPattern",
    "Progress",
    "mask_path",
    "parse_unit_map",
    "run_import",
]
