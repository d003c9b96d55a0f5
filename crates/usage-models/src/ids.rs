//! Typed identifiers and names, each with Kill Bill's rules.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::{Field, ValidationError};

/// The longest unit type Kill Bill stores (`varchar(255)`; longer ones make the server answer 500).
pub const MAX_UNIT_TYPE_CHARS: usize = 255;
/// The longest tracking id Kill Bill stores (`varchar(128)`; longer ones make the server answer 500).
pub const MAX_TRACKING_ID_CHARS: usize = 128;

/// A subscription id (a UUID), written lowercase and hyphenated.
///
/// ```
/// use usage_models::SubscriptionId;
///
/// let id: SubscriptionId = "8B9C1E0E-5A0B-4D47-9A7E-1F3C2C8F4A11".parse().unwrap();
/// assert_eq!(id.to_string(), "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11");
/// assert!("not-a-uuid".parse::<SubscriptionId>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubscriptionId(Uuid);

impl SubscriptionId {
    /// Wraps a UUID.
    pub const fn new(id: Uuid) -> Self {
        SubscriptionId(id)
    }

    /// A new random (version 4) id, as Kill Bill gives new subscriptions.
    pub fn random() -> Self {
        SubscriptionId(Uuid::new_v4())
    }

    /// The UUID.
    pub const fn uuid(self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for SubscriptionId {
    fn from(id: Uuid) -> Self {
        SubscriptionId(id)
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for SubscriptionId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim()).map(SubscriptionId).map_err(|_| {
            ValidationError::new(
                Field::SubscriptionId,
                format!("{s:?} is not a UUID (8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11)"),
            )
        })
    }
}

/// Defines a validated, non-empty, length-limited string newtype.
macro_rules! bounded_name {
    ($(#[$doc:meta])* $name:ident, $field:expr, $max:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $name(String);

        impl $name {
            /// Checks the rules and wraps the value.
            pub fn new(value: impl Into<String>) -> Result<Self, ValidationError> {
                let value = value.into();
                if value.is_empty() {
                    return Err(ValidationError::new($field, "must not be empty".to_string()));
                }
                // A string has at most as many characters as bytes: count only long ones.
                let chars = if value.len() > $max { value.chars().count() } else { value.len() };
                if chars > $max {
                    return Err(ValidationError::new(
                        $field,
                        format!(
                            "is {chars} characters long; Kill Bill stores at most {} \
                             (the server answers 500 past that)",
                            $max
                        ),
                    ));
                }
                Ok($name(value))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ValidationError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                $name::new(s)
            }
        }

        impl From<&$name> for $name {
            /// A copy: lets a call take a value or a reference alike.
            fn from(value: &$name) -> Self {
                value.clone()
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $name::new(s)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $name::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

bounded_name!(
    /// A unit type (`gallons`, `api-calls`, ...): non-empty, at most 255 characters, matched
    /// exactly and case-sensitively by Kill Bill. Any character is allowed: the client
    /// percent-encodes it as one path segment.
    ///
    /// ```
    /// use usage_models::UnitType;
    ///
    /// assert_eq!(UnitType::new("gallons").unwrap(), "gallons");
    /// assert!(UnitType::new("").is_err());
    /// assert!(UnitType::new("x".repeat(256)).is_err());
    /// ```
    UnitType,
    Field::UnitType,
    MAX_UNIT_TYPE_CHARS
);

bounded_name!(
    /// A tracking id: the key that makes recording idempotent. Kill Bill refuses a second
    /// request with the same (tenant, subscription, tracking id) with error code 50000.
    /// Non-empty, at most 128 characters.
    ///
    /// ```
    /// use usage_models::TrackingId;
    ///
    /// assert_eq!(TrackingId::new("import-2013-08").unwrap().as_str(), "import-2013-08");
    /// assert!(TrackingId::new("").is_err());
    /// ```
    TrackingId,
    Field::TrackingId,
    MAX_TRACKING_ID_CHARS
);

impl TrackingId {
    /// A new random (version 4 UUID) tracking id, as the server would generate.
    pub fn random() -> Self {
        TrackingId(Uuid::new_v4().to_string())
    }
}
