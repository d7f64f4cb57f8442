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

    /// A name as an operation on an existing function takes it: whatever the operation's
    /// pattern let through. One that no function could have (longer than [`Self::MAX_LEN`], or
    /// with a `.`) is simply not found, as AWS answers it, rather than invalid.
    fn lookup(name: &str) -> Self {
        Self(name.to_owned())
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
    /// Parses a reference to an existing function in any of the forms Lambda accepts.
    /// `pattern` is the model pattern of the operation and `max_len` the length AWS allows
    /// there (170 for a name or ARN); the name inside is taken as it is (a name no function
    /// could have is then not found, as AWS answers it).
    pub fn parse(
        member: &str,
        raw: &str,
        pattern: &'static str,
        max_len: usize,
    ) -> Result<Self, LambdaError> {
        Self::parse_with(member, raw, pattern, max_len, false)
    }

    /// Parses CreateFunction's `FunctionName`: the model's `FunctionName` pattern, a bare name
    /// of at most [`FunctionName::MAX_LEN`] characters (the limit AWS quotes for one) and an
    /// ARN of at most the model's length.
    pub fn parse_new(member: &str, raw: &str) -> Result<Self, LambdaError> {
        let max = if raw.contains(':') {
            crate::model::FUNCTION_NAME
                .max
                .and_then(|m| usize::try_from(m).ok())
                .unwrap_or(140)
        } else {
            FunctionName::MAX_LEN
        };
        Self::parse_with(member, raw, patterns::FUNCTION_NAME, max, true)
    }

    fn parse_with(
        member: &str,
        raw: &str,
        pattern: &'static str,
        max_len: usize,
        new: bool,
    ) -> Result<Self, LambdaError> {
        // Every violated constraint is reported, the pattern's first, as AWS lists them.
        let mut v = Violations::new();
        v.pattern(member, raw, pattern);
        v.length(member, raw, 1, max_len);
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
            name: if new {
                FunctionName::parse(member, name)?
            } else {
                FunctionName::lookup(name)
            },
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
                v.pattern("qualifier", b, patterns::QUALIFIER);
                v.length("qualifier", b, 1, 128);
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
        // Too long to create, but a valid reference: found or not found, never invalid.
        let long = "a".repeat(65);
        assert_eq!(parse(&long).unwrap().name.as_str(), long);
        let e = FunctionRef::parse_new("functionName", &long).unwrap_err();
        assert_eq!(
            e.message(),
            format!(
                "1 validation error detected: Value '{long}' at 'functionName' failed to \
                 satisfy constraint: Member must have length less than or equal to 64"
            )
        );
        let e = parse(&"a".repeat(171)).unwrap_err();
        assert!(
            e.message()
                .ends_with("Member must have length less than or equal to 170"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn arns_of_every_partition_in_the_model_parse() {
        for arn in [
            "arn:aws-iso:lambda:us-iso-east-1:123456789012:function:f",
            "arn:aws-eusc:lambda:eusc-de-east-1:123456789012:function:f",
            "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f:1",
        ] {
            let r = parse(arn).unwrap();
            assert_eq!(r.name.as_str(), "f", "{arn}");
        }
    }

    #[test]
    fn every_violated_constraint_is_counted() {
        let bad = "bad name!".repeat(20);
        let e = parse(&bad).unwrap_err();
        assert_eq!(
            e.message(),
            format!(
                "2 validation errors detected: Value '{bad}' at 'functionName' failed to satisfy \
                 constraint: Member must satisfy regular expression pattern: {}; Value '{bad}' \
                 at 'functionName' failed to satisfy constraint: Member must have length less \
                 than or equal to 170",
                patterns::NAMESPACED_FUNCTION_NAME
            )
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
