"""CreateFunction: the fields Lambda reports, defaults, runtimes, State Pending → Active (or
Failed), the waiters, and creates that race."""

import datetime as dt
import threading

import pytest
from botocore.exceptions import ClientError, WaiterError

from stoke_e2e import (
    ACCOUNT_RE,
    FAST_WAITER,
    ROLE,
    WASM_MODULE,
    config_of,
    create_wasm,
    error_code,
    function_names,
    http_status,
    make_zip,
    parse_last_modified,
    sha256_b64,
    unique_name,
    wait_active,
    wasm_zip,
)


def test_create_reports_every_field_as_lambda_does(lam):
    name = unique_name("create-full")
    code = wasm_zip("hello.wasm", extra={"data/config.json": b'{"a": 1}'})
    tags = {"team": "core", "env": "test"}
    before = dt.datetime.now(dt.timezone.utc)
    resp = lam.create_function(
        FunctionName=name,
        Runtime="wasm",
        Role=ROLE,
        Handler="hello.wasm",
        Code={"ZipFile": code},
        Description="a hello function",
        Timeout=42,
        MemorySize=256,
        Environment={"Variables": {"GREETING": "hello", "COUNT": "3"}},
        Architectures=["arm64"],
        EphemeralStorage={"Size": 1024},
        Tags=tags,
    )
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201
    arn = resp["FunctionArn"]
    parts = arn.split(":")
    assert parts[:4] == ["arn", "aws", "lambda", "us-east-1"], arn
    assert ACCOUNT_RE.match(parts[4]), f"account id in {arn} is not 12 digits"
    assert arn == f"arn:aws:lambda:us-east-1:{parts[4]}:function:{name}"
    assert resp["FunctionName"] == name
    assert resp["Runtime"] == "wasm"
    assert resp["Role"] == ROLE
    assert resp["Handler"] == "hello.wasm"
    assert resp["CodeSha256"] == sha256_b64(code)
    assert resp["CodeSize"] == len(code)
    assert resp["Description"] == "a hello function"
    assert resp["Timeout"] == 42
    assert resp["MemorySize"] == 256
    assert resp["Environment"]["Variables"] == {"GREETING": "hello", "COUNT": "3"}
    assert resp["Architectures"] == ["arm64"]
    assert resp["EphemeralStorage"] == {"Size": 1024}
    assert resp["Version"] == "$LATEST"
    assert resp["PackageType"] == "Zip"
    assert isinstance(resp.get("RevisionId"), str) and resp["RevisionId"]
    modified = parse_last_modified(resp["LastModified"])
    assert before - dt.timedelta(seconds=5) <= modified <= before + dt.timedelta(minutes=1)
    # Lambda answers a create with State Pending while it sets the function up.
    assert resp["State"] == "Pending"
    assert resp.get("StateReasonCode") == "Creating"

    got = wait_active(lam, name)
    cfg = got["Configuration"]
    assert cfg["State"] == "Active"
    assert cfg["LastUpdateStatus"] == "Successful"
    assert got["Tags"] == tags
    # Everything the create reported still holds, apart from the state fields.
    volatile = {
        "State",
        "StateReason",
        "StateReasonCode",
        "LastUpdateStatus",
        "LastUpdateStatusReason",
        "LastUpdateStatusReasonCode",
        "RevisionId",  # Lambda gives a new revision when the state changes
    }
    for k, v in config_of(resp).items():
        if k not in volatile:
            assert cfg.get(k) == v, f"{k}: create said {v!r}, GetFunction says {cfg.get(k)!r}"


def test_create_fills_lambdas_defaults(lam):
    name = unique_name("create-defaults")
    code = wasm_zip()
    resp = lam.create_function(
        FunctionName=name,
        Runtime="wasm",
        Role=ROLE,
        Handler="hello.wasm",
        Code={"ZipFile": code},
    )
    assert resp["MemorySize"] == 128
    assert resp["Timeout"] == 3
    assert resp["Architectures"] == ["x86_64"]
    assert resp["EphemeralStorage"] == {"Size": 512}
    assert resp.get("Description", "") == ""
    assert resp["PackageType"] == "Zip"
    assert resp["Version"] == "$LATEST"
    cfg = wait_active(lam, name)["Configuration"]
    assert (cfg["MemorySize"], cfg["Timeout"], cfg["Architectures"]) == (128, 3, ["x86_64"])


@pytest.mark.parametrize(
    "runtime,handler,files",
    [
        ("wasm", "hello.wasm", {"hello.wasm": WASM_MODULE}),
        ("wasm", "bin/app.wasm", {"bin/app.wasm": WASM_MODULE, "README": b"x"}),
        (
            "python3.12",
            "app.handler",
            {"app.py": "def handler(event, context):\n    return event\n"},
        ),
        (
            "python3.9",
            "pkg.mod.handler",
            {"pkg/__init__.py": "", "pkg/mod.py": "def handler(e, c): pass\n"},
        ),
        ("nodejs20.x", "index.handler", {"index.mjs": "export const handler = async (e) => e;\n"}),
        ("nodejs22.x", "src/app.main", {"src/app.js": "exports.main = async (e) => e;\n"}),
        ("provided", "bootstrap", {"bootstrap": "#!/bin/sh\necho hi\n"}),
        ("provided.al2023", "anything.goes", {"bootstrap": "#!/bin/sh\necho hi\n"}),
    ],
)
def test_each_accepted_runtime_becomes_active(lam, runtime, handler, files):
    name = unique_name(f"rt-{runtime.replace('.', '')}")
    code = make_zip(files)
    resp = lam.create_function(
        FunctionName=name, Runtime=runtime, Role=ROLE, Handler=handler, Code={"ZipFile": code}
    )
    assert resp["Runtime"] == runtime and resp["Handler"] == handler
    cfg = wait_active(lam, name)["Configuration"]
    assert cfg["State"] == "Active"
    assert cfg["CodeSha256"] == sha256_b64(code)


@pytest.mark.parametrize(
    "files,why",
    [
        ({"other.wasm": WASM_MODULE}, "handler file missing from the zip"),
        ({"hello.wasm": b"this is not wasm at all"}, "handler file lacks the wasm magic"),
        ({"hello.wasm": b""}, "handler file is empty"),
        ({"hello.wasm/inner.wasm": WASM_MODULE}, "handler is a folder"),
    ],
)
def test_wasm_function_with_bad_handler_goes_failed(lam, files, why):
    name = unique_name("wasm-bad-handler")
    resp = lam.create_function(
        FunctionName=name,
        Runtime="wasm",
        Role=ROLE,
        Handler="hello.wasm",
        Code={"ZipFile": make_zip(files)},
    )
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201, why
    with pytest.raises(WaiterError) as ei:
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST_WAITER)
    last = ei.value.last_response or {}
    assert last.get("Configuration", {}).get("State") == "Failed", (
        f"{why}: waiter ended with {ei.value}"
    )
    cfg = lam.get_function(FunctionName=name)["Configuration"]
    assert cfg["State"] == "Failed", why
    codes = lam.meta.service_model.shape_for("StateReasonCode").enum
    assert cfg.get("StateReasonCode") in codes, f"StateReasonCode {cfg.get('StateReasonCode')!r}"
    assert cfg.get("StateReason"), "a Failed function says why in StateReason"


def test_active_waiter_with_boto3_default_config(lam):
    """function_active_v2 exactly as a user calls it (1 s delay, 300 attempts)."""
    name = unique_name("waiter-default")
    create_wasm(lam, name)
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    assert lam.get_function(FunctionName=name)["Configuration"]["State"] == "Active"


def test_function_exists_waiter(lam):
    name = unique_name("exists")
    create_wasm(lam, name)
    lam.get_waiter("function_exists").wait(FunctionName=name, WaiterConfig=FAST_WAITER)
    with pytest.raises(WaiterError):
        lam.get_waiter("function_exists").wait(
            FunctionName=unique_name("never-created"),
            WaiterConfig={"Delay": 0.1, "MaxAttempts": 3},
        )


def test_legacy_v1_waiters_work_too(lam):
    """function_active / function_updated (GetFunctionConfiguration based)."""
    name = unique_name("waiter-v1")
    create_wasm(lam, name)
    lam.get_waiter("function_active").wait(FunctionName=name, WaiterConfig=FAST_WAITER)
    lam.update_function_configuration(FunctionName=name, Timeout=7)
    lam.get_waiter("function_updated").wait(FunctionName=name, WaiterConfig=FAST_WAITER)
    assert lam.get_function_configuration(FunctionName=name)["Timeout"] == 7


def test_create_accepts_the_fields_tools_always_send(lam):
    """SAM, Terraform and the AWS CLI send these with their default values."""
    name = unique_name("tool-fields")
    resp = lam.create_function(
        FunctionName=name,
        Runtime="wasm",
        Role=ROLE,
        Handler="hello.wasm",
        Code={"ZipFile": wasm_zip()},
        PackageType="Zip",
        Publish=False,
        TracingConfig={"Mode": "PassThrough"},
    )
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201
    wait_active(lam, name)


def test_unicode_description_and_environment_round_trip(lam):
    name = unique_name("unicode")
    env = {"GREETING": "héllo wörld ✓", "EMPTY": "", "JSON": '{"k": [1, "ü"]}'}
    create_wasm(lam, name, Description="Grüße, 世界 🚀", Environment={"Variables": env})
    cfg = wait_active(lam, name)["Configuration"]
    assert cfg["Description"] == "Grüße, 世界 🚀"
    assert cfg["Environment"]["Variables"] == env


def test_concurrent_creates_of_distinct_functions_all_succeed(lam):
    names = [unique_name(f"par-{i}") for i in range(8)]
    results: dict[str, object] = {}

    def create(n):
        try:
            results[n] = create_wasm(lam, n)["ResponseMetadata"]["HTTPStatusCode"]
        except ClientError as e:  # pragma: no cover - reported below
            results[n] = (error_code(e), http_status(e))

    threads = [threading.Thread(target=create, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {n: 201 for n in names}
    assert set(names) <= function_names(lam)
    for n in names:
        wait_active(lam, n)


def test_concurrent_creates_of_one_name_make_exactly_one_function(lam):
    name = unique_name("race")
    outcomes: list[object] = []
    lock = threading.Lock()

    def create():
        try:
            r = create_wasm(lam, name)["ResponseMetadata"]["HTTPStatusCode"]
        except ClientError as e:
            r = (error_code(e), http_status(e))
        with lock:
            outcomes.append(r)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count(201) == 1, outcomes
    assert outcomes.count(("ResourceConflictException", 409)) == 5, outcomes
    assert [f for f in function_names(lam) if f == name] == [name]
    wait_active(lam, name)


def test_function_names_are_case_sensitive(lam):
    base = unique_name("Case")
    upper, lower = base.upper(), base.lower()
    create_wasm(lam, upper, MemorySize=256)
    create_wasm(lam, lower, MemorySize=512)
    assert lam.get_function_configuration(FunctionName=upper)["MemorySize"] == 256
    assert lam.get_function_configuration(FunctionName=lower)["MemorySize"] == 512


@pytest.mark.parametrize(
    "code,extra",
    [
        ({"S3Bucket": "some-bucket", "S3Key": "code.zip"}, {}),
        ({}, {}),
        (
            {"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/img:latest"},
            {"PackageType": "Image"},
        ),
    ],
    ids=["s3-location", "no-code", "container-image"],
)
def test_code_sources_stoke_does_not_take_are_refused_clearly(lam, code, extra):
    name = unique_name("create-src")
    args = dict(FunctionName=name, Role=ROLE, Code=code, **extra)
    if extra.get("PackageType") != "Image":
        args.update(Runtime="wasm", Handler="hello.wasm")
    with pytest.raises(ClientError) as ei:
        lam.create_function(**args)
    status = http_status(ei.value)
    assert 400 <= status < 500, (status, ei.value.response["Error"])
    assert error_code(ei.value) in ("InvalidParameterValueException", "ValidationException"), (
        ei.value.response["Error"]
    )
    assert name not in function_names(lam)
