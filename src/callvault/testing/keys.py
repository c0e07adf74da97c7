"""The KeyProvider conformance suite: every provider's tests run all of it.

Mix :class:`KeyProviderConformance` into a test class that defines two fixtures::

    make_provider  () -> KeyProvider
        a new provider on new, independent storage (a new key file, a new
        label prefix on the token, ...); the fixture closes what it made
    reopen         (KeyProvider) -> KeyProvider
        close the given provider and open its storage again, as a restarted
        process would

Every test here states a clause of the ``KeyProvider`` docstrings in
``callvault.core.ports``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from callvault.core.errors import Conflict, IntegrityError, KeyUnavailable, NotFound
from callvault.core.keys import BucketId, bucket_kek_ad, new_bucket_kek
from callvault.core.ports import KeyProvider

MakeProvider = Callable[[], KeyProvider]
Reopen = Callable[[KeyProvider], KeyProvider]

AD = b"callvault/test-ad\x00bucket 2024-05/record v1"
SECRET = bytes(range(32))


class KeyProviderConformance:
    """Behaviour every KeyProvider shares.  Subclasses supply the two fixtures."""

    @pytest.fixture
    def provider(self, make_provider: MakeProvider) -> KeyProvider:
        return make_provider()

    def test_new_provider_holds_exactly_one_version_which_is_current(
        self, provider: KeyProvider
    ) -> None:
        assert provider.versions() == [provider.current_version()]

    @pytest.mark.parametrize("plaintext", [b"", b"k", SECRET, bytes(4096)])
    def test_wrap_then_unwrap_returns_the_plaintext(
        self, provider: KeyProvider, plaintext: bytes
    ) -> None:
        version, blob = provider.wrap(plaintext, AD)
        assert provider.unwrap(version, blob, AD) == plaintext

    def test_wrap_reports_the_current_version(self, provider: KeyProvider) -> None:
        version, _ = provider.wrap(SECRET, AD)
        assert version == provider.current_version()

    def test_wrap_never_repeats_a_blob_and_hides_the_plaintext(self, provider: KeyProvider) -> None:
        _, first = provider.wrap(SECRET, AD)
        _, second = provider.wrap(SECRET, AD)
        assert first != second
        assert SECRET not in first

    @pytest.mark.parametrize("other_ad", [b"", AD[:-1], AD + b"\x00", AD.replace(b"v1", b"v2")])
    def test_unwrap_with_other_associated_data_raises_integrity_error(
        self, provider: KeyProvider, other_ad: bytes
    ) -> None:
        version, blob = provider.wrap(SECRET, AD)
        with pytest.raises(IntegrityError):
            provider.unwrap(version, blob, other_ad)

    def test_flipped_bit_anywhere_in_blob_raises_integrity_error(
        self, provider: KeyProvider
    ) -> None:
        version, blob = provider.wrap(SECRET, AD)
        for index in range(len(blob)):
            tampered = bytearray(blob)
            tampered[index] ^= 1 << (index % 8)
            with pytest.raises(IntegrityError):
                provider.unwrap(version, bytes(tampered), AD)

    def test_truncated_extended_or_empty_blob_raises_integrity_error(
        self, provider: KeyProvider
    ) -> None:
        version, blob = provider.wrap(SECRET, AD)
        for bad in (b"", blob[:12], blob[:28], blob[:-1], blob + b"\x00", blob[1:]):
            with pytest.raises(IntegrityError):
                provider.unwrap(version, bad, AD)

    def test_unwrap_under_a_version_never_held_raises_key_unavailable(
        self, provider: KeyProvider
    ) -> None:
        version, blob = provider.wrap(SECRET, AD)
        with pytest.raises(KeyUnavailable):
            provider.unwrap(version + 1000, blob, AD)

    def test_rotate_makes_a_new_higher_version_current_for_new_wraps(
        self, provider: KeyProvider
    ) -> None:
        old = provider.current_version()
        new = provider.rotate()
        assert new > old
        assert provider.current_version() == new
        assert provider.versions() == [old, new]
        version, blob = provider.wrap(SECRET, AD)
        assert version == new
        assert provider.unwrap(new, blob, AD) == SECRET

    def test_rotate_keeps_blobs_of_older_versions_unwrappable(self, provider: KeyProvider) -> None:
        old_version, old_blob = provider.wrap(SECRET, AD)
        provider.rotate()
        provider.rotate()
        assert provider.unwrap(old_version, old_blob, AD) == SECRET

    def test_blob_presented_under_another_held_version_raises_integrity_error(
        self, provider: KeyProvider
    ) -> None:
        old_version, old_blob = provider.wrap(SECRET, AD)
        new_version = provider.rotate()
        with pytest.raises(IntegrityError):
            provider.unwrap(new_version, old_blob, AD)
        new_blob = provider.wrap(SECRET, AD)[1]
        with pytest.raises(IntegrityError):
            provider.unwrap(old_version, new_blob, AD)

    def test_retire_destroys_a_version_so_its_blobs_raise_key_unavailable(
        self, provider: KeyProvider
    ) -> None:
        old_version, old_blob = provider.wrap(SECRET, AD)
        new_version = provider.rotate()
        provider.retire(old_version)
        assert provider.versions() == [new_version]
        with pytest.raises(KeyUnavailable):
            provider.unwrap(old_version, old_blob, AD)

    def test_retire_of_the_current_version_raises_conflict_and_keeps_it(
        self, provider: KeyProvider
    ) -> None:
        version, blob = provider.wrap(SECRET, AD)
        with pytest.raises(Conflict):
            provider.retire(version)
        assert provider.versions() == [version]
        assert provider.unwrap(version, blob, AD) == SECRET

    def test_retire_of_an_unknown_version_raises_not_found(self, provider: KeyProvider) -> None:
        with pytest.raises(NotFound):
            provider.retire(provider.current_version() + 1000)

    def test_index_key_and_audit_seed_are_distinct_32_byte_secrets(
        self, provider: KeyProvider
    ) -> None:
        index_key, seed = provider.index_key(), provider.audit_signing_seed()
        assert len(index_key) == 32
        assert len(seed) == 32
        assert index_key != seed
        assert len(set(index_key)) > 8  # not a constant or a counter

    def test_versions_secrets_and_blobs_survive_reopen(
        self, provider: KeyProvider, reopen: Reopen
    ) -> None:
        index_key, seed = provider.index_key(), provider.audit_signing_seed()
        old_version, old_blob = provider.wrap(SECRET, AD)
        new_version = provider.rotate()
        reopened = reopen(provider)
        assert reopened.versions() == [old_version, new_version]
        assert reopened.current_version() == new_version
        assert reopened.unwrap(old_version, old_blob, AD) == SECRET
        assert reopened.index_key() == index_key
        assert reopened.audit_signing_seed() == seed

    def test_retirement_survives_reopen(self, provider: KeyProvider, reopen: Reopen) -> None:
        old_version, old_blob = provider.wrap(SECRET, AD)
        provider.rotate()
        provider.retire(old_version)
        reopened = reopen(provider)
        assert old_version not in reopened.versions()
        with pytest.raises(KeyUnavailable):
            reopened.unwrap(old_version, old_blob, AD)

    def test_rotation_and_retirement_leave_index_key_and_audit_seed_alone(
        self, provider: KeyProvider
    ) -> None:
        index_key, seed = provider.index_key(), provider.audit_signing_seed()
        old = provider.current_version()
        provider.rotate()
        provider.retire(old)
        assert (provider.index_key(), provider.audit_signing_seed()) == (index_key, seed)

    def test_independent_providers_share_no_keys(self, make_provider: MakeProvider) -> None:
        first, second = make_provider(), make_provider()
        version, blob = first.wrap(SECRET, AD)
        assert second.current_version() == version
        with pytest.raises(IntegrityError):
            second.unwrap(version, blob, AD)
        assert first.index_key() != second.index_key()
        assert first.audit_signing_seed() != second.audit_signing_seed()

    def test_bucket_kek_round_trips_under_its_bound_associated_data(
        self, provider: KeyProvider
    ) -> None:
        bucket = BucketId("2024-05", "record")
        kek = new_bucket_kek()
        version, blob = provider.wrap(kek, bucket_kek_ad(bucket, 1))
        assert provider.unwrap(version, blob, bucket_kek_ad(bucket, 1)) == kek
        for other in (bucket_kek_ad(bucket, 2), bucket_kek_ad(BucketId("2024-06", "record"), 1)):
            with pytest.raises(IntegrityError):
                provider.unwrap(version, blob, other)
