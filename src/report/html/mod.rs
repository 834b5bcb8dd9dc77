//! `--format html`: one self-contained page per run (issue 25).
//!
//! The page holds inline CSS and inline SVG only: no script, no font, no image, no link to anything but its
//! own fragments, under the Content-Security-Policy `default-src 'none'; style-src 'unsafe-inline';
//! img-src data:`. It shows, per image: a verdict header with the trust status (a banner when signatures
//! were waived), the baseline's identity and signers, the **flash map** (spans of flash regions,
//! partitions and volumes, each byte coloured by its protection class, findings drawn as markers linked
//! to their table rows), the findings table and the collapsible region tree with digests and evidence.
//! For `audit` and `merge` ([`FleetPage`]): the summary by product and version, the slowest and largest
//! images, then one section per image with findings (clean images in one collapsed list).
//!
//! Every string goes through [`esc`]: names from an image stay text (control and bidi characters shown as
//! escapes), and only ever appear as element text (a table cell, an SVG `<title>`): no attribute holds a
//! value from an image. Ids and `href`s are generated (`f-0-3`), never taken from an image; colours come
//! from a fixed table.
//!
//! Bounded: the page is at most [`PAGE_LIMIT`] bytes whatever the input. The tree shows at most
//! [`map::MAX_TREE_NODES`] nodes (breadth first, [`map::MAX_CHILDREN`] per node), the map at most
//! [`map::MAX_SPANS`] spans, and sections stop being detailed past [`DETAIL_LIMIT`]; what is left out is
//! counted on the page.

mod esc;
pub mod map;

use std::fmt::Write as _;

pub use esc::{esc, esc_max, hidden};
pub use map::{Class, FlashMap, Marker};

use crate::finding::{ErrorInfo, Finding};
use crate::region::Space;

use super::{display_path, Report};

/// The most bytes a page has.
pub const PAGE_LIMIT: usize = 20 << 20;
/// Past this many bytes, images are no longer shown in detail (map, tree, findings), only listed.
pub const DETAIL_LIMIT: usize = 14 << 20;
/// Past this many bytes, images are only counted.
const LIST_LIMIT: usize = 19 << 20;
/// Findings shown per image in a scan or check page (audit rows hold at most what `audit` keeps).
pub const MAX_FINDINGS: usize = 2_000;
/// The Content-Security-Policy of every page.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#fff}
main{padding:0 1.2em 2em}
header.verdict{padding:.8em 1.2em;color:#fff}
header.verdict h1{margin:0;font-size:1.5em}
header.verdict p{margin:.2em 0 0}
.v-clean{background:#1a7f37}.v-findings{background:#b42318}.v-error{background:#8a5a00}
.banner{background:#fff3cd;border:2px solid #b42318;color:#7a1208;padding:.6em 1.2em;font-weight:bold}
h2{font-size:1.2em;margin:1.2em 0 .4em;word-break:break-all}
h3{font-size:1em;margin:1em 0 .3em}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:.1em 1em;margin:.3em 0}
dl.facts dt{color:#555}dl.facts dd{margin:0;word-break:break-all}
table{border-collapse:collapse;margin:.3em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:.2em .4em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
td.p{word-break:break-all;max-width:30em}
code,.mono{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}
tr:target{background:#ffe9a8}
.sev-error{color:#b42318;font-weight:bold}.sev-warning{color:#8a5a00;font-weight:bold}
svg.map{width:100%;height:auto;border:1px solid #ddd;background:#fafafa}
svg.map text{font:9px ui-monospace,monospace;fill:#222}
svg.map .span rect{stroke:#333;stroke-width:.5}
svg.map .marker rect{fill:#c2185b;stroke:#000;stroke-width:.5}
.legend{display:flex;flex-wrap:wrap;gap:.3em 1.2em;margin:.4em 0;font-size:12px}
.sw{display:inline-block;width:.9em;height:.9em;border:1px solid #555;vertical-align:-.1em;margin-right:.3em}
details.tree{margin:.1em 0 .1em 1em}
details.tree>summary{cursor:pointer}
.node{font-family:ui-monospace,monospace;font-size:12px}
.ev{color:#1a5e20}.note{color:#8a5a00}
.muted{color:#666}
section.image{border-top:1px solid #ddd;margin-top:1em}
"#;

/// The page head, up to the opening of `<main>`.
fn head(o: &mut String, title: &str) {
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style></head>\n<body>\n",
        esc(title)
    );
}

fn foot(o: &mut String) {
    let _ = write!(
        o,
        "<p class=\"muted\">{} {} · one self-contained page: no script, no network</p>\n</main></body></html>\n",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION")
    );
}

fn verdict_word(exit: i32) -> (&'static str, &'static str) {
    match exit {
        0 => ("CLEAN", "v-clean"),
        1 => ("FINDINGS", "v-findings"),
        _ => ("UNDECIDED", "v-error"),
    }
}

fn verdict_header(o: &mut String, exit: i32, what: &str, trust: &str) {
    let (word, class) = verdict_word(exit);
    let _ = writeln!(
        o,
        "<header class=\"verdict {class}\" id=\"verdict\"><h1>{word}</h1><p>{} · exit code {exit} · baselines: <b id=\"trust\">{}</b></p></header>",
        esc(what),
        esc(trust)
    );
}

fn banner(o: &mut String, text: &str) {
    let _ = writeln!(
        o,
        "<div class=\"banner\" id=\"unverified\">{}</div>",
        esc(text)
    );
}

fn hex(n: u64) -> String {
    format!("{n:#x}")
}

fn space_text(space: Space, base: Option<&str>) -> String {
    match space {
        Space::Image => String::new(),
        Space::Decompressed => {
            format!(" in decompressed {}", base.map(display_path).unwrap_or("?"))
        }
    }
}

/// The findings table of image `img`; rows `f-{img}-{i}`, with a link to their marker when one is drawn.
fn findings_table(
    o: &mut String,
    img: usize,
    findings: &[Finding],
    total: usize,
    markers: &[Marker],
) {
    if findings.is_empty() {
        if total == 0 {
            o.push_str("<p>No findings.</p>\n");
        }
        return;
    }
    let _ = writeln!(
        o,
        "<h3>Findings ({total})</h3>\n<table class=\"findings\" id=\"findings-{img}\"><thead><tr><th>#</th><th>code</th><th>severity</th><th>category</th><th>path</th><th>byte range</th><th>expected / actual digest</th><th>message</th></tr></thead><tbody>"
    );
    for (i, f) in findings.iter().enumerate().take(MAX_FINDINGS) {
        let sev = f.severity.as_str();
        let name = f
            .name
            .as_deref()
            .map(|n| format!("<br><span class=\"muted\">{}</span>", esc(n)))
            .unwrap_or_default();
        let mut range = match (f.offset, f.size) {
            (Some(off), Some(size)) => format!(
                "<code>{}+{}</code>{}",
                hex(off),
                hex(size),
                esc(&space_text(f.space, f.base.as_deref()))
            ),
            _ => "-".into(),
        };
        if !f.ranges.is_empty() {
            let shown: Vec<String> = f
                .ranges
                .iter()
                .take(8)
                .map(|r| {
                    format!(
                        "{}..{}{}",
                        hex(r.offset),
                        hex(r.offset.saturating_add(r.length)),
                        space_text(r.space, r.base.as_deref())
                    )
                })
                .collect();
            let more = f.ranges.len().saturating_sub(8);
            let _ = write!(
                range,
                "<br><span class=\"muted\">changed: <code>{}</code>{}</span>",
                esc(&shown.join(", ")),
                if more > 0 {
                    format!(" (+{more} more)")
                } else {
                    String::new()
                }
            );
        }
        if let Some(m) = markers.iter().find(|m| m.finding == i) {
            let _ = write!(
                range,
                "<br><a href=\"#m-{img}-{}\">on the map</a>",
                m.finding
            );
        }
        let digests = if f.expected_digest.is_some() || f.actual_digest.is_some() {
            format!(
                "<code>{}</code><br><code>{}</code>",
                esc(f.expected_digest.as_deref().unwrap_or("-")),
                esc(f.actual_digest.as_deref().unwrap_or("-"))
            )
        } else {
            "-".into()
        };
        let _ = writeln!(
            o,
            "<tr id=\"f-{img}-{i}\"><td>{i}</td><td><code class=\"code\">{}</code></td><td class=\"sev-{sev}\">{sev}</td><td>{}</td><td class=\"p\"><code>{}</code>{name}</td><td>{range}</td><td>{digests}</td><td>{}</td></tr>",
            esc(f.code.as_str()),
            f.code.category().as_str(),
            esc(display_path(&f.path)),
            esc_max(&f.message, 1024)
        );
    }
    o.push_str("</tbody></table>\n");
    let shown = findings.len().min(MAX_FINDINGS);
    if total > shown {
        let _ = writeln!(
            o,
            "<p class=\"muted\" id=\"findings-{img}-more\">{} more finding(s) not shown (see the JSON report).</p>",
            total - shown
        );
    }
}

/// Map geometry: rows of [`W`] units, each [`ROW_H`] high.
const W: f64 = 1000.0;
const ROW_H: u64 = 100;
const ROW_BYTES: u64 = 1 << 20;
const MAX_ROWS: u64 = 16;

struct Geo {
    size: u64,
    rows: u64,
    per_row: u64,
}

impl Geo {
    fn new(size: u64) -> Geo {
        let size = size.max(1);
        let rows = size.div_ceil(ROW_BYTES).clamp(1, MAX_ROWS);
        Geo {
            size,
            rows,
            per_row: size.div_ceil(rows).max(1),
        }
    }

    /// The pieces of `[off, off+len)` per row: (row, x1, x2).
    fn segments(&self, off: u64, len: u64) -> Vec<(u64, f64, f64)> {
        let end = off.saturating_add(len).min(self.size);
        let mut v = Vec::new();
        let mut at = off.min(self.size);
        while at < end {
            let row = at / self.per_row;
            let row_end = ((row + 1) * self.per_row).min(end);
            let x = |b: u64| (b - row * self.per_row) as f64 * W / self.per_row as f64;
            v.push((row, x(at), x(row_end)));
            at = row_end;
        }
        v
    }
}

fn fmt_x(x: f64) -> String {
    format!("{x:.3}")
}

/// The SVG flash map of image `img`.
fn svg_map(
    o: &mut String,
    img: usize,
    size: u64,
    m: Option<&FlashMap>,
    markers: &[Marker],
    findings: &[Finding],
) {
    let g = Geo::new(size);
    let height = g.rows * ROW_H;
    let _ = writeln!(
        o,
        "<svg class=\"map\" id=\"map-{img}\" role=\"img\" viewBox=\"-4 0 1008 {height}\" data-size=\"{size}\" data-rows=\"{}\" data-row-bytes=\"{}\"><title>Flash map of {} bytes: {} row(s) of {} bytes</title>",
        g.rows,
        g.per_row,
        size,
        g.rows,
        g.per_row
    );
    for r in 0..g.rows {
        let y = r * ROW_H;
        let _ = writeln!(
            o,
            "<text x=\"0\" y=\"{}\">{}</text>",
            y + 9,
            hex(r * g.per_row)
        );
    }
    if let Some(m) = m {
        // Coverage band.
        o.push_str("<g class=\"coverage\">");
        for c in &m.classes {
            for (row, x1, x2) in g.segments(c.offset, c.size) {
                let _ = write!(
                    o,
                    "<rect class=\"cov\" data-class=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"16\" fill=\"{}\"><title>{}: {}+{} ({} bytes)</title></rect>",
                    c.class.as_str(),
                    fmt_x(x1),
                    row * ROW_H + 24,
                    fmt_x((x2 - x1).max(0.05)),
                    c.class.colour(),
                    c.class.as_str(),
                    hex(c.offset),
                    hex(c.size),
                    c.size
                );
            }
        }
        o.push_str("</g>\n");
        // Spans.
        for (k, s) in m.spans.iter().enumerate() {
            let _ = write!(
                o,
                "<g class=\"span d{}\" id=\"s-{img}-{k}\" data-kind=\"{}\" data-offset=\"{}\" data-size=\"{}\"><title>{} ({})\noffset {} size {} ({} bytes)\nsha256 {}</title>",
                s.depth,
                s.kind,
                s.offset,
                s.size,
                esc(display_path(&s.path)),
                s.kind,
                hex(s.offset),
                hex(s.size),
                s.size,
                s.digest
            );
            let shade = ["#ffffff", "#f1f1f1", "#e4e4e4"][(s.depth - 1).min(2)];
            for (row, x1, x2) in g.segments(s.offset, s.size) {
                let y = row * ROW_H + 42 + (s.depth as u64 - 1) * 17;
                let w = (x2 - x1).max(0.3);
                let _ = write!(
                    o,
                    "<rect class=\"seg\" data-row=\"{row}\" data-x1=\"{}\" data-x2=\"{}\" x=\"{}\" y=\"{y}\" width=\"{}\" height=\"15\" fill=\"{shade}\"/>",
                    fmt_x(x1),
                    fmt_x(x2),
                    fmt_x(x1),
                    fmt_x(w)
                );
                let chars = ((x2 - x1) / 5.6) as usize;
                if chars >= 4 {
                    let _ = write!(
                        o,
                        "<text x=\"{}\" y=\"{}\">{}</text>",
                        fmt_x(x1 + 2.0),
                        y + 11,
                        label(&s.label, chars.saturating_sub(1).min(80))
                    );
                }
            }
            o.push_str("</g>\n");
        }
    }
    // Markers.
    for mk in markers {
        let Some(f) = findings.get(mk.finding) else {
            continue;
        };
        let segs = g.segments(mk.offset, mk.size);
        let Some(&(row, x1, x2)) = segs.first() else {
            continue;
        };
        let _ = write!(
            o,
            "<a href=\"#f-{img}-{i}\"><g class=\"marker\" id=\"m-{img}-{i}\" data-finding=\"{i}\" data-offset=\"{}\" data-size=\"{}\" data-exact=\"{}\" data-row=\"{row}\" data-x1=\"{}\" data-x2=\"{}\"><title>{} {}\n{}+{}{}</title>",
            mk.offset,
            mk.size,
            mk.exact,
            fmt_x(x1),
            fmt_x(x2),
            esc(f.code.as_str()),
            esc(display_path(&f.path)),
            hex(mk.offset),
            hex(mk.size),
            if mk.exact {
                ""
            } else {
                " (the image-space node holding the finding's bytes)"
            },
            i = mk.finding
        );
        for (row, x1, x2) in segs {
            // At least 2 units wide, centred on the bytes, kept inside them where they are wider.
            let w = (x2 - x1).max(2.0);
            let x = ((x1 + x2) / 2.0 - w / 2.0).max(0.0);
            let _ = write!(
                o,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"10\"/>",
                fmt_x(x),
                row * ROW_H + 12,
                fmt_x(w)
            );
        }
        o.push_str("</g></a>\n");
    }
    o.push_str("</svg>\n");
}

/// A span label clipped to `max` characters (a `…` marks the cut), escaped.
fn label(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return esc(s);
    }
    let cut: String = s.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", esc(&cut))
}

fn legend(o: &mut String, m: &FlashMap) {
    o.push_str("<div class=\"legend\" id=\"legend\">");
    for (c, n) in &m.totals {
        let pct = if m.size == 0 {
            0.0
        } else {
            *n as f64 * 100.0 / m.size as f64
        };
        let _ = write!(
            o,
            "<span title=\"{}\"><span class=\"sw\" style=\"background:{}\"></span>{} {} bytes ({pct:.1}%)</span>",
            c.meaning(),
            c.colour(),
            c.as_str(),
            n
        );
    }
    o.push_str(
        "<span><span class=\"sw\" style=\"background:#c2185b\"></span>finding</span></div>\n",
    );
    let _ = writeln!(
        o,
        "<p class=\"muted\">Spans: the image's flash regions, partitions and volumes (first {} levels); {} smaller or further span(s) not drawn. Tree: {} node(s).</p>",
        map::SPAN_DEPTH,
        m.spans_hidden,
        m.nodes
    );
    if !m.notes.is_empty() {
        o.push_str("<ul class=\"notes\">");
        for n in m.notes.iter().take(200) {
            let _ = write!(o, "<li>{}</li>", esc(n));
        }
        o.push_str("</ul>\n");
    }
}

fn tree_node(o: &mut String, n: &map::TreeNode, depth: usize) {
    let off = if n.decompressed {
        format!("~{}", hex(n.offset))
    } else {
        hex(n.offset)
    };
    let line = format!(
        "<span class=\"node\">{} <b>{}</b> {} +{} {} <span class=\"muted\">sha256 {}</span></span>",
        off,
        esc_max(&n.label, 200),
        n.kind,
        hex(n.size),
        n.policy,
        n.digest
    );
    let mut extra = String::new();
    for e in &n.evidence {
        let _ = write!(extra, "<div class=\"ev node\">evidence: {}</div>", esc(e));
    }
    for e in n.notes.iter().take(20) {
        let _ = write!(extra, "<div class=\"note node\">note: {}</div>", esc(e));
    }
    if n.hidden > 0 {
        let _ = write!(
            extra,
            "<div class=\"muted node\">{} descendant node(s) not shown</div>",
            n.hidden
        );
    }
    if n.children.is_empty() {
        let _ = writeln!(o, "<div class=\"tree leaf\">{line}{extra}</div>");
        return;
    }
    let _ = writeln!(
        o,
        "<details class=\"tree\"{}><summary>{line}</summary>{extra}",
        if depth == 0 { " open" } else { "" }
    );
    for c in &n.children {
        tree_node(o, c, depth + 1);
    }
    o.push_str("</details>\n");
}

fn baselines(o: &mut String, r: &Report) {
    for m in r.baselines() {
        let p = &m.product;
        let signers = if m.trust.signers.is_empty() {
            "none".to_string()
        } else {
            m.trust
                .signers
                .iter()
                .map(|s| format!("{} ({})", s.key_id, s.role))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            o,
            "<dl class=\"facts manifest\"><dt>baseline</dt><dd><code>{}</code></dd><dt>product</dt><dd>{} {} {} {}</dd><dt>sequence</dt><dd>{}</dd><dt>created</dt><dd>{}{}</dd><dt>signer</dt><dd class=\"signer\">{}</dd><dt>trust</dt><dd>{}</dd></dl>",
            esc(&m.path),
            esc(&p.vendor),
            esc(&p.product),
            esc(&p.component),
            esc(&p.version),
            m.sequence,
            esc(&m.created),
            m.expires
                .as_deref()
                .map(|e| format!(", expires {}", esc(e)))
                .unwrap_or_default(),
            esc(&signers),
            esc(&m.trust.summary)
        );
    }
}

fn error_line(o: &mut String, e: &ErrorInfo) {
    let _ = writeln!(
        o,
        "<p class=\"sev-error\" id=\"error\">Could not decide: <code>{}</code>: {}</p>",
        esc(e.code.as_str()),
        esc_max(&e.message, 2048)
    );
}

/// A bounded list of `(path, detail)` items.
fn list(o: &mut String, title: &str, items: &[(String, String)]) {
    if items.is_empty() {
        return;
    }
    let _ = write!(o, "<h3>{} ({})</h3><ul>", esc(title), items.len());
    for (p, d) in items.iter().take(500) {
        let _ = write!(
            o,
            "<li><code>{}</code> {}</li>",
            esc(display_path(p)),
            esc(d)
        );
    }
    if items.len() > 500 {
        let _ = write!(o, "<li class=\"muted\">{} more</li>", items.len() - 500);
    }
    o.push_str("</ul>\n");
}

/// One image of a scan or check.
fn image_section(o: &mut String, img: usize, r: &Report, detailed: bool) {
    let (word, _) = verdict_word(r.exit_code);
    let open = r.exit_code != 0 || img == 0;
    let _ = writeln!(
        o,
        "<section class=\"image\" id=\"img-{img}\"><details{}><summary><h2 style=\"display:inline\">{}</h2> · <b class=\"verdict-word\">{word}</b> · {} finding(s)</summary>",
        if open { " open" } else { "" },
        esc(&r.image.path),
        r.findings.len()
    );
    let _ = writeln!(
        o,
        "<dl class=\"facts\"><dt>size</dt><dd>{} bytes ({})</dd>{}<dt>trust</dt><dd>{}</dd></dl>",
        r.image.size,
        hex(r.image.size),
        r.image
            .sha256
            .as_deref()
            .map(|s| format!("<dt>sha256</dt><dd><code>{}</code></dd>", esc(s)))
            .unwrap_or_default(),
        super::trust_status(r)
    );
    baselines(o, r);
    if let Some(e) = &r.error {
        error_line(o, e);
    }
    if !detailed {
        let _ = writeln!(
            o,
            "<p class=\"muted\">Not shown in detail: the page reached its size bound ({DETAIL_LIMIT} bytes); see the JSON report.</p></details></section>"
        );
        return;
    }
    let markers: Vec<Marker> = match &r.map {
        Some(m) => m.markers.clone(),
        None => map::markers(None, r.image.size, &r.findings),
    };
    if r.image.size > 0 && (r.map.is_some() || !markers.is_empty()) {
        o.push_str("<h3>Flash map</h3>\n");
        svg_map(
            o,
            img,
            r.image.size,
            r.map.as_deref(),
            &markers,
            &r.findings,
        );
        if let Some(m) = &r.map {
            legend(o, m);
        }
    }
    findings_table(o, img, &r.findings, r.findings.len(), &markers);
    let anchors: Vec<(String, String)> = r
        .anchors
        .iter()
        .map(|a| {
            (
                a.region.clone(),
                format!(
                    "{}+{}: part `{}` of baseline {} (found by {})",
                    hex(a.offset),
                    hex(a.size),
                    display_path(&a.part),
                    a.manifest,
                    a.anchor
                ),
            )
        })
        .collect();
    list(o, "Compared part by part", &anchors);
    let skipped: Vec<(String, String)> = r
        .skipped
        .iter()
        .map(|s| {
            (
                s.path.clone(),
                format!("{} ({} bytes)", s.policy.as_str(), s.size),
            )
        })
        .collect();
    list(o, "Not compared (per-machine or ignored)", &skipped);
    let uncovered: Vec<(String, String)> = r
        .uncovered
        .iter()
        .map(|u| (u.path.clone(), format!("{}+{}", hex(u.offset), hex(u.size))))
        .collect();
    list(o, "Not covered by any baseline (information)", &uncovered);
    if let Some(m) = &r.map {
        o.push_str("<h3>Region tree</h3>\n");
        tree_node(o, &m.tree, 0);
    }
    o.push_str("</details></section>\n");
}

fn unverified_text(reports: &[Report]) -> Option<String> {
    let n = reports
        .iter()
        .filter(|r| super::trust_status(r) == "UNVERIFIED")
        .count();
    (n > 0).then(|| {
        format!(
            "UNVERIFIED: {n} image(s) were compared against a baseline whose signature was not checked (--insecure-unsigned). Their verdicts prove nothing about the vendor's firmware."
        )
    })
}

/// The page of `scan` or `check` (one section per report).
pub fn scan_page(command: &str, reports: &[Report]) -> String {
    let mut o = String::new();
    let exit = reports.iter().map(|r| r.exit_code).max().unwrap_or(2);
    let title = match reports {
        [one] => format!("fwscan {command}: {}", one.image.path),
        _ => format!("fwscan {command}: {} images", reports.len()),
    };
    head(&mut o, &title);
    let trust = if reports.is_empty() {
        "none"
    } else if reports
        .iter()
        .any(|r| super::trust_status(r) == "UNVERIFIED")
    {
        "UNVERIFIED"
    } else if reports.iter().all(|r| super::trust_status(r) == "verified") {
        "verified"
    } else if reports.iter().all(|r| super::trust_status(r) == "none") {
        "none"
    } else {
        "verified (some images without a baseline)"
    };
    verdict_header(&mut o, exit, &title, trust);
    if let Some(t) = unverified_text(reports) {
        banner(&mut o, &t);
    }
    o.push_str("<main>\n");
    let mut listed_only = 0usize;
    for (i, r) in reports.iter().enumerate() {
        if o.len() > LIST_LIMIT {
            listed_only = reports.len() - i;
            break;
        }
        let detailed = o.len() < DETAIL_LIMIT;
        let mut s = String::new();
        image_section(&mut s, i, r, detailed);
        if detailed && o.len() + s.len() > LIST_LIMIT {
            s.clear();
            image_section(&mut s, i, r, false);
        }
        o.push_str(&s);
    }
    if listed_only > 0 {
        let _ = writeln!(
            o,
            "<p class=\"muted\" id=\"not-listed\">{listed_only} more image(s) not listed: the page reached its size bound ({PAGE_LIMIT} bytes).</p>"
        );
    }
    foot(&mut o);
    o
}

/// The page of `inspect --format html`: the map and the tree of one image, its parser notes as findings.
pub fn inspect_page(path: &str, size: u64, m: &FlashMap, notes: &[Finding]) -> String {
    let mut o = String::new();
    let title = format!("fwscan inspect: {path}");
    head(&mut o, &title);
    let _ = writeln!(
        o,
        "<header class=\"verdict v-clean\" id=\"verdict\" style=\"background:#37474f\"><h1>INSPECT</h1><p>{} · {} bytes · no baseline: the map shows what protects each byte, not whether it changed</p></header>\n<main>",
        esc(path),
        size
    );
    o.push_str("<h3>Flash map</h3>\n");
    svg_map(&mut o, 0, size, Some(m), &m.markers, notes);
    legend(&mut o, m);
    if !notes.is_empty() {
        findings_table(&mut o, 0, notes, notes.len(), &m.markers);
    }
    o.push_str("<h3>Region tree</h3>\n");
    tree_node(&mut o, &m.tree, 0);
    foot(&mut o);
    o
}

/// One image of an audit, as its results row has it.
#[derive(Debug, Clone)]
pub struct FleetImage<'a> {
    pub file: String,
    pub size: u64,
    pub exit_code: i32,
    /// `vendor product component version` of the baseline, if one was chosen.
    pub product: Option<String>,
    pub manifest: Option<&'a str>,
    /// Whether the baseline's signature was verified.
    pub verified: Option<bool>,
    pub selected_by: Option<String>,
    pub findings: &'a [Finding],
    pub findings_total: usize,
    pub error: Option<&'a ErrorInfo>,
    pub elapsed_ms: Option<u64>,
}

/// What an audit's summary says, for its page.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    pub command: String,
    pub images: u64,
    pub bytes: u64,
    pub clean: u64,
    pub findings: u64,
    pub error: u64,
    pub exit_code: i32,
    pub unverified: u64,
    pub problems: Vec<String>,
    pub skipped: Vec<(String, u64)>,
    /// Product → (clean, findings, error).
    pub by_product: Vec<(String, [u64; 3])>,
    /// Code → (images, findings).
    pub by_code: Vec<(String, [u64; 2])>,
    pub errors_by_code: Vec<(String, u64)>,
    pub regions_failing_most: Vec<(String, u64)>,
    pub largest: Vec<(String, u64)>,
    pub slowest: Option<Vec<(String, u64)>>,
}

/// The page of an audit (or a merge of its shards), built image by image with bounded size.
#[derive(Debug)]
pub struct FleetPage {
    head: String,
    detail: String,
    clean: String,
    images: usize,
    clean_listed: u64,
    clean_counted: u64,
    detail_counted: u64,
}

/// Bytes of the detailed sections and of the clean list of a fleet page.
const FLEET_DETAIL: usize = 13 << 20;
const FLEET_CLEAN: usize = 4 << 20;
/// Findings shown per image on a fleet page.
const FLEET_FINDINGS: usize = 50;

fn table(o: &mut String, title: &str, id: &str, cols: &[&str], rows: Vec<Vec<String>>) {
    if rows.is_empty() {
        return;
    }
    let _ = write!(o, "<h3>{}</h3><table id=\"{id}\"><thead><tr>", esc(title));
    for c in cols {
        let _ = write!(o, "<th>{}</th>", esc(c));
    }
    o.push_str("</tr></thead><tbody>");
    let n = rows.len();
    for r in rows.into_iter().take(1000) {
        o.push_str("<tr>");
        for c in r {
            let _ = write!(o, "<td>{}</td>", esc(&c));
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table>\n");
    if n > 1000 {
        let _ = writeln!(o, "<p class=\"muted\">{} more row(s)</p>", n - 1000);
    }
}

impl FleetPage {
    pub fn new(f: &Fleet) -> FleetPage {
        let mut o = String::new();
        let title = format!("fwscan {}: {} images", f.command, f.images);
        head(&mut o, &title);
        let trust = if f.unverified > 0 {
            "UNVERIFIED"
        } else {
            "verified"
        };
        verdict_header(
            &mut o,
            f.exit_code,
            &format!(
                "{title} ({} bytes): {} clean, {} with findings, {} undecided",
                f.bytes, f.clean, f.findings, f.error
            ),
            trust,
        );
        if f.unverified > 0 {
            banner(
                &mut o,
                &format!(
                    "UNVERIFIED: {} image(s) were compared against manifests whose signatures were not checked (--insecure-unsigned). Their verdicts prove nothing about the vendor's firmware.",
                    f.unverified
                ),
            );
        }
        o.push_str("<main>\n");
        for p in f.problems.iter().take(100) {
            let _ = writeln!(o, "<p class=\"sev-error\">problem: {}</p>", esc(p));
        }
        let n = |v: &[(String, u64)]| -> Vec<Vec<String>> {
            v.iter()
                .map(|(k, n)| vec![k.clone(), n.to_string()])
                .collect()
        };
        table(
            &mut o,
            "By product and version",
            "by-product",
            &["product", "clean", "findings", "undecided"],
            f.by_product
                .iter()
                .map(|(k, c)| {
                    vec![
                        k.clone(),
                        c[0].to_string(),
                        c[1].to_string(),
                        c[2].to_string(),
                    ]
                })
                .collect(),
        );
        table(
            &mut o,
            "Findings by code",
            "by-code",
            &["code", "images", "findings"],
            f.by_code
                .iter()
                .map(|(k, c)| vec![k.clone(), c[0].to_string(), c[1].to_string()])
                .collect(),
        );
        table(
            &mut o,
            "Undecided images by error code",
            "errors-by-code",
            &["code", "images"],
            n(&f.errors_by_code),
        );
        table(
            &mut o,
            "Regions failing most",
            "regions-failing",
            &["region", "images"],
            n(&f.regions_failing_most),
        );
        if let Some(s) = &f.slowest {
            table(&mut o, "Slowest images", "slowest", &["image", "ms"], n(s));
        }
        table(
            &mut o,
            "Largest images",
            "largest",
            &["image", "bytes"],
            n(&f.largest),
        );
        table(
            &mut o,
            "Skipped (not images)",
            "skipped",
            &["reason", "entries"],
            n(&f.skipped),
        );
        FleetPage {
            head: o,
            detail: String::new(),
            clean: String::new(),
            images: 0,
            clean_listed: 0,
            clean_counted: 0,
            detail_counted: 0,
        }
    }

    /// Adds one image.
    pub fn image(&mut self, im: &FleetImage) {
        let img = self.images;
        self.images += 1;
        if im.exit_code == 0 && im.error.is_none() {
            if self.clean.len() > FLEET_CLEAN {
                self.clean_counted += 1;
                return;
            }
            self.clean_listed += 1;
            let _ = writeln!(
                self.clean,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&im.file),
                im.size,
                esc(im.product.as_deref().unwrap_or("-")),
                im.elapsed_ms.map(|m| m.to_string()).unwrap_or_default()
            );
            return;
        }
        if self.detail.len() > FLEET_DETAIL {
            self.detail_counted += 1;
            return;
        }
        let o = &mut self.detail;
        let (word, _) = verdict_word(im.exit_code);
        let _ = writeln!(
            o,
            "<section class=\"image\" id=\"img-{img}\"><h2>{}</h2><p><b class=\"verdict-word\">{word}</b> · {} bytes · {} finding(s)</p>",
            esc(&im.file),
            im.size,
            im.findings_total
        );
        let _ = writeln!(
            o,
            "<dl class=\"facts\"><dt>baseline</dt><dd><code>{}</code> {}</dd><dt>trust</dt><dd>{}</dd>{}</dl>",
            esc(im.manifest.unwrap_or("-")),
            esc(im.product.as_deref().unwrap_or("")),
            match im.verified {
                Some(true) => "verified",
                Some(false) => "UNVERIFIED",
                None => "none",
            },
            im.selected_by
                .as_deref()
                .map(|s| format!("<dt>selected by</dt><dd>{}</dd>", esc(s)))
                .unwrap_or_default()
        );
        if let Some(e) = im.error {
            error_line(o, e);
        }
        let shown = &im.findings[..im.findings.len().min(FLEET_FINDINGS)];
        let markers = map::markers(None, im.size, shown);
        if im.size > 0 && !markers.is_empty() {
            svg_map(o, img, im.size, None, &markers, shown);
        }
        findings_table(o, img, shown, im.findings_total, &markers);
        o.push_str("</section>\n");
    }

    /// The page.
    pub fn finish(self) -> String {
        let mut o = self.head;
        o.push_str(&self.detail);
        if self.detail_counted > 0 {
            let _ = writeln!(
                o,
                "<p class=\"muted\" id=\"detail-more\">{} more image(s) with findings or undecided not shown: the page reached its size bound; see the results rows.</p>",
                self.detail_counted
            );
        }
        let _ = writeln!(
            o,
            "<section id=\"clean\"><details><summary><h2 style=\"display:inline\">Clean images ({})</h2></summary><table><thead><tr><th>image</th><th>bytes</th><th>product</th><th>ms</th></tr></thead><tbody>",
            self.clean_listed + self.clean_counted
        );
        o.push_str(&self.clean);
        o.push_str("</tbody></table>");
        if self.clean_counted > 0 {
            let _ = write!(
                o,
                "<p class=\"muted\" id=\"clean-more\">{} more clean image(s) not listed.</p>",
                self.clean_counted
            );
        }
        o.push_str("</details></section>\n");
        foot(&mut o);
        o
    }
}
