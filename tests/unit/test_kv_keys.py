"""Key-value keys from untrusted parts: no two different part lists give the same key."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from snapreport.channels.http.idempotency import Idempotency
from snapreport.kv.keys import key_of


def test_parts_that_join_alike_give_different_keys() -> None:
    assert Idempotency.key("li:si", "42") != Idempotency.key("li", "si:42")
    assert key_of("msg", "li:si", "42") == "msg:5:li:si:2:42"
    assert key_of("msg", "a", "") != key_of("msg", "a")


parts = st.lists(st.text(alphabet=":0123456789ab", max_size=6), max_size=4)


@given(parts, parts)
def test_keys_are_equal_only_for_equal_parts(one: list[str], two: list[str]) -> None:
    assert (key_of("ns", *one) == key_of("ns", *two)) == (one == two)
