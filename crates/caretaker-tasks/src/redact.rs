//! Passwords out of everything a task says: the program's one redactor
//! ([`caretaker_core::redact`]), re-exported where the task kinds have always found it. Every task
//! passes its outcome through [`scrub_outcome`] before it returns it.

pub use caretaker_core::redact::*;
