"""`stoke serve --store postgres://…`: the state and the code live in a PostgreSQL database
(a throw-away cluster the test starts, pg_cluster.py). A function created and invoked with
boto3 is there after a restart, and a second server with an empty data dir of its own (the
same master key) finds it and serves its zip, read from the database. (That second server does
not invoke it: code is prepared, compiled, by the node that deployed it; preparing on another
node is the nodes' work, issue 14 item 2 on.)

Bad input: a wrong or unreachable `--store` URL (no such database, a refused port, another
scheme, a server that never answers) fails at start-up with one `error:` line (exit code 1, no
password shown), within seconds; a store that a newer Stoke migrated, SQLite or PostgreSQL, is
refused in one line and left as it was."""

from __future__ import annotations

import shutil
import socket
import time

import pytest

from stoke_e2e import StokeServer, expect_error, http_get, sha256_b64
from stoke_guests import code_answer, deploy_constant, invoke


def test_a_function_lives_in_postgres_across_restarts_and_data_dirs(pg, tmp_path):
    url = pg.create_database("stoke_e2e")
    srv = StokeServer(tmp_path / "node1", extra_args=["--store", url, "--process-runtimes", "off"])
    other = StokeServer(
        tmp_path / "node2", extra_args=["--store", url, "--process-runtimes", "off"]
    )
    try:
        srv.start()
        lam = srv.client()
        name = deploy_constant(lam, "pg-1", prefix="pg-store")
        _, body = invoke(lam, name, {})
        assert body == code_answer("pg-1")
        before = lam.get_function_configuration(FunctionName=name)
        # Nothing of it is in a SQLite file or a blob folder of the data dir.
        assert not (srv.data_dir / "stoke.db").exists()
        assert not (srv.data_dir / "blobs").exists()

        srv.restart()
        lam = srv.client()
        after = lam.get_function_configuration(FunctionName=name)
        assert after["CodeSha256"] == before["CodeSha256"]
        assert after["RevisionId"] == before["RevisionId"]
        _, body = invoke(lam, name, {})
        assert body == code_answer("pg-1")
        srv.stop()

        # Another node: its own (empty) data dir, the cluster's master key and the admin's key.
        other.data_dir.mkdir(parents=True)
        shutil.copy(srv.data_dir / "master.key", other.data_dir / "master.key")
        other.start()
        assert other.credentials() == srv.credentials()
        lam2 = other.client()
        got = lam2.get_function(FunctionName=name)
        assert got["Configuration"]["RevisionId"] == before["RevisionId"]
        # The zip comes out of the database (this node's blob cache was empty).
        code = http_get(got["Code"]["Location"])
        assert code.status == 200
        assert sha256_b64(code.body) == before["CodeSha256"]
        assert any((other.data_dir / "blob-cache").rglob("*")), "read through the cache"
        lam2.delete_function(FunctionName=name)
        with expect_error("ResourceNotFoundException", 404):
            lam2.get_function(FunctionName=name)
        other.stop()
    finally:
        srv.kill()
        other.kill()


def test_a_wrong_or_unreachable_store_url_fails_at_start_up_in_one_line(pg, tmp_path):
    missing = pg.url("no_such_db")
    # A server that accepts the connection and never answers (as a host behind a firewall
    # that drops packets, or a wrong port of a service that waits for its own protocol).
    with socket.create_server(("127.0.0.1", 0)) as silent:
        silent_url = f"postgres://stoke:hunter2@127.0.0.1:{silent.getsockname()[1]}/x"
        for url, says, within in [
            (missing, 'database "no_such_db" does not exist', 5),
            ("postgres://stoke:hunter2@127.0.0.1:1/x", "Connection refused", 5),
            ("mysql://stoke@127.0.0.1/x", "not a store URL", 5),
            (silent_url, "no answer within 10 s", 10 + 5),
        ]:
            srv = StokeServer(tmp_path / f"bad-{len(says)}", extra_args=["--store", url])
            started = time.monotonic()
            with pytest.raises(AssertionError, match="exited with code 1"):
                srv.start()
            took = time.monotonic() - started
            errors = [line for line in srv.log().splitlines() if line.startswith("error:")]
            assert len(errors) == 1, srv.log()
            assert says in errors[0], errors[0]
            assert "hunter2" not in srv.log()
            assert took < within, f"{url}: refused after {took:.1f} s"


NEWER = 99990101000000


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_store_migrated_by_a_newer_stoke_is_refused_and_left_as_it_was(pg, tmp_path, store):
    url = pg.create_database("stoke_newer") if store == "postgres" else None
    # The store named either way (whatever STOKE_E2E_STORE says): this test is about both.
    db_file = tmp_path / store / "data" / "stoke.db"
    args = ["--process-runtimes", "off", "--store", url or f"sqlite://{db_file}"]
    srv = StokeServer(tmp_path / store, extra_args=args)
    try:
        srv.start()
        lam = srv.client()
        name = deploy_constant(lam, "newer-1", prefix="newer")
        before = lam.get_function_configuration(FunctionName=name)
        srv.stop()

        # A newer Stoke applied a migration this one does not know.
        insert = (
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, "
            f"execution_time) VALUES ({NEWER}, 'from a newer stoke', TRUE, X'00', 0)"
        )
        count = "SELECT COUNT(*), MAX(version) FROM _sqlx_migrations"
        if url:
            pg.query(url, insert.replace("X'00'", "'\\x00'"))
            applied = pg.query(url, count)[0]
        else:
            import sqlite3

            with sqlite3.connect(db_file) as db:
                db.execute(insert.replace("TRUE", "1"))
            with sqlite3.connect(db_file) as db:
                applied = tuple(str(v) for v in db.execute(count).fetchone())
        assert applied[1] == str(NEWER)

        with pytest.raises(AssertionError, match="exited with code 1"):
            srv.start()
        errors = [line for line in srv.log().splitlines() if line.startswith("error:")]
        assert len(errors) == 1, srv.log()
        assert "the store was migrated by a newer Stoke" in errors[0], errors[0]
        assert f"schema version {NEWER}" in errors[0], errors[0]

        # Left as it was: nothing migrated; without the newer row the store serves as before.
        if url:
            assert pg.query(url, count)[0] == applied
            pg.query(url, f"DELETE FROM _sqlx_migrations WHERE version = {NEWER}")
        else:
            with sqlite3.connect(db_file) as db:
                assert tuple(str(v) for v in db.execute(count).fetchone()) == applied
                db.execute(f"DELETE FROM _sqlx_migrations WHERE version = {NEWER}")
        srv.start()
        lam = srv.client()
        after = lam.get_function_configuration(FunctionName=name)
        assert after["RevisionId"] == before["RevisionId"]
        _, body = invoke(lam, name, {})
        assert body == code_answer("newer-1")
        srv.stop()
    finally:
        srv.kill()
