//! Resource-based policies of functions, as Lambda keeps them.
//!
//! A function has one policy per qualifier: the function's own (its `Resource` the unqualified
//! ARN, which also covers `$LATEST`), and one per version or alias (its `Resource` that
//! version's or alias's ARN). AddPermission adds a [`Statement`]; GetPolicy answers the
//! [`Policy::document`] (`Version` 2012-10-17, `Id` default) with the policy's `RevisionId`.
//!
//! # Layout
//! - this file: [`Policy`], [`Statement`], [`Principal`], [`Condition`] and the JSON shapes
//!   Lambda answers them in;
//! - [`input`]: AddPermission's input checked as Lambda checks it (the principal's forms, the
//!   actions a function policy can grant, the conditions Stoke refuses);
//! - [`eval`]: whether a policy lets a [`Request`] through, and the `AccessDeniedException`
//!   that answers one it does not.

pub mod eval;
pub mod input;

use serde::{Deserialize, Serialize};

use crate::AccountId;

pub use eval::{Request, RequestPrincipal, access_denied};
pub use input::{NewStatement, PermissionInput};

/// The most bytes a function's policy document may take (Lambda's 20 KB).
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Who a statement lets in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Principal {
    /// `*`: anyone who signs a request.
    Any,
    /// An account (given as its id or `arn:aws:iam::ID:root`).
    Account(AccountId),
    /// A service principal such as `events.amazonaws.com`.
    Service(String),
}

/// What a statement requires beyond principal, action and resource, as AddPermission writes
/// it: every key that is set must hold. A key the request does not carry fails its test, as
/// IAM's `StringEquals` and `ArnLike` fail on an absent key: a statement with a source
/// condition never lets in a call that no service makes on a resource's behalf.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// `StringEquals` `AWS:SourceAccount` (AddPermission's `SourceAccount`): the account that
    /// owns the resource a service calls for.
    #[serde(default)]
    pub source_account: Option<String>,
    /// `ArnLike` `AWS:SourceArn` (`SourceArn`): the resource a service calls for; `*` and `?`
    /// match within one of the ARN's six parts.
    #[serde(default)]
    pub source_arn: Option<String>,
    /// `StringEquals` `lambda:FunctionUrlAuthType` (`NONE` or `AWS_IAM`): the statement grants
    /// calls through the function's URL of that auth type only.
    #[serde(default)]
    pub function_url_auth_type: Option<String>,
}

/// One statement of a policy (always `Effect: Allow`, as AddPermission writes them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub sid: String,
    pub principal: Principal,
    /// `lambda:InvokeFunction`, `lambda:*`, `*`, … as given.
    pub action: String,
    /// The ARN the statement names: the function's, or a version's or alias's.
    pub resource: String,
    #[serde(default)]
    pub condition: Condition,
}

/// One qualifier's policy: its statements and the revision every change renews.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub revision_id: String,
    pub statements: Vec<Statement>,
}

/// The key a policy is kept under: `""` for the function's own (unqualified, `$LATEST`), the
/// version or alias otherwise.
pub fn qualifier_key(qualifier: Option<&str>) -> &str {
    match qualifier {
        None | Some(crate::LATEST) => "",
        Some(q) => q,
    }
}

/// The ARN a policy of `qualifier_key` names (what its statements' `Resource` is).
pub fn resource_arn(function_arn: &str, key: &str) -> String {
    if key.is_empty() {
        function_arn.to_owned()
    } else {
        format!("{function_arn}:{key}")
    }
}

/// A statement as Lambda shows it (fields in Lambda's order).
#[derive(Serialize)]
struct StatementJson<'a> {
    #[serde(rename = "Sid")]
    sid: &'a str,
    #[serde(rename = "Effect")]
    effect: &'static str,
    #[serde(rename = "Principal")]
    principal: serde_json::Value,
    #[serde(rename = "Action")]
    action: &'a str,
    #[serde(rename = "Resource")]
    resource: &'a str,
    #[serde(rename = "Condition", skip_serializing_if = "Option::is_none")]
    condition: Option<ConditionJson<'a>>,
}

#[derive(Serialize)]
struct DocumentJson<'a> {
    #[serde(rename = "Version")]
    version: &'static str,
    #[serde(rename = "Id")]
    id: &'static str,
    #[serde(rename = "Statement")]
    statement: Vec<StatementJson<'a>>,
}

impl Principal {
    fn json(&self) -> serde_json::Value {
        match self {
            Principal::Any => serde_json::Value::String("*".into()),
            Principal::Account(a) => serde_json::json!({ "AWS": format!("arn:aws:iam::{a}:root") }),
            Principal::Service(s) => serde_json::json!({ "Service": s }),
        }
    }
}

/// `Condition` as Lambda writes it: `StringEquals` (source account, then URL auth type)
/// before `ArnLike` (source ARN).
#[derive(Serialize)]
struct ConditionJson<'a> {
    #[serde(rename = "StringEquals", skip_serializing_if = "Option::is_none")]
    string_equals: Option<StringEqualsJson<'a>>,
    #[serde(rename = "ArnLike", skip_serializing_if = "Option::is_none")]
    arn_like: Option<ArnLikeJson<'a>>,
}

#[derive(Serialize)]
struct StringEqualsJson<'a> {
    #[serde(rename = "AWS:SourceAccount", skip_serializing_if = "Option::is_none")]
    source_account: Option<&'a str>,
    #[serde(
        rename = "lambda:FunctionUrlAuthType",
        skip_serializing_if = "Option::is_none"
    )]
    function_url_auth_type: Option<&'a str>,
}

#[derive(Serialize)]
struct ArnLikeJson<'a> {
    #[serde(rename = "AWS:SourceArn")]
    source_arn: &'a str,
}

impl Condition {
    /// Whether the statement has no condition at all.
    pub fn is_empty(&self) -> bool {
        self.source_account.is_none()
            && self.source_arn.is_none()
            && self.function_url_auth_type.is_none()
    }

    fn json(&self) -> Option<ConditionJson<'_>> {
        if self.is_empty() {
            return None;
        }
        let account = self.source_account.as_deref();
        let url = self.function_url_auth_type.as_deref();
        Some(ConditionJson {
            string_equals: (account.is_some() || url.is_some()).then_some(StringEqualsJson {
                source_account: account,
                function_url_auth_type: url,
            }),
            arn_like: self
                .source_arn
                .as_deref()
                .map(|source_arn| ArnLikeJson { source_arn }),
        })
    }
}

impl Statement {
    fn shape(&self) -> StatementJson<'_> {
        StatementJson {
            sid: &self.sid,
            effect: "Allow",
            principal: self.principal.json(),
            action: &self.action,
            resource: &self.resource,
            condition: self.condition.json(),
        }
    }

    /// The statement as AddPermission answers it (`Statement`: one JSON object as a string).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.shape()).unwrap_or_default()
    }
}

impl Policy {
    /// A policy with no statement yet.
    pub fn empty(revision_id: String) -> Self {
        Self {
            revision_id,
            statements: Vec::new(),
        }
    }

    pub fn statement(&self, sid: &str) -> Option<&Statement> {
        self.statements.iter().find(|s| s.sid == sid)
    }

    /// The policy document as GetPolicy answers it (`Policy`: a JSON string).
    pub fn document(&self) -> String {
        let doc = DocumentJson {
            version: "2012-10-17",
            id: "default",
            statement: self.statements.iter().map(Statement::shape).collect(),
        };
        serde_json::to_string(&doc).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(s: &str) -> AccountId {
        AccountId::try_from(s.to_owned()).expect("an account id")
    }

    #[test]
    fn statements_render_as_lambda_answers_them() {
        let arn = "arn:aws:lambda:us-east-1:111111111111:function:f";
        let cases = [
            (
                Principal::Account(account("222222222222")),
                Condition::default(),
                r#"{"Sid":"s","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":"lambda:InvokeFunction","Resource":"arn:aws:lambda:us-east-1:111111111111:function:f"}"#,
            ),
            (
                Principal::Any,
                Condition::default(),
                r#"{"Sid":"s","Effect":"Allow","Principal":"*","Action":"lambda:InvokeFunction","Resource":"arn:aws:lambda:us-east-1:111111111111:function:f"}"#,
            ),
            (
                Principal::Service("events.amazonaws.com".into()),
                Condition {
                    function_url_auth_type: Some("NONE".into()),
                    ..Condition::default()
                },
                r#"{"Sid":"s","Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},"Action":"lambda:InvokeFunction","Resource":"arn:aws:lambda:us-east-1:111111111111:function:f","Condition":{"StringEquals":{"lambda:FunctionUrlAuthType":"NONE"}}}"#,
            ),
            // As Lambda's own example answers it (botocore's examples-1.json).
            (
                Principal::Service("s3.amazonaws.com".into()),
                Condition {
                    source_account: Some("123456789012".into()),
                    source_arn: Some("arn:aws:s3:::my-bucket-1xpuxmplzrlbh".into()),
                    ..Condition::default()
                },
                r#"{"Sid":"s","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"lambda:InvokeFunction","Resource":"arn:aws:lambda:us-east-1:111111111111:function:f","Condition":{"StringEquals":{"AWS:SourceAccount":"123456789012"},"ArnLike":{"AWS:SourceArn":"arn:aws:s3:::my-bucket-1xpuxmplzrlbh"}}}"#,
            ),
        ];
        for (principal, condition, want) in cases {
            let s = Statement {
                sid: "s".into(),
                principal,
                action: "lambda:InvokeFunction".into(),
                resource: arn.into(),
                condition,
            };
            assert_eq!(s.to_json(), want);
        }
    }

    #[test]
    fn the_document_has_lambdas_version_and_id() {
        let p = Policy::empty("r".into());
        assert_eq!(
            p.document(),
            r#"{"Version":"2012-10-17","Id":"default","Statement":[]}"#
        );
    }

    #[test]
    fn latest_and_unqualified_share_the_functions_policy() {
        assert_eq!(qualifier_key(None), "");
        assert_eq!(qualifier_key(Some("$LATEST")), "");
        assert_eq!(qualifier_key(Some("prod")), "prod");
        assert_eq!(resource_arn("arn:f", ""), "arn:f");
        assert_eq!(resource_arn("arn:f", "7"), "arn:f:7");
    }
}
