//! Trust policies and anti-rollback state files from untrusted bytes: must never panic.
#![no_main]
use fwscan::manifest::state::State;
use fwscan::manifest::trust::TrustPolicy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = State::parse(data) {
        let _ = s.highest("X11", "bios");
    }
    if let Ok(p) = TrustPolicy::parse(data, "fuzz") {
        let _ = p.requirement("X11", "bios");
        for k in &p.keys {
            let _ = k.allows("X11", "bios");
        }
    }
});
