//! Lambda's event filtering (`FilterCriteria`): the filter-pattern language, parsed once from
//! each `Filters[].Pattern` and matched against a record's JSON, with no I/O.
//!
//! A pattern is a JSON object whose keys name fields of the record (nested objects for nested
//! fields) and whose leaves are arrays of matchers; the fields of an object are ANDed, the
//! matchers of a leaf are ORed, `$or` holds alternative patterns, and a record passes a
//! [`FilterCriteria`] when any of its filters matches. The matchers are Lambda's: a literal
//! (string, number, `null`, boolean: equals), `prefix`, `suffix`, `equals-ignore-case`,
//! `anything-but` (a value, a list, or `{prefix|suffix|equals-ignore-case}`), `numeric` (one
//! comparison or a range: `[">", 0, "<=", 5]`) and `exists`. A leaf over an array in the
//! record matches when any element does.
//!
//! - [`parse`] (this file): the pattern's grammar and Lambda's refusal ("Invalid filter
//!   pattern definition.").
//! - `matching`: the evaluation over `serde_json::Value`.

mod matching;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

/// The most filters one mapping's `FilterCriteria` may hold (Lambda's default quota).
pub const MAX_FILTERS: usize = 5;

/// The longest pattern Lambda takes, in characters.
pub const MAX_PATTERN_CHARS: usize = 4096;

/// What Lambda answers (an `InvalidParameterValueException`) for a pattern it cannot read.
pub const INVALID_PATTERN: &str = "Invalid filter pattern definition.";

/// A pattern Lambda would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid filter pattern definition.")]
pub struct InvalidPattern;

/// A numeric comparison of a `numeric` matcher.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

/// One matcher of a leaf.
#[derive(Debug, Clone, PartialEq)]
pub enum Matcher {
    /// A literal: a string, a number (compared as a number), `null` or a boolean.
    Equals(Value),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(String),
    /// None of these literals.
    AnythingBut(Vec<Value>),
    AnythingButPrefix(String),
    AnythingButSuffix(String),
    AnythingButIgnoreCase(Vec<String>),
    /// Every comparison holds.
    Numeric(Vec<(Cmp, f64)>),
    /// The field is there (`true`) or is not (`false`).
    Exists(bool),
}

/// A parsed pattern: the fields it constrains, and alternatives (`$or`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pattern {
    /// Field name → what its value must be (ANDed).
    pub fields: Vec<(String, Node)>,
    /// Alternative patterns, one of which must match as well (`$or`).
    pub any_of: Vec<Vec<Pattern>>,
}

/// What a field of a pattern asks of the record's field.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A nested object: its fields in turn.
    Object(Pattern),
    /// A leaf: any of these matchers.
    Leaf(Vec<Matcher>),
}

/// A mapping's filters: a record passes when any matches (or there are none).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FilterCriteria {
    pub patterns: Vec<Pattern>,
}

impl FilterCriteria {
    /// Parses every pattern; the first unreadable one refuses them all.
    pub fn parse<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Self, InvalidPattern> {
        Ok(Self {
            patterns: patterns.into_iter().map(parse).collect::<Result<_, _>>()?,
        })
    }

    /// Whether `record` passes: no filter, or any filter that matches.
    pub fn accepts(&self, record: &Value) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| p.matches(record))
    }
}

/// Parses one `Filters[].Pattern`.
pub fn parse(text: &str) -> Result<Pattern, InvalidPattern> {
    if text.chars().count() > MAX_PATTERN_CHARS {
        return Err(InvalidPattern);
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) if !o.is_empty() => pattern(&o),
        _ => Err(InvalidPattern),
    }
}

fn pattern(o: &Map<String, Value>) -> Result<Pattern, InvalidPattern> {
    let mut p = Pattern::default();
    for (key, value) in o {
        if key == "$or" {
            let Value::Array(alts) = value else {
                return Err(InvalidPattern);
            };
            if alts.len() < 2 {
                return Err(InvalidPattern);
            }
            let alts = alts
                .iter()
                .map(|a| match a {
                    Value::Object(o) if !o.is_empty() => pattern(o),
                    _ => Err(InvalidPattern),
                })
                .collect::<Result<Vec<_>, _>>()?;
            p.any_of.push(alts);
            continue;
        }
        let node = match value {
            Value::Object(o) if !o.is_empty() => Node::Object(pattern(o)?),
            Value::Array(items) if !items.is_empty() => {
                Node::Leaf(items.iter().map(matcher).collect::<Result<_, _>>()?)
            }
            _ => return Err(InvalidPattern),
        };
        p.fields.push((key.clone(), node));
    }
    Ok(p)
}

fn string(v: &Value) -> Result<String, InvalidPattern> {
    v.as_str().map(str::to_owned).ok_or(InvalidPattern)
}

fn matcher(v: &Value) -> Result<Matcher, InvalidPattern> {
    let o = match v {
        Value::Object(o) => o,
        Value::Array(_) => return Err(InvalidPattern),
        literal => return Ok(Matcher::Equals(literal.clone())),
    };
    let mut entries = o.iter();
    let (Some((op, arg)), None) = (entries.next(), entries.next()) else {
        return Err(InvalidPattern);
    };
    Ok(match op.as_str() {
        "prefix" => Matcher::Prefix(string(arg)?),
        "suffix" => Matcher::Suffix(string(arg)?),
        "equals-ignore-case" => Matcher::EqualsIgnoreCase(string(arg)?),
        "exists" => Matcher::Exists(arg.as_bool().ok_or(InvalidPattern)?),
        "numeric" => numeric(arg)?,
        "anything-but" => anything_but(arg)?,
        _ => return Err(InvalidPattern),
    })
}

fn anything_but(arg: &Value) -> Result<Matcher, InvalidPattern> {
    let literal = |v: &Value| match v {
        Value::String(_) | Value::Number(_) => Ok(v.clone()),
        _ => Err(InvalidPattern),
    };
    Ok(match arg {
        Value::Array(items) if !items.is_empty() => {
            Matcher::AnythingBut(items.iter().map(literal).collect::<Result<_, _>>()?)
        }
        Value::Object(o) if o.len() == 1 => match o.iter().next() {
            Some((k, v)) if k == "prefix" => Matcher::AnythingButPrefix(string(v)?),
            Some((k, v)) if k == "suffix" => Matcher::AnythingButSuffix(string(v)?),
            Some((k, v)) if k == "equals-ignore-case" => match v {
                Value::Array(items) if !items.is_empty() => Matcher::AnythingButIgnoreCase(
                    items.iter().map(string).collect::<Result<_, _>>()?,
                ),
                other => Matcher::AnythingButIgnoreCase(vec![string(other)?]),
            },
            _ => return Err(InvalidPattern),
        },
        other => Matcher::AnythingBut(vec![literal(other)?]),
    })
}

fn numeric(arg: &Value) -> Result<Matcher, InvalidPattern> {
    let Value::Array(items) = arg else {
        return Err(InvalidPattern);
    };
    if items.is_empty() || !items.len().is_multiple_of(2) || items.len() > 4 {
        return Err(InvalidPattern);
    }
    let mut cmps = Vec::new();
    for pair in items.chunks(2) {
        let op = match pair[0].as_str() {
            Some("=") => Cmp::Eq,
            Some("<") => Cmp::Lt,
            Some("<=") => Cmp::Le,
            Some(">") => Cmp::Gt,
            Some(">=") => Cmp::Ge,
            _ => return Err(InvalidPattern),
        };
        let n = pair[1].as_f64().ok_or(InvalidPattern)?;
        cmps.push((op, n));
    }
    // A range is one lower bound and one upper bound; `=` stands alone.
    if cmps.len() == 2 {
        let lower = |c: Cmp| matches!(c, Cmp::Gt | Cmp::Ge);
        let upper = |c: Cmp| matches!(c, Cmp::Lt | Cmp::Le);
        let (a, b) = (cmps[0].0, cmps[1].0);
        if !((lower(a) && upper(b)) || (upper(a) && lower(b))) {
            return Err(InvalidPattern);
        }
    }
    Ok(Matcher::Numeric(cmps))
}
