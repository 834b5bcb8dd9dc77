//! Flash layouts: flashrom's layout file format (`start:end name`, hexadecimal, inclusive end), also the
//! form in which device-tree and preset layouts are carried in manifests.
#![deny(clippy::arithmetic_side_effects)]

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::finding::Code;
use crate::input::Data;
use crate::region::{Note, Policy, Region, RegionKind};

/// Most entries a layout may have.
pub const MAX_ENTRIES: usize = 4096;

/// One named range of flash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutEntry {
    pub name: String,
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive, as in flashrom).
    pub end: u64,
    /// Policy of the whole partition (default static).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
}

impl LayoutEntry {
    pub fn size(&self) -> u64 {
        self.end.saturating_sub(self.start).saturating_add(1)
    }
}

/// A flash layout and where it came from (`user`, `manifest`, `device-tree`, `preset:...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    pub source: String,
    pub entries: Vec<LayoutEntry>,
}

impl Layout {
    /// Parses flashrom's layout text. Errors carry the 1-based line number.
    pub fn parse_flashrom(text: &str, source: &str) -> Result<Layout, (usize, String)> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let lineno = i.saturating_add(1);
            let (range, name) = line
                .split_once(char::is_whitespace)
                .ok_or((lineno, "expected `start:end name`".to_string()))?;
            let name = name.trim();
            let (s, e) = range
                .split_once(':')
                .ok_or((lineno, format!("expected `start:end`, got `{range}`")))?;
            let num = |t: &str| {
                let t = t.trim();
                let t = t
                    .strip_prefix("0x")
                    .or_else(|| t.strip_prefix("0X"))
                    .unwrap_or(t);
                u64::from_str_radix(t, 16)
                    .map_err(|e| (lineno, format!("bad hex number `{t}`: {e}")))
            };
            let (start, end) = (num(s)?, num(e)?);
            if end < start {
                return Err((lineno, format!("end {end:#x} is before start {start:#x}")));
            }
            if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
                return Err((lineno, format!("bad region name `{name}`")));
            }
            if entries.len() >= MAX_ENTRIES {
                return Err((lineno, format!("more than {MAX_ENTRIES} entries")));
            }
            entries.push(LayoutEntry {
                name: name.to_string(),
                start,
                end,
                policy: None,
            });
        }
        if entries.is_empty() {
            return Err((0, "no entries".to_string()));
        }
        Ok(Layout {
            source: source.to_string(),
            entries,
        })
    }

    /// Renders flashrom's text form.
    pub fn to_flashrom(&self) -> String {
        self.entries
            .iter()
            .map(|e| format!("{:08x}:{:08x} {}\n", e.start, e.end, e.name))
            .collect()
    }

    /// Turns the layout into flash-region nodes over the whole of `data`. See [`Layout::place`].
    pub fn apply(&self, data: &Arc<Data>, notes: &mut Vec<Note>) -> Vec<Region> {
        self.place(data, 0, data.len() as u64, RegionKind::FlashRegion, notes)
    }

    /// Turns the layout (offsets relative to `base`) into nodes of `kind` over `len` bytes of `data` from
    /// `base`. Entries past the end are clipped (or dropped when they start past it) and noted; overlaps
    /// are noted (both nodes kept: both are hashed). Never panics.
    pub fn place(
        &self,
        data: &Arc<Data>,
        base: u64,
        len: u64,
        kind: RegionKind,
        notes: &mut Vec<Note>,
    ) -> Vec<Region> {
        let mut out: Vec<Region> = Vec::new();
        let mut sorted: Vec<&LayoutEntry> = self.entries.iter().collect();
        sorted.sort_by_key(|e| (e.start, e.end));
        let mut prev: Option<&LayoutEntry> = None;
        for e in sorted {
            if let Some(p) = prev {
                if e.start <= p.end {
                    notes.push(Note::new(
                        Code::PartitionOverlap,
                        format!(
                            "layout ({}): `{}` {:#x}..={:#x} overlaps `{}` {:#x}..={:#x}",
                            self.source, e.name, e.start, e.end, p.name, p.start, p.end
                        ),
                        Some(base.saturating_add(e.start)),
                    ));
                }
            }
            if prev.is_none_or(|p| e.end > p.end) {
                prev = Some(e);
            }
            if e.end >= len {
                notes.push(Note::new(
                    Code::PartitionOutOfBounds,
                    format!(
                        "layout ({}): `{}` {:#x}..={:#x} extends past the end of the {len:#x}-byte flash",
                        self.source, e.name, e.start, e.end
                    ),
                    Some(base.saturating_add(e.start.min(len))),
                ));
                if e.start >= len {
                    continue;
                }
            }
            // `e.start < len` (checked above).
            let size = e.size().min(len.saturating_sub(e.start));

            let mut r = Region::new(
                kind,
                e.name.clone(),
                data,
                base.saturating_add(e.start),
                size,
            )
            .with_attr("layout-source", self.source.clone());
            if let Some(p) = e.policy {
                r.policy = p;
            }
            out.push(r);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flashrom_layouts() {
        let l = Layout::parse_flashrom(
            "# comment\n00000000:00000fff fd\n0x1000:0x1FFF bios  # trailing\n",
            "user",
        )
        .unwrap();
        assert_eq!(l.entries.len(), 2);
        assert_eq!(l.entries[1].start, 0x1000);
        assert_eq!(l.entries[1].size(), 0x1000);
        assert_eq!(Layout::parse_flashrom("10:5 x", "u").unwrap_err().0, 1);
        assert_eq!(Layout::parse_flashrom("\n\nzz:5 x", "u").unwrap_err().0, 3);
        assert!(Layout::parse_flashrom("", "u").is_err());
    }

    #[test]
    fn overlaps_and_overruns_become_notes_not_panics() {
        let data = Arc::new(Data::Owned(vec![0; 0x100]));
        let l = Layout::parse_flashrom("0:7f a\n40:ff b\n80:1ff c\n200:2ff d\n", "user").unwrap();
        let mut notes = Vec::new();
        let regions = l.apply(&data, &mut notes);
        assert_eq!(regions.len(), 3);
        let codes: Vec<_> = notes.iter().map(|n| n.code.as_str()).collect();
        assert_eq!(
            codes,
            vec![
                "partition-overlap",
                "partition-overlap",
                "partition-out-of-bounds",
                "partition-out-of-bounds"
            ]
        );
        assert_eq!(regions[2].size, 0x80);
    }
}
