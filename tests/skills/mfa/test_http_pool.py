"""The shared client's transport: small pools, requests spread over them."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from skills.mfa.delivery.http_pool import SHARD_SIZE, ShardedTransport, new_shared_client

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
    transport = ShardedTransport.for_connections(connections, keepalive_expiry=12.5)
    assert transport.shard_count == shards
    # The pools httpcore will really use, not the numbers this module computed.
    pools = [shard._pool for shard in transport._shards]
    assert len(pools) == shards
    for pool in pools:
        assert pool._max_connections <= SHARD_SIZE
        assert pool._max_keepalive_connections == pool._max_connections  # all may stay alive
        assert pool._keepalive_expiry == 12.5
        assert pool._retries == 0  # retries are the provider's decision, not the pool's
    assert sum(pool._max_connections for pool in pools) >= connections


async def test_the_configured_connections_really_run_at_once():
    """20 requests in flight at once through a 20-connection client, on a loopback server
    that answers none until all 20 have arrived."""
    wanted = 20
    arrived = 0
    all_here = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal arrived
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()  # the client closed its keep-alive connection
                return
            arrived += 1
            if arrived == wanted:
                all_here.set()
            await all_here.wait()
            writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with new_shared_client(
            deadline_seconds=30.0, connect_timeout_seconds=30.0, max_connections=wanted
        ) as http:
            assert http._transport.shard_count == 2
            async with asyncio.timeout(15):
                answers = await asyncio.gather(
                    *(http.get(f"http://127.0.0.1:{port}/x") for _ in range(wanted))
                )
        assert [a.status_code for a in answers] == [204] * wanted
    finally:
        server.close()


async def test_a_pooled_connection_the_server_closed_is_not_used_again():
    """The pool asks each idle connection whether the server has closed it (the shared
    client checks that on the raw socket): a server that closes after each answer, as
    an upstream's idle timeout does, costs a new connection, never a failed request."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        # Keep-alive is offered, then the server goes away: as an idle timeout would.
        writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with new_shared_client(
            deadline_seconds=5.0, connect_timeout_seconds=5.0, max_connections=1
        ) as http:
            for _ in range(3):
                assert (await http.get(f"http://127.0.0.1:{port}/x")).status_code == 204
                await asyncio.sleep(0.1)  # the server's FIN has arrived
        assert connections == 3
    finally:
        server.close()


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
