"""RabbitMQ (AMQP 0-9-1) as an event source, end to end: a real `rabbitmq-server`
(tests/e2e/brokers.py, one node per module, another for the test that kills it), a real
`stoke serve`, mappings made with boto3 (`SelfManagedEventSource={"Endpoints": {"AMQP_URL":
[…]}}`, `Queues=[…]`), messages published with `pika`, Python functions that log which
messages they finished (`DONE k,k,…`, each message's body naming its key `k`), and the
queue's counts read back from the broker (a message acknowledged by nobody goes back to the
queue when the mapping's consumer goes, so a queue left empty after its mapping was deleted
means every message was acknowledged).

- thousands of messages, none lost and none run twice (no failures, so no duplicates);
- a partial batch failure (`ReportBatchItemFailures`): only the named messages come back;
- a poison message goes to the on-failure destination after its retries (the batch bisected
  around it) and the rest are done;
- `FilterCriteria`: only matching messages run, the others are acknowledged;
- the record: Lambda's SQS shape with the broker's metadata (exchange, routing key, headers,
  properties, delivery tag);
- rabbitmq killed (SIGKILL) and restarted mid-stream: nothing the broker committed is lost;
- reserved concurrency 1 under a growing backlog: the poller backs off (its CPU is measured);
- the server killed while it holds deliveries: the broker gives them to the next server,
  which counts the delivery (a quorum queue's `x-delivery-count`).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import Counter

import pytest
from botocore.exceptions import ClientError

from brokers import RabbitServer
from event_sources import assert_backed_off, cpu_seconds, lines
from event_sources import python_function as make_function
from stoke_e2e import StokeServer, http_get, unique_name
from stoke_guests import log_events

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="Python functions need root")

APP = """
import json, os, time

def handler(event, context):
    done, failed = [], []
    for r in event["Records"]:
        b = json.loads(r["body"])
        first = r["attributes"]["ApproximateReceiveCount"] == "1"
        if os.environ.get("META") == "1":
            print("META " + json.dumps(r))
        if b.get("poison") or (b.get("flaky") and first):
            failed.append(r)
        else:
            done.append(r)
    time.sleep(float(os.environ.get("SLEEP", "0")))
    if any(r["attributes"]["ApproximateReceiveCount"] == "1" for r in event["Records"]):
        time.sleep(float(os.environ.get("SLEEP_FIRST", "0")))
    keys = lambda rs: ",".join(json.loads(r["body"])["k"] for r in rs)
    if failed and os.environ.get("REPORT") == "1":
        print("DONE " + keys(done))
        print("FAILED " + keys(failed))
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in failed]}
    if failed:
        raise RuntimeError("bad records: " + keys(failed))
    print("DONE " + keys(done))
    return {}
"""

DEST = """
import json

def handler(event, context):
    keys = [json.loads(r["body"])["k"] for r in event["Records"]]
    info = event["RabbitMQBatchInfo"]
    print("DEST " + event["requestContext"]["condition"] + " " + info["queue"] + " "
          + ",".join(keys))
"""


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory):
    with RabbitServer(tmp_path_factory.mktemp("rabbit")) as r:
        yield r


def python_function(lam, source: str = APP, **kw) -> str:
    return make_function(lam, source, "amqp", **kw)


def bodies(prefix: str, n: int, start: int = 0, **flags) -> list[dict]:
    """`n` message bodies keyed `prefix-i`; `flags` maps a flag to a predicate on `i`."""
    return [
        {"k": f"{prefix}-{i}", "i": i, **{f: bool(p(i)) for f, p in flags.items()}}
        for i in range(start, start + n)
    ]


def keys(bs: list[dict]) -> set[str]:
    return {b["k"] for b in bs}


def mapping(lam, rabbit: RabbitServer, fn: str, queue: str, **kw) -> str:
    m = lam.create_event_source_mapping(
        FunctionName=fn,
        SelfManagedEventSource={"Endpoints": {"AMQP_URL": [rabbit.url]}},
        Queues=[queue],
        **kw,
    )
    assert m["Queues"] == [queue]
    return m["UUID"]


def delete(lam, uuid: str) -> None:
    try:
        lam.delete_event_source_mapping(UUID=uuid)
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceNotFoundException":
            raise


def assert_all_acknowledged(lam, rabbit: RabbitServer, queue: str, uuid: str) -> None:
    """Deletes the mapping, waits for its consumer to go, and finds the queue empty: what
    the consumer held unacknowledged would be back in it."""
    delete(lam, uuid)
    deadline = time.monotonic() + 15
    ready, consumers = rabbit.count(queue)
    while consumers and time.monotonic() < deadline:
        time.sleep(0.1)
        ready, consumers = rabbit.count(queue)
    assert consumers == 0, "the mapping's consumer is still there"
    assert ready == 0, f"{ready} messages were never acknowledged"


def test_thousands_of_messages_none_lost(lam, server, rabbit):
    fn = python_function(lam)
    queue = rabbit.declare(unique_name("orders"))
    sent = bodies("o", 5000)
    rabbit.publish(queue, sent, chunk=500)
    want = keys(sent)
    uuid = mapping(lam, rabbit, fn, queue, BatchSize=100, ScalingConfig={"MaximumConcurrency": 4})
    try:
        seen = lines(server, fn, "DONE", lambda c: want <= set(c), timeout=25)
        assert want <= set(seen), f"{len(want - set(seen))} of {len(want)} never ran"
        assert set(seen) == want
        assert max(seen.values()) == 1, "no failure, yet a message ran twice"
        done = rf'stoke_event_source_records_total{{mapping="{uuid}",function="{fn}",outcome="done"}} 5000'
        # The lag is the queue's count of ready messages: drained, it reads 0 (the poller reads
        # it at most once a second, after a poll that waits up to 2 s).
        lag = rf'stoke_event_source_lag{{mapping="{uuid}",function="{fn}"}} 0\b'
        deadline = time.monotonic() + 10
        while True:
            metrics = http_get(f"{server.endpoint}/metrics").body.decode()
            if (re.search(done, metrics) and re.search(lag, metrics)) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert re.search(rf'stoke_event_source_batch_size_count{{mapping="{uuid}"', metrics)
        assert re.search(done, metrics), metrics[-2000:]
        assert re.search(lag, metrics), metrics[-2000:]
        deadline = time.monotonic() + 5
        got = lam.get_event_source_mapping(UUID=uuid)
        while got["LastProcessingResult"] != "OK" and time.monotonic() < deadline:
            time.sleep(0.1)
            got = lam.get_event_source_mapping(UUID=uuid)
        assert (got["State"], got["LastProcessingResult"]) == ("Enabled", "OK")
        # The password of the URL is shown masked.
        assert got["SelfManagedEventSource"]["Endpoints"]["AMQP_URL"] == [
            rabbit.url.replace("guest:guest@", "guest:****@")]
        assert_all_acknowledged(lam, rabbit, queue, uuid)
    finally:
        delete(lam, uuid)


def test_a_partial_batch_failure_retries_only_the_named_messages(lam, server, rabbit):
    fn = python_function(lam, REPORT=1)
    queue = rabbit.declare(unique_name("partial"))
    sent = bodies("p", 20, flaky=lambda i: i % 4 == 0)
    flaky = {b["k"] for b in sent if b["flaky"]}
    rabbit.publish(queue, sent)
    uuid = mapping(lam, rabbit, fn, queue, BatchSize=20, MaximumBatchingWindowInSeconds=1,
                   FunctionResponseTypes=["ReportBatchItemFailures"])
    try:
        done = lines(server, fn, "DONE", lambda c: keys(sent) <= set(c), timeout=20)
        failed = lines(server, fn, "FAILED", lambda c: True, timeout=0)
        assert set(done) == keys(sent)
        assert max(done.values()) == 1, done
        assert set(failed) == flaky and max(failed.values()) == 1, failed
        assert_all_acknowledged(lam, rabbit, queue, uuid)
    finally:
        delete(lam, uuid)


def test_a_poison_message_goes_to_the_on_failure_destination(lam, server, rabbit, account_id):
    dest = python_function(lam, DEST)
    fn = python_function(lam)
    queue = rabbit.declare(unique_name("poison"))
    sent = bodies("x", 10, poison=lambda i: i == 6)
    rabbit.publish(queue, sent)
    uuid = mapping(
        lam, rabbit, fn, queue, BatchSize=10, MaximumBatchingWindowInSeconds=1,
        MaximumRetryAttempts=1, BisectBatchOnFunctionError=True,
        DestinationConfig={"OnFailure": {
            "Destination": f"arn:aws:lambda:us-east-1:{account_id}:function:{dest}"}},
    )
    try:
        healthy = keys(sent) - {"x-6"}
        done = lines(server, fn, "DONE", lambda c: healthy <= set(c), timeout=20)
        assert set(done) == healthy
        got = lines(server, dest, f"DEST RetryAttemptsExhausted {queue}",
                    lambda c: "x-6" in c, timeout=15)
        assert set(got) == {"x-6"}
        # The poison message is acknowledged too: it blocks nothing.
        assert_all_acknowledged(lam, rabbit, queue, uuid)
    finally:
        delete(lam, uuid)


def test_filter_criteria_run_only_matching_messages(lam, server, rabbit):
    fn = python_function(lam)
    queue = rabbit.declare(unique_name("filtered"))
    sent = [{"k": f"f-{i}", "kind": "keep" if i % 2 else "drop", "n": i} for i in range(40)]
    rabbit.publish(queue, sent)
    want = {f"f-{i}" for i in range(40) if i % 2 and i > 10}
    uuid = mapping(lam, rabbit, fn, queue, BatchSize=10, FilterCriteria={"Filters": [
        {"Pattern": json.dumps({"body": {"kind": ["keep"], "n": [{"numeric": [">", 10]}]}})}]})
    try:
        lines(server, fn, "DONE", lambda c: want <= set(c), timeout=20)
        # Every message is acknowledged, the filtered ones without a call.
        assert_all_acknowledged(lam, rabbit, queue, uuid)
        done = lines(server, fn, "DONE", lambda c: False, timeout=0.3)
        assert set(done) == want
    finally:
        delete(lam, uuid)


def test_a_record_carries_the_brokers_metadata(lam, server, rabbit):
    fn = python_function(lam, META=1)
    queue = rabbit.declare(unique_name("meta"))
    exchange = unique_name("ex")
    rabbit.bind(queue, exchange, "orders.eu")
    rabbit.publish(queue, [{"k": "m-0"}], headers={"tenant": "acme", "n": 7},
                   exchange=exchange, routing_key="orders.eu")
    uuid = mapping(lam, rabbit, fn, queue, BatchSize=1)
    try:
        events = log_events(server, fn, lambda ev: any("META " in e["message"] for e in ev),
                            timeout=15)
        line = next(ln for e in events for ln in e["message"].splitlines()
                    if ln.startswith("META "))
        r = json.loads(line[len("META "):])
        assert r["eventSource"] == "aws:rmq"
        assert r["eventSourceARN"] == f"{rabbit.url.replace('guest:guest@', 'guest:****@')}/{queue}"
        assert r["awsRegion"] == "us-east-1"
        assert json.loads(r["body"]) == {"k": "m-0"}
        assert r["attributes"]["ApproximateReceiveCount"] == "1"
        assert int(r["attributes"]["SentTimestamp"]) >= (time.time() - 120) * 1000
        assert r["messageAttributes"] == {
            "tenant": {"stringValue": "acme", "dataType": "String"},
            "n": {"stringValue": "7", "dataType": "String"},
        }
        rmq = r["rmq"]
        assert (rmq["queue"], rmq["exchange"], rmq["routingKey"]) == (queue, exchange, "orders.eu")
        assert rmq["redelivered"] is False and rmq["deliveryCount"] == 1
        assert isinstance(rmq["deliveryTag"], int)
        assert r["messageId"].endswith(f".{rmq['deliveryTag']}")
        assert r["receiptHandle"] == f"{uuid}:{r['messageId']}"
        props = rmq["basicProperties"]
        assert props["deliveryMode"] == 2
        assert props["headers"] == {"tenant": "acme", "n": "7"}
        assert_all_acknowledged(lam, rabbit, queue, uuid)
    finally:
        delete(lam, uuid)


def test_rabbitmq_killed_and_restarted_mid_stream_loses_nothing(lam, server, tmp_path):
    r = RabbitServer(tmp_path / "rabbit").start()
    try:
        fn = python_function(lam)
        # A classic durable queue, and a clean restart before the test: RabbitMQ 3.10 can
        # lose a queue declared a second or two before a SIGKILL (its record not yet on disk;
        # a quorum queue's raft registry likewise, see brokers.py), and with it what was
        # committed to it. What is tested is what the broker keeps of a queue it has.
        queue = r.declare(unique_name("crash"))
        r.restart()
        uuid = mapping(lam, r, fn, queue, BatchSize=50)
        committed: list[str] = []
        stop = threading.Event()

        def produce():
            client, i = None, 0
            while not stop.is_set() and i < 1500:
                chunk = bodies("c", 50, start=i)
                try:
                    client = client or r.client()
                    client.publish(queue, chunk, chunk=50)
                    committed.extend(keys(chunk))
                    i += 50
                except Exception:  # noqa: BLE001 - the broker is down: this chunk again
                    if client is not None:
                        client.close()
                    client = None
                    time.sleep(0.1)
            if client is not None:
                client.close()

        t = threading.Thread(target=produce, daemon=True)
        t.start()
        try:
            deadline = time.monotonic() + 20
            while len(committed) < 500 and time.monotonic() < deadline:
                time.sleep(0.01)
            r.kill()
            r.start()
            t.join(timeout=30)
            assert len(committed) >= 1500
            want = set(committed)
            done = lines(server, fn, "DONE", lambda c: want <= set(c), timeout=30)
            missing = want - set(done)
            assert not missing, f"{len(missing)} committed to rabbitmq never ran"
            assert_all_acknowledged(lam, r, queue, uuid)
        finally:
            stop.set()
            t.join(timeout=5)
            delete(lam, uuid)
    finally:
        r.close()


def test_a_throttled_function_makes_the_poller_back_off(lam, server, rabbit):
    fn = python_function(lam, SLEEP=0.2)
    lam.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=1)
    queue = rabbit.declare(unique_name("throttled"))
    sent = bodies("t", 100)
    rabbit.publish(queue, sent)
    uuid = mapping(lam, rabbit, fn, queue, BatchSize=5, ScalingConfig={"MaximumConcurrency": 10})
    try:
        start_cpu, start = cpu_seconds(server.proc.pid), time.monotonic()
        # More arrive while the function crawls through the backlog one batch at a time.
        more = bodies("t", 50, start=100)
        rabbit.publish(queue, more)
        want = keys(sent) | keys(more)
        done = lines(server, fn, "DONE", lambda c: want <= set(c), timeout=25)
        assert set(done) == want
        assert_backed_off(server, fn, start_cpu, start)
    finally:
        delete(lam, uuid)


def test_a_killed_server_leaves_its_deliveries_to_the_next(tmp_path_factory, rabbit):
    srv = StokeServer(tmp_path_factory.mktemp("stoke-amqp-restart")).start()
    try:
        lam = srv.client()
        # The first delivery hangs (the server dies under it); the next one runs.
        fn = python_function(lam, timeout=60, SLEEP_FIRST=60, META=1)
        queue = rabbit.declare(unique_name("resume"), quorum=True)
        sent = bodies("r", 3)
        rabbit.publish(queue, sent)
        uuid = mapping(lam, rabbit, fn, queue, BatchSize=10, MaximumBatchingWindowInSeconds=1)
        # The batch is delivered (held unacknowledged while the function sleeps) …
        deadline = time.monotonic() + 20
        while rabbit.count(queue)[0] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rabbit.count(queue) == (0, 1)
        # … when the server dies: the broker takes the messages back.
        srv.kill()
        deadline = time.monotonic() + 15
        while rabbit.count(queue)[1] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rabbit.count(queue) == (3, 0)
        lam = srv.start().client()
        assert lam.get_event_source_mapping(UUID=uuid)["Queues"] == [queue]
        done = lines(srv, fn, "DONE", lambda c: keys(sent) <= set(c), timeout=25)
        assert set(done) == keys(sent)
        metas = [json.loads(ln[len("META "):]) for e in log_events(srv, fn, lambda ev: True)
                 for ln in e["message"].splitlines() if ln.startswith("META ")]
        counts = Counter((json.loads(m["body"])["k"], m["attributes"]["ApproximateReceiveCount"],
                          m["rmq"]["redelivered"]) for m in metas)
        # Once more to the new server, counted by the quorum queue (`x-delivery-count`); the
        # dead server's own log lines of the first delivery died with it.
        assert counts == Counter({(k, "2", True): 1 for k in keys(sent)}), counts
        assert_all_acknowledged(lam, rabbit, queue, uuid)
        srv.stop()
    finally:
        srv.kill()
