//! HPACK (RFC 7541) decoding of one direction's header blocks, bounded
//! against hostile encoders.
//!
//! Written here, not taken from a crate: `loona-hpack` (and `hpack`, and
//! its forks) build a Huffman decoding table of hash maps for every
//! Huffman-coded string, 111 ms of CPU for one 16 KiB block of one-letter
//! fields, so any client could stall the sensor; `httlib-hpack` indexes
//! past the end of a truncated integer (a panic on traffic); `h2`'s
//! decoder is private and fails on header names nginx ignores. The
//! Huffman decoder is a binary search over the code's intervals
//! ([`huffman`]).
//!
//! The dynamic table is per direction and must see every block in wire
//! order; its size is bounded by what the receiving peer allowed
//! (`SETTINGS_HEADER_TABLE_SIZE`, RFC 9113 section 6.5.2), never more than
//! [`MAX_TABLE`]. A block that fails to decode (or was not captured)
//! leaves the table unknown: the direction stops decoding for good, as a
//! real peer would end the connection (COMPRESSION_ERROR).

mod huffman;
mod table;

use huffman::HuffmanError;
use table::DynamicTable;

/// The largest dynamic table followed, bytes.
pub const MAX_TABLE: usize = 64 * 1024;
/// Most headers kept of one block.
pub const MAX_HEADERS: usize = 128;
/// Most name and value bytes kept of one block ("HPACK bombs": small
/// blocks referencing large table entries many times expand without
/// bound otherwise).
pub const MAX_LIST_BYTES: usize = 64 * 1024;
/// The dynamic table's size before any SETTINGS (RFC 9113 section 6.5.2).
const DEFAULT_TABLE: usize = 4096;

/// One direction's decoder.
#[derive(Debug)]
pub struct Hpack {
    table: DynamicTable,
    /// The largest table the receiving peer allows (its
    /// SETTINGS_HEADER_TABLE_SIZE): a size update above it is an error.
    allowed: usize,
    broken: bool,
}

impl Default for Hpack {
    fn default() -> Self {
        Self {
            table: DynamicTable::new(DEFAULT_TABLE),
            allowed: DEFAULT_TABLE,
            broken: false,
        }
    }
}

/// Why a header block does not decode: a COMPRESSION_ERROR for a peer
/// (RFC 9113 section 4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HpackError {
    /// The block ends inside a representation.
    Truncated,
    /// An integer longer than four continuation bytes (RFC 7541 section
    /// 5.1 lets a decoder limit them).
    Integer,
    /// Index 0, or past the end of the tables.
    Index,
    /// A table size update above what the peer allows, or ending the block
    /// (section 4.2).
    SizeUpdate,
    /// A Huffman-coded string that does not decode.
    Huffman(HuffmanError),
}

impl From<HuffmanError> for HpackError {
    fn from(e: HuffmanError) -> Self {
        Self::Huffman(e)
    }
}

/// A decoded header block: (name, value) pairs, and whether some were left
/// out to stay within the caps.
#[derive(Debug, Default)]
pub struct Headers {
    /// The headers kept, in order.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
    /// Headers or bytes beyond [`MAX_HEADERS`] / [`MAX_LIST_BYTES`].
    pub capped: bool,
}

impl Headers {
    /// The value of the first header named `name` (lowercase, as HTTP/2
    /// requires).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

impl Hpack {
    /// The receiving peer allows `size` bytes of table.
    pub fn allow(&mut self, size: u32) {
        self.allowed = usize::try_from(size)
            .unwrap_or(MAX_TABLE)
            .clamp(DEFAULT_TABLE, MAX_TABLE);
    }

    /// Bytes the dynamic table holds (its RFC 7541 size: names, values and
    /// 32 per entry, about what they take on the heap).
    pub fn memory(&self) -> usize {
        self.table.size()
    }

    /// Whether the table is unknown (a block failed or was lost).
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// The table is unknown from now on.
    pub fn lose(&mut self) {
        self.broken = true;
    }

    /// Decodes a complete header block; `None` when it fails (or the table
    /// was already unknown).
    pub fn decode(&mut self, block: &[u8]) -> Option<Headers> {
        if self.broken {
            return None;
        }
        let mut out = Headers::default();
        let mut bytes = 0;
        let mut keep = |name: &[u8], value: &[u8]| {
            bytes += name.len() + value.len();
            if out.fields.len() < MAX_HEADERS && bytes <= MAX_LIST_BYTES {
                out.fields.push((name.to_vec(), value.to_vec()));
            } else {
                out.capped = true;
            }
        };
        if self.fields(block, &mut keep).is_err() {
            self.broken = true;
            return None;
        }
        Some(out)
    }

    /// Decodes every field representation of `block` (RFC 7541 section 6)
    /// into `keep`, keeping the dynamic table in step.
    fn fields(
        &mut self,
        mut block: &[u8],
        keep: &mut impl FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        let mut size_update_last = false;
        while let Some(&first) = block.first() {
            size_update_last = false;
            match first {
                // Indexed (section 6.1).
                0x80.. => {
                    let index = integer(&mut block, 7)?;
                    let (name, value) = self.table.get(index).ok_or(HpackError::Index)?;
                    keep(name, value);
                }
                // Literal with incremental indexing (section 6.2.1).
                0x40.. => {
                    let (name, value) = self.literal(&mut block, 6)?;
                    keep(&name, &value);
                    self.table.insert(name, value);
                }
                // Dynamic table size update (section 6.3).
                0x20.. => {
                    let size = integer(&mut block, 5)?;
                    if size > self.allowed {
                        return Err(HpackError::SizeUpdate);
                    }
                    self.table.resize(size);
                    size_update_last = true;
                }
                // Literal without indexing or never indexed (6.2.2, 6.2.3).
                _ => {
                    let (name, value) = self.literal(&mut block, 4)?;
                    keep(&name, &value);
                }
            }
        }
        if size_update_last {
            return Err(HpackError::SizeUpdate);
        }
        Ok(())
    }

    /// A literal's name (indexed, or a string) and value; the index has a
    /// `prefix`-bit prefix.
    fn literal(&self, block: &mut &[u8], prefix: u8) -> Result<(Vec<u8>, Vec<u8>), HpackError> {
        let name = match integer(block, prefix)? {
            0 => string(block)?,
            index => self.table.get(index).ok_or(HpackError::Index)?.0.to_vec(),
        };
        Ok((name, string(block)?))
    }
}

/// An integer with a `prefix`-bit prefix (RFC 7541 section 5.1), taken
/// from the front of `block`.
fn integer(block: &mut &[u8], prefix: u8) -> Result<usize, HpackError> {
    let (&first, rest) = block.split_first().ok_or(HpackError::Truncated)?;
    *block = rest;
    let mask = (1u8 << prefix) - 1;
    let mut value = usize::from(first & mask);
    if value < usize::from(mask) {
        return Ok(value);
    }
    for shift in [0, 7, 14, 21] {
        let (&b, rest) = block.split_first().ok_or(HpackError::Truncated)?;
        *block = rest;
        value += usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(HpackError::Integer)
}

/// A string literal (RFC 7541 section 5.2), Huffman-coded or not, taken
/// from the front of `block`.
fn string(block: &mut &[u8]) -> Result<Vec<u8>, HpackError> {
    let huffman = block.first().is_some_and(|b| b & 0x80 != 0);
    let len = integer(block, 7)?;
    if len > block.len() {
        return Err(HpackError::Truncated);
    }
    let (bytes, rest) = block.split_at(len);
    *block = rest;
    if !huffman {
        return Ok(bytes.to_vec());
    }
    // Codes are at least 5 bits: at most 8 symbols per 5 bytes.
    let mut out = Vec::with_capacity(len * 8 / 5 + 1);
    huffman::decode(bytes, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
