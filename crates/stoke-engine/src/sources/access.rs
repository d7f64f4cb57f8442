//! What a mapping keeps of credentials: `SourceAccessConfigurations`' `BASIC_AUTH`
//! (Lambda's shape, `{"Type": "BASIC_AUTH", "URI": …}`). Stoke has no Secrets Manager, so the
//! URI carries the credentials themselves, `<username>:<password>`; the store keeps them
//! sealed with the master key, and Get and List show in their place a Secrets-Manager-shaped
//! ARN naming the mapping ([`secret_arn`]), which an Update may send back to keep them. A URI
//! is never echoed in an error, and an endpoint's own password is shown as `****`
//! ([`redact_url`]).

use serde::Deserialize;
use stoke_core::LambdaError;
use stoke_core::validate::Violations;
use stoke_store::mappings::{AccessConfig, BasicAuth};

/// The one `SourceAccessConfigurations` type Stoke takes.
pub const BASIC_AUTH: &str = "BASIC_AUTH";

/// One of `SourceAccessConfigurations` as sent.
#[derive(Clone, Default, Deserialize)]
pub struct AccessIn {
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    /// A secret ARN, or `<username>:<password>`: never shown.
    #[serde(rename = "URI")]
    pub uri: Option<String>,
}

impl std::fmt::Debug for AccessIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessIn")
            .field("kind", &self.kind)
            .field("uri", &self.uri.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

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
    given: Option<&[AccessIn]>,
    kept: Option<(&str, Option<&BasicAuth>)>,
) -> Result<(Vec<AccessConfig>, Option<BasicAuth>), LambdaError> {
    let given = given.unwrap_or_default();
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
