//! Decoding a challenge body straight into flat row-major f32 matrices.
//!
//! The payload's arrays of arrays are read by serde visitors that push every number
//! into one `Vec<f32>` per matrix: no `Vec` per row, no `serde_json::Value` tree, no
//! second copy. The limits are enforced while reading, so a matrix over the dimension
//! cap or the memory budget stops the parse at the first value too many, and ragged
//! rows are caught at the row where they start. Every error names its field.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::{ChallengeError, Limits};

/// A row-major matrix as the payload gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns (the length of every row).
    pub cols: usize,
    /// `rows · cols` values, row after row.
    pub data: Vec<f32>,
}

/// `size` as the payload wrote it, before validation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SizeValue {
    /// An integer (possibly zero or negative).
    Int(i128),
    /// A number with a fraction or exponent, e.g. `10.5` or `1e3`.
    Fraction(f64),
}

/// The payload's fields, decoded but not yet validated.
#[derive(Debug, Default)]
pub(crate) struct RawPayload {
    pub size: Option<SizeValue>,
    pub matrix_a: Option<Matrix>,
    pub matrix_b: Option<Matrix>,
    pub a: Option<Matrix>,
    pub b: Option<Matrix>,
    pub backend: Option<String>,
    pub seed: Option<u64>,
    pub self_check: Option<bool>,
}

/// A whole body: an envelope, or (for the CLI) a bare payload.
#[derive(Debug, Default)]
pub(crate) struct RawDocument {
    /// The envelope's `type`.
    pub kind: Option<String>,
    /// The envelope had a `payload` key (even `null`).
    pub has_payload: bool,
    /// The envelope's payload (`None` when absent or `null`).
    pub payload: Option<RawPayload>,
    /// Payload fields written at the top level (a bare payload).
    pub bare: RawPayload,
}

/// Decodes `body` under `limits`.
pub(crate) fn decode(body: &[u8], limits: &Limits) -> Result<RawDocument, ChallengeError> {
    let remaining = Cell::new(limits.budget_elements());
    let ctx = Ctx {
        max_dim: limits.max_dim,
        budget: limits.memory_budget,
        remaining: &remaining,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let doc = DocumentSeed { ctx }
        .deserialize(&mut de)
        .and_then(|doc| de.end().map(|()| doc))
        .map_err(|e| ChallengeError::Decode(e.to_string()))?;
    Ok(doc)
}

/// What every visitor needs: the limits and the f32 values the budget still allows.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    max_dim: usize,
    budget: u64,
    remaining: &'a Cell<u64>,
}

/// Prefixes an error with the field it belongs to.
fn in_field<E: de::Error>(field: &'static str) -> impl FnOnce(E) -> E {
    move |e| E::custom(format_args!("{field}: {e}"))
}

/// The keys this crate knows; Go's decoder matches them ignoring ASCII case, so ours does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Type,
    Payload,
    Size,
    MatrixA,
    MatrixB,
    A,
    B,
    Backend,
    Precision,
    Seed,
    SelfCheck,
    Other,
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                const KEYS: [(&str, Key); 11] = [
                    ("type", Key::Type),
                    ("payload", Key::Payload),
                    ("size", Key::Size),
                    ("matrixA", Key::MatrixA),
                    ("matrixB", Key::MatrixB),
                    ("A", Key::A),
                    ("B", Key::B),
                    ("backend", Key::Backend),
                    ("precision", Key::Precision),
                    ("seed", Key::Seed),
                    ("selfCheck", Key::SelfCheck),
                ];
                // An exact match first, as Go does; then ignoring case.
                Ok(KEYS
                    .iter()
                    .find(|(name, _)| *name == v)
                    .or_else(|| KEYS.iter().find(|(name, _)| name.eq_ignore_ascii_case(v)))
                    .map_or(Key::Other, |&(_, key)| key))
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// Reads the value of payload field `key` into `raw`. Keys that are not payload
/// fields are skipped.
fn read_field<'de, M: MapAccess<'de>>(
    key: Key,
    map: &mut M,
    raw: &mut RawPayload,
    ctx: Ctx<'_>,
) -> Result<(), M::Error> {
    match key {
        Key::Size => raw.size = map.next_value_seed(SizeSeed).map_err(in_field("size"))?,
        Key::MatrixA => {
            raw.matrix_a = map
                .next_value_seed(MatrixSeed { ctx })
                .map_err(in_field("matrixA"))?;
        }
        Key::MatrixB => {
            raw.matrix_b = map
                .next_value_seed(MatrixSeed { ctx })
                .map_err(in_field("matrixB"))?;
        }
        Key::A => {
            raw.a = map
                .next_value_seed(MatrixSeed { ctx })
                .map_err(in_field("A"))?
        }
        Key::B => {
            raw.b = map
                .next_value_seed(MatrixSeed { ctx })
                .map_err(in_field("B"))?
        }
        Key::Backend => {
            raw.backend = map
                .next_value::<Option<String>>()
                .map_err(in_field("backend"))?;
        }
        Key::Seed => raw.seed = map.next_value::<Option<u64>>().map_err(in_field("seed"))?,
        Key::SelfCheck => {
            raw.self_check = map
                .next_value::<Option<bool>>()
                .map_err(in_field("selfCheck"))?;
        }
        // Upstream logs `precision` and ignores it; the product is f32 here.
        Key::Precision | Key::Type | Key::Payload | Key::Other => {
            map.next_value::<IgnoredAny>()?;
        }
    }
    Ok(())
}

struct DocumentSeed<'a> {
    ctx: Ctx<'a>,
}

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_> {
    type Value = RawDocument;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawDocument, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_> {
    type Value = RawDocument;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a challenge object {"type": "MATRIX_MULTIPLICATION", "payload": {...}}"#)
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<RawDocument, M::Error> {
        let mut doc = RawDocument::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Type => {
                    doc.kind = map
                        .next_value::<Option<String>>()
                        .map_err(in_field("type"))?;
                }
                Key::Payload => {
                    doc.has_payload = true;
                    doc.payload = map
                        .next_value_seed(PayloadSeed { ctx: self.ctx })
                        .map_err(in_field("payload"))?;
                }
                other => read_field(other, &mut map, &mut doc.bare, self.ctx)?,
            }
        }
        Ok(doc)
    }
}

struct PayloadSeed<'a> {
    ctx: Ctx<'a>,
}

impl<'de> DeserializeSeed<'de> for PayloadSeed<'_> {
    type Value = Option<RawPayload>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for PayloadSeed<'_> {
    type Value = Option<RawPayload>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a payload object")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut raw = RawPayload::default();
        while let Some(key) = map.next_key::<Key>()? {
            read_field(key, &mut map, &mut raw, self.ctx)?;
        }
        Ok(Some(raw))
    }
}

/// `size`: any JSON number is accepted here and judged in validation, so that `10.5`
/// and `-3` get a message about `size` rather than a type error.
struct SizeSeed;

impl<'de> DeserializeSeed<'de> for SizeSeed {
    type Value = Option<SizeValue>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Visitor<'_> for SizeSeed {
    type Value = Option<SizeValue>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a positive integer")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(SizeValue::Int(i128::from(v))))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(SizeValue::Int(i128::from(v))))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(SizeValue::Fraction(v)))
    }
}

/// A matrix field: `null` (absent) or an array of rows.
struct MatrixSeed<'a> {
    ctx: Ctx<'a>,
}

impl<'de> DeserializeSeed<'de> for MatrixSeed<'_> {
    type Value = Option<Matrix>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for MatrixSeed<'_> {
    type Value = Option<Matrix>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of rows, each an array of numbers")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let mut data = Vec::new();
        let mut cols = None;
        let mut rows = 0;
        while let Some(len) = seq.next_element_seed(RowSeed {
            ctx: self.ctx,
            data: &mut data,
            row: rows,
            cols,
        })? {
            cols.get_or_insert(len);
            rows += 1;
        }
        Ok(Some(Matrix {
            rows,
            cols: cols.unwrap_or(0),
            data,
        }))
    }
}

/// One row, appended to the matrix's values; answers the row's length.
struct RowSeed<'a, 'b> {
    ctx: Ctx<'a>,
    data: &'b mut Vec<f32>,
    row: usize,
    /// The length of row 0, once known.
    cols: Option<usize>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_, '_> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        if self.row >= self.ctx.max_dim {
            return Err(de::Error::custom(format_args!(
                "more than {} rows, the largest dimension allowed",
                self.ctx.max_dim
            )));
        }
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_, '_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row {} as an array of numbers", self.row)
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<usize, S::Error> {
        let limit = self.cols.unwrap_or(self.ctx.max_dim);
        if let Some(cols) = self.cols {
            self.data.reserve(cols);
        }
        let mut col = 0;
        loop {
            let element = ElementSeed { row: self.row, col };
            let Some(value) = seq.next_element_seed(element)? else {
                break;
            };
            if col == limit {
                return Err(de::Error::custom(match self.cols {
                    Some(cols) => format!(
                        "row {} has more than {cols} values but row 0 has {cols}: all rows must have the same length",
                        self.row
                    ),
                    None => format!(
                        "row 0 has more than {} values, the largest dimension allowed",
                        self.ctx.max_dim
                    ),
                }));
            }
            let remaining = self.ctx.remaining.get();
            if remaining == 0 {
                return Err(de::Error::custom(format_args!(
                    "the matrices hold more values than the memory budget of {} bytes allows",
                    self.ctx.budget
                )));
            }
            self.ctx.remaining.set(remaining - 1);
            self.data.push(value);
            col += 1;
        }
        match self.cols {
            Some(cols) if col != cols => Err(de::Error::custom(format_args!(
                "row {} has {col} values but row 0 has {cols}: all rows must have the same length",
                self.row
            ))),
            _ => Ok(col),
        }
    }
}

/// One value: any JSON number that is finite as an f32.
struct ElementSeed {
    row: usize,
    col: usize,
}

impl<'de> DeserializeSeed<'de> for ElementSeed {
    type Value = f32;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<f32, D::Error> {
        deserializer.deserialize_f64(self)
    }
}

impl Visitor<'_> for ElementSeed {
    type Value = f32;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a number at [{}][{}]", self.row, self.col)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f32, E> {
        let x = v as f32;
        if x.is_finite() {
            Ok(x)
        } else {
            Err(E::custom(format_args!(
                "the value at [{}][{}], {v:e}, is not a finite f32",
                self.row, self.col
            )))
        }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f32, E> {
        Ok(v as f32)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f32, E> {
        Ok(v as f32)
    }
}
