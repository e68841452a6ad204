//! HTTP basic authentication (RFC 7617) against the web config's bcrypt
//! hashes, as the Prometheus exporter-toolkit does it: one bcrypt at a
//! time, off the runtime's thread, and each (user, hash, password)
//! verdict remembered so a scrape every few seconds costs one bcrypt, not
//! one per scrape.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use headers::{Authorization, HeaderMapExt as _, authorization::Basic};
use hyper::{HeaderMap, header::AUTHORIZATION};
use tokio::sync::Mutex as AsyncMutex;

/// Verdicts remembered; past it the memory is cleared.
const REMEMBERED: usize = 256;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` header.
    NoCredentials,
    /// A header that is not Basic, an unknown user or a wrong password.
    BadCredentials,
}

impl Refusal {
    /// The `reason` label of `siem_sensor_metrics_auth_failures_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::NoCredentials => "no_credentials",
            Self::BadCredentials => "bad_credentials",
        }
    }
}

/// Checks basic-auth credentials, remembering verdicts.
pub struct BasicAuth {
    /// Keys the verdict memory, so it holds no password.
    key: [u8; 32],
    /// keyed BLAKE3 of (user, hash, password) → whether they match.
    verdicts: Mutex<HashMap<[u8; 32], bool>>,
    /// Held while a bcrypt runs: one at a time, as bcrypt is meant to be slow.
    bcrypt: AsyncMutex<()>,
}

impl BasicAuth {
    /// An empty verdict memory under a fresh random key.
    ///
    /// # Errors
    /// The system's random source failed.
    pub fn new() -> Result<Self, getrandom::Error> {
        let mut key = [0; 32];
        getrandom::fill(&mut key)?;
        Ok(Self {
            key,
            verdicts: Mutex::new(HashMap::new()),
            bcrypt: AsyncMutex::new(()),
        })
    }

    /// Whether `headers` carry the credentials of one of `users` (name →
    /// bcrypt hash; none means none required). An unknown user is checked
    /// against another user's hash, so timing does not tell which names
    /// exist.
    pub async fn check(
        &self,
        users: &BTreeMap<String, String>,
        headers: &HeaderMap,
    ) -> Result<(), Refusal> {
        let Some(any_hash) = users.values().next() else {
            return Ok(());
        };
        if !headers.contains_key(AUTHORIZATION) {
            return Err(Refusal::NoCredentials);
        }
        let Some(Authorization(basic)) = headers.typed_get::<Authorization<Basic>>() else {
            return Err(Refusal::BadCredentials);
        };
        let (user, password) = (basic.username(), basic.password());
        let known = users.get(user);
        let hash = known.unwrap_or(any_hash).clone();
        let id = self.id(user, &hash, password);
        let remembered = self.lock().get(&id).copied();
        let matches = match remembered {
            Some(m) => m,
            None => {
                let _one = self.bcrypt.lock().await;
                let password = password.to_owned();
                let m = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
                    .await
                    .is_ok_and(|r| r.unwrap_or(false));
                let mut verdicts = self.lock();
                if verdicts.len() >= REMEMBERED {
                    verdicts.clear();
                }
                verdicts.insert(id, m);
                m
            }
        };
        if matches && known.is_some() {
            Ok(())
        } else {
            Err(Refusal::BadCredentials)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], bool>> {
        self.verdicts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The memory's key for a verdict: each part length-prefixed, so no two
    /// triples share one.
    fn id(&self, user: &str, hash: &str, password: &str) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        for part in [user, hash, password] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        *h.finalize().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn headers(value: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = value {
            h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn basic(user: &str, password: &str) -> String {
        use base64::Engine as _;
        let pair = format!("{user}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    #[tokio::test]
    async fn verifies_bcrypt_and_remembers_verdicts() {
        let auth = BasicAuth::new().unwrap();
        let users: BTreeMap<_, _> = [
            ("alice".to_string(), bcrypt::hash("right", 4).unwrap()),
            ("bob".to_string(), bcrypt::hash("other", 4).unwrap()),
        ]
        .into();
        let ok = headers(Some(&basic("alice", "right")));
        assert_eq!(auth.check(&users, &ok).await, Ok(()));
        assert_eq!(auth.check(&users, &ok).await, Ok(()));
        assert_eq!(auth.lock().len(), 1);
        for (h, refusal) in [
            (headers(None), Refusal::NoCredentials),
            (
                headers(Some(&basic("alice", "wrong"))),
                Refusal::BadCredentials,
            ),
            (
                headers(Some(&basic("bob", "right"))),
                Refusal::BadCredentials,
            ),
            // A name that does not exist is checked against a real hash (here
            // alice's): refused even with the password that hash matches.
            (
                headers(Some(&basic("eve", "other"))),
                Refusal::BadCredentials,
            ),
            (
                headers(Some(&basic("eve", "right"))),
                Refusal::BadCredentials,
            ),
            (headers(Some("Bearer abc")), Refusal::BadCredentials),
            (headers(Some("Basic !!!")), Refusal::BadCredentials),
        ] {
            assert_eq!(auth.check(&users, &h).await, Err(refusal));
        }
        assert_eq!(auth.check(&BTreeMap::new(), &headers(None)).await, Ok(()));
    }
}
