"""Lambda's error answers, exactly: one table per operation, each case a bad request sent with
real boto3 (client-side validation off, so the server sees what AWS would see) and asserted on
its status, `x-amzn-ErrorType` / `Error.Code`, the body as it left the server (`Type` and the
message member the model names for the type: `Message` or `message`; a ValidationException is
AWS's front door's `{"message": …}`), what boto3 exposes of it, and AWS's wording.

Patterns are read from boto3's own model, so a message quotes what the model says."""

import json
import pathlib
import subprocess
import sys
import uuid

import pytest
from botocore.exceptions import ClientError

from stoke_e2e import REGION, create_wasm, make_zeros_zip, unique_name, wait_active

OTHER_REGION = "eu-west-1"


class Ctx:
    """The function every case works on (version 1 and alias `live`), and a missing one."""

    def __init__(self, lam, account):
        self.lam = lam
        self.account = account
        self.name = unique_name("fid")
        self.missing = unique_name("fid-missing")
        create_wasm(lam, self.name)
        wait_active(lam, self.name)
        lam.publish_version(FunctionName=self.name)
        lam.create_alias(FunctionName=self.name, Name="live", FunctionVersion="1")
        self.sha = lam.get_function(FunctionName=self.name)["Configuration"]["CodeSha256"]
        model = lam.meta.service_model
        self.pattern = {
            n: model.shape_for(n).metadata["pattern"]
            for n in ("NamespacedFunctionName", "FunctionName", "Alias", "TaggableResource")
        }

    def arn(self, name=None):
        return f"arn:aws:lambda:{REGION}:{self.account}:function:{name or self.name}"

    def elsewhere(self):
        return f"arn:aws:lambda:{OTHER_REGION}:{self.account}:function:{self.name}"


@pytest.fixture(scope="module")
def ctx(server, account_id):
    return Ctx(server.client(), account_id)


@pytest.fixture(scope="module")
def raw(server):
    """A client that leaves validation to the server, keeping each answer's raw body."""
    client = server.client(parameter_validation=False)
    seen = {}

    def keep(http_response, **_):
        seen["body"] = http_response.content

    client.meta.events.register("after-call.lambda", keep)
    client.seen = seen
    return client


def user(member, message):
    return {"Type": "User", member: message}


def front_door(message):
    return {"message": message}


def not_found(message):
    return (404, "ResourceNotFoundException", user("Message", message))


def invalid_value(message):
    return (400, "InvalidParameterValueException", user("message", message))


def validation(*violations):
    n = len(violations)
    head = "1 validation error detected" if n == 1 else f"{n} validation errors detected"
    return (400, "ValidationException", front_door(f"{head}: " + "; ".join(violations)))


def violation(value, member, constraint):
    return f"Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"


def missing_function(x):
    return not_found(f"Function not found: {x.arn(x.missing)}")


def other_region(x):
    return not_found(
        f"Functions from '{OTHER_REGION}' are not reachable in this region ('{REGION}')"
    )


def check(raw, call, expected):
    status, code, body = expected
    raw.seen.clear()
    with pytest.raises(ClientError) as ei:
        call()
    r = ei.value.response
    message = body.get("Message", body.get("message"))
    assert r["ResponseMetadata"]["HTTPStatusCode"] == status, r
    assert r["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-errortype") == code, r
    assert r["Error"]["Code"] == code, r
    assert r["Error"]["Message"] == message, r["Error"]["Message"]
    assert json.loads(raw.seen["body"]) == body, raw.seen["body"]
    # boto3 puts a modeled error's members at the top of the response, spelled as AWS's.
    for k in ("Type", "Message", "message"):
        if k in body and code != "ValidationException":
            assert r.get(k) == body[k], (k, r)


LONG_65 = "a" * 65
LONG_171 = "a" * 171

GET_FUNCTION = {
    "missing": (
        lambda c, x: c.get_function(FunctionName=x.missing),
        missing_function,
    ),
    "missing-version": (
        lambda c, x: c.get_function(FunctionName=x.name, Qualifier="1221"),
        lambda x: not_found(f"Function not found: {x.arn()}:1221"),
    ),
    "missing-alias": (
        lambda c, x: c.get_function(FunctionName=x.name, Qualifier="nope"),
        lambda x: not_found(f"Function not found: {x.arn()}:nope"),
    ),
    "other-region": (
        lambda c, x: c.get_function(FunctionName=x.elsewhere()),
        other_region,
    ),
    "too-long-to-create-but-valid": (
        lambda c, x: c.get_function(FunctionName=LONG_65),
        lambda x: not_found(f"Function not found: {x.arn(LONG_65)}"),
    ),
    "over-170": (
        lambda c, x: c.get_function(FunctionName=LONG_171),
        lambda x: validation(
            violation(
                LONG_171, "functionName", "Member must have length less than or equal to 170"
            )
        ),
    ),
    "bad-pattern": (
        lambda c, x: c.get_function(FunctionName="bad!name"),
        lambda x: validation(
            violation(
                "bad!name",
                "functionName",
                "Member must satisfy regular expression pattern: "
                + x.pattern["NamespacedFunctionName"],
            )
        ),
    ),
    "bad-pattern-and-too-long": (
        lambda c, x: c.get_function(FunctionName="!" * 171),
        lambda x: validation(
            violation(
                "!" * 171,
                "functionName",
                "Member must satisfy regular expression pattern: "
                + x.pattern["NamespacedFunctionName"],
            ),
            violation(
                "!" * 171, "functionName", "Member must have length less than or equal to 170"
            ),
        ),
    ),
    "qualifier-mismatch": (
        lambda c, x: c.get_function(FunctionName=f"{x.name}:1", Qualifier="live"),
        lambda x: invalid_value(
            "The derived qualifier from the function name does not match the specified qualifier."
        ),
    ),
    "configuration-of-missing": (
        lambda c, x: c.get_function_configuration(FunctionName=x.missing),
        missing_function,
    ),
}

CREATE_FUNCTION = {
    "name-over-64": (
        lambda c, x: create_wasm(c, LONG_65),
        lambda x: validation(
            violation(LONG_65, "functionName", "Member must have length less than or equal to 64")
        ),
    ),
    "exists": (
        lambda c, x: create_wasm(c, x.name),
        lambda x: (
            409,
            "ResourceConflictException",
            user("message", f"Function already exist: {x.name}"),
        ),
    ),
    "not-a-zip": (
        lambda c, x: create_wasm(c, unique_name("fid-nozip"), zip_bytes=b"PK\x03\x04 not a zip"),
        lambda x: invalid_value(
            "Could not unzip uploaded file. Please check your file, then try to upload again."
        ),
    ),
    "unzipped-over-250-mb": (
        lambda c, x: create_wasm(
            c, unique_name("fid-bomb"), zip_bytes=make_zeros_zip({"zeros": 262_144_001})
        ),
        lambda x: invalid_value("Unzipped size must be smaller than 262144000 bytes"),
    ),
    "memory-and-timeout": (
        lambda c, x: create_wasm(c, unique_name("fid-mem"), MemorySize=100, Timeout=0),
        lambda x: validation(
            # In the order of the model's members: Timeout comes before MemorySize.
            violation("0", "timeout", "Member must have value greater than or equal to 1"),
            violation("100", "memorySize", "Member must have value greater than or equal to 128"),
        ),
    ),
}

UPDATE_FUNCTION = {
    "code-of-missing": (
        lambda c, x: c.update_function_code(FunctionName=x.missing, ZipFile=b"PK"),
        missing_function,
    ),
    "configuration-of-other-region": (
        lambda c, x: c.update_function_configuration(FunctionName=x.elsewhere(), Timeout=5),
        other_region,
    ),
    "delete-latest": (
        lambda c, x: c.delete_function(FunctionName=x.name, Qualifier="$LATEST"),
        lambda x: invalid_value("$LATEST version cannot be deleted without deleting the function."),
    ),
    "delete-alias": (
        lambda c, x: c.delete_function(FunctionName=x.name, Qualifier="live"),
        lambda x: invalid_value("Deletion of aliases is not currently supported."),
    ),
    "delete-missing": (
        lambda c, x: c.delete_function(FunctionName=x.missing),
        missing_function,
    ),
}

VERSIONS = {
    "publish-wrong-sha": (
        lambda c, x: c.publish_version(FunctionName=x.name, CodeSha256="nope"),
        lambda x: invalid_value(
            f"CodeSHA256 (nope) is different from current CodeSHA256 in $LATEST ({x.sha}). "
            "Please try again with the CodeSHA256 in $LATEST."
        ),
    ),
    "publish-wrong-revision": (
        lambda c, x: c.publish_version(FunctionName=x.name, RevisionId=str(uuid.uuid4())),
        lambda x: (
            412,
            "PreconditionFailedException",
            user(
                "message",
                "The Revision Id provided does not match the latest Revision Id. Call the "
                "GetFunction/GetAlias API to retrieve the latest Revision Id",
            ),
        ),
    ),
    "list-of-missing": (
        lambda c, x: c.list_versions_by_function(FunctionName=x.missing),
        missing_function,
    ),
}

ALIASES = {
    "get-missing": (
        lambda c, x: c.get_alias(FunctionName=x.name, Name="nope"),
        lambda x: not_found(f"Alias not found: {x.arn()}:nope"),
    ),
    "update-missing": (
        lambda c, x: c.update_alias(FunctionName=x.name, Name="nope", FunctionVersion="1"),
        lambda x: not_found(f"Alias not found: {x.arn()}:nope"),
    ),
    "create-existing": (
        lambda c, x: c.create_alias(FunctionName=x.name, Name="live", FunctionVersion="1"),
        lambda x: (
            409,
            "ResourceConflictException",
            user("message", f"Alias already exists: {x.arn()}:live"),
        ),
    ),
    "create-on-missing-version": (
        lambda c, x: c.create_alias(FunctionName=x.name, Name="ten", FunctionVersion="10"),
        lambda x: not_found(f"Function not found: {x.arn()}:10"),
    ),
    "create-all-digits": (
        lambda c, x: c.create_alias(FunctionName=x.name, Name="12", FunctionVersion="1"),
        lambda x: validation(
            violation(
                "12",
                "name",
                "Member must satisfy regular expression pattern: " + x.pattern["Alias"],
            )
        ),
    ),
}

TAGS = {
    "qualified-arn": (
        lambda c, x: c.tag_resource(Resource=f"{x.arn()}:1", Tags={"a": "b"}),
        lambda x: invalid_value(
            "Tags on function aliases and versions are not supported. Please specify a "
            "function ARN."
        ),
    ),
    "over-the-limit": (
        lambda c, x: c.tag_resource(Resource=x.arn(), Tags={f"k{i}": "v" for i in range(51)}),
        lambda x: invalid_value("Number of tags exceeds resource tag limit."),
    ),
    "missing-function": (
        lambda c, x: c.tag_resource(Resource=x.arn(x.missing), Tags={"a": "b"}),
        missing_function,
    ),
    "list-other-region": (
        lambda c, x: c.list_tags(Resource=x.elsewhere()),
        other_region,
    ),
    "not-an-arn": (
        lambda c, x: c.list_tags(Resource=x.name),
        lambda x: validation(
            violation(
                x.name,
                "resource",
                "Member must satisfy regular expression pattern: " + x.pattern["TaggableResource"],
            )
        ),
    ),
}

EVENT_INVOKE_CONFIGS = {
    "put-missing-function": (
        lambda c, x: c.put_function_event_invoke_config(
            FunctionName=x.missing, MaximumRetryAttempts=1
        ),
        lambda x: not_found("The function doesn't exist."),
    ),
    "put-missing-alias": (
        lambda c, x: c.put_function_event_invoke_config(
            FunctionName=x.name, Qualifier="nope", MaximumRetryAttempts=1
        ),
        lambda x: not_found("The function doesn't exist."),
    ),
    "update-missing-function": (
        lambda c, x: c.update_function_event_invoke_config(
            FunctionName=x.missing, MaximumRetryAttempts=1
        ),
        lambda x: not_found("The function doesn't exist."),
    ),
    "list-missing-function": (
        lambda c, x: c.list_function_event_invoke_configs(FunctionName=x.missing),
        lambda x: not_found("The function doesn't exist."),
    ),
    "get-missing-function": (
        lambda c, x: c.get_function_event_invoke_config(FunctionName=x.missing),
        lambda x: not_found(
            f"The function {x.arn(x.missing)}:$LATEST doesn't have an EventInvokeConfig"
        ),
    ),
    "get-unconfigured": (
        lambda c, x: c.get_function_event_invoke_config(FunctionName=x.name),
        lambda x: not_found(f"The function {x.arn()}:$LATEST doesn't have an EventInvokeConfig"),
    ),
    "delete-missing-function": (
        lambda c, x: c.delete_function_event_invoke_config(FunctionName=x.missing),
        lambda x: not_found(
            f"The function {x.arn(x.missing)}:$LATEST doesn't have an EventInvokeConfig"
        ),
    ),
    "other-region": (
        lambda c, x: c.get_function_event_invoke_config(FunctionName=x.elsewhere()),
        other_region,
    ),
    "retries-over-2": (
        lambda c, x: c.put_function_event_invoke_config(
            FunctionName=x.name, MaximumRetryAttempts=5
        ),
        lambda x: validation(
            violation("5", "maximumRetryAttempts", "Member must have value less than or equal to 2")
        ),
    ),
}

CONCURRENCY = {
    "put-qualified": (
        lambda c, x: c.put_function_concurrency(
            FunctionName=f"{x.arn()}:1", ReservedConcurrentExecutions=1
        ),
        lambda x: invalid_value(
            "This operation is permitted on Lambda functions only. Aliases and versions do not "
            "support this operation. Please specify either a function name or an unqualified "
            "function ARN."
        ),
    ),
    "put-missing": (
        lambda c, x: c.put_function_concurrency(
            FunctionName=x.missing, ReservedConcurrentExecutions=1
        ),
        lambda x: not_found(f"Function not found: {x.arn(x.missing)}:$LATEST"),
    ),
    "get-missing": (
        lambda c, x: c.get_function_concurrency(FunctionName=x.missing),
        missing_function,
    ),
    "put-negative": (
        lambda c, x: c.put_function_concurrency(
            FunctionName=x.name, ReservedConcurrentExecutions=-1
        ),
        lambda x: validation(
            violation(
                "-1",
                "reservedConcurrentExecutions",
                "Member must have value greater than or equal to 0",
            )
        ),
    ),
}

INVOKE = {
    "missing": (
        lambda c, x: c.invoke(FunctionName=x.missing, Payload=b"{}"),
        missing_function,
    ),
    "missing-version": (
        lambda c, x: c.invoke(FunctionName=x.name, Qualifier="7", Payload=b"{}"),
        lambda x: not_found(f"Function not found: {x.arn()}:7"),
    ),
    "other-region": (
        lambda c, x: c.invoke(FunctionName=x.elsewhere(), Payload=b"{}"),
        other_region,
    ),
    "payload-over-6mb": (
        lambda c, x: c.invoke(FunctionName=x.name, Payload=b"x" * (6 * 1024 * 1024 + 1)),
        lambda x: (
            413,
            "RequestTooLargeException",
            user(
                "message",
                "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
            ),
        ),
    ),
}

TABLES = {
    "GetFunction": GET_FUNCTION,
    "CreateFunction": CREATE_FUNCTION,
    "UpdateAndDeleteFunction": UPDATE_FUNCTION,
    "Versions": VERSIONS,
    "Aliases": ALIASES,
    "Tags": TAGS,
    "EventInvokeConfigs": EVENT_INVOKE_CONFIGS,
    "Concurrency": CONCURRENCY,
    "Invoke": INVOKE,
}

CASES = [
    pytest.param(call, expected, id=f"{op}-{case}")
    for op, table in TABLES.items()
    for case, (call, expected) in table.items()
]


@pytest.mark.parametrize("call,expected", CASES)
def test_error_answers_are_lambdas(raw, ctx, call, expected):
    check(raw, lambda: call(raw, ctx), expected(ctx))


def test_a_request_over_the_limit_is_not_a_zip_over_the_limit(server, lam):
    """Over CreateFunction's request limit, the request is refused for its size, in the words
    AWS uses for the request (the zip's own limit has its own words)."""
    body = json.dumps({"FunctionName": unique_name("fid-big"), "Pad": "x" * 69_905_067}).encode()
    r = server.signed_request("POST", "/2015-03-31/functions", body)
    got = (r.status, r.error_type)
    assert got == (413, "RequestEntityTooLargeException"), (r.status, r.body[:300])
    assert r.json() == front_door(
        "Request must be smaller than 69905067 bytes for the CreateFunction operation"
    )


SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)


@pytest.mark.parametrize(
    "send,expected",
    [
        pytest.param(
            lambda s: s.unsigned_request("GET", "/2015-03-31/functions/"),
            ("MissingAuthenticationTokenException", "Missing Authentication Token"),
            id="unsigned",
        ),
        pytest.param(
            lambda s: s.signed_request(
                "GET", "/2015-03-31/functions/", access_key="AKIDNOSUCHKEY0000000"
            ),
            (
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ),
            id="unknown-key",
        ),
        pytest.param(
            lambda s: s.signed_request("GET", "/2015-03-31/functions/", secret_key="wrong-secret"),
            ("InvalidSignatureException", SIGNATURE_MISMATCH),
            id="wrong-secret",
        ),
    ],
)
def test_the_front_doors_refusals_are_in_its_shape(server, send, expected):
    """SigV4 refusals come from AWS's front door, not from Lambda: 403, the type in
    `x-amzn-ErrorType`, and `{"message": …}` with no `Type`."""
    code, message = expected
    r = send(server)
    assert (r.status, r.error_type) == (403, code), (r.status, r.headers, r.body[:300])
    assert r.json() == front_door(message)


def test_the_model_table_is_the_one_boto3s_model_makes(tmp_path):
    """The patterns, limits and message members the server quotes are generated from the model
    of the boto3 these tests run; a fresh table is the committed one."""
    root = pathlib.Path(__file__).resolve().parents[2]
    fresh = tmp_path / "model.rs"
    subprocess.run(
        [sys.executable, str(root / "scripts/gen_lambda_model.py"), "--out", str(fresh)],
        check=True,
        capture_output=True,
    )
    committed = root / "crates/stoke-core/src/model.rs"
    assert fresh.read_text() == committed.read_text(), (
        "crates/stoke-core/src/model.rs is not what boto3's model makes: run "
        "scripts/gen_lambda_model.py"
    )
