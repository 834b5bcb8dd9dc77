//! [`Attrs`]: the format-specific facts of a region (GUID, type, UI name, PE details, ...).
//!
//! A small map kept as one vector sorted by key, with keys that are usually `&'static str` literals of the
//! parsers (no allocation). A `BTreeMap<String, Value>` costs a 600-byte node and one allocation per key
//! for a node with a handful of attributes; a volume of many small files has one such node per file
//! (issue 15: region trees 150-350x the input). Serialized as a JSON object with keys in sorted order,
//! exactly as the `BTreeMap` it replaces.

use std::borrow::Cow;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// An attribute name: a parser's literal, or an owned string (read back from a manifest).
pub type AttrKey = Cow<'static, str>;

/// Attributes of a node, sorted by key, keys unique.
#[derive(Clone, Default, PartialEq)]
pub struct Attrs(Vec<(AttrKey, Value)>);

static NULL: Value = Value::Null;

impl Attrs {
    pub const fn new() -> Attrs {
        Attrs(Vec::new())
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_ref().cmp(key))
    }

    /// Sets `key` to `value`; returns the previous value.
    pub fn insert(&mut self, key: AttrKey, value: Value) -> Option<Value> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    /// Sets `key` to `value` unless it is already set.
    pub fn insert_if_absent(&mut self, key: AttrKey, value: impl FnOnce() -> Value) {
        if let Err(i) = self.find(&key) {
            self.0.insert(i, (key, value()));
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.find(key).ok().map(|i| &mut self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Drops spare capacity (the tree keeps its nodes for the whole run).
    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }
}

/// `attrs["key"]`: the value, or JSON `null` when the key is absent.
impl std::ops::Index<&str> for Attrs {
    type Output = Value;
    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }
}

impl<'a> IntoIterator for &'a Attrs {
    type Item = (&'a str, &'a Value);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (AttrKey, Value)>,
        fn(&'a (AttrKey, Value)) -> (&'a str, &'a Value),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

impl std::fmt::Debug for Attrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Attrs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k.as_ref(), v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Attrs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Attrs, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Attrs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of attributes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attrs, A::Error> {
                let mut a = Attrs::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    a.insert(Cow::Owned(k), v);
                }
                a.shrink_to_fit();
                Ok(a)
            }
        }
        d.deserialize_map(V)
    }
}

impl FromIterator<(AttrKey, Value)> for Attrs {
    fn from_iter<I: IntoIterator<Item = (AttrKey, Value)>>(it: I) -> Attrs {
        let mut a = Attrs::new();
        for (k, v) in it {
            a.insert(k, v);
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_unique_and_serialized_like_a_btreemap() {
        let mut a = Attrs::new();
        assert_eq!(a.insert("type".into(), "pad".into()), None);
        a.insert("guid".into(), "X".into());
        a.insert(String::from("attributes").into(), 3.into());
        assert_eq!(a.insert("type".into(), "driver".into()), Some("pad".into()));
        assert_eq!(a.len(), 3);
        assert_eq!(a["type"], "driver");
        assert_eq!(a["missing"], Value::Null);
        let keys: Vec<&str> = a.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["attributes", "guid", "type"]);
        let json = serde_json::to_string(&a).unwrap();
        let reference: std::collections::BTreeMap<String, Value> =
            serde_json::from_str(&json).unwrap();
        assert_eq!(json, serde_json::to_string(&reference).unwrap());
        let back: Attrs = serde_json::from_str(r#"{"z":1,"a":2,"z":3}"#).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), r#"{"a":2,"z":3}"#);
        assert_eq!(a.remove("guid"), Some("X".into()));
        assert!(!a.contains_key("guid"));
        a.insert_if_absent("type".into(), || "ignored".into());
        assert_eq!(a["type"], "driver");
    }
}
