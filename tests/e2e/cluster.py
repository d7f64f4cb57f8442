"""Several `stoke serve` nodes on one throw-away PostgreSQL (pg_cluster.py): the harness of the
multi-node tests (issue 14).

`StokeCluster(tmp_path, n=3).start()` starts PostgreSQL, creates a database, and starts `n`
nodes on it, each on its own free loopback port with its own data dir, all with one master key
(written as DIR/master.key before the first start, as an operator gives every node the same
`STOKE_MASTER_KEY`). The first node migrates the store and makes the admin's key; the others
find both, so every node's `client()` signs with the same admin key. `stop()` stops the nodes
that are still up (asserting a clean exit) and then PostgreSQL; `kill(i)` is kill -9 of one node.

`peers=True` (a test aid of the forwarding tests, until the node registry says who is alive):
node i gets the id `node{i+1}` (written as DIR/node-id before its first start) and a
`--peer ID=ADDR` flag for every other node.

    with StokeCluster(tmp_path, n=3).running() as c:
        lam1, lam2 = c.client(0), c.client(1)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
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
        peers: bool = False,
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
        if self.peers:
            self._introduce()
        for node in self.nodes:
            node.start()
        return self

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
        """Node `i`'s id (as `peers=True` names them)."""
        return f"node{i + 1}"

    def _introduce(self) -> None:
        for i, node in enumerate(self.nodes):
            (node.data_dir / "node-id").write_text(self.node_id(i) + "\n")
        for i, node in enumerate(self.nodes):
            node.extra_args += [
                f"--peer={self.node_id(j)}=127.0.0.1:{other.port}"
                for j, other in enumerate(self.nodes)
                if j != i
            ]

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
