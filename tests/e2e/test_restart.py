"""Restart: everything created before a stop (SIGTERM, exit 0) is there after a start on the
same data dir, with the same CodeSha256, and the credentials file is left as it was."""

from stoke_e2e import (
    WASM_MODULE,
    config_of,
    create_wasm,
    expect_error,
    http_get,
    make_zip,
    sha256_b64,
    unique_name,
    wait_active,
    wait_updated,
    wasm_zip,
)


def test_functions_and_credentials_survive_a_restart(fresh_server):
    srv = fresh_server
    lam = srv.client()
    creds_before = srv.credentials_file.read_bytes()
    key_before = srv.credentials()

    codes = {}
    for i in range(3):
        name = unique_name(f"restart-{i}")
        codes[name] = wasm_zip(extra={"n": str(i).encode() * (i + 1)})
        create_wasm(
            lam,
            name,
            zip_bytes=codes[name],
            MemorySize=128 + 64 * i,
            Environment={"Variables": {"INDEX": str(i)}},
            Tags={"i": str(i)},
        )
    updated = next(iter(codes))
    for name in codes:
        wait_active(lam, name)
    # One function updated, one deleted before the restart.
    codes[updated] = make_zip({"hello.wasm": WASM_MODULE, "v": b"2"})
    lam.update_function_code(FunctionName=updated, ZipFile=codes[updated])
    wait_updated(lam, updated)
    lam.update_function_configuration(FunctionName=updated, Timeout=33)
    wait_updated(lam, updated)
    deleted = unique_name("restart-deleted")
    create_wasm(lam, deleted)
    lam.delete_function(FunctionName=deleted)

    before = {n: config_of(lam.get_function_configuration(FunctionName=n)) for n in codes}
    tags_before = {n: lam.list_tags(Resource=before[n]["FunctionArn"])["Tags"] for n in codes}
    usage_before = lam.get_account_settings()["AccountUsage"]

    srv.restart()  # asserts exit code 0 on SIGTERM
    lam = srv.client()

    assert srv.credentials_file.read_bytes() == creds_before
    assert srv.credentials() == key_before
    names = {f["FunctionName"] for f in lam.list_functions()["Functions"]}
    assert names == set(codes)
    for name, code in codes.items():
        got = lam.get_function(FunctionName=name)
        cfg = got["Configuration"]
        assert cfg["CodeSha256"] == sha256_b64(code) == before[name]["CodeSha256"]
        assert cfg == before[name], name
        assert got["Tags"] == tags_before[name]
        r = http_get(got["Code"]["Location"])
        assert r.status == 200 and r.body == code
    assert lam.get_function_configuration(FunctionName=updated)["Timeout"] == 33
    with expect_error("ResourceNotFoundException", 404):
        lam.get_function(FunctionName=deleted)
    assert lam.get_account_settings()["AccountUsage"] == usage_before

    # The restarted server takes writes as before.
    name = unique_name("restart-after")
    resp = create_wasm(lam, name)
    assert resp["FunctionArn"].split(":")[4] == before[updated]["FunctionArn"].split(":")[4]
    wait_active(lam, name)
    with expect_error("ResourceConflictException", 409):
        create_wasm(lam, updated)


def test_a_second_restart_changes_nothing_either(fresh_server):
    srv = fresh_server
    lam = srv.client()
    name = unique_name("restart-twice")
    code = wasm_zip()
    create_wasm(lam, name, zip_bytes=code)
    wait_active(lam, name)
    before = config_of(lam.get_function_configuration(FunctionName=name))
    srv.restart()
    srv.restart()
    after = config_of(srv.client().get_function_configuration(FunctionName=name))
    assert after == before
    assert after["CodeSha256"] == sha256_b64(code)


def test_functions_pending_at_shutdown_become_active_after_restart(fresh_server):
    """Code still being unpacked when the server stops is not left Pending forever."""
    import os

    srv = fresh_server
    lam = srv.client()
    names = [unique_name(f"restart-pending-{i}") for i in range(3)]
    big = make_zip({"hello.wasm": WASM_MODULE, "blob.bin": os.urandom(8 << 20)})
    for n in names:
        create_wasm(lam, n, zip_bytes=big)
    srv.restart()
    lam = srv.client()
    for n in names:
        cfg = wait_active(lam, n)["Configuration"]
        assert cfg["CodeSha256"] == sha256_b64(big)


def test_acknowledged_creates_survive_a_crash(fresh_server):
    """kill -9 right after 201 Created: the function is there after the next start."""
    srv = fresh_server
    lam = srv.client()
    name = unique_name("restart-crash")
    code = wasm_zip(extra={"c": b"crash"})
    create_wasm(lam, name, zip_bytes=code)
    lam.tag_resource(
        Resource=lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"],
        Tags={"after": "crash"},
    )
    srv.kill()
    srv.start()
    lam = srv.client()
    got = wait_active(lam, name)
    assert got["Configuration"]["CodeSha256"] == sha256_b64(code)
    assert got["Tags"] == {"after": "crash"}
    assert http_get(got["Code"]["Location"]).body == code
