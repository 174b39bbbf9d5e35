//! RFC 4180 quoting, checked as the bytes stream past: the `csv` crate accepts two malformed
//! shapes without a word, and both swallow rows.
//!
//! - A quoted field still open at the end of the file: `a3,30,"Paris\na4,40,Lyon\n` reads as
//!   one row whose last field holds the rest of the file.
//! - A closing quote followed by something other than a delimiter or a line end:
//!   `"Paris\na4,40,Lyon\na5,50,"Nice"` closes at `"N` and reads the lines between as one
//!   field.
//!
//! [`Checked`] runs the same state machine as the parser over what it reads, and turns either
//! shape into an error naming the line where the quote opened, so a file that does not parse
//! the way it looks is refused whole rather than stored with rows missing.

use std::io::Read;

/// A quoting error, with the lines it concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteFault {
    /// The file ends inside the quoted field opened on `opened`.
    Unterminated {
        /// Line where the quote opened.
        opened: u64,
    },
    /// The quoted field opened on `opened` closes on `line` with something other than a
    /// delimiter or a line end after its closing quote.
    Garbage {
        /// Line where the quote opened.
        opened: u64,
        /// Line of the closing quote.
        line: u64,
    },
}

impl QuoteFault {
    /// The line to report.
    pub fn line(self) -> u64 {
        match self {
            QuoteFault::Unterminated { opened } | QuoteFault::Garbage { opened, .. } => opened,
        }
    }

    /// What is wrong, in words.
    pub fn reason(self) -> String {
        match self {
            QuoteFault::Unterminated { .. } => {
                "a quoted field opened on this line is never closed (the file ends inside it)"
                    .into()
            }
            QuoteFault::Garbage { line, .. } => format!(
                "a quoted field opened on this line is closed on line {line} by a quote \
                 followed by neither a delimiter nor a line end"
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote seen inside a quoted field: an escaped quote if another follows, the close
    /// otherwise.
    QuoteInQuoted,
}

/// The quoting state machine.
#[derive(Debug, Clone)]
pub struct QuoteTracker {
    delimiter: u8,
    state: State,
    line: u64,
    opened: u64,
    fault: Option<QuoteFault>,
}

impl QuoteTracker {
    /// A tracker at the start of a file.
    pub fn new(delimiter: u8) -> Self {
        Self {
            delimiter,
            state: State::FieldStart,
            line: 1,
            opened: 0,
            fault: None,
        }
    }

    /// Feeds the next bytes of the file.
    pub fn feed(&mut self, buf: &[u8]) {
        if self.fault.is_some() || buf.is_empty() {
            return;
        }
        if matches!(self.state, State::FieldStart | State::Unquoted)
            && memchr::memchr(b'"', buf).is_none()
        {
            // No quote: only lines to count, and where the last byte leaves the machine.
            self.line += memchr::memchr_iter(b'\n', buf).count() as u64;
            let last = buf[buf.len() - 1];
            self.state = if last == self.delimiter || last == b'\n' || last == b'\r' {
                State::FieldStart
            } else {
                State::Unquoted
            };
            return;
        }
        for &b in buf {
            let ends = b == self.delimiter || b == b'\n' || b == b'\r';
            self.state = match self.state {
                State::FieldStart | State::Unquoted if ends => State::FieldStart,
                State::FieldStart if b == b'"' => {
                    self.opened = self.line;
                    State::Quoted
                }
                State::FieldStart | State::Unquoted => State::Unquoted,
                State::Quoted if b == b'"' => State::QuoteInQuoted,
                State::Quoted => State::Quoted,
                State::QuoteInQuoted if b == b'"' => State::Quoted,
                State::QuoteInQuoted if ends => State::FieldStart,
                State::QuoteInQuoted => {
                    self.fault = Some(QuoteFault::Garbage {
                        opened: self.opened,
                        line: self.line,
                    });
                    return;
                }
            };
            if b == b'\n' {
                self.line += 1;
            }
        }
    }

    /// The fault found so far, counting the end of the file if `at_end`.
    pub fn fault(&self, at_end: bool) -> Option<QuoteFault> {
        self.fault.or_else(|| {
            (at_end && self.state == State::Quoted).then_some(QuoteFault::Unterminated {
                opened: self.opened,
            })
        })
    }
}

/// A reader that runs the tracker over every byte it passes on, and fails (with
/// `InvalidData`) at the first fault, or at the end of a file that ends inside a quote.
#[derive(Debug)]
pub struct Checked<R> {
    inner: R,
    tracker: QuoteTracker,
    failed: Option<QuoteFault>,
}

impl<R> Checked<R> {
    /// Wraps `inner`, a CSV file with `delimiter`.
    pub fn new(inner: R, delimiter: u8) -> Self {
        Self {
            inner,
            tracker: QuoteTracker::new(delimiter),
            failed: None,
        }
    }

    /// The fault that made a read fail, if any.
    pub fn fault(&self) -> Option<QuoteFault> {
        self.failed
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.tracker.feed(&buf[..n]);
        if let Some(f) = self.tracker.fault(n == 0 && !buf.is_empty()) {
            self.failed = Some(f);
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                f.reason(),
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(s: &[u8]) -> Option<QuoteFault> {
        let mut t = QuoteTracker::new(b',');
        t.feed(s);
        t.fault(true)
    }

    #[test]
    fn well_formed_quoting_passes() {
        for s in [
            &b"a,b\n1,2\n"[..],
            b"a,\"b,c\"\n",
            b"a,\"multi\nline\"\n",
            b"a,\"esc\"\"aped\"\n",
            b"\"\"\n",
            b"a,\"x\"\r\n",
            b"a,\"x\"",
            b"ab\"c,d\n", // a quote inside an unquoted field is a literal, as csv reads it
            b"",
        ] {
            assert_eq!(fault(s), None, "{:?}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn swallowing_shapes_are_named_at_the_opening_line() {
        assert_eq!(
            fault(b"ID,AGE,CITY\na3,30,\"Paris\na4,40,Lyon\n"),
            Some(QuoteFault::Unterminated { opened: 2 })
        );
        assert_eq!(
            fault(b"ID,AGE,CITY\na3,30,\"Paris\na4,40,Lyon\na5,50,\"Nice\"\n"),
            Some(QuoteFault::Garbage { opened: 2, line: 4 })
        );
        assert_eq!(
            fault(b"a\n\"x\"y\n"),
            Some(QuoteFault::Garbage { opened: 2, line: 2 })
        );
    }

    #[test]
    fn feeding_in_pieces_changes_nothing() {
        let s = b"h\n\"a\nb\",c\nd,\"e\"\"f\"\n\"g";
        let whole = fault(s);
        for cut in 0..s.len() {
            let mut t = QuoteTracker::new(b',');
            t.feed(&s[..cut]);
            t.feed(&s[cut..]);
            assert_eq!(t.fault(true), whole, "cut at {cut}");
        }
        assert_eq!(whole, Some(QuoteFault::Unterminated { opened: 5 }));
    }
}
