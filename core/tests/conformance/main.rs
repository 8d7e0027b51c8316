//! The conformance suite: every case in [`cases`] runs against `memory://`
//! always, and against each real backend whose URL is set
//! (`POLYLOCK_TEST_CONSUL_URL`, `POLYLOCK_TEST_FERRETDB_URL` and
//! `POLYLOCK_TEST_FERRETDB_SQLITE_URL` (FerretDB on its PostgreSQL and its
//! SQLite storage handler),
//! `POLYLOCK_TEST_LDLM_URL`, `POLYLOCK_TEST_POSTGRES_URL`; in CI a missing one fails the run, except LDLM
//! when tests/with-servers.sh found no server binary) and real MongoDB when
//! `POLYLOCK_TEST_MONGODB_URL` is set.
//! Cases that need a capability the backend lacks are skipped for it, and a
//! backend this build leaves out (its cargo feature off) is not in the suite.

mod cases;
#[path = "../support/counting_proxy.rs"]
mod counting_proxy;
#[path = "../support/env.rs"]
mod env;
mod harness;

macro_rules! conformance {
    ($backend:ident: $($case:ident $(if $capability:ident)?),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(harness) = crate::harness::Harness::$backend() else { return };
                    $(
                        let client = harness.client().await;
                        if !client.capabilities().$capability {
                            eprintln!("skipped: no {}", stringify!($capability));
                            return;
                        }
                    )?
                    tokio::time::timeout(crate::harness::CASE_LIMIT, crate::cases::$case(&harness))
                        .await
                        .expect("the case finished within its time limit");
                }
            )*
        }
    };
}

macro_rules! suite {
    ($($backend:ident),*) => {
        $(
            conformance!($backend:
                try_acquire_and_release,
                one_client_cannot_take_a_mutex_twice,
                acquire_times_out,
                waiter_gets_the_lock_on_release,
                mutual_exclusion_with_increasing_tokens,
                semaphore_respects_its_limit if semaphores,
                limit_mismatch_is_an_error if semaphores,
                ttl_expiry_frees_an_abandoned_lease,
                keeper_renews_held_leases,
                a_lease_the_caller_does_not_renew_ends_at_its_ttl,
                lost_callback_fires_once_when_revoked,
                double_release_is_an_error,
                dropping_a_lease_releases_it,
                invalid_names_and_options_are_rejected,
                observers_see_the_lease_lifecycle,
                cancelled_acquire_leaves_nothing_behind,
                parked_waiter_costs_nothing if change_notifications,
                lock_event_stream_shows_every_client if event_stream,
                status_list_and_operator_release if inspection,
                registry_registers_looks_up_and_unregisters if inspection,
                metrics_count_the_lease_lifecycle,
            );
        )*
    };
}

suite!(memory);
#[cfg(feature = "consul")]
suite!(consul);
#[cfg(feature = "mongodb")]
suite!(ferretdb, ferretdb_sqlite, mongodb);
#[cfg(feature = "ldlm")]
suite!(ldlm);
#[cfg(feature = "postgres")]
suite!(postgres);
