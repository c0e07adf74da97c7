"""HTTP Range parsing (RFC 9110 §14): one range served, everything else refused cleanly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callvault.core.errors import InvalidInput, RangeNotSatisfiable
from callvault.core.ranges import MAX_HEADER_LENGTH, ByteRange, parse_range

sizes = st.integers(min_value=1, max_value=10**7)


def reference_slice(spec: str, size: int) -> tuple[int, int]:
    """What a single satisfiable range spec selects, by Python's own slicing."""
    data = range(size)
    first, _, last = spec.partition("-")
    if not first:
        selected = data[-int(last) :]
    elif not last:
        selected = data[int(first) :]
    else:
        selected = data[int(first) : int(last) + 1]
    return selected.start, selected.stop


@st.composite
def satisfiable(draw: st.DrawFn) -> tuple[str, int]:
    size = draw(sizes)
    kind = draw(st.sampled_from(["closed", "open", "suffix"]))
    if kind == "suffix":
        return f"-{draw(st.integers(1, 2 * size))}", size
    first = draw(st.integers(0, size - 1))
    if kind == "open":
        return f"{first}-", size
    return f"{first}-{draw(st.integers(first, 2 * size))}", size


@given(satisfiable())
def test_any_single_satisfiable_range_selects_the_right_slice(case: tuple[str, int]) -> None:
    spec, size = case
    chosen = parse_range(f"bytes={spec}", size)
    assert chosen is not None
    assert (chosen.start, chosen.stop) == reference_slice(spec, size)
    assert chosen.length == chosen.stop - chosen.start > 0
    assert chosen.content_range() == f"bytes {chosen.start}-{chosen.stop - 1}/{size}"


@given(
    satisfiable(), st.sampled_from(["BYTES", "Bytes", " bytes"]), st.sampled_from(["", " ", ","])
)
def test_unit_case_and_list_whitespace_are_tolerated(
    case: tuple[str, int], unit: str, padding: str
) -> None:
    spec, size = case
    assert parse_range(f"{unit}={padding}{spec}{padding}", size) == parse_range(
        f"bytes={spec}", size
    )


def test_no_header_means_the_whole_representation() -> None:
    assert parse_range(None, 1000) is None


def test_examples_from_rfc_9110() -> None:
    size = 10000
    assert parse_range("bytes=0-499", size) == ByteRange(0, 500, size)
    assert parse_range("bytes=500-999", size) == ByteRange(500, 1000, size)
    assert parse_range("bytes=-500", size) == ByteRange(9500, 10000, size)
    assert parse_range("bytes=9500-", size) == ByteRange(9500, 10000, size)


@pytest.mark.parametrize(
    "header",
    [
        "bytes=5-2",
        "bytes=abc",
        "bytes=",
        "bytes=-",
        "bytes=,",
        "bytes=1-2-3",
        "bytes=0x10-20",
        "bytes=+1-2",
        "bytes=-1-2",
        "bytes=1 - 2",
        "bytes=١-٢",  # Arabic-Indic digits are not ASCII digits
        "items=0-1",
        "bytes 0-1",
        "=0-1",
        "",
        "bytes=0-1;q=1",
    ],
)
def test_malformed_ranges_are_invalid_input(header: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_range(header, 1000)
    assert not isinstance(caught.value, RangeNotSatisfiable)
    assert caught.value.http_status == 400
    assert header.strip() == "" or header not in str(caught.value)


@pytest.mark.parametrize(
    "header",
    ["bytes=1000-", "bytes=1000-2000", "bytes=5000-", "bytes=-0", "bytes=0-1,3-4", "bytes=0-1,-5"],
)
def test_unsatisfiable_and_multiple_ranges_answer_416_with_the_size(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        parse_range(header, 1000)
    assert caught.value.http_status == 416
    assert caught.value.size == 1000


def test_huge_first_position_is_unsatisfiable_and_huge_last_position_is_clipped() -> None:
    huge = "9" * 100
    with pytest.raises(RangeNotSatisfiable):
        parse_range(f"bytes={huge}-", 1000)
    assert parse_range(f"bytes=10-{huge}", 1000) == ByteRange(10, 1000, 1000)
    assert parse_range(f"bytes=-{huge}", 1000) == ByteRange(0, 1000, 1000)


def test_a_header_longer_than_the_limit_is_refused_before_parsing() -> None:
    header = "bytes=0-" + "9" * MAX_HEADER_LENGTH
    with pytest.raises(InvalidInput) as caught:
        parse_range(header, 1000)
    assert caught.value.http_status == 400


def test_nothing_of_an_empty_representation_is_satisfiable() -> None:
    for header in ("bytes=0-", "bytes=-1", "bytes=0-0"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, 0)


@given(st.text(max_size=40), sizes)
def test_arbitrary_headers_either_parse_inside_bounds_or_raise_a_vault_error(
    header: str, size: int
) -> None:
    try:
        chosen = parse_range(header, size)
    except InvalidInput as exc:
        assert exc.http_status in (400, 416)
        return
    assert chosen is not None
    assert 0 <= chosen.start < chosen.stop <= size


def test_a_byte_range_cannot_be_empty_or_out_of_bounds() -> None:
    for start, stop in ((5, 5), (-1, 2), (0, 11)):
        with pytest.raises(InvalidInput):
            ByteRange(start, stop, 10)
