//! Mapping of sea-orm errors into the core error type.

use sea_orm::{DbErr, RuntimeErr, SqlErr};
use tether_core::Error;

/// Wraps a database error with what the store was doing.
pub(crate) fn db_err(context: &str) -> impl FnOnce(DbErr) -> Error + '_ {
    move |e| Error::Store(format!("{context}: {e}"))
}

/// A store error for data that cannot be what the store wrote (edited by hand, or corrupted).
pub(crate) fn corrupt(table: &str, column: &str, detail: impl std::fmt::Display) -> Error {
    Error::Store(format!("{table}.{column} holds an invalid value: {detail}"))
}

/// A unique-key violation.
pub(crate) fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// A foreign-key violation.
pub(crate) fn is_foreign_key_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::ForeignKeyConstraintViolation(_)))
}

/// A conflict with a concurrent transaction that is resolved by running the transaction again:
/// a unique violation (someone inserted the same key first), a deadlock or a serialization
/// failure (SQLSTATE class 40 on PostgreSQL and MySQL).
pub(crate) fn is_retryable_conflict(e: &DbErr) -> bool {
    if is_unique_violation(e) {
        return true;
    }
    match e {
        DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner)) => {
            match inner.as_ref() {
                sea_orm::sqlx::Error::Database(db) => db.code().is_some_and(|code| code.starts_with("40")),
                _ => false,
            }
        }
        _ => false,
    }
}
