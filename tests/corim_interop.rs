//! CoRIM interop with others' code (issue 24 point 3): Microsoft's `corim` crate (Azure/corim) decodes
//! fwscan's export and the third-party vectors to the same reference values fwscan reads; the export
//! validates against the draft's CDDL (`testdata/corim/cddl`, anweiss's `cddl` crate) and a broken one
//! does not; the OCP S.A.F.E. reports (COSE_Sign, ES512) verify with their reviewer's published key.

use std::path::{Path, PathBuf};

use corim::document::{validate, TimeCheck, ValidationContext};
use fwscan::manifest::corim::{self as fw, MKey, Measurement};

use crate::corim::{export, p, p256_key, policy, scratch, OVMF_CODE};
use crate::harness::{have_file, run as fwscan};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/corim")
        .join(name)
}

fn unix(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// One CoMID as Microsoft's crate reads it, in fwscan's terms: (vendor, model, reference values of all
/// its reference triples in order).
type View = Vec<(Option<String>, Option<String>, Vec<Measurement>)>;

fn digest_name(a: &corim::types::measurement::DigestAlg) -> String {
    use corim::types::measurement::DigestAlg;
    match a {
        DigestAlg::Int(1 | -16) => "sha-256".into(),
        DigestAlg::Int(7 | -43) => "sha-384".into(),
        DigestAlg::Int(8 | -44) => "sha-512".into(),
        DigestAlg::Int(n) => format!("alg {n}"),
        DigestAlg::Text(t) => t.to_ascii_lowercase(),
        other => format!("{other:?}"),
    }
}

fn ms_view_of(comids: &[corim::types::comid::ComidTag]) -> View {
    use corim::types::common::MeasuredElement;
    use corim::types::measurement::SvnChoice;
    comids
        .iter()
        .map(|c| {
            let triples = c.triples.reference_triples.as_deref().unwrap_or_default();
            let class = triples.first().and_then(|t| t.0.class.as_ref());
            let ms = triples
                .iter()
                .flat_map(|t| t.1.iter())
                .map(|m| {
                    let v = &m.mval;
                    let (svn, min_svn) = match v.svn {
                        Some(SvnChoice::ExactValue(n)) => (Some(n), false),
                        Some(SvnChoice::MinValue(n)) => (Some(n), true),
                        _ => (None, false),
                    };
                    Measurement {
                        mkey: m.mkey.as_ref().map(|k| match k {
                            MeasuredElement::Text(t) => MKey::Text(t.clone()),
                            MeasuredElement::Uuid(u) => MKey::Uuid(*u),
                            MeasuredElement::Uint(n) => MKey::Uint(*n),
                            MeasuredElement::Oid(o) => MKey::Oid(o.clone()),
                            other => panic!("mkey {other:?}"),
                        }),
                        name: v.name.clone(),
                        digests: v
                            .digests
                            .iter()
                            .flatten()
                            .map(|d| (digest_name(&d.0), d.1.clone()))
                            .collect(),
                        immutable: v.flags.as_ref().and_then(|f| f.is_immutable),
                        runtime_updatable: v.flags.as_ref().and_then(|f| f.is_runtime_updatable),
                        svn,
                        min_svn,
                    }
                })
                .collect();
            (
                class.and_then(|c| c.vendor.clone()),
                class.and_then(|c| c.model.clone()),
                ms,
            )
        })
        .collect()
}

/// Microsoft's crate: decode and validate (structure, validity at `at`) a whole document.
fn ms_view(bytes: &[u8], at: i64) -> Result<View, String> {
    let registry = corim::profile::ProfileRegistry::new();
    let doc = validate(bytes, &ValidationContext::new(TimeCheck::At(at), &registry))
        .map_err(|e| format!("{e}"))?;
    Ok(ms_view_of(&doc.payload().comids))
}

fn fw_view(c: &fw::Corim) -> View {
    c.comids
        .iter()
        .map(|m| (m.vendor.clone(), m.model.clone(), m.measurements.clone()))
        .collect()
}

fn exports(dir: &Path) -> Vec<PathBuf> {
    let img = dir.join("core.bin");
    std::fs::write(&img, crate::support::testdata::core_image()).unwrap();
    let (key, _) = p256_key(dir, 21);
    let mut out = vec![dir.join("core.corim")];
    export(&img, &key, &out[0], &["--expires", "30d"]);
    if have_file(OVMF_CODE, "Debian: ovmf") {
        let o = dir.join("ovmf.corim");
        export(Path::new(OVMF_CODE), &key, &o, &["--expires", "30d"]);
        out.push(o);
    }
    out
}

#[test]
fn export_decodes_with_microsofts_corim_crate_to_the_same_reference_values() {
    let dir = scratch("mscorim");
    let now = unix(std::time::SystemTime::now());
    for corim in exports(&dir) {
        let bytes = std::fs::read(&corim).unwrap();
        let ours = fw::decode(&bytes).unwrap();
        let theirs = ms_view(&bytes, now).unwrap_or_else(|e| panic!("{}: {e}", corim.display()));
        assert_eq!(theirs, fw_view(&ours), "{}", corim.display());
        let n = theirs[0].2.len();
        assert!(n >= 1, "{n} reference values");
        assert!(theirs[0].2.iter().all(|m| m.mkey.is_some()));
        if corim.ends_with("ovmf.corim") {
            // FFS files are keyed by their GUID (#6.37), and Microsoft's crate reads it as a UUID.
            let uuids = theirs[0]
                .2
                .iter()
                .filter(|m| matches!(m.mkey, Some(MKey::Uuid(_))))
                .count();
            assert!(uuids > 50, "{uuids} GUID keys");
        }
        // The envelope as Microsoft's crate reads it: ES256, our content type and signer.
        let signed = corim::types::signed::decode_signed_corim(&bytes).unwrap();
        let h = signed.protected();
        assert_eq!(h.alg.to_i64(), -7);
        assert_eq!(
            h.corim_meta.as_ref().map(|m| m.signer.signer_name.as_str()),
            Some("Acme")
        );
        // Its validity window is enforced by Microsoft's crate too: 31 days on, the CoRIM has expired.
        let later = ms_view(&bytes, now + 31 * 86_400);
        assert!(later.is_err(), "expired CoRIM accepted: {later:?}");
    }
}

#[test]
fn veraison_and_nvidia_vectors_decode_the_same_with_microsofts_corim_crate() {
    // veraison's vectors inside their validity window (2021-12-31 .. 2025-12-31).
    let at = 1_717_200_000; // 2024-06-01
    for name in [
        "veraison-signed-good-corim.cbor",
        "veraison-signed-corim-with-extensions.cbor",
        "veraison-unsigned-good-corim.cbor",
    ] {
        let bytes = std::fs::read(testdata(name)).unwrap();
        let ours = fw::decode(&bytes).unwrap();
        let theirs = ms_view(&bytes, at).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(theirs, fw_view(&ours), "{name}");
        assert!(!theirs[0].2.is_empty(), "{name}");
    }
    // NVIDIA's ConnectX-7 CoRIM as shipped in the crate's tests: #6.500(#6.502(#6.18)), a bare corim-map
    // payload, a bare-bstr CoMID, SHA-512 digests and raw values.
    let bytes = nvidia_cx7();
    let ours = fw::decode(&bytes).unwrap();
    let theirs = ms_view(&bytes, at).unwrap();
    assert_eq!(theirs, fw_view(&ours));
    assert_eq!(ours.id, "ConnectX-7_28.48.1000");
    assert_eq!(ours.signer.as_deref(), Some("NVIDIA"));
    assert_eq!(ours.signatures.len(), 1);
    assert_eq!(ours.signatures[0].alg, -35);
    let ms = &theirs[0].2;
    assert_eq!(ms.len(), 7);
    assert_eq!(ms[0].mkey, Some(MKey::Uint(2)));
    assert_eq!(ms[0].digests[0].0, "sha-512");
    for want in [
        "#6.500",
        "#6.502",
        "untagged CoRIM map",
        "bstr holding #6.506",
    ] {
        assert!(
            ours.notes.iter().any(|n| n.contains(want)),
            "{want}: {:?}",
            ours.notes
        );
    }
}

/// The NVIDIA ConnectX-7 CoRIM that Microsoft's `corim` crate (a dev-dependency) ships in its tests: read
/// from the crate's source where cargo unpacked it, never copied here (NVIDIA publishes it without a
/// licence). Its SHA-256 is the one the crate's `tests/fixtures/README.md` records.
pub(crate) fn nvidia_cx7() -> Vec<u8> {
    use sha2::Digest as _;
    // The version cargo resolved (Cargo.lock), unpacked under $CARGO_HOME/registry/src/<index>/.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"corim\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .expect("corim in Cargo.lock")
        .trim_matches('"')
        .to_string();
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let path = std::fs::read_dir(home.join("registry/src"))
        .unwrap()
        .flatten()
        .map(|d| {
            d.path()
                .join(format!("corim-{version}"))
                .join("tests/fixtures/nvidia_cx7_tcg_wrapped.cbor")
        })
        .find(|p| p.exists())
        .expect("the corim crate's source under $CARGO_HOME/registry/src");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&bytes)),
        "c25735f67ed5691989fe26e1edfa15714fc32f91f5841f4ef1c09b67a957a9fa"
    );
    bytes
}

// ---------------------------------------------------------------------------------------------------
// The draft's CDDL.

/// The CoRIM CDDL as the draft's `cddl/Makefile` assembles `corim-autogen.cddl` (`cddlc -2` over the
/// `CORIM_FRAGS` of `corim-frags.mk`, COMID_FRAGS included), in the same order, plus the one rule the
/// draft imports from draft-ietf-rats-eat-measured-component (`eatmc.digest`, see `eatmc-import.cddl`).
fn draft_cddl() -> String {
    let dir = testdata("cddl");
    let mk = std::fs::read_to_string(dir.join("corim-frags.mk")).unwrap();
    let mut frags: Vec<String> = Vec::new();
    for line in mk.lines() {
        let mut w = line.split_whitespace();
        let (Some(var), Some(op), Some(val)) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        if var != "CORIM_FRAGS" || !matches!(op, ":=" | "+=") {
            continue;
        }
        let names: Vec<String> = if val == "$(COMID_FRAGS)" {
            mk.lines()
                .filter_map(|l| l.strip_prefix("COMID_FRAGS "))
                .filter_map(|l| l.split_whitespace().nth(1))
                .map(str::to_string)
                .collect()
        } else {
            vec![val.to_string()]
        };
        for n in names {
            // psa-sac-ext.cddl is in the list "for examples only" (the Makefile says so); it fills the
            // `* $$measurement-values-map-extension` socket, which the crate then requires.
            if n.ends_with(".cddl") && n != "psa-sac-ext.cddl" && !frags.contains(&n) {
                frags.push(n);
            }
        }
    }
    assert!(frags.len() > 60, "{} fragments", frags.len());
    assert_eq!(frags[0], "corim.cddl", "the root rule comes first");
    frags.push("eatmc-import.cddl".into());
    let mut all = String::new();
    for f in frags {
        let text = std::fs::read_to_string(dir.join(&f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        all.push_str(&text);
        all.push('\n');
    }
    for (from, to, n) in CDDL_CRATE_EDITS {
        assert_eq!(all.matches(from).count(), *n, "{from}");
        all = all.replace(from, to);
    }
    expand_non_empty(&all)
}

/// `non-empty<{ ... }>` written out as its definition says, `({ ... }) .and ({ + any => any })`: the crate
/// binds the generic's parameter once, so a `non-empty` map inside another (class-map inside
/// environment-map) is checked against the outer one's entries.
fn expand_non_empty(cddl: &str) -> String {
    const OPEN: &str = "non-empty<";
    let mut out = String::new();
    let mut rest = cddl;
    let mut n = 0;
    while let Some(i) = rest.find(OPEN) {
        out.push_str(&rest[..i]);
        let after = &rest[i + OPEN.len()..];
        let body_at = after.len() - after.trim_start().len();
        if !after[body_at..].starts_with('{') {
            // The definition `non-empty<M> = ...` itself.
            out.push_str(OPEN);
            rest = after;
            continue;
        }
        let mut depth = 0usize;
        let mut end = None;
        for (j, ch) in after.char_indices().skip(body_at) {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(j);
                        break;
                    }
                }
                _ => {}
            }
        }
        let end = end.expect("balanced non-empty<{...}>");
        let tail = after[end + 1..].trim_start();
        assert!(tail.starts_with('>'), "non-empty<{{...}}> closes with >");
        out.push_str(&format!(
            "({}) .and ({{ + any => any }})",
            &after[body_at..=end]
        ));
        rest = &tail[1..];
        n += 1;
    }
    out.push_str(rest);
    assert_eq!(n, 7, "non-empty<{{...}}> uses");
    out
}

/// The edits the `cddl` crate (0.10.7) needs, each documented in `testdata/corim/cddl/PROVENANCE`:
/// * the draft passes group sockets (`$$...-extension`) as arguments of the generic `entity-map`, which
///   RFC 8610's grammar (`genericarg` takes types) and the crate do not accept (Ruby's `cddl` does): the
///   two instances are written out as the generic expands them (same keys, same socket);
/// * the crate refuses every extra key of a map whose wildcard key is a rule name or a choice
///   (`* cose-label => cose-value`, `cose-label = int / tstr`): written `* int => any`, which narrows
///   COSE header labels to integers (text labels: neither fwscan nor the vectors use them).
const CDDL_CRATE_EDITS: &[(&str, &str, usize)] = &[
    (
        "corim-entity-map =\n  entity-map<$corim-role-type-choice, $$corim-entity-map-extension>",
        "corim-entity-map = {\n  &(entity-name: 0) => $entity-name-type-choice\n  ? &(reg-id: 1) => uri\n  &(role: 2) => [ + $corim-role-type-choice ]\n  * $$corim-entity-map-extension\n}",
        1,
    ),
    (
        "comid-entity-map =\n  entity-map<$comid-role-type-choice, $$comid-entity-map-extension>",
        "comid-entity-map = {\n  &(entity-name: 0) => $entity-name-type-choice\n  ? &(reg-id: 1) => uri\n  &(role: 2) => [ + $comid-role-type-choice ]\n  * $$comid-entity-map-extension\n}",
        1,
    ),
    ("* cose-label => cose-value", "* int => any", 4),
];

fn cddl_check(cddl: &str, bytes: &[u8]) -> Result<(), String> {
    cddl::validate_cbor_from_slice(cddl, bytes, None).map_err(|e| {
        let e = format!("{e}");
        // A CDDL parse error names a byte index: show the text there.
        let at = e
            .split("index: ")
            .nth(1)
            .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<usize>().ok());
        match at {
            Some(i) => format!(
                "{e}\n  at: {:?}",
                cddl.get(i.saturating_sub(80)..(i + 80).min(cddl.len()))
            ),
            None => e,
        }
    })
}

#[test]
fn export_validates_against_the_drafts_cddl_and_a_broken_one_does_not() {
    let cddl = draft_cddl();
    let dir = scratch("cddl");
    for corim in exports(&dir) {
        let bytes = std::fs::read(&corim).unwrap();
        cddl_check(&cddl, &bytes).unwrap_or_else(|e| panic!("{}: {e}", corim.display()));
        // The payload alone: the COSE level accepts any bstr payload (`hash-envelope-digest = bstr`), so
        // the CoRIM and its CoMIDs are checked here, as a tagged-unsigned-corim-map (itself a `corim`).
        let top = fw::cbor::decode(&bytes).unwrap();
        let payload = top.as_tag().unwrap().1.as_array().unwrap()[2]
            .as_bytes()
            .unwrap()
            .to_vec();
        cddl_check(&cddl, &payload).unwrap();
        // A digest whose value is a text string, not a bstr: the CDDL refuses it. Patched in place (the
        // digest's head `58 20`, bstr of 32, becomes `78 20`, tstr of 32, its bytes ASCII), so every length
        // around it still holds and only the type is wrong.
        let mut broken = payload.clone();
        let at = broken
            .windows(4)
            .position(|w| w == [0x82, 0x01, 0x58, 0x20])
            .expect("a sha-256 digest");
        broken[at + 2] = 0x78;
        for b in &mut broken[at + 4..at + 36] {
            *b = b'a';
        }
        let err = cddl_check(&cddl, &broken).expect_err("a text digest validated");
        assert!(err.contains("expected type bytes"), "{err}");
    }
    // veraison's signed good vector validates too, payload and all (the validator is not simply refusing
    // others'). Left out: its unsigned one (its class map lists `vendor, model, class-id`; the crate wants
    // map keys in the CDDL's order) and the one with extensions (keys -1 in sockets the core CDDL leaves
    // empty: refused, rightly, by the base CDDL).
    let v = std::fs::read(testdata("veraison-signed-good-corim.cbor")).unwrap();
    cddl_check(&cddl, &v).unwrap();
    let top = fw::cbor::decode(&v).unwrap();
    cddl_check(
        &cddl,
        top.as_tag().unwrap().1.as_array().unwrap()[2]
            .as_bytes()
            .unwrap(),
    )
    .unwrap();
}

// ---------------------------------------------------------------------------------------------------
// OCP S.A.F.E. reports.

const OCP_REPORTS: &[&str] = &[
    "ocp-safe-msft-hsm-layer0-rot.cbor",
    "ocp-safe-msft-hsm-layer1-rot.cbor",
    "ocp-safe-msft-hsm-runtime.cbor",
];

#[test]
fn ocp_safe_reports_decode_list_and_verify_with_the_reviewers_key() {
    let dir = scratch("ocp");
    let tetrel = std::fs::read_to_string(testdata("ocp-safe-tetrel-ecdsa-p521.pub.pem")).unwrap();
    let trust = policy(&dir, &tetrel, None);
    for name in OCP_REPORTS {
        let path = testdata(name);
        let bytes = std::fs::read(&path).unwrap();
        // fwscan reads it: COSE_Sign with one signer (no alg header), a CoMID of conditional endorsements.
        let c = fw::decode(&bytes).unwrap();
        assert_eq!(c.signatures.len(), 1, "{name}");
        assert!(c.id.starts_with("sfr-corim-"), "{name}: {}", c.id);
        assert!(
            c.notes
                .iter()
                .any(|n| n.contains("conditional-endorsement")),
            "{name}: {:?}",
            c.notes
        );
        // Microsoft's crate reads no COSE_Sign; its payload is an ordinary #6.501 CoRIM to it.
        let top = fw::cbor::decode(&bytes).unwrap();
        let payload = top.as_tag().unwrap().1.as_array().unwrap()[2]
            .as_bytes()
            .unwrap()
            .to_vec();
        let registry = corim::profile::ProfileRegistry::new();
        let doc = validate(
            &payload,
            &ValidationContext::new(TimeCheck::Skip, &registry),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let comid = &doc.payload().comids[0];
        assert_eq!(
            format!("{:?}", comid.tag_identity.tag_id),
            format!(
                "{:?}",
                corim::types::common::TagIdChoice::Text(c.comids[0].tag_id.clone())
            )
        );
        // `fwscan verify` with the reviewer's published P-521 key: verified (ES512), and the listing names
        // the unused triples.
        let (code, out, err) = fwscan(&["verify", p(&path), "--trust", p(&trust)]);
        assert_eq!(code, 0, "{name}: {out} {err}");
        assert!(out.contains("names no alg"), "{name}: {out}");
        assert!(out.contains("conditional-endorsement"), "{name}: {out}");
        // A flipped signature byte: refused.
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 3] ^= 1;
        let b = dir.join(format!("bad-{name}"));
        std::fs::write(&b, &bad).unwrap();
        let (code, out, _) = fwscan(&["verify", p(&b), "--trust", p(&trust)]);
        assert_eq!(code, 2, "{name}: {out}");
        assert!(out.contains("manifest-signature-invalid"), "{name}: {out}");
    }
    // Another P-256 key does not verify them.
    let (_, other) = p256_key(&dir, 4);
    let t2 = policy(&dir, &other, None);
    let (code, out, _) = fwscan(&["verify", p(&testdata(OCP_REPORTS[0])), "--trust", p(&t2)]);
    assert_eq!(code, 2);
    assert!(out.contains("manifest-signature-invalid"), "{out}");
}
