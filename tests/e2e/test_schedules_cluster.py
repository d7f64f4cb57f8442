"""Schedules on PostgreSQL and on several nodes (issue 15 items 4-5): three `stoke serve` nodes
on one throw-away PostgreSQL (cluster.py), every node running its own ticker on the same
schedules. Each tick runs its function once whichever node fires it (the fire is a
compare-and-swap on the schedule's row in the enqueue's transaction), a node killed in the
middle of a run of ticks leaves the rest to the others (each still fired once), and a node
started again after them fires none again.
The missed-tick restart test of test_schedules.py also runs here on a PostgreSQL store.

The nodes' tickers read the store every 200 ms (the hidden `--schedule-poll`; 10 s by default)
so that they all wake on the same due ticks and race on them; which node fired a tick is in its
log ("a schedule's tick fired"). A dead node's async events are taken over after 2 s (the
hidden `--async-lease`).
"""

from __future__ import annotations

import re
import time

import pytest

from cluster import StokeCluster
from stoke_e2e import StokeServer, unique_name
from stoke_guests import deploy
from test_schedules import (
    at_in,
    events_with,
    function_arn,
    missed_ticks_across_a_restart,
    scheduler,
    target,
)

try:  # so that a failure attaches the nodes' logs too
    from conftest import _servers
except ImportError:  # pragma: no cover
    _servers = []

FIRED = re.compile(r"a schedule's tick fired.*\bschedule=(\S+)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = StokeCluster(
        tmp_path_factory.mktemp("sched-cluster"),
        n=3,
        extra_args=["--schedule-no-jitter", "--schedule-poll", "200ms", "--async-lease", "2s"],
    )
    with c.running():
        _servers.extend(c.nodes)
        yield c


@pytest.fixture(scope="module")
def rec(cluster):
    lam = cluster.client(0)
    name = deploy(lam, "record", prefix="sched-cl")
    return name, function_arn(lam, name)


def fired(node: StokeServer) -> list[str]:
    """The schedules whose ticks `node` fired, one entry per tick, over all its runs."""
    return [m.group(1) for n in range(1, node.starts + 1) for m in FIRED.finditer(node.log(n))]


def test_each_tick_runs_once_whichever_node_fires_it(cluster, rec):
    fn, arn = rec
    clients = [scheduler(node) for node in cluster.nodes]
    tags = []
    # Nine one-off ticks due in the same second, made through every node (each node's ticker
    # sleeps until it and wakes with the others), and a rate whose first tick is at once.
    expr = at_in(5)
    for i in range(9):
        tag = unique_name("once")
        clients[i % 3].create_schedule(
            Name=tag, ScheduleExpression=expr, FlexibleTimeWindow={"Mode": "OFF"},
            Target=target(arn, tag), ActionAfterCompletion="DELETE" if i % 2 else "NONE",
        )
        tags.append(tag)
    rate = unique_name("rate")
    clients[1].create_schedule(
        Name=rate, ScheduleExpression="rate(1 hour)", FlexibleTimeWindow={"Mode": "OFF"},
        Target=target(arn, rate),
    )
    tags.append(rate)
    for tag in tags:
        assert events_with(cluster.nodes[2], fn, tag, lambda n: n >= 1, timeout=20) == 1, tag
    # Every tick was fired by exactly one node: one "fired" line in all the nodes' logs.
    deadline = time.monotonic() + 5
    while True:
        by_node = [fired(node) for node in cluster.nodes]
        lines = [t for f in by_node for t in f if t in tags]
        if sorted(lines) == sorted(tags) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert sorted(lines) == sorted(tags), by_node
    # The one-offs are done: deleted (ActionAfterCompletion DELETE) or kept with no next tick.
    for i, tag in enumerate(tags[:-1]):
        listed = clients[0].list_schedules(NamePrefix=tag)["Schedules"]
        assert [s["Name"] for s in listed] == ([] if i % 2 else [tag])
    # No second run of any of them, on any node, a while later.
    time.sleep(1.5)
    for tag in tags:
        assert events_with(cluster.nodes[0], fn, tag, lambda n: n > 1, timeout=0.3) == 1, tag
    for tag in [*tags[:-1:2], rate]:
        clients[0].delete_schedule(Name=tag)


def test_a_node_killed_across_ticks_leaves_each_to_be_fired_once(cluster, rec):
    fn, arn = rec
    sch = scheduler(cluster.nodes[0])
    tags = []
    # One tick a second for ten seconds from 4 s on, made through node 1 (whose ticker the
    # writes wake); node 1 is killed once the first has run, in the middle of them.
    for i in range(10):
        tag = unique_name("kill")
        sch.create_schedule(
            Name=tag, ScheduleExpression=at_in(4 + i), FlexibleTimeWindow={"Mode": "OFF"},
            Target=target(arn, tag),
        )
        tags.append(tag)
    assert events_with(cluster.nodes[1], fn, tags[0], lambda n: n >= 1, timeout=20) >= 1
    cluster.kill(0)
    for tag in tags:
        assert events_with(cluster.nodes[1], fn, tag, lambda n: n >= 1, timeout=20) >= 1, tag
    # Each tick was fired (enqueued) by exactly one node, the killed one's log included.
    by_node = [[t for t in fired(node) if t in tags] for node in cluster.nodes]
    assert sorted(t for f in by_node for t in f) == sorted(tags), by_node
    # The ticks after the kill were the others'; each of theirs ran once. One the killed node
    # had fired ran at least once (taken over after its 2 s lease if it was running it).
    after = set(by_node[1] + by_node[2])
    assert after, by_node
    for tag in tags:
        n = events_with(cluster.nodes[1], fn, tag, lambda n: False, timeout=0)
        assert n == 1 if tag in after else n >= 1, (tag, n)
    # Node 1 back after the ticks: it finds them fired and fires none again.
    cluster.nodes[0].start()
    cluster.wait_until_all_alive()
    time.sleep(1.5)
    assert [t for t in fired(cluster.nodes[0]) if t in tags] == by_node[0]
    for tag in tags:
        sch = scheduler(cluster.nodes[0])
        assert sch.list_schedules(NamePrefix=tag)["Schedules"][0]["Name"] == tag
        sch.delete_schedule(Name=tag)


def test_a_restart_on_postgres_runs_a_missed_tick_once_within_its_window(tmp_path_factory):
    c = StokeCluster(
        tmp_path_factory.mktemp("sched-pg-restart"), n=1, extra_args=["--schedule-no-jitter"]
    )
    with c.running():
        _servers.extend(c.nodes)
        missed_ticks_across_a_restart(c.nodes[0])
