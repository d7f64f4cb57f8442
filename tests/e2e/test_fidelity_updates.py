"""Updates do not run the user's code (issue 12): on Lambda, UpdateFunctionCode and
UpdateFunctionConfiguration end `Successful` even when the new code's Init will fail, the
failure shows on the next invoke (200, `X-Amz-Function-Error: Unhandled`, the runtime's
`errorType`/`errorMessage`), and neither PublishVersion nor CreateFunction runs code. Stoke
still warms an update's new code beside the old before calls move to it; when that warm-up
fails its Init, the error goes to the function's logs and the update switches anyway. Tagging a
function `stoke:deploy-check=init` opts into the stricter check (such an update ends `Failed`
and the old code serves). Code that cannot be prepared (a wasm module that does not validate)
fails the update with its reason under either."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest

from stoke_e2e import (
    ROLE,
    create_wasm,
    expect_error,
    make_zip,
    unique_name,
    wait_active,
    wait_updated,
)
from stoke_guests import log_events, log_tail, request_id

DEPLOY_CHECK = "stoke:deploy-check"

# Answers {"code": TAG}; Init raises when BREAK_INIT is set.
APP = b"""import os

if os.environ.get("BREAK_INIT"):
    raise RuntimeError("init broke: " + os.environ["BREAK_INIT"])


def handler(event, context):
    return {"code": os.environ.get("TAG", "v1")}
"""

# A wasm module that does not validate: the magic and version, then a section that runs past
# the end.
BROKEN_WASM = b"\x00asm\x01\x00\x00\x00\x01\xff\xff\xff\x0f"


def create_python(lam, prefix: str, **kw) -> str:
    name = unique_name(prefix)
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": APP})},
        Timeout=10,
        **kw,
    )
    cfg = wait_active(lam, name)["Configuration"]
    assert cfg["State"] == "Active", cfg
    return name


def invoke(lam, name: str, **kw) -> tuple[dict, dict, str]:
    """Invoke with the log tail: (response, decoded payload, tail)."""
    resp = lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail", **kw)
    body = json.loads(resp["Payload"].read())
    return resp, body, log_tail(resp)


def assert_init_error(lam, name: str, error_type: str, message: str, **kw) -> None:
    """The call answers Lambda's Init error: 200, Unhandled, the runtime's errorType and
    errorMessage (`{rid}` in `message` is the call's request id), after a cold start."""
    resp, body, tail = invoke(lam, name, **kw)
    assert resp["StatusCode"] == 200, resp
    assert resp.get("FunctionError") == "Unhandled", (body, tail)
    assert body["errorType"] == error_type, body
    assert body["errorMessage"] == message.format(rid=request_id(resp)), body
    assert "Init Duration: " in tail, f"not a cold start:\n{tail}"


def warm_up_lines(server, name: str, error_type: str) -> list[str]:
    """The function's log lines once the warm-up's INIT_REPORT is among them."""
    report = f"\tPhase: init\tStatus: error\tError Type: {error_type}"

    def has_report(events):
        return any(
            e["message"].startswith("INIT_REPORT Init Duration: ")
            and e["message"].endswith(report)
            for e in events
        )

    events = log_events(server, name, has_report)
    lines = [e["message"] for e in events]
    assert has_report(events), f"no INIT_REPORT of {error_type} in the logs: {lines}"
    return lines


@dataclass(frozen=True)
class Breaking:
    """An update that makes Init fail, and what Lambda answers the next call."""

    kind: str  # "code" or "config"
    what: dict
    error_type: str
    message: str  # {rid}: the call's request id
    # What the update's `[stoke]` log line says of the error (no request id: no call).
    logged: str


BREAKING = [
    pytest.param(
        Breaking(
            "code",
            {"ZipFile": make_zip({"app.py": b"import not_installed_here\n"})},
            "Runtime.ImportModuleError",
            "Unable to import module 'app': No module named 'not_installed_here'",
            "Runtime.ImportModuleError: Unable to import module 'app': No module named "
            "'not_installed_here'",
        ),
        id="code-import-error",
    ),
    pytest.param(
        Breaking(
            "code",
            {"ZipFile": make_zip({"app.py": b"import sys\nsys.exit(3)\n"})},
            "Runtime.ExitError",
            "RequestId: {rid} Error: Runtime exited with error: exit status 3",
            "Runtime.ExitError: Runtime exited with error: exit status 3",
        ),
        id="code-exits",
    ),
    pytest.param(
        Breaking(
            "config",
            {"Environment": {"Variables": {"BREAK_INIT": "now"}}},
            "RuntimeError",
            "init broke: now",
            "RuntimeError: init broke: now",
        ),
        id="config-env-raises",
    ),
]


def update(lam, name: str, kind: str, what: dict) -> dict:
    if kind == "code":
        resp = lam.update_function_code(FunctionName=name, **what)
    else:
        resp = lam.update_function_configuration(FunctionName=name, **what)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200, resp
    assert resp["LastUpdateStatus"] == "InProgress", resp
    return resp


@pytest.mark.parametrize("case", BREAKING)
def test_an_update_whose_init_fails_is_successful_and_the_next_invoke_answers_the_init_error(
    server, lam, case: Breaking
):
    name = create_python(lam, "fid-upd")
    _, body, _ = invoke(lam, name)
    assert body == {"code": "v1"}

    update(lam, name, case.kind, case.what)
    cfg = wait_updated(lam, name)["Configuration"]
    assert (cfg["State"], cfg["LastUpdateStatus"]) == ("Active", "Successful"), cfg
    for absent in ("LastUpdateStatusReason", "LastUpdateStatusReasonCode", "StateReasonCode"):
        assert absent not in cfg, cfg

    # The warm-up's error is in the function's logs, with Lambda's INIT_REPORT line.
    lines = warm_up_lines(server, name, case.error_type)
    stoke = [ln for ln in lines if ln.startswith("[stoke] The warm-up of the update")]
    assert len(stoke) == 1, lines
    assert f"failed its Init: {case.logged}; the update went through" in stoke[0], stoke

    # Calls moved to the new code: each starts an environment and answers the Init error.
    for _ in range(2):
        assert_init_error(lam, name, case.error_type, case.message)

    # Publishing runs no code either: the version is Active and answers the same.
    v = lam.publish_version(FunctionName=name)
    assert v["ResponseMetadata"]["HTTPStatusCode"] == 201, v
    assert (v["Version"], v["State"]) == ("1", "Active"), v
    assert_init_error(lam, name, case.error_type, case.message, Qualifier="1")

    # A fixed update afterwards serves again.
    if case.kind == "code":
        update(lam, name, "code", {"ZipFile": make_zip({"app.py": APP.replace(b'"v1"', b'"v2"')})})
        want = {"code": "v2"}
    else:
        update(lam, name, "config", {"Environment": {"Variables": {"TAG": "v2"}}})
        want = {"code": "v2"}
    assert wait_updated(lam, name)["Configuration"]["LastUpdateStatus"] == "Successful"
    resp, body, _ = invoke(lam, name)
    assert "FunctionError" not in resp and body == want, body


def test_update_code_with_publish_of_code_whose_init_fails_publishes_an_active_version(lam):
    name = create_python(lam, "fid-pub")
    broken = make_zip({"app.py": b"import not_installed_here\n"})
    lam.update_function_code(FunctionName=name, ZipFile=broken, Publish=True)
    cfg = wait_updated(lam, name)["Configuration"]
    assert cfg["LastUpdateStatus"] == "Successful", cfg
    versions = lam.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"], versions
    v1 = wait_settled(lam, f"{name}:1", "State", "Pending")
    assert (v1["State"], v1["CodeSha256"]) == ("Active", cfg["CodeSha256"]), v1
    assert_init_error(
        lam,
        name,
        "Runtime.ImportModuleError",
        "Unable to import module 'app': No module named 'not_installed_here'",
        Qualifier="1",
    )


def test_create_of_code_whose_init_fails_is_active_and_the_invoke_answers_the_init_error(lam):
    name = create_python(lam, "fid-create", Environment={"Variables": {"BREAK_INIT": "first"}})
    assert_init_error(lam, name, "RuntimeError", "init broke: first")


def test_under_the_deploy_check_tag_an_update_whose_init_fails_fails_and_the_old_code_serves(
    server, lam
):
    name = create_python(lam, "fid-strict", Tags={DEPLOY_CHECK: "init"})
    lam.update_function_configuration(
        FunctionName=name, Environment={"Variables": {"BREAK_INIT": "strict"}}
    )
    cfg = wait_settled(lam, name)
    assert (cfg["State"], cfg["LastUpdateStatus"]) == ("Active", "Failed"), cfg
    assert cfg["LastUpdateStatusReasonCode"] == "FunctionError.RuntimeInitError", cfg
    assert cfg["LastUpdateStatusReason"] == (
        "The function's new code failed its Init: RuntimeError: init broke: strict"
    ), cfg
    # GetFunction shows the configuration asked for; calls run the old one.
    assert cfg["Environment"] == {"Variables": {"BREAK_INIT": "strict"}}, cfg
    resp, body, _ = invoke(lam, name)
    assert "FunctionError" not in resp and body == {"code": "v1"}, body
    lines = warm_up_lines(server, name, "RuntimeError")
    assert any(
        "failed its Init: RuntimeError: init broke: strict; the update failed "
        "(stoke:deploy-check = init): the previous code goes on serving." in ln
        for ln in lines
    ), lines
    # A failed update is not published.
    with expect_error("ResourceConflictException", 409, "cannot be published"):
        lam.publish_version(FunctionName=name)

    # Without the tag, the same configuration goes through as on Lambda.
    arn = cfg["FunctionArn"]
    lam.untag_resource(Resource=arn, TagKeys=[DEPLOY_CHECK])
    lam.update_function_configuration(FunctionName=name, Description="untagged")
    cfg = wait_updated(lam, name)["Configuration"]
    assert cfg["LastUpdateStatus"] == "Successful", cfg
    assert_init_error(lam, name, "RuntimeError", "init broke: strict")


def wait_settled(lam, name: str, field: str = "LastUpdateStatus", busy: str = "InProgress") -> dict:
    """GetFunctionConfiguration until `field` is no longer `busy` (not a waiter: boto3's
    waiters stop with an error on Failed, which is what these tests wait for)."""
    deadline = time.monotonic() + 30
    while True:
        cfg = lam.get_function_configuration(FunctionName=name)
        if cfg.get(field) != busy:
            return cfg
        assert time.monotonic() < deadline, f"still {busy}: {cfg}"
        time.sleep(0.05)


@pytest.mark.parametrize("tags", [{}, {DEPLOY_CHECK: "init"}], ids=["default", "deploy-check"])
def test_a_wasm_module_that_does_not_compile_fails_the_update_with_a_reason(lam, tags):
    name = unique_name("fid-wasm")
    create_wasm(lam, name, Tags=tags)
    wait_active(lam, name)
    lam.update_function_code(FunctionName=name, ZipFile=make_zip({"hello.wasm": BROKEN_WASM}))
    cfg = wait_settled(lam, name)
    assert (cfg["State"], cfg["LastUpdateStatus"]) == ("Active", "Failed"), cfg
    assert cfg["LastUpdateStatusReasonCode"] == "InvalidZipFileException", cfg
    assert cfg["LastUpdateStatusReason"].startswith(
        "The module 'hello.wasm' does not compile: "
    ), cfg
    # The old module serves.
    resp = lam.invoke(FunctionName=name, Payload=b"{}")
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, resp

    # And a new function with that module is Failed with the same reason.
    bad = unique_name("fid-wasm-new")
    create_wasm(lam, bad, zip_bytes=make_zip({"hello.wasm": BROKEN_WASM}), Tags=tags)
    cfg = wait_settled(lam, bad, "State", "Pending")
    assert cfg["State"] == "Failed", cfg
    assert cfg["StateReasonCode"] == "InvalidZipFileException", cfg
    assert cfg["StateReason"].startswith("The module 'hello.wasm' does not compile: "), cfg
