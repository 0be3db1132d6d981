//! The reconnection schedule: 3 s, doubling, with jitter, capped at 30 s; and the spread of a
//! reconnection the server asked for.

/// First delay, in seconds.
pub const BASE_SECONDS: f64 = 3.0;
/// Longest delay, in seconds.
pub const CAP_SECONDS: f64 = 30.0;

/// The delay before reconnection attempt `attempt` (0 for the first), with `random` in `[0, 1)`
/// spreading it by ±20 % so that many clients dropped at once do not return at once.
pub fn delay_seconds(attempt: u32, random: f64) -> f64 {
    let nominal = (BASE_SECONDS * 2f64.powi(attempt.min(10) as i32)).min(CAP_SECONDS);
    (nominal * (0.8 + 0.4 * random.clamp(0.0, 1.0))).min(CAP_SECONDS)
}

/// The longest wait, in milliseconds, before a reconnection the server asked for (`reconnect`).
pub const RECONNECT_SPREAD_MS: f64 = 1000.0;

/// The wait before a reconnection the server asked for, with `random` in `[0, 1)`: every page a
/// store told at once (one that lost its connection mappings) comes back spread over a second,
/// not in the same instant.
pub fn spread_ms(random: f64) -> u64 {
    (RECONNECT_SPREAD_MS * random.clamp(0.0, 1.0)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconnection_asked_for_is_spread_over_a_second() {
        assert_eq!(spread_ms(0.0), 0);
        assert_eq!(spread_ms(0.5), 500);
        assert!(spread_ms(0.999_999) < 1000);
    }

    #[test]
    fn doubles_from_three_seconds_up_to_thirty() {
        let middle: Vec<f64> = (0..6).map(|a| delay_seconds(a, 0.5)).collect();
        assert_eq!(middle, [3.0, 6.0, 12.0, 24.0, 30.0, 30.0]);
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_the_cap() {
        assert!((delay_seconds(0, 0.0) - 2.4).abs() < 1e-9);
        assert!((delay_seconds(0, 0.999_999) - 3.6).abs() < 1e-3);
        assert_eq!(delay_seconds(30, 0.999), 30.0);
    }
}
