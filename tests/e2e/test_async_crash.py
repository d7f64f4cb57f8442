"""The crash promise of async invocation: nothing acknowledged is lost.

A fresh `stoke serve` gets thousands of async events (`invoke(InvocationType='Event')` from
several threads) for a function whose START lines record each request id it runs. The server is
killed with SIGKILL at seeded random moments while events are being sent and run, and started
again on the same data dir, a few times. Once the queue drains the test checks, from the store
itself (read after a clean stop, with sqlite3 or psql: `StokeServer.store_rows`):

- every event that got a 202 ran at least once;
- none ran more often than 1 + its retries (0: the function succeeds) + the kills;
- nothing ran after its maximum age (MaximumEventAgeInSeconds = 60);
- the store is consistent: no events left, no leases, no dead letters, one invocation record
  per event that ran.

A run's log lines are written in the same transaction that finishes its event, so an event
whose run left no START line has not been finished and runs again.
"""

from __future__ import annotations

import random
import re
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from stoke_e2e import StokeServer
from stoke_guests import deploy

EVENTS = 5000
KILLS = 5
SENDERS = 8
MAX_AGE_S = 60


def _send_all(srv: StokeServer, name: str, n: int, acked: dict, stop: threading.Event):
    """Sends n events from SENDERS threads; records the 202'd request ids with their time."""
    lock = threading.Lock()
    todo = iter(range(n))
    todo_lock = threading.Lock()

    def worker():
        client = None
        while not stop.is_set():
            with todo_lock:
                i = next(todo, None)
            if i is None:
                return
            while not stop.is_set():
                try:
                    if client is None:
                        client = srv.client(connect_timeout=1, read_timeout=10)
                    sent = time.time()
                    r = client.invoke(
                        FunctionName=name,
                        InvocationType="Event",
                        Payload=b'{"name": "e%d"}' % i,
                    )
                    assert r["StatusCode"] == 202
                    with lock:
                        acked[r["ResponseMetadata"]["RequestId"]] = sent
                    break
                except Exception:  # noqa: BLE001 - the server is down: try again later
                    client = None
                    time.sleep(0.05)

    with ThreadPoolExecutor(SENDERS) as ex:
        for _ in range(SENDERS):
            ex.submit(worker)


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_loses_no_acknowledged_event(tmp_path_factory, seed):
    rng = random.Random(seed)
    srv = StokeServer(
        tmp_path_factory.mktemp(f"stoke-crash-{seed}"),
        extra_args=["--async-backoff-min", "100ms", "--async-backoff-max", "1s"],
    )
    srv.start()
    try:
        lam = srv.client()
        name = deploy(lam, "hello", prefix="crash")
        lam.put_function_event_invoke_config(
            FunctionName=name, MaximumRetryAttempts=0, MaximumEventAgeInSeconds=MAX_AGE_S
        )
        acked: dict[str, float] = {}
        stop = threading.Event()
        sender = threading.Thread(target=_send_all, args=(srv, name, EVENTS, acked, stop))
        t0 = time.monotonic()
        sender.start()
        kills = 0
        for _ in range(KILLS):
            # Kill at a random moment while events are being sent and run.
            time.sleep(rng.uniform(0.3, 1.5))
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait()
            srv.proc = None
            kills += 1
            time.sleep(rng.uniform(0.0, 0.3))
            srv.start()
        sender.join(timeout=120)
        assert not sender.is_alive(), "sending did not finish"
        assert len(acked) == EVENTS

        # Let the queue drain.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            left = int(srv.store_rows("SELECT COUNT(*) FROM async_events")[0][0])
            if left == 0:
                break
            time.sleep(0.5)
        srv.stop()
        elapsed = time.monotonic() - t0

        events = int(srv.store_rows("SELECT COUNT(*) FROM async_events")[0][0])
        dead = int(srv.store_rows("SELECT COUNT(*) FROM dead_letters")[0][0])
        starts = [
            (m.split()[2], int(ts))
            for (m, ts) in srv.store_rows(
                "SELECT message, timestamp_ms FROM log_events "
                "WHERE function_name = ? AND message LIKE 'START RequestId: %'",
                (name,),
            )
        ]
        records = {
            r
            for (r,) in srv.store_rows(
                "SELECT request_id FROM invocations WHERE function_name = ?", (name,)
            )
        }
        runs = Counter(r for r, _ in starts)
        missing = [r for r in acked if runs[r] == 0]
        assert not missing, f"{len(missing)} acknowledged events never ran, e.g. {missing[:3]}"
        too_many = {r: n for r, n in runs.items() if n > 1 + kills}
        assert not too_many, f"events ran more than 1 + {kills} times: {list(too_many.items())[:3]}"
        # Nothing ran past its age (60 s after the client sent it, with a second of slack for
        # the clocks of client and server).
        late = [
            (r, ts / 1000 - acked[r])
            for r, ts in starts
            if r in acked and ts / 1000 - acked[r] > MAX_AGE_S + 1
        ]
        assert not late, f"events ran after their maximum age: {late[:3]}"
        assert events == 0, f"{events} events left in the queue"
        assert dead == 0, f"{dead} dead letters"
        # Only events that were sent ran (a refused or unanswered request may have run too, if
        # its commit made it before the kill: at most one per sender per kill).
        unknown = set(runs) - set(acked)
        assert len(unknown) <= SENDERS * kills, unknown
        assert set(acked) <= records, "a run without its invocation record"
        # How many leases the restarts found (events running or handed to a worker when the
        # server died), from the servers' own logs.
        released = sum(
            int(m.group(1))
            for n in range(2, srv.starts + 1)
            for m in re.finditer(r"released=(\d+)", srv.log(n))
        )
        print(
            f"seed {seed}: {len(acked)} events, {kills} kills, {released} leased at a kill, "
            f"{sum(runs.values())} runs, {sum(1 for n in runs.values() if n > 1)} ran twice or "
            f"more, {elapsed:.1f}s"
        )
    finally:
        srv.kill()
