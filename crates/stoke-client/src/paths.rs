//! The paths and queries of the API's operations: the version prefixes, and names, qualifiers
//! and markers percent-encoded as path segments and query values (all but RFC 3986's unreserved
//! characters).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The API version prefix of every Lambda function path.
pub(crate) const API_PREFIX: &str = "/2015-03-31/functions";
/// The prefix of Stoke's own operations (beside Lambda's API), such as an alias's rollback.
pub(crate) const STOKE_PREFIX: &str = "/stoke/2026-11-01/functions";

/// Characters escaped in a path segment or query value: all but RFC 3986's unreserved set.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `name` percent-encoded as one path segment.
pub(crate) fn segment(name: &str) -> String {
    utf8_percent_encode(name, COMPONENT).to_string()
}

/// `/2015-03-31/functions/{name}{suffix}`, the name percent-encoded as one path segment.
pub(crate) fn function_path(name: &str, suffix: &str) -> String {
    format!(
        "{API_PREFIX}/{}{suffix}",
        utf8_percent_encode(name, COMPONENT)
    )
}

/// The Invoke path, with `?Qualifier=` when one is given.
pub fn invoke_path(name: &str, qualifier: Option<&str>) -> String {
    let path = function_path(name, "/invocations");
    match qualifier {
        Some(q) => format!("{path}?Qualifier={}", utf8_percent_encode(q, COMPONENT)),
        None => path,
    }
}

/// `/2015-03-31/functions/{name}/aliases/{alias}`, both percent-encoded.
pub(crate) fn alias_path(name: &str, alias: &str) -> String {
    function_path(
        name,
        &format!("/aliases/{}", utf8_percent_encode(alias, COMPONENT)),
    )
}

/// `path` with the given query parameters (those that are `Some`), values percent-encoded.
pub(crate) fn with_query(path: String, params: &[(&str, Option<&str>)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", utf8_percent_encode(v, COMPONENT))))
        .collect();
    if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// The ListFunctions path with its query.
pub(crate) fn list_path(marker: Option<&str>, max_items: Option<u32>) -> String {
    let mut query = Vec::new();
    if let Some(marker) = marker {
        query.push(format!("Marker={}", utf8_percent_encode(marker, COMPONENT)));
    }
    if let Some(max) = max_items {
        query.push(format!("MaxItems={max}"));
    }
    if query.is_empty() {
        format!("{API_PREFIX}/")
    } else {
        format!("{API_PREFIX}/?{}", query.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoke_path_carries_the_qualifier() {
        assert_eq!(
            invoke_path("f", None),
            "/2015-03-31/functions/f/invocations"
        );
        assert_eq!(
            invoke_path("f", Some("$LATEST")),
            "/2015-03-31/functions/f/invocations?Qualifier=%24LATEST"
        );
    }

    #[test]
    fn paths_encode_names_and_markers() {
        assert_eq!(
            function_path("arn:aws:lambda:us-east-1:1:function:f", "/code"),
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Af/code"
        );
        assert_eq!(list_path(None, None), "/2015-03-31/functions/");
        assert_eq!(
            list_path(Some("a b/c"), Some(50)),
            "/2015-03-31/functions/?Marker=a%20b%2Fc&MaxItems=50"
        );
    }

    #[test]
    fn alias_and_version_paths_encode_names_and_queries() {
        assert_eq!(
            alias_path("f", "live"),
            "/2015-03-31/functions/f/aliases/live"
        );
        assert_eq!(
            with_query(
                function_path("f", "/aliases"),
                &[
                    ("FunctionVersion", Some("$LATEST")),
                    ("Marker", None),
                    ("MaxItems", Some("50"))
                ]
            ),
            "/2015-03-31/functions/f/aliases?FunctionVersion=%24LATEST&MaxItems=50"
        );
        assert_eq!(
            with_query(function_path("f", "/versions"), &[("Marker", None)]),
            "/2015-03-31/functions/f/versions"
        );
    }
}
