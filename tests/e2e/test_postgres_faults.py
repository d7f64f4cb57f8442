"""PostgreSQL going away under a running `stoke serve --store postgres://…` (issue 14): the
database is stopped in the middle of sync and async traffic (`pg_ctl stop -m fast`: every
connection is cut, a checkpoint written; `-m immediate`: a crash, recovered from the WAL at the
next start), kept down longer than a request waits for a connection, and started again on
the same port.

- While it is down, every call is answered, never left hanging or cut: either served (a
  GetFunction from the node's cache) or refused with Lambda's `ServiceException` (500) within
  about one wait for a connection (5 s): a sync call when it cannot take its cluster-wide
  concurrency slot, an async call when its event cannot be stored (never acknowledged before
  it is).
- After it is back, the node recovers by itself (no restart): sync and async calls succeed
  again within seconds.
- Nothing acknowledged is lost: every event that got a 202, before, during or after the
  outage, runs (its invocation record is in the database).
"""

from __future__ import annotations

import threading
import time

import pytest
from botocore.exceptions import ClientError

from stoke_e2e import StokeServer, error_code, http_status
from stoke_guests import deploy

# Longer than twice the store's wait for a connection (5 s, crates/stoke-store/src/postgres/
# mod.rs): every kind of call is made, and refused, while it is down.
DOWN_S = 12.0
# What a loaded 2-core machine adds to a wait of the store's.
SLACK_S = 3.0


class Traffic:
    """Callers in threads, each outcome kept as (kind, started, ended, answer): answer is
    "ok" (with the request id of a 202), or (Error.Code, status), or the exception's text of a
    call that got no HTTP answer."""

    def __init__(self, srv: StokeServer, name: str):
        self.srv = srv
        self.name = name
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.outcomes: list[tuple[str, float, float, object]] = []
        self.acked: set[str] = set()
        self.threads = [
            threading.Thread(target=self._loop, args=(kind,), daemon=True)
            for kind in ("sync", "sync", "async", "async", "get")
        ]

    def _call(self, lam, kind: str):
        if kind == "sync":
            r = lam.invoke(FunctionName=self.name, Payload=b'{"name": "pg"}')
            assert r["StatusCode"] == 200 and "FunctionError" not in r, r
            return "ok", None
        if kind == "async":
            r = lam.invoke(FunctionName=self.name, InvocationType="Event", Payload=b"{}")
            assert r["StatusCode"] == 202, r
            return "ok", r["ResponseMetadata"]["RequestId"]
        lam.get_function(FunctionName=self.name)
        return "ok", None

    def _loop(self, kind: str) -> None:
        # Read timeout well past the store's 5 s wait: a call that hangs shows as no answer.
        lam = self.srv.client(connect_timeout=2, read_timeout=20)
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                answer, rid = self._call(lam, kind)
            except ClientError as e:
                answer, rid = (error_code(e), http_status(e)), None
            except Exception as e:  # noqa: BLE001 - no HTTP answer at all: recorded, asserted
                answer, rid = f"{type(e).__name__}: {e}", None
            ended = time.monotonic()
            with self.lock:
                self.outcomes.append((kind, started, ended, answer))
                if rid is not None:
                    self.acked.add(rid)
            time.sleep(0.02)

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in self.threads), "a caller hung"

    def since(self, t: float) -> list[tuple[str, float, float, object]]:
        with self.lock:
            return [o for o in self.outcomes if o[1] >= t]


def wait_for(what, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    while not (got := what()):
        assert time.monotonic() < deadline, message()
        time.sleep(0.1)
    return got


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_postgres_restart_mid_traffic_fails_calls_cleanly_and_loses_nothing(
    pg, tmp_path, mode
):
    url = pg.create_database("stoke_faults")
    srv = StokeServer(
        tmp_path / "node",
        extra_args=[
            "--store", url, "--process-runtimes", "off",
            "--async-backoff-min", "100ms", "--async-backoff-max", "1s",
        ],
    )
    srv.start()
    try:
        lam = srv.client()
        name = deploy(lam, "hello", prefix="pg-fault")
        lam.put_function_event_invoke_config(
            FunctionName=name, MaximumRetryAttempts=2, MaximumEventAgeInSeconds=600
        )
        traffic = Traffic(srv, name)
        t0 = time.monotonic()
        traffic.start()
        try:
            wait_for(
                lambda: {o[0] for o in traffic.since(t0) if o[3] == "ok"} >= {"sync", "async"},
                15, lambda: f"no traffic before the outage: {traffic.outcomes[-5:]}",
            )

            pg.halt(mode)
            down_at = time.monotonic()
            time.sleep(DOWN_S)
            # (PostgreSQL accepts connections a moment before `launch` has seen it ready: a
            # call answered after `relaunch_at` may have found it back.)
            relaunch_at = time.monotonic()
            pg.launch()
            up_at = time.monotonic()

            # The node recovers by itself: each kind of call succeeds again, started after the
            # database was back.
            wait_for(
                lambda: {o[0] for o in traffic.since(up_at) if o[3] == "ok"}
                >= {"sync", "async", "get"},
                20, lambda: f"no recovery: {traffic.since(up_at)[-10:]}",
            )
        finally:
            traffic.join()

        outcomes = traffic.outcomes
        # Every call got an HTTP answer, and every refusal is Lambda's ServiceException.
        unanswered = [o for o in outcomes if isinstance(o[3], str) and o[3] != "ok"]
        assert not unanswered, f"calls without an answer: {unanswered[:5]}"
        refused = [o for o in outcomes if o[3] != "ok"]
        assert all(o[3] == ("ServiceException", 500) for o in refused), {o[3] for o in refused}
        # Async calls made while it was down and answered before it was started again were
        # refused, never acknowledged, and each within one wait for a connection (5 s): an
        # enqueue waits for at most one attempt of the queue's writer (the writer's `Health`).
        during = [
            o for o in outcomes
            if o[0] == "async" and o[1] > down_at + 0.5 and o[2] < relaunch_at
        ]
        assert during, "no async call was answered while the database was down"
        assert all(o[3] == ("ServiceException", 500) for o in during), during
        slowest = {
            kind: max((o[2] - o[1] for o in outcomes if o[0] == kind and o[1] > down_at),
                      default=0.0)
            for kind in ("sync", "async", "get")
        }
        assert slowest["async"] < 5 + SLACK_S, f"an async call took {slowest['async']:.1f} s"
        # No call waited much past the store's connection wait.
        assert max(slowest.values()) < 2 * 5 + SLACK_S, f"slowest calls: {slowest}"

        # Nothing acknowledged is lost: every 202'd event ran (its invocation record).
        acked = set(traffic.acked)
        assert acked

        def ran() -> set[str]:
            rows = pg.query(url, "SELECT request_id FROM invocations WHERE function_name = ?",
                            (name,))
            return {r for (r,) in rows}

        wait_for(lambda: acked <= ran(), 30,
                 lambda: f"{len(acked - ran())} of {len(acked)} acknowledged events never ran")
        left = pg.query(url, "SELECT COUNT(*) FROM dead_letters")[0][0]
        assert int(left) == 0, f"{left} dead letters"
        down = [o for o in outcomes if down_at < o[1] and o[2] < relaunch_at]
        back = {
            kind: min(o[2] for o in traffic.since(up_at) if o[0] == kind and o[3] == "ok")
            - up_at
            for kind in ("sync", "async", "get")
        }
        print(
            f"{len(outcomes)} calls, {len(refused)} refused; while down ({DOWN_S:.0f} s): "
            + ", ".join(
                f"{kind} {sum(o[3] == 'ok' for o in down if o[0] == kind)} served / "
                f"{sum(o[3] != 'ok' for o in down if o[0] == kind)} refused"
                for kind in ("sync", "async", "get")
            )
            + f"; {len(acked)} events acknowledged and run; slowest calls started during or "
            "after the outage (s): "
            + ", ".join(f"{k} {v:.1f}" for k, v in slowest.items())
            + "; first success after the restart (s): "
            + ", ".join(f"{k} {v:.1f}" for k, v in back.items())
        )
        srv.stop()
    finally:
        srv.kill()
