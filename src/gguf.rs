//! GGUF reader: header, metadata and tensor table, validated before anything is trusted.
//!
//! Every length and count is checked against the bytes that remain, so a hostile file can
//! neither make us allocate more than its own size justifies nor read outside it. Tensor
//! data is not copied: a `TensorInfo` is a byte range into the file.

use crate::bail;
use crate::error::{Code, Error, Result};
use std::collections::HashMap;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
const MAX_DIMS: u32 = 4;

/// ggml tensor types. `block` elements are stored in `block_bytes` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
}

impl DType {
    /// Maps a ggml type id; known-but-unsupported and unknown ids are both refused here.
    pub fn from_ggml(id: u32) -> Result<Self> {
        Ok(match id {
            0 => DType::F32,
            1 => DType::F16,
            2 => DType::Q4_0,
            3 => DType::Q4_1,
            6 => DType::Q5_0,
            7 => DType::Q5_1,
            8 => DType::Q8_0,
            10 => DType::Q2K,
            11 => DType::Q3K,
            12 => DType::Q4K,
            13 => DType::Q5K,
            14 => DType::Q6K,
            15 => DType::Q8K,
            30 => DType::BF16,
            _ => bail!(
                Code::UnsupportedQuantization,
                "tensor type {} ({}) is not supported; use a GGUF quantized as F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 or Q2_K…Q6_K",
                id,
                ggml_type_name(id)
            ),
        })
    }

    pub fn block(self) -> usize {
        match self {
            DType::F32 | DType::F16 | DType::BF16 => 1,
            DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1 | DType::Q8_0 => 32,
            DType::Q2K | DType::Q3K | DType::Q4K | DType::Q5K | DType::Q6K | DType::Q8K => 256,
        }
    }

    pub fn block_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Q4_0 => 18,
            DType::Q4_1 => 20,
            DType::Q5_0 => 22,
            DType::Q5_1 => 24,
            DType::Q8_0 => 34,
            DType::Q2K => 84,
            DType::Q3K => 110,
            DType::Q4K => 144,
            DType::Q5K => 176,
            DType::Q6K => 210,
            DType::Q8K => 292,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::Q4_0 => "Q4_0",
            DType::Q4_1 => "Q4_1",
            DType::Q5_0 => "Q5_0",
            DType::Q5_1 => "Q5_1",
            DType::Q8_0 => "Q8_0",
            DType::Q2K => "Q2_K",
            DType::Q3K => "Q3_K",
            DType::Q4K => "Q4_K",
            DType::Q5K => "Q5_K",
            DType::Q6K => "Q6_K",
            DType::Q8K => "Q8_K",
        }
    }
}

fn ggml_type_name(id: u32) -> &'static str {
    match id {
        4 | 5 => "removed Q4_2/Q4_3",
        9 => "Q8_1",
        16..=23 | 29 => "an IQ type",
        24..=28 => "an integer or F64 type",
        31..=39 => "a ternary or MXFP type",
        _ => "unknown",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Str(String),
    /// An array of numbers or booleans.
    Array(Array),
    /// An array of strings, in one buffer.
    Strings(Strings),
}

/// A metadata array of numbers or booleans as the file's little-endian bytes, decoded as
/// they are read: a vocabulary's 262,144 scores as `Value`s took 8 MB and a third of the
/// header's parse.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    ty: u32,
    bytes: Vec<u8>,
}

impl Array {
    fn size(&self) -> usize {
        scalar_size(self.ty).unwrap_or(1) as usize
    }

    pub fn get(&self, i: usize) -> Option<Value> {
        let size = self.size();
        let b = self.bytes.get(i * size..(i + 1) * size)?;
        scalar(self.ty, b).ok()
    }

    pub fn len(&self) -> usize {
        self.bytes.len() / self.size()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Value> + '_ {
        self.bytes
            .chunks_exact(self.size())
            .filter_map(|b| scalar(self.ty, b).ok())
    }
}

/// A metadata array of strings in one buffer: a vocabulary's 262,144 separate `String`s
/// took three times their bytes, and as long to parse and to free again as the rest of a
/// load's header.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Strings {
    text: String,
    /// Where each string ends in `text`; each also starts on a character boundary.
    ends: Vec<u32>,
}

impl Strings {
    fn range(&self, i: usize) -> Option<std::ops::Range<usize>> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(start..end)
    }

    pub fn get(&self, i: usize) -> Option<&str> {
        Some(&self.text[self.range(i)?])
    }

    /// String `i`'s bytes (without `get`'s check of character boundaries).
    pub fn bytes(&self, i: usize) -> Option<&[u8]> {
        Some(&self.text.as_bytes()[self.range(i)?])
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or_default())
    }
}

impl<S: AsRef<str>> FromIterator<S> for Strings {
    fn from_iter<I: IntoIterator<Item = S>>(items: I) -> Self {
        let mut s = Strings::default();
        for item in items {
            s.text.push_str(item.as_ref());
            s.ends.push(s.text.len() as u32);
        }
        s
    }
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        Some(match *self {
            Value::U8(v) => v as u64,
            Value::U16(v) => v as u64,
            Value::U32(v) => v as u64,
            Value::U64(v) => v,
            Value::I8(v) if v >= 0 => v as u64,
            Value::I16(v) if v >= 0 => v as u64,
            Value::I32(v) if v >= 0 => v as u64,
            Value::I64(v) if v >= 0 => v as u64,
            _ => return None,
        })
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
    pub fn as_strings(&self) -> Option<&Strings> {
        match self {
            Value::Strings(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the contiguous (row) length.
    pub dims: Vec<usize>,
    pub dtype: DType,
    /// Absolute byte offset of the data in the file.
    pub offset: usize,
    pub bytes: usize,
}

impl TensorInfo {
    pub fn elements(&self) -> usize {
        self.dims.iter().product()
    }
}

#[derive(Debug, Clone)]
pub struct Gguf {
    pub version: u32,
    pub metadata: HashMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    /// Where tensor data starts; every tensor lies in `data_offset..file_len`.
    pub data_offset: usize,
}

/// Parses a streaming file's header once it has all arrived: tries at 8 MiB, then each time
/// twice as much has arrived, and gives it once. (A 262,144-token vocabulary makes a 6.5 MB
/// header: tries before it would parse most of it for nothing.) A header that fails otherwise
/// than by being cut short is left for the whole file's parse to report.
pub struct HeaderWatch {
    file_len: usize,
    /// How many bytes to have before the next try (`usize::MAX`: done, or off).
    next_try: usize,
}

impl HeaderWatch {
    pub fn new(file_len: usize) -> Self {
        HeaderWatch {
            file_len,
            next_try: 8 << 20,
        }
    }

    /// One that never gives a header.
    pub fn off() -> Self {
        HeaderWatch {
            file_len: 0,
            next_try: usize::MAX,
        }
    }

    /// Called with all of the file so far; the header, the first time it parses.
    pub fn offer(&mut self, prefix: &[u8]) -> Option<Gguf> {
        if prefix.len() < self.next_try {
            return None;
        }
        self.next_try = usize::MAX;
        match Gguf::parse_header(prefix, self.file_len) {
            Ok(gguf) => Some(gguf),
            Err(e) if e.code == Code::TruncatedFile && prefix.len() < self.file_len => {
                self.next_try = prefix.len() * 2;
                None
            }
            Err(_) => None,
        }
    }
}

impl Gguf {
    /// Parses and validates a whole GGUF file held in memory.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Self::parse_header(bytes, bytes.len())
    }

    /// Parses the header from a prefix of a file whose full length is `file_len`; fails with
    /// `truncated_file` when the prefix is too short to hold the header.
    pub fn parse_header(prefix: &[u8], file_len: usize) -> Result<Self> {
        let mut r = Reader {
            buf: prefix,
            pos: 0,
        };
        if prefix.len() < 4 || &prefix[..4] != MAGIC {
            bail!(Code::BadMagic, "this is not a GGUF model file (it does not start with \"GGUF\"); check the URL and that the server returns the file itself, not an HTML page");
        }
        r.pos = 4;
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            bail!(Code::UnsupportedVersion, "GGUF version {version} is not supported (versions 2 and 3 are); convert the model again with a current llama.cpp");
        }
        let n_tensors = r.u64()?;
        let n_kv = r.u64()?;
        // The smallest key/value takes 13 bytes and the smallest tensor entry 24: a count
        // larger than the bytes left can allow is a lie, caught before any allocation.
        r.check_count(n_kv, 13, "metadata entries")?;
        r.check_count(n_tensors, 24, "tensors")?;

        let mut metadata = HashMap::with_capacity(n_kv as usize);
        for _ in 0..n_kv {
            let key = r.string()?;
            let ty = r.u32()?;
            let value = r.value(ty, 0)?;
            metadata.insert(key, value);
        }

        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a,
                _ => bail!(
                    Code::InvalidMetadata,
                    "general.alignment must be a power of two, found {v:?}"
                ),
            },
        };

        let mut raw = Vec::with_capacity(n_tensors as usize);
        for _ in 0..n_tensors {
            let name = r.string()?;
            let n_dims = r.u32()?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                bail!(
                    Code::InvalidTensor,
                    "tensor {name:?} has {n_dims} dimensions (1 to {MAX_DIMS} are allowed)"
                );
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(r.u64()?);
            }
            let ty = r.u32()?;
            let offset = r.u64()?;
            raw.push((name, dims, ty, offset));
        }
        let data_offset = align(r.pos as u64, alignment);

        let mut tensors = Vec::with_capacity(raw.len());
        for (name, dims, ty, rel) in raw {
            let dtype = DType::from_ggml(ty)
                .map_err(|e| Error::new(e.code, format!("tensor {name:?}: {}", e.message)))?;
            let elements = dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .filter(|&n| n > 0 && n <= 1 << 40);
            let Some(elements) = elements else {
                bail!(
                    Code::InvalidTensor,
                    "tensor {name:?} has impossible dimensions {dims:?}"
                );
            };
            if dims[0] % dtype.block() as u64 != 0 {
                bail!(
                    Code::InvalidTensor,
                    "tensor {name:?}: row length {} is not a multiple of the {} block size {}",
                    dims[0],
                    dtype.name(),
                    dtype.block()
                );
            }
            if rel % alignment != 0 {
                bail!(
                    Code::InvalidTensor,
                    "tensor {name:?} starts at offset {rel}, which is not aligned to {alignment}"
                );
            }
            let bytes = elements / dtype.block() as u64 * dtype.block_bytes() as u64;
            let start = data_offset.checked_add(rel);
            let end = start.and_then(|s| s.checked_add(bytes));
            match end {
                Some(end) if end <= file_len as u64 => {}
                _ => bail!(
                    Code::TruncatedFile,
                    "tensor {name:?} needs bytes up to {} but the file has {file_len}; the download was probably cut short, fetch the file again",
                    end.map_or("beyond 2^64".to_string(), |e| e.to_string())
                ),
            }
            tensors.push(TensorInfo {
                name,
                dims: dims.iter().map(|&d| d as usize).collect(),
                dtype,
                offset: start.unwrap() as usize,
                bytes: bytes as usize,
            });
        }

        let mut by_offset: Vec<&TensorInfo> = tensors.iter().collect();
        by_offset.sort_by_key(|t| t.offset);
        for w in by_offset.windows(2) {
            if w[0].offset + w[0].bytes > w[1].offset {
                bail!(
                    Code::InvalidTensor,
                    "tensors {:?} and {:?} overlap in the file",
                    w[0].name,
                    w[1].name
                );
            }
        }
        let mut names = std::collections::HashSet::with_capacity(tensors.len());
        for t in &tensors {
            if !names.insert(t.name.as_str()) {
                bail!(Code::InvalidTensor, "tensor {:?} appears twice", t.name);
            }
        }

        Ok(Gguf {
            version,
            metadata,
            tensors,
            data_offset: data_offset as usize,
        })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Total size of the header (metadata and tensor table); the data section starts here.
    pub fn header_len(&self) -> usize {
        self.data_offset
    }
}

/// The size of a metadata type of fixed size (a number or a boolean).
fn scalar_size(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

/// A value of a fixed-size type from its bytes (`scalar_size(ty)` of them).
fn scalar(ty: u32, b: &[u8]) -> Result<Value> {
    fn le<const N: usize>(b: &[u8]) -> [u8; N] {
        b.try_into().expect("sized by scalar_size")
    }
    Ok(match ty {
        0 => Value::U8(b[0]),
        1 => Value::I8(b[0] as i8),
        2 => Value::U16(u16::from_le_bytes(le(b))),
        3 => Value::I16(i16::from_le_bytes(le(b))),
        4 => Value::U32(u32::from_le_bytes(le(b))),
        5 => Value::I32(i32::from_le_bytes(le(b))),
        6 => Value::F32(f32::from_le_bytes(le(b))),
        7 => match b[0] {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            b => return Err(not_bool(b)),
        },
        10 => Value::U64(u64::from_le_bytes(le(b))),
        11 => Value::I64(i64::from_le_bytes(le(b))),
        12 => Value::F64(f64::from_le_bytes(le(b))),
        _ => return Err(unknown_type(ty)),
    })
}

fn not_bool(b: u8) -> Error {
    Error::new(
        Code::InvalidMetadata,
        format!("a boolean metadata value is {b}, not 0 or 1"),
    )
}

fn unknown_type(ty: u32) -> Error {
    Error::new(
        Code::InvalidMetadata,
        format!("unknown metadata value type {ty}"),
    )
}

fn not_utf8() -> Error {
    Error::new(
        Code::InvalidMetadata,
        "a metadata string is not valid UTF-8",
    )
}

fn align(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            bail!(Code::TruncatedFile, "the model file ends inside its header (at byte {}); the download was probably cut short, fetch the file again", self.buf.len());
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn check_count(&self, count: u64, min_size: u64, what: &str) -> Result<()> {
        let left = (self.buf.len() - self.pos) as u64;
        if count.saturating_mul(min_size) > left {
            bail!(Code::TruncatedFile, "the header announces {count} {what}, more than the {left} remaining bytes can hold; the file is truncated or corrupt");
        }
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N as u64)?.try_into().unwrap())
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String> {
        let len = self.u64()?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| not_utf8())
    }

    /// `count` strings into one buffer, validated as UTF-8 at once: the whole is valid and
    /// each string starts on a character boundary, so each string is valid on its own.
    fn strings(&mut self, count: u64) -> Result<Strings> {
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let len = self.u64()?;
            let s = self.take(len)?;
            if s.first().is_some_and(|&b| b & 0xC0 == 0x80) {
                return Err(not_utf8());
            }
            bytes.extend_from_slice(s);
            let Ok(end) = u32::try_from(bytes.len()) else {
                bail!(
                    Code::InvalidMetadata,
                    "a metadata array holds more than 4 GB of strings"
                );
            };
            ends.push(end);
        }
        let text = String::from_utf8(bytes).map_err(|_| not_utf8())?;
        Ok(Strings { text, ends })
    }

    fn value(&mut self, ty: u32, depth: u32) -> Result<Value> {
        if let Some(size) = scalar_size(ty) {
            return scalar(ty, self.take(size)?);
        }
        match ty {
            8 => Ok(Value::Str(self.string()?)),
            9 => {
                if depth > 0 {
                    bail!(
                        Code::InvalidMetadata,
                        "nested metadata arrays are not supported"
                    );
                }
                let elem = self.u32()?;
                let count = self.u64()?;
                let min_size = match elem {
                    8 => 8,
                    9 => 12,
                    _ => scalar_size(elem).ok_or_else(|| unknown_type(elem))?,
                };
                self.check_count(count, min_size, "array elements")?;
                match elem {
                    8 => Ok(Value::Strings(self.strings(count)?)),
                    9 if count > 0 => bail!(
                        Code::InvalidMetadata,
                        "nested metadata arrays are not supported"
                    ),
                    // An empty array of arrays: an empty array (of bytes, for its type).
                    9 => Ok(Value::Array(Array {
                        ty: 0,
                        bytes: Vec::new(),
                    })),
                    // Numbers and booleans in one read (a vocabulary has 262,144 scores).
                    _ => {
                        let bytes = self.take(count * min_size)?;
                        if elem == 7 {
                            if let Some(&b) = bytes.iter().find(|&&b| b > 1) {
                                return Err(not_bool(b));
                            }
                        }
                        Ok(Value::Array(Array {
                            ty: elem,
                            bytes: bytes.to_vec(),
                        }))
                    }
                }
            }
            _ => Err(unknown_type(ty)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header with no tensors and one array under `key`: its element type and payload.
    fn with_array(elem: u32, count: u64, payload: &[u8]) -> Gguf {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes()); // tensors
        b.extend(1u64.to_le_bytes()); // metadata entries
        b.extend(3u64.to_le_bytes());
        b.extend(b"key");
        b.extend(9u32.to_le_bytes());
        b.extend(elem.to_le_bytes());
        b.extend(count.to_le_bytes());
        b.extend(payload);
        Gguf::parse(&b).unwrap()
    }

    #[test]
    fn arrays_of_numbers_and_booleans_read_back_element_by_element() {
        let g = with_array(7, 3, &[1, 0, 1]);
        let a = g.get("key").and_then(Value::as_array).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a.get(1), Some(Value::Bool(false)));
        assert_eq!(a.get(3), None);
        let flags: Vec<_> = a.iter().map(|v| v.as_bool().unwrap()).collect();
        assert_eq!(flags, [true, false, true]);

        let scores: Vec<u8> = [-1.5f32, 0.25]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let g = with_array(6, 2, &scores);
        let a = g.get("key").and_then(Value::as_array).unwrap();
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            [Value::F32(-1.5), Value::F32(0.25)]
        );
        let g = with_array(11, 1, &(-7i64).to_le_bytes());
        assert_eq!(
            g.get("key").and_then(Value::as_array).unwrap().get(0),
            Some(Value::I64(-7))
        );
        // An empty array of arrays (the only kind allowed) is an empty array.
        let g = with_array(9, 0, &[]);
        assert!(g.get("key").and_then(Value::as_array).unwrap().is_empty());
    }

    #[test]
    fn arrays_of_strings_keep_each_string_whole() {
        let mut payload = Vec::new();
        for s in ["a", "é▁x", ""] {
            payload.extend((s.len() as u64).to_le_bytes());
            payload.extend(s.as_bytes());
        }
        let g = with_array(8, 3, &payload);
        let s = g.get("key").and_then(Value::as_strings).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.iter().collect::<Vec<_>>(), ["a", "é▁x", ""]);
        assert_eq!(s.get(1), Some("é▁x"));
        assert_eq!(s.bytes(1), Some("é▁x".as_bytes()));
        assert_eq!((s.get(3), s.bytes(3)), (None, None));
        assert_eq!(g.get("key").and_then(Value::as_array), None);
    }
}
