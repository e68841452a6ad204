//! The one scan of a request's headers: what the transaction, the body
//! framing and identity resolution read, found in a single pass.

use super::message::FramingHeaders;
use crate::field_name::{self, Known};
use crate::identity::{HeaderNames, IdentityHeaders};

/// The request headers the sensor reads. First occurrence wins, except
/// where noted; names are compared ASCII-case-insensitively.
#[derive(Clone, Debug, Default)]
pub struct RequestHeaders<'h> {
    /// `Host`.
    pub host: Option<&'h [u8]>,
    /// `User-Agent`.
    pub user_agent: Option<&'h [u8]>,
    /// `X-Kong-Request-Id` (last occurrence).
    pub kong_request_id: Option<&'h [u8]>,
    /// `X-Request-Id` (last occurrence).
    pub request_id: Option<&'h [u8]>,
    /// `Transfer-Encoding` and `Content-Length`.
    pub framing: FramingHeaders<'h>,
    /// What identity resolution reads.
    pub identity: IdentityHeaders<'h>,
}

impl<'h> RequestHeaders<'h> {
    /// Scans `headers` once; `names` are the identity header names the
    /// configuration chooses.
    pub fn scan(headers: &'h [httparse::Header<'h>], names: &HeaderNames) -> Self {
        let mut f = Self::default();
        for (i, h) in headers.iter().enumerate() {
            let known = field_name::known(h.name.as_bytes());
            if f.framing.note(known, h.value) || f.identity.note(headers, i, known, names) {
                continue;
            }
            match known {
                Some(Known::Host) => _ = f.host.get_or_insert(h.value),
                Some(Known::UserAgent) => _ = f.user_agent.get_or_insert(h.value),
                Some(Known::KongRequestId) => f.kong_request_id = Some(h.value),
                Some(Known::RequestId) => f.request_id = Some(h.value),
                _ => {}
            }
        }
        f
    }

    /// The request id: Kong's `X-Kong-Request-Id`, else `X-Request-Id`.
    pub fn any_request_id(&self) -> Option<&'h [u8]> {
        self.kong_request_id.or(self.request_id)
    }
}

/// The response headers the sensor reads, in one pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResponseHeaders<'h> {
    /// `X-Kong-Request-Id`, else `X-Request-Id` (last occurrence of each).
    pub request_id: Option<&'h [u8]>,
    /// `Transfer-Encoding` and `Content-Length`.
    pub framing: FramingHeaders<'h>,
}

impl<'h> ResponseHeaders<'h> {
    /// Scans `headers` once.
    pub fn scan(headers: &'h [httparse::Header<'h>]) -> Self {
        let mut f = Self::default();
        let mut kong_id = false;
        for h in headers {
            let known = field_name::known(h.name.as_bytes());
            if f.framing.note(known, h.value) {
            } else if known == Some(Known::KongRequestId) {
                f.request_id = Some(h.value);
                kong_id = true;
            } else if known == Some(Known::RequestId) && !kong_id {
                f.request_id = Some(h.value);
            }
        }
        f
    }
}

/// Whether a 101 response's `Upgrade` names `h2c`: the server speaks
/// HTTP/2 from the byte after the head (RFC 7540 section 3.2, kept by RFC
/// 9113 section 3.1's deprecation note; `Upgrade` is a comma-separated
/// protocol list, RFC 9110 section 7.8).
pub fn upgrades_to_h2c(headers: &[httparse::Header<'_>]) -> bool {
    headers
        .iter()
        .filter(|h| field_name::is(h.name.as_bytes(), b"upgrade"))
        .flat_map(|h| h.value.split(|b| *b == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"h2c"))
}
