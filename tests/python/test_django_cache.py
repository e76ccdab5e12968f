"""Authentik's cache: Django's cache API over django-redis (what Authentik configures) and over
Django's built-in RedisCache, both on redis-py: SET/GET with timeouts, pipelines for the
*_many calls, counters, locks, key-pattern deletes."""

import time

import django
import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(USE_TZ=True, CACHES={})
    django.setup()

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache  # noqa: E402
from django_redis.cache import RedisCache as DjangoRedisRedisCache  # noqa: E402


@pytest.fixture(params=["django-redis", "django"])
def cache(srv, request):
    if request.param == "django-redis":
        c = DjangoRedisRedisCache(srv.url_db(0), {"KEY_PREFIX": "authentik", "TIMEOUT": 300})
    else:
        c = DjangoRedisCache(srv.url_db(0), {"KEY_PREFIX": "authentik", "TIMEOUT": 300})
    yield c
    c.close()


def test_get_set_delete(cache):
    assert cache.get("missing") is None
    assert cache.get("missing", "default") == "default"
    cache.set("flow:plan", {"stages": ["identification", "password"], "n": 2})
    assert cache.get("flow:plan") == {"stages": ["identification", "password"], "n": 2}
    assert cache.add("flow:plan", "other") is False
    assert cache.add("fresh", 1) is True
    assert cache.has_key("fresh")
    assert cache.delete("fresh") is True
    assert cache.get("fresh") is None
    cache.set("short", "v", timeout=1)
    assert cache.get("short") == "v"
    time.sleep(1.2)
    assert cache.get("short") is None
    assert cache.get_or_set("computed", lambda: "value", timeout=60) == "value"
    assert cache.touch("computed", 120) is True


def test_many_and_counters(cache):
    data = {f"policy:{i}": {"result": i % 2 == 0, "i": i} for i in range(50)}
    cache.set_many(data, timeout=60)
    got = cache.get_many(list(data) + ["policy:missing"])
    assert got == data
    cache.delete_many([f"policy:{i}" for i in range(25)])
    assert len(cache.get_many(list(data))) == 25
    cache.set("hits", 0)
    assert cache.incr("hits") == 1
    assert cache.incr("hits", 10) == 11
    assert cache.decr("hits", 5) == 6
    with pytest.raises(ValueError):
        cache.incr("never-set")


def test_django_redis_extras(srv):
    cache = DjangoRedisRedisCache(srv.url_db(0), {"KEY_PREFIX": "authentik", "TIMEOUT": 300})
    try:
        for i in range(30):
            cache.set(f"goauthentik.io/sessions/{i}", i)
        cache.set("other", 1)
        assert sorted(cache.keys("goauthentik.io/sessions/*")) == sorted(
            f"goauthentik.io/sessions/{i}" for i in range(30))
        assert cache.delete_pattern("goauthentik.io/sessions/*") == 30
        assert cache.get("other") == 1
        cache.set("t", 1, timeout=100)
        assert 0 < cache.ttl("t") <= 100
        assert cache.persist("t") is True
        assert cache.ttl("t") is None
        # Redis-backed lock, as Authentik uses around blueprint and outpost tasks.
        with cache.lock("blueprint-apply", timeout=10):
            lock2 = cache.lock("blueprint-apply", timeout=10)
            assert lock2.acquire(blocking=False) is False
        assert cache.lock("blueprint-apply").acquire(blocking=False) is True
    finally:
        cache.close()


def test_cache_clear_flushes_db(srv, cache):
    cache.set("a", 1)
    cache.clear()
    assert cache.get("a") is None
