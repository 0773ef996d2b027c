//! Caretaker's integration tests: the real binary, in a fresh temporary directory per test.
//! One test binary with modules, so the workspace links it once.

mod config;
mod crashes;
mod models;
mod nightly;
mod operations;
mod patterns;
mod reports;
mod scheduler;
mod storage;

use caretaker_test_support::TestContext;

pub fn context() -> TestContext {
    TestContext::new(env!("CARGO_BIN_EXE_caretaker"))
}
