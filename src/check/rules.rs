//! The signature rule format (version 1): data, not code. See `signatures/README.md`.
//!
//! ```toml
//! schema_version = 1
//!
//! [[rule]]
//! id = "FWS-UEFI-0001"
//! name = "LoJax SecDxe"
//! severity = "error"                 # info | warning | error
//! description = "..."
//! references = ["https://..."]
//! scope = "module"                   # module | variable | fs-file | image
//! code = "known-threat"              # optional: the finding code (default known-threat)
//! match = { any = [ { guid = "682894B5-6B70-4EBA-9E90-A607E5676297" }, { ui_name = "SecDxe" } ] }
//! ```
//!
//! Matchers: `guid`, `ui_name`, `sha256` (of a module, any section body in it, or a filesystem file),
//! `sha1`, `md5` (for imported CHIPSEC lists), `authenticode` (Authenticode SHA-256 of a PE module in it), `bytes` (hex with `??` wildcards, searched in
//! every decompressed body), `regexp` (a bytes regular expression, as in CHIPSEC's lists), `cert_subject`
//! (substring of an X.509 subject in a Secure Boot variable, case-insensitive), `variable` (variable name),
//! `fs_path` (glob on a filesystem path) — combined with `all`, `any` and `not`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::finding::{Code, Severity};

/// Rule files larger than this are refused.
pub const MAX_RULE_FILE: u64 = 8 << 20;
/// Longest byte pattern or regexp.
pub const MAX_PATTERN: usize = 4096;
/// Deepest expression nesting.
pub const MAX_EXPR_DEPTH: usize = 32;

/// A matcher expression.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Expr {
    All(Vec<Expr>),
    Any(Vec<Expr>),
    Not(Box<Expr>),
    Guid(String),
    UiName(String),
    Sha256(String),
    Sha1(String),
    Md5(String),
    Authenticode(String),
    Bytes(String),
    Regexp(String),
    CertSubject(String),
    Variable(String),
    FsPath(String),
}

/// What a rule is evaluated against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// One FFS file and everything inside it (nested FFS files are subjects of their own).
    #[default]
    Module,
    /// One NVRAM variable.
    Variable,
    /// One file of an embedded filesystem.
    FsFile,
    /// The whole image: each matcher may be satisfied by a different part.
    Image,
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub name: String,
    #[serde(default = "default_severity")]
    pub severity: Severity,
    pub description: String,
    #[serde(default)]
    pub references: Vec<String>,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(rename = "match")]
    pub expr: Expr,
    /// A match is dropped when this also matches (CHIPSEC's `exclude`).
    #[serde(default)]
    pub exclude: Option<Expr>,
    /// Where the rule came from (file name), filled in on load.
    #[serde(skip)]
    pub source: String,
}

fn default_severity() -> Severity {
    Severity::Error
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    schema_version: u32,
    #[serde(default, rename = "rule")]
    rules: Vec<Rule>,
}

/// A problem with a rule file; names the file and, where known, the line.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct RuleError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl RuleError {
    pub fn new(path: &Path, line: Option<usize>, message: impl Into<String>) -> RuleError {
        RuleError {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

/// What is wrong with one rule (or a matcher of it); [`RuleError`] adds the file and line.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RuleProblem {
    #[error("id and name must not be empty")]
    EmptyIdOrName,
    #[error("unknown finding code `{0}`")]
    UnknownCode(String),
    #[error("expression nested deeper than {MAX_EXPR_DEPTH}")]
    TooDeep,
    #[error("`all`/`any` needs at least one matcher")]
    EmptyList,
    #[error("empty string matcher")]
    EmptyString,
    #[error("`{digest}` is not a digest of {len} hex digits")]
    Digest { digest: String, len: usize },
    #[error("`{0}` is not a GUID (XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX)")]
    Guid(String),
    #[error("byte pattern `{0}`: need 1..{MAX_PATTERN} bytes as hex pairs or ??")]
    PatternLength(String),
    #[error("byte pattern `{0}`: bad hex pair")]
    PatternHex(String),
    #[error("byte pattern `{0}` is only wildcards")]
    PatternWildcards(String),
    #[error("regexp longer than {MAX_PATTERN} characters")]
    RegexLength,
    #[error("regexp `{pattern}`: {error}")]
    Regex {
        pattern: String,
        error: regex::Error,
    },
    /// The byte patterns' anchors could not be compiled into one automaton.
    #[error("{0}")]
    Automaton(aho_corasick::BuildError),
}

/// The 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parses one rule file in the native format.
pub fn parse_rules(text: &str, path: &Path) -> Result<Vec<Rule>, RuleError> {
    let file: RuleFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        RuleError::new(path, line, e.message().to_string())
    })?;
    if file.schema_version != 1 {
        return Err(RuleError::new(
            path,
            None,
            format!(
                "schema_version {} is not supported (this build reads 1)",
                file.schema_version
            ),
        ));
    }
    let mut out = Vec::with_capacity(file.rules.len());
    for mut r in file.rules {
        let line = text
            .find(&format!("\"{}\"", r.id))
            .map(|o| line_of(text, o));
        validate(&r).map_err(|m| RuleError::new(path, line, format!("rule {}: {m}", r.id)))?;
        r.source = path.display().to_string();
        out.push(r);
    }
    Ok(out)
}

/// Checks one rule: codes exist, GUIDs and digests are well-formed, patterns compile and are bounded.
pub fn validate(r: &Rule) -> Result<(), RuleProblem> {
    if r.id.is_empty() || r.name.is_empty() {
        return Err(RuleProblem::EmptyIdOrName);
    }
    if let Some(c) = &r.code {
        Code::parse(c).ok_or_else(|| RuleProblem::UnknownCode(c.clone()))?;
    }
    validate_expr(&r.expr, 0)?;
    if let Some(e) = &r.exclude {
        validate_expr(e, 0)?;
    }
    Ok(())
}

fn validate_expr(e: &Expr, depth: usize) -> Result<(), RuleProblem> {
    if depth > MAX_EXPR_DEPTH {
        return Err(RuleProblem::TooDeep);
    }
    match e {
        Expr::All(v) | Expr::Any(v) => {
            if v.is_empty() {
                return Err(RuleProblem::EmptyList);
            }
            v.iter().try_for_each(|x| validate_expr(x, depth + 1))
        }
        Expr::Not(x) => validate_expr(x, depth + 1),
        Expr::Guid(g) => parse_guid_text(g).map(|_| ()),
        Expr::Sha256(h) | Expr::Authenticode(h) => hex_digest(h, 64),
        Expr::Sha1(h) => hex_digest(h, 40),
        Expr::Md5(h) => hex_digest(h, 32),
        Expr::Bytes(p) => parse_pattern(p).map(|_| ()),
        Expr::Regexp(r) => compile_regex(r).map(|_| ()),
        Expr::UiName(s) | Expr::CertSubject(s) | Expr::Variable(s) | Expr::FsPath(s) => {
            if s.is_empty() {
                Err(RuleProblem::EmptyString)
            } else {
                Ok(())
            }
        }
    }
}

fn hex_digest(h: &str, len: usize) -> Result<(), RuleProblem> {
    if h.len() == len && h.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(RuleProblem::Digest {
            digest: h.to_string(),
            len,
        })
    }
}

/// Normalises a GUID string (registry form, uppercase); errors on anything else.
pub fn parse_guid_text(g: &str) -> Result<String, RuleProblem> {
    let t = g.trim().trim_start_matches('{').trim_end_matches('}');
    let groups: Vec<&str> = t.split('-').collect();
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(s, n)| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(t.to_ascii_uppercase())
    } else {
        Err(RuleProblem::Guid(g.to_string()))
    }
}

/// A byte pattern: `Some(b)` a byte, `None` a wildcard.
pub fn parse_pattern(p: &str) -> Result<Vec<Option<u8>>, RuleProblem> {
    let compact: String = p.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() || compact.len() % 2 != 0 || compact.len() / 2 > MAX_PATTERN {
        return Err(RuleProblem::PatternLength(p.to_string()));
    }
    let out: Vec<Option<u8>> = compact
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            if pair == b"??" {
                Ok(None)
            } else {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|s| u8::from_str_radix(s, 16).ok())
                    .map(Some)
                    .ok_or_else(|| RuleProblem::PatternHex(p.to_string()))
            }
        })
        .collect::<Result<_, _>>()?;
    if out.iter().all(Option::is_none) {
        return Err(RuleProblem::PatternWildcards(p.to_string()));
    }
    Ok(out)
}

/// Compiles a bytes regular expression (Unicode off, as Python's `re` on bytes), with size limits.
pub fn compile_regex(r: &str) -> Result<regex::bytes::Regex, RuleProblem> {
    if r.len() > MAX_PATTERN {
        return Err(RuleProblem::RegexLength);
    }
    regex::bytes::RegexBuilder::new(r)
        .unicode(false)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
        .map_err(|error| RuleProblem::Regex {
            pattern: r.to_string(),
            error,
        })
}

/// The rules built into the binary.
pub const BUILTIN: &str = include_str!("../../signatures/threats.toml");

/// Loads the built-in rules.
pub fn builtin() -> Result<Vec<Rule>, RuleError> {
    parse_rules(BUILTIN, Path::new("signatures/threats.toml"))
}

/// Loads every `*.toml` rule file of a directory (sorted by name), replacing the built-in set.
pub fn load_dir(dir: &Path) -> Result<Vec<Rule>, RuleError> {
    let entries = std::fs::read_dir(dir).map_err(|e| RuleError::new(dir, None, e.to_string()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(RuleError::new(dir, None, "no *.toml rule files"));
    }
    let mut rules = Vec::new();
    for f in files {
        rules.extend(load_file(&f)?);
    }
    Ok(rules)
}

/// Loads one native rule file.
pub fn load_file(path: &Path) -> Result<Vec<Rule>, RuleError> {
    let bytes = crate::input::read_capped(path, MAX_RULE_FILE)
        .map_err(|e| RuleError::new(path, None, e.to_string()))?;
    let text =
        String::from_utf8(bytes).map_err(|_| RuleError::new(path, None, "not UTF-8 text"))?;
    parse_rules(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_load() {
        let rules = builtin().unwrap();
        for id in [
            "lojax",
            "rkloader",
            "mosaicregressor",
            "thinkpwn",
            "test-pk",
        ] {
            assert!(
                rules.iter().any(|r| r.id.to_ascii_lowercase().contains(id)),
                "no rule for {id}"
            );
        }
        let mut ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        ids.sort();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate rule ids");
        assert!(
            rules.iter().all(|r| !r.references.is_empty()),
            "every rule cites a source"
        );
    }

    #[test]
    fn errors_name_the_line() {
        let text = "schema_version = 1\n\n[[rule]]\nid = \"X\"\nname = \"x\"\ndescription = \"d\"\nmatch = { guidd = \"x\" }\n";
        let e = parse_rules(text, Path::new("r.toml")).unwrap_err();
        assert_eq!(e.line, Some(7), "{e}");
        assert!(e.to_string().starts_with("r.toml:7"), "{e}");
        let text = "schema_version = 1\n[[rule]]\nid = \"X\"\nname = \"x\"\ndescription = \"d\"\nmatch = { guid = \"nope\" }\n";
        let e = parse_rules(text, Path::new("r.toml")).unwrap_err();
        assert!(e.to_string().contains("not a GUID"), "{e}");
        let e = parse_rules("schema_version = 1\n[[rule]\n", Path::new("r.toml")).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn patterns() {
        assert_eq!(
            parse_pattern("A1 ?? 03").unwrap(),
            vec![Some(0xA1), None, Some(3)]
        );
        assert!(parse_pattern("??").is_err());
        assert!(parse_pattern("A").is_err());
        assert!(compile_regex("\\xA1\\x97")
            .unwrap()
            .is_match(&[0, 0xA1, 0x97]));
    }
}
