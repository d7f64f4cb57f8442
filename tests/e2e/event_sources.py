"""Helpers the event source tests share (test_event_sources_*.py): a Python function made
with boto3 from one source file, the counts of the `TAG x,y,…` lines it logs, and a process's
CPU time, and what a poller backing off from a throttled function looks like."""

from __future__ import annotations

import os
import re
import time
from collections import Counter

from stoke_e2e import ROLE, http_get, make_zip, unique_name, wait_active
from stoke_guests import log_events


def python_function(lam, source: str, prefix: str = "esm", timeout: int = 10, **env) -> str:
    """A python3.12 function `app.handler` of `source`, its environment `env`, Active."""
    name = unique_name(prefix)
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": source})},
        Timeout=timeout,
        Environment={"Variables": {k: str(v) for k, v in env.items()}},
    )
    assert wait_active(lam, name)["Configuration"]["State"] == "Active"
    return name


def lines(server, fn: str, tag: str, until, timeout: float) -> Counter:
    """How often each item appears on the function's `TAG a,b,…` lines, polled until
    `until(counter)` or the timeout."""

    def count(events) -> Counter:
        c: Counter = Counter()
        for e in events:
            for line in e["message"].splitlines():
                if line.startswith(tag + " "):
                    c.update(x for x in line[len(tag) + 1 :].split(",") if x)
        return c

    events = log_events(server, fn, lambda ev: until(count(ev)), timeout=timeout)
    return count(events)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid` so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def assert_backed_off(server, fn: str, start_cpu: float, start: float) -> None:
    """Since `start` (and `start_cpu`, the server's CPU then), the server used well under
    half a core, `fn` was throttled but far less than a spinning poller would make it; and,
    idle now, the mapping costs (next to) nothing: blocking reads, no busy loop."""
    cpu, wall = cpu_seconds(server.proc.pid) - start_cpu, time.monotonic() - start
    assert cpu / wall < 0.5, f"the server used {cpu:.2f} s of CPU in {wall:.2f} s"
    metrics = http_get(f"{server.endpoint}/metrics").body.decode()
    throttled = re.search(rf'stoke_throttles_total{{account="\d+",function="{fn}"}} (\d+)', metrics)
    assert throttled, "the function was never throttled"
    # Backing off, not spinning: far fewer refusals than one per millisecond of backlog.
    assert int(throttled.group(1)) < 200, throttled.group(0)
    idle_cpu, idle_start = cpu_seconds(server.proc.pid), time.monotonic()
    time.sleep(2)
    idle = (cpu_seconds(server.proc.pid) - idle_cpu) / (time.monotonic() - idle_start)
    assert idle < 0.1, f"idle mapping: {idle:.2%} of a core"
