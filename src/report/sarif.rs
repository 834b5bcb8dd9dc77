//! SARIF 2.1.0 output for `scan` and `audit`, in the form GitHub code scanning ingests: one rule per finding
//! code (`Code::ALL`), stable `partialFingerprints`, artifact locations with byte offsets
//! (`region.byteOffset`/`byteLength`; offsets inside decompressed data are given as a logical location
//! instead, since they are not offsets in the file).
//!
//! Results are written one at a time ([`SarifWriter`]), so an audit of any size needs bounded memory.

use std::io::{self, Write};

use serde_json::{json, Value};

use crate::finding::{Code, Finding, Severity};
use crate::region::Space;

/// The SARIF schema URI.
pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// `region-modified` → `RegionModified`.
fn pascal(code: &str) -> String {
    code.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn help(code: Code) -> (String, String) {
    let what = code.description();
    let todo = match code {
        Code::ReadError | Code::FileChanged => {
            "The image could not be decided. Check that the file is readable and is not being written while it is scanned, then scan it again."
        }
        Code::ManifestInvalid | Code::ManifestUnsigned | Code::AmbiguousManifest => {
            "The baseline could not be used. Fix the manifest catalogue (signatures, trust policy, match rules) or map the image to its manifest explicitly."
        }
        Code::UnknownFirmware => {
            "No approved baseline exists for this firmware. Either the firmware is not approved (investigate) or a signed manifest for it must be added to the catalogue."
        }
        _ => {
            "Compare the region with the baseline (`fwscan inspect` shows the region tree with digests); an unexpected change in a static region may be tampering and the flash should be re-imaged from a trusted source."
        }
    };
    let text = format!("{what} {todo}");
    let md = format!(
        "**{}** (`{}`): {what}\n\n{todo}",
        pascal(code.as_str()),
        code.as_str()
    );
    (text, md)
}

/// One rule per finding code.
pub fn rules() -> Value {
    Value::Array(
        Code::ALL
            .iter()
            .map(|&c| {
                let (text, markdown) = help(c);
                let sev = match c.severity() {
                    Severity::Error => "8.0",
                    Severity::Warning => "5.0",
                    Severity::Info => "1.0",
                };
                let name = pascal(c.as_str());
                // SARIF1001: a name equal to the id (ignoring case) must be omitted.
                let name = (!name.eq_ignore_ascii_case(c.as_str())).then_some(name);
                let mut rule = json!({
                    "id": c.as_str(),
                    "shortDescription": { "text": c.description() },
                    "fullDescription": { "text": c.description() },
                    "help": { "text": text, "markdown": markdown },
                    "defaultConfiguration": { "level": level(c.severity()) },
                    "properties": {
                        "tags": ["security", "firmware"],
                        "precision": "high",
                        "security-severity": sev
                    }
                });
                if let Some(n) = name {
                    rule["name"] = n.into();
                }
                rule
            })
            .collect(),
    )
}

/// A URI reference for a file path: relative paths stay relative (percent-encoded), absolute ones become
/// `file://` URIs.
pub fn path_uri(path: &str) -> String {
    let mut out = String::new();
    if path.starts_with('/') {
        out.push_str("file://");
    }
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A stable fingerprint of a finding: code, artifact and region identity path (never offsets or digests,
/// which change between builds).
pub fn fingerprint(code: &str, artifact: &str, region_path: &str) -> String {
    let d = crate::hash::sha256(format!("{code}\0{artifact}\0{region_path}").as_bytes());
    hex::encode(&d[..16])
}

fn location(artifact: &str, f: Option<&Finding>, artifact_size: Option<u64>) -> Value {
    let mut phys = json!({ "artifactLocation": { "uri": path_uri(artifact) } });
    let mut loc = json!({});
    // Whole-file results point at the whole file.
    if let Some(size) = artifact_size {
        phys["region"] = json!({ "byteOffset": 0, "byteLength": size });
    }
    if let Some(f) = f {
        if let (Some(off), Some(size), Space::Image) = (f.offset, f.size, f.space) {
            phys["region"] = json!({ "byteOffset": off, "byteLength": size });
        }
        if !f.path.is_empty() {
            let kind = if f.kind.is_some_and(|k| k.is_module()) {
                "module"
            } else {
                "resource"
            };
            loc["logicalLocations"] = json!([{ "fullyQualifiedName": f.path, "kind": kind }]);
        }
    }
    loc["physicalLocation"] = phys;
    loc
}

fn rule_index(code: &str) -> Option<usize> {
    Code::ALL.iter().position(|c| c.as_str() == code)
}

/// A SARIF result for a finding on `artifact` (an image path of `artifact_size` bytes, when known).
pub fn finding_result(artifact: &str, artifact_size: Option<u64>, f: &Finding) -> Value {
    let region = crate::report::display_path(&f.path);
    let mut text = format!("{region}: {}", f.message);
    if let (Some(e), Some(a)) = (&f.expected_digest, &f.actual_digest) {
        text.push_str(&format!(" (expected {e}, actual {a})"));
    }
    let mut r = json!({
        "ruleId": f.code.as_str(),
        "level": level(f.severity),
        "message": { "text": text },
        "locations": [location(artifact, Some(f), artifact_size)],
        "partialFingerprints": { "fwscanFinding/v1": fingerprint(f.code.as_str(), artifact, &f.path) },
        "properties": { "regionPath": region }
    });
    if let Some(i) = rule_index(f.code.as_str()) {
        r["ruleIndex"] = i.into();
    }
    if !f.ranges.is_empty() {
        r["relatedLocations"] = Value::Array(
            f.ranges
                .iter()
                .filter(|b| b.space == Space::Image)
                .take(32)
                .enumerate()
                .map(|(i, b)| {
                    json!({
                        "id": i,
                        "message": { "text": "changed bytes" },
                        "physicalLocation": {
                            "artifactLocation": { "uri": path_uri(artifact) },
                            "region": { "byteOffset": b.offset, "byteLength": b.length }
                        }
                    })
                })
                .collect(),
        );
    }
    r
}

/// A SARIF result for an image that could not be decided (`code` is an error code such as `read-error`).
pub fn error_result(
    artifact: &str,
    artifact_size: Option<u64>,
    code: &str,
    message: &str,
) -> Value {
    let mut r = json!({
        "ruleId": code,
        "level": "error",
        "message": { "text": if message.is_empty() { code.to_string() } else { message.to_string() } },
        "locations": [location(artifact, None, artifact_size)],
        "partialFingerprints": { "fwscanFinding/v1": fingerprint(code, artifact, "") },
    });
    if let Some(i) = rule_index(code) {
        r["ruleIndex"] = i.into();
    }
    r
}

/// Writes one SARIF log with one run, result by result.
#[derive(Debug)]
pub struct SarifWriter<W: Write> {
    out: W,
    first: bool,
}

impl<W: Write> SarifWriter<W> {
    /// Writes everything up to the results array.
    pub fn begin(mut out: W, command: &str) -> io::Result<Self> {
        let driver = json!({
            "name": "fwscan",
            "semanticVersion": env!("CARGO_PKG_VERSION"),
            "version": env!("CARGO_PKG_VERSION"),
            "rules": rules(),
        });
        write!(
            out,
            "{{\"$schema\":{},\"version\":\"2.1.0\",\"runs\":[{{\"tool\":{{\"driver\":{}}},\"automationDetails\":{{\"id\":{}}},\"columnKind\":\"unicodeCodePoints\",\"results\":[",
            json!(SCHEMA),
            driver,
            json!(format!("fwscan/{command}/"))
        )?;
        Ok(SarifWriter { out, first: true })
    }

    pub fn result(&mut self, r: &Value) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",\n")?;
        } else {
            self.out.write_all(b"\n")?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.out, r)?;
        Ok(())
    }

    /// Closes the log; `successful` is false when something could not be decided. `properties` (the trust
    /// status of the baselines used, signer key ids) go into the invocation and the run.
    pub fn finish(mut self, successful: bool, properties: &Value) -> io::Result<W> {
        write!(
            self.out,
            "\n],\"invocations\":[{{\"executionSuccessful\":{successful},\"properties\":{properties}}}],\"properties\":{properties}}}]}}\n"
        )?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_is_json_with_one_rule_per_code() {
        let f = Finding::general(Code::UnknownFirmware, "x");
        let mut w = SarifWriter::begin(Vec::new(), "scan").unwrap();
        w.result(&finding_result("dir/a b.bin", Some(10), &f))
            .unwrap();
        let s = w.finish(true, &json!({})).unwrap();
        let v: Value = serde_json::from_slice(&s).unwrap();
        let rules = v["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), Code::ALL.len());
        let r = &v["runs"][0]["results"][0];
        assert_eq!(r["ruleId"], "unknown-firmware");
        assert_eq!(
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "dir/a%20b.bin"
        );
        assert_eq!(
            rules[r["ruleIndex"].as_u64().unwrap() as usize]["id"],
            "unknown-firmware"
        );
        assert_eq!(pascal("region-modified"), "RegionModified");
        assert_eq!(path_uri("/x/y.bin"), "file:///x/y.bin");
    }
}
