"""The shared client's transport: small pools, requests spread over them."""

from __future__ import annotations

import httpx
import pytest

from skills.mfa.http_pool import SHARD_SIZE, ShardedTransport, new_shared_client

pytestmark = pytest.mark.anyio


async def test_requests_go_round_robin_over_the_shards():
    seen: list[int] = []

    def shard(number: int) -> httpx.MockTransport:
        return httpx.MockTransport(lambda request: seen.append(number) or httpx.Response(204))

    async with httpx.AsyncClient(transport=ShardedTransport([shard(0), shard(1), shard(2)])) as c:
        for _ in range(7):
            assert (await c.get("http://upstream.test/x")).status_code == 204
    assert seen == [0, 1, 2, 0, 1, 2, 0]


@pytest.mark.parametrize(("connections", "shards"), [(1, 1), (16, 1), (17, 2), (100, 7), (600, 38)])
def test_shards_hold_the_configured_connections(connections, shards):
    transport = ShardedTransport.for_connections(connections)
    assert transport.shard_count == shards
    assert -(-connections // shards) <= SHARD_SIZE


def test_no_shards_is_refused():
    with pytest.raises(ValueError):
        ShardedTransport([])


async def test_the_shared_client_uses_small_pools_by_default():
    async with new_shared_client(
        deadline_seconds=3.0, connect_timeout_seconds=1.0, max_connections=100
    ) as http:
        transport = http._transport
        assert isinstance(transport, ShardedTransport)
        assert transport.shard_count == 7


def test_shards_share_one_tls_context():
    transport = ShardedTransport.for_connections(100)
    contexts = {id(shard._pool._ssl_context) for shard in transport._shards}
    assert len(contexts) == 1
