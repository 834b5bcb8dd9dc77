//! Bounded decompressors for the streams found in firmware volumes.
//!
//! Every function takes the most bytes it may produce (`limit`) and never allocates what a header claims:
//! output grows in chunks as data is actually produced, and a stream that would produce more than `limit`
//! bytes is an [`Error::Limit`]. The `*_metered` variants also pay every produced chunk to a [`Meter`]
//! (the image's decompression budget, see `formats::Ctx`) as it comes out — on success, on failure and on
//! hitting the cap alike, and for each attempt when a format is tried two ways — and stop with
//! [`Error::Budget`] once the meter refuses. Since decoding time is proportional to the bytes produced,
//! this bounds the CPU time of one image as well as its memory. LZMA uses `liblzma` (with a memory limit for its dictionary), Brotli
//! `brotli-decompressor`, gzip/zlib/deflate `flate2`; the EFI 1.1 / Tiano decompressor ([`efi`]) and the
//! x86 BCJ filter ([`bcj`]) are written here (no well-kept crate does them) and have fuzz targets.
#![deny(clippy::arithmetic_side_effects)]

pub mod bcj;
pub mod efi;

use std::io::Read;

/// Why a stream did not decompress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The stream would produce more than the allowed number of bytes.
    Limit(u64),
    /// The stream is corrupt or truncated.
    Failed(String),
    /// The image's decompression budget is spent.
    Budget,
}

/// Pays for decompressed bytes as they are produced. `pay` returns false when the budget cannot cover
/// `n` more bytes; decompression then stops.
pub trait Meter {
    fn pay(&self, n: u64) -> bool;
}

/// A meter that never refuses (tests, fuzz targets, one-off calls).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unmetered;

impl Meter for Unmetered {
    fn pay(&self, _: u64) -> bool {
        true
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Limit(n) => write!(f, "output exceeds the limit of {n} bytes"),
            Error::Failed(s) => f.write_str(s),
            Error::Budget => f.write_str("the image's decompression budget is spent"),
        }
    }
}

/// Memory liblzma may use for one stream's dictionary and state.
pub const LZMA_MEMLIMIT: u64 = 128 << 20;

/// Reads `r` to the end in chunks, failing once more than `limit` bytes come out.
pub fn read_bounded<R: Read>(r: R, limit: u64) -> Result<Vec<u8>, Error> {
    read_metered(r, limit, &Unmetered)
}

/// [`read_bounded`], paying each chunk to `meter` as it comes out (the chunk that crosses `limit` too).
pub fn read_metered<R: Read>(mut r: R, limit: u64, meter: &dyn Meter) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Failed(e.to_string())),
        };
        let paid = meter.pay(n as u64);
        if (out.len() as u64).saturating_add(n as u64) > limit {
            return Err(Error::Limit(limit));
        }
        if !paid {
            return Err(Error::Budget);
        }
        out.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    }
}

/// An LZMA "alone" stream as EDK2 writes it: 13-byte header (properties, dictionary size, u64
/// uncompressed size), then the raw LZMA data.
pub fn lzma(data: &[u8], limit: u64) -> Result<Vec<u8>, Error> {
    lzma_metered(data, limit, &Unmetered)
}

/// [`lzma`], paying produced bytes to `meter`.
pub fn lzma_metered(data: &[u8], limit: u64, meter: &dyn Meter) -> Result<Vec<u8>, Error> {
    if data.len() < 13 {
        return Err(Error::Failed(
            "LZMA stream shorter than its 13-byte header".into(),
        ));
    }
    let claimed = u64::from_le_bytes(data[5..13].try_into().unwrap_or([0xFF; 8]));
    if claimed != u64::MAX && claimed > limit {
        return Err(Error::Limit(limit));
    }
    let stream = liblzma::stream::Stream::new_lzma_decoder(LZMA_MEMLIMIT)
        .map_err(|e| Error::Failed(format!("LZMA: {e}")))?;
    // A stream of known size may not produce more than it claims: read at most one chunk past it.
    let bound = if claimed == u64::MAX {
        limit
    } else {
        claimed.saturating_add(1).min(limit)
    };
    let out = read_metered(
        liblzma::read::XzDecoder::new_stream(data, stream),
        bound,
        meter,
    )
    .map_err(|e| match e {
        Error::Failed(s) => Error::Failed(format!("LZMA: {s}")),
        Error::Limit(_) if bound < limit => Error::Failed(format!(
            "LZMA: stream produces more than the {claimed} bytes its header claims"
        )),
        l => l,
    })?;
    if claimed != u64::MAX && out.len() as u64 != claimed {
        return Err(Error::Failed(format!(
            "LZMA: header claims {claimed} bytes, stream produced {}",
            out.len()
        )));
    }
    Ok(out)
}

/// LZMA followed by the x86 BCJ filter (EDK2's LZMAF86 GUID-defined sections).
pub fn lzma_f86(data: &[u8], limit: u64) -> Result<Vec<u8>, Error> {
    lzma_f86_metered(data, limit, &Unmetered)
}

/// [`lzma_f86`], paying produced bytes to `meter`.
pub fn lzma_f86_metered(data: &[u8], limit: u64, meter: &dyn Meter) -> Result<Vec<u8>, Error> {
    let mut out = lzma_metered(data, limit, meter)?;
    bcj::x86_decode(&mut out);
    Ok(out)
}

/// Brotli as EDK2 stores it: u64 decompressed size, u64 scratch size, then the Brotli stream.
pub fn brotli(data: &[u8], limit: u64) -> Result<Vec<u8>, Error> {
    brotli_metered(data, limit, &Unmetered)
}

/// [`brotli`], paying produced bytes to `meter`. The stream may not produce more than its header
/// claims: decoding stops one chunk past the claimed size.
pub fn brotli_metered(data: &[u8], limit: u64, meter: &dyn Meter) -> Result<Vec<u8>, Error> {
    if data.len() < 16 {
        return Err(Error::Failed(
            "Brotli stream shorter than its 16-byte header".into(),
        ));
    }
    let claimed = u64::from_le_bytes(data[..8].try_into().unwrap_or([0xFF; 8]));
    if claimed > limit {
        return Err(Error::Limit(limit));
    }
    let r = brotli_decompressor::Decompressor::new(data.get(16..).unwrap_or(&[]), 4096);
    let bound = claimed.saturating_add(1).min(limit);
    let out = read_metered(r, bound, meter).map_err(|e| match e {
        Error::Failed(s) => Error::Failed(format!("Brotli: {s}")),
        Error::Limit(_) if bound < limit => Error::Failed(format!(
            "Brotli: stream produces more than the {claimed} bytes its header claims"
        )),
        l => l,
    })?;
    if out.len() as u64 != claimed {
        return Err(Error::Failed(format!(
            "Brotli: header claims {claimed} bytes, stream produced {}",
            out.len()
        )));
    }
    Ok(out)
}

/// gzip, else zlib, else raw deflate.
pub fn gzip(data: &[u8], limit: u64) -> Result<Vec<u8>, Error> {
    gzip_metered(data, limit, &Unmetered)
}

/// [`gzip`], paying produced bytes to `meter` (both attempts when zlib fails and raw deflate is tried).
pub fn gzip_metered(data: &[u8], limit: u64, meter: &dyn Meter) -> Result<Vec<u8>, Error> {
    if data.starts_with(&[0x1F, 0x8B]) {
        return read_metered(flate2::read::GzDecoder::new(data), limit, meter);
    }
    if let [a, b, ..] = data {
        if u16::from_be_bytes([*a, *b]) % 31 == 0 && a & 0x0F == 8 {
            match read_metered(flate2::read::ZlibDecoder::new(data), limit, meter) {
                Ok(v) => return Ok(v),
                Err(Error::Budget) => return Err(Error::Budget),
                Err(_) => {}
            }
        }
    }
    read_metered(flate2::read::DeflateDecoder::new(data), limit, meter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lzma_round_trip_and_limits() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let c = crate::formats::uefi::build::lzma_compress(&data);
        assert_eq!(lzma(&c, 1 << 20).unwrap(), data);
        assert_eq!(lzma(&c, 1000), Err(Error::Limit(1000)));
        assert!(lzma(&c[..c.len() / 2], 1 << 20).is_err());
        // A header claiming 2^40 bytes is refused before any allocation.
        let mut big = c.clone();
        big[5..13].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert_eq!(lzma(&big, 1 << 20), Err(Error::Limit(1 << 20)));
        assert!(lzma(&big, u64::MAX).is_err());
    }

    #[test]
    fn gzip_zlib_deflate() {
        use std::io::Write;
        let data = b"hello hello hello hello firmware".repeat(50);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&data).unwrap();
        let z = z.finish().unwrap();
        assert_eq!(gzip(&z, 1 << 20).unwrap(), data);
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        g.write_all(&data).unwrap();
        let g = g.finish().unwrap();
        assert_eq!(gzip(&g, 1 << 20).unwrap(), data);
        assert_eq!(gzip(&g, 10), Err(Error::Limit(10)));
    }
}
