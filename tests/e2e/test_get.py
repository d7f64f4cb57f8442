"""GetFunction and GetFunctionConfiguration: the configuration, the Code.Location URL (a plain
GET returns the zip; a tampered URL is refused), and the name forms Lambda accepts."""

import urllib.parse

import pytest

from stoke_e2e import (
    WASM_MODULE,
    config_of,
    create_wasm,
    expect_error,
    http_get,
    make_zip,
    sha256_b64,
    unique_name,
    wait_active,
    wasm_zip,
)


@pytest.fixture(scope="module")
def fn(lam):
    """One Active function with tags, and its zip."""
    name = unique_name("get")
    code = wasm_zip(extra={"assets/blob.bin": bytes(range(256)) * 64})
    create_wasm(lam, name, zip_bytes=code, Tags={"k": "v"}, MemorySize=192)
    wait_active(lam, name)
    return name, code


def test_get_function_returns_configuration_code_and_tags(lam, fn):
    name, code = fn
    got = lam.get_function(FunctionName=name)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    cfg = got["Configuration"]
    assert cfg["FunctionName"] == name
    assert cfg["CodeSha256"] == sha256_b64(code)
    assert cfg["CodeSize"] == len(code)
    assert cfg["MemorySize"] == 192
    assert cfg["State"] == "Active"
    assert got["Tags"] == {"k": "v"}
    assert got["Code"]["RepositoryType"] == "S3"
    assert got["Code"]["Location"].startswith(("http://", "https://"))


def test_get_function_configuration_equals_get_function_configuration_part(lam, fn):
    name, _ = fn
    a = lam.get_function(FunctionName=name)["Configuration"]
    b = config_of(lam.get_function_configuration(FunctionName=name))
    assert a == b


def test_code_location_serves_the_zip_to_a_plain_get(lam, fn):
    name, code = fn
    loc = lam.get_function(FunctionName=name)["Code"]["Location"]
    r = http_get(loc)
    assert r.status == 200, (r.status, r.body[:300])
    assert r.body == code
    # A second GET of the same URL (within its lifetime) works as well.
    assert http_get(loc).body == code


def _query(url):
    return urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True)


def _with_query(url, params):
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(u._replace(query=urllib.parse.urlencode(params)))


def _param_named(url, *needles):
    for k, _ in _query(url):
        if any(n in k.lower() for n in needles):
            return k
    return None


def _tampered(url, key, change):
    return _with_query(url, [(k, change(v) if k == key else v) for k, v in _query(url)])


def _flip(v: str) -> str:
    if not v:
        return "x"
    c = v[-1]
    return v[:-1] + ("0" if c != "0" else "1")


def test_code_location_with_a_tampered_signature_is_refused(lam, fn):
    name, _ = fn
    loc = lam.get_function(FunctionName=name)["Code"]["Location"]
    key = _param_named(loc, "signature", "sig")
    assert key, f"no signature parameter in the Code.Location query: {loc}"
    r = http_get(_tampered(loc, key, _flip))
    assert r.status == 403, (r.status, r.body[:300])


def test_code_location_with_a_tampered_expiry_is_refused(lam, fn):
    name, _ = fn
    loc = lam.get_function(FunctionName=name)["Code"]["Location"]
    key = _param_named(loc, "expire", "expiry", "exp")
    assert key, f"no expiry parameter in the Code.Location query: {loc}"

    def extend(v):
        return str(int(v) + 3600) if v.isdigit() else _flip(v)

    r = http_get(_tampered(loc, key, extend))
    assert r.status == 403, (r.status, r.body[:300])


def test_code_location_without_its_query_is_refused(lam, fn):
    name, _ = fn
    loc = lam.get_function(FunctionName=name)["Code"]["Location"]
    bare = urllib.parse.urlunsplit(urllib.parse.urlsplit(loc)._replace(query=""))
    r = http_get(bare)
    assert r.status == 403, (r.status, r.body[:300])


def test_code_location_signature_does_not_open_another_functions_code(lam, fn):
    name, _ = fn
    other = unique_name("get-other")
    create_wasm(lam, other, zip_bytes=make_zip({"hello.wasm": WASM_MODULE, "other": b"2"}))
    wait_active(lam, other)
    mine = urllib.parse.urlsplit(lam.get_function(FunctionName=name)["Code"]["Location"])
    theirs = urllib.parse.urlsplit(lam.get_function(FunctionName=other)["Code"]["Location"])
    assert mine.path != theirs.path
    forged = urllib.parse.urlunsplit(theirs._replace(query=mine.query))
    r = http_get(forged)
    assert r.status == 403, (r.status, r.body[:300])


def test_get_by_arn_partial_arn_and_latest_qualifier(lam, fn, account_id):
    name, _ = fn
    base = lam.get_function_configuration(FunctionName=name)
    arn = f"arn:aws:lambda:us-east-1:{account_id}:function:{name}"
    assert base["FunctionArn"] == arn
    for ident in (arn, f"{account_id}:function:{name}"):
        assert config_of(lam.get_function_configuration(FunctionName=ident)) == config_of(base)
        assert lam.get_function(FunctionName=ident)["Configuration"] == config_of(base)
    # With a qualifier Lambda may answer the qualified ARN (…:function:NAME:$LATEST).
    latest = lam.get_function(FunctionName=name, Qualifier="$LATEST")["Configuration"]
    assert latest["FunctionArn"] in (arn, f"{arn}:$LATEST")
    unqualified = {k: v for k, v in config_of(base).items() if k != "FunctionArn"}
    assert {k: v for k, v in latest.items() if k != "FunctionArn"} == unqualified


def test_get_missing_function_is_not_found_with_lambdas_message(lam, account_id):
    name = unique_name("missing")
    msg = f"Function not found: arn:aws:lambda:us-east-1:{account_id}:function:{name}"
    with expect_error("ResourceNotFoundException", 404) as ei:
        lam.get_function(FunctionName=name)
    assert ei.value.response["Error"]["Message"] == msg
    with expect_error("ResourceNotFoundException", 404):
        lam.get_function_configuration(FunctionName=name)
