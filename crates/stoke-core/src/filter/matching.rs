//! The evaluation of a parsed [`Pattern`] over a record: fields ANDed, a leaf's matchers ORed,
//! a leaf over an array matching when any element does, a missing field matched only by
//! `exists: false`.

use serde_json::Value;

use super::{Cmp, Matcher, Node, Pattern};

impl Pattern {
    /// Whether `record` matches this pattern.
    pub fn matches(&self, record: &Value) -> bool {
        self.matches_field(Some(record))
    }

    fn matches_field(&self, value: Option<&Value>) -> bool {
        // A nested pattern over an array of objects: any element.
        if let Some(Value::Array(items)) = value {
            return items.iter().any(|i| self.matches_field(Some(i)));
        }
        let object = value.and_then(Value::as_object);
        self.fields
            .iter()
            .all(|(key, node)| node.matches(object.and_then(|o| o.get(key))))
            && self
                .any_of
                .iter()
                .all(|alts| alts.iter().any(|p| p.matches_field(value)))
    }
}

impl Node {
    fn matches(&self, value: Option<&Value>) -> bool {
        match self {
            Node::Object(p) => p.matches_field(value),
            Node::Leaf(matchers) => match value {
                None => matchers.contains(&Matcher::Exists(false)),
                Some(Value::Array(items)) => matchers.iter().any(|m| match m {
                    Matcher::Exists(e) => *e != items.is_empty(),
                    _ => items.iter().any(|i| m.matches(i)),
                }),
                Some(v) => matchers.iter().any(|m| m.matches(v)),
            },
        }
    }
}

fn same_literal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl Matcher {
    fn matches(&self, v: &Value) -> bool {
        let text = v.as_str();
        match self {
            Matcher::Equals(lit) => same_literal(lit, v),
            Matcher::Prefix(p) => text.is_some_and(|s| s.starts_with(p.as_str())),
            Matcher::Suffix(p) => text.is_some_and(|s| s.ends_with(p.as_str())),
            Matcher::EqualsIgnoreCase(p) => {
                text.is_some_and(|s| s.to_lowercase() == p.to_lowercase())
            }
            Matcher::AnythingBut(lits) => {
                matches!(v, Value::String(_) | Value::Number(_))
                    && !lits.iter().any(|l| same_literal(l, v))
            }
            Matcher::AnythingButPrefix(p) => text.is_some_and(|s| !s.starts_with(p.as_str())),
            Matcher::AnythingButSuffix(p) => text.is_some_and(|s| !s.ends_with(p.as_str())),
            Matcher::AnythingButIgnoreCase(lits) => text.is_some_and(|s| {
                let s = s.to_lowercase();
                !lits.iter().any(|l| l.to_lowercase() == s)
            }),
            Matcher::Numeric(cmps) => v.as_f64().is_some_and(|n| {
                cmps.iter().all(|(c, x)| match c {
                    Cmp::Eq => n == *x,
                    Cmp::Lt => n < *x,
                    Cmp::Le => n <= *x,
                    Cmp::Gt => n > *x,
                    Cmp::Ge => n >= *x,
                })
            }),
            Matcher::Exists(e) => *e,
        }
    }
}
