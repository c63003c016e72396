//! Registration fields: the 18-character resident ID number (GB 11643: region prefix, birth
//! date, check digit), the mainland mobile number, the name and the address. Each bad field
//! gets its own message in both languages. Also the masked display fields.

use crate::error::ApiError;

/// GB 11643 weights of the first 17 digits.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character for each `sum mod 11`.
const CHECK: [u8; 11] = *b"10X98765432";
/// First two digits of every province-level region (GB/T 2260).
const PROVINCES: [u32; 34] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];
/// Longest name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 32;
/// Longest address accepted, in characters.
pub const MAX_ADDRESS_CHARS: usize = 200;

/// A resident ID number that passed every check, uppercase, no spaces.
#[derive(Clone, PartialEq, Eq)]
pub struct IdNumber(String);

impl std::fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never log a raw ID number.
        write!(f, "IdNumber(****{})", self.last4())
    }
}

impl IdNumber {
    /// The normalised number.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last four characters, for staffed lanes.
    #[must_use]
    pub fn last4(&self) -> &str {
        &self.0[14..]
    }

    /// The six-digit region of issue.
    #[must_use]
    pub fn region(&self) -> &str {
        &self.0[..6]
    }
}

fn bad_id(message: String, message_zh: String) -> ApiError {
    ApiError::invalid("invalid_id_number", "id_number", message, message_zh)
}

/// Checks an 18-character resident ID number.
///
/// # Errors
/// Its length or characters, region prefix, birth date or check digit is wrong.
pub fn id_number(raw: &str) -> Result<IdNumber, ApiError> {
    let id: String = raw.trim().to_ascii_uppercase();
    let bytes = id.as_bytes();
    if bytes.len() != 18
        || !bytes[..17].iter().all(u8::is_ascii_digit)
        || !(bytes[17].is_ascii_digit() || bytes[17] == b'X')
    {
        return Err(bad_id(
            "ID number must be 17 digits followed by a digit or X".to_owned(),
            "身份证号码应为17位数字加1位数字或X".to_owned(),
        ));
    }
    let digit = |i: usize| u32::from(bytes[i] - b'0');
    let province = digit(0) * 10 + digit(1);
    if !PROVINCES.contains(&province) {
        return Err(bad_id(
            format!("ID number region prefix {province:02} is not a province code"),
            format!("身份证号码地区码 {province:02} 无效"),
        ));
    }
    let num = |from: usize, to: usize| (from..to).fold(0, |acc, i| acc * 10 + digit(i));
    let (year, month, day) = (num(6, 10), num(10, 12), num(12, 14));
    let this_year = current_year();
    if !(1900..=this_year).contains(&year)
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
    {
        return Err(bad_id(
            format!("ID number birth date {year:04}-{month:02}-{day:02} is not a valid date"),
            format!("身份证号码出生日期 {year:04}-{month:02}-{day:02} 无效"),
        ));
    }
    let sum: u32 = WEIGHTS.iter().enumerate().map(|(i, w)| w * digit(i)).sum();
    let expected = CHECK[(sum % 11) as usize];
    if bytes[17] != expected {
        return Err(bad_id(
            "ID number check digit is wrong; please check the number".to_owned(),
            "身份证号码校验位错误，请核对".to_owned(),
        ));
    }
    Ok(IdNumber(id))
}

fn current_year() -> u32 {
    let days = shouhu_code::time::now() / 86_400;
    civil_from_days(days).0
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's algorithm).
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "calendar arithmetic on small, checked ranges"
)]
fn civil_from_days(days: u64) -> (u32, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as u32;
    (y, m, d)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

/// Checks a mainland mobile number: 11 digits starting `1[3-9]`; spaces and `+86` allowed.
///
/// # Errors
/// Anything else.
pub fn phone(raw: &str) -> Result<String, ApiError> {
    let compact: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    let number = compact.strip_prefix("+86").unwrap_or(&compact);
    let b = number.as_bytes();
    if b.len() == 11
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
        && b.iter().all(u8::is_ascii_digit)
    {
        Ok(number.to_owned())
    } else {
        Err(ApiError::invalid(
            "invalid_phone",
            "phone",
            "Phone must be an 11-digit mainland mobile number starting with 13-19",
            "手机号应为以13-19开头的11位中国大陆手机号码",
        ))
    }
}

/// Checks a name: 1 to [`MAX_NAME_CHARS`] characters, no control characters.
///
/// # Errors
/// Empty, too long, or with control characters.
pub fn name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    let count = name.chars().count();
    if count == 0 || count > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "invalid_name",
            "name",
            format!("Name must be 1 to {MAX_NAME_CHARS} characters"),
            format!("姓名应为1至{MAX_NAME_CHARS}个字符"),
        ));
    }
    Ok(name.to_owned())
}

/// Checks an address: 1 to [`MAX_ADDRESS_CHARS`] characters, no control characters.
///
/// # Errors
/// Empty, too long, or with control characters.
pub fn address(raw: &str) -> Result<String, ApiError> {
    let address = raw.trim();
    let count = address.chars().count();
    if count == 0 || count > MAX_ADDRESS_CHARS || address.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "invalid_address",
            "address",
            format!("Address must be 1 to {MAX_ADDRESS_CHARS} characters"),
            format!("地址应为1至{MAX_ADDRESS_CHARS}个字符"),
        ));
    }
    Ok(address.to_owned())
}

/// The name as shown on a code: its first character and `*`, e.g. `张三` → `张*`.
#[must_use]
pub fn mask_name(name: &str) -> String {
    let first: String = name.chars().take(1).collect();
    format!("{first}*")
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// The GB 11643 standard's own example number.
    const VALID: &str = "11010519491231002X";

    #[test]
    fn the_standard_example_passes_and_is_normalised() {
        let id = id_number(" 11010519491231002x ").unwrap();
        assert_eq!(id.as_str(), VALID);
        assert_eq!(id.last4(), "002X");
        assert_eq!(id.region(), "110105");
        assert!(!format!("{id:?}").contains("1949"));
    }

    #[test]
    fn a_wrong_check_digit_is_refused() {
        let err = id_number("110105194912310021").unwrap_err();
        assert_eq!(err.code(), "invalid_id_number");
        assert!(err.to_string().contains("check digit"));
    }

    #[test]
    fn bad_dates_regions_and_shapes_are_refused_with_their_reason() {
        for (id, needle) in [
            ("11010519490230002X", "birth date"),
            ("11010518991231002X", "birth date"),
            ("99010519491231002X", "region prefix"),
            ("1101051949123100", "17 digits"),
            ("1101051949123100XX", "17 digits"),
        ] {
            let err = id_number(id).unwrap_err();
            assert!(err.to_string().contains(needle), "{id}: {err}");
        }
    }

    #[test]
    fn phones() {
        assert_eq!(phone("138 0013 8000").unwrap(), "13800138000");
        assert_eq!(phone("+8613800138000").unwrap(), "13800138000");
        for bad in ["12800138000", "1380013800", "1380013800a", ""] {
            assert_eq!(phone(bad).unwrap_err().code(), "invalid_phone", "{bad}");
        }
    }

    #[test]
    fn names_addresses_and_masks() {
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("Li Lei"), "L*");
        assert!(name("").is_err());
        assert!(name(&"名".repeat(33)).is_err());
        assert!(address("a\u{0}b").is_err());
        assert_eq!(address(" 济南市 ").unwrap(), "济南市");
    }

    #[test]
    fn calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_786), (2026, 11, 29));
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
    }
}
