//! Typed errors, checked from the source (issue 19, point 3): the library's functions return typed,
//! `#[non_exhaustive]` errors whose `Display` is the message, not `Result<_, String>`. At most
//! [`MAX_STRING_ERRORS`] may remain under `src/` (comments and `#[cfg(test)]` modules are not counted), so
//! the number cannot grow back.

use std::path::{Path, PathBuf};

/// The most `Result<_, String>` (and `type Err = String`) allowed under `src/`. Raised from 5 to 15 in
/// session 7 for the FIT signature checker (formats/bmc/fit_sig.rs, 8) and the stand-alone PE/ELF readers
/// (formats/exe, 2); back to 5 since they return `fit_sig::KeyError` and `exe::HeaderError`.
const MAX_STRING_ERRORS: usize = 5;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file with its comment lines and its `#[cfg(test)]` modules blanked (lines keep their
/// numbers).
fn code(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        if t.starts_with("#[cfg(test)]") {
            // Skip attributes up to the item; a test module is skipped to its closing brace.
            let mut j = i + 1;
            while j < lines.len() && lines[j].trim_start().starts_with("#[") {
                j += 1;
            }
            if j < lines.len() && lines[j].trim_start().starts_with("mod ") {
                let indent = lines[j].len() - lines[j].trim_start().len();
                let mut k = j;
                if !lines[j].trim_end().ends_with(';') {
                    let close = format!("{}}}", " ".repeat(indent));
                    while k < lines.len() && lines[k].trim_end() != close {
                        k += 1;
                    }
                }
                let end = (k + 1).min(lines.len());
                out.push_str(&"\n".repeat(end - i));
                i = end;
                continue;
            }
        }
        if !t.starts_with("//") {
            out.push_str(lines[i]);
        }
        out.push('\n');
        i += 1;
    }
    out
}

/// The top-level generic arguments of the `<...>` that starts at `open` (the index of `<`).
fn generic_args(s: &[u8], open: usize) -> Option<Vec<String>> {
    let mut depth = 0i32;
    let mut args = Vec::new();
    let mut start = open + 1;
    for (i, &c) in s.iter().enumerate().skip(open) {
        match c {
            b'<' | b'(' | b'[' => depth += 1,
            // `->` inside a generic argument (a `fn` type) is not a closing bracket.
            b'>' if i > 0 && s[i - 1] == b'-' => {}
            b'>' | b')' | b']' => {
                depth -= 1;
                if depth == 0 {
                    args.push(String::from_utf8_lossy(&s[start..i]).trim().to_string());
                    return Some(args);
                }
            }
            b',' if depth == 1 => {
                args.push(String::from_utf8_lossy(&s[start..i]).trim().to_string());
                start = i + 1;
            }
            b';' | b'{' => return None,
            _ => {}
        }
    }
    None
}

/// `file:line: text` of each `Result<_, String>` and `type Err = String` in `code`.
fn string_errors(file: &str, code: &str) -> Vec<String> {
    let b = code.as_bytes();
    let line_of = |o: usize| code[..o].matches('\n').count() + 1;
    let mut hits = Vec::new();
    for (o, _) in code.match_indices("Result<") {
        // `Result<` itself, not the tail of `FooResult<`.
        if o > 0 && (b[o - 1].is_ascii_alphanumeric() || b[o - 1] == b'_') {
            continue;
        }
        let Some(args) = generic_args(b, o + "Result".len()) else {
            continue;
        };
        // A trailing comma leaves an empty last argument.
        let args: Vec<String> = args.into_iter().filter(|a| !a.is_empty()).collect();
        if args.len() == 2 && (args[1] == "String" || args[1] == "std::string::String") {
            hits.push(format!(
                "{file}:{}: Result<{}>",
                line_of(o),
                args.join(", ")
            ));
        }
    }
    for (o, _) in code.match_indices("type Err = String") {
        hits.push(format!("{file}:{}: type Err = String", line_of(o)));
    }
    hits
}

#[test]
fn string_errors_do_not_grow_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut hits = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let rel = f.strip_prefix(root).unwrap().display().to_string();
        hits.extend(string_errors(&rel, &code(&text)));
    }
    assert!(
        hits.len() <= MAX_STRING_ERRORS,
        "{} functions under src/ return String errors (at most {MAX_STRING_ERRORS}); give them a typed \
         error (thiserror, #[non_exhaustive] where public) whose Display is the message:\n{}",
        hits.len(),
        hits.join("\n")
    );
}

#[test]
fn the_counter_sees_string_errors() {
    let src = r#"
pub fn a(x: u8) -> Result<Vec<(u8, String)>, String> {
    todo!()
}
fn b() -> Result<
    (),
    String,
> {
    todo!()
}
fn c() -> Result<String, Error> { todo!() }
fn d() -> io::Result<String> { todo!() }
fn e() -> Result<(), (Code, String)> { todo!() }
fn f() -> Result<Box<dyn Fn() -> u8>, String> { todo!() }
// fn g() -> Result<(), String>
impl FromStr for X {
    type Err = String;
}
#[cfg(test)]
mod tests {
    fn h() -> Result<(), String> { todo!() }
}
"#;
    let hits = string_errors("t.rs", &code(src));
    let lines: Vec<&str> = hits.iter().map(|h| h.split(": ").next().unwrap()).collect();
    assert_eq!(
        lines,
        ["t.rs:2", "t.rs:5", "t.rs:14", "t.rs:17"],
        "{hits:#?}"
    );
}
