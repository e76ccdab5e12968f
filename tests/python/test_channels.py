"""channels_redis's channel layers, as Authentik's websockets (Django Channels) use them:
the core layer (sorted-set queues, BZPOPMIN, group sends in a Lua script, flush via a script
that deletes keys it never declared) and the pub/sub layer."""

import asyncio

import pytest
from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer


@pytest.fixture
async def layer(srv):
    lay = RedisChannelLayer(hosts=[srv.url], capacity=20, expiry=10, group_expiry=60)
    yield lay
    await lay.flush()


@pytest.fixture
async def pubsub_layer(srv):
    lay = RedisPubSubChannelLayer(hosts=[srv.url])
    yield lay
    await lay.flush()


async def test_send_receive(layer):
    await layer.send("test.channel", {"type": "test.message", "text": "hello"})
    msg = await asyncio.wait_for(layer.receive("test.channel"), 5)
    assert msg == {"type": "test.message", "text": "hello"}
    # FIFO per channel.
    for i in range(10):
        await layer.send("ordered", {"type": "n", "i": i})
    got = [(await asyncio.wait_for(layer.receive("ordered"), 5))["i"] for _ in range(10)]
    assert got == list(range(10))


async def test_receive_waits_for_send(layer):
    waiter = asyncio.create_task(layer.receive("later"))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await layer.send("later", {"type": "late"})
    assert (await asyncio.wait_for(waiter, 5))["type"] == "late"


async def test_process_specific_channels(layer):
    chans = [await layer.new_channel() for _ in range(5)]
    assert all("!" in c for c in chans)
    for i, c in enumerate(chans):
        await layer.send(c, {"type": "direct", "i": i})
    for i, c in enumerate(chans):
        assert (await asyncio.wait_for(layer.receive(c), 5))["i"] == i


async def test_groups(layer):
    chans = [await layer.new_channel() for _ in range(6)]
    for c in chans:
        await layer.group_add("camera-feed", c)
    await layer.group_add("admins", chans[0])
    await layer.group_send("camera-feed", {"type": "detection", "label": "person"})
    for c in chans:
        assert (await asyncio.wait_for(layer.receive(c), 5))["label"] == "person"
    await layer.group_discard("camera-feed", chans[1])
    await layer.group_send("camera-feed", {"type": "detection", "label": "car"})
    await layer.group_send("admins", {"type": "alert"})
    for c in chans[2:]:
        assert (await asyncio.wait_for(layer.receive(c), 5))["label"] == "car"
    first = [await asyncio.wait_for(layer.receive(chans[0]), 5) for _ in range(2)]
    assert [m["type"] for m in first] == ["detection", "alert"]
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(chans[1]), 0.5)


async def test_groups_across_named_channels(layer):
    # Named (non-specific) channels each live in their own key, spread over shards.
    names = [f"room.{i}" for i in range(8)]
    for n in names:
        await layer.group_add("lobby", n)
    await layer.group_send("lobby", {"type": "chat", "text": "hi"})
    for n in names:
        assert (await asyncio.wait_for(layer.receive(n), 5))["text"] == "hi"


async def test_capacity(layer):
    for i in range(20):
        await layer.send("full", {"type": "x", "i": i})
    with pytest.raises(ChannelFull):
        await layer.send("full", {"type": "x", "i": 20})
    # group_send drops silently on full channels, others still get it.
    await layer.group_add("g", "full")
    await layer.group_add("g", "roomy")
    await layer.group_send("g", {"type": "y"})
    assert (await asyncio.wait_for(layer.receive("roomy"), 5))["type"] == "y"
    assert (await asyncio.wait_for(layer.receive("full"), 5))["i"] == 0


async def test_flush_deletes_everything(srv, r, layer):
    for i in range(30):
        await layer.send(f"flushme.{i}", {"type": "z"})
    await layer.group_add("gone", "flushme.0")
    r.set("unrelated", "stays")
    assert r.dbsize() > 30
    await layer.flush()
    assert r.keys("asgi*") == []
    assert r.get("unrelated") == "stays"


async def wait_subscribed(r, *channels):
    """The pub/sub layer subscribes without waiting for the server's acknowledgement: wait
    until the server counts a subscriber on each channel, so no publish is early."""
    deadline = asyncio.get_running_loop().time() + 10
    while any(n == 0 for _, n in r.pubsub_numsub(*channels)):
        assert asyncio.get_running_loop().time() < deadline, f"never subscribed: {channels}"
        await asyncio.sleep(0.01)


async def test_pubsub_layer_send_receive_and_groups(r, pubsub_layer):
    lay = pubsub_layer
    chan = await lay.new_channel()
    await wait_subscribed(r, chan)
    await lay.send(chan, {"type": "hello"})
    assert (await asyncio.wait_for(lay.receive(chan), 5)) == {"type": "hello"}
    chans = [await lay.new_channel() for _ in range(4)]
    for c in chans:
        await lay.group_add("ws", c)
    await wait_subscribed(r, "asgi__group__ws", *chans)
    await lay.group_send("ws", {"type": "update", "v": 1})
    got = await asyncio.wait_for(asyncio.gather(*(lay.receive(c) for c in chans)), 5)
    assert got == [{"type": "update", "v": 1}] * 4
    await lay.group_discard("ws", chans[0])
    await lay.group_send("ws", {"type": "update", "v": 2})
    got = await asyncio.wait_for(asyncio.gather(*(lay.receive(c) for c in chans[1:])), 5)
    assert got == [{"type": "update", "v": 2}] * 3
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(lay.receive(chans[0]), 0.5)
