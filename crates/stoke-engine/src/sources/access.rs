//! What a mapping keeps of credentials: `SourceAccessConfigurations`' `BASIC_AUTH`
//! (Lambda's shape, `{"Type": "BASIC_AUTH", "URI": …}`). Stoke has no Secrets Manager, so the
//! URI carries the credentials themselves, `<username>:<password>`; the store keeps them
//! sealed with the master key, and Get and List show in their place a Secrets-Manager-shaped
//! ARN naming the mapping ([`secret_arn`]), which an Update may send back to keep them. A URI
//! is never echoed in an error, and an endpoint's own password is shown as `****`
//! ([`redact_url`]).

use stoke_core::LambdaError;
use stoke_core::validate::Violations;
use stoke_store::mappings::{AccessConfig, BasicAuth};

use super::rules::{AccessIn, BASIC_AUTH, MappingInput};

fn invalid(message: impl Into<String>) -> LambdaError {
    LambdaError::InvalidParameterValue(message.into())
}

/// The ARN Stoke answers in place of a mapping's `BASIC_AUTH` credentials: shaped as a
/// Secrets Manager secret's, naming the mapping (Stoke has no Secrets Manager; the
/// credentials are sealed in the store). An Update that sends it back keeps them.
pub fn secret_arn(region: &str, account: &stoke_core::AccountId, uuid: &str) -> String {
    format!("arn:aws:secretsmanager:{region}:{account}:secret:stoke/event-source-mapping/{uuid}")
}

/// What a request's `SourceAccessConfigurations` leave a mapping: the configurations as Get
/// shows them (a `BASIC_AUTH`'s URI filled with [`secret_arn`] by the service) and the
/// credentials. `kept` is the mapping's own secret ARN and credentials (an Update), which a
/// `BASIC_AUTH` naming that ARN keeps. The URI's value is never echoed: it may be a password.
pub(super) fn access(
    input: &MappingInput,
    kept: Option<(&str, Option<&BasicAuth>)>,
) -> Result<(Vec<AccessConfig>, Option<BasicAuth>), LambdaError> {
    let given: Vec<&AccessIn> = input
        .source_access_configurations
        .iter()
        .flatten()
        .collect();
    let mut out = Vec::new();
    let mut auth = None;
    for (i, a) in given.iter().enumerate() {
        let kind = a.kind.clone().unwrap_or_default();
        let uri = a.uri.as_deref().unwrap_or_default();
        if kind != BASIC_AUTH {
            return Err(invalid(format!(
                "Unsupported SourceAccessConfiguration type {kind}: Stoke takes BASIC_AUTH."
            )));
        }
        let mut v = Violations::new();
        v.list_length(
            &format!("sourceAccessConfigurations.{}.member.uRI", i + 1),
            "****",
            uri.chars().count(),
            1,
            200,
        );
        v.into_result()?;
        if uri.starts_with("arn:") {
            match kept {
                Some((arn, Some(creds))) if arn == uri => auth = Some(creds.clone()),
                _ => {
                    return Err(invalid(format!(
                        "Stoke has no Secrets Manager and cannot read {uri}: give BASIC_AUTH's \
                         URI as <username>:<password> (Stoke keeps it sealed and shows a secret \
                         ARN of its own in its place)."
                    )));
                }
            }
        } else {
            let Some((user, password)) = uri.split_once(':').filter(|(_, p)| !p.is_empty()) else {
                return Err(invalid(
                    "BASIC_AUTH's URI must be <username>:<password> (the user name may be \
                     empty), or the secret ARN Stoke showed for this mapping.",
                ));
            };
            auth = Some(BasicAuth {
                username: user.to_owned(),
                password: password.to_owned().into(),
            });
        }
        out.push(AccessConfig {
            kind,
            uri: String::new(),
        });
    }
    if out.len() > 1 {
        return Err(invalid(
            "SourceAccessConfigurations may hold one BASIC_AUTH configuration.",
        ));
    }
    Ok((out, auth))
}

/// `url` with the password of its user information hidden (`scheme://user:****@host…`): what
/// Get, List and the records' `eventSourceARN` show of an endpoint.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let hidden = if userinfo.contains(':') { ":****" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{}", &rest[authority_end..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::rules::{create, update};
    use super::*;

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
        let bare = serde_json::json!({"SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": ":pw2"}]});
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
            let bad = serde_json::json!({"SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": uri}]});
            assert_eq!(
                update(&m, &input(bad), 1.0).unwrap_err(),
                LambdaError::InvalidParameterValue(want.into())
            );
        }
        let long = format!("u:{}", "p".repeat(199));
        let bad = serde_json::json!({"SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": long}]});
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
}
