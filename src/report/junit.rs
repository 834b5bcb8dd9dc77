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

/// Writes `<testsuites>`, then suites (one per image) with counts known up front, then cases one by one.
#[derive(Debug)]
pub struct JunitWriter<W: Write> {
    out: W,
    open: bool,
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
    /// Writes `<testsuites>` with the totals of the whole document.
    pub fn begin(mut out: W, total: Counts) -> io::Result<Self> {
        writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
        writeln!(
            out,
            "<testsuites name=\"fwscan\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
            total.tests, total.failures, total.errors, total.skipped
        )?;
        Ok(JunitWriter { out, open: false })
    }

    /// Opens a `<testsuite>` (closing the previous one) with its counts and `properties` (name, value).
    pub fn suite(
        &mut self,
        name: &str,
        c: Counts,
        properties: &[(&str, String)],
    ) -> io::Result<()> {
        self.close_suite()?;
        writeln!(
            self.out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
            esc(name),
            c.tests,
            c.failures,
            c.errors,
            c.skipped
        )?;
        if !properties.is_empty() {
            writeln!(self.out, "    <properties>")?;
            for (k, v) in properties {
                writeln!(
                    self.out,
                    "      <property name=\"{}\" value=\"{}\"/>",
                    esc(k),
                    esc(v)
                )?;
            }
            writeln!(self.out, "    </properties>")?;
        }
        self.open = true;
        Ok(())
    }

    fn close_suite(&mut self) -> io::Result<()> {
        if self.open {
            writeln!(self.out, "  </testsuite>")?;
            self.open = false;
        }
        Ok(())
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
        self.close_suite()?;
        writeln!(self.out, "</testsuites>")?;
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

/// The test cases of one image's report: a case per top-level region of the baseline (`regions`), one for
/// findings elsewhere (the whole image, `/`), or a single error case.
pub fn cases(
    regions: &[String],
    findings: &[Finding],
    error: Option<(&str, &str)>,
) -> Vec<(String, Outcome)> {
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
    cases
}

/// Counts of a list of cases.
pub fn count(cases: &[(String, Outcome)]) -> Counts {
    let mut c = Counts::default();
    for (_, o) in cases {
        c.add(o);
    }
    c
}

impl Counts {
    /// Counts one more case.
    pub fn add(&mut self, o: &Outcome) {
        self.tests += 1;
        match o {
            Outcome::Passed => {}
            Outcome::Failure { .. } => self.failures += 1,
            Outcome::Error { .. } => self.errors += 1,
            Outcome::Skipped { .. } => self.skipped += 1,
        }
    }

    /// The sum of two counts.
    pub fn plus(self, o: Counts) -> Counts {
        Counts {
            tests: self.tests + o.tests,
            failures: self.failures + o.failures,
            errors: self.errors + o.errors,
            skipped: self.skipped + o.skipped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_counts() {
        assert_eq!(esc("a<b>&\"'\u{1}"), "a&lt;b&gt;&amp;&quot;&apos;\u{FFFD}");
        let f = Finding::general(crate::finding::Code::UnknownFirmware, "nope");
        let cases = cases(&["bios".into()], &[f], None);
        let c = count(&cases);
        assert_eq!((c.tests, c.failures), (2, 1));
        assert!(matches!(cases[0], (ref n, Outcome::Passed) if n == "bios"));
    }
}
