//! Tests of [`super::access`] through Create and Update ([`super::rules`]): `BASIC_AUTH`'s
//! credentials, its own secret ARN kept, other ARNs refused, URIs never echoed, endpoints'
//! passwords hidden.
#![allow(clippy::unwrap_used)]

use stoke_core::LambdaError;

use super::access::{redact_url, secret_arn};
use super::rules::{MappingInput, create, update};

fn account() -> stoke_core::AccountId {
    stoke_core::AccountId::try_from("123456789012".to_owned()).unwrap()
}

fn input(v: serde_json::Value) -> MappingInput {
    serde_json::from_value(v).unwrap()
}

fn redis() -> serde_json::Value {
    serde_json::json!({
        "FunctionName": "f",
        "SelfManagedEventSource": {"Endpoints": {"REDIS_URL": ["redis://h:6379"]}},
        "Topics": ["orders"],
    })
}

#[test]
fn a_password_in_an_endpoint_is_never_shown() {
    assert_eq!(
        redact_url("amqp://bob:s3cret@h:5672/v"),
        "amqp://bob:****@h:5672/v"
    );
    assert_eq!(redact_url("redis://:pw@h:1"), "redis://:****@h:1");
    assert_eq!(redact_url("redis://h:1"), "redis://h:1");
    assert_eq!(redact_url("redis://u@h:1/0"), "redis://u@h:1/0");
    let mut with = redis();
    with["SelfManagedEventSource"] =
        serde_json::json!({"Endpoints": {"REDIS_URL": ["redis://u:pw@h:6379"]}});
    let m = create(&input(with), &account(), "f", None, 0.0).unwrap();
    assert_eq!(m.source, "redis://u:****@h:6379/orders");
}

#[test]
fn basic_auth_takes_credentials_keeps_its_own_arn_and_refuses_others() {
    let mut with = redis();
    with["SourceAccessConfigurations"] =
        serde_json::json!([{"Type": "BASIC_AUTH", "URI": "alice:pw:with:colons"}]);
    let mut m = create(&input(with), &account(), "f", None, 0.0).unwrap();
    let auth = m.basic_auth.clone().unwrap();
    assert_eq!(auth.username, "alice");
    assert_eq!(auth.password.as_str(), "pw:with:colons");
    assert!(!format!("{m:?}").contains("pw:with"));
    let arn = secret_arn("us-east-1", &account(), &m.uuid);
    m.access[0].uri.clone_from(&arn);
    // Sent back as Get shows it: kept.
    let same =
        serde_json::json!({"SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": arn}]});
    let kept = update(&m, &input(same), 1.0).unwrap();
    assert_eq!(kept.basic_auth, Some(auth));
    // A password alone; none at all.
    let bare =
        serde_json::json!({"SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": ":pw2"}]});
    let bare = update(&m, &input(bare), 1.0).unwrap().basic_auth.unwrap();
    assert_eq!(
        (bare.username.as_str(), bare.password.as_str()),
        ("", "pw2")
    );
    let none = serde_json::json!({"SourceAccessConfigurations": []});
    let none = update(&m, &input(none), 1.0).unwrap();
    assert!(none.basic_auth.is_none() && none.access.is_empty());
    // Another secret's ARN, a URI without a password, one too long: refused, unechoed.
    for (uri, want) in [
        (
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
            "Stoke has no Secrets Manager and cannot read arn:aws:secretsmanager:us-east-1:123456789012:secret:x: give BASIC_AUTH's URI as <username>:<password> (Stoke keeps it sealed and shows a secret ARN of its own in its place).",
        ),
        (
            "alice",
            "BASIC_AUTH's URI must be <username>:<password> (the user name may be empty), or the secret ARN Stoke showed for this mapping.",
        ),
    ] {
        let bad =
            serde_json::json!({"SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": uri}]});
        assert_eq!(
            update(&m, &input(bad), 1.0).unwrap_err(),
            LambdaError::InvalidParameterValue(want.into())
        );
    }
    let long = format!("u:{}", "p".repeat(199));
    let bad =
        serde_json::json!({"SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": long}]});
    let e = update(&m, &input(bad), 1.0).unwrap_err();
    assert_eq!(
        e,
        LambdaError::Validation(
            "1 validation error detected: Value '****' at \
             'sourceAccessConfigurations.1.member.uRI' failed to satisfy constraint: Member \
             must have length less than or equal to 200"
                .into()
        )
    );
}
