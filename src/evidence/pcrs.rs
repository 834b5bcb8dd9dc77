//! PCR replay (what the log says the PCRs must hold) and the PCR values a TPM reports.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::BTreeMap;

use sha1::Sha1;
use sha2::{Sha256, Sha384, Sha512};

use crate::formats::tpm::eventlog::{
    alg_name, EventData, EventLog, ALG_SHA1, ALG_SHA256, ALG_SHA384, ALG_SHA512,
    EV_EFI_HCRTM_EVENT, EV_NO_ACTION,
};

/// PCR values per bank name (`sha256`) and index.
pub type Banks = BTreeMap<String, BTreeMap<u32, Vec<u8>>>;

/// The banks fwscan can replay (SM3 and others are listed as not replayed).
pub fn replayable(alg: u16) -> bool {
    matches!(alg, ALG_SHA1 | ALG_SHA256 | ALG_SHA384 | ALG_SHA512)
}

/// `H(a || b)` with a replayable algorithm.
pub fn hash2(alg: u16, a: &[u8], b: &[u8]) -> Vec<u8> {
    fn h<D: sha2::Digest>(a: &[u8], b: &[u8]) -> Vec<u8> {
        let mut d = D::new();
        d.update(a);
        d.update(b);
        d.finalize().to_vec()
    }
    match alg {
        ALG_SHA1 => h::<Sha1>(a, b),
        ALG_SHA256 => h::<Sha256>(a, b),
        ALG_SHA384 => h::<Sha384>(a, b),
        ALG_SHA512 => h::<Sha512>(a, b),
        _ => Vec::new(),
    }
}

/// The result of replaying a log.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// Every PCR an event names, per bank, as the log says the TPM must hold it after the last event.
    pub banks: Banks,
    /// Algorithms of the log that were not replayed.
    pub not_replayed: Vec<String>,
}

/// Replays a log: every PCR starts at zero (PCR 0 at the StartupLocality, or 4 after an H-CRTM event,
/// in its last byte), and every event but `EV_NO_ACTION` extends its PCR with its digest:
/// `PCR = H(PCR || digest)`, bank by bank.
pub fn replay(log: &EventLog) -> Replay {
    let mut out = Replay::default();
    let mut extended0: BTreeMap<u16, bool> = BTreeMap::new();
    let mut hcrtm = false;
    // The first record of a crypto-agile log is the Spec ID event, not a measurement.
    let skip = usize::from(log.spec.is_some());
    for e in log.events.iter().skip(skip) {
        if e.pcr > 23 {
            continue;
        }
        let locality = (e.event_type == EV_NO_ACTION && e.pcr == 0 && !hcrtm)
            .then(|| match e.decode() {
                EventData::StartupLocality { locality } => Some(locality),
                _ => None,
            })
            .flatten();
        if e.event_type == EV_EFI_HCRTM_EVENT && e.pcr == 0 {
            hcrtm = true;
        }
        for d in &e.digests {
            if !replayable(d.alg) {
                let n = alg_name(d.alg);
                if !out.not_replayed.contains(&n) {
                    out.not_replayed.push(n);
                }
                continue;
            }
            let bank = out.banks.entry(alg_name(d.alg)).or_default();
            let pcr = bank.entry(e.pcr).or_insert_with(|| vec![0; d.bytes.len()]);
            let untouched = e.pcr != 0 || !extended0.get(&d.alg).copied().unwrap_or(false);
            if let (Some(l), true, Some(last)) = (locality, untouched, pcr.last_mut()) {
                *last = l;
            }
            if e.event_type == EV_EFI_HCRTM_EVENT && e.pcr == 0 && untouched {
                if let Some(last) = pcr.last_mut() {
                    *last = 4;
                }
            }
            if e.event_type != EV_NO_ACTION {
                *pcr = hash2(d.alg, pcr, &d.bytes);
                if e.pcr == 0 {
                    extended0.insert(d.alg, true);
                }
            }
        }
    }
    out
}

/// Reads the PCR values a TPM reported: `tpm2_pcrread` YAML (`sha256:` then `  0 : 0xHEX` lines; the
/// `pcrs:` block of `tpm2_eventlog` has the same shape) or plain `INDEX HEX` lines (the bank is taken from
/// the digest length: 20 sha1, 32 sha256, 48 sha384, 64 sha512). Errors name the line.
pub fn parse_reported(text: &str) -> Result<Banks, String> {
    let mut out = Banks::new();
    let mut bank: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let lineno = n.saturating_add(1);
        if line.is_empty() || line == "---" || line == "pcrs:" {
            continue;
        }
        if let Some(name) = line.strip_suffix(':') {
            let name = name.trim().to_ascii_lowercase();
            if ["sha1", "sha256", "sha384", "sha512", "sm3_256"].contains(&name.as_str()) {
                bank = Some(name);
                continue;
            }
            return Err(format!("line {lineno}: unknown PCR bank `{name}`"));
        }
        let (idx, value) = match line.split_once(':') {
            Some((i, v)) => (i.trim(), v.trim()),
            None => {
                let mut it = line.split_whitespace();
                match (it.next(), it.next(), it.next()) {
                    (Some(i), Some(v), None) => (i, v),
                    _ => return Err(format!("line {lineno}: expected `INDEX HEX`: `{line}`")),
                }
            }
        };
        let idx: u32 = idx
            .parse()
            .ok()
            .filter(|&i| i <= 23)
            .ok_or_else(|| format!("line {lineno}: PCR index `{idx}` is not 0-23"))?;
        let hexv = value
            .strip_prefix("0x")
            .or_else(|| value.strip_prefix("0X"))
            .unwrap_or(value);
        let bytes = hex::decode(hexv)
            .map_err(|e| format!("line {lineno}: PCR {idx} value is not hex: {e}"))?;
        let by_len = match bytes.len() {
            20 => "sha1",
            32 => "sha256",
            48 => "sha384",
            64 => "sha512",
            l => return Err(format!("line {lineno}: PCR {idx} value of {l} bytes")),
        };
        let b = bank.clone().unwrap_or_else(|| by_len.to_string());
        if b != by_len && !(b == "sm3_256" && bytes.len() == 32) {
            return Err(format!(
                "line {lineno}: PCR {idx} value of {} bytes in bank {b}",
                bytes.len()
            ));
        }
        if out
            .entry(b.clone())
            .or_default()
            .insert(idx, bytes)
            .is_some()
        {
            return Err(format!("line {lineno}: PCR {idx} of {b} given twice"));
        }
    }
    if out.is_empty() {
        return Err("no PCR values".into());
    }
    Ok(out)
}

/// One reported PCR compared with the replay.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Compared {
    pub bank: String,
    pub pcr: u32,
    /// The value the TPM reported.
    pub reported: String,
    /// The value the log replays to (`None`: the log has no such bank, nothing compared).
    pub replayed: Option<String>,
    pub equal: bool,
}

/// The value a PCR holds after TPM2_Startup when nothing extended it: all ones for the dynamic (DRTM) PCRs
/// 17-22, which only a dynamic launch resets to zero, and zeros for the others (TCG PC Client Platform TPM
/// Profile, PCR attributes).
pub fn reset_value(pcr: u32, len: usize) -> Vec<u8> {
    if (17..=22).contains(&pcr) {
        vec![0xFF; len]
    } else {
        vec![0; len]
    }
}

/// Compares reported PCRs with a replay. A PCR the log never names replays to its reset value
/// ([`reset_value`]).
pub fn compare(replay: &Replay, reported: &Banks) -> Vec<Compared> {
    let mut out = Vec::new();
    for (bank, pcrs) in reported {
        let replayed_bank = replay.banks.get(bank);
        for (&pcr, value) in pcrs {
            let replayed = replayed_bank.map(|b| {
                b.get(&pcr)
                    .cloned()
                    .unwrap_or_else(|| reset_value(pcr, value.len()))
            });
            out.push(Compared {
                bank: bank.clone(),
                pcr,
                reported: hex::encode(value),
                equal: replayed.as_deref() == Some(value.as_slice()),
                replayed: replayed.map(hex::encode),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_pcrs_in_both_syntaxes() {
        let yaml = "sha1:\n  0 : 0x0000000000000000000000000000000000000001\nsha256:\n  7 : 0x65CAF8DD1E0EA7A6347B635D2B379C93B9A1351EDC2AFC3ECDA700E534EB3068\n";
        let b = parse_reported(yaml).unwrap();
        assert_eq!(b["sha1"][&0][19], 1);
        assert_eq!(b["sha256"][&7][0], 0x65);
        let plain = "0 177E29C417B6B61C7CF46ED30B4468931F58642527A268B556254E39B941EC6A\n";
        assert_eq!(parse_reported(plain).unwrap()["sha256"][&0][0], 0x17);
        assert!(parse_reported("24 00").is_err());
        assert!(parse_reported("0 zz").is_err());
        assert!(parse_reported("sha1:\n 0 : 0x00").is_err());
        assert!(parse_reported("").is_err());
    }

    #[test]
    fn unnamed_pcrs_compare_at_their_reset_value() {
        let replay = Replay {
            banks: [("sha1".to_string(), BTreeMap::new())].into(),
            not_replayed: Vec::new(),
        };
        let reported = parse_reported(&format!(
            "0 {}\n17 {}\n23 {}\n",
            "00".repeat(20),
            "ff".repeat(20),
            "00".repeat(20)
        ))
        .unwrap();
        assert!(compare(&replay, &reported).iter().all(|c| c.equal));
        let reported = parse_reported(&format!("17 {}\n", "00".repeat(20))).unwrap();
        assert!(!compare(&replay, &reported)[0].equal);
    }
}
