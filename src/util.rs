//! Small helpers shared across modules: time formatting, sizes, host name.

use jiff::Timestamp;

/// Current UTC time, RFC 3339 with exactly nine fractional digits, so that times sort as strings.
pub fn now_rfc3339() -> String {
    format_time(Timestamp::now())
}

/// RFC 3339 UTC with nine fractional digits.
pub fn format_time(ts: Timestamp) -> String {
    format!("{}.{:09}Z", ts.strftime("%Y-%m-%dT%H:%M:%S"), ts.subsec_nanosecond())
}

/// Parses a time written by `format_time` (or any RFC 3339 time).
pub fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Bytes in binary units: "1.5 MiB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `len` incompressible test bytes: xorshift64, a different sequence for every seed (0 included).
#[cfg(test)]
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_sort_as_strings() {
        let a = super::format_time(jiff::Timestamp::new(1_700_000_000, 5).unwrap());
        let b = super::format_time(jiff::Timestamp::new(1_700_000_000, 40_000_000).unwrap());
        assert_eq!(a, "2023-11-14T22:13:20.000000005Z");
        assert!(a < b);
        assert_eq!(super::parse_time(&a).unwrap().subsec_nanosecond(), 5);
    }

    #[test]
    fn human() {
        assert_eq!(super::human_bytes(5), "5 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(3 << 30), "3.0 GiB");
    }
}
