//! The storage calls every `sql.exec` and KV operation makes, written as plain N-API callbacks.
//!
//! napi-rs's generated wrappers cost more than the SQLite work of a cached statement: bindings
//! crossed as an array (one property lookup per element), results built into an array element by
//! element, a borrow scope and a string copy per argument. Here the bindings come as the call's own
//! arguments, the counters of a run go into a `Float64Array` shared with JS once (`status()`), and
//! a result of one value is returned as itself. Panics are caught and thrown as errors.

use std::cell::Cell;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use napi::bindgen_prelude::{FromNapiValue, ToNapiValue, TypeName, ValueType};
use napi::{sys, Error, Result, Status};
use smallvec::SmallVec;

use crate::error::CoreError;
use crate::storage::napi_values::{
    check, serialize_latin1, serialize_number, with_str, with_utf16, FlatArray,
};
use crate::storage::{Bind, ExecResult, StoredValue};
use crate::with_db;

/// Where a run's counters go: `[row values, column count or -1, rows read, rows written]`.
const STATUS_LEN: usize = 4;

thread_local! {
    /// The status array of this thread's Node environment, and its memory.
    static STATUS_ARRAY: Cell<sys::napi_ref> = const { Cell::new(ptr::null_mut()) };
    static STATUS: Cell<*mut f64> = const { Cell::new(ptr::null_mut()) };
}

/// Bindings kept on the stack; more go to the heap.
const INLINE_BINDS: usize = 8;

/// Arguments read onto the stack (a handle, a statement and the bindings); more go to the heap.
const STACK_ARGS: usize = 2 + 16;

/// The fast storage functions, made into JS functions by [`FastCalls`]'s conversion.
pub struct FastCalls;

impl TypeName for FastCalls {
    fn type_name() -> &'static str {
        "object"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

const FUNCTIONS: [(&str, Callback); 4] = [
    ("run", run),
    ("kvGet", kv_get),
    ("kvPut", kv_put),
    ("status", status),
];

impl ToNapiValue for FastCalls {
    unsafe fn to_napi_value(env: sys::napi_env, _: Self) -> Result<sys::napi_value> {
        let mut object = ptr::null_mut();
        check(sys::napi_create_object(env, &mut object))?;
        for (name, callback) in FUNCTIONS {
            let mut function = ptr::null_mut();
            check(sys::napi_create_function(
                env,
                name.as_ptr().cast(),
                name.len() as isize,
                Some(callback),
                ptr::null_mut(),
                &mut function,
            ))?;
            let key = std::ffi::CString::new(name).expect("no NUL in names");
            check(sys::napi_set_named_property(
                env,
                object,
                key.as_ptr(),
                function,
            ))?;
        }
        Ok(object)
    }
}

/// `status()`: the `Float64Array` runs report into, the same one for every caller on this thread
/// (two copies of the package in one process must not each expect their own).
unsafe extern "C" fn status(env: sys::napi_env, _: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let held = STATUS_ARRAY.with(Cell::get);
        if !held.is_null() {
            let mut array = ptr::null_mut();
            check(sys::napi_get_reference_value(env, held, &mut array))?;
            return Ok(array);
        }
        let (mut buffer, mut data, mut array) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
        check(sys::napi_create_arraybuffer(
            env,
            STATUS_LEN * 8,
            &mut data,
            &mut buffer,
        ))?;
        check(sys::napi_create_typedarray(
            env,
            sys::TypedarrayType::float64_array,
            STATUS_LEN,
            buffer,
            0,
            &mut array,
        ))?;
        // Never released: the memory must outlive every run on this thread. An ArrayBuffer's
        // memory does not move, and nothing else can reach this one to detach it.
        let mut reference = ptr::null_mut();
        check(sys::napi_create_reference(env, array, 1, &mut reference))?;
        STATUS.with(|status| status.set(data.cast()));
        STATUS_ARRAY.with(|held| held.set(reference));
        Ok(array)
    })
}

/// `run(handle, statement, ...bindings)`: runs a statement from `storagePrepare`. Returns nothing
/// when the run has no row values and the same column names as before, the value itself when it
/// has exactly one, else an array of the row values followed by the column names if they changed.
unsafe extern "C" fn run(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let args = Args::read(env, info)?;
        let handle = u32::from_napi_value(env, args.get(0))?;
        let statement = u32::from_napi_value(env, args.get(1))?;
        // Most statements have a few parameters: no allocation for the list of them.
        let mut binds = SmallVec::<[Bind; INLINE_BINDS]>::new();
        for i in 2..args.count {
            binds.push(Bind::from_napi_value(env, args.get(i))?);
        }
        let result = with_db(handle, |db| db.run_prepared(statement, &binds))?;
        report(env, result)
    })
}

/// `kvGet(handle, key)`: the stored value (see [`StoredValue`]), or null when missing.
unsafe extern "C" fn kv_get(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let args = Args::read(env, info)?;
        let handle = u32::from_napi_value(env, args.get(0))?;
        let stored = with_str(env, args.get(1), |key| with_db(handle, |db| db.kv_get(key)))?;
        match stored {
            Some(bytes) => StoredValue::to_napi_value(env, StoredValue(bytes)),
            None => null(env),
        }
    })
}

/// `kvPut(handle, key, value)`: stores one pair. `value` is a number or a string, which are
/// serialized here, or the bytes the caller V8-serialized. Returns false, storing nothing, for a
/// string past Latin-1: the caller serializes those.
unsafe extern "C" fn kv_put(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let args = Args::read(env, info)?;
        let handle = u32::from_napi_value(env, args.get(0))?;
        let value = args.get(2);
        let mut kind = 0;
        check(sys::napi_typeof(env, value, &mut kind))?;
        let serialized;
        let bytes = match kind {
            sys::ValueType::napi_number => {
                serialized = serialize_number(f64::from_napi_value(env, value)?);
                &serialized[..]
            }
            sys::ValueType::napi_string => match with_utf16(env, value, serialize_latin1)? {
                Some(latin1) => {
                    serialized = latin1;
                    &serialized[..]
                }
                None => return bool::to_napi_value(env, false),
            },
            _ => typed_bytes(env, value)?,
        };
        with_str(env, args.get(1), |key| {
            with_db(handle, |db| db.kv_put_one(key, bytes))
        })?;
        bool::to_napi_value(env, true)
    })
}

/// Writes the counters to the shared status and returns the values as `run` describes.
unsafe fn report(env: sys::napi_env, result: ExecResult) -> Result<sys::napi_value> {
    let status = STATUS.with(Cell::get);
    if status.is_null() {
        return Err(CoreError::Storage(
            "durable-node internal: status() was not called on this thread".into(),
        )
        .into());
    }
    let width = result.columns.as_ref().map_or(-1.0, |c| c.len() as f64);
    let values = std::slice::from_raw_parts_mut(status, STATUS_LEN);
    values[0] = result.values.len() as f64;
    values[1] = width;
    values[2] = result.rows_read as f64;
    values[3] = result.rows_written as f64;
    match (result.values.len(), &result.columns) {
        (0, None) => undefined(env),
        (1, None) => {
            let value = result.values.into_iter().next().expect("one value");
            ToNapiValue::to_napi_value(env, value)
        }
        _ => {
            let columns = result.columns.unwrap_or_default();
            let mut array = FlatArray::new(env, result.values.len() + columns.len())?;
            for value in result.values {
                array.push(ToNapiValue::to_napi_value(env, value)?)?;
            }
            for name in columns {
                array.push(String::to_napi_value(env, name)?)?;
            }
            Ok(array.into_value())
        }
    }
}

/// A call's arguments, read in one N-API call when there are few.
struct Args {
    stack: [sys::napi_value; STACK_ARGS],
    heap: Vec<sys::napi_value>,
    count: usize,
    undefined: sys::napi_value,
}

impl Args {
    unsafe fn read(env: sys::napi_env, info: sys::napi_callback_info) -> Result<Args> {
        let mut args = Args {
            stack: [ptr::null_mut(); STACK_ARGS],
            heap: Vec::new(),
            count: STACK_ARGS,
            undefined: ptr::null_mut(),
        };
        fetch(env, info, &mut args.count, args.stack.as_mut_ptr())?;
        if args.count > STACK_ARGS {
            args.heap = vec![ptr::null_mut(); args.count];
            fetch(env, info, &mut args.count, args.heap.as_mut_ptr())?;
        }
        check(sys::napi_get_undefined(env, &mut args.undefined))?;
        Ok(args)
    }

    fn get(&self, i: usize) -> sys::napi_value {
        match (i < self.count, self.heap.is_empty()) {
            (false, _) => self.undefined,
            (true, true) => self.stack[i],
            (true, false) => self.heap[i],
        }
    }
}

/// Copies up to `*count` arguments into `into`; `*count` becomes how many the call has.
unsafe fn fetch(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    count: &mut usize,
    into: *mut sys::napi_value,
) -> Result<()> {
    let this = ptr::null_mut();
    let data = ptr::null_mut::<*mut c_void>();
    check(sys::napi_get_cb_info(env, info, count, into, this, data))
}

/// The bytes a typed array views, borrowed for the call.
unsafe fn typed_bytes<'a>(env: sys::napi_env, value: sys::napi_value) -> Result<&'a [u8]> {
    let (mut kind, mut len, mut data, mut buffer, mut offset) =
        (0, 0usize, ptr::null_mut(), ptr::null_mut(), 0usize);
    check(sys::napi_get_typedarray_info(
        env,
        value,
        &mut kind,
        &mut len,
        &mut data,
        &mut buffer,
        &mut offset,
    ))
    .map_err(|_| Error::new(Status::InvalidArg, "a Uint8Array was expected"))?;
    if kind != sys::TypedarrayType::uint8_array {
        return Err(Error::new(Status::InvalidArg, "a Uint8Array was expected"));
    }
    Ok(if data.is_null() {
        &[]
    } else {
        std::slice::from_raw_parts(data as *const u8, len)
    })
}

/// Runs `f`, throwing its error (or a panic, as an error) into JS.
unsafe fn guarded(
    env: sys::napi_env,
    f: impl FnOnce() -> Result<sys::napi_value>,
) -> sys::napi_value {
    let error = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => return value,
        Ok(Err(error)) => error.reason.clone(),
        Err(panic) => {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            format!("Error\u{0}durable-node internal: a storage call panicked: {text}")
        }
    };
    throw(env, &error);
    ptr::null_mut()
}

unsafe fn throw(env: sys::napi_env, message: &str) {
    let mut text = ptr::null_mut();
    let mut error = ptr::null_mut();
    if sys::napi_create_string_utf8(
        env,
        message.as_ptr().cast(),
        message.len() as isize,
        &mut text,
    ) == sys::Status::napi_ok
        && sys::napi_create_error(env, ptr::null_mut(), text, &mut error) == sys::Status::napi_ok
    {
        sys::napi_throw(env, error);
    }
}

unsafe fn null(env: sys::napi_env) -> Result<sys::napi_value> {
    let mut value = ptr::null_mut();
    check(sys::napi_get_null(env, &mut value))?;
    Ok(value)
}

unsafe fn undefined(env: sys::napi_env) -> Result<sys::napi_value> {
    let mut value = ptr::null_mut();
    check(sys::napi_get_undefined(env, &mut value))?;
    Ok(value)
}
