//! The constraint checks of the Lambda API model.
//!
//! AWS checks every member of a request against its model before it looks at anything else and
//! reports all the violations in one `ValidationException`:
//! `2 validation errors detected: Value '100' at 'memorySize' failed to satisfy constraint:
//! Member must have value greater than or equal to 128; Value …`. [`Violations`] collects them in
//! that wording; the patterns are the model's own, so messages quote what AWS quotes.

use std::sync::LazyLock;

use regex::Regex;

use crate::LambdaError;

/// The model's patterns ([`crate::model`], generated from boto3's service model), quoted in
/// messages exactly as AWS quotes them.
pub mod patterns {
    use crate::model;

    /// `FunctionName` (CreateFunction and the operations the model types so).
    pub const FUNCTION_NAME: &str = model::FUNCTION_NAME.pattern;
    /// `NamespacedFunctionName`: the operations that name an existing function (GetFunction,
    /// Invoke, DeleteFunction, the event-invoke configs, …).
    pub const NAMESPACED_FUNCTION_NAME: &str = model::NAMESPACED_FUNCTION_NAME.pattern;
    /// `Role`.
    pub const ROLE: &str = model::ROLE_ARN.pattern;
    /// `Handler`.
    pub const HANDLER: &str = model::HANDLER.pattern;
    /// `Qualifier` of the operations that read a function (GetFunction, Invoke, …).
    pub const QUALIFIER: &str = model::NUMERIC_LATEST_PUBLISHED_OR_ALIAS_QUALIFIER.pattern;
    /// `FunctionVersion` of the alias operations.
    pub const VERSION: &str = model::VERSION_WITH_LATEST_PUBLISHED.pattern;
    /// A version number (the keys of `AdditionalVersionWeights`).
    pub const VERSION_NUMBER: &str = model::ADDITIONAL_VERSION.pattern;
    /// An alias `Name`. The model's lookahead (not all digits) is checked beside the regex.
    pub const ALIAS: &str = model::ALIAS.pattern;
    /// An environment variable's name.
    pub const ENV_KEY: &str = model::ENVIRONMENT_VARIABLE_NAME.pattern;
    /// A resource ARN in the tagging operations.
    pub const TAGGABLE_ARN: &str = model::TAGGABLE_RESOURCE.pattern;
    /// AddPermission's `StatementId`.
    pub const STATEMENT_ID: &str = model::STATEMENT_ID.pattern;
    /// RemovePermission's `StatementId`.
    pub const NAMESPACED_STATEMENT_ID: &str = model::NAMESPACED_STATEMENT_ID.pattern;
    /// AddPermission's `Action`.
    pub const ACTION: &str = model::ACTION.pattern;
    /// AddPermission's `Principal`.
    pub const PRINCIPAL: &str = model::PRINCIPAL.pattern;
    /// AddPermission's `SourceAccount`.
    pub const SOURCE_OWNER: &str = model::SOURCE_OWNER.pattern;
    /// AddPermission's `PrincipalOrgID`.
    pub const PRINCIPAL_ORG_ID: &str = model::PRINCIPAL_ORG_ID.pattern;
    /// AddPermission's `SourceArn`.
    pub const SOURCE_ARN: &str = model::ARN.pattern;
    /// EventBridge Scheduler's `Name`, `GroupName` and `NamePrefix`.
    pub const SCHEDULE_NAME: &str = "[0-9a-zA-Z-_.]+";
    /// EventBridge Scheduler's `Target.RoleArn`.
    pub const SCHEDULE_ROLE: &str = r"arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@\/-]+";
    /// EventBridge Scheduler's `DeadLetterConfig.Arn` (an SQS queue).
    pub const SCHEDULE_DEAD_LETTER: &str = r"arn:aws[a-z-]*:sqs:[a-z0-9\-]+:\d{12}:[a-zA-Z0-9\-_]+";
    /// EventBridge Scheduler's `KmsKeyArn`.
    pub const SCHEDULE_KMS_KEY: &str =
        r"arn:aws[a-z-]*:kms:[a-z0-9\-]+:\d{12}:(key|alias)\/[0-9a-zA-Z-_]*";
    /// EventBridge Scheduler's `ClientToken`.
    pub const CLIENT_TOKEN: &str = "[a-zA-Z0-9-_]+";
}

fn anchored(pattern: &str) -> Regex {
    // The patterns are constants of this module and compile; a failure would be caught by
    // the tests below, so falling back to a never-matching pattern is unreachable in practice.
    Regex::new(&format!("^(?:{pattern})$")).unwrap_or_else(|_| Regex::new("$^").expect("valid"))
}

static COMPILED: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    [
        patterns::FUNCTION_NAME,
        patterns::NAMESPACED_FUNCTION_NAME,
        patterns::ROLE,
        patterns::HANDLER,
        patterns::QUALIFIER,
        patterns::ENV_KEY,
        patterns::TAGGABLE_ARN,
        patterns::VERSION,
        patterns::VERSION_NUMBER,
        patterns::STATEMENT_ID,
        patterns::NAMESPACED_STATEMENT_ID,
        patterns::ACTION,
        patterns::PRINCIPAL,
        patterns::SOURCE_OWNER,
        patterns::PRINCIPAL_ORG_ID,
        patterns::SOURCE_ARN,
        patterns::SCHEDULE_NAME,
        patterns::SCHEDULE_ROLE,
        patterns::SCHEDULE_DEAD_LETTER,
        patterns::SCHEDULE_KMS_KEY,
        patterns::CLIENT_TOKEN,
    ]
    .into_iter()
    .map(|p| (p, anchored(p)))
    // The regex crate has no lookahead: the alias pattern's other half is in `matches`.
    .chain(std::iter::once((
        patterns::ALIAS,
        anchored("[a-zA-Z0-9-_]+"),
    )))
    .collect()
});

/// Whether `value` matches one of this module's [`patterns`] as a whole.
pub fn matches(pattern: &'static str, value: &str) -> bool {
    if pattern == patterns::ALIAS && value.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    COMPILED
        .iter()
        .find(|(p, _)| *p == pattern)
        .map(|(_, re)| re.is_match(value))
        .unwrap_or(false)
}

/// The violations found in one request, in the order they were found.
#[derive(Debug, Default)]
pub struct Violations(Vec<String>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, value: &str, member: &str, constraint: &str) {
        self.0.push(format!(
            "Value {value} at '{member}' failed to satisfy constraint: {constraint}"
        ));
    }

    /// A member that must be present.
    pub fn not_null<T>(&mut self, member: &str, value: Option<&T>) {
        if value.is_none() {
            self.push("null", member, "Member must not be null");
        }
    }

    /// A string member's length, counted in characters.
    pub fn length(&mut self, member: &str, value: &str, min: usize, max: usize) -> bool {
        let n = value.chars().count();
        if n < min {
            self.push(
                &quote(value),
                member,
                &format!("Member must have length greater than or equal to {min}"),
            );
            false
        } else if n > max {
            self.push(
                &quote(value),
                member,
                &format!("Member must have length less than or equal to {max}"),
            );
            false
        } else {
            true
        }
    }

    /// A string member that must match one of [`patterns`].
    pub fn pattern(&mut self, member: &str, value: &str, pattern: &'static str) -> bool {
        if matches(pattern, value) {
            true
        } else {
            self.push(
                &quote(value),
                member,
                &format!("Member must satisfy regular expression pattern: {pattern}"),
            );
            false
        }
    }

    /// A map whose keys must each match one of [`patterns`], worded as AWS words it for a
    /// sensitive map such as `environment.variables` (no value quoted).
    pub fn map_keys_pattern<'a>(
        &mut self,
        member: &str,
        mut keys: impl Iterator<Item = &'a String>,
        pattern: &'static str,
    ) {
        if keys.all(|k| matches(pattern, k)) {
            return;
        }
        self.0.push(format!(
            "Value at '{member}' failed to satisfy constraint: Map keys must satisfy \
             constraint: [Member must satisfy regular expression pattern: {pattern}]"
        ));
    }

    /// An integer member's range.
    pub fn range(&mut self, member: &str, value: i64, min: i64, max: i64) {
        if value < min {
            self.push(
                &quote(&value.to_string()),
                member,
                &format!("Member must have value greater than or equal to {min}"),
            );
        } else if value > max {
            self.push(
                &quote(&value.to_string()),
                member,
                &format!("Member must have value less than or equal to {max}"),
            );
        }
    }

    /// A map of numbers whose values must lie in `min..=max`, worded as AWS words it for
    /// `AdditionalVersionWeights`: the whole map quoted, then each constraint of the value.
    pub fn map_values_in_range(
        &mut self,
        member: &str,
        map: &std::collections::BTreeMap<String, f64>,
        min: f64,
        max: f64,
    ) {
        if map.values().all(|w| (min..=max).contains(w)) {
            return;
        }
        let shown: Vec<String> = map.iter().map(|(k, w)| format!("{k}={w:?}")).collect();
        self.push(
            &quote(&format!("{{{}}}", shown.join(", "))),
            member,
            &format!(
                "Map value must satisfy constraint: [Member must have value less than or equal \
                 to {max:.1}, Member must have value greater than or equal to {min:.1}]"
            ),
        );
    }

    /// A string member that must be one of a set of values.
    pub fn one_of(&mut self, member: &str, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            self.push(
                &quote(value),
                member,
                &format!(
                    "Member must satisfy enum value set: [{}]",
                    allowed.join(", ")
                ),
            );
        }
    }

    /// A list member's length.
    pub fn list_length(&mut self, member: &str, shown: &str, len: usize, min: usize, max: usize) {
        if len < min {
            self.push(
                &quote(shown),
                member,
                &format!("Member must have length greater than or equal to {min}"),
            );
        } else if len > max {
            self.push(
                &quote(shown),
                member,
                &format!("Member must have length less than or equal to {max}"),
            );
        }
    }

    /// A list member whose items must each be one of a set of values (the wording AWS uses for
    /// `architectures`).
    pub fn each_one_of(&mut self, member: &str, shown: &str, values: &[String], allowed: &[&str]) {
        if values.iter().any(|v| !allowed.contains(&v.as_str())) {
            self.push(
                &quote(shown),
                member,
                &format!(
                    "Member must satisfy constraint: [Member must satisfy enum value set: [{}]]",
                    allowed.join(", ")
                ),
            );
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` if nothing was violated, else the `ValidationException` AWS would answer.
    pub fn into_result(self) -> Result<(), LambdaError> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(LambdaError::Validation(format!(
                "1 validation error detected: {}",
                self.0[0]
            ))),
            n => Err(LambdaError::Validation(format!(
                "{n} validation errors detected: {}",
                self.0.join("; ")
            ))),
        }
    }
}

fn quote(value: &str) -> String {
    format!("'{value}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        for (p, re) in COMPILED.iter() {
            assert!(!re.as_str().contains("$^"), "pattern {p} did not compile");
        }
    }

    #[test]
    fn an_alias_name_is_not_all_digits() {
        assert!(matches(patterns::ALIAS, "live"));
        assert!(matches(patterns::ALIAS, "v2-canary_1"));
        assert!(!matches(patterns::ALIAS, "12"));
        assert!(!matches(patterns::ALIAS, "a:b"));
        assert!(matches(patterns::VERSION, "$LATEST"));
        assert!(!matches(patterns::VERSION, "latest"));
    }

    #[test]
    fn one_violation_is_worded_as_aws_words_it() {
        let mut v = Violations::new();
        v.range("memorySize", 100, 128, 10240);
        let err = v.into_result().unwrap_err();
        assert_eq!(
            err.message(),
            "1 validation error detected: Value '100' at 'memorySize' failed to satisfy \
             constraint: Member must have value greater than or equal to 128"
        );
    }

    #[test]
    fn several_violations_are_counted_and_joined() {
        let mut v = Violations::new();
        v.range("timeout", 0, 1, 900);
        v.pattern("role", "nope", patterns::ROLE);
        let msg = v.into_result().unwrap_err().message().to_owned();
        assert!(msg.starts_with("2 validation errors detected: Value '0' at 'timeout'"));
        assert!(msg.contains("; Value 'nope' at 'role' failed to satisfy constraint"));
    }

    #[test]
    fn function_name_pattern_takes_names_and_arns() {
        assert!(matches(patterns::FUNCTION_NAME, "my-func_1"));
        assert!(matches(
            patterns::FUNCTION_NAME,
            "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST"
        ));
        assert!(!matches(patterns::FUNCTION_NAME, "bad name!"));
        assert!(matches(patterns::ROLE, "arn:aws:iam::123456789012:role/x"));
        assert!(!matches(patterns::ROLE, "role"));
    }
}
