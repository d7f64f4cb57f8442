"""UpdateFunctionCode and UpdateFunctionConfiguration: what changes, what stays, LastUpdateStatus
InProgress → Successful (or Failed), RevisionId preconditions, and refused updates that change
nothing."""

import json

import pytest
from botocore.exceptions import WaiterError

from stoke_e2e import (
    FAST_WAITER,
    WASM_MODULE,
    config_of,
    create_wasm,
    expect_error,
    http_get,
    make_symlink_zip,
    make_zip,
    parse_last_modified,
    sha256_b64,
    unique_name,
    wait_active,
    wait_updated,
    wasm_zip,
)


def _active(lam, prefix, **kw):
    name = unique_name(prefix)
    create_wasm(lam, name, **kw)
    wait_active(lam, name)
    return name


def test_update_code_changes_sha_size_and_revision(lam):
    name = _active(
        lam,
        "upd-code",
        MemorySize=256,
        Timeout=9,
        Description="d",
        Environment={"Variables": {"AA": "1"}},
    )
    before = config_of(lam.get_function_configuration(FunctionName=name))
    new_code = wasm_zip(extra={"more.txt": b"version 2" * 100})
    resp = lam.update_function_code(FunctionName=name, ZipFile=new_code)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["CodeSha256"] == sha256_b64(new_code) != before["CodeSha256"]
    assert resp["CodeSize"] == len(new_code)
    assert resp["RevisionId"] != before["RevisionId"]
    assert resp["State"] == "Active"
    assert resp["LastUpdateStatus"] == "InProgress"
    assert parse_last_modified(resp["LastModified"]) >= parse_last_modified(before["LastModified"])

    got = wait_updated(lam, name)
    cfg = got["Configuration"]
    assert cfg["LastUpdateStatus"] == "Successful"
    assert cfg["State"] == "Active"
    assert cfg["CodeSha256"] == sha256_b64(new_code)
    for k in (
        "MemorySize",
        "Timeout",
        "Description",
        "Environment",
        "Handler",
        "Runtime",
        "Role",
        "Architectures",
        "EphemeralStorage",
        "FunctionArn",
    ):
        assert cfg.get(k) == before.get(k), k
    r = http_get(got["Code"]["Location"])
    assert r.status == 200 and r.body == new_code


def test_update_configuration_is_partial(lam):
    name = _active(
        lam,
        "upd-cfg",
        MemorySize=256,
        Timeout=10,
        Description="first",
        Environment={"Variables": {"AA": "1", "BB": "2"}},
        Handler="hello.wasm",
    )
    before = config_of(lam.get_function_configuration(FunctionName=name))

    resp = lam.update_function_configuration(FunctionName=name, MemorySize=512)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["MemorySize"] == 512
    assert resp["LastUpdateStatus"] in ("InProgress", "Successful")
    assert resp["RevisionId"] != before["RevisionId"]
    cfg = wait_updated(lam, name)["Configuration"]
    assert cfg["LastUpdateStatus"] == "Successful"
    assert cfg["MemorySize"] == 512
    for k in (
        "Timeout",
        "Description",
        "Environment",
        "Handler",
        "Runtime",
        "Role",
        "CodeSha256",
        "CodeSize",
        "Architectures",
        "EphemeralStorage",
    ):
        assert cfg.get(k) == before.get(k), k

    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"CC": "3"}})
    cfg = wait_updated(lam, name)["Configuration"]
    assert cfg["Environment"]["Variables"] == {"CC": "3"}
    assert cfg["MemorySize"] == 512 and cfg["Timeout"] == 10 and cfg["Description"] == "first"

    lam.update_function_configuration(
        FunctionName=name,
        Timeout=900,
        Description="",
        EphemeralStorage={"Size": 10240},
        MemorySize=10240,
    )
    cfg = wait_updated(lam, name)["Configuration"]
    assert (
        cfg["Timeout"],
        cfg.get("Description", ""),
        cfg["EphemeralStorage"]["Size"],
        cfg["MemorySize"],
    ) == (900, "", 10240, 10240)
    assert cfg["Environment"]["Variables"] == {"CC": "3"}


def test_update_configuration_can_clear_environment(lam):
    name = _active(lam, "upd-env-clear", Environment={"Variables": {"AA": "1"}})
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {}})
    cfg = wait_updated(lam, name)["Configuration"]
    assert cfg.get("Environment", {}).get("Variables", {}) == {}


@pytest.mark.parametrize("strict", [False, True], ids=["default", "deploy-check"])
def test_update_configuration_changes_runtime_and_handler(lam, strict):
    name = _active(lam, "upd-rt", **({"Tags": {"stoke:deploy-check": "init"}} if strict else {}))
    lam.update_function_configuration(
        FunctionName=name, Runtime="python3.12", Handler="app.handler"
    )
    # The wasm code has no app.py: the new configuration's Init fails.
    if strict:
        # Under the deploy check (issue 12's opt-in; issue 6's default), the new configuration
        # is started before it takes calls, its failed Init fails the update, and the old
        # configuration keeps serving.
        with pytest.raises(WaiterError):
            lam.get_waiter("function_updated_v2").wait(
                FunctionName=name, WaiterConfig=FAST_WAITER
            )
        cfg = lam.get_function_configuration(FunctionName=name)
        assert cfg["LastUpdateStatus"] == "Failed"
        assert cfg["LastUpdateStatusReasonCode"] == "FunctionError.RuntimeInitError", cfg
        assert lam.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200
    else:
        # As on Lambda: the update runs no code, ends Successful, and the call fails its Init.
        cfg = wait_updated(lam, name)["Configuration"]
        assert cfg["LastUpdateStatus"] == "Successful", cfg
        resp = lam.invoke(FunctionName=name, Payload=b"{}")
        assert (resp["StatusCode"], resp.get("FunctionError")) == (200, "Unhandled"), resp
        body = json.loads(resp["Payload"].read())
        assert body["errorType"] == "Runtime.ImportModuleError", body
        assert body["errorMessage"] == "Unable to import module 'app': No module named 'app'"
    assert (cfg["Runtime"], cfg["Handler"]) == ("python3.12", "app.handler")
    code = make_zip({"app.py": "def handler(e, c): return e\n"})
    lam.update_function_code(FunctionName=name, ZipFile=code)
    cfg = wait_updated(lam, name)["Configuration"]
    assert cfg["CodeSha256"] == sha256_b64(code)
    assert (cfg["Runtime"], cfg["Handler"]) == ("python3.12", "app.handler")
    resp = lam.invoke(FunctionName=name, Payload=b'{"a": 1}')
    assert "FunctionError" not in resp and json.loads(resp["Payload"].read()) == {"a": 1}


def test_update_code_without_the_wasm_handler_ends_failed(lam):
    name = _active(lam, "upd-fail")
    resp = lam.update_function_code(FunctionName=name, ZipFile=make_zip({"x.txt": b"no wasm"}))
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(WaiterError) as ei:
        lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=FAST_WAITER)
    last = (ei.value.last_response or {}).get("Configuration", {})
    assert last.get("LastUpdateStatus") == "Failed", str(ei.value)
    cfg = lam.get_function(FunctionName=name)["Configuration"]
    assert cfg["LastUpdateStatus"] == "Failed"
    codes = lam.meta.service_model.shape_for("LastUpdateStatusReasonCode").enum
    assert cfg.get("LastUpdateStatusReasonCode") in codes, cfg.get("LastUpdateStatusReasonCode")
    assert cfg.get("LastUpdateStatusReason")
    # A good update afterwards recovers.
    lam.update_function_code(FunctionName=name, ZipFile=wasm_zip())
    assert wait_updated(lam, name)["Configuration"]["LastUpdateStatus"] == "Successful"


def test_revision_id_precondition(lam):
    name = _active(lam, "upd-rev")
    cfg = config_of(lam.get_function_configuration(FunctionName=name))
    with expect_error("PreconditionFailedException", 412):
        lam.update_function_configuration(
            FunctionName=name, Timeout=5, RevisionId="00000000-0000-0000-0000-000000000000"
        )
    with expect_error("PreconditionFailedException", 412):
        lam.update_function_code(
            FunctionName=name,
            ZipFile=wasm_zip(extra={"a": b"b"}),
            RevisionId="00000000-0000-0000-0000-000000000000",
        )
    assert config_of(lam.get_function_configuration(FunctionName=name)) == cfg
    resp = lam.update_function_configuration(
        FunctionName=name, Timeout=5, RevisionId=cfg["RevisionId"]
    )
    assert resp["Timeout"] == 5


@pytest.mark.parametrize(
    "kwargs,code,status",
    [
        ({"MemorySize": 10241}, "ValidationException", 400),
        ({"MemorySize": 127}, "ValidationException", 400),
        ({"Timeout": 0}, "ValidationException", 400),
        ({"Timeout": 901}, "ValidationException", 400),
        ({"Role": "not-a-role"}, "ValidationException", 400),
        ({"EphemeralStorage": {"Size": 10241}}, "ValidationException", 400),
        ({"Runtime": "cobol1"}, "InvalidParameterValueException", 400),
        (
            {"Environment": {"Variables": {"BIG": "x" * 5000}}},
            "InvalidParameterValueException",
            400,
        ),
    ],
    ids=lambda v: str(v)[:40] if isinstance(v, dict) else None,
)
def test_refused_configuration_update_changes_nothing(lam, lam_raw, kwargs, code, status):
    name = _active(lam, "upd-bad-cfg", MemorySize=256, Environment={"Variables": {"AA": "1"}})
    before = config_of(lam.get_function_configuration(FunctionName=name))
    with expect_error(code, status):
        lam_raw.update_function_configuration(FunctionName=name, **kwargs)
    assert config_of(lam.get_function_configuration(FunctionName=name)) == before


@pytest.mark.parametrize(
    "bad_zip,contains",
    [
        (b"PK\x03\x04 this is not really a zip" * 10, "Could not unzip uploaded file"),
        (make_zip({"../evil": b"x", "hello.wasm": WASM_MODULE}), "Could not unzip uploaded file"),
        (make_symlink_zip("hello.wasm", "/etc/passwd"), "Could not unzip uploaded file"),
    ],
    ids=["garbage", "zip-slip", "symlink"],
)
def test_refused_code_update_changes_nothing(lam, bad_zip, contains):
    name = _active(lam, "upd-bad-code")
    before = config_of(lam.get_function_configuration(FunctionName=name))
    loc_before = http_get(lam.get_function(FunctionName=name)["Code"]["Location"]).body
    with expect_error("InvalidParameterValueException", 400, contains):
        lam.update_function_code(FunctionName=name, ZipFile=bad_zip)
    assert config_of(lam.get_function_configuration(FunctionName=name)) == before
    assert http_get(lam.get_function(FunctionName=name)["Code"]["Location"]).body == loc_before


def test_updates_of_a_missing_function_are_not_found(lam):
    name = unique_name("upd-missing")
    with expect_error("ResourceNotFoundException", 404):
        lam.update_function_code(FunctionName=name, ZipFile=wasm_zip())
    with expect_error("ResourceNotFoundException", 404):
        lam.update_function_configuration(FunctionName=name, MemorySize=256)


def test_update_code_dry_run_changes_nothing(lam):
    name = _active(lam, "upd-dry")
    before = config_of(lam.get_function_configuration(FunctionName=name))
    lam.update_function_code(
        FunctionName=name, ZipFile=wasm_zip(extra={"dry": b"run"}), DryRun=True
    )
    after = config_of(lam.get_function_configuration(FunctionName=name))
    assert after == before
