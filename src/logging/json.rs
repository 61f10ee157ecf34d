//! JSON written straight into the line: strings escaped as they are written, an event's
//! fields as they are visited. No map of values is built and no value allocated, which
//! cost more than the rest of an access line together.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};

/// `s` as a JSON string, quotes included.
pub fn string(w: &mut impl Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(s)?;
    w.write_char('"')
}

/// Writes what it is given as the inside of a JSON string: `"`, `\` and control
/// characters escaped, everything else as it is (a `&str` is UTF-8, as JSON is).
pub struct Escaped<'a, W: Write>(pub &'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Most text (names, IDs, paths, numbers) has nothing to escape: one quick scan,
        // then written whole.
        let Some(first) = s.bytes().position(|b| b < 0x20 || b == b'"' || b == b'\\') else {
            return self.0.write_str(s);
        };
        let mut plain = 0;
        for (i, byte) in s.bytes().enumerate().skip(first) {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            match escape {
                "" => write!(self.0, "\\u{byte:04x}")?,
                e => self.0.write_str(e)?,
            }
            plain = i + 1;
        }
        self.0.write_str(&s[plain..])
    }
}

/// An event's fields as the members of a JSON object (without its braces), in the order
/// the event has them: numbers and booleans as such, the rest as strings.
pub struct Fields<'a, W: Write> {
    w: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<'a, W: Write> Fields<'a, W> {
    pub fn new(w: &'a mut W) -> Self {
        Fields {
            w,
            first: true,
            result: Ok(()),
        }
    }

    /// What writing them came to.
    pub fn finish(self) -> fmt::Result {
        self.result
    }

    /// `"name":` after a comma when needed, then `value`, unless writing failed already.
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let separator = if std::mem::take(&mut self.first) {
            ""
        } else {
            ","
        };
        self.result = self
            .w
            .write_str(separator)
            .and_then(|()| string(self.w, field.name()))
            .and_then(|()| self.w.write_char(':'))
            .and_then(|()| value(self.w));
    }
}

impl<W: Write> Visit for Fields<'_, W> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| {
            if value < 0 {
                w.write_char('-')?;
            }
            super::write_u64(w, value.unsigned_abs())
        });
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| super::write_u64(w, value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        // As serde_json has it: a number when finite, else null.
        self.member(field, |w| match value.is_finite() {
            true => write!(w, "{value:?}"),
            false => w.write_str("null"),
        });
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| write!(w, "{value}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| string(w, value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_json_reads_them() {
        for text in [
            "plain",
            "a \"quote\" and \\",
            "line\nbreak\ttab\r",
            "\u{1}\u{1f}",
            "é → ∞",
            "",
        ] {
            let mut out = String::new();
            string(&mut out, text).expect("written");
            let back: String = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
            assert_eq!(back, text);
        }
    }
}
