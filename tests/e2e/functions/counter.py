"""A python3.x function for environment tests: a counter in a module global, a crash and a
timeout on demand."""

import os
import time

CALLS = 0


def handler(event, context):
    global CALLS
    CALLS += 1
    event = event or {}
    if event.get("exit") is not None:
        print("exiting", flush=True)
        os._exit(event["exit"])
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {"calls": CALLS, "pid": os.getpid()}
