//! The direct-identifier guard: finds a French NIR, an e-mail address or a phone number
//! anywhere in a piece of text, however it is written.
//!
//! Every door through which text enters what the hub stores or says uses this one scanner:
//! kept cells at ingest (any column not declared `identifier`, in every input format), names
//! that become object paths or manifest entries (datasets, source files, schema fields), and,
//! as a last net, every string an audit event, a manifest's parameters, a rejects file or an
//! error message carries ([`redact`]).
//!
//! # What counts
//!
//! The text is first normalized: every Unicode decimal digit (Arabic-Indic, fullwidth,
//! mathematical…) and compatibility digit (superscript, circled…) becomes its ASCII digit,
//! fullwidth letters and signs become ASCII, invisible characters (zero-width spaces, joiners,
//! soft hyphens, bidi marks, variation selectors, combining marks) are removed, and every kind
//! of space, dash, dot, slash or apostrophe becomes its ASCII form.
//!
//! - **NIR**: a *token* is a maximal run of letters and digits; a token is a *candidate part*
//!   when it is all digits (or digits with a Corsican `2A`/`2B`). Parts joined by at most three
//!   separators (space, `-`, `.`, `/`, `_`, `,`, `'`, parentheses) form a chain, and every run
//!   of whole parts in a chain that holds exactly 15 characters is checked: structure (sex,
//!   month) and the mod-97 key ([`crate::nir`]). So `1 85 05 78 006 084 91`,
//!   `1.85.05.78.006.084.91` and `patient 185057800608491 called` are found, while a 16-digit
//!   number, a hex or base64 token (`185057800608491x`, `a185057800608491`) is not: the key is
//!   what separates a NIR from the many 15-digit codes (CIP13 drug codes pass the structure
//!   check). Numbers in exponent form (`1.85057800608491E14`) are expanded first.
//! - **E-mail**: `local@domain.tld`, also with `＠`, `(at)`, `[at]`, `{at}`, `<at>` and the same
//!   forms of `dot`.
//! - **Phone**: `+` and 8 to 15 digits (E.164, separators allowed), `00` and a country code
//!   (11 to 14 digits), a French national number `0X XX XX XX XX` (one token of ten digits, or
//!   five pairs with one separator) and a North American `(XXX) XXX-XXXX`.
//!
//! The guard never returns the value it found, only what kind it is and where: callers name the
//! file, line and field, never the text.

use crate::nir;
use std::borrow::Cow;

/// What to look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    /// French NIRs.
    pub nir: bool,
    /// E-mail addresses and phone numbers.
    pub contact: bool,
    /// Names (of datasets, files, columns…): letters bound a run of digits too, so
    /// `C185057800608491.csv` holds a NIR as surely as `C_185057800608491.csv`. Values keep
    /// the stricter definition of a candidate (bounded by non-alphanumerics), so that hex and
    /// base64 tokens in data are not refused; names are cheap to change.
    pub names: bool,
}

impl Look {
    /// Everything, in values.
    pub const ALL: Look = Look {
        nir: true,
        contact: true,
        names: false,
    };
    /// Everything, in a name.
    pub const NAME: Look = Look {
        nir: true,
        contact: true,
        names: true,
    };
    /// Nothing (an identifier column, or every check waived).
    pub const NONE: Look = Look {
        nir: false,
        contact: false,
        names: false,
    };

    /// Whether anything is looked for.
    pub fn any(self) -> bool {
        self.nir || self.contact
    }
}

/// The kind of direct identifier found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Found {
    /// A French social-security number with a valid key.
    Nir,
    /// An e-mail address.
    Email,
    /// A phone number.
    Phone,
}

impl Found {
    /// How messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            Found::Nir => "a French NIR (social-security number)",
            Found::Email => "an e-mail address",
            Found::Phone => "a phone number",
        }
    }

    /// What [`redact`] puts in its place.
    pub fn placeholder(self) -> &'static str {
        match self {
            Found::Nir => "[NIR]",
            Found::Email => "[e-mail]",
            Found::Phone => "[phone]",
        }
    }
}

/// A direct identifier found in a text: its kind and where it is (byte offsets in the text as
/// given, never the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// What was found.
    pub found: Found,
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

const DIGIT: u8 = 1;
const PLUS: u8 = 2;
const MARK: u8 = 4;
const HIGH: u8 = 8;

/// Each byte's class for the first pass: a digit, `+`, a sign that may start an address
/// (`@`, or the bracket of `(at)`), a byte of a non-ASCII character.
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = if c.is_ascii_digit() {
            DIGIT
        } else if c == b'+' {
            PLUS
        } else if matches!(c, b'@' | b'[' | b'(' | b'{' | b'<') {
            MARK
        } else if c >= 0x80 {
            HIGH
        } else {
            0
        };
        i += 1;
    }
    t
};

/// What one scan runs, decided by a first pass over the text.
#[derive(Debug, Clone, Copy)]
struct Want {
    nir: bool,
    phone: bool,
    email: bool,
    names: bool,
}

impl Want {
    /// What is worth looking for in `b` (normalized): a NIR needs 13 digits, a phone number 10
    /// (8 after a `+`), an e-mail address an at-sign or a bracket (`(at)`). Most cells (dates,
    /// amounts, codes) have none of these and cost one pass.
    fn of(b: &[u8], look: Look) -> Self {
        Self::counted(b, look).0
    }

    /// [`Want::of`], and whether `b` is all ASCII: one pass, a table lookup per byte.
    #[inline]
    fn counted(b: &[u8], look: Look) -> (Self, bool) {
        let (mut digits, mut flags) = (0usize, 0u8);
        for &c in b {
            let k = CLASS[usize::from(c)];
            digits += usize::from(k & DIGIT);
            flags |= k;
        }
        (
            Want {
                nir: look.nir && digits >= 13,
                phone: look.contact && (digits >= 10 || (digits >= 8 && flags & PLUS != 0)),
                email: look.contact && flags & MARK != 0,
                names: look.names,
            },
            flags & HIGH == 0,
        )
    }

    fn any(self) -> bool {
        self.nir || self.phone || self.email
    }
}

/// The first (leftmost) direct identifier of the kinds in `look` in `text`, if any.
#[inline]
pub fn scan(text: &str, look: Look) -> Option<Hit> {
    if !look.any() {
        return None;
    }
    let bytes = text.as_bytes();
    // The common case, millions of times per ingest: one pass over an ASCII value with
    // nothing worth a closer look (a NIR needs 13 digits, a phone number 10, an address a
    // sign), inlined into the caller's loop.
    let (want, ascii) = Want::counted(bytes, look);
    if ascii && !want.any() {
        return None;
    }
    scan_closer(text, want, ascii, look)
}

#[inline(never)]
fn scan_closer(text: &str, want: Want, ascii: bool, look: Look) -> Option<Hit> {
    let bytes = text.as_bytes();
    if ascii {
        return find(bytes, want).map(|(found, s, e)| Hit {
            found,
            start: s,
            end: e,
        });
    }
    let norm = Normalized::of(text);
    let want = Want::of(&norm.bytes, look);
    if !want.any() {
        return None;
    }
    find(&norm.bytes, want).map(|(found, s, e)| Hit {
        found,
        start: norm.origin(s),
        end: norm.origin_end(e, text),
    })
}

/// Every direct identifier in `text` replaced by a placeholder (`[NIR]`, `[e-mail]`,
/// `[phone]`): the last net over what is stored or printed (messages, events, manifests,
/// rejects), which hold names rather than values, so it looks as in a name
/// ([`Look::names`]).
pub fn redact(text: &str) -> Cow<'_, str> {
    redact_only(text, Look::NAME)
}

/// [`redact`] for the kinds in `look` only: an actor's id may be a member of staff's e-mail
/// address, which the log must keep, but never a patient's NIR.
pub fn redact_only(text: &str, look: Look) -> Cow<'_, str> {
    // Removing one hit can complete another (`a@b.fr0612345678`: without the phone number,
    // what is left is an address): passes until nothing is found, a few at most.
    let mut cur = match redact_pass(text, look) {
        Cow::Borrowed(_) => return Cow::Borrowed(text),
        Cow::Owned(s) => s,
    };
    for _ in 0..8 {
        match redact_pass(&cur, look) {
            Cow::Borrowed(_) => break,
            Cow::Owned(s) => cur = s,
        }
    }
    Cow::Owned(cur)
}

fn redact_pass(text: &str, look: Look) -> Cow<'_, str> {
    let Some(first) = scan(text, look) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut hit = Some(first);
    while let Some(h) = hit {
        out.push_str(&rest[..h.start]);
        out.push_str(h.found.placeholder());
        rest = &rest[h.end..];
        hit = scan(rest, look);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The text after normalization, with where each normalized byte came from.
struct Normalized {
    bytes: Vec<u8>,
    /// Byte offset in the original text of each normalized byte.
    from: Vec<usize>,
}

impl Normalized {
    fn of(text: &str) -> Self {
        let mut bytes = Vec::with_capacity(text.len());
        let mut from = Vec::with_capacity(text.len());
        for (i, c) in text.char_indices() {
            match fold(c) {
                Folded::One(b) => {
                    bytes.push(b);
                    from.push(i);
                }
                Folded::DigitThen(d, b) => {
                    bytes.extend_from_slice(&[d, b]);
                    from.extend_from_slice(&[i, i]);
                }
                Folded::Ignored => {}
            }
        }
        Self { bytes, from }
    }

    fn origin(&self, i: usize) -> usize {
        self.from.get(i).copied().unwrap_or(0)
    }

    /// The original byte just past the character that gave normalized byte `e - 1`.
    fn origin_end(&self, e: usize, text: &str) -> usize {
        let last = self.origin(e.saturating_sub(1));
        last + text[last..].chars().next().map_or(0, char::len_utf8)
    }
}

enum Folded {
    One(u8),
    /// A digit followed by a sign (`⒈` is `1.`).
    DigitThen(u8, u8),
    Ignored,
}

/// Code points of the digit zero of every run of ten Unicode decimal digits (general category
/// Nd), besides ASCII: a character `z + k` has the value `k`.
const DIGIT_ZEROS: &[u32] = &[
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x11F50, 0x16A60, 0x16AC0,
    0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E950,
    0x1FBF0,
];

/// Runs of compatibility digits (NFKC folds them to ASCII digits): (first code point, its
/// value, how many, what follows each digit in the fold).
const COMPAT_DIGITS: &[(u32, u8, u32, Option<u8>)] = &[
    (0x2070, 0, 1, None),       // superscript zero
    (0x00B9, 1, 1, None),       // superscript one
    (0x00B2, 2, 2, None),       // superscript two, three
    (0x2074, 4, 6, None),       // superscript four to nine
    (0x2080, 0, 10, None),      // subscripts
    (0x2460, 1, 9, None),       // circled one to nine
    (0x24EA, 0, 1, None),       // circled zero
    (0x24F5, 1, 9, None),       // double circled
    (0x24FF, 0, 1, None),       // negative circled zero
    (0x2776, 1, 9, None),       // dingbat negative circled
    (0x2780, 1, 9, None),       // dingbat circled sans-serif
    (0x278A, 1, 9, None),       // dingbat negative circled sans-serif
    (0x2474, 1, 9, None),       // parenthesized
    (0x2488, 1, 9, Some(b'.')), // digit full stop
    (0x1F100, 0, 1, Some(b'.')),
    (0x1F101, 0, 10, Some(b',')), // digit comma
];

fn fold(c: char) -> Folded {
    if c.is_ascii() {
        return Folded::One(c as u8);
    }
    let u = c as u32;
    for &z in DIGIT_ZEROS {
        if (z..z + 10).contains(&u) {
            return Folded::One(b'0' + (u - z) as u8);
        }
    }
    for &(first, value, n, then) in COMPAT_DIGITS {
        if (first..first + n).contains(&u) {
            let d = b'0' + value + (u - first) as u8;
            return match then {
                Some(t) => Folded::DigitThen(d, t),
                None => Folded::One(d),
            };
        }
    }
    match u {
        // Invisible: soft hyphen, combining grapheme joiner, Mongolian vowel separator,
        // zero-width space/joiners and direction marks, bidi embeddings and isolates, word
        // joiner and invisible operators, variation selectors, BOM, combining marks, tags.
        0x00AD
        | 0x034F
        | 0x180E
        | 0x200B..=0x200F
        | 0x202A..=0x202E
        | 0x2060..=0x2064
        | 0x2066..=0x206F
        | 0xFE00..=0xFE0F
        | 0xFEFF
        | 0x0300..=0x036F
        | 0x1AB0..=0x1AFF
        | 0x1DC0..=0x1DFF
        | 0x20D0..=0x20FF
        | 0xFE20..=0xFE2F
        | 0xE0000..=0xE007F
        | 0xE0100..=0xE01EF => Folded::Ignored,
        // Fullwidth forms of ASCII (letters, signs).
        0xFF01..=0xFF5E => Folded::One((u - 0xFF01 + 0x21) as u8),
        0x2010..=0x2015 | 0x2043 | 0x2212 | 0xFE58 | 0xFE63 => Folded::One(b'-'),
        0x00B7 | 0x2024 | 0x2027 | 0x2219 | 0x22C5 | 0x3002 | 0xFE52 | 0xFF61 => Folded::One(b'.'),
        0x2044 | 0x2215 | 0x29F8 => Folded::One(b'/'),
        0x2018 | 0x2019 | 0x201B | 0x02BC | 0x2032 => Folded::One(b'\''),
        0x060C | 0x3001 | 0xFE50 | 0xFE51 => Folded::One(b','),
        0xFE6B => Folded::One(b'@'),
        0xFE59 | 0xFF5F => Folded::One(b'('),
        0xFE5A | 0xFF60 => Folded::One(b')'),
        0xFE62 | 0x2795 => Folded::One(b'+'),
        _ if c.is_whitespace() => Folded::One(b' '),
        // Any other letter or number: part of a token, but not a digit.
        _ if c.is_alphanumeric() => Folded::One(b'x'),
        _ => Folded::One(b'#'),
    }
}

fn is_sep(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\n' | b'\r' | b'-' | b'.' | b'/' | b'_' | b',' | b'\'' | b'(' | b')'
    )
}

/// A maximal run of letters and digits.
#[derive(Debug, Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
    /// All digits, or digits with one `A`/`B` right after a `2` (Corsica).
    digitish: bool,
}

impl Token {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// Letters and digits form tokens; in a name (`names`), only digits do (and a Corsican `A`
/// or `B` between a `2` and a digit), letters bounding them.
fn tokens(b: &[u8], names: bool, out: &mut Vec<Token>) {
    out.clear();
    let mut i = 0;
    let part = |i: usize, start: usize| -> bool {
        let c = b[i];
        if c.is_ascii_digit() {
            return true;
        }
        if !names {
            return c.is_ascii_alphanumeric();
        }
        matches!(c, b'A' | b'B' | b'a' | b'b')
            && i > start
            && b[i - 1] == b'2'
            && b.get(i + 1).is_some_and(u8::is_ascii_digit)
    };
    while i < b.len() {
        if names && b[i].is_ascii_alphanumeric() && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) {
            // A digest (32 hex characters or more: a version id, a BLAKE3 or SHA-256) is not a
            // name, and redacting a digit run inside it would corrupt a fact.
            let end = i + b[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric())
                .count();
            if end - i >= 32 && b[i..end].iter().all(u8::is_ascii_hexdigit) {
                i = end;
                continue;
            }
        }
        if !(b[i].is_ascii_digit() || (!names && b[i].is_ascii_alphanumeric())) {
            i += 1;
            continue;
        }
        let start = i;
        let mut letters = 0;
        let mut corsican = true;
        while i < b.len() && part(i, start) {
            if !b[i].is_ascii_digit() {
                letters += 1;
                corsican &=
                    matches!(b[i], b'A' | b'B' | b'a' | b'b') && i > start && b[i - 1] == b'2';
            }
            i += 1;
        }
        out.push(Token {
            start,
            end: i,
            digitish: letters == 0 || (letters == 1 && corsican),
        });
    }
}

/// Whether the bytes between two tokens join them into one number.
fn links(gap: &[u8]) -> bool {
    !gap.is_empty() && gap.len() <= 3 && gap.iter().all(|&c| is_sep(c))
}

thread_local! {
    /// The tokens of the text being scanned: one buffer per thread, not one per cell.
    static TOKENS: std::cell::RefCell<Vec<Token>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The leftmost hit among the detectors `want` runs.
fn find(b: &[u8], want: Want) -> Option<(Found, usize, usize)> {
    let mut best: Option<(Found, usize, usize)> = None;
    let mut keep = |h: Option<(Found, usize, usize)>| {
        if let Some(h) = h
            && best.is_none_or(|b| h.1 < b.1)
        {
            best = Some(h);
        }
    };
    if want.nir || want.phone {
        TOKENS.with(|t| {
            let mut toks = t.borrow_mut();
            tokens(b, want.names, &mut toks);
            // Chains of digit tokens joined by separators, in order: the first hit of a kind
            // is its leftmost.
            let (mut nir, mut phone) = (!want.nir, !want.phone);
            let mut i = 0;
            while i < toks.len() && !(nir && phone) {
                if !toks[i].digitish {
                    i += 1;
                    continue;
                }
                let start = i;
                while i + 1 < toks.len()
                    && toks[i + 1].digitish
                    && links(&b[toks[i].end..toks[i + 1].start])
                {
                    i += 1;
                }
                let chain = &toks[start..=i];
                if !nir && let Some(h) = nir_in_chain(b, chain) {
                    keep(Some(h));
                    nir = true;
                }
                if !phone && let Some(h) = phone_in_chain(b, chain) {
                    keep(Some(h));
                    phone = true;
                }
                i += 1;
            }
        });
    }
    if want.nir {
        keep(nir_in_exponent_form(b));
    }
    if want.email {
        keep(email(b));
    }
    best
}

fn nir_in_chain(b: &[u8], chain: &[Token]) -> Option<(Found, usize, usize)> {
    let mut cand = [0u8; 15];
    for i in 0..chain.len() {
        let mut n = 0;
        for t in &chain[i..] {
            if n + t.len() > 15 {
                break;
            }
            cand[n..n + t.len()].copy_from_slice(&b[t.start..t.end]);
            n += t.len();
            if n == 15 {
                if nir::check(&cand) {
                    return Some((Found::Nir, chain[i].start, t.end));
                }
                break;
            }
        }
    }
    None
}

/// `1.85057800608491E14`, `185057800608491e0`, `1,85057800608491e+14`: a number in exponent
/// form whose value is a whole 15-digit number.
fn nir_in_exponent_form(b: &[u8]) -> Option<(Found, usize, usize)> {
    let mut i = 0;
    while i < b.len() {
        let at_start = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.');
        if !(at_start && b[i].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let start = i;
        let digits_from = |mut j: usize| {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            j
        };
        let int_end = digits_from(i);
        let (frac_start, frac_end) = if int_end + 1 < b.len()
            && matches!(b[int_end], b'.' | b',')
            && b[int_end + 1].is_ascii_digit()
        {
            (int_end + 1, digits_from(int_end + 1))
        } else {
            (int_end, int_end)
        };
        let mut j = frac_end;
        if j < b.len() && matches!(b[j], b'e' | b'E') {
            j += 1;
            let neg = j < b.len() && b[j] == b'-';
            if j < b.len() && matches!(b[j], b'+' | b'-') {
                j += 1;
            }
            let exp_start = j;
            let exp_end = digits_from(j);
            let bounded = exp_end == b.len() || !b[exp_end].is_ascii_alphanumeric();
            if exp_end > exp_start && exp_end - exp_start <= 3 && bounded {
                let exp: usize = b[exp_start..exp_end]
                    .iter()
                    .fold(0usize, |a, &d| a * 10 + usize::from(d - b'0'));
                let mut mantissa: Vec<u8> = b[start..int_end].to_vec();
                mantissa.extend_from_slice(&b[frac_start..frac_end]);
                let point = if neg {
                    (int_end - start).checked_sub(exp)
                } else {
                    Some(int_end - start + exp)
                };
                if let Some(point) = point
                    && let Some(whole) = whole_number(&mantissa, point)
                    && whole.len() == 15
                {
                    let mut cand = [0u8; 15];
                    cand.copy_from_slice(&whole);
                    if nir::check(&cand) {
                        return Some((Found::Nir, start, exp_end));
                    }
                }
            }
            i = exp_end.max(i + 1);
            continue;
        }
        i = frac_end.max(i + 1);
    }
    None
}

/// The digits of a decimal number whose digits are `mantissa` with the point after `point`
/// of them, if it is whole (leading zeros dropped).
fn whole_number(mantissa: &[u8], point: usize) -> Option<Vec<u8>> {
    let mut whole: Vec<u8> = if point >= mantissa.len() {
        let mut w = mantissa.to_vec();
        w.resize(point, b'0');
        w
    } else {
        if mantissa[point..].iter().any(|&d| d != b'0') {
            return None;
        }
        mantissa[..point].to_vec()
    };
    let zeros = whole.iter().take_while(|&&d| d == b'0').count();
    whole.drain(..zeros);
    Some(whole)
}

/// The first phone number in a chain: in each run of its all-digit tokens (a Corsican NIR
/// group is no part of a phone number).
fn phone_in_chain(b: &[u8], chain: &[Token]) -> Option<(Found, usize, usize)> {
    chain
        .split(|t| b[t.start..t.end].iter().any(|c| !c.is_ascii_digit()))
        .filter(|run| !run.is_empty())
        .find_map(|run| phone_in_digits(b, run))
}

fn phone_in_digits(b: &[u8], chain: &[Token]) -> Option<(Found, usize, usize)> {
    let first = chain[0];
    let digits = |t: &Token| &b[t.start..t.end];
    // International: `+` right before the number, then 8 to 15 digits.
    if first.start > 0 && b[first.start - 1] == b'+' {
        let mut n = 0;
        let mut end = None;
        for t in chain {
            n += t.len();
            if n > 15 {
                break;
            }
            if n >= 8 {
                end = Some(t.end);
            }
        }
        if let Some(end) = end {
            return Some((Found::Phone, first.start - 1, end));
        }
    }
    for i in 0..chain.len() {
        let t = chain[i];
        let d = digits(&t);
        // International from a national line: 00 and a country code.
        if d.len() >= 3 && d[0] == b'0' && d[1] == b'0' && d[2] != b'0' {
            let mut n = 0;
            let mut end = None;
            for u in &chain[i..] {
                n += u.len();
                if n > 14 {
                    break;
                }
                if n >= 11 {
                    end = Some(u.end);
                }
            }
            if let Some(end) = end {
                return Some((Found::Phone, t.start, end));
            }
        }
        let national = |d: &[u8]| d.len() >= 2 && d[0] == b'0' && d[1] != b'0';
        // French national: ten digits in one token, or five pairs joined by one separator.
        if d.len() == 10 && national(d) {
            return Some((Found::Phone, t.start, t.end));
        }
        if i + 5 <= chain.len() && national(d) {
            let pairs = &chain[i..i + 5];
            let gap = |k: usize| &b[pairs[k].end..pairs[k + 1].start];
            if pairs.iter().all(|p| p.len() == 2) && (1..4).all(|k| gap(k) == gap(0)) {
                return Some((Found::Phone, t.start, pairs[4].end));
            }
        }
        // North American: (XXX) XXX-XXXX, or XXX-XXX-XXXX with one separator throughout
        // (area and exchange codes start with 2 to 9).
        if i + 3 <= chain.len()
            && chain[i].len() == 3
            && chain[i + 1].len() == 3
            && chain[i + 2].len() == 4
            && d[0] >= b'2'
        {
            if t.start > 0 && b[t.start - 1] == b'(' {
                return Some((Found::Phone, t.start - 1, chain[i + 2].end));
            }
            let exchange = b[chain[i + 1].start] >= b'2';
            let (g1, g2) = (
                &b[chain[i].end..chain[i + 1].start],
                &b[chain[i + 1].end..chain[i + 2].start],
            );
            if exchange && g1 == g2 && matches!(g1, b"-" | b"." | b" ") {
                return Some((Found::Phone, t.start, chain[i + 2].end));
            }
        }
    }
    None
}

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"._%+-'!#$&*=?^`{|}~".contains(&c)
}

/// Obfuscated at-signs and dots (`(at)`, `[dot]`…) rewritten, with the original offsets.
fn deobfuscate(b: &[u8]) -> Option<(Vec<u8>, Vec<usize>)> {
    let word = |i: usize, w: &[u8]| -> Option<usize> {
        // `[at]`, `(at)`, `{at}`, `<at>` with optional spaces around the word inside.
        let close = match b.get(i)? {
            b'[' => b']',
            b'(' => b')',
            b'{' => b'}',
            b'<' => b'>',
            _ => return None,
        };
        let mut j = i + 1;
        while b.get(j) == Some(&b' ') {
            j += 1;
        }
        let end = j + w.len();
        if b.get(j..end)?.eq_ignore_ascii_case(w) {
            let mut k = end;
            while b.get(k) == Some(&b' ') {
                k += 1;
            }
            (b.get(k) == Some(&close)).then_some(k + 1)
        } else {
            None
        }
    };
    let mut out = Vec::with_capacity(b.len());
    let mut from = Vec::with_capacity(b.len());
    let mut changed = false;
    let mut i = 0;
    while i < b.len() {
        let rewrite = word(i, b"at")
            .map(|e| (b'@', e))
            .or_else(|| word(i, b"dot").map(|e| (b'.', e)));
        match rewrite {
            Some((c, e)) => {
                // Spaces around the bracketed word belong to it.
                while out.last() == Some(&b' ') {
                    out.pop();
                    from.pop();
                }
                out.push(c);
                from.push(i);
                i = e;
                while b.get(i) == Some(&b' ') {
                    i += 1;
                }
                changed = true;
            }
            None => {
                out.push(b[i]);
                from.push(i);
                i += 1;
            }
        }
    }
    changed.then_some((out, from))
}

fn email(b: &[u8]) -> Option<(Found, usize, usize)> {
    if let Some((d, from)) = deobfuscate(b) {
        return email_plain(&d).map(|(f, s, e)| {
            let end = if e < from.len() { from[e] } else { b.len() };
            (f, from[s], end)
        });
    }
    email_plain(b)
}

fn email_plain(b: &[u8]) -> Option<(Found, usize, usize)> {
    for (at, _) in b.iter().enumerate().filter(|(_, c)| **c == b'@') {
        let mut s = at;
        while s > 0 && is_local(b[s - 1]) {
            s -= 1;
        }
        if !b[s..at].iter().any(u8::is_ascii_alphanumeric) {
            continue;
        }
        let mut e = at + 1;
        while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'-' || b[e] == b'.') {
            e += 1;
        }
        let domain = &b[at + 1..e];
        // Trailing dots end a sentence, not the domain.
        let domain = {
            let mut d = domain;
            while let [rest @ .., b'.'] = d {
                d = rest;
            }
            d
        };
        let labels: Vec<&[u8]> = domain.split(|&c| c == b'.').collect();
        let tld = labels.last().copied().unwrap_or_default();
        if labels.len() >= 2
            && labels.iter().all(|l| !l.is_empty())
            && tld.len() >= 2
            && tld.iter().all(u8::is_ascii_alphabetic)
        {
            return Some((Found::Email, s, at + 1 + domain.len()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NIR: &str = "185057800608491";

    fn found(s: &str) -> Option<Found> {
        scan(s, Look::ALL).map(|h| h.found)
    }

    #[test]
    fn the_planted_nir_is_valid() {
        assert!(nir::is_nir(NIR));
    }

    #[test]
    fn nirs_in_every_written_form() {
        for s in [
            NIR,
            "patient 185057800608491 called",
            "1 85 05 78 006 084 91",
            "1-85-05-78-006-084-91",
            "1.85.05.78.006.084.91",
            "1/85/05/78/006/084/91",
            "1_85_05_78_006_084_91",
            "1 85 05 78 006 084 - 91",
            "NIR:185057800608491;",
            "(185057800608491)",
            "[\"x\", \"185057800608491\"]",
            "185057800608491.0",
            "185057800608491.000",
            "1.85057800608491E14",
            "1.85057800608491e+14",
            "18505780060849.1e1",
            "185 057 800 608 491",
            "185,057,800,608,491",
            "185'057'800'608'491",
            "１８５０５７８００６０８４９１",
            "١٨٥٠٥٧٨٠٠٦٠٨٤٩١",
            "१८५०५७८००६०८४९१",
            "185\u{200B}057800608491",
            "1\u{00A0}85\u{00A0}05\u{00A0}78\u{00A0}006\u{00A0}084\u{00A0}91",
            "1\u{2009}85\u{202F}05 78 006 084 91",
            "1–85–05–78–006–084–91",
            "¹⁸⁵⁰⁵⁷⁸⁰⁰⁶⁰⁸⁴⁹¹",
            "𝟏𝟖𝟓𝟎𝟓𝟕𝟖𝟎𝟎𝟔𝟎𝟖𝟒𝟗𝟏",
            "185057800608491\u{0301}",
            "12 185057800608491 3",
        ] {
            assert_eq!(found(s), Some(Found::Nir), "{s:?}");
        }
    }

    #[test]
    fn corsica_is_found_in_any_form() {
        let k = nir::key_of(1_800_119_004_123);
        for s in [
            format!("180012A004123{k:02}"),
            format!("1 80 01 2A 004 123 {k:02}"),
            format!("1 80 01 2a 004 123 {k:02}"),
            format!("x 1-80-01-2A-004-123-{k:02} y"),
        ] {
            assert_eq!(found(&s), Some(Found::Nir), "{s}");
        }
    }

    #[test]
    fn what_is_not_a_nir() {
        for s in [
            "185057800608491x", // a token with letters: hex, base64, references
            "a185057800608491",
            "1850578006084912",   // 16 digits
            "4818122750023768.0", // OPEN_DAMIR
            "185057800608492",    // wrong key
            "3400930000127",      // CIP13
            "3400930000127 and 15",
            "42.36047530000001", // a latitude
            "-71.06352000000001",
            "2024-01-02T10:30:00.123456Z",
            "1.8505780060849e14",           // not whole in 15 digits
            "SGVsbG8xODUwNTc4MDA2MDg0OTE=", // base64
            "",
        ] {
            assert_eq!(
                scan(
                    s,
                    Look {
                        nir: true,
                        contact: false,
                        names: false
                    }
                ),
                None,
                "{s}"
            );
        }
    }

    #[test]
    fn emails_and_phones() {
        for (s, f) in [
            ("jean.dupont@example.fr", Found::Email),
            (
                "write to Jean Dupont <jean.dupont@example.fr>.",
                Found::Email,
            ),
            ("jean.dupont＠example.fr", Found::Email),
            ("jean.dupont (at) example (dot) fr", Found::Email),
            ("jean.dupont[at]example.fr", Found::Email),
            ("jean {at} mail {dot} example {dot} com", Found::Email),
            ("mg/dL jean@x.io", Found::Email),
            ("+33 6 12 34 56 78", Found::Phone),
            ("+33612345678", Found::Phone),
            ("+33 (0)6 12 34 56 78", Found::Phone),
            ("0033 6 12 34 56 78", Found::Phone),
            ("06 12 34 56 78", Found::Phone),
            ("06.12.34.56.78", Found::Phone),
            ("06-12-34-56-78", Found::Phone),
            ("tel 0612345678 soir", Found::Phone),
            ("０６ １２ ３４ ５６ ７８", Found::Phone),
            ("(555) 123-4567", Found::Phone),
            ("555-412-8793", Found::Phone),
            ("call 212.555.0199 now", Found::Phone),
        ] {
            assert_eq!(found(s), Some(f), "{s}");
        }
        for s in [
            "mg/dL",
            "10*3/uL",
            "a@b",
            "@@",
            "x@localhost",
            "0.5 0.25 0.125 0.1",
            "2024-01-02",
            "12.50 13.20 14.10 15.00 16.20",
            "3400930000127",
            "1234567890",
            "06 12 34 56",
            "0612345678901",
            "555-412 8793",
            "155-412-8793",
        ] {
            assert_eq!(found(s), None, "{s}");
        }
    }

    #[test]
    fn in_names_letters_bound_digits() {
        for s in [
            "C185057800608491",
            "x185057800608491x.csv",
            "patient185057800608491",
            "P1-85-05-78-006-084-91",
        ] {
            assert_eq!(scan(s, Look::ALL), None, "{s}: not a candidate in a value");
            assert_eq!(
                scan(s, Look::NAME).map(|h| h.found),
                Some(Found::Nir),
                "{s}"
            );
        }
        let k = nir::key_of(1_800_119_004_123);
        assert!(scan(&format!("f180012A004123{k:02}.csv"), Look::NAME).is_some());
        assert_eq!(redact("C185057800608491.csv"), "C[NIR].csv");
        // A digest is not a name: a digit run inside it is left alone.
        let digest = format!("{}{}", "185057800608491", "ab".repeat(10));
        assert_eq!(redact(&digest), digest);
        assert_eq!(scan("extract_20240102123045123.csv", Look::NAME), None);
    }

    #[test]
    fn hits_point_into_the_original_text() {
        let s = "nom: ｘ １８５ ０５７ ８００ ６０８ ４９１ fin";
        let h = scan(s, Look::ALL).expect("hit");
        assert_eq!(&s[h.start..h.end], "１８５ ０５７ ８００ ６０８ ４９１");
        assert_eq!(
            redact("a 1 85 05 78 006 084 91 b jean@example.fr c"),
            "a [NIR] b [e-mail] c"
        );
        assert_eq!(redact("rien à signaler"), "rien à signaler");
        // A phone number before a Corsican group is found in names as in values.
        for t in [
            "x +0-\r339-101\r-3-0\r3-1402B0112B y",
            "x +9994441\r9999-0\r3-0901-22A219122",
            "x +9994441\r9999-0\r3-0901-22A219122At8",
        ] {
            assert_eq!(
                scan(t, Look::ALL).map(|h| h.found),
                Some(Found::Phone),
                "{t:?}"
            );
            assert_eq!(
                scan(t, Look::NAME).map(|h| h.found),
                Some(Found::Phone),
                "{t:?}"
            );
        }
        // Until nothing is left: a hit removed may complete another.
        assert_eq!(redact("A@aAA.Mt0110110001 x"), "[e-mail][phone] x");
        // Leftmost first: a later NIR does not let an earlier phone number through.
        assert_eq!(
            redact("06 12 34 56 78 puis 185057800608491 puis jean@example.fr"),
            "[phone] puis [NIR] puis [e-mail]"
        );
        assert_eq!(redact("jean@example.fr 185057800608491"), "[e-mail] [NIR]");
        // The net reads like a name: letters do not hide a NIR from it.
        assert_eq!(redact("x185\u{200B}057800608491"), "x[NIR]");
        assert_eq!(
            scan("x185\u{200B}057800608491", Look::ALL),
            None,
            "but it is no candidate in a value"
        );
        assert_eq!(redact("185\u{200B}057800608491\u{200B}"), "[NIR]\u{200B}");
    }

    proptest! {
        /// A NIR planted anywhere in text, in any of the forms, separated from its neighbours
        /// by a space, is found; and redacting removes every one of its digits.
        #[test]
        fn planted_nirs_are_found(prefix in "[a-z ,.;:]{0,20}", suffix in "[a-z ,.;:]{0,20}",
                                  sex in 1u64..=2, yy in 0u64..100, mm in 1u64..=12,
                                  dep in 1u64..96, rest in 0u64..1_000_000, form in 0usize..6) {
            let body = ((((sex * 100 + yy) * 100 + mm) * 100 + dep) * 1_000_000) + rest;
            let n = format!("{body:013}{:02}", nir::key_of(body));
            let written = match form {
                0 => n.clone(),
                1 => format!("{} {} {} {} {} {} {}", &n[0..1], &n[1..3], &n[3..5], &n[5..7], &n[7..10], &n[10..13], &n[13..]),
                2 => n.chars().map(|c| char::from_u32(0xFF10 + c.to_digit(10).unwrap_or(0)).unwrap_or(c)).collect(),
                3 => format!("{n}.0"),
                4 => n.chars().enumerate().map(|(i, c)| if i % 3 == 2 { format!("{c}.") } else { c.to_string() }).collect::<String>().trim_end_matches('.').to_owned(),
                _ => n.chars().map(|c| format!("{c}\u{200B}")).collect(),
            };
            let text = format!("{prefix} {written} {suffix}");
            prop_assert_eq!(scan(&text, Look::ALL).map(|h| h.found), Some(Found::Nir), "{}", text);
            let r = redact(&text);
            let digits: String = r.chars().filter(char::is_ascii_digit).collect();
            prop_assert!(!digits.contains(&n), "{}", r);
        }

        #[test]
        fn never_panics_and_hits_are_char_boundaries(s in "\\PC{0,60}") {
            if let Some(h) = scan(&s, Look::ALL) {
                prop_assert!(s.is_char_boundary(h.start) && s.is_char_boundary(h.end) && h.start < h.end);
            }
            let _ = redact(&s);
        }

        #[test]
        fn random_digit_strings_rarely_hit(n in 0u64..1_000_000_000_000_000) {
            // A random 15-digit token passes structure and key about once in 200: the guard
            // must agree exactly with the NIR check on whole tokens.
            let s = format!("{n:015}");
            prop_assert_eq!(scan(&s, Look { nir: true, contact: false, names: false }).is_some(), nir::is_nir(&s));
        }
    }
}
