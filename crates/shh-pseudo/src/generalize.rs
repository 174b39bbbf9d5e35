//! Generalization of quasi-identifiers: the value is coarsened before it is stored, so the
//! fine-grained one never reaches the hub.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

/// How a quasi-identifier is coarsened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Generalization {
    /// Date, datetime or year-month → `YYYY-MM`.
    Month,
    /// Date, datetime or year-month → the year (integer).
    Year,
    /// INSEE commune code (`75056`, `2A004`, `97105`) → département (`75`, `2A`, `971`).
    Departement,
    /// Integer age → band of `width` years (`40-44`), top-coded at 90 (`90+`).
    AgeBand {
        /// Band width in years.
        width: u8,
    },
}

/// A generalized value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generalized {
    /// A text value.
    Text(String),
    /// An integer value.
    Int(i64),
}

/// A value that cannot be generalized this way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeneralizeError {
    /// The generalization does not apply to this kind of value.
    #[error("{0:?} does not apply to {1}")]
    NotApplicable(Generalization, &'static str),
    /// The value does not have the expected shape.
    #[error("{0}")]
    BadValue(String),
}

/// Age at which bands stop.
pub const AGE_TOP: i64 = 90;

impl Generalization {
    /// Whether the result is an integer (else text).
    pub fn yields_int(self) -> bool {
        matches!(self, Generalization::Year)
    }

    /// Generalizes a date.
    pub fn date(self, d: NaiveDate) -> Result<Generalized, GeneralizeError> {
        match self {
            Generalization::Month => Ok(Generalized::Text(format!(
                "{:04}-{:02}",
                d.year(),
                d.month()
            ))),
            Generalization::Year => Ok(Generalized::Int(i64::from(d.year()))),
            other => Err(GeneralizeError::NotApplicable(other, "dates")),
        }
    }

    /// Generalizes a year-month (`YYYY-MM`).
    pub fn year_month(self, year: i32, month: u32) -> Result<Generalized, GeneralizeError> {
        match self {
            Generalization::Month => Ok(Generalized::Text(format!("{year:04}-{month:02}"))),
            Generalization::Year => Ok(Generalized::Int(i64::from(year))),
            other => Err(GeneralizeError::NotApplicable(other, "year-months")),
        }
    }

    /// Generalizes an integer (an age, or a year kept as is by `Year`).
    pub fn int(self, v: i64) -> Result<Generalized, GeneralizeError> {
        match self {
            Generalization::AgeBand { width } => {
                let w = i64::from(width.max(1));
                if v < 0 {
                    return Err(GeneralizeError::BadValue("a negative age".into()));
                }
                if v >= AGE_TOP {
                    return Ok(Generalized::Text(format!("{AGE_TOP}+")));
                }
                let lo = v / w * w;
                let hi = (lo + w - 1).min(AGE_TOP - 1);
                Ok(Generalized::Text(format!("{lo}-{hi}")))
            }
            Generalization::Year => Ok(Generalized::Int(v)),
            other => Err(GeneralizeError::NotApplicable(other, "integers")),
        }
    }

    /// Generalizes a text value (a commune code).
    pub fn text(self, s: &str) -> Result<Generalized, GeneralizeError> {
        match self {
            Generalization::Departement => departement(s).map(Generalized::Text),
            other => Err(GeneralizeError::NotApplicable(other, "text")),
        }
    }
}

/// The département of an INSEE commune code: overseas (`97x`, `98x`) keep three characters.
pub fn departement(code: &str) -> Result<String, GeneralizeError> {
    let c = code.trim();
    let ok = c.len() == 5
        && c.is_char_boundary(2)
        && (c[..2].bytes().all(|b| b.is_ascii_digit())
            || c[..2].eq_ignore_ascii_case("2a")
            || c[..2].eq_ignore_ascii_case("2b"))
        && c[2..].bytes().all(|b| b.is_ascii_digit());
    if !ok {
        return Err(GeneralizeError::BadValue(
            "not a 5-character INSEE commune code".into(),
        ));
    }
    if c.starts_with("97") || c.starts_with("98") {
        Ok(c[..3].to_owned())
    } else {
        Ok(c[..2].to_ascii_uppercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_and_codes() {
        let g = Generalization::AgeBand { width: 5 };
        assert_eq!(g.int(42), Ok(Generalized::Text("40-44".into())));
        assert_eq!(g.int(0), Ok(Generalized::Text("0-4".into())));
        assert_eq!(g.int(93), Ok(Generalized::Text("90+".into())));
        assert_eq!(g.int(88), Ok(Generalized::Text("85-89".into())));
        assert_eq!(departement("75056").as_deref(), Ok("75"));
        assert_eq!(departement("2a004").as_deref(), Ok("2A"));
        assert_eq!(departement("97105").as_deref(), Ok("971"));
        assert!(departement("750").is_err());
        assert!(departement("é7505").is_err());
        let d = NaiveDate::from_ymd_opt(1984, 3, 9).expect("date");
        assert_eq!(
            Generalization::Month.date(d),
            Ok(Generalized::Text("1984-03".into()))
        );
        assert_eq!(Generalization::Year.date(d), Ok(Generalized::Int(1984)));
        assert!(Generalization::Departement.date(d).is_err());
    }
}
