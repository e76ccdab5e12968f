"""redis-py asyncio: pipelines, WATCH transactions, pub/sub with many subscribers, scripts."""

import asyncio

import pytest
import redis
import redis.asyncio


async def test_basic_and_pipeline(ar):
    assert await ar.set("a", "1") is True
    assert await ar.get("a") == "1"
    async with ar.pipeline(transaction=False) as p:
        for i in range(100):
            p.set(f"key:{i}", i)
        p.mget([f"key:{i}" for i in range(100)])
        res = await p.execute()
    assert res[:100] == [True] * 100
    assert res[100] == [str(i) for i in range(100)]
    async with ar.pipeline() as p:
        p.incr("ctr").incr("ctr").hset("h", "f", "v").hgetall("h")
        assert await p.execute() == [1, 2, 1, {"f": "v"}]


async def test_many_concurrent_commands_on_one_pool(srv):
    pool = redis.asyncio.BlockingConnectionPool(host=srv.host, port=srv.port, max_connections=20,
                                                decode_responses=True, timeout=20)
    c = redis.asyncio.Redis(connection_pool=pool)
    try:
        await asyncio.gather(*(c.incr(f"hits:{i % 13}") for i in range(500)))
        vals = await c.mget([f"hits:{i}" for i in range(13)])
        assert sum(int(v) for v in vals) == 500
    finally:
        await c.aclose()
        await pool.aclose()


async def test_watch_retry_loop_concurrent(srv, ar):
    """Classic optimistic-locking loop (WATCH, read, MULTI, write, EXEC, retry on WatchError)
    from many coroutines at once on keys spread over shards: no increment is lost."""
    keys = [f"stock:{i}" for i in range(5)]
    await ar.mset({k: 0 for k in keys})
    clients = [srv.aclient() for _ in range(6)]

    async def worker(c, n):
        retries = 0
        for j in range(30):
            a, b = keys[(n + j) % 5], keys[(n + 2 * j + 1) % 5]
            while True:
                async with c.pipeline() as p:
                    try:
                        await p.watch(a, b)
                        va, vb = int(await p.get(a)), int(await p.get(b))
                        p.multi()
                        p.set(a, va + 1)
                        if b != a:
                            p.set(b, vb + 1)
                        await p.execute()
                        break
                    except redis.WatchError:
                        retries += 1
        return retries

    try:
        await asyncio.gather(*(worker(c, n) for n, c in enumerate(clients)))
    finally:
        for c in clients:
            await c.aclose()
    expected = 0
    for n in range(6):
        for j in range(30):
            expected += 1 if keys[(n + j) % 5] == keys[(n + 2 * j + 1) % 5] else 2
    assert sum(int(v) for v in await ar.mget(keys)) == expected


async def test_register_script_async(ar):
    incr_capped = ar.register_script(
        """
        local v = redis.call('INCR', KEYS[1])
        if v > tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]); return -1 end
        return v
        """
    )
    await ar.script_flush()
    results = [await incr_capped(keys=["cap"], args=[3]) for _ in range(5)]
    assert results == [1, 2, 3, -1, -1]
    async with ar.pipeline() as p:
        await incr_capped(keys=["cap2"], args=[10], client=p)
        await incr_capped(keys=["cap2"], args=[10], client=p)
        assert await p.execute() == [1, 2]


async def test_pubsub_fanout_many_async_subscribers(srv, ar):
    n_subs, n_msgs = 60, 40
    clients, subs = [], []
    for i in range(n_subs):
        c = srv.aclient()
        ps = c.pubsub()
        await ps.subscribe(f"room:{i % 3}", "broadcast")
        clients.append(c)
        subs.append(ps)

    async def drain(ps, want):
        got = []
        while len(got) < want:
            msg = await ps.get_message(ignore_subscribe_messages=True, timeout=1)
            if msg is not None:
                got.append((msg["channel"], msg["data"]))
        return got

    try:
        # Wait for every subscription to be acknowledged before publishing.
        for ps in subs:
            for _ in range(2):
                while True:
                    m = await ps.get_message(timeout=1)
                    if m and m["type"] == "subscribe":
                        break
        readers = [asyncio.create_task(drain(ps, n_msgs + 1)) for ps in subs]
        for m in range(n_msgs):
            assert await ar.publish("broadcast", f"b{m}") == n_subs
        assert await ar.publish("room:1", "only-room-1") == n_subs // 3
        # Subscribers not in room 1 get only the broadcasts: cancel their extra wait.
        results = await asyncio.wait_for(asyncio.gather(*readers[1::3]), 20)
        for got in results:
            assert got == [("broadcast", f"b{m}") for m in range(n_msgs)] + [("room:1", "only-room-1")]
        for i, t in enumerate(readers):
            if i % 3 != 1:
                t.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        numsub = dict(await ar.pubsub_numsub("broadcast", "room:0", "room:9"))
        assert numsub == {"broadcast": n_subs, "room:0": n_subs // 3, "room:9": 0}
        assert set(await ar.pubsub_channels("room:*")) == {"room:0", "room:1", "room:2"}
    finally:
        for ps in subs:
            await ps.aclose()
        for c in clients:
            await c.aclose()


async def test_pubsub_pattern_and_unsubscribe(srv, ar):
    c = srv.aclient()
    ps = c.pubsub()
    try:
        await ps.psubscribe("cam.*.motion")
        await ps.subscribe("direct")
        assert (await ps.get_message(timeout=2))["type"] == "psubscribe"
        assert (await ps.get_message(timeout=2))["type"] == "subscribe"
        assert await ar.publish("cam.7.motion", "m1") == 1
        assert await ar.publish("cam.7.audio", "a") == 0
        msg = await ps.get_message(timeout=2)
        assert (msg["type"], msg["pattern"], msg["channel"], msg["data"]) == (
            "pmessage", "cam.*.motion", "cam.7.motion", "m1")
        await ps.unsubscribe("direct")
        assert (await ps.get_message(timeout=2))["type"] == "unsubscribe"
        assert await ar.publish("direct", "gone") == 0
        await ps.punsubscribe()
        assert (await ps.get_message(timeout=2))["type"] == "punsubscribe"
        assert await ar.pubsub_numpat() == 0
    finally:
        await ps.aclose()
        await c.aclose()


async def test_resp3_async_pubsub(srv, ar):
    c = srv.aclient(protocol=3)
    ps = c.pubsub()
    try:
        await ps.subscribe("r3")
        assert (await ps.get_message(timeout=2))["type"] == "subscribe"
        assert await ar.publish("r3", "push") == 1
        msg = await ps.get_message(timeout=2)
        assert (msg["type"], msg["channel"], msg["data"]) == ("message", "r3", "push")
    finally:
        await ps.aclose()
        await c.aclose()


async def test_blocking_pops_async(srv, ar):
    pusher = srv.aclient()
    try:
        waiters = [asyncio.create_task(srv_brpop(srv, ["q:a", "q:b", "q:c"])) for _ in range(3)]
        await asyncio.sleep(0.2)
        await pusher.lpush("q:c", "1")
        await pusher.lpush("q:a", "2")
        await pusher.lpush("q:b", "3")
        got = await asyncio.wait_for(asyncio.gather(*waiters), 10)
        assert sorted(got) == [("q:a", "2"), ("q:b", "3"), ("q:c", "1")]
    finally:
        await pusher.aclose()


async def srv_brpop(srv, keys):
    c = srv.aclient()
    try:
        return await c.brpop(keys, timeout=5)
    finally:
        await c.aclose()


@pytest.mark.parametrize("proto", [2, 3])
async def test_transaction_helper_async(srv, proto):
    c = srv.aclient(protocol=proto)
    try:
        await c.set("seq", 10)

        async def bump(p):
            v = int(await p.get("seq"))
            p.multi()
            p.set("seq", v * 2)
            p.zadd("z", {"m": v})
            p.zscore("z", "m")

        res = await c.transaction(bump, "seq")
        assert res == [True, 1, 10.0]
        assert await c.get("seq") == "20"
    finally:
        await c.aclose()


async def test_keyspace_notifications_for_job_timeouts(srv, ar):
    """Job leases that expire are noticed through keyevent notifications (expired, set, del)."""
    await ar.config_set("notify-keyspace-events", "Eg$x")
    c = srv.aclient()
    ps = c.pubsub()
    try:
        await ps.psubscribe("__keyevent@0__:*")
        assert (await ps.get_message(timeout=2))["type"] == "psubscribe"
        await ar.set("lease:job-1", "worker-a", px=100)
        await ar.set("lease:job-2", "worker-b")
        await ar.delete("lease:job-2")
        events = []
        deadline = asyncio.get_running_loop().time() + 10
        while ("expired", "lease:job-1") not in events:
            assert asyncio.get_running_loop().time() < deadline, events
            m = await ps.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if m is not None:
                events.append((m["channel"].rsplit(":", 1)[1], m["data"]))
        # SET ... PX also fires "expire" (generic class), as in Redis.
        assert events == [("set", "lease:job-1"), ("expire", "lease:job-1"), ("set", "lease:job-2"),
                          ("del", "lease:job-2"), ("expired", "lease:job-1")]
    finally:
        await ar.config_set("notify-keyspace-events", "")
        await ps.aclose()
        await c.aclose()
