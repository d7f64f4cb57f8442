//! Every operator of the filter-pattern language, on a record shaped as Lambda's SQS-style
//! record (metadata at the top, `body` parsed JSON), and every refusal of the grammar.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::{FilterCriteria, InvalidPattern, parse};

fn record() -> Value {
    json!({
        "messageId": "1700000000000-0",
        "eventSource": "aws:redis",
        "attributes": {"ApproximateReceiveCount": "1", "stream": "orders"},
        "body": {
            "kind": "Order.Created",
            "city": "New York",
            "file": "photo.png",
            "price": 42.5,
            "qty": 3,
            "tags": ["red", "blue"],
            "note": null,
            "empty": "",
            "paid": true,
            "items": [{"sku": "a-1"}, {"sku": "b-2"}]
        }
    })
}

fn m(pattern: Value) -> bool {
    parse(&pattern.to_string()).unwrap().matches(&record())
}

#[test]
fn equals_on_strings_numbers_null_booleans_and_empty() {
    assert!(m(json!({"body": {"city": ["New York"]}})));
    assert!(!m(json!({"body": {"city": ["new york"]}})));
    assert!(m(json!({"body": {"qty": [3]}})));
    assert!(m(json!({"body": {"qty": [3.0]}})));
    assert!(!m(json!({"body": {"qty": ["3"]}})));
    assert!(m(json!({"body": {"note": [null]}})));
    assert!(!m(json!({"body": {"city": [null]}})));
    assert!(m(json!({"body": {"paid": [true]}})));
    assert!(m(json!({"body": {"empty": [""]}})));
    // A leaf is an OR of its matchers; fields are ANDed.
    assert!(m(json!({"body": {"city": ["Paris", "New York"]}})));
    assert!(!m(json!({"body": {"city": ["New York"], "qty": [4]}})));
}

#[test]
fn metadata_fields_match_beside_the_body() {
    assert!(m(
        json!({"eventSource": ["aws:redis"], "body": {"qty": [3]}})
    ));
    assert!(m(json!({"attributes": {"stream": ["orders"]}})));
    assert!(!m(json!({"attributes": {"stream": ["payments"]}})));
}

#[test]
fn prefix_and_suffix() {
    assert!(m(json!({"body": {"kind": [{"prefix": "Order."}]}})));
    assert!(!m(json!({"body": {"kind": [{"prefix": "order."}]}})));
    assert!(m(json!({"body": {"file": [{"suffix": ".png"}]}})));
    assert!(!m(json!({"body": {"file": [{"suffix": ".jpg"}]}})));
    // Only strings have a prefix.
    assert!(!m(json!({"body": {"qty": [{"prefix": "3"}]}})));
}

#[test]
fn equals_ignore_case() {
    assert!(m(
        json!({"body": {"city": [{"equals-ignore-case": "NEW YORK"}]}})
    ));
    assert!(!m(
        json!({"body": {"city": [{"equals-ignore-case": "york"}]}})
    ));
}

#[test]
fn anything_but_values_lists_prefix_suffix_and_case() {
    assert!(m(json!({"body": {"city": [{"anything-but": "Paris"}]}})));
    assert!(!m(
        json!({"body": {"city": [{"anything-but": "New York"}]}})
    ));
    assert!(!m(
        json!({"body": {"city": [{"anything-but": ["Paris", "New York"]}]}})
    ));
    assert!(m(json!({"body": {"qty": [{"anything-but": [1, 2]}]}})));
    assert!(!m(json!({"body": {"qty": [{"anything-but": 3}]}})));
    assert!(!m(
        json!({"body": {"kind": [{"anything-but": {"prefix": "Order"}}]}})
    ));
    assert!(m(
        json!({"body": {"kind": [{"anything-but": {"prefix": "User"}}]}})
    ));
    assert!(!m(
        json!({"body": {"file": [{"anything-but": {"suffix": ".png"}}]}})
    ));
    assert!(!m(
        json!({"body": {"city": [{"anything-but": {"equals-ignore-case": "new york"}}]}})
    ));
    // A missing field is not "anything but".
    assert!(!m(json!({"body": {"nope": [{"anything-but": "x"}]}})));
}

#[test]
fn numeric_comparisons_and_ranges() {
    assert!(m(json!({"body": {"price": [{"numeric": ["=", 42.5]}]}})));
    assert!(m(json!({"body": {"price": [{"numeric": [">", 42]}]}})));
    assert!(!m(json!({"body": {"price": [{"numeric": [">", 42.5]}]}})));
    assert!(m(json!({"body": {"price": [{"numeric": [">=", 42.5]}]}})));
    assert!(m(json!({"body": {"price": [{"numeric": ["<", 50]}]}})));
    assert!(m(json!({"body": {"price": [{"numeric": ["<=", 42.5]}]}})));
    assert!(m(
        json!({"body": {"qty": [{"numeric": [">", 0, "<=", 3]}]}})
    ));
    assert!(!m(
        json!({"body": {"qty": [{"numeric": [">", 3, "<=", 10]}]}})
    ));
    // A string is not a number.
    assert!(!m(json!({"body": {"city": [{"numeric": [">", 0]}]}})));
}

#[test]
fn exists_and_does_not_exist() {
    assert!(m(json!({"body": {"city": [{"exists": true}]}})));
    assert!(!m(json!({"body": {"nope": [{"exists": true}]}})));
    assert!(m(json!({"body": {"nope": [{"exists": false}]}})));
    assert!(!m(json!({"body": {"city": [{"exists": false}]}})));
    // A whole missing object: its leaves see nothing.
    assert!(m(json!({"missing": {"deep": [{"exists": false}]}})));
    assert!(!m(json!({"missing": {"deep": [{"exists": true}]}})));
}

#[test]
fn arrays_in_the_record_match_when_any_element_does() {
    assert!(m(json!({"body": {"tags": ["blue"]}})));
    assert!(!m(json!({"body": {"tags": ["green"]}})));
    assert!(m(json!({"body": {"tags": [{"prefix": "re"}]}})));
    assert!(m(json!({"body": {"items": {"sku": ["b-2"]}}})));
    assert!(!m(json!({"body": {"items": {"sku": ["c-3"]}}})));
}

#[test]
fn or_takes_any_alternative() {
    assert!(m(
        json!({"$or": [{"body": {"city": ["Paris"]}}, {"body": {"qty": [3]}}]})
    ));
    assert!(!m(
        json!({"$or": [{"body": {"city": ["Paris"]}}, {"body": {"qty": [4]}}]})
    ));
}

#[test]
fn criteria_pass_with_no_filter_or_any_matching_one() {
    let none = FilterCriteria::parse([]).unwrap();
    assert!(none.accepts(&record()));
    let some = FilterCriteria::parse([
        r#"{"body": {"city": ["Paris"]}}"#,
        r#"{"body": {"qty": [{"numeric": ["<", 5]}]}}"#,
    ])
    .unwrap();
    assert!(some.accepts(&record()));
    let neither = FilterCriteria::parse([r#"{"body": {"city": ["Paris"]}}"#]).unwrap();
    assert!(!neither.accepts(&record()));
}

#[test]
fn bad_patterns_are_refused_with_lambdas_wording() {
    for bad in [
        "",
        "not json",
        "[]",
        "{}",
        r#"{"a": "b"}"#,
        r#"{"a": []}"#,
        r#"{"a": [[1]]}"#,
        r#"{"a": {}}"#,
        r#"{"a": [{"prefix": 1}]}"#,
        r#"{"a": [{"unknown-op": "x"}]}"#,
        r#"{"a": [{"prefix": "x", "suffix": "y"}]}"#,
        r#"{"a": [{"exists": "yes"}]}"#,
        r#"{"a": [{"numeric": []}]}"#,
        r#"{"a": [{"numeric": [">"]}]}"#,
        r#"{"a": [{"numeric": ["!=", 1]}]}"#,
        r#"{"a": [{"numeric": [">", "1"]}]}"#,
        r#"{"a": [{"numeric": [">", 1, ">", 2]}]}"#,
        r#"{"a": [{"anything-but": []}]}"#,
        r#"{"a": [{"anything-but": {"wildcard": "*"}}]}"#,
        r#"{"$or": [{"a": ["x"]}]}"#,
        r#"{"$or": "x"}"#,
    ] {
        assert_eq!(parse(bad), Err(InvalidPattern), "{bad}");
    }
    let long = format!(r#"{{"a": ["{}"]}}"#, "x".repeat(4096));
    assert_eq!(parse(&long), Err(InvalidPattern));
    assert_eq!(
        InvalidPattern.to_string(),
        "Invalid filter pattern definition."
    );
}
