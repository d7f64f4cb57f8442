//! Whether a policy lets a request through, by the rules of a function's resource-based
//! policy: every statement allows (AddPermission writes no `Deny`), and a request is allowed
//! when one statement names its principal (`*` names every one), its action (`*` and
//! `lambda:*` name every action; names match without regard to case), its resource (the exact
//! ARN the request addressed: a grant on an alias is not a grant on the version behind it) and
//! meets the statement's condition. Nothing else allows: no statement, no access.

use crate::{AccountId, LambdaError};

use super::{Condition, Policy, Principal, Statement};

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestPrincipal<'a> {
    /// A request signed with an account's key.
    Account(&'a AccountId),
    /// A service acting on its own (an HTTP API, a rule, a schedule).
    Service(&'a str),
}

/// One request to evaluate.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub principal: RequestPrincipal<'a>,
    /// `lambda:InvokeFunction`, `lambda:GetFunction`, …
    pub action: &'a str,
    /// The ARN addressed: the function's, or `FUNCTION:QUALIFIER` (`$LATEST` is addressed as
    /// the function's own).
    pub resource: &'a str,
    /// The auth type of the function URL the call came through, if it came through one.
    pub function_url_auth_type: Option<&'a str>,
}

fn principal_matches(p: &Principal, r: RequestPrincipal<'_>) -> bool {
    match (p, r) {
        (Principal::Any, _) => true,
        (Principal::Account(a), RequestPrincipal::Account(b)) => a == b,
        (Principal::Service(s), RequestPrincipal::Service(t)) => s == t,
        _ => false,
    }
}

fn action_matches(granted: &str, asked: &str) -> bool {
    granted == "*"
        || granted.eq_ignore_ascii_case("lambda:*")
        || granted.eq_ignore_ascii_case(asked)
}

fn condition_holds(c: Option<&Condition>, r: &Request<'_>) -> bool {
    match c {
        None => true,
        Some(Condition::FunctionUrlAuthType(t)) => r.function_url_auth_type == Some(t.as_str()),
    }
}

impl Statement {
    /// Whether this statement allows `r`.
    pub fn allows(&self, r: &Request<'_>) -> bool {
        principal_matches(&self.principal, r.principal)
            && action_matches(&self.action, r.action)
            && self.resource == r.resource
            && condition_holds(self.condition.as_ref(), r)
    }
}

impl Policy {
    /// Whether some statement allows `r`.
    pub fn allows(&self, r: &Request<'_>) -> bool {
        self.statements.iter().any(|s| s.allows(r))
    }
}

/// Lambda's refusal of `action` on `resource` to an account's root.
pub fn access_denied(caller: &AccountId, action: &str, resource: &str) -> LambdaError {
    LambdaError::AccessDenied(format!(
        "User: arn:aws:iam::{caller}:root is not authorized to perform: {action} on resource: \
         {resource} because no resource-based policy allows the {action} action"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:lambda:us-east-1:111111111111:function:f";

    fn id(s: &str) -> AccountId {
        AccountId::try_from(s.to_owned()).expect("id")
    }

    fn statement(principal: Principal, action: &str, resource: &str) -> Statement {
        Statement {
            sid: "s".into(),
            principal,
            action: action.into(),
            resource: resource.into(),
            condition: None,
        }
    }

    #[test]
    fn a_grant_on_an_alias_is_not_one_on_its_version_or_latest() {
        let caller = id("222222222222");
        let alias = format!("{ARN}:prod");
        let p = Policy {
            revision_id: "r".into(),
            statements: vec![statement(
                Principal::Account(caller.clone()),
                "lambda:InvokeFunction",
                &alias,
            )],
        };
        let ask = |resource: &str, action: &str, who: &AccountId| {
            p.allows(&Request {
                principal: RequestPrincipal::Account(who),
                action,
                resource,
                function_url_auth_type: None,
            })
        };
        assert!(ask(&alias, "lambda:InvokeFunction", &caller));
        assert!(!ask(&format!("{ARN}:1"), "lambda:InvokeFunction", &caller));
        assert!(!ask(ARN, "lambda:InvokeFunction", &caller));
        assert!(!ask(&alias, "lambda:GetFunction", &caller));
        assert!(!ask(&alias, "lambda:InvokeFunction", &id("333333333333")));
    }

    #[test]
    fn the_refusal_names_the_caller_and_the_action() {
        let e = access_denied(&id("222222222222"), "lambda:InvokeFunction", ARN);
        assert_eq!(e.status(), 403);
        assert_eq!(
            e.message(),
            "User: arn:aws:iam::222222222222:root is not authorized to perform: \
             lambda:InvokeFunction on resource: arn:aws:lambda:us-east-1:111111111111:function:f \
             because no resource-based policy allows the lambda:InvokeFunction action"
        );
    }
}
