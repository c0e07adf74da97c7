"""RFC 6962 / RFC 9162 Merkle tree: hashes, frontier and proofs.

Hashing (RFC 9162 §2.1.1), with ``‖`` for concatenation::

    leaf hash  = SHA-256(0x00 ‖ entry bytes)
    node hash  = SHA-256(0x01 ‖ left hash(32) ‖ right hash(32))
    MTH({})    = SHA-256("")

A tree of ``n > 1`` leaves splits at ``k``, the largest power of two below
``n``: its root is ``node(MTH(D[0:k]), MTH(D[k:n]))``.  The distinct prefixes
make a leaf never collide with an interior node (second pre-image defence).

Proofs follow RFC 9162 §2.1.3 (inclusion) and §2.1.4 (consistency).  Proof
*generation* takes the sequence of leaf hashes and costs O(size) hashing
(``inclusion_proofs`` shares that cost across many leaves of one tree);
*verification* costs O(log size) and needs nothing but the proof, so a
patient's log extract can be checked offline.  Verifiers return ``False`` for
every malformed or failing input and never raise.

Tree heads are published as signed checkpoints: see ``callvault.core.notes``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from callvault.core.errors import AuditTampered, InvalidInput

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 ‖ data): the hash of one log entry."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right): the hash of an interior node."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The roots of the perfect subtrees covering a log, left to right.

    A log of ``n`` leaves is the concatenation of perfect subtrees whose
    sizes are the set bits of ``n``, largest first; the frontier keeps one
    32-byte root per set bit.  Appending is amortised O(1) hashing (worst
    case O(log n)), the root is O(log n), and the whole state is at most
    64 hashes, so a store persists it next to the log and never re-reads
    old leaves to append or checkpoint.

    Serialised form (``to_bytes``)::

        +---------+-----------------+-------------------------------------+
        | 0x01    | size            | popcount(size) roots, 32 bytes each |
        | version | u64 big-endian  | largest (leftmost) subtree first    |
        +---------+-----------------+-------------------------------------+
    """

    __slots__ = ("_roots", "_size")
    _VERSION = 1
    _HEADER = 9

    def __init__(self) -> None:
        self._size = 0
        self._roots: list[bytes] = []

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash (not entry bytes) at index ``size``."""
        if len(leaf) != HASH_SIZE:
            raise InvalidInput("a leaf hash is 32 bytes")
        roots = self._roots
        roots.append(leaf)
        # Each trailing 1-bit of the old size is a perfect subtree the same
        # size as the one just completed: merge them, like a binary carry.
        n = self._size
        while n & 1:
            right = roots.pop()
            roots[-1] = _sha256(b"\x01" + roots[-1] + right).digest()
            n >>= 1
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """MTH of the leaves appended so far."""
        if not self._roots:
            return EMPTY_ROOT
        acc = self._roots[-1]
        for left in reversed(self._roots[:-1]):
            acc = node_hash(left, acc)
        return acc

    def copy(self) -> Frontier:
        clone = Frontier()
        clone._size = self._size
        clone._roots = list(self._roots)
        return clone

    def to_bytes(self) -> bytes:
        return bytes([self._VERSION]) + self._size.to_bytes(8, "big") + b"".join(self._roots)

    @classmethod
    def from_bytes(cls, data: bytes) -> Frontier:
        """Inverse of ``to_bytes``; ``AuditTampered`` if ``data`` is malformed."""
        if len(data) < cls._HEADER or data[0] != cls._VERSION:
            raise AuditTampered("malformed Merkle frontier")
        size = int.from_bytes(data[1 : cls._HEADER], "big")
        body = data[cls._HEADER :]
        if size >= 1 << 63 or len(body) != HASH_SIZE * size.bit_count():
            raise AuditTampered("malformed Merkle frontier")
        frontier = cls()
        frontier._size = size
        frontier._roots = [bytes(body[i : i + HASH_SIZE]) for i in range(0, len(body), HASH_SIZE)]
        return frontier

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frontier):
            return NotImplemented
        return self._size == other._size and self._roots == other._roots

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Frontier(size={self._size})"


def _range_root(hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH of ``hashes[lo:hi]`` in O(log) memory, without copying the slice."""
    frontier = Frontier()
    for i in range(lo, hi):
        frontier.append(hashes[i])
    return frontier.root()


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH of a whole list of leaf hashes; ``EMPTY_ROOT`` for none."""
    return _range_root(hashes, 0, len(hashes))


def _check_size(hashes: Sequence[bytes], size: int) -> None:
    if not 0 <= size <= len(hashes):
        raise InvalidInput("tree size out of range")


class _Subtrees:
    """MTH of the tree's nodes over ``hashes``, remembering the large ones.

    Every subtree a proof needs is a node of the RFC split tree, so proofs
    over one tree share most of their work: after the first proof (O(size)),
    each further one costs O(log size × _SMALL) hashing.  The cache holds at
    most 2·size/_SMALL roots.
    """

    _SMALL = 64

    def __init__(self, hashes: Sequence[bytes]) -> None:
        self._hashes = hashes
        self._cache: dict[tuple[int, int], bytes] = {}

    def root(self, lo: int, hi: int) -> bytes:
        if hi - lo < self._SMALL:
            return _range_root(self._hashes, lo, hi)
        cached = self._cache.get((lo, hi))
        if cached is None:
            k = _split(hi - lo)
            cached = node_hash(self.root(lo, lo + k), self.root(lo + k, hi))
            self._cache[(lo, hi)] = cached
        return cached


def inclusion_proof(hashes: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """Audit path of leaf ``index`` in the tree of the first ``size`` leaves.

    RFC 9162 §2.1.3.1 PATH(m, D[n]), listed leaf-to-root.  ``InvalidInput``
    unless ``0 <= index < size <= len(hashes)``.  O(size) hashing: for many
    leaves of one tree use ``inclusion_proofs``.
    """
    return inclusion_proofs(hashes, [index], size)[0]


def inclusion_proofs(
    hashes: Sequence[bytes], indices: Iterable[int], size: int
) -> list[list[bytes]]:
    """``inclusion_proof`` for each of ``indices``, sharing the hashing."""
    _check_size(hashes, size)
    subtrees = _Subtrees(hashes)
    return [_path(subtrees, index, size) for index in indices]


def _path(subtrees: _Subtrees, index: int, size: int) -> list[bytes]:
    if not 0 <= index < size:
        raise InvalidInput("leaf index out of range")
    path: list[bytes] = []
    lo, hi, m = 0, size, index
    # Walk down from the root; each level contributes the sibling subtree's
    # root.  Collected root-first, so reversed at the end.
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(subtrees.root(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtrees.root(lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True iff ``proof`` shows leaf hash ``leaf`` at ``index`` under ``root``.

    RFC 9162 §2.1.3.2.
    """
    if not 0 <= index < size or len(leaf) != HASH_SIZE:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0 or len(p) != HASH_SIZE:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # Skip the levels where this node is the right edge with no
            # sibling: the tree is not perfect there.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def consistency_proof(hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """Proof that the tree of ``new_size`` leaves extends that of ``old_size``.

    RFC 9162 §2.1.4.1 PROOF(m, D[n]).  Empty when ``old_size`` is 0 or equals
    ``new_size``.  ``InvalidInput`` unless ``0 <= old <= new <= len(hashes)``.
    """
    _check_size(hashes, new_size)
    if not 0 <= old_size <= new_size:
        raise InvalidInput("old size out of range")
    if old_size in (0, new_size):
        return []
    subtrees = _Subtrees(hashes)
    proof: list[bytes] = []
    lo, hi, m, whole = 0, new_size, old_size, True
    # SUBPROOF(m, D[lo:hi], whole), unrolled; collected root-first.
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(subtrees.root(lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtrees.root(lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        proof.append(subtrees.root(lo, hi))
    proof.reverse()
    return proof


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True iff ``proof`` shows ``new_root`` (size ``new_size``) extends ``old_root``.

    RFC 9162 §2.1.4.2, plus the trivial cases: equal sizes need an empty proof
    and equal roots; an empty old tree needs an empty proof and ``EMPTY_ROOT``.
    """
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof or any(len(c) != HASH_SIZE for c in proof):
        return False
    path = list(proof)
    # A power-of-two old tree is itself a node of the new tree, so the proof
    # omits its root; put it back to start from.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
