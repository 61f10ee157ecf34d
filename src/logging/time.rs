//! The time at the start of each line, `2026-11-24T19:05:10.123456Z` (UTC, microseconds),
//! as tracing-subscriber's `SystemTime` writes it, written digit by digit: its formatter
//! spent more instructions on a line than the whole access line's fields.

use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::time::FormatTime;

/// Writes the current time; a clock outside 1970–9999 goes to tracing-subscriber's own
/// formatter, which knows every year.
pub fn write_now(w: &mut impl Write) -> fmt::Result {
    let now = SystemTime::now();
    match now.duration_since(UNIX_EPOCH) {
        Ok(since) if since.as_secs() < 253_402_300_800 => {
            let text = format(since.as_secs(), since.subsec_micros());
            // Only ASCII digits and punctuation were written.
            w.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
        }
        _ => {
            let mut text = String::new();
            tracing_subscriber::fmt::time::SystemTime
                .format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut text))?;
            w.write_str(&text)
        }
    }
}

/// `secs` after the epoch (before the year 10000) and `micros`, as 27 ASCII bytes.
fn format(secs: u64, micros: u32) -> [u8; 27] {
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    digits(&mut out[0..4], year);
    digits(&mut out[5..7], month);
    digits(&mut out[8..10], day);
    digits(&mut out[11..13], of_day / 3600);
    digits(&mut out[14..16], of_day / 60 % 60);
    digits(&mut out[17..19], of_day % 60);
    digits(&mut out[20..26], u64::from(micros));
    out
}

/// `value`'s last `out.len()` decimal digits, zero-padded.
fn digits(out: &mut [u8], mut value: u64) {
    for d in out.iter_mut().rev() {
        *d = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Year, month and day of the `days`th day after 1970-01-01 (proleptic Gregorian;
/// Howard Hinnant's `civil_from_days`, for days after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::format;

    #[test]
    fn times_are_written_as_rfc3339_with_microseconds() {
        for (secs, micros, text) in [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, 0, "2000-02-29T00:00:00.000000Z"),
            (1_709_210_096, 1, "2024-02-29T12:34:56.000001Z"),
            (1_796_681_127, 450_173, "2026-12-07T22:05:27.450173Z"),
            (4_102_444_799, 999_999, "2099-12-31T23:59:59.999999Z"),
            (253_402_300_799, 0, "9999-12-31T23:59:59.000000Z"),
        ] {
            assert_eq!(std::str::from_utf8(&format(secs, micros)), Ok(text));
        }
    }

    #[test]
    fn it_writes_what_tracing_subscriber_writes() {
        use tracing_subscriber::fmt::time::FormatTime;
        let theirs = || {
            let mut text = String::new();
            tracing_subscriber::fmt::time::SystemTime
                .format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut text))
                .expect("their time");
            text
        };
        let before = theirs();
        let mut ours = String::new();
        super::write_now(&mut ours).expect("our time");
        let after = theirs();
        // Written a moment apart: the same shape, and the minute of one of theirs.
        assert_eq!(ours.len(), before.len(), "{ours} {before}");
        assert!(
            ours[..16] == before[..16] || ours[..16] == after[..16],
            "{before} {ours} {after}"
        );
    }
}
