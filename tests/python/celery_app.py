"""Celery tasks for test_celery.py. The worker subprocess imports this module with
CELERY_BROKER and CELERY_BACKEND in its environment; the test process builds the same app
with make_app() so both sides agree on task names and settings."""

import os

from celery import Celery

QUEUE = "basalt-tests"


def make_app(broker, backend):
    app = Celery("basalt_tests", broker=broker, backend=backend)
    app.conf.update(
        task_default_queue=QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # As Authentik runs it: acks after the task ran, results kept for a while.
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        result_expires=600,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 60},
    )

    @app.task(name="tests.add")
    def add(x, y):
        return x + y

    @app.task(name="tests.tsum")
    def tsum(values):
        return sum(values)

    @app.task(name="tests.boom")
    def boom(msg):
        raise ValueError(msg)

    @app.task(name="tests.flaky", bind=True, max_retries=3, default_retry_delay=0.1)
    def flaky(self, key, url):
        # Fails until it has been tried three times, counting tries in the server itself.
        import redis

        c = redis.Redis.from_url(url)
        try:
            if c.incr(key) < 3:
                raise self.retry(countdown=0.1)
            return int(c.get(key))
        finally:
            c.close()

    return app


if os.environ.get("CELERY_BROKER"):
    app = make_app(os.environ["CELERY_BROKER"], os.environ["CELERY_BACKEND"])
