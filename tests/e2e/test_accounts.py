"""Accounts, access keys and limits per account (issue 13, items 1 and 5): the `stoke accounts`
and `stoke keys` CLI against a real server, the admin API for the admin only, each account
seeing only its own functions, a revoked key refused on the very next request, no secret in
clear in the database, and concurrency limits per account (GetAccountSettings, the 100
unreserved, one account's throttling leaving another's calls alone)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import threading
import time

import pytest

from accounts import Account, create_account, stoke_cli
from stoke_e2e import (
    REGION,
    StokeServer,
    create_wasm,
    expect_error,
    function_names,
    stoke_bin,
    unique_name,
)
from stoke_guests import deploy, invoke

ADMIN_API = "/stoke/admin/2026-11-01/accounts"
INVALID_TOKEN = "The security token included in the request is invalid."


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr}"
    return proc.stdout


def _refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 1, f"exit {proc.returncode}: {proc.stdout} {proc.stderr}"
    for w in words:
        assert w in proc.stderr, f"{w!r} not in {proc.stderr!r}"
    return proc.stderr


def _account_names(server) -> dict[str, dict]:
    return {a["AccountName"]: a for a in json.loads(_ok(stoke_cli(server, "accounts", "list", "--json")))}


def test_the_cli_creates_lists_shows_and_deletes_accounts(server):
    name = unique_name("acct-cli")
    out = _ok(stoke_cli(server, "accounts", "create", name, "--json"))
    made = json.loads(out)
    assert set(made) == {"AccountId", "AccessKeyId", "SecretAccessKey"}, made
    assert re.fullmatch(r"\d{12}", made["AccountId"]), made
    assert re.fullmatch(r"AKIA[A-Z2-7]{16}", made["AccessKeyId"]), made
    assert len(made["SecretAccessKey"]) == 40, made
    assert out.count("\n") == 1, "one JSON object on one line"

    listed = _account_names(server)
    assert listed[name]["AccountId"] == made["AccountId"]
    assert listed[name]["Admin"] is False
    assert [a for a in listed.values() if a["Admin"]][0]["AccountName"] == "admin"

    shown = _ok(stoke_cli(server, "accounts", "show", name))
    assert made["SecretAccessKey"] not in shown, "a secret is printed only when made"
    doc = json.loads(shown)
    assert doc["Account"]["AccountId"] == made["AccountId"]
    assert [k["AccessKeyId"] for k in doc["AccessKeys"]] == [made["AccessKeyId"]]
    assert doc["AccountUsage"] == {"TotalCodeSize": 0, "FunctionCount": 0}
    # By id as by name.
    assert json.loads(_ok(stoke_cli(server, "accounts", "show", made["AccountId"])))["Account"][
        "AccountName"
    ] == name

    # Refusals, each changing nothing.
    _refused(
        stoke_cli(server, "accounts", "create", name),
        "ResourceConflictException",
        f"An account named {name} already exists.",
    )
    _refused(
        stoke_cli(server, "accounts", "create", "123456789012"),
        "InvalidParameterValueException",
        "'accountName' failed to satisfy constraint",
    )
    _refused(
        stoke_cli(server, "accounts", "delete", "admin"),
        "InvalidParameterValueException",
        "The admin account cannot be deleted.",
    )
    _refused(
        stoke_cli(server, "accounts", "show", "no-such-account"),
        "ResourceNotFoundException",
        "Account not found: no-such-account",
    )
    assert set(_account_names(server)) == set(listed)

    # Human output names the account and the key.
    human = _ok(stoke_cli(server, "accounts", "create", name + "-h"))
    assert re.search(r"^account\s+\d{12}$", human, re.M), human
    assert re.search(r"^access key id\s+AKIA", human, re.M), human

    _ok(stoke_cli(server, "accounts", "delete", name))
    assert name not in _account_names(server)
    with expect_error("UnrecognizedClientException", 403, INVALID_TOKEN):
        Account(**_as_fields(made)).client(server).list_functions()


def _as_fields(made: dict) -> dict:
    return dict(
        account_id=made["AccountId"],
        access_key_id=made["AccessKeyId"],
        secret_access_key=made["SecretAccessKey"],
    )


def test_an_account_that_owns_functions_is_not_deleted(server):
    a = create_account(server, "owner")
    lam = a.client(server)
    fn = deploy(lam, "hello", prefix="acct-owned")
    _refused(
        stoke_cli(server, "accounts", "delete", a.account_id),
        "ResourceConflictException",
        "still owns 1 function(s); delete them first.",
    )
    assert lam.get_function(FunctionName=fn)["Configuration"]["FunctionName"] == fn
    lam.delete_function(FunctionName=fn)
    _ok(stoke_cli(server, "accounts", "delete", a.account_id))


def test_only_the_admin_calls_the_admin_api(server):
    a = create_account(server, "not-admin")
    before = set(_account_names(server))
    r = server.signed_request(
        "POST",
        ADMIN_API,
        b'{"AccountName": "sneaky"}',
        access_key=a.access_key_id,
        secret_key=a.secret_access_key,
    )
    assert (r.status, r.error_type) == (403, "AccessDeniedException"), r.body
    assert r.json()["Message"] == (
        f"User: arn:aws:iam::{a.account_id}:root is not authorized to perform: "
        "stoke:CreateAccount because only the admin account may manage accounts"
    )
    for args in (["accounts", "list"], ["keys", "create", a.account_id]):
        _refused(
            stoke_cli(server, *args, credentials=(a.access_key_id, a.secret_access_key)),
            "AccessDeniedException",
        )
    assert set(_account_names(server)) == before
    assert len(json.loads(_ok(stoke_cli(server, "keys", "list", a.account_id, "--json")))) == 1


def test_three_accounts_each_see_only_their_own_functions(server):
    accounts = [create_account(server, f"tenant-{i}") for i in range(3)]
    shared = unique_name("acct-same-name")
    own = {}
    for acct in accounts:
        lam = acct.client(server)
        own[acct.account_id] = deploy(lam, "hello", prefix="acct-own")
        # The same name in every account: three functions, one each.
        arn = create_wasm(lam, shared, Description=acct.account_id)["FunctionArn"]
        assert arn == f"arn:aws:lambda:{REGION}:{acct.account_id}:function:{shared}"
    for acct in accounts:
        lam = acct.client(server)
        assert function_names(lam) == {own[acct.account_id], shared}, acct.account_id
        cfg = lam.get_function_configuration(FunctionName=shared)
        assert cfg["Description"] == acct.account_id, "each sees its own of the same name"
        for other in accounts:
            if other is acct:
                continue
            with expect_error(
                "ResourceNotFoundException",
                404,
                f"arn:aws:lambda:{REGION}:{acct.account_id}:function:{own[other.account_id]}",
            ):
                lam.get_function(FunctionName=own[other.account_id])
        _, body = invoke(lam, own[acct.account_id], {"name": acct.account_id})
        assert body == {"message": f"Hello, {acct.account_id}!"}, body
    # The admin sees none of theirs.
    assert not function_names(server.client()) & {shared, *own.values()}
    for acct in accounts:
        lam = acct.client(server)
        for name in (shared, own[acct.account_id]):
            lam.delete_function(FunctionName=name)


def test_a_revoked_key_is_refused_on_the_very_next_request(server):
    a = create_account(server, "revoke")
    first = a.client(server)
    assert first.list_functions()["Functions"] == []  # the key is known (and cached) now
    made = json.loads(_ok(stoke_cli(server, "keys", "create", a.account_id, "--json")))
    assert made["AccountId"] == a.account_id and made["AccessKeyId"] != a.access_key_id
    second = Account(a.account_id, made["AccessKeyId"], made["SecretAccessKey"]).client(server)
    _refused(
        stoke_cli(server, "keys", "create", a.account_id),
        "InvalidParameterValueException",
        "Cannot exceed quota for AccessKeysPerAccount: 2",
    )
    _ok(stoke_cli(server, "keys", "revoke", a.account_id, a.access_key_id))
    with expect_error("UnrecognizedClientException", 403, INVALID_TOKEN):
        first.list_functions()
    assert second.list_functions()["Functions"] == []
    keys = json.loads(_ok(stoke_cli(server, "keys", "list", a.account_id, "--json")))
    assert [k["AccessKeyId"] for k in keys] == [made["AccessKeyId"]]
    assert all("SecretAccessKey" not in k for k in keys)
    _refused(
        stoke_cli(server, "keys", "revoke", a.account_id, a.access_key_id),
        "ResourceNotFoundException",
        f"The Access Key with id {a.access_key_id} cannot be found.",
    )
    # The admin's last key stays.
    admin_key, _ = server.credentials()
    if len(json.loads(_ok(stoke_cli(server, "keys", "list", "admin", "--json")))) == 1:
        _refused(
            stoke_cli(server, "keys", "revoke", "admin", admin_key),
            "InvalidParameterValueException",
            "The admin account's last access key cannot be revoked",
        )
    # Deleting the account revokes its keys at once too.
    _ok(stoke_cli(server, "accounts", "delete", a.account_id))
    with expect_error("UnrecognizedClientException", 403, INVALID_TOKEN):
        second.list_functions()


def _contains(path, secret: str) -> bool:
    return path.exists() and secret.encode() in path.read_bytes()


def test_no_secret_is_stored_in_clear(server):
    made = [create_account(server, "sealed") for _ in range(2)]
    # Used once, so that the server has read (and opened) them.
    for a in made:
        a.client(server).list_functions()
    secrets = [a.secret_access_key for a in made] + [server.credentials()[1]]
    if server.store_url is None:
        db = server.data_dir / "stoke.db"
        for f in (db, db.with_name("stoke.db-wal")):
            for s in secrets:
                assert not _contains(f, s), f"a secret is in clear in {f.name}"
        assert (server.data_dir / "stoke.db").exists()
    else:
        # On PostgreSQL: every row of the database, as pg_dump writes them.
        from pg_cluster import session_cluster

        rows = session_cluster().dump(server.store_url)
        assert b"access_keys" in rows, "the dump has the keys' table"
        for s in secrets:
            assert s.encode() not in rows, "a secret is in clear in the database"
    mode = stat.S_IMODE(os.stat(server.data_dir / "master.key").st_mode)
    assert mode == 0o600, oct(mode)
    for s in secrets:
        assert s not in server.log(), "a secret is in the server's log"


def test_a_store_sealed_with_another_master_key_refuses_to_start(tmp_path):
    srv = StokeServer(tmp_path / "sealed")
    srv.start()
    a = create_account(srv, "kept")
    srv.stop()
    key_file = srv.data_dir / "master.key"
    good = key_file.read_text()

    key_file.write_text("00" * 32 + "\n")
    with pytest.raises(AssertionError, match="sealed with another master key"):
        srv.start()
    key_file.write_text(good)
    key_file.chmod(0o644)
    with pytest.raises(AssertionError, match="mode 0644"):
        srv.start()
    key_file.chmod(0o600)
    srv.start()
    assert a.client(srv).list_functions()["Functions"] == []
    srv.stop()

    # STOKE_MASTER_KEY that is not 64 hex characters: a clear error before anything opens.
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOKE_")}
    env["STOKE_MASTER_KEY"] = "not-a-key"
    proc = subprocess.run(
        [str(stoke_bin()), "serve", "--data-dir", str(tmp_path / "env"), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert proc.returncode == 1, proc.stderr
    assert "STOKE_MASTER_KEY is not a master key" in proc.stderr, proc.stderr
    assert "64 hexadecimal characters" in proc.stderr, proc.stderr


def _settings(lam) -> dict:
    return lam.get_account_settings()["AccountLimit"]


def test_limits_per_account_and_the_100_unreserved(server):
    a = create_account(server, "limited")
    b = create_account(server, "unlimited")
    la, lb = a.client(server), b.client(server)
    default = _settings(lb)["ConcurrentExecutions"]
    doc = json.loads(
        _ok(stoke_cli(server, "accounts", "set-limits", a.account_id, "--concurrency", "150"))
    )
    assert doc["ConcurrentExecutions"] == 150 and doc["ConcurrencyIsDefault"] is False
    assert _settings(la)["ConcurrentExecutions"] == 150
    assert _settings(la)["UnreservedConcurrentExecutions"] == 150
    assert _settings(lb)["ConcurrentExecutions"] == default, "another account keeps its own"

    fn = deploy(la, "hello", prefix="acct-reserve")
    with expect_error(
        "InvalidParameterValueException",
        400,
        "Specified ReservedConcurrentExecutions for function decreases account's "
        "UnreservedConcurrentExecution below its minimum value of [100].",
    ):
        la.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=51)
    assert "ReservedConcurrentExecutions" not in la.get_function_concurrency(FunctionName=fn)
    la.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=50)
    assert _settings(la)["UnreservedConcurrentExecutions"] == 100
    shown = json.loads(_ok(stoke_cli(server, "accounts", "show", a.account_id)))
    assert shown["AccountLimit"]["ConcurrentExecutions"] == 150
    assert shown["AccountLimit"]["UnreservedConcurrentExecutions"] == 100
    assert shown["AccountUsage"]["FunctionCount"] == 1
    # A limit the reservations would break is refused, and nothing changes.
    _refused(
        stoke_cli(server, "accounts", "set-limits", a.account_id, "--concurrency", "149"),
        "InvalidParameterValueException",
        "below its minimum value of [100]",
    )
    assert _settings(la)["ConcurrentExecutions"] == 150
    la.delete_function_concurrency(FunctionName=fn)
    doc = json.loads(
        _ok(stoke_cli(server, "accounts", "set-limits", a.account_id, "--concurrency", "default"))
    )
    assert doc["ConcurrencyIsDefault"] is True
    assert _settings(la)["ConcurrentExecutions"] == default
    la.delete_function(FunctionName=fn)


def test_an_account_at_its_limit_is_throttled_and_others_are_not(server):
    a = create_account(server, "busy")
    b = create_account(server, "calm")
    la, lb = a.client(server), b.client(server)
    _ok(stoke_cli(server, "accounts", "set-limits", a.account_id, "--concurrency", "1"))
    _ok(stoke_cli(server, "accounts", "set-limits", b.account_id, "--concurrency", "1"))
    spin = deploy(la, "misbehave", prefix="acct-spin", Timeout=3)
    other_a = deploy(la, "hello", prefix="acct-a-hello")
    hello_b = deploy(lb, "hello", prefix="acct-b-hello")
    # Warm both, so that neither call below waits for a cold start.
    invoke(la, spin, {"mode": "fine"})
    invoke(la, other_a, {"name": "a"})

    done = {}

    def hold_the_slot():
        # The probes below take the slot for a moment too: try until admitted.
        while True:
            try:
                done["r"] = invoke(la, spin, {"mode": "spin"})
                return
            except la.exceptions.TooManyRequestsException:
                time.sleep(0.02)

    t = threading.Thread(target=hold_the_slot)
    t.start()
    try:
        # Probe until the spinning call holds the account's one slot.
        deadline = time.monotonic() + 10
        throttled = None
        while time.monotonic() < deadline and t.is_alive():
            try:
                invoke(la, other_a, {"name": "a"})
            except la.exceptions.TooManyRequestsException as e:
                throttled = e
                break
            time.sleep(0.05)
        assert throttled is not None, "account A's second call was never throttled"
        assert throttled.response["Error"]["Code"] == "TooManyRequestsException"
        assert throttled.response["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert throttled.response.get("Reason") == "ConcurrentInvocationLimitExceeded"
        # Account B, at the same moment, runs its own.
        resp, body = invoke(lb, hello_b, {"name": "b"})
        assert body == {"message": "Hello, b!"}, body
        assert t.is_alive(), "the spinning call should still hold A's slot"
    finally:
        t.join(timeout=20)
    assert done["r"][1].get("errorType") == "Sandbox.Timedout", done
    # A's slot is free again.
    assert invoke(la, other_a, {"name": "a"})[1] == {"message": "Hello, a!"}
