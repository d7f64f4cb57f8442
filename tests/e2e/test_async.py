"""Asynchronous invocation with the real boto3: `invoke(InvocationType='Event')` (202, the request
id that the run's START/REPORT lines carry, the 1 MB limit), the old InvokeAsync, the
event-invoke-config operations and their validation errors, retries of a function that always
fails into its on-failure destination, a throttled function (reserved concurrency 0) whose events
age out into the dead letters (listed and redriven with `stoke dead-letters`), and a full disk
while enqueueing.

The crash test (SIGKILL while thousands of events run) is in test_async_crash.py."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from stoke_e2e import (
    REGION,
    StokeServer,
    create_wasm,
    error_code,
    error_message,
    expect_error,
    http_status,
    sqlite_only,
    stoke_bin,
    wait_active,
)
from stoke_guests import REQUEST_ID_RE, deploy, guest_zip, log_events

ONE_MB = 1024 * 1024


def _starts(events: list[dict]) -> list[str]:
    """Request ids of the START lines."""
    out = []
    for e in events:
        m = e["message"]
        if m.startswith("START RequestId: "):
            out.append(m.split()[2])
    return out


def _event_lines(events: list[dict]) -> list[dict]:
    """The JSON events the `record` guest logged (`EVENT {...}`)."""
    out = []
    for e in events:
        m = e["message"]
        i = m.find("EVENT ")
        if i >= 0:
            out.append(json.loads(m[i + len("EVENT ") :]))
    return out


# --------------------------------------------------------------------------------------------
# Invoke with InvocationType=Event, InvokeAsync
# --------------------------------------------------------------------------------------------


def test_event_invoke_answers_202_and_runs_with_its_request_id(server, lam):
    name = deploy(lam, "hello", prefix="async-hello")
    resp = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"name": "async"}')
    assert resp["StatusCode"] == 202
    assert resp["Payload"].read() == b""
    rid = resp["ResponseMetadata"]["RequestId"]
    assert REQUEST_ID_RE.match(rid), rid
    events = log_events(
        server,
        name,
        lambda ev: any(e["message"].startswith(f"REPORT RequestId: {rid}") for e in ev),
        timeout=10,
    )
    msgs = [e["message"] for e in events]
    assert f"START RequestId: {rid} Version: $LATEST" in msgs, msgs
    assert any(m.startswith(f"REPORT RequestId: {rid}\t") for m in msgs), msgs
    assert any("saying hello to async" in m for m in msgs), msgs


def test_event_payload_over_1mb_is_refused(lam):
    name = deploy(lam, "hello", prefix="async-big")
    big = b'{"a": "' + b"x" * ONE_MB + b'"}'
    with expect_error("RequestTooLargeException", 413):
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=big)
    # Just under the limit is accepted.
    ok = b'{"a": "' + b"x" * (ONE_MB - 100) + b'"}'
    assert lam.invoke(FunctionName=name, InvocationType="Event", Payload=ok)["StatusCode"] == 202


def test_event_invoke_of_a_missing_function_is_404(lam):
    with expect_error("ResourceNotFoundException", 404):
        lam.invoke(FunctionName="async-no-such-function", InvocationType="Event", Payload=b"{}")


def test_event_invoke_checks_the_payload_is_json(lam):
    name = deploy(lam, "hello", prefix="async-json")
    with expect_error("InvalidRequestContentException", 400):
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=b"{not json")


def test_invoke_async_answers_202_status(server, lam):
    name = deploy(lam, "hello", prefix="async-old")
    r = server.signed_request(
        "POST", f"/2014-11-13/functions/{name}/invoke-async/", b'{"name": "old api"}'
    )
    assert r.status == 202, r.body
    assert json.loads(r.body) == {"Status": 202}
    rid = r.header("x-amzn-RequestId")
    assert REQUEST_ID_RE.match(rid or ""), r.headers
    events = log_events(server, name, lambda ev: rid in _starts(ev), timeout=10)
    assert rid in _starts(events)
    assert any("saying hello to old api" in e["message"] for e in events)
    # boto3 still has the operation.
    resp = lam.invoke_async(FunctionName=name, InvokeArgs=b'{"name": "boto3"}')
    assert resp["Status"] == 202


# --------------------------------------------------------------------------------------------
# Event-invoke configurations
# --------------------------------------------------------------------------------------------


def _arn(account_id: str, name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{account_id}:function:{name}"


def test_event_invoke_config_operations(lam, account_id):
    name = deploy(lam, "hello", prefix="async-cfg")
    dest = deploy(lam, "record", prefix="async-cfg-dest")
    arn = _arn(account_id, name)
    with expect_error("ResourceNotFoundException", 404) as e:
        lam.get_function_event_invoke_config(FunctionName=name)
    assert error_message(e.value) == f"The function {arn}:$LATEST doesn't have an EventInvokeConfig"
    assert lam.list_function_event_invoke_configs(FunctionName=name)[
        "FunctionEventInvokeConfigs"
    ] == []

    before = time.time()
    put = lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": _arn(account_id, dest)}},
    )
    assert put["FunctionArn"] == f"{arn}:$LATEST"
    assert put["MaximumRetryAttempts"] == 1
    assert "MaximumEventAgeInSeconds" not in put
    assert put["DestinationConfig"] == {
        "OnSuccess": {},
        "OnFailure": {"Destination": _arn(account_id, dest)},
    }
    # LastModified is epoch seconds; boto3 turns it into a datetime.
    assert abs(put["LastModified"].timestamp() - before) < 60

    got = lam.get_function_event_invoke_config(FunctionName=name, Qualifier="$LATEST")
    assert got["MaximumRetryAttempts"] == 1
    assert got["DestinationConfig"]["OnFailure"]["Destination"] == _arn(account_id, dest)

    # Update merges: the retry count and the destination stay.
    upd = lam.update_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=120)
    assert upd["MaximumRetryAttempts"] == 1
    assert upd["MaximumEventAgeInSeconds"] == 120
    assert upd["DestinationConfig"]["OnFailure"]["Destination"] == _arn(account_id, dest)

    # Put replaces: what it does not name is gone.
    rep = lam.put_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=60)
    assert "MaximumRetryAttempts" not in rep
    assert rep["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}

    listed = lam.list_function_event_invoke_configs(FunctionName=name)
    assert [c["FunctionArn"] for c in listed["FunctionEventInvokeConfigs"]] == [f"{arn}:$LATEST"]
    assert listed["FunctionEventInvokeConfigs"][0]["MaximumEventAgeInSeconds"] == 60

    lam.delete_function_event_invoke_config(FunctionName=name)
    with expect_error("ResourceNotFoundException", 404):
        lam.get_function_event_invoke_config(FunctionName=name)
    with expect_error("ResourceNotFoundException", 404):
        lam.delete_function_event_invoke_config(FunctionName=name)
    # Update needs a configuration to merge into.
    with expect_error("ResourceNotFoundException", 404):
        lam.update_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)


def test_event_invoke_config_validation(lam, lam_raw, account_id):
    name = deploy(lam, "hello", prefix="async-val")
    with expect_error("ValidationException", 400) as e:
        lam_raw.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=3)
    assert error_message(e.value) == (
        "1 validation error detected: Value '3' at 'maximumRetryAttempts' failed to satisfy "
        "constraint: Member must have value less than or equal to 2"
    )
    with expect_error("ValidationException", 400) as e:
        lam_raw.put_function_event_invoke_config(
            FunctionName=name, MaximumEventAgeInSeconds=59, MaximumRetryAttempts=-1
        )
    assert error_message(e.value).startswith("2 validation errors detected")
    with expect_error("ValidationException", 400):
        lam_raw.update_function_event_invoke_config(
            FunctionName=name, MaximumEventAgeInSeconds=21601
        )
    for arn in (
        f"arn:aws:sqs:{REGION}:{account_id}:queue",
        f"arn:aws:sns:{REGION}:{account_id}:topic",
        f"arn:aws:events:{REGION}:{account_id}:event-bus/default",
    ):
        with expect_error("InvalidParameterValueException", 400) as e:
            lam.put_function_event_invoke_config(
                FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": arn}}
            )
        assert "Lambda function destinations" in error_message(e.value)
    with expect_error("ResourceNotFoundException", 404):
        lam.put_function_event_invoke_config(FunctionName="async-missing", MaximumRetryAttempts=0)
    with expect_error("ResourceNotFoundException", 404):
        lam.put_function_event_invoke_config(
            FunctionName=name, Qualifier="7", MaximumRetryAttempts=0
        )
    # Nothing was stored by the refused calls.
    assert lam.list_function_event_invoke_configs(FunctionName=name)[
        "FunctionEventInvokeConfigs"
    ] == []


def test_deleting_a_function_drops_its_config(lam):
    name = deploy(lam, "hello", prefix="async-del")
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    lam.delete_function(FunctionName=name)
    # A new function of the same name starts with no configuration.
    create_wasm(lam, name, zip_bytes=guest_zip("hello"), Handler="hello.wasm")
    wait_active(lam, name)
    with expect_error("ResourceNotFoundException", 404):
        lam.get_function_event_invoke_config(FunctionName=name)


# --------------------------------------------------------------------------------------------
# Retries, destinations, dead letters: servers with short delays
# --------------------------------------------------------------------------------------------


@pytest.fixture
def quick_server(tmp_path_factory):
    """A server whose retry delays are 300 ms and 600 ms, whose backoff runs from 100 ms to
    400 ms, and where one second of MaximumEventAgeInSeconds lasts 50 ms (60 s → 3 s)."""
    srv = StokeServer(
        tmp_path_factory.mktemp("stoke-async"),
        extra_args=[
            "--async-retry-delays",
            "300ms,600ms",
            "--async-backoff-min",
            "100ms",
            "--async-backoff-max",
            "400ms",
            "--async-age-unit",
            "50ms",
        ],
    )
    srv.start()
    try:
        yield srv
        if srv.alive():
            srv.stop()
    finally:
        srv.kill()


def test_a_failing_function_runs_1_plus_retries_times_then_reaches_its_destination(quick_server):
    lam = quick_server.client()
    name = deploy(lam, "fail", prefix="async-fail")
    dest = deploy(lam, "record", prefix="async-fail-dest")
    fn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    dest_arn = lam.get_function(FunctionName=dest)["Configuration"]["FunctionArn"]
    lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=2,
        DestinationConfig={"OnFailure": {"Destination": dest_arn}},
    )
    payload = {"errorType": "Boom", "errorMessage": "always"}
    resp = lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps(payload))
    rid = resp["ResponseMetadata"]["RequestId"]

    records = _event_lines(
        log_events(quick_server, dest, lambda ev: len(_event_lines(ev)) >= 1, timeout=20)
    )
    assert len(records) == 1, records
    rec = records[0]
    assert rec["version"] == "1.0"
    assert rec["timestamp"].endswith("Z")
    assert rec["requestContext"] == {
        "requestId": rid,
        "functionArn": f"{fn}:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert rec["requestPayload"] == payload
    assert rec["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert rec["responsePayload"]["errorType"] == "Boom"
    assert rec["responsePayload"]["errorMessage"] == "always"

    # Exactly 1 + MaximumRetryAttempts runs, all with the event's request id, a retry delay
    # (300 ms, then 600 ms) apart.
    time.sleep(1.0)
    events = log_events(quick_server, name, lambda ev: False, timeout=0)
    starts = [e for e in events if e["message"].startswith("START ")]
    assert [s["message"].split()[2] for s in starts] == [rid, rid, rid], starts
    gaps = [b["timestamp"] - a["timestamp"] for a, b in zip(starts, starts[1:])]
    assert gaps[0] >= 290 and gaps[1] >= 590, gaps
    metrics = quick_server.signed_request("GET", "/metrics").body.decode()
    assert "stoke_async_retries_total" in metrics


def test_a_success_reaches_the_on_success_destination(quick_server):
    lam = quick_server.client()
    name = deploy(lam, "hello", prefix="async-ok")
    dest = deploy(lam, "record", prefix="async-ok-dest")
    dest_arn = lam.get_function(FunctionName=dest)["Configuration"]["FunctionArn"]
    lam.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": dest_arn}}
    )
    rid = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"name": "dest"}')[
        "ResponseMetadata"
    ]["RequestId"]
    records = _event_lines(
        log_events(quick_server, dest, lambda ev: len(_event_lines(ev)) >= 1, timeout=10)
    )
    assert len(records) == 1
    rec = records[0]
    assert rec["requestContext"]["requestId"] == rid
    assert rec["requestContext"]["condition"] == "Success"
    assert rec["requestContext"]["approximateInvokeCount"] == 1
    assert rec["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert rec["responsePayload"] == {"message": "Hello, dest!"}


def _cli(server, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(server.credentials_file),
        AWS_PROFILE="stoke",
        AWS_ENDPOINT_URL=server.endpoint,
        AWS_DEFAULT_REGION=REGION,
    )
    return subprocess.run(
        [str(stoke_bin()), *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_a_throttled_function_ages_out_into_the_dead_letters_and_redrives(quick_server):
    lam = quick_server.client()
    name = deploy(lam, "hello", prefix="async-throttled")
    put = lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    assert put["ReservedConcurrentExecutions"] == 0
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 0
    # GetFunction shows it too, as Lambda's does.
    assert lam.get_function(FunctionName=name)["Concurrency"] == {"ReservedConcurrentExecutions": 0}
    # A synchronous call is throttled at once, as on Lambda.
    with expect_error("TooManyRequestsException", 429) as e:
        lam.invoke(FunctionName=name, Payload=b"{}")
    assert e.value.response.get("Reason") == "ReservedFunctionConcurrentInvocationLimitExceeded"
    lam.put_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=60)
    t0 = time.monotonic()
    rid = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"name": "late"}')[
        "ResponseMetadata"
    ]["RequestId"]

    # 60 "seconds" last 3 s here; the event is retried with backoff, then dead-lettered.
    deadline = time.monotonic() + 20
    listed = None
    while time.monotonic() < deadline:
        out = _cli(quick_server, "dead-letters", "list", "--json")
        assert out.returncode == 0, out.stderr
        listed = json.loads(out.stdout)
        if listed:
            break
        time.sleep(0.2)
    assert listed, "the event never reached the dead letters"
    assert time.monotonic() - t0 >= 2.5, "dead-lettered before its age ran out"
    (letter,) = [d for d in listed if d["RequestId"] == rid]
    assert letter["FunctionName"] == name
    assert letter["Condition"] == "EventAgeExceeded"
    assert letter["ApproximateInvokeCount"] >= 2, letter  # throttled more than once
    # It never ran.
    assert rid not in _starts(log_events(quick_server, name, lambda ev: False, timeout=0))

    shown = _cli(quick_server, "dead-letters", "show", str(letter["Id"]))
    assert shown.returncode == 0, shown.stderr
    assert "late" in shown.stdout and "EventAgeExceeded" in shown.stdout

    # With the throttle gone, a redrive runs it (same request id).
    lam.delete_function_concurrency(FunctionName=name)
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)
    red = _cli(quick_server, "dead-letters", "redrive", str(letter["Id"]))
    assert red.returncode == 0, red.stderr
    assert rid in red.stdout
    events = log_events(quick_server, name, lambda ev: rid in _starts(ev), timeout=10)
    assert rid in _starts(events)
    out = _cli(quick_server, "dead-letters", "list", "--json")
    assert [d for d in json.loads(out.stdout) if d["RequestId"] == rid] == []
    metrics = quick_server.signed_request("GET", "/metrics").body.decode()
    assert "stoke_async_dead_letters_total" in metrics


# --------------------------------------------------------------------------------------------
# A full disk
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
@sqlite_only(
    "it fills the data dir's disk, where PostgreSQL keeps nothing (the database's own disk is "
    "the database server's; test_postgres_faults.py covers the store going away)"
)
def test_a_full_disk_refuses_the_event_and_acknowledges_nothing(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], check=True)
    srv = StokeServer(mnt / "srv")
    try:
        srv.start()
        lam = srv.client()
        name = deploy(lam, "hello", prefix="async-full")
        # Fill the disk (leaving the store's files where they are).
        filler = mnt / "filler"
        # Unbuffered, so that closing the file has nothing left to write (a buffered close
        # would meet ENOSPC again).
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        acked, refused = [], 0
        payload = json.dumps({"name": "x" * 60_000}).encode()
        for _ in range(200):
            try:
                r = lam.invoke(FunctionName=name, InvocationType="Event", Payload=payload)
                acked.append(r["ResponseMetadata"]["RequestId"])
            except ClientError as e:
                assert http_status(e) >= 500, e.response
                assert error_code(e) == "ServiceException", e.response
                refused += 1
                if refused >= 3:
                    break
        assert refused >= 3, f"the disk never filled ({len(acked)} events accepted)"
        # Room again: what was acknowledged runs, and only that.
        filler.unlink()
        deadline = time.monotonic() + 30
        ran: set[str] = set()
        while time.monotonic() < deadline:
            ran = set(_starts(log_events(srv, name, lambda ev: False, timeout=0)))
            if set(acked) <= ran:
                break
            time.sleep(0.3)
        assert set(acked) <= ran
        assert ran == set(acked), "an event that was refused ran anyway"
        srv.stop()
    finally:
        srv.kill()
        subprocess.run(["umount", "-l", str(mnt)], check=False)
