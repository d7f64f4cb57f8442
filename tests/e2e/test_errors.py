"""Errors outside the function's own values: duplicates, missing functions, and bodies or
routes the API does not take, which still get Lambda's JSON error shape, never a plain-text
framework error."""

import json

import pytest

from stoke_e2e import (
    config_of,
    create_wasm,
    expect_error,
    function_names,
    unique_name,
    wait_active,
    wasm_zip,
)


def _assert_lambda_error_shape(r, status):
    assert r.status == status, (r.status, r.headers, r.body[:300])
    assert r.header("x-amzn-ErrorType"), f"no x-amzn-ErrorType header: {r.headers}"
    assert "json" in (r.header("content-type") or ""), r.headers
    body = r.json()
    # AWS spells the member by type: `Message` (ResourceNotFoundException, …) or `message`
    # (ValidationException, InvalidParameterValueException, …); never both.
    assert isinstance(body, dict), body
    messages = [body[k] for k in ("Message", "message") if k in body]
    assert len(messages) == 1 and isinstance(messages[0], str) and messages[0], body
    return body


def test_duplicate_create_is_a_conflict_and_keeps_the_original(lam):
    name = unique_name("dup")
    create_wasm(lam, name, MemorySize=256, Description="original")
    before = config_of(wait_active(lam, name)["Configuration"])
    with expect_error("ResourceConflictException", 409) as ei:
        create_wasm(
            lam,
            name,
            MemorySize=1024,
            Description="impostor",
            zip_bytes=wasm_zip(extra={"x": b"y"}),
        )
    assert name in ei.value.response["Error"]["Message"]
    after = lam.get_function(FunctionName=name)["Configuration"]
    assert after == before
    assert sorted(n for n in function_names(lam) if n == name) == [name]


@pytest.mark.parametrize("op", ["get", "get_config", "update_code", "update_config", "delete"])
def test_operations_on_a_missing_function_are_not_found(lam, op):
    name = unique_name(f"missing-{op}")
    call = {
        "get": lambda: lam.get_function(FunctionName=name),
        "get_config": lambda: lam.get_function_configuration(FunctionName=name),
        "update_code": lambda: lam.update_function_code(FunctionName=name, ZipFile=wasm_zip()),
        "update_config": lambda: lam.update_function_configuration(FunctionName=name, Timeout=5),
        "delete": lambda: lam.delete_function(FunctionName=name),
    }[op]
    with expect_error("ResourceNotFoundException", 404) as ei:
        call()
    assert ei.value.response["Error"]["Message"].startswith("Function not found: arn:aws:lambda:")
    assert name not in function_names(lam)


def test_malformed_json_create_gets_lambdas_error_shape(server, lam):
    before = function_names(lam)
    r = server.signed_request("POST", "/2015-03-31/functions", b"{not json")
    body = _assert_lambda_error_shape(r, 400)
    assert r.error_type == "InvalidRequestContentException", (r.error_type, body)
    assert function_names(lam) == before


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"null",
        b'{"FunctionName": 5, "Role": "arn:aws:iam::123456789012:role/r", "Code": {}}',
        (
            b'{"FunctionName": "x", "Role": "arn:aws:iam::123456789012:role/r", "MemorySize": "big",'
            b' "Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}}'
        ),
        (
            b'{"FunctionName": "x", "Role": "arn:aws:iam::123456789012:role/r", "Runtime": "wasm",'
            b' "Handler": "h.wasm", "Code": {"ZipFile": "!!! not base64 !!!"}}'
        ),
    ],
    ids=["empty", "array", "null", "name-is-number", "memory-is-string", "zip-not-base64"],
)
def test_ill_typed_create_bodies_get_a_json_400(server, lam, body):
    before = function_names(lam)
    r = server.signed_request("POST", "/2015-03-31/functions", body)
    _assert_lambda_error_shape(r, 400)
    assert function_names(lam) == before


def test_malformed_json_update_changes_nothing(server, lam):
    name = unique_name("badjson-upd")
    create_wasm(lam, name)
    before = config_of(wait_active(lam, name)["Configuration"])
    r = server.signed_request("PUT", f"/2015-03-31/functions/{name}/configuration", b'{"Timeout": ')
    _assert_lambda_error_shape(r, 400)
    r = server.signed_request("PUT", f"/2015-03-31/functions/{name}/code", b"{{{")
    _assert_lambda_error_shape(r, 400)
    assert lam.get_function(FunctionName=name)["Configuration"] == before


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/2015-03-31/no-such-thing"),
        ("GET", "/"),
        ("PATCH", "/2015-03-31/functions/some-function"),
        ("POST", "/2016-08-19/account-settings"),
    ],
)
def test_unknown_routes_and_methods_get_a_json_error(server, method, path):
    r = server.signed_request(method, path, b"{}" if method in ("POST", "PATCH") else b"")
    assert 400 <= r.status < 500, (r.status, r.body[:300])
    _assert_lambda_error_shape(r, r.status)


def test_error_body_has_lambdas_type_field(server, lam):
    r = server.signed_request("GET", f"/2015-03-31/functions/{unique_name('shape')}")
    body = _assert_lambda_error_shape(r, 404)
    assert r.error_type == "ResourceNotFoundException"
    assert body.get("Type") == "User", body
    assert body.get("Message", "").startswith("Function not found: arn:aws:lambda:"), body
    json.dumps(body)  # plain JSON all the way
