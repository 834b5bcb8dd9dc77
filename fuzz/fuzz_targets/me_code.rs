//! Fuzz the ME code-partition parsers directly: `$CPD` directories (with `.man`/`.met` extensions), ME 6-10
//! `$MN2` manifests with `$MME` modules, the manifest/RSA parser, and the coverage computation over the
//! result. Any input must parse (or fail with an error) without panicking, hanging or allocating without
//! bound, and every node must lie inside the input.
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run me_code -- -max_total_time=60` (seeds: the FTPR partitions of
//! `../shared/fixtures/intel/*-region.bin`).
#![no_main]

use std::sync::Arc;

use fwscan::formats::{me_cpd, me_manifest, me_mn2, Ctx, ParseOptions};
use fwscan::input::Data;
use fwscan::region::{Region, RegionKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = me_manifest::parse(data);
    let buf = Arc::new(Data::Owned(data.to_vec()));
    let part = Region::new(RegionKind::Partition, "FTPR", &buf, 0, data.len() as u64);
    let opts = ParseOptions {
        max_decompressed_total: 4 << 20,
        ..ParseOptions::default()
    };
    let ctx = Ctx::new(&opts);
    for kids in [me_cpd::parse(&part, 0xFF), me_mn2::parse(&ctx, &part)]
        .into_iter()
        .flatten()
    {
        let mut root = Region::new(RegionKind::Image, "", &buf, 0, data.len() as u64);
        for k in &kids {
            assert!(k.end() <= data.len() as u64, "{} past the end", k.name);
        }
        root.children = kids;
        fwscan::region::finalize(&mut root);
        let cov = fwscan::report::coverage::compute(&root);
        assert_eq!(cov.totals.values().sum::<u64>(), data.len() as u64);
    }
});
