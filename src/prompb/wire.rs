//! A cursor over protobuf wire-format bytes, shared by the 1.0 validator and the 2.0 converter.
//!
//! It mirrors prost 0.14's decoding rules (`prost::encoding`): a varint's 10th byte must be 0 or 1;
//! a key must fit in 32 bits and have a non-zero field number; groups (wire types 3 and 4) and
//! wire types 6 and 7 are refused; a length-delimited value must end inside its parent. Errors carry
//! offsets from the start of the whole request. Must not: allocate or panic on any bytes.

use super::WireError;

pub(super) const VARINT: u8 = 0;
pub(super) const FIXED64: u8 = 1;
pub(super) const LEN: u8 = 2;
pub(super) const FIXED32: u8 = 5;

/// A field key: its number, wire type, and where it starts (for error offsets).
#[derive(Clone, Copy)]
pub(super) struct Key {
    pub(super) number: u32,
    pub(super) wire: u8,
    pub(super) offset: usize,
}

/// A cursor over one message's bytes. `base` is where `data` starts in the whole request, so
/// errors report offsets into the request, not into the nested message.
#[derive(Clone, Copy)]
pub(super) struct Reader<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    pub(super) base: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(data: &'a [u8], base: usize) -> Self {
        Reader { data, pos: 0, base }
    }

    /// The next field's key, or `None` at the end of the message.
    #[inline(always)]
    pub(super) fn next_field(&mut self) -> Result<Option<Key>, WireError> {
        let start = self.pos;
        let Some(&first) = self.data.get(start) else {
            return Ok(None);
        };
        let offset = self.base + start;
        let key = if first < 0x80 {
            self.pos = start + 1;
            u64::from(first)
        } else {
            let key = self.varint_multi()?;
            if key > u64::from(u32::MAX) {
                return Err(WireError::InvalidFieldNumber { offset });
            }
            key
        };
        let wire = (key & 7) as u8;
        let number = (key >> 3) as u32;
        if number == 0 {
            return Err(WireError::InvalidFieldNumber { offset });
        }
        if !matches!(wire, VARINT | FIXED64 | LEN | FIXED32) {
            return Err(WireError::UnsupportedWireType {
                offset,
                wire_type: wire,
            });
        }
        Ok(Some(Key {
            number,
            wire,
            offset,
        }))
    }

    #[inline(always)]
    pub(super) fn varint(&mut self) -> Result<u64, WireError> {
        match self.data.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            _ => self.varint_multi(),
        }
    }

    /// A varint of any length; as prost, at most 10 bytes, the 10th being 0 or 1.
    #[inline]
    pub(super) fn varint_multi(&mut self) -> Result<u64, WireError> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.data.get(start + i) else {
                return Err(WireError::Truncated {
                    offset: self.base + start,
                });
            };
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                if i == 9 && b > 1 {
                    break;
                }
                self.pos = start + i + 1;
                return Ok(value);
            }
        }
        Err(WireError::BadVarint {
            offset: self.base + start,
        })
    }

    /// The value of a length-delimited field, as a reader over its bytes.
    #[inline(always)]
    pub(super) fn len_delimited(&mut self) -> Result<Reader<'a>, WireError> {
        let len_offset = self.base + self.pos;
        let len = self.varint()?;
        let available = self.data.len() - self.pos;
        if len > available as u64 {
            return Err(WireError::LengthOutOfBounds {
                offset: len_offset,
                len,
                available,
            });
        }
        let start = self.pos;
        let end = start + len as usize;
        self.pos = end;
        Ok(Reader::new(&self.data[start..end], self.base + start))
    }

    #[inline(always)]
    pub(super) fn expect(&self, f: Key, wire: u8, field: &'static str) -> Result<(), WireError> {
        if f.wire == wire {
            Ok(())
        } else {
            Err(wrong_wire_type(f, field, wire_name(wire)))
        }
    }

    /// An embedded message field.
    #[inline(always)]
    pub(super) fn message(&mut self, f: Key, field: &'static str) -> Result<Reader<'a>, WireError> {
        self.expect(f, LEN, field)?;
        self.len_delimited()
    }

    /// A `string` field.
    #[inline(always)]
    pub(super) fn string(&mut self, f: Key, field: &'static str) -> Result<(), WireError> {
        self.expect(f, LEN, field)?;
        let s = self.len_delimited()?;
        if std::str::from_utf8(s.data).is_ok() {
            Ok(())
        } else {
            Err(WireError::InvalidUtf8 {
                offset: s.base,
                field,
            })
        }
    }

    /// A `double` field.
    #[inline(always)]
    pub(super) fn fixed64(&mut self, f: Key, field: &'static str) -> Result<(), WireError> {
        self.expect(f, FIXED64, field)?;
        self.skip_fixed(8)
    }

    /// A varint-encoded scalar field (`int64`, `uint64`, `sint32`, `uint32`, enum).
    #[inline(always)]
    pub(super) fn varint_field(&mut self, f: Key, field: &'static str) -> Result<(), WireError> {
        self.expect(f, VARINT, field)?;
        self.varint().map(drop)
    }

    /// A `repeated sint64`: one unpacked varint, or a packed run of varints.
    pub(super) fn repeated_varint(&mut self, f: Key, field: &'static str) -> Result<(), WireError> {
        match f.wire {
            VARINT => self.varint().map(drop),
            LEN => {
                let mut run = self.len_delimited()?;
                while run.pos < run.data.len() {
                    run.varint()?;
                }
                Ok(())
            }
            _ => Err(wrong_wire_type(f, field, "varint or length-delimited")),
        }
    }

    /// A `repeated double`: one unpacked value, or a packed run of 8-byte values.
    pub(super) fn repeated_fixed64(
        &mut self,
        f: Key,
        field: &'static str,
    ) -> Result<(), WireError> {
        match f.wire {
            FIXED64 => self.skip_fixed(8),
            LEN => {
                let offset = self.base + self.pos;
                let run = self.len_delimited()?;
                if run.data.len() % 8 == 0 {
                    Ok(())
                } else {
                    Err(WireError::PackedLength {
                        offset,
                        field,
                        len: run.data.len(),
                    })
                }
            }
            _ => Err(wrong_wire_type(f, field, "fixed64 or length-delimited")),
        }
    }

    #[inline(always)]
    pub(super) fn skip_fixed(&mut self, width: usize) -> Result<(), WireError> {
        if self.data.len() - self.pos < width {
            return Err(WireError::Truncated {
                offset: self.base + self.pos,
            });
        }
        self.pos += width;
        Ok(())
    }

    /// The bytes of a `string` field, checked to be UTF-8.
    #[inline(always)]
    pub(super) fn string_bytes(
        &mut self,
        f: Key,
        field: &'static str,
    ) -> Result<&'a [u8], WireError> {
        self.expect(f, LEN, field)?;
        let s = self.len_delimited()?;
        if s.data.is_ascii() || std::str::from_utf8(s.data).is_ok() {
            Ok(s.data)
        } else {
            Err(WireError::InvalidUtf8 {
                offset: s.base,
                field,
            })
        }
    }

    /// The value of a `double` field.
    #[inline(always)]
    pub(super) fn fixed64_value(&mut self, f: Key, field: &'static str) -> Result<f64, WireError> {
        self.expect(f, FIXED64, field)?;
        let Some(bytes) = self.data.get(self.pos..).and_then(|d| d.first_chunk::<8>()) else {
            return Err(WireError::Truncated {
                offset: self.base + self.pos,
            });
        };
        self.pos += 8;
        Ok(f64::from_le_bytes(*bytes))
    }

    /// The raw value of a varint-encoded scalar field (callers narrow it as prost does).
    #[inline(always)]
    pub(super) fn varint_value(&mut self, f: Key, field: &'static str) -> Result<u64, WireError> {
        self.expect(f, VARINT, field)?;
        self.varint()
    }

    /// Each value of a `repeated` varint field (`uint32`, `sint64`, ...): one unpacked varint, or
    /// a packed run of them.
    #[inline]
    pub(super) fn each_varint<E: From<WireError>>(
        &mut self,
        f: Key,
        field: &'static str,
        mut each: impl FnMut(u64) -> Result<(), E>,
    ) -> Result<(), E> {
        match f.wire {
            VARINT => each(self.varint()?),
            LEN => {
                let mut run = self.len_delimited()?;
                while run.pos < run.data.len() {
                    each(run.varint()?)?;
                }
                Ok(())
            }
            _ => Err(wrong_wire_type(f, field, "varint or length-delimited").into()),
        }
    }

    /// Skips an unknown field of any wire type `next_field` lets through.
    pub(super) fn skip(&mut self, f: Key) -> Result<(), WireError> {
        match f.wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.skip_fixed(8),
            FIXED32 => self.skip_fixed(4),
            _ => self.len_delimited().map(drop),
        }
    }
}

#[cold]
pub(super) fn wrong_wire_type(f: Key, field: &'static str, expected: &'static str) -> WireError {
    WireError::WrongWireType {
        offset: f.offset,
        field,
        expected,
        found: f.wire,
    }
}

fn wire_name(wire: u8) -> &'static str {
    match wire {
        VARINT => "varint",
        FIXED64 => "fixed64",
        LEN => "length-delimited",
        _ => "fixed32",
    }
}
