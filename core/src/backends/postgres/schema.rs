//! The tables, sequence and functions polylock keeps in PostgreSQL, created
//! on first use, and the statements the backend sends. Every statement a
//! lock operation sends is one call (one round trip, one implicit
//! transaction), judged on the server's clock (`now()`).
//!
//! With schema `S` and table `T` (URL options `schema=` and `table=`,
//! validated as plain lower-case identifiers, so they are interpolated
//! without any chance of injection; every value travels as a parameter):
//!
//! - `S.T_sessions`: one row per client and TTL, the renewal unit: a lease
//!   is live while its session is (`NOT dead AND expires_at > now()`), so one
//!   `UPDATE` renews all of a client's leases of that TTL. An expired session
//!   is never renewed again (the renewal's `WHERE` says so) and a takeover
//!   marks it `dead` by an `UPDATE`, so a renewal racing it is rechecked by
//!   PostgreSQL and fails.
//! - `S.T`: one row per held (or expired, not yet reclaimed) slot; a lease
//!   whose holder stopped renewing it (`session` NULL) lives until its own
//!   `expires_at`.
//! - `S.T_fence`: the fencing tokens, a sequence: grants of one name are
//!   serialised by a transaction-scoped advisory lock on the name, so each
//!   takes a larger value than the one before it, deletes or not.
//! - `S.T_acquire`, `S.T_release`, `S.T_force`, `S.T_renew`,
//!   `S.T_renew_holder`, `S.T_sweep`: the operations, as PL/pgSQL functions.
//!
//! Changes are told on the channel `S.T` with `pg_notify`, delivered at
//! commit, as `KIND TOKEN HOLDER NAME`: `a` acquired, `r` released, `f`
//! released by an operator, `e` expired and reclaimed, `w` an expired slot
//! freed by its holder's late release (a wake-up, no event); and
//! `n SESSION TTL_MS` for a renewed session.

use super::config::PostgresConfig;

/// The version the objects are created at, kept as the leases table's
/// comment; a table with another comment is not polylock's of this version.
pub const VERSION_MARK: &str = "polylock schema 1";

/// The names of polylock's objects for one schema and table.
#[derive(Debug, Clone)]
pub struct Names {
    /// `"S"."T"` for interpolation.
    s: String,
    t: String,
    /// The notification channel, `S.T`.
    pub channel: String,
}

impl Names {
    /// The names for `config`'s schema and table (already validated).
    pub fn new(config: &PostgresConfig) -> Self {
        Names {
            s: config.schema.clone(),
            t: config.table.clone(),
            channel: format!("{}.{}", config.schema, config.table),
        }
    }

    /// `"S"."T<suffix>"`.
    fn object(&self, suffix: &str) -> String {
        format!("\"{}\".\"{}{suffix}\"", self.s, self.t)
    }

    /// The statement that tells whether the leases table exists, and its
    /// comment (the version mark).
    pub fn probe(&self) -> String {
        let table = self.object("").replace('\'', "''");
        format!(
            "SELECT to_regclass('{table}') IS NOT NULL, obj_description(to_regclass('{table}'), 'pg_class')"
        )
    }

    /// `LISTEN` on the channel.
    pub fn listen(&self) -> String {
        format!("LISTEN \"{}\"", self.channel)
    }

    /// The DDL, run in one transaction under an advisory lock, so clients
    /// starting together create the objects once.
    pub fn create(&self) -> String {
        let schema = format!("\"{}\"", self.s);
        let leases = self.object("");
        let sessions = self.object("_sessions");
        let fence = self.object("_fence");
        let session_index = format!("\"{}_session\"", self.t);
        let channel = self.channel.replace('\'', "''");
        let (live, expiry) = (LIVE, EXPIRY);
        let f = |name: &str| self.object(name);
        format!(
            r#"
BEGIN;
SELECT pg_advisory_xact_lock(hashtextextended('polylock schema {channel}', 0));
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE SEQUENCE IF NOT EXISTS {fence} AS bigint MINVALUE 1 NO CYCLE CACHE 1;
CREATE TABLE IF NOT EXISTS {sessions} (
  id text COLLATE "C" PRIMARY KEY,
  expires_at timestamptz NOT NULL,
  dead boolean NOT NULL DEFAULT false);
CREATE TABLE IF NOT EXISTS {leases} (
  name text COLLATE "C" NOT NULL,
  holder text COLLATE "C" NOT NULL UNIQUE,
  lim integer NOT NULL CHECK (lim >= 1),
  session text COLLATE "C" REFERENCES {sessions} (id) ON DELETE SET NULL,
  value bytea NOT NULL,
  token bigint NOT NULL,
  acquired_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (name, holder));
CREATE INDEX IF NOT EXISTS {session_index} ON {leases} (session);

CREATE OR REPLACE FUNCTION {acquire}(p_name text, p_limit integer, p_holder text,
    p_session text, p_value bytea, p_ttl_ms bigint)
  RETURNS TABLE (outcome text, token bigint, existing integer,
                 blockers text[], blockers_ms bigint[])
  LANGUAGE plpgsql AS $fn$
DECLARE
  r record;
  held integer := 0;
  other_limit integer;
  tok bigint;
  b_sessions text[] := '{{}}';
  b_ms bigint[] := '{{}}';
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('{channel}/' || p_name, 0));
  UPDATE {sessions} SET expires_at = greatest(expires_at, now() + p_ttl_ms * interval '1 millisecond')
    WHERE id = p_session AND NOT dead AND expires_at > now();
  IF NOT FOUND THEN
    INSERT INTO {sessions} (id, expires_at)
      VALUES (p_session, now() + p_ttl_ms * interval '1 millisecond')
      ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
      RETURN QUERY SELECT 'session_gone'::text, NULL::bigint, NULL::integer, NULL::text[], NULL::bigint[];
      RETURN;
    END IF;
  END IF;
  FOR r IN SELECT l.holder, l.lim, l.token, l.session, {live} AS live, {expiry} AS expiry
           FROM {leases} l LEFT JOIN {sessions} s ON s.id = l.session
           WHERE l.name = p_name LOOP
    IF NOT r.live AND r.session IS NOT NULL THEN
      -- Kill the expired session first: a renewal racing this is then
      -- rechecked and fails; one that committed first keeps it alive.
      UPDATE {sessions} SET dead = true WHERE id = r.session AND NOT dead AND expires_at <= now();
      IF NOT FOUND AND EXISTS (SELECT 1 FROM {sessions}
                               WHERE id = r.session AND NOT dead AND expires_at > now()) THEN
        r.live := true;
        SELECT expires_at INTO r.expiry FROM {sessions} WHERE id = r.session;
      END IF;
    END IF;
    IF r.live THEN
      held := held + 1;
      IF r.lim <> p_limit THEN other_limit := r.lim; END IF;
      b_sessions := b_sessions || coalesce(r.session, '');
      b_ms := b_ms || greatest(0, ceil(extract(epoch FROM r.expiry - now()) * 1000))::bigint;
    ELSE
      DELETE FROM {leases} WHERE name = p_name AND holder = r.holder;
      PERFORM pg_notify('{channel}', 'e ' || r.token || ' ' || r.holder || ' ' || p_name);
    END IF;
  END LOOP;
  IF other_limit IS NOT NULL THEN
    RETURN QUERY SELECT 'mismatch'::text, NULL::bigint, other_limit, NULL::text[], NULL::bigint[];
    RETURN;
  END IF;
  IF held >= p_limit THEN
    RETURN QUERY SELECT 'busy'::text, NULL::bigint, NULL::integer, b_sessions, b_ms;
    RETURN;
  END IF;
  tok := nextval('{fence_text}');
  INSERT INTO {leases} (name, holder, lim, session, value, token, expires_at)
    VALUES (p_name, p_holder, p_limit, p_session, p_value, tok,
            now() + p_ttl_ms * interval '1 millisecond');
  PERFORM pg_notify('{channel}', 'a ' || tok || ' ' || p_holder || ' ' || p_name);
  RETURN QUERY SELECT 'granted'::text, tok, NULL::integer, NULL::text[], NULL::bigint[];
END
$fn$;

CREATE OR REPLACE FUNCTION {release}(p_name text, p_holder text)
  RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
  r record;
BEGIN
  SELECT l.token, {live} AS live INTO r
    FROM {leases} l LEFT JOIN {sessions} s ON s.id = l.session
    WHERE l.name = p_name AND l.holder = p_holder;
  IF NOT FOUND THEN RETURN 'gone'; END IF;
  DELETE FROM {leases} WHERE name = p_name AND holder = p_holder;
  IF r.live THEN
    PERFORM pg_notify('{channel}', 'r ' || r.token || ' ' || p_holder || ' ' || p_name);
    RETURN 'released';
  END IF;
  PERFORM pg_notify('{channel}', 'w ' || r.token || ' ' || p_holder || ' ' || p_name);
  RETURN 'expired';
END
$fn$;

CREATE OR REPLACE FUNCTION {force}(p_name text, p_holder text)
  RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
  r record;
  released integer := 0;
BEGIN
  FOR r IN DELETE FROM {leases} l WHERE l.name = p_name AND (p_holder IS NULL OR l.holder = p_holder)
           RETURNING l.holder, l.token, l.session, l.expires_at LOOP
    IF (CASE WHEN r.session IS NULL THEN r.expires_at > now() ELSE
        EXISTS (SELECT 1 FROM {sessions} WHERE id = r.session AND NOT dead AND expires_at > now()) END) THEN
      released := released + 1;
      PERFORM pg_notify('{channel}', 'f ' || r.token || ' ' || r.holder || ' ' || p_name);
    ELSE
      PERFORM pg_notify('{channel}', 'w ' || r.token || ' ' || r.holder || ' ' || p_name);
    END IF;
  END LOOP;
  RETURN released;
END
$fn$;

CREATE OR REPLACE FUNCTION {renew}(p_session text, p_ttl_ms bigint)
  RETURNS TABLE (renewed boolean, held text[]) LANGUAGE plpgsql AS $fn$
BEGIN
  UPDATE {sessions} SET expires_at = now() + p_ttl_ms * interval '1 millisecond'
    WHERE id = p_session AND NOT dead AND expires_at > now();
  IF NOT FOUND THEN
    RETURN QUERY SELECT false, ARRAY[]::text[];
    RETURN;
  END IF;
  PERFORM pg_notify('{channel}', 'n ' || p_ttl_ms || ' ' || p_session);
  RETURN QUERY SELECT true, ARRAY(SELECT l.holder::text FROM {leases} l WHERE l.session = p_session);
END
$fn$;

CREATE OR REPLACE FUNCTION {renew_holder}(p_name text, p_holder text, p_ttl_ms bigint)
  RETURNS boolean LANGUAGE plpgsql AS $fn$
DECLARE
  r record;
BEGIN
  SELECT l.session, {live} AS live INTO r
    FROM {leases} l LEFT JOIN {sessions} s ON s.id = l.session
    WHERE l.name = p_name AND l.holder = p_holder;
  IF NOT FOUND OR NOT r.live THEN RETURN false; END IF;
  IF r.session IS NULL THEN
    UPDATE {leases} SET expires_at = greatest(expires_at, now() + p_ttl_ms * interval '1 millisecond')
      WHERE name = p_name AND holder = p_holder;
  ELSE
    UPDATE {sessions} SET expires_at = greatest(expires_at, now() + p_ttl_ms * interval '1 millisecond')
      WHERE id = r.session AND NOT dead AND expires_at > now();
    IF NOT FOUND THEN RETURN false; END IF;
    PERFORM pg_notify('{channel}', 'n ' || p_ttl_ms || ' ' || r.session);
  END IF;
  RETURN true;
END
$fn$;

CREATE OR REPLACE FUNCTION {sweep}()
  RETURNS void LANGUAGE sql AS $fn$
  DELETE FROM {leases} l USING {sessions} s
    WHERE s.id = l.session AND (s.dead OR s.expires_at < now() - interval '10 minutes');
  DELETE FROM {leases} l WHERE l.session IS NULL AND l.expires_at < now() - interval '10 minutes';
  DELETE FROM {sessions} s WHERE (s.dead OR s.expires_at < now() - interval '10 minutes')
    AND NOT EXISTS (SELECT 1 FROM {leases} l WHERE l.session = s.id);
$fn$;

COMMENT ON TABLE {leases} IS '{VERSION_MARK}';
COMMIT;
"#,
            acquire = f("_acquire"),
            release = f("_release"),
            force = f("_force"),
            renew = f("_renew"),
            renew_holder = f("_renew_holder"),
            sweep = f("_sweep"),
            fence_text = fence.replace('\'', "''"),
        )
    }

    /// `SELECT * FROM S.T_acquire($1 name, $2 limit, $3 holder, $4 session, $5 value, $6 ttl_ms)`.
    pub fn acquire(&self) -> String {
        format!(
            "SELECT outcome, token, existing, blockers, blockers_ms FROM {}($1::text, $2::int4, $3::text, $4::text, $5::bytea, $6::int8)",
            self.object("_acquire")
        )
    }

    /// `S.T_release($1 name, $2 holder)`: `released`, `expired` or `gone`.
    pub fn release(&self) -> String {
        format!("SELECT {}($1::text, $2::text)", self.object("_release"))
    }

    /// `S.T_force($1 name, $2 holder or NULL)`: how many live leases went.
    pub fn force(&self) -> String {
        format!("SELECT {}($1::text, $2::text)", self.object("_force"))
    }

    /// `S.T_renew($1 session, $2 ttl_ms)`: renewed, and the holders it keeps.
    pub fn renew(&self) -> String {
        format!(
            "SELECT renewed, held FROM {}($1::text, $2::int8)",
            self.object("_renew")
        )
    }

    /// `S.T_renew_holder($1 name, $2 holder, $3 ttl_ms)`: false when not held.
    pub fn renew_holder(&self) -> String {
        format!(
            "SELECT {}($1::text, $2::text, $3::int8)",
            self.object("_renew_holder")
        )
    }

    /// `S.T_sweep()`: drops rows and sessions dead for 10 minutes.
    pub fn sweep(&self) -> String {
        format!("SELECT {}()", self.object("_sweep"))
    }

    /// Abandons a lease: it no longer follows its session and lives until
    /// the session's expiry as it stands ($1 name, $2 holder).
    pub fn abandon(&self) -> String {
        format!(
            "UPDATE {leases} l SET session = NULL, expires_at = s.expires_at \
             FROM {sessions} s WHERE s.id = l.session AND l.name = $1::text AND l.holder = $2::text",
            leases = self.object(""),
            sessions = self.object("_sessions"),
        )
    }

    /// The live holders of `$1`: holder, value, token, limit, ms left.
    pub fn status(&self) -> String {
        format!(
            "SELECT l.holder::text, l.value, l.token, l.lim, \
             greatest(0, ceil(extract(epoch FROM {expiry} - now()) * 1000))::int8 \
             FROM {leases} l LEFT JOIN {sessions} s ON s.id = l.session \
             WHERE l.name = $1::text AND {live} ORDER BY l.token",
            leases = self.object(""),
            sessions = self.object("_sessions"),
            live = LIVE,
            expiry = EXPIRY,
        )
    }

    /// The names starting with `$1` that somebody holds, sorted by bytes.
    pub fn list(&self) -> String {
        format!(
            "SELECT DISTINCT l.name::text FROM {leases} l LEFT JOIN {sessions} s ON s.id = l.session \
             WHERE starts_with(l.name, $1::text) AND {live} ORDER BY 1",
            leases = self.object(""),
            sessions = self.object("_sessions"),
            live = LIVE,
        )
    }
}

/// Whether lease row `l` (joined with its session `s`) is live.
const LIVE: &str = "(CASE WHEN l.session IS NULL THEN l.expires_at > now() \
                    ELSE coalesce(NOT s.dead AND s.expires_at > now(), false) END)";

/// When lease row `l` (joined with its session `s`) ends unless renewed:
/// its own expiry once abandoned, else its session's.
const EXPIRY: &str = "(CASE WHEN l.session IS NULL THEN l.expires_at ELSE s.expires_at END)";
