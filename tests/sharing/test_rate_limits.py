"""The gateway's token buckets, without a database."""

from __future__ import annotations

import uuid

import pytest

from shgov.sharing import service as sharing


def test_a_bucket_refuses_beyond_the_rate_and_says_when_to_retry() -> None:
    grant = uuid.uuid4()
    limiter = sharing.RateLimiter()
    for _ in range(3):
        limiter.take(grant, 3)
    with pytest.raises(sharing.RateLimited) as refused:
        limiter.take(grant, 3)
    assert 1 <= refused.value.retry_after <= 21


def test_processes_share_a_grant_rate_out_between_them() -> None:
    grant = uuid.uuid4()
    limiter = sharing.RateLimiter(processes=2)
    limiter.take(grant, 4)
    limiter.take(grant, 4)
    with pytest.raises(sharing.RateLimited):
        limiter.take(grant, 4)  # this process's half of four a minute is spent
