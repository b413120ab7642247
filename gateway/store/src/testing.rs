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
