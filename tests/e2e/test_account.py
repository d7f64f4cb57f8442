"""GetAccountSettings: Lambda's limits, and usage that follows creates and deletes."""

from stoke_e2e import (
    MAX_UNZIPPED,
    MAX_ZIPPED,
    create_wasm,
    list_all_functions,
    unique_name,
    wasm_zip,
)


def _settings(lam):
    s = lam.get_account_settings()
    assert s["ResponseMetadata"]["HTTPStatusCode"] == 200
    return s


def test_account_settings_shape_and_limits(lam):
    s = _settings(lam)
    limit, usage = s["AccountLimit"], s["AccountUsage"]
    assert limit["CodeSizeUnzipped"] == MAX_UNZIPPED
    assert limit["CodeSizeZipped"] == MAX_ZIPPED
    for k in ("TotalCodeSize", "ConcurrentExecutions", "UnreservedConcurrentExecutions"):
        assert isinstance(limit[k], int) and limit[k] > 0, k
    assert limit["UnreservedConcurrentExecutions"] <= limit["ConcurrentExecutions"]
    assert isinstance(usage["FunctionCount"], int)
    assert isinstance(usage["TotalCodeSize"], int)


def test_function_count_matches_list_functions(lam):
    create_wasm(lam, unique_name("acct-list"))
    assert _settings(lam)["AccountUsage"]["FunctionCount"] == len(list_all_functions(lam))


def test_usage_follows_create_and_delete(lam):
    before = _settings(lam)["AccountUsage"]
    name = unique_name("acct")
    code = wasm_zip(extra={"pad": b"p" * 1000})
    create_wasm(lam, name, zip_bytes=code)
    during = _settings(lam)["AccountUsage"]
    assert during["FunctionCount"] == before["FunctionCount"] + 1
    assert during["TotalCodeSize"] == before["TotalCodeSize"] + len(code)
    lam.delete_function(FunctionName=name)
    after = _settings(lam)["AccountUsage"]
    assert after == before
