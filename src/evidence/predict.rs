//! `--predict`: the PCR 0 a dump would produce, recomputed from the dump's own bytes.
//!
//! The platform decides *which* measurements go into PCR 0 and in what order; the log records that
//! sequence. The prediction replays the same sequence, but every measurement of firmware bytes is taken
//! from the dump instead of the log:
//!
//! - a measurement bound to a node of the dump: that node's digest (its bytes, or its PE image's
//!   Authenticode digest) in each bank;
//! - a firmware blob no node matches (`measurement-unexplained`): the dump's counterpart, the one volume
//!   of the measured length, so that the prediction shows the PCR 0 this dump would have produced;
//! - an event whose digest is by specification the hash of its own data (`EV_SEPARATOR`, `EV_EFI_ACTION`,
//!   `EV_ACTION`): that hash, a platform constant (a CRTM version string counts only where the dump holds it
//!   verbatim, as a binding);
//! - a measurement the dump cannot reproduce (a PEI volume modified in RAM before it was measured, POST code
//!   memory, H-CRTM contents): the log's digest, named in `from_log`. Such a prediction is not from the
//!   dump alone, and says so (`deterministic: false`).
//!
//! A measurement with no counterpart in the dump leaves nothing to predict (`predicted` empty and the reason
//! given).
#![deny(clippy::arithmetic_side_effects)]

use std::collections::BTreeMap;

use serde::Serialize;

use crate::formats::tpm::eventlog::{
    alg_name, Event, EventData, EventLog, EV_ACTION, EV_EFI_ACTION, EV_EFI_HCRTM_EVENT,
    EV_NO_ACTION, EV_SEPARATOR,
};

use super::bind::{Binding, Index};
use super::pcrs::{hash2, replayable, Banks};

/// The PCR `--predict` computes.
pub const PREDICTED_PCR: u32 = 0;

/// Where one event's predicted digest came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum Source {
    /// A node of the dump (`by`: `digest`, `authenticode`, `string`, or `counterpart` for the dump's
    /// volume of the measured length that differs from what was measured).
    Dump { path: String, by: String },
    /// The hash of the event's own data, as the specification defines it for this event type.
    Constant,
    /// The log's digest: the dump cannot reproduce this measurement.
    Log { reason: String },
    /// The dump has nothing to measure in its place: no prediction is possible.
    Missing { reason: String },
}

/// One PCR 0 event of the prediction.
#[derive(Debug, Clone, Serialize)]
pub struct PredictedEvent {
    pub index: usize,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(flatten)]
    pub source: Source,
    /// Whether the predicted digest (strongest bank) equals the log's.
    pub equal: bool,
}

/// The prediction of PCR 0.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub pcr: u32,
    /// Predicted value per bank (empty when a measurement has no counterpart in the dump).
    pub predicted: BTreeMap<String, String>,
    /// True when every measurement came from the dump or is a platform constant: PCR 0 from the dump
    /// alone, given the platform's event sequence.
    pub deterministic: bool,
    /// What the log replays to, per bank.
    pub replayed: BTreeMap<String, String>,
    /// The TPM's value per bank (`--pcrs`), when given.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub reported: BTreeMap<String, String>,
    /// The events of PCR 0 and where each predicted digest came from.
    pub events: Vec<PredictedEvent>,
}

impl Prediction {
    /// The bank compared (the strongest one both sides have) and whether prediction and reference agree:
    /// the TPM's value when reported, else the log's replay. `None`: nothing was predicted.
    pub fn verdict(&self) -> Option<(String, String, String, bool)> {
        let reference = if self.reported.is_empty() {
            &self.replayed
        } else {
            &self.reported
        };
        ["sha512", "sha384", "sha256", "sha1"].iter().find_map(|b| {
            let p = self.predicted.get(*b)?;
            let r = reference.get(*b)?;
            Some((b.to_string(), p.clone(), r.clone(), p == r))
        })
    }
}

/// Digest of the event's own data, for the event types whose digest the specification defines that way.
fn constant(e: &Event, alg: u16) -> Option<Vec<u8>> {
    matches!(e.event_type, EV_SEPARATOR | EV_EFI_ACTION | EV_ACTION)
        .then(|| hash2(alg, &e.data, &[]))
}

/// Predicts PCR 0 from the dumps indexed in `index`, along the log's PCR 0 event sequence.
pub fn pcr0(
    log: &EventLog,
    bindings: &[Option<Binding>],
    index: &mut Index,
    replayed: &Banks,
    reported: Option<&Banks>,
) -> Prediction {
    let pcr = PREDICTED_PCR;
    let hexbank = |b: &Banks| -> BTreeMap<String, String> {
        b.iter()
            .filter_map(|(bank, p)| p.get(&pcr).map(|v| (bank.clone(), hex::encode(v))))
            .collect()
    };
    let algs: Vec<u16> = log
        .spec
        .as_ref()
        .map(|s| s.algorithms.iter().map(|a| a.id).collect())
        .unwrap_or_else(|| vec![crate::formats::tpm::eventlog::ALG_SHA1])
        .into_iter()
        .filter(|&a| replayable(a))
        .collect();
    let mut values: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
    let mut extended = false;
    let mut hcrtm = false;
    let mut events = Vec::new();
    let mut missing = false;
    let skip = usize::from(log.spec.is_some());
    for (e, b) in log.events.iter().zip(bindings).skip(skip) {
        if e.pcr != pcr {
            continue;
        }
        if e.event_type == EV_NO_ACTION {
            // StartupLocality sets the initial value, as in the replay.
            if let (EventData::StartupLocality { locality }, false, false) =
                (e.decode(), extended, hcrtm)
            {
                for &a in &algs {
                    let len = e.digest(a).map_or(0, <[u8]>::len);
                    let v = values.entry(a).or_insert_with(|| vec![0; len]);
                    if let Some(last) = v.last_mut() {
                        *last = locality;
                    }
                }
            }
            continue;
        }
        if e.event_type == EV_EFI_HCRTM_EVENT && !extended {
            hcrtm = true;
            for &a in &algs {
                let len = e.digest(a).map_or(0, <[u8]>::len);
                let v = values.entry(a).or_insert_with(|| vec![0; len]);
                if let Some(last) = v.last_mut() {
                    *last = 4;
                }
            }
        }
        let mut source = None;
        let mut digests: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
        if let Some(binding) = b {
            for &a in &algs {
                match index.measure_again(e, binding, a) {
                    Some((d, path, by)) => {
                        digests.insert(a, d);
                        source = Some(Source::Dump { path, by });
                    }
                    None => break,
                }
            }
            if digests.len() != algs.len() {
                digests.clear();
                source = None;
            }
        }
        if source.is_none() {
            if let Some(d) = algs
                .iter()
                .map(|&a| constant(e, a).map(|d| (a, d)))
                .collect::<Option<BTreeMap<u16, Vec<u8>>>>()
            {
                digests = d;
                source = Some(Source::Constant);
            }
        }
        let source = match source {
            Some(s) => s,
            None => {
                match b {
                    Some(Binding::NotReproducible { reason })
                    | Some(Binding::NotInImage { reason }) => {
                        if matches!(b, Some(Binding::NotInImage { .. })) {
                            missing = true;
                            Source::Missing {
                            reason: format!("the dump holds nothing in the place of this measurement: {reason}"),
                        }
                        } else {
                            for &a in &algs {
                                if let Some(d) = e.digest(a) {
                                    digests.insert(a, d.to_vec());
                                }
                            }
                            Source::Log {
                                reason: reason.clone(),
                            }
                        }
                    }
                    _ => {
                        for &a in &algs {
                            if let Some(d) = e.digest(a) {
                                digests.insert(a, d.to_vec());
                            }
                        }
                        Source::Log {
                            reason: format!(
                                "{}: not a measurement of flash bytes fwscan recomputes",
                                e.type_name()
                            ),
                        }
                    }
                }
            }
        };
        let strongest = algs.iter().max().copied();
        let equal = strongest
            .map(|a| digests.get(&a).map(Vec::as_slice) == e.digest(a))
            .unwrap_or(false);
        for (&a, d) in &digests {
            let len = d.len();
            let v = values.entry(a).or_insert_with(|| vec![0; len]);
            *v = hash2(a, v, d);
        }
        extended = true;
        events.push(PredictedEvent {
            index: e.index,
            event_type: e.type_name(),
            source,
            equal,
        });
    }
    let deterministic = !missing
        && events
            .iter()
            .all(|e| matches!(e.source, Source::Dump { .. } | Source::Constant));
    Prediction {
        pcr,
        predicted: if missing || events.is_empty() {
            BTreeMap::new()
        } else {
            values
                .iter()
                .map(|(a, v)| (alg_name(*a), hex::encode(v)))
                .collect()
        },
        deterministic,
        replayed: hexbank(replayed),
        reported: reported.map(hexbank).unwrap_or_default(),
        events,
    }
}
