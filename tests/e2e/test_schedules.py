"""EventBridge Scheduler's API through boto3's `scheduler` client, and ticks that really run
functions (issue 15 item 4).

A schedule's target is the `record` guest, which logs `EVENT {...}` with the event it got: a
tick's run is an EVENT line with the schedule's `Input`. The restart test moves the schedules'
clock forward with the hidden `--schedule-clock-offset-ms` flag, so a server started again has
"slept" across ticks without the test waiting for them.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
import uuid
from zoneinfo import ZoneInfo

import pytest
from botocore.exceptions import ClientError

from accounts import stoke_cli
from stoke_e2e import REGION, StokeServer, create_wasm, stoke_bin, unique_name, wait_active
from stoke_guests import deploy, guest_zip, log_events

ROLE = "arn:aws:iam::123456789012:role/scheduler"
DLQ = {"Arn": "arn:aws:sqs:us-east-1:123456789012:sched-dlq"}


def scheduler(srv: StokeServer, **overrides):
    return srv.session().client(
        "scheduler", endpoint_url=srv.endpoint, config=srv.config(**overrides)
    )


def function_arn(lam, name: str) -> str:
    return lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]


def events_with(srv: StokeServer, fn: str, tag: str, want, timeout: float = 10.0) -> int:
    """How many runs of `fn` got the event {"tick": tag}, polled until `want(n)` holds."""

    def count(evs):
        return sum(1 for e in evs if f'"tick":"{tag}"' in e["message"].replace(" ", ""))

    evs = log_events(srv, fn, lambda evs: want(count(evs)), timeout=timeout)
    return count(evs)


def target(arn: str, tag: str, **kw) -> dict:
    return {"Arn": arn, "RoleArn": ROLE, "Input": json.dumps({"tick": tag}), **kw}


def at_in(seconds: float) -> str:
    """An `at` expression `seconds` from now (UTC, whole seconds)."""
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)
    return f"at({when.strftime('%Y-%m-%dT%H:%M:%S')})"


def dead_letters_of(srv: StokeServer, fn: str, want, timeout: float = 10.0) -> list[dict]:
    """`stoke dead-letters show` of every dead letter of `fn`, polled until `want(letters)`."""
    deadline = time.monotonic() + timeout
    while True:
        out = stoke_cli(srv, "dead-letters", "list", "--json")
        assert out.returncode == 0, out.stderr
        ids = [d["Id"] for d in json.loads(out.stdout) if d["FunctionName"] == fn]
        letters = []
        for i in ids:
            shown = stoke_cli(srv, "dead-letters", "show", str(i))
            assert shown.returncode == 0, shown.stderr
            letters.append(json.loads(shown.stdout))
        if want(letters) or time.monotonic() > deadline:
            return letters
        time.sleep(0.2)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with StokeServer(tmp_path_factory.mktemp("schedules")).running() as s:
        yield s


@pytest.fixture(scope="module")
def lam(srv):
    return srv.client()


@pytest.fixture(scope="module")
def rec(lam):
    name = deploy(lam, "record", prefix="sched-rec")
    return name, function_arn(lam, name)


def test_a_rate_schedule_runs_at_once_and_reads_back_as_scheduler_answers(srv, lam, rec):
    fn, arn = rec
    sch = scheduler(srv)
    name = unique_name("rate")
    out = sch.create_schedule(
        Name=name,
        ScheduleExpression="rate(1 hour)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=target(arn, name),
        Description="every hour",
    )
    account = arn.split(":")[4]
    assert out["ScheduleArn"] == f"arn:aws:scheduler:{REGION}:{account}:schedule/default/{name}"
    # A rate without StartDate starts at once: one run, with the schedule's Input.
    assert events_with(srv, fn, name, lambda n: n >= 1) == 1
    got = sch.get_schedule(Name=name)
    assert got["Arn"] == out["ScheduleArn"]
    assert (got["Name"], got["GroupName"], got["State"]) == (name, "default", "ENABLED")
    assert got["ScheduleExpression"] == "rate(1 hour)"
    assert got["ScheduleExpressionTimezone"] == "UTC"
    assert got["Description"] == "every hour"
    assert got["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert got["Target"]["Arn"] == arn and got["Target"]["RoleArn"] == ROLE
    assert got["Target"]["RetryPolicy"] == {
        "MaximumEventAgeInSeconds": 86400,
        "MaximumRetryAttempts": 185,
    }
    assert got["ActionAfterCompletion"] == "NONE"
    assert isinstance(got["CreationDate"], dt.datetime)
    listed = sch.list_schedules(NamePrefix=name)["Schedules"]
    assert [(s["Name"], s["GroupName"], s["State"], s["Target"]["Arn"]) for s in listed] == [
        (name, "default", "ENABLED", arn)
    ]
    # Disabled by an update: it stays, and no tick runs.
    sch.update_schedule(
        Name=name,
        ScheduleExpression="rate(1 minute)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=target(arn, name),
        State="DISABLED",
    )
    got = sch.get_schedule(Name=name)
    assert (got["State"], got["ScheduleExpression"]) == ("DISABLED", "rate(1 minute)")
    assert "Description" not in got
    assert sch.list_schedules(State="DISABLED", NamePrefix=name)["Schedules"][0]["Name"] == name
    sch.delete_schedule(Name=name)
    with pytest.raises(ClientError) as e:
        sch.get_schedule(Name=name)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert events_with(srv, fn, name, lambda n: n >= 1) == 1


def test_at_fires_once_and_a_delete_after_completion_removes_it(srv, lam, rec):
    fn, arn = rec
    sch = scheduler(srv)
    name = unique_name("at")
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3)
    # The time is given on Paris's wall clock.
    paris = when.astimezone(ZoneInfo("Europe/Paris"))
    sch.create_schedule(
        Name=name,
        ScheduleExpression=f"at({paris.strftime('%Y-%m-%dT%H:%M:%S')})",
        ScheduleExpressionTimezone="Europe/Paris",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=target(arn, name),
        ActionAfterCompletion="DELETE",
    )
    assert events_with(srv, fn, name, lambda n: n >= 1, timeout=15) == 1
    deadline = time.monotonic() + 5
    while True:
        try:
            sch.get_schedule(Name=name)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ResourceNotFoundException"
            break
        assert time.monotonic() < deadline, "the completed schedule was not deleted"
        time.sleep(0.1)
    assert events_with(srv, fn, name, lambda n: n > 1, timeout=1.5) == 1


def test_groups_hold_schedules_and_list_in_pages(srv, lam, rec):
    _, arn = rec
    sch = scheduler(srv)
    group = unique_name("grp")
    out = sch.create_schedule_group(Name=group)
    assert out["ScheduleGroupArn"].endswith(f":schedule-group/{group}")
    got = sch.get_schedule_group(Name=group)
    assert (got["Name"], got["State"]) == (group, "ACTIVE")
    assert sch.get_schedule_group(Name="default")["Name"] == "default"
    names = sorted(unique_name("g") for _ in range(3))
    for n in names:
        sch.create_schedule(
            Name=n,
            GroupName=group,
            ScheduleExpression="cron(0 12 * * ? *)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target=target(arn, n),
        )
    pages = list(
        sch.get_paginator("list_schedules").paginate(
            GroupName=group, PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(p["Schedules"]) for p in pages] == [2, 1]
    assert [s["Name"] for p in pages for s in p["Schedules"]] == names
    assert sch.get_schedule(Name=names[0], GroupName=group)["GroupName"] == group
    groups = [g["Name"] for g in sch.list_schedule_groups()["ScheduleGroups"]]
    assert "default" in groups and group in groups
    # A deleted group takes its schedules with it.
    sch.delete_schedule_group(Name=group)
    with pytest.raises(ClientError) as e:
        sch.get_schedule(Name=names[0], GroupName=group)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_stoke_schedules_show_prints_the_next_runs_across_a_dst_change(srv, lam, rec):
    _, arn = rec
    sch = scheduler(srv)
    name = unique_name("dst")
    # 02:30 every day in New York, from 2030-03-09: 2030-03-10 springs forward at 02:00, so
    # that day has no 02:30 and is skipped, as EventBridge does.
    sch.create_schedule(
        Name=name,
        ScheduleExpression="cron(30 2 * * ? *)",
        ScheduleExpressionTimezone="America/New_York",
        StartDate=dt.datetime(2030, 3, 9, tzinfo=dt.timezone.utc),
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=target(arn, name),
    )
    key, secret = srv.credentials()
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "STOKE_ENDPOINT": srv.endpoint,
        "AWS_REGION": REGION,
    }
    show = subprocess.run(
        [str(stoke_bin()), "schedules", "show", name, "--count", "3"],
        capture_output=True, text=True, env=env, timeout=30, check=False,
    )
    assert show.returncode == 0, show.stderr
    runs = [ln.strip() for ln in show.stdout.splitlines() if ln.startswith("  ")]
    assert runs == [
        "2030-03-09T07:30:00Z (2030-03-09T02:30:00-05:00[America/New_York])",
        "2030-03-11T06:30:00Z (2030-03-11T02:30:00-04:00[America/New_York])",
        "2030-03-12T06:30:00Z (2030-03-12T02:30:00-04:00[America/New_York])",
    ], show.stdout
    listed = subprocess.run(
        [str(stoke_bin()), "schedules", "list"],
        capture_output=True, text=True, env=env, timeout=30, check=False,
    )
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if f" {name} " in ln)
    assert "cron(30 2 * * ? *)" in line and "2030-03-09T07:30:00Z" in line, line
    sch.delete_schedule(Name=name)


def test_a_cron_in_new_york_fires_on_the_spring_forward_morning_at_its_new_offset(
    tmp_path_factory,
):
    # The schedules' clock starts a few seconds before 2030-03-10T07:00:00Z: 03:00 EDT on
    # the morning New York springs forward (the day before, 03:00 EST was 08:00Z). A tick
    # counted at the old offset would come an hour late; 02:30 does not exist that morning.
    dst = dt.datetime(2030, 3, 10, 7, 0, 0, tzinfo=dt.timezone.utc)
    lead = 12
    offset_ms = int((dst - dt.datetime.now(dt.timezone.utc)).total_seconds() * 1000) - lead * 1000
    srv = StokeServer(
        tmp_path_factory.mktemp("sched-dst"),
        extra_args=["--schedule-clock-offset-ms", str(offset_ms)],
    )
    with srv.running():
        lam = srv.client()
        fn = deploy(lam, "record", prefix="sched-dst")
        arn = function_arn(lam, fn)
        sch = scheduler(srv)
        for tag, expr in [("three", "cron(0 3 * * ? *)"), ("half-two", "cron(30 2 * * ? *)")]:
            sch.create_schedule(
                Name=tag, ScheduleExpression=expr, ScheduleExpressionTimezone="America/New_York",
                FlexibleTimeWindow={"Mode": "OFF"}, Target=target(arn, tag),
            )
        # It runs at 07:00Z on the schedules' clock, once.
        assert events_with(srv, fn, "three", lambda n: n >= 1, timeout=lead + 10) == 1
        assert events_with(srv, fn, "three", lambda n: n > 1, timeout=1) == 1
        assert events_with(srv, fn, "half-two", lambda n: n > 0, timeout=0.1) == 0


def test_a_restart_runs_a_missed_tick_once_within_its_window(tmp_path_factory):
    srv = StokeServer(tmp_path_factory.mktemp("sched-restart"), extra_args=["--schedule-no-jitter"])
    with srv.running():
        missed_ticks_across_a_restart(srv)


def missed_ticks_across_a_restart(srv: StokeServer) -> None:
    """On `srv` (running, with --schedule-no-jitter): ticks missed while it was down run once
    at its next start when within their window, and not at all past it (into the dead
    letters when the schedule keeps them); a retry policy's MaximumEventAgeInSeconds narrows
    the window."""
    lam = srv.client()
    fn = deploy(lam, "record", prefix="sched-restart")
    arn = function_arn(lam, fn)
    sch = scheduler(srv)
    start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=60)
    # Every minute, no window: runs at once.
    sch.create_schedule(
        Name="every-minute", ScheduleExpression="rate(1 minute)",
        FlexibleTimeWindow={"Mode": "OFF"}, Target=target(arn, "every-minute"),
    )
    # Hourly from a minute from now: one with a 10-minute window, one without (its missed
    # tick kept in the dead letters), one with the window but a minute's event age.
    flexible = {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 10}
    for tag, window, more in [
        ("flexible", flexible, {}),
        ("strict", {"Mode": "OFF"}, {"DeadLetterConfig": DLQ}),
        ("short-age", flexible, {"RetryPolicy": {"MaximumEventAgeInSeconds": 60,
                                                 "MaximumRetryAttempts": 0}}),
    ]:
        sch.create_schedule(
            Name=tag, ScheduleExpression="rate(1 hour)", StartDate=start,
            FlexibleTimeWindow=window, Target=target(arn, tag, **more),
        )
    assert sch.get_schedule(Name="short-age")["Target"]["RetryPolicy"] == {
        "MaximumEventAgeInSeconds": 60, "MaximumRetryAttempts": 0,
    }
    assert sch.get_schedule(Name="strict")["Target"]["DeadLetterConfig"] == DLQ
    # A one-off at the same time, to delete after completion: missed, it is complete too.
    sch.create_schedule(
        Name="late-at", ScheduleExpression=f"at({start.strftime('%Y-%m-%dT%H:%M:%S')})",
        FlexibleTimeWindow={"Mode": "OFF"}, Target=target(arn, "late-at"),
        ActionAfterCompletion="DELETE",
    )
    assert events_with(srv, fn, "every-minute", lambda n: n >= 1) == 1
    srv.stop()
    # Down for 8 minutes on the schedules' clock: every-minute missed 8 ticks, the last
    # within its grace (5 min); the hourly tick is ~7 minutes late: within the flexible
    # window (10), past the strict one's grace.
    srv.extra_args += ["--schedule-clock-offset-ms", str(8 * 60_000)]
    srv.start()
    assert events_with(srv, fn, "every-minute", lambda n: n >= 2) == 2
    assert events_with(srv, fn, "flexible", lambda n: n >= 1) == 1
    # The strict schedule's late tick is a dead letter (the short-age one keeps none).
    (letter,) = dead_letters_of(srv, fn, lambda ls: len(ls) >= 1)
    assert (letter["Condition"], letter["ApproximateInvokeCount"]) == ("EventAgeExceeded", 0)
    assert json.loads(letter["Payload"]) == {"tick": "strict"}
    assert json.loads(letter["Response"])["ScheduleArn"].endswith(":schedule/default/strict")
    deadline = time.monotonic() + 5
    while [s["Name"] for s in sch.list_schedules(NamePrefix="late-at")["Schedules"]]:
        assert time.monotonic() < deadline, "the missed one-off was not deleted"
        time.sleep(0.1)
    # No more: one run for the missed ticks, none for the late ticks past their window.
    time.sleep(2)
    assert events_with(srv, fn, "every-minute", lambda n: n > 2, timeout=0.5) == 2
    assert events_with(srv, fn, "strict", lambda n: n > 0, timeout=0.5) == 0
    assert events_with(srv, fn, "short-age", lambda n: n > 0, timeout=0.5) == 0
    assert events_with(srv, fn, "late-at", lambda n: n > 0, timeout=0.5) == 0
    assert events_with(srv, fn, "flexible", lambda n: n > 1, timeout=0.5) == 1
    assert len(dead_letters_of(srv, fn, lambda ls: False, timeout=0)) == 1


def test_a_tick_whose_function_is_gone_is_a_dead_letter_when_the_schedule_keeps_them(srv, lam):
    fn = deploy(lam, "record", prefix="sched-gone")
    arn = function_arn(lam, fn)
    sch = scheduler(srv)
    kept, dropped = unique_name("kept"), unique_name("dropped")
    expr = at_in(4)
    for tag, more in [(kept, {"DeadLetterConfig": DLQ}), (dropped, {})]:
        sch.create_schedule(
            Name=tag, ScheduleExpression=expr, FlexibleTimeWindow={"Mode": "OFF"},
            Target=target(arn, tag, RetryPolicy={"MaximumRetryAttempts": 3}, **more),
        )
    lam.delete_function(FunctionName=fn)
    (letter,) = dead_letters_of(srv, fn, lambda ls: len(ls) >= 1, timeout=15)
    assert (letter["Condition"], letter["ErrorType"]) == (
        "FunctionNotFound", "ResourceNotFoundException",
    )
    assert (letter["FunctionName"], letter["Qualifier"]) == (fn, "$LATEST")
    assert json.loads(letter["Payload"]) == {"tick": kept}
    response = json.loads(letter["Response"])
    assert response["ScheduleArn"].endswith(f":schedule/default/{kept}")
    assert response["TargetArn"] == arn
    # Both ticks are spent: the schedules stay, with no next run.
    for tag in (kept, dropped):
        assert sch.get_schedule(Name=tag)["State"] == "ENABLED"
        sch.delete_schedule(Name=tag)
    # The function back, a redrive runs the tick's input.
    create_wasm(lam, fn, zip_bytes=guest_zip("record"), Handler="record.wasm")
    wait_active(lam, fn)
    red = stoke_cli(srv, "dead-letters", "redrive", str(letter["Id"]))
    assert red.returncode == 0, red.stderr
    assert events_with(srv, fn, kept, lambda n: n >= 1) == 1
    assert events_with(srv, fn, dropped, lambda n: n > 0, timeout=0.3) == 0


BAD_CREATES = [
    # (case, members changed, status, code, message)
    ("name too long", {"Name": "n" * 65}, 400, "ValidationException",
     "1 validation error detected: Value '" + "n" * 65 + "' at 'name' failed to satisfy "
     "constraint: Member must have length less than or equal to 64"),
    ("name pattern", {"Name": "bad!name"}, 400, "ValidationException",
     "1 validation error detected: Value 'bad!name' at 'name' failed to satisfy constraint: "
     "Member must satisfy regular expression pattern: [0-9a-zA-Z-_.]+"),
    ("rate of zero", {"ScheduleExpression": "rate(0 minutes)"}, 400, "ValidationException",
     "Invalid Schedule Expression rate(0 minutes)."),
    ("cron of five fields", {"ScheduleExpression": "cron(0 12 * * *)"}, 400,
     "ValidationException", "Invalid Schedule Expression cron(0 12 * * *)."),
    ("cron with both days", {"ScheduleExpression": "cron(0 12 * * MON *)"}, 400,
     "ValidationException", "Invalid Schedule Expression cron(0 12 * * MON *)."),
    ("at without seconds", {"ScheduleExpression": "at(2030-01-01T00:00)"}, 400,
     "ValidationException", "Invalid Schedule Expression at(2030-01-01T00:00)."),
    ("unknown time zone", {"ScheduleExpressionTimezone": "Mars/Olympus"}, 400,
     "ValidationException", "Invalid ScheduleExpressionTimezone Mars/Olympus."),
    ("state", {"State": "PAUSED"}, 400, "ValidationException",
     "1 validation error detected: Value 'PAUSED' at 'state' failed to satisfy constraint: "
     "Member must satisfy enum value set: [ENABLED, DISABLED]"),
    ("window mode", {"FlexibleTimeWindow": {"Mode": "SOMETIMES"}}, 400, "ValidationException",
     "1 validation error detected: Value 'SOMETIMES' at 'flexibleTimeWindow.mode' failed to "
     "satisfy constraint: Member must satisfy enum value set: [OFF, FLEXIBLE]"),
    ("window too wide", {"FlexibleTimeWindow": {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 1441}},
     400, "ValidationException",
     "1 validation error detected: Value '1441' at 'flexibleTimeWindow.maximumWindowInMinutes' "
     "failed to satisfy constraint: Member must have value less than or equal to 1440"),
    ("flexible without a window", {"FlexibleTimeWindow": {"Mode": "FLEXIBLE"}}, 400,
     "ValidationException",
     "MaximumWindowInMinutes must be provided when the FlexibleTimeWindow Mode is FLEXIBLE."),
    ("role pattern", {"Target": {"RoleArn": "not-a-role"}}, 400, "ValidationException",
     "1 validation error detected: Value 'not-a-role' at 'target.roleArn' failed to satisfy "
     "constraint: Member must satisfy regular expression pattern: "
     "arn:aws[a-z-]*:iam::\\d{12}:role\\/[\\w+=,.@\\/-]+"),
    ("retries", {"Target": {"RetryPolicy": {"MaximumRetryAttempts": 186}}}, 400,
     "ValidationException",
     "1 validation error detected: Value '186' at 'target.retryPolicy.maximumRetryAttempts' "
     "failed to satisfy constraint: Member must have value less than or equal to 185"),
    ("event age", {"Target": {"RetryPolicy": {"MaximumEventAgeInSeconds": 59}}}, 400,
     "ValidationException",
     "1 validation error detected: Value '59' at 'target.retryPolicy.maximumEventAgeInSeconds' "
     "failed to satisfy constraint: Member must have value greater than or equal to 60"),
    ("dead letter queue", {"Target": {"DeadLetterConfig": {"Arn": "arn:aws:sns:x"}}}, 400,
     "ValidationException",
     "1 validation error detected: Value 'arn:aws:sns:x' at 'target.deadLetterConfig.arn' failed "
     "to satisfy constraint: Member must satisfy regular expression pattern: "
     "arn:aws[a-z-]*:sqs:[a-z0-9\\-]+:\\d{12}:[a-zA-Z0-9\\-_]+"),
    ("action after completion", {"ActionAfterCompletion": "KEEP"}, 400, "ValidationException",
     "1 validation error detected: Value 'KEEP' at 'actionAfterCompletion' failed to satisfy "
     "constraint: Member must satisfy enum value set: [NONE, DELETE]"),
    ("dates out of order", {"StartDate": dt.datetime(2031, 1, 1, tzinfo=dt.timezone.utc),
                            "EndDate": dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)},
     400, "ValidationException", "The StartDate must be earlier than the EndDate."),
    ("missing target", {"Target": None}, 400, "ValidationException",
     "1 validation error detected: Value null at 'target' failed to satisfy constraint: "
     "Member must not be null"),
    ("missing expression", {"ScheduleExpression": None}, 400, "ValidationException",
     "1 validation error detected: Value null at 'scheduleExpression' failed to satisfy "
     "constraint: Member must not be null"),
    ("missing window", {"FlexibleTimeWindow": None}, 400, "ValidationException",
     "1 validation error detected: Value null at 'flexibleTimeWindow' failed to satisfy "
     "constraint: Member must not be null"),
    ("description too long", {"Description": "d" * 513}, 400, "ValidationException",
     "1 validation error detected: Value '" + "d" * 513 + "' at 'description' failed to "
     "satisfy constraint: Member must have length less than or equal to 512"),
    ("window of zero", {"FlexibleTimeWindow": {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 0}},
     400, "ValidationException",
     "1 validation error detected: Value '0' at 'flexibleTimeWindow.maximumWindowInMinutes' "
     "failed to satisfy constraint: Member must have value greater than or equal to 1"),
    ("a window with OFF", {"FlexibleTimeWindow": {"Mode": "OFF", "MaximumWindowInMinutes": 5}},
     400, "ValidationException",
     "MaximumWindowInMinutes can only be provided when the FlexibleTimeWindow Mode is FLEXIBLE."),
    ("rate unit", {"ScheduleExpression": "rate(5 seconds)"}, 400, "ValidationException",
     "Invalid Schedule Expression rate(5 seconds)."),
    ("cron minute out of range", {"ScheduleExpression": "cron(60 12 * * ? *)"}, 400,
     "ValidationException", "Invalid Schedule Expression cron(60 12 * * ? *)."),
    ("missing group", {"GroupName": "no-such-group"}, 404, "ResourceNotFoundException",
     "Schedule group no-such-group does not exist."),
]


def _create_args(name: str, arn: str, changes: dict) -> dict:
    args = {
        "Name": name,
        "ScheduleExpression": "rate(1 hour)",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {"Arn": arn, "RoleArn": ROLE},
    }
    for k, v in changes.items():
        if v is None:
            args.pop(k)
        elif k == "Target":
            args["Target"] = {**args["Target"], **v}
        else:
            args[k] = v
    return args


@pytest.mark.parametrize("case,changes,status,code,message", BAD_CREATES, ids=[c[0] for c in BAD_CREATES])
def test_a_bad_create_is_refused_with_schedulers_error(srv, rec, case, changes, status, code, message):
    _, arn = rec
    sch = scheduler(srv, parameter_validation=False)
    name = unique_name("bad")
    args = _create_args(name, arn, changes)
    with pytest.raises(ClientError) as e:
        sch.create_schedule(**args)
    err = e.value.response
    assert (err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Code"]) == (status, code)
    assert err["Error"]["Message"] == message
    # Nothing was created.
    listed = sch.get_paginator("list_schedules").paginate()
    assert args.get("Name") not in [s["Name"] for p in listed for s in p["Schedules"]]


def test_a_target_that_is_not_a_function_of_the_account_is_refused(srv, rec):
    _, arn = rec
    sch = scheduler(srv)
    for bad, shown in [
        ("arn:aws:sqs:us-east-1:123456789012:q", "Invalid target arn:aws:sqs:us-east-1:123456789012:q"),
        (arn.replace(arn.split(":")[4], "999999999999"), "is not a function of account"),
    ]:
        name = unique_name("tgt")
        with pytest.raises(ClientError) as e:
            sch.create_schedule(
                Name=name, ScheduleExpression="rate(1 hour)", FlexibleTimeWindow={"Mode": "OFF"},
                Target={"Arn": bad, "RoleArn": ROLE},
            )
        err = e.value.response
        assert (err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Code"]) == (400, "ValidationException")
        assert shown in err["Error"]["Message"]
        assert sch.list_schedules(NamePrefix=name)["Schedules"] == []


def test_missing_and_duplicate_resources_answer_schedulers_errors(srv, rec):
    _, arn = rec
    sch = scheduler(srv, parameter_validation=False)
    name = unique_name("dup")
    sch.create_schedule(**_create_args(name, arn, {}))
    group = unique_name("dupg")
    sch.create_schedule_group(Name=group)

    def refused(call, status, code, message):
        with pytest.raises(ClientError) as e:
            call()
        err = e.value.response
        assert (err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Code"]) == (status, code)
        assert err["Error"]["Message"] == message

    refused(lambda: sch.create_schedule(**_create_args(name, arn, {})), 409, "ConflictException",
            f"Schedule {name} already exists.")
    # A create sent again with its ClientToken (an SDK's retry) answers as the first did; with
    # another token it is a conflict.
    retried = unique_name("retry")
    token = uuid.uuid4().hex
    first = sch.create_schedule(**_create_args(retried, arn, {}), ClientToken=token)
    again = sch.create_schedule(**_create_args(retried, arn, {}), ClientToken=token)
    assert again["ScheduleArn"] == first["ScheduleArn"]
    assert "ClientToken" not in sch.get_schedule(Name=retried)
    assert [s["Name"] for s in sch.list_schedules(NamePrefix=retried)["Schedules"]] == [retried]
    refused(lambda: sch.create_schedule(**_create_args(retried, arn, {}), ClientToken="other"),
            409, "ConflictException", f"Schedule {retried} already exists.")
    sch.delete_schedule(Name=retried)
    refused(lambda: sch.get_schedule(Name="nope"), 404, "ResourceNotFoundException",
            "Schedule nope does not exist.")
    refused(lambda: sch.update_schedule(**_create_args("nope", arn, {})), 404,
            "ResourceNotFoundException", "Schedule nope does not exist.")
    refused(lambda: sch.delete_schedule(Name="nope"), 404, "ResourceNotFoundException",
            "Schedule nope does not exist.")
    refused(lambda: sch.create_schedule_group(Name=group), 409, "ConflictException",
            f"Schedule group {group} already exists.")
    refused(lambda: sch.get_schedule_group(Name="nope"), 404, "ResourceNotFoundException",
            "Schedule group nope does not exist.")
    refused(lambda: sch.delete_schedule_group(Name="nope"), 404, "ResourceNotFoundException",
            "Schedule group nope does not exist.")
    refused(lambda: sch.delete_schedule_group(Name="default"), 400, "ValidationException",
            "The default schedule group cannot be deleted.")
    refused(lambda: sch.list_schedules(GroupName="nope"), 404, "ResourceNotFoundException",
            "Schedule group nope does not exist.")
    refused(lambda: sch.list_schedules(MaxResults=101), 400, "ValidationException",
            "1 validation error detected: Value '101' at 'maxResults' failed to satisfy "
            "constraint: Member must have value less than or equal to 100")
    refused(lambda: sch.list_schedules(NextToken="!!"), 400, "ValidationException",
            "The NextToken is not valid.")
    refused(lambda: sch.update_schedule(**_create_args(name, arn, {"ScheduleExpression": "rate(x)"})),
            400, "ValidationException", "Invalid Schedule Expression rate(x).")
    refused(lambda: sch.update_schedule(**_create_args(name, arn, {"State": "OFF"})), 400,
            "ValidationException",
            "1 validation error detected: Value 'OFF' at 'state' failed to satisfy constraint: "
            "Member must satisfy enum value set: [ENABLED, DISABLED]")
    refused(lambda: sch.create_schedule_group(Name="bad group"), 400, "ValidationException",
            "1 validation error detected: Value 'bad group' at 'name' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: [0-9a-zA-Z-_.]+")
    # Nothing changed: the schedule and the group are as they were.
    got = sch.get_schedule(Name=name)
    assert (got["ScheduleExpression"], got["State"]) == ("rate(1 hour)", "ENABLED")
    assert sch.get_schedule_group(Name=group)["State"] == "ACTIVE"
    groups = [g["Name"] for g in sch.list_schedule_groups()["ScheduleGroups"]]
    assert "bad group" not in groups
    sch.delete_schedule(Name=name)
    sch.delete_schedule_group(Name=group)
