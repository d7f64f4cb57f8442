"""Schedules on PostgreSQL and on several nodes (issue 15 items 4-5): three `stoke serve` nodes
on one throw-away PostgreSQL (cluster.py), every node running its own ticker on the same
schedules. Each tick runs its function once whichever node fires it (the fire is a
compare-and-swap on the schedule's row in the enqueue's transaction), a node killed before a
tick leaves it to the others, and a node started again after the tick does not run it again.
The missed-tick restart test of test_schedules.py also runs here on a PostgreSQL store.

The nodes' tickers read the store every 200 ms (the hidden `--schedule-poll`; 10 s by default)
so that they all wake on the same due ticks and race on them; which node fired a tick is in its
log ("a schedule's tick fired").
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
        extra_args=["--schedule-no-jitter", "--schedule-poll", "200ms"],
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


def test_a_node_killed_before_a_tick_leaves_it_to_the_others(cluster, rec):
    fn, arn = rec
    sch = scheduler(cluster.nodes[0])
    tags = []
    # Made through node 1, whose ticker the writes wake: it is the one that would fire them.
    for i in range(3):
        tag = unique_name("kill")
        expr = at_in(4 + i)
        sch.create_schedule(
            Name=tag, ScheduleExpression=expr, FlexibleTimeWindow={"Mode": "OFF"},
            Target=target(arn, tag),
        )
        tags.append(tag)
    cluster.kill(0)
    for tag in tags:
        assert events_with(cluster.nodes[1], fn, tag, lambda n: n >= 1, timeout=20) == 1, tag
    fired_by_others = [t for node in cluster.nodes[1:] for t in fired(node) if t in tags]
    assert sorted(fired_by_others) == sorted(tags)
    # Node 1 back after the ticks: it finds them fired and runs none again.
    cluster.nodes[0].start()
    cluster.wait_until_all_alive()
    time.sleep(1.5)
    for tag in tags:
        assert events_with(cluster.nodes[0], fn, tag, lambda n: n > 1, timeout=0.3) == 1, tag
    assert [t for t in fired(cluster.nodes[0]) if t in tags] == []
    for tag in tags:
        scheduler(cluster.nodes[0]).delete_schedule(Name=tag)


def test_a_restart_on_postgres_runs_a_missed_tick_once_within_its_window(tmp_path_factory):
    c = StokeCluster(
        tmp_path_factory.mktemp("sched-pg-restart"), n=1, extra_args=["--schedule-no-jitter"]
    )
    with c.running():
        _servers.extend(c.nodes)
        missed_ticks_across_a_restart(c.nodes[0])
