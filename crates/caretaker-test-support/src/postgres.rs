//! A PostgreSQL database of a test's own, on the test server ([`crate::postgres_url`]), dropped
//! when the test is done with it: the one way tests make and remove their databases.
//!
//! It talks to the server through the blocking `postgres` client, each time on a thread of its
//! own: that client runs a runtime of its own, which tokio refuses to start on a thread already
//! driving one (the panic "Cannot start a runtime from within a runtime"). So the same calls work
//! in a plain `#[test]`, in a `#[tokio::test]`, and in a `Drop` that runs at the end of either.
//!
//! ```no_run
//! let Some(database) = caretaker_test_support::postgres::TestDatabase::create("history") else {
//!     return; // no server answers: the test skips, saying so
//! };
//! let url = database.url(); // postgres://postgres@127.0.0.1:5432/history_4242_0_123456789
//! // ... the test; the database is dropped, its sessions closed, with `database`.
//! ```

/// A fresh, empty database; dropped (`WITH (FORCE)`: sessions still open on it are closed) with
/// this value.
pub struct TestDatabase {
    /// The server's URL as the tests are given it: the database to connect to for `CREATE` and
    /// `DROP`.
    admin: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// A new database named after `prefix` (a unique suffix added). `None` when no server answers
    /// and the test should skip; like [`crate::postgres_url`], that fails the test instead when
    /// `CARETAKER_REQUIRE_SERVICES=1`. A server that answers but refuses the database fails the
    /// test, naming the database and the server.
    pub fn create(prefix: &str) -> Option<TestDatabase> {
        let admin = crate::postgres_url()?;
        let name = crate::unique_name(prefix);
        if let Err(e) = execute(&admin, &format!("CREATE DATABASE \"{name}\"")) {
            panic!("cannot create the test database {name} on {}: {e}", caretaker_core::redact::redact_url(&admin));
        }
        let url = with_database(&admin, &name);
        Some(TestDatabase { admin, name, url })
    }

    /// The URL of the database, as the server's URL with the database replaced.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Not a panic: a drop runs while a failed test unwinds too, and a leftover database named
        // after its test is harmless; the message says which to remove.
        if let Err(e) = execute(&self.admin, &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)) {
            eprintln!("cannot drop the test database {}: {e}", self.name);
        }
    }
}

/// Runs `sql` on the database at `url`, from a thread of its own (see the module's comment).
fn execute(url: &str, sql: &str) -> Result<(), postgres::Error> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| postgres::Client::connect(url, postgres::NoTls)?.batch_execute(sql))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// `url` with its database replaced by `name`, its query (`?sslmode=...`) kept.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(with_database("postgres://u@h:5432/postgres", "t1"), "postgres://u@h:5432/t1");
        assert_eq!(
            with_database("postgres://u:p@h/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "t1"), "postgres://u@h/t1");
    }

    /// Made, reachable, and gone after the drop, from inside a runtime as from outside one.
    #[test]
    fn a_test_database_is_dropped_with_its_value() {
        let Some(database) = TestDatabase::create("test_support") else { return };
        let admin = crate::postgres_url().unwrap();
        let exists = |name: &str| {
            let sql = format!("SELECT 1 FROM pg_database WHERE datname = '{name}'");
            std::thread::scope(|s| {
                s.spawn(|| {
                    let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
                    !client.query(&sql, &[]).unwrap().is_empty()
                })
                .join()
                .unwrap()
            })
        };
        let name = database.name().to_string();
        assert!(exists(&name));
        // A session left open on it does not keep it alive.
        let open = postgres::Client::connect(database.url(), postgres::NoTls).unwrap();
        // Dropped at the end of an async test: the drop must not start a runtime on the runtime's
        // own thread.
        let runtime = tokio_runtime();
        runtime.block_on(async move { drop(database) });
        assert!(!exists(&name), "{name} is still there");
        drop(open);
    }

    fn tokio_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }
}
