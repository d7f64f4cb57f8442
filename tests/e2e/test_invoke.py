"""Invoke, with the real boto3, against wasm functions built from examples/ with the guest SDK:
answers, log tails (START/END/REPORT), cold and warm calls, function errors and panics, calls
between functions through the `stoke` host imports, the client context, bad requests, modules
that do not compile, /metrics and the CloudWatch Logs API.

Each expectation is what AWS Lambda answers for the same request."""

from __future__ import annotations

import base64
import json
import re
import threading
import time

import pytest
from botocore.exceptions import ClientError, WaiterError

from stoke_e2e import (
    FAST_WAITER,
    create_wasm,
    error_code,
    expect_error,
    http_get,
    http_status,
    make_zip,
    unique_name,
)
from stoke_guests import (
    LOG_STREAM_RE,
    REPORT_RE,
    REQUEST_ID_RE,
    assert_call_log,
    deploy,
    guest_wasm,
    invoke,
    log_events,
    log_tail,
    logs_client,
    request_id,
)

SIX_MB = 6 * 1024 * 1024
# A module with the right magic and version, then bytes no section starts with.
BROKEN_MODULE = b"\0asm\x01\0\0\0" + b"\xff" * 64


# --------------------------------------------------------------------------------------------
# Functions shared by the tests of this file (each test that counts calls makes its own)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hello(lam):
    return deploy(lam, "hello", Handler="hello.wasm")


@pytest.fixture(scope="module")
def caller(lam):
    return deploy(lam, "caller")


@pytest.fixture(scope="module")
def failing(lam):
    return deploy(lam, "fail")


@pytest.fixture(scope="module")
def panicking(lam):
    return deploy(lam, "panic")


@pytest.fixture(scope="module")
def context_fn(lam):
    return deploy(
        lam,
        "context",
        MemorySize=256,
        Timeout=7,
        Environment={"Variables": {"GREETING": "bonjour", "EMPTY_ONE": ""}},
    )


# --------------------------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------------------------


def test_hello_answers_its_json(lam, hello):
    resp, body = invoke(lam, hello, {"name": "Ada"})
    assert resp["StatusCode"] == 200
    assert body == {"message": "Hello, Ada!"}
    assert resp["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in resp
    assert "LogResult" not in resp, "a log tail without LogType=Tail"
    headers = resp["ResponseMetadata"]["HTTPHeaders"]
    assert headers.get("content-type", "").startswith("application/json"), headers
    assert REQUEST_ID_RE.match(request_id(resp)), request_id(resp)


def test_no_payload_reaches_the_function_as_an_empty_event(lam, hello):
    resp, body = invoke(lam, hello)
    assert resp["StatusCode"] == 200
    assert body == {"message": "Hello, world!"}


def test_each_call_has_its_own_request_id(lam, hello):
    ids = {request_id(invoke(lam, hello, {"name": str(i)})[0]) for i in range(3)}
    assert len(ids) == 3, ids


def test_invoke_by_arn_and_latest_qualifier(lam, hello):
    arn = lam.get_function(FunctionName=hello)["Configuration"]["FunctionArn"]
    resp, body = invoke(lam, arn, {"name": "Arn"})
    assert (resp["StatusCode"], body) == (200, {"message": "Hello, Arn!"})
    resp, body = invoke(lam, hello, {"name": "Q"}, Qualifier="$LATEST")
    assert (resp["StatusCode"], body, resp["ExecutedVersion"]) == (
        200,
        {"message": "Hello, Q!"},
        "$LATEST",
    )


def test_payload_just_under_6_mb_is_accepted(lam, hello):
    padding = "x" * (SIX_MB - 100)
    payload = json.dumps({"name": "Big", "padding": padding}).encode()
    assert len(payload) <= SIX_MB
    resp, body = invoke(lam, hello, payload)
    assert (resp["StatusCode"], body) == (200, {"message": "Hello, Big!"})


def test_concurrent_calls_all_succeed(server, hello):
    results: dict[int, object] = {}

    def call(i):
        client = server.client()
        try:
            resp, body = invoke(client, hello, {"name": f"c{i}"})
            results[i] = (resp["StatusCode"], body)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = e

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {i: (200, {"message": f"Hello, c{i}!"}) for i in range(8)}


# --------------------------------------------------------------------------------------------
# Log tails, cold and warm
# --------------------------------------------------------------------------------------------


def test_log_tail_has_start_end_report_and_the_functions_lines(lam, hello):
    resp, body = invoke(lam, hello, {"name": "Tail"}, LogType="Tail")
    assert body == {"message": "Hello, Tail!"}
    rid = request_id(resp)
    tail = log_tail(resp)
    m = assert_call_log(tail, rid, contains=[f"saying hello to Tail (request {rid})"])
    assert m["memory"] == "128", m.group(0)
    duration, billed = float(m["duration"]), int(m["billed"])
    assert billed >= duration and billed >= 1, m.group(0)
    assert 1 <= int(m["used"]) <= 128, m.group(0)


def test_first_call_is_cold_and_the_next_are_warm(lam):
    name = deploy(lam, "hello", prefix="inv-coldwarm")
    reports = []
    for i in range(3):
        resp, body = invoke(lam, name, {"name": f"n{i}"}, LogType="Tail")
        assert body == {"message": f"Hello, n{i}!"}
        reports.append(assert_call_log(log_tail(resp), request_id(resp)))
    first = reports[0]
    assert first["init"] is not None, f"cold call without Init Duration: {first.group(0)!r}"
    for m in reports[1:]:
        assert m["init"] is None, f"warm call with Init Duration: {m.group(0)!r}"
        assert "Init Duration" not in m.string, m.string


# --------------------------------------------------------------------------------------------
# Function errors
# --------------------------------------------------------------------------------------------


def test_sdk_error_is_unhandled_with_its_type(lam, failing):
    resp, body = invoke(
        lam,
        failing,
        {"errorType": "MyCustomError", "errorMessage": "the custom failure"},
        LogType="Tail",
    )
    assert resp["StatusCode"] == 200
    assert resp.get("FunctionError") == "Unhandled"
    assert resp["ExecutedVersion"] == "$LATEST"
    assert isinstance(body, dict), body
    assert body.get("errorType") == "MyCustomError", body
    assert body.get("errorMessage") == "the custom failure", body
    assert_call_log(log_tail(resp), request_id(resp), contains=["failing with MyCustomError"])


def test_sdk_error_default_type(lam, failing):
    resp, body = invoke(lam, failing, {})
    assert resp.get("FunctionError") == "Unhandled"
    assert body == {"errorMessage": "something went wrong on purpose", "errorType": "CustomError"}


def test_panic_is_unhandled(lam, panicking):
    resp, body = invoke(lam, panicking, {"message": "kaboom"}, LogType="Tail")
    assert resp["StatusCode"] == 200
    assert resp.get("FunctionError") == "Unhandled"
    assert body.get("errorType") == "Panic", body
    assert "kaboom" in body.get("errorMessage", ""), body
    tail = log_tail(resp)
    assert_call_log(tail, request_id(resp), contains=["about to panic", "kaboom"])


def test_panicking_function_still_serves_the_next_call(lam, panicking):
    for msg in ("one", "two"):
        resp, body = invoke(lam, panicking, {"message": msg})
        assert resp.get("FunctionError") == "Unhandled"
        assert msg in body["errorMessage"], body


# --------------------------------------------------------------------------------------------
# Calls between functions (the `stoke` host imports)
# --------------------------------------------------------------------------------------------


def test_caller_invokes_hello_through_the_host(server, lam, caller, hello):
    resp, body = invoke(
        lam, caller, {"function": hello, "payload": {"name": "Caller"}}, LogType="Tail"
    )
    assert "FunctionError" not in resp, body
    assert (resp["StatusCode"], body) == (200, {"message": "Hello, Caller!"})
    assert_call_log(log_tail(resp), request_id(resp), contains=[f"calling {hello}", "answered"])

    # The inner call is a call of hello's, with its own request id and log lines.
    def seen(events):
        return any("saying hello to Caller" in e["message"] for e in events)

    events = log_events(server, hello, seen)
    assert seen(events), [e["message"] for e in events][-20:]
    line = next(e["message"] for e in events if "saying hello to Caller" in e["message"])
    inner = re.search(r"\(request ([0-9a-f-]+)\)", line)
    assert inner and inner.group(1) != request_id(resp), line


def test_callee_failure_reaches_the_caller(lam, caller, failing):
    resp, body = invoke(
        lam,
        caller,
        {"function": failing, "payload": {"errorType": "DeepError", "errorMessage": "deep"}},
    )
    assert resp.get("FunctionError") == "Unhandled"
    assert (body.get("errorType"), body.get("errorMessage")) == ("DeepError", "deep"), body


def test_caller_of_a_missing_function_gets_resource_not_found(lam, caller):
    missing = unique_name("inv-missing")
    resp, body = invoke(lam, caller, {"function": missing})
    assert resp.get("FunctionError") == "Unhandled", body
    assert body.get("errorType") == "ResourceNotFoundException", body
    assert missing in body.get("errorMessage", ""), body


# --------------------------------------------------------------------------------------------
# Context and client context
# --------------------------------------------------------------------------------------------


def test_context_and_environment_reach_the_function(lam, context_fn):
    cfg = lam.get_function_configuration(FunctionName=context_fn)
    before_ms = time.time() * 1000
    resp, body = invoke(lam, context_fn, {"k": [1, 2]})
    assert "FunctionError" not in resp, body
    assert body["event"] == {"k": [1, 2]}
    ctx, env = body["context"], body["env"]
    assert ctx["function_name"] == context_fn
    assert ctx["function_version"] == "$LATEST"
    assert ctx["memory_limit_in_mb"] == 256
    assert ctx["invoked_function_arn"] == cfg["FunctionArn"]
    assert ctx["aws_request_id"] == request_id(resp)
    assert ctx["log_group_name"] == f"/aws/lambda/{context_fn}"
    assert LOG_STREAM_RE.match(ctx["log_stream_name"]), ctx["log_stream_name"]
    assert ctx["region"] == "us-east-1"
    assert ctx["client_context"] is None
    # The deadline is the start of the call plus Timeout (7 s).
    assert before_ms + 5_000 < ctx["deadline_ms"] < time.time() * 1000 + 7_500, ctx
    assert 0 < ctx["remaining_time_in_millis"] <= 7_000, ctx
    assert env["GREETING"] == "bonjour"
    assert env.get("EMPTY_ONE") == ""
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == context_fn
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["_HANDLER"] == "context.wasm"


def test_client_context_reaches_the_function(lam, context_fn):
    client_context = {"custom": {"who": "e2e"}, "env": {"locale": "fr_FR"}, "client": {}}
    encoded = base64.b64encode(json.dumps(client_context).encode()).decode()
    resp, body = invoke(lam, context_fn, {}, ClientContext=encoded)
    assert "FunctionError" not in resp, body
    assert body["context"]["client_context"] == client_context
    assert body["env"]["STOKE_CLIENT_CONTEXT"] == encoded


def test_trace_header_reaches_the_function(server, context_fn):
    """A caller's X-Amzn-Trace-Id becomes the function's _X_AMZN_TRACE_ID (as Lambda's)."""
    root = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    r = server.signed_request(
        "POST",
        f"/2015-03-31/functions/{context_fn}/invocations",
        b"{}",
        {"X-Amzn-Trace-Id": root},
    )
    assert r.status == 200, r.body
    trace = r.json()["context"]["xray_trace_id"]
    assert trace and "Root=1-5759e988-bd862e3fe1be46a994272793" in trace, trace


# --------------------------------------------------------------------------------------------
# Requests Lambda refuses
# --------------------------------------------------------------------------------------------


def test_missing_function_is_not_found(lam):
    name = unique_name("inv-nope")
    with expect_error("ResourceNotFoundException", 404, "Function not found") as ei:
        invoke(lam, name, {})
    assert name in ei.value.response["Error"]["Message"]


def test_unknown_qualifier_is_not_found(lam, hello):
    with expect_error("ResourceNotFoundException", 404):
        invoke(lam, hello, {}, Qualifier="42")


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b'{"a": 1', b"\xff\xfe\xfd", b'{"name": "\xff"}'],
    ids=["not-json", "truncated", "not-utf8", "not-utf8-in-a-string"],
)
def test_payload_that_is_not_json_is_refused(lam, hello, payload):
    with expect_error("InvalidRequestContentException", 400):
        invoke(lam, hello, payload)


def test_payload_over_6_mb_is_too_large(lam, hello):
    payload = json.dumps({"padding": "x" * SIX_MB}).encode()
    with expect_error("RequestTooLargeException", 413):
        invoke(lam, hello, payload)


def test_dry_run_checks_and_runs_nothing(server, lam):
    name = deploy(lam, "hello", prefix="inv-dryrun")
    resp, body = invoke(lam, name, {"name": "Dry"}, InvocationType="DryRun")
    assert resp["StatusCode"] == 204
    assert body is None
    with expect_error("ResourceNotFoundException", 404):
        invoke(lam, unique_name("inv-dry-missing"), {}, InvocationType="DryRun")
    # Nothing ran: no log lines for the function (AWS: its log group does not even exist).
    time.sleep(0.5)
    try:
        assert log_events(server, name, lambda ev: False, timeout=0) == []
    except ClientError as e:
        assert error_code(e) == "ResourceNotFoundException", e.response


# --------------------------------------------------------------------------------------------
# Modules that cannot run
# --------------------------------------------------------------------------------------------


def test_module_that_does_not_compile_makes_the_function_failed(lam):
    name = unique_name("inv-broken")
    create_wasm(lam, name, zip_bytes=make_zip({"hello.wasm": BROKEN_MODULE}))
    with pytest.raises(WaiterError) as ei:
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST_WAITER)
    assert "terminal failure" in str(ei.value), ei.value
    cfg = lam.get_function(FunctionName=name)["Configuration"]
    assert cfg["State"] == "Failed", cfg
    assert cfg.get("StateReason"), cfg
    assert cfg.get("StateReasonCode"), cfg
    # A Failed function cannot be invoked.
    with expect_error("ResourceConflictException", 409):
        invoke(lam, name, {})


def test_handler_naming_a_module_that_is_not_there_fails(lam):
    name = unique_name("inv-nohandler")
    create_wasm(
        lam, name, zip_bytes=make_zip({"other.wasm": guest_wasm("hello")}), Handler="hello.wasm"
    )
    with pytest.raises(WaiterError):
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST_WAITER)
    cfg = lam.get_function(FunctionName=name)["Configuration"]
    assert cfg["State"] == "Failed" and "hello.wasm" in cfg.get("StateReason", ""), cfg


# --------------------------------------------------------------------------------------------
# Metrics and the CloudWatch Logs API
# --------------------------------------------------------------------------------------------


def metric_total(text: str, metric: str, function: str) -> float | None:
    """The sum of `metric` over the series labelled function="NAME" (None if none)."""
    total, found = 0.0, False
    pat = re.compile(rf"^{re.escape(metric)}\{{(?P<labels>[^}}]*)\}} (?P<value>\S+)")
    for line in text.splitlines():
        m = pat.match(line)
        if m and re.search(rf'(^|,)function="{re.escape(function)}"(,|$)', m["labels"]):
            total += float(m["value"])
            found = True
    return total if found else None


def test_metrics_count_invocations_errors_and_cold_starts(server, lam):
    ok = deploy(lam, "hello", prefix="inv-metrics-ok")
    bad = deploy(lam, "fail", prefix="inv-metrics-bad")
    for _ in range(3):
        invoke(lam, ok, {})
    invoke(lam, bad, {})

    deadline = time.monotonic() + 2
    while True:
        r = http_get(f"{server.endpoint}/metrics")
        assert r.status == 200, r
        text = r.body.decode()
        got = (
            metric_total(text, "stoke_invocations_total", ok),
            metric_total(text, "stoke_invocations_total", bad),
            metric_total(text, "stoke_errors_total", bad),
            metric_total(text, "stoke_cold_starts_total", ok),
        )
        if got == (3, 1, 1, 1) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    lines = [ln for ln in text.splitlines() if ok in ln or bad in ln]
    assert got == (3, 1, 1, 1), "\n".join(lines)
    assert metric_total(text, "stoke_errors_total", ok) in (None, 0), "\n".join(lines)


def test_logs_api_returns_each_calls_lines_oldest_first(server, lam):
    name = deploy(lam, "hello", prefix="inv-logs")
    rids = [request_id(invoke(lam, name, {"name": f"L{i}"})[0]) for i in range(2)]

    def complete(events):
        return sum(e["message"].startswith("REPORT ") for e in events) >= 2

    events = log_events(server, name, complete)
    messages = [e["message"].rstrip("\n") for e in events]
    assert complete(events), messages
    expected = []
    for i, rid in enumerate(rids):
        expected += [
            f"START RequestId: {rid} Version: $LATEST",
            f"saying hello to L{i} (request {rid})",
            f"END RequestId: {rid}",
        ]
    got = [m for m in messages if not m.startswith("REPORT ")]
    assert got == expected, messages
    reports = [REPORT_RE.match(m) for m in messages if m.startswith("REPORT ")]
    assert [m and m["id"] for m in reports] == rids, messages
    # Oldest first: the first call's END and REPORT come before the second call's START.
    report0 = next(
        i for i, m in enumerate(messages) if m.startswith(f"REPORT RequestId: {rids[0]}")
    )
    end0 = messages.index(f"END RequestId: {rids[0]}")
    start1 = messages.index(f"START RequestId: {rids[1]} Version: $LATEST")
    assert end0 < report0 < start1, messages
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps), stamps
    for e in events:
        assert LOG_STREAM_RE.match(e["logStreamName"]), e
        assert e["eventId"], e


def test_logs_api_pages_hold_at_most_1_mb_of_events(server, lam):
    """As CloudWatch Logs: a FilterLogEvents page holds as many events as fit in 1 MB (each
    counts its message's bytes plus 26), and nextToken leads through the rest."""
    name = deploy(lam, "misbehave", prefix="inv-logs-mb", Timeout=10)
    # A call keeps about 1 MB of its lines; three calls make about 3 MB.
    for _ in range(3):
        resp, body = invoke(lam, name, {"mode": "stderr", "mb": 1})
        assert ("FunctionError" not in resp, body) == (True, {"logged_mb": 1})
    logs = logs_client(server)
    group = f"/aws/lambda/{name}"
    deadline = time.monotonic() + 5
    while True:
        pages, kw = [], {}
        while True:
            page = logs.filter_log_events(logGroupName=group, **kw)
            pages.append(page["events"])
            if "nextToken" not in page:
                break
            kw = {"nextToken": page["nextToken"]}
        events = [e for p in pages for e in p]
        if sum(e["message"].startswith("REPORT ") for e in events) == 3:
            break
        assert time.monotonic() < deadline, f"no REPORT line in {len(events)} events"
        time.sleep(0.2)
    size = [sum(len(e["message"].encode()) + 26 for e in p) for p in pages]
    assert len(pages) >= 3, size
    assert all(s <= 1 << 20 for s in size), size
    # Each page but the last is full: the next event would not have fit.
    for p, s, after in zip(pages, size, pages[1:]):
        assert s + len(after[0]["message"].encode()) + 26 > 1 << 20, (size, len(after[0]["message"]))
    ids = [int(e["eventId"]) for e in events]
    assert ids == sorted(set(ids)), "every event once, in order"
    flood = [e for e in events if e["message"].rstrip("\n") == "y" * 1023]
    assert sum(len(e["message"]) + 26 for e in flood) > 2 << 20, len(flood)


def test_logs_api_for_a_missing_function_is_resource_not_found(server):
    logs = logs_client(server)
    with pytest.raises(ClientError) as ei:
        logs.filter_log_events(logGroupName=f"/aws/lambda/{unique_name('inv-nolog')}")
    assert error_code(ei.value) == "ResourceNotFoundException", ei.value.response
    assert http_status(ei.value) == 400, ei.value.response


def test_log_events_are_in_the_stream_the_function_was_told(server, lam, context_fn):
    """The events of a call are in the log stream named by its AWS_LAMBDA_LOG_STREAM_NAME."""
    resp, body = invoke(lam, context_fn, {"probe": "stream"})
    rid, stream = request_id(resp), body["context"]["log_stream_name"]
    assert LOG_STREAM_RE.match(stream), stream

    def mine(events):
        return [e for e in events if rid in e["message"]]

    events = mine(log_events(server, context_fn, lambda ev: len(mine(ev)) >= 3))
    assert len(events) >= 3, events  # START, END, REPORT
    assert {e["logStreamName"] for e in events} == {stream}, events
