"""A Celery worker round trip with the server as broker (kombu's redis transport: LPUSH/BRPOP,
the unacked hash and sorted set, pub/sub fanout for control) and as result backend (results
in keys, waited for over pub/sub; chords counted with INCR/RPUSH in a transaction)."""

import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import chain, chord, group

from celery_app import QUEUE, make_app

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def celery(server, tmp_path_factory):
    """A real worker (solo pool) in a subprocess, broker on db 0 and results on db 1."""
    server.flushall()
    broker, backend = server.url_db(0), server.url_db(1)
    log = tmp_path_factory.mktemp(f"celery-{server.kind}") / "worker.log"
    env = dict(os.environ, CELERY_BROKER=broker, CELERY_BACKEND=backend, PYTHONPATH=str(HERE))
    with open(log, "wb") as logf:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=solo",
             "--concurrency=1", "-Q", QUEUE, "--without-gossip", "--without-mingle",
             "--loglevel=INFO", "--hostname", f"w-{server.kind}@%h"],
            cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
        )
    app = make_app(broker, backend)
    try:
        deadline = time.monotonic() + 30
        while b"ready." not in log.read_bytes():
            if worker.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"celery worker did not start:\n{log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.1)
        yield app
    finally:
        # AsyncResult.__del__ unsubscribes from the result channel: let it run while the server
        # is still up, not at interpreter exit.
        gc.collect()
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        app.close()
        if worker.returncode not in (0, -15):
            print(log.read_text(errors="replace")[-4000:])


def test_task_round_trip(celery):
    res = celery.tasks["tests.add"].delay(2, 3)
    assert res.get(timeout=20) == 5
    assert res.state == "SUCCESS"
    # The result is a key in the backend's database, found again by id.
    again = celery.AsyncResult(res.id)
    assert again.get(timeout=5) == 5


def test_many_tasks_and_group(celery):
    add = celery.tasks["tests.add"]
    results = [add.delay(i, i) for i in range(20)]
    assert [r.get(timeout=20) for r in results] == [2 * i for i in range(20)]
    g = group(add.s(i, 1) for i in range(10)).apply_async()
    assert g.get(timeout=20) == [i + 1 for i in range(10)]


def test_chord_and_chain(celery):
    add, tsum = celery.tasks["tests.add"], celery.tasks["tests.tsum"]
    c = chord(add.s(i, i) for i in range(6))(tsum.s())
    assert c.get(timeout=20) == sum(2 * i for i in range(6))
    ch = chain(add.s(1, 2), add.s(10), add.s(100)).apply_async()
    assert ch.get(timeout=20) == 113


def test_failure_and_retry(celery, server):
    res = celery.tasks["tests.boom"].delay("bad camera")
    with pytest.raises(ValueError, match="bad camera"):
        res.get(timeout=20)
    assert res.state == "FAILURE"
    flaky = celery.tasks["tests.flaky"].delay("flaky-tries", server.url_db(2))
    assert flaky.get(timeout=20) == 3


def test_countdown_and_control_ping(celery):
    res = celery.tasks["tests.add"].apply_async((40, 2), countdown=1)
    assert res.get(timeout=20) == 42
    # Broadcast control (kombu fanout over pub/sub) reaches the worker and it replies.
    replies = celery.control.ping(timeout=2)
    assert len(replies) == 1 and list(replies[0].values())[0] == {"ok": "pong"}
