//! Sizes as manifests write them: `25MB`, `10MiB`, `500kB`, `2GB`, or a number of bytes.

use std::{borrow::Cow, fmt, str::FromStr};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The pattern a size must match (the schema's, so that the cluster refuses what
/// `validate` refuses).
pub const SIZE_PATTERN: &str = r"^[0-9]+ ?([kKMGT]i?B|B)?$";

/// A number of bytes, written with a decimal (`kB`, `MB`, `GB`, `TB`: powers of 1000) or a
/// binary unit (`KiB`, `MiB`, `GiB`, `TiB`: powers of 1024), as mail servers state limits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ManifestSize(pub u64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a size: use a number and a unit (B, kB, MB, GB, KiB, MiB, GiB), e.g. 25MB")]
pub struct SizeError(String);

impl FromStr for ManifestSize {
    type Err = SizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || SizeError(s.to_owned());
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err());
        }
        let n: u64 = s[..digits].parse().map_err(|_| err())?;
        let unit: u64 = match s[digits..].trim_start() {
            "" | "B" => 1,
            "kB" | "KB" => 1000,
            "MB" => 1000_u64.pow(2),
            "GB" => 1000_u64.pow(3),
            "TB" => 1000_u64.pow(4),
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            _ => return Err(err()),
        };
        n.checked_mul(unit).map(ManifestSize).ok_or_else(err)
    }
}

impl fmt::Display for ManifestSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, size) in [
            ("GB", 1000_u64.pow(3)),
            ("MB", 1000_u64.pow(2)),
            ("kB", 1000),
        ] {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl fmt::Debug for ManifestSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for ManifestSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ManifestSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Bytes(u64),
            Text(String),
        }
        match Written::deserialize(d)? {
            Written::Bytes(n) => Ok(ManifestSize(n)),
            Written::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl JsonSchema for ManifestSize {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "x-kubernetes-int-or-string": true,
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": SIZE_PATTERN },
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_decimal_and_binary_units() {
        let p = |s: &str| s.parse::<ManifestSize>().map(|m| m.0);
        assert_eq!(p("25MB"), Ok(25_000_000));
        assert_eq!(p("25 MB"), Ok(25_000_000));
        assert_eq!(p("10MiB"), Ok(10 << 20));
        assert_eq!(p("500kB"), Ok(500_000));
        assert_eq!(p("1234"), Ok(1234));
        assert!(p("25mb").is_err() && p("MB").is_err() && p("-1").is_err());
        assert!(p("99999999999TB").is_err());
        assert_eq!(ManifestSize(25_000_000).to_string(), "25MB");
        let s: ManifestSize = serde_yaml::from_str("2048").unwrap();
        assert_eq!(s.0, 2048);
        let s: ManifestSize = serde_yaml::from_str("\"2GB\"").unwrap();
        assert_eq!(s.0, 2_000_000_000);
    }
}
