//! Durations as manifests write them: `48h`, `30m`, `1h30m`, `7d`.

use std::{borrow::Cow, fmt, str::FromStr, time::Duration};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The pattern a duration must match; kept in the schema so that the cluster refuses what
/// `validate` refuses.
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h|d))+$";

/// A span of time written as a sequence of number-and-unit pairs (`ms`, `s`, `m`, `h`, `d`),
/// like `48h` or `1h30m`: the notation of Kubernetes and Go.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ManifestDuration(pub Duration);

/// Why a duration did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a duration: use a number and a unit (ms, s, m, h, d), e.g. 48h or 1h30m")]
pub struct DurationError(String);

impl ManifestDuration {
    pub fn from_hours(h: u64) -> Self {
        ManifestDuration(Duration::from_secs(h * 3600))
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl FromStr for ManifestDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DurationError(s.to_owned());
        if s.is_empty() {
            return Err(err());
        }
        let mut total = Duration::ZERO;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| err())?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = match &rest[..unit_len] {
                "ms" => Duration::from_millis(1),
                "s" => Duration::from_secs(1),
                "m" => Duration::from_secs(60),
                "h" => Duration::from_secs(3600),
                "d" => Duration::from_secs(86400),
                _ => return Err(err()),
            };
            rest = &rest[unit_len..];
            let part = u32::try_from(n)
                .ok()
                .and_then(|n| unit.checked_mul(n))
                .ok_or_else(err)?;
            total = total.checked_add(part).ok_or_else(err)?;
        }
        Ok(ManifestDuration(total))
    }
}

impl fmt::Display for ManifestDuration {
    /// The shortest exact spelling: `48h`, `1h30m`, `90s`, `250ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ManifestDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for ManifestDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ManifestDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for ManifestDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Result<Duration, DurationError> {
        s.parse::<ManifestDuration>().map(|d| d.0)
    }

    #[test]
    fn parses_kubernetes_style_durations() {
        assert_eq!(d("48h"), Ok(Duration::from_secs(48 * 3600)));
        assert_eq!(d("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(d("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn rejects_what_the_schema_pattern_rejects() {
        let re = |s: &str| {
            // Mirror of DURATION_PATTERN without a regex engine: parse must agree with it.
            d(s).is_ok()
        };
        for bad in [
            "",
            "48",
            "h",
            "1.5h",
            "48 h",
            "-1h",
            "1w",
            "1hh",
            "99999999999999h",
        ] {
            assert!(!re(bad), "{bad:?} should be refused");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["48h", "1h30m", "90s", "250ms", "168h", "1h0m1s"] {
            let parsed: ManifestDuration = s.parse().unwrap();
            let again: ManifestDuration = parsed.to_string().parse().unwrap();
            assert_eq!(parsed, again);
        }
        assert_eq!(
            "90s".parse::<ManifestDuration>().unwrap().to_string(),
            "1m30s"
        );
    }
}
