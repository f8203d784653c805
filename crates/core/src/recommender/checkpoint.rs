//! The `VerticalPodAutoscalerCheckpoint` status shape (version "v3"), as serde
//! structs whose JSON matches upstream's, with timestamps as RFC 3339 strings
//! (`null` for Go's zero time) and bucket indices as string keys.

use super::Timestamp;
use super::error::RecommenderError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// One histogram in checkpoint form.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistogramCheckpoint {
    /// Reference timestamp of the decaying histogram (Unix seconds).
    #[serde(default, with = "rfc3339_opt")]
    pub reference_timestamp: Option<Timestamp>,
    /// Bucket index → weight scaled so the largest is 10000.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bucket_weights: BTreeMap<i64, u32>,
    /// The histogram's exact total weight.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total_weight: f64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn is_zero_u64(x: &u64) -> bool {
    *x == 0
}

/// `VerticalPodAutoscalerCheckpoint.status`: one container's aggregated state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerCheckpoint {
    /// When the checkpoint was written (Unix seconds), supplied by the caller.
    #[serde(default, with = "rfc3339_opt")]
    pub last_update_time: Option<Timestamp>,
    /// Format version; this code reads and writes "v3".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// CPU usage histogram.
    #[serde(default, rename = "cpuHistogram")]
    pub cpu_histogram: HistogramCheckpoint,
    /// Memory peaks histogram.
    #[serde(default)]
    pub memory_histogram: HistogramCheckpoint,
    /// Start of the first CPU sample.
    #[serde(default, with = "rfc3339_opt")]
    pub first_sample_start: Option<Timestamp>,
    /// Start of the last CPU sample.
    #[serde(default, with = "rfc3339_opt")]
    pub last_sample_start: Option<Timestamp>,
    /// Number of CPU samples aggregated.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub total_samples_count: u64,
}

const DAYS_0000_TO_1970: i64 = 719_468;

// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - DAYS_0000_TO_1970
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + DAYS_0000_TO_1970;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Formats Unix seconds as RFC 3339 in UTC, as Kubernetes writes `metav1.Time`
/// (`2018-01-02T03:04:05Z`).
#[must_use]
pub fn format_rfc3339(t: Timestamp) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Parses an RFC 3339 timestamp (`Z` or `±hh:mm` offset; fractional seconds
/// are truncated) into Unix seconds.
pub fn parse_rfc3339(s: &str) -> Result<Timestamp, RecommenderError> {
    let bad = || RecommenderError::InvalidTimestamp(s.to_owned());
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Result<i64, RecommenderError> {
        let part = b.get(range).ok_or_else(bad)?;
        if part.iter().all(u8::is_ascii_digit) {
            Ok(part
                .iter()
                .fold(0_i64, |acc, c| acc * 10 + i64::from(c - b'0')))
        } else {
            Err(bad())
        }
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let month_len = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if day < 1 || day > month_len || hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return Err(bad());
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return Err(bad()),
    };
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

mod rfc3339_opt {
    use super::{Deserialize, Deserializer, Serializer, Timestamp, format_rfc3339, parse_rfc3339};

    #[allow(clippy::ref_option)] // serde's signature
    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_rfc3339(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        let raw: Option<String> = Option::deserialize(d)?;
        match raw.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => parse_rfc3339(s).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(0, "1970-01-01T00:00:00Z")]
    #[case(1_514_862_245, "2018-01-02T03:04:05Z")]
    #[case(951_782_400, "2000-02-29T00:00:00Z")]
    #[case(-62_135_596_800, "0001-01-01T00:00:00Z")]
    #[case(4_102_444_799, "2099-12-31T23:59:59Z")]
    fn rfc3339_round_trips(#[case] t: Timestamp, #[case] s: &str) {
        assert_eq!(format_rfc3339(t), s);
        assert_eq!(parse_rfc3339(s).unwrap(), t);
    }

    #[rstest]
    #[case("2018-01-02T04:04:05+01:00", 1_514_862_245)]
    #[case("2018-01-02T02:04:05-01:00", 1_514_862_245)]
    #[case("2018-01-02T03:04:05.999999Z", 1_514_862_245)]
    #[case("2018-01-02t03:04:05z", 1_514_862_245)]
    fn rfc3339_accepts_offsets_and_fractions(#[case] s: &str, #[case] t: Timestamp) {
        assert_eq!(parse_rfc3339(s).unwrap(), t);
    }

    #[rstest]
    #[case("")]
    #[case("2018-01-02")]
    #[case("2018-13-02T03:04:05Z")]
    #[case("2018-02-30T03:04:05Z")]
    #[case("2018-01-02T03:04:05")]
    #[case("2018-01-02T03:04:05.Z")]
    #[case("2018-01-02T25:04:05Z")]
    #[case("2018-01-02T03:04:05+0100")]
    #[case("20x8-01-02T03:04:05Z")]
    fn rfc3339_rejects_garbage(#[case] s: &str) {
        let err = parse_rfc3339(s).unwrap_err();
        assert_eq!(err, RecommenderError::InvalidTimestamp(s.to_owned()));
    }

    #[test]
    fn json_shape_matches_upstream() {
        let cp = ContainerCheckpoint {
            last_update_time: Some(1_514_862_245),
            version: "v3".into(),
            cpu_histogram: HistogramCheckpoint {
                reference_timestamp: Some(1_514_851_200),
                bucket_weights: [(3, 10_000), (17, 25)].into_iter().collect(),
                total_weight: 12.5,
            },
            memory_histogram: HistogramCheckpoint::default(),
            first_sample_start: Some(1_514_764_800),
            last_sample_start: None,
            total_samples_count: 42,
        };
        let json = serde_json::to_value(&cp).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "lastUpdateTime": "2018-01-02T03:04:05Z",
                "version": "v3",
                "cpuHistogram": {
                    "referenceTimestamp": "2018-01-02T00:00:00Z",
                    "bucketWeights": {"3": 10000, "17": 25},
                    "totalWeight": 12.5
                },
                "memoryHistogram": {"referenceTimestamp": null},
                "firstSampleStart": "2018-01-01T00:00:00Z",
                "lastSampleStart": null,
                "totalSamplesCount": 42
            })
        );
        let back: ContainerCheckpoint = serde_json::from_value(json).unwrap();
        assert_eq!(back, cp);
    }

    #[test]
    fn json_from_kubernetes_parses() {
        let raw = r#"{"lastUpdateTime":null,"version":"v3",
            "cpuHistogram":{"referenceTimestamp":"2024-05-01T00:00:00Z","bucketWeights":{"0":10000,"12":3},"totalWeight":2.25},
            "memoryHistogram":{"referenceTimestamp":null},
            "firstSampleStart":"2024-04-24T00:01:00Z","lastSampleStart":"2024-04-30T23:59:00Z","totalSamplesCount":10070}"#;
        let cp: ContainerCheckpoint = serde_json::from_str(raw).unwrap();
        assert_eq!(cp.cpu_histogram.bucket_weights.get(&12), Some(&3));
        assert_eq!(cp.memory_histogram.total_weight, 0.0);
        assert_eq!(cp.total_samples_count, 10_070);
        let bad = raw.replace("2024-05-01T00:00:00Z", "yesterday");
        let err = serde_json::from_str::<ContainerCheckpoint>(&bad).unwrap_err();
        assert!(err.to_string().contains("yesterday"), "{err}");
    }
}
