//! Sizes as administrators write them: `512M`, `4G`, `64k`, `1000`.

/// Parses a size with an optional binary unit suffix (K, M, G, T, either
/// case); a bare number counts `bare_unit` bytes. `None` if it is not a
/// size or overflows.
pub fn parse_size(s: &str, bare_unit: u64) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&s[..i], 1 << 20),
        (i, 'g' | 'G') => (&s[..i], 1 << 30),
        (i, 't' | 'T') => (&s[..i], 1 << 40),
        _ => (s, bare_unit),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_errors() {
        assert_eq!(parse_size("512M", 1), Some(512 << 20));
        assert_eq!(parse_size("4g", 1), Some(4 << 30));
        assert_eq!(parse_size("1000", 1024), Some(1_024_000));
        assert_eq!(parse_size("64k", 1), Some(65536));
        assert_eq!(parse_size("12q", 1), None);
        assert_eq!(parse_size("", 1), None);
        assert_eq!(parse_size("99999999999T", 1), None);
    }
}
