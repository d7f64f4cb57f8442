"""A function run by AWS's own runtime interface client (awslambdaric) as a `provided`
bootstrap."""


def handler(event, context):
    if event.get("fail"):
        raise KeyError(event["fail"])
    print("awslambdaric handler called")
    return {"via": "awslambdaric", "request_id": context.aws_request_id, "event": event}
