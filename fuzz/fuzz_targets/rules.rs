//! Signature rule files (native TOML and CHIPSEC JSON), and EFI_SIGNATURE_LIST parsing.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fwscan::check::secureboot::certificate_subjects(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(r) = fwscan::check::rules::parse_rules(text, std::path::Path::new("f.toml")) {
            let _ = fwscan::check::RuleSet::new(r);
        }
        let _ = fwscan::check::chipsec::parse(text, std::path::Path::new("f.json"));
    }
});
