//! `labelSelector` and `fieldSelector` as the API server parses and applies them.
//!
//! Label selectors: comma-separated requirements `k`, `!k`, `k=v`, `k==v`, `k!=v`,
//! `k in (a,b)`, `k notin (a,b)`, `k>n`, `k<n`; `!=` and `notin` match objects without the
//! label. Field selectors: `f=v`, `f==v`, `f!=v` over the fields each resource supports (others
//! are refused with 400, as the real server refuses them).

use serde_json::Value;

use super::store::Resource;

#[derive(Debug, PartialEq)]
enum Op {
    Exists,
    NotExists,
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Greater(i64),
    Less(i64),
}

/// A parsed label or field selector: every requirement must hold.
#[derive(Debug, Default)]
pub struct Selector {
    requirements: Vec<(String, Op)>,
}

/// Splits on commas outside parentheses.
fn terms(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(text[start..].trim());
    out.into_iter().filter(|t| !t.is_empty()).collect()
}

fn set(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesized set, got {text:?}"))?;
    Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

fn valid_key(key: &str) -> Result<String, String> {
    if key.is_empty() || key.contains(char::is_whitespace) {
        Err(format!("invalid label key {key:?}"))
    } else {
        Ok(key.to_owned())
    }
}

impl Selector {
    pub fn labels(text: &str) -> Result<Selector, String> {
        let mut requirements = Vec::new();
        for term in terms(text) {
            let requirement = if let Some(key) = term.strip_prefix('!') {
                (valid_key(key.trim())?, Op::NotExists)
            } else if let Some((key, rest)) = term.split_once(char::is_whitespace) {
                let rest = rest.trim_start();
                if let Some(values) = rest.strip_prefix("notin") {
                    (valid_key(key)?, Op::NotIn(set(values)?))
                } else if let Some(values) = rest.strip_prefix("in") {
                    (valid_key(key)?, Op::In(set(values)?))
                } else {
                    return Err(format!("unable to parse requirement {term:?}"));
                }
            } else if let Some((key, value)) = term.split_once("!=") {
                (valid_key(key)?, Op::NotEquals(value.to_owned()))
            } else if let Some((key, value)) = term.split_once("==") {
                (valid_key(key)?, Op::Equals(value.to_owned()))
            } else if let Some((key, value)) = term.split_once('=') {
                (valid_key(key)?, Op::Equals(value.to_owned()))
            } else if let Some((key, value)) = term.split_once('>') {
                let n = value
                    .parse()
                    .map_err(|_| format!("{term:?}: not an integer"))?;
                (valid_key(key)?, Op::Greater(n))
            } else if let Some((key, value)) = term.split_once('<') {
                let n = value
                    .parse()
                    .map_err(|_| format!("{term:?}: not an integer"))?;
                (valid_key(key)?, Op::Less(n))
            } else {
                (valid_key(term)?, Op::Exists)
            };
            requirements.push(requirement);
        }
        Ok(Selector { requirements })
    }

    pub fn fields(text: &str, resource: Resource) -> Result<Selector, String> {
        let mut requirements = Vec::new();
        for term in terms(text) {
            let (field, op) = if let Some((f, v)) = term.split_once("!=") {
                (f, Op::NotEquals(v.to_owned()))
            } else if let Some((f, v)) = term.split_once("==") {
                (f, Op::Equals(v.to_owned()))
            } else if let Some((f, v)) = term.split_once('=') {
                (f, Op::Equals(v.to_owned()))
            } else {
                return Err(format!("invalid field selector: {term:?}"));
            };
            let field = field.trim();
            if !supported_fields(resource).contains(&field) {
                return Err(format!(
                    "field label not supported: {field} (for {})",
                    resource.plural()
                ));
            }
            requirements.push((field.to_owned(), op));
        }
        Ok(Selector { requirements })
    }

    /// Whether the object's labels satisfy every requirement.
    pub fn matches_labels(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.requirements.iter().all(|(key, op)| {
            let value = labels.get(key).and_then(Value::as_str);
            matches(op, value)
        })
    }

    /// Whether the object's fields satisfy every requirement.
    pub fn matches_fields(&self, object: &Value) -> bool {
        self.requirements.iter().all(|(field, op)| {
            let value = field_value(object, field);
            // A field is always present (empty when unset), unlike a label.
            matches(op, Some(value.as_str()))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

fn matches(op: &Op, value: Option<&str>) -> bool {
    match op {
        Op::Exists => value.is_some(),
        Op::NotExists => value.is_none(),
        Op::Equals(v) => value == Some(v.as_str()),
        Op::NotEquals(v) => value != Some(v.as_str()),
        Op::In(vs) => value.is_some_and(|x| vs.iter().any(|v| v == x)),
        Op::NotIn(vs) => value.is_none_or(|x| vs.iter().all(|v| v != x)),
        Op::Greater(n) => value
            .and_then(|x| x.parse::<i64>().ok())
            .is_some_and(|x| x > *n),
        Op::Less(n) => value
            .and_then(|x| x.parse::<i64>().ok())
            .is_some_and(|x| x < *n),
    }
}

/// The fields the API server accepts in a field selector, per resource.
fn supported_fields(resource: Resource) -> &'static [&'static str] {
    match resource {
        Resource::Pods => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        Resource::Nodes => &["metadata.name", "spec.unschedulable"],
        Resource::Services => &[
            "metadata.name",
            "metadata.namespace",
            "spec.clusterIP",
            "spec.type",
        ],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

/// A field's value as the API server's field set renders it ("" when unset).
fn field_value(object: &Value, field: &str) -> String {
    let value = field
        .split('.')
        .fold(object, |v, part| v.get(part).unwrap_or(&Value::Null));
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        // spec.hostNetwork and spec.unschedulable read "false" when unset.
        Value::Null if matches!(field, "spec.hostNetwork" | "spec.unschedulable") => {
            "false".to_owned()
        }
        _ => String::new(),
    }
}
