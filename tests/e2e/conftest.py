"""Fixtures for the end-to-end tests: a real `stoke serve` and the real boto3 client.

- `server`: one server for the whole session (tests use unique function names, so they do not
  see each other's functions except in counts, which they measure as differences).
- `fresh_server`: a server of its own for one test (restart, shutdown, start-up output).
- `lam`: a boto3 Lambda client for `server`, signed with the credentials it wrote.
- `lam_raw`: the same with boto3's client-side parameter validation off, to reach the
  server's own validation with values botocore would refuse (MemorySize 127, Timeout 0, ...).
- `pg`: a throw-away PostgreSQL cluster of one test's own (pg_cluster.PgCluster).

When a test fails, the tail of every server log it used is attached to the report.

The store is a parameter of the run: STOKE_E2E_STORE=postgres (scripts/test.sh e2e-pg) puts
every server on a database of its own in one throw-away PostgreSQL cluster for the session
(stoke_e2e.StokeServer, pg_cluster.session_cluster), stopped at the end.
"""

from __future__ import annotations

import pytest

from pg_cluster import PgCluster, stop_session_cluster
from stoke_e2e import E2E_STORE, StokeServer, make_lying_zip, make_zeros_zip

_servers: list[StokeServer] = []


def pytest_report_header(config):
    return f"stoke store: {E2E_STORE} (STOKE_E2E_STORE)"


@pytest.fixture(scope="session", autouse=True)
def _session_store():
    """Stops the session's PostgreSQL cluster (if the run started one) after every server."""
    yield
    for srv in _servers:
        srv.kill()
    stop_session_cluster()


def _new_server(tmp_path_factory, name: str) -> StokeServer:
    srv = StokeServer(tmp_path_factory.mktemp(name))
    _servers.append(srv)
    return srv


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = _new_server(tmp_path_factory, "stoke")
    srv.start()
    yield srv
    if srv.proc is not None:
        srv.stop()  # asserts a clean exit: a crash during the session shows here too


@pytest.fixture
def fresh_server(tmp_path_factory):
    srv = _new_server(tmp_path_factory, "stoke-fresh")
    srv.start()
    try:
        yield srv
        if srv.alive():
            srv.stop()  # a clean exit is part of every test that used its own server
    finally:
        srv.kill()


@pytest.fixture
def pg():
    """A throw-away PostgreSQL cluster of the test's own (whatever STOKE_E2E_STORE says), for
    tests about the PostgreSQL store itself: restarts, bad URLs, several nodes."""
    cluster = PgCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def lam(server):
    return server.client()


@pytest.fixture(scope="session")
def lam_raw(server):
    return server.client(parameter_validation=False)


@pytest.fixture(scope="session")
def account_id(lam):
    """The default account's id, read off a function's ARN."""
    from stoke_e2e import create_wasm, unique_name

    name = unique_name("account-probe")
    arn = create_wasm(lam, name)["FunctionArn"]
    return arn.split(":")[4]


@pytest.fixture(scope="session")
def zip_bomb():
    """One entry of 300 MB of zeros (~300 KB deflated)."""
    return make_zeros_zip({"zeros.bin": 300 * 1024 * 1024})


@pytest.fixture(scope="session")
def lying_zip_bomb():
    """300 MB of zeros in one entry whose headers say 1 KB."""
    return make_lying_zip(real_size=300 * 1024 * 1024, declared_size=1024)


@pytest.fixture(autouse=True)
def _server_alive_check(request):
    """After each test that used the session server, check that it is still running."""
    yield
    if "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
        if srv.proc is not None and srv.proc.poll() is not None:
            pytest.fail(
                f"stoke serve died during this test (exit code {srv.proc.returncode})\n"
                f"{srv.all_logs()}",
                pytrace=False,
            )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        used = [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, StokeServer)]
        if not used and "server" in item.fixturenames:
            used = [s for s in _servers if s.starts]
        for srv in used:
            report.sections.append((f"stoke serve log {srv.endpoint}", srv.all_logs()))
    return report
