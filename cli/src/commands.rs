//! The scripted subcommands: `acquire`, `renew`, `release`, `status`,
//! `list`, `delete`, `create-semaphore`, `watch`. Each returns its exit
//! code. (db_locks' command names are aliases of these: `args.rs`.)
//!
//! A subcommand the backend cannot serve is refused up front from the
//! backend's [`polylock::Capabilities`] (never its scheme) with a usage
//! error ([`exit::USAGE`]) that says why: `acquire` needs leases that outlive
//! the connection, `status`, `list` and `delete` need inspection, `watch`
//! an event stream.

use polylock::{validate_ttl, Client, Error, LockOptions, Result, Wait};

use crate::args::{
    AcquireArgs, DeleteArgs, HolderArgs, ListArgs, LockArgs, NameArg, SemaphoreArgs, WatchArgs,
};
use crate::exit;
use crate::output::Output;

/// The lock `args` describe.
pub fn lock(client: &Client, args: &LockArgs) -> Result<polylock::Lock> {
    let mut options = LockOptions::semaphore(args.limit).ttl(args.ttl);
    if let Some(value) = &args.value {
        options = options.value(value.clone());
    }
    client.lock(&args.name, options)
}

/// `acquire`: take the lock, print the lease, leave it held for its TTL.
/// Refused where a lease ends with the connection that took it (LDLM): it
/// would end with this process.
pub async fn acquire(client: &Client, out: Output, args: AcquireArgs) -> Result<i32> {
    if !client.capabilities().outlives_connection {
        return Err(Error::Usage(format!(
            "acquire cannot leave {name:?} held on the {scheme} backend: its server frees a lock \
             as soon as the connection that took it closes, so the lock would end when polylock \
             exits; hold it while a command runs instead: polylock run {name} -- COMMAND",
            name = args.lock.name,
            scheme = client.scheme(),
        )));
    }
    let lock = lock(client, &args.lock)?;
    let wait = args.lock.timeout.map_or(Wait::No, Wait::For);
    let Some(lease) = lock.acquire_with(wait).await? else {
        eprintln!("polylock: {} is busy", args.lock.name);
        return Ok(exit::BUSY);
    };
    out.lease(&lease);
    // Outlives this process: nobody renews it unless `renew` is called.
    lease.abandon();
    Ok(exit::OK)
}

/// `renew`: renew a lease by its holder id.
pub async fn renew(client: &Client, out: Output, args: HolderArgs) -> Result<i32> {
    let ttl = client
        .renew_holder(&args.name, &args.holder, args.ttl)
        .await?;
    out.renewed(&args.name, &args.holder, ttl);
    Ok(exit::OK)
}

/// `release`: release a lease by its holder id.
pub async fn release(client: &Client, out: Output, args: HolderArgs) -> Result<i32> {
    client.release_holder(&args.name, &args.holder).await?;
    out.released(&args.name, &args.holder);
    Ok(exit::OK)
}

/// `status`: holders of a lock.
pub async fn status(client: &Client, out: Output, args: NameArg) -> Result<i32> {
    require_inspection(client, "status", "show a lock's holders")?;
    out.status(&client.status(&args.name).await?);
    Ok(exit::OK)
}

/// `list`: held locks under a prefix.
pub async fn list(client: &Client, out: Output, args: ListArgs) -> Result<i32> {
    require_inspection(client, "list", "list the held locks")?;
    out.names(&client.list(&args.prefix).await?);
    Ok(exit::OK)
}

/// `delete`: force-release, only with `--yes`, where the backend can list
/// the holders.
pub async fn delete(client: &Client, out: Output, args: DeleteArgs) -> Result<i32> {
    if !client.capabilities().inspection {
        return Err(Error::Usage(format!(
            "delete takes {name:?} away from every holder, but the {scheme} backend cannot list \
             a lock's holders; release one lease by its holder id instead: \
             polylock release {name} --holder HOLDER",
            name = args.name,
            scheme = client.scheme(),
        )));
    }
    if !args.yes {
        return Err(Error::Usage(format!(
            "delete takes {:?} away from its holders; confirm with --yes",
            args.name
        )));
    }
    let count = client.force_release(&args.name).await?;
    out.deleted(&args.name, count);
    Ok(exit::OK)
}

/// `create-semaphore`: semaphores need no creating (every acquisition
/// states its limit); checks that `--limit` fits the lock as it is used
/// now, where the backend can show that, and says how to acquire it.
pub async fn create_semaphore(client: &Client, out: Output, args: SemaphoreArgs) -> Result<i32> {
    if !client.capabilities().semaphores {
        return Err(Error::Usage(format!(
            "the {} backend has no semaphores (limit above 1)",
            client.scheme()
        )));
    }
    // Checks the name, the limit and the TTL as an acquisition would.
    validate_ttl(args.ttl)?;
    client.lock(&args.name, LockOptions::semaphore(args.limit).ttl(args.ttl))?;
    if client.capabilities().inspection {
        let status = client.status(&args.name).await?;
        if let Some(existing) = status.limit.filter(|&limit| limit != args.limit) {
            return Err(Error::LimitMismatch {
                name: args.name,
                requested: args.limit,
                existing: Some(existing),
            });
        }
    }
    out.semaphore(&args.name, args.limit, args.ttl);
    Ok(exit::OK)
}

/// `watch`: print events until `--count` or until interrupted.
pub async fn watch(client: &Client, out: Output, args: WatchArgs) -> Result<i32> {
    if !client.capabilities().event_stream {
        return Err(Error::Usage(format!(
            "the {} backend does not support lock event streams, which watch prints \
             (memory://, Consul and MongoDB have them)",
            client.scheme()
        )));
    }
    let mut events = if args.prefix {
        client.watch_prefix(&args.name)?
    } else {
        client.watch(&args.name)?
    };
    events.ready().await;
    // On stderr, so scripts (and tests) know events from here on are seen.
    eprintln!("watching {}", args.name);
    let mut seen = 0;
    while args.count.is_none_or(|count| seen < count) {
        let Some(event) = events.next().await else {
            break;
        };
        out.event(&event);
        seen += 1;
    }
    Ok(exit::OK)
}

/// Refuses `command` on a backend without operator views (LDLM), which
/// cannot `what`.
fn require_inspection(client: &Client, command: &str, what: &str) -> Result<()> {
    if client.capabilities().inspection {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{command} needs a backend that can {what}, and the {} backend cannot: its server does \
         not show who holds a lock (renew and release by holder id work)",
        client.scheme()
    )))
}
