//! Kubernetes resource quantities (`100m`, `128Mi`, `1e3`), parsed and printed
//! the way apimachinery's `resource.Quantity` does.
//!
//! A quantity is an exact decimal: an `i128` mantissa with no trailing zeros
//! times a power of ten. No floating point is involved anywhere on the value
//! path. Parsing follows the grammar in the `resource.Quantity` doc comment:
//!
//! ```text
//! <quantity> ::= <sign>? <digits> [ "." <digits>? ] <suffix>   (at least one digit)
//! <suffix>   ::= "" | n | u | m | k | M | G | T | P | E        (DecimalSI)
//!              | Ki | Mi | Gi | Ti | Pi | Ei                   (BinarySI)
//!              | ("e" | "E") <sign>? <digits>                  (DecimalExponent)
//! ```
//!
//! with the two adjustments Kubernetes makes while parsing: a non-zero value
//! finer than `1n` is rounded away from zero to a whole number of nanos, and a
//! BinarySI value is capped at `2^63 - 1` in magnitude (a BinarySI value below
//! one in magnitude becomes DecimalSI). Printing is Kubernetes' canonical form:
//! no fractional digits, the largest suffix that loses nothing, in the format
//! the quantity was parsed with.
//!
//! Where Kubernetes has known bugs this module follows the behaviour its own
//! exact reference model (`internal/exact`) describes instead:
//! - digit-less input (`""`, `"-"`, `"."`, `"k"`) is an error, not zero;
//! - `String()` never echoes a non-canonical input spelling (`"+1"`, `"1E3"`,
//!   `"01"` print as `"1"`, `"1e3"`, `"1"`);
//! - a decimal exponent outside `±(2^31 - 1)` is an error rather than being
//!   truncated to 32 bits.
//!
//! Limits of this representation (Kubernetes itself uses arbitrary precision):
//! the mantissa left after nano rounding must fit `i128` (38 significant digits
//! always do), and the normalised decimal exponent must fit `i32`; anything
//! beyond is [`QuantityError::OutOfRange`], and arithmetic beyond it is
//! [`QuantityError::ArithmeticOverflow`]. A BinarySI quantity grown by
//! arithmetic past `u128` (unreachable by parsing, which caps at `2^63 - 1`)
//! prints in exponent form where Kubernetes might pick a binary suffix.
//!
//! Like Kubernetes, format ∘ parse is a fixpoint except for one BinarySI case:
//! an integer of at least 1024 with fewer than ten trailing zero bits prints as
//! bare digits (`2000`), which read back as DecimalSI print shorter (`2k`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// How a quantity is printed; parsing remembers the format of its suffix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    /// Powers of ten with SI suffixes: `n u m "" k M G T P E` (`1500m`, `2G`).
    #[default]
    DecimalSI,
    /// Powers of 1024: `Ki Mi Gi Ti Pi Ei` (`128Mi`).
    BinarySI,
    /// Scientific notation with a power-of-ten exponent (`12e6`, `1e-3`).
    DecimalExponent,
}

/// Why a string is not a quantity, or why a quantity does not convert.
/// Every variant names the offending input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string does not follow the quantity grammar.
    #[error("quantity {input:?} is malformed: {reason}")]
    Malformed {
        /// The string that failed to parse.
        input: String,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The string is well formed but its value cannot be represented exactly.
    #[error("quantity {input:?} is out of range: {reason}")]
    OutOfRange {
        /// The string that failed to parse.
        input: String,
        /// Which limit it exceeded.
        reason: &'static str,
    },
    /// A conversion to an `i64` count of units overflowed.
    #[error("quantity {input:?} does not fit in i64 {unit}")]
    DoesNotFit {
        /// The quantity, in canonical form.
        input: String,
        /// The unit of the conversion (`"units"`, `"milli-units"`).
        unit: &'static str,
    },
    /// Adding or subtracting two quantities left the representable range.
    #[error("quantity arithmetic overflowed: {left:?} {op} {right:?}")]
    ArithmeticOverflow {
        /// The left operand, in canonical form.
        left: String,
        /// The operation (`+` or `-`).
        op: &'static str,
        /// The right operand, in canonical form.
        right: String,
    },
}

/// A Kubernetes resource quantity: an exact decimal value plus the format it
/// prints in. Equality, ordering and hashing are by value only, so
/// `1000m == 1` and `1Ki == 1024`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quantity {
    /// Value digits with no trailing decimal zeros; zero has exponent 0.
    mantissa: i128,
    /// Power of ten the mantissa is multiplied by.
    exponent: i32,
    format: Format,
}

/// The largest BinarySI magnitude parsing keeps; larger values are capped.
const BINARY_CAP: u128 = i64::MAX as u128;
/// Nano units at and above `10^NANO_DIGIT_LIMIT` already exceed the binary cap.
const NANO_DIGIT_LIMIT: i64 = 29;
/// Finest decimal exponent a parsed quantity keeps.
const NANO: i64 = -9;

/// `10^n` for `n <= 38`, the powers that fit `u128`.
fn pow10(n: u32) -> Option<u128> {
    10u128.checked_pow(n)
}

/// Number of decimal digits of a non-zero magnitude.
fn digit_count(mut v: u128) -> i64 {
    let mut n = 0;
    while v > 0 {
        v /= 10;
        n += 1;
    }
    n
}

fn malformed(input: &str, reason: &'static str) -> QuantityError {
    QuantityError::Malformed {
        input: input.to_owned(),
        reason,
    }
}

fn out_of_range(input: &str, reason: &'static str) -> QuantityError {
    QuantityError::OutOfRange {
        input: input.to_owned(),
        reason,
    }
}

/// What a suffix multiplies the number by.
#[derive(Clone, Copy)]
enum Suffix {
    /// `10^exp`, printed in the given format.
    Decimal(i64, Format),
    /// `2^exp`.
    Binary(u32),
}

fn parse_suffix(input: &str, suffix: &str) -> Result<Suffix, QuantityError> {
    let si = |e| Ok(Suffix::Decimal(e, Format::DecimalSI));
    match suffix {
        "" => return si(0),
        "n" => return si(-9),
        "u" => return si(-6),
        "m" => return si(-3),
        "k" => return si(3),
        "M" => return si(6),
        "G" => return si(9),
        "T" => return si(12),
        "P" => return si(15),
        "E" => return si(18),
        "Ki" => return Ok(Suffix::Binary(10)),
        "Mi" => return Ok(Suffix::Binary(20)),
        "Gi" => return Ok(Suffix::Binary(30)),
        "Ti" => return Ok(Suffix::Binary(40)),
        "Pi" => return Ok(Suffix::Binary(50)),
        "Ei" => return Ok(Suffix::Binary(60)),
        _ => {}
    }
    let bytes = suffix.as_bytes();
    match bytes.first() {
        Some(b'e' | b'E') => {}
        Some(b'.') => return Err(malformed(input, "more than one decimal point")),
        _ => return Err(malformed(input, "unknown suffix")),
    }
    let (negative, digits) = match bytes.get(1) {
        Some(b'-') => (true, &bytes[2..]),
        Some(b'+') => (false, &bytes[2..]),
        _ => (false, &bytes[1..]),
    };
    if digits.is_empty() {
        return Err(malformed(input, "exponent has no digits"));
    }
    let mut exp: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(malformed(input, "exponent is not an integer"));
        }
        // Saturate: anything past i32 is rejected below, so the exact size is moot.
        exp = exp
            .saturating_mul(10)
            .saturating_add(i64::from(d - b'0'))
            .min(i64::from(u32::MAX));
    }
    if exp > i64::from(i32::MAX) {
        return Err(out_of_range(input, "decimal exponent beyond ±2147483647"));
    }
    Ok(Suffix::Decimal(
        if negative { -exp } else { exp },
        Format::DecimalExponent,
    ))
}

/// The digits of the number part, most significant first, skipping the point.
fn number_digits<'a>(int: &'a [u8], frac: &'a [u8]) -> impl DoubleEndedIterator<Item = u8> + 'a {
    int.iter().chain(frac.iter()).map(|d| d - b'0')
}

/// Exact value of `digits × 10^(int_len - 1 + exp)…` with sub-nano digits
/// rounded away from zero into one extra nano.
fn parse_decimal(
    input: &str,
    int: &[u8],
    frac: &[u8],
    exp: i64,
) -> Result<(u128, i64), QuantityError> {
    // Fast path (`100m`, `1.5`, `2`): up to 18 digits fit u64 and nothing falls
    // below a nano, so the value is exact as written.
    let scale = exp - frac.len() as i64;
    if int.len() + frac.len() <= 18 && scale >= NANO {
        let n = number_digits(int, frac).fold(0u64, |acc, d| acc * 10 + u64::from(d));
        return Ok((u128::from(n), scale));
    }
    let too_precise = || out_of_range(input, "more than 38 significant digits");
    // Position (power of ten) of the first digit; each next digit is one lower.
    let first_pos = exp + int.len() as i64 - 1;
    let mut acc: u128 = 0;
    let mut acc_pos: i64 = 0;
    let mut sticky = false;
    for (i, d) in number_digits(int, frac).enumerate() {
        if d == 0 {
            continue;
        }
        let pos = first_pos - i as i64;
        if pos < NANO {
            sticky = true;
            break;
        }
        if acc == 0 {
            acc = u128::from(d);
        } else {
            let shift = u32::try_from(acc_pos - pos).map_err(|_| too_precise())?;
            acc = pow10(shift)
                .and_then(|p| acc.checked_mul(p))
                .and_then(|a| a.checked_add(u128::from(d)))
                .ok_or_else(too_precise)?;
        }
        acc_pos = pos;
    }
    if sticky {
        // Kubernetes rounds a sub-nano remainder up so a request for "some"
        // resource never becomes zero.
        if acc == 0 {
            acc = 1;
        } else {
            let shift = u32::try_from(acc_pos - NANO).map_err(|_| too_precise())?;
            acc = pow10(shift)
                .and_then(|p| acc.checked_mul(p))
                .and_then(|a| a.checked_add(1))
                .ok_or_else(too_precise)?;
        }
        acc_pos = NANO;
    }
    Ok((acc, acc_pos))
}

/// Exact value of `digits × 10^-frac_len × 2^power`, in nanos rounded away from
/// zero, capped at `2^63 - 1` units. Multiplies the digit string by `2^power`
/// from the right so that arbitrarily long inputs need no big integers.
fn parse_binary(int: &[u8], frac: &[u8], power: u32) -> (u128, i64) {
    // Fast path for the common whole-number case (`128Mi`): 18 digits fit u64.
    if frac.is_empty() && int.len() <= 18 {
        let n = int
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        return if n <= (i64::MAX as u64) >> power {
            (u128::from(n << power), 0)
        } else {
            (BINARY_CAP, 0)
        };
    }
    // digit × 2^60 + carry < 11 × 2^60 < 2^64, so u64 arithmetic suffices.
    let multiplier: u64 = 1 << power;
    // Product digit t (from the right) sits at 10^(t - frac_len); in nanos at
    // index t - frac_len + 9.
    let offset = 9 - frac.len() as i64;
    let mut nanos: u128 = 0;
    let mut sticky = false;
    let mut capped = false;
    let mut carry: u64 = 0;
    let mut t: i64 = 0;
    let mut emit = |digit: u64, t: i64| {
        if digit == 0 {
            return;
        }
        let idx = t + offset;
        if idx < 0 {
            sticky = true;
        } else if idx >= NANO_DIGIT_LIMIT {
            capped = true;
        } else {
            // idx < 29, so this cannot overflow: the sum stays below 10^29.
            nanos += u128::from(digit) * 10u128.pow(idx as u32);
        }
    };
    for d in number_digits(int, frac).rev() {
        let x = u64::from(d) * multiplier + carry;
        emit(x % 10, t);
        carry = x / 10;
        t += 1;
    }
    while carry > 0 {
        emit(carry % 10, t);
        carry /= 10;
        t += 1;
    }
    if sticky {
        nanos += 1;
    }
    if capped || nanos > BINARY_CAP * 1_000_000_000 {
        (BINARY_CAP, 0)
    } else {
        (nanos, NANO)
    }
}

impl Quantity {
    /// Builds `mantissa × 10^exponent`, stripping trailing zeros; `None` when
    /// the normalised exponent does not fit `i32`.
    fn normalized(mut mantissa: i128, mut exponent: i64, format: Format) -> Option<Self> {
        if mantissa == 0 {
            return Some(Quantity {
                mantissa: 0,
                exponent: 0,
                format,
            });
        }
        if let Ok(mut small) = i64::try_from(mantissa) {
            // i128 division is a slow library call; most mantissas fit i64.
            while small % 10 == 0 {
                small /= 10;
                exponent += 1;
            }
            mantissa = i128::from(small);
        } else {
            while mantissa % 10 == 0 {
                mantissa /= 10;
                exponent += 1;
            }
        }
        Some(Quantity {
            mantissa,
            exponent: i32::try_from(exponent).ok()?,
            format,
        })
    }

    /// Parses a Kubernetes quantity string (see the module docs for the grammar).
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let bytes = s.as_bytes();
        if bytes.is_empty() {
            return Err(malformed(s, "it is empty"));
        }
        let (negative, mut i) = match bytes[0] {
            b'-' => (true, 1),
            b'+' => (false, 1),
            _ => (false, 0),
        };
        let int_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let int = &bytes[int_start..i];
        let mut frac: &[u8] = &[];
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            let frac_start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            frac = &bytes[frac_start..i];
        }
        if int.is_empty() && frac.is_empty() {
            return Err(malformed(s, "the number has no digits"));
        }
        // Everything consumed so far is ASCII, so `i` is a char boundary.
        let suffix = parse_suffix(s, &s[i..])?;
        let (magnitude, exponent, format) = match suffix {
            Suffix::Decimal(exp, format) => {
                let (m, e) = parse_decimal(s, int, frac, exp)?;
                (m, e, format)
            }
            Suffix::Binary(power) => {
                let (m, e) = parse_binary(int, frac, power);
                // Kubernetes keeps a fraction of a unit in DecimalSI rather than
                // rounding it to a binary suffix.
                let format = if m != 0 && e < 0 && m < 1_000_000_000 {
                    Format::DecimalSI
                } else {
                    Format::BinarySI
                };
                (m, e, format)
            }
        };
        let mantissa = i128::try_from(magnitude)
            .map_err(|_| out_of_range(s, "more than 38 significant digits"))?;
        let mantissa = if negative { -mantissa } else { mantissa };
        Quantity::normalized(mantissa, exponent, format)
            .ok_or_else(|| out_of_range(s, "decimal exponent beyond ±2147483647"))
    }

    /// `millis / 1000` in the given format, like `resource.NewMilliQuantity`.
    #[must_use]
    pub fn from_milli(millis: i64, format: Format) -> Quantity {
        Quantity::from_scaled(millis, -3, format)
    }

    /// `value` in the given format, like `resource.NewQuantity`.
    #[must_use]
    pub fn from_int(value: i64, format: Format) -> Quantity {
        Quantity::from_scaled(value, 0, format)
    }

    /// `value × 10^scale` (`scale` in `-9..=18` never fails to be exact).
    fn from_scaled(value: i64, scale: i64, format: Format) -> Quantity {
        // An i64 has at most 19 digits, so the exponent stays tiny.
        Quantity::normalized(i128::from(value), scale, format).unwrap_or(Quantity {
            mantissa: 0,
            exponent: 0,
            format,
        })
    }

    /// Zero in DecimalSI.
    #[must_use]
    pub const fn zero() -> Quantity {
        Quantity {
            mantissa: 0,
            exponent: 0,
            format: Format::DecimalSI,
        }
    }

    /// The format this quantity prints in.
    #[must_use]
    pub const fn format(&self) -> Format {
        self.format
    }

    /// The same value, printed in another format.
    #[must_use]
    pub const fn with_format(mut self, format: Format) -> Quantity {
        self.format = format;
        self
    }

    /// True when the value is zero.
    #[must_use]
    pub const fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// -1, 0 or 1 by the sign of the value.
    #[must_use]
    pub const fn signum(&self) -> i32 {
        self.mantissa.signum() as i32
    }

    /// The value's digits without trailing zeros (0 for zero).
    #[must_use]
    pub const fn mantissa(&self) -> i128 {
        self.mantissa
    }

    /// The power of ten the mantissa is multiplied by (0 for zero).
    #[must_use]
    pub const fn exponent(&self) -> i32 {
        self.exponent
    }

    /// The value in millis (`ceil(q × 1000)`, away from zero), like `MilliValue()`.
    pub fn milli_value(&self) -> Result<i64, QuantityError> {
        self.scaled(-3, "milli-units")
    }

    /// The value in units, rounded away from zero, like `Value()`.
    pub fn value(&self) -> Result<i64, QuantityError> {
        self.scaled(0, "units")
    }

    /// `q / 10^scale` rounded away from zero, like `ScaledValue(scale)`, or an
    /// error when that does not fit `i64`.
    pub fn scaled_value(&self, scale: i32) -> Result<i64, QuantityError> {
        self.scaled(scale, "units of the requested scale")
    }

    fn scaled(&self, scale: i32, unit: &'static str) -> Result<i64, QuantityError> {
        let does_not_fit = || QuantityError::DoesNotFit {
            input: self.to_string(),
            unit,
        };
        if self.mantissa == 0 {
            return Ok(0);
        }
        let magnitude = self.mantissa.unsigned_abs();
        let shift = i64::from(self.exponent) - i64::from(scale);
        let units = if shift >= 0 {
            u32::try_from(shift)
                .ok()
                .and_then(pow10)
                .and_then(|p| magnitude.checked_mul(p))
                .ok_or_else(does_not_fit)?
        } else {
            match u32::try_from(-shift).ok().and_then(pow10) {
                Some(p) => magnitude / p + u128::from(!magnitude.is_multiple_of(p)),
                // Less than one unit of 10^scale: rounds away from zero to one.
                None => 1,
            }
        };
        let signed = if self.mantissa < 0 {
            i128::try_from(units).map(|u| -u)
        } else {
            i128::try_from(units)
        };
        signed
            .ok()
            .and_then(|v| i64::try_from(v).ok())
            .ok_or_else(does_not_fit)
    }

    /// `self + other`, in `self`'s format (or `other`'s when `self` is zero,
    /// as `Quantity.Add` does), or an error when the exact sum is not
    /// representable.
    pub fn checked_add(&self, other: &Quantity) -> Result<Quantity, QuantityError> {
        self.combine(other, false)
    }

    /// `self - other`, formatted like [`Quantity::checked_add`].
    pub fn checked_sub(&self, other: &Quantity) -> Result<Quantity, QuantityError> {
        self.combine(other, true)
    }

    fn combine(&self, other: &Quantity, subtract: bool) -> Result<Quantity, QuantityError> {
        let overflow = || QuantityError::ArithmeticOverflow {
            left: self.to_string(),
            op: if subtract { "-" } else { "+" },
            right: other.to_string(),
        };
        let rhs = if subtract {
            other.mantissa.checked_neg().ok_or_else(overflow)?
        } else {
            other.mantissa
        };
        if self.mantissa == 0 {
            return Quantity::normalized(rhs, i64::from(other.exponent), other.format)
                .ok_or_else(overflow);
        }
        if rhs == 0 {
            return Ok(*self);
        }
        let exponent = self.exponent.min(other.exponent);
        let align = |m: i128, e: i32| -> Option<i128> {
            let shift = u32::try_from(i64::from(e) - i64::from(exponent)).ok()?;
            m.checked_mul(i128::try_from(pow10(shift)?).ok()?)
        };
        let sum = align(self.mantissa, self.exponent)
            .zip(align(rhs, other.exponent))
            .and_then(|(a, b)| a.checked_add(b))
            .ok_or_else(overflow)?;
        Quantity::normalized(sum, i64::from(exponent), self.format).ok_or_else(overflow)
    }

    /// The negated value, same format.
    #[must_use]
    pub fn neg(&self) -> Quantity {
        Quantity {
            // The mantissa is parsed or summed within ±i128::MAX, never MIN.
            mantissa: self.mantissa.saturating_neg(),
            ..*self
        }
    }

    /// Writes the value in decimal: mantissa, padding zeros to a multiple-of-3
    /// exponent, then an SI suffix (DecimalSI) or `e<exp>`.
    fn write_decimal(&self, f: &mut fmt::Formatter<'_>, format: Format) -> fmt::Result {
        let exponent = i64::from(self.exponent);
        let pad = exponent.rem_euclid(3);
        let exponent = exponent - pad;
        write_int(f, self.mantissa)?;
        for _ in 0..pad {
            f.write_str("0")?;
        }
        let si = match exponent {
            -9 => Some("n"),
            -6 => Some("u"),
            -3 => Some("m"),
            0 => Some(""),
            3 => Some("k"),
            6 => Some("M"),
            9 => Some("G"),
            12 => Some("T"),
            15 => Some("P"),
            18 => Some("E"),
            _ => None,
        };
        match si {
            Some(s) if format == Format::DecimalSI => f.write_str(s),
            _ if exponent == 0 => Ok(()),
            _ => write!(f, "e{exponent}"),
        }
    }

    /// Writes a BinarySI value: whole multiples of 1024^k with the largest
    /// suffix up to `Ei`; fractions and values below 1024 print as DecimalSI.
    fn write_binary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exponent < 0 {
            return self.write_decimal(f, Format::DecimalSI);
        }
        // 10^70 already holds seven factors of 1024, one past Ei.
        if self.exponent >= 70 {
            return self.write_decimal(f, Format::DecimalExponent);
        }
        let magnitude =
            pow10(self.exponent as u32).and_then(|p| self.mantissa.unsigned_abs().checked_mul(p));
        let Some(n) = magnitude else {
            // Only arithmetic reaches this; exponent form keeps the value exact.
            return self.write_decimal(f, Format::DecimalExponent);
        };
        if n < 1024 {
            return self.write_decimal(f, Format::DecimalSI);
        }
        let k = n.trailing_zeros() / 10;
        if k > 6 {
            return self.write_decimal(f, Format::DecimalExponent);
        }
        const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
        if self.mantissa < 0 {
            f.write_str("-")?;
        }
        write_uint(f, n >> (10 * k))?;
        f.write_str(SUFFIXES[k as usize])
    }
}

/// Writes an integer, through `i64` when it fits: formatting `i128` divides
/// by a slow library call per digit group.
fn write_int(f: &mut fmt::Formatter<'_>, v: i128) -> fmt::Result {
    match i64::try_from(v) {
        Ok(small) => write!(f, "{small}"),
        Err(_) => write!(f, "{v}"),
    }
}

/// [`write_int`] for a magnitude.
fn write_uint(f: &mut fmt::Formatter<'_>, v: u128) -> fmt::Result {
    match u64::try_from(v) {
        Ok(small) => write!(f, "{small}"),
        Err(_) => write!(f, "{v}"),
    }
}

impl fmt::Display for Quantity {
    /// Kubernetes' canonical form (`Quantity.String()`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mantissa == 0 {
            return f.write_str("0");
        }
        match self.format {
            Format::BinarySI => self.write_binary(f),
            format => self.write_decimal(f, format),
        }
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl TryFrom<&str> for Quantity {
    type Error = QuantityError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Quantity::parse(s)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        // Normalised form makes the representation unique per value.
        self.mantissa == other.mantissa && self.exponent == other.exponent
    }
}

impl Eq for Quantity {}

impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.mantissa.hash(state);
        self.exponent.hash(state);
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.mantissa.signum(), other.mantissa.signum());
        if a != b || a == 0 {
            return a.cmp(&b);
        }
        let magnitude = compare_magnitude(self, other);
        if a > 0 {
            magnitude
        } else {
            magnitude.reverse()
        }
    }
}

/// Compares `|a|` and `|b|` for non-zero normalised quantities without
/// materialising either value.
fn compare_magnitude(a: &Quantity, b: &Quantity) -> Ordering {
    let (ma, mb) = (a.mantissa.unsigned_abs(), b.mantissa.unsigned_abs());
    let (ea, eb) = (i64::from(a.exponent), i64::from(b.exponent));
    // 10^(e + digits - 1) <= |x| < 10^(e + digits).
    let (ta, tb) = (ea + digit_count(ma), eb + digit_count(mb));
    if ta != tb {
        return ta.cmp(&tb);
    }
    // Same leading position: the exponents differ by fewer than 39 digits.
    let scale = |m: u128, shift: i64| pow10(shift as u32).and_then(|p| m.checked_mul(p));
    match ea.cmp(&eb) {
        Ordering::Equal => ma.cmp(&mb),
        // An aligned mantissa that overflows u128 exceeds any i128 magnitude.
        Ordering::Greater => scale(ma, ea - eb).map_or(Ordering::Greater, |x| x.cmp(&mb)),
        Ordering::Less => scale(mb, eb - ea).map_or(Ordering::Less, |x| ma.cmp(&x)),
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Quantity;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Kubernetes quantity string such as \"100m\" or \"128Mi\"")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                // apimachinery trims surrounding whitespace in UnmarshalJSON.
                Quantity::parse(v.trim()).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity::from_int(v, Format::DecimalSI))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                Quantity::normalized(i128::from(v), 0, Format::DecimalSI)
                    .ok_or_else(|| E::custom(format!("quantity {v} is out of range")))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                // A bare YAML/JSON number such as `0.5`: Rust prints the shortest
                // decimal that reads back as the same f64, which is the text the
                // author wrote for any value with up to 15 significant digits.
                if !v.is_finite() {
                    return Err(E::custom(format!("quantity {v} is not a finite number")));
                }
                Quantity::parse(&v.to_string()).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Millicores in a CPU quantity string, rounded away from zero (`"100m"` → 100,
/// `"1.5"` → 1500, `"0.1m"` → 1).
pub fn cpu_millis(s: &str) -> Result<i64, QuantityError> {
    Quantity::parse(s)?.milli_value()
}

/// Bytes in a memory quantity string, rounded away from zero (`"128Mi"` →
/// 134217728, `"1G"` → 1000000000).
pub fn memory_bytes(s: &str) -> Result<i64, QuantityError> {
    Quantity::parse(s)?.value()
}

/// Millicores as Kubernetes prints a CPU quantity (`1500` → `"1500m"`, `2000` → `"2"`).
#[must_use]
pub fn format_cpu_millis(millis: i64) -> String {
    Quantity::from_milli(millis, Format::DecimalSI).to_string()
}

/// Bytes as Kubernetes prints a BinarySI memory quantity (`134217728` → `"128Mi"`).
#[must_use]
pub fn format_memory_bytes(bytes: i64) -> String {
    Quantity::from_int(bytes, Format::BinarySI).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    use Format::{BinarySI as B, DecimalExponent as X, DecimalSI as D};

    /// `mantissa × 10^exponent` in `format`, for expected values.
    fn q(mantissa: i128, exponent: i64, format: Format) -> Quantity {
        Quantity::normalized(mantissa, exponent, format).unwrap()
    }

    fn p(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    // apimachinery's TestQuantityParse table: value and remembered format.
    #[rstest]
    #[case("0", 0, 0, D)]
    #[case("0n", 0, 0, D)]
    #[case("0u", 0, 0, D)]
    #[case("0m", 0, 0, D)]
    #[case("0Ki", 0, 0, B)]
    #[case("0k", 0, 0, D)]
    #[case("0Mi", 0, 0, B)]
    #[case("0M", 0, 0, D)]
    #[case("0Gi", 0, 0, B)]
    #[case("0G", 0, 0, D)]
    #[case("0Ti", 0, 0, B)]
    #[case("0T", 0, 0, D)]
    #[case("0e5", 0, 0, X)]
    #[case("1", 1, 0, D)]
    #[case("1Ki", 1024, 0, B)]
    #[case("8Ki", 8 * 1024, 0, B)]
    #[case("7Mi", 7 << 20, 0, B)]
    #[case("6Gi", 6 << 30, 0, B)]
    #[case("5Ti", 5 << 40, 0, B)]
    #[case("4Pi", 4 << 50, 0, B)]
    #[case("3Ei", 3 << 60, 0, B)]
    #[case("10Ti", 10 << 40, 0, B)]
    #[case("100Ti", 100 << 40, 0, B)]
    #[case("5n", 5, -9, D)]
    #[case("4u", 4, -6, D)]
    #[case("3m", 3, -3, D)]
    #[case("9", 9, 0, D)]
    #[case("8k", 8, 3, D)]
    #[case("50k", 5, 4, D)]
    #[case("7M", 7, 6, D)]
    #[case("6G", 6, 9, D)]
    #[case("5T", 5, 12, D)]
    #[case("40T", 4, 13, D)]
    #[case("300T", 3, 14, D)]
    #[case("2P", 2, 15, D)]
    #[case("1E", 1, 18, D)]
    #[case("1E-3", 1, -3, X)]
    #[case("1e3", 1, 3, X)]
    #[case("1E6", 1, 6, X)]
    #[case("1e9", 1, 9, X)]
    #[case("1E12", 1, 12, X)]
    #[case("1e15", 1, 15, X)]
    #[case("1E18", 1, 18, X)]
    #[case("1e14", 1, 14, X)]
    #[case("1e13", 1, 13, X)]
    #[case("100.035k", 100035, 0, D)]
    #[case("0.001", 1, -3, D)]
    #[case("0.0005k", 5, -1, D)]
    #[case("0.005", 5, -3, D)]
    #[case("0.05", 5, -2, D)]
    #[case("0.5", 5, -1, D)]
    #[case("0.00050k", 5, -1, D)]
    #[case("0.00500", 5, -3, D)]
    #[case("0.05000", 5, -2, D)]
    #[case("0.50000", 5, -1, D)]
    #[case("0.5e0", 5, -1, X)]
    #[case("0.5e-1", 5, -2, X)]
    #[case("0.5e-2", 5, -3, X)]
    #[case("10.035M", 10035, 3, D)]
    #[case("1.2e3", 12, 2, X)]
    #[case("1.3E+6", 13, 5, X)]
    #[case("1.40e9", 14, 8, X)]
    #[case("1.53E12", 153, 10, X)]
    #[case("1.6e15", 16, 14, X)]
    #[case("1.7E18", 17, 17, X)]
    #[case("9.01", 901, -2, D)]
    #[case("8.1k", 81, 2, D)]
    #[case("7.123456M", 7123456, 0, D)]
    #[case("6.987654321G", 6987654321, 0, D)]
    #[case("5.444T", 5444, 9, D)]
    #[case("40.1T", 401, 11, D)]
    #[case("300.2T", 3002, 11, D)]
    #[case("2.5P", 25, 14, D)]
    #[case("1.01E", 101, 16, D)]
    // Sub-nano precision rounds away from zero to whole nanos.
    #[case("3.001n", 4, -9, D)]
    #[case("1.1E-9", 2, -9, X)]
    #[case("0.0000000001", 1, -9, D)]
    #[case("0.0000000005", 1, -9, D)]
    #[case("0.00000000050", 1, -9, D)]
    #[case("0.5e-9", 1, -9, X)]
    #[case("0.9n", 1, -9, D)]
    #[case("0.00000012345", 124, -9, D)]
    #[case("0.00000012354", 124, -9, D)]
    #[case("123e-11", 2, -9, X)]
    #[case("1e-1000", 1, -9, X)]
    #[case("1e-2147483647", 1, -9, X)]
    // BinarySI is capped at 2^63 - 1.
    #[case("9Ei", i64::MAX as i128, 0, B)]
    #[case("8Ei", i64::MAX as i128, 0, B)]
    #[case("7Ei", 7 << 60, 0, B)]
    #[case("9223372036854775807Ki", i64::MAX as i128, 0, B)]
    #[case("99999999999999999999999999999999999999999999Ki", i64::MAX as i128, 0, B)]
    #[case("12E", 12, 18, D)]
    #[case("100.035Ki", 10243584, -2, B)]
    #[case("0.5Mi", 524288, 0, B)]
    #[case("0.05Gi", 536870912, -1, B)]
    #[case("0.025Ti", 274877906944, -1, B)]
    // Below one unit a binary quantity switches to DecimalSI.
    #[case("0.000000000001Ki", 2, -9, D)]
    #[case("0.0009765625Ki", 1, 0, B)]
    #[case("0.0001Ki", 1024, -4, D)]
    #[case(".001", 1, -3, D)]
    #[case(".0001k", 100, -3, D)]
    #[case("1.", 1, 0, D)]
    #[case("1.G", 1, 9, D)]
    #[case("01", 1, 0, D)]
    #[case("+1", 1, 0, D)]
    #[case("-0", 0, 0, D)]
    #[case("-0Ki", 0, 0, B)]
    #[case("9223372036854775808", 9223372036854775808, 0, D)]
    #[case("18446744073709551616", 18446744073709551616, 0, D)]
    #[case(
        "1000000000000000000000000000000000000000000000000000000000000",
        1,
        60,
        D
    )]
    #[case(
        "99999999999999999999999999999999999999",
        99999999999999999999999999999999999999,
        0,
        D
    )]
    #[case("0.1234567890123456789012345678901234567890", 123456790, -9, D)]
    #[case("1e2147483647", 1, 2147483647, X)]
    #[case("0.00000000000000000000000000000000000000001e40", 1, -1, X)]
    #[case("170141183460469231731687303715884105727", i128::MAX, 0, D)]
    fn parses_like_kubernetes(
        #[case] input: &str,
        #[case] mantissa: i128,
        #[case] exponent: i64,
        #[case] format: Format,
    ) {
        let got = p(input);
        assert_eq!(got, q(mantissa, exponent, format), "{input}");
        assert_eq!(got.format(), format, "{input}");
        // The sign applies to the value and keeps the format.
        if let Some(rest) = input.strip_prefix(['+', '-']) {
            assert_eq!(p(rest), got.neg().neg());
            return;
        }
        let negative = p(&format!("-{input}"));
        assert_eq!(negative, got.neg(), "-{input}");
        assert_eq!(negative.format(), format, "-{input}");
        assert_eq!(p(&format!("+{input}")), got, "+{input}");
    }

    /// Decodes recorded by apimachinery's v1.37.0 decode corpus
    /// (`testdata/quantity_decode_corpus.json`): input, exact value as
    /// `<digits>e<exponent>`, format.
    #[rstest]
    #[case("0.0001m", "1e-7", D)]
    #[case("0.0001n", "1e-9", D)]
    #[case("0.0001Ki", "1024e-4", D)]
    #[case("0.0001Mi", "1048576e-4", B)]
    #[case("0.0001Ei", "1152921504606846976e-4", B)]
    #[case("0.0001e-10", "1e-9", X)]
    #[case("0.0001e2147483647", "1e2147483643", X)]
    #[case("0.000000001Ki", "1024e-9", D)]
    #[case("0.000000001Mi", "1048576e-9", D)]
    #[case("0.000000001Gi", "1073741824e-9", B)]
    #[case("0.0000000001Ki", "103e-9", D)]
    #[case("0.0000000001Mi", "104858e-9", D)]
    #[case("0.0000000001Gi", "107374183e-9", D)]
    #[case("0.0000000001Ti", "109951162778e-9", B)]
    #[case("0.0000000001Ei", "115292150460684698e-9", B)]
    #[case("0.0000000001e10", "1e0", X)]
    #[case("0.0009765625", "976563e-9", D)]
    #[case("0.0009765625m", "977e-9", D)]
    #[case("0.0009765625Ki", "1e0", B)]
    #[case("0.0009765625Ei", "1125899906842624e0", B)]
    #[case("0.0009765625e-1", "97657e-9", X)]
    #[case("1.0000000001", "1000000001e-9", D)]
    #[case("1.0000000001n", "2e-9", D)]
    #[case("1.0000000001Ki", "1024000000103e-9", B)]
    #[case("1.0000000001Gi", "1073741824107374183e-9", B)]
    #[case("1.0000000001Ei", "1152921504722139126460684698e-9", B)]
    #[case("1.0000000001e-9", "2e-9", X)]
    #[case("123.456789012n", "124e-9", D)]
    #[case("123.456789012m", "12345679e-8", D)]
    #[case("123.456789012Ki", "126419751948288e-9", B)]
    #[case("123.456789012Pi", "138999987247700286256447488e-9", B)]
    #[case("123.456789012Ei", "9223372036854775807e0", B)]
    #[case("5Ki", "512e1", B)]
    #[case("7Ei", "8070450532247928832e0", B)]
    #[case("01e-1000", "1e-9", X)]
    #[case("5e-10", "1e-9", X)]
    #[case("e03", "0", X)]
    #[case("1000000000000000000000000000000000000000", "1e39", D)]
    #[case(
        "99999999999999999999999999999999999999",
        "99999999999999999999999999999999999999e0",
        D
    )]
    #[case("123e-11", "2e-9", X)]
    #[case("-1e-17", "-1e-9", X)]
    fn matches_the_kubernetes_decode_corpus(
        #[case] input: &str,
        #[case] value: &str,
        #[case] format: Format,
    ) {
        if input == "e03" {
            // The one digit-less spelling here: Kubernetes reads it as zero, the
            // documented grammar (and this parser) rejects it.
            assert!(Quantity::parse(input).is_err());
            return;
        }
        let (digits, exponent) = value.split_once('e').unwrap_or((value, "0"));
        let expected = q(digits.parse().unwrap(), exponent.parse().unwrap(), format);
        let got = p(input);
        assert_eq!(got, expected, "{input}");
        assert_eq!(got.format(), format, "{input}");
    }

    #[rstest]
    #[case("", "is empty")]
    #[case("-", "no digits")]
    #[case("+", "no digits")]
    #[case(".", "no digits")]
    #[case("-.", "no digits")]
    #[case("k", "no digits")]
    #[case("Ki", "no digits")]
    #[case("e3", "no digits")]
    #[case("1.2.3", "decimal point")]
    #[case("1.1.M", "decimal point")]
    #[case("1..5", "decimal point")]
    #[case("5Zi", "unknown suffix")]
    #[case("1Z", "unknown suffix")]
    #[case("1K", "unknown suffix")]
    #[case("1ki", "unknown suffix")]
    #[case("1KI", "unknown suffix")]
    #[case("1KiB", "unknown suffix")]
    #[case("1µ", "unknown suffix")]
    #[case("1 Ki", "unknown suffix")]
    #[case("1i", "unknown suffix")]
    #[case(".5i", "unknown suffix")]
    #[case("-3.01i", "unknown suffix")]
    #[case("0.1mi", "unknown suffix")]
    #[case("0.1am", "unknown suffix")]
    #[case("aoeu", "no digits")]
    #[case("1+1.0M", "unknown suffix")]
    #[case("1-", "unknown suffix")]
    #[case("++1", "no digits")]
    #[case("1,5", "unknown suffix")]
    #[case("1_000", "unknown suffix")]
    #[case("0x10", "unknown suffix")]
    #[case("1/2", "unknown suffix")]
    #[case("１", "no digits")]
    #[case("−1", "no digits")]
    #[case("1\u{0}", "unknown suffix")]
    #[case("Inf", "no digits")]
    #[case("NaN", "no digits")]
    #[case(" 1", "no digits")]
    #[case("1 ", "unknown suffix")]
    #[case("1e", "exponent has no digits")]
    #[case("1e+", "exponent has no digits")]
    #[case("1e-", "exponent has no digits")]
    #[case("-3.01e-", "exponent has no digits")]
    #[case("1e1.5", "not an integer")]
    #[case("1e.5", "not an integer")]
    #[case("1e3k", "not an integer")]
    #[case("1E3Ki", "not an integer")]
    #[case("1e+-3", "not an integer")]
    #[case("1e4294967297", "beyond")]
    #[case("1e2147483648", "beyond")]
    #[case("1e-2147483648", "beyond")]
    #[case("0e99999999999999999999", "beyond")]
    #[case("1000e2147483647", "beyond")]
    #[case("9999999999999999999999999999999999999999", "significant digits")]
    #[case("170141183460469231731687303715884105728", "significant digits")]
    #[case("1.00000000000000000000000000000000000000001e30", "significant digits")]
    fn rejects_malformed_and_out_of_range(#[case] input: &str, #[case] why: &str) {
        let err = Quantity::parse(input).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&format!("{input:?}")), "{message}");
        assert!(message.contains(why), "{input}: {message}");
    }

    // apimachinery's TestQuantityString, TestQuantityParseEmit and friends.
    #[rstest]
    #[case(q(1 << 30, 0, B), "1Gi")]
    #[case(q(300 << 20, 0, B), "300Mi")]
    #[case(q(6 * 1024, 0, B), "6Ki")]
    #[case(q(1001 << 30, 0, B), "1001Gi")]
    #[case(q(1 << 40, 0, B), "1Ti")]
    #[case(q(5, 0, B), "5")]
    #[case(q(500, -3, B), "500m")]
    #[case(q(1, 9, D), "1G")]
    #[case(q(1000, 6, D), "1G")]
    #[case(q(1000000, 3, D), "1G")]
    #[case(q(1000000000, 0, D), "1G")]
    #[case(q(1, -3, D), "1m")]
    #[case(q(80, -3, D), "80m")]
    #[case(q(1080, -3, D), "1080m")]
    #[case(q(108, -2, D), "1080m")]
    #[case(q(10800, -4, D), "1080m")]
    #[case(q(300, 6, D), "300M")]
    #[case(q(1, 12, D), "1T")]
    #[case(q(1, 18, D), "1E")]
    #[case(q(1, 21, D), "1e21")]
    #[case(q(5, 21, D), "5e21")]
    #[case(q(1, 24, D), "1e24")]
    #[case(q(1, 70, B), "10e69")]
    #[case(q(2, 70, B), "20e69")]
    #[case(q(1, 72, B), "1e72")]
    #[case(q(1 << 70, 0, B), "1180591620717411303424")]
    #[case(q(i128::MAX, 1, B), "1701411834604692317316873037158841057270")]
    #[case(
        q(30000000000000000000000000000000000001, 1, B),
        "300000000000000000000000000000000000010"
    )]
    #[case(q(1234567, 6, D), "1234567M")]
    #[case(q(1234567, -3, B), "1234567m")]
    #[case(q(3, 3, D), "3k")]
    #[case(q(1025, 0, B), "1025")]
    #[case(q(2000, 0, B), "2000")]
    #[case(q(1000, 0, B), "1k")]
    #[case(q(0, 0, D), "0")]
    #[case(q(0, 0, B), "0")]
    #[case(q(0, 0, X), "0")]
    #[case(q(1, 9, X), "1e9")]
    #[case(q(1, -3, X), "1e-3")]
    #[case(q(1, -9, X), "1e-9")]
    #[case(q(80, -3, X), "80e-3")]
    #[case(q(300, 6, X), "300e6")]
    #[case(q(1, 12, X), "1e12")]
    #[case(q(1, 3, X), "1e3")]
    #[case(q(3, 3, X), "3e3")]
    #[case(q(1, 0, X), "1")]
    #[case(q(1, -9, D), "1n")]
    #[case(q(80, -9, D), "80n")]
    #[case(q(1080, -9, D), "1080n")]
    #[case(q(108, -8, D), "1080n")]
    #[case(q(10800, -10, D), "1080n")]
    #[case(q(1, -6, D), "1u")]
    #[case(q(80, -6, D), "80u")]
    #[case(q(1080, -6, D), "1080u")]
    #[case(q(1, -12, D), "1e-12")]
    #[case(q(1, -10, D), "100e-12")]
    fn formats_canonically(#[case] quantity: Quantity, #[case] expected: &str) {
        assert_eq!(quantity.to_string(), expected);
        if !quantity.is_zero() {
            assert_eq!(quantity.neg().to_string(), format!("-{expected}"));
        }
    }

    #[rstest]
    #[case("100m", "100m")]
    #[case("1500m", "1500m")]
    #[case("2", "2")]
    #[case("128Mi", "128Mi")]
    #[case("1G", "1G")]
    #[case("0.5Gi", "512Mi")]
    #[case("1.5", "1500m")]
    #[case("1000m", "1")]
    #[case("1.5Gi", "1536Mi")]
    #[case("1.5Ki", "1536")]
    #[case("0.5Ki", "512")]
    #[case("1Ki", "1Ki")]
    #[case("1024Mi", "1Gi")]
    #[case("1000M", "1G")]
    #[case("1000k", "1M")]
    #[case("1000E", "1e21")]
    #[case(".001Ki", "1024m")]
    #[case(".000001Ki", "1024u")]
    #[case(".000000001Ki", "1024n")]
    #[case(".000000000001Ki", "2n")]
    #[case("100.035Ki", "102435840m")]
    #[case("9Ei", "9223372036854775807")]
    #[case("-9Ei", "-9223372036854775807")]
    #[case(
        "1234567890123456789012345678901234567890",
        "1234567890123456789012345678901234567890"
    )]
    #[case("1E3", "1e3")]
    #[case("1e+21", "1e21")]
    #[case("1e0", "1")]
    #[case("123e0", "123")]
    #[case("1.2e3", "1200")]
    #[case("1.3E+6", "1300e3")]
    #[case("1e-10", "1e-9")]
    #[case("1e2147483647", "10e2147483646")]
    #[case("+1", "1")]
    #[case("01", "1")]
    #[case("5.", "5")]
    #[case("0.1m", "100u")]
    #[case("-0", "0")]
    #[case("-100m", "-100m")]
    #[case("-1.5Gi", "-1536Mi")]
    #[case("262144k", "262144k")]
    fn parse_then_format(#[case] input: &str, #[case] expected: &str) {
        assert_eq!(p(input).to_string(), expected);
    }

    #[rstest]
    #[case("100m", 100, 1)]
    #[case("1", 1000, 1)]
    #[case("1.5", 1500, 2)]
    #[case("0.1m", 1, 1)]
    #[case("1n", 1, 1)]
    #[case("-1n", -1, -1)]
    #[case("-100m", -100, -1)]
    #[case("-1.5", -1500, -2)]
    #[case("128Mi", 134217728000, 134217728)]
    #[case("1G", 1000000000000, 1000000000)]
    #[case("0", 0, 0)]
    #[case("9223372036854775807m", i64::MAX, 9223372036854776)]
    #[case("-9223372036854775808m", i64::MIN, -9223372036854776)]
    fn converts_rounding_away_from_zero(
        #[case] input: &str,
        #[case] millis: i64,
        #[case] units: i64,
    ) {
        let quantity = p(input);
        assert_eq!(quantity.milli_value(), Ok(millis), "{input}");
        assert_eq!(quantity.value(), Ok(units), "{input}");
    }

    #[rstest]
    #[case("9223372036854775808", "units")]
    #[case("9223372036854775.808", "milli-units")]
    #[case("10E", "milli-units")]
    #[case("1e30", "units")]
    #[case("-9223372036854775809", "units")]
    fn conversion_overflow_names_the_quantity(#[case] input: &str, #[case] unit: &str) {
        let quantity = p(input);
        let err = if unit == "units" {
            quantity.value().unwrap_err()
        } else {
            quantity.milli_value().unwrap_err()
        };
        assert_eq!(
            err,
            QuantityError::DoesNotFit {
                input: quantity.to_string(),
                unit: if unit == "units" {
                    "units"
                } else {
                    "milli-units"
                },
            }
        );
        assert!(err.to_string().contains(&quantity.to_string()));
    }

    #[test]
    fn helper_functions() {
        assert_eq!(cpu_millis("250m"), Ok(250));
        assert_eq!(p("1.5G").scaled_value(6), Ok(1500));
        assert_eq!(p("1.5G").scaled_value(12), Ok(1));
        assert_eq!(p("-1n").scaled_value(-6), Ok(-1));
        assert!(p("1").scaled_value(-19).is_err());
        assert_eq!(cpu_millis("2"), Ok(2000));
        assert_eq!(cpu_millis("0.1m"), Ok(1));
        assert_eq!(memory_bytes("128Mi"), Ok(134217728));
        assert_eq!(memory_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(memory_bytes("100m"), Ok(1));
        assert!(cpu_millis("1.2.3").is_err());
        assert_eq!(memory_bytes("8Ei"), Ok(i64::MAX));
        assert_eq!(memory_bytes("1E"), Ok(1_000_000_000_000_000_000));
        assert!(memory_bytes("10E").is_err());
        assert_eq!(format_cpu_millis(1500), "1500m");
        assert_eq!(format_cpu_millis(2000), "2");
        assert_eq!(format_cpu_millis(100), "100m");
        assert_eq!(format_cpu_millis(0), "0");
        assert_eq!(format_cpu_millis(-250), "-250m");
        assert_eq!(format_memory_bytes(134217728), "128Mi");
        assert_eq!(format_memory_bytes(1 << 30), "1Gi");
        assert_eq!(format_memory_bytes(1000), "1k");
        assert_eq!(format_memory_bytes(1500), "1500");
        assert_eq!(format_memory_bytes(i64::MAX), "9223372036854775807");
        // The VPA writes memory as DecimalSI.
        assert_eq!(
            Quantity::from_int(262144000, Format::DecimalSI).to_string(),
            "262144k"
        );
        assert_eq!(
            Quantity::from_int(134217728, Format::DecimalSI).to_string(),
            "134217728"
        );
        assert_eq!(
            Quantity::from_milli(1500, Format::DecimalSI).format(),
            Format::DecimalSI
        );
        // NewMilliQuantity with BinarySI: fractions print as DecimalSI.
        assert_eq!(
            Quantity::from_milli(1500, Format::BinarySI).to_string(),
            "1500m"
        );
        assert_eq!(
            Quantity::from_milli(2048000, Format::BinarySI).to_string(),
            "2Ki"
        );
        assert_eq!(
            Quantity::from_int(i64::MIN, Format::DecimalSI).to_string(),
            "-9223372036854775808"
        );
    }

    #[test]
    fn equality_ordering_and_hash_are_by_value() {
        use std::collections::HashSet;
        assert_eq!(p("1000m"), p("1"));
        assert_eq!(p("1Ki"), p("1024"));
        assert_eq!(p("1e3"), p("1k"));
        assert_ne!(p("1Ki"), p("1k"));
        assert!(p("100m") > p("50m"));
        assert!(p("10000T") > p("100Gi"));
        assert!(p("-1") < p("1n"));
        assert!(p("-2") < p("-1"));
        assert!(p("1e2147483647") > p("8Ei"));
        assert!(p("99999999999999999999999999999999999999") < p("1e38"));
        assert!(p("1.00000000000000000000000000000000001") > p("1"));
        assert_eq!(p("0Ki").cmp(&p("0")), Ordering::Equal);
        let set: HashSet<Quantity> = ["1", "1000m", "1e0", "0.001k"].map(p).into();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn arithmetic_is_exact_and_checked() {
        let sum = p("100m").checked_add(&p("1.5")).unwrap();
        assert_eq!(sum, p("1600m"));
        assert_eq!(sum.to_string(), "1600m");
        // Zero takes the other operand's format, as Quantity.Add does.
        let from_zero = p("0").checked_add(&p("1Gi")).unwrap();
        assert_eq!(from_zero.to_string(), "1Gi");
        assert_eq!(p("1Gi").checked_add(&p("0")).unwrap().to_string(), "1Gi");
        assert_eq!(p("0").checked_sub(&p("1Gi")).unwrap().to_string(), "-1Gi");
        assert_eq!(
            p("1Gi").checked_sub(&p("512Mi")).unwrap().to_string(),
            "512Mi"
        );
        assert_eq!(p("1").checked_sub(&p("1000m")).unwrap(), Quantity::zero());
        // Past Ei a BinarySI value prints without a binary suffix.
        // Arithmetic may exceed the parse-time BinarySI cap, as in Kubernetes.
        let big = p("4Ei").checked_add(&p("4Ei")).unwrap();
        assert_eq!(big.to_string(), "8Ei");
        assert!(big.value().is_err());
        let err = p("1e2147483647").checked_add(&p("1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "quantity arithmetic overflowed: \"10e2147483646\" + \"1\""
        );
    }

    #[test]
    fn serde_uses_the_canonical_string() {
        let quantity = p("0.5Gi");
        assert_eq!(serde_json::to_string(&quantity).unwrap(), "\"512Mi\"");
        let back: Quantity = serde_json::from_str("\"512Mi\"").unwrap();
        assert_eq!(back, quantity);
        assert_eq!(back.format(), Format::BinarySI);
        let number: Quantity = serde_json::from_str("2").unwrap();
        assert_eq!(number, p("2"));
        let fraction: Quantity = serde_json::from_str("0.5").unwrap();
        assert_eq!(fraction.to_string(), "500m");
        let padded: Quantity = serde_json::from_str("\" 100m \"").unwrap();
        assert_eq!(padded, p("100m"));
        let err = serde_json::from_str::<Quantity>("\"5Zi\"").unwrap_err();
        assert!(err.to_string().contains("\"5Zi\""), "{err}");
        assert!(serde_json::from_str::<Quantity>("true").is_err());
    }

    fn any_format() -> impl Strategy<Value = Format> {
        prop_oneof![Just(D), Just(B), Just(X)]
    }

    fn any_quantity() -> impl Strategy<Value = Quantity> {
        (any::<i64>(), -9i64..=30, any_format()).prop_map(|(m, e, f)| q(i128::from(m), e, f))
    }

    /// Quantities whose exact sums always fit: 19 digits spread over 18 exponents.
    fn small_exponent() -> impl Strategy<Value = Quantity> {
        (any::<i64>(), -9i64..=9, any_format()).prop_map(|(m, e, f)| q(i128::from(m), e, f))
    }

    /// Quantity-shaped strings, valid and not, built from grammar pieces.
    fn quantity_like() -> impl Strategy<Value = String> {
        let suffix = prop_oneof![
            Just(String::new()),
            prop::sample::select(vec![
                "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
            ])
            .prop_map(str::to_owned),
            (-40i32..40).prop_map(|e| format!("e{e}")),
        ];
        (
            prop::sample::select(vec!["", "-", "+"]),
            "[0-9]{0,22}",
            prop::option::of("[0-9]{0,22}"),
            suffix,
        )
            .prop_map(|(sign, int, frac, suffix)| match frac {
                Some(frac) => format!("{sign}{int}.{frac}{suffix}"),
                None => format!("{sign}{int}{suffix}"),
            })
    }

    /// Kubernetes prints a BinarySI integer with fewer than ten trailing zero
    /// bits as bare digits; read back as DecimalSI those digits may shorten
    /// (`2000` → `2k`). Everything else is a fixpoint of format ∘ parse.
    fn bare_digits_ending_in_zero(s: &str) -> bool {
        let digits = s.strip_prefix('-').unwrap_or(s);
        digits.bytes().all(|b| b.is_ascii_digit()) && digits.ends_with('0')
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(quantity in any_quantity()) {
            // Parsing caps BinarySI at 2^63 - 1, so only values within it can
            // come back (a known Kubernetes limitation, #141166).
            prop_assume!(
                quantity.format() != Format::BinarySI
                    || quantity <= Quantity::from_int(i64::MAX, Format::BinarySI)
                        && quantity >= Quantity::from_int(-i64::MAX, Format::BinarySI)
            );
            let printed = quantity.to_string();
            let reparsed = Quantity::parse(&printed).unwrap();
            prop_assert_eq!(reparsed, quantity);
            let again = reparsed.to_string();
            if quantity.format() != Format::BinarySI || !bare_digits_ending_in_zero(&printed) {
                prop_assert_eq!(&again, &printed);
            }
            prop_assert_eq!(Quantity::parse(&again).unwrap().to_string(), again);
        }

        #[test]
        fn parsed_strings_format_idempotently(s in quantity_like()) {
            if let Ok(parsed) = Quantity::parse(&s) {
                let printed = parsed.to_string();
                let reparsed = Quantity::parse(&printed).unwrap();
                prop_assert_eq!(reparsed, parsed);
                let again = reparsed.to_string();
                if parsed.format() != Format::BinarySI || !bare_digits_ending_in_zero(&printed) {
                    prop_assert_eq!(&again, &printed);
                }
                prop_assert_eq!(Quantity::parse(&again).unwrap().to_string(), again);
            }
        }

        #[test]
        fn errors_name_the_input(s in "\\PC{0,12}") {
            if let Err(err) = Quantity::parse(&s) {
                let quoted = format!("{s:?}");
                prop_assert!(err.to_string().contains(&quoted));
            }
        }

        #[test]
        fn ordering_matches_integer_ordering(a in any::<i64>(), b in any::<i64>(), fa in any_format(), fb in any_format()) {
            let (qa, qb) = (Quantity::from_milli(a, fa), Quantity::from_milli(b, fb));
            prop_assert_eq!(qa.cmp(&qb), a.cmp(&b));
            prop_assert_eq!(qa == qb, a == b);
            prop_assert_eq!(qa.milli_value().unwrap(), a);
            // Same value written in units compares equal to its millis form.
            let units = Quantity::from_int(a / 1000, fb);
            prop_assert_eq!(Quantity::from_milli(a / 1000 * 1000, fa), units);
        }

        #[test]
        fn milli_suffix_matches_milli_value(m in any::<i64>()) {
            prop_assert_eq!(cpu_millis(&format!("{m}m")), Ok(m));
            prop_assert_eq!(cpu_millis(&format_cpu_millis(m)), Ok(m));
            prop_assert_eq!(memory_bytes(&format_memory_bytes(m)), Ok(m));
            prop_assert_eq!(memory_bytes(&Quantity::from_int(m, Format::DecimalSI).to_string()), Ok(m));
        }

        #[test]
        fn values_round_away_from_zero(m in any::<i64>()) {
            // m millis as units: ceil away from zero of m / 1000.
            let expected = {
                let (d, r) = (m / 1000, m % 1000);
                if r == 0 { d } else { d + m.signum() }
            };
            prop_assert_eq!(Quantity::from_milli(m, Format::DecimalSI).value(), Ok(expected));
        }

        #[test]
        fn add_then_sub_is_identity(a in small_exponent(), b in small_exponent()) {
            let sum = a.checked_add(&b).unwrap();
            prop_assert_eq!(sum.checked_sub(&b).unwrap(), a);
            prop_assert_eq!(sum, b.checked_add(&a).unwrap());
        }
    }
}
