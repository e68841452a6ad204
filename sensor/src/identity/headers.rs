//! The request headers identity reads. The HTTP analyzer scans a request's
//! headers once and hands each to [`IdentityHeaders::note`]; what is not an
//! identity header goes on to the analyzer's own fields.

/// `X-Forwarded-For`, lower case.
const FORWARDED_FOR: &str = "x-forwarded-for";

/// The identity headers of one request. First occurrence wins, except
/// where noted; names are compared ASCII-case-insensitively.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdentityHeaders<'h> {
    /// The headers up to the last `X-Forwarded-For` line.
    forwarded_for_lines: &'h [httparse::Header<'h>],
    /// `Authorization`.
    pub authorization: Option<&'h [u8]>,
    /// The first header named as a Kong key-auth key.
    pub api_key: Option<&'h [u8]>,
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
    /// Takes header `all[at]` if identity reads it; true if it did.
    /// `key_names` are Kong key-auth's `key_names`.
    pub fn note(
        &mut self,
        all: &'h [httparse::Header<'h>],
        at: usize,
        key_names: &[String],
    ) -> bool {
        let Some(h) = all.get(at) else { return false };
        let is = |n: &str| h.name.eq_ignore_ascii_case(n);
        let slot = if is("authorization") {
            &mut self.authorization
        } else if is(FORWARDED_FOR) {
            self.forwarded_for_lines = &all[..=at];
            return true;
        } else if is("x-real-ip") {
            &mut self.real_ip
        } else if is("x-consumer-username") {
            &mut self.consumer_username
        } else if is("x-consumer-id") {
            &mut self.consumer_id
        } else if is("x-credential-identifier") {
            &mut self.credential_identifier
        } else if is("x-anonymous-consumer") {
            self.anonymous |= h.value.trim_ascii().eq_ignore_ascii_case(b"true");
            return true;
        } else if key_names.iter().any(|k| is(k)) {
            &mut self.api_key
        } else {
            return false;
        };
        slot.get_or_insert(h.value);
        true
    }

    /// The `X-Forwarded-For` values, last line first.
    pub fn forwarded_for(&self) -> impl Iterator<Item = &'h [u8]> + use<'h> {
        self.forwarded_for_lines
            .iter()
            .rev()
            .filter(|h| h.name.eq_ignore_ascii_case(FORWARDED_FOR))
            .map(|h| h.value)
    }
}
