//! Plan durations (`"14d"`, `"2w"`, `"1d12h"`, `"90s"`) and UTC dates, as milliseconds. Integer math
//! only; dates are proleptic Gregorian days since 1970-01-01 (the civil-from-days algorithm).

pub const SECOND: u64 = 1_000;
pub const MINUTE: u64 = 60 * SECOND;
pub const HOUR: u64 = 60 * MINUTE;
pub const DAY: u64 = 24 * HOUR;
pub const WEEK: u64 = 7 * DAY;

/// Parses `"<n><unit>…"` with units `w d h m s ms`, e.g. `"1w3d"`, `"36h"`, `"2m"`. No spaces.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a duration like \"14d\", \"36h\", \"1w3d\" or \"90s\"");
    if s.is_empty() {
        return Err(bad());
    }
    let b = s.as_bytes();
    let (mut i, mut total) = (0usize, 0u64);
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let n: u64 = s[start..i].parse().map_err(|_| bad())?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = match &s[ustart..i] {
            "w" => WEEK,
            "d" => DAY,
            "h" => HOUR,
            "m" => MINUTE,
            "s" => SECOND,
            "ms" => 1,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// `"2w"`, `"3d12h"`, `"45m"`… (the largest units that divide evenly; "0s" for zero).
pub fn format_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, name) in [
        (DAY, "d"),
        (HOUR, "h"),
        (MINUTE, "m"),
        (SECOND, "s"),
        (1, "ms"),
    ] {
        if rest >= unit {
            out.push_str(&format!("{}{name}", rest / unit));
            rest %= unit;
        }
    }
    out
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A TOML date-time with an offset (or a bare date, taken as 00:00 UTC) → ms since the epoch.
pub fn datetime_ms(dt: &toml::value::Datetime) -> Result<u64, String> {
    let date = dt
        .date
        .ok_or_else(|| format!("{dt} has no date (write e.g. 2027-01-04T00:00:00Z)"))?;
    let (h, mi, s) = dt.time.map_or((0, 0, 0), |t| (t.hour, t.minute, t.second));
    if dt.time.is_some() && dt.offset.is_none() {
        return Err(format!(
            "{dt} has no offset: write Z (UTC) or +hh:mm so every companion reads the same instant"
        ));
    }
    let off_min: i64 = match dt.offset {
        Some(toml::value::Offset::Custom { minutes }) => i64::from(minutes),
        _ => 0,
    };
    let days = days_from_civil(
        i64::from(date.year),
        u32::from(date.month),
        u32::from(date.day),
    );
    let secs =
        days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s) - off_min * 60;
    u64::try_from(secs)
        .map(|v| v * SECOND)
        .map_err(|_| format!("{dt} is before 1970"))
}

/// `2027-01-04T00:00Z` (UTC, minute precision: what people read in a plan table).
pub fn format_ms(ms: u64) -> String {
    let secs = (ms / SECOND) as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("14d"), Ok(14 * DAY));
        assert_eq!(parse_duration("1w3d"), Ok(10 * DAY));
        assert_eq!(parse_duration("90s"), Ok(90 * SECOND));
        assert_eq!(parse_duration("2m"), Ok(2 * MINUTE));
        assert_eq!(parse_duration("250ms"), Ok(250));
        for bad in ["", "14", "d", "3 d", "1y", "-1d", "99999999999999999999w"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(format_duration(10 * DAY + 2 * HOUR), "10d2h");
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for z in [-1000i64, 0, 59, 60, 11_016, 20_000, 21_184] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        let dt: toml::value::Datetime = "2027-01-04T00:00:00Z".parse().unwrap();
        let ms = datetime_ms(&dt).unwrap();
        assert_eq!(format_ms(ms), "2027-01-04T00:00Z");
        let local: toml::value::Datetime = "2027-01-04T00:00:00".parse().unwrap();
        assert!(datetime_ms(&local).unwrap_err().contains("offset"));
        let shifted: toml::value::Datetime = "2027-01-04T02:00:00+02:00".parse().unwrap();
        assert_eq!(datetime_ms(&shifted).unwrap(), ms);
    }
}
