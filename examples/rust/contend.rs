//! A Rust contender for mixed-language tests: takes the lock `NAME` on `URL`
//! `ROUNDS` times, and inside each hold appends "start rust TOKEN" and "end
//! rust TOKEN" lines to `LOG`.
//!
//! ```text
//! cargo run -p polylock --example contend -- URL NAME ROUNDS LOG
//! ```

use std::io::Write;
use std::time::Duration;

use polylock::blocking::Client;
use polylock::LockOptions;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, name, rounds, log] = args.as_slice() else {
        return Err("usage: contend URL NAME ROUNDS LOG".into());
    };
    let client = Client::connect(url)?;
    let lock = client.lock(name, LockOptions::mutex())?;
    for _ in 0..rounds.parse::<u32>()? {
        lock.synchronize(Duration::from_secs(120), |guard| -> std::io::Result<()> {
            let token = guard.fencing_token().unwrap_or(0);
            let mut out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)?;
            out.write_all(format!("start rust {token}\n").as_bytes())?;
            out.flush()?;
            out.write_all(format!("end rust {token}\n").as_bytes())
        })??;
    }
    Ok(())
}
