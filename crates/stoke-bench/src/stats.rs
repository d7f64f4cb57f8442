//! The arithmetic of the results, shared by every measure: nearest-rank percentiles, medians,
//! maxima that skip missing values (NaN), and rounding to one decimal. A leaf: it imports
//! nothing of the bench.

use std::time::Duration;

/// The nearest-rank `p`th percentile (0 < p ≤ 100) of sorted samples; `None` when empty.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// The `p`th percentile of sorted durations in microseconds; NaN when there are none.
pub fn percentile_us(sorted: &[Duration], p: f64) -> f64 {
    percentile(sorted, p).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
}

/// `x` to one decimal, so that the JSON shows no float noise.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A duration in microseconds, to one decimal.
pub fn micros(d: Duration) -> f64 {
    round1(d.as_secs_f64() * 1e6)
}

/// The median (the mean of the two middle values for an even count), NaNs left out; NaN when
/// nothing is left.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The largest value, NaNs left out; NaN when nothing is left.
pub fn max(values: impl IntoIterator<Item = f64>) -> f64 {
    values
        .into_iter()
        .filter(|x| !x.is_nan())
        .fold(f64::NAN, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&samples, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&samples, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(
            percentile(&samples, 100.0),
            Some(Duration::from_millis(100))
        );
        assert_eq!(percentile(&samples, 0.1), Some(Duration::from_millis(1)));
    }

    #[test]
    fn percentiles_of_few_samples_pick_a_sample() {
        assert_eq!(percentile::<Duration>(&[], 50.0), None);
        let one = ms(&[7]);
        assert_eq!(percentile(&one, 50.0), Some(Duration::from_millis(7)));
        assert_eq!(percentile(&one, 99.0), Some(Duration::from_millis(7)));
        let three = ms(&[1, 2, 30]);
        assert_eq!(percentile(&three, 50.0), Some(Duration::from_millis(2)));
        assert_eq!(percentile(&three, 99.0), Some(Duration::from_millis(30)));
        assert_eq!(percentile(&[1.5, 2.5], 50.0), Some(1.5));
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median([]).is_nan());
        assert_eq!(median([f64::NAN, 5.0]), 5.0);
    }

    #[test]
    fn maxima_skip_missing_values() {
        assert_eq!(max([1.0, f64::NAN, 3.0]), 3.0);
        assert!(max([]).is_nan());
    }
}
