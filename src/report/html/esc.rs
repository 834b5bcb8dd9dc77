//! Escaping: every string that reaches the page goes through [`esc`] (element text and quoted attribute
//! values alike), so a name taken from an image (a squashfs or CBFS file name, a UI section, a FIT
//! description) stays text. Control characters and the Unicode format characters that reorder or hide
//! text (bidi overrides and isolates, zero-width marks, the BOM) are shown as visible escapes (`\u{202e}`),
//! so what the page shows is what the bytes say.

/// `s` escaped for HTML text and for a double- or single-quoted attribute value, clipped to `max`
/// characters (a `…` and the count of characters left out mark a clip).
pub fn esc_max(s: &str, max: usize) -> String {
    let mut o = String::with_capacity(s.len().min(max.saturating_mul(2)) + 8);
    let mut it = s.chars();
    for (n, c) in it.by_ref().enumerate() {
        if n == max {
            let rest = 1 + it.count();
            o.push_str(&format!("… (+{rest} characters)"));
            return o;
        }
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if hidden(c) => o.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

/// [`esc_max`] with the default clip (512 characters).
pub fn esc(s: &str) -> String {
    esc_max(s, 512)
}

/// Characters that are not shown as themselves: C0 and C1 controls, DEL, and the format characters that
/// reorder, join or hide text.
pub fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}'     // zero-width space/joiners, LRM, RLM
            | '\u{2028}'..='\u{202e}'   // line/paragraph separators, LRE RLE PDF LRO RLO
            | '\u{2060}'..='\u{2069}'   // word joiner, invisible operators, LRI RLI FSI PDI
            | '\u{061c}'                // Arabic letter mark
            | '\u{feff}'                // BOM / zero-width no-break space
            | '\u{fff9}'..='\u{fffb}') // interlinear annotation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_quotes_controls_and_bidi_become_text() {
        assert_eq!(
            esc("<script>alert('x')</script>"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
        );
        assert_eq!(
            esc("\"><img src=x onerror=alert(1)>"),
            "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
        );
        assert_eq!(esc("a\0b\u{202e}c\n&"), "a\\u{0}b\\u{202e}c\\u{a}&amp;");
        assert_eq!(
            esc("\u{7f}\u{85}\u{2066}\u{feff}"),
            "\\u{7f}\\u{85}\\u{2066}\\u{feff}"
        );
        assert_eq!(esc("UEFI ü é"), "UEFI ü é");
        assert_eq!(esc_max("abcdef", 3), "abc… (+3 characters)");
        assert_eq!(esc_max("abc", 3), "abc");
    }
}
