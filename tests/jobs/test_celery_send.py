"""Sending jobs to Celery keeps its broker connection open from one send to the next (kombu's
pool), a kept connection that went away (the broker restarted) costs no message, a broker that
cannot be reached fails at once, and a forked process never uses its parent's connection.
Connections are counted where they are opened: on the test's own Redis server."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from kombu.exceptions import OperationalError
from kombu.transport.redis import Channel as RedisChannel

from app import celery_app
from tests.jobs.conftest import free_port


@pytest.fixture
def broker(app: Flask, redis_url: str, monkeypatch) -> Iterator[redis.Redis]:
    monkeypatch.setitem(app.config, "JOBS_BACKEND", "celery")
    monkeypatch.setitem(app.config, "CELERY_BROKER_URL", redis_url)
    celery_app.bind(app)
    client = redis.Redis.from_url(redis_url)
    client.delete("celery")
    celery_app.reset_connections()  # no connection kept by an earlier test
    yield client
    client.delete("celery")
    celery_app.reset_connections()
    client.close()


def sent_ids(client: redis.Redis) -> list[int]:
    """The ids of the job messages waiting in the default queue, oldest first."""
    bodies = [json.loads(m) for m in reversed(client.lrange("celery", 0, -1))]
    return [json.loads(base64.b64decode(b["body"]))[0][0] for b in bodies]


def received(client: redis.Redis) -> int:
    return int(client.info("stats")["total_connections_received"])


def test_sends_reuse_one_broker_connection(app: Flask, broker: redis.Redis) -> None:
    before = received(broker)
    celery_app.send_job(app, 11)
    after_first = received(broker)
    assert after_first > before
    for job_id in (12, 13):
        celery_app.send_job(app, job_id)
    celery_app.send_chunks(app, [21, 22])
    assert sent_ids(broker) == [11, 12, 13, 21, 22]
    # The broker saw no new connection after the first send's.
    assert received(broker) == after_first


def test_a_kept_connection_the_broker_dropped_is_replaced_and_no_message_lost(
    app: Flask, broker: redis.Redis
) -> None:
    celery_app.send_job(app, 1)
    own = broker.client_id()
    # The broker drops every client but ours (as a restart would).
    for client in broker.client_list():
        if int(client["id"]) != own:
            broker.client_kill_filter(_id=client["id"])
    celery_app.send_job(app, 2)
    celery_app.send_job(app, 3)
    assert sorted(sent_ids(broker)) == [1, 2, 3]


def test_a_publish_that_fails_on_its_connection_is_repeated_once_on_a_new_one(
    app: Flask, broker: redis.Redis, monkeypatch
) -> None:
    celery_app.send_job(app, 1)
    puts = []
    put = RedisChannel._put

    def failing_once(channel, queue, message, **kwargs):
        puts.append(queue)
        if len(puts) == 1:
            raise redis.exceptions.ConnectionError("Connection closed by server.")
        return put(channel, queue, message, **kwargs)

    monkeypatch.setattr(RedisChannel, "_put", failing_once)
    before = received(broker)
    celery_app.send_job(app, 2)
    assert len(puts) == 2 and received(broker) > before  # repeated once, on a new connection
    assert sent_ids(broker) == [1, 2]


def test_a_publish_that_fails_again_is_not_repeated_twice(
    app: Flask, broker: redis.Redis, monkeypatch
) -> None:
    puts = []
    put = RedisChannel._put

    def failing(channel, queue, message, **kwargs):
        puts.append(queue)
        raise redis.exceptions.ConnectionError("Connection closed by server.")

    monkeypatch.setattr(RedisChannel, "_put", failing)
    with pytest.raises(OperationalError):
        celery_app.send_job(app, 1)
    assert len(puts) == 2
    # The broker works again: the failed connection was not kept as it was.
    monkeypatch.setattr(RedisChannel, "_put", put)
    celery_app.send_job(app, 2)
    assert sent_ids(broker) == [2]


def test_an_unreachable_broker_still_fails_at_once(app: Flask, broker, monkeypatch) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    monkeypatch.setitem(app.config, "CELERY_BROKER_URL", down)
    for _ in range(2):  # nothing half-open is kept for the next send either
        started = time.monotonic()
        with pytest.raises(OperationalError):
            celery_app.send_job(app, 1)
        # One attempt: a refused connection, no retry after a pause (kombu's would be 2 s).
        assert time.monotonic() - started < 1


def test_a_forked_process_opens_its_own_connection(
    app: Flask, broker: redis.Redis, redis_url: str
) -> None:
    before = received(broker)
    celery_app.send_job(app, 1)
    one_connection = received(broker) - before
    parents = celery_app.broker_pool(redis_url)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's kept connection is not used
        try:
            fresh = celery_app.broker_pool(redis_url) is not parents
            celery_app.send_job(app, 2)
            os.write(write, b"fresh" if fresh else b"parent's")
        finally:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 20
    while os.waitpid(pid, os.WNOHANG) == (0, 0):  # never hang the suite on the child
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked process did not finish its send")
        time.sleep(0.02)
    assert os.read(read, 10) == b"fresh"  # the child's pool: not the parent's
    os.close(read)
    after_child = received(broker)
    assert after_child - before == 2 * one_connection  # the child opened its own
    celery_app.send_job(app, 3)
    assert received(broker) == after_child  # the parent's kept connection outlived the child
    assert sorted(sent_ids(broker)) == [1, 2, 3]
