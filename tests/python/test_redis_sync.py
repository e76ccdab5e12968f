"""redis-py (sync): the calls applications make, against basalt --shards 4 and redis-server.

Keys are spread over many names so that with 4 shards every multi-key test crosses shards.
"""

import threading
import time

import pytest
import redis


def test_strings_and_expiry(r):
    assert r.set("greeting", "hello") is True
    assert r.get("greeting") == "hello"
    assert r.set("greeting", "again", nx=True) is None
    assert r.set("tmp", "1", ex=100) is True
    assert 0 < r.ttl("tmp") <= 100
    assert r.set("tmp", "2", px=50, xx=True) is True
    time.sleep(0.2)
    assert r.get("tmp") is None
    assert r.incrby("counter", 5) == 5
    assert r.incrbyfloat("counter", 0.5) == 5.5
    assert r.getdel("greeting") == "hello"
    assert r.exists("greeting") == 0


def test_multi_key_commands_cross_shards(r):
    mapping = {f"user:{i}": str(i) for i in range(40)}
    assert r.mset(mapping) is True
    assert r.mget(list(mapping)) == list(mapping.values())
    assert r.exists(*mapping) == 40
    assert sorted(r.keys("user:*")) == sorted(mapping)
    assert sorted(r.scan_iter(match="user:*", count=7)) == sorted(mapping)
    assert r.dbsize() == 40
    assert r.delete(*list(mapping)[:10]) == 10
    assert r.unlink(*list(mapping)[10:20], "missing") == 10
    assert r.dbsize() == 20
    assert r.msetnx({"user:30": "x", "fresh": "y"}) is False
    assert r.get("fresh") is None


def test_collections(r):
    assert r.hset("job:1", mapping={"state": "queued", "camera": "cam-3", "tries": 0}) == 3
    assert r.hincrby("job:1", "tries", 1) == 1
    assert r.hgetall("job:1") == {"state": "queued", "camera": "cam-3", "tries": "1"}
    assert r.rpush("q", "a", "b", "c") == 3
    assert r.lrange("q", 0, -1) == ["a", "b", "c"]
    assert r.sadd("tags", "x", "y", "z") == 3
    assert r.smembers("tags") == {"x", "y", "z"}
    assert r.zadd("scores", {"a": 1, "b": 2.5, "c": -1}) == 3
    assert r.zrange("scores", 0, -1, withscores=True) == [("c", -1.0), ("a", 1.0), ("b", 2.5)]
    assert r.zrangebyscore("scores", 0, "+inf") == ["a", "b"]
    assert r.type("scores") == "zset"


def test_pipeline_without_transaction(r):
    p = r.pipeline(transaction=False)
    for i in range(200):
        p.set(f"k{i}", i)
        p.incr(f"n{i % 7}")
    p.get("k199")
    p.lpush("nope", "x")
    p.incr("nope")  # wrong type: the error comes back in its slot, the rest still runs
    p.get("k0")
    res = p.execute(raise_on_error=False)
    assert res[:2] == [True, 1]
    assert res[-4] == "199"
    assert res[-3] == 1
    assert isinstance(res[-2], redis.ResponseError)
    assert "WRONGTYPE" in str(res[-2])
    assert res[-1] == "0"
    assert sum(int(v) for v in r.mget([f"n{i}" for i in range(7)])) == 200


def test_transaction_pipeline_is_atomic_result(r):
    p = r.pipeline()  # MULTI ... EXEC
    p.set("a", 1).incr("a").rpush("l", "x", "y").lrange("l", 0, -1).mget("a", "l2", "zz")
    assert p.execute() == [True, 2, 2, ["x", "y"], ["2", None, None]]


def test_transaction_execabort_and_runtime_error(r):
    # A queueing error aborts the whole transaction.
    p = r.pipeline()
    p.set("x", 1)
    p.execute_command("SET", "only-key")  # wrong arity, rejected while queueing
    with pytest.raises(redis.ResponseError) as e:
        p.execute()
    # redis-py reports EXECABORT as the queueing error that caused it.
    assert "wrong number of arguments for 'set' command" in str(e.value)
    assert r.get("x") is None
    # A runtime error does not stop the others.
    r.lpush("list", "v")
    p = r.pipeline()
    p.set("x", 1).incr("list").incr("x")
    res = p.execute(raise_on_error=False)
    assert res[0] is True and res[2] == 2
    assert isinstance(res[1], redis.ResponseError)


def test_watch_aborts_on_concurrent_write(srv, r):
    other = srv.client()
    try:
        with r.pipeline() as p:
            p.watch("balance", "other-shard-key")
            assert p.get("balance") is None
            other.set("other-shard-key", "touched")
            p.multi()
            p.set("balance", 100)
            with pytest.raises(redis.WatchError):
                p.execute()
        assert r.get("balance") is None
        # Unwatched after EXEC: the next transaction goes through.
        with r.pipeline() as p:
            p.watch("balance")
            p.multi()
            p.set("balance", 100)
            assert p.execute() == [True]
        # Expiry of a watched key also invalidates the transaction.
        r.set("lease", "me", px=100)
        with r.pipeline() as p:
            p.watch("lease")
            time.sleep(0.25)
            p.multi()
            p.set("lease", "stolen")
            with pytest.raises(redis.WatchError):
                p.execute()
    finally:
        other.close()


def test_watch_transfers_keep_total_under_contention(srv, r):
    """Bank transfers between accounts on different shards with optimistic locking (the
    redis-py `transaction()` helper retries on WatchError); a concurrent auditor reads every
    account in one MULTI, and with one MGET, and must always see the same total."""
    accounts = [f"acct:{i}" for i in range(8)]
    r.mset({a: 100 for a in accounts})
    total = 100 * len(accounts)
    errors = []
    stop = threading.Event()

    def transfer(seed):
        c = srv.client()
        try:
            for n in range(60):
                src = accounts[(seed + n) % len(accounts)]
                dst = accounts[(seed * 3 + n * 5 + 1) % len(accounts)]
                if src == dst:
                    continue

                def move(p):
                    have = int(p.get(src))
                    p.multi()
                    p.decrby(src, 1 if have > 0 else 0)
                    p.incrby(dst, 1 if have > 0 else 0)

                c.transaction(move, src, dst)
        except Exception as e:  # surfaced in the main thread
            errors.append(e)
        finally:
            c.close()

    def audit():
        c = srv.client()
        try:
            while not stop.is_set():
                p = c.pipeline()
                for a in accounts:
                    p.get(a)
                seen = sum(int(v) for v in p.execute())
                if seen != total:
                    errors.append(AssertionError(f"MULTI read a total of {seen}, not {total}"))
                    return
                # One MGET across shards is atomic too, as in Redis.
                seen = sum(int(v) for v in c.mget(accounts))
                if seen != total:
                    errors.append(AssertionError(f"MGET read a total of {seen}, not {total}"))
                    return
        except Exception as e:
            errors.append(e)
        finally:
            c.close()

    workers = [threading.Thread(target=transfer, args=(s,)) for s in range(4)]
    auditor = threading.Thread(target=audit)
    auditor.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    auditor.join()
    assert not errors, errors
    assert sum(int(v) for v in r.mget(accounts)) == total


def test_register_script(r):
    # A capped queue push: the script's keys are on whatever shards their names hash to.
    push = r.register_script(
        """
        local n = redis.call('LPUSH', KEYS[1], ARGV[1])
        if n > tonumber(ARGV[2]) then
            redis.call('RPOPLPUSH', KEYS[1], KEYS[2])
        end
        return redis.call('LLEN', KEYS[1])
        """
    )
    r.script_flush()
    # First call: EVALSHA gets NOSCRIPT and redis-py falls back to loading the script.
    for i in range(5):
        assert push(keys=["queue", "overflow"], args=[f"job{i}", 3]) == min(i + 1, 3)
    assert r.lrange("queue", 0, -1) == ["job4", "job3", "job2"]
    assert r.lrange("overflow", 0, -1) == ["job1", "job0"]
    assert r.script_exists(push.sha) == [True]
    # Inside a pipeline, redis-py loads the script first and sends EVALSHA.
    p = r.pipeline()
    push(keys=["queue", "overflow"], args=["job5", 3], client=p)
    p.lrange("overflow", 0, 0)
    assert p.execute() == [3, ["job2"]]


def test_script_returns_and_errors(r):
    conv = r.register_script("return {1, 'two', 3.99, true, false, {ok='fine'}, redis.call('GET', KEYS[1])}")
    r.set("k", "v")
    assert conv(keys=["k"]) == [1, "two", 3, 1, None, "fine", "v"]
    bad = r.register_script("return redis.call('INCR', KEYS[1])")
    r.set("text", "abc")
    with pytest.raises(redis.ResponseError) as e:
        bad(keys=["text"])
    assert "not an integer" in str(e.value)
    err = r.register_script("return redis.error_reply('MYERR custom')")
    with pytest.raises(redis.ResponseError, match="MYERR custom"):
        err()


def test_script_touching_undeclared_keys(r):
    """Scripts that access keys they never declared (as some job queues do) still work."""
    s = r.register_script(
        """
        for i = 1, 20 do redis.call('SET', 'undeclared:' .. i, i) end
        local t = 0
        for i = 1, 20 do t = t + tonumber(redis.call('GET', 'undeclared:' .. i)) end
        return t
        """
    )
    assert s() == 210
    assert r.get("undeclared:20") == "20"


def test_pubsub_many_subscribers_threads(srv, r):
    n_subs, n_msgs = 24, 50
    subs = []
    for i in range(n_subs):
        c = srv.client()
        ps = c.pubsub()
        if i % 2:
            ps.psubscribe("events.*")
        else:
            ps.subscribe("events.camera")
        # Acknowledged before anything is published.
        ack = ps.get_message(timeout=5)
        assert ack and ack["type"] in ("subscribe", "psubscribe")
        subs.append((c, ps))
    try:
        for m in range(n_msgs):
            assert r.publish("events.camera", f"m{m}") == n_subs
        assert r.publish("events.other", "x") == n_subs // 2
        for i, (_, ps) in enumerate(subs):
            got = []
            deadline = time.monotonic() + 10
            want = n_msgs + (i % 2)
            while len(got) < want and time.monotonic() < deadline:
                msg = ps.get_message(timeout=1)
                if msg and msg["type"] in ("message", "pmessage"):
                    got.append((msg["channel"], msg["data"]))
            expect = [("events.camera", f"m{m}") for m in range(n_msgs)]
            if i % 2:
                expect.append(("events.other", "x"))
            assert got == expect, f"subscriber {i}"
        assert r.pubsub_numsub("events.camera") == [("events.camera", n_subs // 2)]
        assert r.pubsub_numpat() == 1  # unique patterns, not subscriptions
    finally:
        for c, ps in subs:
            ps.close()
            c.close()


def test_pubsub_run_in_thread(srv, r):
    received = []
    done = threading.Event()
    c = srv.client()
    ps = c.pubsub()

    def handler(msg):
        received.append(msg["data"])
        if len(received) == 10:
            done.set()

    ps.subscribe(**{"notify": handler})
    t = ps.run_in_thread(sleep_time=0.01, daemon=True)
    try:
        deadline = time.monotonic() + 5
        while r.pubsub_numsub("notify")[0][1] != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        for i in range(10):
            r.publish("notify", str(i))
        assert done.wait(10)
        assert received == [str(i) for i in range(10)]
    finally:
        t.stop()
        t.join(5)
        ps.close()
        c.close()


def test_blocking_pop_wakes_on_push(srv, r):
    other = srv.client()
    try:
        t = threading.Timer(0.2, lambda: other.rpush("jobs:b", "payload"))
        t.start()
        assert r.brpop(["jobs:a", "jobs:b", "jobs:c"], timeout=5) == ("jobs:b", "payload")
        t.join()
        assert r.blpop(["jobs:a"], timeout=0.1) is None
    finally:
        other.close()


def test_client_setinfo_and_hello(srv):
    # RESP3 via HELLO 3 (redis-py 5 also sends CLIENT SETINFO, and ignores its error on 7.0).
    c = srv.client(protocol=3)
    try:
        assert c.ping() is True
        c.hset("h", mapping={"a": "1"})
        assert c.hgetall("h") == {"a": "1"}
        info = c.client_info()
        assert int(info["id"]) == c.client_id()
    finally:
        c.close()


def test_server_info_and_config(r):
    info = r.info()
    assert info["redis_version"].split(".")[0] == "7"
    assert "used_memory" in r.info("memory")
    assert r.config_get("maxmemory-policy")["maxmemory-policy"]
    assert r.echo("hi") == "hi"
    assert isinstance(r.time()[0], int)


def test_redis_py_lock(srv, r):
    """redis-py's Lock: SET NX PX to take it, registered Lua scripts to release and extend."""
    other = srv.client()
    try:
        lock = r.lock("locks:camera-7", timeout=5, blocking_timeout=0.1)
        assert lock.acquire() is True
        rival = other.lock("locks:camera-7", timeout=5, blocking_timeout=0.1)
        assert rival.acquire() is False
        assert lock.extend(10) is True
        assert 5 < r.pttl("locks:camera-7") <= 15000
        lock.release()
        assert rival.acquire() is True
        # Releasing with a stale token: the release script refuses, the rival keeps it.
        with pytest.raises(redis.exceptions.LockNotOwnedError):
            lock.do_release(b"stale-token")
        assert r.exists("locks:camera-7") == 1
        rival.release()
        assert r.exists("locks:camera-7") == 0
    finally:
        other.close()


def test_sharded_pubsub(srv, r):
    c = srv.client()
    ps = c.pubsub()
    try:
        ps.ssubscribe("orders:{eu}", "orders:{us}")
        acks = [ps.get_sharded_message(timeout=2) for _ in range(2)]
        assert [a["type"] for a in acks] == ["ssubscribe", "ssubscribe"]
        assert r.spublish("orders:{eu}", "o1") == 1
        assert r.spublish("orders:{us}", "o2") == 1
        assert r.spublish("orders:{asia}", "o3") == 0
        got = []
        while len(got) < 2:
            m = ps.get_sharded_message(ignore_subscribe_messages=True, timeout=2)
            if m is not None:
                got.append((m["channel"], m["data"]))
        assert got == [("orders:{eu}", "o1"), ("orders:{us}", "o2")]
        assert r.pubsub_shardnumsub("orders:{eu}") == [("orders:{eu}", 1)]
        assert sorted(r.pubsub_shardchannels()) == ["orders:{eu}", "orders:{us}"]
    finally:
        ps.close()
        c.close()
