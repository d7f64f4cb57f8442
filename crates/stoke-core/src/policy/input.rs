//! AddPermission's input, checked as Lambda checks it: the model's constraints first (one
//! `ValidationException` listing them all), then what a function policy can hold: the forms of
//! a principal, the actions a function's policy grants, and the conditions Stoke refuses
//! because it has nothing to check them against (organizations, Alexa's event source tokens).

use crate::model::{self, Shape};
use crate::validate::{Violations, patterns};
use crate::{AccountId, LambdaError};

use super::{Condition, Principal, Statement};

/// The operations on one function that a function's policy can grant (Lambda's action
/// names without the `lambda:` prefix), each honoured by the operation of that name (the old
/// InvokeAsync is checked as `lambda:InvokeFunction`, as Invoke with `Event` is).
/// Account-wide operations (CreateFunction, ListFunctions, GetAccountSettings) name no
/// function; the policy's own operations (AddPermission, RemovePermission) and the
/// event-invoke configurations (kept per account) stay the owner's.
pub const GRANTABLE_ACTIONS: &[&str] = &[
    "InvokeFunction",
    "InvokeFunctionUrl",
    "GetFunction",
    "GetFunctionConfiguration",
    "GetPolicy",
    "GetAlias",
    "ListAliases",
    "ListVersionsByFunction",
    "ListTags",
    "GetFunctionConcurrency",
    "UpdateFunctionCode",
    "UpdateFunctionConfiguration",
    "DeleteFunction",
    "PublishVersion",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "PutFunctionConcurrency",
    "DeleteFunctionConcurrency",
    "TagResource",
    "UntagResource",
];

/// AddPermission's body (and its `Qualifier`, which the caller resolves).
#[derive(Debug, Clone, Default)]
pub struct PermissionInput {
    pub statement_id: Option<String>,
    pub action: Option<String>,
    pub principal: Option<String>,
    pub source_arn: Option<String>,
    pub source_account: Option<String>,
    pub principal_org_id: Option<String>,
    pub event_source_token: Option<String>,
    pub function_url_auth_type: Option<String>,
    pub invoked_via_function_url: Option<bool>,
    pub revision_id: Option<String>,
}

/// A checked statement, still without its resource (the qualifier's ARN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStatement {
    pub sid: String,
    pub principal: Principal,
    pub action: String,
    pub condition: Condition,
}

impl NewStatement {
    /// The statement naming `resource`.
    pub fn on(self, resource: String) -> Statement {
        Statement {
            sid: self.sid,
            principal: self.principal,
            action: self.action,
            resource,
            condition: self.condition,
        }
    }
}

/// Lambda's answer to a principal it cannot make sense of.
pub fn invalid_principal() -> LambdaError {
    LambdaError::InvalidParameterValue(
        "The provided principal was invalid. Please check the principal and try again.".into(),
    )
}

fn refused(member: &str, why: &str) -> LambdaError {
    LambdaError::InvalidParameterValue(format!("{member} is not supported by Stoke: {why}."))
}

/// Parses a principal in the forms a function policy takes: `*`, an account id, an account's
/// root ARN (`arn:aws:iam::ID:root`) or a service principal (`NAME.amazonaws.com`).
pub fn parse_principal(raw: &str) -> Result<Principal, LambdaError> {
    if raw == "*" {
        return Ok(Principal::Any);
    }
    let account = |id: &str| AccountId::try_from(id.to_owned()).map_err(|_| invalid_principal());
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        return account(raw).map(Principal::Account);
    }
    if let Some(rest) = raw.strip_prefix("arn:aws:iam::") {
        return match rest.strip_suffix(":root") {
            Some(id) => account(id).map(Principal::Account),
            None => Err(invalid_principal()),
        };
    }
    if let Some(name) = raw.strip_suffix(".amazonaws.com")
        && !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
    {
        return Ok(Principal::Service(raw.to_owned()));
    }
    Err(invalid_principal())
}

/// Whether `action` (as given, matched without regard to case as IAM matches actions) is one
/// a function's policy can grant: a wildcard or one of [`GRANTABLE_ACTIONS`].
pub fn grantable(action: &str) -> bool {
    if action == "*" || action.eq_ignore_ascii_case("lambda:*") {
        return true;
    }
    let Some((service, name)) = action.split_once(':') else {
        return false;
    };
    service.eq_ignore_ascii_case("lambda")
        && GRANTABLE_ACTIONS
            .iter()
            .any(|a| a.eq_ignore_ascii_case(name))
}

/// Checks `value` against a shape's pattern and length, as the model states them.
pub fn shaped(v: &mut Violations, member: &str, value: &str, shape: &Shape, pattern: &'static str) {
    v.pattern(member, value, pattern);
    let bound = |b: Option<i64>, or: usize| b.and_then(|n| usize::try_from(n).ok()).unwrap_or(or);
    v.length(
        member,
        value,
        bound(shape.min, 0),
        bound(shape.max, usize::MAX),
    );
}

impl PermissionInput {
    /// Checks the input: the model's constraints (a `ValidationException`), then what Stoke
    /// refuses and what a function policy can hold (`InvalidParameterValueException`).
    pub fn check(&self) -> Result<NewStatement, LambdaError> {
        let mut v = Violations::new();
        v.not_null("statementId", self.statement_id.as_ref());
        v.not_null("action", self.action.as_ref());
        v.not_null("principal", self.principal.as_ref());
        if let Some(s) = &self.statement_id {
            shaped(
                &mut v,
                "statementId",
                s,
                &model::STATEMENT_ID,
                patterns::STATEMENT_ID,
            );
        }
        if let Some(a) = &self.action {
            shaped(&mut v, "action", a, &model::ACTION, patterns::ACTION);
        }
        if let Some(p) = &self.principal {
            shaped(
                &mut v,
                "principal",
                p,
                &model::PRINCIPAL,
                patterns::PRINCIPAL,
            );
        }
        if let Some(a) = &self.source_account {
            shaped(
                &mut v,
                "sourceAccount",
                a,
                &model::SOURCE_OWNER,
                patterns::SOURCE_OWNER,
            );
        }
        if let Some(a) = &self.source_arn {
            shaped(&mut v, "sourceArn", a, &model::ARN, patterns::SOURCE_ARN);
        }
        if let Some(o) = &self.principal_org_id {
            shaped(
                &mut v,
                "principalOrgID",
                o,
                &model::PRINCIPAL_ORG_ID,
                patterns::PRINCIPAL_ORG_ID,
            );
        }
        if let Some(t) = &self.function_url_auth_type {
            v.one_of("functionUrlAuthType", t, &["NONE", "AWS_IAM"]);
        }
        v.into_result()?;

        if self.principal_org_id.is_some() {
            return Err(refused(
                "PrincipalOrgID",
                "Stoke has no organizations to check a caller's against",
            ));
        }
        if self.event_source_token.is_some() {
            return Err(refused("EventSourceToken", "Stoke serves no Alexa skills"));
        }
        if self.invoked_via_function_url.is_some() {
            return Err(refused(
                "InvokedViaFunctionUrl",
                "grant lambda:InvokeFunctionUrl with a FunctionUrlAuthType instead",
            ));
        }
        let principal = parse_principal(self.principal.as_deref().unwrap_or_default())?;
        let action = self.action.clone().unwrap_or_default();
        if !grantable(&action) {
            return Err(LambdaError::InvalidParameterValue(format!(
                "The provided action {action} is not supported in a function's resource-based \
                 policy. Please check the action and try again."
            )));
        }
        Ok(NewStatement {
            sid: self.statement_id.clone().unwrap_or_default(),
            principal,
            action,
            condition: Condition {
                source_account: self.source_account.clone(),
                source_arn: self.source_arn.clone(),
                function_url_auth_type: self.function_url_auth_type.clone(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(sid: &str, action: &str, principal: &str) -> PermissionInput {
        PermissionInput {
            statement_id: Some(sid.into()),
            action: Some(action.into()),
            principal: Some(principal.into()),
            ..Default::default()
        }
    }

    #[test]
    fn principals_in_every_form_lambda_takes() {
        let id = AccountId::try_from("123456789012".to_owned()).expect("id");
        assert_eq!(parse_principal("*"), Ok(Principal::Any));
        assert_eq!(
            parse_principal("123456789012"),
            Ok(Principal::Account(id.clone()))
        );
        assert_eq!(
            parse_principal("arn:aws:iam::123456789012:root"),
            Ok(Principal::Account(id))
        );
        for s in [
            "apigateway.amazonaws.com",
            "events.amazonaws.com",
            "scheduler.amazonaws.com",
        ] {
            assert_eq!(parse_principal(s), Ok(Principal::Service(s.into())));
        }
        for bad in [
            "12345",
            "1234567890123",
            "arn:aws:iam::123456789012:user/bob",
            "arn:aws:iam::12345:root",
            "example.com",
            ".amazonaws.com",
            "Events.amazonaws.com",
            "someone",
        ] {
            assert_eq!(parse_principal(bad), Err(invalid_principal()), "{bad}");
        }
    }

    #[test]
    fn only_a_functions_own_actions_are_granted() {
        for ok in [
            "lambda:InvokeFunction",
            "lambda:invokefunction",
            "lambda:GetFunction",
            "lambda:*",
            "*",
        ] {
            assert!(grantable(ok), "{ok}");
        }
        for no in [
            "lambda:CreateFunction",
            "lambda:ListFunctions",
            "lambda:AddPermission",
            "lambda:Fly",
        ] {
            assert!(!grantable(no), "{no}");
        }
    }

    #[test]
    fn the_model_is_checked_before_the_meaning() {
        let e = input("bad id!", "lambda:Nope", "nobody").check();
        assert!(matches!(e, Err(LambdaError::Validation(m)) if m.contains("'statementId'")));
        let e = input("ok", "lambda:CreateFunction", "*").check();
        assert!(
            matches!(e, Err(LambdaError::InvalidParameterValue(m)) if m.contains("lambda:CreateFunction"))
        );
        let mut i = input("ok", "lambda:InvokeFunction", "*");
        i.principal_org_id = Some("o-abcdefghij".into());
        assert!(
            matches!(i.check(), Err(LambdaError::InvalidParameterValue(m)) if m.starts_with("PrincipalOrgID"))
        );
    }
}
