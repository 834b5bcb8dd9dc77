//! Compressed files of their own (`rootfs.cpio.xz`, `initramfs.cpio.gz`): the stream is decompressed within
//! the image's decompression budget and its content parsed as a file (cpio, squashfs, ...).
//!
//! The stream node keeps the digest of the compressed bytes; its one child `decompressed` (kind `blob`,
//! in a new buffer) carries the content's tree. A stream that does not decompress, or would exceed the
//! budget, is an `unparsed`/`decompress-failed`/`limit-exceeded` note on an opaque node.
#![deny(clippy::arithmetic_side_effects)]

use std::sync::Arc;

use crate::error::ParseError;
use crate::formats::decompress::{self, Error as DError};
use crate::formats::{Confidence, Ctx, Format, Parsed, Scope};
use crate::input::Data;
use crate::region::{Region, RegionKind};

const XZ_MAGIC: &[u8] = &[0xFD, b'7', b'z', b'X', b'Z', 0x00];

pub fn probe_xz(b: &[u8]) -> Option<Confidence> {
    b.starts_with(XZ_MAGIC).then_some(Confidence::High)
}

pub fn probe_gzip(b: &[u8]) -> Option<Confidence> {
    // Magic, deflate method, no reserved flag bits.
    (b.len() >= 18 && b[0] == 0x1F && b[1] == 0x8B && b[2] == 8 && b[3] & 0xE0 == 0)
        .then_some(Confidence::Medium)
}

fn xz(data: &[u8], limit: u64, meter: &dyn decompress::Meter) -> Result<Vec<u8>, DError> {
    let stream = liblzma::stream::Stream::new_stream_decoder(
        decompress::LZMA_MEMLIMIT,
        liblzma::stream::CONCATENATED,
    )
    .map_err(|e| DError::Failed(format!("xz: {e}")))?;
    decompress::read_metered(
        liblzma::read::XzDecoder::new_stream(data, stream),
        limit,
        meter,
    )
}

/// The registry entry for xz streams.
pub const FORMAT_XZ: Format = Format {
    name: "xz",
    description: "xz stream (decompressed and parsed)",
    probe: probe_xz,
    parse: parse_xz,
    scope: Scope::File(Confidence::Low),
    component: Some("bmc"),
    policy: None,
    not_inside: &[],
    payloads: &[],
    package: None,
};

/// The registry entry for gzip streams.
pub const FORMAT_GZIP: Format = Format {
    name: "gzip",
    description: "gzip stream (decompressed and parsed)",
    probe: probe_gzip,
    parse: parse_gzip,
    scope: Scope::File(Confidence::Low),
    component: Some("bmc"),
    policy: None,
    not_inside: &[],
    payloads: &[],
    package: None,
};

pub fn parse_xz(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    inflate(ctx, node, "xz", xz)
}

pub fn parse_gzip(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    inflate(ctx, node, "gzip", decompress::gzip_metered)
}

/// A metered decompressor: input, per-stream cap, the image's budget.
type Decoder = fn(&[u8], u64, &dyn decompress::Meter) -> Result<Vec<u8>, DError>;

fn inflate(ctx: &Ctx, node: &Region, algo: &str, f: Decoder) -> Result<Parsed, ParseError> {
    // Every byte produced is paid from the image's budget as it is produced (success or not).
    let out = match f(node.bytes(), ctx.decompress_limit(), ctx) {
        Ok(v) => v,
        Err(DError::Limit(n)) => {
            return Err(ParseError::Limit {
                what: format!("{algo} stream would decompress to more than {n} bytes"),
                offset: node.offset,
            })
        }
        Err(DError::Failed(d)) => {
            return Err(ParseError::Decompress {
                offset: node.offset,
                detail: d,
            })
        }
        Err(e @ DError::Budget) => {
            return Err(ParseError::Limit {
                what: format!("{algo}: {e}"),
                offset: node.offset,
            })
        }
    };
    let len = out.len() as u64;
    let d = Arc::new(Data::Owned(out));
    let mut child = Region::new(RegionKind::Blob, "decompressed", &d, 0, len)
        .with_attr("compression", algo.to_string());
    crate::formats::descend_file(ctx, &mut child);
    Ok(Parsed::from(vec![child]))
}
