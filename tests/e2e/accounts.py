"""Accounts for the tests that need several of them (issue 13).

`create_account(server, name)` makes an account on a running `StokeServer` with
`stoke accounts create NAME --json`, signed with the admin's key (the one the server's first
start wrote to DIR/credentials), and returns an `Account` (its id and its access key);
`Account.client(server, service)` is a boto3 client signed with that key.

Account names are unique on a server: `create_account` adds a random suffix to `name`, so that
tests sharing the session's server may use the same names. `stoke_cli(server, *args)` runs
any other `stoke` command as the admin (or with `credentials=` another account's key).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from dataclasses import dataclass

import boto3

from stoke_e2e import REGION, StokeServer, stoke_bin


@dataclass(frozen=True)
class Account:
    account_id: str
    access_key_id: str
    secret_access_key: str

    def session(self) -> boto3.Session:
        return boto3.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=REGION,
        )

    def client(self, server: StokeServer, service: str = "lambda", **config_overrides):
        return self.session().client(
            service, endpoint_url=server.endpoint, config=server.config(**config_overrides)
        )


def stoke_cli(
    server: StokeServer, *args: str, credentials: tuple[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Runs `stoke ARGS…` against `server`, signed with the admin's key, or with
    `credentials` (access key id, secret) when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STOKE_"))}
    env.update(AWS_ENDPOINT_URL=server.endpoint, AWS_DEFAULT_REGION=REGION)
    if credentials is None:
        env.update(AWS_SHARED_CREDENTIALS_FILE=str(server.credentials_file), AWS_PROFILE="stoke")
    else:
        env.update(AWS_ACCESS_KEY_ID=credentials[0], AWS_SECRET_ACCESS_KEY=credentials[1])
    return subprocess.run(
        [str(stoke_bin()), *args], capture_output=True, text=True, env=env, timeout=60
    )


def create_account(server: StokeServer, name: str) -> Account:
    """A new account on `server` with one access key (`stoke accounts create NAME --json`)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "-", name)[:48] or "account"
    unique = f"{safe}-{uuid.uuid4().hex[:8]}"
    proc = stoke_cli(server, "accounts", "create", unique, "--json")
    assert proc.returncode == 0, f"stoke accounts create {unique} failed: {proc.stderr}"
    out = json.loads(proc.stdout)
    return Account(out["AccountId"], out["AccessKeyId"], out["SecretAccessKey"])
