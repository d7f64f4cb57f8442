"""Aliases, as AWS Lambda's: CreateAlias, GetAlias, UpdateAlias, DeleteAlias, ListAliases, their
validation (with AWS's error types and messages), `RevisionId` preconditions, invocation through
an alias (`X-Amz-Executed-Version`), weighted routing between two versions, warm sandboxes kept
per version across an alias shift; and the command line (`stoke deploy --publish`, `stoke
versions`, `stoke alias set|list`, `stoke rollback`).

Functions here answer a constant that names their code (`deploy_constant` in stoke_guests.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from stoke_e2e import (
    REGION,
    config_of,
    error_message,
    expect_error,
    http_get,
    unique_name,
    wait_updated,
)
from stoke_guests import (
    REPORT_RE,
    code_answer,
    constant_module,
    constant_zip,
    deploy_constant,
    invoke,
    log_tail,
    request_id,
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


def with_versions(lam, prefix: str, count: int) -> tuple[str, str]:
    """A function with versions 1..count, version N answering `code_answer(f"v{N}")`;
    $LATEST is version `count`'s code. Returns (name, unqualified ARN)."""
    name = deploy_constant(lam, "v1", prefix=prefix)
    for n in range(1, count + 1):
        if n > 1:
            lam.update_function_code(FunctionName=name, ZipFile=code_zip(f"v{n}"))
            cfg = wait_updated(lam, name)["Configuration"]
            assert cfg["LastUpdateStatus"] == "Successful", cfg
        got = lam.publish_version(FunctionName=name)
        assert got["Version"] == str(n), config_of(got)
    for n in range(1, count + 1):
        lam.get_waiter("function_active_v2").wait(
            FunctionName=name, Qualifier=str(n), WaiterConfig={"Delay": 0.1, "MaxAttempts": 300}
        )
    return name, lam.get_function_configuration(FunctionName=name)["FunctionArn"]


def alias_of(resp: dict) -> dict:
    return {k: v for k, v in resp.items() if k != "ResponseMetadata"}


def all_aliases(lam, name: str, **kw) -> list[dict]:
    out = []
    for page in lam.get_paginator("list_aliases").paginate(FunctionName=name, **kw):
        out.extend(page["Aliases"])
    return out


# --------------------------------------------------------------------------------------------
# CreateAlias, GetAlias, UpdateAlias, DeleteAlias
# --------------------------------------------------------------------------------------------


def test_alias_lifecycle(lam):
    name, arn = with_versions(lam, "al-life", 2)

    created = lam.create_alias(
        FunctionName=name, Name="live", FunctionVersion="1", Description="production"
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201, created["ResponseMetadata"]
    created = alias_of(created)
    assert created["AliasArn"] == f"{arn}:live", created
    assert (created["Name"], created["FunctionVersion"], created["Description"]) == (
        "live",
        "1",
        "production",
    ), created
    assert created["RevisionId"], created
    assert not created.get("RoutingConfig", {}).get("AdditionalVersionWeights"), created

    got = alias_of(lam.get_alias(FunctionName=name, Name="live"))
    assert got == created, (got, created)
    # The function may be named by its ARN.
    assert alias_of(lam.get_alias(FunctionName=arn, Name="live")) == created

    # A partial update: the description stays.
    updated = alias_of(lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2"))
    assert (updated["FunctionVersion"], updated["Description"]) == ("2", "production"), updated
    assert updated["AliasArn"] == created["AliasArn"], updated
    assert updated["RevisionId"] != created["RevisionId"], updated
    assert alias_of(lam.get_alias(FunctionName=name, Name="live")) == updated

    updated2 = alias_of(
        lam.update_alias(
            FunctionName=name,
            Name="live",
            FunctionVersion="1",
            RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}},
        )
    )
    assert updated2["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.3}}, updated2
    # An empty map removes the routing configuration.
    cleared = alias_of(
        lam.update_alias(
            FunctionName=name, Name="live", RoutingConfig={"AdditionalVersionWeights": {}}
        )
    )
    assert cleared["FunctionVersion"] == "1", cleared
    assert not cleared.get("RoutingConfig", {}).get("AdditionalVersionWeights"), cleared

    deleted = lam.delete_alias(FunctionName=name, Name="live")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204, deleted["ResponseMetadata"]
    with expect_error("ResourceNotFoundException", 404) as ei:
        lam.get_alias(FunctionName=name, Name="live")
    assert error_message(ei.value) == f"Alias not found: {arn}:live", error_message(
        ei.value
    )
    with expect_error("ResourceNotFoundException", 404):
        lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2")
    with expect_error("ResourceNotFoundException", 404):
        lam.invoke(FunctionName=name, Qualifier="live", Payload=b"{}")
    assert all_aliases(lam, name) == []


def test_alias_to_latest_follows_the_newest_code(lam):
    name, _ = with_versions(lam, "al-latest", 1)
    lam.create_alias(FunctionName=name, Name="edge", FunctionVersion="$LATEST")
    resp, body = invoke(lam, name, {}, Qualifier="edge")
    assert (resp["ExecutedVersion"], body) == ("$LATEST", code_answer("v1"))
    lam.update_function_code(FunctionName=name, ZipFile=code_zip("newer"))
    wait_updated(lam, name)
    resp, body = invoke(lam, name, {}, Qualifier="edge")
    assert (resp["ExecutedVersion"], body) == ("$LATEST", code_answer("newer"))


def test_update_alias_with_a_stale_revision_id_is_a_precondition_failure(lam):
    name, _ = with_versions(lam, "al-rev", 2)
    first = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    second = lam.update_alias(FunctionName=name, Name="live", Description="moved")
    with expect_error("PreconditionFailedException", 412) as ei:
        lam.update_alias(
            FunctionName=name, Name="live", FunctionVersion="2", RevisionId=first["RevisionId"]
        )
    assert error_message(ei.value) == PRECONDITION_MESSAGE, error_message(ei.value)
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"

    ok = lam.update_alias(
        FunctionName=name, Name="live", FunctionVersion="2", RevisionId=second["RevisionId"]
    )
    assert ok["FunctionVersion"] == "2"


def test_an_existing_alias_name_is_a_conflict(lam):
    name, arn = with_versions(lam, "al-dup", 2)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with expect_error("ResourceConflictException", 409) as ei:
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion="2")
    assert error_message(ei.value) == f"Alias already exists: {arn}:live", error_message(ei.value)
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"


def test_an_alias_to_a_missing_version_or_function_is_not_found(lam):
    name, arn = with_versions(lam, "al-nover", 1)
    with expect_error("ResourceNotFoundException", 404) as ei:
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion="7")
    assert error_message(ei.value) == f"Function not found: {arn}:7", error_message(ei.value)
    with expect_error("ResourceNotFoundException", 404):
        lam.create_alias(
            FunctionName=name,
            Name="live",
            FunctionVersion="1",
            RoutingConfig={"AdditionalVersionWeights": {"7": 0.5}},
        )
    assert all_aliases(lam, name) == []

    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with expect_error("ResourceNotFoundException", 404):
        lam.update_alias(FunctionName=name, Name="live", FunctionVersion="7")
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"

    missing = unique_name("al-nofn")
    with expect_error("ResourceNotFoundException", 404):
        lam.create_alias(FunctionName=missing, Name="live", FunctionVersion="1")
    with expect_error("ResourceNotFoundException", 404):
        lam.get_alias(FunctionName=missing, Name="live")
    with expect_error("ResourceNotFoundException", 404):
        lam.list_aliases(FunctionName=missing)


def test_more_than_one_additional_version_is_refused(lam):
    name, _ = with_versions(lam, "al-two", 3)
    with expect_error("InvalidParameterValueException", 400) as ei:
        lam.create_alias(
            FunctionName=name,
            Name="live",
            FunctionVersion="1",
            RoutingConfig={"AdditionalVersionWeights": {"2": 0.1, "3": 0.1}},
        )
    assert (
        error_message(ei.value)
        == "Number of items in AdditionalVersionWeights cannot be greater than 1"
    ), error_message(ei.value)
    assert all_aliases(lam, name) == []


@pytest.mark.parametrize("weight", [1.5, -0.1, 2.0])
def test_a_weight_outside_0_to_1_is_a_validation_error(lam, lam_raw, weight):
    name, _ = with_versions(lam, "al-weight", 2)
    with expect_error("ValidationException", 400) as ei:
        lam_raw.create_alias(
            FunctionName=name,
            Name="live",
            FunctionVersion="1",
            RoutingConfig={"AdditionalVersionWeights": {"2": weight}},
        )
    msg = error_message(ei.value)
    assert msg.startswith("1 validation error detected: "), msg
    assert "at 'routingConfig.additionalVersionWeights' failed to satisfy constraint" in msg, msg
    assert all_aliases(lam, name) == []

    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with expect_error("ValidationException", 400):
        lam_raw.update_alias(
            FunctionName=name,
            Name="live",
            RoutingConfig={"AdditionalVersionWeights": {"2": weight}},
        )
    assert not lam.get_alias(FunctionName=name, Name="live").get("RoutingConfig", {}).get(
        "AdditionalVersionWeights"
    )


def test_latest_cannot_be_the_version_of_a_weighted_alias(lam):
    name, _ = with_versions(lam, "al-latestw", 1)
    with expect_error("InvalidParameterValueException", 400) as ei:
        lam.create_alias(
            FunctionName=name,
            Name="live",
            FunctionVersion="$LATEST",
            RoutingConfig={"AdditionalVersionWeights": {"1": 0.2}},
        )
    assert (
        error_message(ei.value)
        == "$LATEST is not supported for an alias pointing to more than 1 version"
    ), error_message(ei.value)
    assert all_aliases(lam, name) == []


def test_the_same_version_cannot_be_primary_and_additional(lam):
    name, _ = with_versions(lam, "al-self", 1)
    with expect_error("InvalidParameterValueException", 400) as ei:
        lam.create_alias(
            FunctionName=name,
            Name="live",
            FunctionVersion="1",
            RoutingConfig={"AdditionalVersionWeights": {"1": 0.2}},
        )
    assert error_message(ei.value) == (
        "Invalid function version 1. Function version 1 is already included in routing "
        "configuration."
    ), error_message(ei.value)


@pytest.mark.parametrize("alias", ["123", "0"])
def test_a_numeric_alias_name_is_a_validation_error(lam, lam_raw, alias):
    name, _ = with_versions(lam, "al-numeric", 1)
    with expect_error("ValidationException", 400) as ei:
        lam_raw.create_alias(FunctionName=name, Name=alias, FunctionVersion="1")
    msg = error_message(ei.value)
    assert msg == (
        f"1 validation error detected: Value '{alias}' at 'name' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)"
    ), msg
    assert all_aliases(lam, name) == []


# --------------------------------------------------------------------------------------------
# ListAliases
# --------------------------------------------------------------------------------------------


def test_list_aliases_filters_by_version_and_paginates(lam):
    name, arn = with_versions(lam, "al-list", 2)
    targets = {"alpha": "1", "beta": "2", "gamma": "1", "delta": "2", "omega": "$LATEST"}
    for alias, version in targets.items():
        lam.create_alias(FunctionName=name, Name=alias, FunctionVersion=version)

    listed = lam.list_aliases(FunctionName=name)
    assert "NextMarker" not in listed or not listed["NextMarker"], listed
    got = {a["Name"]: a["FunctionVersion"] for a in listed["Aliases"]}
    assert got == targets, got
    for a in listed["Aliases"]:
        assert a["AliasArn"] == f"{arn}:{a['Name']}", a
        assert a["RevisionId"], a

    on_two = lam.list_aliases(FunctionName=name, FunctionVersion="2")["Aliases"]
    assert sorted(a["Name"] for a in on_two) == ["beta", "delta"], on_two
    on_latest = lam.list_aliases(FunctionName=name, FunctionVersion="$LATEST")["Aliases"]
    assert [a["Name"] for a in on_latest] == ["omega"], on_latest

    seen, marker, pages = [], None, 0
    while True:
        kw = {"Marker": marker} if marker else {}
        page = lam.list_aliases(FunctionName=name, MaxItems=2, **kw)
        assert len(page["Aliases"]) <= 2, page
        seen += [a["Name"] for a in page["Aliases"]]
        pages += 1
        marker = page.get("NextMarker")
        if not marker:
            break
        assert pages < 10, seen
    assert pages == 3, (pages, seen)
    assert sorted(seen) == sorted(targets), seen

    paged = all_aliases(lam, name, FunctionVersion="1", PaginationConfig={"PageSize": 1})
    assert sorted(a["Name"] for a in paged) == ["alpha", "gamma"], paged


# --------------------------------------------------------------------------------------------
# Invoking through an alias
# --------------------------------------------------------------------------------------------


def test_invoke_through_an_alias_reports_the_version_that_ran(lam):
    name, arn = with_versions(lam, "al-invoke", 2)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    for fn, kw in ((name, {"Qualifier": "live"}), (f"{name}:live", {}), (f"{arn}:live", {})):
        resp, body = invoke(lam, fn, {}, **kw)
        assert "FunctionError" not in resp, body
        assert (resp["ExecutedVersion"], body) == ("1", code_answer("v1")), fn
        assert resp["ResponseMetadata"]["HTTPHeaders"]["x-amz-executed-version"] == "1"

    lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2")
    resp, body = invoke(lam, name, {}, Qualifier="live")
    assert (resp["ExecutedVersion"], body) == ("2", code_answer("v2"))

    # The log of a call names the version that ran.
    resp, body = invoke(lam, name, {}, Qualifier="live", LogType="Tail")
    tail = log_tail(resp)
    assert f"START RequestId: {request_id(resp)} Version: 2" in tail.splitlines(), tail


def test_weighted_routing_splits_calls_by_weight(server, lam):
    """10,000 calls of an alias on version 1 with {"2": 0.1}: about a tenth run version 2."""
    name, _ = with_versions(lam, "al-weighted", 2)
    lam.create_alias(
        FunctionName=name,
        Name="canary",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}},
    )
    total, workers = 10_000, 16
    counts: Counter = Counter()
    problems: list = []
    lock = threading.Lock()
    local = threading.local()

    def one(_):
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = server.client()
        try:
            resp = client.invoke(FunctionName=name, Qualifier="canary", Payload=b"{}")
            body = json.loads(resp["Payload"].read())
            executed = resp.get("ExecutedVersion")
            ok = "FunctionError" not in resp and executed in ("1", "2")
            ok = ok and body == code_answer(f"v{executed}")
            with lock:
                counts[executed] += 1
                if not ok:
                    problems.append((executed, resp.get("FunctionError"), body))
        except Exception as e:  # noqa: BLE001 - every failure is counted and reported
            with lock:
                problems.append(repr(e))

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, range(total)))
    took = time.monotonic() - started
    assert not problems, f"{len(problems)} bad calls, e.g. {problems[:5]}"
    assert sum(counts.values()) == total, counts
    share = counts["2"] / total
    assert 0.08 <= share <= 0.12, f"version 2 ran {share:.4f} of the calls: {counts} ({took:.1f}s)"


def test_an_alias_shift_keeps_the_warm_sandboxes_of_the_version_it_keeps(lam):
    """The alias moves from 1 (with 2 at 0.5) to 2 alone: version 2's sandboxes stay warm, and
    so do version 1's (still addressed directly), after the reaper has had time to run."""
    name, _ = with_versions(lam, "al-warm", 2)

    codes = {"1": "v1", "2": "v2", "$LATEST": "v2"}

    def call(qualifier: str) -> tuple[str, bool]:
        """(the version that ran, whether the call was a cold start)."""
        resp, body = invoke(lam, name, {}, Qualifier=qualifier, LogType="Tail")
        assert "FunctionError" not in resp, body
        executed = resp["ExecutedVersion"]
        assert body == code_answer(codes[executed]), (executed, body)
        tail = log_tail(resp)
        assert f"START RequestId: {request_id(resp)} Version: {executed}" in tail, tail
        reports = [REPORT_RE.match(ln) for ln in tail.splitlines() if ln.startswith("REPORT ")]
        assert len(reports) == 1 and reports[0], tail
        return executed, reports[0]["init"] is not None

    # Warm both versions (one sandbox each: the calls are sequential).
    for q in ("1", "2"):
        call(q)
        assert call(q) == (q, False), f"version {q} is not warm on its second call"
    lam.create_alias(
        FunctionName=name,
        Name="live",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}},
    )
    for _ in range(6):
        executed, cold = call("live")
        assert not cold, f"a call of version {executed} through the new alias was cold"

    lam.update_alias(
        FunctionName=name,
        Name="live",
        FunctionVersion="2",
        RoutingConfig={"AdditionalVersionWeights": {}},
    )
    time.sleep(1.5)  # the reaper runs once a second
    for _ in range(4):
        assert call("live") == ("2", False), "version 2 went cold after the alias shift"
    assert call("1") == ("1", False), "version 1 went cold after the alias shift"

    # A code update of $LATEST leaves the published versions' sandboxes alone.
    lam.update_function_code(FunctionName=name, ZipFile=code_zip("v3"))
    wait_updated(lam, name)
    codes["$LATEST"] = "v3"
    time.sleep(1.5)
    assert call("2") == ("2", False), "version 2 went cold after an update of $LATEST"
    assert call("1") == ("1", False), "version 1 went cold after an update of $LATEST"


def test_an_alias_shift_causes_no_cold_start(server, lam):
    """/metrics: once versions 1 and 2 are warm, calls through an alias that moves between them
    add no cold start. (The server may warm sandboxes ahead of calls, e.g. after an update, so
    the count is measured once it is stable.)"""
    name, _ = with_versions(lam, "al-metrics", 2)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    for q in ("1", "2"):
        invoke(lam, name, {}, Qualifier=q)
    base = _stable_cold_starts(server, name)
    assert base >= 2, f"{base} cold starts for two versions called"
    for version in ("2", "1", "2"):
        lam.update_alias(FunctionName=name, Name="live", FunctionVersion=version)
        for _ in range(3):
            resp, _body = invoke(lam, name, {}, Qualifier="live")
            assert resp["ExecutedVersion"] == version
    assert _stable_cold_starts(server, name) == base, "an alias shift caused a cold start"


def _cold_starts(server, function: str) -> float:
    """The sum of stoke_cold_starts_total over FUNCTION's series."""
    pat = re.compile(r"^stoke_cold_starts_total\{(?P<labels>[^}]*)\} (?P<value>\S+)")
    text = http_get(f"{server.endpoint}/metrics").body.decode()
    total = 0.0
    for line in text.splitlines():
        m = pat.match(line)
        if m and re.search(rf'(^|,)function="{re.escape(function)}"(,|$)', m["labels"]):
            total += float(m["value"])
    return total


def _stable_cold_starts(server, function: str, quiet: float = 0.6, timeout: float = 5.0) -> float:
    """The cold start count once it has not changed for `quiet` seconds (metrics are recorded
    off the call path)."""
    deadline = time.monotonic() + timeout
    last, since = _cold_starts(server, function), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = _cold_starts(server, function)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def cli(server, tmp_path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `stoke ARGS…` as a client of `server`, with its credentials file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STOKE_"))}
    env.update(
        STOKE_ENDPOINT=server.endpoint,
        AWS_REGION=REGION,
        AWS_SHARED_CREDENTIALS_FILE=str(server.credentials_file),
        AWS_PROFILE="stoke",
    )
    proc = subprocess.run(
        [str(server.binary), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    if check:
        assert proc.returncode == 0, (
            f"stoke {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def test_cli_deploy_publish_versions_alias_and_rollback(server, lam, tmp_path):
    name = unique_name("al-cli")
    wasm = tmp_path / "main.wasm"

    def deploy(tag: str) -> str:
        wasm.write_bytes(constant_module(json.dumps(code_answer(tag))))
        out = cli(
            server, tmp_path, "deploy", str(wasm), "--name", name, "--runtime", "wasm",
            "--publish",
        ).stdout
        m = re.search(r"^\s*Version\s+(\S+)\s*$", out, re.M)
        assert m, f"no published version in the output of deploy --publish:\n{out}"
        return m.group(1)

    assert deploy("c1") == "1"
    assert deploy("c2") == "2"
    assert deploy("c2") == "2", "unchanged code published a new version"
    assert deploy("c3") == "3"

    out = cli(server, tmp_path, "versions", name).stdout
    lines = out.strip().splitlines()
    assert re.match(r"^VERSION\s+CODE SHA256\s+LAST MODIFIED\s+DESCRIPTION$", lines[0]), out
    assert [ln.split()[0] for ln in lines[1:]] == ["$LATEST", "1", "2", "3"], out
    shas = {v["Version"]: v["CodeSha256"] for v in lam.list_versions_by_function(
        FunctionName=name)["Versions"]}
    for ln in lines[1:]:
        version, sha = ln.split()[:2]
        assert sha == shas[version], (ln, shas)

    # `alias set` creates, then updates.
    cli(server, tmp_path, "alias", "set", name, "live", "1", "--description", "prod")
    got = lam.get_alias(FunctionName=name, Name="live")
    assert (got["FunctionVersion"], got["Description"]) == ("1", "prod"), got
    cli(server, tmp_path, "alias", "set", name, "live", "2", "--weight", "3=0.1")
    got = lam.get_alias(FunctionName=name, Name="live")
    assert got["FunctionVersion"] == "2", got
    assert got["RoutingConfig"] == {"AdditionalVersionWeights": {"3": 0.1}}, got
    assert got["Description"] == "prod", got
    cli(server, tmp_path, "alias", "set", name, "beta", "3")

    out = cli(server, tmp_path, "alias", "list", name).stdout
    lines = out.strip().splitlines()
    assert lines[0].split()[:2] == ["NAME", "VERSION"], out
    rows = {ln.split()[0]: ln.split() for ln in lines[1:]}
    assert set(rows) == {"live", "beta"}, out
    assert rows["live"][1] == "2" and rows["beta"][1] == "3", out
    assert "3=0.1" in out.replace(" ", ""), out

    # rollback: back to where `live` was before the last change (version 1, no weights).
    out = cli(server, tmp_path, "rollback", name, "live")
    got = lam.get_alias(FunctionName=name, Name="live")
    assert got["FunctionVersion"] == "1", (got, out.stdout, out.stderr)
    assert not got.get("RoutingConfig", {}).get("AdditionalVersionWeights"), got
    resp, body = invoke(lam, name, {}, Qualifier="live")
    assert (resp["ExecutedVersion"], body) == ("1", code_answer("c1"))

    # An alias that never moved has nothing to go back to.
    proc = cli(server, tmp_path, "rollback", name, "beta", check=False)
    assert proc.returncode != 0, proc
    assert "ResourceConflictException" in proc.stderr, proc.stderr
    assert lam.get_alias(FunctionName=name, Name="beta")["FunctionVersion"] == "3"

    # Errors are the server's, on stderr, with a failing exit code.
    proc = cli(server, tmp_path, "alias", "set", name, "live", "99", check=False)
    assert proc.returncode != 0 and "ResourceNotFoundException" in proc.stderr, proc.stderr
    proc = cli(server, tmp_path, "versions", unique_name("al-cli-none"), check=False)
    assert proc.returncode != 0 and "ResourceNotFoundException" in proc.stderr, proc.stderr


def test_rollback_endpoint_answers_the_alias(server, lam):
    """`POST /stoke/2026-11-01/functions/{name}/aliases/{alias}/rollback`, SigV4 for `lambda`."""
    name, arn = with_versions(lam, "al-rollback", 2)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    path = f"/stoke/2026-11-01/functions/{name}/aliases/live/rollback"
    r = server.signed_request("POST", path)
    assert r.status == 409, (r.status, r.body)
    assert r.error_type == "ResourceConflictException", r.headers

    lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2")
    r = server.signed_request("POST", path)
    assert r.status == 200, (r.status, r.body)
    body = r.json()
    assert (body["Name"], body["FunctionVersion"], body["AliasArn"]) == ("live", "1", f"{arn}:live")
    assert body == alias_of(lam.get_alias(FunctionName=name, Name="live")), body

    r = server.signed_request("POST", f"/stoke/2026-11-01/functions/{name}/aliases/nope/rollback")
    assert (r.status, r.error_type) == (404, "ResourceNotFoundException"), (r.status, r.body)
    assert server.unsigned_request("POST", path).status == 403
