"""A chain of destinations ends: A's on-success destination is B and B's is A. One event
(InvocationType=Event) runs 16 times, A and B in turn (hops 0 to 15); the record of the last run
would be the 16th hop, the limit: it is not enqueued, and that is recorded (the
`stoke_recursive_invocations_dropped_total` counter of the function not invoked, and a line in
the log of the run that would have continued the chain). The hop count is stored with the
queued event, so a restart in the middle of a chain does not start it again."""

from __future__ import annotations

import json
import re
import time

from stoke_e2e import StokeServer
from stoke_guests import deploy, log_events

HOPS = 16
DROPPED = "reached the recursion limit of 16 hops"


def _starts(events: list[dict]) -> list[str]:
    return [e["message"] for e in events if e["message"].startswith("START RequestId: ")]


def _dropped(events: list[dict]) -> list[dict]:
    return [e for e in events if DROPPED in e["message"]]


def _loop(lam, a: str, b: str) -> None:
    """A's on-success destination is B, B's is A."""
    for src, dst in ((a, b), (b, a)):
        arn = lam.get_function(FunctionName=dst)["Configuration"]["FunctionArn"]
        lam.put_function_event_invoke_config(
            FunctionName=src, DestinationConfig={"OnSuccess": {"Destination": arn}}
        )


def _wait_for_the_end(server, a: str, b: str, timeout: float = 30) -> tuple[list, list]:
    """The logs of A and B once the drop line is in B's (B runs the 16th time, at hop 15),
    and a moment more to see that nothing runs after it."""
    b_events = log_events(server, b, lambda ev: bool(_dropped(ev)), timeout=timeout)
    assert _dropped(b_events), f"the chain did not end within {timeout}s: {_starts(b_events)}"
    time.sleep(1.0)
    return (
        log_events(server, a, lambda ev: False, timeout=0),
        log_events(server, b, lambda ev: False, timeout=0),
    )


def _assert_ended_after_16_runs(a_events: list[dict], b_events: list[dict]) -> None:
    assert len(_starts(a_events)) == HOPS // 2, _starts(a_events)
    assert len(_starts(b_events)) == HOPS // 2, _starts(b_events)
    assert _dropped(a_events) == []
    (line,) = _dropped(b_events)
    # In the stream of B's last run, after its REPORT line.
    last_start = max(
        (e for e in b_events if e["message"].startswith("START ")), key=lambda e: int(e["eventId"])
    )
    assert line["logStreamName"] == last_start["logStreamName"], (line, last_start)
    assert int(line["eventId"]) > int(last_start["eventId"])
    assert "OnSuccess destination" in line["message"], line


def _dropped_metric(server, function: str) -> float:
    text = server.signed_request("GET", "/metrics").body.decode()
    m = re.search(
        r'^stoke_recursive_invocations_dropped_total\{[^}]*function="'
        + re.escape(function)
        + r'"[^}]*\} (\S+)$',
        text,
        re.M,
    )
    return float(m.group(1)) if m else 0.0


def test_a_destination_loop_ends_after_16_hops_and_the_server_keeps_serving(server, lam):
    a = deploy(lam, "hello", prefix="hops-a")
    b = deploy(lam, "hello", prefix="hops-b")
    _loop(lam, a, b)
    t0 = time.monotonic()
    resp = lam.invoke(FunctionName=a, InvocationType="Event", Payload=b'{"name": "loop"}')
    assert resp["StatusCode"] == 202

    a_events, b_events = _wait_for_the_end(server, a, b)
    _assert_ended_after_16_runs(a_events, b_events)
    assert time.monotonic() - t0 < 30
    # The first run is the caller's event.
    rid = resp["ResponseMetadata"]["RequestId"]
    assert _starts(a_events)[0] == f"START RequestId: {rid} Version: $LATEST"
    # A is the function whose 17th invocation was stopped.
    assert _dropped_metric(server, a) == 1.0
    assert _dropped_metric(server, b) == 0.0

    # Still serving, synchronously and asynchronously.
    out = lam.invoke(FunctionName=a, Payload=b'{"name": "after"}')
    assert json.loads(out["Payload"].read()) == {"message": "Hello, after!"}
    assert lam.invoke(FunctionName=b, InvocationType="Event", Payload=b"{}")["StatusCode"] == 202


def test_the_hop_count_survives_a_restart(tmp_path_factory):
    """B is throttled (reserved concurrency 0), so the event of hop 1 waits in the queue across
    a restart; once B may run, the chain goes on from hop 1 and ends after 16 runs in all."""
    srv = StokeServer(
        tmp_path_factory.mktemp("stoke-hops"),
        extra_args=["--async-backoff-min", "100ms", "--async-backoff-max", "400ms"],
    )
    srv.start()
    try:
        lam = srv.client()
        a = deploy(lam, "hello", prefix="hops-ra")
        b = deploy(lam, "hello", prefix="hops-rb")
        _loop(lam, a, b)
        lam.put_function_concurrency(FunctionName=b, ReservedConcurrentExecutions=0)
        lam.invoke(FunctionName=a, InvocationType="Event", Payload=b"{}")
        # A's run and B's event are stored in one commit.
        a_events = log_events(srv, a, lambda ev: len(_starts(ev)) == 1, timeout=10)
        assert len(_starts(a_events)) == 1, a_events
        srv.restart()  # asserts a clean exit
        lam = srv.client()
        assert _starts(log_events(srv, b, lambda ev: False, timeout=0)) == []
        lam.delete_function_concurrency(FunctionName=b)

        a_events, b_events = _wait_for_the_end(srv, a, b)
        _assert_ended_after_16_runs(a_events, b_events)
        srv.stop()
    finally:
        srv.kill()
