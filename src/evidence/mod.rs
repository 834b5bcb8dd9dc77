//! Boot evidence (issue 23): a TCG event log replayed into PCR values per bank ([`pcrs`]), compared with
//! the PCRs a TPM reports, and its firmware measurements bound to the region trees of dumps ([`bind`]).
//!
//! The log is the firmware's own record of what it ran; the dump is what a reader got from the flash. A
//! dump whose volumes are what the firmware measured, under a log that replays to the TPM's PCRs, is what
//! booted, unless the TPM's values themselves were forged (`docs/eventlog.md`).
#![deny(clippy::arithmetic_side_effects)]

pub mod bind;
pub mod pcrs;
pub mod predict;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::finding::{Code, Finding};
use crate::formats::tpm::eventlog::{self, alg_name, EventData, EventLog, LogError, LogFormat};
use crate::region::Region;

pub use bind::Binding;
pub use pcrs::{Banks, Compared};
pub use predict::Prediction;

pub(crate) fn pcrs_name(alg: u16) -> String {
    alg_name(alg)
}

/// The log as read.
#[derive(Debug, Clone, Serialize)]
pub struct LogRef {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub format: LogFormat,
    /// The digest algorithms of the log (the Spec ID event's, or `sha1`).
    pub algorithms: Vec<String>,
    /// Blank bytes after the last event (the unused end of a firmware log area).
    #[serde(skip_serializing_if = "is_zero")]
    pub padding: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// One event as reported.
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub index: usize,
    pub offset: u64,
    pub pcr: u32,
    #[serde(rename = "type")]
    pub event_type: String,
    /// Digests by bank name.
    pub digests: BTreeMap<String, String>,
    pub data: EventData,
    /// What the measurement was bound to (`null`: the event does not measure flash contents, or no dump
    /// was given).
    pub binding: Option<Binding>,
}

/// Everything `fwscan eventlog` found: the replayed PCRs, the events with their bindings, the comparison
/// with reported PCRs, and the code volumes no event measured.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub log: LogRef,
    /// Replayed PCR values: bank → PCR index → hex.
    pub pcrs: BTreeMap<String, BTreeMap<u32, String>>,
    /// Banks of the log fwscan did not replay (SM3 and unknown algorithms).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_replayed: Vec<String>,
    pub events: Vec<EventRecord>,
    /// Reported PCRs compared with the replay (`--pcrs`); empty when none were given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub compared: Vec<Compared>,
    /// Volumes of the dumps that hold code no event measured (information: not every platform measures
    /// every volume; the SEC volume is the root of trust that measures the rest).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmeasured: Vec<String>,
    /// `--predict`: PCR 0 recomputed from the dumps along the log's PCR 0 sequence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prediction: Option<Prediction>,
}

/// Inputs of [`examine`].
#[derive(Debug)]
pub struct Inputs<'a> {
    pub log_path: &'a str,
    pub log: &'a [u8],
    /// Dumps parsed eagerly (compressed sections decompressed): `(path, tree)`.
    pub images: &'a [(String, Region)],
    /// PCR values the TPM reported (`--pcrs`).
    pub reported: Option<&'a Banks>,
    /// Predict PCR 0 from the dumps (`--predict`; needs at least one dump).
    pub predict: bool,
}

/// Parses, replays and binds a log. `Err`: the log is malformed (the caller reports it, exit 2).
pub fn examine(
    inp: &Inputs,
    limits: &eventlog::Limits,
) -> Result<(Evidence, Vec<Finding>), LogError> {
    let log: EventLog = eventlog::parse(inp.log, limits)?;
    let replay = pcrs::replay(&log);
    let mut findings = Vec::new();
    let mut index = bind::Index::new(inp.images);
    let bindings: Vec<Option<Binding>> = log
        .events
        .iter()
        .map(|e| {
            if inp.images.is_empty() {
                None
            } else {
                index.bind(e)
            }
        })
        .collect();
    let events: Vec<EventRecord> = log
        .events
        .iter()
        .zip(&bindings)
        .map(|(e, b)| EventRecord {
            index: e.index,
            offset: e.offset,
            pcr: e.pcr,
            event_type: e.type_name(),
            digests: e
                .digests
                .iter()
                .map(|d| (alg_name(d.alg), hex::encode(&d.bytes)))
                .collect(),
            data: e.decode(),
            binding: b.clone(),
        })
        .collect();
    for ev in &events {
        if let Some(Binding::NotInImage { reason }) = &ev.binding {
            let mut f = Finding::general(
                Code::MeasurementUnexplained,
                format!(
                    "event {} ({} in PCR {}): {reason}; the firmware that booted measured code this dump \
                     does not hold",
                    ev.index, ev.event_type, ev.pcr
                ),
            );
            f.path = format!("eventlog/event[{}]", ev.index);
            f.offset = Some(ev.offset);
            f.actual_digest = ev.digests.get("sha256").cloned();
            findings.push(f);
        }
    }
    let compared = inp
        .reported
        .map(|r| pcrs::compare(&replay, r))
        .unwrap_or_default();
    for c in &compared {
        if c.replayed.is_some() && !c.equal {
            let mut f = Finding::general(
                Code::PcrMismatch,
                format!(
                    "PCR {} ({}): the TPM reports {}, the log replays to {}: the log is incomplete or was \
                     edited",
                    c.pcr,
                    c.bank,
                    c.reported,
                    c.replayed.as_deref().unwrap_or("")
                ),
            );
            f.path = format!("pcr[{}]", c.pcr);
            f.name = Some(format!("PCR {} ({})", c.pcr, c.bank));
            f.expected_digest = Some(c.reported.clone());
            f.actual_digest = c.replayed.clone();
            findings.push(f);
        }
    }
    let prediction = (inp.predict && !inp.images.is_empty())
        .then(|| predict::pcr0(&log, &bindings, &mut index, &replay.banks, inp.reported));
    if let Some((bank, predicted, reference, false)) =
        prediction.as_ref().and_then(Prediction::verdict)
    {
        let against = if inp.reported.is_some() {
            "the TPM reports"
        } else {
            "the log replays to"
        };
        let mut f = Finding::general(
            Code::PcrPredictionMismatch,
            format!(
                "PCR {} ({bank}): the dump predicts {predicted}, {against} {reference}: this dump did not \
                 produce the measured boot (see the events not equal in the prediction)",
                predict::PREDICTED_PCR
            ),
        );
        f.path = format!("pcr[{}]", predict::PREDICTED_PCR);
        f.name = Some(format!("PCR {} ({bank}) predicted", predict::PREDICTED_PCR));
        f.expected_digest = Some(reference);
        f.actual_digest = Some(predicted);
        findings.push(f);
    }
    let unmeasured = if inp.images.is_empty() {
        Vec::new()
    } else {
        index.unmeasured(&bindings)
    };
    let algorithms = match &log.spec {
        Some(s) => s.algorithms.iter().map(|a| alg_name(a.id)).collect(),
        None => vec!["sha1".into()],
    };
    let evidence = Evidence {
        log: LogRef {
            path: inp.log_path.to_string(),
            size: inp.log.len() as u64,
            sha256: crate::hash::digest(crate::hash::Alg::Sha256, inp.log),
            format: log.format,
            algorithms,
            padding: log.padding,
        },
        pcrs: replay
            .banks
            .iter()
            .map(|(b, p)| {
                (
                    b.clone(),
                    p.iter().map(|(i, v)| (*i, hex::encode(v))).collect(),
                )
            })
            .collect(),
        not_replayed: replay.not_replayed,
        events,
        compared,
        unmeasured,
        prediction,
    };
    Ok((evidence, findings))
}
