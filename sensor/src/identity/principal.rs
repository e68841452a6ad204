//! The non-secret name of who made a request, and where that name came
//! from. A name a client sends is a claim; only Kong's consumer on the
//! upstream leg was authenticated.

use serde::{Deserialize, Serialize};

use crate::text::{Field, render};

/// Where a principal's name came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalSource {
    /// Kong's authenticated consumer (`X-Consumer-Username`, else
    /// `X-Consumer-ID`), read only on flows a Kong node opened.
    KongConsumer,
    /// The user-id of `Authorization: Basic` (RFC 7617): a claim until Kong
    /// accepts it.
    BasicUser,
    /// The `sub` claim of a JWT (RFC 7519), read without verifying the
    /// signature: anyone can forge it.
    JwtSubUnverified,
    /// The `username` of `Authorization: Digest` (RFC 7616): a claim.
    DigestUser,
}

impl PrincipalSource {
    /// The name in outputs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KongConsumer => "kong_consumer",
            Self::BasicUser => "basic_user",
            Self::JwtSubUnverified => "jwt_sub_unverified",
            Self::DigestUser => "digest_user",
        }
    }
}

/// A principal: a name and its provenance. Serializes as two fields,
/// `principal` and `principal_source`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Principal {
    /// The name, lossy UTF-8 of what was on the wire; attacker-chosen
    /// unless `source` is [`PrincipalSource::KongConsumer`], so sinks
    /// escape it.
    #[serde(rename = "principal")]
    pub name: String,
    /// Where it came from.
    #[serde(rename = "principal_source")]
    pub source: PrincipalSource,
}

impl Principal {
    /// A principal named `name` (rendered and capped by
    /// [`crate::text::render`], 256 bytes) from `source`; `None` when the
    /// name is empty.
    pub fn new(name: &[u8], source: PrincipalSource) -> Option<Self> {
        let name = name.trim_ascii();
        (!name.is_empty()).then(|| Self {
            name: render(name, Field::Principal),
            source,
        })
    }
}
