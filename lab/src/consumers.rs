//! The gateway's consumers: Kong consumers with one key-auth credential each.

/// A Kong consumer with one key-auth credential.
pub struct Consumer {
    /// `X-Consumer-Username`.
    pub username: &'static str,
    /// `X-Consumer-ID`.
    pub id: &'static str,
    /// The API key (a secret: it must never leave the sensor).
    pub key: &'static str,
    /// `X-Credential-Identifier`: the key-auth credential's id.
    pub credential_id: &'static str,
}

/// The gateway's consumers.
pub const CONSUMERS: &[Consumer] = &[
    Consumer {
        username: "alice",
        id: "0b6e7c1a-5c2d-4e8f-9a1b-7d3e6f0a2c4b",
        key: "k9Qf3vXa7LmT2pRw",
        credential_id: "a1c7e6b0-a4b1-4c7e-8f2d-1e9b3c5a7d60",
    },
    Consumer {
        username: "bob",
        id: "1c7f8d2b-5c2d-4e8f-9a1b-7d3e6f0a2c4b",
        key: "Zp4Hq8NcV1sYe6Gu",
        credential_id: "b2d8f7c1-a4b1-4c7e-8f2d-1e9b3c5a7d60",
    },
    Consumer {
        username: "carol",
        id: "2d809e3c-5c2d-4e8f-9a1b-7d3e6f0a2c4b",
        key: "Tn7Bk2WdR5xJm9Lc",
        credential_id: "c3e908d2-a4b1-4c7e-8f2d-1e9b3c5a7d60",
    },
    Consumer {
        username: "dave",
        id: "3e91af4d-5c2d-4e8f-9a1b-7d3e6f0a2c4b",
        key: "Hs3Vy8PqF6aNw1Ke",
        credential_id: "d4fa19e3-a4b1-4c7e-8f2d-1e9b3c5a7d60",
    },
    Consumer {
        username: "erin",
        id: "4fa2b05e-5c2d-4e8f-9a1b-7d3e6f0a2c4b",
        key: "Mc5Rt9ZgL2uDx7Qb",
        credential_id: "e50b2af4-a4b1-4c7e-8f2d-1e9b3c5a7d60",
    },
    Consumer {
        username: "mallory",
        id: "50b3c16f-5c2d-4e8f-9a1b-7d3e6f0a2c4b",
        key: "Wf8Jn4EkS1vPy3Ta",
        credential_id: "f61c3b05-a4b1-4c7e-8f2d-1e9b3c5a7d60",
    },
];

impl Consumer {
    /// The consumer called `username`.
    ///
    /// # Panics
    /// No such consumer (a typo in a scenario).
    pub fn named(username: &str) -> &'static Self {
        CONSUMERS
            .iter()
            .find(|c| c.username == username)
            .unwrap_or_else(|| panic!("no consumer {username}"))
    }

    /// curl's argument for the `apikey` header.
    pub fn header(&self) -> String {
        format!("apikey: {}", self.key)
    }
}

/// Requests per second a consumer may make on `/api/` (Kong's
/// rate-limiting plugin, `second` limit), with as many again in a burst.
pub const RATE_LIMIT_PER_S: u32 = 30;
