"""DeleteFunction: 204, then the function is gone everywhere, and its name is free again."""

from stoke_e2e import (
    create_wasm,
    expect_error,
    function_names,
    sha256_b64,
    unique_name,
    wait_active,
    wasm_zip,
)


def test_delete_removes_the_function(lam):
    name = unique_name("del")
    create_wasm(lam, name)
    wait_active(lam, name)
    resp = lam.delete_function(FunctionName=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with expect_error("ResourceNotFoundException", 404):
        lam.get_function(FunctionName=name)
    with expect_error("ResourceNotFoundException", 404):
        lam.get_function_configuration(FunctionName=name)
    assert name not in function_names(lam)
    with expect_error("ResourceNotFoundException", 404):
        lam.delete_function(FunctionName=name)
    with expect_error("ResourceNotFoundException", 404):
        lam.update_function_configuration(FunctionName=name, Timeout=5)


def test_deleted_name_can_be_created_again(lam):
    name = unique_name("del-again")
    first = create_wasm(lam, name, MemorySize=256, Tags={"old": "tag"})
    wait_active(lam, name)
    lam.delete_function(FunctionName=name)
    code = wasm_zip(extra={"v2": b"2"})
    second = create_wasm(lam, name, zip_bytes=code)
    assert second["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert second["FunctionArn"] == first["FunctionArn"]
    assert second["RevisionId"] != first["RevisionId"]
    got = wait_active(lam, name)
    cfg = got["Configuration"]
    assert cfg["MemorySize"] == 128
    assert cfg["CodeSha256"] == sha256_b64(code)
    assert not got.get("Tags"), "tags of the deleted function came back"
    assert lam.list_tags(Resource=cfg["FunctionArn"])["Tags"] == {}


def test_delete_by_arn(lam, account_id):
    name = unique_name("del-arn")
    create_wasm(lam, name)
    lam.delete_function(FunctionName=f"arn:aws:lambda:us-east-1:{account_id}:function:{name}")
    with expect_error("ResourceNotFoundException", 404):
        lam.get_function(FunctionName=name)


def test_delete_missing_function_is_not_found(lam):
    with expect_error("ResourceNotFoundException", 404):
        lam.delete_function(FunctionName=unique_name("del-missing"))


def test_the_compiled_artifact_goes_with_the_last_function_using_its_code(server, lam):
    import hashlib
    import uuid

    code = wasm_zip(extra={"unique": uuid.uuid4().hex.encode()})
    sha = hashlib.sha256(code).hexdigest()
    artifacts = lambda: sorted((server.data_dir / "compiled").glob(f"{sha}-*.cwasm"))  # noqa: E731
    first, second = unique_name("del-art"), unique_name("del-art")
    for name in (first, second):
        create_wasm(lam, name, zip_bytes=code)
        wait_active(lam, name)
    assert len(artifacts()) == 1, artifacts()
    # Another function still uses the code: its artifact stays, and it still runs.
    lam.delete_function(FunctionName=first)
    assert len(artifacts()) == 1, "the code is still in use"
    assert lam.invoke(FunctionName=second, Payload=b"{}")["StatusCode"] == 200
    lam.delete_function(FunctionName=second)
    assert artifacts() == [], "no function uses the code any more"
