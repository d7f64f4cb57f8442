"""Redis Streams as an event source, end to end: a real `redis-server` (tests/e2e/brokers.py),
a real `stoke serve`, mappings made with boto3, Python functions that log which records they
finished (`DONE id,id,…`), and the stream's consumer group read back from Redis.

- thousands of messages, none lost and none run twice (no failures, so no duplicates);
- a partial batch failure (`ReportBatchItemFailures`): only the named records come back;
- a poison record goes to the on-failure destination after its retries (the batch bisected
  around it) and the rest are done;
- `FilterCriteria`: only matching records run, the others are acknowledged;
- redis killed (SIGKILL) and restarted mid-stream: nothing acknowledged by Redis is lost;
- reserved concurrency 1 under a growing backlog: the poller backs off (its CPU is measured);
- a server restart resumes where the consumer group left off.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time

import pytest

from brokers import RedisError, RedisServer
from event_sources import assert_backed_off, cpu_seconds, lines
from event_sources import python_function as make_function
from stoke_e2e import StokeServer, http_get, unique_name

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="Python functions need root")

APP = """
import json, os, time

def handler(event, context):
    done, failed = [], []
    for r in event["Records"]:
        try:
            b = json.loads(r["body"])
        except ValueError:
            b = {}
        if not isinstance(b, dict):
            b = {}
        first = r["attributes"]["ApproximateReceiveCount"] == "1"
        if b.get("poison") or (b.get("flaky") and first):
            failed.append(r["messageId"])
        else:
            done.append(r["messageId"])
    time.sleep(float(os.environ.get("SLEEP", "0")))
    if failed and os.environ.get("REPORT") == "1":
        print("DONE " + ",".join(done))
        print("FAILED " + ",".join(failed))
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}
    if failed:
        raise RuntimeError("bad records: " + ",".join(failed))
    print("DONE " + ",".join(done))
    return {}
"""

DEST = """
def handler(event, context):
    ids = [r["messageId"] for r in event["Records"]]
    print("DEST " + event["requestContext"]["condition"] + " " + ",".join(ids))
"""


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("redis")) as r:
        yield r


def python_function(lam, source: str = APP, **env) -> str:
    return make_function(lam, source, "esm", **env)


def publish(redis: RedisServer, stream: str, bodies: list) -> list[str]:
    ids: list[str] = []
    for i in range(0, len(bodies), 500):
        chunk = bodies[i : i + 500]
        ids.extend(
            redis.pipeline([("XADD", stream, "*", "body", json.dumps(b)) for b in chunk])
        )
    return ids


def mapping(lam, redis: RedisServer, fn: str, stream: str, **kw) -> str:
    m = lam.create_event_source_mapping(
        FunctionName=fn,
        SelfManagedEventSource={"Endpoints": {"REDIS_URL": [redis.url]}},
        Topics=[stream],
        **kw,
    )
    return m["UUID"]


def pending(redis: RedisServer, stream: str, group: str) -> int:
    return int(redis.command("XPENDING", stream, group)[0])


def wait_acked(redis: RedisServer, stream: str, group: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while pending(redis, stream, group) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pending(redis, stream, group) == 0


def test_thousands_of_messages_none_lost(lam, server, redis):
    fn = python_function(lam)
    stream = unique_name("orders")
    ids = publish(redis, stream, [{"i": i} for i in range(3000)])
    uuid = mapping(lam, redis, fn, stream, BatchSize=100, ScalingConfig={"MaximumConcurrency": 4})
    try:
        seen = lines(server, fn, "DONE", lambda c: set(ids) <= set(c), timeout=25)
        assert set(ids) <= set(seen), f"{len(set(ids) - set(seen))} of {len(ids)} never ran"
        assert set(seen) == set(ids)
        assert max(seen.values()) == 1, "no failure, yet a record ran twice"
        wait_acked(redis, stream, f"stoke-{uuid}")
        metrics = http_get(f"{server.endpoint}/metrics").body.decode()
        assert re.search(rf'stoke_event_source_batch_size_count{{mapping="{uuid}"', metrics)
        assert re.search(rf'stoke_event_source_records_total{{mapping="{uuid}",function="{fn}",outcome="done"}} 3000', metrics), metrics[-2000:]
        deadline = time.monotonic() + 5
        got = lam.get_event_source_mapping(UUID=uuid)
        while got["LastProcessingResult"] != "OK" and time.monotonic() < deadline:
            time.sleep(0.1)
            got = lam.get_event_source_mapping(UUID=uuid)
        assert (got["State"], got["LastProcessingResult"]) == ("Enabled", "OK")
    finally:
        lam.delete_event_source_mapping(UUID=uuid)


def test_a_partial_batch_failure_retries_only_the_named_records(lam, server, redis):
    fn = python_function(lam, REPORT=1)
    stream = unique_name("partial")
    bodies = [{"i": i, "flaky": i % 4 == 0} for i in range(20)]
    ids = publish(redis, stream, bodies)
    flaky = {ids[i] for i in range(20) if i % 4 == 0}
    uuid = mapping(lam, redis, fn, stream, BatchSize=20, MaximumBatchingWindowInSeconds=1,
                   FunctionResponseTypes=["ReportBatchItemFailures"])
    try:
        done = lines(server, fn, "DONE", lambda c: set(ids) <= set(c), timeout=20)
        failed = lines(server, fn, "FAILED", lambda c: True, timeout=0)
        assert set(done) == set(ids)
        assert max(done.values()) == 1, done
        assert set(failed) == flaky and max(failed.values()) == 1, failed
        wait_acked(redis, stream, f"stoke-{uuid}")
    finally:
        lam.delete_event_source_mapping(UUID=uuid)


def test_a_poison_record_goes_to_the_on_failure_destination(lam, server, redis, account_id):
    dest = python_function(lam, DEST)
    fn = python_function(lam)
    stream = unique_name("poison")
    bodies = [{"i": i, "poison": i == 6} for i in range(10)]
    ids = publish(redis, stream, bodies)
    uuid = mapping(
        lam, redis, fn, stream, BatchSize=10, MaximumBatchingWindowInSeconds=1,
        MaximumRetryAttempts=1, BisectBatchOnFunctionError=True,
        DestinationConfig={"OnFailure": {
            "Destination": f"arn:aws:lambda:us-east-1:{account_id}:function:{dest}"}},
    )
    try:
        healthy = set(ids) - {ids[6]}
        done = lines(server, fn, "DONE", lambda c: healthy <= set(c), timeout=20)
        assert set(done) == healthy
        got = lines(server, dest, "DEST RetryAttemptsExhausted", lambda c: ids[6] in c, timeout=15)
        assert set(got) == {ids[6]}
        # The poison record is acknowledged too: it blocks nothing.
        wait_acked(redis, stream, f"stoke-{uuid}")
    finally:
        lam.delete_event_source_mapping(UUID=uuid)


def test_filter_criteria_run_only_matching_records(lam, server, redis):
    fn = python_function(lam)
    stream = unique_name("filtered")
    bodies = [{"kind": "keep" if i % 2 else "drop", "n": i} for i in range(40)]
    ids = publish(redis, stream, bodies)
    want = {ids[i] for i in range(40) if i % 2 and i > 10}
    uuid = mapping(lam, redis, fn, stream, BatchSize=10, FilterCriteria={"Filters": [
        {"Pattern": json.dumps({"body": {"kind": ["keep"], "n": [{"numeric": [">", 10]}]}})}]})
    try:
        done = lines(server, fn, "DONE", lambda c: want <= set(c), timeout=20)
        wait_acked(redis, stream, f"stoke-{uuid}")
        done = lines(server, fn, "DONE", lambda c: False, timeout=0.3)
        assert set(done) == want
    finally:
        lam.delete_event_source_mapping(UUID=uuid)


def test_redis_killed_and_restarted_mid_stream_loses_nothing(lam, server, tmp_path):
    r = RedisServer(tmp_path / "redis").start()
    fn = python_function(lam)
    stream = unique_name("crash")
    uuid = mapping(lam, r, fn, stream, BatchSize=50)
    acked: list[str] = []
    stop = threading.Event()

    def produce():
        i = 0
        while not stop.is_set() and i < 1500:
            try:
                acked.extend(publish(r, stream, [{"i": j} for j in range(i, i + 50)]))
                i += 50
            except (OSError, ConnectionError, RedisError):  # down, or still loading its file
                time.sleep(0.05)  # redis is down: this chunk is sent again

    t = threading.Thread(target=produce)
    try:
        t.start()
        while len(acked) < 500:
            time.sleep(0.01)
        r.kill()
        time.sleep(0.5)
        r.start()
        t.join(timeout=20)
        assert len(acked) >= 1500
        done = lines(server, fn, "DONE", lambda c: set(acked) <= set(c), timeout=25)
        missing = set(acked) - set(done)
        assert not missing, f"{len(missing)} acknowledged by redis never ran"
    finally:
        stop.set()
        t.join(timeout=5)
        lam.delete_event_source_mapping(UUID=uuid)
        r.kill()


def test_a_throttled_function_makes_the_poller_back_off(lam, server, redis):
    fn = python_function(lam, SLEEP=0.2)
    lam.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=1)
    stream = unique_name("throttled")
    ids = publish(redis, stream, [{"i": i} for i in range(100)])
    uuid = mapping(lam, redis, fn, stream, BatchSize=5, ScalingConfig={"MaximumConcurrency": 10})
    try:
        start_cpu, start = cpu_seconds(server.proc.pid), time.monotonic()
        # More arrive while the function crawls through the backlog one batch at a time.
        ids += publish(redis, stream, [{"i": i} for i in range(100, 150)])
        done = lines(server, fn, "DONE", lambda c: set(ids) <= set(c), timeout=25)
        assert set(done) == set(ids)
        assert_backed_off(server, fn, start_cpu, start)
    finally:
        lam.delete_event_source_mapping(UUID=uuid)


def test_a_restart_resumes_where_the_group_left_off(tmp_path_factory, redis):
    srv = StokeServer(tmp_path_factory.mktemp("stoke-esm-restart")).start()
    try:
        lam = srv.client()
        fn = python_function(lam)
        stream = unique_name("resume")
        first = publish(redis, stream, [{"i": i} for i in range(50)])
        uuid = mapping(lam, redis, fn, stream, BatchSize=10)
        lines(srv, fn, "DONE", lambda c: set(first) <= set(c), timeout=20)
        wait_acked(redis, stream, f"stoke-{uuid}")
        srv.stop()
        second = publish(redis, stream, [{"i": i} for i in range(50, 100)])
        srv.start()
        lam = srv.client()
        assert lam.get_event_source_mapping(UUID=uuid)["Topics"] == [stream]
        done = lines(srv, fn, "DONE", lambda c: set(second) <= set(c), timeout=20)
        assert set(done) == set(first) | set(second)
        assert max(done.values()) == 1, "a record acknowledged before the restart ran again"
        srv.stop()
    finally:
        srv.kill()
