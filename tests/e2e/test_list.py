"""ListFunctions: Marker/MaxItems pagination by hand and through boto3's paginator."""

import pytest

from stoke_e2e import config_of, create_wasm, list_all_functions, unique_name, wait_active


@pytest.fixture(scope="module")
def five(lam):
    prefix = unique_name("list")
    names = [f"{prefix}-{i}" for i in range(5)]
    for n in names:
        create_wasm(lam, n)
    for n in names:
        wait_active(lam, n)
    return names


def test_marker_and_max_items_walk_every_function_once(lam, five):
    seen: list[str] = []
    marker = None
    pages = 0
    while True:
        kw = {"MaxItems": 2}
        if marker:
            kw["Marker"] = marker
        page = lam.list_functions(**kw)
        assert page["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert len(page["Functions"]) <= 2
        seen.extend(f["FunctionName"] for f in page["Functions"])
        pages += 1
        marker = page.get("NextMarker")
        if not marker:
            break
        assert len(page["Functions"]) == 2, "a page before the last one is full"
        assert pages < 10_000
    assert len(seen) == len(set(seen)), "a function was listed twice across pages"
    assert set(five) <= set(seen)
    assert pages >= 3


def test_paginator_with_page_size(lam, five):
    names = []
    for page in lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 2}):
        assert len(page["Functions"]) <= 2
        names.extend(f["FunctionName"] for f in page["Functions"])
    assert len(names) == len(set(names))
    assert set(five) <= set(names)


def test_paginator_max_items_resumes_with_its_token(lam, five):
    pag = lam.get_paginator("list_functions")
    first = pag.paginate(PaginationConfig={"MaxItems": 3, "PageSize": 2}).build_full_result()
    assert len(first["Functions"]) == 3
    assert first.get("NextToken")
    rest = pag.paginate(
        PaginationConfig={"StartingToken": first["NextToken"], "PageSize": 2}
    ).build_full_result()
    names = [f["FunctionName"] for f in first["Functions"] + rest["Functions"]]
    assert len(names) == len(set(names))
    assert set(five) <= set(names)


def test_a_large_max_items_still_answers_at_most_50_a_page(lam, five):
    # AWS: "ListFunctions returns a maximum of 50 items in each response, even if you set the
    # number higher" (issue 12; this test used to expect one page of everything).
    everything = list_all_functions(lam)
    page = lam.list_functions(MaxItems=10000)
    assert len(page["Functions"]) == min(50, len(everything))
    assert bool(page.get("NextMarker")) == (len(everything) > 50)
    assert {f["FunctionName"] for f in page["Functions"]} <= {
        f["FunctionName"] for f in everything
    }


def test_listed_entries_match_get_function_configuration(lam, five):
    listed = {f["FunctionName"]: f for f in list_all_functions(lam)}
    shared = [
        "FunctionName",
        "FunctionArn",
        "Runtime",
        "Role",
        "Handler",
        "CodeSize",
        "CodeSha256",
        "Description",
        "Timeout",
        "MemorySize",
        "LastModified",
        "Version",
        "RevisionId",
        "PackageType",
        "Architectures",
        "EphemeralStorage",
    ]
    for n in five:
        cfg = config_of(lam.get_function_configuration(FunctionName=n))
        for k in shared:
            assert listed[n].get(k) == cfg.get(k), (
                f"{n}.{k}: {listed[n].get(k)!r} != {cfg.get(k)!r}"
            )


def test_deleted_function_leaves_the_list(lam):
    name = unique_name("list-del")
    create_wasm(lam, name)
    assert name in {f["FunctionName"] for f in list_all_functions(lam)}
    lam.delete_function(FunctionName=name)
    assert name not in {f["FunctionName"] for f in list_all_functions(lam)}


def test_default_page_is_at_most_fifty(lam):
    """Lambda answers at most 50 functions per page when MaxItems is not given."""
    have = len(list_all_functions(lam))
    prefix = unique_name("list-fifty")
    for i in range(max(0, 51 - have)):
        create_wasm(lam, f"{prefix}-{i}")
    page = lam.list_functions()
    assert len(page["Functions"]) <= 50
    assert page.get("NextMarker"), "more than 50 functions exist but no NextMarker came back"


def test_garbage_marker_is_not_a_server_error(lam):
    from botocore.exceptions import ClientError

    try:
        lam.list_functions(Marker="not-a-marker-!!", MaxItems=5)
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] < 500, e.response
