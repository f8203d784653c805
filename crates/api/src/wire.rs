//! Serde and schema helpers that keep upstream objects byte-for-byte
//! equivalent when they pass through our types.

use schemars::{Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serializer};
use std::collections::BTreeMap;

/// Declares a string enum that upstream's CRD validates with `enum:`.
///
/// Values this version does not know deserialize into `Unknown(text)` and
/// serialize back unchanged, so one object written by a newer upstream (or a
/// CRD without validation) cannot stall a watch; conversion to core types
/// reports it as an error naming the field.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this version of Tailor does not know, kept as written.
            Unknown(String),
        }

        impl $name {
            /// The values upstream's CRD allows, in upstream's order.
            pub const KNOWN: &'static [&'static str] = &[$($text),+];

            /// The value as written on the wire.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )+
                    Self::Unknown(text) => text,
                }
            }

            /// Reads a wire value; unknown text becomes `Unknown`.
            #[must_use]
            pub fn from_wire(text: &str) -> Self {
                match text {
                    $( $text => Self::$variant, )+
                    other => Self::Unknown(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Ok(Self::from_wire(&text))
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "enum": Self::KNOWN })
            }
        }
    };
}
pub(crate) use string_enum;

/// Deserializes a field that may be absent, `null`, or a value into
/// `None`, `Some(None)` and `Some(Some(v))`, so `null` survives a round trip.
///
/// Upstream writes zero `metav1.Time` fields as `null` (its CRD marks them
/// `nullable`), and a reader must not turn that into an absent field.
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A histogram bucket index read from a map key: JSON writes it as a string
/// (`"12"`), YAML may have it bare (`12`).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct BucketIndex(u32);

impl<'de> Deserialize<'de> for BucketIndex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = BucketIndex;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a bucket index (a non-negative integer, possibly as a string)")
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<BucketIndex, E> {
                u32::try_from(v)
                    .map(BucketIndex)
                    .map_err(|_| E::custom(format!("bucket index {v} is out of range")))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<BucketIndex, E> {
                u32::try_from(v)
                    .map(BucketIndex)
                    .map_err(|_| E::custom(format!("bucket index {v} is out of range")))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<BucketIndex, E> {
                v.parse()
                    .map(BucketIndex)
                    .map_err(|_| E::custom(format!("bucket index {v:?} is not a u32")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Reads `bucketWeights` whose keys are string or integer bucket indices.
pub(crate) fn bucket_weights<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<u32, u32>>, D::Error> {
    let raw = Option::<BTreeMap<BucketIndex, u32>>::deserialize(d)?;
    Ok(raw.map(|m| m.into_iter().map(|(k, v)| (k.0, v)).collect()))
}

/// Schema of a nullable RFC 3339 timestamp, as upstream declares it.
pub(crate) fn nullable_time_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "date-time", "nullable": true })
}

/// Schema of a free-form object kept as written (`bucketWeights`).
pub(crate) fn preserved_object_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// Largest magnitude below which every integral `f64` is an exact `i64`.
const EXACT_I64: f64 = 9_007_199_254_740_992.0; // 2^53

/// Writes an optional float the way Go's `encoding/json` does for integral
/// values (`10`, not `10.0`), so `totalWeight: 10` round-trips unchanged.
pub(crate) fn go_float<S: Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match *value {
        None => s.serialize_none(),
        Some(v) if v.fract() == 0.0 && v.abs() < EXACT_I64 => {
            // Exact: |v| < 2^53 and integral, so the cast loses nothing.
            #[allow(clippy::cast_possible_truncation)]
            let int = v as i64;
            s.serialize_i64(int)
        }
        Some(v) => s.serialize_f64(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Probe {
        #[serde(
            default,
            deserialize_with = "nullable",
            skip_serializing_if = "Option::is_none"
        )]
        at: Option<Option<String>>,
        #[serde(
            default,
            serialize_with = "go_float",
            skip_serializing_if = "Option::is_none"
        )]
        weight: Option<f64>,
    }

    #[rstest::rstest]
    #[case(r#"{}"#)]
    #[case(r#"{"at":null}"#)]
    #[case(r#"{"at":"x"}"#)]
    #[case(r#"{"weight":10}"#)]
    #[case(r#"{"weight":0}"#)]
    #[case(r#"{"weight":-3}"#)]
    #[case(r#"{"weight":1.5}"#)]
    #[case(r#"{"weight":1e300}"#)]
    fn probe_round_trips(#[case] json: &str) {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let probe: Probe = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(serde_json::to_value(&probe).unwrap(), value);
    }

    string_enum! {
        /// Test enum.
        pub enum Colour {
            /// Red.
            Red => "Red",
            /// Off, which YAML 1.1 would read as false unless quoted.
            Off => "Off",
        }
    }

    #[derive(Deserialize)]
    struct Weights {
        #[serde(deserialize_with = "bucket_weights")]
        w: Option<BTreeMap<u32, u32>>,
    }

    #[rstest::rstest]
    #[case("w: {\"0\": 5, \"12\": 7}")]
    #[case("w: {0: 5, 12: 7}")]
    fn bucket_keys_as_strings_or_integers(#[case] yaml: &str) {
        let w: Weights = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(w.w, Some(BTreeMap::from([(0, 5), (12, 7)])));
    }

    #[rstest::rstest]
    #[case(r#"{"w": {"x": 1}}"#, "not a u32")]
    #[case(r#"{"w": {"-1": 1}}"#, "not a u32")]
    #[case(r#"{"w": {"4294967296": 1}}"#, "not a u32")]
    fn bad_bucket_keys_are_errors(#[case] json: &str, #[case] message: &str) {
        let err = serde_json::from_str::<Weights>(json)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(message), "{err}");
    }

    #[test]
    fn string_enum_keeps_unknown_values() {
        let c: Colour = serde_json::from_str(r#""Blue""#).unwrap();
        assert_eq!(c, Colour::Unknown("Blue".into()));
        assert_eq!(serde_json::to_string(&c).unwrap(), r#""Blue""#);
        let off: Colour = serde_yaml::from_str("\"Off\"").unwrap();
        assert_eq!(off, Colour::Off);
        assert_eq!(Colour::KNOWN, &["Red", "Off"]);
        assert!(serde_json::from_str::<Colour>("3").is_err());
    }
}
