//! A byte-rate limit for background work (healing), so that foreground traffic keeps most of
//! the disks and the network.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Spends bytes at no more than a fixed rate on average: each call waits until the bytes it
/// spends fit under the rate since the throttle was (re)started. Idle time is not saved up
/// beyond one second, so a quiet healer does not burst later.
pub(crate) struct Throttle {
    rate: u64,
    /// When the bytes spent so far would be "paid for".
    next_free: Mutex<Instant>,
}

impl Throttle {
    /// A throttle of `rate` bytes per second (at least 1).
    pub fn new(rate: u64) -> Self {
        Self {
            rate: rate.max(1),
            next_free: Mutex::new(Instant::now()),
        }
    }

    /// Waits until `bytes` may be spent.
    pub async fn spend(&self, bytes: u64) {
        let wait_until = {
            let mut next = self.next_free.lock().await;
            let now = Instant::now();
            let floor = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
            let start = (*next).max(floor);
            let cost = Duration::from_secs_f64(bytes as f64 / self.rate as f64);
            *next = start + cost;
            start
        };
        tokio::time::sleep_until(wait_until).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spending_is_held_to_the_rate() {
        let t = Throttle::new(1000);
        let start = Instant::now();
        // 30 spends of 100 bytes at 1000 B/s: the 30th may start after 2.9 s.
        for _ in 0..30 {
            t.spend(100).await;
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(2_850), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(2_950), "{elapsed:?}");
        // After a long idle spell only one second of allowance is saved up.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let idle_end = Instant::now();
        for _ in 0..20 {
            t.spend(100).await;
        }
        let burst = idle_end.elapsed();
        assert!(burst >= Duration::from_millis(850), "{burst:?}");
        assert!(burst <= Duration::from_millis(950), "{burst:?}");
    }
}
