"""Forgery (issue 13): no request gets in without a valid SigV4 signature, in the header form or
the presigned query form, with an account's key or a function's session credentials; and STS
GetCallerIdentity answers who signed, as AWS does.

Each refusal asserts the status, the error code and AWS's wording, and that nothing happened.
The function credentials run on a server of their own whose credentials live 10 s
(`--function-credentials-ttl 10s`), so that their expiry is part of the test."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
from unittest import mock

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
from botocore.exceptions import ClientError

from accounts import create_account, stoke_cli
from stoke_e2e import (
    REGION,
    ROLE,
    StokeServer,
    create_wasm,
    error_code,
    error_message,
    expect_error,
    function_names,
    http_get,
    http_status,
    raw_request,
    unique_name,
    wait_active,
)
from test_process import deploy, ok

MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)
INVALID_TOKEN = "The security token included in the request is invalid."
EXPIRED_TOKEN = "The security token included in the request is expired"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
CREDS_TTL = 10
CREATE = (
    b'{"FunctionName": "%s", "Role": "arn:aws:iam::123456789012:role/r", "Runtime": "wasm",'
    b' "Handler": "h.wasm", "Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}}'
)


def refused(r, status: int, code: str, message: str | re.Pattern) -> None:
    """A Lambda-shaped refusal: status, x-amzn-ErrorType, and AWS's message."""
    assert r.status == status, (r.status, r.headers, r.body[:300])
    assert r.error_type == code, (r.headers, r.body[:300])
    body = r.json()
    got = body.get("message") or body.get("Message")
    if isinstance(message, re.Pattern):
        assert message.fullmatch(got), got
    else:
        assert got == message, got


def sts_error(r, status: int, code: str, message: str) -> None:
    """An STS-shaped refusal: XML ErrorResponse with Type, Code, Message and RequestId."""
    assert r.status == status, (r.status, r.body[:400])
    assert r.header("content-type").startswith("text/xml"), r.headers
    text = r.body.decode()
    assert text.startswith(f'<ErrorResponse xmlns="{STS_NS}">'), text
    assert f"<Code>{code}</Code>" in text and f"<Message>{message}</Message>" in text, text
    assert "<Type>Sender</Type>" in text and re.search(r"<RequestId>[0-9a-f-]{36}</RequestId>", text)


def secret_wrong(secret: str) -> str:
    return ("A" if secret[0] != "A" else "B") + secret[1:]


# --------------------------------------------------------------------------------------------
# The header form, with the admin's key
# --------------------------------------------------------------------------------------------


def test_wrong_secret_is_refused_and_creates_nothing(server, lam):
    name = unique_name("forge-secret")
    key, secret = server.credentials()
    r = server.signed_request(
        "POST", "/2015-03-31/functions", CREATE % name.encode(), secret_key=secret_wrong(secret)
    )
    refused(r, 403, "InvalidSignatureException", MISMATCH)
    assert name not in function_names(lam)


@pytest.mark.parametrize("what", ["body", "path", "query", "signed header"])
def test_a_request_changed_after_signing_is_refused(server, lam, what):
    name = unique_name("forge-tamper")
    body = CREATE % name.encode()
    path = "/2015-03-31/functions"

    def tamper(p):
        if what == "body":
            p.body = body.replace(name.encode(), name.encode() + b"x")
        elif what == "path":
            p.url = p.url.replace("/2015-03-31/functions", "/2015-03-31/functions/")
        elif what == "query":
            p.url += "?Qualifier=1"
        else:
            p.headers["Content-Type"] = "application/x-amz-json-1.1"

    r = server.signed_request("POST", path, body, tamper=tamper)
    refused(r, 403, "InvalidSignatureException", MISMATCH)
    assert not {name, name + "x"} & function_names(lam)


def test_a_changed_query_value_is_refused(server):
    def tamper(p):
        p.url = p.url.replace("MaxItems=1", "MaxItems=2")

    assert server.signed_request("GET", "/2015-03-31/functions/?MaxItems=1").status == 200
    r = server.signed_request("GET", "/2015-03-31/functions/?MaxItems=1", tamper=tamper)
    refused(r, 403, "InvalidSignatureException", MISMATCH)


def test_an_unsigned_request_is_refused(server, lam):
    name = unique_name("forge-unsigned")
    r = server.unsigned_request(
        "POST", "/2015-03-31/functions", CREATE % name.encode(), {"Content-Type": "application/json"}
    )
    refused(r, 403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    assert name not in function_names(lam)


STAMP = r"\d{8}T\d{6}Z"


@pytest.mark.parametrize(
    "minutes,pattern",
    [
        (-10, rf"Signature expired: {STAMP} is now earlier than {STAMP} \({STAMP} - 5 min\.\)"),
        (10, rf"Signature not yet current: {STAMP} is still later than {STAMP} \({STAMP} \+ 5 min\.\)"),
    ],
)
def test_a_timestamp_outside_the_five_minute_window_is_refused(server, minutes, pattern):
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=minutes)
    r = server.signed_request("GET", "/2015-03-31/functions/", when=when)
    refused(r, 403, "InvalidSignatureException", re.compile(pattern))
    inside = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=4 if minutes > 0 else -4)
    assert server.signed_request("GET", "/2015-03-31/functions/", when=inside).status == 200


@pytest.mark.parametrize(
    "region,service,message",
    [
        ("us-west-2", "lambda",
         "Credential should be scoped to a valid region. (got us-west-2, this server is us-east-1)"),
        (REGION, "s3", "Credential should be scoped to correct service: 'lambda'. "),
        (REGION, "sts", "Credential should be scoped to correct service: 'lambda'. "),
    ],
)
def test_a_signature_for_another_region_or_service_is_refused(server, region, service, message):
    r = server.signed_request("GET", "/2015-03-31/functions/", region=region, service=service)
    refused(r, 403, "InvalidSignatureException", message)


def test_another_accounts_key_never_reaches_this_accounts_function(server, lam):
    name = unique_name("forge-owner")
    arn = create_wasm(lam, name)["FunctionArn"]
    wait_active(lam, name)
    other = create_account(server, "forgery-other")
    theirs = other.client(server)
    # In its own namespace the name is not there; by the owner's ARN it is not granted.
    with expect_error("ResourceNotFoundException", 404):
        theirs.get_function(FunctionName=name)
    assert name not in {f["FunctionName"] for f in theirs.list_functions()["Functions"]}
    for kind in ("RequestResponse", "Event"):
        with pytest.raises(ClientError) as ei:
            theirs.invoke(FunctionName=arn, InvocationType=kind, Payload=b"{}")
        assert (error_code(ei.value), http_status(ei.value)) in {
            ("AccessDeniedException", 403),
            ("ResourceNotFoundException", 404),
        }, ei.value.response
    # Its key with the owner's secret, or the owner's key with its secret: neither signs.
    key, secret = server.credentials()
    for k, s in ((other.access_key_id, secret), (key, other.secret_access_key)):
        with expect_error("InvalidSignatureException", 403):
            server.client_with_keys(k, s).get_function(FunctionName=name)


# --------------------------------------------------------------------------------------------
# The presigned query form
# --------------------------------------------------------------------------------------------


def presign(client, op: str, expires: int, when: dt.datetime | None = None, **kw) -> str:
    if when is None:
        return client.generate_presigned_url(op, ExpiresIn=expires, **kw)
    naive = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=naive):
        return client.generate_presigned_url(op, ExpiresIn=expires, **kw)


def test_a_presigned_url_works_until_its_expiry(server, lam):
    url = presign(lam, "list_functions", 60)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url, url
    r = http_get(url)
    assert r.status == 200, r.body[:300]
    assert "Functions" in json.loads(r.body)
    # Signed 10 minutes ago for 5: past its expiry, whatever the skew window.
    old = presign(lam, "list_functions", 300, dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10))
    refused(
        http_get(old), 403, "InvalidSignatureException",
        re.compile(rf"Signature expired: {STAMP} is now earlier than {STAMP} \({STAMP} - 5 min\.\)"),
    )
    # Within its X-Amz-Expires it is good even outside the 5-minute window.
    long = presign(lam, "list_functions", 3600, dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10))
    assert http_get(long).status == 200


@pytest.mark.parametrize(
    "edit,message",
    [
        ("604801", "X-Amz-Expires must be less than a week (in seconds) that is 604800"),
        ("0", "X-Amz-Expires must be at least 1 second"),
        ("-5", "X-Amz-Expires must be non-negative"),
        ("soon", "X-Amz-Expires should be a number"),
    ],
)
def test_a_presigned_url_with_expires_out_of_bounds_is_malformed(lam, edit, message):
    url = re.sub(r"X-Amz-Expires=\d+", f"X-Amz-Expires={edit}", presign(lam, "list_functions", 60))
    refused(http_get(url), 403, "IncompleteSignatureException", message)


def test_a_presigned_url_with_a_changed_query_or_a_missing_part_is_refused(lam):
    url = presign(lam, "list_functions", 60, Params={"MaxItems": 1})
    assert http_get(url).status == 200
    refused(http_get(url.replace("MaxItems=1", "MaxItems=2")), 403, "InvalidSignatureException", MISMATCH)
    refused(
        http_get(re.sub(r"&X-Amz-Signature=[0-9a-f]+", "", url)), 403, "IncompleteSignatureException",
        "AWS query-string parameters must include 'X-Amz-Algorithm', 'X-Amz-Credential', "
        "'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-SignedHeaders', and 'X-Amz-Expires'. "
        "Re-examine the query-string parameters.",
    )


# --------------------------------------------------------------------------------------------
# STS GetCallerIdentity with an account's key
# --------------------------------------------------------------------------------------------


def test_get_caller_identity_of_an_account_key_is_the_root(server, account_id):
    sts = server.session().client("sts", endpoint_url=server.endpoint, config=server.config())
    who = sts.get_caller_identity()
    assert (who["Account"], who["Arn"], who["UserId"]) == (
        account_id, f"arn:aws:iam::{account_id}:root", account_id,
    )
    other = create_account(server, "forgery-sts")
    who = other.client(server, "sts").get_caller_identity()
    assert (who["Account"], who["Arn"], who["UserId"]) == (
        other.account_id, f"arn:aws:iam::{other.account_id}:root", other.account_id,
    )
    # Presigned, as EKS tokens and Vault's aws auth use it: a GET with the query.
    url = presign(sts, "get_caller_identity", 60, HttpMethod="GET")
    r = http_get(url)
    assert r.status == 200, r.body[:300]
    assert f"<Arn>arn:aws:iam::{account_id}:root</Arn>" in r.body.decode()


def test_sts_errors_are_in_sts_xml_shape(server):
    key, secret = server.credentials()
    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    r = server.unsigned_request("POST", "/", body, form)
    sts_error(r, 403, "MissingAuthenticationToken", "Request is missing Authentication Token")
    r = server.signed_request("POST", "/", body, form, service="sts", secret_key=secret_wrong(secret))
    sts_error(r, 403, "SignatureDoesNotMatch", MISMATCH)
    r = server.signed_request("POST", "/", body, form, service="sts", region="eu-west-1")
    sts_error(r, 403, "SignatureDoesNotMatch",
              "Credential should be scoped to a valid region. (got eu-west-1, this server is us-east-1)")
    r = server.signed_request("POST", "/", b"Action=AssumeRoot&Version=2011-06-15", form, service="sts")
    sts_error(r, 400, "InvalidAction", "Could not find operation AssumeRoot for version 2011-06-15")
    c = boto3.Session(aws_access_key_id="AKIAUNKNOWNUNKNOWN00", aws_secret_access_key="x" * 40,
                      region_name=REGION).client("sts", endpoint_url=server.endpoint,
                                                 config=server.config())
    with expect_error("InvalidClientTokenId", 403, INVALID_TOKEN):
        c.get_caller_identity()


# --------------------------------------------------------------------------------------------
# A function's credentials (a server whose credentials live CREDS_TTL seconds)
# --------------------------------------------------------------------------------------------

CREDS_PY = """
import os

def handler(event, context):
    return {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
"""


@pytest.fixture(scope="module")
def csrv(tmp_path_factory):
    srv = StokeServer(
        tmp_path_factory.mktemp("stoke-creds"),
        extra_args=["--function-credentials-ttl", f"{CREDS_TTL}s"],
    )
    with srv.running():
        yield srv


@pytest.fixture(scope="module")
def clam(csrv):
    return csrv.client()


def function_creds(clam) -> tuple[str, dict, float]:
    """A new python function's name, the AWS_* variables it sees, and when its first call
    started (its credentials were minted after that)."""
    name = deploy(clam, "python3.12", "creds.handler", {"creds.py": CREDS_PY}, Timeout=2)
    started = time.time()
    env, _ = ok(clam, name, {})
    return name, env, started


def with_session(csrv, env: dict, service: str, **override):
    keys = {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": env["AWS_SESSION_TOKEN"],
    }
    keys.update(override)
    return boto3.Session(region_name=REGION, **keys).client(
        service, endpoint_url=csrv.endpoint, config=csrv.config()
    )


def test_a_functions_credentials_are_its_accounts_and_expire(csrv, clam):
    name, env, started = function_creds(clam)
    assert re.fullmatch(r"ASIA[A-Z2-7]{16}", env["AWS_ACCESS_KEY_ID"]), env
    assert len(env["AWS_SECRET_ACCESS_KEY"]) == 40 and env["AWS_SESSION_TOKEN"], env
    account = clam.get_function(FunctionName=name)["Configuration"]["FunctionArn"].split(":")[4]
    role = ROLE.rsplit("/", 1)[1]

    who = with_session(csrv, env, "sts").get_caller_identity()
    assert who["Account"] == account
    assert who["Arn"] == f"arn:aws:sts::{account}:assumed-role/{role}/{name}"
    assert re.fullmatch(rf"AROA[A-Z2-7]{{17}}:{name}", who["UserId"]), who
    mine = with_session(csrv, env, "lambda")
    assert mine.get_function(FunctionName=name)["Configuration"]["FunctionName"] == name
    assert name in {f["FunctionName"] for f in mine.list_functions()["Functions"]}
    # Presigned with the session (its token in the query), valid for an hour.
    url = with_session(csrv, env, "sts").generate_presigned_url(
        "get_caller_identity", ExpiresIn=3600, HttpMethod="GET"
    )
    assert "X-Amz-Security-Token=" in url, url
    r = http_get(url)
    assert r.status == 200 and f"<Arn>{who['Arn']}</Arn>" in r.body.decode(), r.body

    # Once expired: refused, as AWS names it, by Lambda and by STS, the presigned URL too.
    time.sleep(max(0.0, started + CREDS_TTL + 1.5 - time.time()))
    with expect_error("ExpiredTokenException", 403, EXPIRED_TOKEN):
        mine.get_function(FunctionName=name)
    with expect_error("ExpiredToken", 403, EXPIRED_TOKEN):
        with_session(csrv, env, "sts").get_caller_identity()
    sts_error(raw_request("GET", url), 403, "ExpiredToken", EXPIRED_TOKEN)
    # The sandbox did not outlive them: the next call runs with new, valid credentials.
    fresh, _ = ok(clam, name, {})
    assert fresh["AWS_ACCESS_KEY_ID"] != env["AWS_ACCESS_KEY_ID"]
    assert with_session(csrv, fresh, "sts").get_caller_identity()["Arn"] == who["Arn"]


def another_accounts_function(csrv, label: str) -> tuple[str, str]:
    """A function of a new account: its name and its ARN."""
    theirs = create_account(csrv, label).client(csrv)
    name = unique_name(label)
    arn = create_wasm(theirs, name)["FunctionArn"]
    wait_active(theirs, name)
    return name, arn


def test_a_functions_credentials_reach_only_its_own_account(csrv, clam):
    name, env, _ = function_creds(clam)
    their_fn, their_arn = another_accounts_function(csrv, "creds-theirs")
    mine = with_session(csrv, env, "lambda")
    assert their_fn not in {f["FunctionName"] for f in mine.list_functions()["Functions"]}
    with expect_error("ResourceNotFoundException", 404):
        mine.get_function(FunctionName=their_fn)
    with pytest.raises(ClientError) as ei:
        mine.invoke(FunctionName=their_arn, Payload=b"{}")
    assert (error_code(ei.value), http_status(ei.value)) in {
        ("AccessDeniedException", 403),
        ("ResourceNotFoundException", 404),
    }, ei.value.response


def test_a_functions_credentials_never_reach_the_admin_api(csrv, clam):
    # Even a function of the admin account: code does not manage accounts.
    name, env, _ = function_creds(clam)
    req = botocore.awsrequest.AWSRequest(
        method="GET", url=csrv.endpoint + "/stoke/admin/2026-11-01/accounts"
    )
    creds = botocore.credentials.Credentials(
        env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"]
    )
    botocore.auth.SigV4Auth(creds, "lambda", REGION).add_auth(req)
    p = req.prepare()
    r = raw_request(p.method, p.url, p.body or b"", dict(p.headers))
    account = clam.get_function(FunctionName=name)["Configuration"]["FunctionArn"].split(":")[4]
    role = ROLE.rsplit("/", 1)[1]
    refused(
        r,
        403,
        "AccessDeniedException",
        f"User: arn:aws:sts::{account}:assumed-role/{role}/{name} is not authorized to "
        "perform: stoke:ListAccounts because only the admin account may manage accounts",
    )


def tampered(token: str, old: str, new: str) -> str:
    payload, tag = token.split(".")
    text = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    assert old in text, text
    forged = base64.urlsafe_b64encode(text.replace(old, new).encode()).decode().rstrip("=")
    return f"{forged}.{tag}"


def test_a_session_token_with_a_tampered_field_or_a_wrong_pairing_is_refused(csrv, clam):
    name, env, _ = function_creds(clam)
    account = clam.get_function(FunctionName=name)["Configuration"]["FunctionArn"].split(":")[4]
    other = create_account(csrv, "creds-forge")
    token = env["AWS_SESSION_TOKEN"]
    far = str(int(time.time()) + 86400)
    expiry = token_field(token, -1)
    forgeries = {
        "another account": tampered(token, f"|{account}|", f"|{other.account_id}|"),
        "a later expiry": tampered(token, f"|{expiry}", f"|{far}"),
        "another function": tampered(token, f"|{name}|", "|someone-else|"),
        "a cut token": token[:-4],
    }
    for what, forged in forgeries.items():
        for service, code, status in (("lambda", "UnrecognizedClientException", 403),
                                      ("sts", "InvalidClientTokenId", 403)):
            c = with_session(csrv, env, service, aws_session_token=forged)
            call = c.list_functions if service == "lambda" else c.get_caller_identity
            with pytest.raises(ClientError) as ei:
                call()
            got = (error_code(ei.value), http_status(ei.value), error_message(ei.value))
            assert got == (code, status, INVALID_TOKEN), (what, service, got)
    # The wrong secret with a genuine token; a session key without its token; an account's
    # key with a token: none signs.
    with expect_error("InvalidSignatureException", 403, MISMATCH):
        with_session(csrv, env, "lambda",
                     aws_secret_access_key=secret_wrong(env["AWS_SECRET_ACCESS_KEY"])).list_functions()
    bare = boto3.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                         aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=REGION)
    with expect_error("UnrecognizedClientException", 403, INVALID_TOKEN):
        bare.client("lambda", endpoint_url=csrv.endpoint, config=csrv.config()).list_functions()
    key, secret = csrv.credentials()
    with expect_error("UnrecognizedClientException", 403, INVALID_TOKEN):
        with_session(csrv, env, "lambda", aws_access_key_id=key,
                     aws_secret_access_key=secret).list_functions()
    # The genuine token still works: nothing above changed it.
    assert with_session(csrv, env, "sts").get_caller_identity()["Account"] == account


def token_field(token: str, i: int) -> str:
    payload = token.split(".")[0]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode().split("|")[i]


def test_a_deleted_accounts_function_credentials_are_refused_at_once(csrv):
    # Stateless tokens: without the check, they would stay good until they expire.
    gone = create_account(csrv, "creds-gone")
    theirs = gone.client(csrv)
    name, env, _ = function_creds(theirs)
    assert with_session(csrv, env, "sts").get_caller_identity()["Account"] == gone.account_id
    theirs.delete_function(FunctionName=name)
    proc = stoke_cli(csrv, "accounts", "delete", gone.account_id)
    assert proc.returncode == 0, proc.stderr
    with expect_error("UnrecognizedClientException", 403, INVALID_TOKEN):
        with_session(csrv, env, "lambda").list_functions()
    with expect_error("InvalidClientTokenId", 403, INVALID_TOKEN):
        with_session(csrv, env, "sts").get_caller_identity()
    # Nothing was made for it either: the session cannot create a function in its name.
    with expect_error("UnrecognizedClientException", 403, INVALID_TOKEN):
        create_wasm(with_session(csrv, env, "lambda"), unique_name("creds-gone"))
    assert gone.account_id not in stoke_cli(csrv, "accounts", "list", "--json").stdout


def test_a_cross_account_refusal_names_the_functions_session(csrv, clam):
    name, env, _ = function_creds(clam)
    account = clam.get_function(FunctionName=name)["Configuration"]["FunctionArn"].split(":")[4]
    role = ROLE.rsplit("/", 1)[1]
    session = f"arn:aws:sts::{account}:assumed-role/{role}/{name}"
    their_fn, their_arn = another_accounts_function(csrv, "creds-refuser")
    mine = with_session(csrv, env, "lambda")
    for action, call in (
        ("lambda:InvokeFunction", lambda: mine.invoke(FunctionName=their_arn, Payload=b"{}")),
        ("lambda:GetFunction", lambda: mine.get_function(FunctionName=their_arn)),
    ):
        with expect_error(
            "AccessDeniedException",
            403,
            f"User: {session} is not authorized to perform: {action} on resource: {their_arn} "
            f"because no resource-based policy allows the {action} action",
        ):
            call()
    # The account's own key is still named as its root.
    with expect_error(
        "AccessDeniedException",
        403,
        f"User: arn:aws:iam::{account}:root is not authorized to perform: lambda:GetFunction",
    ):
        clam.get_function(FunctionName=their_arn)
    # Nothing ran: the owner's function has never been called.
    metrics = http_get(f"{csrv.endpoint}/metrics").body.decode()
    assert not re.search(rf'stoke_invocations_total{{[^}}]*function="{their_fn}"', metrics)
