"""Binary batches whose numbers do not fit: refused with the body named, never read as another device."""

from __future__ import annotations

import numpy as np
import pytest

from shgov.core.errors import InvalidError
from shgov.sensing.readings import decode_binary, encode_binary


@pytest.mark.parametrize("ref", [1, 2**31 - 1, 2**31, 2**32 - 1])
def test_a_device_reference_past_the_table_is_refused_however_large(ref: int) -> None:
    payload = encode_binary(
        ["dev-1", "dev-2"],
        ["t"],
        np.array([0, ref], dtype=np.uint64),
        np.array([0, 0]),
        np.array([1_764_000_000_000, 1_764_000_000_000]),
        np.array([1.0, 2.0]),
    )
    if ref < 2:
        assert decode_binary(payload).device_refs.tolist() == [0, ref]
        return
    with pytest.raises(InvalidError) as refused:
        decode_binary(payload)
    assert refused.value.field == "body"
