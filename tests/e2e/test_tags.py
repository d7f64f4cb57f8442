"""TagResource, UntagResource, ListTags on a function ARN, and tags given at create."""

from stoke_e2e import create_wasm, expect_error, unique_name, wait_active


def test_tags_given_at_create_are_listed(lam):
    name = unique_name("tags-create")
    arn = create_wasm(lam, name, Tags={"a": "1", "b": ""})["FunctionArn"]
    resp = lam.list_tags(Resource=arn)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["Tags"] == {"a": "1", "b": ""}


def test_tag_untag_and_list(lam):
    name = unique_name("tags")
    arn = create_wasm(lam, name, Tags={"keep": "k", "change": "old"})["FunctionArn"]
    wait_active(lam, name)
    resp = lam.tag_resource(Resource=arn, Tags={"change": "new", "add": "x y:z/@+=.-_"})
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    want = {"keep": "k", "change": "new", "add": "x y:z/@+=.-_"}
    assert lam.list_tags(Resource=arn)["Tags"] == want
    assert lam.get_function(FunctionName=name)["Tags"] == want
    resp = lam.untag_resource(Resource=arn, TagKeys=["keep", "add", "never-there"])
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.list_tags(Resource=arn)["Tags"] == {"change": "new"}
    lam.untag_resource(Resource=arn, TagKeys=["change"])
    assert lam.list_tags(Resource=arn)["Tags"] == {}


def test_tagging_keeps_the_configuration(lam):
    name = unique_name("tags-cfg")
    arn = create_wasm(lam, name, MemorySize=300)["FunctionArn"]
    wait_active(lam, name)
    lam.tag_resource(Resource=arn, Tags={"x": "1"})
    cfg = lam.get_function_configuration(FunctionName=name)
    assert cfg["MemorySize"] == 300 and cfg["State"] == "Active"


def test_tags_of_a_missing_function_are_not_found(lam, account_id):
    arn = f"arn:aws:lambda:us-east-1:{account_id}:function:{unique_name('tags-missing')}"
    with expect_error("ResourceNotFoundException", 404):
        lam.list_tags(Resource=arn)
    with expect_error("ResourceNotFoundException", 404):
        lam.tag_resource(Resource=arn, Tags={"a": "b"})
    with expect_error("ResourceNotFoundException", 404):
        lam.untag_resource(Resource=arn, TagKeys=["a"])
