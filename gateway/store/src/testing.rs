//! Test support for suites that run on PostgreSQL: a database of their own on the local server.
//! Used by this crate's store suite and the end-to-end tests.

/// A database of its own on the local PostgreSQL server, dropped by `drop_database`.
pub struct PostgresDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

/// The server tests use: `SWITCHBOARD_TEST_POSTGRES` or the local one.
pub fn postgres_admin_url() -> String {
    std::env::var("SWITCHBOARD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

impl PostgresDatabase {
    pub async fn create() -> Result<PostgresDatabase, sqlx::Error> {
        let admin_url = postgres_admin_url();
        let name = format!("sb_test_{}", uuid::Uuid::new_v4().simple());
        admin_exec(&admin_url, &format!("CREATE DATABASE {name}")).await?;
        let base = admin_url
            .rsplit_once('/')
            .map(|(base, _)| base.to_owned())
            .unwrap_or(admin_url.clone());
        Ok(PostgresDatabase {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        })
    }

    pub async fn drop_database(self) {
        let _ = admin_exec(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await;
    }
}

async fn admin_exec(url: &str, statement: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(url).await?;
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut connection)
        .await?;
    Ok(())
}

/// Fills a tenant with generated history for the reports benchmark: `conversations` closed
/// conversations (customers, the conversation rows, `messages_per` messages each, one episode
/// each and a rating for every third), spread over the 30 days before `end_ms`, written in
/// bulk SQL on either dialect. The tenant must exist.
pub async fn fill_report_history(
    store: &crate::Store,
    tenant: &str,
    conversations: i64,
    messages_per: i64,
    end_ms: i64,
) -> crate::StoreResult<()> {
    let pool = &store.pool;
    let numbers = conversations * messages_per.max(1);
    // A table of the numbers 0..numbers, the one dialect-specific step.
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_numbers (n BIGINT PRIMARY KEY)")
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM bench_numbers")
        .execute(pool)
        .await?;
    let fill = match store.dialect() {
        crate::Dialect::Sqlite => format!(
            "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < {last}) \
             INSERT INTO bench_numbers SELECT n FROM s",
            last = numbers - 1
        ),
        crate::Dialect::Postgres => format!(
            "INSERT INTO bench_numbers SELECT n FROM generate_series(0, {last}) AS s(n)",
            last = numbers - 1
        ),
    };
    sqlx::query(sqlx::AssertSqlSafe(fill)).execute(pool).await?;
    let span = 30 * 86_400_000_i64;
    // Conversations open evenly over the period, the last a quarter of an hour before its end
    // (so each closes before `end_ms`); their times follow from n.
    let step = (span - 900_000) / conversations.max(1);
    let opened = format!("({end_ms} - {span} + n * {step})");
    let statements = [
        format!(
            "INSERT INTO customers (id, tenant_id, channel, external_id, created_at) \
             SELECT 'bcu_' || n, $1, 'web', 'bench-' || n, {opened} FROM bench_numbers WHERE n < {conversations}"
        ),
        format!(
            "INSERT INTO conversations (id, tenant_id, customer_id, channel, state, skill_group, agent_id, \
             last_seq, created_at, updated_at, closed_at) \
             SELECT 'bcv_' || n, $1, 'bcu_' || n, \
             CASE n % 4 WHEN 0 THEN 'web' WHEN 1 THEN 'wechat' WHEN 2 THEN 'mobile' ELSE 'douyin' END, \
             'closed', CASE n % 3 WHEN 0 THEN 'billing' ELSE 'general' END, \
             CASE WHEN n % 5 < 2 THEN 'bag_' || (n % 20) ELSE NULL END, {messages_per}, \
             {opened}, {opened} + 900000, {opened} + 900000 FROM bench_numbers WHERE n < {conversations}"
        ),
        format!(
            "INSERT INTO messages (conversation_id, seq, tenant_id, sender_kind, text, created_at) \
             SELECT 'bcv_' || (n / {messages_per}), (n % {messages_per}) + 1, $1, \
             CASE n % 2 WHEN 0 THEN 'customer' ELSE 'bot' END, 'generated message ' || n, \
             ({end_ms} - {span} + (n / {messages_per}) * {step}) + (n % {messages_per}) * 1000 \
             FROM bench_numbers WHERE n < {numbers}"
        ),
        format!(
            "INSERT INTO episodes (conversation_id, closed_at, tenant_id, channel, skill_group, agent_id, \
             closed_by, opened_at, handed_off_at, handoff_reason, assigned_at, first_agent_reply_at, \
             customer_messages, agent_messages, bot_answers, bot_clarifies, bot_out_of_scope, created_at) \
             SELECT 'bcv_' || n, {opened} + 900000, $1, \
             CASE n % 4 WHEN 0 THEN 'web' WHEN 1 THEN 'wechat' WHEN 2 THEN 'mobile' ELSE 'douyin' END, \
             CASE n % 3 WHEN 0 THEN 'billing' ELSE 'general' END, \
             CASE WHEN n % 5 < 2 THEN 'bag_' || (n % 20) ELSE '' END, \
             CASE WHEN n % 5 < 2 THEN 'agent' ELSE 'idle' END, {opened}, \
             CASE WHEN n % 5 < 2 THEN {opened} + 60000 ELSE NULL END, \
             CASE WHEN n % 5 < 2 THEN 'explicit_request' ELSE NULL END, \
             CASE WHEN n % 5 < 2 THEN {opened} + 60000 + (n % 300) * 1000 ELSE NULL END, \
             CASE WHEN n % 5 < 2 THEN {opened} + 90000 + (n % 600) * 1000 ELSE NULL END, \
             {half}, CASE WHEN n % 5 < 2 THEN 2 ELSE 0 END, (n % 3), (n % 2), CASE WHEN n % 7 = 0 THEN 1 ELSE 0 END, \
             {opened} + 900000 FROM bench_numbers WHERE n < {conversations}",
            half = (messages_per / 2).max(1)
        ),
        format!(
            "INSERT INTO ratings (conversation_id, closed_at, tenant_id, agent_id, score, comment, created_at) \
             SELECT 'bcv_' || n, {opened} + 900000, $1, \
             CASE WHEN n % 5 < 2 THEN 'bag_' || (n % 20) ELSE '' END, 1 + (n % 5), '', {opened} + 960000 \
             FROM bench_numbers WHERE n < {conversations} AND n % 3 = 0"
        ),
    ];
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .bind(tenant)
            .execute(pool)
            .await?;
    }
    sqlx::query("DROP TABLE bench_numbers")
        .execute(pool)
        .await?;
    // The bulk load leaves a large write-ahead log on SQLite; a node that wrote the same rows
    // over weeks would have checkpointed it as it went.
    if store.dialect() == crate::Dialect::Sqlite {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await?;
    }
    Ok(())
}
