//! Kubernetes resource quantities (`250m`, `1.5`, `512Mi`, `1e3`, `2G`) read exactly.
//!
//! The capacity check subtracts every Pod's requests from each Node's allocatable and compares
//! the rest with what proxies would add. Floating point would make `0.1 + 0.2` CPUs differ from
//! `300m`; so a quantity is kept as an integer mantissa with a power of ten and a power of two,
//! and converted to millicores or bytes with one rounding step at the end. Like the API server,
//! conversion rounds up: `0.5m` CPU counts as `1m`, `1.5` bytes as `2`.

use std::fmt;

/// A parsed quantity: `(-1)^negative × mantissa × 10^exp10 × 2^exp2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    mantissa: u128,
    exp10: i32,
    exp2: u32,
}

/// Why a string is not a quantity, or does not fit the unit asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("`{0}` is not a Kubernetes quantity")]
    Syntax(String),
    #[error("`{0}` is too large")]
    TooLarge(String),
    #[error("`{0}` is negative")]
    Negative(String),
}

impl Quantity {
    /// Parse a quantity in the API's serialization format: an optional sign, a decimal number,
    /// and a suffix that is binary (`Ki` … `Ei`), decimal (`n u m k M G T P E`, or none) or an
    /// exponent (`e3`, `E-2`).
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let syntax = || QuantityError::Syntax(text.to_string());
        let s = text.trim();
        let (negative, s) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let number_len = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let (number, suffix) = s.split_at(number_len);
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
            return Err(syntax());
        }
        let digits: String = int_part.chars().chain(frac_part.chars()).collect();
        let significant = digits.trim_start_matches('0');
        if significant.len() > 38 {
            return Err(QuantityError::TooLarge(text.to_string()));
        }
        let mantissa: u128 = if significant.is_empty() { 0 } else { significant.parse().map_err(|_| syntax())? };
        let mut exp10 = -(frac_part.len() as i32);
        let mut exp2 = 0;
        match suffix {
            "" => {}
            "n" => exp10 -= 9,
            "u" => exp10 -= 6,
            "m" => exp10 -= 3,
            "k" => exp10 += 3,
            "M" => exp10 += 6,
            "G" => exp10 += 9,
            "T" => exp10 += 12,
            "P" => exp10 += 15,
            "E" => exp10 += 18,
            "Ki" => exp2 = 10,
            "Mi" => exp2 = 20,
            "Gi" => exp2 = 30,
            "Ti" => exp2 = 40,
            "Pi" => exp2 = 50,
            "Ei" => exp2 = 60,
            _ => {
                let exponent = suffix.strip_prefix(['e', 'E']).ok_or_else(syntax)?;
                let unsigned = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
                if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(syntax());
                }
                let e: i32 = exponent.parse().map_err(|_| QuantityError::TooLarge(text.to_string()))?;
                exp10 = exp10.checked_add(e).ok_or_else(|| QuantityError::TooLarge(text.to_string()))?;
            }
        }
        Ok(Quantity { negative: negative && mantissa != 0, mantissa, exp10, exp2 })
    }

    /// The value in units of `10^-scale` (0: whole units, 3: milli-units), rounded up.
    fn scaled(&self, scale: i32, text: &str) -> Result<u128, QuantityError> {
        if self.negative {
            return Err(QuantityError::Negative(text.to_string()));
        }
        let too_large = || QuantityError::TooLarge(text.to_string());
        let with_binary =
            self.mantissa.checked_mul(1u128.checked_shl(self.exp2).ok_or_else(too_large)?).ok_or_else(too_large)?;
        let exp = self.exp10 + scale;
        if exp >= 0 {
            let factor = 10u128.checked_pow(exp as u32).ok_or_else(too_large)?;
            return with_binary.checked_mul(factor).ok_or_else(too_large);
        }
        match 10u128.checked_pow(exp.unsigned_abs()) {
            Some(divisor) => Ok(with_binary.div_ceil(divisor)),
            // The divisor exceeds any u128 mantissa: a non-zero value is a sliver above zero.
            None => Ok(u128::from(with_binary != 0)),
        }
    }
}

fn to_u64(v: u128, text: &str) -> Result<u64, QuantityError> {
    u64::try_from(v).map_err(|_| QuantityError::TooLarge(text.to_string()))
}

/// A CPU quantity in millicores, rounded up (`"0.25"` and `"250m"` are both 250).
pub fn cpu_millis(text: &str) -> Result<u64, QuantityError> {
    to_u64(Quantity::parse(text)?.scaled(3, text)?, text)
}

/// A memory (or any whole-unit) quantity in bytes, rounded up (`"1Ki"` is 1024, `"1k"` 1000).
pub fn bytes(text: &str) -> Result<u64, QuantityError> {
    to_u64(Quantity::parse(text)?.scaled(0, text)?, text)
}

/// Millicores for people: `750m`, `2`, `2.5`.
pub struct Millis(pub u64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        match (m / 1000, m % 1000) {
            (0, r) => write!(f, "{r}m"),
            (c, 0) => write!(f, "{c}"),
            (c, r) if r % 100 == 0 => write!(f, "{c}.{}", r / 100),
            _ => write!(f, "{m}m"),
        }
    }
}

/// Bytes for people, in the largest binary unit that keeps one decimal exact enough:
/// `100Mi`, `1.5Gi`, `512Ki`, `1000` (plain bytes when no unit divides it to a tenth).
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u32); 5] = [("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)];
        let b = self.0;
        for (unit, shift) in UNITS {
            let size = 1u64 << shift;
            if b >= size {
                let tenths = u128::from(b) * 10 / u128::from(size);
                let exact = u128::from(b) * 10 % u128::from(size) == 0;
                if exact {
                    return if tenths % 10 == 0 {
                        write!(f, "{}{unit}", tenths / 10)
                    } else {
                        write!(f, "{}.{}{unit}", tenths / 10, tenths % 10)
                    };
                }
                // Not a tenth of this unit: show it rounded, marked as approximate.
                return write!(f, "~{}.{}{unit}", tenths / 10, tenths % 10);
            }
        }
        write!(f, "{b}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities_in_millicores() {
        assert_eq!(cpu_millis("250m"), Ok(250));
        assert_eq!(cpu_millis("0.25"), Ok(250));
        assert_eq!(cpu_millis(".5"), Ok(500));
        assert_eq!(cpu_millis("2"), Ok(2000));
        assert_eq!(cpu_millis("1.5"), Ok(1500));
        assert_eq!(cpu_millis("+3"), Ok(3000));
        assert_eq!(cpu_millis("1e3"), Ok(1_000_000));
        assert_eq!(cpu_millis("5E-1"), Ok(500));
        assert_eq!(cpu_millis("100u"), Ok(1), "rounds up like the API server");
        assert_eq!(cpu_millis("1n"), Ok(1));
        assert_eq!(cpu_millis("0"), Ok(0));
        assert_eq!(cpu_millis("0.0001"), Ok(1));
        assert_eq!(cpu_millis("1k"), Ok(1_000_000));
    }

    #[test]
    fn memory_quantities_in_bytes() {
        assert_eq!(bytes("100Mi"), Ok(100 * 1024 * 1024));
        assert_eq!(bytes("1Ki"), Ok(1024));
        assert_eq!(bytes("1k"), Ok(1000));
        assert_eq!(bytes("1.5Gi"), Ok(3 * 512 * 1024 * 1024));
        assert_eq!(bytes("128974848"), Ok(128_974_848));
        assert_eq!(bytes("129e6"), Ok(129_000_000));
        assert_eq!(bytes("123M"), Ok(123_000_000));
        assert_eq!(bytes("2Ti"), Ok(2 << 40));
        assert_eq!(bytes("1E"), Ok(1_000_000_000_000_000_000), "a bare E is exa, not an exponent");
        assert_eq!(bytes("0.5"), Ok(1));
        assert_eq!(bytes("1m"), Ok(1), "a thousandth of a byte still rounds up to one");
        assert_eq!(bytes("1e-50"), Ok(1));
    }

    #[test]
    fn malformed_and_out_of_range_quantities_are_rejected() {
        for bad in ["", "Mi", "1.2.3", "1 Mi", "1mi", "1KB", "e3", "1e", "1e+", "1ee3", "--1", "1.5x", "."] {
            assert!(matches!(Quantity::parse(bad), Err(QuantityError::Syntax(_))), "{bad:?} parsed");
        }
        assert!(matches!(bytes("-1Gi"), Err(QuantityError::Negative(_))));
        assert_eq!(bytes("-0"), Ok(0));
        assert!(matches!(bytes("1e40"), Err(QuantityError::TooLarge(_))));
        assert!(matches!(bytes("100Ei"), Err(QuantityError::TooLarge(_))));
        assert!(matches!(cpu_millis("1e99999999999"), Err(QuantityError::TooLarge(_))));
        assert!(matches!(bytes("123456789012345678901234567890123456789012"), Err(QuantityError::TooLarge(_))));
    }

    #[test]
    fn quantities_print_for_people() {
        assert_eq!(Millis(50).to_string(), "50m");
        assert_eq!(Millis(2000).to_string(), "2");
        assert_eq!(Millis(2500).to_string(), "2.5");
        assert_eq!(Millis(2550).to_string(), "2550m");
        assert_eq!(Bytes(100 * 1024 * 1024).to_string(), "100Mi");
        assert_eq!(Bytes(3 * 512 * 1024 * 1024).to_string(), "1.5Gi");
        assert_eq!(Bytes(1000).to_string(), "1000");
        assert_eq!(Bytes(1_000_000).to_string(), "~976.5Ki");
    }
}
