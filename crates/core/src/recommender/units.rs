//! Conversions between float estimates and integer amounts (millicores,
//! bytes), with upstream's rules: truncate, negatives → 0, cap at 1e14.

use super::options::MAX_RESOURCE_AMOUNT;

/// A float amount as an integer: truncated, negative or NaN → 0, capped at 1e14.
#[must_use]
#[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)] // truncation is the rule
pub fn amount_from_float(amount: f64) -> i64 {
    if amount.is_nan() || amount < 0.0 {
        0
    } else if amount > MAX_RESOURCE_AMOUNT as f64 {
        MAX_RESOURCE_AMOUNT
    } else {
        amount as i64
    }
}

/// Cores → millicores.
#[must_use]
pub fn cpu_amount_from_cores(cores: f64) -> i64 {
    amount_from_float(cores * 1000.0)
}

/// Millicores → cores.
#[must_use]
#[allow(clippy::cast_precision_loss)] // amounts ≤ 1e14 are exact
pub fn cores_from_cpu_amount(millis: i64) -> f64 {
    millis as f64 / 1000.0
}

/// Bytes (float) → bytes.
#[must_use]
pub fn memory_amount_from_bytes(bytes: f64) -> i64 {
    amount_from_float(bytes)
}

/// An amount multiplied by a factor, converted back with [`amount_from_float`].
#[must_use]
#[allow(clippy::cast_precision_loss)] // amounts ≤ 1e14 are exact
pub fn scale_amount(amount: i64, factor: f64) -> i64 {
    amount_from_float(amount as f64 * factor)
}

/// Rounds a positive amount up to a multiple of `unit` (unit ≤ 1 or amount
/// 0 leave it unchanged).
#[must_use]
pub fn round_up_to_multiple(amount: i64, unit: i64) -> i64 {
    if unit <= 1 || amount == 0 {
        return amount;
    }
    let rem = amount.rem_euclid(unit);
    if rem == 0 {
        amount
    } else {
        amount.saturating_add(unit - rem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(3.25, 3250)]
    #[case(0.0015, 1)]
    #[case(0.0009, 0)]
    #[case(-1.0, 0)]
    #[case(f64::NAN, 0)]
    #[case(f64::INFINITY, MAX_RESOURCE_AMOUNT)]
    #[case(1e12, MAX_RESOURCE_AMOUNT)]
    fn cores_to_millis(#[case] cores: f64, #[case] millis: i64) {
        assert_eq!(cpu_amount_from_cores(cores), millis);
    }

    #[rstest]
    #[case(3140, 289.0, 907_460)]
    #[case(1000, 1.15, 1150)]
    #[case(25, 0.5, 12)]
    #[case(10, f64::INFINITY, MAX_RESOURCE_AMOUNT)]
    #[case(10, -2.0, 0)]
    fn scaling_truncates(#[case] amount: i64, #[case] factor: f64, #[case] expected: i64) {
        assert_eq!(scale_amount(amount, factor), expected);
    }

    #[rstest]
    #[case(1234, 1, 1234)]
    #[case(1234, 100, 1300)]
    #[case(1300, 100, 1300)]
    #[case(0, 100, 0)]
    #[case(1, 1000, 1000)]
    fn rounding_up(#[case] amount: i64, #[case] unit: i64, #[case] expected: i64) {
        assert_eq!(round_up_to_multiple(amount, unit), expected);
    }
}
