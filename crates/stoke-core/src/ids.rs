//! Account ids, function names, and the ways a caller names a function.
//!
//! Lambda takes a function's name in several forms: `my-function`, `my-function:v1`,
//! `123456789012:function:my-function` and the full ARN
//! `arn:aws:lambda:us-east-1:123456789012:function:my-function[:qualifier]`. [`FunctionRef`]
//! parses all of them; the control plane then checks the account and region against the
//! caller's.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::LambdaError;
use crate::validate::{Violations, patterns};

/// A 12-digit AWS-style account id. Every stored resource carries one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s))
        } else {
            Err(format!("an account id is 12 digits, not {s:?}"))
        }
    }
}

impl From<AccountId> for String {
    fn from(a: AccountId) -> String {
        a.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A function's own name: 1 to 64 of `[a-zA-Z0-9-_]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FunctionName(String);

impl FunctionName {
    pub const MAX_LEN: usize = 64;

    /// Checks a bare name (no ARN, no qualifier).
    pub fn parse(member: &str, name: &str) -> Result<Self, LambdaError> {
        let mut v = Violations::new();
        if v.length(member, name, 1, Self::MAX_LEN)
            && !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            v.pattern(member, name, patterns::FUNCTION_NAME);
            // The model's pattern accepts more than a bare name (an ARN, say); say it plainly.
            if v.is_empty() {
                return Err(LambdaError::Validation(format!(
                    "1 validation error detected: Value '{name}' at '{member}' failed to satisfy \
                     constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+"
                )));
            }
        }
        v.into_result()?;
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A function as a caller named it: the name, and what the name said about account, region
/// and qualifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    pub name: FunctionName,
    /// The account from a (partial) ARN; `None` for a bare name (the caller's own account).
    pub account: Option<AccountId>,
    /// The region from a full ARN.
    pub region: Option<String>,
    /// The qualifier from the name (`name:qualifier`), if any.
    pub qualifier: Option<String>,
}

impl FunctionRef {
    /// Parses any of the forms Lambda accepts. `pattern` is the model pattern of the operation
    /// (CreateFunction's is stricter than the others'); `max_len` the model's length limit.
    pub fn parse(
        member: &str,
        raw: &str,
        pattern: &'static str,
        max_len: usize,
    ) -> Result<Self, LambdaError> {
        let mut v = Violations::new();
        if v.length(member, raw, 1, max_len) {
            v.pattern(member, raw, pattern);
        }
        v.into_result()?;

        let parts: Vec<&str> = raw.split(':').collect();
        let (account, region, name, qualifier) = match parts.as_slice() {
            [name] => (None, None, *name, None),
            [name, q] => (None, None, *name, Some(*q)),
            [acct, "function", name] => (Some(*acct), None, *name, None),
            [acct, "function", name, q] => (Some(*acct), None, *name, Some(*q)),
            ["arn", _partition, "lambda", region, acct, "function", name] => {
                (Some(*acct), Some(*region), *name, None)
            }
            [
                "arn",
                _partition,
                "lambda",
                region,
                acct,
                "function",
                name,
                q,
            ] => (Some(*acct), Some(*region), *name, Some(*q)),
            _ => {
                return Err(LambdaError::Validation(format!(
                    "1 validation error detected: Value '{raw}' at '{member}' failed to satisfy \
                     constraint: Member must satisfy regular expression pattern: {pattern}"
                )));
            }
        };
        let account = account
            .map(|a| AccountId::try_from(a.to_owned()))
            .transpose()
            .map_err(LambdaError::InvalidParameterValue)?;
        Ok(Self {
            name: FunctionName::parse(member, name)?,
            account,
            region: region.map(str::to_owned),
            qualifier: qualifier.map(str::to_owned),
        })
    }

    /// Merges the qualifier from the name with the one from the `Qualifier` parameter; Lambda
    /// refuses the two when they differ.
    pub fn with_qualifier(mut self, param: Option<&str>) -> Result<Self, LambdaError> {
        match (self.qualifier.as_deref(), param) {
            (Some(a), Some(b)) if a != b => Err(LambdaError::InvalidParameterValue(
                "The derived qualifier from the function name does not match the specified \
                 qualifier."
                    .into(),
            )),
            (None, Some(b)) => {
                let mut v = Violations::new();
                if v.length("qualifier", b, 1, 128) {
                    v.pattern("qualifier", b, patterns::QUALIFIER);
                }
                v.into_result()?;
                self.qualifier = Some(b.to_owned());
                Ok(self)
            }
            _ => Ok(self),
        }
    }
}

/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`.
pub fn function_arn(region: &str, account: &AccountId, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account}:function:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<FunctionRef, LambdaError> {
        FunctionRef::parse("functionName", raw, patterns::NAMESPACED_FUNCTION_NAME, 170)
    }

    #[test]
    fn parses_every_form_lambda_accepts() {
        let r = parse("f").unwrap();
        assert_eq!((r.name.as_str(), r.account, r.qualifier), ("f", None, None));
        let r = parse("f:live").unwrap();
        assert_eq!(r.qualifier.as_deref(), Some("live"));
        let r = parse("123456789012:function:f").unwrap();
        assert_eq!(r.account.unwrap().as_str(), "123456789012");
        let r = parse("arn:aws:lambda:eu-west-1:123456789012:function:f:$LATEST").unwrap();
        assert_eq!(r.region.as_deref(), Some("eu-west-1"));
        assert_eq!(r.qualifier.as_deref(), Some("$LATEST"));
    }

    #[test]
    fn refuses_names_outside_the_pattern_or_too_long() {
        let e = parse("bad name!").unwrap_err();
        assert_eq!(e.type_name(), "ValidationException");
        assert!(
            e.message()
                .starts_with("1 validation error detected: Value 'bad name!'")
        );
        let long = "a".repeat(65);
        let e = parse(&long).unwrap_err();
        assert!(
            e.message()
                .contains("Member must have length less than or equal to 64")
        );
    }

    #[test]
    fn a_qualifier_given_twice_must_agree() {
        let r = parse("f:1").unwrap();
        assert!(r.clone().with_qualifier(Some("1")).is_ok());
        let e = r.with_qualifier(Some("2")).unwrap_err();
        assert_eq!(e.type_name(), "InvalidParameterValueException");
    }
}
