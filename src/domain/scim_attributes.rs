//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9) on any
//! served resource (its `serde_json::Value`): attributes `returned: always`
//! stay, everything else follows the lists. Attributes `returned: never`
//! (e.g. `password`) are never in a served resource to begin with. Pure.

use super::scim_filter::ResourceSchema;
use serde_json::{Map, Value};

/// One name of an `attributes` list: a whole extension, an attribute, or a sub-attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AttrRef {
    schema: Option<&'static str>,
    /// None: the whole extension schema.
    attr: Option<String>,
    sub: Option<String>,
}

/// The projection a request asks for; the default returns every attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    include: Vec<AttrRef>,
    exclude: Vec<AttrRef>,
}

/// Most names a list may carry: a longer list is cut (names beyond it are not honoured).
const MAX_NAMES: usize = 100;

fn parse_list(text: Option<&str>, schema: &ResourceSchema) -> Vec<AttrRef> {
    let Some(text) = text else { return Vec::new() };
    text.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .take(MAX_NAMES)
        // An unknown schema names nothing keyward serves.
        .filter_map(|n| {
            let (schema, rest) = schema.split_urn(n)?;
            if rest.is_empty() {
                return schema.map(|s| AttrRef { schema: Some(s), attr: None, sub: None });
            }
            let (attr, sub) = match rest.split_once('.') {
                Some((a, s)) => (a, Some(s.to_string())),
                None => (rest, None),
            };
            Some(AttrRef { schema, attr: Some(attr.to_string()), sub })
        })
        .collect()
}

impl Projection {
    /// From the two query parameters; `attributes` wins when both are given.
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>, schema: &ResourceSchema) -> Projection {
        let include = parse_list(attributes, schema);
        let exclude = if include.is_empty() { parse_list(excluded, schema) } else { Vec::new() };
        Projection { include, exclude }
    }

    /// Whether an answer keeps the core attribute `name` (at least in part): a
    /// read that leaves it out need not load it.
    pub fn returns(&self, name: &str, schema: &ResourceSchema) -> bool {
        let names = |r: &AttrRef| r.schema.is_none() && r.attr.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(name));
        if is_always(name, schema) {
            true
        } else if !self.include.is_empty() {
            self.include.iter().any(names)
        } else {
            !self.exclude.iter().any(|r| names(r) && r.sub.is_none())
        }
    }

    /// The resource as the request asked to see it.
    pub fn apply(&self, resource: Value, schema: &ResourceSchema) -> Value {
        let Value::Object(obj) = resource else { return resource };
        let out = if !self.include.is_empty() {
            self.keep(obj, schema)
        } else if !self.exclude.is_empty() {
            self.drop(obj, schema)
        } else {
            obj
        };
        Value::Object(out)
    }

    fn keep(&self, obj: Map<String, Value>, schema: &ResourceSchema) -> Map<String, Value> {
        let mut out = Map::new();
        for (k, v) in obj {
            if is_always(&k, schema) {
                out.insert(k, v);
                continue;
            }
            match extension_of(&k, schema) {
                Some(ext) => {
                    let refs: Vec<&AttrRef> = self.include.iter().filter(|r| r.schema == Some(ext)).collect();
                    if refs.iter().any(|r| r.attr.is_none()) {
                        out.insert(k, v);
                    } else if let Value::Object(inner) = v {
                        let kept = keep_attrs(inner, &refs);
                        if !kept.is_empty() {
                            out.insert(k, Value::Object(kept));
                        }
                    }
                }
                None => {
                    let refs: Vec<&AttrRef> = self.include.iter().filter(|r| r.schema.is_none()).collect();
                    let mut one = Map::new();
                    one.insert(k, v);
                    out.extend(keep_attrs(one, &refs));
                }
            }
        }
        out
    }

    fn drop(&self, mut obj: Map<String, Value>, schema: &ResourceSchema) -> Map<String, Value> {
        for r in &self.exclude {
            let target = match r.schema {
                Some(ext) => {
                    let Some(key) = key_ci(&obj, ext) else { continue };
                    let Some(attr) = &r.attr else {
                        obj.remove(&key);
                        continue;
                    };
                    let Some(Value::Object(inner)) = obj.get_mut(&key) else { continue };
                    drop_attr(inner, attr, r.sub.as_deref());
                    if inner.is_empty() {
                        obj.remove(&key);
                    }
                    continue;
                }
                None => &mut obj,
            };
            let Some(attr) = &r.attr else { continue };
            if r.sub.is_none() && is_always(attr, schema) {
                continue;
            }
            drop_attr(target, attr, r.sub.as_deref());
        }
        obj
    }
}

fn key_ci(obj: &Map<String, Value>, name: &str) -> Option<String> {
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

fn is_always(key: &str, schema: &ResourceSchema) -> bool {
    schema.always.iter().any(|a| a.eq_ignore_ascii_case(key))
}

fn extension_of(key: &str, schema: &ResourceSchema) -> Option<&'static str> {
    schema.extensions.iter().copied().find(|e| e.eq_ignore_ascii_case(key))
}

/// The attributes of `obj` that `refs` name, sub-attributes narrowed.
fn keep_attrs(obj: Map<String, Value>, refs: &[&AttrRef]) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in obj {
        let named: Vec<&AttrRef> =
            refs.iter().copied().filter(|r| r.attr.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(&k))).collect();
        if named.is_empty() {
            continue;
        }
        if named.iter().any(|r| r.sub.is_none()) {
            out.insert(k, v);
            continue;
        }
        let subs: Vec<&str> = named.iter().filter_map(|r| r.sub.as_deref()).collect();
        let narrow = |o: Map<String, Value>| -> Map<String, Value> {
            o.into_iter().filter(|(sk, _)| subs.iter().any(|s| s.eq_ignore_ascii_case(sk))).collect()
        };
        let kept = match v {
            Value::Object(o) => Some(Value::Object(narrow(o))).filter(|v| v.as_object().is_some_and(|o| !o.is_empty())),
            Value::Array(items) => {
                let items: Vec<Value> = items
                    .into_iter()
                    .filter_map(|e| match e {
                        Value::Object(o) => Some(narrow(o)).filter(|o| !o.is_empty()).map(Value::Object),
                        _ => None,
                    })
                    .collect();
                Some(Value::Array(items)).filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
            }
            _ => None,
        };
        if let Some(v) = kept {
            out.insert(k, v);
        }
    }
    out
}

fn drop_attr(obj: &mut Map<String, Value>, attr: &str, sub: Option<&str>) {
    let Some(key) = key_ci(obj, attr) else { return };
    let Some(sub) = sub else {
        obj.remove(&key);
        return;
    };
    let strip = |o: &mut Map<String, Value>| {
        if let Some(sk) = key_ci(o, sub) {
            o.remove(&sk);
        }
    };
    let now_empty = match obj.get_mut(&key) {
        Some(Value::Object(o)) => {
            strip(o);
            o.is_empty()
        }
        Some(Value::Array(items)) => {
            items.iter_mut().filter_map(Value::as_object_mut).for_each(strip);
            items.retain(|e| e.as_object().is_none_or(|o| !o.is_empty()));
            items.is_empty()
        }
        _ => false,
    };
    if now_empty {
        obj.remove(&key);
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
        filterable: &[],
        case_exact: &[],
        always: &["schemas", "id"],
    };

    fn doc() -> Value {
        json!({
            "schemas": ["urn:example:core", EXT], "id": "u1", "userName": "ann",
            "name": {"givenName": "Ann", "familyName": "Lee"},
            "emails": [{"value": "a@x.example", "type": "work"}],
            "meta": {"resourceType": "User"},
            EXT: {"dept": "Legal", "costCenter": "7"},
        })
    }

    fn project(a: Option<&str>, x: Option<&str>) -> Value {
        Projection::parse(a, x, &SCHEMA).apply(doc(), &SCHEMA)
    }

    #[test]
    fn attributes_keep_what_they_name_and_what_is_always_returned() {
        assert_eq!(
            project(Some("userName"), None),
            json!({"schemas": ["urn:example:core", EXT], "id": "u1", "userName": "ann"})
        );
        let v = project(Some("NAME.familyName, emails.value ,urn:example:ext:dept"), None);
        assert_eq!(v["name"], json!({"familyName": "Lee"}));
        assert_eq!(v["emails"], json!([{"value": "a@x.example"}]));
        assert_eq!(v[EXT], json!({"dept": "Legal"}));
        assert!(v.get("userName").is_none() && v.get("meta").is_none());
        assert_eq!(project(Some("urn:example:core:userName,urn:example:ext"), None)[EXT], doc()[EXT]);
        assert_eq!(project(Some("id"), None), json!({"schemas": ["urn:example:core", EXT], "id": "u1"}));
    }

    #[test]
    fn excluded_attributes_drop_what_they_name_but_never_id() {
        let v = project(None, Some("name.givenName,emails,id,schemas,urn:example:ext:dept,urn:example:ext:costCenter"));
        assert_eq!(v["name"], json!({"familyName": "Lee"}));
        assert!(v.get("emails").is_none() && v.get(EXT).is_none());
        assert_eq!(v["id"], json!("u1"));
        assert!(v.get("schemas").is_some());
        assert_eq!(project(None, Some("urn:example:ext")).get(EXT), None);
        assert_eq!(project(Some("userName"), Some("userName"))["userName"], json!("ann"), "attributes wins");
        assert_eq!(project(None, None), doc());
        assert_eq!(project(Some("urn:unknown:x"), None), doc(), "unknown names name nothing");
    }

    #[test]
    fn returns_says_whether_an_attribute_survives() {
        let r = |a: Option<&str>, x: Option<&str>, name: &str| Projection::parse(a, x, &SCHEMA).returns(name, &SCHEMA);
        assert!(r(None, None, "emails"));
        assert!(!r(None, Some("EMAILS"), "emails"));
        assert!(r(None, Some("emails.type"), "emails"), "a sub-attribute dropped leaves the rest");
        assert!(r(Some("emails.value"), None, "emails"));
        assert!(!r(Some("userName"), None, "emails"));
        assert!(r(Some("userName"), None, "id"), "always returned");
    }
}
