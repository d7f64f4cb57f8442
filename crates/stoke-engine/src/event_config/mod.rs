//! Event-invoke configurations: what they may say ([`rules`]: validation, Put's replace,
//! Update's merge, destination ARNs, the qualifier of an async event) and the operations on
//! the stored ones ([`configs`]: Put/Get/Update/Delete/List, and the cached read the async
//! workers make for every event).

pub mod configs;
pub mod rules;

pub use configs::EventConfigs;
pub use rules::{
    DEFAULT_MAX_EVENT_AGE_SECONDS, DEFAULT_MAX_RETRY_ATTEMPTS, DestinationInput, EventConfigInput,
    event_qualifier, parse_function_destination, put, update, validate,
};
