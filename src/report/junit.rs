//! JUnit XML output: `audit` writes one test case per image (failure = findings, error = undecided,
//! skipped = not an image); `scan` writes one test case per top-level region of the baseline plus one for
//! the whole image. Written case by case, so memory stays bounded.

use std::io::{self, Write};

use crate::finding::Finding;

/// Escapes text for XML attributes and content; characters XML 1.0 cannot carry are replaced.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' | '\n' | '\r' => o.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

/// Outcome of one test case.
#[derive(Debug, Clone)]
pub enum Outcome {
    Passed,
    /// Findings: a short message and the details.
    Failure {
        message: String,
        details: String,
    },
    /// Could not decide.
    Error {
        code: String,
        message: String,
    },
    Skipped {
        message: String,
    },
}

/// Writes `<testsuites><testsuite>` with counts known up front, then cases one by one.
#[derive(Debug)]
pub struct JunitWriter<W: Write> {
    out: W,
}

/// Counts for the suite header.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub tests: u64,
    pub failures: u64,
    pub errors: u64,
    pub skipped: u64,
}

impl<W: Write> JunitWriter<W> {
    pub fn begin(mut out: W, suite: &str, c: Counts) -> io::Result<Self> {
        writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
        writeln!(
            out,
            "<testsuites name=\"fwscan\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
            c.tests, c.failures, c.errors, c.skipped
        )?;
        writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
            esc(suite),
            c.tests,
            c.failures,
            c.errors,
            c.skipped
        )?;
        Ok(JunitWriter { out })
    }

    pub fn case(
        &mut self,
        classname: &str,
        name: &str,
        time_s: Option<f64>,
        o: &Outcome,
    ) -> io::Result<()> {
        let time = time_s
            .map(|t| format!(" time=\"{t:.3}\""))
            .unwrap_or_default();
        write!(
            self.out,
            "    <testcase classname=\"{}\" name=\"{}\"{time}",
            esc(classname),
            esc(name)
        )?;
        match o {
            Outcome::Passed => writeln!(self.out, "/>"),
            Outcome::Failure { message, details } => writeln!(
                self.out,
                ">\n      <failure message=\"{}\" type=\"findings\">{}</failure>\n    </testcase>",
                esc(message),
                esc(details)
            ),
            Outcome::Error { code, message } => writeln!(
                self.out,
                ">\n      <error message=\"{}\" type=\"{}\">{}</error>\n    </testcase>",
                esc(message),
                esc(code),
                esc(message)
            ),
            Outcome::Skipped { message } => writeln!(
                self.out,
                ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                esc(message)
            ),
        }
    }

    pub fn finish(mut self) -> io::Result<W> {
        writeln!(self.out, "  </testsuite>\n</testsuites>")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The failure outcome for a list of findings (`Passed` when none counts).
pub fn findings_outcome(findings: &[&Finding], total: usize) -> Outcome {
    let counting: Vec<&&Finding> = findings.iter().filter(|f| f.counts()).collect();
    if counting.is_empty() {
        return Outcome::Passed;
    }
    let mut codes: Vec<&str> = counting.iter().map(|f| f.code.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    let details: String = counting
        .iter()
        .map(|f| crate::report::finding_line(f))
        .collect();
    let more = total.saturating_sub(findings.len());
    Outcome::Failure {
        message: format!("{} finding(s): {}", counting.len() + more, codes.join(", ")),
        details: if more > 0 {
            format!("{details}  (+{more} more)\n")
        } else {
            details
        },
    }
}

/// JUnit for one scanned image: a case per top-level region of the baseline (`regions`), one for findings
/// elsewhere (the whole image), or a single error case.
pub fn scan_log(
    image: &str,
    regions: &[String],
    findings: &[Finding],
    error: Option<(&str, &str)>,
) -> String {
    let mut cases: Vec<(String, Outcome)> = Vec::new();
    if let Some((code, msg)) = error {
        cases.push((
            "/".into(),
            Outcome::Error {
                code: code.into(),
                message: msg.into(),
            },
        ));
    } else {
        let under = |r: &str, p: &str| p == r || p.starts_with(&format!("{r}/"));
        for r in regions {
            let mine: Vec<&Finding> = findings.iter().filter(|f| under(r, &f.path)).collect();
            let n = mine.len();
            cases.push((r.clone(), findings_outcome(&mine, n)));
        }
        let rest: Vec<&Finding> = findings
            .iter()
            .filter(|f| !regions.iter().any(|r| under(r, &f.path)))
            .collect();
        let n = rest.len();
        cases.push(("/".into(), findings_outcome(&rest, n)));
    }
    let mut c = Counts::default();
    for (_, o) in &cases {
        c.tests += 1;
        match o {
            Outcome::Passed => {}
            Outcome::Failure { .. } => c.failures += 1,
            Outcome::Error { .. } => c.errors += 1,
            Outcome::Skipped { .. } => c.skipped += 1,
        }
    }
    let run = || -> io::Result<Vec<u8>> {
        let mut w = JunitWriter::begin(Vec::new(), &format!("fwscan scan {image}"), c)?;
        for (name, o) in &cases {
            w.case(image, name, None, o)?;
        }
        w.finish()
    };
    run()
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_counts() {
        assert_eq!(esc("a<b>&\"'\u{1}"), "a&lt;b&gt;&amp;&quot;&apos;\u{FFFD}");
        let f = Finding::general(crate::finding::Code::UnknownFirmware, "nope");
        let x = scan_log("i.bin", &["bios".into()], &[f], None);
        assert!(x.contains("tests=\"2\" failures=\"1\""), "{x}");
        assert!(
            x.contains("<testcase classname=\"i.bin\" name=\"bios\"/>"),
            "{x}"
        );
    }
}
