//! The `Date` header value in Go's `http.TimeFormat`, cached per second.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since the epoch to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's civil-from-days; negative days are before 1970).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Formats seconds since the epoch as `Mon, 02 Jan 2006 15:04:05 GMT`.
pub fn http_date(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    let (year, month, d) = civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(month - 1) as usize],
        year,
        h,
        m,
        s
    )
}

/// Formats seconds since the epoch as Go's `02/Jan/2006:15:04:05 -0700` in UTC.
pub fn common_log(secs: u64) -> String {
    let h = http_date(secs);
    // "Mon, 02 Jan 2006 15:04:05 GMT" → "02/Jan/2006:15:04:05 +0000"
    format!(
        "{}/{}/{}:{} +0000",
        &h[5..7],
        &h[8..11],
        &h[12..16],
        &h[17..25]
    )
}

/// A per-thread clock read once per batch of completions ([`DateCache::tick`]): deadlines
/// and `Date` values within a batch share its reading (a batch takes microseconds; reading the
/// clock per request showed in profiles). The date text is re-formatted only when the second
/// changes.
#[derive(Debug)]
pub struct DateCache {
    instant: Instant,
    secs: u64,
    text: String,
}

impl Default for DateCache {
    fn default() -> Self {
        let mut d = DateCache {
            instant: Instant::now(),
            secs: 0,
            text: String::new(),
        };
        d.tick();
        d
    }
}

impl DateCache {
    /// Reads the clocks.
    pub fn tick(&mut self) {
        self.instant = Instant::now();
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if secs != self.secs || self.text.is_empty() {
            self.secs = secs;
            self.text = http_date(secs);
        }
    }

    /// The date header value as of the last tick.
    pub fn now(&self) -> &str {
        &self.text
    }

    /// The monotonic time of the last tick.
    pub fn instant(&self) -> Instant {
        self.instant
    }
}

#[cfg(test)]
mod tests {
    use super::http_date;

    #[test]
    fn formats_like_go() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_795_752_807), "Fri, 27 Nov 2026 04:13:27 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(super::common_log(951_782_400), "29/Feb/2000:00:00:00 +0000");
    }
}
