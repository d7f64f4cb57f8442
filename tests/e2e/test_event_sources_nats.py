"""NATS JetStream as an event source, end to end: a real `nats-server -js`
(tests/e2e/brokers.py), a real `stoke serve`, mappings made with boto3, the Python functions of
the Redis tests (they log which records they finished: `DONE id,id,…`), and the durable
consumer read back from JetStream's API. A record's `messageId` is its stream sequence.

- thousands of messages, none lost and none run twice (no failures, so no duplicates);
- a record carries the broker's metadata (subject, sequences, delivery count, headers);
- a partial batch failure (`ReportBatchItemFailures`): only the named records come back;
- a poison record goes to the on-failure destination after its retries and is terminated
  (JetStream's `MSG_TERMINATED` advisory names it); the rest are done;
- `FilterCriteria` on the body and on the subject: only matching records run;
- nats-server killed (SIGKILL) and restarted mid-stream: nothing JetStream acknowledged is lost;
- reserved concurrency 1 under a growing backlog: the poller backs off (its CPU is measured);
- a server restart resumes where the durable consumer left off;
- each batch keeps the order of every subject;
- `BASIC_AUTH` signs the consumer in to a server that asks for a user and password.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time

import pytest

from brokers import NatsClient, NatsError, NatsServer
from stoke_e2e import StokeServer, http_get, unique_name
from stoke_guests import log_events
from test_event_sources_redis import APP, DEST, cpu_seconds, lines, python_function

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="Python functions need root")

RECORDS = """
import json

def handler(event, context):
    for r in event["Records"]:
        print("RECORD " + json.dumps(r))
    print("DONE " + ",".join(r["messageId"] for r in event["Records"]))
    return {}
"""


@pytest.fixture(scope="module")
def nats(tmp_path_factory):
    with NatsServer(tmp_path_factory.mktemp("nats")) as n:
        yield n


def new_stream(nats: NatsServer, prefix: str) -> str:
    """A file-backed stream taking the subjects `NAME.>`."""
    name = unique_name(prefix)
    nats.stream(name)
    return name


def mapping(lam, nats: NatsServer, fn: str, stream: str, **kw) -> str:
    m = lam.create_event_source_mapping(
        FunctionName=fn,
        SelfManagedEventSource={"Endpoints": {"NATS_URL": [nats.url]}},
        Topics=[stream],
        **kw,
    )
    return m["UUID"]


def wait_settled(nats: NatsServer, stream: str, uuid: str, timeout: float = 10.0) -> dict:
    """Polls the mapping's consumer until nothing is left to deliver nor to acknowledge."""
    deadline = time.monotonic() + timeout
    while True:
        info = nats.consumer(stream, f"stoke-{uuid}")
        if (info["num_pending"], info["num_ack_pending"]) == (0, 0):
            return info
        assert time.monotonic() < deadline, info
        time.sleep(0.05)


def unacknowledged(nats: NatsServer, stream: str, uuid: str) -> int:
    """How many messages the mapping's consumer has delivered and not had settled (0 before
    the poller made the consumer)."""
    try:
        return nats.consumer(stream, f"stoke-{uuid}")["num_ack_pending"]
    except NatsError:
        return 0


def test_thousands_of_messages_none_lost(lam, server, nats):
    fn = python_function(lam)
    stream = new_stream(nats, "orders")
    ids = nats.publish(f"{stream}.eu", [{"i": i} for i in range(2500)])
    ids += nats.publish(f"{stream}.us", [{"i": i} for i in range(2500, 5000)])
    uuid = mapping(lam, nats, fn, stream, BatchSize=100, ScalingConfig={"MaximumConcurrency": 4})
    try:
        seen = lines(server, fn, "DONE", lambda c: set(ids) <= set(c), timeout=25)
        assert set(ids) <= set(seen), f"{len(set(ids) - set(seen))} of {len(ids)} never ran"
        assert set(seen) == set(ids)
        assert max(seen.values()) == 1, "no failure, yet a record ran twice"
        info = wait_settled(nats, stream, uuid)
        assert info["ack_floor"]["stream_seq"] == 5000
        assert info["num_redelivered"] == 0
        metrics = http_get(f"{server.endpoint}/metrics").body.decode()
        assert re.search(rf'stoke_event_source_batch_size_count{{mapping="{uuid}"', metrics)
        assert re.search(rf'stoke_event_source_records_total{{mapping="{uuid}",function="{fn}",outcome="done"}} 5000', metrics), metrics[-2000:]
        deadline = time.monotonic() + 5
        got = lam.get_event_source_mapping(UUID=uuid)
        while got["LastProcessingResult"] != "OK" and time.monotonic() < deadline:
            time.sleep(0.1)
            got = lam.get_event_source_mapping(UUID=uuid)
        assert (got["State"], got["LastProcessingResult"]) == ("Enabled", "OK")
        assert got["SelfManagedEventSource"] == {"Endpoints": {"NATS_URL": [nats.url]}}
    finally:
        lam.delete_event_source_mapping(UUID=uuid)


def test_a_record_carries_the_subject_sequence_and_headers(lam, server, nats):
    fn = python_function(lam, RECORDS)
    stream = new_stream(nats, "meta")
    before_ms = int(time.time() * 1000)
    eu = nats.publish(f"{stream}.eu", [{"k": 1}], headers={"Trace": "t-1", "Kind": "order"})
    us = nats.publish(f"{stream}.us", [b"\xff\x00binary"])
    uuid = mapping(lam, nats, fn, stream, BatchSize=10, MaximumBatchingWindowInSeconds=1)
    try:
        want = set(eu + us)
        lines(server, fn, "DONE", lambda c: want <= set(c), timeout=20)
        records = {}
        for e in log_events(server, fn, lambda ev: True, timeout=0):
            for line in e["message"].splitlines():
                if line.startswith("RECORD "):
                    rec = json.loads(line[len("RECORD "):])
                    records[rec["messageId"]] = rec
        assert set(records) == want, records
        first = records[eu[0]]
        assert first["body"] == '{"k": 1}'
        assert first["eventSource"] == "aws:nats"
        assert first["eventSourceARN"] == f"{nats.url}/{stream}"
        assert first["awsRegion"] == "us-east-1"
        assert first["attributes"]["ApproximateReceiveCount"] == "1"
        assert int(first["attributes"]["SentTimestamp"]) >= before_ms - 1000
        assert first["messageAttributes"] == {
            "Trace": {"stringValue": "t-1", "dataType": "String"},
            "Kind": {"stringValue": "order", "dataType": "String"},
        }
        meta = first["nats"]
        assert meta["subject"] == f"{stream}.eu"
        assert (meta["stream"], meta["consumer"]) == (stream, f"stoke-{uuid}")
        assert meta["sequence"] == int(eu[0]) and meta["deliveryCount"] == 1
        assert meta["headers"] == {"Trace": ["t-1"], "Kind": ["order"]}
        second = records[us[0]]
        assert second["nats"]["subject"] == f"{stream}.us"
        assert second["nats"]["payloadEncoding"] == "base64"
        assert base64.b64decode(second["body"]) == b"\xff\x00binary"
        assert second["messageAttributes"] == {}
        wait_settled(nats, stream, uuid)
    finally:
        lam.delete_event_source_mapping(UUID=uuid)


def test_a_partial_batch_failure_retries_only_the_named_records(lam, server, nats):
    fn = python_function(lam, REPORT=1)
    stream = new_stream(nats, "partial")
    bodies = [{"i": i, "flaky": i % 4 == 0} for i in range(20)]
    ids = nats.publish(f"{stream}.x", bodies)
    flaky = {ids[i] for i in range(20) if i % 4 == 0}
    uuid = mapping(lam, nats, fn, stream, BatchSize=20, MaximumBatchingWindowInSeconds=1,
                   FunctionResponseTypes=["ReportBatchItemFailures"])
    try:
        done = lines(server, fn, "DONE", lambda c: set(ids) <= set(c), timeout=20)
        failed = lines(server, fn, "FAILED", lambda c: True, timeout=0)
        assert set(done) == set(ids)
        assert max(done.values()) == 1, done
        assert set(failed) == flaky and max(failed.values()) == 1, failed
        wait_settled(nats, stream, uuid)
    finally:
        lam.delete_event_source_mapping(UUID=uuid)


def test_a_poison_record_goes_to_the_on_failure_destination_and_is_terminated(
    lam, server, nats, account_id
):
    dest = python_function(lam, DEST)
    fn = python_function(lam)
    stream = new_stream(nats, "poison")
    advisories = nats.client().subscribe(
        f"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{stream}.*")
    bodies = [{"i": i, "poison": i == 6} for i in range(10)]
    ids = nats.publish(f"{stream}.x", bodies)
    uuid = mapping(
        lam, nats, fn, stream, BatchSize=10, MaximumBatchingWindowInSeconds=1,
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
        # Terminated, not acknowledged: JetStream says so, once, of the poison record alone.
        wait_settled(nats, stream, uuid)
        deadline = time.monotonic() + 5
        while not (seen := nats.client().received(advisories, 0.2)):
            assert time.monotonic() < deadline, "no MSG_TERMINATED advisory"
        terminated = [json.loads(body) for _, body, _ in seen]
        assert [(a["stream_seq"], a["consumer"]) for a in terminated] == [
            (int(ids[6]), f"stoke-{uuid}")]
    finally:
        lam.delete_event_source_mapping(UUID=uuid)


def test_filter_criteria_on_body_and_subject_run_only_matching_records(lam, server, nats):
    fn = python_function(lam)
    stream = new_stream(nats, "filtered")
    eu = nats.publish(f"{stream}.eu", [{"kind": "keep" if i % 2 else "drop", "n": i}
                                       for i in range(40)])
    us = nats.publish(f"{stream}.us", [{"kind": "keep", "n": i} for i in range(40)])
    want = {eu[i] for i in range(40) if i % 2 and i > 10}
    pattern = {"body": {"kind": ["keep"], "n": [{"numeric": [">", 10]}]},
               "nats": {"subject": [{"prefix": f"{stream}.eu"}]}}
    uuid = mapping(lam, nats, fn, stream, BatchSize=10,
                   FilterCriteria={"Filters": [{"Pattern": json.dumps(pattern)}]})
    try:
        lines(server, fn, "DONE", lambda c: want <= set(c), timeout=20)
        # Every record settled: the ones the filter refused are acknowledged too.
        wait_settled(nats, stream, uuid)
        done = lines(server, fn, "DONE", lambda c: False, timeout=0.3)
        assert set(done) == want
        assert not set(done) & set(us)
    finally:
        lam.delete_event_source_mapping(UUID=uuid)


def test_nats_killed_and_restarted_mid_stream_loses_nothing(lam, server, tmp_path):
    n = NatsServer(tmp_path / "nats").start()
    # Slow enough that batches are in flight, delivered and not yet acknowledged, at the kill.
    fn = python_function(lam, SLEEP=0.1)
    stream = new_stream(n, "crash")
    uuid = mapping(lam, n, fn, stream, BatchSize=50, ScalingConfig={"MaximumConcurrency": 2})
    acked: list[str] = []
    stop = threading.Event()

    def produce():
        # A client of its own: the harness's is the main thread's.
        i, c = 0, None
        while not stop.is_set() and i < 1500:
            try:
                c = c or NatsClient(n.port, timeout=5)
                acked.extend(c.publish(f"{stream}.x", [{"i": j} for j in range(i, i + 50)],
                                       timeout=5))
                i += 50
            except (OSError, ConnectionError, TimeoutError, NatsError):
                # nats is down or JetStream not ready yet: this chunk is sent again.
                if c is not None:
                    c.close()
                c = None
                time.sleep(0.05)
        if c is not None:
            c.close()

    t = threading.Thread(target=produce)
    try:
        t.start()
        deadline = time.monotonic() + 15
        while len(acked) < 500 or not unacknowledged(n, stream, uuid):
            assert time.monotonic() < deadline, "no batch in flight to kill nats under"
            time.sleep(0.01)
        n.kill()
        time.sleep(0.5)
        n.start()
        t.join(timeout=20)
        assert len(acked) >= 1500
        # Batches delivered when the broker died come back after the consumer's ack wait.
        done = lines(server, fn, "DONE", lambda c: set(acked) <= set(c), timeout=40)
        missing = set(acked) - set(done)
        assert not missing, f"{len(missing)} acknowledged by JetStream never ran"
        # And every record is settled in the end (the acks sent across the restart hold).
        wait_settled(n, stream, uuid, timeout=25)
    finally:
        stop.set()
        t.join(timeout=5)
        lam.delete_event_source_mapping(UUID=uuid)
        n.kill()


def test_a_throttled_function_makes_the_poller_back_off(lam, server, nats):
    fn = python_function(lam, SLEEP=0.2)
    lam.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=1)
    stream = new_stream(nats, "throttled")
    ids = nats.publish(f"{stream}.x", [{"i": i} for i in range(100)])
    uuid = mapping(lam, nats, fn, stream, BatchSize=5, ScalingConfig={"MaximumConcurrency": 10})
    try:
        start_cpu, start = cpu_seconds(server.proc.pid), time.monotonic()
        # More arrive while the function crawls through the backlog one batch at a time.
        ids += nats.publish(f"{stream}.x", [{"i": i} for i in range(100, 150)])
        done = lines(server, fn, "DONE", lambda c: set(ids) <= set(c), timeout=25)
        cpu, wall = cpu_seconds(server.proc.pid) - start_cpu, time.monotonic() - start
        assert set(done) == set(ids)
        assert cpu / wall < 0.5, f"the server used {cpu:.2f} s of CPU in {wall:.2f} s"
        metrics = http_get(f"{server.endpoint}/metrics").body.decode()
        throttled = re.search(rf'stoke_throttles_total{{account="\d+",function="{fn}"}} (\d+)', metrics)
        assert throttled, "the function was never throttled"
        # Backing off, not spinning: far fewer refusals than one per millisecond of backlog.
        assert int(throttled.group(1)) < 200, throttled.group(0)
        # Idle, the mapping costs (next to) nothing: long pulls, no busy loop.
        idle_cpu, idle_start = cpu_seconds(server.proc.pid), time.monotonic()
        time.sleep(2)
        idle = (cpu_seconds(server.proc.pid) - idle_cpu) / (time.monotonic() - idle_start)
        assert idle < 0.1, f"idle mapping: {idle:.2%} of a core"
    finally:
        lam.delete_event_source_mapping(UUID=uuid)


def test_a_restart_resumes_where_the_durable_consumer_left_off(tmp_path_factory, nats):
    srv = StokeServer(tmp_path_factory.mktemp("stoke-nats-restart")).start()
    try:
        lam = srv.client()
        fn = python_function(lam)
        stream = new_stream(nats, "resume")
        first = nats.publish(f"{stream}.x", [{"i": i} for i in range(50)])
        uuid = mapping(lam, nats, fn, stream, BatchSize=10)
        lines(srv, fn, "DONE", lambda c: set(first) <= set(c), timeout=20)
        wait_settled(nats, stream, uuid)
        srv.stop()
        second = nats.publish(f"{stream}.x", [{"i": i} for i in range(50, 100)])
        srv.start()
        lam = srv.client()
        assert lam.get_event_source_mapping(UUID=uuid)["Topics"] == [stream]
        done = lines(srv, fn, "DONE", lambda c: set(second) <= set(c), timeout=20)
        assert set(done) == set(first) | set(second)
        assert max(done.values()) == 1, "a record acknowledged before the restart ran again"
        srv.stop()
    finally:
        srv.kill()


def test_each_batch_keeps_the_order_of_every_subject(lam, server, nats):
    """Records reach the function in stream order, so each subject's in its own order: the
    no-wait pull, the long pull and the batching window's further pulls join up in order.
    (Order across batches needs one batch in flight; Lambda's `MaximumConcurrency` starts at
    2, see docs/decisions.md.)"""
    fn = python_function(lam)
    stream = new_stream(nats, "ordered")
    by_subject: dict[str, list[str]] = {}
    for round_ in range(10):
        for subject in ("a", "b", "c"):
            ids = nats.publish(f"{stream}.{subject}", [{"r": round_, "i": i} for i in range(10)])
            by_subject.setdefault(subject, []).extend(ids)
    everything = {i for ids in by_subject.values() for i in ids}
    subject_of = {i: s for s, ids in by_subject.items() for i in ids}
    uuid = mapping(lam, nats, fn, stream, BatchSize=100, MaximumBatchingWindowInSeconds=1)
    try:
        lines(server, fn, "DONE", lambda c: everything <= set(c), timeout=20)
        calls = [
            line[len("DONE "):].split(",")
            for e in log_events(server, fn, lambda ev: True, timeout=0)
            for line in e["message"].splitlines()
            if line.startswith("DONE ")
        ]
        assert sorted(i for c in calls for i in c) == sorted(everything)
        for call in calls:
            for subject in ("a", "b", "c"):
                seqs = [int(i) for i in call if subject_of[i] == subject]
                assert seqs == sorted(seqs), (subject, call)
        assert max(len(c) for c in calls) > 30, "the batches never held several subjects"
    finally:
        lam.delete_event_source_mapping(UUID=uuid)


def test_basic_auth_signs_the_consumer_in_and_is_never_shown(lam, server, tmp_path):
    n = NatsServer(tmp_path / "nats", user="stoke", password="s3cret:with-colon").start()
    fn = python_function(lam)
    stream = new_stream(n, "auth")
    ids = n.publish(f"{stream}.x", [{"i": i} for i in range(20)])
    uuid = mapping(lam, n, fn, stream, BatchSize=10, SourceAccessConfigurations=[
        {"Type": "BASIC_AUTH", "URI": "stoke:s3cret:with-colon"}])
    try:
        done = lines(server, fn, "DONE", lambda c: set(ids) <= set(c), timeout=20)
        assert set(done) == set(ids)
        wait_settled(n, stream, uuid)
        got = lam.get_event_source_mapping(UUID=uuid)
        assert "s3cret" not in json.dumps(got, default=str)
        # The wrong password is refused by the server: the mapping says so, and runs nothing.
        other = python_function(lam)
        bad = mapping(lam, n, other, stream, SourceAccessConfigurations=[
            {"Type": "BASIC_AUTH", "URI": "stoke:wrong"}])
        try:
            deadline = time.monotonic() + 15
            while not lam.get_event_source_mapping(UUID=bad)["LastProcessingResult"].startswith(
                    "PROBLEM"):
                assert time.monotonic() < deadline, "a wrong password was never noticed"
                time.sleep(0.1)
            assert lines(server, other, "DONE", lambda c: False, timeout=0) == {}
        finally:
            lam.delete_event_source_mapping(UUID=bad)
    finally:
        lam.delete_event_source_mapping(UUID=uuid)
        n.kill()
