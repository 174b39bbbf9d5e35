//! `shh synth snds`: a deterministic, coherent synthetic population in SNDS shape.
//!
//! Four tables, with official SNDS column names where they exist:
//!
//! | table | what | key |
//! | --- | --- | --- |
//! | `IR_BEN_R` | beneficiaries: raw fake NIR (valid key), birth year and month, sex, département, commune (full INSEE code), death | (`BEN_NIR_PSA`, `BEN_RNG_GEM`) |
//! | `ER_PRS_F` | outpatient claims (prestations): flux key, care date, act nature, provider, amounts | the 9 flux columns |
//! | `ER_PHA_F` | pharmacy lines of the pharmacy claims (with the patient, so opt-outs reach them): CIP13, ATC class, quantity, price | → `ER_PRS_F` |
//! | `T_MCO_B` | hospital stays (PMSI MCO): ICD-10 diagnoses, dates, length of stay, age, sex | (`ETA_NUM`, `RSA_NUM`) |
//!
//! `BEN_NIR_PSA` and `NIR_ANO_17` hold the *source* identifier (a raw NIR), which ingest
//! pseudonymizes: the files stand for what a producer sends, not what the hub stores.
//!
//! The population follows the French age pyramid; chronic diseases (diabetes, hypertension,
//! asthma, COPD, depression) have age-dependent prevalence and bring monthly dispensing of
//! their drugs; visits and infections are seasonal (winter peaks); hospital stays depend on age
//! and conditions. Every foreign key holds. Patients are generated in blocks, each from its own
//! seed, on all cores: the output depends on `--seed` and `--patients` only, not on the number
//! of threads.

use serde_json::json;
use shh_task::Task;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The year the claims cover.
pub const YEAR: i32 = 2023;
const BLOCK: u64 = 2048;

/// What was generated.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SynthReport {
    /// Output directory.
    pub out: PathBuf,
    /// Patients.
    pub patients: u64,
    /// Seed.
    pub seed: u64,
    /// Per table: name, rows, CSV bytes.
    pub tables: Vec<(String, u64, u64)>,
    /// Total rows.
    pub rows: u64,
}

/// Table names, in dependency order (a table's references come before it).
pub const TABLES: [&str; 4] = ["IR_BEN_R", "ER_PRS_F", "ER_PHA_F", "T_MCO_B"];

/// xoshiro256++ seeded by SplitMix64: fixed, documented output on every platform.
struct Rng([u64; 4]);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self([next(), next(), next(), next()])
    }
    fn next(&mut self) -> u64 {
        let s = &mut self.0;
        let r = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        r
    }
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n.max(1))) >> 64) as u64
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    fn pick<T: Copy>(&mut self, items: &[(T, f64)]) -> T {
        let total: f64 = items.iter().map(|i| i.1).sum();
        let mut x = self.unit() * total;
        for &(v, w) in items {
            if x < w {
                return v;
            }
            x -= w;
        }
        items[items.len() - 1].0
    }
    /// Poisson by inversion (small means).
    fn poisson(&mut self, mean: f64) -> u32 {
        let l = (-mean).exp();
        let (mut k, mut p) = (0u32, self.unit());
        while p > l && k < 200 {
            k += 1;
            p *= self.unit();
        }
        k
    }
}

/// Age bands (lower bound, share of the French population, 2023).
const PYRAMID: [(u32, f64); 10] = [
    (0, 10.8),
    (10, 12.2),
    (20, 10.9),
    (30, 12.0),
    (40, 12.5),
    (50, 13.2),
    (60, 12.0),
    (70, 9.9),
    (80, 4.8),
    (90, 1.2),
];
/// Départements weighted roughly by population; the rest share the remainder.
const DEPTS: [(&str, f64); 16] = [
    ("75", 3.2),
    ("13", 3.0),
    ("59", 3.8),
    ("69", 2.8),
    ("92", 2.4),
    ("93", 2.5),
    ("33", 2.4),
    ("94", 2.1),
    ("31", 2.1),
    ("44", 2.2),
    ("06", 1.6),
    ("67", 1.7),
    ("2A", 0.25),
    ("2B", 0.27),
    ("971", 0.6),
    ("974", 1.3),
];
/// Monthly weight of visits (winter peak).
const SEASON: [f64; 12] = [
    1.3, 1.25, 1.1, 1.0, 0.95, 0.9, 0.75, 0.6, 0.95, 1.05, 1.1, 1.2,
];
const MONTH_DAYS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

#[derive(Clone, Copy, PartialEq)]
enum Chronic {
    Diabetes,
    Hypertension,
    Asthma,
    Copd,
    Depression,
}

/// (condition, ICD-10, ATC, CIP13, unit price in cents).
const CHRONIC_DRUGS: [(Chronic, &str, &str, &str, u32); 5] = [
    (Chronic::Diabetes, "E11", "A10BA02", "3400930000011", 412),
    (
        Chronic::Hypertension,
        "I10",
        "C09AA05",
        "3400930000028",
        538,
    ),
    (Chronic::Asthma, "J45", "R03AC02", "3400930000035", 411),
    (Chronic::Copd, "J44", "R03BB04", "3400930000042", 3720),
    (Chronic::Depression, "F32", "N06AB10", "3400930000059", 987),
];

fn prevalence(c: Chronic, age: u32) -> f64 {
    match c {
        Chronic::Diabetes => match age {
            0..40 => 0.003,
            40..60 => 0.05,
            60..80 => 0.12,
            _ => 0.15,
        },
        Chronic::Hypertension => match age {
            0..40 => 0.01,
            40..60 => 0.18,
            60..80 => 0.42,
            _ => 0.58,
        },
        Chronic::Asthma => {
            if age < 18 {
                0.08
            } else {
                0.06
            }
        }
        Chronic::Copd => {
            if age >= 45 {
                0.06
            } else {
                0.0
            }
        }
        Chronic::Depression => {
            if age >= 18 {
                0.05
            } else {
                0.01
            }
        }
    }
}

struct Dates {
    /// `YYYY-MM-DD` of each day of the year.
    days: Vec<String>,
    /// First day of the month after each day's month (the claim's flux date).
    flux: Vec<String>,
    /// Month (0-based) of each day.
    month: Vec<usize>,
}

impl Dates {
    fn new() -> Self {
        let mut days = Vec::new();
        let mut flux = Vec::new();
        let mut month = Vec::new();
        for (m, &n) in MONTH_DAYS.iter().enumerate() {
            for d in 1..=n {
                days.push(format!("{YEAR}-{:02}-{d:02}", m + 1));
                flux.push(if m == 11 {
                    format!("{}-01-01", YEAR + 1)
                } else {
                    format!("{YEAR}-{:02}-01", m + 2)
                });
                month.push(m);
            }
        }
        Self { days, flux, month }
    }
    fn seasonal_day(&self, rng: &mut Rng) -> usize {
        let weights: [(usize, f64); 12] = std::array::from_fn(|m| (m, SEASON[m]));
        let m = rng.pick(&weights);
        let start: u32 = MONTH_DAYS[..m].iter().sum();
        (start + rng.below(u64::from(MONTH_DAYS[m])) as u32) as usize
    }
}

/// Fast CSV row writing into a byte buffer.
struct Out<'a>(&'a mut Vec<u8>, bool);

impl Out<'_> {
    fn sep(&mut self) {
        if self.1 {
            self.0.push(b',');
        }
        self.1 = true;
    }
    fn s(&mut self, v: &str) -> &mut Self {
        self.sep();
        self.0.extend_from_slice(v.as_bytes());
        self
    }
    fn i(&mut self, v: u64) -> &mut Self {
        self.sep();
        let mut b = itoa::Buffer::new();
        self.0.extend_from_slice(b.format(v).as_bytes());
        self
    }
    fn empty(&mut self) -> &mut Self {
        self.sep();
        self
    }
    /// Cents as a decimal amount.
    fn money(&mut self, cents: u64) -> &mut Self {
        self.sep();
        let mut b = itoa::Buffer::new();
        self.0.extend_from_slice(b.format(cents / 100).as_bytes());
        let c = cents % 100;
        self.0
            .extend_from_slice(&[b'.', b'0' + (c / 10) as u8, b'0' + (c % 10) as u8]);
        self
    }
    fn end(&mut self) {
        self.0.push(b'\n');
        self.1 = false;
    }
}

/// The CSV bytes of a block of patients, one buffer per table, and the row counts. Blocks
/// are reused from one group to the next, so the buffers are allocated (and page-faulted) once.
#[derive(Default)]
struct Block {
    bufs: [Vec<u8>; 4],
    rows: [u64; 4],
}

/// The raw NIR of patient `idx` (unique for up to 23 million patients).
pub fn nir_of(sex: u32, birth_year: i32, birth_month: u32, dept: &str, idx: u64) -> String {
    let mm = if idx < 1_000_000 {
        u64::from(birth_month)
    } else {
        20 + (idx / 1_000_000 - 1) % 23
    };
    let yy = (birth_year.rem_euclid(100)) as u64;
    let d2 = &dept[..2];
    let (dept_text, dept_num) = match d2 {
        "2A" => ("2A".to_owned(), 19),
        "2B" => ("2B".to_owned(), 18),
        d => (d.to_owned(), d.parse::<u64>().unwrap_or(99)),
    };
    // A bijection of 0..10⁶ (7919 is prime to 10⁶): unique, but not visibly sequential.
    let tail = (idx % 1_000_000 * 7919 + 104_729) % 1_000_000;
    let body = (((u64::from(sex) * 100 + yy) * 100 + mm) * 100 + dept_num) * 1_000_000 + tail;
    let key = shh_pseudo::nir::key_of(body);
    format!("{sex}{yy:02}{mm:02}{dept_text}{tail:06}{key:02}")
}

#[cfg(test)]
fn block(seed: u64, first: u64, count: u64, dates: &Dates) -> Block {
    let mut b = Block::default();
    fill_block(&mut b, seed, first, count, dates);
    b
}

fn fill_block(out: &mut Block, seed: u64, first: u64, count: u64, dates: &Dates) {
    let mut rng = Rng::new(seed ^ first.wrapping_mul(0xA24B_AED4_963E_E407));
    for b in &mut out.bufs {
        b.clear();
    }
    out.rows = [0; 4];
    let Block { bufs, rows } = out;
    for idx in first..first + count {
        let band = rng.pick(&PYRAMID.map(|(a, w)| (a, w)));
        let age = (band + rng.below(10) as u32).min(104);
        let sex: u32 = if age >= 80 {
            if rng.chance(0.62) { 2 } else { 1 }
        } else if rng.chance(0.51) {
            2
        } else {
            1
        };
        let birth_year = YEAR - age as i32;
        let birth_month = 1 + rng.below(12) as u32;
        let dept: String = if rng.chance(0.72) {
            rng.pick(&DEPTS).to_owned()
        } else {
            let mut d = 1 + rng.below(95);
            if d == 20 {
                d = 21;
            }
            format!("{d:02}")
        };
        let commune = if dept.len() == 3 {
            format!("{dept}{:02}", 1 + rng.below(30))
        } else {
            format!("{dept}{:03}", 1 + rng.below(500))
        };
        let birth_dept = if rng.chance(0.6) {
            dept.clone()
        } else {
            format!("{:02}", 1 + rng.below(19))
        };
        let nir = nir_of(sex, birth_year, birth_month, &birth_dept, idx);
        let mortality = match age {
            0..50 => 0.0008,
            50..70 => 0.006,
            70..80 => 0.02,
            80..90 => 0.07,
            _ => 0.2,
        };
        let death_day = rng.chance(mortality).then(|| rng.below(365) as usize);
        let alive = |d: usize| death_day.is_none_or(|dd| d <= dd);
        let chronic: Vec<usize> = (0..CHRONIC_DRUGS.len())
            .filter(|&i| rng.chance(prevalence(CHRONIC_DRUGS[i].0, age)))
            .collect();

        // IR_BEN_R
        {
            let mut o = Out(&mut bufs[0], false);
            o.s(&nir).i(1).i(birth_year as u64);
            o.sep();
            let _ = write!(o.0, "{birth_month:02}");
            o.i(u64::from(sex)).s(&format!("{:0>3}", dept)).s(&commune);
            match death_day {
                Some(d) => {
                    o.s(&dates.days[d]).s(&dates.days[d][..7].replace('-', ""));
                }
                None => {
                    o.empty().empty();
                }
            }
            o.end();
            rows[0] += 1;
        }

        // Outpatient visits and pharmacy.
        let base = match age {
            0..5 => 6.0,
            5..18 => 3.0,
            18..60 => 3.5,
            60..80 => 6.5,
            _ => 9.0,
        } + 2.5 * chronic.len() as f64;
        let visits = rng.poisson(base);
        let mut claim_no: u64 = 0;
        let org = format!("01C{:0>6}", &dept);
        let mut claim = |rng: &mut Rng,
                         bufs: &mut [Vec<u8>; 4],
                         rows: &mut [u64; 4],
                         day: usize,
                         nat: u64,
                         spe: u64,
                         cents: u64,
                         lines: &[(&str, &str, u32)]| {
            claim_no += 1;
            let dct = idx * 1000 + claim_no;
            let provider = rng.below(4000);
            let mut o = Out(&mut bufs[1], false);
            o.s(&nir)
                .i(1)
                .s(&dates.flux[day])
                .s(&dates.flux[day])
                .i(1)
                .i(1)
                .i(0)
                .s(&org)
                .i(dct)
                .i(1)
                .i(1);
            o.s(&dates.days[day]).i(nat).s(&dept[..2]);
            let _ = write!(o.0, "{provider:06}");
            o.i(spe).i(1).money(cents).money(cents * 70 / 100);
            o.end();
            rows[1] += 1;
            for (k, (cip, atc, price)) in lines.iter().enumerate() {
                let qty = 1 + rng.below(3);
                let mut o = Out(&mut bufs[2], false);
                o.s(&nir)
                    .i(1)
                    .s(&dates.flux[day])
                    .s(&dates.flux[day])
                    .i(1)
                    .i(1)
                    .i(0)
                    .s(&org)
                    .i(dct)
                    .i(1)
                    .i(1);
                o.i(k as u64 + 1)
                    .s(cip)
                    .s(atc)
                    .i(qty)
                    .money(u64::from(*price));
                o.end();
                rows[2] += 1;
            }
        };
        for _ in 0..visits {
            let day = dates.seasonal_day(&mut rng);
            if !alive(day) {
                continue;
            }
            let gp = rng.chance(0.7);
            let (nat, spe, cents) = if gp {
                (1111, 1, 2650)
            } else {
                (1112, 2 + rng.below(30), 3000 + 100 * rng.below(40))
            };
            claim(&mut rng, bufs, rows, day, nat, spe, cents, &[]);
            // Acute prescriptions: antibiotics more in winter, analgesics all year.
            let winter = matches!(dates.month[day], 0 | 1 | 10 | 11);
            if gp && rng.chance(if winter { 0.45 } else { 0.2 }) {
                let d = (day + 1).min(364);
                claim(
                    &mut rng,
                    bufs,
                    rows,
                    d,
                    3317,
                    50,
                    0,
                    &[
                        ("3400930000066", "J01CA04", 289),
                        ("3400930000073", "N02BE01", 195),
                    ],
                );
            } else if rng.chance(0.15) {
                let d = (day + 1).min(364);
                claim(
                    &mut rng,
                    bufs,
                    rows,
                    d,
                    3317,
                    50,
                    0,
                    &[("3400930000073", "N02BE01", 195)],
                );
            }
        }
        for &c in &chronic {
            let (_, _, atc, cip, price) = CHRONIC_DRUGS[c];
            let offset = rng.below(28) as usize;
            for m in 0..12usize {
                let day = (MONTH_DAYS[..m].iter().sum::<u32>() as usize + offset).min(364);
                if alive(day) && rng.chance(0.9) {
                    claim(
                        &mut rng,
                        bufs,
                        rows,
                        day,
                        3317,
                        50,
                        u64::from(price),
                        &[(cip, atc, price)],
                    );
                }
            }
        }

        // Hospital stays.
        let rate = match age {
            0..60 => 0.08,
            60..80 => 0.22,
            _ => 0.38,
        } + 0.08 * chronic.len() as f64;
        for stay in 0..rng.poisson(rate) {
            let day = dates.seasonal_day(&mut rng);
            if !alive(day) {
                continue;
            }
            let winter = matches!(dates.month[day], 0 | 1 | 11);
            let mut options: Vec<(&str, f64)> = vec![
                ("K35", if age < 30 { 2.0 } else { 0.3 }),
                ("R07", 1.0),
                ("Z51", 0.8),
            ];
            if winter {
                options.push(("J18", if age >= 65 { 3.0 } else { 1.0 }));
            }
            if age >= 80 {
                options.push(("S72", 2.0));
            }
            if sex == 2 && (20..42).contains(&age) {
                options.push(("O80", 4.0));
            }
            if sex == 2 && age >= 50 {
                options.push(("C50", 0.6));
            }
            if sex == 1 && age >= 55 {
                options.push(("I21", 0.8));
            }
            for &c in &chronic {
                options.push(match CHRONIC_DRUGS[c].0 {
                    Chronic::Hypertension => ("I50", 1.2),
                    Chronic::Copd => ("J44", 2.0),
                    Chronic::Diabetes => ("E11", 0.8),
                    Chronic::Asthma => ("J45", 0.6),
                    Chronic::Depression => ("F32", 0.5),
                });
            }
            let dgn = rng.pick(&options);
            let mean_los = match dgn {
                "O80" => 3.5,
                "S72" => 10.0,
                "Z51" | "K35" => 1.5,
                _ => 5.0,
            };
            let los = rng.poisson(mean_los).max(if dgn == "Z51" { 0 } else { 1 }) as usize;
            let end = (day + los).min(364);
            let rel = chronic
                .first()
                .map(|&c| CHRONIC_DRUGS[c].1)
                .filter(|r| *r != dgn);
            let mut o = Out(&mut bufs[3], false);
            o.s(&format!("{:0>2}0{:06}", &dept[..2], rng.below(900)))
                .s(&format!("{:010}", idx * 10 + u64::from(stay)))
                .s(&nir)
                .s(&dates.days[day])
                .s(&dates.days[end])
                .i((end - day) as u64)
                .s(dgn);
            match rel {
                Some(r) => o.s(r),
                None => o.empty(),
            };
            o.s("8")
                .s(if death_day == Some(end) { "9" } else { "8" })
                .i(u64::from(age))
                .i(u64::from(sex));
            o.end();
            rows[3] += 1;
        }
    }
}

fn field(
    name: &str,
    kind: &str,
    description: &str,
    constraints: serde_json::Value,
) -> serde_json::Value {
    let mut f =
        json!({"name": name, "type": kind, "format": "default", "description": description});
    if name == "BEN_NAI_MOI" {
        f["format"] = json!("%m");
    }
    if !constraints.is_null() {
        f["constraints"] = constraints;
    }
    f
}

const FLUX: [&str; 9] = [
    "FLX_DIS_DTD",
    "FLX_TRT_DTD",
    "FLX_EMT_TYP",
    "FLX_EMT_NUM",
    "FLX_EMT_ORD",
    "ORG_CLE_NUM",
    "DCT_ORD_NUM",
    "PRS_ORD_NUM",
    "REM_TYP_AFF",
];

fn flux_fields() -> Vec<serde_json::Value> {
    vec![
        field(
            "FLX_DIS_DTD",
            "date",
            "Date de mise à disposition des données",
            json!({"required": true}),
        ),
        field(
            "FLX_TRT_DTD",
            "date",
            "Date d'entrée des données dans le système d'information",
            json!({"required": true}),
        ),
        field(
            "FLX_EMT_TYP",
            "integer",
            "Type d'émetteur",
            json!({"minimum": 0, "maximum": 9}),
        ),
        field(
            "FLX_EMT_NUM",
            "integer",
            "Numéro d'émetteur du flux",
            json!({"minimum": 0}),
        ),
        field(
            "FLX_EMT_ORD",
            "integer",
            "Numéro de séquence du flux",
            json!({"minimum": 0}),
        ),
        field(
            "ORG_CLE_NUM",
            "string",
            "Organisme de liquidation des prestations",
            json!({"maxLength": 9}),
        ),
        field(
            "DCT_ORD_NUM",
            "integer",
            "Numéro d'ordre du décompte dans l'organisme",
            json!({"minimum": 0}),
        ),
        field(
            "PRS_ORD_NUM",
            "integer",
            "Numéro d'ordre de la prestation dans le décompte",
            json!({"minimum": 0}),
        ),
        field(
            "REM_TYP_AFF",
            "integer",
            "Type de remboursement affiné",
            json!({"minimum": 0, "maximum": 9}),
        ),
    ]
}

fn schema(table: &str) -> serde_json::Value {
    let nir_c = json!({"required": true, "minLength": 15, "maxLength": 15});
    let (fields, pk, fks, title) = match table {
        "IR_BEN_R" => (
            vec![
                field(
                    "BEN_NIR_PSA",
                    "string",
                    "NIR du bénéficiaire (identifiant source, pseudonymisé à l'ingestion)",
                    nir_c,
                ),
                field(
                    "BEN_RNG_GEM",
                    "integer",
                    "Rang de naissance du bénéficiaire",
                    json!({"minimum": 0, "maximum": 99}),
                ),
                field(
                    "BEN_NAI_ANN",
                    "year",
                    "Année de naissance",
                    json!({"minimum": 1900, "maximum": 2100}),
                ),
                field("BEN_NAI_MOI", "date", "Mois de naissance", json!(null)),
                field(
                    "BEN_SEX_COD",
                    "integer",
                    "Code sexe (1 homme, 2 femme)",
                    json!({"minimum": 1, "maximum": 2}),
                ),
                field(
                    "BEN_RES_DPT",
                    "string",
                    "Département de résidence",
                    json!({"minLength": 3, "maxLength": 3}),
                ),
                field(
                    "BEN_RES_COM",
                    "string",
                    "Commune de résidence (code INSEE complet)",
                    json!({"minLength": 5, "maxLength": 5}),
                ),
                field("BEN_DCD_DTE", "date", "Date de décès", json!(null)),
                field(
                    "BEN_DCD_AME",
                    "yearmonth",
                    "Année et mois de décès",
                    json!(null),
                ),
            ],
            json!(["BEN_NIR_PSA", "BEN_RNG_GEM"]),
            json!([]),
            "Référentiel des bénéficiaires (synthétique)",
        ),
        "ER_PRS_F" => {
            let mut f = vec![
                field(
                    "BEN_NIR_PSA",
                    "string",
                    "NIR du bénéficiaire (identifiant source)",
                    nir_c,
                ),
                field(
                    "BEN_RNG_GEM",
                    "integer",
                    "Rang de naissance du bénéficiaire",
                    json!({"minimum": 0, "maximum": 99}),
                ),
            ];
            f.extend(flux_fields());
            f.extend([
                field(
                    "EXE_SOI_DTD",
                    "date",
                    "Date de début d'exécution des soins",
                    json!({"required": true}),
                ),
                field(
                    "PRS_NAT_REF",
                    "integer",
                    "Nature de prestation de référence",
                    json!({"minimum": 0, "maximum": 9999}),
                ),
                field(
                    "PFS_EXE_NUM",
                    "string",
                    "Numéro du professionnel de santé exécutant",
                    json!({"maxLength": 8}),
                ),
                field(
                    "PSE_SPE_COD",
                    "integer",
                    "Spécialité du professionnel exécutant",
                    json!({"minimum": 0, "maximum": 99}),
                ),
                field(
                    "PRS_ACT_QTE",
                    "integer",
                    "Quantité d'actes",
                    json!({"minimum": 0}),
                ),
                field(
                    "PRS_PAI_MNT",
                    "number",
                    "Montant de la dépense",
                    json!({"minimum": 0, "decimals": 2}),
                ),
                field(
                    "BSE_REM_MNT",
                    "number",
                    "Montant remboursé (base)",
                    json!({"minimum": 0, "decimals": 2}),
                ),
            ]);
            (
                f,
                json!(FLUX),
                json!([{"fields": ["BEN_NIR_PSA", "BEN_RNG_GEM"], "reference": {"resource": "IR_BEN_R", "fields": ["BEN_NIR_PSA", "BEN_RNG_GEM"]}}]),
                "Prestations (synthétique)",
            )
        }
        "ER_PHA_F" => {
            // SNDS joins pharmacy lines to the patient through ER_PRS_F; the producer's extract
            // carries the patient too, so that opt-outs reach these rows directly.
            let mut f = vec![
                field(
                    "BEN_NIR_PSA",
                    "string",
                    "NIR du bénéficiaire (identifiant source)",
                    nir_c,
                ),
                field(
                    "BEN_RNG_GEM",
                    "integer",
                    "Rang de naissance du bénéficiaire",
                    json!({"minimum": 0, "maximum": 99}),
                ),
            ];
            f.extend(flux_fields());
            f.extend([
                field(
                    "PHA_ORD_NUM",
                    "integer",
                    "Numéro de ligne de pharmacie dans la prestation",
                    json!({"minimum": 1}),
                ),
                field(
                    "PHA_PRS_C13",
                    "string",
                    "Code CIP13 du médicament",
                    json!({"minLength": 13, "maxLength": 13}),
                ),
                field(
                    "PHA_ATC_C07",
                    "string",
                    "Classe ATC (niveau 5)",
                    json!({"maxLength": 7}),
                ),
                field(
                    "PHA_ACT_QSN",
                    "integer",
                    "Quantité délivrée",
                    json!({"minimum": 0}),
                ),
                field(
                    "PHA_ACT_PRU",
                    "number",
                    "Prix unitaire",
                    json!({"minimum": 0, "decimals": 2}),
                ),
            ]);
            let mut pk: Vec<&str> = FLUX.to_vec();
            pk.push("PHA_ORD_NUM");
            (
                f,
                json!(pk),
                json!([{"fields": FLUX, "reference": {"resource": "ER_PRS_F", "fields": FLUX}}]),
                "Lignes de pharmacie (synthétique)",
            )
        }
        _ => (
            vec![
                field(
                    "ETA_NUM",
                    "string",
                    "Numéro FINESS de l'établissement",
                    json!({"required": true, "maxLength": 9}),
                ),
                field(
                    "RSA_NUM",
                    "string",
                    "Numéro séquentiel du séjour",
                    json!({"required": true, "maxLength": 10}),
                ),
                field(
                    "NIR_ANO_17",
                    "string",
                    "NIR du patient (identifiant source)",
                    nir_c,
                ),
                field(
                    "EXE_SOI_DTD",
                    "date",
                    "Date d'entrée",
                    json!({"required": true}),
                ),
                field(
                    "EXE_SOI_DTF",
                    "date",
                    "Date de sortie",
                    json!({"required": true}),
                ),
                field(
                    "SEJ_NBJ",
                    "integer",
                    "Durée du séjour en jours",
                    json!({"minimum": 0}),
                ),
                field(
                    "DGN_PAL",
                    "string",
                    "Diagnostic principal (CIM-10)",
                    json!({"required": true, "maxLength": 6}),
                ),
                field(
                    "DGN_REL",
                    "string",
                    "Diagnostic relié (CIM-10)",
                    json!({"maxLength": 6}),
                ),
                field(
                    "ENT_MOD",
                    "string",
                    "Mode d'entrée",
                    json!({"enum": ["6", "7", "8"]}),
                ),
                field(
                    "SOR_MOD",
                    "string",
                    "Mode de sortie",
                    json!({"enum": ["6", "7", "8", "9"]}),
                ),
                field(
                    "AGE_ANN",
                    "integer",
                    "Âge à l'entrée",
                    json!({"minimum": 0, "maximum": 130}),
                ),
                field(
                    "COD_SEX",
                    "integer",
                    "Sexe",
                    json!({"minimum": 1, "maximum": 2}),
                ),
            ],
            json!(["ETA_NUM", "RSA_NUM"]),
            json!([{"fields": ["NIR_ANO_17"], "reference": {"resource": "IR_BEN_R", "fields": ["BEN_NIR_PSA"]}}]),
            "Séjours MCO (synthétique)",
        ),
    };
    json!({
        "name": table,
        "title": title,
        "produit": "shh synth snds",
        "missingValues": [""],
        "fields": fields,
        "primaryKey": pk,
        "foreignKeys": fks,
    })
}

fn policy(table: &str) -> &'static str {
    match table {
        "IR_BEN_R" => {
            "# Column policy for IR_BEN_R (see docs/ingest.md).\n[columns]\nBEN_NIR_PSA = \"identifier\"\nBEN_NAI_ANN = \"quasi\"\nBEN_NAI_MOI = \"drop\"\nBEN_SEX_COD = \"quasi\"\nBEN_RES_DPT = \"drop\"\nBEN_RES_COM = { class = \"quasi\", generalize = \"departement\" }\nBEN_DCD_DTE = { class = \"quasi\", generalize = \"month\" }\n"
        }
        "ER_PRS_F" => "# Column policy for ER_PRS_F.\n[columns]\nBEN_NIR_PSA = \"identifier\"\n",
        "ER_PHA_F" => "# Column policy for ER_PHA_F.\n[columns]\nBEN_NIR_PSA = \"identifier\"\n",
        _ => {
            "# Column policy for T_MCO_B.\n[columns]\nNIR_ANO_17 = \"identifier\"\nAGE_ANN = { class = \"quasi\", generalize = \"age_band:5\" }\nCOD_SEX = \"quasi\"\n"
        }
    }
}

fn header(table: &str) -> String {
    let s = schema(table);
    let names: Vec<&str> = s["fields"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["name"].as_str()).collect())
        .unwrap_or_default();
    names.join(",") + "\n"
}

/// Generates the population into `out` (created if needed): `T.csv`, `T.json` and
/// `T.policy.toml` for every table. `task` counts the patients done and can stop it (the files
/// written so far are then left as they are: this is the producer's side, not the hub's).
pub fn generate(out: &Path, patients: u64, seed: u64, task: &Task) -> std::io::Result<SynthReport> {
    std::fs::create_dir_all(out)?;
    let dates = Dates::new();
    let mut files = Vec::new();
    for t in TABLES {
        std::fs::write(
            out.join(format!("{t}.json")),
            serde_json::to_vec_pretty(&schema(t)).map_err(std::io::Error::other)?,
        )?;
        std::fs::write(out.join(format!("{t}.policy.toml")), policy(t))?;
        let mut f = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(out.join(format!("{t}.csv")))?,
        );
        f.write_all(header(t).as_bytes())?;
        files.push(f);
    }
    let mut rows = [0u64; 4];
    let mut bytes = [0u64; 4];
    for (i, t) in TABLES.iter().enumerate() {
        bytes[i] = header(t).len() as u64;
    }
    // Worker w generates blocks w, w + n, w + 2n…; this thread writes them in order. Bounded
    // channels block instead of spinning, and filled blocks come back empty for reuse, so the
    // buffers are allocated once.
    let blocks = patients.div_ceil(BLOCK);
    let n = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(blocks.max(1) as usize) as u64;
    let result: std::io::Result<()> = std::thread::scope(|scope| {
        let mut full = Vec::new();
        let mut empty = Vec::new();
        for w in 0..n {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Block>(2);
            let (back_tx, back_rx) = std::sync::mpsc::channel::<Block>();
            for _ in 0..3 {
                let _ = back_tx.send(Block::default());
            }
            let dates = &dates;
            scope.spawn(move || {
                let mut b = w;
                while b < blocks {
                    let Ok(mut out) = back_rx.recv() else { return };
                    let first = b * BLOCK;
                    fill_block(&mut out, seed, first, BLOCK.min(patients - first), dates);
                    if tx.send(out).is_err() {
                        return;
                    }
                    b += n;
                }
            });
            full.push(rx);
            empty.push(back_tx);
        }
        for b in 0..blocks {
            let w = (b % n) as usize;
            let blk = full[w]
                .recv()
                .map_err(|_| std::io::Error::other("a generator thread stopped"))?;
            for i in 0..4 {
                files[i].write_all(&blk.bufs[i])?;
                rows[i] += blk.rows[i];
                bytes[i] += blk.bufs[i].len() as u64;
            }
            let _ = empty[w].send(blk);
            task.advance(BLOCK.min(patients - b * BLOCK));
            if task.is_cancelled() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "cancelled",
                ));
            }
        }
        Ok(())
    });
    result?;
    // Flushed, not fsync'd: these are the producer's input files, not hub state.
    for mut f in files {
        f.flush()?;
    }
    Ok(SynthReport {
        out: out.to_owned(),
        patients,
        seed,
        tables: TABLES
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), rows[i], bytes[i]))
            .collect(),
        rows: rows.iter().sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nirs_are_valid_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for idx in [0u64, 1, 999_999, 1_000_000, 1_000_001, 22_999_999] {
            for dept in ["75", "2A", "2B"] {
                let n = nir_of(2, 1984, 3, dept, idx);
                assert!(shh_pseudo::nir::is_nir(&n), "{n}");
                assert!(seen.insert(n));
            }
        }
    }

    #[test]
    fn deterministic() {
        let d = Dates::new();
        let a = block(7, 0, 50, &d);
        let b = block(7, 0, 50, &d);
        assert_eq!(a.bufs, b.bufs);
        assert_ne!(a.bufs, block(8, 0, 50, &d).bufs);
    }
}
