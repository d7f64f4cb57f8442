//! Whether a policy lets a request through, by the rules of a function's resource-based
//! policy: every statement allows (AddPermission writes no `Deny`), and a request is allowed
//! when one statement names its principal (`*` names every one), its action (`*` and
//! `lambda:*` name every action; names match without regard to case), its resource (the exact
//! ARN the request addressed: a grant on an alias is not a grant on the version behind it) and
//! meets the statement's condition (each key it sets: the source account equal, the source ARN
//! alike in IAM's `ArnLike` sense, the URL's auth type equal; a key the request lacks fails).
//! Nothing else allows: no statement, no access.

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
    /// The account owning the resource a service calls for (`AWS:SourceAccount`), if a
    /// service calls on a resource's behalf.
    pub source_account: Option<&'a str>,
    /// The ARN of that resource (`AWS:SourceArn`): a rule, a schedule, an API's route.
    pub source_arn: Option<&'a str>,
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

fn condition_holds(c: &Condition, r: &Request<'_>) -> bool {
    let equal =
        |want: &Option<String>, got: Option<&str>| want.as_deref().is_none_or(|w| got == Some(w));
    equal(&c.source_account, r.source_account)
        && equal(&c.function_url_auth_type, r.function_url_auth_type)
        && c.source_arn
            .as_deref()
            .is_none_or(|pattern| r.source_arn.is_some_and(|arn| arn_like(pattern, arn)))
}

/// IAM's `ArnLike`: both split into their six parts (`arn`, partition, service, region,
/// account, resource; the resource keeps its own `:`), each part matched by the pattern's part
/// with `*` (any run of characters) and `?` (any one), case-sensitively. A wildcard never
/// reaches across a `:` between parts.
pub fn arn_like(pattern: &str, arn: &str) -> bool {
    let (p, a): (Vec<&str>, Vec<&str>) = (
        pattern.splitn(6, ':').collect(),
        arn.splitn(6, ':').collect(),
    );
    p.len() == 6 && a.len() == 6 && p.iter().zip(&a).all(|(p, a)| glob(p, a))
}

/// `*`/`?` wildcard matching, in time linear in the text for each backtrack to the last `*`
/// (at most `pattern.len() * text.len()` steps; no recursion).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut i, mut j) = (0, 0);
    // Where the last `*` was, and the text position it was tried against.
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        match p.get(i) {
            Some('*') => {
                star = Some((i, j));
                i += 1;
            }
            Some(&c) if c == '?' || c == t[j] => {
                i += 1;
                j += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character, and try again after it.
                Some((si, sj)) => {
                    star = Some((si, sj + 1));
                    i = si + 1;
                    j = sj + 1;
                }
                None => return false,
            },
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

impl Statement {
    /// Whether this statement allows `r`.
    pub fn allows(&self, r: &Request<'_>) -> bool {
        principal_matches(&self.principal, r.principal)
            && action_matches(&self.action, r.action)
            && self.resource == r.resource
            && condition_holds(&self.condition, r)
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
            condition: Condition::default(),
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
                source_account: None,
                source_arn: None,
            })
        };
        assert!(ask(&alias, "lambda:InvokeFunction", &caller));
        assert!(!ask(&format!("{ARN}:1"), "lambda:InvokeFunction", &caller));
        assert!(!ask(ARN, "lambda:InvokeFunction", &caller));
        assert!(!ask(&alias, "lambda:GetFunction", &caller));
        assert!(!ask(&alias, "lambda:InvokeFunction", &id("333333333333")));
    }

    #[test]
    fn arn_like_matches_within_each_part_only() {
        let rule = "arn:aws:events:us-east-1:210987654321:rule/nightly";
        assert!(arn_like(rule, rule));
        assert!(arn_like(
            "arn:aws:events:us-east-1:210987654321:rule/*",
            rule
        ));
        assert!(arn_like("arn:aws:events:*:*:rule/night?y", rule));
        assert!(arn_like(
            "arn:aws:s3:::bucket/*",
            "arn:aws:s3:::bucket/a/b:c"
        ));
        assert!(!arn_like(
            "arn:aws:events:us-east-1:210987654321:rule/other",
            rule
        ));
        // A `*` does not reach across the parts: the account is not matched by the region's.
        assert!(!arn_like("arn:aws:events:*:rule/nightly", rule));
        assert!(!arn_like(
            "arn:aws:events:us-east-1:210987654321:Rule/nightly",
            rule
        ));
        assert!(!arn_like("*", rule));
        assert!(!arn_like(rule, "arn:aws:events:us-east-1"));
    }

    #[test]
    fn a_source_condition_lets_in_only_that_source() {
        let rule = "arn:aws:events:us-east-1:111111111111:rule/r";
        let p = Policy {
            revision_id: "r".into(),
            statements: vec![Statement {
                condition: Condition {
                    source_account: Some("111111111111".into()),
                    source_arn: Some("arn:aws:events:us-east-1:111111111111:rule/*".into()),
                    function_url_auth_type: None,
                },
                ..statement(
                    Principal::Service("events.amazonaws.com".into()),
                    "lambda:InvokeFunction",
                    ARN,
                )
            }],
        };
        let ask = |account: Option<&str>, arn: Option<&str>| {
            p.allows(&Request {
                principal: RequestPrincipal::Service("events.amazonaws.com"),
                action: "lambda:InvokeFunction",
                resource: ARN,
                function_url_auth_type: None,
                source_account: account,
                source_arn: arn,
            })
        };
        assert!(ask(Some("111111111111"), Some(rule)));
        assert!(!ask(Some("222222222222"), Some(rule)));
        assert!(!ask(
            Some("111111111111"),
            Some("arn:aws:events:us-east-1:111111111111:bus/b")
        ));
        assert!(!ask(None, Some(rule)));
        assert!(!ask(Some("111111111111"), None));
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
