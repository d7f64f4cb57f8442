//! A property test of policy evaluation: random policies and requests, each decided by
//! [`Policy::allows`] and by a reference evaluator written from the rules as sets (what each
//! statement names: its principals, actions, resources, auth types and sources, with `*`
//! spelled out over a finite universe, and `ArnLike` as regular expressions rather than the
//! evaluator's own wildcard matching). The two must agree, and no statement may allow a
//! request outside what it names.

use proptest::prelude::*;
use stoke_core::AccountId;
use stoke_core::policy::{Condition, Policy, Principal, Request, RequestPrincipal, Statement};

const FUNCTION: &str = "arn:aws:lambda:us-east-1:111111111111:function:f";

fn accounts() -> Vec<AccountId> {
    ["111111111111", "222222222222", "333333333333"]
        .iter()
        .map(|s| AccountId::try_from((*s).to_owned()).expect("an account id"))
        .collect()
}

const SERVICES: &[&str] = &["events.amazonaws.com", "apigateway.amazonaws.com"];

/// Actions as requests name them, and as statements may spell them.
const ACTIONS: &[&str] = &[
    "lambda:InvokeFunction",
    "lambda:GetFunction",
    "lambda:GetPolicy",
    "lambda:InvokeFunctionUrl",
    "lambda:ListAliases",
];

fn resources() -> Vec<String> {
    vec![
        FUNCTION.to_owned(),
        format!("{FUNCTION}:1"),
        format!("{FUNCTION}:prod"),
        "arn:aws:lambda:us-east-1:111111111111:function:g".to_owned(),
    ]
}

const AUTH_TYPES: &[Option<&str>] = &[None, Some("NONE"), Some("AWS_IAM")];

/// The sources a service may call for (`AWS:SourceArn`), and patterns statements name them by.
const SOURCE_ARNS: &[Option<&str>] = &[
    None,
    Some("arn:aws:events:us-east-1:111111111111:rule/nightly"),
    Some("arn:aws:events:us-east-1:222222222222:rule/nightly"),
    Some("arn:aws:events:us-west-2:111111111111:rule/hourly"),
    Some("arn:aws:scheduler:us-east-1:111111111111:schedule/default/s:1"),
];

const SOURCE_ARN_PATTERNS: &[&str] = &[
    "arn:aws:events:us-east-1:111111111111:rule/nightly",
    "arn:aws:events:*:111111111111:rule/*",
    "arn:aws:events:us-east-1:*:rule/night?y",
    "arn:aws:*:*:111111111111:*",
    "arn:aws:scheduler:us-east-1:111111111111:schedule/*",
    "arn:aws:events:*:rule/nightly",
    "*",
];

const SOURCE_ACCOUNTS: &[Option<&str>] = &[None, Some("111111111111"), Some("222222222222")];

/// The reference's `ArnLike`: each of the six parts as an anchored regular expression.
fn arn_like_reference(pattern: &str, arn: &str) -> bool {
    let parts = |s: &str| s.splitn(6, ':').map(str::to_owned).collect::<Vec<_>>();
    let (p, a) = (parts(pattern), parts(arn));
    p.len() == 6
        && a.len() == 6
        && p.iter().zip(&a).all(|(p, a)| {
            let re = p
                .chars()
                .map(|c| match c {
                    '*' => ".*".to_owned(),
                    '?' => ".".to_owned(),
                    c => regex::escape(&c.to_string()),
                })
                .collect::<String>();
            regex::Regex::new(&format!("^{re}$")).is_ok_and(|re| re.is_match(a))
        })
}

/// A principal of a request, owned (so strategies can make them).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    Account(AccountId),
    Service(&'static str),
}

impl Who {
    fn as_request(&self) -> RequestPrincipal<'_> {
        match self {
            Who::Account(a) => RequestPrincipal::Account(a),
            Who::Service(s) => RequestPrincipal::Service(s),
        }
    }
}

#[derive(Debug, Clone)]
struct Asked {
    who: Who,
    action: &'static str,
    resource: String,
    auth: Option<&'static str>,
    source_account: Option<&'static str>,
    source_arn: Option<&'static str>,
}

fn every_principal() -> Vec<Who> {
    accounts()
        .into_iter()
        .map(Who::Account)
        .chain(SERVICES.iter().map(|s| Who::Service(s)))
        .collect()
}

/// The reference: what one statement names, spelled out as sets (actions compared in one
/// case, as IAM compares them, written apart from the evaluator's own comparison).
#[allow(clippy::manual_ignore_case_cmp)]
fn names(s: &Statement, r: &Asked) -> bool {
    let principals: Vec<Who> = match &s.principal {
        Principal::Any => every_principal(),
        Principal::Account(a) => vec![Who::Account(a.clone())],
        Principal::Service(x) => SERVICES
            .iter()
            .filter(|y| **y == x.as_str())
            .map(|y| Who::Service(y))
            .collect(),
    };
    let wildcard = s.action == "*" || s.action.to_ascii_lowercase() == "lambda:*";
    let actions: Vec<&str> = ACTIONS
        .iter()
        .copied()
        .filter(|a| wildcard || a.to_ascii_lowercase() == s.action.to_ascii_lowercase())
        .collect();
    let auths: Vec<Option<&str>> = match &s.condition.function_url_auth_type {
        None => AUTH_TYPES.to_vec(),
        Some(t) => vec![Some(t.as_str())],
    };
    let source_accounts: Vec<Option<&str>> = match &s.condition.source_account {
        None => SOURCE_ACCOUNTS.to_vec(),
        Some(a) => vec![Some(a.as_str())],
    };
    let source_arns: Vec<Option<&str>> = match &s.condition.source_arn {
        None => SOURCE_ARNS.to_vec(),
        Some(p) => SOURCE_ARNS
            .iter()
            .copied()
            .filter(|a| a.is_some_and(|a| arn_like_reference(p, a)))
            .collect(),
    };
    principals.contains(&r.who)
        && actions.contains(&r.action)
        && s.resource == r.resource
        && auths.contains(&r.auth)
        && source_accounts.contains(&r.source_account)
        && source_arns.contains(&r.source_arn)
}

fn any_account() -> impl Strategy<Value = AccountId> {
    prop::sample::select(accounts())
}

fn any_principal() -> impl Strategy<Value = Principal> {
    prop_oneof![
        Just(Principal::Any),
        any_account().prop_map(Principal::Account),
        prop::sample::select(SERVICES).prop_map(|s| Principal::Service(s.to_owned())),
    ]
}

fn any_statement_action() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        Just("lambda:*".to_owned()),
        Just("LAMBDA:*".to_owned()),
        prop::sample::select(ACTIONS).prop_map(str::to_owned),
        // The same names in other cases: IAM matches actions without regard to case.
        prop::sample::select(ACTIONS).prop_map(str::to_ascii_lowercase),
    ]
}

fn any_statement() -> impl Strategy<Value = Statement> {
    (
        any_principal(),
        any_statement_action(),
        prop::sample::select(resources()),
        prop::option::of(prop::sample::select(vec!["NONE", "AWS_IAM"])),
        prop::option::of(prop::sample::select(vec!["111111111111", "222222222222"])),
        prop::option::of(prop::sample::select(SOURCE_ARN_PATTERNS)),
    )
        .prop_map(
            |(principal, action, resource, auth, source_account, source_arn)| Statement {
                sid: "s".into(),
                principal,
                action,
                resource,
                condition: Condition {
                    source_account: source_account.map(str::to_owned),
                    source_arn: source_arn.map(str::to_owned),
                    function_url_auth_type: auth.map(str::to_owned),
                },
            },
        )
}

fn any_request() -> impl Strategy<Value = Asked> {
    (
        prop::sample::select(every_principal()),
        prop::sample::select(ACTIONS),
        prop::sample::select(resources()),
        prop::sample::select(AUTH_TYPES),
        prop::sample::select(SOURCE_ACCOUNTS),
        prop::sample::select(SOURCE_ARNS),
    )
        .prop_map(
            |(who, action, resource, auth, source_account, source_arn)| Asked {
                who,
                action,
                resource,
                auth,
                source_account,
                source_arn,
            },
        )
}

fn ask(p: &Policy, r: &Asked) -> bool {
    p.allows(&Request {
        principal: r.who.as_request(),
        action: r.action,
        resource: &r.resource,
        function_url_auth_type: r.auth,
        source_account: r.source_account,
        source_arn: r.source_arn,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn evaluation_agrees_with_the_reference(
        statements in prop::collection::vec(any_statement(), 0..6),
        requests in prop::collection::vec(any_request(), 1..16),
    ) {
        let policy = Policy { revision_id: "r".into(), statements };
        for r in &requests {
            let reference = policy.statements.iter().any(|s| names(s, r));
            prop_assert_eq!(ask(&policy, r), reference, "{:?} on {:?}", r, policy);
        }
    }

    #[test]
    fn no_statement_grants_more_than_it_names(
        statement in any_statement(),
        requests in prop::collection::vec(any_request(), 1..32),
    ) {
        let one = Policy { revision_id: "r".into(), statements: vec![statement.clone()] };
        for r in &requests {
            if ask(&one, r) {
                prop_assert!(names(&statement, r), "{:?} allowed {:?}", statement, r);
                // What it allows is exactly what it names: that principal (or any, for `*`),
                // that resource, and an action it spells (or any, for a wildcard).
                prop_assert_eq!(&statement.resource, &r.resource);
            }
        }
    }

    #[test]
    fn removing_a_statement_never_grants_more(
        statements in prop::collection::vec(any_statement(), 1..6),
        drop in 0usize..6,
        requests in prop::collection::vec(any_request(), 1..16),
    ) {
        let full = Policy { revision_id: "r".into(), statements: statements.clone() };
        let mut fewer = statements;
        fewer.remove(drop % fewer.len());
        let fewer = Policy { revision_id: "r".into(), statements: fewer };
        for r in &requests {
            prop_assert!(!ask(&fewer, r) || ask(&full, r));
        }
    }

    #[test]
    fn the_document_shows_every_statement_as_written(
        statements in prop::collection::vec(any_statement(), 0..6),
    ) {
        let policy = Policy { revision_id: "r".into(), statements };
        let doc: serde_json::Value = serde_json::from_str(&policy.document()).expect("JSON");
        prop_assert_eq!(&doc["Version"], "2012-10-17");
        prop_assert_eq!(&doc["Id"], "default");
        let shown = doc["Statement"].as_array().expect("a list");
        prop_assert_eq!(shown.len(), policy.statements.len());
        for (s, j) in policy.statements.iter().zip(shown) {
            prop_assert_eq!(&j["Effect"], "Allow");
            prop_assert_eq!(j["Action"].as_str(), Some(s.action.as_str()));
            prop_assert_eq!(j["Resource"].as_str(), Some(s.resource.as_str()));
            let parsed: serde_json::Value = serde_json::from_str(&s.to_json()).expect("JSON");
            prop_assert_eq!(&parsed, j);
        }
    }
}
