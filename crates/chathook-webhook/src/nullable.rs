//! Reading a Go backend's `null`s: a `null` list is an empty one, and in a change a `null` field is
//! given (to clear it), not missing.

use serde::{Deserialize, Deserializer};

/// A list or map that may come as `null` (empty).
pub(crate) fn null_as_empty<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A field of a change: missing is `None` (unchanged), `null` is `Some(None)` (cleared).
pub(crate) fn some_nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
