//! `stoke-sandbox-waiter`: a process sandbox's waiter helper on its own (see
//! `stoke_sandbox::process::waiter_main`). The `stoke` binary plays this part in production;
//! this one lets the crate's own tests run sandboxes.

use std::process::ExitCode;

fn main() -> ExitCode {
    match stoke_sandbox::process::waiter_main() {
        Some(code) => ExitCode::from(code),
        None => {
            eprintln!(
                "stoke-sandbox-waiter is started by the process sandbox launcher, with {} and \
                 a pid",
                stoke_sandbox::process::WAITER_ARG
            );
            ExitCode::from(2)
        }
    }
}
