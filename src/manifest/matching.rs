//! Match rules: what a manifest declares so that a fleet audit can recognise its firmware.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Rules a manifest declares so that `audit` can recognise its firmware (`match` object, all optional; all
/// given rules must hold).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MatchRules {
    /// Exact image size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Top-level format as detected (`raw`, `layout`, or a registry name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Byte strings (UTF-8) that must all occur in the image, e.g. a BIOS version string.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strings: Vec<String>,
    /// GUIDs (volume, file-system or file GUIDs) that must all occur in the parsed image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guids: Vec<String>,
    /// `KEY=value` pairs that must all occur in an `/etc/os-release` found in the image (OpenBMC rofs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub os_release: BTreeMap<String, String>,
}

/// Longest match string accepted.
pub const MAX_MATCH_STRING: usize = 256;

/// Why a manifest's match rules are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MatchRulesError {
    #[error("match.strings entries must be 1-{MAX_MATCH_STRING} bytes")]
    StringLength,
    #[error("more than 64 match rules")]
    TooMany,
}

impl MatchRules {
    /// Number of rules (the evidence weight).
    pub fn len(&self) -> u32 {
        (self.size.is_some() as u32)
            + (self.format.is_some() as u32)
            + self.strings.len() as u32
            + self.guids.len() as u32
            + self.os_release.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that the rules are usable.
    pub fn validate(&self) -> Result<(), MatchRulesError> {
        for s in &self.strings {
            if s.is_empty() || s.len() > MAX_MATCH_STRING {
                return Err(MatchRulesError::StringLength);
            }
        }
        if self.len() > 64 {
            return Err(MatchRulesError::TooMany);
        }
        Ok(())
    }
}
