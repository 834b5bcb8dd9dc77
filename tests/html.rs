//! `--format html` (issue 25) loaded in a real browser: Debian's `chromium`, headless, driven by
//! `--dump-dom` (the DOM after the page ran, or did not run, anything) and `--screenshot`.
//!
//! Screenshots go to `$CARGO_TARGET_TMPDIR/html/` (each test prints where). The README's picture is the
//! tampered-OVMF one: `FWSCAN_SCREENSHOT=docs/img/report.png cargo test --test tests html::tampered_ovmf`
//! writes it there too.

use std::path::{Path, PathBuf};
use std::process::Command;

use fwscan::formats::uefi::build as b;
use fwscan::region::RegionKind;

use crate::harness::{have_file, have_tool, output as fwscan};

const OVMF: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// The CSP every page carries.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn have_chromium() -> bool {
    have_tool("chromium", "chromium")
}

/// Runs headless chromium on `page` with a fresh profile and no background traffic.
fn chromium(page: &Path, args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .arg("120")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The DOM of `page` after load (scripts, if any, have run).
fn dump_dom(page: &Path) -> String {
    String::from_utf8(chromium(page, &["--dump-dom"]).stdout).expect("DOM is UTF-8")
}

/// A screenshot of `page` in `$CARGO_TARGET_TMPDIR/html/name.png`; returns its path.
fn screenshot(page: &Path, name: &str, height: u32) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    chromium(
        page,
        &[
            &format!("--screenshot={}", png.display()),
            &format!("--window-size=1280,{height}"),
            "--hide-scrollbars",
        ],
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    println!("screenshot: {}", png.display());
    png
}

/// The text of the first `<title>` of a DOM dump.
fn title(dom: &str) -> &str {
    let a = dom.find("<title>").expect("title") + "<title>".len();
    let e = dom[a..].find("</title>").expect("title end");
    &dom[a..a + e]
}

/// Every start tag of a DOM dump as (name, attribute names). Sound for fwscan's pages because no
/// attribute value holds a value from an image (none contains `<` or `>`); text content is escaped.
fn tags(dom: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let Some(e) = rest.find('>') else { break };
        let tag = &rest[..e];
        rest = &rest[e + 1..];
        if tag.starts_with('/') || tag.starts_with('!') {
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        // Attribute names: words followed by `=` outside quoted values, or bare words.
        let mut attrs = Vec::new();
        let mut q = false;
        let mut word = String::new();
        for c in tag[name.len()..].chars() {
            match c {
                '"' => {
                    q = !q;
                    word.clear();
                }
                _ if q => {}
                '=' => {
                    if !word.is_empty() {
                        attrs.push(std::mem::take(&mut word));
                    }
                }
                c if c.is_whitespace() || c == '/' => {
                    if !word.is_empty() {
                        attrs.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            attrs.push(word);
        }
        out.push((name.to_ascii_lowercase(), attrs));
    }
    out
}

/// The elements fwscan's pages are made of.
const ALLOWED: &[&str] = &[
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "p", "b", "div",
    "main", "section", "details", "summary", "dl", "dt", "dd", "code", "table", "thead", "tbody",
    "tr", "th", "td", "span", "br", "a", "ul", "li", "svg", "g", "rect", "text",
];

/// What every page must be: the CSP in force, no network reference, no script, only fwscan's
/// elements, no event handler, links only to the page's own fragments.
fn assert_inert(html: &str, dom: &str) {
    assert!(
        html.contains(&format!(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
        )),
        "CSP meta tag missing"
    );
    assert!(dom.contains(CSP), "the CSP is not in the loaded DOM");
    let lower = html.to_ascii_lowercase();
    for bad in [
        "http:", "https:", "//", "<script", "<img", "<link", "<iframe", "url(",
    ] {
        // `//` only matters in attributes; text never holds it unescaped in these tests' images.
        if bad == "//" {
            continue;
        }
        assert!(!lower.contains(bad), "the page holds `{bad}`");
    }
    for (name, attrs) in tags(dom) {
        assert!(
            ALLOWED.contains(&name.as_str()),
            "unexpected element <{name}> in the DOM"
        );
        for a in &attrs {
            assert!(
                !a.to_ascii_lowercase().starts_with("on"),
                "event handler attribute {a} on <{name}>"
            );
            assert!(
                !matches!(a.as_str(), "src" | "srcdoc" | "action" | "formaction"),
                "<{name} {a}>"
            );
        }
    }
    // Links go to fragments of the page only.
    let mut rest = dom;
    while let Some(i) = rest.find("href=\"") {
        rest = &rest[i + 6..];
        assert!(
            rest.starts_with('#'),
            "a link leaves the page: {}",
            &rest[..40.min(rest.len())]
        );
    }
}

/// The value of attribute `name` in the start tag that carries `id="{id}"`.
fn attr<'a>(dom: &'a str, id: &str, name: &str) -> Option<&'a str> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let start = dom[..at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    let tag = &dom[start..end];
    let k = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let v = &tag[k..];
    Some(&v[..v.find('"')?])
}

/// A baseline of `clean`, signed with a fresh key, and the trust policy naming the key.
fn signed_baseline(dir: &Path, clean: &Path) -> (PathBuf, PathBuf) {
    let (key, public, m, policy) = (
        dir.join("k.key"),
        dir.join("k.pub"),
        dir.join("m.json"),
        dir.join("trust.json"),
    );
    let o = fwscan(&[
        "keygen",
        "-s",
        s(&key),
        "-p",
        s(&public),
        "--unencrypted",
        "--role",
        "release-ci",
    ]);
    assert!(o.status.success());
    let entry: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    std::fs::write(
        &policy,
        serde_json::json!({"schema_version": 1, "keys": [entry]}).to_string(),
    )
    .unwrap();
    assert!(fwscan(&["baseline", s(clean), "-o", s(&m)])
        .status
        .success());
    assert!(fwscan(&["sign", s(&m), "-s", s(&key)]).status.success());
    (m, policy)
}

/// OVMF with one byte of SecMain's PE image flipped (file checksums fixed): the image, the flipped
/// offset, and the path of the volume holding SecMain.
fn tamper_ovmf() -> (Vec<u8>, u64, String) {
    let clean = std::fs::read(OVMF).unwrap();
    let tree = crate::uefi::parse_bytes(clean.clone(), true);
    let f = crate::uefi::find(&tree, &|r| {
        r.attr_str("ui-name") == Some("SecMain") && r.kind == RegionKind::File
    })
    .expect("SecMain");
    let pe = crate::uefi::find(f, &|r| matches!(r.attr_str("type"), Some("pe32" | "te")))
        .expect("SecMain's PE");
    let at = pe.offset + pe.size / 2;
    let mut t = clean;
    t[at as usize] ^= 0x5A;
    b::fix_file_checksums(&mut t[f.offset as usize..(f.offset + f.size) as usize]);
    let volume = f.path.split("/file[").next().unwrap().to_string();
    (t, at, volume)
}

/// The report of a tampered OVMF scan: the finding code is in the DOM, its marker sits inside the span
/// of the volume its path names, the map has coverage colours, the baseline's signer is named; the
/// screenshot is the README's picture.
#[test]
fn tampered_ovmf() {
    if !have_file(OVMF, "Debian package ovmf") || !have_chromium() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (clean, tampered, page) = (
        dir.path().join("OVMF_CODE_4M.fd"),
        dir.path().join("tampered.fd"),
        dir.path().join("report.html"),
    );
    std::fs::copy(OVMF, &clean).unwrap();
    let (t, flipped, volume) = tamper_ovmf();
    std::fs::write(&tampered, &t).unwrap();
    let (m, policy) = signed_baseline(dir.path(), &clean);
    let state = dir.path().join("state.json");
    let o = fwscan(&[
        "scan",
        s(&tampered),
        "-m",
        s(&m),
        "--trust",
        s(&policy),
        "--state",
        s(&state),
        "--format",
        "html",
        "-o",
        s(&page),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.stdout.is_empty(), "-o writes the page to the file only");
    let html = std::fs::read_to_string(&page).unwrap();
    let dom = dump_dom(&page);
    assert_inert(&html, &dom);
    assert!(title(&dom).starts_with("fwscan scan: "), "{}", title(&dom));
    assert!(dom.contains("<h1>FINDINGS</h1>"));
    assert!(dom.contains("<b id=\"trust\">verified</b>"), "trust status");
    assert!(!dom.contains("id=\"unverified\""), "no UNVERIFIED banner");
    assert!(dom.contains("(release-ci)"), "the signer's role is named");
    // The finding row, with the code, and its marker.
    let row = dom.find("id=\"f-0-0\"").expect("finding row");
    assert!(
        dom[row..].contains("module-modified"),
        "finding code in the DOM"
    );
    let off: u64 = attr(&dom, "m-0-0", "data-offset")
        .expect("marker of finding 0")
        .parse()
        .unwrap();
    let size: u64 = attr(&dom, "m-0-0", "data-size").unwrap().parse().unwrap();
    assert!(
        off <= flipped && flipped < off + size,
        "marker covers the flipped byte"
    );
    assert_eq!(attr(&dom, "m-0-0", "data-exact"), Some("true"));
    marker_in_span(&dom, "m-0-0", &volume, "volume");
    // Coverage colours: the baseline-only class is drawn, the legend lists every class.
    assert!(dom.contains("data-class=\"baseline-only\""));
    assert!(dom.contains("data-class=\"blank\""), "free space is blank");
    for c in [
        "bootguard-ibb",
        "vendor-package",
        "per-machine",
        "not-covered",
    ] {
        assert!(dom.contains(&format!("</span>{c} ")), "legend lacks {c}");
    }
    // The tree: collapsible, with digests.
    assert!(dom.contains("<details class=\"tree\" open"));
    assert!(dom.contains("SecMain"));
    let png = screenshot(&page, "tampered-ovmf", 1180);
    if let Some(dest) = std::env::var_os("FWSCAN_SCREENSHOT") {
        std::fs::copy(&png, &dest).unwrap();
        println!("copied to {}", Path::new(&dest).display());
    }
}

/// Asserts that marker `marker` lies inside the span whose path is `path` (kind `kind`): on the map, on one
/// row, within the x-range of one of the span's segments; and by bytes, within the span's offset and size.
fn marker_in_span(dom: &str, marker: &str, path: &str, kind: &str) {
    let num = |id: &str, k: &str| -> f64 {
        attr(dom, id, k)
            .unwrap_or_else(|| panic!("{id} has no {k}"))
            .parse()
            .unwrap()
    };
    let mrow = attr(dom, marker, "data-row")
        .expect("marker drawn")
        .to_string();
    let (mx1, mx2) = (num(marker, "data-x1"), num(marker, "data-x2"));
    let (off, size) = (num(marker, "data-offset"), num(marker, "data-size"));
    let span_at = dom
        .find(&format!("<title>{path} ({kind})"))
        .unwrap_or_else(|| {
            let spans: Vec<&str> = dom
                .split("<g class=\"span")
                .skip(1)
                .filter_map(|g| g.split("<title>").nth(1)?.split('\n').next())
                .collect();
            panic!("no span for {path} ({kind}) among {spans:?}")
        });
    let g = dom[..span_at].rfind("<g class=\"span").expect("span group");
    let g_end = span_at + dom[span_at..].find("</g>").unwrap();
    let group = &dom[g..g_end];
    let gid = &group[group.find("id=\"").unwrap() + 4..];
    let gid = &gid[..gid.find('"').unwrap()];
    let (so, ss) = (num(gid, "data-offset"), num(gid, "data-size"));
    assert!(
        so <= off && off + size <= so + ss,
        "marker bytes {off}+{size} outside {path} {so}+{ss}"
    );
    let inside = group.split("<rect class=\"seg\"").skip(1).any(|seg| {
        let get = |k: &str| {
            let i = seg.find(&format!("{k}=\"")).unwrap() + k.len() + 2;
            seg[i..i + seg[i..].find('"').unwrap()].to_string()
        };
        let (x1, x2): (f64, f64) = (
            get("data-x1").parse().unwrap(),
            get("data-x2").parse().unwrap(),
        );
        get("data-row") == mrow && x1 <= mx1 && mx2 <= x2
    });
    assert!(
        inside,
        "marker [{mx1}, {mx2}] on row {mrow} is not inside {path}'s span"
    );
}

/// `scan --format html` of `tampered` against an unsigned baseline of `clean`: the page and its DOM.
fn scan_page(dir: &Path, clean: &[u8], tampered: &[u8], tag: &str) -> (PathBuf, String, String) {
    let (c, t, m, page) = (
        dir.join(format!("{tag}-clean.bin")),
        dir.join(format!("{tag}.bin")),
        dir.join(format!("{tag}.json")),
        dir.join(format!("{tag}.html")),
    );
    std::fs::write(&c, clean).unwrap();
    std::fs::write(&t, tampered).unwrap();
    let o = fwscan(&["baseline", s(&c), "-o", s(&m)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = fwscan(&[
        "scan",
        s(&t),
        "-m",
        s(&m),
        "--insecure-unsigned",
        "--format",
        "html",
        "-o",
        s(&page),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    let dom = dump_dom(&page);
    assert_inert(&html, &dom);
    (page, html, dom)
}

/// The index of the first finding row whose code is `code` and whose path starts with `path`.
fn finding_row(dom: &str, code: &str, path: &str) -> usize {
    (0..MAX_ROWS)
        .find(|i| {
            let Some(at) = dom.find(&format!("<tr id=\"f-0-{i}\">")) else {
                return false;
            };
            let row = &dom[at..at + dom[at..].find("</tr>").unwrap()];
            row.contains(&format!(">{code}</code>")) && row.contains(&format!("<code>{path}"))
        })
        .unwrap_or_else(|| panic!("no {code} finding under {path}"))
}
const MAX_ROWS: usize = 200;

/// An OpenBMC flash with bytes patched in U-Boot: the marker sits inside the `u-boot` partition's span,
/// the writable partitions are per-machine on the map.
#[test]
fn openbmc_flash() {
    use crate::support::bmc as bb;
    if !have_chromium() || !bb::available() {
        return;
    }
    let dir = bb::scratch("html-openbmc");
    let p = bb::build(&dir, bb::LAYOUT_32, bb::UBOOT_32, true);
    let clean = p.image(bb::LAYOUT_32);
    let mut t = clean.clone();
    t[0x1000] ^= 0x5A;
    let (page, _, dom) = scan_page(&dir, &clean, &t, "bmc");
    let i = finding_row(&dom, "region-modified", "u-boot");
    marker_in_span(&dom, &format!("m-0-{i}"), "u-boot", "partition");
    assert!(
        dom.contains("data-class=\"per-machine\""),
        "rwfs/env are per-machine"
    );
    assert!(dom.contains("data-class=\"baseline-only\""));
    screenshot(&page, "openbmc", 1100);
}

/// An Intel SPI image (descriptor, ME region with FTPR/MFS/NFTP, BIOS with Boot Guard ACM, KM, BPM and
/// IBB) with a byte of the ME's FTPR code changed: the marker sits inside the `me` region's span and its
/// FTPR partition's; the map shows the Boot Guard classes.
#[test]
fn spi_with_me_and_bootguard() {
    use crate::support::spi::{descriptor, me_region};
    if !have_chromium() || !have_tool("openssl", "openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (km, bpm, acm) = (
        crate::intel::genkey(d, "km", "rsa2048"),
        crate::intel::genkey(d, "bpm", "rsa2048"),
        crate::intel::genkey(d, "acm", "rsa2048"),
    );
    let built = crate::intel::build_image(
        d,
        false,
        ((&km, "pkcs1-sha256"), (&bpm, &bpm, "pkcs1-sha256"), &acm),
    );
    let bios = built.image;
    let me_len = 0x80000usize;
    let total = 0x1000 + me_len + bios.len();
    let mut clean = descriptor(&[
        (0, 0, 0),
        (2, 1, (me_len / 0x1000) as u32),
        (
            1,
            ((0x1000 + me_len) / 0x1000) as u32,
            (total / 0x1000 - 1) as u32,
        ),
    ]);
    clean.extend(me_region(me_len));
    clean.extend(&bios);
    assert_eq!(clean.len(), total);
    let mut t = clean.clone();
    let ftpr = 0x1000 + 0x1000 + 0x800;
    t[ftpr] ^= 0xFF;
    let (page, _, dom) = scan_page(d, &clean, &t, "spi");
    let i = finding_row(&dom, "region-modified", "me");
    marker_in_span(&dom, &format!("m-0-{i}"), "me", "flash-region");
    marker_in_span(&dom, &format!("m-0-{i}"), "me/FTPR", "partition");
    assert!(
        dom.contains("data-class=\"bootguard-self-signed\"") || dom.contains("data-class=\"acm\""),
        "Boot Guard coverage on the map"
    );
    screenshot(&page, "spi", 1100);
}

/// Names that would run script if they reached the page as markup.
const SCRIPT: &str = "<script>document.title='PWNED1'</script>";
const IMG: &str = "\"><img src=x onerror=document.title='PWNED2'>";
const SVG: &str = "<svg onload=document.title='PWNED3'>";
const NUL_RLO: &str = "evil\u{0}name\u{202e}gpj.exe";

/// The browser runs such markup when it is not escaped: the check below can fail.
#[test]
fn control_page_with_raw_markup_runs_it() {
    if !have_chromium() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("raw.html");
    std::fs::write(
        &page,
        format!(
            "<!DOCTYPE html><html><head><title>t</title></head><body><p>{IMG}</p></body></html>"
        ),
    )
    .unwrap();
    let dom = dump_dom(&page);
    assert_eq!(title(&dom), "PWNED2", "the control payload did not run");
}

/// A squashfs made by mksquashfs (uncompressed metadata), its placeholder names patched in the directory
/// table into `names` (same byte lengths). A squashfs name cannot hold `/` (unsquashfs and fwscan refuse
/// it), so the `<script>…</script>` name travels in a UEFI UI section instead ([`ui_volume`]).
fn hostile_squashfs(dir: &Path, names: &[&str], out: &str) -> Vec<u8> {
    let root = dir.join(format!("{out}.root"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let placeholder = |i: usize, n: &str| {
        format!("Q{i}")
            .repeat(n.len())
            .chars()
            .take(n.len())
            .collect::<String>()
    };
    std::fs::write(root.join("readme"), "clean\n").unwrap();
    for (i, n) in names.iter().enumerate() {
        std::fs::write(root.join(placeholder(i, n)), format!("payload {i}\n")).unwrap();
    }
    let img = dir.join(out);
    let _ = std::fs::remove_file(&img);
    let st = Command::new("mksquashfs")
        .arg(&root)
        .arg(&img)
        .args([
            "-noI",
            "-noD",
            "-noF",
            "-noX",
            "-noappend",
            "-quiet",
            "-no-progress",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let mut d = std::fs::read(&img).unwrap();
    for (i, n) in names.iter().enumerate() {
        let ph = placeholder(i, n);
        let at: Vec<usize> = d
            .windows(ph.len())
            .enumerate()
            .filter(|(_, w)| *w == ph.as_bytes())
            .map(|(k, _)| k)
            .collect();
        assert_eq!(at.len(), 1, "placeholder {ph} once in the directory table");
        d[at[0]..at[0] + n.len()].copy_from_slice(n.as_bytes());
    }
    std::fs::write(&img, &d).unwrap();
    d
}

/// A firmware volume with one file whose UI section is `name`.
fn ui_volume(name: &str) -> Vec<u8> {
    let body = b::sections(&[b::section(0x19, &[0xAA; 64]), b::ui(name)]);
    let file = b::file(
        b::guid_bytes("11111111-2222-3333-4444-555555555555"),
        0x02,
        &body,
        0,
    );
    b::volume(b::FFS2, None, &[file], 0x4000)
}

/// Scans `image` against a baseline of `clean` (unsigned: the banner shows) and inspects it, both as
/// HTML; returns the two pages and their DOMs.
fn scan_and_inspect(
    dir: &Path,
    clean: &[u8],
    image: &[u8],
    tag: &str,
) -> Vec<(PathBuf, String, String)> {
    let (c, i, m) = (
        dir.join(format!("{tag}-clean.bin")),
        dir.join(format!("{tag}.bin")),
        dir.join(format!("{tag}.json")),
    );
    std::fs::write(&c, clean).unwrap();
    std::fs::write(&i, image).unwrap();
    assert!(fwscan(&["baseline", s(&c), "-o", s(&m)]).status.success());
    let scan = dir.join(format!("{tag}-scan.html"));
    let o = fwscan(&[
        "scan",
        s(&i),
        "-m",
        s(&m),
        "--insecure-unsigned",
        "--format",
        "html",
        "-o",
        s(&scan),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let insp = dir.join(format!("{tag}-inspect.html"));
    let o = fwscan(&["inspect", s(&i), "--format", "html", "-o", s(&insp)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    [scan, insp]
        .into_iter()
        .map(|p| {
            let html = std::fs::read_to_string(&p).unwrap();
            let dom = dump_dom(&p);
            (p, html, dom)
        })
        .collect()
}

/// Hostile names from a squashfs and a UI section stay text: the pages run no script (the payloads would
/// change the title), hold no injected element or handler, and show the names escaped, NUL and the
/// right-to-left override as visible escapes.
#[test]
fn hostile_names_stay_text() {
    if !have_chromium() || !have_tool("mksquashfs", "squashfs-tools") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let names = [IMG, SVG, NUL_RLO, "<script>document.title='PWNED4'"];
    let hostile = hostile_squashfs(dir.path(), &names, "hostile.sqsh");
    let clean = hostile_squashfs(dir.path(), &[], "clean.sqsh");
    let mut pages = scan_and_inspect(dir.path(), &clean, &hostile, "sqsh");
    pages.extend(scan_and_inspect(
        dir.path(),
        &ui_volume("Benign"),
        &ui_volume(SCRIPT),
        "ui",
    ));
    let want = [
        "&lt;script&gt;document.title='PWNED1'&lt;/script&gt;",
        "\"&gt;&lt;img src=x onerror=document.title='PWNED2'&gt;",
        "&lt;svg onload=document.title='PWNED3'&gt;",
        "evil\\u{0}name\\u{202e}gpj.exe",
        "&lt;script&gt;document.title='PWNED4'",
    ];
    let mut seen = [false; 5];
    for (p, html, dom) in &pages {
        assert_inert(html, dom);
        let t = title(dom);
        assert!(
            t.starts_with("fwscan ") && !t.contains("PWNED"),
            "{}: title changed to {t}",
            p.display()
        );
        assert!(
            !html.contains('\u{202e}') && !html.contains('\0'),
            "raw RLO or NUL in the page"
        );
        for (k, w) in want.iter().enumerate() {
            // Chromium serializes text with `"` and `'` as themselves.
            if dom.contains(w) {
                seen[k] = true;
            }
        }
    }
    assert_eq!(seen, [true; 5], "every name is shown as text");
    // The scan pages list the added files as findings, and warn that the baseline was not verified.
    let (_, _, dom) = &pages[0];
    assert!(dom.contains("file-added"));
    assert!(dom.contains("id=\"unverified\""));
    screenshot(&pages[0].0, "hostile-names", 900);
}

/// `audit` (and `merge` of its rows) of a clean and a tampered dump: one page with the summary by
/// product, the tampered image's section with its finding and marker, the clean one collapsed.
#[test]
fn audit_of_clean_and_tampered() {
    if !have_file(OVMF, "Debian package ovmf") || !have_chromium() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (dumps, manifests) = (dir.path().join("dumps"), dir.path().join("manifests"));
    std::fs::create_dir_all(&dumps).unwrap();
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::copy(OVMF, dumps.join("clean.fd")).unwrap();
    let (t, _, _) = tamper_ovmf();
    std::fs::write(dumps.join("tampered.fd"), &t).unwrap();
    assert!(
        fwscan(&["baseline", OVMF, "-o", s(&manifests.join("ovmf.json"))])
            .status
            .success()
    );
    let rows = dir.path().join("rows.jsonl");
    let page = dir.path().join("audit.html");
    let o = fwscan(&[
        "audit",
        s(&dumps),
        "--manifests",
        s(&manifests),
        "--insecure-unsigned",
        "--format",
        "html",
        "-o",
        s(&rows),
        "-q",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::write(&page, &o.stdout).unwrap();
    let merged = dir.path().join("merged.html");
    let m = fwscan(&["merge", s(&rows), "--format", "html", "-o", s(&merged)]);
    assert_eq!(m.status.code(), Some(1));
    for p in [&page, &merged] {
        let html = std::fs::read_to_string(p).unwrap();
        let dom = dump_dom(p);
        assert_inert(&html, &dom);
        assert!(dom.contains("<h1>FINDINGS</h1>"));
        assert!(dom.contains("id=\"unverified\""), "UNVERIFIED banner");
        let by = dom.find("id=\"by-product\"").expect("by-product table");
        assert!(
            dom[by..].contains("<td>1</td><td>1</td><td>0</td>"),
            "1 clean, 1 with findings"
        );
        assert!(dom.contains("id=\"largest\""));
        let sec = dom
            .find("tampered.fd</h2>")
            .expect("tampered image section");
        assert!(dom[sec..].contains("module-modified"));
        assert!(
            dom[sec..].contains("class=\"marker\" id=\"m-"),
            "marker of the tampered image's finding"
        );
        let clean = dom.find("id=\"clean\"").expect("clean list");
        assert!(dom[clean..].contains("clean.fd"));
        assert!(
            !dom[..clean].contains("clean.fd</h2>"),
            "the clean image has no section"
        );
    }
    screenshot(&page, "audit", 900);
}

/// The page bound: a 50,000-node tree and a 10,000-image audit stay under 20 MiB, with what is left out
/// counted.
#[test]
fn pages_are_bounded() {
    use fwscan::report::html;
    // 50,000 files in one volume (the largest tree the default region limit builds, and more).
    let file = |i: u32| {
        let mut g = [0u8; 16];
        g[..4].copy_from_slice(&i.to_le_bytes());
        b::file(
            g,
            0x02,
            &b::sections(&[b::ui(&format!("<f{i}>\u{202e}"))]),
            0,
        )
    };
    let files: Vec<Vec<u8>> = (0..50_000).map(file).collect();
    let size: usize = files.iter().map(|f| f.len().div_ceil(8) * 8).sum::<usize>() + 0x1000;
    let vol = b::volume(b::FFS2, None, &files, size.div_ceil(0x1000) * 0x1000);
    let opts = fwscan::formats::ParseOptions {
        max_regions: 1_000_000,
        ..Default::default()
    };
    let tree =
        fwscan::formats::parse_image(std::sync::Arc::new(fwscan::input::Data::Owned(vol)), &opts);
    assert!(tree.count() > 50_000, "{} nodes", tree.count());
    let notes = fwscan::region::note_findings(&tree);
    let m = html::FlashMap::of(&tree);
    let page = html::inspect_page("big.fd", tree.size, &m, &notes);
    println!(
        "50,000-file tree: {} nodes, page {} bytes",
        tree.count(),
        page.len()
    );
    assert!(page.len() <= html::PAGE_LIMIT, "{} bytes", page.len());
    assert!(page.contains("descendant node(s) not shown"));
    assert!(!page.contains('\u{202e}'));

    // 10,000 images, each with 1,000 findings carrying long names and paths.
    let f = |i: usize| fwscan::finding::Finding {
        code: fwscan::finding::Code::FileModified,
        severity: fwscan::finding::Severity::Error,
        path: format!("rofs/squashfs/{}{i}", "<x>".repeat(300)),
        kind: None,
        name: Some("\"<>&".repeat(200)),
        message: "m".repeat(3000),
        offset: Some(i as u64),
        size: Some(16),
        space: fwscan::region::Space::Image,
        base: None,
        expected_digest: Some("a".repeat(64)),
        actual_digest: Some("b".repeat(64)),
        expected_size: None,
        actual_size: None,
        ranges: Vec::new(),
        changed: Vec::new(),
        rule: None,
    };
    let findings: Vec<_> = (0..1000).map(f).collect();
    let fleet = html::Fleet {
        command: "audit".into(),
        images: 10_000,
        exit_code: 1,
        by_product: (0..20_000)
            .map(|i| (format!("vendor product bios {i}"), [1, 1, 0]))
            .collect(),
        ..Default::default()
    };
    let mut p = html::FleetPage::new(&fleet);
    let error = fwscan::finding::ErrorInfo {
        code: fwscan::finding::Code::ReadError,
        message: "e".repeat(100_000),
    };
    for i in 0..10_000 {
        p.image(&html::FleetImage {
            file: format!("/srv/dumps/{}{i}.bin", "<d>".repeat(200)),
            size: 1 << 25,
            exit_code: i % 3,
            product: Some("vendor product bios 1".into()),
            manifest: Some("m.json"),
            verified: Some(true),
            selected_by: Some("structure".into()),
            findings: if i % 3 == 1 { &findings } else { &[] },
            findings_total: 1000,
            error: (i % 3 == 2).then_some(&error),
            elapsed_ms: Some(5),
        });
    }
    let page = p.finish();
    println!("10,000-image audit: page {} bytes", page.len());
    assert!(page.len() <= html::PAGE_LIMIT, "{} bytes", page.len());
    assert!(
        page.contains("id=\"detail-more\""),
        "images left out are counted"
    );
}

/// `check --format html` of a clean and a tampered OVMF: one section per image, each with its map; the
/// clean one collapsed, no baseline (trust `none`).
#[test]
fn check_of_two_images() {
    if !have_file(OVMF, "Debian package ovmf") || !have_chromium() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (t, _, _) = tamper_ovmf();
    let tampered = dir.path().join("tampered.fd");
    std::fs::write(&tampered, &t).unwrap();
    let page = dir.path().join("check.html");
    let o = fwscan(&[
        "check",
        OVMF,
        s(&tampered),
        "--format",
        "html",
        "-o",
        s(&page),
    ]);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    let dom = dump_dom(&page);
    assert_inert(&html, &dom);
    assert!(dom.contains("<b id=\"trust\">none</b>"));
    for i in 0..2 {
        assert!(dom.contains(&format!("id=\"img-{i}\"")), "section {i}");
        assert!(dom.contains(&format!("id=\"map-{i}\"")), "map {i}");
    }
    assert!(dom.contains("data-class=\"baseline-only\""));
}
