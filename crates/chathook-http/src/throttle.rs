//! Throttling of failed credentials (wrong tokens at connect, wrong admin keys): after a few free
//! failures, a source address, or a user, is blocked for a time that doubles with each further failure.
//! A user's block does not lock the user out: an address with no recent failure still has its
//! credential checked, so the right token works from anywhere but the guesser's address. Each key is
//! logged once per window, with the address and the user, never the credential. It knows nothing of
//! what the credential is; callers ask [`Throttle::check`] before checking and report the outcome.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The throttle's settings (`auth.throttle`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Off: every attempt is checked, however many failed before.
    pub enabled: bool,
    /// Failures of one address or user before blocks begin.
    pub free_failures: u32,
    /// The first block, in milliseconds; each further failure doubles it.
    pub base_block_ms: u64,
    /// The longest block, in milliseconds.
    pub max_block_ms: u64,
    /// A key with no failure for this long starts again from zero, in milliseconds.
    pub forget_after_ms: u64,
    /// Keys tracked at most (addresses and users together); beyond, failures of new keys are not
    /// counted until old ones are forgotten.
    pub max_keys: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            enabled: true,
            free_failures: 5,
            base_block_ms: 500,
            max_block_ms: 60_000,
            forget_after_ms: 600_000,
            max_keys: 100_000,
        }
    }
}

/// Who failed: an address, or a user (at any address).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Address(IpAddr),
    User(String),
}

/// One key's recent failures.
#[derive(Debug, Clone, Copy)]
struct Failures {
    /// Failures since the key was last forgotten.
    count: u32,
    /// The latest failure (the key is forgotten `forget_after` later).
    last: Instant,
    /// Attempts before this are refused unchecked.
    blocked_until: Option<Instant>,
    /// Whether this window's first block was logged.
    logged: bool,
}

/// The verdict before a credential is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the credential.
    Check,
    /// Refuse without checking; try again after this long.
    Blocked(Duration),
}

/// Failed-credential counts by address and user.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    keys: Mutex<HashMap<Key, Failures>>,
    /// Whether `keys` may hold anything: while no credential has failed, checks take no lock.
    any: AtomicBool,
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Throttle {
        Throttle {
            config,
            keys: Mutex::default(),
            any: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Failures>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an attempt from `ip` (for `user`, when it names one) may be checked. A blocked address
    /// is refused; a blocked user is refused only from an address that has failed recently.
    pub fn check(&self, ip: IpAddr, user: Option<&str>) -> Verdict {
        if !self.any.load(Ordering::Acquire) {
            return Verdict::Check;
        }
        let now = Instant::now();
        let keys = self.lock();
        let left = |key: &Key| {
            keys.get(key)
                .and_then(|f| f.blocked_until)
                .and_then(|until| until.checked_duration_since(now))
                .filter(|d| !d.is_zero())
        };
        if let Some(wait) = left(&Key::Address(ip)) {
            return Verdict::Blocked(wait);
        }
        let address_failed = keys
            .get(&Key::Address(ip))
            .is_some_and(|f| f.count > 0 && !self.forgotten(f, now));
        match user.map(|u| left(&Key::User(u.to_string()))) {
            Some(Some(wait)) if address_failed => Verdict::Blocked(wait),
            _ => Verdict::Check,
        }
    }

    /// A credential from `ip` (for `user`) was wrong.
    pub fn failed(&self, ip: IpAddr, user: Option<&str>) {
        if !self.config.enabled {
            return;
        }
        let now = Instant::now();
        let mut keys = self.lock();
        self.any.store(true, Ordering::Release);
        if keys.len() >= self.config.max_keys {
            keys.retain(|_, f| !self.forgotten(f, now));
        }
        let mut count = |key: Key| {
            if keys.len() >= self.config.max_keys && !keys.contains_key(&key) {
                return;
            }
            let f = keys.entry(key.clone()).or_insert(Failures {
                count: 0,
                last: now,
                blocked_until: None,
                logged: false,
            });
            if self.forgotten(f, now) {
                *f = Failures {
                    count: 0,
                    last: now,
                    blocked_until: None,
                    logged: false,
                };
            }
            f.count += 1;
            f.last = now;
            if let Some(block) = self.block_for(f.count) {
                f.blocked_until = Some(now + block);
                if !f.logged {
                    f.logged = true;
                    log_block(&key, ip, f.count, block);
                }
            }
        };
        count(Key::Address(ip));
        if let Some(user) = user {
            count(Key::User(user.to_string()));
        }
    }

    /// A credential from `ip` was right: the address's failures are forgotten (a user's stay, so a
    /// guesser elsewhere stays blocked).
    pub fn succeeded(&self, ip: IpAddr) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut keys = self.lock();
        keys.remove(&Key::Address(ip));
        if keys.is_empty() {
            self.any.store(false, Ordering::Release);
        }
    }

    fn forgotten(&self, f: &Failures, now: Instant) -> bool {
        now.duration_since(f.last) >= Duration::from_millis(self.config.forget_after_ms)
    }

    /// The block after the `count`th failure: none within the free ones, then doubling up to the cap.
    fn block_for(&self, count: u32) -> Option<Duration> {
        let over = count.checked_sub(self.config.free_failures)?.checked_sub(1);
        let over = over?.min(30);
        let ms = self
            .config
            .base_block_ms
            .saturating_mul(1 << over)
            .min(self.config.max_block_ms);
        Some(Duration::from_millis(ms))
    }
}

fn log_block(key: &Key, ip: IpAddr, failures: u32, block: Duration) {
    match key {
        Key::Address(_) => tracing::warn!(
            %ip,
            failures,
            block_ms = block.as_millis() as u64,
            "repeated wrong credentials from this address: attempts from it are refused for a while (auth.throttle)"
        ),
        Key::User(uid) => tracing::warn!(
            %ip,
            uid = %uid,
            failures,
            block_ms = block.as_millis() as u64,
            "repeated wrong tokens for this user: attempts from failing addresses are refused for a while (auth.throttle)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(ThrottleConfig {
            free_failures: 2,
            base_block_ms: 1_000,
            max_block_ms: 4_000,
            ..ThrottleConfig::default()
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn blocked_for(verdict: Verdict) -> u128 {
        match verdict {
            Verdict::Blocked(d) => d.as_millis(),
            Verdict::Check => 0,
        }
    }

    #[test]
    fn free_failures_pass_then_blocks_double_up_to_the_cap() {
        let t = throttle();
        let a = ip("10.0.0.1");
        for _ in 0..2 {
            t.failed(a, None);
            assert_eq!(t.check(a, None), Verdict::Check);
        }
        let mut blocks = Vec::new();
        for _ in 0..4 {
            t.failed(a, None);
            blocks.push(blocked_for(t.check(a, None)));
        }
        for (got, want) in blocks.iter().zip([1_000u128, 2_000, 4_000, 4_000]) {
            assert!(*got <= want && *got > want - 200, "{blocks:?}");
        }
        // Another address is not affected.
        assert_eq!(t.check(ip("10.0.0.2"), None), Verdict::Check);
    }

    #[test]
    fn a_blocked_user_is_still_checked_from_an_address_that_has_not_failed() {
        let t = throttle();
        let guesser = ip("10.0.0.66");
        for _ in 0..3 {
            t.failed(guesser, Some("alice"));
        }
        assert!(matches!(t.check(guesser, Some("bob")), Verdict::Blocked(_)));
        // The user is blocked, but alice's own phone, which never failed, is checked.
        assert_eq!(t.check(ip("10.0.0.7"), Some("alice")), Verdict::Check);
        // An address that failed (for anyone) and is not blocked itself is refused for alice.
        let other = ip("10.0.0.8");
        t.failed(other, Some("carol"));
        assert!(matches!(t.check(other, Some("alice")), Verdict::Blocked(_)));
        assert_eq!(t.check(other, Some("carol")), Verdict::Check);
    }

    #[test]
    fn a_right_credential_clears_its_address() {
        let t = throttle();
        let a = ip("10.0.0.1");
        for _ in 0..2 {
            t.failed(a, None);
        }
        t.succeeded(a);
        t.failed(a, None);
        assert_eq!(t.check(a, None), Verdict::Check);
    }

    #[test]
    fn tracked_keys_are_bounded() {
        let t = Throttle::new(ThrottleConfig {
            max_keys: 10,
            ..ThrottleConfig::default()
        });
        for i in 0..100u8 {
            t.failed(IpAddr::from([10, 0, 1, i]), Some(&format!("u{i}")));
        }
        assert!(t.lock().len() <= 10);
    }
}
