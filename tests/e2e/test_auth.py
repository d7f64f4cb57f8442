"""SigV4 authentication: every API request is signed with a known key, or refused with 403 and
the error type AWS uses."""

import datetime as dt
from unittest import mock

import botocore.auth
import pytest

from stoke_e2e import expect_error, function_names, http_get, unique_name


def _assert_refused(r, error_type):
    assert r.status == 403, (r.status, r.headers, r.body[:300])
    assert r.error_type == error_type, (r.headers.get("x-amzn-errortype"), r.body[:300])
    body = r.json()
    assert isinstance(body.get("message") or body.get("Message"), str), body
    return body


@pytest.mark.parametrize("path", ["/2015-03-31/functions/", "/2015-03-31/functions"])
def test_unsigned_request_is_refused(server, path):
    r = http_get(server.endpoint + path)
    assert r.status == 403, (r.status, r.body[:300])
    assert r.header("x-amzn-ErrorType"), r.headers
    assert r.error_type == "MissingAuthenticationTokenException", r.headers
    assert "message" in r.json(), r.body


def test_unsigned_write_is_refused_and_changes_nothing(server, lam):
    name = unique_name("auth-unsigned")
    r = server.unsigned_request(
        "POST",
        "/2015-03-31/functions",
        b'{"FunctionName": "%s", "Role": "arn:aws:iam::123456789012:role/r", "Runtime": "wasm",'
        b' "Handler": "h.wasm", "Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}}'
        % name.encode(),
        {"Content-Type": "application/json"},
    )
    assert r.status == 403
    assert name not in function_names(lam)


def test_unknown_access_key_is_unrecognized_client(server):
    c = server.client_with_keys("AKIAUNKNOWNUNKNOWN00", "x" * 40)
    with expect_error("UnrecognizedClientException", 403):
        c.list_functions()


def test_wrong_secret_is_invalid_signature(server):
    key, secret = server.credentials()
    wrong = ("A" if secret[0] != "A" else "B") + secret[1:]
    c = server.client_with_keys(key, wrong)
    with expect_error("InvalidSignatureException", 403):
        c.list_functions()
    with expect_error("InvalidSignatureException", 403):
        c.get_account_settings()


def test_right_keys_passed_explicitly_work(server):
    key, secret = server.credentials()
    c = server.client_with_keys(key, secret)
    assert c.list_functions()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_signature_from_ten_minutes_ago_has_expired(server):
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    r = server.signed_request("GET", "/2015-03-31/functions/", when=past)
    body = _assert_refused(r, "InvalidSignatureException")
    assert "Signature expired" in (body.get("message") or body.get("Message")), body


def test_boto3_with_a_clock_ten_minutes_slow_gets_signature_expired(server):
    lam = server.client()
    past = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)).replace(tzinfo=None)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=past):
        with expect_error("InvalidSignatureException", 403, "Signature expired"):
            lam.list_functions()


def test_signature_from_ten_minutes_ahead_is_refused(server):
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=10)
    r = server.signed_request("GET", "/2015-03-31/functions/", when=future)
    _assert_refused(r, "InvalidSignatureException")


def test_signature_four_minutes_old_is_still_accepted(server):
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=4)
    r = server.signed_request("GET", "/2015-03-31/functions/", when=past)
    assert r.status == 200, (r.status, r.body[:300])


def test_body_changed_after_signing_is_invalid_signature(server, lam):
    name = unique_name("auth-tamper")
    body = (
        b'{"FunctionName": "%s", "Role": "arn:aws:iam::123456789012:role/r", "Runtime": "wasm",'
        b' "Handler": "h.wasm", "Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}}'
        % name.encode()
    )

    def tamper(prepared):
        prepared.body = body.replace(b'"Runtime": "wasm"', b'"Runtime": "wasx"')

    r = server.signed_request("POST", "/2015-03-31/functions", body, tamper=tamper)
    _assert_refused(r, "InvalidSignatureException")
    assert name not in function_names(lam)


def test_path_changed_after_signing_is_invalid_signature(server):
    def tamper(prepared):
        prepared.url = prepared.url.replace(
            "/2015-03-31/functions/", "/2016-08-19/account-settings/"
        )

    r = server.signed_request("GET", "/2015-03-31/functions/", tamper=tamper)
    _assert_refused(r, "InvalidSignatureException")


@pytest.mark.parametrize("region,service", [("us-west-2", "lambda"), ("us-east-1", "s3")])
def test_signature_scoped_to_another_region_or_service_is_refused(server, region, service):
    r = server.signed_request("GET", "/2015-03-31/functions/", region=region, service=service)
    _assert_refused(r, "InvalidSignatureException")


def test_malformed_authorization_header_is_incomplete_signature(server):
    r = server.unsigned_request(
        "GET", "/2015-03-31/functions/", headers={"Authorization": "AWS4-HMAC-SHA256 garbage"}
    )
    _assert_refused(r, "IncompleteSignatureException")


def test_code_location_needs_no_aws_signature_but_the_api_does(server, lam):
    """The Code.Location URL carries its own signature; the API path next to it does not
    become open because of it."""
    name = unique_name("auth-loc")
    from stoke_e2e import create_wasm, wait_active

    create_wasm(lam, name)
    wait_active(lam, name)
    loc = lam.get_function(FunctionName=name)["Code"]["Location"]
    assert http_get(loc).status == 200
    r = http_get(f"{server.endpoint}/2015-03-31/functions/{name}")
    assert r.status == 403
