"""Cross-account calls with three accounts, as on AWS Lambda: an owner lets a friend call its
function through an alias; a stranger is let in nowhere.

- the friend invokes `arn:aws:lambda:REGION:OWNER:function:NAME:ALIAS` (and the ARN with
  `Qualifier`), sync and async; the call runs as the owner's: its logs and its record are the
  owner's (the record names both accounts), it counts against the owner's concurrency;
- the grant is the alias's only: the version behind it, `$LATEST` and the unqualified function
  are refused, and so is every read (GetFunction, GetFunctionConfiguration, GetPolicy,
  ListAliases, the logs) unless a statement grants it; ListFunctions shows the caller's own;
- a refusal is `AccessDeniedException` naming the caller and the action, the same for a
  function that does not exist, and leaves nothing behind (no log line, no record, no event);
- RemovePermission revokes at once: the next call is refused.
"""

from __future__ import annotations

import json
import time

import pytest

from accounts import create_account
from stoke_e2e import REGION, create_wasm, error_message, expect_error, http_get, wait_active
from stoke_guests import code_answer, constant_zip, deploy, deploy_constant, invoke


@pytest.fixture(scope="module")
def owner(server):
    return create_account(server, "xa-owner")


@pytest.fixture(scope="module")
def friend(server):
    return create_account(server, "xa-friend")


@pytest.fixture(scope="module")
def stranger(server):
    return create_account(server, "xa-stranger")


@pytest.fixture(scope="module")
def olam(server, owner):
    return owner.client(server)


@pytest.fixture(scope="module")
def flam(server, friend):
    return friend.client(server)


@pytest.fixture(scope="module")
def slam(server, stranger):
    return stranger.client(server)


@pytest.fixture
def shared(olam, friend):
    """The owner's function (`hello`): version 1, alias `prod` → 1, $LATEST changed after it
    (so each answers differently), and a grant of lambda:InvokeFunction on `prod` to the
    friend. Returns (name, unqualified ARN)."""
    name = deploy(olam, "hello", prefix="xa")
    olam.publish_version(FunctionName=name)
    olam.create_alias(FunctionName=name, Name="prod", FunctionVersion="1")
    olam.add_permission(
        FunctionName=name,
        Qualifier="prod",
        StatementId="friend-invokes",
        Action="lambda:InvokeFunction",
        Principal=friend.account_id,
    )
    arn = olam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    return name, arn


def denied(caller, action: str, resource: str) -> str:
    return (
        f"User: arn:aws:iam::{caller.account_id}:root is not authorized to perform: {action} "
        f"on resource: {resource} because no resource-based policy allows the {action} action"
    )


def owner_logs(server, owner, name: str) -> list[str]:
    logs = owner.client(server, "logs")
    out = []
    for page in logs.get_paginator("filter_log_events").paginate(
        logGroupName=f"/aws/lambda/{name}"
    ):
        out.extend(e["message"] for e in page.get("events", []))
    return out


def reports_of(server, owner, name: str, rid: str) -> list[str]:
    """The REPORT lines of request `rid` in the owner's log of `name`."""
    report = f"REPORT RequestId: {rid}"
    return [m for m in owner_logs(server, owner, name) if m.startswith(report)]


def wait_for(what, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def records(server, owner, name: str) -> list[tuple[str, str, str]]:
    """(request id, owner, caller) of each invocation record of the owner's function, read
    from the server's store (read-only)."""
    return server.store_rows(
        "SELECT request_id, account_id, caller_account_id FROM invocations "
        "WHERE account_id = ? AND function_name = ?",
        (owner.account_id, name),
    )


def test_a_granted_alias_runs_as_the_owners(server, owner, friend, olam, flam, shared):
    name, arn = shared
    resp, body = invoke(flam, f"{arn}:prod", {"name": "friend"}, LogType="Tail")
    assert resp["StatusCode"] == 200
    assert body == {"message": "Hello, friend!"}
    assert resp["ExecutedVersion"] == "1"
    rid = resp["ResponseMetadata"]["RequestId"]
    # The unqualified ARN with Qualifier is the same call.
    resp2, body2 = invoke(flam, arn, {"name": "again"}, Qualifier="prod")
    assert body2 == {"message": "Hello, again!"}
    # The lines are the owner's, the record is the owner's and names the friend.
    lines = wait_for(lambda: reports_of(server, owner, name, rid))
    assert lines, owner_logs(server, owner, name)
    recs = wait_for(lambda: [r for r in records(server, owner, name) if r[0] == rid])
    assert recs == [(rid, owner.account_id, friend.account_id)]
    # The owner's own call is recorded as its own.
    own, _ = invoke(olam, f"{name}:prod", {"name": "owner"})
    own_rid = own["ResponseMetadata"]["RequestId"]
    recs = wait_for(lambda: [r for r in records(server, owner, name) if r[0] == own_rid])
    assert recs == [(own_rid, owner.account_id, owner.account_id)]


def test_the_grant_is_the_aliases_only(flam, friend, owner, shared):
    name, arn = shared
    for target, kw, addressed in [
        (f"{arn}:1", {}, f"{arn}:1"),
        (f"{arn}:$LATEST", {}, f"{arn}:$LATEST"),
        (arn, {}, arn),
        (arn, {"Qualifier": "1"}, f"{arn}:1"),
        (f"{owner.account_id}:function:{name}", {}, arn),
    ]:
        with expect_error("AccessDeniedException", 403) as ei:
            invoke(flam, target, {"name": "x"}, **kw)
        assert error_message(ei.value) == denied(friend, "lambda:InvokeFunction", addressed)


def test_a_stranger_is_refused_and_nothing_happens(server, owner, olam, slam, stranger, shared):
    name, arn = shared
    invoke(olam, f"{name}:prod", {"name": "before"})
    before_logs = wait_for(lambda: owner_logs(server, owner, name))
    before_records = wait_for(lambda: records(server, owner, name))
    for kind in ["RequestResponse", "Event", "DryRun"]:
        with expect_error("AccessDeniedException", 403) as ei:
            slam.invoke(FunctionName=f"{arn}:prod", InvocationType=kind, Payload=b"{}")
        assert error_message(ei.value) == denied(
            stranger, "lambda:InvokeFunction", f"{arn}:prod"
        )
        assert ei.value.response["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-errortype") == (
            "AccessDeniedException"
        )
    # A function that does not exist is refused in the same words: nothing says it is absent.
    ghost = f"arn:aws:lambda:{REGION}:{owner.account_id}:function:xa-no-such-function"
    with expect_error("AccessDeniedException", 403) as ei:
        slam.invoke(FunctionName=f"{ghost}:prod", Payload=b"{}")
    assert error_message(ei.value) == denied(stranger, "lambda:InvokeFunction", f"{ghost}:prod")
    # Nothing ran, nothing was queued or logged, for the owner or the stranger.
    time.sleep(1.0)
    assert owner_logs(server, owner, name) == before_logs
    assert records(server, owner, name) == before_records
    queued = server.store_rows(
        "SELECT COUNT(*) FROM async_events WHERE account_id = ? AND function_name = ?",
        (owner.account_id, name),
    )[0][0]
    strangers = server.store_rows(
        "SELECT COUNT(*) FROM invocations WHERE account_id = ? OR caller_account_id = ?",
        (stranger.account_id, stranger.account_id),
    )[0][0]
    assert (int(queued), int(strangers)) == (0, 0)


def test_code_configuration_policy_aliases_and_logs_stay_the_owners(
    server, owner, friend, olam, flam, shared
):
    name, arn = shared
    reads = [
        (
            "lambda:GetFunction",
            f"{arn}:prod",
            lambda: flam.get_function(FunctionName=f"{arn}:prod"),
        ),
        ("lambda:GetFunction", arn, lambda: flam.get_function(FunctionName=arn)),
        (
            "lambda:GetFunctionConfiguration",
            f"{arn}:prod",
            lambda: flam.get_function_configuration(FunctionName=arn, Qualifier="prod"),
        ),
        ("lambda:GetPolicy", f"{arn}:prod", lambda: flam.get_policy(FunctionName=f"{arn}:prod")),
        ("lambda:ListAliases", arn, lambda: flam.list_aliases(FunctionName=arn)),
        ("lambda:GetAlias", arn, lambda: flam.get_alias(FunctionName=arn, Name="prod")),
        (
            "lambda:ListVersionsByFunction",
            arn,
            lambda: flam.list_versions_by_function(FunctionName=arn),
        ),
        (
            "lambda:UpdateFunctionCode",
            arn,
            lambda: flam.update_function_code(FunctionName=arn, ZipFile=b"PK"),
        ),
        ("lambda:DeleteFunction", arn, lambda: flam.delete_function(FunctionName=arn)),
        (
            "lambda:AddPermission",
            f"{arn}:prod",
            lambda: flam.add_permission(
                FunctionName=f"{arn}:prod", StatementId="me", Action="lambda:*", Principal="*"
            ),
        ),
        (
            "lambda:RemovePermission",
            f"{arn}:prod",
            lambda: flam.remove_permission(
                FunctionName=f"{arn}:prod", StatementId="friend-invokes"
            ),
        ),
    ]
    for action, resource, call in reads:
        with expect_error("AccessDeniedException", 403) as ei:
            call()
        assert error_message(ei.value) == denied(friend, action, resource), action
    # The owner's function is not among the friend's, nor are its logs.
    assert name not in {f["FunctionName"] for f in flam.list_functions()["Functions"]}
    with expect_error("ResourceNotFoundException", 400) as ei:
        friend.client(server, "logs").filter_log_events(logGroupName=f"/aws/lambda/{name}")
    assert error_message(ei.value) == "The specified log group does not exist."
    # The function and its policy are as they were.
    assert olam.get_function(FunctionName=name)["Configuration"]["FunctionArn"] == arn
    doc = json.loads(olam.get_policy(FunctionName=name, Qualifier="prod")["Policy"])
    assert [s["Sid"] for s in doc["Statement"]] == ["friend-invokes"]


def test_a_read_is_the_callers_once_a_statement_grants_it(owner, friend, olam, flam, shared):
    name, arn = shared
    olam.add_permission(
        FunctionName=name,
        Qualifier="prod",
        StatementId="friend-reads",
        Action="lambda:GetFunctionConfiguration",
        Principal=f"arn:aws:iam::{friend.account_id}:root",
    )
    cfg = flam.get_function_configuration(FunctionName=f"{arn}:prod")
    assert cfg["FunctionArn"] == f"{arn}:prod"
    assert cfg["Version"] == "1"
    # That action only: the code (GetFunction) stays the owner's.
    with expect_error("AccessDeniedException", 403) as ei:
        flam.get_function(FunctionName=f"{arn}:prod")
    assert error_message(ei.value) == denied(friend, "lambda:GetFunction", f"{arn}:prod")
    # Until it is granted too: then the code's URL is the friend's to fetch.
    olam.add_permission(
        FunctionName=name,
        Qualifier="prod",
        StatementId="friend-reads-code",
        Action="lambda:GetFunction",
        Principal=friend.account_id,
    )
    got = flam.get_function(FunctionName=f"{arn}:prod")
    assert got["Configuration"]["FunctionArn"] == f"{arn}:prod"
    code = http_get(got["Code"]["Location"])
    assert code.status == 200 and code.body[:2] == b"PK", code.status


def test_an_async_call_runs_and_logs_as_the_owners(server, owner, friend, flam, shared):
    name, arn = shared
    resp = flam.invoke(
        FunctionName=f"{arn}:prod", InvocationType="Event", Payload=b'{"name": "later"}'
    )
    assert resp["StatusCode"] == 202
    rid = resp["ResponseMetadata"]["RequestId"]
    lines = wait_for(lambda: reports_of(server, owner, name, rid))
    assert lines, owner_logs(server, owner, name)
    assert any("saying hello to later" in m for m in owner_logs(server, owner, name))
    # The owner's record, naming the account that queued the event.
    recs = wait_for(lambda: [r for r in records(server, owner, name) if r[0] == rid])
    assert recs == [(rid, owner.account_id, friend.account_id)]


def test_the_call_counts_against_the_owners_concurrency(olam, flam, shared):
    name, arn = shared
    olam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with expect_error("TooManyRequestsException", 429):
        invoke(flam, f"{arn}:prod", {"name": "x"})
    olam.delete_function_concurrency(FunctionName=name)
    assert invoke(flam, f"{arn}:prod", {"name": "x"})[1] == {"message": "Hello, x!"}


def test_a_function_of_the_same_name_in_the_callers_account_is_its_own(olam, flam, owner):
    name = deploy_constant(olam, "owner's", prefix="xa-same")
    zip_bytes = constant_zip(json.dumps(code_answer("friend's")))
    create_wasm(flam, name, zip_bytes=zip_bytes, Handler="main.wasm")
    wait_active(flam, name)
    olam.add_permission(
        FunctionName=name, StatementId="all", Action="lambda:InvokeFunction", Principal="*"
    )
    owners = f"arn:aws:lambda:{REGION}:{owner.account_id}:function:{name}"
    # A bare name is the caller's own; the owner's ARN is the owner's, run in its sandboxes.
    assert invoke(flam, name, {})[1] == code_answer("friend's")
    assert invoke(flam, owners, {})[1] == code_answer("owner's")
    # A grant on the function is one on $LATEST too (they share the function's policy).
    assert invoke(flam, f"{owners}:$LATEST", {})[1] == code_answer("owner's")
    assert invoke(olam, name, {})[1] == code_answer("owner's")
    assert invoke(flam, name, {})[1] == code_answer("friend's")


def test_a_service_principal_lets_no_account_in(olam, flam, friend):
    name = deploy_constant(olam, "svc", prefix="xa-svc")
    olam.add_permission(
        FunctionName=name,
        StatementId="rules",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
    )
    arn = olam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    with expect_error("AccessDeniedException", 403) as ei:
        invoke(flam, arn, {})
    assert error_message(ei.value) == denied(friend, "lambda:InvokeFunction", arn)


def test_a_grant_with_a_source_condition_lets_no_direct_call_in(olam, flam, friend, owner):
    # An account's own call comes from no service's resource: `AWS:SourceAccount` and
    # `AWS:SourceArn` are absent from it, so a statement that requires them never matches.
    name = deploy_constant(olam, "src", prefix="xa-src")
    arn = olam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    for sid, extra in [
        ("by-account", dict(SourceAccount=friend.account_id)),
        ("by-arn", dict(SourceArn=f"arn:aws:events:{REGION}:{friend.account_id}:rule/*")),
    ]:
        olam.add_permission(
            FunctionName=name,
            StatementId=sid,
            Action="lambda:InvokeFunction",
            Principal=friend.account_id,
            **extra,
        )
        with expect_error("AccessDeniedException", 403) as ei:
            invoke(flam, arn, {})
        assert error_message(ei.value) == denied(friend, "lambda:InvokeFunction", arn)
        olam.remove_permission(FunctionName=name, StatementId=sid)
    # The same grant without the condition lets the call in.
    olam.add_permission(
        FunctionName=name,
        StatementId="plain",
        Action="lambda:InvokeFunction",
        Principal=friend.account_id,
    )
    resp, body = invoke(flam, arn, {})
    assert resp["StatusCode"] == 200 and body == code_answer("src"), (resp, body)


def test_a_revoked_grant_is_refused_on_the_next_call(olam, flam, friend, shared):
    name, arn = shared
    assert invoke(flam, f"{arn}:prod", {"name": "one"})[1] == {"message": "Hello, one!"}
    olam.remove_permission(FunctionName=name, Qualifier="prod", StatementId="friend-invokes")
    with expect_error("AccessDeniedException", 403) as ei:
        invoke(flam, f"{arn}:prod", {"name": "two"})
    assert error_message(ei.value) == denied(friend, "lambda:InvokeFunction", f"{arn}:prod")
