//! The request headers identity reads. The HTTP analyzer scans a request's
//! headers once and hands each to [`IdentityHeaders::note`]; what is not an
//! identity header goes on to the analyzer's own fields.

use smallvec::SmallVec;

pub use crate::field_name::FORWARDED_FOR;
use crate::field_name::{self, Known};

/// The header names identity looks for that the configuration chooses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderNames {
    /// Kong key-auth's `key_names` (default `apikey`), compared
    /// ASCII-case-insensitively.
    pub key_names: Vec<String>,
    /// The header a trusted proxy names the client in (nginx's
    /// `real_ip_header`; default `X-Forwarded-For`), lower case.
    pub real_ip_header: String,
}

impl HeaderNames {
    /// The names ASCII-lowercased: what [`IdentityHeaders::note`] compares
    /// header names with.
    pub fn lowercased(&self) -> Self {
        Self {
            key_names: self
                .key_names
                .iter()
                .map(|k| k.to_ascii_lowercase())
                .collect(),
            real_ip_header: self.real_ip_header.to_ascii_lowercase(),
        }
    }
}

impl Default for HeaderNames {
    /// Kong's default key name `apikey`; `X-Forwarded-For`.
    fn default() -> Self {
        Self {
            key_names: vec!["apikey".to_owned()],
            real_ip_header: FORWARDED_FOR.to_owned(),
        }
    }
}

/// The identity headers of one request. First occurrence wins, except
/// where noted; names are compared ASCII-case-insensitively.
#[derive(Clone, Debug, Default)]
pub struct IdentityHeaders<'h> {
    /// The headers up to the last `X-Forwarded-For` line.
    forwarded_for_lines: &'h [httparse::Header<'h>],
    /// The headers up to the last line of the configured real-IP header.
    real_ip_header_lines: &'h [httparse::Header<'h>],
    /// `Authorization`.
    pub authorization: Option<&'h [u8]>,
    /// Every header named as a Kong key-auth key, in order.
    pub api_keys: SmallVec<[&'h [u8]; 2]>,
    /// `X-Real-IP`.
    pub real_ip: Option<&'h [u8]>,
    /// `X-Consumer-Username`.
    pub consumer_username: Option<&'h [u8]>,
    /// `X-Consumer-ID`.
    pub consumer_id: Option<&'h [u8]>,
    /// `X-Credential-Identifier`.
    pub credential_identifier: Option<&'h [u8]>,
    /// `X-Anonymous-Consumer: true` was present.
    pub anonymous: bool,
}

impl<'h> IdentityHeaders<'h> {
    /// Whether any of the headers Kong sets after authentication
    /// (consumer, credential, anonymous) is present.
    pub fn claims_consumer(&self) -> bool {
        self.consumer_username.is_some()
            || self.consumer_id.is_some()
            || self.credential_identifier.is_some()
            || self.anonymous
    }

    /// Takes header `all[at]`, whose name is `known` (see
    /// [`field_name::known`]), if identity reads it; true if it did.
    /// `names` must be [`HeaderNames::lowercased`] (what
    /// [`crate::identity::Resolver::header_names`] gives).
    #[inline]
    pub fn note(
        &mut self,
        all: &'h [httparse::Header<'h>],
        at: usize,
        known: Option<Known>,
        names: &HeaderNames,
    ) -> bool {
        let Some(h) = all.get(at) else { return false };
        let is = |n: &str| field_name::is(h.name.as_bytes(), n.as_bytes());
        let mut taken = false;
        if is(&names.real_ip_header) {
            self.real_ip_header_lines = &all[..=at];
            taken = true;
        }
        if let Some(known) = known
            && self.note_fixed(all, at, known)
        {
            return true;
        }
        if names.key_names.iter().any(|k| is(k)) {
            self.api_keys.push(h.value);
            return true;
        }
        taken
    }

    /// Takes header `all[at]`, named `known`, if it is one of the fixed
    /// names identity reads; true if it did.
    fn note_fixed(&mut self, all: &'h [httparse::Header<'h>], at: usize, known: Known) -> bool {
        let value = all[at].value;
        let slot = match known {
            Known::Authorization => &mut self.authorization,
            Known::ForwardedFor => {
                self.forwarded_for_lines = &all[..=at];
                return true;
            }
            Known::RealIp => &mut self.real_ip,
            Known::ConsumerUsername => &mut self.consumer_username,
            Known::ConsumerId => &mut self.consumer_id,
            Known::CredentialIdentifier => &mut self.credential_identifier,
            Known::AnonymousConsumer => {
                self.anonymous |= value.trim_ascii().eq_ignore_ascii_case(b"true");
                return true;
            }
            _ => return false,
        };
        slot.get_or_insert(value);
        true
    }

    /// The values of header `name` among the lines kept for it (the
    /// configured real-IP header, or `X-Forwarded-For`), last line first.
    fn lines<'n>(
        lines: &'h [httparse::Header<'h>],
        name: &'n str,
    ) -> impl Iterator<Item = &'h [u8]> + use<'h, 'n> {
        lines
            .iter()
            .rev()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The configured real-IP header's values, last line first.
    pub fn real_ip_header<'n>(
        &self,
        names: &'n HeaderNames,
    ) -> impl Iterator<Item = &'h [u8]> + use<'h, 'n> {
        Self::lines(self.real_ip_header_lines, &names.real_ip_header)
    }

    /// The `X-Forwarded-For` values, last line first.
    pub fn forwarded_for(&self) -> impl Iterator<Item = &'h [u8]> + use<'h> {
        Self::lines(self.forwarded_for_lines, FORWARDED_FOR)
    }
}
