//! A small, bounded CBOR (RFC 8949) reader and a core-deterministic writer, for CoRIM and COSE.
//!
//! Written here rather than taken from a crate because the reader must refuse, with the byte offset,
//! exactly what a signed reference-value document must not contain: indefinite lengths, duplicate map
//! keys, reserved additional-information values, nesting deeper than [`MAX_DEPTH`], more than
//! [`MAX_ITEMS`] items, a length longer than the bytes left, and trailing bytes; and the writer must emit
//! RFC 8949 §4.2.1 core deterministic encoding (shortest heads, map keys sorted by their encoded bytes,
//! definite lengths). `ciborium` and `minicbor` decode into serde/derived types with their own recursion
//! limits and accept duplicate keys silently; checking those properties after them would mean a second
//! pass over the bytes anyway. The whole codec is a few hundred lines with no `unsafe` and no unchecked
//! arithmetic.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashSet;

/// Deepest nesting of arrays, maps and tags (the top item is depth 0).
pub const MAX_DEPTH: usize = 48;
/// Most data items in one document (a CoRIM with one measurement per region of a large image stays far
/// below this).
pub const MAX_ITEMS: usize = 8_000_000;

/// Most entries reserved ahead for one array or map (a declared count is only a claim).
const PREALLOC: usize = 1024;

/// A CBOR data item. Negative integers keep CBOR's argument: `Nint(n)` is `-1 - n`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Uint(u64),
    Nint(u64),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Tag(u64, Box<Value>),
    Bool(bool),
    Null,
    Undefined,
    Float(f64),
}

/// Why bytes are not acceptable CBOR, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CBOR at offset {offset:#x}: {message}")]
pub struct CborError {
    pub offset: usize,
    pub message: String,
}

fn err<T>(offset: usize, message: impl Into<String>) -> Result<T, CborError> {
    Err(CborError {
        offset,
        message: message.into(),
    })
}

impl Value {
    /// An integer key or value (`Uint` or `Nint`) as i128.
    pub fn as_int(&self) -> Option<i128> {
        match *self {
            Value::Uint(n) => Some(i128::from(n)),
            Value::Nint(n) => (-1i128).checked_sub(i128::from(n)),
            _ => None,
        }
    }

    /// A signed integer value.
    pub fn int(v: i64) -> Value {
        if v >= 0 {
            Value::Uint(v.unsigned_abs())
        } else {
            // -1 - n = v  ⇒  n = -1 - v = |v| - 1 (no overflow: |v| ≥ 1).
            Value::Nint(v.unsigned_abs().saturating_sub(1))
        }
    }

    pub fn text(s: impl Into<String>) -> Value {
        Value::Text(s.into())
    }

    pub fn as_uint(&self) -> Option<u64> {
        match *self {
            Value::Uint(n) => Some(n),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The value of the integer key `k` of a map.
    pub fn get(&self, k: i128) -> Option<&Value> {
        self.as_map()?
            .iter()
            .find(|(key, _)| key.as_int() == Some(k))
            .map(|(_, v)| v)
    }

    /// The tag number and content, if tagged.
    pub fn as_tag(&self) -> Option<(u64, &Value)> {
        match self {
            Value::Tag(t, v) => Some((*t, v)),
            _ => None,
        }
    }

    /// A short name of the item's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Uint(_) | Value::Nint(_) => "integer",
            Value::Bytes(_) => "byte string",
            Value::Text(_) => "text string",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Tag(..) => "tag",
            Value::Bool(_) => "bool",
            Value::Null => "null",
            Value::Undefined => "undefined",
            Value::Float(_) => "float",
        }
    }
}

/// Decodes exactly one data item from `bytes` (trailing bytes are an error).
pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    let mut r = Reader {
        b: bytes,
        pos: 0,
        items: 0,
    };
    let v = r.item(0)?;
    if r.pos != bytes.len() {
        return err(
            r.pos,
            format!(
                "{} trailing byte(s) after the top-level item",
                bytes.len().saturating_sub(r.pos)
            ),
        );
    }
    Ok(v)
}

/// True when `bytes` are one item in core deterministic encoding (decodes, and re-encodes to itself).
pub fn is_deterministic(bytes: &[u8]) -> bool {
    decode(bytes).is_ok_and(|v| encode(&v) == bytes)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    items: usize,
}

impl Reader<'_> {
    fn left(&self) -> usize {
        self.b.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], CborError> {
        let start = self.pos;
        let end = match start.checked_add(n) {
            Some(e) if e <= self.b.len() => e,
            _ => {
                return err(
                    start,
                    format!("truncated: {what} needs {n} byte(s), {} left", self.left()),
                )
            }
        };
        self.pos = end;
        Ok(self.b.get(start..end).unwrap_or_default())
    }

    /// The initial byte and its argument: (major type, additional info, argument, offset of the head).
    fn head(&mut self) -> Result<(u8, u8, u64, usize), CborError> {
        let at = self.pos;
        let ib = *self.take(1, "an item")?.first().unwrap_or(&0);
        let (major, ai) = (ib.wrapping_shr(5), ib & 0x1f);
        let arg = match ai {
            0..=23 => u64::from(ai),
            24..=27 => {
                let n = match ai {
                    24 => 1,
                    25 => 2,
                    26 => 4,
                    _ => 8,
                };
                self.take(n, "an argument")?
                    .iter()
                    .fold(0u64, |v, &x| v.wrapping_shl(8) | u64::from(x))
            }
            28..=30 => return err(at, format!("reserved additional information {ai}")),
            _ => {
                if major == 7 {
                    return err(at, "unexpected break (0xff)");
                }
                return err(
                    at,
                    "indefinite length: a CoRIM must use definite lengths (RFC 8949 §4.2.1)",
                );
            }
        };
        Ok((major, ai, arg, at))
    }

    fn count(&mut self, at: usize) -> Result<(), CborError> {
        self.items = self.items.saturating_add(1);
        if self.items > MAX_ITEMS {
            return err(at, format!("more than {MAX_ITEMS} items"));
        }
        Ok(())
    }

    fn len(&self, arg: u64, per_item: usize, at: usize, what: &str) -> Result<usize, CborError> {
        let n = usize::try_from(arg).unwrap_or(usize::MAX);
        if n.checked_mul(per_item)
            .is_none_or(|need| need > self.left())
        {
            return err(
                at,
                format!(
                    "{what} of {arg} declared, longer than the {} byte(s) left",
                    self.left()
                ),
            );
        }
        Ok(n)
    }

    fn item(&mut self, depth: usize) -> Result<Value, CborError> {
        let (major, ai, arg, at) = self.head()?;
        self.count(at)?;
        if depth > MAX_DEPTH && matches!(major, 4..=6) {
            return err(at, format!("nested deeper than {MAX_DEPTH} levels"));
        }
        let next = depth.saturating_add(1);
        Ok(match major {
            0 => Value::Uint(arg),
            1 => Value::Nint(arg),
            2 => {
                let n = self.len(arg, 1, at, "byte string")?;
                Value::Bytes(self.take(n, "a byte string")?.to_vec())
            }
            3 => {
                let n = self.len(arg, 1, at, "text string")?;
                let b = self.take(n, "a text string")?;
                match std::str::from_utf8(b) {
                    Ok(s) => Value::Text(s.to_string()),
                    Err(_) => return err(at, "text string is not UTF-8"),
                }
            }
            4 => {
                let n = self.len(arg, 1, at, "array")?;
                let mut v = Vec::with_capacity(n.min(PREALLOC));
                for _ in 0..n {
                    v.push(self.item(next)?);
                }
                Value::Array(v)
            }
            5 => {
                let n = self.len(arg, 2, at, "map")?;
                let mut v = Vec::with_capacity(n.min(PREALLOC));
                let mut seen = HashSet::with_capacity(n.min(PREALLOC));
                for _ in 0..n {
                    let kat = self.pos;
                    let k = self.item(next)?;
                    if !seen.insert(encode(&k)) {
                        return err(kat, "duplicate map key");
                    }
                    let val = self.item(next)?;
                    v.push((k, val));
                }
                Value::Map(v)
            }
            6 => Value::Tag(arg, Box::new(self.item(next)?)),
            _ => match ai {
                20 => Value::Bool(false),
                21 => Value::Bool(true),
                22 => Value::Null,
                23 => Value::Undefined,
                25 => Value::Float(half(arg)),
                26 => Value::Float(f64::from(f32::from_bits(
                    u32::try_from(arg).unwrap_or_default(),
                ))),
                27 => Value::Float(f64::from_bits(arg)),
                _ => return err(at, format!("unsupported simple value {arg}")),
            },
        })
    }
}

/// IEEE 754 half precision to f64.
fn half(bits: u64) -> f64 {
    let h = u32::try_from(bits & 0xffff).unwrap_or_default();
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::try_from(h.wrapping_shr(10) & 0x1f).unwrap_or_default();
    let frac = f64::from(h & 0x3ff);
    let mag = match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e.saturating_sub(15)),
    };
    sign * mag
}

fn put_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major.wrapping_shl(5);
    if arg < 24 {
        out.push(m | u8::try_from(arg).unwrap_or_default());
    } else if let Ok(a) = u8::try_from(arg) {
        out.extend_from_slice(&[m | 24, a]);
    } else if let Ok(a) = u16::try_from(arg) {
        out.push(m | 25);
        out.extend_from_slice(&a.to_be_bytes());
    } else if let Ok(a) = u32::try_from(arg) {
        out.push(m | 26);
        out.extend_from_slice(&a.to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

/// Encodes in RFC 8949 §4.2.1 core deterministic encoding: shortest argument encodings, definite
/// lengths, map entries sorted by the bytewise order of their encoded keys. (Floats, which fwscan never
/// writes, are written in eight bytes.)
pub fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out, v);
    out
}

fn write(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Uint(n) => put_head(out, 0, *n),
        Value::Nint(n) => put_head(out, 1, *n),
        Value::Bytes(b) => {
            put_head(out, 2, b.len() as u64);
            out.extend_from_slice(b);
        }
        Value::Text(s) => {
            put_head(out, 3, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(a) => {
            put_head(out, 4, a.len() as u64);
            for x in a {
                write(out, x);
            }
        }
        Value::Map(m) => {
            let mut entries: Vec<(Vec<u8>, &Value)> =
                m.iter().map(|(k, v)| (encode(k), v)).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            put_head(out, 5, entries.len() as u64);
            for (k, v) in entries {
                out.extend_from_slice(&k);
                write(out, v);
            }
        }
        Value::Tag(t, x) => {
            put_head(out, 6, *t);
            write(out, x);
        }
        Value::Bool(false) => out.push(0xf4),
        Value::Bool(true) => out.push(0xf5),
        Value::Null => out.push(0xf6),
        Value::Undefined => out.push(0xf7),
        Value::Float(f) => {
            out.push(0xfb);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    /// RFC 8949 Appendix A examples (encoding and decoding).
    #[test]
    fn rfc8949_appendix_a() {
        let cases: &[(Value, &str)] = &[
            (Value::Uint(0), "00"),
            (Value::Uint(23), "17"),
            (Value::Uint(24), "1818"),
            (Value::Uint(1000), "1903e8"),
            (Value::Uint(1_000_000), "1a000f4240"),
            (Value::Uint(18446744073709551615), "1bffffffffffffffff"),
            (Value::int(-1), "20"),
            (Value::int(-1000), "3903e7"),
            (Value::Text("IETF".into()), "6449455446"),
            (Value::Bytes(vec![1, 2, 3, 4]), "4401020304"),
            (
                Value::Tag(1, Box::new(Value::Uint(1363896240))),
                "c11a514b67b0",
            ),
            (
                Value::Array(vec![
                    Value::Uint(1),
                    Value::Array(vec![Value::Uint(2), Value::Uint(3)]),
                ]),
                "8201820203",
            ),
            (Value::Bool(true), "f5"),
            (Value::Null, "f6"),
        ];
        for (v, h) in cases {
            assert_eq!(hex::encode(encode(v)), *h, "{v:?}");
            assert_eq!(&decode(&hex::decode(h).unwrap()).unwrap(), v, "{h}");
        }
        assert_eq!(
            decode(&hex::decode("f93c00").unwrap()).unwrap(),
            Value::Float(1.0)
        );
        assert_eq!(
            decode(&hex::decode("f97bff").unwrap()).unwrap(),
            Value::Float(65504.0)
        );
    }

    #[test]
    fn maps_are_sorted_by_encoded_key() {
        // RFC 8949 §4.2.1: 10, 100, -1, "z", "aa", [100], [-1], false.
        let m = Value::Map(vec![
            (Value::Bool(false), Value::Null),
            (Value::text("aa"), Value::Null),
            (Value::Array(vec![Value::int(-1)]), Value::Null),
            (Value::Uint(100), Value::Null),
            (Value::text("z"), Value::Null),
            (Value::int(-1), Value::Null),
            (Value::Array(vec![Value::Uint(100)]), Value::Null),
            (Value::Uint(10), Value::Null),
        ]);
        let e = encode(&m);
        let keys: Vec<Value> = decode(&e)
            .unwrap()
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(
            keys,
            vec![
                Value::Uint(10),
                Value::Uint(100),
                Value::int(-1),
                Value::text("z"),
                Value::text("aa"),
                Value::Array(vec![Value::Uint(100)]),
                Value::Array(vec![Value::int(-1)]),
                Value::Bool(false),
            ]
        );
        assert!(is_deterministic(&e));
    }

    #[test]
    fn hostile_input_is_refused_with_its_offset() {
        let bad: &[(&str, &str, usize)] = &[
            ("", "truncated", 0),
            ("5f", "indefinite", 0),
            ("9f01ff", "indefinite", 0),
            ("a20101 0102", "duplicate map key", 3),
            ("1c", "reserved", 0),
            ("5a ffffffff", "longer than", 0),
            ("9b 00000000ffffffff", "longer than", 0),
            ("0000", "trailing", 1),
            ("62 c328", "UTF-8", 0),
            ("ff", "break", 0),
        ];
        for (h, want, off) in bad {
            let b = hex::decode(h.replace(' ', "")).unwrap();
            let e = decode(&b).unwrap_err();
            assert!(e.message.contains(want), "{h}: {e}");
            assert_eq!(e.offset, *off, "{h}: {e}");
        }
        let deep = [vec![0x81u8; 1000], vec![0]].concat();
        assert!(decode(&deep).unwrap_err().message.contains("deeper"));
        let tags = [vec![0xc1u8; 1000], vec![0]].concat();
        assert!(decode(&tags).unwrap_err().message.contains("deeper"));
    }
}
