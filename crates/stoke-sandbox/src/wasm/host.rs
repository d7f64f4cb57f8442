//! The `stoke` host imports of wasm guests (`invoke` and `result`; the contract is in the
//! parent module's documentation): reading a guest's arguments out of its memory within limits,
//! and handing a nested call to the [`crate::HostCalls`] of the call.

use bytes::Bytes;
use wasmtime::{Caller, Linker};

use super::HostState;
use crate::HostInvokeResult;

/// The largest function name and payload a guest may pass to `stoke.invoke`.
const MAX_HOST_NAME: usize = 256;
const MAX_HOST_PAYLOAD: usize = 6 * 1024 * 1024;

fn guest_bytes(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    len: i32,
    max: usize,
) -> wasmtime::Result<Vec<u8>> {
    let memory = caller
        .get_export("memory")
        .and_then(|e| e.into_memory())
        .ok_or_else(|| wasmtime::format_err!("the module exports no memory"))?;
    let (ptr, len) = (usize::try_from(ptr)?, usize::try_from(len)?);
    if len > max {
        wasmtime::bail!("argument of {len} bytes is over the limit of {max}");
    }
    let data = memory.data(&caller);
    let end = ptr.checked_add(len).filter(|e| *e <= data.len());
    match end {
        Some(end) => Ok(data[ptr..end].to_vec()),
        None => wasmtime::bail!("pointer out of bounds"),
    }
}

pub(super) fn add_stoke_imports(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        "stoke",
        "invoke",
        |mut caller: Caller<'_, HostState>,
         (name_ptr, name_len, payload_ptr, payload_len): (i32, i32, i32, i32)| {
            Box::new(async move {
                let name = guest_bytes(&mut caller, name_ptr, name_len, MAX_HOST_NAME)?;
                let payload = guest_bytes(&mut caller, payload_ptr, payload_len, MAX_HOST_PAYLOAD)?;
                let name = String::from_utf8(name)
                    .map_err(|_| wasmtime::format_err!("function name is not UTF-8"))?;
                let answer = match caller.data().host.clone() {
                    Some(host) => host.invoke(&name, Bytes::from(payload)).await,
                    None => HostInvokeResult::Refused(Bytes::from_static(
                        br#"{"errorType":"ServiceException","errorMessage":"invoking other functions is not available here"}"#,
                    )),
                };
                let (status, bytes) = match answer {
                    HostInvokeResult::Success(b) => (0i64, b),
                    HostInvokeResult::FunctionError(b) => (1, b),
                    HostInvokeResult::Refused(b) => (2, b),
                };
                let len = i64::try_from(bytes.len()).unwrap_or(i64::from(u32::MAX));
                caller.data_mut().pending = Some(bytes);
                Ok((status << 32) | len)
            })
        },
    )?;
    linker.func_wrap(
        "stoke",
        "result",
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let Some(bytes) = caller.data_mut().pending.take() else {
                return Ok(-1);
            };
            let memory = caller
                .get_export("memory")
                .and_then(|e| e.into_memory())
                .ok_or_else(|| wasmtime::format_err!("the module exports no memory"))?;
            let n = bytes.len().min(usize::try_from(len)?);
            memory.write(&mut caller, usize::try_from(ptr)?, &bytes[..n])?;
            Ok(i32::try_from(n)?)
        },
    )?;
    Ok(())
}
