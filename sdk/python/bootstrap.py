"""Stoke's Python runtime: the loop that runs a `python3.x` function over the Lambda Runtime API.

Stoke runs it as `/var/lang/bin/python3.X /var/runtime/bootstrap.py` inside the sandbox, with
`_HANDLER=module.function`, `LAMBDA_TASK_ROOT=/var/task`, `PYTHONPATH=/var/runtime` (where
the runtime's boto3 and botocore are) and `AWS_LAMBDA_RUNTIME_API` set.
It imports the handler (an import error is reported to `/runtime/init/error`, as Lambda's
runtime does: `Runtime.ImportModuleError`, `Runtime.HandlerNotFound`), then loops: `next`,
call the handler with the event and a context object, post the result (JSON) or the error
(`{"errorMessage", "errorType", "stackTrace"}`).

It speaks HTTP/1.1 over one kept-alive socket by hand (a few lines, and much faster to
import than `http.client`).
"""

import os
import sys
import time

# The C halves of `json` and `socket`: the modules themselves import `re`, `enum` and
# `selectors`, which cost more of every cold start than the interpreter's own start-up. `json`
# itself is imported only to raise its own error for a payload that does not parse.
import _json
import _socket

# `traceback` is imported when an error is reported: importing it costs milliseconds of every
# cold start.


def _lambda_search_path():
    """`sys.path` in Lambda's order: the function's code, the layers' folders under /opt, then
    the runtime's own (/var/runtime, the standard library under /var/lang), each once."""
    ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    first = [
        os.environ.get("LAMBDA_TASK_ROOT", "/var/task"),
        f"/opt/python/lib/{ver}/site-packages",
        "/opt/python",
    ]
    seen = set()
    sys.path[:] = [p for p in first + sys.path if p and not (p in seen or seen.add(p))]


_lambda_search_path()
_API = os.environ.get("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
_PREFIX = "/2018-06-01/runtime"


class _Conn:
    """A minimal HTTP/1.1 client for the Runtime API (Content-Length bodies only)."""

    def __init__(self, addr):
        host, _, port = addr.rpartition(":")
        self.addr = (host, int(port))
        self.sock = None
        self.buf = b""

    def _connect(self):
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        try:
            sock.connect(self.addr)
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.buf = b""

    def request(self, method, path, body=b"", headers=None):
        for attempt in (0, 1):
            if self.sock is None:
                self._connect()
            head = f"{method} {path} HTTP/1.1\r\nHost: {self.addr[0]}\r\n"
            for k, v in (headers or {}).items():
                head += f"{k}: {v}\r\n"
            head += f"Content-Length: {len(body)}\r\n\r\n"
            try:
                self.sock.sendall(head.encode("latin-1") + body)
                return self._response()
            except (ConnectionError, OSError):
                self.sock = None
                if attempt:
                    raise

    def _read_until(self, marker):
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the Runtime API closed the connection")
            self.buf += chunk
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _response(self):
        head = self._read_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("the Runtime API closed the connection")
            self.buf += chunk
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body


class Context:
    """Lambda's context object."""

    def __init__(self, headers):
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.aws_request_id = headers.get("lambda-runtime-aws-request-id")
        self.invoked_function_arn = headers.get("lambda-runtime-invoked-function-arn")
        self._deadline_ms = int(headers.get("lambda-runtime-deadline-ms", "0"))
        self.client_context = _client_context(headers.get("lambda-runtime-client-context"))
        identity = headers.get("lambda-runtime-cognito-identity")
        self.identity = _Identity(_loads(identity.encode()) if identity else {})

    def get_remaining_time_in_millis(self):
        return max(int(self._deadline_ms - time.time() * 1000), 0)

    def __repr__(self):
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"function_name={self.function_name},function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn}])"
        )


class _Identity:
    def __init__(self, d):
        self.cognito_identity_id = d.get("cognitoIdentityId")
        self.cognito_identity_pool_id = d.get("cognitoIdentityPoolId")


class _ClientContext:
    def __init__(self, d):
        self.client = d.get("client")
        self.custom = d.get("custom")
        self.env = d.get("env")


def _client_context(raw):
    if not raw:
        return None
    try:
        return _ClientContext(_loads(raw.encode()))
    except ValueError:
        return None


def _error(exc, error_type=None):
    import traceback

    # The runtime's own frames are not the function's (Lambda leaves them out too).
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("/var/runtime/")]
    tb = traceback.format_list(frames)
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": "",
        "stackTrace": [line for line in tb],
    }


def _load_handler(spec):
    module_name, _, func_name = spec.rpartition(".")
    if not module_name or not func_name:
        raise _InitError(
            "Runtime.MalformedHandlerName",
            f"Bad handler '{spec}': not enough values to unpack (expected 2, got 1)",
        )
    module_name = module_name.replace("/", ".")
    try:
        __import__(module_name)
        module = sys.modules[module_name]
    except ImportError as e:
        raise _InitError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {e}"
        ) from e
    except SyntaxError as e:
        raise _InitError(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {e}"
        ) from e
    func = getattr(module, func_name, None)
    if func is None:
        raise _InitError(
            "Runtime.HandlerNotFound",
            f"Handler '{func_name}' missing on module '{module_name}'",
        )
    return func


class _InitError(Exception):
    def __init__(self, error_type, message):
        super().__init__(message)
        self.error_type = error_type


def _json_default(o):
    import decimal

    if isinstance(o, decimal.Decimal):
        return float(o)
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


class _Decoding:
    """What `_json.make_scanner` reads: the defaults of `json.loads`."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name):
        return float({"-Infinity": "-inf", "Infinity": "inf", "NaN": "nan"}[name])


_scan = _json.make_scanner(_Decoding)
_SPACE = " \t\n\r"


def _loads(raw):
    """`json.loads(raw)`, for bytes."""
    text = raw.decode("utf-8").strip(_SPACE)
    try:
        value, end = _scan(text, 0)
        if end == len(text):
            return value
    except StopIteration:
        pass
    import json

    return json.loads(raw)  # raises json's own error, with its message


def _dumps(value):
    """`json.dumps(value, default=_json_default)`."""
    encode = _json.make_encoder(
        {}, _json_default, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    return "".join(encode(value, 0))


def main():
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    if task_root not in sys.path:
        sys.path.insert(0, task_root)
    conn = _Conn(_API)
    try:
        handler = _load_handler(os.environ.get("_HANDLER", ""))
    except _InitError as e:
        body = _error(e, e.error_type)
        body["stackTrace"] = []
        print(f"[ERROR] {e.error_type}: {e}", file=sys.stderr, flush=True)
        conn.request(
            "POST",
            f"{_PREFIX}/init/error",
            _dumps(body).encode(),
            {"Lambda-Runtime-Function-Error-Type": e.error_type},
        )
        sys.exit(1)
    except Exception as e:  # an exception while importing the module
        body = _error(e)
        print(f"[ERROR] {body['errorType']}: {e}", file=sys.stderr, flush=True)
        conn.request(
            "POST",
            f"{_PREFIX}/init/error",
            _dumps(body).encode(),
            {"Lambda-Runtime-Function-Error-Type": "Runtime.Unknown"},
        )
        sys.exit(1)

    while True:
        status, headers, body = conn.request("GET", f"{_PREFIX}/invocation/next")
        if status != 200:
            time.sleep(0.01)
            continue
        request_id = headers.get("lambda-runtime-aws-request-id", "")
        trace = headers.get("lambda-runtime-trace-id")
        if trace:
            os.environ["_X_AMZN_TRACE_ID"] = trace
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        try:
            event = _loads(body) if body else None
            result = handler(event, Context(headers))
            out = _dumps(result).encode()
        except Exception as e:
            import traceback

            err = _error(e)
            err["requestId"] = request_id
            print(
                f"[ERROR] {err['errorType']}: {err['errorMessage']}\n"
                + "".join(traceback.format_exception(type(e), e, e.__traceback__)),
                file=sys.stderr,
                end="",
                flush=True,
            )
            conn.request(
                "POST",
                f"{_PREFIX}/invocation/{request_id}/error",
                _dumps(err).encode(),
                {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Function-Error-Type": "Unhandled",
                },
            )
            continue
        conn.request(
            "POST",
            f"{_PREFIX}/invocation/{request_id}/response",
            out,
            {"Content-Type": "application/json"},
        )


if __name__ == "__main__":
    main()
