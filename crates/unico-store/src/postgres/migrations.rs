//! The PostgreSQL schema, as numbered migrations applied in order at connect.
//!
//! `unico_schema_version` records how many have run. A migration, once released, is never
//! edited: changes are new migrations. A database from a newer build is refused. Servers
//! starting together take turns (an advisory lock held by the migrating transaction).
//!
//! The layout follows the embedded backend's, and for the same reasons:
//! - **A customer is one row**, its values one `bytea` in the shared [`crate::codec`]
//!   format (the very bytes SQLite stores). A write reads and rewrites one row under one
//!   row lock; a scan streams one row per customer; the change log carries the same bytes.
//!   Values are not a JSONB document because nothing in the database needs to look inside
//!   them but the field sort, which [`SORT_KEY_FUNCTION`] serves; one codec means one set of
//!   value rules and one golden test.
//! - `customer_id` is `COLLATE "C"`: its order is the byte order of the UTF-8 text, as the
//!   API promises, whatever the database's default collation.
//! - Ids are identity columns: assigned once and never reused (sequences never go back).
//! - `fields.value_count` is kept in step by every write, in the write's transaction.
//! - `change_log` holds the log's entries; `log_head` (one row) the last sequence number
//!   ever given. Updating that row is how a transaction gets its numbers, so its row lock,
//!   held until commit, makes sequence order the commit order (see `log.rs`).

use postgres::Client;

use crate::error::StoreError;

/// The advisory lock (single 64-bit key space) that migrating transactions hold.
const MIGRATION_LOCK: i64 = 0x756e_6963_6f5f_6d67; // "unico_mg"

/// `unico_sort_key(data, field, descending)`: the field's value sort key
/// ([`crate::codec::sort_key`]) prefixed with 0x01, or for a customer without a value 0x02
/// ascending / 0x00 descending, so customers without a value come last either way. It walks
/// the codec v1 blob (see `codec.rs`): varint field id, tag, payload; stops past the field.
const SORT_KEY_FUNCTION: &str = r#"
CREATE FUNCTION unico_sort_key(data bytea, field bigint, descending boolean) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $body$
DECLARE
    n integer := length(data);
    pos integer := 1;
    id bigint;
    len bigint;
    shift integer;
    b integer;
    tag integer;
    width integer;
    out bytea;
BEGIN
    IF n = 0 OR get_byte(data, 0) <> 1 THEN
        RAISE EXCEPTION 'stored customer values are unreadable: unknown format';
    END IF;
    WHILE pos < n LOOP
        id := 0; shift := 0;
        LOOP
            b := get_byte(data, pos); pos := pos + 1;
            id := id | ((b & 127)::bigint << shift);
            EXIT WHEN b < 128;
            shift := shift + 7;
        END LOOP;
        IF id > field THEN
            EXIT;
        END IF;
        tag := get_byte(data, pos); pos := pos + 1;
        IF tag = 1 THEN
            len := 0; shift := 0;
            LOOP
                b := get_byte(data, pos); pos := pos + 1;
                len := len | ((b & 127)::bigint << shift);
                EXIT WHEN b < 128;
                shift := shift + 7;
            END LOOP;
            IF id = field THEN
                RETURN '\x01'::bytea || substring(data FROM pos + 1 FOR len::integer);
            END IF;
            pos := pos + len::integer;
        ELSIF tag IN (2, 3, 4) THEN
            width := CASE WHEN tag = 4 THEN 4 ELSE 8 END;
            IF id = field THEN
                -- Little-endian payload to big-endian, then made to sort as unsigned bytes:
                -- integers flip their sign bit; floats flip it when positive and every bit
                -- when negative.
                out := substring(data FROM pos + 1 FOR width);
                FOR i IN 0 .. width - 1 LOOP
                    out := set_byte(out, i, get_byte(data, pos + width - 1 - i));
                END LOOP;
                IF tag <> 2 THEN
                    out := set_byte(out, 0, get_byte(out, 0) # 128);
                ELSIF get_byte(out, 0) >= 128 THEN
                    FOR i IN 0 .. width - 1 LOOP
                        out := set_byte(out, i, 255 - get_byte(out, i));
                    END LOOP;
                ELSE
                    out := set_byte(out, 0, get_byte(out, 0) | 128);
                END IF;
                RETURN '\x01'::bytea || out;
            END IF;
            pos := pos + width;
        ELSE
            RAISE EXCEPTION 'stored customer values are unreadable: unknown tag %', tag;
        END IF;
    END LOOP;
    RETURN CASE WHEN descending THEN '\x00'::bytea ELSE '\x02'::bytea END;
END
$body$;
"#;

/// Each migration is a list of SQL texts run in order in one transaction.
const MIGRATIONS: &[&[&str]] = &[
    // 1: everything the embedded backend's migrations 1-5 built, in PostgreSQL's terms.
    &[TABLES_V1, SORT_KEY_FUNCTION],
    // 2: an updated customer's previous values in its log entry.
    &["ALTER TABLE change_log ADD COLUMN old bytea"],
    // 3: interactions: the event type registry and the events (see `EVENTS_V3`).
    &[EVENTS_V3],
    // 4: what an import brings in: customers (every import before this one) or events.
    &["ALTER TABLE imports ADD COLUMN kind text NOT NULL DEFAULT 'customers'"],
    // 5: computed fields: what a field aggregates (NULL for a stored field).
    &["ALTER TABLE fields ADD COLUMN computed text"],
    // 6: channel subscriptions: the standing one per customer and channel, and every change.
    &[
        "CREATE TABLE subscriptions (
             customer bigint NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
             channel text NOT NULL,
             subscribed boolean NOT NULL,
             changed_at bigint NOT NULL,
             source text NOT NULL,
             PRIMARY KEY (customer, channel))",
        "CREATE TABLE subscription_history (
             id bigserial PRIMARY KEY,
             customer bigint NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
             channel text NOT NULL,
             subscribed boolean NOT NULL,
             at bigint NOT NULL,
             source text NOT NULL,
             recorded_at bigint NOT NULL)",
        "CREATE INDEX subscription_history_by_customer ON subscription_history (customer, id)",
    ],
    // 7: a customer's log entries, found when it is erased.
    &["CREATE INDEX change_log_by_customer ON change_log (customer) WHERE customer IS NOT NULL"],
    // 8: the audit log, append-only.
    &[
        "CREATE TABLE audit (
             id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             app_id bigint,
             at bigint NOT NULL,
             actor text NOT NULL,
             action text NOT NULL,
             target text NOT NULL)",
        "CREATE INDEX audit_by_app ON audit (app_id, id)",
        "CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
         $body$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $body$",
        "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
         FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    ],
    // 9: identities (one holder per normalised value: the primary key decides between
    // concurrent links), the customerIds of merged customers (aliases of their survivor,
    // with the values that lost) and anonymous customers; as the embedded backend's 13.
    // All go with their customer; the indexes by customer serve merges, erasures and the
    // cascades.
    &[
        r#"CREATE TABLE identities (
             app_id bigint NOT NULL,
             kind text COLLATE "C" NOT NULL,
             value text COLLATE "C" NOT NULL,
             customer bigint NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
             linked_at bigint NOT NULL,
             PRIMARY KEY (app_id, kind, value))"#,
        "CREATE INDEX identities_by_customer ON identities (customer)",
        r#"CREATE TABLE customer_aliases (
             app_id bigint NOT NULL,
             alias text COLLATE "C" NOT NULL,
             customer bigint NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
             merged_id bigint NOT NULL,
             merged_at bigint NOT NULL,
             lost bytea NOT NULL,
             PRIMARY KEY (app_id, alias))"#,
        "CREATE INDEX customer_aliases_by_customer ON customer_aliases (customer)",
        "CREATE TABLE anonymous_customers (
             customer bigint PRIMARY KEY REFERENCES customers(id) ON DELETE CASCADE)",
    ],
    // 10: console sessions, shared by every server of the database (see
    // `crate::sessions`): under the hash of their token, in the order they started (`id`),
    // gone with their application. As the embedded backend's 14.
    &[
        "CREATE TABLE console_sessions (
             id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             token_hash bytea NOT NULL UNIQUE,
             key_hash bytea NOT NULL,
             app_id bigint REFERENCES apps (id) ON DELETE CASCADE,
             csrf text NOT NULL,
             started bigint NOT NULL,
             last_used bigint NOT NULL)",
        "CREATE INDEX console_sessions_by_key ON console_sessions (key_hash, id)",
        "CREATE INDEX console_sessions_by_app ON console_sessions (app_id, id)",
    ],
];

/// The event type registry and the events, laid out for millions of events per
/// application:
/// - `events.id` comes from the sequence `event_ids`: ids are handed out once and never
///   reused (a batch takes its ids before inserting, so they follow the batch's order).
/// - Indexes, each for a query the store runs: `(customer, ts, id)` the timeline read
///   backwards (and a customer's deletion), the partial unique `(app_id, event_key)` the
///   deduplication, `(app_id, id)` scans, followers' id ranges and an application's
///   deletion, `(type_id, ts)` retention and a type's deletion.
/// - `properties` is `text`: the JSON exactly as the embedded store keeps it. `jsonb` would
///   reorder the sender's keys (shown back as sent), normalise numbers, refuse `\u0000` in
///   strings (a whole batch would fail) and cost a parse per insert, for queries nothing
///   runs: filters on properties are evaluated by the segment engine, not in SQL.
/// - No foreign keys on `events`: a key costs a trigger and a locking lookup per inserted
///   row. Instead every write that removes customers, types or applications deletes their
///   events in the same transaction, and an event write locks the customers it refers to
///   (`FOR KEY SHARE`) under the application's shared lock, so it cannot meet a customer
///   deleted meanwhile (see `events.rs`).
/// - One table, not partitioned by time: see "Events" in `docs/scale-out.md`.
const EVENTS_V3: &str = r#"
    CREATE TABLE event_types (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        app_id bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
        code text COLLATE "C" NOT NULL,
        name text NOT NULL,
        retention_days bigint NOT NULL,
        enabled boolean NOT NULL,
        properties text NOT NULL,
        created_at bigint NOT NULL,
        CONSTRAINT event_types_by_code UNIQUE (app_id, code));
    CREATE SEQUENCE event_ids AS bigint;
    CREATE TABLE events (
        id bigint PRIMARY KEY DEFAULT nextval('event_ids'),
        app_id bigint NOT NULL,
        customer bigint NOT NULL,
        type_id bigint NOT NULL,
        channel text COLLATE "C" NOT NULL,
        device_id text,
        ts bigint NOT NULL,
        event_key text COLLATE "C",
        properties text);
    ALTER SEQUENCE event_ids OWNED BY events.id;
    CREATE INDEX events_by_customer ON events (customer, ts, id);
    CREATE UNIQUE INDEX events_by_key ON events (app_id, event_key) WHERE event_key IS NOT NULL;
    CREATE INDEX events_by_app ON events (app_id, id);
    CREATE INDEX events_by_type ON events (type_id, ts);
    "#;

const TABLES_V1: &str = r#"
    CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
    CREATE TABLE apps (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name text NOT NULL,
        timezone text NOT NULL,
        created_at bigint NOT NULL);
    CREATE TABLE api_keys (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        app_id bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
        hash bytea NOT NULL UNIQUE,
        prefix text NOT NULL,
        created_at bigint NOT NULL,
        revoked_at bigint);
    CREATE INDEX api_keys_by_app ON api_keys (app_id);
    CREATE TABLE fields (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        app_id bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
        name text NOT NULL,
        type text NOT NULL,
        created_at bigint NOT NULL,
        value_count bigint NOT NULL DEFAULT 0,
        UNIQUE (app_id, name));
    CREATE TABLE customers (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        app_id bigint NOT NULL,
        customer_id text COLLATE "C" NOT NULL,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL,
        data bytea NOT NULL,
        CONSTRAINT customers_by_customer_id UNIQUE (app_id, customer_id));
    CREATE INDEX customers_by_app ON customers (app_id, id);
    CREATE TABLE imports (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        app_id bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
        mode text NOT NULL,
        state text NOT NULL,
        created_at bigint NOT NULL,
        finished_at bigint,
        rows_read bigint NOT NULL DEFAULT 0,
        rows_written bigint NOT NULL DEFAULT 0,
        created bigint NOT NULL DEFAULT 0,
        updated bigint NOT NULL DEFAULT 0,
        values_written bigint NOT NULL DEFAULT 0,
        rows_rejected bigint NOT NULL DEFAULT 0,
        message text);
    CREATE INDEX imports_by_app ON imports (app_id, id);
    CREATE TABLE import_errors (
        import_id bigint NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
        ord bigint NOT NULL,
        line bigint NOT NULL,
        col text NOT NULL,
        value text NOT NULL,
        message text NOT NULL,
        PRIMARY KEY (import_id, ord));
    CREATE TABLE segments (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        app_id bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
        name text NOT NULL,
        filter text NOT NULL,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL);
    CREATE INDEX segments_by_app ON segments (app_id, id);
    CREATE TABLE change_log (
        seq bigint PRIMARY KEY,
        at bigint NOT NULL,
        app_id bigint NOT NULL,
        kind bigint NOT NULL,
        customer bigint,
        customer_id text,
        created_at bigint,
        updated_at bigint,
        data bytea,
        text text);
    CREATE TABLE log_head (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        seq bigint NOT NULL);
    INSERT INTO log_head (seq) VALUES (0);
    "#;

/// Brings the database up to this build's schema.
pub fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let fail = |e: postgres::Error| super::conn::internal(&e);
    let mut tx = client.transaction().map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(fail)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS unico_schema_version (version integer NOT NULL)")
        .map_err(fail)?;
    let version: i32 = tx
        .query_opt("SELECT version FROM unico_schema_version", &[])
        .map_err(fail)?
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(fail)?
        .unwrap_or(0);
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(StoreError::Internal(format!(
            "the database was written by a newer Unico (schema version {version}, this build knows {})",
            MIGRATIONS.len()
        )));
    }
    for (i, texts) in MIGRATIONS.iter().enumerate().skip(version) {
        for sql in *texts {
            tx.batch_execute(sql).map_err(fail)?;
        }
        tracing::info!(version = i + 1, "applied storage migration");
    }
    if version < MIGRATIONS.len() {
        let latest = MIGRATIONS.len() as i32;
        tx.execute("DELETE FROM unico_schema_version", &[])
            .map_err(fail)?;
        tx.execute(
            "INSERT INTO unico_schema_version (version) VALUES ($1)",
            &[&latest],
        )
        .map_err(fail)?;
    }
    tx.commit().map_err(fail)
}
