//! The trust policy: which keys may sign which manifests (`schemas/trust-policy-v1.schema.json`).
//!
//! ```json
//! {
//!   "schema_version": 1,
//!   "keys": [
//!     { "id": "3D5C1E4B2A3B4C5D", "public_key": "RWRdTDsqSx5cPa...", "role": "vendor",
//!       "name": "Acme firmware release key", "expires": "2028-01-01T00:00:00Z",
//!       "products": ["X11*"], "components": ["bios", "bmc"] }
//!   ],
//!   "revoked": ["0123456789ABCDEF"],
//!   "rules": [
//!     { "product": "X11SPi", "component": "bios", "threshold": 2, "min_sequence": 7 }
//!   ]
//! }
//! ```
//!
//! Keys come only from here, never from a manifest or a signature file. `products`/`components` are
//! globs (`*`, `?`); absent means any. A rule with no `component` applies to every component of the
//! product; the most specific matching rule wins (product+component, then product, then `*`). With no
//! matching rule the threshold is 1 and there is no minimum sequence.

use std::collections::HashSet;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::minisign::{KeyId, PublicKey};
use crate::region::glob_match;

/// Policy files larger than this are refused before parsing.
pub const MAX_POLICY_SIZE: u64 = 1 << 20;
/// Most keys (and revoked ids, and rules) a policy may list.
pub const MAX_ENTRIES: usize = 4096;
/// The policy schema version this build reads.
pub const POLICY_SCHEMA_VERSION: u32 = 1;

/// One trusted key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedKey {
    /// minisign key id: 16 hex digits, as `minisign` prints it.
    pub id: String,
    /// The minisign public key (base64, the second line of the `.pub` file).
    pub public_key: String,
    /// `vendor`, `owner`, `release-ci`, ... (lowercase kebab-case).
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// RFC 3339; signatures by this key are refused at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Product globs this key may sign for; absent = any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub products: Option<Vec<String>>,
    /// Component globs this key may sign for; absent = any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
}

/// Threshold and minimum sequence for a product (and optionally one component).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Product name, or `*` for every product.
    pub product: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Distinct trusted keys that must sign (k of n). Default 1.
    #[serde(default = "one")]
    pub threshold: u32,
    /// Manifests with a lower sequence are refused (`manifest-rollback`).
    #[serde(default)]
    pub min_sequence: u64,
}

fn one() -> u32 {
    1
}

/// The policy file as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub schema_version: u32,
    pub keys: Vec<TrustedKey>,
    #[serde(default)]
    pub revoked: Vec<String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// A key of a validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub public: PublicKey,
    pub role: String,
    pub name: Option<String>,
    pub expires: Option<SystemTime>,
    pub products: Option<Vec<String>>,
    pub components: Option<Vec<String>>,
}

impl Key {
    /// May this key sign manifests of `product`/`component`?
    pub fn allows(&self, product: &str, component: &str) -> bool {
        let ok = |globs: &Option<Vec<String>>, v: &str| {
            globs
                .as_ref()
                .is_none_or(|g| g.iter().any(|p| glob_match(p, v)))
        };
        ok(&self.products, product) && ok(&self.components, component)
    }
}

/// A validated trust policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPolicy {
    pub keys: Vec<Key>,
    pub revoked: HashSet<KeyId>,
    pub rules: Vec<Rule>,
    /// Where it was read from (for messages and reports).
    pub source: String,
}

/// Threshold and minimum sequence that apply to one manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    pub threshold: u32,
    pub min_sequence: u64,
}

fn kebab(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl TrustPolicy {
    /// Reads a policy file (size-capped before reading). Errors are messages; the caller names the
    /// file and the code (`trust-policy-invalid`).
    pub fn load(path: &Path) -> Result<TrustPolicy, String> {
        let bytes = crate::input::read_capped(path, MAX_POLICY_SIZE).map_err(|e| e.to_string())?;
        TrustPolicy::parse(&bytes, &path.display().to_string())
    }

    /// Parses and validates policy bytes.
    pub fn parse(bytes: &[u8], source: &str) -> Result<TrustPolicy, String> {
        if bytes.len() as u64 > MAX_POLICY_SIZE {
            return Err(format!("larger than {MAX_POLICY_SIZE} bytes"));
        }
        let f: PolicyFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if f.schema_version != POLICY_SCHEMA_VERSION {
            return Err(format!(
                "schema_version {} is not supported (this build reads {POLICY_SCHEMA_VERSION})",
                f.schema_version
            ));
        }
        if f.keys.len() > MAX_ENTRIES
            || f.revoked.len() > MAX_ENTRIES
            || f.rules.len() > MAX_ENTRIES
        {
            return Err(format!(
                "more than {MAX_ENTRIES} keys, revoked ids or rules"
            ));
        }
        let mut revoked = HashSet::new();
        for r in &f.revoked {
            let id =
                KeyId::parse(r).ok_or_else(|| format!("revoked id `{r}` is not 16 hex digits"))?;
            revoked.insert(id);
        }
        let mut keys = Vec::with_capacity(f.keys.len());
        let mut ids = HashSet::new();
        let mut raw_keys = HashSet::new();
        for k in f.keys {
            let id = KeyId::parse(&k.id)
                .ok_or_else(|| format!("key id `{}` is not 16 hex digits", k.id))?;
            let public =
                PublicKey::from_base64(&k.public_key).map_err(|e| format!("key {}: {e}", k.id))?;
            if public.id != id {
                return Err(format!(
                    "key {}: the public key carries key id {}, not {}",
                    k.id, public.id, k.id
                ));
            }
            if !ids.insert(id) || !raw_keys.insert(public.key) {
                return Err(format!(
                    "key {}: listed twice (same id or same public key); each key counts once",
                    k.id
                ));
            }
            if !kebab(&k.role) {
                return Err(format!(
                    "key {}: role `{}` must be lowercase kebab-case (vendor, owner, release-ci, ...)",
                    k.id, k.role
                ));
            }
            let expires = match &k.expires {
                Some(e) => Some(super::parse_time(e).map_err(|e| format!("key {}: {e}", k.id))?),
                None => None,
            };
            for g in k.products.iter().chain(k.components.iter()) {
                if g.is_empty() || g.len() > MAX_ENTRIES {
                    return Err(format!(
                        "key {}: products/components must list 1 to {MAX_ENTRIES} globs",
                        k.id
                    ));
                }
            }
            keys.push(Key {
                public,
                role: k.role,
                name: k.name,
                expires,
                products: k.products,
                components: k.components,
            });
        }
        let mut seen = HashSet::new();
        for r in &f.rules {
            if r.threshold == 0 {
                return Err(format!(
                    "rule for `{}`: threshold must be at least 1",
                    r.product
                ));
            }
            if r.product.is_empty() {
                return Err("a rule has an empty product".into());
            }
            if !seen.insert((r.product.clone(), r.component.clone())) {
                return Err(format!(
                    "two rules for product `{}` component `{}`",
                    r.product,
                    r.component.as_deref().unwrap_or("*")
                ));
            }
        }
        Ok(TrustPolicy {
            keys,
            revoked,
            rules: f.rules,
            source: source.to_string(),
        })
    }

    /// The key with this id, if trusted.
    pub fn key(&self, id: KeyId) -> Option<&Key> {
        self.keys.iter().find(|k| k.public.id == id)
    }

    /// Threshold and minimum sequence for a manifest of `product`/`component`.
    pub fn requirement(&self, product: &str, component: &str) -> Requirement {
        let score = |r: &Rule| -> Option<u8> {
            let exact_product = r.product == product;
            if !exact_product && r.product != "*" {
                return None;
            }
            match &r.component {
                Some(c) if c == component => Some(if exact_product { 4 } else { 2 }),
                Some(_) => None,
                None => Some(if exact_product { 3 } else { 1 }),
            }
        };
        self.rules
            .iter()
            .filter_map(|r| score(r).map(|s| (s, r)))
            .max_by_key(|(s, _)| *s)
            .map(|(_, r)| Requirement {
                threshold: r.threshold,
                min_sequence: r.min_sequence,
            })
            .unwrap_or(Requirement {
                threshold: 1,
                min_sequence: 0,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::minisign::SecretKey;

    fn policy(extra: &str) -> String {
        let pk = SecretKey::generate().unwrap().public();
        format!(
            r#"{{"schema_version":1,"keys":[{{"id":"{}","public_key":"{}","role":"vendor"}}]{extra}}}"#,
            pk.id,
            pk.to_base64()
        )
    }

    #[test]
    fn parses_and_picks_most_specific_rule() {
        let p = TrustPolicy::parse(
            policy(
                r#","rules":[{"product":"*","threshold":1,"min_sequence":1},
                   {"product":"X","threshold":2},{"product":"X","component":"bmc","threshold":3,"min_sequence":9}]"#,
            )
            .as_bytes(),
            "t",
        )
        .unwrap();
        assert_eq!(p.requirement("X", "bmc").threshold, 3);
        assert_eq!(p.requirement("X", "bmc").min_sequence, 9);
        assert_eq!(p.requirement("X", "bios").threshold, 2);
        assert_eq!(p.requirement("Y", "bios").min_sequence, 1);
    }

    #[test]
    fn rejects_bad_policies() {
        assert!(TrustPolicy::parse(policy(r#","surprise":1"#).as_bytes(), "t").is_err());
        assert!(TrustPolicy::parse(policy(r#","revoked":["xyz"]"#).as_bytes(), "t").is_err());
        assert!(TrustPolicy::parse(
            policy(r#","rules":[{"product":"X","threshold":0}]"#).as_bytes(),
            "t"
        )
        .is_err());
        let pk = SecretKey::generate().unwrap().public();
        let wrong_id = format!(
            r#"{{"schema_version":1,"keys":[{{"id":"0000000000000001","public_key":"{}","role":"vendor"}}]}}"#,
            pk.to_base64()
        );
        assert!(TrustPolicy::parse(wrong_id.as_bytes(), "t")
            .unwrap_err()
            .contains("carries key id"));
        let twice = format!(
            r#"{{"schema_version":1,"keys":[{{"id":"{0}","public_key":"{1}","role":"vendor"}},{{"id":"{0}","public_key":"{1}","role":"owner"}}]}}"#,
            pk.id,
            pk.to_base64()
        );
        assert!(TrustPolicy::parse(twice.as_bytes(), "t").is_err());
    }
}
