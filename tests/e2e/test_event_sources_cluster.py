"""Event source mappings on several nodes (one PostgreSQL): each mapping's poller runs on one
node at a time (a lease in the store), and the mappings of a node killed with SIGKILL are taken
over by another within the lease (10 s) and a renewal, which claims what the dead one left
pending: every record published runs."""

from __future__ import annotations

import os
import re
import time

import pytest

from brokers import RedisServer
from cluster import StokeCluster
from stoke_e2e import http_get, unique_name
from test_event_sources_redis import lines, mapping, publish, python_function

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="Python functions need root")


def holders(c: StokeCluster, uuid: str) -> list[int]:
    """The nodes whose /metrics show a poller of `uuid`."""
    out = []
    for i, node in enumerate(c.nodes):
        if node.alive():
            text = http_get(f"{node.endpoint}/metrics").body.decode()
            if re.search(rf'stoke_event_source_in_flight_batches{{mapping="{uuid}"', text):
                out.append(i)
    return out


def test_one_node_polls_a_mapping_and_another_takes_it_over(tmp_path):
    with RedisServer(tmp_path / "redis") as redis, StokeCluster(tmp_path, n=2).running() as c:
        lam = c.client(0)
        fn = python_function(lam)
        stream = unique_name("cluster")
        first = publish(redis, stream, [{"i": i} for i in range(100)])
        uuid = mapping(lam, redis, fn, stream, BatchSize=10)
        lines(c.nodes[0], fn, "DONE", lambda s: set(first) <= set(s), timeout=20)
        held = holders(c, uuid)
        assert len(held) == 1, held
        c.kill(held[0])
        survivor = c.nodes[1 - held[0]]
        second = publish(redis, stream, [{"i": i} for i in range(100, 200)])
        start = time.monotonic()
        done = lines(survivor, fn, "DONE", lambda s: set(second) <= set(s), timeout=40)
        assert set(first) | set(second) <= set(done)
        assert time.monotonic() - start < 30
        assert holders(c, uuid) == [1 - held[0]]
