//! Test-server settings from the environment, shared by the integration
//! tests. `tests/with-servers.sh` sets them for CI and `tests/run.sh`.

/// The value of `var`. Without it the caller skips its case, except in CI
/// (`CI` set) for a `required` server, where a missing one is a failure.
pub fn server_env(var: &str, required: bool) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if required && std::env::var_os("CI").is_some() => {
            panic!("{var} is not set; CI must run every backend against a real server")
        }
        _ => {
            eprintln!("skipped: {var} is not set (tests/with-servers.sh sets it)");
            None
        }
    }
}
