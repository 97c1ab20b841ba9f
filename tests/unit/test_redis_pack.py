"""``redis_link.pack`` writes the same bytes as redis-py's own packer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from snapreport.redis_link import Arg, pack

args = st.one_of(
    st.binary(max_size=9000),  # past redis-py's own chunking size
    st.text(max_size=200),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)


@given(st.sampled_from(["GET", "SET", "EVALSHA", "EVAL"]), st.lists(args, max_size=8))
def test_pack_writes_what_redis_py_writes(name: str, operands: list[Arg]) -> None:
    # (redis-py splits a first argument with a space into words; ours are single words)
    assert pack(name, *operands) == b"".join(Connection().pack_command(name, *operands))


def test_a_command_as_it_goes_on_the_wire() -> None:
    assert pack("EVALSHA", b"ab", 1, "ключ") == (
        b"*4\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n$8\r\n\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87\r\n"
    )


@pytest.mark.parametrize("bad", [None, True, ["x"], {"k": 1}])
def test_what_redis_cannot_hold_is_refused(bad: object) -> None:
    with pytest.raises(DataError, match="cannot send"):
        pack("SET", "k", bad)  # type: ignore[arg-type]
