//! How archive segments are named: `<first seq>-<last seq>.ndjson.gz`, each
//! seq 20 digits wide so that file order is seq order. Retention writes
//! them; the offline verifier checks a segment against the range its name gives.

const SUFFIX: &str = ".ndjson.gz";

/// The file name of the segment of seqs `first..=last`.
pub fn segment_name(first: i64, last: i64) -> String {
    format!("{first:020}-{last:020}{SUFFIX}")
}

/// The (first, last) seqs a segment file's name gives.
pub fn parse_segment_name(name: &str) -> Option<(i64, i64)> {
    let (first, last) = name.strip_suffix(SUFFIX)?.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_by_seq_and_parse_back() {
        let (a, b) = (segment_name(1, 99), segment_name(100, 100_000));
        assert_eq!(a, "00000000000000000001-00000000000000000099.ndjson.gz");
        assert!(a < b, "file order is seq order");
        assert_eq!(parse_segment_name(&b), Some((100, 100_000)));
        for bad in ["x.ndjson.gz", "1-2.ndjson", "00000000000000000001.ndjson.gz", "a-b.ndjson.gz"] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }
}
