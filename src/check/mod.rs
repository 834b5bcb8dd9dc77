//! Checks that need no baseline: parser self-consistency notes, known-threat signature rules, Secure Boot
//! variables, and code hidden outside any FFS file. `fwscan check` runs them on their own; `scan` runs
//! them beside the baseline comparison.
//!
//! Rules are evaluated per subject (an FFS file with everything inside it, an NVRAM variable, a
//! filesystem file, or the whole image). Byte patterns are searched with one Aho-Corasick automaton over
//! the literal anchors of all patterns, so every body is read once whatever the number of rules.

pub mod chipsec;
pub mod rules;
pub mod secureboot;

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use aho_corasick::AhoCorasick;
use md5::Digest as _;
use rayon::prelude::*;

use crate::finding::{ByteRange, Code, Finding, Severity};
use crate::region::{glob_match, Policy, Region, RegionKind};
pub use rules::{Expr, Rule, RuleError, RuleProblem, Scope};

/// Rules compiled for matching.
#[derive(Debug)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    patterns: Vec<Vec<Option<u8>>>,
    /// Per pattern: offset of its anchor inside the pattern.
    anchor_offset: Vec<usize>,
    /// Per automaton pattern (anchor): the byte patterns that use it.
    anchor_users: Vec<Vec<usize>>,
    automaton: Option<AhoCorasick>,
    regexes: Vec<regex::bytes::Regex>,
}

impl RuleSet {
    /// No rules at all.
    pub fn empty() -> RuleSet {
        RuleSet {
            rules: Vec::new(),
            patterns: Vec::new(),
            anchor_offset: Vec::new(),
            anchor_users: Vec::new(),
            automaton: None,
            regexes: Vec::new(),
        }
    }

    /// Compiles rules (they were validated when loaded).
    pub fn new(rules: Vec<Rule>) -> Result<RuleSet, rules::RuleProblem> {
        let mut patterns = Vec::new();
        let mut regex_src = Vec::new();
        for r in &rules {
            let mut visit = |e: &Expr| match e {
                Expr::Bytes(p) => {
                    if let Ok(p) = rules::parse_pattern(p) {
                        if !patterns.contains(&p) {
                            patterns.push(p);
                        }
                    }
                }
                Expr::Regexp(s) if !regex_src.contains(s) => regex_src.push(s.clone()),
                _ => {}
            };
            walk_expr(&r.expr, &mut visit);
            if let Some(x) = &r.exclude {
                walk_expr(x, &mut visit);
            }
        }
        let mut anchors: Vec<Vec<u8>> = Vec::new();
        let mut anchor_users: Vec<Vec<usize>> = Vec::new();
        let mut anchor_offset = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            let (off, lit) = longest_literal(p);
            anchor_offset.push(off);
            match anchors.iter().position(|a| *a == lit) {
                Some(j) => anchor_users[j].push(i),
                None => {
                    anchors.push(lit);
                    anchor_users.push(vec![i]);
                }
            }
        }
        let automaton = if anchors.is_empty() {
            None
        } else {
            Some(AhoCorasick::new(&anchors).map_err(rules::RuleProblem::Automaton)?)
        };
        let regexes = regex_src
            .iter()
            .map(|s| rules::compile_regex(s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RuleSet {
            rules,
            patterns,
            anchor_offset,
            anchor_users,
            automaton,
            regexes,
        })
    }

    /// The built-in rules (`signatures/threats.toml`).
    pub fn builtin() -> Result<RuleSet, RuleError> {
        let rules = rules::builtin()?;
        RuleSet::new(rules).map_err(|m| {
            RuleError::new(
                std::path::Path::new("signatures/threats.toml"),
                None,
                m.to_string(),
            )
        })
    }

    /// Ids of the byte patterns present in `body`.
    fn find_patterns(&self, body: &[u8], out: &mut HashSet<usize>) {
        let Some(ac) = &self.automaton else {
            return;
        };
        for m in ac.find_overlapping_iter(body) {
            for &pi in &self.anchor_users[m.pattern().as_usize()] {
                if out.contains(&pi) {
                    continue;
                }
                let Some(start) = m.start().checked_sub(self.anchor_offset[pi]) else {
                    continue;
                };
                let p = &self.patterns[pi];
                let Some(window) = body.get(start..start.saturating_add(p.len())) else {
                    continue;
                };
                if window.len() == p.len()
                    && p.iter()
                        .zip(window)
                        .all(|(want, got)| want.is_none_or(|w| w == *got))
                {
                    out.insert(pi);
                }
            }
        }
    }
}

fn walk_expr(e: &Expr, f: &mut dyn FnMut(&Expr)) {
    f(e);
    match e {
        Expr::All(v) | Expr::Any(v) => v.iter().for_each(|x| walk_expr(x, f)),
        Expr::Not(x) => walk_expr(x, f),
        _ => {}
    }
}

/// The longest run of literal bytes of a pattern and its offset.
fn longest_literal(p: &[Option<u8>]) -> (usize, Vec<u8>) {
    let mut best = (0, Vec::new());
    let mut i = 0;
    while i < p.len() {
        if p[i].is_some() {
            let start = i;
            let mut run = Vec::new();
            while let Some(Some(b)) = p.get(i) {
                run.push(*b);
                i += 1;
            }
            if run.len() > best.1.len() {
                best = (start, run);
            }
        } else {
            i += 1;
        }
    }
    best
}

/// What is known about one subject. Digests are computed only when a rule asks for them (most rules
/// decide on GUIDs and names), once per algorithm, over every digestable part of the subject.
#[derive(Debug, Default, Clone)]
struct Facts<'a> {
    guids: HashSet<String>,
    ui_names: HashSet<String>,
    variables: HashSet<String>,
    fs_paths: HashSet<String>,
    /// The byte ranges digest matchers look at.
    digest_inputs: Vec<&'a [u8]>,
    sha256: OnceLock<HashSet<String>>,
    sha1: OnceLock<HashSet<String>>,
    md5: OnceLock<HashSet<String>>,
    authenticode: HashSet<String>,
    patterns: HashSet<usize>,
    regexes: HashSet<usize>,
    cert_subjects: Vec<String>,
}

impl<'a> Facts<'a> {
    fn merge(&mut self, o: &Facts<'a>) {
        self.guids.extend(o.guids.iter().cloned());
        self.ui_names.extend(o.ui_names.iter().cloned());
        self.variables.extend(o.variables.iter().cloned());
        self.fs_paths.extend(o.fs_paths.iter().cloned());
        self.digest_inputs.extend(o.digest_inputs.iter().copied());
        self.authenticode.extend(o.authenticode.iter().cloned());
        self.patterns.extend(o.patterns.iter().copied());
        self.regexes.extend(o.regexes.iter().copied());
        self.cert_subjects.extend(o.cert_subjects.iter().cloned());
    }

    fn has_digest(&self, alg: DigestAlg, want: &str) -> bool {
        let (cell, f): (_, fn(&[u8]) -> String) = match alg {
            DigestAlg::Sha256 => (&self.sha256, |b| {
                crate::hash::digest(crate::hash::Alg::Sha256, b)
            }),
            DigestAlg::Sha1 => (&self.sha1, |b| hex::encode(sha1::Sha1::digest(b))),
            DigestAlg::Md5 => (&self.md5, |b| hex::encode(md5::Md5::digest(b))),
        };
        cell.get_or_init(|| self.digest_inputs.iter().map(|b| f(b)).collect())
            .contains(&want.to_ascii_lowercase())
    }
}

#[derive(Debug, Clone, Copy)]
enum DigestAlg {
    Sha256,
    Sha1,
    Md5,
}

fn eval(e: &Expr, f: &Facts<'_>, set: &RuleSet) -> bool {
    match e {
        Expr::All(v) => v.iter().all(|x| eval(x, f, set)),
        Expr::Any(v) => v.iter().any(|x| eval(x, f, set)),
        Expr::Not(x) => !eval(x, f, set),
        Expr::Guid(g) => rules::parse_guid_text(g).is_ok_and(|g| f.guids.contains(&g)),
        Expr::UiName(n) => f.ui_names.contains(n),
        Expr::Sha256(h) => f.has_digest(DigestAlg::Sha256, h),
        Expr::Sha1(h) => f.has_digest(DigestAlg::Sha1, h),
        Expr::Md5(h) => f.has_digest(DigestAlg::Md5, h),
        Expr::Authenticode(h) => f.authenticode.contains(&h.to_ascii_lowercase()),
        Expr::Bytes(p) => rules::parse_pattern(p)
            .ok()
            .and_then(|p| set.patterns.iter().position(|x| *x == p))
            .is_some_and(|i| f.patterns.contains(&i)),
        Expr::Regexp(r) => set
            .regexes
            .iter()
            .position(|x| x.as_str() == r)
            .is_some_and(|i| f.regexes.contains(&i)),
        Expr::CertSubject(s) => {
            let s = s.to_ascii_lowercase();
            f.cert_subjects
                .iter()
                .any(|c| c.to_ascii_lowercase().contains(&s))
        }
        Expr::Variable(n) => f.variables.contains(n),
        Expr::FsPath(g) => f.fs_paths.iter().any(|p| glob_match(g, p)),
    }
}

/// A subject of rule evaluation.
struct Subject<'a> {
    node: &'a Region,
    scope: Scope,
    facts: Facts<'a>,
}

/// Whether a variable node is live (not deleted or superseded).
fn live_variable(r: &Region) -> bool {
    !matches!(
        r.attr_str("state"),
        Some(s) if s.contains("deleted") || s.contains("transition") || s.contains("invalid")
    )
}

fn variable_name(r: &Region) -> Option<&str> {
    r.attr_str("name")
}

/// The data bytes of a variable (its `data` child, or itself).
fn variable_data(r: &Region) -> &[u8] {
    r.children
        .iter()
        .find(|c| c.name == "data")
        .map(Region::bytes)
        .unwrap_or_else(|| r.bytes())
}

/// Whether a node still holds compressed content that was never expanded (a `scan` leaves content that
/// equals the signed baseline compressed): its bytes are not what rules describe, so they are neither
/// digested nor searched. `check` parses everything and has no such nodes.
fn holds_unexpanded(node: &Region) -> bool {
    node.is_lazy() || node.children.iter().any(holds_unexpanded)
}

fn collect_facts<'a>(node: &'a Region, set: &RuleSet, f: &mut Facts<'a>) {
    if node.is_lazy() {
        return;
    }
    let bytes = node.bytes();
    // Digests of the things rules name: the subject itself, filesystem files, blobs, sections — for a
    // leaf section its body without the section header (what CHIPSEC hashes and UEFIExtract extracts as
    // body.bin), for an encapsulating section its whole bytes.
    match node.kind {
        RegionKind::Section if node.children.is_empty() => {
            if let Some(body) = leaf_section_body(bytes) {
                f.digest_inputs.push(body);
            }
        }
        RegionKind::File
        | RegionKind::Section
        | RegionKind::FsFile
        | RegionKind::Blob
        | RegionKind::Variable
            if !holds_unexpanded(node) =>
        {
            f.digest_inputs.push(bytes)
        }
        _ => {}
    }
    if let Some(a) = node.attr_str("authenticode-sha256") {
        f.authenticode.insert(a.to_ascii_lowercase());
    }
    if node.children.is_empty() {
        set.find_patterns(bytes, &mut f.patterns);
        for (i, r) in set.regexes.iter().enumerate() {
            if r.is_match(bytes) {
                f.regexes.insert(i);
            }
        }
    }
    // A nested module (an FFS file inside an FV image inside this one) is a subject of its own: its
    // content is not attributed to the container too.
    for c in node.children.iter().filter(|c| c.kind != RegionKind::File) {
        collect_facts(c, set, f);
    }
}

/// The body of a leaf FFS section: after the 4-byte header, or the 8-byte one when the 24-bit size is
/// 0xFFFFFF (extended size).
fn leaf_section_body(b: &[u8]) -> Option<&[u8]> {
    let hdr = if b.get(0..3)? == [0xFF, 0xFF, 0xFF] {
        8
    } else {
        4
    };
    b.get(hdr..)
}

fn subjects<'a>(root: &'a Region, set: &RuleSet) -> Vec<Subject<'a>> {
    let mut nodes: Vec<(&Region, Scope)> = Vec::new();
    root.walk(&mut |r| match r.kind {
        RegionKind::File => nodes.push((r, Scope::Module)),
        RegionKind::Variable if live_variable(r) => nodes.push((r, Scope::Variable)),
        RegionKind::FsFile => nodes.push((r, Scope::FsFile)),
        _ => {}
    });
    nodes
        .into_par_iter()
        .map(|(node, scope)| {
            let mut facts = Facts::default();
            match scope {
                Scope::Module => {
                    if let Some(g) = node.attr_str("guid") {
                        facts.guids.insert(g.to_ascii_uppercase());
                    }
                    if let Some(n) = node.attr_str("ui-name") {
                        facts.ui_names.insert(n.to_string());
                    }
                    collect_facts(node, set, &mut facts);
                }
                Scope::Variable => {
                    if let Some(n) = variable_name(node) {
                        facts.variables.insert(n.to_string());
                    }
                    if let Some(g) = node.attr_str("vendor-guid") {
                        facts.guids.insert(g.to_ascii_uppercase());
                    }
                    if let Ok(subjects) = secureboot::certificate_subjects(variable_data(node)) {
                        facts.cert_subjects = subjects;
                    }
                    collect_facts(node, set, &mut facts);
                }
                Scope::FsFile => {
                    if let Some(p) = node.attr_str("file-path") {
                        facts.fs_paths.insert(p.to_string());
                    }
                    collect_facts(node, set, &mut facts);
                }
                Scope::Image => {}
            }
            Subject { node, scope, facts }
        })
        .collect()
}

/// Evaluates every rule against a tree.
pub fn match_rules(root: &Region, set: &RuleSet) -> Vec<Finding> {
    if set.rules.is_empty() {
        return Vec::new();
    }
    let subs = subjects(root, set);
    let mut image = Facts::default();
    for s in &subs {
        image.merge(&s.facts);
    }
    let code_of = |rule: &Rule| {
        rule.code
            .as_deref()
            .and_then(Code::parse)
            .unwrap_or(Code::KnownThreat)
    };
    let hit = |rule: &Rule, facts: &Facts<'_>| {
        eval(&rule.expr, facts, set) && !rule.exclude.as_ref().is_some_and(|x| eval(x, facts, set))
    };
    // Subjects in parallel (digests, when a rule needs them, are computed there); findings in rule order,
    // then subject order, as if evaluated one after the other.
    let mut hits: Vec<(usize, usize)> = subs
        .par_iter()
        .enumerate()
        .flat_map_iter(|(si, s)| {
            set.rules
                .iter()
                .enumerate()
                .filter(move |(_, r)| r.scope == s.scope && hit(r, &s.facts))
                .map(move |(ri, _)| (ri, si))
        })
        .collect();
    hits.sort_unstable();
    let mut out = Vec::new();
    let mut next = hits.iter().peekable();
    for (ri, rule) in set.rules.iter().enumerate() {
        if rule.scope == Scope::Image {
            if hit(rule, &image) {
                out.push(rule_finding(rule, code_of(rule), root));
            }
            continue;
        }
        while let Some(&&(r, si)) = next.peek() {
            if r != ri {
                break;
            }
            out.push(rule_finding(rule, code_of(rule), subs[si].node));
            next.next();
        }
    }
    out
}

fn rule_finding(rule: &Rule, code: Code, node: &Region) -> Finding {
    let mut f = Finding::on(
        code,
        node,
        format!(
            "rule {} ({}): {} [{}]",
            rule.id,
            rule.name,
            rule.description,
            rule.references.join(" ")
        ),
    );
    f.severity = rule.severity;
    f.rule = Some(rule.id.clone());
    f
}

/// Secure Boot state: an enrolled Platform Key without a usable `dbx` → `dbx-missing`.
pub fn secure_boot_checks(root: &Region) -> Vec<Finding> {
    let mut stores: Vec<&Region> = Vec::new();
    root.walk(&mut |r| {
        if r.children.iter().any(|c| c.kind == RegionKind::Variable) {
            stores.push(r);
        }
    });
    let mut out = Vec::new();
    for store in stores {
        let live = |name: &str, vendor: &str| {
            store.children.iter().find(|v| {
                v.kind == RegionKind::Variable
                    && live_variable(v)
                    && variable_name(v) == Some(name)
                    && v.attr_str("vendor-guid")
                        .is_some_and(|g| g.eq_ignore_ascii_case(vendor))
            })
        };
        let pk_enrolled =
            live("PK", secureboot::GLOBAL_VARIABLE).is_some_and(|pk| !variable_data(pk).is_empty());
        if !pk_enrolled {
            continue;
        }
        let dbx = live("dbx", secureboot::IMAGE_SECURITY_DATABASE);
        let entries =
            dbx.map(|d| secureboot::parse_signature_lists(variable_data(d)).map_or(0, |s| s.len()));
        match entries {
            None => out.push(Finding::on(
                Code::DbxMissing,
                store,
                "a Platform Key is enrolled but there is no dbx (forbidden signatures) variable",
            )),
            Some(0) => out.push(Finding::on(
                Code::DbxMissing,
                dbx.unwrap_or(store),
                "a Platform Key is enrolled but dbx holds no signature",
            )),
            Some(_) => {}
        }
    }
    out
}

/// Executable headers (PE `MZ`..`PE\0\0`, or TE `VZ`) in padding or free space outside any FFS file.
pub fn code_outside_ffs(root: &Region) -> Vec<Finding> {
    let mut out = Vec::new();
    fn rec(r: &Region, in_file: bool, out: &mut Vec<Finding>) {
        let in_file = in_file || r.kind == RegionKind::File;
        if !in_file
            && matches!(r.kind, RegionKind::Padding | RegionKind::FreeSpace)
            && r.policy != Policy::Blank
        {
            if let Some(off) = find_executable(r.bytes()) {
                let mut f = Finding::on(
                    Code::CodeOutsideFfs,
                    r,
                    format!(
                        "executable header at {:#x}, outside any FFS file",
                        r.offset.saturating_add(off as u64)
                    ),
                );
                f.ranges = vec![ByteRange {
                    offset: r.offset.saturating_add(off as u64),
                    length: 2,
                    space: r.space,
                    base: r.base.clone(),
                }];
                out.push(f);
            }
        }
        for c in &r.children {
            rec(c, in_file, out);
        }
    }
    rec(root, false, &mut out);
    out
}

/// Offset of the first plausible PE or TE header.
pub fn find_executable(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    // The next "MZ" or "VZ" at or after `i`: a 'Z' (SIMD search) preceded by 'M' or 'V'.
    while let Some(p) = b.get(i + 1..).and_then(|s| memchr::memchr(b'Z', s)) {
        let at = i + p;
        if !matches!(b[at], b'M' | b'V') {
            i = at + 1;
            continue;
        }
        if b[at] == b'M' {
            let lfanew = b
                .get(at + 0x3C..at + 0x40)
                .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize);
            if let Some(l) = lfanew.filter(|l| (0x40..0x1000).contains(l)) {
                if b.get(at + l..at + l + 4) == Some(b"PE\0\0") {
                    return Some(at);
                }
            }
        } else if let Some(h) = b.get(at..at + 40) {
            let machine = u16::from_le_bytes([h[2], h[3]]);
            let sections = h[4];
            let subsystem = h[5];
            if matches!(machine, 0x014C | 0x8664 | 0xAA64 | 0x01C2 | 0x5064 | 0x0200)
                && (1..=96).contains(&sections)
                && matches!(subsystem, 10..=13)
            {
                return Some(at);
            }
        }
        i = at + 1;
    }
    None
}

/// Padding between volumes, regions or partitions that holds data (`padding-not-empty`). Padding that is
/// uniformly 0xFF or 0x00 is empty (images padded to a flash size with zeros are common), and alignment
/// padding inside FFS files and sections is part of their structure and covered by their digests.
pub fn padding_checks(root: &Region) -> Vec<Finding> {
    let mut out = Vec::new();
    fn rec(r: &Region, out: &mut Vec<Finding>) {
        let container = matches!(
            r.kind,
            RegionKind::Image
                | RegionKind::FlashRegion
                | RegionKind::Partition
                | RegionKind::Volume
        );
        for c in &r.children {
            if container
                && c.kind == RegionKind::Padding
                && (r.kind != RegionKind::Volume || c.size >= 8)
                && !uniform_erased(c.bytes())
                && !arm_reset_branch(c)
                && !c.notes.iter().any(|n| n.code == Code::PaddingNotEmpty)
            {
                let mut f = Finding::on(
                    Code::PaddingNotEmpty,
                    c,
                    format!("{} bytes between known structures hold data", c.size),
                );
                f.ranges = non_blank_range(c).into_iter().collect();
                out.push(f);
            }
            rec(c, out);
        }
    }
    rec(root, &mut out);
    out
}

/// The ArmVirtPkg reset vector: padding at the very start of the image whose only content is one branch
/// instruction jumping to the end of the padding (the first firmware volume), the rest erased: an AArch64
/// `B imm26` (QEMU's AArch64 firmware, AAVMF/QEMU_EFI.fd) or a 32-bit ARM `B<AL> imm24` such as
/// `fe 03 00 ea` (AAVMF32). Four bytes cannot hide an implant.
fn arm_reset_branch(c: &Region) -> bool {
    let b = c.bytes();
    if c.offset != 0 || c.space != crate::region::Space::Image || b.len() < 8 {
        return false;
    }
    let insn = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    crate::formats::util::arm_branch_target(insn) == Some(c.size)
        && b[4..].iter().all(|&x| x == 0xFF)
}

/// The byte range of a node's non-blank bytes: from the first byte that is neither 0xFF nor 0x00 to the
/// last one, in the node's space.
fn non_blank_range(r: &Region) -> Option<ByteRange> {
    let b = r.bytes();
    let blank = |x: &u8| *x == 0xFF || *x == 0x00;
    let first = b.iter().position(|x| !blank(x))?;
    let last = b.iter().rposition(|x| !blank(x))?;
    Some(ByteRange {
        offset: r.offset.saturating_add(first as u64),
        length: (last - first + 1) as u64,
        space: r.space,
        base: r.base.clone(),
    })
}

/// Gives every `padding-not-empty` finding made from a parser note a range from the note's offset (the
/// first byte the parser could not explain) to the node's last non-blank byte (a note carries one offset
/// only).
fn widen_padding_ranges(root: &Region, out: &mut [Finding]) {
    let mut ranges: HashMap<&str, ByteRange> = HashMap::new();
    root.walk(&mut |r| {
        let Some(note) = r.notes.iter().find(|n| n.code == Code::PaddingNotEmpty) else {
            return;
        };
        if let Some(mut range) = non_blank_range(r) {
            let end = range.offset + range.length;
            if let Some(o) = note.offset.filter(|&o| o > range.offset && o < end) {
                range.offset = o;
                range.length = end - o;
            }
            ranges.insert(r.path.as_str(), range);
        }
    });
    for f in out.iter_mut() {
        if f.code == Code::PaddingNotEmpty {
            if let Some(r) = ranges.get(f.path.as_str()) {
                f.ranges = vec![r.clone()];
            }
        }
    }
}

/// All bytes 0xFF, or all bytes 0x00.
fn uniform_erased(b: &[u8]) -> bool {
    b.first()
        .is_none_or(|&x| (x == 0xFF || x == 0x00) && b.iter().all(|&y| y == x))
}

/// Every baseline-free check on a tree: parser notes, padding, hidden code, Secure Boot, rules.
pub fn run(root: &Region, rules: &RuleSet) -> Vec<Finding> {
    let mut out = crate::region::note_findings(root);
    widen_padding_ranges(root, &mut out);
    out.extend(padding_checks(root));
    out.extend(code_outside_ffs(root));
    out.extend(secure_boot_checks(root));
    out.extend(match_rules(root, rules));
    out
}

/// Findings from the baseline-free checks that also apply during `scan` (notes are handled by the
/// comparison itself, which drops notes the baseline accepted).
pub fn run_for_scan(root: &Region, rules: &RuleSet) -> Vec<Finding> {
    let mut out = code_outside_ffs(root);
    out.extend(secure_boot_checks(root));
    out.extend(match_rules(root, rules));
    out.retain(|f| f.severity > Severity::Info);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_and_wildcards() {
        let rules = rules::parse_rules(
            "schema_version = 1\n[[rule]]\nid=\"t\"\nname=\"t\"\ndescription=\"d\"\nreferences=[\"x\"]\nmatch = { bytes = \"AA ?? CC DD EE\" }\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let set = RuleSet::new(rules).unwrap();
        let mut found = HashSet::new();
        set.find_patterns(&[0, 0xAA, 0x01, 0xCC, 0xDD, 0xEE], &mut found);
        assert_eq!(found.len(), 1);
        let mut none = HashSet::new();
        set.find_patterns(&[0xCC, 0xDD, 0xEE, 0, 0], &mut none);
        set.find_patterns(&[0xAB, 0x01, 0xCC, 0xDD, 0xEE], &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn finds_pe_and_te_headers_only_when_plausible() {
        let mut b = vec![0u8; 0x400];
        b[0x100] = b'M';
        b[0x101] = b'Z';
        assert_eq!(find_executable(&b), None);
        b[0x13C] = 0x80;
        b[0x180..0x184].copy_from_slice(b"PE\0\0");
        assert_eq!(find_executable(&b), Some(0x100));
        let mut t = vec![0xFFu8; 64];
        t[8..10].copy_from_slice(b"VZ");
        t[10..12].copy_from_slice(&0x8664u16.to_le_bytes());
        t[12] = 3;
        t[13] = 11;
        assert_eq!(find_executable(&t), Some(8));
    }

    #[test]
    fn the_header_search_finds_what_a_byte_by_byte_search_finds() {
        // The plain search every candidate offset goes through, as the SIMD one replaced it.
        fn reference(b: &[u8]) -> Option<usize> {
            (0..b.len()).find(|&at| find_executable(&b[at..]) == Some(0))
        }
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for round in 0..200 {
            let len = 64 + round * 7;
            let mut b: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Mostly the letters and values the headers are made of.
                    [
                        b'M', b'V', b'Z', b'P', b'E', 0, 0x64, 0x86, 3, 11, 0x40, 0xFF,
                    ][(x % 12) as usize]
                })
                .collect();
            if round % 3 == 0 {
                let at = (x as usize) % (len - 40);
                b[at..at + 2].copy_from_slice(b"VZ");
                b[at + 2..at + 4].copy_from_slice(&0x8664u16.to_le_bytes());
                b[at + 4] = 3;
                b[at + 5] = 11;
            }
            assert_eq!(find_executable(&b), reference(&b), "round {round}");
        }
    }
}
