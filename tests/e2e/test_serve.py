"""`stoke serve` itself: what it prints and writes on its first start, and a clean shutdown."""

import configparser
import os
import re
import signal
import stat

from stoke_e2e import create_wasm, unique_name, wait_active


def test_first_start_prints_what_a_user_needs(fresh_server):
    out = fresh_server.log()
    m = re.search(r"AWS_SHARED_CREDENTIALS_FILE=(\S+)\s+AWS_PROFILE=stoke\b", out)
    assert m, f"no 'AWS_SHARED_CREDENTIALS_FILE=… AWS_PROFILE=stoke' line in:\n{out}"
    assert os.path.samefile(m.group(1), fresh_server.credentials_file), m.group(1)
    assert fresh_server.endpoint in out, f"the endpoint {fresh_server.endpoint} is not printed"


def test_credentials_file_is_an_aws_shared_credentials_file(fresh_server):
    cp = configparser.ConfigParser()
    cp.read(fresh_server.credentials_file)
    assert "stoke" in cp.sections()
    key = cp["stoke"]["aws_access_key_id"]
    secret = cp["stoke"]["aws_secret_access_key"]
    assert re.fullmatch(r"\w{16,128}", key), key
    assert len(secret) >= 30 and not any(c.isspace() for c in secret)
    mode = stat.S_IMODE(os.stat(fresh_server.credentials_file).st_mode)
    assert mode & 0o077 == 0, f"credentials file is readable by others: {oct(mode)}"


def test_boto3_works_with_only_the_printed_environment(fresh_server, monkeypatch):
    """What the README tells a user: export the two printed variables, pass the endpoint."""
    import boto3
    from botocore.config import Config

    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(fresh_server.credentials_file))
    monkeypatch.setenv("AWS_PROFILE", "stoke")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(fresh_server.workdir / "no-aws-config"))
    lam = boto3.client(
        "lambda",
        region_name="us-east-1",
        endpoint_url=fresh_server.endpoint,
        config=Config(retries={"total_max_attempts": 1}),
    )
    assert lam.list_functions()["Functions"] == []


def test_sigterm_with_functions_exits_cleanly(fresh_server):
    lam = fresh_server.client()
    for _ in range(3):
        create_wasm(lam, unique_name("term"))
    fresh_server.stop(signal.SIGTERM)


def test_sigint_exits_cleanly(fresh_server):
    lam = fresh_server.client()
    name = unique_name("int")
    create_wasm(lam, name)
    wait_active(lam, name)
    fresh_server.stop(signal.SIGINT)


def test_empty_server_lists_nothing_and_counts_zero(fresh_server):
    lam = fresh_server.client()
    assert lam.list_functions()["Functions"] == []
    assert lam.get_account_settings()["AccountUsage"]["FunctionCount"] == 0
