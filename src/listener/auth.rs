//! `basic_auth_users`: checks `Authorization: Basic` against bcrypt hashes.
//!
//! bcrypt is slow on purpose (cost 10 is tens of milliseconds), so:
//! - a check runs on a blocking thread, never on the async workers;
//! - at most [`MAX_BCRYPT_AT_ONCE`] checks run at a time, and a request that cannot start one
//!   within [`BCRYPT_WAIT`] gets 429: a flood of wrong passwords costs a bounded share of the CPU;
//! - a successful check is cached (as exporter-toolkit does) under an HMAC-SHA256 of user, hash
//!   and password with a key drawn at start, so a burst of pushes with the same credentials costs
//!   one bcrypt, the cache holds no password, and a changed hash (a reload) misses the cache;
//! - an unknown user is checked against a dummy hash, so the answer's timing does not tell which
//!   users exist.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use http::HeaderMap;
use tokio::sync::Semaphore;

use crate::config::PasswordHash;

/// bcrypt checks running at once, at most.
pub(super) const MAX_BCRYPT_AT_ONCE: usize = 4;
/// How long a request waits for a bcrypt slot before 429.
pub(super) const BCRYPT_WAIT: Duration = Duration::from_secs(5);
/// Cached successful checks, at most; the cache starts over when full.
const MAX_CACHED: usize = 1024;
/// A cost-10 bcrypt hash of a random string, checked for unknown users.
const DUMMY_HASH: &str = "$2b$10$MUyl5dc5e.HrAFAG54.F9upvZmI4OXrAQzEZt9EB9dYmcX584shOO";

/// How a request's credentials fared.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// A known user with the right password.
    Allowed,
    /// No `Authorization: Basic`, an unknown user or a wrong password: 401.
    Denied,
    /// Too many bcrypt checks already running for too long: 429.
    Busy,
}

/// The users of one web config, with the cache of their successful checks.
pub(super) struct Users {
    users: BTreeMap<String, PasswordHash>,
    cache: Mutex<HashSet<[u8; 32]>>,
    key: ring::hmac::Key,
    slots: Arc<Semaphore>,
    /// How long a check waits for a slot ([`BCRYPT_WAIT`]).
    wait: Duration,
}

impl Users {
    /// `slots` bounds bcrypt work across reloads (the same semaphore for every `Users`).
    pub(super) fn new(
        users: BTreeMap<String, PasswordHash>,
        slots: Arc<Semaphore>,
    ) -> Result<Users, ring::error::Unspecified> {
        let rng = ring::rand::SystemRandom::new();
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)?;
        Ok(Users {
            users,
            cache: Mutex::new(HashSet::new()),
            key,
            slots,
            wait: BCRYPT_WAIT,
        })
    }

    /// Checks the request's `Authorization` header.
    pub(super) async fn check(&self, headers: &HeaderMap) -> Verdict {
        let Some((user, password)) = basic_credentials(headers) else {
            return Verdict::Denied;
        };
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.expose().to_owned(), true),
            None => (DUMMY_HASH.to_owned(), false),
        };
        let tag = self.tag(&user, &hash, &password);
        if known
            && self
                .cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&tag)
        {
            return Verdict::Allowed;
        }
        let Ok(Ok(permit)) =
            tokio::time::timeout(self.wait, Arc::clone(&self.slots).acquire_owned()).await
        else {
            return Verdict::Busy;
        };
        let matched = tokio::task::spawn_blocking(move || {
            let ok = bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false);
            drop(permit);
            ok
        })
        .await
        .unwrap_or(false);
        if !(matched && known) {
            return Verdict::Denied;
        }
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(tag);
        Verdict::Allowed
    }

    fn tag(&self, user: &str, hash: &str, password: &str) -> [u8; 32] {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        for part in [user, hash, password] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part.as_bytes());
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

/// User and password of an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(pairs: &[(&str, &str)]) -> Users {
        let map = pairs
            .iter()
            .map(|(u, p)| {
                let hash = bcrypt::hash(p, 4).expect("hash");
                ((*u).to_owned(), hash.parse().expect("a bcrypt hash"))
            })
            .collect();
        Users::new(map, Arc::new(Semaphore::new(MAX_BCRYPT_AT_ONCE))).expect("random key")
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        h.insert(
            http::header::AUTHORIZATION,
            format!("Basic {token}").parse().expect("header"),
        );
        h
    }

    #[test]
    fn the_dummy_hash_is_a_cost_10_bcrypt_hash() {
        let parts: bcrypt::HashParts = DUMMY_HASH.parse().expect("bcrypt");
        assert_eq!(parts.get_cost(), 10);
    }

    #[tokio::test]
    async fn the_right_password_is_allowed_and_wrong_or_missing_ones_denied() {
        let u = users(&[("prometheus", "s3cret")]);
        assert_eq!(
            u.check(&basic("prometheus", "s3cret")).await,
            Verdict::Allowed
        );
        assert_eq!(
            u.check(&basic("prometheus", "wrong")).await,
            Verdict::Denied
        );
        assert_eq!(u.check(&basic("nobody", "s3cret")).await, Verdict::Denied);
        assert_eq!(u.check(&HeaderMap::new()).await, Verdict::Denied);
    }

    #[tokio::test]
    async fn a_successful_check_is_cached_and_a_wrong_one_is_not() {
        let u = users(&[("prometheus", "s3cret")]);
        assert_eq!(
            u.check(&basic("prometheus", "s3cret")).await,
            Verdict::Allowed
        );
        assert_eq!(u.check(&basic("prometheus", "nope")).await, Verdict::Denied);
        let cache = u.cache.lock().expect("cache");
        assert_eq!(cache.len(), 1, "only the successful check is cached");
        assert!(cache.contains(&u.tag("prometheus", u.users["prometheus"].expose(), "s3cret")));
    }

    #[tokio::test]
    async fn with_every_bcrypt_slot_taken_a_check_waits_then_is_busy() {
        let slots = Arc::new(Semaphore::new(1));
        let mut u = Users::new(BTreeMap::new(), Arc::clone(&slots)).expect("key");
        u.wait = Duration::from_millis(50);
        let _held = Arc::clone(&slots).acquire_owned().await.expect("slot");
        assert_eq!(u.check(&basic("x", "y")).await, Verdict::Busy);
    }
}
