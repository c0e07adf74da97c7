"""The pure key hierarchy: bucket ids, DEK wrapping, bound associated data, metadata keys."""

from __future__ import annotations

import datetime as dt
import struct
import uuid
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callvault.core.errors import IntegrityError, InvalidInput
from callvault.core.keys import (
    HOLD,
    WRAPPED_DEK_LEN,
    BucketId,
    bucket_kek_ad,
    dek_wrap_ad,
    hold_kek_ad,
    metadata_key,
    new_bucket_kek,
    new_dek,
    new_dek_id,
    root_wrap_aad,
    seal,
    unseal,
    unwrap_dek,
    wrap_dek,
)

RECORDING = uuid.UUID("6f1c2a4e-8b0d-4c53-9a7e-2f4d1b3c5a60")
DEK_ID = bytes(range(16))
BUCKET = BucketId("2024-05", "record")
KEK = bytes(range(100, 132))
DEK = bytes(range(200, 232))


def _wrap(**overrides: object) -> bytes:
    fields: dict[str, object] = {
        "recording_id": RECORDING,
        "dek_id": DEK_ID,
        "bucket": BUCKET,
        "kek_version": 3,
    }
    fields.update(overrides)
    return wrap_dek(KEK, DEK, **fields)  # type: ignore[arg-type]


def _unwrap(wrapped: bytes, *, kek: bytes = KEK, **overrides: Any) -> bytes:
    fields: dict[str, object] = {
        "recording_id": RECORDING,
        "dek_id": DEK_ID,
        "bucket": BUCKET,
        "kek_version": 3,
    }
    fields.update(overrides)
    return unwrap_dek(kek, wrapped, **fields)  # type: ignore[arg-type]


class TestBucketId:
    def test_canonical_string_is_month_slash_class_and_parses_back(self) -> None:
        assert BUCKET.canonical() == "2024-05/record"
        assert str(BUCKET) == "2024-05/record"
        assert BucketId.parse("2024-05/record") == BUCKET

    @pytest.mark.parametrize(
        "month", ["2024-13", "2024-00", "2024-5", "24-05", "2024-05 ", "", "2024/05"]
    )
    def test_malformed_month_is_refused(self, month: str) -> None:
        with pytest.raises(InvalidInput):
            BucketId(month, "record")

    @pytest.mark.parametrize(
        "retention", ["", "Record", "a/b", "1record", "x" * 33, "rec ord", "1990"]
    )
    def test_malformed_retention_class_is_refused(self, retention: str) -> None:
        with pytest.raises(InvalidInput):
            BucketId("2024-05", retention)

    @pytest.mark.parametrize("text", ["2024-05", "2024-05/", "/record", "2024-05/record/x"])
    def test_parse_refuses_anything_but_canonical(self, text: str) -> None:
        with pytest.raises(InvalidInput):
            BucketId.parse(text)

    def test_call_month_is_taken_in_utc(self) -> None:
        stockholm_summer = dt.timezone(dt.timedelta(hours=2))
        started = dt.datetime(2024, 6, 1, 1, 30, tzinfo=stockholm_summer)
        assert BucketId.for_call(started, "quality") == BucketId("2024-05", "quality")

    def test_naive_call_time_is_refused(self) -> None:
        with pytest.raises(InvalidInput):
            BucketId.for_call(dt.datetime(2024, 6, 1), "record")


class TestFreshKeys:
    def test_deks_bucket_keks_and_dek_ids_are_random_and_sized(self) -> None:
        deks = {new_dek() for _ in range(64)}
        keks = {new_bucket_kek() for _ in range(64)}
        ids = {new_dek_id() for _ in range(64)}
        assert {len(k) for k in deks | keks} == {32}
        assert {len(i) for i in ids} == {16}
        assert len(deks) == len(keks) == len(ids) == 64


class TestWrapDek:
    def test_round_trip_returns_the_dek_in_61_bytes_with_format_byte(self) -> None:
        wrapped = _wrap()
        assert len(wrapped) == WRAPPED_DEK_LEN == 61
        assert wrapped[0] == 0x01
        assert DEK not in wrapped
        assert _unwrap(wrapped) == DEK

    def test_each_wrap_uses_a_fresh_nonce(self) -> None:
        assert _wrap() != _wrap()

    @pytest.mark.parametrize(
        "change",
        [
            {"recording_id": uuid.UUID("6f1c2a4e-8b0d-4c53-9a7e-2f4d1b3c5a61")},
            {"dek_id": bytes(range(1, 17))},
            {"bucket": BucketId("2024-06", "record")},
            {"bucket": BucketId("2024-05", "quality")},
            {"bucket": HOLD},
            {"kek_version": 4},
        ],
        ids=["recording", "dek_id", "month", "retention_class", "hold_scope", "kek_version"],
    )
    def test_changing_any_bound_field_raises_integrity_error(self, change: dict[str, Any]) -> None:
        wrapped = _wrap()
        with pytest.raises(IntegrityError):
            _unwrap(wrapped, **change)

    def test_other_bucket_kek_raises_integrity_error(self) -> None:
        with pytest.raises(IntegrityError):
            _unwrap(_wrap(), kek=new_bucket_kek())

    def test_flipped_bit_anywhere_raises_integrity_error(self) -> None:
        wrapped = _wrap()
        for index in range(len(wrapped)):
            for bit in range(8):
                tampered = bytearray(wrapped)
                tampered[index] ^= 1 << bit
                with pytest.raises(IntegrityError):
                    _unwrap(bytes(tampered))

    @pytest.mark.parametrize("cut", [slice(0, 60), slice(1, 61), slice(0, 0)])
    def test_wrong_length_raises_integrity_error(self, cut: slice) -> None:
        with pytest.raises(IntegrityError):
            _unwrap(_wrap()[cut])

    def test_hold_scope_round_trips_and_differs_from_every_bucket(self) -> None:
        wrapped = _wrap(bucket=HOLD)
        assert _unwrap(wrapped, bucket=HOLD) == DEK
        with pytest.raises(IntegrityError):
            _unwrap(wrapped, bucket=BUCKET)

    @pytest.mark.parametrize(
        ("kek", "dek", "change"),
        [
            (KEK[:16], DEK, {}),
            (KEK, DEK[:31], {}),
            (KEK, DEK, {"dek_id": DEK_ID[:15]}),
            (KEK, DEK, {"kek_version": 0}),
            (KEK, DEK, {"kek_version": 2**32}),
            (KEK, DEK, {"kek_version": True}),
            (KEK, DEK, {"recording_id": str(RECORDING)}),
            (KEK, DEK, {"bucket": "2024-05/record"}),
        ],
    )
    def test_malformed_inputs_are_refused_before_encrypting(
        self, kek: bytes, dek: bytes, change: dict[str, object]
    ) -> None:
        fields: dict[str, object] = {
            "recording_id": RECORDING,
            "dek_id": DEK_ID,
            "bucket": BUCKET,
            "kek_version": 3,
        }
        fields.update(change)
        with pytest.raises(InvalidInput):
            wrap_dek(kek, dek, **fields)  # type: ignore[arg-type]

    @settings(max_examples=50, deadline=None)
    @given(
        dek=st.binary(min_size=32, max_size=32),
        recording=st.uuids(version=4),
        dek_id=st.binary(min_size=16, max_size=16),
        month=st.integers(1, 12),
        version=st.integers(1, 2**32 - 1),
    )
    def test_any_valid_dek_round_trips(
        self, dek: bytes, recording: uuid.UUID, dek_id: bytes, month: int, version: int
    ) -> None:
        bucket = BucketId(f"2031-{month:02d}", "quality")
        fields = {"recording_id": recording, "dek_id": dek_id, "bucket": bucket}
        wrapped = wrap_dek(KEK, dek, kek_version=version, **fields)  # type: ignore[arg-type]
        assert unwrap_dek(KEK, wrapped, kek_version=version, **fields) == dek  # type: ignore[arg-type]


class TestAssociatedDataLayouts:
    def test_dek_wrap_ad_matches_the_documented_layout(self) -> None:
        def lp(field: bytes) -> bytes:
            return struct.pack(">H", len(field)) + field

        expected = (
            b"callvault/dek-wrap/v1\x00"
            + lp(RECORDING.bytes)
            + lp(DEK_ID)
            + lp(b"bucket")
            + lp(b"2024-05/record")
            + struct.pack(">I", 3)
        )
        ad = dek_wrap_ad(recording_id=RECORDING, dek_id=DEK_ID, bucket=BUCKET, kek_version=3)
        assert ad == expected

    def test_bucket_and_hold_kek_ads_match_the_documented_layout(self) -> None:
        assert bucket_kek_ad(BUCKET, 7) == (
            b"callvault/bucket-kek/v1\x00\x00\x0e2024-05/record\x00\x00\x00\x07"
        )
        assert hold_kek_ad(7) == b"callvault/hold-kek/v1\x00\x00\x00\x00\x07"

    def test_bucket_kek_ad_differs_for_every_bucket_and_version(self) -> None:
        ads = {
            bucket_kek_ad(BucketId(month, retention), version)
            for month in ("2024-05", "2024-06")
            for retention in ("record", "quality")
            for version in (1, 2)
        }
        ads |= {hold_kek_ad(1), hold_kek_ad(2)}
        assert len(ads) == 10

    def test_root_wrap_aad_binds_the_root_version(self) -> None:
        assert root_wrap_aad(1, b"ad") != root_wrap_aad(2, b"ad")
        assert root_wrap_aad(1, b"ad") == b"callvault/root-wrap/v1\x00\x00\x00\x00\x01ad"


class TestSeal:
    def test_seal_layout_is_nonce_ciphertext_tag_and_binds_aad(self) -> None:
        blob = seal(KEK, b"hello", b"aad")
        assert len(blob) == 12 + 5 + 16
        assert unseal(KEK, blob, b"aad") == b"hello"
        with pytest.raises(IntegrityError):
            unseal(KEK, blob, b"aae")

    def test_short_blob_raises_integrity_error(self) -> None:
        with pytest.raises(IntegrityError):
            unseal(KEK, bytes(27), b"")


class TestMetadataKey:
    def test_is_32_bytes_deterministic_and_not_the_dek(self) -> None:
        key = metadata_key(DEK, RECORDING)
        assert len(key) == 32
        assert key == metadata_key(DEK, RECORDING)
        assert key != DEK

    def test_differs_per_recording_and_per_dek(self) -> None:
        other_recording = uuid.UUID("6f1c2a4e-8b0d-4c53-9a7e-2f4d1b3c5a61")
        keys = {
            metadata_key(DEK, RECORDING),
            metadata_key(DEK, other_recording),
            metadata_key(KEK, RECORDING),
        }
        assert len(keys) == 3

    def test_refuses_a_dek_of_the_wrong_size(self) -> None:
        with pytest.raises(InvalidInput):
            metadata_key(DEK[:16], RECORDING)


def test_bucket_ids_are_frozen_values() -> None:
    with pytest.raises(AttributeError):
        BUCKET.month = "2024-06"  # type: ignore[misc]
    assert replace(BUCKET, month="2024-06") == BucketId("2024-06", "record")
