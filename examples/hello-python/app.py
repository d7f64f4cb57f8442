"""hello-python: Stoke's `python3.x` runtime example (Handler `app.handler`).

Answers a greeting, the context's fields, and a counter kept in a module global: it rises
from call to call while the execution environment stays warm.
"""

import os

CALLS = 0


def handler(event, context):
    global CALLS
    CALLS += 1
    if isinstance(event, dict) and event.get("fail"):
        raise ValueError(event["fail"])
    print(f"hello-python call {CALLS}")
    return {
        "message": f"Hello, {(event or {}).get('name', 'world')}!",
        "calls": CALLS,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "client_context_custom": context.client_context.custom if context.client_context else None,
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
        "region": os.environ.get("AWS_REGION"),
    }
