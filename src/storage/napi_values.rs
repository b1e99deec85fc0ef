//! How SQL values cross the napi boundary: bindings in (after the JS side's coercions: null,
//! number, string or Uint8Array), results out (INTEGER as a lossy number, BLOB as ArrayBuffer).

use std::ptr;

use napi::bindgen_prelude::{FromNapiValue, ToNapiValue, TypeName, ValidateNapiValue};
use napi::{sys, Error, Result, Status, ValueType};

use super::sql::{Bind, SqlValue};

impl TypeName for Bind {
    fn type_name() -> &'static str {
        "null | number | string | Uint8Array"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ValidateNapiValue for Bind {}

impl FromNapiValue for Bind {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        let mut kind = 0;
        check(sys::napi_typeof(env, value, &mut kind))?;
        match kind {
            sys::ValueType::napi_null | sys::ValueType::napi_undefined => Ok(Bind::Null),
            sys::ValueType::napi_number => Ok(Bind::Real(f64::from_napi_value(env, value)?)),
            sys::ValueType::napi_string => Ok(Bind::Text(read_string(env, value)?)),
            _ => {
                let mut is_typed = false;
                check(sys::napi_is_typedarray(env, value, &mut is_typed))?;
                if !is_typed {
                    return Err(Error::new(
                        Status::InvalidArg,
                        "a SQL binding must be null, a number, a string or a Uint8Array",
                    ));
                }
                let (mut len, mut data, mut offset) = (0usize, ptr::null_mut(), 0usize);
                let mut array_kind = 0;
                let mut buffer = ptr::null_mut();
                check(sys::napi_get_typedarray_info(
                    env,
                    value,
                    &mut array_kind,
                    &mut len,
                    &mut data,
                    &mut buffer,
                    &mut offset,
                ))?;
                let bytes = if data.is_null() {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(data as *const u8, len)
                };
                Ok(Bind::Blob(bytes.to_vec()))
            }
        }
    }
}

/// A JS string as UTF-8, in one N-API call when it is short (napi-rs's `String` makes two).
pub(crate) unsafe fn read_string(env: sys::napi_env, value: sys::napi_value) -> Result<String> {
    with_str(env, value, |text| Ok(text.to_owned()))
}

/// Calls `f` with the string `value` as UTF-8, copied once: onto the stack when it is short.
pub(crate) unsafe fn with_str<T>(
    env: sys::napi_env,
    value: sys::napi_value,
    f: impl FnOnce(&str) -> Result<T>,
) -> Result<T> {
    // N-API writes whole characters only (at most 4 bytes each), so a copy may stop 4 bytes short.
    let read = |buf: *mut u8, cap, len: &mut usize| {
        sys::napi_get_value_string_utf8(env, value, buf.cast(), cap, len)
    };
    with_copy::<u8, 256, _>(4, read, |bytes| f(std::str::from_utf8_unchecked(bytes)))
        .map_err(|_| Error::new(Status::StringExpected, "a string was expected"))?
}

/// Calls `f` with the string `value`'s UTF-16 code units, copied once: onto the stack when it is
/// short.
pub(crate) unsafe fn with_utf16<T>(
    env: sys::napi_env,
    value: sys::napi_value,
    f: impl FnOnce(&[u16]) -> T,
) -> Result<T> {
    // Code units are copied one for one: a copy is never cut short.
    let read = |buf: *mut u16, cap, len: &mut usize| {
        sys::napi_get_value_string_utf16(env, value, buf, cap, len)
    };
    with_copy::<u16, 512, _>(0, read, f)
}

/// Copies a string's code units with `read` (one of N-API's string getters, which leave room for
/// a NUL) and calls `f` with them: from a stack buffer when the copy ended more than `slack` units
/// short of its end, so that it is surely whole; else from the heap, sized by asking first.
unsafe fn with_copy<C: Copy + Default, const N: usize, T>(
    slack: usize,
    read: impl Fn(*mut C, usize, &mut usize) -> sys::napi_status,
    f: impl FnOnce(&[C]) -> T,
) -> Result<T> {
    let mut stack = [C::default(); N];
    let mut len = 0;
    check(read(stack.as_mut_ptr(), N, &mut len))?;
    if len + slack < N - 1 {
        return Ok(f(&stack[..len]));
    }
    let mut full = 0;
    check(read(ptr::null_mut(), 0, &mut full))?;
    let mut heap = vec![C::default(); full + 1];
    check(read(heap.as_mut_ptr(), heap.len(), &mut len))?;
    Ok(f(&heap[..len]))
}

/// Bytes handed to JS as a fresh ArrayBuffer (a copy): cheaper than an external Buffer, which
/// needs a finalizer per value.
pub struct Bytes(pub Vec<u8>);

impl TypeName for Bytes {
    fn type_name() -> &'static str {
        "ArrayBuffer"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for Bytes {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        array_buffer(env, &value.0)
    }
}

pub(crate) unsafe fn array_buffer(env: sys::napi_env, bytes: &[u8]) -> Result<sys::napi_value> {
    let mut data = ptr::null_mut();
    let mut out = ptr::null_mut();
    check(sys::napi_create_arraybuffer(
        env,
        bytes.len(),
        &mut data,
        &mut out,
    ))?;
    if !bytes.is_empty() {
        ptr::copy_nonoverlapping(bytes.as_ptr(), data as *mut u8, bytes.len());
    }
    Ok(out)
}

/// A value as `put()` stored it (V8's serialization format), handed to JS already read when it is
/// a Latin-1 string or a number, the common cases, and as an ArrayBuffer for JS to deserialize
/// otherwise. Reading those two here saves the buffer and a JS decode per `get()`; the checks are
/// the JS side's (`deserializePrimitive` in lib/values.ts), so both read the same bytes the same way.
pub struct StoredValue(pub Vec<u8>);

/// The primitives read here: header 0xFF, version 13–15, then one tag.
pub(crate) enum Primitive<'a> {
    Latin1(&'a [u8]),
    Number(f64),
}

const TAG_INT32: u8 = b'I';
const TAG_DOUBLE: u8 = b'N';
const TAG_ONE_BYTE_STRING: u8 = b'"';

pub(crate) fn primitive(bytes: &[u8]) -> Option<Primitive<'_>> {
    let [0xff, 13..=15, tag, body @ ..] = bytes else {
        return None;
    };
    match *tag {
        TAG_DOUBLE => Some(Primitive::Number(f64::from_le_bytes(body.try_into().ok()?))),
        TAG_INT32 => {
            let (zigzag, rest) = varint(body)?;
            // As JS reads it: the varint taken modulo 2^32, then zigzag-decoded to an int32.
            let zigzag = zigzag as u32;
            let value = ((zigzag >> 1) as i32) ^ -((zigzag & 1) as i32);
            rest.is_empty().then_some(Primitive::Number(value as f64))
        }
        TAG_ONE_BYTE_STRING => {
            let (length, rest) = varint(body)?;
            (rest.len() as u64 == length).then_some(Primitive::Latin1(rest))
        }
        _ => None,
    }
}

/// The header and tag V8 writes before a value of each kind (wire version 15, as `v8.serialize`).
const HEADER: [u8; 2] = [0xff, 0x0f];

/// `n` as V8 serializes it: an int32 when it is one (not -0), else a double. Mirrors
/// `serializePrimitive` in lib/values.ts, which writes the same bytes for the paths this one is not on.
pub fn serialize_number(n: f64) -> Vec<u8> {
    let mut out = HEADER.to_vec();
    let int = n as i32;
    if f64::from(int) == n && !(n == 0.0 && n.is_sign_negative()) {
        out.push(TAG_INT32);
        push_varint(&mut out, ((int << 1) ^ (int >> 31)) as u32);
    } else {
        out.push(TAG_DOUBLE);
        out.extend_from_slice(&n.to_le_bytes());
    }
    out
}

/// A string of UTF-16 `units` as V8 serializes a one-byte string; `None` when a unit is past
/// Latin-1 (the JS side serializes those).
pub fn serialize_latin1(units: &[u16]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(units.len() + 8);
    out.extend_from_slice(&HEADER);
    out.push(TAG_ONE_BYTE_STRING);
    push_varint(&mut out, u32::try_from(units.len()).ok()?);
    for &unit in units {
        out.push(u8::try_from(unit).ok()?);
    }
    Some(out)
}

fn push_varint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A varint of up to five bytes and what follows it; None when longer or cut short.
fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

/// Latin-1 bytes handed to JS as a string.
pub struct Latin1(pub Vec<u8>);

impl TypeName for Latin1 {
    fn type_name() -> &'static str {
        "string"
    }
    fn value_type() -> ValueType {
        ValueType::String
    }
}

impl ToNapiValue for Latin1 {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        latin1_string(env, &value.0)
    }
}

unsafe fn latin1_string(env: sys::napi_env, chars: &[u8]) -> Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    check(sys::napi_create_string_latin1(
        env,
        chars.as_ptr().cast(),
        chars.len() as isize,
        &mut out,
    ))?;
    Ok(out)
}

impl TypeName for StoredValue {
    fn type_name() -> &'static str {
        "string | number | ArrayBuffer"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ToNapiValue for StoredValue {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        match primitive(&value.0) {
            Some(Primitive::Number(n)) => f64::to_napi_value(env, n),
            Some(Primitive::Latin1(chars)) => latin1_string(env, chars),
            None => array_buffer(env, &value.0),
        }
    }
}

impl TypeName for SqlValue {
    fn type_name() -> &'static str {
        "null | number | string | ArrayBuffer"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ToNapiValue for SqlValue {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        match value {
            SqlValue::Null => {
                let mut out = ptr::null_mut();
                check(sys::napi_get_null(env, &mut out))?;
                Ok(out)
            }
            // Cloudflare returns INTEGER as a number, losing precision past 2^53 (spec 105).
            SqlValue::Integer(i) => f64::to_napi_value(env, i as f64),
            SqlValue::Real(f) => f64::to_napi_value(env, f),
            SqlValue::Text(s) => String::to_napi_value(env, s),
            SqlValue::Blob(bytes) => array_buffer(env, &bytes),
        }
    }
}

pub(crate) fn check(status: sys::napi_status) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(
            Status::from(status),
            "a napi call failed while converting a value",
        ))
    }
}

/// A batch of events for JS; each kind of event says how it lays itself out in a [`FlatArray`].
pub struct Batch<T>(pub Vec<T>);

impl<T> TypeName for Batch<T> {
    fn type_name() -> &'static str {
        "Array"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

/// A JS array filled element by element: batches of events cross as one flat array, a fixed
/// number of elements per event, rather than as an object per event.
pub(crate) struct FlatArray {
    env: sys::napi_env,
    array: sys::napi_value,
    at: u32,
}

impl FlatArray {
    /// # Safety
    /// `env` must be the current call's environment.
    pub unsafe fn new(env: sys::napi_env, len: usize) -> Result<Self> {
        let mut array = ptr::null_mut();
        check(sys::napi_create_array_with_length(env, len, &mut array))?;
        Ok(FlatArray { env, array, at: 0 })
    }

    /// # Safety
    /// `value` must belong to the environment the array was made in.
    pub unsafe fn push(&mut self, value: sys::napi_value) -> Result<()> {
        check(sys::napi_set_element(self.env, self.array, self.at, value))?;
        self.at += 1;
        Ok(())
    }

    pub fn into_value(self) -> sys::napi_value {
        self.array
    }
}

#[cfg(test)]
mod tests {
    use super::{primitive, serialize_latin1, serialize_number, Primitive};

    fn number(bytes: &[u8]) -> Option<f64> {
        match primitive(bytes)? {
            Primitive::Number(n) => Some(n),
            Primitive::Latin1(_) => None,
        }
    }

    #[test]
    fn reads_v8s_primitives_as_the_js_side_does() {
        // Bytes as v8.serialize() writes them (Node 20, format version 15).
        assert_eq!(number(&[0xff, 0x0f, b'I', 0x54]), Some(42.0));
        assert_eq!(number(&[0xff, 0x0f, b'I', 0x53]), Some(-42.0));
        assert_eq!(
            number(&[0xff, 0x0f, b'I', 0xfe, 0xff, 0xff, 0xff, 0x0f]),
            Some(2147483647.0)
        );
        assert_eq!(
            number(&[0xff, 0x0f, b'I', 0xff, 0xff, 0xff, 0xff, 0x0f]),
            Some(-2147483648.0)
        );
        let mut double = vec![0xff, 0x0f, b'N'];
        double.extend_from_slice(&1.5f64.to_le_bytes());
        assert_eq!(number(&double), Some(1.5));
        let Some(Primitive::Latin1(chars)) = primitive(&[0xff, 0x0f, b'"', 0x02, b'h', 0xe9])
        else {
            panic!("a one-byte string");
        };
        assert_eq!(chars, b"h\xe9");
    }

    #[test]
    fn writes_numbers_and_latin1_strings_as_v8_does() {
        // Expected bytes are v8.serialize()'s on Node 20.
        assert_eq!(serialize_number(42.0), [0xff, 0x0f, b'I', 0x54]);
        assert_eq!(serialize_number(-42.0), [0xff, 0x0f, b'I', 0x53]);
        assert_eq!(serialize_number(0.0), [0xff, 0x0f, b'I', 0x00]);
        assert_eq!(
            serialize_number(2147483647.0),
            [0xff, 0x0f, b'I', 0xfe, 0xff, 0xff, 0xff, 0x0f]
        );
        assert_eq!(
            serialize_number(-2147483648.0),
            [0xff, 0x0f, b'I', 0xff, 0xff, 0xff, 0xff, 0x0f]
        );
        let double = |n: f64| {
            let mut bytes = vec![0xff, 0x0f, b'N'];
            bytes.extend_from_slice(&n.to_le_bytes());
            bytes
        };
        for n in [
            -0.0,
            1.5,
            2147483648.0,
            f64::NAN,
            f64::INFINITY,
            -2147483649.0,
        ] {
            assert_eq!(serialize_number(n), double(n), "{n}");
        }
        let units: Vec<u16> = "hé".encode_utf16().collect();
        assert_eq!(
            serialize_latin1(&units),
            Some(vec![0xff, 0x0f, b'"', 0x02, b'h', 0xe9])
        );
        let long = vec![u16::from(b'a'); 200];
        let bytes = serialize_latin1(&long).unwrap();
        assert_eq!(bytes[..5], [0xff, 0x0f, b'"', 0xc8, 0x01]);
        assert_eq!(bytes.len(), 205);
        assert_eq!(serialize_latin1(&[0x100]), None);
        for bytes in [serialize_number(-7.0), serialize_latin1(&units).unwrap()] {
            assert!(
                primitive(&bytes).is_some(),
                "the reader reads what the writer wrote"
            );
        }
    }

    #[test]
    fn anything_else_is_left_to_js() {
        assert!(
            primitive(&[0xff, 0x0f, b'"', 0x03, b'h', b'i']).is_none(),
            "length short"
        );
        assert!(
            primitive(&[0xff, 0x0f, b'I', 0x54, 0x00]).is_none(),
            "trailing byte"
        );
        assert!(
            primitive(&[0xff, 0x0f, b'N', 0, 0]).is_none(),
            "short double"
        );
        assert!(primitive(&[0xff, 0x0c, b'I', 0x54]).is_none(), "version 12");
        assert!(
            primitive(&[0xff, 0x0f, b'I', 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]).is_none(),
            "overlong varint"
        );
        assert!(
            primitive(&[0xff, 0x0f, b'o', b'{', 0]).is_none(),
            "an object"
        );
        assert!(
            primitive(&[0xff, 0x0f, b'0']).is_none(),
            "null stays a buffer: null means missing"
        );
    }
}
