"""Resource-based policies, as AWS Lambda's: AddPermission (the `Statement` it answers, exactly
as Lambda writes it, for each form of principal), GetPolicy (the document: Version 2012-10-17,
Id default, and its RevisionId), a policy per qualifier (GetPolicy with `Qualifier`),
RemovePermission, and every error with Lambda's status, type and wording, each leaving the
policy as it was.

Who a policy lets in is test_cross_account.py's.
"""

from __future__ import annotations

import json

import pytest

from accounts import create_account
from stoke_e2e import REGION, error_message, expect_error
from stoke_guests import deploy_constant

PRECONDITION_MESSAGE = (
    "The Revision Id provided does not match the latest Revision Id. "
    "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
)


@pytest.fixture(scope="module")
def owner(server):
    return create_account(server, "policy-owner")


@pytest.fixture(scope="module")
def olam(server, owner):
    return owner.client(server)


@pytest.fixture
def fn(olam):
    """A function with version 1 and alias `live` → 1; returns (name, unqualified ARN)."""
    name = deploy_constant(olam, "p1", prefix="perm")
    olam.publish_version(FunctionName=name)
    olam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    arn = olam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    return name, arn


def policy_of(lam, name, **kw) -> tuple[dict, str]:
    r = lam.get_policy(FunctionName=name, **kw)
    return json.loads(r["Policy"]), r["RevisionId"]


def test_add_permission_answers_the_statement_as_lambda_writes_it(olam, fn):
    name, arn = fn
    other = "210987654321"
    cases = [
        ("by-id", other, {"AWS": f"arn:aws:iam::{other}:root"}),
        ("by-arn", f"arn:aws:iam::{other}:root", {"AWS": f"arn:aws:iam::{other}:root"}),
        ("anyone", "*", "*"),
        ("gateway", "apigateway.amazonaws.com", {"Service": "apigateway.amazonaws.com"}),
        ("rules", "events.amazonaws.com", {"Service": "events.amazonaws.com"}),
        ("schedules", "scheduler.amazonaws.com", {"Service": "scheduler.amazonaws.com"}),
    ]
    for sid, principal, shown in cases:
        r = olam.add_permission(
            FunctionName=name, StatementId=sid, Action="lambda:InvokeFunction", Principal=principal
        )
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 201
        expected = {
            "Sid": sid,
            "Effect": "Allow",
            "Principal": shown,
            "Action": "lambda:InvokeFunction",
            "Resource": arn,
        }
        # The string itself, as Lambda answers it (its member order, no spaces).
        assert r["Statement"] == json.dumps(expected, separators=(",", ":")), r["Statement"]
    doc, revision = policy_of(olam, name)
    assert doc["Version"] == "2012-10-17"
    assert doc["Id"] == "default"
    assert [s["Sid"] for s in doc["Statement"]] == [c[0] for c in cases]
    assert all(s["Effect"] == "Allow" and s["Resource"] == arn for s in doc["Statement"])
    assert revision


def test_a_url_auth_type_becomes_the_statements_condition(olam, fn):
    name, arn = fn
    r = olam.add_permission(
        FunctionName=name,
        StatementId="url",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    statement = json.loads(r["Statement"])
    assert statement["Condition"] == {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}
    assert statement["Action"] == "lambda:InvokeFunctionUrl"


def test_a_source_becomes_the_statements_condition_as_lambda_writes_it(olam, fn):
    # Botocore's own example of AddPermission (examples-1.json), to the byte.
    name, arn = fn
    r = olam.add_permission(
        FunctionName=name,
        StatementId="s3",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceAccount="123456789012",
        SourceArn="arn:aws:s3:::my-bucket-1xpuxmplzrlbh",
    )
    assert r["Statement"] == (
        '{"Sid":"s3","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},'
        f'"Action":"lambda:InvokeFunction","Resource":"{arn}",'
        '"Condition":{"StringEquals":{"AWS:SourceAccount":"123456789012"},'
        '"ArnLike":{"AWS:SourceArn":"arn:aws:s3:::my-bucket-1xpuxmplzrlbh"}}}'
    ), r["Statement"]
    doc, _ = policy_of(olam, name)
    assert doc["Statement"][0]["Condition"] == json.loads(r["Statement"])["Condition"]


def test_each_qualifier_has_a_policy_of_its_own(olam, fn):
    name, arn = fn
    olam.add_permission(
        FunctionName=name, StatementId="fn", Action="lambda:GetFunction", Principal="*"
    )
    r = olam.add_permission(
        FunctionName=name,
        Qualifier="live",
        StatementId="alias",
        Action="lambda:InvokeFunction",
        Principal="*",
    )
    assert json.loads(r["Statement"])["Resource"] == f"{arn}:live"
    # The same statement id may be used again in another qualifier's policy.
    olam.add_permission(
        FunctionName=f"{name}:1", StatementId="fn", Action="lambda:InvokeFunction", Principal="*"
    )
    mine, _ = policy_of(olam, name)
    alias, _ = policy_of(olam, name, Qualifier="live")
    version, _ = policy_of(olam, f"{arn}:1")
    assert [(s["Sid"], s["Resource"]) for s in mine["Statement"]] == [("fn", arn)]
    assert [(s["Sid"], s["Resource"]) for s in alias["Statement"]] == [("alias", f"{arn}:live")]
    assert [(s["Sid"], s["Resource"]) for s in version["Statement"]] == [("fn", f"{arn}:1")]
    # $LATEST is the function's own.
    latest, _ = policy_of(olam, name, Qualifier="$LATEST")
    assert latest == mine


def test_remove_permission_and_revisions(olam, fn):
    name, _ = fn
    olam.add_permission(FunctionName=name, StatementId="a", Action="lambda:*", Principal="*")
    _, r1 = policy_of(olam, name)
    olam.add_permission(
        FunctionName=name, StatementId="b", Action="lambda:InvokeFunction", Principal="*",
        RevisionId=r1,
    )
    doc, r2 = policy_of(olam, name)
    assert r2 != r1
    assert [s["Sid"] for s in doc["Statement"]] == ["a", "b"]
    # A stale revision changes nothing, for Add and for Remove.
    with expect_error("PreconditionFailedException", 412) as ei:
        olam.add_permission(
            FunctionName=name, StatementId="c", Action="lambda:InvokeFunction", Principal="*",
            RevisionId=r1,
        )
    assert error_message(ei.value) == PRECONDITION_MESSAGE
    with expect_error("PreconditionFailedException", 412) as ei:
        olam.remove_permission(FunctionName=name, StatementId="a", RevisionId=r1)
    assert error_message(ei.value) == PRECONDITION_MESSAGE
    assert policy_of(olam, name) == (doc, r2)
    r = olam.remove_permission(FunctionName=name, StatementId="a", RevisionId=r2)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    doc, r3 = policy_of(olam, name)
    assert [s["Sid"] for s in doc["Statement"]] == ["b"]
    olam.remove_permission(FunctionName=name, StatementId="b")
    # The last statement takes the policy with it.
    with expect_error("ResourceNotFoundException", 404) as ei:
        olam.get_policy(FunctionName=name)
    assert error_message(ei.value) == "The resource you requested does not exist."


def _add(olam, name, **over):
    args = dict(
        FunctionName=name, StatementId="s", Action="lambda:InvokeFunction", Principal="*"
    )
    args.update(over)
    return olam.add_permission(**{k: v for k, v in args.items() if v is not None})


ADD_ERRORS = [
    # (what, overrides, type, status, message (exact) or a prefix ending in "…")
    (
        "duplicate statement id",
        dict(StatementId="kept"),
        "ResourceConflictException",
        409,
        "The statement id (kept) provided already exists. Please provide a new statement id, "
        "or remove the existing statement.",
    ),
    (
        "malformed principal",
        dict(Principal="someone"),
        "InvalidParameterValueException",
        400,
        "The provided principal was invalid. Please check the principal and try again.",
    ),
    (
        "an IAM user is no principal Stoke knows",
        dict(Principal="arn:aws:iam::210987654321:user/bob"),
        "InvalidParameterValueException",
        400,
        "The provided principal was invalid. Please check the principal and try again.",
    ),
    (
        "an action a function policy does not grant",
        dict(Action="lambda:CreateFunction"),
        "InvalidParameterValueException",
        400,
        "The provided action lambda:CreateFunction is not supported in a function's "
        "resource-based policy. Please check the action and try again.",
    ),
    (
        "an action outside the model's pattern",
        dict(Action="s3:GetObject"),
        "ValidationException",
        400,
        "1 validation error detected: Value 's3:GetObject' at 'action' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
        "(lambda:[*]|lambda:[a-zA-Z]+|[*])",
    ),
    (
        "PrincipalOrgID",
        dict(PrincipalOrgID="o-abcdefghij"),
        "InvalidParameterValueException",
        400,
        "PrincipalOrgID is not supported by Stoke: …",
    ),
    (
        "a SourceArn that is no ARN",
        dict(Principal="events.amazonaws.com", SourceArn="rule/r"),
        "ValidationException",
        400,
        "1 validation error detected: Value 'rule/r' at 'sourceArn' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
        r"arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-"
        r"[a-z]+-\d{1})?:(\d{12})?:(.*)",
    ),
    (
        "a SourceAccount that is no account",
        dict(Principal="events.amazonaws.com", SourceAccount="2109"),
        "ValidationException",
        400,
        "1 validation error detected: Value '2109' at 'sourceAccount' failed to satisfy "
        r"constraint: Member must satisfy regular expression pattern: \d{12}",
    ),
    (
        "$LATEST",
        dict(Qualifier="$LATEST"),
        "InvalidParameterValueException",
        400,
        "We currently do not support adding policies for $LATEST.",
    ),
    (
        "a stale revision",
        dict(RevisionId="00000000-0000-0000-0000-000000000000"),
        "PreconditionFailedException",
        412,
        PRECONDITION_MESSAGE,
    ),
]


@pytest.mark.parametrize(
    "what,over,code,status,message", ADD_ERRORS, ids=[c[0] for c in ADD_ERRORS]
)
def test_add_permission_errors_change_nothing(olam, fn, what, over, code, status, message):
    name, _ = fn
    _add(olam, name, StatementId="kept")
    before = policy_of(olam, name)
    with expect_error(code, status) as ei:
        _add(olam, name, **over)
    got = error_message(ei.value)
    if message.endswith("…"):
        assert got.startswith(message[:-1]) and len(got) > len(message), got
    else:
        assert got == message
    assert policy_of(olam, name) == before


def test_missing_function_alias_statement_and_policy(server, olam, owner, fn):
    name, arn = fn
    missing = f"arn:aws:lambda:{REGION}:{owner.account_id}:function:perm-no-such-fn"
    with expect_error("ResourceNotFoundException", 404) as ei:
        _add(olam, "perm-no-such-fn")
    assert error_message(ei.value) == f"Function not found: {missing}"
    with expect_error("ResourceNotFoundException", 404) as ei:
        _add(olam, name, Qualifier="nope")
    assert error_message(ei.value) == f"Function not found: {arn}:nope"
    # No policy yet: RemovePermission and GetPolicy say so in their own words.
    with expect_error("ResourceNotFoundException", 404) as ei:
        olam.remove_permission(FunctionName=name, StatementId="s")
    assert error_message(ei.value) == "No policy is associated with the given resource."
    with expect_error("ResourceNotFoundException", 404) as ei:
        olam.get_policy(FunctionName=name)
    assert error_message(ei.value) == "The resource you requested does not exist."
    _add(olam, name, StatementId="here")
    with expect_error("ResourceNotFoundException", 404) as ei:
        olam.remove_permission(FunctionName=name, StatementId="gone")
    assert error_message(ei.value) == "Statement gone is not found in resource policy."
    assert [s["Sid"] for s in policy_of(olam, name)[0]["Statement"]] == ["here"]


def test_a_policy_over_20_kb_is_refused(olam, fn):
    name, _ = fn
    # Each statement takes about 200 bytes of the document: 20 KB is reached near 100 of them.
    sizes = []
    added = 0
    for i in range(200):
        try:
            _add(olam, name, StatementId=f"statement-number-{i:03d}-" + "x" * 40)
            added += 1
        except Exception as e:  # noqa: BLE001 - the refusal is asserted below
            err = e
            break
        sizes.append(len(olam.get_policy(FunctionName=name)["Policy"]))
    else:
        pytest.fail("200 statements were accepted: the policy has no limit")
    assert err.response["Error"]["Code"] == "PolicyLengthExceededException", err.response
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    message = err.response["Error"]["Message"]
    prefix, limit = "The final policy size (", ") is bigger than the limit (20480)."
    assert message.startswith(prefix) and message.endswith(limit), message
    size = int(message[len(prefix) : -len(limit)])
    assert sizes[-1] <= 20480 < size, (sizes[-1], size)
    # The refused statement is not there.
    assert len(policy_of(olam, name)[0]["Statement"]) == added


def test_a_deleted_alias_takes_its_policy(olam, fn):
    name, _ = fn
    _add(olam, name, Qualifier="live", StatementId="a")
    olam.delete_alias(FunctionName=name, Name="live")
    olam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with expect_error("ResourceNotFoundException", 404):
        olam.get_policy(FunctionName=name, Qualifier="live")
