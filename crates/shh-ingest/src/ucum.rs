//! UCUM unit codes, checked against the grammar and the table of units (the Unified Code for
//! Units of Measure, case-sensitive form), so that a field meant for a unit cannot carry free
//! text: FHIR's `Quantity.unit` is a display string that a producer can fill with anything (a
//! name, an e-mail address); its `code`, when the system is UCUM, is a unit.
//!
//! A code is a term of components joined by `.` and `/` (a leading `/` allowed), each an atom
//! with an optional metric prefix and exponent (`mg`, `m2`, `10*3`), a number, a parenthesized
//! term, or an annotation. Annotations (`{score}`) are free text in UCUM and mean the unit 1:
//! only the common ones in [`ANNOTATIONS`] are accepted, so that a name cannot hide in one.

/// Atoms that take a metric prefix.
const METRIC: &[&str] = &[
    "m", "s", "g", "rad", "K", "C", "cd", "mol", "sr", "Hz", "N", "Pa", "J", "W", "A", "V", "F",
    "Ohm", "S", "Wb", "Cel", "T", "H", "lm", "lx", "Bq", "Gy", "Sv", "l", "L", "ar", "t", "bar",
    "u", "eV", "pc", "[c]", "[h]", "[k]", "[eps_0]", "[mu_0]", "[e]", "[m_e]", "[m_p]", "[G]",
    "[g]", "[ly]", "gf", "Ky", "Gal", "dyn", "erg", "P", "Bi", "St", "Mx", "G", "Oe", "Gb", "sb",
    "Lmb", "ph", "Ci", "R", "RAD", "REM", "cal_[15]", "cal_[20]", "cal_m", "cal_IT", "cal_th",
    "cal", "tex", "m[H2O]", "m[Hg]", "eq", "osm", "g%", "kat", "U", "[iU]", "[IU]", "Np", "B",
    "B[SPL]", "B[V]", "B[mV]", "B[uV]", "B[10.nV]", "B[W]", "B[kW]", "st", "b", "mho", "bit", "By",
    "Bd",
];

/// Atoms that do not.
const OTHER: &[&str] = &[
    "10*",
    "10^",
    "[pi]",
    "%",
    "[ppth]",
    "[ppm]",
    "[ppb]",
    "[pptr]",
    "gon",
    "deg",
    "'",
    "''",
    "min",
    "h",
    "d",
    "a_t",
    "a_j",
    "a_g",
    "a",
    "wk",
    "mo_s",
    "mo_j",
    "mo_g",
    "mo",
    "AU",
    "[lbf_av]",
    "[in_i]",
    "[ft_i]",
    "[yd_i]",
    "[mi_i]",
    "[fth_i]",
    "[nmi_i]",
    "[kn_i]",
    "[sin_i]",
    "[sft_i]",
    "[syd_i]",
    "[cin_i]",
    "[cft_i]",
    "[cyd_i]",
    "[bf_i]",
    "[cr_i]",
    "[mil_i]",
    "[cml_i]",
    "[hd_i]",
    "[ft_us]",
    "[yd_us]",
    "[in_us]",
    "[rd_us]",
    "[ch_us]",
    "[lk_us]",
    "[rch_us]",
    "[rlk_us]",
    "[fth_us]",
    "[fur_us]",
    "[mi_us]",
    "[acr_us]",
    "[srd_us]",
    "[smi_us]",
    "[sct]",
    "[twp]",
    "[mil_us]",
    "[in_br]",
    "[ft_br]",
    "[rd_br]",
    "[ch_br]",
    "[lk_br]",
    "[fth_br]",
    "[pc_br]",
    "[yd_br]",
    "[mi_br]",
    "[nmi_br]",
    "[kn_br]",
    "[acr_br]",
    "[gal_us]",
    "[bbl_us]",
    "[qt_us]",
    "[pt_us]",
    "[gil_us]",
    "[foz_us]",
    "[fdr_us]",
    "[min_us]",
    "[crd_us]",
    "[bu_us]",
    "[gal_wi]",
    "[pk_us]",
    "[dqt_us]",
    "[dpt_us]",
    "[tbs_us]",
    "[tsp_us]",
    "[cup_us]",
    "[foz_m]",
    "[cup_m]",
    "[tsp_m]",
    "[tbs_m]",
    "[gal_br]",
    "[pk_br]",
    "[bu_br]",
    "[qt_br]",
    "[pt_br]",
    "[gil_br]",
    "[foz_br]",
    "[fdr_br]",
    "[min_br]",
    "[gr]",
    "[lb_av]",
    "[oz_av]",
    "[dr_av]",
    "[scwt_av]",
    "[lcwt_av]",
    "[ston_av]",
    "[lton_av]",
    "[stone_av]",
    "[pwt_tr]",
    "[oz_tr]",
    "[lb_tr]",
    "[sc_ap]",
    "[dr_ap]",
    "[oz_ap]",
    "[lb_ap]",
    "[oz_m]",
    "[lne]",
    "[pnt]",
    "[pca]",
    "[pnt_pr]",
    "[pca_pr]",
    "[pied]",
    "[pouce]",
    "[ligne]",
    "[didot]",
    "[cicero]",
    "[degF]",
    "[degR]",
    "[degRe]",
    "[Cal]",
    "[Btu_39]",
    "[Btu_59]",
    "[Btu_60]",
    "[Btu_m]",
    "[Btu_IT]",
    "[Btu_th]",
    "[Btu]",
    "[HP]",
    "[den]",
    "[in_i'H2O]",
    "[in_i'Hg]",
    "[PRU]",
    "[wood'U]",
    "[diop]",
    "[p'diop]",
    "%[slope]",
    "[mesh_i]",
    "[Ch]",
    "[drp]",
    "[hnsf'U]",
    "[MET]",
    "[hp'_X]",
    "[hp'_C]",
    "[hp'_M]",
    "[hp'_Q]",
    "[hp_X]",
    "[hp_C]",
    "[hp_M]",
    "[hp_Q]",
    "[kp_X]",
    "[kp_C]",
    "[kp_M]",
    "[kp_Q]",
    "[pH]",
    "[S]",
    "[HPF]",
    "[LPF]",
    "[arb'U]",
    "[USP'U]",
    "[GPL'U]",
    "[MPL'U]",
    "[APL'U]",
    "[beth'U]",
    "[anti'Xa'U]",
    "[todd'U]",
    "[dye'U]",
    "[smgy'U]",
    "[bdsk'U]",
    "[ka'U]",
    "[knk'U]",
    "[mclg'U]",
    "[tb'U]",
    "[CCID_50]",
    "[TCID_50]",
    "[EID_50]",
    "[PFU]",
    "[FFU]",
    "[CFU]",
    "[IR]",
    "[BAU]",
    "[AU]",
    "[Amb'a'1'U]",
    "[PNU]",
    "[Lf]",
    "[D'ag'U]",
    "[FEU]",
    "[ELU]",
    "[EU]",
    "Ao",
    "att",
    "[psi]",
    "circ",
    "sph",
    "[car_m]",
    "[car_Au]",
    "[smoot]",
    "bit_s",
];

/// Metric prefixes (decimal and binary).
const PREFIXES: &[&str] = &[
    "da", "Ki", "Mi", "Gi", "Ti", "Y", "Z", "E", "P", "T", "G", "M", "k", "h", "d", "c", "m", "u",
    "n", "p", "f", "a", "z", "y",
];

/// Annotations accepted (UCUM lets any text stand there; these are the ones clinical
/// terminologies use).
pub const ANNOTATIONS: &[&str] = &[
    "#",
    "1.73_m2",
    "beats",
    "breaths",
    "cells",
    "copies",
    "count",
    "CPM",
    "drinks",
    "Ehrlich'U",
    "events",
    "HbA1c",
    "index",
    "INR",
    "minutes",
    "nominal",
    "packs",
    "pack-years",
    "Percentile",
    "puffs",
    "rating",
    "ratio",
    "RBC",
    "score",
    "spermatozoa",
    "steps",
    "T-score",
    "tablets",
    "times",
    "titer",
    "tot",
    "total",
    "visits",
    "WBC",
    "Z-score",
    "z-score",
];

/// Whether `code` is a UCUM unit (case-sensitive form).
pub fn is_ucum(code: &str) -> bool {
    let b = code.as_bytes();
    if b.is_empty() || b.len() > 64 || !code.is_ascii() {
        return false;
    }
    let start = usize::from(b[0] == b'/');
    term(b, start, 0).is_some_and(|end| end == b.len())
}

/// A term from `i`: components joined by `.` or `/`. Returns where it ends.
fn term(b: &[u8], i: usize, depth: u8) -> Option<usize> {
    if depth > 8 {
        return None;
    }
    let mut end = component(b, i, depth)?;
    while end < b.len() && matches!(b[end], b'.' | b'/') {
        end = component(b, end + 1, depth)?;
    }
    Some(end)
}

fn component(b: &[u8], i: usize, depth: u8) -> Option<usize> {
    match b.get(i)? {
        b'(' => {
            let end = term(b, i + 1, depth + 1)?;
            (b.get(end) == Some(&b')')).then_some(end + 1)
        }
        b'{' => annotation(b, i),
        c if c.is_ascii_digit() && !b[i..].starts_with(b"10*") && !b[i..].starts_with(b"10^") => {
            // A number (`1/d`, `100`): short, so a NIR or a phone number is not a unit.
            let mut j = i;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            (j - i <= 6).then_some(j)
        }
        _ => {
            // Every way to read a unit here, longest first; the rest of the term decides.
            let mut ends: Vec<usize> = Vec::new();
            for atom in METRIC.iter().chain(OTHER) {
                if b[i..].starts_with(atom.as_bytes()) {
                    ends.push(i + atom.len());
                }
            }
            for p in PREFIXES {
                if b[i..].starts_with(p.as_bytes()) {
                    let j = i + p.len();
                    for atom in METRIC {
                        if b[j..].starts_with(atom.as_bytes()) {
                            ends.push(j + atom.len());
                        }
                    }
                }
            }
            ends.sort_unstable_by(|a, b| b.cmp(a));
            ends.dedup();
            for e in ends {
                let e = exponent(b, e);
                let e = if b.get(e) == Some(&b'{') {
                    match annotation(b, e) {
                        Some(e) => e,
                        None => continue,
                    }
                } else {
                    e
                };
                // A reading is kept if what follows can continue the term.
                if e == b.len() || matches!(b[e], b'.' | b'/' | b')') {
                    return Some(e);
                }
            }
            None
        }
    }
}

fn exponent(b: &[u8], i: usize) -> usize {
    let mut j = i;
    if j < b.len() && matches!(b[j], b'+' | b'-') && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
        j += 1;
    }
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    if j > i && !b[j - 1].is_ascii_digit() {
        return i;
    }
    j
}

fn annotation(b: &[u8], i: usize) -> Option<usize> {
    let close = i + b[i..].iter().position(|&c| c == b'}')?;
    let text = std::str::from_utf8(&b[i + 1..close]).ok()?;
    ANNOTATIONS.contains(&text).then_some(close + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_clinical_data_uses() {
        for u in [
            "mg/dL",
            "kg",
            "cm",
            "kg/m2",
            "mm[Hg]",
            "/min",
            "%",
            "{score}",
            "10*3/uL",
            "10*6/uL",
            "g/dL",
            "fL",
            "pg",
            "mmol/L",
            "U/L",
            "mL/min/{1.73_m2}",
            "[lb_av]",
            "[in_i]",
            "Cel",
            "[degF]",
            "mg",
            "ug/L",
            "meq/L",
            "s",
            "h",
            "min",
            "a",
            "1",
            "{beats}/min",
            "kg.m-2",
            "m2",
            "cm[H2O]",
            "[IU]/L",
            "ng/mL",
            "mL",
            "L/min",
            "umol/L",
            "/[HPF]",
            "{#}/[HPF]",
            "(mg/dL)/h",
            "mosm/kg",
            "[pH]",
            "1/d",
        ] {
            assert!(is_ucum(u), "{u}");
        }
    }

    #[test]
    fn free_text_is_not_a_unit() {
        for u in [
            "",
            "Jean Dupont",
            "jean.dupont@example.fr",
            "mg/dL jean@x.io",
            "Dupont",
            "{Dupont}",
            "mg{Jean Dupont}",
            "06 12 34 56 78",
            "milligrams",
            "mg/",
            "(mg",
            "mg/dL)",
            "kg m2",
            "185057800608491",
            "é",
            "((((((((((m))))))))))",
        ] {
            assert!(!is_ucum(u), "{u}");
        }
    }
}
