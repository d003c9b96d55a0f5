//! The fast path of binding: one strict pass over a plain body, straight into the bound types.
//!
//! Why: the binder reads a body leniently into a tree of `&RawValue`s and re-reads each nested
//! value to bind it with Jackson's exact errors, so each byte is parsed several times; binding
//! took 6.1G of the emulator's 7.5G instructions per million rows of `kb-usage import` into
//! `kb-usage serve` (BENCHMARKS.md, "kb-usage import of a 1,000,000-row file").
//!
//! Why it is safe: it accepts a subset of what the binder accepts, and binds it to the same
//! values. It takes only one JSON object of the known properties, each at most once, with
//! nothing but whitespace after it; strings (unescaped or not) where the binder wants text,
//! UUIDs or dates, JSON numbers for amounts, arrays and objects where expected, `null` or a
//! missing property where the binder has `None` for both. Each value is converted by the
//! binder's own functions ([`uuid_from_text`], [`record_date_from_text`], [`amount_from_text`]),
//! and a value they refuse or bind as `null` (`""`, a blank date) makes it give up. So does
//! anything else: coerced scalars, unknown or repeated properties, syntax errors, trailing
//! text. Giving up is never an error: [`bind`](super::bind) then runs the binder on the whole
//! body, whose answers (and all the errors) are unchanged. The property test in
//! `bind/tests.rs` checks that whenever this path binds a body, valid or nearly so, the binder
//! binds it to the same values.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{
    amount_from_text, record_date_from_text, uuid_from_text, BoundRecord, BoundUnit, BoundUsage, Text,
    RECORD_PROPERTIES, UNIT_PROPERTIES, USAGE_PROPERTIES,
};
use crate::emulator::WireFormat;

/// `body` bound in one strict pass, or `None` when it is not a plain body (the binder decides).
pub(super) fn bind(body: &[u8], format: WireFormat) -> Option<BoundRecord> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let record = Object::<BoundRecord>::new(format).deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    Some(record)
}

/// Giving up: never shown, the binder answers instead.
fn give_up<E: de::Error>() -> E {
    E::custom("not a plain body")
}

/// A class bound strictly: its JSON properties, and how to read each one's value.
trait Strict: Default {
    /// The binder's property names; [`read`](Self::read) takes an index in them.
    const PROPERTIES: &'static [&'static str];

    /// Reads the value of `Self::PROPERTIES[property]` from `map` into `self`.
    fn read<'de, A: MapAccess<'de>>(
        &mut self,
        property: usize,
        map: &mut A,
        format: WireFormat,
    ) -> Result<(), A::Error>;
}

/// A string property read as text, `null` being `None`; any other JSON type gives up.
fn text<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Text<'de>>, A::Error> {
    map.next_value::<Option<Text<'de>>>()
}

impl Strict for BoundRecord {
    const PROPERTIES: &'static [&'static str] = RECORD_PROPERTIES;

    fn read<'de, A: MapAccess<'de>>(
        &mut self,
        property: usize,
        map: &mut A,
        format: WireFormat,
    ) -> Result<(), A::Error> {
        match property {
            0 => {
                self.subscription_id = match text(map)? {
                    Some(Text(id)) => Some(uuid_from_text(&id).map_err(|_| give_up())?),
                    None => None,
                }
            }
            1 => self.tracking_id = text(map)?.map(|Text(id)| id.into_owned()),
            _ => self.units = map.next_value_seed(Nullable(List(Nullable(Object::<BoundUnit>::new(format)))))?,
        }
        Ok(())
    }
}

impl Strict for BoundUnit {
    const PROPERTIES: &'static [&'static str] = UNIT_PROPERTIES;

    fn read<'de, A: MapAccess<'de>>(
        &mut self,
        property: usize,
        map: &mut A,
        format: WireFormat,
    ) -> Result<(), A::Error> {
        match property {
            0 => self.unit_type = text(map)?.map(|Text(unit)| unit.into_owned()),
            _ => self.records = map.next_value_seed(Nullable(List(Nullable(Object::<BoundUsage>::new(format)))))?,
        }
        Ok(())
    }
}

impl Strict for BoundUsage {
    const PROPERTIES: &'static [&'static str] = USAGE_PROPERTIES;

    fn read<'de, A: MapAccess<'de>>(
        &mut self,
        property: usize,
        map: &mut A,
        format: WireFormat,
    ) -> Result<(), A::Error> {
        match property {
            0 => {
                self.record_date = match text(map)? {
                    // A blank date binds as `null` (`Ok(None)`): not plain, give up.
                    Some(Text(date)) => Some(
                        record_date_from_text(&date, format)
                            .ok()
                            .flatten()
                            .ok_or_else(give_up)?,
                    ),
                    None => None,
                }
            }
            _ => {
                self.amount = match map.next_value::<Option<&'de RawValue>>()? {
                    // A JSON number starts with `-` or a digit; strings, booleans and the rest give up.
                    Some(number) if number.get().starts_with(|c: char| c == '-' || c.is_ascii_digit()) => {
                        Some(amount_from_text(number.get(), false, format).map_err(|_| give_up())?)
                    }
                    Some(_) => return Err(give_up()),
                    None => None,
                }
            }
        }
        Ok(())
    }
}

/// A JSON object of `T`'s properties only, each at most once (not `null`, not an array).
struct Object<T> {
    format: WireFormat,
    class: PhantomData<fn() -> T>,
}

impl<T> Object<T> {
    fn new(format: WireFormat) -> Self {
        Object {
            format,
            class: PhantomData,
        }
    }
}

impl<T> Clone for Object<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Object<T> {}

impl<'de, T: Strict> DeserializeSeed<'de> for Object<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: Strict> Visitor<'de> for Object<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut value = T::default();
        let mut seen = 0u32;
        while let Some(Text(name)) = map.next_key::<Text<'de>>()? {
            let property = T::PROPERTIES.iter().position(|p| *p == name).ok_or_else(give_up)?;
            if seen & (1 << property) != 0 {
                return Err(give_up());
            }
            seen |= 1 << property;
            value.read(property, &mut map, self.format)?;
        }
        Ok(value)
    }
}

/// A JSON array of what `S` reads (not `null`, not an object).
#[derive(Clone, Copy)]
struct List<S>(S);

impl<'de, S: DeserializeSeed<'de> + Copy> DeserializeSeed<'de> for List<S> {
    type Value = Vec<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, S: DeserializeSeed<'de> + Copy> Visitor<'de> for List<S> {
    type Value = Vec<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(self.0)? {
            items.push(item);
        }
        Ok(items)
    }
}

/// What `S` reads, or `None` for `null` (as the binder binds `null`).
#[derive(Clone, Copy)]
struct Nullable<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Nullable<S> {
    type Value = Option<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Nullable<S> {
    type Value = Option<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null or a value")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(deserializer).map(Some)
    }
}
