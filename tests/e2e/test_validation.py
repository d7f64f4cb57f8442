"""Values that break the API model's constraints: ValidationException (400) with AWS's
"1 validation error detected: Value … at 'member' failed to satisfy constraint: …" message,
and nothing created.

These go through `lam_raw` (boto3 with client-side validation off): botocore itself refuses
some of these values (below a `min`) before sending, and the point is the server's answer.
"""

import pytest

from stoke_e2e import (
    ROLE,
    assert_absent,
    create_wasm,
    error_message,
    expect_error,
    function_names,
    unique_name,
    wait_active,
    wasm_zip,
)

BAD_CREATE_VALUES = [
    # (id, create kwargs, the member AWS names in the message)
    ("name-pattern", {"FunctionName": "bad name!"}, "functionName"),
    ("name-65-chars", {"FunctionName": "a" * 65}, "functionName"),
    ("name-141-chars", {"FunctionName": "b" * 141}, "functionName"),
    ("memory-127", {"MemorySize": 127}, "memorySize"),
    ("memory-10241", {"MemorySize": 10241}, "memorySize"),
    ("timeout-0", {"Timeout": 0}, "timeout"),
    ("timeout-901", {"Timeout": 901}, "timeout"),
    ("arch-sparc", {"Architectures": ["sparc"]}, "architectures"),
    ("arch-two", {"Architectures": ["x86_64", "arm64"]}, "architectures"),
    ("role-not-arn", {"Role": "not-a-role"}, "role"),
    ("role-not-iam", {"Role": "arn:aws:s3:::bucket/role"}, "role"),
    ("description-257", {"Description": "d" * 257}, "description"),
    ("handler-space", {"Handler": "has space.wasm"}, "handler"),
    ("handler-129", {"Handler": "h" * 125 + ".wasm"}, "handler"),
    ("ephemeral-511", {"EphemeralStorage": {"Size": 511}}, "ephemeralStorage.size"),
    ("ephemeral-10241", {"EphemeralStorage": {"Size": 10241}}, "ephemeralStorage.size"),
]


@pytest.mark.parametrize(
    "kwargs,member", [c[1:] for c in BAD_CREATE_VALUES], ids=[c[0] for c in BAD_CREATE_VALUES]
)
def test_create_with_a_value_outside_the_model_is_a_validation_error(lam, lam_raw, kwargs, member):
    name = kwargs.get("FunctionName") or unique_name("val")
    args = {k: v for k, v in kwargs.items() if k != "FunctionName"}
    with expect_error("ValidationException", 400) as ei:
        create_wasm(lam_raw, name, **args)
    msg = error_message(ei.value)
    assert msg.startswith("1 validation error detected: "), msg
    assert f"at '{member}'" in msg, f"the message does not name {member!r}: {msg}"
    assert "failed to satisfy constraint" in msg, msg
    if "FunctionName" in kwargs:
        # The name is unusable in a URL path as well; check only the list.
        assert name not in function_names(lam)
    else:
        assert_absent(lam, name)


def test_boundary_values_are_accepted(lam):
    for kw in (
        {"MemorySize": 128, "Timeout": 1, "EphemeralStorage": {"Size": 512}},
        {"MemorySize": 10240, "Timeout": 900, "EphemeralStorage": {"Size": 10240}},
        {"Description": "d" * 256, "Architectures": ["arm64"]},
        {"Role": "arn:aws:iam::123456789012:role/service-role/My_Role+=,.@-"},
    ):
        name = unique_name("val-edge")
        resp = create_wasm(lam, name, **kw)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201, kw
    name = "a" * 64
    create_wasm(lam, name)
    lam.delete_function(FunctionName=name)
    for name in ("A-b_9", "x"):
        create_wasm(lam, name)
        lam.delete_function(FunctionName=name)


def test_two_bad_values_are_counted_in_one_message(lam_raw, lam):
    name = unique_name("val-two")
    with expect_error("ValidationException", 400) as ei:
        create_wasm(lam_raw, name, MemorySize=127, Timeout=0)
    msg = error_message(ei.value)
    assert msg.startswith("2 validation errors detected: "), msg
    assert "at 'memorySize'" in msg and "at 'timeout'" in msg, msg
    assert_absent(lam, name)


def test_bad_function_name_in_the_path_is_a_validation_error(lam_raw):
    with expect_error("ValidationException", 400) as ei:
        lam_raw.get_function(FunctionName="bad name!")
    assert error_message(ei.value).startswith("1 validation error detected: ")
    # A reference by name or ARN may be 170 characters long (a longer-than-64 name that fits
    # the pattern is simply not found); past that it is invalid.
    with expect_error("ValidationException", 400) as ei:
        lam_raw.delete_function(FunctionName="c" * 171)
    assert error_message(ei.value).endswith("Member must have length less than or equal to 170")
    with expect_error("ResourceNotFoundException", 404):
        lam_raw.delete_function(FunctionName="c" * 141)


def test_missing_runtime_or_handler_for_a_zip_is_refused(lam_raw, lam):
    """Lambda: 'Runtime and Handler are mandatory parameters for functions created with
    deployment packages.' (InvalidParameterValueException)."""
    for drop in ("Runtime", "Handler"):
        name = unique_name(f"val-no-{drop.lower()}")
        args = dict(
            FunctionName=name,
            Runtime="wasm",
            Role=ROLE,
            Handler="hello.wasm",
            Code={"ZipFile": wasm_zip()},
        )
        del args[drop]
        with expect_error("InvalidParameterValueException", 400):
            lam_raw.create_function(**args)
        assert_absent(lam, name)


def test_environment_variable_names_follow_the_model_pattern(lam_raw, lam):
    """EnvironmentVariableName is `[a-zA-Z]([a-zA-Z0-9_])+`: two characters at least."""
    for bad in ("1ABC", "A", "HAS-DASH"):
        name = unique_name("val-env")
        with expect_error("ValidationException", 400) as ei:
            create_wasm(lam_raw, name, Environment={"Variables": {bad: "v"}})
        assert "at 'environment.variables'" in error_message(ei.value), error_message(ei.value)
        assert_absent(lam, name)


def test_a_nul_in_an_environment_value_is_refused_at_create_and_update(lam_raw, lam):
    """A process environment cannot hold a NUL: refused when configured
    (InvalidParameterValueException, in the words of Lambda's other environment errors), not
    later at invoke."""
    name = unique_name("val-env-nul")
    with expect_error("InvalidParameterValueException", 400) as ei:
        create_wasm(lam_raw, name, Environment={"Variables": {"GOOD": "a\0b"}})
    msg = error_message(ei.value)
    assert "null character" in msg and msg.endswith("GOOD"), msg
    assert_absent(lam, name)

    create_wasm(lam, name, Environment={"Variables": {"GOOD": "ab"}})
    wait_active(lam, name)
    with expect_error("InvalidParameterValueException", 400):
        lam_raw.update_function_configuration(
            FunctionName=name, Environment={"Variables": {"GOOD": "\0"}}
        )
    cfg = lam.get_function_configuration(FunctionName=name)
    assert cfg["Environment"]["Variables"] == {"GOOD": "ab"}


def test_an_environment_key_with_a_nul_is_a_validation_error_without_the_value(lam_raw, lam):
    """Keys follow `[a-zA-Z]([a-zA-Z0-9_])+`; the map is sensitive, so AWS's message names the
    member and the pattern, not the key."""
    name = unique_name("val-env-key")
    with expect_error("ValidationException", 400) as ei:
        create_wasm(lam_raw, name, Environment={"Variables": {"BAD\0KEY": "v"}})
    assert error_message(ei.value) == (
        "1 validation error detected: Value at 'environment.variables' failed to satisfy "
        "constraint: Map keys must satisfy constraint: [Member must satisfy regular "
        "expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]"
    )
    assert_absent(lam, name)


def test_layers_are_refused_until_supported_and_an_empty_list_is_not(lam_raw, lam):
    layer = "arn:aws:lambda:us-east-1:123456789012:layer:shared:3"
    name = unique_name("val-layers")
    with expect_error("InvalidParameterValueException", 400) as ei:
        create_wasm(lam_raw, name, Layers=[layer])
    msg = error_message(ei.value)
    assert msg.startswith("Layers are not supported by Stoke yet") and layer in msg, msg
    assert_absent(lam, name)

    create_wasm(lam, name, Layers=[])
    wait_active(lam, name)
    with expect_error("InvalidParameterValueException", 400):
        lam_raw.update_function_configuration(FunctionName=name, Layers=[layer])
    lam.update_function_configuration(FunctionName=name, Layers=[])


def test_an_empty_handler_is_a_validation_error_at_create_and_update(lam_raw, lam):
    """Handler's pattern `[^\\s]+` refuses the empty string (boto3's model has min 0, so only the
    server can say so), whatever the runtime."""
    for runtime in ("wasm", "provided.al2023", "python3.12"):
        name = unique_name("val-handler-empty")
        with expect_error("ValidationException", 400) as ei:
            create_wasm(lam_raw, name, Runtime=runtime, Handler="")
        msg = error_message(ei.value)
        assert msg == (
            "1 validation error detected: Value '' at 'handler' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: [^\\s]+"
        ), msg
        assert_absent(lam, name)
    name = unique_name("val-handler-upd")
    create_wasm(lam, name)
    wait_active(lam, name)
    with expect_error("ValidationException", 400):
        lam_raw.update_function_configuration(FunctionName=name, Handler="")
    assert lam.get_function_configuration(FunctionName=name)["Handler"] == "hello.wasm"
