//! The servers only the fault suite touches, from `POLYLOCK_TEST_FAULTS_DIR`
//! (tests/with-servers.sh starts them), and the scripts that restart and
//! kill them.

use std::path::{Path, PathBuf};

/// The directory holding the fault servers' state directories.
pub struct FaultServers {
    dir: PathBuf,
}

impl FaultServers {
    /// From `POLYLOCK_TEST_FAULTS_DIR`; `None` (skip) without it, except in CI.
    pub fn from_env() -> Option<FaultServers> {
        let dir = crate::env::server_env("POLYLOCK_TEST_FAULTS_DIR", true)?;
        Some(FaultServers { dir: dir.into() })
    }

    fn state(&self, server: &str) -> PathBuf {
        self.dir.join(server)
    }

    /// The consul:// URL of an agent in a state directory (`dev`, `server`,
    /// `server1`…).
    pub fn consul_url(&self, server: &str, agent: &str) -> String {
        let http = read(&self.state(server).join(format!("{agent}.url")));
        format!("consul://{}", http.trim_start_matches("http://"))
    }

    /// The mongodb:// URL of the fault suite's FerretDB.
    pub fn ferretdb_url(&self) -> String {
        let port = read(&self.state("ferretdb").join("port"));
        format!("mongodb://127.0.0.1:{port}/")
    }

    /// The postgres:// URL of the fault suite's PostgreSQL server.
    pub fn postgres_url(&self) -> String {
        read(&self.state("postgres").join("url"))
    }

    /// The ldlm:// URL of the fault suite's LDLM server, `None` (skip) when
    /// tests/with-servers.sh found no LDLM server binary.
    pub fn ldlm_url(&self) -> Option<String> {
        crate::env::ldlm_env("POLYLOCK_TEST_FAULTS_DIR")?;
        Some(read(&self.state("ldlm").join("url")))
    }

    /// The log of the fault suite's LDLM server.
    pub fn ldlm_log(&self) -> PathBuf {
        self.state("ldlm").join("ldlm.log")
    }

    /// Runs `tests/servers/SCRIPT COMMAND STATE_DIR`; its output.
    pub async fn script(&self, script: &str, command: &str, server: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/servers")
            .join(script);
        let output = tokio::process::Command::new("bash")
            .arg(path)
            .arg(command)
            .arg(self.state(server))
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{script} {command} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}
