"""What a python3.x function sees: its file tree, search path, interpreter, environment, user
and the runtime's boto3 (test_runtime_env.py)."""

import errno
import os
import pwd
import sys


def _state(path):
    try:
        os.stat(path)
        return "exists"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def handler(event, context):
    out = {
        "root": sorted(os.listdir("/")),
        "paths": {p: _state(p) for p in event.get("paths", [])},
        "sys_path": list(sys.path),
        "executable": sys.executable,
        "prefixes": [sys.prefix, sys.base_prefix, sys.exec_prefix],
        "version": list(sys.version_info[:3]),
        "env": dict(os.environ),
        "home": os.path.expanduser("~"),
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "opt": os.listdir("/opt"),
        "passwd": open("/etc/passwd").read(),
        "group": open("/etc/group").read(),
        "site_packages": {
            p: os.listdir(p) for p in sys.path if p.endswith("-packages") and os.path.isdir(p)
        },
    }
    try:
        import boto3
        import botocore

        # A client loads botocore's service model from /var/runtime (no request is sent).
        client = boto3.client(
            "lambda", region_name=os.environ["AWS_REGION"], aws_access_key_id="x",
            aws_secret_access_key="y",
        )
        out["boto3"] = {
            "boto3": [boto3.__version__, boto3.__file__],
            "botocore": [botocore.__version__, botocore.__file__],
            "client": client.meta.service_model.service_name,
        }
    except Exception as e:  # reported, not raised: the test says what was missing
        out["boto3"] = repr(e)
    out["module_dirs"] = sorted(
        {os.path.dirname(f) for f in (getattr(m, "__file__", None) for m in list(sys.modules.values())) if f}
    )
    return out
