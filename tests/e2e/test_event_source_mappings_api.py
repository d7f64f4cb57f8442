"""Lambda's event source mapping API through boto3 (CreateEventSourceMapping, Get, Update,
Delete, ListEventSourceMappings) for a self-managed Redis source: the shapes, the states a
mapping goes through, pagination, and every bad parameter answered with its status, error code
and Lambda's wording, with nothing created or changed.

The mappings here point at a Redis that is not there (port 1): the API never needs the
broker, and the poller reports `PROBLEM: Connection error.` as the mapping's result.
"""

from __future__ import annotations

import time

import pytest

from stoke_e2e import REGION, error_code, error_message, expect_error, http_status
from stoke_guests import deploy

NOWHERE = "redis://127.0.0.1:1"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:broker"


def source(url: str = NOWHERE, kind: str = "REDIS_URL") -> dict:
    return {"Endpoints": {kind: [url]}}


@pytest.fixture(scope="module")
def fn(lam):
    return deploy(lam, "hello", prefix="esm-api")


def mappings_of(lam, name: str) -> list[dict]:
    out, marker = [], None
    while True:
        kw = {"FunctionName": name, **({"Marker": marker} if marker else {})}
        page = lam.list_event_source_mappings(**kw)
        out.extend(page["EventSourceMappings"])
        marker = page.get("NextMarker")
        if not marker:
            return out


def wait_state(lam, uuid: str, state: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        m = lam.get_event_source_mapping(UUID=uuid)
        if m["State"] == state or time.monotonic() > deadline:
            assert m["State"] == state, m
            return m
        time.sleep(0.05)


def test_a_mapping_is_created_settles_updates_lists_and_deletes(lam, fn, account_id):
    m = lam.create_event_source_mapping(
        FunctionName=fn,
        SelfManagedEventSource=source(),
        Topics=["orders"],
        BatchSize=50,
        MaximumBatchingWindowInSeconds=1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        FilterCriteria={"Filters": [{"Pattern": '{"body": {"kind": ["order"]}}'}]},
        ScalingConfig={"MaximumConcurrency": 3},
        MaximumRetryAttempts=4,
        BisectBatchOnFunctionError=True,
        DestinationConfig={
            "OnFailure": {"Destination": f"arn:aws:lambda:{REGION}:{account_id}:function:{fn}"}
        },
    )
    assert m["ResponseMetadata"]["HTTPStatusCode"] == 202
    uuid = m["UUID"]
    assert len(uuid) == 36
    assert m["State"] == "Creating"
    assert m["StateTransitionReason"] == "USER_INITIATED"
    assert m["FunctionArn"] == f"arn:aws:lambda:{REGION}:{account_id}:function:{fn}"
    assert m["EventSourceMappingArn"] == (
        f"arn:aws:lambda:{REGION}:{account_id}:event-source-mapping:{uuid}"
    )
    assert m["SelfManagedEventSource"] == source()
    assert m["Topics"] == ["orders"]
    assert m["BatchSize"] == 50
    assert m["MaximumBatchingWindowInSeconds"] == 1
    assert m["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert m["FilterCriteria"] == {"Filters": [{"Pattern": '{"body": {"kind": ["order"]}}'}]}
    assert m["ScalingConfig"] == {"MaximumConcurrency": 3}
    assert m["MaximumRetryAttempts"] == 4
    assert m["BisectBatchOnFunctionError"] is True
    assert m["StartingPosition"] == "TRIM_HORIZON"
    assert m["SelfManagedKafkaEventSourceConfig"] == {"ConsumerGroupId": f"stoke-{uuid}"}
    # A poller takes it: Enabled, and the broker that is not there is its latest result.
    got = wait_state(lam, uuid, "Enabled")
    deadline = time.monotonic() + 10
    while got["LastProcessingResult"] != "PROBLEM: Connection error." and (
        time.monotonic() < deadline
    ):
        time.sleep(0.1)
        got = lam.get_event_source_mapping(UUID=uuid)
    assert got["LastProcessingResult"] == "PROBLEM: Connection error."

    up = lam.update_event_source_mapping(UUID=uuid, Enabled=False, BatchSize=10)
    assert up["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert (up["State"], up["BatchSize"]) == ("Disabling", 10)
    wait_state(lam, uuid, "Disabled")
    up = lam.update_event_source_mapping(UUID=uuid, Enabled=True)
    assert up["State"] == "Enabling"
    wait_state(lam, uuid, "Enabled")

    # Listed by function, by source, both, and page by page.
    second = lam.create_event_source_mapping(
        FunctionName=fn, SelfManagedEventSource=source(), Topics=["payments"]
    )["UUID"]
    assert {x["UUID"] for x in mappings_of(lam, fn)} == {uuid, second}
    by_source = lam.list_event_source_mappings(EventSourceArn=f"{NOWHERE}/payments")
    assert [x["UUID"] for x in by_source["EventSourceMappings"]] == [second]
    first = lam.list_event_source_mappings(FunctionName=fn, MaxItems=1)
    assert len(first["EventSourceMappings"]) == 1 and first["NextMarker"]
    rest = lam.list_event_source_mappings(FunctionName=fn, Marker=first["NextMarker"])
    assert len(rest["EventSourceMappings"]) == 1 and "NextMarker" not in rest
    assert {first["EventSourceMappings"][0]["UUID"], rest["EventSourceMappings"][0]["UUID"]} == {
        uuid,
        second,
    }

    gone = lam.delete_event_source_mapping(UUID=uuid)
    assert gone["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert gone["State"] == "Deleting"
    with expect_error("ResourceNotFoundException", 404, "The resource you requested does not exist."):
        lam.get_event_source_mapping(UUID=uuid)
    lam.delete_event_source_mapping(UUID=second)
    assert mappings_of(lam, fn) == []


def validation(member: str, value: str, constraint: str) -> str:
    return (
        f"1 validation error detected: Value {value} at '{member}' failed to satisfy "
        f"constraint: {constraint}"
    )


BAD_CREATES = [
    ("batch size 0", {"BatchSize": 0}, "ValidationException", 400,
     validation("batchSize", "'0'", "Member must have value greater than or equal to 1")),
    ("batch size 10001", {"BatchSize": 10001}, "ValidationException", 400,
     validation("batchSize", "'10001'", "Member must have value less than or equal to 10000")),
    ("window 301", {"MaximumBatchingWindowInSeconds": 301}, "ValidationException", 400,
     validation("maximumBatchingWindowInSeconds", "'301'",
                "Member must have value less than or equal to 300")),
    ("retries -2", {"MaximumRetryAttempts": -2}, "ValidationException", 400,
     validation("maximumRetryAttempts", "'-2'",
                "Member must have value greater than or equal to -1")),
    ("record age too old", {"MaximumRecordAgeInSeconds": 604801}, "ValidationException", 400,
     validation("maximumRecordAgeInSeconds", "'604801'",
                "Member must have value less than or equal to 604800")),
    ("concurrency 1", {"ScalingConfig": {"MaximumConcurrency": 1}}, "ValidationException", 400,
     validation("scalingConfig.maximumConcurrency", "'1'",
                "Member must have value greater than or equal to 2")),
    ("concurrency 1001", {"ScalingConfig": {"MaximumConcurrency": 1001}},
     "ValidationException", 400,
     validation("scalingConfig.maximumConcurrency", "'1001'",
                "Member must have value less than or equal to 1000")),
    ("unknown response type", {"FunctionResponseTypes": ["Bogus"]}, "ValidationException", 400,
     validation("functionResponseTypes", "'[Bogus]'",
                "Member must satisfy constraint: [Member must satisfy enum value set: "
                "[ReportBatchItemFailures]]")),
    ("parallelization", {"ParallelizationFactor": 2}, "InvalidParameterValueException", 400,
     "Unsupported 'parallelizationFactor' parameter for given event source mapping type."),
    ("tumbling window", {"TumblingWindowInSeconds": 10}, "InvalidParameterValueException", 400,
     "Unsupported 'tumblingWindowInSeconds' parameter for given event source mapping type."),
    ("on success", {"DestinationConfig": {"OnSuccess": {"Destination": "arn:aws:lambda:us-east-1:123456789012:function:x"}}},
     "InvalidParameterValueException", 400,
     "Unsupported 'destinationConfig.onSuccess' parameter for given event source mapping type."),
    ("bad pattern", {"FilterCriteria": {"Filters": [{"Pattern": '{"body": "x"}'}]}},
     "InvalidParameterValueException", 400, "Invalid filter pattern definition."),
    ("pattern not json", {"FilterCriteria": {"Filters": [{"Pattern": "{nope"}]}},
     "InvalidParameterValueException", 400, "Invalid filter pattern definition."),
    ("unknown operator", {"FilterCriteria": {"Filters": [{"Pattern": '{"a": [{"wildcard": "*"}]}'}]}},
     "InvalidParameterValueException", 400, "Invalid filter pattern definition."),
    ("six filters", {"FilterCriteria": {"Filters": [{"Pattern": '{"a": ["b"]}'}] * 6}},
     "InvalidParameterValueException", 400,
     "The number of filters in FilterCriteria exceeds the limit of 5."),
    ("sqs on failure", {"DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:123456789012:q"}}},
     "InvalidParameterValueException", 400,
     "The destination ARN arn:aws:sqs:us-east-1:123456789012:q is invalid: Stoke supports "
     "Lambda function destinations only."),
    ("starting at a timestamp", {"StartingPosition": "AT_TIMESTAMP"},
     "InvalidParameterValueException", 400,
     "Unsupported starting position AT_TIMESTAMP for a REDIS_URL event source: use "
     "TRIM_HORIZON or LATEST."),
    ("vpc access", {"SourceAccessConfigurations": [{"Type": "VPC_SUBNET", "URI": "subnet:1"}]},
     "InvalidParameterValueException", 400,
     "Unsupported SourceAccessConfiguration type VPC_SUBNET: Stoke takes BASIC_AUTH."),
    ("a secrets manager secret",
     {"SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": SECRET}]},
     "InvalidParameterValueException", 400,
     f"Stoke has no Secrets Manager and cannot read {SECRET}: give BASIC_AUTH's URI as "
     "<username>:<password> (Stoke keeps it sealed and shows a secret ARN of its own in its "
     "place)."),
    ("basic auth without a password",
     {"SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": "alice:"}]},
     "InvalidParameterValueException", 400,
     "BASIC_AUTH's URI must be <username>:<password> (the user name may be empty), or the "
     "secret ARN Stoke showed for this mapping."),
    ("two basic auths",
     {"SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": "a:b"}] * 2},
     "InvalidParameterValueException", 400,
     "SourceAccessConfigurations may hold one BASIC_AUTH configuration."),
    ("an empty basic auth", {"SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": ""}]},
     "ValidationException", 400,
     validation("sourceAccessConfigurations.1.member.uRI", "'****'",
                "Member must have length greater than or equal to 1")),
]

BAD_SOURCES = [
    ("no source", {}, "Either EventSourceArn or SelfManagedEventSource must be specified."),
    ("an sqs queue", {"EventSourceArn": "arn:aws:sqs:us-east-1:123456789012:q"},
     "Stoke does not poll arn:aws:sqs:us-east-1:123456789012:q: name a self-managed source "
     "with SelfManagedEventSource.Endpoints (REDIS_URL, NATS_URL or AMQP_URL)."),
    ("kafka", {"SelfManagedEventSource": source("b1:9092", "KAFKA_BOOTSTRAP_SERVERS"), "Topics": ["t"]},
     "Unsupported endpoint type KAFKA_BOOTSTRAP_SERVERS: SelfManagedEventSource.Endpoints "
     "takes REDIS_URL, NATS_URL or AMQP_URL."),
    ("two kinds", {"SelfManagedEventSource": {"Endpoints": {"REDIS_URL": [NOWHERE], "NATS_URL": ["nats://h:1"]}}, "Topics": ["t"]},
     "SelfManagedEventSource.Endpoints must name exactly one of REDIS_URL, NATS_URL or "
     "AMQP_URL."),
    ("not a redis url", {"SelfManagedEventSource": source("http://127.0.0.1:1"), "Topics": ["t"]},
     "The endpoint http://127.0.0.1:1 is not a valid REDIS_URL (expected redis://host:port)."),
    ("no topic", {"SelfManagedEventSource": source()},
     "Topics must name exactly one stream for a REDIS_URL event source."),
    ("two topics", {"SelfManagedEventSource": source(), "Topics": ["a", "b"]},
     "Topics must name exactly one stream for a REDIS_URL event source."),
    ("queues for redis", {"SelfManagedEventSource": source(), "Topics": ["a"], "Queues": ["q"]},
     "Queues is not valid for a REDIS_URL event source: use Topics."),
    ("not a nats url", {"SelfManagedEventSource": source("redis://127.0.0.1:1", "NATS_URL"), "Topics": ["s"]},
     "The endpoint redis://127.0.0.1:1 is not a valid NATS_URL (expected nats://host:port)."),
    ("queues for nats", {"SelfManagedEventSource": source("nats://127.0.0.1:1", "NATS_URL"), "Queues": ["q"]},
     "Queues is not valid for a NATS_URL event source: use Topics."),
    ("no nats stream", {"SelfManagedEventSource": source("nats://127.0.0.1:1", "NATS_URL")},
     "Topics must name exactly one stream for a NATS_URL event source."),
    ("amqps", {"SelfManagedEventSource": source("amqps://u:secret@127.0.0.1:1/v", "AMQP_URL"), "Queues": ["q"]},
     "The endpoint amqps://u:****@127.0.0.1:1/v is not a valid AMQP_URL: amqps (TLS) is not "
     "supported by Stoke yet, use amqp://."),
    ("amqp vhost of two segments", {"SelfManagedEventSource": source("amqp://u:secret@127.0.0.1:1/a/b", "AMQP_URL"), "Queues": ["q"]},
     "The endpoint amqp://u:****@127.0.0.1:1/a/b is not a valid AMQP_URL: the virtual host must "
     "be one path segment (write / as %2F)."),
    ("amqp without a queue", {"SelfManagedEventSource": source("amqp://127.0.0.1:1", "AMQP_URL")},
     "Queues must name exactly one queue for a AMQP_URL event source."),
    ("topics for amqp", {"SelfManagedEventSource": source("amqp://127.0.0.1:1", "AMQP_URL"), "Topics": ["t"]},
     "Topics is not valid for a AMQP_URL event source: use Queues."),
]


@pytest.mark.parametrize(
    "params,code,status,message",
    [pytest.param(p, c, s, m, id=i) for i, p, c, s, m in BAD_CREATES],
)
def test_every_bad_parameter_of_create_is_refused(lam_raw, fn, params, code, status, message):
    with expect_error(code, status) as ei:
        lam_raw.create_event_source_mapping(
            FunctionName=fn, SelfManagedEventSource=source(), Topics=["bad"], **params
        )
    assert error_message(ei.value) == message
    assert mappings_of(lam_raw, fn) == []


@pytest.mark.parametrize(
    "params,message", [pytest.param(p, m, id=i) for i, p, m in BAD_SOURCES]
)
def test_every_bad_source_is_refused(lam_raw, fn, params, message):
    with expect_error("InvalidParameterValueException", 400) as ei:
        lam_raw.create_event_source_mapping(FunctionName=fn, **params)
    assert error_message(ei.value) == message
    assert mappings_of(lam_raw, fn) == []


def test_a_missing_function_or_a_duplicate_is_refused(lam, fn, account_id):
    with expect_error("ResourceNotFoundException", 404) as ei:
        lam.create_event_source_mapping(
            FunctionName="esm-nobody-here", SelfManagedEventSource=source(), Topics=["x"]
        )
    assert error_message(ei.value) == (
        f"Function not found: arn:aws:lambda:{REGION}:{account_id}:function:esm-nobody-here"
    )
    other = f"arn:aws:lambda:{REGION}:210987654321:function:{fn}"
    with expect_error("InvalidParameterValueException", 400) as ei:
        lam.create_event_source_mapping(
            FunctionName=fn, SelfManagedEventSource=source(), Topics=["dup"],
            DestinationConfig={"OnFailure": {"Destination": other}},
        )
    assert error_message(ei.value) == (
        f"The destination function {other} must be in this account ({account_id}) and "
        f"region ({REGION})."
    )
    assert mappings_of(lam, fn) == []
    first = lam.create_event_source_mapping(
        FunctionName=fn, SelfManagedEventSource=source(), Topics=["dup"]
    )["UUID"]
    try:
        with expect_error("ResourceConflictException", 409) as ei:
            lam.create_event_source_mapping(
                FunctionName=fn, SelfManagedEventSource=source(), Topics=["dup"]
            )
        assert error_message(ei.value) == (
            f'The event source arn (" {NOWHERE}/dup ") and function (" {fn} ") provided '
            f"mapping already exists. Please update or delete the existing mapping with UUID "
            f"{first}"
        )
        assert [m["UUID"] for m in mappings_of(lam, fn)] == [first]
    finally:
        lam.delete_event_source_mapping(UUID=first)


def test_unknown_uuids_and_bad_updates_are_refused(lam, lam_raw, fn):
    missing = "00000000-0000-4000-8000-000000000000"
    for call in (
        lambda: lam.get_event_source_mapping(UUID=missing),
        lambda: lam.update_event_source_mapping(UUID=missing, BatchSize=5),
        lambda: lam.delete_event_source_mapping(UUID=missing),
    ):
        with expect_error("ResourceNotFoundException", 404) as ei:
            call()
        assert error_message(ei.value) == "The resource you requested does not exist."

    uuid = lam.create_event_source_mapping(
        FunctionName=fn, SelfManagedEventSource=source(), Topics=["upd"], BatchSize=7
    )["UUID"]
    try:
        for params, code, message in [
            ({"BatchSize": 0}, "ValidationException",
             validation("batchSize", "'0'", "Member must have value greater than or equal to 1")),
            ({"FilterCriteria": {"Filters": [{"Pattern": "[]"}]}},
             "InvalidParameterValueException", "Invalid filter pattern definition."),
            ({"ParallelizationFactor": 3}, "InvalidParameterValueException",
             "Unsupported 'parallelizationFactor' parameter for given event source mapping type."),
            ({"FunctionName": "esm-nobody-here"}, "ResourceNotFoundException", None),
        ]:
            with pytest.raises(Exception) as ei:
                lam_raw.update_event_source_mapping(UUID=uuid, **params)
            assert error_code(ei.value) == code, (params, error_message(ei.value))
            if message is not None:
                assert error_message(ei.value) == message
            assert http_status(ei.value) == (404 if code.startswith("Resource") else 400)
            assert lam.get_event_source_mapping(UUID=uuid)["BatchSize"] == 7
        with expect_error("ValidationException", 400) as ei:
            lam_raw.list_event_source_mappings(FunctionName=fn, MaxItems=0)
        assert error_message(ei.value) == validation(
            "maxItems", "'0'", "Member must have value greater than or equal to 1"
        )
    finally:
        lam.delete_event_source_mapping(UUID=uuid)


def test_a_password_in_an_endpoint_is_never_answered(lam, fn):
    url = "redis://alice:hunter2-in-the-url@127.0.0.1:1"
    m = lam.create_event_source_mapping(
        FunctionName=fn, SelfManagedEventSource=source(url), Topics=["secret"]
    )
    try:
        shown = source("redis://alice:****@127.0.0.1:1")
        assert m["SelfManagedEventSource"] == shown
        got = lam.get_event_source_mapping(UUID=m["UUID"])
        assert got["SelfManagedEventSource"] == shown
        listed = lam.list_event_source_mappings(
            EventSourceArn="redis://alice:****@127.0.0.1:1/secret"
        )["EventSourceMappings"]
        assert [x["UUID"] for x in listed] == [m["UUID"]]
        assert "hunter2" not in repr([m, got, listed])
    finally:
        lam.delete_event_source_mapping(UUID=m["UUID"])
