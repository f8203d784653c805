//! A token bucket for `--eviction-rate-limit` / `--eviction-rate-burst`
//! (upstream's semantics: a rate of 0 or less disables the limit). Time is
//! passed in, so the arithmetic is tested without sleeping.

use std::time::{Duration, Instant};

/// Token bucket: `rate` tokens per second, at most `burst` stored.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl RateLimiter {
    /// A limiter; `rate <= 0` (or not finite) means unlimited. The bucket
    /// starts full.
    #[must_use]
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimiter {
            rate: if rate.is_finite() { rate } else { 0.0 },
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// True when no limit applies.
    #[must_use]
    pub fn unlimited(&self) -> bool {
        self.rate <= 0.0
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        }
        self.last = Some(now);
    }

    /// Takes a token if one is there; otherwise says how long until one is.
    ///
    /// # Errors
    /// The wait until the next token (nothing is taken).
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        if self.unlimited() {
            return Ok(());
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(2.0, 3);
        for _ in 0..3 {
            assert_eq!(l.try_acquire(t0), Ok(()));
        }
        let wait = l.try_acquire(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(l.try_acquire(t0 + Duration::from_millis(499)).is_err());
        assert_eq!(l.try_acquire(t0 + Duration::from_millis(500)), Ok(()));
        // Long idle refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(l.try_acquire(later), Ok(()));
        }
        assert!(l.try_acquire(later).is_err());
    }

    #[rstest::rstest]
    #[case(0.0)]
    #[case(-1.0)]
    #[case(f64::NAN)]
    fn zero_or_negative_rate_is_unlimited(#[case] rate: f64) {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(rate, 1);
        assert!(l.unlimited());
        for _ in 0..1000 {
            assert_eq!(l.try_acquire(t0), Ok(()));
        }
    }
}
