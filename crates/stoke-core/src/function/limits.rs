//! Limits Lambda documents and Stoke keeps.

/// A zip uploaded in the request (`Code.ZipFile`).
pub const MAX_ZIP_BYTES: u64 = 50 * 1024 * 1024;
/// The code once unpacked.
pub const MAX_UNZIPPED_BYTES: u64 = 262_144_000;
/// The JSON of the environment variables.
pub const MAX_ENV_BYTES: usize = 4096;
/// CreateFunction's request body (the zip travels base64-encoded in JSON); AWS's figure.
pub const MAX_CREATE_REQUEST_BYTES: usize = 69_905_067;
pub const MEMORY_MIN: i64 = 128;
pub const MEMORY_MAX: i64 = 10240;
pub const TIMEOUT_MIN: i64 = 1;
pub const TIMEOUT_MAX: i64 = 900;
pub const EPHEMERAL_MIN: i64 = 512;
pub const EPHEMERAL_MAX: i64 = 10240;
/// Lambda's default account concurrency (GetAccountSettings shows the server's own,
/// `stoke serve --concurrency`).
pub const ACCOUNT_CONCURRENCY: u32 = 1000;
/// What reserved concurrency must leave unreserved in the account (Lambda's minimum; an
/// account whose concurrency is lower keeps all of it unreserved).
pub const MIN_UNRESERVED_CONCURRENCY: u32 = 100;

/// Lambda's default total code storage.
pub const TOTAL_CODE_BYTES: u64 = 80 * 1024 * 1024 * 1024;
