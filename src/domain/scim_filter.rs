//! SCIM filters (RFC 7644 §3.4.2.2) for any resource type: parsed into a
//! tree of attribute path + operator + value, checked against the attributes
//! the resource's schema allows, and matched against the resource as served
//! (its `serde_json::Value`). Pure: no HTTP, no storage.

use super::scim::{ScimError, ScimType};
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// Longest filter parsed, and deepest nesting of parentheses and brackets:
/// a hostile filter costs bounded work and stack.
const MAX_FILTER_LEN: usize = 4096;
const MAX_DEPTH: usize = 16;

/// What a filter needs to know of a resource type.
#[derive(Debug, Clone, Copy)]
pub struct ResourceSchema {
    /// The core schema URN: a path qualified with it means the bare path.
    pub core: &'static str,
    /// Extension schema URNs: their attributes live under the URN key.
    pub extensions: &'static [&'static str],
    /// Attribute keys (see [`AttrPath::key`]) a filter may name.
    pub filterable: &'static [&'static str],
    /// Attribute keys compared case-sensitively (`caseExact`, RFC 7643 §2.4).
    pub case_exact: &'static [&'static str],
    /// Top-level attributes returned whatever `attributes` asks (`returned: always`).
    pub always: &'static [&'static str],
}

impl ResourceSchema {
    /// Splits a possibly URN-qualified name: `(Some(extension), rest)`,
    /// `(None, rest)` for the core schema. `rest` is empty when the text names
    /// the schema itself. None: an unknown URN.
    pub fn split_urn<'a>(&self, text: &'a str) -> Option<(Option<&'static str>, &'a str)> {
        if !text.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
            return Some((None, text));
        }
        let schemas = std::iter::once((None, self.core)).chain(self.extensions.iter().map(|e| (Some(*e), *e)));
        for (ext, urn) in schemas {
            let Some(head) = text.get(..urn.len()) else { continue };
            if !head.eq_ignore_ascii_case(urn) {
                continue;
            }
            match &text[urn.len()..] {
                "" => return Some((ext, "")),
                rest if rest.starts_with(':') && rest.len() > 1 => return Some((ext, &rest[1..])),
                _ => {}
            }
        }
        None
    }

    fn is_case_exact(&self, key: &str) -> bool {
        self.case_exact.contains(&key)
    }
}

/// `attr`, `attr.sub`, `attr[valFilter]`, `attr[valFilter].sub`, optionally qualified by a schema URN.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    /// The extension schema the attribute belongs to; None for the core schema.
    pub schema: Option<&'static str>,
    pub attr: String,
    /// Which elements of a multi-valued attribute count (relative paths).
    pub element_filter: Option<Box<Filter>>,
    pub sub: Option<String>,
}

impl AttrPath {
    /// The lower-cased key the schema lists: `emails.value`, `urn:…:user:department`.
    /// A multi-valued complex attribute named without a sub-attribute stands for its `value`.
    pub fn key(&self) -> String {
        let mut k = String::new();
        if let Some(s) = self.schema {
            k.push_str(s);
            k.push(':');
        }
        k.push_str(&self.attr);
        if let Some(sub) = &self.sub {
            k.push('.');
            k.push_str(sub);
        }
        k.to_ascii_lowercase()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<CompareOp> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }
}

/// What a filter asks of one attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// `pr`: has a non-empty value.
    Present,
    Compare(CompareOp, Value),
    /// A bare `attr[valFilter]`: some element matches.
    Any,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Attr(AttrPath, Test),
}

const HELP: &str = "filters compare attributes with eq, ne, co, sw, ew, gt, ge, lt, le or pr, \
     joined with and, or, not and parentheses";

fn invalid(detail: impl Into<String>) -> ScimError {
    ScimError { scim_type: ScimType::InvalidFilter, detail: detail.into() }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$'
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    depth: usize,
    schema: &'a ResourceSchema,
    /// Inside `attr[…]`: paths are relative to an element of `attr`.
    parent: Option<(Option<&'static str>, String)>,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.s.len() - trimmed.len();
    }

    fn peek_char(&mut self) -> Option<char> {
        self.skip_ws();
        self.rest().chars().next()
    }

    /// A bare word (keyword, operator, attribute path up to `[`, literal).
    fn word(&mut self) -> &'a str {
        self.skip_ws();
        let start = self.pos;
        let len = self
            .rest()
            .find(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']'))
            .unwrap_or(self.rest().len());
        self.pos += len;
        &self.s[start..start + len]
    }

    fn peek_word(&mut self) -> &'a str {
        let at = self.pos;
        let w = self.word();
        self.pos = at;
        w
    }

    fn enter(&mut self) -> Result<(), ScimError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(invalid("the filter nests too deeply"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.and()?;
        while self.peek_word().eq_ignore_ascii_case("or") {
            self.word();
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.unary()?;
        while self.peek_word().eq_ignore_ascii_case("and") {
            self.word();
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn group(&mut self) -> Result<Filter, ScimError> {
        // At '('.
        self.enter()?;
        self.pos += 1;
        let inner = self.or()?;
        if self.peek_char() != Some(')') {
            return Err(invalid("unbalanced parentheses in the filter"));
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(inner)
    }

    fn unary(&mut self) -> Result<Filter, ScimError> {
        match self.peek_char() {
            None => return Err(invalid(format!("the filter is incomplete; {HELP}"))),
            Some('(') => return self.group(),
            _ => {}
        }
        let at = self.pos;
        if self.word().eq_ignore_ascii_case("not") && self.peek_char() == Some('(') {
            return Ok(Filter::Not(Box::new(self.group()?)));
        }
        self.pos = at;
        self.attr_expr()
    }

    fn attr_expr(&mut self) -> Result<Filter, ScimError> {
        let path = self.attr_path()?;
        let next = self.peek_word();
        if path.element_filter.is_some()
            && path.sub.is_none()
            && (next.is_empty() || next.eq_ignore_ascii_case("and") || next.eq_ignore_ascii_case("or"))
        {
            return Ok(Filter::Attr(path, Test::Any));
        }
        let op = self.word();
        if op.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Attr(path, Test::Present));
        }
        let op = CompareOp::parse(op).ok_or_else(|| {
            let shown = if op.is_empty() { "nothing" } else { op };
            invalid(format!("operator {shown} is not supported; {HELP}"))
        })?;
        let value = self.literal()?;
        Ok(Filter::Attr(path, Test::Compare(op, value)))
    }

    fn attr_path(&mut self) -> Result<AttrPath, ScimError> {
        let text = self.word();
        if text.is_empty() {
            return Err(invalid(format!("expected an attribute name; {HELP}")));
        }
        let unknown = || invalid(format!("filtering on {text} is not supported; {HELP}"));
        let (schema, name) =
            if self.parent.is_some() { (None, text) } else { self.schema.split_urn(text).ok_or_else(unknown)? };
        let (attr, mut sub) = match name.split_once('.') {
            Some((a, s)) => (a, Some(s.to_string())),
            None => (name, None),
        };
        let valid = |s: &str| !s.is_empty() && s.chars().all(is_name_char);
        if !valid(attr) || sub.as_deref().is_some_and(|s| !valid(s)) {
            return Err(invalid(format!("{text:?} is not an attribute path")));
        }
        let mut element_filter = None;
        if self.rest().starts_with('[') {
            if self.parent.is_some() || sub.is_some() {
                return Err(invalid("a value filter cannot nest or follow a sub-attribute"));
            }
            self.enter()?;
            self.pos += 1;
            let mut inner = Parser {
                s: self.s,
                pos: self.pos,
                depth: self.depth,
                schema: self.schema,
                parent: Some((schema, attr.to_string())),
            };
            let f = inner.or()?;
            self.pos = inner.pos;
            if self.peek_char() != Some(']') {
                return Err(invalid("unbalanced brackets in the filter"));
            }
            self.pos += 1;
            self.depth -= 1;
            element_filter = Some(Box::new(f));
            if let Some(s) = self.rest().strip_prefix('.') {
                let len = s.find(|c: char| !is_name_char(c)).unwrap_or(s.len());
                if len == 0 {
                    return Err(invalid(format!("{text:?} is not an attribute path")));
                }
                sub = Some(s[..len].to_string());
                self.pos += 1 + len;
            }
        }
        let path = match &self.parent {
            // `type` inside `emails[…]` is `emails.type`.
            Some((pschema, pattr)) => {
                if sub.is_some() {
                    return Err(invalid(format!("{text:?}: a value filter names sub-attributes only")));
                }
                AttrPath { schema: *pschema, attr: pattr.clone(), element_filter: None, sub: Some(attr.to_string()) }
            }
            None => AttrPath { schema, attr: attr.to_string(), element_filter, sub },
        };
        if !self.schema.filterable.contains(&path.key().as_str()) {
            return Err(unknown());
        }
        Ok(path)
    }

    /// A comparison value: a JSON string, number, true, false or null.
    fn literal(&mut self) -> Result<Value, ScimError> {
        self.skip_ws();
        let rest = self.rest();
        if rest.starts_with('"') {
            let bytes = rest.as_bytes();
            let mut i = 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' => {
                        let text = &rest[..=i];
                        self.pos += i + 1;
                        return serde_json::from_str::<String>(text)
                            .map(Value::String)
                            .map_err(|_| invalid("the quoted value is not a valid string"));
                    }
                    _ => i += 1,
                }
            }
            return Err(invalid("unterminated quoted value"));
        }
        let w = self.word();
        let lower = w.to_ascii_lowercase();
        match lower.as_str() {
            "" => Err(invalid("expected a value after the operator")),
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            "null" => Ok(Value::Null),
            _ => match serde_json::from_str::<serde_json::Number>(w) {
                Ok(n) => Ok(Value::Number(n)),
                Err(_) => Err(invalid(format!("the value {w} must be a quoted string, a number, true, false or null"))),
            },
        }
    }
}

/// Parses a `filter` against the attributes `schema` allows; anything else is `invalidFilter`.
pub fn parse(text: &str, schema: &ResourceSchema) -> Result<Filter, ScimError> {
    if text.len() > MAX_FILTER_LEN {
        return Err(invalid(format!("the filter is longer than {MAX_FILTER_LEN} bytes")));
    }
    let mut p = Parser { s: text, pos: 0, depth: 0, schema, parent: None };
    let f = p.or()?;
    p.skip_ws();
    if p.pos < text.len() {
        return Err(invalid(format!("unexpected {} in the filter; {HELP}", p.rest())));
    }
    Ok(f)
}

impl Filter {
    /// The comparisons every match must satisfy (the top-level `and`s).
    pub fn conjuncts(&self) -> Vec<&Filter> {
        match self {
            Filter::And(a, b) => {
                let mut v = a.conjuncts();
                v.extend(b.conjuncts());
                v
            }
            other => vec![other],
        }
    }

    /// Whether `resource` (as served, before any projection) matches.
    pub fn matches(&self, resource: &Value, schema: &ResourceSchema) -> bool {
        self.eval(resource, schema, false)
    }

    /// `element`: `v` is an element of a multi-valued attribute, matched by a value filter.
    fn eval(&self, v: &Value, schema: &ResourceSchema, element: bool) -> bool {
        match self {
            Filter::And(a, b) => a.eval(v, schema, element) && b.eval(v, schema, element),
            Filter::Or(a, b) => a.eval(v, schema, element) || b.eval(v, schema, element),
            Filter::Not(f) => !f.eval(v, schema, element),
            Filter::Attr(path, test) => attr_matches(v, path, test, schema, element),
        }
    }
}

fn get_ci<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

/// The values `path` names in `resource`.
fn values_at<'v>(resource: &'v Value, path: &AttrPath, schema: &ResourceSchema) -> Vec<&'v Value> {
    let container = match path.schema {
        Some(ext) => resource.as_object().and_then(|o| get_ci(o, ext)),
        None => Some(resource),
    };
    let Some(v) = container.and_then(Value::as_object).and_then(|o| get_ci(o, &path.attr)) else {
        return Vec::new();
    };
    let pick = |elem: &'v Value| -> Option<&'v Value> {
        match (&path.sub, elem) {
            (Some(sub), Value::Object(o)) => get_ci(o, sub),
            (Some(_), _) => None,
            // A complex element compared as a whole is compared by its `value`.
            (None, Value::Object(o)) if path.element_filter.is_none() => get_ci(o, "value"),
            (None, other) => Some(other),
        }
    };
    match v {
        Value::Array(items) => items
            .iter()
            .filter(|e| path.element_filter.as_ref().is_none_or(|f| f.eval(e, schema, true)))
            .filter_map(pick)
            .collect(),
        other => pick(other).into_iter().collect(),
    }
}

fn attr_matches(resource: &Value, path: &AttrPath, test: &Test, schema: &ResourceSchema, element: bool) -> bool {
    // Inside brackets `emails.type` (written `type`) reads the element itself.
    let values = if element {
        match (resource.as_object(), &path.sub) {
            (Some(o), Some(sub)) => get_ci(o, sub).into_iter().collect(),
            _ => Vec::new(),
        }
    } else {
        values_at(resource, path, schema)
    };
    let exact = schema.is_case_exact(&path.key());
    match test {
        Test::Present => values.iter().any(|v| is_present(v)),
        Test::Any => !values.is_empty(),
        Test::Compare(CompareOp::Ne, lit) => !values.iter().any(|v| compare(v, CompareOp::Eq, lit, exact)),
        Test::Compare(CompareOp::Eq, Value::Null) => !values.iter().any(|v| is_present(v)),
        Test::Compare(op, lit) => values.iter().any(|v| compare(v, *op, lit, exact)),
    }
}

fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn compare(v: &Value, op: CompareOp, lit: &Value, exact: bool) -> bool {
    match (v, lit) {
        (Value::String(a), Value::String(b)) => {
            let (a, b) = if exact { (a.clone(), b.clone()) } else { (a.to_lowercase(), b.to_lowercase()) };
            match op {
                CompareOp::Eq => a == b,
                CompareOp::Ne => a != b,
                CompareOp::Co => a.contains(&b),
                CompareOp::Sw => a.starts_with(&b),
                CompareOp::Ew => a.ends_with(&b),
                _ => ordered(op, order_strings(&a, &b)),
            }
        }
        (Value::Bool(a), Value::Bool(b)) => match op {
            CompareOp::Eq => a == b,
            CompareOp::Ne => a != b,
            _ => false,
        },
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => match op {
                CompareOp::Eq => a == b,
                CompareOp::Ne => a != b,
                CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
                _ => a.partial_cmp(&b).is_some_and(|o| ordered(op, o)),
            },
            _ => false,
        },
        _ => false,
    }
}

/// dateTimes compare as instants (`2026-01-02T00:00:00Z` and `…00.000Z` are equal); other strings lexically.
fn order_strings(a: &str, b: &str) -> Ordering {
    match (chrono::DateTime::parse_from_rfc3339(a), chrono::DateTime::parse_from_rfc3339(b)) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

fn ordered(op: CompareOp, o: Ordering) -> bool {
    match op {
        CompareOp::Gt => o == Ordering::Greater,
        CompareOp::Ge => o != Ordering::Less,
        CompareOp::Lt => o == Ordering::Less,
        CompareOp::Le => o != Ordering::Greater,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EXT: &str = "urn:example:ext";
    static SCHEMA: ResourceSchema = ResourceSchema {
        core: "urn:example:core",
        extensions: &[EXT],
        filterable: &[
            "username",
            "externalid",
            "emails",
            "emails.value",
            "emails.type",
            "active",
            "meta.lastmodified",
            "urn:example:ext:dept",
            "age",
        ],
        case_exact: &["externalid"],
        always: &["id"],
    };

    fn doc() -> Value {
        json!({
            "userName": "Ann.Lee", "externalId": "X1", "active": true, "age": 30,
            "emails": [{"value": "ann@home.example", "type": "home"}, {"value": "ann@work.example", "type": "work"}],
            "meta": {"lastModified": "2026-01-02T03:04:05.123Z"},
            EXT: {"dept": "Legal"},
        })
    }

    fn m(f: &str) -> bool {
        parse(f, &SCHEMA).unwrap_or_else(|e| panic!("{f}: {e:?}")).matches(&doc(), &SCHEMA)
    }

    #[test]
    fn operators_and_logic() {
        for yes in [
            r#"userName eq "ann.lee""#,
            r#"USERNAME Sw "ANN""#,
            r#"userName co ".l""#,
            r#"userName ew "lee""#,
            r#"userName ne "bob""#,
            r#"externalId eq "X1""#,
            "externalId pr",
            "active eq true",
            "age gt 29 and age le 30",
            r#"emails[type eq "work"].value eq "ann@work.example""#,
            r#"emails[type eq "work" and value co "@work"]"#,
            r#"emails co "home""#,
            r#"meta.lastModified gt "2026-01-02T03:04:05Z""#,
            r#"meta.lastModified lt "2026-01-03T00:00:00+01:00""#,
            r#"urn:example:ext:dept eq "legal""#,
            r#"urn:example:core:userName eq "Ann.Lee""#,
            r#"not (userName eq "bob") and (externalId eq "nope" or active eq true)"#,
            "emails.type eq \"work\"",
        ] {
            assert!(m(yes), "{yes}");
        }
        for no in [
            r#"externalId eq "x1""#,
            r#"userName eq "bob" or externalId eq "x1""#,
            r#"emails[type eq "home"].value eq "ann@work.example""#,
            "active eq false",
            r#"not (userName pr)"#,
            r#"meta.lastModified gt "2026-01-02T03:04:05.123Z""#,
            r#"userName eq null"#,
        ] {
            assert!(!m(no), "{no}");
        }
    }

    #[test]
    fn unsupported_filters_are_invalid_filter() {
        for bad in [
            "",
            "userName",
            "userName eq",
            r#"displayName eq "a""#,
            r#"userName xx "a""#,
            r#"(userName eq "a""#,
            r#"userName eq "a")"#,
            "userName eq unquoted",
            r#"userName eq "unterminated"#,
            r#"emails[type eq "work".value eq "a""#,
            r#"userName eq "a" and"#,
            r#"userName eq "a" junk"#,
            r#"urn:other:x eq "a""#,
            &"(".repeat(40),
            &format!("userName eq \"{}\"", "a".repeat(5000)),
        ] {
            assert_eq!(parse(bad, &SCHEMA).expect_err(bad).scim_type, ScimType::InvalidFilter, "{bad}");
        }
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let f = parse(r#"userName eq "a" or userName eq "b" and externalId eq "c""#, &SCHEMA).unwrap();
        assert!(matches!(f, Filter::Or(..)));
        assert_eq!(parse(r#"userName eq "a" and externalId eq "b""#, &SCHEMA).unwrap().conjuncts().len(), 2);
    }
}
