//! The one retry policy of everything that talks to a store: which failures are worth another
//! attempt, and how long to wait before it. The migration's per-object retries, the signed
//! requests `S3Raw` sends, and (later) the server's clients all use it.
//!
//! Two layers retry, and they must not multiply. `object_store`'s HTTP client retries one
//! request (a 5xx, a dropped connection) a few times quickly: its [`RetryConfig`] is set here,
//! explicitly, instead of its defaults (10 retries over up to 3 minutes per request). Above
//! it, a migration retries a whole object (a read-back that did not match, a request that
//! still failed) with [`BackoffConfig`]. An object thus costs at most
//! `(REQUEST_RETRIES + 1) × max_attempts` requests of each kind, and a dead service is
//! reported within minutes, not hours.

use object_store::{BackoffConfig as RequestBackoff, RetryConfig};
use std::time::Duration;

/// Retries of one HTTP request inside `object_store`'s client.
pub const REQUEST_RETRIES: usize = 3;

/// The retry configuration every `object_store` client of shh is built with.
pub fn request_retry() -> RetryConfig {
    RetryConfig {
        backoff: RequestBackoff {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: REQUEST_RETRIES,
        retry_timeout: Duration::from_secs(60),
    }
}

/// Attempts and waits of an operation retried as a whole (one object of a migration).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct BackoffConfig {
    /// Attempts before the operation fails (1 = no retry).
    pub max_attempts: u32,
    /// The wait before the first retry, at most (jitter takes it down to a quarter).
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

impl BackoffConfig {
    /// The wait before attempt `attempt` (1 = the first retry): doubling from `initial` up to
    /// `max`, jittered into its upper three quarters so that many transfers failing at once
    /// do not come back at once.
    pub fn delay(&self, attempt: u32) -> Duration {
        let cap = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max);
        let ms = cap.as_millis() as u64;
        Duration::from_millis(rand::random_range(ms / 4..=ms.max(1)))
    }

    /// Whether attempt `attempt` (0 = the first) may be followed by another.
    pub fn another_after(&self, attempt: u32) -> bool {
        attempt + 1 < self.max_attempts
    }
}

/// Whether an `object_store` error is worth another attempt: everything but an answer that
/// will not change (missing, exists, refused precondition, permission, bad path or
/// configuration, unsupported), like rclone's `fserrors`.
pub fn retriable(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    !matches!(
        e,
        E::NotFound { .. }
            | E::AlreadyExists { .. }
            | E::Precondition { .. }
            | E::NotModified { .. }
            | E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::PermissionDenied { .. }
            | E::Unauthenticated { .. }
            | E::InvalidPath { .. }
            | E::UnknownConfigurationKey { .. }
    )
}

/// Whether an HTTP answer is worth another attempt: throttling, server errors, and the 400s
/// S3 sends for a stalled upload (`RequestTimeout`) or bytes that did not arrive as sent
/// (`XAmzContentSHA256Mismatch`, `BadDigest`, `IncompleteBody`), which sending again cures.
pub fn retriable_status(status: u16, code: &str) -> bool {
    matches!(status, 408 | 409 | 429)
        || status >= 500
        || (status == 400
            && [
                "RequestTimeout",
                "XAmzContentSHA256Mismatch",
                "BadDigest",
                "IncompleteBody",
            ]
            .iter()
            .any(|c| code.ends_with(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_stay_jittered_below_it() {
        let b = BackoffConfig::default();
        for attempt in 1..20 {
            let cap = (b.initial * (1 << (attempt - 1).min(16))).min(b.max);
            for _ in 0..20 {
                let d = b.delay(attempt);
                assert!(d <= cap && d >= cap / 4, "{attempt}: {d:?} of {cap:?}");
            }
        }
        assert!(b.another_after(4) && !b.another_after(5));
    }

    #[test]
    fn final_answers_are_not_retried_and_outages_are() {
        let gone = object_store::Error::NotFound {
            path: "x".into(),
            source: "no".into(),
        };
        let flaky = object_store::Error::Generic {
            store: "S3",
            source: "connection reset".into(),
        };
        assert!(!retriable(&gone) && retriable(&flaky));
        assert!(retriable_status(503, "") && retriable_status(400, ": RequestTimeout"));
        assert!(!retriable_status(403, ": AccessDenied") && !retriable_status(400, ": Nope"));
    }
}
