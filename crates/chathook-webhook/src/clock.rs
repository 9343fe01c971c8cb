//! The wall clock every stamp of this crate reads (attempts, health, rotations, stats windows, hook
//! requests): unix milliseconds, in one place.

/// Now, in unix milliseconds (0 if the system clock is before 1970).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
