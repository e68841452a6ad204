//! HPACK (RFC 7541) decoding of one direction's header blocks, through
//! `loona-hpack`, bounded against hostile encoders.
//!
//! The dynamic table is per direction and must see every block in wire
//! order; its size is bounded by what the receiving peer allowed
//! (`SETTINGS_HEADER_TABLE_SIZE`, RFC 9113 section 6.5.2), never more than
//! [`MAX_TABLE`]. A block that fails to decode (or was not captured)
//! leaves the table unknown: the direction stops decoding for good, as a
//! real peer would end the connection (COMPRESSION_ERROR).

use loona_hpack::Decoder;

/// The largest dynamic table followed, bytes.
pub const MAX_TABLE: usize = 64 * 1024;
/// Most headers kept of one block.
pub const MAX_HEADERS: usize = 128;
/// Most name and value bytes kept of one block ("HPACK bombs": small
/// blocks referencing large table entries many times expand without
/// bound otherwise).
pub const MAX_LIST_BYTES: usize = 64 * 1024;

/// One direction's decoder.
pub struct Hpack {
    decoder: Decoder<'static>,
    broken: bool,
}

impl Default for Hpack {
    fn default() -> Self {
        let mut decoder = Decoder::new();
        decoder.set_max_allowed_table_size(4096);
        Self {
            decoder,
            broken: false,
        }
    }
}

impl std::fmt::Debug for Hpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hpack")
            .field("broken", &self.broken)
            .finish()
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
        let size = usize::try_from(size)
            .unwrap_or(MAX_TABLE)
            .clamp(4096, MAX_TABLE);
        self.decoder.set_max_allowed_table_size(size);
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
        let result = self.decoder.decode_with_cb(block, |name, value| {
            bytes += name.len() + value.len();
            if out.fields.len() < MAX_HEADERS && bytes <= MAX_LIST_BYTES {
                out.fields.push((name.into_owned(), value.into_owned()));
            } else {
                out.capped = true;
            }
        });
        if result.is_err() {
            self.broken = true;
            return None;
        }
        Some(out)
    }
}
