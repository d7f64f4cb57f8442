"""The code a create carries: unusable zips, zip-slip, zip bombs, the 50 MB and 4 KB limits,
unknown runtimes. Each is refused with the error Lambda gives, and leaves nothing behind."""

import os
import re
import zipfile

import pytest
from botocore.exceptions import ClientError

from stoke_e2e import (
    MAX_UNZIPPED,
    ROLE,
    WASM_MODULE,
    assert_absent,
    create_wasm,
    expect_error,
    http_status,
    make_symlink_zip,
    make_zeros_zip,
    make_zip,
    sha256_b64,
    unique_name,
    wait_active,
    wasm_zip,
)

UNZIP = "Could not unzip uploaded file"
TOO_BIG_UNZIPPED = f"Unzipped size must be smaller than {MAX_UNZIPPED} bytes"


def _stored_zip(payload_size: int) -> bytes:
    """A zip of incompressible random bytes, stored, plus the wasm handler."""
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("hello.wasm", WASM_MODULE)
        zf.writestr("random.bin", os.urandom(payload_size))
    return buf.getvalue()


def test_unknown_runtime_is_invalid_parameter(lam):
    name = unique_name("code-cobol")
    with expect_error("InvalidParameterValueException", 400):
        create_wasm(lam, name, Runtime="cobol1")
    assert_absent(lam, name)


@pytest.mark.parametrize(
    "data",
    [
        os.urandom(4096),
        b"",
        wasm_zip(extra={"pad": os.urandom(2000)})[:-100],  # truncated: no central directory
        b"PK\x03\x04" + os.urandom(200),  # a local header and then noise
    ],
    ids=["random-bytes", "empty", "truncated", "header-then-noise"],
)
def test_unusable_zip_is_invalid_parameter(lam, data):
    name = unique_name("code-badzip")
    with expect_error("InvalidParameterValueException", 400, UNZIP):
        create_wasm(lam, name, zip_bytes=data)
    assert_absent(lam, name)


@pytest.mark.parametrize(
    "data",
    [
        make_zip({"hello.wasm": WASM_MODULE, "../evil": b"owned"}),
        make_zip({"hello.wasm": WASM_MODULE, "a/b/../../../evil": b"owned"}),
        make_zip({"hello.wasm": WASM_MODULE, "/etc/evil": b"owned"}),
        make_zip({"hello.wasm": WASM_MODULE, "//tmp/evil": b"owned"}),
        make_symlink_zip("link", "/etc/passwd", extra={"hello.wasm": WASM_MODULE}),
        make_symlink_zip("up", "../../..", extra={"hello.wasm": WASM_MODULE}),
        make_symlink_zip("hello.wasm", "/proc/self/exe"),
    ],
    ids=[
        "dotdot",
        "nested-dotdot",
        "absolute",
        "double-slash",
        "symlink-abs",
        "symlink-rel",
        "symlink-handler",
    ],
)
def test_zip_slip_is_an_unusable_zip(lam, data):
    name = unique_name("code-slip")
    with expect_error("InvalidParameterValueException", 400, UNZIP):
        create_wasm(lam, name, zip_bytes=data)
    assert_absent(lam, name)


def test_zip_bomb_is_refused_for_its_unzipped_size(lam, zip_bomb):
    assert len(zip_bomb) < 1_000_000
    name = unique_name("code-bomb")
    with expect_error("InvalidParameterValueException", 400, TOO_BIG_UNZIPPED):
        create_wasm(lam, name, zip_bytes=zip_bomb)
    assert_absent(lam, name)


def test_unzipped_size_counts_all_entries(lam):
    # Two entries of 126 MiB each: neither alone is over the limit, together they are.
    data = make_zeros_zip({"hello.wasm": 0, "a.bin": 126 << 20, "b.bin": 126 << 20})
    name = unique_name("code-bomb-sum")
    with expect_error("InvalidParameterValueException", 400, TOO_BIG_UNZIPPED):
        create_wasm(lam, name, zip_bytes=data)
    assert_absent(lam, name)


def test_zip_bomb_with_lying_sizes_is_stopped_while_unpacking(lam, lying_zip_bomb):
    """The headers say 1 KB, the stream inflates to 300 MB: only a check while unpacking
    catches it. Either message is fair: the zip is corrupt, or too big."""
    name = unique_name("code-bomb-lying")
    with expect_error("InvalidParameterValueException", 400) as ei:
        create_wasm(lam, name, zip_bytes=lying_zip_bomb)
    msg = ei.value.response["Error"]["Message"]
    assert UNZIP in msg or TOO_BIG_UNZIPPED in msg, msg
    assert_absent(lam, name)


def test_update_code_with_a_zip_bomb_is_refused(lam, zip_bomb):
    name = unique_name("code-bomb-upd")
    create_wasm(lam, name)
    before = wait_active(lam, name)["Configuration"]
    with expect_error("InvalidParameterValueException", 400, TOO_BIG_UNZIPPED):
        lam.update_function_code(FunctionName=name, ZipFile=zip_bomb)
    after = lam.get_function(FunctionName=name)["Configuration"]
    assert after == before


@pytest.mark.parametrize("mib", [51, 64])
def test_zip_over_50_mb_is_request_entity_too_large(lam, mib):
    """boto3 sends the zip base64-encoded in the JSON body (~4/3 of its size): the server must
    answer 413 with Lambda's error, not drop the connection while the client is still sending."""
    data = _stored_zip(mib * 1024 * 1024)
    assert len(data) > 52_428_800
    name = unique_name("code-too-big")
    with expect_error("RequestEntityTooLargeException", 413):
        create_wasm(lam, name, zip_bytes=data)
    assert_absent(lam, name)


def test_too_large_answer_keeps_the_connection_usable_or_closes_it_openly(server):
    """HTTP/1.1 keep-alive: after refusing an oversized body the server either reads (drains)
    the rest and keeps the connection, or says `Connection: close`. Closing silently makes the
    client's next request on that pooled connection fail (boto3: ConnectionClosedError)."""
    import base64
    import http.client
    import json

    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    data = _stored_zip(51 * 1024 * 1024)
    body = json.dumps(
        {
            "FunctionName": unique_name("code-413-conn"),
            "Role": ROLE,
            "Runtime": "wasm",
            "Handler": "hello.wasm",
            "Code": {"ZipFile": base64.b64encode(data).decode()},
        }
    ).encode()
    key, secret = server.credentials()
    req = botocore.awsrequest.AWSRequest(
        method="POST",
        url=server.endpoint + "/2015-03-31/functions",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    botocore.auth.SigV4Auth(
        botocore.credentials.Credentials(key, secret), "lambda", "us-east-1"
    ).add_auth(req)
    prepared = req.prepare()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request(
            "POST", "/2015-03-31/functions", body=prepared.body, headers=dict(prepared.headers)
        )
        resp = conn.getresponse()
        assert resp.status == 413, resp.status
        resp.read()
        if (resp.getheader("Connection") or "").lower() == "close":
            return
        # Kept alive: the next request on the same connection must be answered.
        conn.request("GET", "/2016-08-19/account-settings/")
        again = conn.getresponse()
        again.read()
        assert again.status in (200, 403), again.status
    except (http.client.RemoteDisconnected, ConnectionError) as e:
        raise AssertionError(
            f"the server dropped the keep-alive connection after its 413 without "
            f"'Connection: close': {e!r}"
        ) from None
    finally:
        conn.close()


def test_zip_just_under_50_mb_is_accepted(lam):
    """Lambda takes a 50 MB zip inline (about 70 MB of JSON once base64-encoded): the server's
    body limit must not be lower."""
    data = _stored_zip(48 * 1024 * 1024)
    assert len(data) < 52_428_800
    name = unique_name("code-48mb")
    resp = create_wasm(lam, name, zip_bytes=data)
    assert resp["CodeSize"] == len(data)
    assert resp["CodeSha256"] == sha256_b64(data)
    assert wait_active(lam, name)["Configuration"]["State"] == "Active"
    lam.delete_function(FunctionName=name)


def test_a_few_megabytes_of_code_is_fine(lam):
    data = _stored_zip(3 * 1024 * 1024)
    name = unique_name("code-3mb")
    create_wasm(lam, name, zip_bytes=data)
    assert wait_active(lam, name)["Configuration"]["CodeSize"] == len(data)


def test_environment_over_4_kb_is_invalid_parameter(lam):
    name = unique_name("code-env")
    env = {f"VAR_{i}": "v" * 100 for i in range(45)}  # ~4.8 KB
    with expect_error("InvalidParameterValueException", 400) as ei:
        create_wasm(lam, name, Environment={"Variables": env})
    assert (
        "4KB" in ei.value.response["Error"]["Message"]
        or "4 KB" in ei.value.response["Error"]["Message"]
    )
    assert_absent(lam, name)


def test_environment_just_under_4_kb_is_accepted(lam):
    name = unique_name("code-env-ok")
    env = {"VALUE": "x" * 3000}
    create_wasm(lam, name, Environment={"Variables": env})
    assert wait_active(lam, name)["Configuration"]["Environment"]["Variables"] == env


# --- nothing left behind, no memory blow-up (a server of their own, so nothing else runs) ---

_IGNORED = re.compile(r"(-wal|-shm|-journal|\.log)$")


def _files(root) -> set[str]:
    out = set()
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.relpath(os.path.join(dirpath, f), root)
            if not _IGNORED.search(p):
                out.add(p)
    return out


def test_refused_creates_leave_no_files_behind(fresh_server, zip_bomb, lying_zip_bomb):
    lam = fresh_server.client()
    name = unique_name("code-clean")
    create_wasm(lam, name)
    wait_active(lam, name)
    before = _files(fresh_server.data_dir)
    bad = [
        os.urandom(1000),
        make_zip({"hello.wasm": WASM_MODULE, "../evil": b"x"}),
        make_symlink_zip("link", "/etc/passwd", extra={"hello.wasm": WASM_MODULE}),
        zip_bomb,
        lying_zip_bomb,
    ]
    for data in bad:
        with pytest.raises(ClientError) as ei:
            create_wasm(lam, unique_name("code-clean-bad"), zip_bytes=data)
        assert http_status(ei.value) == 400, ei.value.response
        with pytest.raises(ClientError) as ei:
            lam.update_function_code(FunctionName=name, ZipFile=data)
        assert http_status(ei.value) == 400, ei.value.response
    after = _files(fresh_server.data_dir)
    assert after == before, f"new files after refused uploads: {sorted(after - before)}"
    assert not (fresh_server.workdir / "evil").exists()
    assert not os.path.exists("/etc/evil")


def _peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def test_zip_bomb_is_not_inflated_into_memory(fresh_server, zip_bomb, lying_zip_bomb):
    """300 MB of zeros must be counted while streaming, not held in memory: the server's peak
    resident size stays well under the bomb's size."""
    lam = fresh_server.client()
    with pytest.raises(ClientError):
        create_wasm(lam, unique_name("code-bomb-mem"), zip_bytes=zip_bomb)
    with pytest.raises(ClientError):
        create_wasm(lam, unique_name("code-bomb-mem"), zip_bytes=lying_zip_bomb)
    peak = _peak_rss_mib(fresh_server.proc.pid)
    assert peak < 200, f"stoke serve peaked at {peak:.0f} MiB resident while refusing zip bombs"
