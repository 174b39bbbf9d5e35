//! The French NIR (numéro d'inscription au répertoire, the social-security number).
//!
//! 13 characters — sex, year, month, département (Corsica `2A`/`2B`), commune, order — then a
//! 2-digit key equal to `97 − (number mod 97)`, where Corsica counts as 19 (`2A`) and 18
//! (`2B`). A random 15-digit string passes the key check about once in 97, so the leak guard
//! also requires the structure (sex 1–4 or 7–8, month 01–12, 20–42 or 50–99).

/// Whether `s` (spaces ignored) is a well-formed NIR with a valid key.
pub fn is_nir(s: &str) -> bool {
    let mut d = [0u8; 15];
    let mut n = 0;
    for b in s.bytes() {
        if b == b' ' {
            continue;
        }
        if n == 15 {
            return false;
        }
        d[n] = b;
        n += 1;
    }
    n == 15 && check(&d)
}

/// Structure and key of 15 characters (Corsica `2A`/`2B` at positions 6 and 7).
pub(crate) fn check(d: &[u8; 15]) -> bool {
    let corsica = match (d[5], d[6]) {
        (b'2', b'A' | b'a') => Some(19u64),
        (b'2', b'B' | b'b') => Some(18u64),
        _ => None,
    };
    let mut body: u64 = 0;
    for (i, &b) in d[..13].iter().enumerate() {
        let digit = match (corsica, i) {
            (Some(c), 5) => {
                body = body * 100 + c;
                continue;
            }
            (Some(_), 6) => continue,
            _ if b.is_ascii_digit() => u64::from(b - b'0'),
            _ => return false,
        };
        body = body * 10 + digit;
    }
    let sex = d[0];
    let month = (u32::from(d[3].wrapping_sub(b'0'))) * 10 + u32::from(d[4].wrapping_sub(b'0'));
    if !matches!(sex, b'1'..=b'4' | b'7' | b'8')
        || !(matches!(month, 1..=12 | 20..=42 | 50..=99))
        || !d[13].is_ascii_digit()
        || !d[14].is_ascii_digit()
    {
        return false;
    }
    let key = u64::from(d[13] - b'0') * 10 + u64::from(d[14] - b'0');
    key == 97 - body % 97
}

/// The NIR written in `s` (spaces, dots and dashes between its digits allowed) in the form a
/// data file holds it: 15 characters, Corsica upper-cased. `None` if `s` is not one.
pub fn canonical(s: &str) -> Option<String> {
    let c: String = s
        .chars()
        .filter(|c| !(c.is_ascii_whitespace() || matches!(c, '.' | '-')))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    is_nir(&c).then_some(c)
}

/// The key of a 13-digit NIR body (Corsica already replaced by 19/18).
pub fn key_of(body: u64) -> u64 {
    97 - body % 97
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_examples() {
        // 2 55 08 14 168 025, key 97 − (2550814168025 mod 97) = 38.
        assert_eq!(key_of(2_550_814_168_025), 38);
        assert!(is_nir("255081416802538"));
        assert!(is_nir("2 55 08 14 168 025 38"));
        assert!(!is_nir("255081416802539"));
        assert!(!is_nir("25508141680253"));
        assert!(!is_nir("2550814168025381"));
        assert!(!is_nir("ABCDEFGHIJKLMNO"));
        // Corsica: 1 80 01 2A 004 123 with 2A counted as 19.
        let k = key_of(1_800_119_004_123);
        assert!(is_nir(&format!("180012A004123{k:02}")));
        assert!(!is_nir(&format!("180012B004123{k:02}")));
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(
            canonical("2 55 08 14 168 025 38").as_deref(),
            Some("255081416802538")
        );
        assert_eq!(
            canonical("2-55-08-14-168-025-38").as_deref(),
            Some("255081416802538")
        );
        let k = key_of(1_800_119_004_123);
        assert_eq!(
            canonical(&format!("1.80.01.2a.004.123.{k:02}")),
            Some(format!("180012A004123{k:02}"))
        );
        assert_eq!(canonical("bad"), None);
        assert_eq!(canonical("255081416802539"), None);
    }

    proptest! {
        #[test]
        fn every_valid_body_has_one_key(sex in 1u64..=2, yy in 0u64..100, mm in 1u64..=12,
                                         dep in 1u64..96, rest in 0u64..1_000_000) {
            let body = ((((sex * 100 + yy) * 100 + mm) * 100 + dep) * 1_000_000) + rest;
            let s = format!("{body:013}");
            let k = key_of(body);
            let nir = format!("{s}{k:02}");
            prop_assert!(is_nir(&nir));
            let wrong = format!("{s}{:02}", (k % 97) + 1);
            prop_assert!(!is_nir(&wrong));
        }

        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = is_nir(&s);
        }
    }
}
