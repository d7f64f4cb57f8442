//! Aliases: a name for one version of a function, or a split of calls between two.
//!
//! [`AliasInput`] is what CreateAlias and UpdateAlias carry; [`AliasInput::check`] applies the
//! model's constraints (`ValidationException`) and [`check_routing`] Lambda's own rules on the
//! values (`InvalidParameterValueException`). [`Alias::pick`] chooses the version a call runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::function::LATEST;
use crate::validate::{Violations, patterns};
use crate::{AccountId, LambdaError};

/// Where an alias sends calls: a version, and perhaps a share of them to a second one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasTarget {
    /// `FunctionVersion`: a version number or `$LATEST`.
    pub function_version: String,
    /// `RoutingConfig.AdditionalVersionWeights`: at most one version and its share (0–1).
    #[serde(default)]
    pub additional_weights: BTreeMap<String, f64>,
}

/// An alias as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alias {
    pub account: AccountId,
    pub function_name: String,
    pub name: String,
    pub target: AliasTarget,
    pub description: String,
    pub revision_id: String,
    /// The target before the last change of it, for `stoke rollback`.
    #[serde(default)]
    pub previous: Option<AliasTarget>,
}

impl Alias {
    pub fn arn(&self, region: &str) -> String {
        format!(
            "{}:{}",
            crate::ids::function_arn(region, &self.account, &self.function_name),
            self.name
        )
    }

    /// The versions the alias sends calls to.
    pub fn versions(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.target.function_version.as_str())
            .chain(self.target.additional_weights.keys().map(String::as_str))
    }

    /// The version one call runs, given a uniform sample `u` in [0, 1).
    pub fn pick(&self, u: f64) -> &str {
        let mut acc = 0.0;
        for (v, w) in &self.target.additional_weights {
            acc += w;
            if u < acc {
                return v;
            }
        }
        &self.target.function_version
    }
}

/// The members of CreateAlias and UpdateAlias.
#[derive(Debug, Clone, Default)]
pub struct AliasInput {
    pub name: String,
    pub function_version: Option<String>,
    pub description: Option<String>,
    /// `RoutingConfig.AdditionalVersionWeights`, when `RoutingConfig` was sent.
    pub additional_weights: Option<BTreeMap<String, f64>>,
}

impl AliasInput {
    /// The model's constraints, all reported at once.
    pub fn check(&self, v: &mut Violations) {
        if v.length("name", &self.name, 1, 128) {
            v.pattern("name", &self.name, patterns::ALIAS);
        }
        if let Some(fv) = &self.function_version
            && v.length("functionVersion", fv, 1, 1024)
        {
            v.pattern("functionVersion", fv, patterns::VERSION);
        }
        if let Some(d) = &self.description {
            v.length("description", d, 0, 256);
        }
        if let Some(w) = &self.additional_weights {
            v.map_values_in_range("routingConfig.additionalVersionWeights", w, 0.0, 1.0);
            for k in w.keys() {
                if v.length("routingConfig.additionalVersionWeights.key", k, 1, 1024) {
                    v.pattern(
                        "routingConfig.additionalVersionWeights.key",
                        k,
                        patterns::VERSION_NUMBER,
                    );
                }
            }
        }
    }
}

/// Lambda's rules for a weighted alias, past the model's constraints.
pub fn check_routing(target: &AliasTarget) -> Result<(), LambdaError> {
    let w = &target.additional_weights;
    if w.len() > 1 {
        return Err(LambdaError::InvalidParameterValue(
            "Number of items in AdditionalVersionWeights cannot be greater than 1".into(),
        ));
    }
    if w.is_empty() {
        return Ok(());
    }
    if target.function_version == LATEST {
        return Err(LambdaError::InvalidParameterValue(
            "$LATEST is not supported for an alias pointing to more than 1 version".into(),
        ));
    }
    if w.contains_key(&target.function_version) {
        let v = &target.function_version;
        return Err(LambdaError::InvalidParameterValue(format!(
            "Invalid function version {v}. Function version {v} is already included in routing \
             configuration."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(weights: &[(&str, f64)]) -> Alias {
        Alias {
            account: AccountId::try_from("123456789012".to_owned()).unwrap(),
            function_name: "f".into(),
            name: "live".into(),
            target: AliasTarget {
                function_version: "1".into(),
                additional_weights: weights.iter().map(|(k, w)| ((*k).into(), *w)).collect(),
            },
            description: String::new(),
            revision_id: "r".into(),
            previous: None,
        }
    }

    #[test]
    fn a_weight_takes_its_share_of_the_unit_interval() {
        let a = alias(&[("2", 0.1)]);
        assert_eq!(a.pick(0.05), "2");
        assert_eq!(a.pick(0.1), "1");
        assert_eq!(a.pick(0.99), "1");
        assert_eq!(alias(&[]).pick(0.0), "1");
        assert_eq!(alias(&[("2", 1.0)]).pick(0.999), "2");
    }

    #[test]
    fn routing_rules_are_lambdas() {
        let mut t = alias(&[("2", 0.5), ("3", 0.1)]).target;
        let e = check_routing(&t).unwrap_err();
        assert_eq!(e.type_name(), "InvalidParameterValueException");
        t.additional_weights.remove("3");
        assert!(check_routing(&t).is_ok());
        t.function_version = LATEST.into();
        assert!(check_routing(&t).unwrap_err().message().contains("$LATEST"));
        t.function_version = "2".into();
        assert!(check_routing(&t).is_err());
    }

    #[test]
    fn model_checks_report_each_bad_member() {
        let mut v = Violations::new();
        AliasInput {
            name: "123".into(),
            function_version: Some("latest".into()),
            description: None,
            additional_weights: Some(BTreeMap::from([("2".into(), 1.5)])),
        }
        .check(&mut v);
        let msg = v.into_result().unwrap_err().message().to_owned();
        assert!(msg.starts_with("3 validation errors detected"), "{msg}");
        assert!(msg.contains("less than or equal to 1.0"), "{msg}");
    }
}
