"""`SourceAccessConfigurations` `BASIC_AUTH` on a Redis that takes one ACL user only: the URI
carries `<username>:<password>` (Stoke has no Secrets Manager), the poller signs in with it,
and the password is never answered (Get, List, Create and Update show a secret ARN of Stoke's
own in its place), never logged, and never in the store's files in clear; sending that ARN back
keeps the credentials, another secret's ARN is refused with nothing changed.
"""

from __future__ import annotations

import json
import os
import time
import uuid as uuidlib

import pytest

from brokers import RedisServer
from stoke_e2e import REGION, error_message, expect_error
from test_event_sources_redis import lines, publish, python_function, wait_acked

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="Python functions need root")


def wait_result(lam, uuid: str, want: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        got = lam.get_event_source_mapping(UUID=uuid)
        if got["LastProcessingResult"] == want or time.monotonic() > deadline:
            assert got["LastProcessingResult"] == want, got
            return got
        time.sleep(0.1)


def test_basic_auth_signs_the_poller_in_and_is_never_shown(
    lam, lam_raw, server, tmp_path, account_id
):
    password = "pw-" + uuidlib.uuid4().hex
    wrong = "pw-" + uuidlib.uuid4().hex
    with RedisServer(tmp_path / "redis", user=("alice", password)) as r:
        fn = python_function(lam)
        stream = "auth-" + uuidlib.uuid4().hex[:8]
        first = publish(r, stream, [{"i": i} for i in range(20)])
        made = lam.create_event_source_mapping(
            FunctionName=fn,
            SelfManagedEventSource={"Endpoints": {"REDIS_URL": [r.url]}},
            Topics=[stream],
            BatchSize=10,
            SourceAccessConfigurations=[{"Type": "BASIC_AUTH", "URI": f"alice:{wrong}"}],
        )
        uuid = made["UUID"]
        arn = f"arn:aws:secretsmanager:{REGION}:{account_id}:secret:stoke/event-source-mapping/{uuid}"
        shown = [{"Type": "BASIC_AUTH", "URI": arn}]
        answers = [made]
        try:
            assert made["SourceAccessConfigurations"] == shown
            # The wrong password: refused by redis, nothing runs.
            answers.append(wait_result(lam, uuid, "PROBLEM: Connection error."))
            assert lines(server, fn, "DONE", lambda c: False, timeout=0) == {}

            up = lam.update_event_source_mapping(
                UUID=uuid,
                SourceAccessConfigurations=[{"Type": "BASIC_AUTH", "URI": f"alice:{password}"}],
            )
            answers.append(up)
            assert up["SourceAccessConfigurations"] == shown
            done = lines(server, fn, "DONE", lambda c: set(first) <= set(c), timeout=20)
            assert set(done) == set(first)
            wait_acked(r, stream, f"stoke-{uuid}")

            # Sent back as Get shows it, the ARN keeps the credentials.
            got = lam.get_event_source_mapping(UUID=uuid)
            answers.append(got)
            up = lam.update_event_source_mapping(
                UUID=uuid, BatchSize=5,
                SourceAccessConfigurations=got["SourceAccessConfigurations"],
            )
            answers.append(up)
            assert (up["BatchSize"], up["SourceAccessConfigurations"]) == (5, shown)
            second = publish(r, stream, [{"i": i} for i in range(20, 30)])
            done = lines(server, fn, "DONE", lambda c: set(second) <= set(c), timeout=20)
            assert set(done) == set(first) | set(second)

            # Another secret's ARN (Stoke cannot read it) and a URI without a password:
            # refused, nothing changed.
            other = f"arn:aws:secretsmanager:{REGION}:{account_id}:secret:elsewhere"
            for uri, message in [
                (other, f"Stoke has no Secrets Manager and cannot read {other}: give "
                 "BASIC_AUTH's URI as <username>:<password> (Stoke keeps it sealed and shows "
                 "a secret ARN of its own in its place)."),
                ("alice", "BASIC_AUTH's URI must be <username>:<password> (the user name may "
                 "be empty), or the secret ARN Stoke showed for this mapping."),
            ]:
                with expect_error("InvalidParameterValueException", 400) as ei:
                    lam_raw.update_event_source_mapping(
                        UUID=uuid, BatchSize=7,
                        SourceAccessConfigurations=[{"Type": "BASIC_AUTH", "URI": uri}],
                    )
                assert error_message(ei.value) == message
                now = lam.get_event_source_mapping(UUID=uuid)
                assert (now["BatchSize"], now["SourceAccessConfigurations"]) == (5, shown)
            with expect_error("ValidationException", 400) as ei:
                lam_raw.update_event_source_mapping(
                    UUID=uuid,
                    SourceAccessConfigurations=[
                        {"Type": "BASIC_AUTH", "URI": f"alice:{password}{'x' * 200}"}],
                )
            assert error_message(ei.value) == (
                "1 validation error detected: Value '****' at "
                "'sourceAccessConfigurations.1.member.uRI' failed to satisfy constraint: "
                "Member must have length less than or equal to 200"
            )
            listed = lam.list_event_source_mappings(FunctionName=fn)["EventSourceMappings"]
            assert [m["SourceAccessConfigurations"] for m in listed] == [shown]
            answers += listed

            # The password: in no answer, no log line, no file of the store in clear.
            for secret in (password, wrong):
                assert secret not in json.dumps(answers, default=str)
                assert secret not in server.log()
                for f in server.data_dir.rglob("*"):
                    if f.is_file() and f.stat().st_size < 256 << 20:
                        assert secret.encode() not in f.read_bytes(), f
        finally:
            lam.delete_event_source_mapping(UUID=uuid)
