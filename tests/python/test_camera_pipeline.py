"""The camera pipeline, as our users run it with redis-py asyncio against a password-protected
server: detections fan out over pub/sub to many websocket subscribers, workers take jobs from
per-camera queues with BRPOP, failed jobs go to a dead-letter queue with LMOVE, duplicate frames
are dropped with SET NX EX, cameras are rate limited (INCR+EXPIRE, and a sliding window in a
sorted set inside a Lua script), and job state lives in hashes.
"""

import asyncio
import json
import time

import pytest
import redis
import redis.asyncio

from conftest import PASSWORD

CAMERAS = [f"cam-{i}" for i in range(6)]

# Sliding-window limiter: at most ARGV[2] events per ARGV[1] ms for KEYS[1]; ARGV[3] is now (ms),
# ARGV[4] a unique member. Returns 1 if admitted, 0 if limited.
SLIDING_WINDOW = """
local window, limit, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return 1
"""


@pytest.fixture
async def cam(auth_server):
    c = auth_server.aclient()
    await c.flushall()
    yield c
    await c.aclose()


async def test_requirepass_auth(auth_server):
    anon = redis.asyncio.Redis(host=auth_server.host, port=auth_server.port, decode_responses=True)
    try:
        with pytest.raises(redis.AuthenticationError):
            await anon.set("k", "v")
    finally:
        await anon.aclose()
    wrong = redis.asyncio.Redis(host=auth_server.host, port=auth_server.port, password="nope")
    try:
        with pytest.raises(redis.AuthenticationError):
            await wrong.ping()
    finally:
        await wrong.aclose()
    url = redis.asyncio.from_url(auth_server.url, decode_responses=True)
    try:
        assert await url.ping() is True
        assert await url.set("k", "v") is True
    finally:
        await url.aclose()
    # AUTH with the default user's name, as ACL-aware clients send it.
    named = redis.asyncio.Redis(host=auth_server.host, port=auth_server.port, username="default",
                                password=PASSWORD, decode_responses=True)
    try:
        assert await named.get("k") == "v"
    finally:
        await named.aclose()


async def test_detection_fanout_to_websocket_subscribers(auth_server, cam):
    """One publisher per camera, 50 websocket subscribers (some per camera, some on a pattern):
    every subscriber gets every detection published after it subscribed, in order."""
    n_ws, per_cam = 50, 30
    conns, subs = [], []
    for i in range(n_ws):
        c = auth_server.aclient()
        ps = c.pubsub()
        if i % 5 == 0:
            await ps.psubscribe("detections:*")
        else:
            await ps.subscribe(f"detections:{CAMERAS[i % len(CAMERAS)]}")
        while (m := await ps.get_message(timeout=2)) is None or m["type"] not in ("subscribe", "psubscribe"):
            pass
        conns.append(c)
        subs.append((i, ps))

    expected_receivers = {
        camera: sum(1 for i in range(n_ws) if i % 5 == 0 or CAMERAS[i % len(CAMERAS)] == camera)
        for camera in CAMERAS
    }

    async def publisher(camera):
        pub = auth_server.aclient()
        try:
            for f in range(per_cam):
                det = json.dumps({"camera": camera, "frame": f, "label": "person", "score": 0.9})
                n = await pub.publish(f"detections:{camera}", det)
                assert n == expected_receivers[camera], (camera, f, n)
        finally:
            await pub.aclose()

    async def websocket(i, ps):
        want = per_cam * len(CAMERAS) if i % 5 == 0 else per_cam
        got = []
        while len(got) < want:
            m = await ps.get_message(ignore_subscribe_messages=True, timeout=1)
            if m is not None:
                got.append(json.loads(m["data"]))
        return i, got

    try:
        readers = [asyncio.create_task(websocket(i, ps)) for i, ps in subs]
        await asyncio.gather(*(publisher(c) for c in CAMERAS))
        results = await asyncio.wait_for(asyncio.gather(*readers), 30)
    finally:
        for _, ps in subs:
            await ps.aclose()
        for c in conns:
            await c.aclose()
    for i, got in results:
        cams = CAMERAS if i % 5 == 0 else [CAMERAS[i % len(CAMERAS)]]
        for camera in cams:
            frames = [d["frame"] for d in got if d["camera"] == camera]
            assert frames == list(range(per_cam)), (i, camera)
        assert len(got) == per_cam * len(cams)


async def test_detection_queues_brpop_and_dead_letter(auth_server, cam):
    """Producers LPUSH jobs onto per-camera queues; workers BRPOP across all of them, record
    status in a hash, and move poisoned jobs to a dead-letter queue with LMOVE."""
    queues = [f"queue:{c}" for c in CAMERAS]
    n_jobs = 120

    async def producer():
        p = auth_server.aclient()
        try:
            for j in range(n_jobs):
                q = queues[j % len(queues)]
                job = json.dumps({"id": j, "poison": j % 17 == 0})
                async with p.pipeline() as tx:
                    tx.hset(f"job:{j}", mapping={"state": "queued", "queue": q})
                    tx.lpush(q, job)
                    await tx.execute()
        finally:
            await p.aclose()

    done, dead = [], []

    async def worker(w):
        c = auth_server.aclient()
        try:
            while True:
                item = await c.brpop(queues, timeout=1)
                if item is None:
                    return
                q, raw = item
                job = json.loads(raw)
                await c.hset(f"job:{job['id']}", mapping={"state": "running", "worker": w})
                if job["poison"]:
                    # Requeue once onto a processing list, then dead-letter it atomically.
                    await c.lpush(f"processing:{w}", raw)
                    moved = await c.lmove(f"processing:{w}", "dead-letter", "LEFT", "RIGHT")
                    assert moved == raw
                    await c.hset(f"job:{job['id']}", "state", "dead")
                    dead.append(job["id"])
                else:
                    await c.hset(f"job:{job['id']}", mapping={"state": "done", "result": "ok"})
                    done.append(job["id"])
        finally:
            await c.aclose()

    workers = [asyncio.create_task(worker(f"w{i}")) for i in range(4)]
    await producer()
    await asyncio.wait_for(asyncio.gather(*workers), 60)
    poisoned = [j for j in range(n_jobs) if j % 17 == 0]
    assert sorted(done) == [j for j in range(n_jobs) if j % 17]
    assert sorted(dead) == poisoned
    assert sorted(json.loads(x)["id"] for x in await cam.lrange("dead-letter", 0, -1)) == poisoned
    assert [await cam.llen(q) for q in queues] == [0] * len(queues)
    states = await asyncio.gather(*(cam.hget(f"job:{j}", "state") for j in range(n_jobs)))
    assert states == ["dead" if j % 17 == 0 else "done" for j in range(n_jobs)]
    # Redelivery of dead letters: LMOVE back to a queue, in order.
    assert await cam.lmove("dead-letter", queues[0], "LEFT", "RIGHT") is not None
    assert await cam.llen("dead-letter") == len(poisoned) - 1


async def test_blmove_worker_reliable_queue(auth_server, cam):
    c = auth_server.aclient()
    try:
        waiter = asyncio.create_task(c.blmove("incoming", "inflight", 5, "RIGHT", "LEFT"))
        await asyncio.sleep(0.1)
        await cam.lpush("incoming", "frame-1")
        assert await asyncio.wait_for(waiter, 10) == "frame-1"
        assert await cam.lrange("inflight", 0, -1) == ["frame-1"]
        assert await cam.lrem("inflight", 1, "frame-1") == 1
    finally:
        await c.aclose()


async def test_frame_dedupe_set_nx_ex(auth_server, cam):
    """Concurrent uploaders race to claim the same frame hashes: exactly one wins each."""
    frames = [f"dedupe:frame:{h:08x}" for h in range(40)]
    clients = [auth_server.aclient() for _ in range(5)]
    try:
        results = await asyncio.gather(
            *(c.set(f, "seen", nx=True, ex=30) for c in clients for f in frames)
        )
    finally:
        for c in clients:
            await c.aclose()
    assert sum(1 for x in results if x) == len(frames)
    assert all(x in (True, None) for x in results)
    ttl = await cam.ttl(frames[0])
    assert 0 < ttl <= 30
    # After expiry the frame can be claimed again.
    assert await cam.set("dedupe:short", "1", nx=True, px=100) is True
    assert await cam.set("dedupe:short", "1", nx=True, px=100) is None
    await asyncio.sleep(0.25)
    assert await cam.set("dedupe:short", "1", nx=True, px=100) is True


async def test_rate_limit_incr_expire(auth_server, cam):
    """Fixed window: INCR then EXPIRE on the first hit, in a MULTI, from concurrent clients."""
    limit = 10
    clients = [auth_server.aclient() for _ in range(4)]

    async def hit(c, camera):
        key = f"rl:{camera}:{int(time.time()) // 60}"
        async with c.pipeline() as p:
            p.incr(key)
            p.expire(key, 60, nx=True)
            count, _ = await p.execute()
        return count <= limit

    try:
        admitted = await asyncio.gather(*(hit(clients[k % 4], CAMERAS[k % 2]) for k in range(60)))
    finally:
        for c in clients:
            await c.aclose()
    assert sum(admitted) == 2 * limit
    for camera in CAMERAS[:2]:
        key = f"rl:{camera}:{int(time.time()) // 60}"
        assert int(await cam.get(key)) == 30
        assert 0 < await cam.ttl(key) <= 60


async def test_rate_limit_sliding_window_script(auth_server, cam):
    limiter = cam.register_script(SLIDING_WINDOW)
    clients = [auth_server.aclient() for _ in range(4)]
    now = int(time.time() * 1000)
    try:
        calls = [
            limiter(keys=[f"sw:{CAMERAS[k % 3]}"], args=[1000, 5, now, f"req-{k}"], client=clients[k % 4])
            for k in range(45)
        ]
        admitted = await asyncio.gather(*calls)
    finally:
        for c in clients:
            await c.aclose()
    assert sum(admitted) == 15
    for camera in CAMERAS[:3]:
        assert await cam.zcard(f"sw:{camera}") == 5
        assert 0 < await cam.pttl(f"sw:{camera}") <= 1000
    # The window slides: events older than the window no longer count.
    assert await limiter(keys=["sw:cam-0"], args=[1000, 5, now + 1500, "later"]) == 1
    assert await cam.zcard("sw:cam-0") == 1


async def test_job_status_hashes(auth_server, cam):
    async with cam.pipeline() as p:
        for j in range(50):
            p.hset(f"status:{j}", mapping={"state": "queued", "camera": CAMERAS[j % 6], "progress": 0})
            p.expire(f"status:{j}", 3600)
        await p.execute()
    for _ in range(3):
        async with cam.pipeline(transaction=False) as p:
            for j in range(50):
                p.hincrby(f"status:{j}", "progress", 25)
                p.hset(f"status:{j}", "state", "running")
            await p.execute()
    assert await cam.hgetall("status:7") == {"state": "running", "camera": "cam-1", "progress": "75"}
    assert await cam.hmget("status:8", ["state", "nope", "progress"]) == ["running", None, "75"]
    assert await cam.hexists("status:9", "camera") is True
    assert await cam.hdel("status:9", "camera", "missing") == 1
    assert sorted(await cam.hkeys("status:9")) == ["progress", "state"]
    assert await cam.hlen("status:9") == 2
    keys = [k async for k in cam.scan_iter(match="status:*", count=10)]
    assert len(keys) == 50
    assert 3590 < await cam.ttl("status:49") <= 3600
