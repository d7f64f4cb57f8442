"""Versions, as AWS Lambda's: PublishVersion (and `Publish=True` on CreateFunction and
UpdateFunctionCode), ListVersionsByFunction, GetFunction/GetFunctionConfiguration/Invoke with a
`Qualifier`, DeleteFunction of one version, and what a version keeps when $LATEST changes.

Functions here answer a constant that names their code (`deploy_constant` in stoke_guests.py),
or, to see a version's configuration from the inside, are the `context` guest (which answers its
environment and its `Context`, including the version that runs).

Expected answers follow the Lambda API reference; the error messages are those AWS sends.
"""

from __future__ import annotations

import json

from stoke_e2e import (
    FAST_WAITER,
    config_of,
    error_message,
    expect_error,
    sha256_b64,
    unique_name,
    wait_updated,
)
from stoke_guests import (
    code_answer,
    constant_zip,
    deploy,
    deploy_constant,
    invoke,
)

PRECONDITION_MESSAGE = (
    "The Revision Id provided does not match the latest Revision Id. "
    "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
)

# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def code_zip(tag: str, handler: str = "main.wasm") -> bytes:
    return constant_zip(json.dumps(code_answer(tag)), handler)


def update_code(lam, name: str, tag: str, **kw) -> dict:
    """UpdateFunctionCode to the module answering `tag`; waits until the update is done."""
    lam.update_function_code(FunctionName=name, ZipFile=code_zip(tag), **kw)
    cfg = wait_updated(lam, name)["Configuration"]
    assert cfg["LastUpdateStatus"] == "Successful", cfg
    return cfg


def update_env(lam, name: str, **variables) -> dict:
    lam.update_function_configuration(
        FunctionName=name, Environment={"Variables": dict(variables)}
    )
    cfg = wait_updated(lam, name)["Configuration"]
    assert cfg["LastUpdateStatus"] == "Successful", cfg
    return cfg


def publish(lam, name: str, **kw) -> dict:
    resp = lam.publish_version(FunctionName=name, **kw)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201, resp["ResponseMetadata"]
    return config_of(resp)


def wait_version_active(lam, name: str, version: str) -> dict:
    lam.get_waiter("function_active_v2").wait(
        FunctionName=name, Qualifier=version, WaiterConfig=FAST_WAITER
    )
    return lam.get_function_configuration(FunctionName=name, Qualifier=version)


def all_versions(lam, name: str) -> list[dict]:
    out = []
    for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=name):
        out.extend(page["Versions"])
    return out


def version_numbers(lam, name: str) -> list[str]:
    return [v["Version"] for v in all_versions(lam, name)]


def unqualified_arn(lam, name: str) -> str:
    return lam.get_function_configuration(FunctionName=name)["FunctionArn"]


def assert_not_found(lam, name: str, qualifier: str) -> None:
    arn = f"{unqualified_arn(lam, name)}:{qualifier}"
    with expect_error("ResourceNotFoundException", 404) as ei:
        lam.get_function(FunctionName=name, Qualifier=qualifier)
    assert error_message(ei.value) == f"Function not found: {arn}", error_message(ei.value)
    with expect_error("ResourceNotFoundException", 404):
        lam.get_function_configuration(FunctionName=name, Qualifier=qualifier)
    with expect_error("ResourceNotFoundException", 404):
        lam.invoke(FunctionName=name, Qualifier=qualifier, Payload=b"{}")


# --------------------------------------------------------------------------------------------
# PublishVersion
# --------------------------------------------------------------------------------------------


def test_publish_numbers_versions_from_1_with_qualified_arns(lam):
    name = deploy_constant(lam, "v1", prefix="ver-publish")
    latest = lam.get_function_configuration(FunctionName=name)
    arn = latest["FunctionArn"]
    assert latest["Version"] == "$LATEST", latest
    assert not arn.endswith(":$LATEST"), arn

    v1 = publish(lam, name)
    assert v1["Version"] == "1", v1
    assert v1["FunctionArn"] == f"{arn}:1", v1
    assert v1["FunctionName"] == name, v1
    assert v1["CodeSha256"] == latest["CodeSha256"], v1
    assert (v1["Runtime"], v1["Handler"], v1["MemorySize"], v1["Timeout"]) == (
        latest["Runtime"],
        latest["Handler"],
        latest["MemorySize"],
        latest["Timeout"],
    )
    assert v1["RevisionId"], v1
    assert v1["State"] in ("Pending", "Active"), v1

    update_code(lam, name, "v2")
    v2 = publish(lam, name)
    assert v2["Version"] == "2", v2
    assert v2["FunctionArn"] == f"{arn}:2", v2
    assert v2["CodeSha256"] == sha256_b64(code_zip("v2")), v2

    # Each version serves its own code; $LATEST is the newest code.
    wait_version_active(lam, name, "1")
    wait_version_active(lam, name, "2")
    for qualifier, tag in (("1", "v1"), ("2", "v2"), ("$LATEST", "v2")):
        resp, body = invoke(lam, name, {}, Qualifier=qualifier)
        assert "FunctionError" not in resp, body
        assert body == code_answer(tag), (qualifier, body)
        assert resp["ExecutedVersion"] == qualifier, resp
    # The unqualified name is $LATEST.
    resp, body = invoke(lam, name, {})
    assert (resp["ExecutedVersion"], body) == ("$LATEST", code_answer("v2"))


def test_publishing_unchanged_code_and_configuration_returns_the_latest_version(lam):
    name = deploy_constant(lam, "same", prefix="ver-same")
    v1 = publish(lam, name)
    again = publish(lam, name)
    assert again["Version"] == "1", again
    assert again["FunctionArn"] == v1["FunctionArn"], again
    assert version_numbers(lam, name) == ["$LATEST", "1"]

    # A configuration change alone is a change: a new version.
    update_env(lam, name, STAGE="two")
    v2 = publish(lam, name)
    assert v2["Version"] == "2", v2
    assert v2["Environment"] == {"Variables": {"STAGE": "two"}}, v2
    assert publish(lam, name)["Version"] == "2"
    assert version_numbers(lam, name) == ["$LATEST", "1", "2"]


def test_publish_with_a_code_sha256_that_is_not_latests_is_refused(lam):
    name = deploy_constant(lam, "sha", prefix="ver-sha")
    current = lam.get_function_configuration(FunctionName=name)["CodeSha256"]
    wrong = sha256_b64(b"some other package")
    with expect_error("InvalidParameterValueException", 400) as ei:
        lam.publish_version(FunctionName=name, CodeSha256=wrong)
    assert error_message(ei.value) == (
        f"CodeSHA256 ({wrong}) is different from current CodeSHA256 in $LATEST ({current}). "
        "Please try again with the CodeSHA256 in $LATEST."
    ), error_message(ei.value)
    assert version_numbers(lam, name) == ["$LATEST"]

    v1 = publish(lam, name, CodeSha256=current)
    assert v1["Version"] == "1", v1


def test_publish_with_a_stale_revision_id_is_a_precondition_failure(lam):
    name = deploy_constant(lam, "rev", prefix="ver-rev")
    stale = lam.get_function_configuration(FunctionName=name)["RevisionId"]
    fresh = update_env(lam, name, KEY="v")["RevisionId"]
    assert fresh != stale
    with expect_error("PreconditionFailedException", 412) as ei:
        lam.publish_version(FunctionName=name, RevisionId=stale)
    assert error_message(ei.value) == PRECONDITION_MESSAGE, error_message(ei.value)
    assert version_numbers(lam, name) == ["$LATEST"]

    assert publish(lam, name, RevisionId=fresh)["Version"] == "1"


def test_a_version_has_its_own_description(lam):
    name = deploy_constant(lam, "desc", prefix="ver-desc", Description="the function")
    v1 = publish(lam, name, Description="first release")
    assert v1["Description"] == "first release", v1
    got = lam.get_function_configuration(FunctionName=name, Qualifier="1")
    assert got["Description"] == "first release", got
    assert lam.get_function_configuration(FunctionName=name)["Description"] == "the function"

    # Without one, the version takes the function's.
    update_code(lam, name, "desc-2")
    v2 = publish(lam, name)
    assert v2["Description"] == "the function", v2
    listed = {v["Version"]: v["Description"] for v in all_versions(lam, name)}
    assert listed == {"$LATEST": "the function", "1": "first release", "2": "the function"}


def test_a_version_never_changes_when_latest_does(lam):
    name = deploy(
        lam,
        "context",
        prefix="ver-immutable",
        MemorySize=128,
        Timeout=3,
        Environment={"Variables": {"MARK": "one"}},
    )
    v1 = publish(lam, name)
    wait_version_active(lam, name, "1")
    before = config_of(lam.get_function_configuration(FunctionName=name, Qualifier="1"))

    lam.update_function_configuration(
        FunctionName=name,
        MemorySize=256,
        Timeout=5,
        Description="changed",
        Environment={"Variables": {"MARK": "two"}},
    )
    latest = wait_updated(lam, name)["Configuration"]
    assert (latest["MemorySize"], latest["Timeout"]) == (256, 5), latest
    # New code for $LATEST too: version 1 keeps the context guest.
    lam.update_function_code(FunctionName=name, ZipFile=code_zip("new", "context.wasm"))
    latest = wait_updated(lam, name)["Configuration"]

    after = config_of(lam.get_function_configuration(FunctionName=name, Qualifier="1"))
    for key in (
        "Version",
        "FunctionArn",
        "CodeSha256",
        "CodeSize",
        "MemorySize",
        "Timeout",
        "Description",
        "Environment",
        "Handler",
        "Runtime",
        "RevisionId",
    ):
        assert after.get(key) == before.get(key), (key, before.get(key), after.get(key))
    assert after["CodeSha256"] == v1["CodeSha256"] != latest["CodeSha256"]
    assert after["Environment"] == {"Variables": {"MARK": "one"}}, after

    resp, body = invoke(lam, name, {"probe": 1}, Qualifier="1")
    assert "FunctionError" not in resp, body
    assert resp["ExecutedVersion"] == "1", resp
    assert body["env"]["MARK"] == "one", body["env"]
    assert body["env"]["AWS_LAMBDA_FUNCTION_VERSION"] == "1", body["env"]
    assert body["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128", body["env"]
    assert body["context"]["function_version"] == "1", body["context"]
    assert body["context"]["invoked_function_arn"] == f"{unqualified_arn(lam, name)}:1", body

    # Through an alias: the version's configuration, and the ARN the caller used.
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    resp, body = invoke(lam, name, {}, Qualifier="live")
    assert resp["ExecutedVersion"] == "1", resp
    assert body["env"]["MARK"] == "one", body["env"]
    assert body["context"]["function_version"] == "1", body["context"]
    arn = unqualified_arn(lam, name)
    assert body["context"]["invoked_function_arn"] == f"{arn}:live", body["context"]

    resp, body = invoke(lam, name, {})
    assert (resp["ExecutedVersion"], body) == ("$LATEST", code_answer("new"))


def test_version_numbers_are_never_reused(lam):
    name = deploy_constant(lam, "r1", prefix="ver-reuse")
    assert publish(lam, name)["Version"] == "1"
    update_code(lam, name, "r2")
    assert publish(lam, name)["Version"] == "2"

    resp = lam.delete_function(FunctionName=name, Qualifier="2")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204, resp["ResponseMetadata"]
    assert_not_found(lam, name, "2")
    assert version_numbers(lam, name) == ["$LATEST", "1"]
    # $LATEST and version 1 are untouched.
    resp, body = invoke(lam, name, {}, Qualifier="1")
    assert body == code_answer("r1"), body
    resp, body = invoke(lam, name, {})
    assert body == code_answer("r2"), body

    update_code(lam, name, "r3")
    assert publish(lam, name)["Version"] == "3"
    assert version_numbers(lam, name) == ["$LATEST", "1", "3"]


def test_publish_flag_on_create_and_on_update_code(lam):
    name = unique_name("ver-flag")
    created = lam.create_function(
        FunctionName=name,
        Runtime="wasm",
        Role="arn:aws:iam::123456789012:role/lambda-role",
        Handler="main.wasm",
        Code={"ZipFile": code_zip("f1")},
        Publish=True,
    )
    # Version 1's configuration under the function's unqualified ARN, as AWS answers it.
    assert created["Version"] == "1", config_of(created)
    assert created["FunctionArn"].endswith(f":function:{name}"), created["FunctionArn"]
    wait_version_active(lam, name, "1")
    base_arn = unqualified_arn(lam, name)
    assert created["FunctionArn"] == base_arn

    updated = lam.update_function_code(FunctionName=name, ZipFile=code_zip("f2"), Publish=True)
    assert updated["Version"] == "2", config_of(updated)
    assert updated["FunctionArn"] == f"{base_arn}:2", updated["FunctionArn"]
    assert updated["CodeSha256"] == sha256_b64(code_zip("f2")), config_of(updated)
    wait_updated(lam, name)
    wait_version_active(lam, name, "2")

    assert version_numbers(lam, name) == ["$LATEST", "1", "2"]
    for qualifier, tag in (("1", "f1"), ("2", "f2"), ("$LATEST", "f2")):
        resp, body = invoke(lam, name, {}, Qualifier=qualifier)
        assert (resp["ExecutedVersion"], body) == (qualifier, code_answer(tag))


# --------------------------------------------------------------------------------------------
# ListVersionsByFunction
# --------------------------------------------------------------------------------------------


def test_list_versions_is_paginated_latest_first(lam):
    name = deploy_constant(lam, "list", prefix="ver-list")
    for i in range(1, 6):
        update_env(lam, name, NUM=str(i))
        assert publish(lam, name)["Version"] == str(i)
    arn = unqualified_arn(lam, name)

    pages, marker = [], None
    while True:
        kw = {"Marker": marker} if marker else {}
        page = lam.list_versions_by_function(FunctionName=name, MaxItems=2, **kw)
        pages.append([v["Version"] for v in page["Versions"]])
        marker = page.get("NextMarker")
        if not marker:
            break
        assert len(pages) < 10, pages
    assert pages == [["$LATEST", "1"], ["2", "3"], ["4", "5"]], pages

    versions = all_versions(lam, name)
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2", "3", "4", "5"]
    for v in versions:
        assert v["FunctionArn"] == f"{arn}:{v['Version']}", v
        assert v["FunctionName"] == name, v
    envs = [v.get("Environment", {}).get("Variables", {}).get("NUM") for v in versions]
    assert envs == ["5", "1", "2", "3", "4", "5"], envs


def test_list_versions_of_a_missing_function_is_not_found(lam):
    with expect_error("ResourceNotFoundException", 404):
        lam.list_versions_by_function(FunctionName=unique_name("ver-nofn"))


# --------------------------------------------------------------------------------------------
# Qualifiers
# --------------------------------------------------------------------------------------------


def test_get_function_and_invoke_take_latest_a_version_or_an_alias(lam):
    name = deploy_constant(lam, "q1", prefix="ver-qual")
    publish(lam, name)
    update_code(lam, name, "q2")
    arn = unqualified_arn(lam, name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")

    cases = [
        # (qualifier, FunctionArn of the answer, Version, the code that runs, ExecutedVersion)
        ("$LATEST", f"{arn}:$LATEST", "$LATEST", "q2", "$LATEST"),
        ("1", f"{arn}:1", "1", "q1", "1"),
        ("live", f"{arn}:live", "1", "q1", "1"),
    ]
    for qualifier, fn_arn, version, tag, executed in cases:
        got = lam.get_function(FunctionName=name, Qualifier=qualifier)["Configuration"]
        assert (got["FunctionArn"], got["Version"]) == (fn_arn, version), (qualifier, got)
        cfg = lam.get_function_configuration(FunctionName=name, Qualifier=qualifier)
        assert (cfg["FunctionArn"], cfg["Version"]) == (fn_arn, version), (qualifier, cfg)
        # The qualifier in the name (NAME:QUALIFIER, or the qualified ARN) works the same.
        for fn in (f"{name}:{qualifier}", f"{arn}:{qualifier}"):
            got = lam.get_function_configuration(FunctionName=fn)
            assert (got["FunctionArn"], got["Version"]) == (fn_arn, version), (fn, got)
        resp, body = invoke(lam, name, {}, Qualifier=qualifier)
        assert (resp["ExecutedVersion"], body) == (executed, code_answer(tag)), qualifier
        resp, body = invoke(lam, f"{name}:{qualifier}", {})
        assert (resp["ExecutedVersion"], body) == (executed, code_answer(tag)), qualifier


def test_a_missing_version_or_alias_is_not_found(lam):
    name = deploy_constant(lam, "miss", prefix="ver-missing")
    publish(lam, name)
    assert_not_found(lam, name, "2")
    assert_not_found(lam, name, "9999")
    assert_not_found(lam, name, "no-such-alias")


# --------------------------------------------------------------------------------------------
# DeleteFunction with a Qualifier
# --------------------------------------------------------------------------------------------


def test_deleting_latest_alone_is_refused(lam):
    name = deploy_constant(lam, "dl", prefix="ver-del-latest")
    with expect_error("InvalidParameterValueException", 400) as ei:
        lam.delete_function(FunctionName=name, Qualifier="$LATEST")
    msg = error_message(ei.value)
    assert msg == "$LATEST version cannot be deleted without deleting the function.", msg
    resp, body = invoke(lam, name, {})
    assert body == code_answer("dl"), body


def test_deleting_a_version_an_alias_points_to_is_a_conflict(lam):
    name = deploy_constant(lam, "da1", prefix="ver-del-alias")
    publish(lam, name)
    update_code(lam, name, "da2")
    publish(lam, name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")

    with expect_error("ResourceConflictException", 409) as ei:
        lam.delete_function(FunctionName=name, Qualifier="1")
    assert error_message(ei.value) == (
        "Unable to delete version because the following aliases reference it: [live]"
    ), error_message(ei.value)
    assert version_numbers(lam, name) == ["$LATEST", "1", "2"]
    resp, body = invoke(lam, name, {}, Qualifier="live")
    assert (resp["ExecutedVersion"], body) == ("1", code_answer("da1"))

    # Once the alias points elsewhere, version 1 can go.
    lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2")
    lam.delete_function(FunctionName=name, Qualifier="1")
    assert version_numbers(lam, name) == ["$LATEST", "2"]


def test_deleting_a_version_in_an_alias_routing_config_is_a_conflict(lam):
    name = deploy_constant(lam, "dw1", prefix="ver-del-weight")
    publish(lam, name)
    update_code(lam, name, "dw2")
    publish(lam, name)
    lam.create_alias(
        FunctionName=name,
        Name="canary",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.25}},
    )
    with expect_error("ResourceConflictException", 409):
        lam.delete_function(FunctionName=name, Qualifier="2")
    assert version_numbers(lam, name) == ["$LATEST", "1", "2"]


def test_deleting_the_function_removes_its_versions_and_aliases(lam):
    name = deploy_constant(lam, "gone1", prefix="ver-del-all")
    publish(lam, name)
    update_code(lam, name, "gone2")
    publish(lam, name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="2")

    lam.delete_function(FunctionName=name)
    for qualifier in ("1", "2", "live", "$LATEST"):
        with expect_error("ResourceNotFoundException", 404):
            lam.get_function(FunctionName=name, Qualifier=qualifier)
        with expect_error("ResourceNotFoundException", 404):
            lam.invoke(FunctionName=name, Qualifier=qualifier, Payload=b"{}")
    with expect_error("ResourceNotFoundException", 404):
        lam.get_alias(FunctionName=name, Name="live")
    with expect_error("ResourceNotFoundException", 404):
        lam.list_versions_by_function(FunctionName=name)
    with expect_error("ResourceNotFoundException", 404):
        lam.list_aliases(FunctionName=name)

    # A function made again under the same name starts afresh.
    lam.create_function(
        FunctionName=name,
        Runtime="wasm",
        Role="arn:aws:iam::123456789012:role/lambda-role",
        Handler="main.wasm",
        Code={"ZipFile": code_zip("again")},
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST_WAITER)
    assert version_numbers(lam, name) == ["$LATEST"]
    assert lam.list_aliases(FunctionName=name)["Aliases"] == []
    assert publish(lam, name)["Version"] == "1"
    resp, body = invoke(lam, name, {}, Qualifier="1")
    assert body == code_answer("again"), body
