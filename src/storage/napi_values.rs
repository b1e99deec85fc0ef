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
            sys::ValueType::napi_string => Ok(Bind::Text(String::from_napi_value(env, value)?)),
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

unsafe fn array_buffer(env: sys::napi_env, bytes: &[u8]) -> Result<sys::napi_value> {
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

fn check(status: sys::napi_status) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(
            Status::from(status),
            "napi call failed while converting a SQL value",
        ))
    }
}
