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

/// An LDLM setting: like a required server's, except that without an LDLM
/// server binary (`POLYLOCK_TEST_LDLM_SKIPPED=1`, set by
/// tests/with-servers.sh) LDLM cases skip even in CI.
#[allow(dead_code)]
pub fn ldlm_env(var: &str) -> Option<String> {
    if std::env::var("POLYLOCK_TEST_LDLM_SKIPPED").is_ok_and(|v| v == "1") {
        eprintln!("skipped: no LDLM server binary (see README \"LDLM\")");
        return None;
    }
    server_env(var, true)
}
