"""Issue 12, shapes and semantics: every response of the operations Stoke serves has AWS's
status and exactly AWS's keys (set equality, not "contains"), and the refusals AWS makes are
made with AWS's error and wording.

Written from the AWS Lambda API reference and boto3 1.44.5's model (`http.responseCode` of
each operation; the members of each output shape). The key sets are read off the wire (a
signed raw request), since boto3 would hide a key that the model does not know. Functions
here are `wasm` functions: not a managed runtime, so no `RuntimeVersionConfig`.

Decisions read from AWS and recorded here:
- ListFunctions and ListVersionsByFunction items leave out State, StateReason,
  StateReasonCode, LastUpdateStatus, LastUpdateStatusReason, LastUpdateStatusReasonCode and
  RuntimeVersionConfig (the ListFunctions reference: "a subset of the FunctionConfiguration
  fields ... use GetFunction").
- CreateFunction with Publish=true answers version 1 (`Version: "1"`) under the function's
  unqualified ARN; UpdateFunctionCode with Publish=true answers the new version under its
  qualified ARN (measured on the live service, as reported in floci-io/floci#2820/#2825).
- DeleteFunction answers 204 (the model's `StatusCode` member is read from the status line).
"""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest
from botocore.exceptions import ClientError

from stoke_e2e import (
    FAST_WAITER,
    REGION,
    ROLE,
    StokeServer,
    create_wasm,
    error_code,
    error_message,
    http_status,
    unique_name,
    wait_active,
    wait_updated,
    wasm_zip,
)

FN = "/2015-03-31/functions"

# The members of FunctionConfiguration Stoke answers for every wasm function (the model's
# shape less what Stoke has no notion of: VPC, layers, file systems, KMS, signing, images).
BASE = {
    "FunctionName",
    "FunctionArn",
    "Runtime",
    "Role",
    "Handler",
    "CodeSize",
    "Description",
    "Timeout",
    "MemorySize",
    "LastModified",
    "CodeSha256",
    "Version",
    "TracingConfig",
    "RevisionId",
    "PackageType",
    "Architectures",
    "EphemeralStorage",
    "SnapStart",
    "LoggingConfig",
}
PENDING = {"State", "StateReason", "StateReasonCode"}
UPDATED = {"State", "LastUpdateStatus"}
UPDATING = {"State", "LastUpdateStatus", "LastUpdateStatusReason", "LastUpdateStatusReasonCode"}
ALIAS = {"AliasArn", "Name", "FunctionVersion", "Description", "RevisionId"}
EVENT_CONFIG = {"LastModified", "FunctionArn", "DestinationConfig"}


def _q(s: str) -> str:
    return urllib.parse.quote(s, safe="")


def _call(server, method: str, path: str, body=None):
    data = b"" if body is None else json.dumps(body).encode()
    return server.signed_request(method, path, data)


def _ok(server, method: str, path: str, body=None, status: int = 200):
    r = _call(server, method, path, body)
    assert r.status == status, (method, path, r.status, r.body[:500])
    return r.json() if r.body else None


def _list_all(server, query: str = "MaxItems=50") -> list[dict]:
    """Every item of ListFunctions, page by page, off the wire (each page's keys checked)."""
    items = []
    marker = None
    while True:
        path = f"{FN}/?{query}" + (f"&Marker={_q(marker)}" if marker else "")
        page = _ok(server, "GET", path)
        assert set(page) <= {"Functions", "NextMarker"}, page.keys()
        assert len(page["Functions"]) <= 50
        items += page["Functions"]
        marker = page.get("NextMarker")
        if not marker:
            return items


def _arn(account_id: str, name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{account_id}:function:{name}"


@pytest.fixture(scope="module")
def fn(lam):
    """An Active function with one published version and nothing else set."""
    name = unique_name("shape")
    create_wasm(lam, name)
    wait_active(lam, name)
    lam.publish_version(FunctionName=name)
    return name


# --------------------------------------------------------------------------------------------
# Functions
# --------------------------------------------------------------------------------------------


def test_create_get_and_update_answer_exactly_awss_keys(server, lam):
    name = unique_name("shape-cr")
    zip_b64 = base64.b64encode(wasm_zip()).decode()
    create = {
        "FunctionName": name,
        "Runtime": "wasm",
        "Role": ROLE,
        "Handler": "hello.wasm",
        "Code": {"ZipFile": zip_b64},
    }
    created = _ok(server, "POST", FN, create, status=201)
    assert set(created) == BASE | PENDING, created
    assert (created["State"], created["StateReasonCode"]) == ("Pending", "Creating")
    wait_active(lam, name)

    cases = [
        ("GetFunctionConfiguration", f"{FN}/{name}/configuration", BASE | UPDATED),
        ("$LATEST named", f"{FN}/{name}/configuration?Qualifier=%24LATEST", BASE | UPDATED),
    ]
    for label, path, keys in cases:
        got = _ok(server, "GET", path)
        assert set(got) == keys, (label, got)
    got = _ok(server, "GET", f"{FN}/{name}")
    assert set(got) == {"Configuration", "Code"}, got
    assert set(got["Code"]) == {"RepositoryType", "Location"}, got["Code"]
    assert set(got["Configuration"]) == BASE | UPDATED

    updated = _ok(server, "PUT", f"{FN}/{name}/configuration", {"Timeout": 5})
    assert set(updated) == BASE | UPDATING, updated
    assert updated["LastUpdateStatus"] == "InProgress"
    wait_updated(lam, name)
    zipped = _ok(server, "PUT", f"{FN}/{name}/code", {"ZipFile": zip_b64})
    assert set(zipped) == BASE | UPDATING, zipped
    wait_updated(lam, name)
    r = _call(server, "DELETE", f"{FN}/{name}")
    assert (r.status, r.body) == (204, b"")


@pytest.mark.parametrize(
    "given, shown",
    [
        (None, None),
        ({}, {"Variables": {}}),
        ({"Variables": {}}, {"Variables": {}}),
        ({"Variables": {"AA": "1"}}, {"Variables": {"AA": "1"}}),
    ],
    ids=["absent", "no-variables", "empty-variables", "one-variable"],
)
def test_environment_is_echoed_as_given(server, lam, given, shown):
    name = unique_name("shape-env")
    kw = {} if given is None else {"Environment": given}
    created = create_wasm(lam, name, **kw)
    assert created.get("Environment") == shown, created
    wait_active(lam, name)
    raw = _ok(server, "GET", f"{FN}/{name}/configuration")
    assert raw.get("Environment") == shown, raw
    assert ("Environment" in raw) == (shown is not None)
    listed = [f for f in _list_all(server) if f["FunctionName"] == name]
    assert [f.get("Environment") for f in listed] == [shown]
    # Clearing the variables with an update leaves `{"Variables": {}}`, as AWS shows it.
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {}})
    wait_updated(lam, name)
    assert _ok(server, "GET", f"{FN}/{name}/configuration")["Environment"] == {"Variables": {}}
    lam.delete_function(FunctionName=name)


def test_list_items_leave_out_state_and_update_status(server, fn, account_id):
    # MaxItems above 50 still answers 50 at most a page (checked in `_list_all`).
    mine = [f for f in _list_all(server, "MaxItems=10000") if f["FunctionName"] == fn]
    assert len(mine) == 1
    assert set(mine[0]) == BASE, mine[0]
    assert mine[0]["FunctionArn"] == _arn(account_id, fn)
    assert mine[0]["Version"] == "$LATEST"

    versions = _ok(server, "GET", f"{FN}/{fn}/versions")
    assert set(versions) == {"Versions"}, versions.keys()
    assert [v["Version"] for v in versions["Versions"]] == ["$LATEST", "1"]
    for v in versions["Versions"]:
        assert set(v) == BASE, v
    assert [v["FunctionArn"] for v in versions["Versions"]] == [
        f"{_arn(account_id, fn)}:$LATEST",
        f"{_arn(account_id, fn)}:1",
    ]


def test_list_functions_all_versions_is_every_version_paginated(server, lam, fn, account_id):
    seen = []
    for f in _list_all(server, "FunctionVersion=ALL&MaxItems=7"):
        # Other tests' functions may have been given an Environment; ours was not.
        keys = BASE if f["FunctionName"] == fn else BASE | ({"Environment"} & set(f))
        assert set(f) == keys, f
        seen.append((f["FunctionName"], f["Version"], f["FunctionArn"]))
    mine = [s for s in seen if s[0] == fn]
    assert mine == [
        (fn, "$LATEST", f"{_arn(account_id, fn)}:$LATEST"),
        (fn, "1", f"{_arn(account_id, fn)}:1"),
    ], mine
    assert len(seen) == len(set(seen)), "an item was listed twice"
    # boto3's paginator walks the same items, without the qualifier-less ones.
    via_boto = [
        (f["FunctionName"], f["Version"])
        for p in lam.get_paginator("list_functions").paginate(FunctionVersion="ALL")
        for f in p["Functions"]
        if f["FunctionName"] == fn
    ]
    assert via_boto == [(fn, "$LATEST"), (fn, "1")]
    # Without ALL, only `$LATEST`, under its unqualified ARN.
    latest = [f for p in lam.get_paginator("list_functions").paginate() for f in p["Functions"]]
    assert [(f["Version"], f["FunctionArn"]) for f in latest if f["FunctionName"] == fn] == [
        ("$LATEST", _arn(account_id, fn))
    ]


def test_publish_on_create_and_on_update_code(server, lam, account_id):
    name = unique_name("shape-pub")
    created = create_wasm(lam, name, Publish=True)
    assert (created["Version"], created["FunctionArn"]) == ("1", _arn(account_id, name))
    wait_active(lam, name)
    lam.get_waiter("function_active_v2").wait(
        FunctionName=name, Qualifier="1", WaiterConfig=FAST_WAITER
    )
    updated = lam.update_function_code(
        FunctionName=name, ZipFile=wasm_zip(extra={"x.txt": b"2"}), Publish=True
    )
    assert (updated["Version"], updated["FunctionArn"]) == ("2", f"{_arn(account_id, name)}:2")
    wait_updated(lam, name)
    # `$LATEST` itself is still `$LATEST`, unqualified.
    got = lam.get_function_configuration(FunctionName=name)
    assert (got["Version"], got["FunctionArn"]) == ("$LATEST", _arn(account_id, name))
    published = _ok(server, "POST", f"{FN}/{name}/versions", {}, status=201)
    assert set(published) == BASE | UPDATED, published
    lam.delete_function(FunctionName=name)


# --------------------------------------------------------------------------------------------
# Aliases, tags, event-invoke configs, concurrency, account settings: statuses and keys
# --------------------------------------------------------------------------------------------


def test_statuses_and_keys_of_the_other_operations(server, lam, fn, account_id):
    arn = _q(_arn(account_id, fn))
    base = f"{FN}/{fn}"
    cfg = f"/2019-09-25/functions/{fn}/event-invoke-config"
    put_c = f"/2017-10-31/functions/{fn}/concurrency"
    get_c = f"/2019-09-30/functions/{fn}/concurrency"
    settings = "/2016-08-19/account-settings/"
    reserved = {"ReservedConcurrentExecutions"}
    live = {"Name": "live", "FunctionVersion": "1"}
    three = {"ReservedConcurrentExecutions": 3}
    get_keys = {"Configuration", "Code", "Concurrency"}
    steps = [
        # (operation, method, path, body, status, keys of the answer or None for no body)
        ("CreateAlias", "POST", f"{base}/aliases", live, 201, ALIAS),
        ("GetAlias", "GET", f"{base}/aliases/live", None, 200, ALIAS),
        ("UpdateAlias", "PUT", f"{base}/aliases/live", {"Description": "d"}, 200, ALIAS),
        ("ListAliases", "GET", f"{base}/aliases", None, 200, {"Aliases"}),
        ("DeleteAlias", "DELETE", f"{base}/aliases/live", None, 204, None),
        ("DeleteAlias (gone)", "DELETE", f"{base}/aliases/live", None, 204, None),
        ("TagResource", "POST", f"/2017-03-31/tags/{arn}", {"Tags": {"a": "1"}}, 204, None),
        ("ListTags", "GET", f"/2017-03-31/tags/{arn}", None, 200, {"Tags"}),
        ("UntagResource", "DELETE", f"/2017-03-31/tags/{arn}?tagKeys=a", None, 204, None),
        (
            "PutFunctionEventInvokeConfig",
            "PUT",
            cfg,
            {"MaximumRetryAttempts": 1},
            200,
            EVENT_CONFIG | {"MaximumRetryAttempts"},
        ),
        (
            "UpdateFunctionEventInvokeConfig",
            "POST",
            cfg,
            {"MaximumEventAgeInSeconds": 60},
            200,
            EVENT_CONFIG | {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"},
        ),
        (
            "GetFunctionEventInvokeConfig",
            "GET",
            cfg,
            None,
            200,
            EVENT_CONFIG | {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"},
        ),
        (
            "ListFunctionEventInvokeConfigs",
            "GET",
            f"{cfg}/list",
            None,
            200,
            {"FunctionEventInvokeConfigs"},
        ),
        ("DeleteFunctionEventInvokeConfig", "DELETE", f"{cfg}", None, 204, None),
        ("PutFunctionConcurrency", "PUT", put_c, three, 200, reserved),
        ("GetFunctionConcurrency", "GET", get_c, None, 200, reserved),
        ("GetFunction (reserved)", "GET", base, None, 200, get_keys),
        ("GetAccountSettings", "GET", settings, None, 200, {"AccountLimit", "AccountUsage"}),
        ("DeleteFunctionConcurrency", "DELETE", put_c, None, 204, None),
        ("GetFunctionConcurrency (none)", "GET", get_c, None, 200, set()),
    ]
    for op, method, path, body, status, keys in steps:
        r = _call(server, method, path, body)
        assert r.status == status, (op, r.status, r.body[:300])
        if keys is None:
            assert r.body == b"", (op, r.body[:300])
        else:
            assert set(r.json()) == keys, (op, r.json())
        if op == "GetAccountSettings":
            limit = r.json()["AccountLimit"]
            assert set(limit) == {
                "TotalCodeSize",
                "CodeSizeUnzipped",
                "CodeSizeZipped",
                "ConcurrentExecutions",
                "UnreservedConcurrentExecutions",
            }
            assert set(r.json()["AccountUsage"]) == {"TotalCodeSize", "FunctionCount"}
            # The 3 reserved above are not in the unreserved pool.
            assert limit["UnreservedConcurrentExecutions"] <= limit["ConcurrentExecutions"] - 3


# --------------------------------------------------------------------------------------------
# Refusals: AWS's error, status and wording
# --------------------------------------------------------------------------------------------

MIN_UNRESERVED = (
    "Specified ReservedConcurrentExecutions for function decreases account's "
    "UnreservedConcurrentExecution below its minimum value of [100]."
)
NOTHING_TO_SET = "You must specify at least one of error handling or destination setting."


def _refusals(fn: str, account_id: str, missing: str):
    arn = _arn(account_id, fn)
    return [
        # (case, boto3 call on the client without parameter validation, status, code, message)
        (
            "TagResource with no tags",
            lambda c: c.tag_resource(Resource=arn, Tags={}),
            400,
            "InvalidParameterValueException",
            "An error occurred and the request cannot be processed.",
        ),
        (
            "PutFunctionEventInvokeConfig with nothing to set",
            lambda c: c.put_function_event_invoke_config(FunctionName=fn),
            400,
            "InvalidParameterValueException",
            NOTHING_TO_SET,
        ),
        (
            "UpdateFunctionEventInvokeConfig with nothing to set",
            lambda c: c.update_function_event_invoke_config(FunctionName=fn),
            400,
            "InvalidParameterValueException",
            NOTHING_TO_SET,
        ),
        (
            "a destination function that does not exist",
            lambda c: c.put_function_event_invoke_config(
                FunctionName=fn,
                DestinationConfig={"OnFailure": {"Destination": _arn(account_id, missing)}},
            ),
            400,
            "InvalidParameterValueException",
            f"The destination ARN {_arn(account_id, missing)} is invalid.",
        ),
        (
            "the function as its own destination",
            lambda c: c.put_function_event_invoke_config(
                FunctionName=fn, DestinationConfig={"OnSuccess": {"Destination": arn}}
            ),
            400,
            "InvalidParameterValueException",
            "You can't specify the function as a destination for itself.",
        ),
        (
            "the function as its own destination, on update",
            lambda c: c.update_function_event_invoke_config(
                FunctionName=fn, DestinationConfig={"OnFailure": {"Destination": f"{arn}:1"}}
            ),
            400,
            "InvalidParameterValueException",
            "You can't specify the function as a destination for itself.",
        ),
        (
            "reserved concurrency past the unreserved minimum",
            lambda c: c.put_function_concurrency(
                FunctionName=fn, ReservedConcurrentExecutions=901
            ),
            400,
            "InvalidParameterValueException",
            MIN_UNRESERVED,
        ),
        (
            "ListFunctions with a FunctionVersion other than ALL",
            lambda c: c.list_functions(FunctionVersion="LATEST"),
            400,
            "ValidationException",
            "1 validation error detected: Value 'LATEST' at 'functionVersion' failed to satisfy "
            "constraint: Member must satisfy enum value set: [ALL]",
        ),
    ]


def test_refusals_are_awss(server, lam, lam_raw, fn, account_id):
    missing = unique_name("shape-missing")
    # An update needs a configuration to merge into, so the update cases have one.
    lam.put_function_event_invoke_config(FunctionName=fn, MaximumRetryAttempts=2)
    try:
        for case, call, status, code, message in _refusals(fn, account_id, missing):
            with pytest.raises(ClientError) as ei:
                call(lam_raw)
            e = ei.value
            got = (http_status(e), error_code(e), error_message(e))
            assert got == (status, code, message), (case, got)
            # The body's Type, where the body carries AWS's shape.
            if "Type" in e.response:
                assert e.response["Type"] == "User", (case, e.response)
        # Nothing was changed by the refused calls.
        cfg = lam.get_function_event_invoke_config(FunctionName=fn)
        assert cfg["MaximumRetryAttempts"] == 2
        assert cfg["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}
        assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=fn)
        assert lam.list_tags(Resource=_arn(account_id, fn))["Tags"] == {}
    finally:
        lam.delete_function_event_invoke_config(FunctionName=fn)


def test_reserved_concurrency_may_leave_exactly_the_minimum(lam, fn):
    limit = lam.get_account_settings()["AccountLimit"]
    room = limit["UnreservedConcurrentExecutions"] - 100
    assert room >= 1, limit
    try:
        put = lam.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=room)
        assert put["ReservedConcurrentExecutions"] == room
        after = lam.get_account_settings()["AccountLimit"]
        assert after["UnreservedConcurrentExecutions"] == 100, after
        # Replacing the function's own reservation counts it once, not twice.
        again = lam.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=room)
        assert again["ReservedConcurrentExecutions"] == room
        with pytest.raises(ClientError) as ei:
            lam.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=room + 1)
        assert (http_status(ei.value), error_code(ei.value), error_message(ei.value)) == (
            400,
            "InvalidParameterValueException",
            MIN_UNRESERVED,
        )
    finally:
        lam.delete_function_concurrency(FunctionName=fn)
    assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == (
        limit["UnreservedConcurrentExecutions"]
    )


def test_a_small_account_keeps_all_of_its_concurrency_unreserved(tmp_path_factory):
    """GetAccountSettings reports the server's own concurrency (`--concurrency`), and an
    account of less than 100 keeps all of it unreserved, as AWS words it for such accounts
    ("below its minimum value of [50]")."""
    srv = StokeServer(tmp_path_factory.mktemp("stoke-small"), extra_args=["--concurrency", "50"])
    srv.start()
    try:
        lam = srv.client()
        limit = lam.get_account_settings()["AccountLimit"]
        assert (limit["ConcurrentExecutions"], limit["UnreservedConcurrentExecutions"]) == (50, 50)
        name = unique_name("shape-small")
        create_wasm(lam, name)
        wait_active(lam, name)
        with pytest.raises(ClientError) as ei:
            lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
        assert (http_status(ei.value), error_code(ei.value), error_message(ei.value)) == (
            400,
            "InvalidParameterValueException",
            MIN_UNRESERVED.replace("[100]", "[50]"),
        )
        # Reserving 0 (throttling the function) leaves the 50 unreserved: allowed.
        put = lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
        assert put["ReservedConcurrentExecutions"] == 0
        assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 50
    finally:
        srv.stop()
