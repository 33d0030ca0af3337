//! The `Id` newtype: display, parsing, integer conversions and serde.
use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A 64-bit ID whose top bit is always clear (so it is also a positive `i64`).
///
/// Ordered like its integer, which for IDs from one [`Layout`](crate::Layout) means by
/// time, then worker, then sequence. Serialized by serde as a `u64` and deserialized from
/// one (so binary formats without type tags, such as postcard or bincode, work). For
/// JavaScript clients, serialize it as a string with [`id_as_string`](crate::id_as_string),
/// which also reads a string back (or use [`Layout::JS_SAFE`](crate::Layout::JS_SAFE)).
///
/// ```
/// use ringleader_idgen::Id;
///
/// let id: Id = "1541815603606036480".parse()?;
/// assert_eq!(id.to_string(), "1541815603606036480");
/// assert_eq!(u64::from(id), 1541815603606036480);
/// assert_eq!(i64::from(id), 1541815603606036480);
/// assert!(Id::try_from(u64::MAX).is_err()); // top bit set
/// assert!("-1".parse::<Id>().is_err());
/// # Ok::<(), ringleader_idgen::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(u64);

impl Id {
    /// The largest possible ID, `i64::MAX`.
    pub const MAX: Id = Id(i64::MAX as u64);

    /// The ID as an unsigned integer.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The ID as a signed integer (always non-negative).
    pub const fn as_i64(self) -> i64 {
        self.0 as i64
    }

    /// Callers guarantee `raw <= i64::MAX` (every layout uses at most 63 bits).
    pub(crate) const fn from_raw_unchecked(raw: u64) -> Id {
        debug_assert!(raw <= i64::MAX as u64);
        Id(raw)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Id {
    type Err = Error;

    /// Parses a plain decimal integer in `0..=i64::MAX` (no sign, no whitespace).
    fn from_str(s: &str) -> Result<Id, Error> {
        let err = || Error::ParseId {
            input: s.chars().take(64).collect(),
        };
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let raw: u64 = s.parse().map_err(|_| err())?;
        Id::try_from(raw).map_err(|_| err())
    }
}

impl TryFrom<u64> for Id {
    type Error = Error;

    /// Fails when the top bit is set.
    fn try_from(raw: u64) -> Result<Id, Error> {
        if raw > i64::MAX as u64 {
            Err(Error::OutOfRange {
                what: "id",
                value: raw,
                max: i64::MAX as u64,
            })
        } else {
            Ok(Id(raw))
        }
    }
}

impl TryFrom<i64> for Id {
    type Error = Error;

    /// Fails for negative values.
    fn try_from(raw: i64) -> Result<Id, Error> {
        u64::try_from(raw).map(Id).map_err(|_| Error::ParseId {
            input: raw.to_string(),
        })
    }
}

impl From<Id> for u64 {
    fn from(id: Id) -> u64 {
        id.0
    }
}

impl From<Id> for i64 {
    fn from(id: Id) -> i64 {
        id.as_i64()
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    /// Asks for a `u64`: a format that does not describe its own types (postcard, bincode)
    /// can only answer a request for the type it wrote; `deserialize_any` would fail there.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Id, D::Error> {
        deserializer.deserialize_u64(IdVisitor)
    }
}

struct IdVisitor;

impl Visitor<'_> for IdVisitor {
    type Value = Id;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an ID: an integer or decimal string in 0..=9223372036854775807")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id, E> {
        Id::try_from(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id, E> {
        Id::try_from(v).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
        v.parse().map_err(E::custom)
    }
}

/// Opt-in string form for JavaScript clients: `#[serde(with = "ringleader_idgen::id_as_string")]`
/// writes the ID as a decimal string (a JS `Number` loses precision above 2^53);
/// reading accepts a string or a number.
///
/// ```
/// use ringleader_idgen::Id;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Order {
///     #[serde(with = "ringleader_idgen::id_as_string")]
///     id: Id,
/// }
///
/// let order = Order { id: "1541815603606036480".parse()? };
/// let json = serde_json::to_string(&order).unwrap();
/// assert_eq!(json, r#"{"id":"1541815603606036480"}"#);
/// let back: Order = serde_json::from_str(&json).unwrap();
/// assert_eq!(back.id, order.id);
/// # Ok::<(), ringleader_idgen::Error>(())
/// ```
pub mod id_as_string {
    use super::{Id, IdVisitor};
    use serde::{Deserializer, Serializer};

    /// Serialize an [`Id`] as a decimal string.
    pub fn serialize<S: Serializer>(id: &Id, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(id)
    }

    /// Deserialize an [`Id`] from a decimal string or, in self-describing human-readable
    /// formats (JSON), also a number. Other formats are asked for the string `serialize`
    /// wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Id, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(IdVisitor)
        } else {
            deserializer.deserialize_str(IdVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_garbage_with_a_clear_error() {
        for bad in [
            "",
            " 1",
            "1 ",
            "+1",
            "-1",
            "0x10",
            "1.0",
            "9223372036854775808",
            "99999999999999999999",
        ] {
            let err = bad.parse::<Id>().unwrap_err();
            assert!(err.to_string().contains("invalid ID"), "{bad:?}: {err}");
        }
        assert_eq!("9223372036854775807".parse::<Id>().unwrap(), Id::MAX);
        assert_eq!("0".parse::<Id>().unwrap().as_u64(), 0);
    }

    #[test]
    fn serde_number_by_default_string_with_id_as_string() {
        let id = Id::try_from(1234u64).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "1234");
        assert_eq!(serde_json::from_str::<Id>("1234").unwrap(), id);
        assert!(
            serde_json::from_str::<Id>("\"1234\"").is_err(),
            "strings only with id_as_string"
        );
        assert!(serde_json::from_str::<Id>("-5").is_err());
        assert!(serde_json::from_str::<Id>("18446744073709551615").is_err());

        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct AsString(#[serde(with = "id_as_string")] Id);
        let text = serde_json::to_string(&AsString(id)).unwrap();
        assert_eq!(text, "\"1234\"");
        assert_eq!(
            serde_json::from_str::<AsString>(&text).unwrap(),
            AsString(id)
        );
        assert_eq!(
            serde_json::from_str::<AsString>("1234").unwrap(),
            AsString(id)
        );
        assert!(serde_json::from_str::<AsString>("\"abc\"").is_err());
    }

    #[test]
    fn round_trips_through_a_format_that_does_not_describe_its_types() {
        // postcard writes a u64 as a bare varint and a string as length + bytes, with no
        // type tags: reading back works only when the reader asks for the written type.
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Row {
            id: Id,
            #[serde(with = "id_as_string")]
            text_id: Id,
            n: u8,
        }
        let row = Row {
            id: Id::try_from(1_541_815_603_606_036_480u64).unwrap(),
            text_id: Id::MAX,
            n: 7,
        };
        let bytes = postcard::to_allocvec(&row).unwrap();
        assert_eq!(postcard::from_bytes::<Row>(&bytes).unwrap(), row);
        let bare = postcard::to_allocvec(&row.id).unwrap();
        assert_eq!(postcard::from_bytes::<Id>(&bare).unwrap(), row.id);
        // A u64 with the top bit set is still refused.
        let too_big = postcard::to_allocvec(&u64::MAX).unwrap();
        assert!(postcard::from_bytes::<Id>(&too_big).is_err());
    }

    #[test]
    fn order_follows_the_integer() {
        let a = Id::try_from(5u64).unwrap();
        let b = Id::try_from(6u64).unwrap();
        assert!(a < b);
        assert_eq!(i64::from(b), 6);
        assert!(Id::try_from(-1i64).is_err());
    }
}
