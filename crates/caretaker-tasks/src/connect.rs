//! Connecting to PostgreSQL and Redis, with a timeout and an error message that says what
//! failed without the password.
//!
//! PostgreSQL is reached through tokio-postgres without TLS (`sslmode=require` is refused by the
//! driver with a clear message); Redis through redis-rs on tokio, plain `redis://` only.

use crate::error::{Error, Result};
use crate::{error_chain, redact};
use std::time::Duration;

/// A PostgreSQL session; the connection task ends when the client is dropped.
pub(crate) async fn postgres(url: &str, timeout: Duration) -> Result<tokio_postgres::Client> {
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|e| Error::not_a_url(url, "PostgreSQL", error_chain(&e)))?;
    config.connect_timeout(timeout);
    let connecting = config.connect(tokio_postgres::NoTls);
    let (client, connection) = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(Error::connect(url, error_chain(&e))),
        Err(_) => return Err(Error::connect(url, format!("no answer within {} s", timeout.as_secs_f64()))),
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(target: "caretaker::tasks", "PostgreSQL connection ended: {}", redact::redact(&e.to_string()));
        }
    });
    Ok(client)
}

/// A PostgreSQL error as a sentence: the server's own message (and detail) when it sent one.
pub(crate) fn postgres_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => error_chain(e),
    }
}

/// A Redis connection whose commands time out after `timeout` (redis-rs's own default is half
/// a second, too short for a SCAN of a large keyspace).
pub(crate) async fn redis(url: &str, timeout: Duration) -> Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url).map_err(|e| Error::not_a_url(url, "Redis", e))?;
    let config =
        redis::AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
    client.get_multiplexed_async_connection_with_config(&config).await.map_err(|e| Error::connect(url, e))
}
