"""Accounts for the tests that need several of them (issue 13).

`create_account(server, name)` makes an account on a running `StokeServer` and returns an
`Account` (its id and one access key); `Account.client(server, service)` is a boto3 client
signed with that key.

TEMPORARY: until `stoke accounts create NAME --json` lands, the account is written straight
into the server's SQLite file (the server reads an access key it has not seen from the store).
The `accounts` branch replaces the body of `create_account` with the CLI call; the interface
(the function, `Account` and its fields) stays as it is here, so that tests written against it
keep working.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
import string
from dataclasses import dataclass

import boto3

from stoke_e2e import REGION, StokeServer


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


def create_account(server: StokeServer, name: str) -> Account:
    """A new account on `server` with one access key (TEMPORARY body: see the module doc)."""
    rng = random.SystemRandom()
    account_id = str(rng.randint(10**11, 10**12 - 1))
    key_id = "AKIA" + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16))
    secret = "".join(rng.choice(string.ascii_letters + string.digits + "+/") for _ in range(40))
    at = dt.datetime.now(dt.timezone.utc).isoformat()
    with sqlite3.connect(server.data_dir / "stoke.db", timeout=30) as db:
        db.execute(
            "INSERT INTO accounts (id, is_default, created_at) VALUES (?, 0, ?)", (account_id, at)
        )
        db.execute(
            "INSERT INTO access_keys (access_key_id, secret, account_id, created_at) "
            "VALUES (?, ?, ?, ?)",
            (key_id, secret, account_id, at),
        )
    return Account(account_id, key_id, secret)
