//! TCG event logs (TCG PC Client Platform Firmware Profile, sections 9 and 10): the record a measured
//! boot leaves of every digest the firmware extended into a TPM PCR.
//!
//! Two encodings:
//! - the legacy SHA-1 log: a sequence of `TCG_PCR_EVENT` (`pcrIndex u32, eventType u32, digest[20],
//!   eventDataSize u32, event[]`);
//! - the crypto-agile log: one `TCG_PCR_EVENT` of type `EV_NO_ACTION` whose data is the
//!   `TCG_EfiSpecIDEvent` (signature `Spec ID Event03`, the digest algorithms and their sizes), then
//!   `TCG_PCR_EVENT2` records (`pcrIndex u32, eventType u32, count u32, {algId u16, digest}[count],
//!   eventSize u32, event[]`), each digest as long as the Spec ID event says for its algorithm.
//!
//! [`parse`] reads either under [`Limits`] (log size, event count, digests per event, bytes of one event)
//! and fails with the byte offset of the first thing it cannot read ([`LogError`]); it never allocates more
//! than the log holds. [`Event::decode`] turns an event's data into typed fields for the event types the
//! PC Client profile defines; an unknown type is kept as raw bytes, named by its number.
#![deny(clippy::arithmetic_side_effects)]

use serde::Serialize;

/// TPM algorithm identifiers (TCG Algorithm Registry) of the PCR banks fwscan replays.
pub const ALG_SHA1: u16 = 0x0004;
pub const ALG_SHA256: u16 = 0x000B;
pub const ALG_SHA384: u16 = 0x000C;
pub const ALG_SHA512: u16 = 0x000D;
pub const ALG_SM3_256: u16 = 0x0012;

/// The name of a TPM hash algorithm (`sha256`), or `alg-0xNNNN`.
pub fn alg_name(id: u16) -> String {
    match id {
        ALG_SHA1 => "sha1".into(),
        ALG_SHA256 => "sha256".into(),
        ALG_SHA384 => "sha384".into(),
        ALG_SHA512 => "sha512".into(),
        ALG_SM3_256 => "sm3_256".into(),
        _ => format!("alg-{id:#06x}"),
    }
}

/// Event types (PC Client PFP, table 9 and 10).
pub const EV_POST_CODE: u32 = 0x1;
pub const EV_NO_ACTION: u32 = 0x3;
pub const EV_SEPARATOR: u32 = 0x4;
pub const EV_ACTION: u32 = 0x5;
pub const EV_EVENT_TAG: u32 = 0x6;
pub const EV_S_CRTM_CONTENTS: u32 = 0x7;
pub const EV_S_CRTM_VERSION: u32 = 0x8;
pub const EV_IPL: u32 = 0xD;
pub const EV_EFI_VARIABLE_DRIVER_CONFIG: u32 = 0x8000_0001;
pub const EV_EFI_VARIABLE_BOOT: u32 = 0x8000_0002;
pub const EV_EFI_BOOT_SERVICES_APPLICATION: u32 = 0x8000_0003;
pub const EV_EFI_BOOT_SERVICES_DRIVER: u32 = 0x8000_0004;
pub const EV_EFI_RUNTIME_SERVICES_DRIVER: u32 = 0x8000_0005;
pub const EV_EFI_GPT_EVENT: u32 = 0x8000_0006;
pub const EV_EFI_ACTION: u32 = 0x8000_0007;
pub const EV_EFI_PLATFORM_FIRMWARE_BLOB: u32 = 0x8000_0008;
pub const EV_EFI_HANDOFF_TABLES: u32 = 0x8000_0009;
pub const EV_EFI_PLATFORM_FIRMWARE_BLOB2: u32 = 0x8000_000A;
pub const EV_EFI_HANDOFF_TABLES2: u32 = 0x8000_000B;
pub const EV_EFI_VARIABLE_BOOT2: u32 = 0x8000_000C;
pub const EV_EFI_GPT_EVENT2: u32 = 0x8000_000D;
pub const EV_EFI_HCRTM_EVENT: u32 = 0x8000_0010;
pub const EV_EFI_VARIABLE_AUTHORITY: u32 = 0x8000_00E0;

/// The PC Client name of an event type, if it has one.
pub fn type_name(t: u32) -> Option<&'static str> {
    Some(match t {
        0x0 => "EV_PREBOOT_CERT",
        EV_POST_CODE => "EV_POST_CODE",
        0x2 => "EV_UNUSED",
        EV_NO_ACTION => "EV_NO_ACTION",
        EV_SEPARATOR => "EV_SEPARATOR",
        EV_ACTION => "EV_ACTION",
        EV_EVENT_TAG => "EV_EVENT_TAG",
        EV_S_CRTM_CONTENTS => "EV_S_CRTM_CONTENTS",
        EV_S_CRTM_VERSION => "EV_S_CRTM_VERSION",
        0x9 => "EV_CPU_MICROCODE",
        0xA => "EV_PLATFORM_CONFIG_FLAGS",
        0xB => "EV_TABLE_OF_DEVICES",
        0xC => "EV_COMPACT_HASH",
        EV_IPL => "EV_IPL",
        0xE => "EV_IPL_PARTITION_DATA",
        0xF => "EV_NONHOST_CODE",
        0x10 => "EV_NONHOST_CONFIG",
        0x11 => "EV_NONHOST_INFO",
        0x12 => "EV_OMIT_BOOT_DEVICE_EVENTS",
        0x13 => "EV_POST_CODE2",
        EV_EFI_VARIABLE_DRIVER_CONFIG => "EV_EFI_VARIABLE_DRIVER_CONFIG",
        EV_EFI_VARIABLE_BOOT => "EV_EFI_VARIABLE_BOOT",
        EV_EFI_BOOT_SERVICES_APPLICATION => "EV_EFI_BOOT_SERVICES_APPLICATION",
        EV_EFI_BOOT_SERVICES_DRIVER => "EV_EFI_BOOT_SERVICES_DRIVER",
        EV_EFI_RUNTIME_SERVICES_DRIVER => "EV_EFI_RUNTIME_SERVICES_DRIVER",
        EV_EFI_GPT_EVENT => "EV_EFI_GPT_EVENT",
        EV_EFI_ACTION => "EV_EFI_ACTION",
        EV_EFI_PLATFORM_FIRMWARE_BLOB => "EV_EFI_PLATFORM_FIRMWARE_BLOB",
        EV_EFI_HANDOFF_TABLES => "EV_EFI_HANDOFF_TABLES",
        EV_EFI_PLATFORM_FIRMWARE_BLOB2 => "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
        EV_EFI_HANDOFF_TABLES2 => "EV_EFI_HANDOFF_TABLES2",
        EV_EFI_VARIABLE_BOOT2 => "EV_EFI_VARIABLE_BOOT2",
        EV_EFI_GPT_EVENT2 => "EV_EFI_GPT_EVENT2",
        EV_EFI_HCRTM_EVENT => "EV_EFI_HCRTM_EVENT",
        EV_EFI_VARIABLE_AUTHORITY => "EV_EFI_VARIABLE_AUTHORITY",
        0x8000_00E1 => "EV_EFI_SPDM_FIRMWARE_BLOB",
        0x8000_00E2 => "EV_EFI_SPDM_FIRMWARE_CONFIG",
        _ => return None,
    })
}

/// Bounds against hostile logs.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest log read, in bytes.
    pub max_size: u64,
    /// Most events.
    pub max_events: usize,
    /// Most bytes of one event's data.
    pub max_event_data: u32,
    /// Most digests in one event (and algorithms in the Spec ID event).
    pub max_digests: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_size: 64 << 20,
            max_events: 200_000,
            max_event_data: 16 << 20,
            max_digests: 16,
        }
    }
}

/// Why a log could not be read: the offset of the first byte that could not be read, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("offset {offset:#x}: {message}")]
pub struct LogError {
    pub offset: u64,
    pub message: String,
}

fn err(offset: u64, message: impl Into<String>) -> LogError {
    LogError {
        offset,
        message: message.into(),
    }
}

/// How the log is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// TCG_PCR_EVENT records with one SHA-1 digest each.
    Sha1,
    /// A Spec ID event, then TCG_PCR_EVENT2 records.
    CryptoAgile,
}

/// One digest algorithm of the Spec ID event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AlgSize {
    pub id: u16,
    pub size: u16,
}

/// The `TCG_EfiSpecIDEvent` of a crypto-agile log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecId {
    pub signature: String,
    pub platform_class: u32,
    pub spec_version: String,
    pub uintn_size: u8,
    pub algorithms: Vec<AlgSize>,
    #[serde(serialize_with = "hex_bytes")]
    pub vendor_info: Vec<u8>,
}

/// One digest of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub alg: u16,
    pub bytes: Vec<u8>,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Position in the log, from 0 (the Spec ID event of a crypto-agile log is event 0).
    pub index: usize,
    /// Offset of the record in the log.
    pub offset: u64,
    pub pcr: u32,
    pub event_type: u32,
    pub digests: Vec<Digest>,
    pub data: Vec<u8>,
}

/// A parsed log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLog {
    pub format: LogFormat,
    pub spec: Option<SpecId>,
    pub events: Vec<Event>,
    /// Blank bytes (all 0x00 or all 0xFF) after the last event: the unused end of a firmware log area.
    pub padding: u64,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn off(&self) -> u64 {
        self.pos as u64
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], LogError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| {
                err(
                    self.off(),
                    format!(
                        "truncated {what}: needs {n} bytes, {} left",
                        self.b.len().saturating_sub(self.pos)
                    ),
                )
            })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self, what: &str) -> Result<u32, LogError> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn u16(&mut self, what: &str) -> Result<u16, LogError> {
        let s = self.take(2, what)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
}

const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";
const LEGACY_HEADER: usize = 32;

/// Parses a TCG event log (either encoding).
pub fn parse(b: &[u8], limits: &Limits) -> Result<EventLog, LogError> {
    if b.len() as u64 > limits.max_size {
        return Err(err(
            0,
            format!(
                "log of {} bytes is larger than the limit of {} bytes",
                b.len(),
                limits.max_size
            ),
        ));
    }
    if b.is_empty() {
        return Err(err(0, "empty log"));
    }
    let mut r = Reader { b, pos: 0 };
    let mut events = Vec::new();
    // The first record is always a TCG_PCR_EVENT.
    let first = legacy_event(&mut r, 0, limits)?;
    let spec = (first.event_type == EV_NO_ACTION && first.data.starts_with(SPEC_ID_SIGNATURE))
        .then(|| spec_id(&first.data, first.offset))
        .transpose()?;
    events.push(first);
    let mut padding = 0;
    while r.pos < b.len() {
        let rest = &b[r.pos..];
        // At least 8 bytes: fewer zeros could be the start of a truncated event (PCR 0, ...), but no
        // event has type 0 (EV_PREBOOT_CERT is retired) or PCR 0xFFFFFFFF with a type of all ones.
        if rest.len() >= 8 && (rest.iter().all(|&x| x == 0) || rest.iter().all(|&x| x == 0xFF)) {
            padding = rest.len() as u64;
            break;
        }
        if events.len() >= limits.max_events {
            return Err(err(
                r.off(),
                format!("more than {} events", limits.max_events),
            ));
        }
        let index = events.len();
        let e = match &spec {
            Some(s) => agile_event(&mut r, index, s, limits)?,
            None => legacy_event(&mut r, index, limits)?,
        };
        events.push(e);
    }
    Ok(EventLog {
        format: if spec.is_some() {
            LogFormat::CryptoAgile
        } else {
            LogFormat::Sha1
        },
        spec,
        events,
        padding,
    })
}

fn check_pcr(pcr: u32, event_type: u32, offset: u64) -> Result<(), LogError> {
    // PC Client TPMs have 24 PCRs; an EV_NO_ACTION event extends nothing and may name any index.
    if pcr > 23 && event_type != EV_NO_ACTION {
        return Err(err(offset, format!("PCR index {pcr} out of range 0-23")));
    }
    Ok(())
}

fn event_data<'a>(r: &mut Reader<'a>, limits: &Limits, offset: u64) -> Result<&'a [u8], LogError> {
    let size_at = r.off();
    let size = r.u32("event data size")?;
    if size > limits.max_event_data {
        return Err(err(
            size_at,
            format!(
                "event at {offset:#x}: data size {size} is larger than the limit of {}",
                limits.max_event_data
            ),
        ));
    }
    r.take(size as usize, "event data")
}

fn legacy_event(r: &mut Reader, index: usize, limits: &Limits) -> Result<Event, LogError> {
    let offset = r.off();
    if r.b.len().saturating_sub(r.pos) < LEGACY_HEADER {
        return Err(err(offset, "truncated TCG_PCR_EVENT header"));
    }
    let pcr = r.u32("PCR index")?;
    let event_type = r.u32("event type")?;
    check_pcr(pcr, event_type, offset)?;
    let digest = r.take(20, "SHA-1 digest")?.to_vec();
    let data = event_data(r, limits, offset)?.to_vec();
    Ok(Event {
        index,
        offset,
        pcr,
        event_type,
        digests: vec![Digest {
            alg: ALG_SHA1,
            bytes: digest,
        }],
        data,
    })
}

fn agile_event(
    r: &mut Reader,
    index: usize,
    spec: &SpecId,
    limits: &Limits,
) -> Result<Event, LogError> {
    let offset = r.off();
    let pcr = r.u32("PCR index")?;
    let event_type = r.u32("event type")?;
    check_pcr(pcr, event_type, offset)?;
    let count_at = r.off();
    let count = r.u32("digest count")?;
    if count > limits.max_digests {
        return Err(err(
            count_at,
            format!(
                "digest count {count} is larger than the limit of {}",
                limits.max_digests
            ),
        ));
    }
    let mut digests = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let at = r.off();
        let alg = r.u16("digest algorithm")?;
        let size = spec
            .algorithms
            .iter()
            .find(|a| a.id == alg)
            .ok_or_else(|| {
                err(
                    at,
                    format!(
                        "digest algorithm {} is not declared by the Spec ID event",
                        alg_name(alg)
                    ),
                )
            })?
            .size;
        if digests.iter().any(|d: &Digest| d.alg == alg) {
            return Err(err(
                at,
                format!("two {} digests in one event", alg_name(alg)),
            ));
        }
        digests.push(Digest {
            alg,
            bytes: r.take(size.into(), "digest")?.to_vec(),
        });
    }
    let data = event_data(r, limits, offset)?.to_vec();
    Ok(Event {
        index,
        offset,
        pcr,
        event_type,
        digests,
        data,
    })
}

fn spec_id(d: &[u8], offset: u64) -> Result<SpecId, LogError> {
    // The event data starts after the 32-byte TCG_PCR_EVENT header.
    let base = offset.saturating_add(LEGACY_HEADER as u64);
    let mut r = Reader { b: d, pos: 0 };
    let at = |r: &Reader| base.saturating_add(r.off());
    let sig = r.take(16, "Spec ID signature")?;
    let signature = String::from_utf8_lossy(sig)
        .trim_end_matches('\0')
        .to_string();
    let platform_class = r.u32("platform class").map_err(|e| rebase(e, base))?;
    let v = r.take(4, "spec version").map_err(|e| rebase(e, base))?;
    let n_at = at(&r);
    let n = r.u32("number of algorithms").map_err(|e| rebase(e, base))?;
    if n == 0 || n > 16 {
        return Err(err(
            n_at,
            format!("Spec ID event declares {n} algorithms (1-16 allowed)"),
        ));
    }
    let mut algorithms = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let a_at = at(&r);
        let id = r.u16("algorithm id").map_err(|e| rebase(e, base))?;
        let size = r.u16("digest size").map_err(|e| rebase(e, base))?;
        if size == 0 || size > 64 {
            return Err(err(
                a_at,
                format!("{} digest size {size} (1-64 allowed)", alg_name(id)),
            ));
        }
        let known = match id {
            ALG_SHA1 => Some(20),
            ALG_SHA256 | ALG_SM3_256 => Some(32),
            ALG_SHA384 => Some(48),
            ALG_SHA512 => Some(64),
            _ => None,
        };
        if known.is_some_and(|k| k != size) {
            return Err(err(
                a_at,
                format!("{} digest size {size} is wrong", alg_name(id)),
            ));
        }
        if algorithms.iter().any(|a: &AlgSize| a.id == id) {
            return Err(err(a_at, format!("{} declared twice", alg_name(id))));
        }
        algorithms.push(AlgSize { id, size });
    }
    let vsize = r.take(1, "vendor info size").map_err(|e| rebase(e, base))?[0];
    let vendor_info = r
        .take(vsize.into(), "vendor info")
        .map_err(|e| rebase(e, base))?
        .to_vec();
    Ok(SpecId {
        signature,
        platform_class,
        spec_version: format!("{}.{}.{}", v[1], v[0], v[2]),
        uintn_size: v[3],
        algorithms,
        vendor_info,
    })
}

fn rebase(e: LogError, base: u64) -> LogError {
    err(e.offset.saturating_add(base), e.message)
}

// ---------------------------------------------------------------------------------------------------------
// Event data.

fn hex_bytes<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(b))
}

/// An EFI GUID in its registry form (`None` when fewer than 16 bytes).
pub fn guid(b: &[u8]) -> Option<String> {
    b.get(..16).map(crate::formats::util::guid)
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Text of a UCS-2 (UTF-16LE) or ASCII string, up to its first NUL. UCS-2 is recognised by its zero
/// high bytes (firmware strings are Latin); anything else is read as ASCII/UTF-8.
fn text(b: &[u8]) -> String {
    let utf16 = b.len() >= 2
        && b.len() % 2 == 0
        && b.chunks(2).all(|c| c[1] == 0)
        && b.chunks(2).any(|c| c[0] != 0);
    if utf16 || (b.len() == 2 && b == [0, 0]) {
        let w: Vec<u16> = b
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&c| c != 0)
            .collect();
        String::from_utf16_lossy(&w)
    } else {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    }
}

/// One node of a UEFI device path, as far as fwscan names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "node", rename_all = "kebab-case")]
pub enum PathNode {
    /// PCI device (type 1, subtype 1).
    Pci { device: u8, function: u8 },
    /// ACPI device (type 2, subtype 1).
    Acpi { hid: String, uid: u32 },
    /// A firmware volume (media, subtype 7), by its name GUID.
    Fv { guid: String },
    /// A file in a firmware volume (media, subtype 6), by its name GUID.
    FvFile { guid: String },
    /// A byte range of the device (media, subtype 8): where an option ROM image sits in the ROM BAR.
    RelativeOffset { start: u64, end: u64 },
    /// A file path (media, subtype 4).
    File { path: String },
    /// A hard-drive partition (media, subtype 1).
    HardDrive { partition: u32 },
    /// Any other node, by type and subtype.
    Other { r#type: u8, subtype: u8 },
}

impl PathNode {
    /// Text form as UEFI's device path to-text protocol writes it (for the nodes named here).
    pub fn to_text(&self) -> String {
        match self {
            PathNode::Pci { device, function } => format!("Pci({device:#x},{function:#x})"),
            PathNode::Acpi { hid, uid } => format!("Acpi({hid},{uid:#x})"),
            PathNode::Fv { guid } => format!("Fv({guid})"),
            PathNode::FvFile { guid } => format!("FvFile({guid})"),
            PathNode::RelativeOffset { start, end } => format!("Offset({start:#x},{end:#x})"),
            PathNode::File { path } => path.clone(),
            PathNode::HardDrive { partition } => format!("HD({partition})"),
            PathNode::Other { r#type, subtype } => format!("Path({type},{subtype})"),
        }
    }
}

/// The nodes of a device path, up to its end node (at most 64 nodes; a malformed node ends the list).
pub fn device_path(b: &[u8]) -> Vec<PathNode> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while out.len() < 64 {
        let Some(h) = b.get(at..at.saturating_add(4)) else {
            break;
        };
        let (t, st, len) = (h[0], h[1], usize::from(u16::from_le_bytes([h[2], h[3]])));
        if t == 0x7F || len < 4 {
            break;
        }
        let Some(body) = b.get(at.saturating_add(4)..at.saturating_add(len)) else {
            break;
        };
        let u32_at = |o: usize| {
            body.get(o..o.saturating_add(4))
                .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        };
        let node = match (t, st) {
            (1, 1) if body.len() >= 2 => PathNode::Pci {
                function: body[0],
                device: body[1],
            },
            (2, 1) if body.len() >= 8 => {
                let hid = u32_at(0).unwrap_or(0);
                // EISA id: compressed 3-letter vendor in the low word, product in the high word.
                let v = hid & 0xFFFF;
                let c = |s: u32| char::from(b'@'.saturating_add(((v >> s) & 0x1F) as u8));
                PathNode::Acpi {
                    hid: format!("{}{}{}{:04X}", c(10), c(5), c(0), hid >> 16),
                    uid: u32_at(4).unwrap_or(0),
                }
            }
            (4, 6) => match guid(body) {
                Some(g) => PathNode::FvFile { guid: g },
                None => PathNode::Other {
                    r#type: t,
                    subtype: st,
                },
            },
            (4, 7) => match guid(body) {
                Some(g) => PathNode::Fv { guid: g },
                None => PathNode::Other {
                    r#type: t,
                    subtype: st,
                },
            },
            (4, 8) if body.len() >= 20 => PathNode::RelativeOffset {
                start: le64(body, 4).unwrap_or(0),
                end: le64(body, 12).unwrap_or(0),
            },
            (4, 4) => PathNode::File { path: text(body) },
            (4, 1) => PathNode::HardDrive {
                partition: u32_at(0).unwrap_or(0),
            },
            _ => PathNode::Other {
                r#type: t,
                subtype: st,
            },
        };
        out.push(node);
        at = at.saturating_add(len);
    }
    out
}

/// An event's data, decoded by its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EventData {
    /// The Spec ID event of a crypto-agile log.
    SpecId(SpecId),
    /// `EV_NO_ACTION` "StartupLocality": the locality the TPM was started from (PCR 0's initial value).
    StartupLocality { locality: u8 },
    /// Another `EV_NO_ACTION` event, by its signature.
    NoAction {
        signature: String,
        #[serde(serialize_with = "hex_bytes")]
        data: Vec<u8>,
    },
    /// A string (`EV_S_CRTM_VERSION`, `EV_POST_CODE`, `EV_IPL`, `EV_EFI_ACTION`, `EV_ACTION`).
    Text { text: String },
    /// `EV_EFI_PLATFORM_FIRMWARE_BLOB(2)`, or an `EV_POST_CODE` given as a blob: the measured bytes'
    /// address and length in memory.
    FirmwareBlob {
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        base: u64,
        length: u64,
    },
    /// `EV_EFI_BOOT_SERVICES_*`/`RUNTIME_SERVICES_DRIVER`: a PE image loaded and measured.
    Image {
        location: u64,
        length: u64,
        link_time_address: u64,
        device_path: Vec<PathNode>,
        device_path_text: String,
    },
    /// `EV_EFI_VARIABLE_*`.
    Variable {
        guid: String,
        name: String,
        #[serde(serialize_with = "hex_bytes")]
        data: Vec<u8>,
    },
    /// `EV_SEPARATOR`.
    Separator { value: u32 },
    /// `EV_EFI_GPT_EVENT`: the GPT header and the number of partitions measured.
    Gpt { disk_guid: String, partitions: u64 },
    /// `EV_EFI_HANDOFF_TABLES(2)`: the configuration tables handed off, by GUID.
    HandoffTables {
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        tables: Vec<String>,
    },
    /// `EV_EVENT_TAG`: a tagged event.
    Tagged {
        id: u32,
        #[serde(serialize_with = "hex_bytes")]
        data: Vec<u8>,
    },
    /// Data of a type fwscan does not decode, or that does not have the layout its type requires.
    Raw {
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        #[serde(serialize_with = "hex_bytes")]
        data: Vec<u8>,
    },
}

impl Event {
    /// The type's PC Client name, or `0xNNNNNNNN` for an unknown type.
    pub fn type_name(&self) -> String {
        type_name(self.event_type)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{:#010x}", self.event_type))
    }

    /// The digest of one algorithm, if the event has it.
    pub fn digest(&self, alg: u16) -> Option<&[u8]> {
        self.digests
            .iter()
            .find(|d| d.alg == alg)
            .map(|d| d.bytes.as_slice())
    }

    /// The event's data, decoded by its type.
    pub fn decode(&self) -> EventData {
        let d = &self.data;
        let raw = |note: &str| EventData::Raw {
            note: Some(note.to_string()),
            data: d.clone(),
        };
        match self.event_type {
            EV_NO_ACTION => {
                if d.starts_with(SPEC_ID_SIGNATURE) {
                    match spec_id(d, self.offset) {
                        Ok(s) => EventData::SpecId(s),
                        Err(e) => raw(&e.message),
                    }
                } else if d.starts_with(b"StartupLocality\0") && d.len() == 17 {
                    EventData::StartupLocality { locality: d[16] }
                } else {
                    let end = d.len().min(16);
                    EventData::NoAction {
                        signature: text(&d[..end]),
                        data: d[end..].to_vec(),
                    }
                }
            }
            EV_S_CRTM_VERSION | EV_IPL | EV_EFI_ACTION | EV_ACTION | EV_S_CRTM_CONTENTS => {
                let t = text(d);
                if t.chars().any(|c| c.is_control() || c == '\u{FFFD}') {
                    raw("not a UCS-2 or ASCII string")
                } else {
                    EventData::Text { text: t }
                }
            }
            EV_POST_CODE => {
                if d.len() == 16 {
                    EventData::FirmwareBlob {
                        description: None,
                        base: le64(d, 0).unwrap_or(0),
                        length: le64(d, 8).unwrap_or(0),
                    }
                } else {
                    EventData::Text { text: text(d) }
                }
            }
            EV_EFI_PLATFORM_FIRMWARE_BLOB => match (le64(d, 0), le64(d, 8)) {
                (Some(base), Some(length)) if d.len() == 16 => EventData::FirmwareBlob {
                    description: None,
                    base,
                    length,
                },
                _ => raw("UEFI_PLATFORM_FIRMWARE_BLOB is 16 bytes"),
            },
            EV_EFI_PLATFORM_FIRMWARE_BLOB2 => {
                let n = usize::from(d.first().copied().unwrap_or(0));
                let desc = d.get(1..n.saturating_add(1));
                let at = n.saturating_add(1);
                match (desc, le64(d, at), le64(d, at.saturating_add(8))) {
                    (Some(desc), Some(base), Some(length)) => EventData::FirmwareBlob {
                        description: Some(text(desc)),
                        base,
                        length,
                    },
                    _ => raw("truncated UEFI_PLATFORM_FIRMWARE_BLOB2"),
                }
            }
            EV_EFI_BOOT_SERVICES_APPLICATION
            | EV_EFI_BOOT_SERVICES_DRIVER
            | EV_EFI_RUNTIME_SERVICES_DRIVER => {
                match (le64(d, 0), le64(d, 8), le64(d, 16), le64(d, 24)) {
                    (Some(location), Some(length), Some(link_time_address), Some(plen)) => {
                        let path = usize::try_from(plen)
                            .ok()
                            .and_then(|n| d.get(32..32usize.checked_add(n)?));
                        match path {
                            Some(p) => {
                                let device_path = device_path(p);
                                let device_path_text = device_path
                                    .iter()
                                    .map(PathNode::to_text)
                                    .collect::<Vec<_>>()
                                    .join("/");
                                EventData::Image {
                                    location,
                                    length,
                                    link_time_address,
                                    device_path,
                                    device_path_text,
                                }
                            }
                            None => raw("device path past the end of UEFI_IMAGE_LOAD_EVENT"),
                        }
                    }
                    _ => raw("truncated UEFI_IMAGE_LOAD_EVENT"),
                }
            }
            EV_EFI_VARIABLE_DRIVER_CONFIG
            | EV_EFI_VARIABLE_BOOT
            | EV_EFI_VARIABLE_BOOT2
            | EV_EFI_VARIABLE_AUTHORITY => {
                let fields = (|| {
                    let g = guid(d)?;
                    let nlen = usize::try_from(le64(d, 16)?).ok()?;
                    let dlen = usize::try_from(le64(d, 24)?).ok()?;
                    let nend = 32usize.checked_add(nlen.checked_mul(2)?)?;
                    let name = text(d.get(32..nend)?);
                    let data = d.get(nend..nend.checked_add(dlen)?)?.to_vec();
                    Some(EventData::Variable {
                        guid: g,
                        name,
                        data,
                    })
                })();
                fields.unwrap_or_else(|| raw("truncated UEFI_VARIABLE_DATA"))
            }
            EV_SEPARATOR if d.len() == 4 => EventData::Separator {
                value: u32::from_le_bytes([d[0], d[1], d[2], d[3]]),
            },
            EV_EFI_GPT_EVENT | EV_EFI_GPT_EVENT2 => {
                // UEFI_GPT_DATA: the 92-byte partition table header, then NumberOfPartitions u64.
                let fields = (|| {
                    let hsize = u32::from_le_bytes(d.get(12..16)?.try_into().ok()?);
                    let hsize = usize::try_from(hsize).ok()?.max(92);
                    Some(EventData::Gpt {
                        disk_guid: guid(d.get(56..72)?)?,
                        partitions: le64(d, hsize)?,
                    })
                })();
                fields.unwrap_or_else(|| raw("truncated UEFI_GPT_DATA"))
            }
            EV_EFI_HANDOFF_TABLES | EV_EFI_HANDOFF_TABLES2 => {
                let (description, at) = if self.event_type == EV_EFI_HANDOFF_TABLES2 {
                    let n = usize::from(d.first().copied().unwrap_or(0));
                    (d.get(1..n.saturating_add(1)).map(text), n.saturating_add(1))
                } else {
                    (None, 0)
                };
                let fields = (|| {
                    let count = le64(d, at)?;
                    let mut tables = Vec::new();
                    for i in 0..count.min(256) {
                        let o = usize::try_from(i).ok()?.checked_mul(24)?.checked_add(at)?;
                        tables.push(guid(d.get(o.checked_add(8)?..)?)?);
                    }
                    Some(EventData::HandoffTables {
                        description: description.clone(),
                        tables,
                    })
                })();
                fields.unwrap_or_else(|| raw("truncated UEFI_HANDOFF_TABLE_POINTERS"))
            }
            EV_EVENT_TAG => {
                let fields = (|| {
                    let id = u32::from_le_bytes(d.get(0..4)?.try_into().ok()?);
                    let n = u32::from_le_bytes(d.get(4..8)?.try_into().ok()?);
                    let data = d.get(8..8usize.checked_add(usize::try_from(n).ok()?)?)?;
                    Some(EventData::Tagged {
                        id,
                        data: data.to_vec(),
                    })
                })();
                fields.unwrap_or_else(|| raw("truncated TCG_PCClientTaggedEvent"))
            }
            t => EventData::Raw {
                note: type_name(t)
                    .is_none()
                    .then(|| "unknown event type".to_string()),
                data: d.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_event(algs: &[(u16, u16)]) -> Vec<u8> {
        let mut d = SPEC_ID_SIGNATURE.to_vec();
        d.extend(0u32.to_le_bytes());
        d.extend([0, 2, 0, 2]);
        d.extend((algs.len() as u32).to_le_bytes());
        for (a, s) in algs {
            d.extend(a.to_le_bytes());
            d.extend(s.to_le_bytes());
        }
        d.push(0);
        let mut e = 0u32.to_le_bytes().to_vec();
        e.extend(EV_NO_ACTION.to_le_bytes());
        e.extend([0u8; 20]);
        e.extend((d.len() as u32).to_le_bytes());
        e.extend(d);
        e
    }

    fn agile(pcr: u32, t: u32, digests: &[(u16, Vec<u8>)], data: &[u8]) -> Vec<u8> {
        let mut e = pcr.to_le_bytes().to_vec();
        e.extend(t.to_le_bytes());
        e.extend((digests.len() as u32).to_le_bytes());
        for (a, d) in digests {
            e.extend(a.to_le_bytes());
            e.extend(d);
        }
        e.extend((data.len() as u32).to_le_bytes());
        e.extend(data);
        e
    }

    #[test]
    fn crypto_agile_log_parses_and_decodes() {
        let mut log = spec_event(&[(ALG_SHA256, 32)]);
        let blob = [0x20u8, 0, 0x82, 0, 0, 0, 0, 0, 0, 0, 0x0E, 0, 0, 0, 0, 0];
        log.extend(agile(
            0,
            EV_EFI_PLATFORM_FIRMWARE_BLOB,
            &[(ALG_SHA256, vec![7; 32])],
            &blob,
        ));
        log.extend(agile(0, 0x1234_5678, &[(ALG_SHA256, vec![1; 32])], b"x"));
        let l = parse(&log, &Limits::default()).unwrap();
        assert_eq!(l.format, LogFormat::CryptoAgile);
        assert_eq!(l.events.len(), 3);
        assert_eq!(
            l.events[1].decode(),
            EventData::FirmwareBlob {
                description: None,
                base: 0x82_0020,
                length: 0xE_0000
            }
        );
        assert_eq!(l.events[2].type_name(), "0x12345678");
        assert!(matches!(
            l.events[2].decode(),
            EventData::Raw { note: Some(_), .. }
        ));
    }

    #[test]
    fn hostile_logs_end_in_an_error_naming_the_offset() {
        let spec = spec_event(&[(ALG_SHA256, 32)]);
        // Truncated digest.
        let mut log = spec.clone();
        log.extend(agile(
            0,
            EV_SEPARATOR,
            &[(ALG_SHA256, vec![0; 32])],
            &[0; 4],
        ));
        let e = parse(&log[..log.len() - 10], &Limits::default()).unwrap_err();
        assert!(e.message.contains("truncated"), "{e}");
        // A huge digest count.
        let mut log = spec.clone();
        let at = log.len() as u64;
        log.extend(0u32.to_le_bytes());
        log.extend(EV_SEPARATOR.to_le_bytes());
        log.extend(u32::MAX.to_le_bytes());
        let e = parse(&log, &Limits::default()).unwrap_err();
        assert_eq!(e.offset, at + 8);
        // An algorithm the Spec ID event does not declare.
        let mut log = spec.clone();
        log.extend(agile(0, EV_SEPARATOR, &[(ALG_SHA1, vec![0; 20])], &[0; 4]));
        assert!(parse(&log, &Limits::default()).is_err());
        // An oversized event.
        let mut log = spec.clone();
        log.extend(0u32.to_le_bytes());
        log.extend(EV_SEPARATOR.to_le_bytes());
        log.extend(0u32.to_le_bytes());
        log.extend(u32::MAX.to_le_bytes());
        assert!(parse(&log, &Limits::default())
            .unwrap_err()
            .message
            .contains("limit"));
        // Too many events.
        let mut log = spec;
        for _ in 0..10 {
            log.extend(agile(
                1,
                EV_SEPARATOR,
                &[(ALG_SHA256, vec![0; 32])],
                &[0; 4],
            ));
        }
        let small = Limits {
            max_events: 5,
            ..Limits::default()
        };
        assert!(parse(&log, &small).unwrap_err().message.contains("events"));
        // Garbage and nothing.
        assert!(parse(&[], &Limits::default()).is_err());
        assert!(parse(&[0xAB; 31], &Limits::default()).is_err());
    }

    #[test]
    fn device_paths_name_option_roms_and_fv_files() {
        let p = hex::decode(
            "02010c00d041030a0000000001010600000204081800000000000026010000000000ffcf0300000000007fff0400",
        )
        .unwrap();
        let nodes = device_path(&p);
        assert_eq!(
            nodes.iter().map(PathNode::to_text).collect::<Vec<_>>(),
            [
                "Acpi(PNP0A03,0x0)",
                "Pci(0x2,0x0)",
                "Offset(0x12600,0x3cfff)"
            ]
        );
    }
}
