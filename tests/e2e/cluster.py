"""Several `stoke serve` nodes on one throw-away PostgreSQL (pg_cluster.py): the harness of the
multi-node tests (issue 14).

`StokeCluster(tmp_path, n=3).start()` starts PostgreSQL, creates a database, and starts `n`
nodes on it, each on its own free loopback port with its own data dir, all with one master key
(written as DIR/master.key before the first start, as an operator gives every node the same
`STOKE_MASTER_KEY`). The first node migrates the store and makes the admin's key; the others
find both, so every node's `client()` signs with the same admin key. `stop()` stops the nodes
that are still up (asserting a clean exit) and then PostgreSQL; `kill(i)` is kill -9 of one node.

Node i gets the id `node{i+1}` (written as DIR/node-id before its first start), and `start()`
returns once every node's registry (`stoke nodes --json`) lists all n alive, so that the
first call of a test already sees the whole cluster.

    with StokeCluster(tmp_path, n=3).running() as c:
        lam1, lam2 = c.client(0), c.client(1)
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import time
from pathlib import Path

from pg_cluster import PgCluster
from stoke_e2e import StokeServer


class StokeCluster:
    def __init__(
        self,
        workdir: Path,
        n: int = 3,
        extra_args: list[str] | None = None,
        database: str = "stoke_cluster",
        peers: bool = True,
    ):
        self.workdir = Path(workdir)
        self.n = n
        self.extra_args = list(extra_args or [])
        self.database = database
        self.master_key = secrets.token_hex(32)
        self.pg: PgCluster | None = None
        self.url = ""
        self.nodes: list[StokeServer] = []
        self.peers = peers

    def start(self) -> "StokeCluster":
        self.pg = PgCluster().start()
        self.url = self.pg.create_database(self.database)
        for i in range(self.n):
            self.nodes.append(self.new_node(f"node{i + 1}"))
        for i, node in enumerate(self.nodes):
            (node.data_dir / "node-id").write_text(self.node_id(i) + "\n")
        for node in self.nodes:
            node.start()
        if self.peers:
            self.wait_until_all_alive()
        return self

    def wait_until_all_alive(self, timeout: float = 20.0) -> None:
        """Waits until every running node lists every running node `alive`."""
        from accounts import stoke_cli

        want = {self.node_id(i) for i, n in enumerate(self.nodes) if n.alive()}
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            if not node.alive():
                continue
            while True:
                proc = stoke_cli(node, "nodes", "--json")
                seen = set()
                if proc.returncode == 0:
                    seen = {n["NodeId"] for n in json.loads(proc.stdout) if n["State"] == "alive"}
                if want <= seen:
                    break
                assert time.monotonic() < deadline, (
                    f"{node.endpoint} sees {sorted(seen)} alive, not {sorted(want)}: "
                    f"{proc.stderr}"
                )
                time.sleep(0.1)

    def new_node(self, name: str, extra_args: list[str] | None = None) -> StokeServer:
        """A node of this cluster (not started): its own workdir and port, the store's URL, the
        cluster's master key and the cluster's flags (and `extra_args`)."""
        node = StokeServer(
            self.workdir / name,
            extra_args=["--store", self.url, *self.extra_args, *(extra_args or [])],
        )
        node.data_dir.mkdir(parents=True, exist_ok=True)
        key = node.data_dir / "master.key"
        key.write_text(self.master_key)
        os.chmod(key, 0o600)
        return node

    def node_id(self, i: int) -> str:
        """Node `i`'s id (`node{i+1}`)."""
        return f"node{i + 1}"

    def client(self, i: int, **config_overrides):
        """A boto3 Lambda client of node `i` (0-based), signed with the admin's key."""
        return self.nodes[i].client(**config_overrides)

    def kill(self, i: int) -> None:
        """kill -9 of node `i`: no clean shutdown, no lease given back."""
        node = self.nodes[i]
        assert node.proc is not None and node.alive(), f"node {i} is not running"
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait()
        node.proc = None

    def stop(self) -> None:
        try:
            for node in self.nodes:
                if node.alive():
                    node.stop()
        finally:
            for node in self.nodes:
                node.kill()
            if self.pg is not None:
                self.pg.stop()

    @contextlib.contextmanager
    def running(self):
        self.start()
        try:
            yield self
        finally:
            self.stop()
