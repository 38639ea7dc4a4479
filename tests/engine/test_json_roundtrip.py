"""`json_roundtrip`: what a step result, an input or a payload reads back as from the
journal. Plain values take orjson; every value must read back exactly as the stdlib's
`json` makes it (or be refused with the same words), whichever path it takes."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerflow.domain.events import unstorable_json
from ledgerflow.runtime.failures import NotSerializable, json_roundtrip

_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
            | st.floats(allow_nan=True, allow_infinity=True)
            | st.text() | st.sampled_from(["\x00", "\\u0000", "a\\\\u0000", "\udc80", "ü"]))
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (st.lists(inner, max_size=4) | st.tuples(inner, inner)
                   | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=4)),
    max_leaves=20)


def _stdlib(value: Any) -> Any:
    """The reference: the stdlib's round trip, or the reason the store cannot keep it."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return ("refused", "type")
    reason = unstorable_json(text)
    return ("refused", reason) if reason else json.loads(text)


def _ours(value: Any) -> Any:
    try:
        return json_roundtrip(value, "it")
    except NotSerializable as exc:
        text = str(exc)
        return ("refused", "type" if "not JSON-serialisable" in text
                else text.removeprefix("it holds ").removesuffix(
                    ", which the event store cannot keep"))


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN and -0.0 told from 0.0 (repr keeps both apart)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return repr(a) == repr(b)


@settings(max_examples=400, deadline=None)
@given(_VALUES)
def test_every_value_reads_back_as_the_stdlib_makes_it(value: Any) -> None:
    assert _same(_ours(value), _stdlib(value))


@pytest.mark.parametrize("value", [
    {"a": 1}, [1, 2.5, "x", None, True], 2 ** 64 - 1, -(2 ** 63) - 1, 2 ** 70, 1e16, -0.0,
    float("nan"), float("-inf"), (1, 2), {1: "a", "b": (None,)}, "a\x00b", "a\\u0000b",
    "\udc80", {"\udc80": 1}, "ünï"])
def test_edges_read_back_as_the_stdlib_makes_them(value: Any) -> None:
    assert _same(_ours(value), _stdlib(value))


def test_a_type_json_cannot_carry_is_refused_naming_it() -> None:
    with pytest.raises(NotSerializable, match="is a UUID, which is not JSON-serialisable"):
        json_roundtrip(uuid.uuid4(), "the result of step 'a'")
    with pytest.raises(NotSerializable, match="holds a NUL character"):
        json_roundtrip({"text": "a\x00b"}, "the result of step 'a'")
