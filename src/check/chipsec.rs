//! Import of CHIPSEC's `blockedlist.json` (the format of `tools.uefi.scan_blocked`), so teams keep the
//! lists they already maintain. Semantics as in CHIPSEC: the criteria inside one named rule are AND-ed,
//! the rules of an entry are OR-ed, and an entry whose `exclude` rules match is dropped. `cpuid` criteria
//! only apply to live systems; on images CHIPSEC treats them as matching, and so does fwscan.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::rules::{self, Expr, Rule, RuleError, Scope};
use crate::finding::Severity;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    description: String,
    #[serde(default, rename = "match")]
    matches: BTreeMap<String, Criteria>,
    #[serde(default)]
    exclude: BTreeMap<String, Criteria>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Criteria {
    #[serde(default)]
    name: String,
    #[serde(default)]
    guid: String,
    #[serde(default)]
    regexp: String,
    #[serde(default)]
    md5: String,
    #[serde(default)]
    sha1: String,
    #[serde(default)]
    sha256: String,
    #[serde(default)]
    cpuid: String,
}

impl Criteria {
    fn to_expr(&self) -> Option<Expr> {
        let mut all = Vec::new();
        if !self.name.is_empty() {
            all.push(Expr::UiName(self.name.clone()));
        }
        if !self.guid.is_empty() {
            all.push(Expr::Guid(self.guid.clone()));
        }
        if !self.regexp.is_empty() {
            all.push(Expr::Regexp(self.regexp.clone()));
        }
        if !self.md5.is_empty() {
            all.push(Expr::Md5(self.md5.to_ascii_lowercase()));
        }
        if !self.sha1.is_empty() {
            all.push(Expr::Sha1(self.sha1.to_ascii_lowercase()));
        }
        if !self.sha256.is_empty() {
            all.push(Expr::Sha256(self.sha256.to_ascii_lowercase()));
        }
        // `cpuid` is ignored on images (CHIPSEC: no CPUID known → the criterion matches).
        let _ = &self.cpuid;
        match all.len() {
            0 => None,
            1 => all.pop(),
            _ => Some(Expr::All(all)),
        }
    }
}

/// Parses a CHIPSEC block list into native rules (`chipsec:<entry>` ids).
pub fn parse(text: &str, path: &Path) -> Result<Vec<Rule>, RuleError> {
    let entries: BTreeMap<String, Entry> = serde_json::from_str(text)
        .map_err(|e| RuleError::new(path, Some(e.line()), e.to_string()))?;
    let mut out = Vec::new();
    for (name, entry) in entries {
        let line = text
            .find(&format!("\"{name}\""))
            .map(|o| rules::line_of(text, o));
        let any: Vec<Expr> = entry
            .matches
            .values()
            .filter_map(Criteria::to_expr)
            .collect();
        if any.is_empty() {
            return Err(RuleError::new(
                path,
                line,
                format!("entry {name}: no match criteria"),
            ));
        }
        let excl: Vec<Expr> = entry
            .exclude
            .values()
            .filter_map(Criteria::to_expr)
            .collect();
        let rule = Rule {
            id: format!("chipsec:{name}"),
            name: name.clone(),
            severity: Severity::Error,
            description: if entry.description.is_empty() {
                format!("CHIPSEC block-list entry {name}")
            } else {
                entry.description
            },
            references: vec![path.display().to_string()],
            scope: Scope::Module,
            code: None,
            expr: Expr::Any(any),
            exclude: (!excl.is_empty()).then_some(Expr::Any(excl)),
            source: path.display().to_string(),
        };
        rules::validate(&rule)
            .map_err(|m| RuleError::new(path, line, format!("entry {name}: {m}")))?;
        out.push(rule);
    }
    Ok(out)
}

/// Loads a CHIPSEC block list file (size-capped).
pub fn load(path: &Path) -> Result<Vec<Rule>, RuleError> {
    let bytes = crate::input::read_capped(path, rules::MAX_RULE_FILE)
        .map_err(|e| RuleError::new(path, None, e.to_string()))?;
    let text =
        String::from_utf8(bytes).map_err(|_| RuleError::new(path, None, "not UTF-8 text"))?;
    parse(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_chipsec_semantics() {
        let text = r#"{
  "X": {
    "description": "d",
    "match": { "a": { "guid": "F50258A9-2F4D-4DA9-861E-BDA84D07A44C" }, "b": { "name": "n", "sha1": "AA00000000000000000000000000000000000000" } },
    "exclude": { "p": { "md5": "00000000000000000000000000000000" } }
  }
}"#;
        let r = parse(text, Path::new("b.json")).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].id, "chipsec:X");
        match &r[0].expr {
            Expr::Any(v) => {
                assert_eq!(v.len(), 2);
                assert!(matches!(&v[1], Expr::All(a) if a.len() == 2));
            }
            e => panic!("{e:?}"),
        }
        assert!(r[0].exclude.is_some());
        let e = parse(
            "{\n \"X\": { \"match\": { \"a\": { \"colour\": \"red\" } } }\n}",
            Path::new("b.json"),
        )
        .unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.to_string().contains("colour"), "{e}");
    }
}
