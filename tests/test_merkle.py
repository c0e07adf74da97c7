"""The RFC 6962 tree, its proofs, the frontier, and signed checkpoints (R14, R18)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callvault.core import merkle, notes
from callvault.core.errors import AuditTampered, InvalidInput
from callvault.core.merkle import Frontier
from callvault.core.notes import Checkpoint

# --- a naive reference, written straight from the RFC 9162 §2.1 definitions ---


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return d[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], whole: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if whole else [ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, d[:k], whole), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(f"entry {i}".encode()) for i in range(n)]


ALL = leaves(70)
ROOTS = [ref_mth(ALL[:n]) for n in range(71)]

# --- hashes and roots ------------------------------------------------------------


def test_leaf_and_node_hashes_use_distinct_domain_prefixes() -> None:
    assert merkle.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    a, b = bytes(32), bytes([1]) * 32
    assert merkle.node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()


def test_root_of_empty_tree_is_hash_of_empty_string() -> None:
    assert merkle.root_from_leaf_hashes([]) == hashlib.sha256(b"").digest()
    assert Frontier().root() == merkle.EMPTY_ROOT


def test_root_matches_reference_for_every_size_up_to_70() -> None:
    for n in range(71):
        assert merkle.root_from_leaf_hashes(ALL[:n]) == ROOTS[n], n


def test_frontier_root_matches_reference_after_every_append() -> None:
    frontier = Frontier()
    assert frontier.root() == ROOTS[0]
    for n, leaf in enumerate(ALL, start=1):
        frontier.append(leaf)
        assert frontier.size == n
        assert frontier.root() == ROOTS[n], n


def test_frontier_round_trips_through_bytes_at_every_size() -> None:
    frontier = Frontier()
    for n in range(71):
        data = frontier.to_bytes()
        assert len(data) == 9 + 32 * bin(n).count("1")
        restored = Frontier.from_bytes(data)
        assert restored == frontier
        assert restored.size == n and restored.root() == ROOTS[n]
        # A restored frontier keeps growing exactly like the original.
        if n < 70:
            restored.append(ALL[n])
            frontier.append(ALL[n])
            assert restored.root() == frontier.root() == ROOTS[n + 1]


def test_frontier_copy_is_independent() -> None:
    frontier = Frontier()
    frontier.extend(ALL[:5])
    clone = frontier.copy()
    clone.append(ALL[5])
    assert frontier.root() == ROOTS[5] and clone.root() == ROOTS[6]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01" + (1).to_bytes(8, "big"),  # one leaf promised, none given
        b"\x02" + (0).to_bytes(8, "big"),  # unknown version
        b"\x01" + (3).to_bytes(8, "big") + bytes(32),  # size 3 needs two roots
        b"\x01" + (1).to_bytes(8, "big") + bytes(33),
        b"\x01" + (1 << 63).to_bytes(8, "big") + bytes(32),  # size beyond 2**63 - 1
    ],
)
def test_malformed_frontier_bytes_raise_audit_tampered(data: bytes) -> None:
    with pytest.raises(AuditTampered):
        Frontier.from_bytes(data)


def test_frontier_refuses_a_leaf_that_is_not_a_hash() -> None:
    with pytest.raises(InvalidInput):
        Frontier().append(b"entry bytes, not a hash")


# --- inclusion proofs --------------------------------------------------------------


def test_inclusion_proofs_match_reference_and_verify_for_all_indices_up_to_70() -> None:
    for n in range(1, 71):
        for m in range(n):
            proof = merkle.inclusion_proof(ALL, m, n)
            assert proof == ref_path(m, ALL[:n]), (m, n)
            assert merkle.verify_inclusion(ALL[m], m, n, proof, ROOTS[n]), (m, n)


def test_batched_inclusion_proofs_equal_single_ones_on_a_cached_tree() -> None:
    hashes = leaves(700)  # big enough for the subtree cache to be used
    root = ref_mth(hashes)
    indices = [0, 1, 63, 64, 255, 256, 511, 512, 600, 698, 699]
    batch = merkle.inclusion_proofs(hashes, indices, 700)
    for index, proof in zip(indices, batch, strict=True):
        assert proof == ref_path(index, hashes) == merkle.inclusion_proof(hashes, index, 700)
        assert merkle.verify_inclusion(hashes[index], index, 700, proof, root)


def test_inclusion_proof_fails_for_wrong_leaf_index_size_or_root() -> None:
    for n in range(1, 40):
        for m in range(n):
            proof = merkle.inclusion_proof(ALL, m, n)
            other = (m + 1) % n
            if other != m:
                assert not merkle.verify_inclusion(ALL[m], other, n, proof, ROOTS[n])
                assert not merkle.verify_inclusion(ALL[other], m, n, proof, ROOTS[n])
            assert not merkle.verify_inclusion(ALL[m], m, n + 1, proof, ROOTS[n + 1])
            if n & (n - 1) == 0:
                # A perfect tree's proof is one level short for size n + 1,
                # even though it still hashes up to the old root.
                assert not merkle.verify_inclusion(ALL[m], m, n + 1, proof, ROOTS[n])
            assert not merkle.verify_inclusion(ALL[m], m, n, proof, ROOTS[n - 1])
            assert not merkle.verify_inclusion(ALL[m], m, n, [*proof, ROOTS[0]], ROOTS[n])
            if proof:
                assert not merkle.verify_inclusion(ALL[m], m, n, proof[:-1], ROOTS[n])


def test_inclusion_verifier_rejects_out_of_range_and_malformed_input() -> None:
    proof = merkle.inclusion_proof(ALL, 3, 8)
    assert not merkle.verify_inclusion(ALL[3], 8, 8, proof, ROOTS[8])
    assert not merkle.verify_inclusion(ALL[3], -1, 8, proof, ROOTS[8])
    assert not merkle.verify_inclusion(ALL[3][:31], 3, 8, proof, ROOTS[8])
    assert not merkle.verify_inclusion(ALL[3], 3, 8, [p[:31] for p in proof], ROOTS[8])
    assert merkle.verify_inclusion(ALL[0], 0, 1, [], ROOTS[1])


def test_inclusion_proof_refuses_index_or_size_out_of_range() -> None:
    for index, size in [(5, 5), (-1, 5), (0, 0), (0, 71)]:
        with pytest.raises(InvalidInput):
            merkle.inclusion_proof(ALL, index, size)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_flipped_bit_in_an_inclusion_proof_fails(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 300))
    m = data.draw(st.integers(0, n - 1))
    hashes = leaves(n)
    root = ref_mth(hashes)
    proof = merkle.inclusion_proof(hashes, m, n)
    assert merkle.verify_inclusion(hashes[m], m, n, proof, root)
    i = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 255))
    bad = bytearray(proof[i])
    bad[bit // 8] ^= 1 << (bit % 8)
    proof[i] = bytes(bad)
    assert not merkle.verify_inclusion(hashes[m], m, n, proof, root)


# --- consistency proofs --------------------------------------------------------------


def test_consistency_proofs_match_reference_and_verify_for_all_pairs_up_to_40() -> None:
    for n in range(1, 41):
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(ALL, m, n)
            assert proof == ref_subproof(m, ALL[:n], True), (m, n)
            assert merkle.verify_consistency(m, n, ROOTS[m], ROOTS[n], proof), (m, n)


def test_consistency_proof_fails_for_wrong_roots_sizes_or_proof() -> None:
    for n in range(2, 41):
        for m in range(1, n):
            proof = merkle.consistency_proof(ALL, m, n)
            assert not merkle.verify_consistency(m, n, ROOTS[m - 1], ROOTS[n], proof)
            assert not merkle.verify_consistency(m, n, ROOTS[m], ROOTS[n - 1], proof)
            assert not merkle.verify_consistency(m, n + 1, ROOTS[m], ROOTS[n + 1], proof)
            assert not merkle.verify_consistency(m - 1, n, ROOTS[m - 1], ROOTS[n], proof)
            assert not merkle.verify_consistency(m, n, ROOTS[m], ROOTS[n], proof[:-1])
            assert not merkle.verify_consistency(m, n, ROOTS[m], ROOTS[n], [*proof, ROOTS[1]])
            for i in range(len(proof)):
                bad = list(proof)
                bad[i] = hashlib.sha256(bad[i]).digest()
                assert not merkle.verify_consistency(m, n, ROOTS[m], ROOTS[n], bad), (m, n, i)


def test_trivial_consistency_cases() -> None:
    assert merkle.consistency_proof(ALL, 0, 10) == []
    assert merkle.consistency_proof(ALL, 10, 10) == []
    assert merkle.verify_consistency(0, 10, merkle.EMPTY_ROOT, ROOTS[10], [])
    assert not merkle.verify_consistency(0, 10, ROOTS[1], ROOTS[10], [])
    assert merkle.verify_consistency(10, 10, ROOTS[10], ROOTS[10], [])
    assert not merkle.verify_consistency(10, 10, ROOTS[10], ROOTS[9], [])
    assert not merkle.verify_consistency(10, 10, ROOTS[10], ROOTS[10], [ROOTS[1]])
    assert not merkle.verify_consistency(11, 10, ROOTS[11], ROOTS[10], [])
    assert not merkle.verify_consistency(3, 10, ROOTS[3], ROOTS[10], [])


def test_consistency_proof_refuses_sizes_out_of_range() -> None:
    for old, new in [(5, 4), (-1, 4), (1, 71)]:
        with pytest.raises(InvalidInput):
            merkle.consistency_proof(ALL, old, new)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_consistency_holds_for_random_sizes_up_to_600(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 600))
    m = data.draw(st.integers(1, n))
    hashes = leaves(n)
    proof = merkle.consistency_proof(hashes, m, n)
    assert proof == ref_subproof(m, hashes, True)
    old, new = ref_mth(hashes[:m]), ref_mth(hashes)
    assert merkle.verify_consistency(m, n, old, new, proof)
    if m < n:
        forked = [*hashes[: m - 1], merkle.leaf_hash(b"forged"), *hashes[m:]]
        assert not merkle.verify_consistency(m, n, old, ref_mth(forked), proof)


# --- signed checkpoints ------------------------------------------------------------------

SEED = bytes(range(32))
NAME = "vault.example/audit"
PUBLIC = notes.public_key_from_seed(SEED)
CP = Checkpoint("vault.example/audit", 70, ROOTS[70])

# The signed-note example of golang.org/x/mod/sumdb/note (Ed25519 is
# deterministic, so signing the same text must reproduce it byte for byte).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZIn"
    "NIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_signed_note_matches_the_go_reference_byte_for_byte() -> None:
    seed = base64.b64decode(GO_SKEY.split("+", 4)[4])[1:]
    assert notes.sign_note(GO_TEXT, seed, "PeterNeumann") == GO_NOTE
    assert notes.verifier_key_string("PeterNeumann", notes.public_key_from_seed(seed)) == GO_VKEY
    name, public = notes.parse_verifier_key(GO_VKEY)
    assert notes.open_note(GO_NOTE, public, name) == GO_TEXT


def test_checkpoint_note_has_the_tlog_checkpoint_shape() -> None:
    note = notes.sign_checkpoint(CP, SEED, NAME)
    body, sig = note.split("\n\n")
    assert body == f"vault.example/audit\n70\n{base64.b64encode(ROOTS[70]).decode()}"
    dash, name, payload = sig.rstrip("\n").split(" ")
    assert (dash, name) == ("\u2014", NAME)
    raw = base64.b64decode(payload)
    key_id = hashlib.sha256(NAME.encode() + b"\n\x01" + PUBLIC).digest()[:4]
    assert len(raw) == 68 and raw[:4] == key_id


def test_checkpoint_round_trips_through_sign_and_verify() -> None:
    note = notes.sign_checkpoint(CP, SEED, NAME)
    assert notes.parse_and_verify_checkpoint(note, PUBLIC, NAME) == CP
    empty = Checkpoint("o", 0, merkle.EMPTY_ROOT)
    assert (
        notes.parse_and_verify_checkpoint(notes.sign_checkpoint(empty, SEED, NAME), PUBLIC, NAME)
        == empty
    )


def test_checkpoint_with_wrong_public_key_or_key_name_is_refused() -> None:
    note = notes.sign_checkpoint(CP, SEED, NAME)
    other = notes.public_key_from_seed(bytes(32))
    with pytest.raises(AuditTampered):
        notes.parse_and_verify_checkpoint(note, other, NAME)
    with pytest.raises(AuditTampered):
        notes.parse_and_verify_checkpoint(note, PUBLIC, "other.example/audit")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("\n70\n", "\n71\n"),  # size
        ("\n70\n", "\n070\n"),  # non-canonical size
        ("vault.example/audit\n", "vault.example/other\n"),  # origin
    ],
)
def test_edited_checkpoint_is_refused(old: str, new: str) -> None:
    note = notes.sign_checkpoint(CP, SEED, NAME)
    assert old in note
    with pytest.raises(AuditTampered):
        notes.parse_and_verify_checkpoint(note.replace(old, new, 1), PUBLIC, NAME)


def test_checkpoint_with_edited_root_is_refused() -> None:
    note = notes.sign_checkpoint(CP, SEED, NAME)
    root_line = note.split("\n")[2]
    forged = base64.b64encode(ROOTS[69]).decode()
    with pytest.raises(AuditTampered):
        notes.parse_and_verify_checkpoint(note.replace(root_line, forged), PUBLIC, NAME)


def test_checkpoint_with_flipped_signature_byte_is_refused() -> None:
    note = notes.sign_checkpoint(CP, SEED, NAME)
    body, sig = note.split("\n\n")
    dash, name, payload = sig.rstrip("\n").split(" ")
    raw = bytearray(base64.b64decode(payload))
    for index in (0, 4, 40, 67):  # key id, then signature bytes
        flipped = bytearray(raw)
        flipped[index] ^= 0x01
        forged = f"{body}\n\n{dash} {name} {base64.b64encode(flipped).decode()}\n"
        with pytest.raises(AuditTampered):
            notes.parse_and_verify_checkpoint(forged, PUBLIC, NAME)


def test_validly_signed_but_non_canonical_checkpoint_is_refused() -> None:
    root = base64.b64encode(ROOTS[5]).decode()
    assert root.endswith("=")
    # Base64 with non-zero padding bits decodes to the same root but is not
    # the form this log writes, so it is refused even with a good signature.
    padding_bits = root[:-2] + chr(ord(root[-2]) + 1) + "="
    assert base64.b64decode(padding_bits) == ROOTS[5]
    note = notes.sign_note(f"{NAME}\n5\n{padding_bits}\n", SEED, NAME)
    with pytest.raises(AuditTampered):
        notes.parse_and_verify_checkpoint(note, PUBLIC, NAME)


def test_cosignature_by_another_key_is_ignored_but_our_signature_is_required() -> None:
    note = notes.sign_checkpoint(CP, SEED, NAME)
    cosigned = notes.sign_checkpoint(CP, bytes(32), "witness.example")
    witness_line = cosigned.split("\n\n")[1]
    assert notes.parse_and_verify_checkpoint(note + witness_line, PUBLIC, NAME) == CP
    with pytest.raises(AuditTampered):
        notes.parse_and_verify_checkpoint(cosigned, PUBLIC, NAME)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda n: n.replace("\n\n", "\n"),  # no blank line
        lambda n: n.rstrip("\n"),  # no final newline
        lambda n: n.replace("\n\n", "\nextension line\n\n"),  # extension line
        lambda n: n.replace("\u2014 ", "- "),  # not an em dash
        lambda n: n + "garbage\n",
        lambda n: "\t" + n,
        lambda n: n + "x" * 70_000,
    ],
)
def test_malformed_note_is_refused(mangle: object) -> None:
    note = notes.sign_checkpoint(CP, SEED, NAME)
    assert callable(mangle)
    with pytest.raises(AuditTampered):
        notes.parse_and_verify_checkpoint(mangle(note), PUBLIC, NAME)


def test_verifier_key_round_trips_and_rejects_a_wrong_key_hash() -> None:
    vkey = notes.verifier_key_string(NAME, PUBLIC)
    assert vkey.startswith(f"{NAME}+") and vkey.count("+") >= 2
    assert notes.parse_verifier_key(vkey) == (NAME, PUBLIC)
    name, key_id, material = vkey.split("+", 2)
    wrong_id = f"{int(key_id, 16) ^ 1:08x}"
    with pytest.raises(InvalidInput):
        notes.parse_verifier_key(f"{name}+{wrong_id}+{material}")


@pytest.mark.parametrize("name", ["", "has space", "a+b", "tab\there"])
def test_key_names_with_spaces_or_plus_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        notes.sign_checkpoint(CP, SEED, name)


@pytest.mark.parametrize(
    ("origin", "size", "root"),
    [
        ("", 1, ROOTS[1]),
        ("a\nb", 1, ROOTS[1]),
        ("o", -1, ROOTS[1]),
        ("o", 1, b"short"),
        ("o", True, ROOTS[1]),
    ],
)
def test_invalid_checkpoint_fields_are_refused(origin: str, size: int, root: bytes) -> None:
    with pytest.raises(InvalidInput):
        Checkpoint(origin, size, root)


def test_signing_refuses_a_seed_of_the_wrong_length() -> None:
    with pytest.raises(InvalidInput):
        notes.sign_checkpoint(CP, bytes(31), NAME)
