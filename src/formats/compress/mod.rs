//! Compressed streams as files of their own (xz, gzip), decompressed with the metered decoders.

pub mod compressed;
