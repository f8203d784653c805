//! Human durations as scenario files and flags write them: `90s`, `5m`,
//! `1h30m`, `7d`, `1w`. Units: `ms` is not accepted (the simulator's clock
//! counts whole seconds); `s`, `m`, `h`, `d` (24h), `w` (7d).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A whole number of seconds, parsed from and printed as `1h30m` style text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub i64);

/// A duration string could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{input}`: {reason} (write e.g. 90s, 5m, 1h30m, 7d)")]
pub struct DurationError {
    /// The text given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Duration {
    /// Seconds.
    #[must_use]
    pub const fn seconds(self) -> i64 {
        self.0
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| DurationError {
            input: s.to_owned(),
            reason,
        };
        let text = s.trim();
        if text.is_empty() {
            return Err(err("it is empty"));
        }
        if text == "0" {
            return Ok(Duration(0));
        }
        let mut total: i64 = 0;
        let mut digits = String::new();
        for c in text.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit: i64 = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 7 * 86_400,
                _ => return Err(err("units are s, m, h, d and w")),
            };
            if digits.is_empty() {
                return Err(err("each unit needs a number before it"));
            }
            let n: i64 = digits.parse().map_err(|_| err("number too large"))?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| err("too long"))?;
            digits.clear();
        }
        if !digits.is_empty() {
            return Err(err("a number lacks its unit"));
        }
        Ok(Duration(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        if rest == 0 {
            return f.write_str("0s");
        }
        if rest < 0 {
            f.write_str("-")?;
            rest = rest.saturating_neg();
        }
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor (not String then parse) so the format can point at the
        // scalar that failed.
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 90s, 5m, 1h30m or 7d")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
                if v == 0 {
                    Ok(Duration(0))
                } else {
                    Err(E::custom(format!(
                        "`{v}` lacks a unit (write e.g. {v}s or {v}m)"
                    )))
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("90s", 90)]
    #[case("5m", 300)]
    #[case("1h30m", 5400)]
    #[case("7d", 604_800)]
    #[case("1w2d", 777_600)]
    #[case("0", 0)]
    #[case(" 15s ", 15)]
    fn parses(#[case] text: &str, #[case] seconds: i64) {
        assert_eq!(text.parse::<Duration>(), Ok(Duration(seconds)));
    }

    #[rstest]
    #[case("", "it is empty")]
    #[case("5", "a number lacks its unit")]
    #[case("5x", "units are s, m, h, d and w")]
    #[case("m", "each unit needs a number before it")]
    #[case("1h30", "a number lacks its unit")]
    #[case("-5m", "units are s, m, h, d and w")]
    #[case("99999999999999999999s", "number too large")]
    #[case("9999999999999999w", "too long")]
    fn rejects(#[case] text: &str, #[case] reason: &str) {
        let err = text.parse::<Duration>().unwrap_err();
        assert_eq!(err.reason, reason);
        assert!(err.to_string().contains(&format!("`{text}`")));
    }

    #[rstest]
    #[case(0, "0s")]
    #[case(5400, "1h30m")]
    #[case(90_061, "1d1h1m1s")]
    fn prints(#[case] seconds: i64, #[case] text: &str) {
        assert_eq!(Duration(seconds).to_string(), text);
        assert_eq!(text.parse::<Duration>(), Ok(Duration(seconds)));
    }
}
