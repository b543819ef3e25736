//! Diagnostics on stderr, gated by kubectl's `-v` level. stdout never carries them.

use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(0);

pub fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
}

pub fn level() -> u8 {
    LEVEL.load(Ordering::Relaxed)
}

/// Print a diagnostic line on stderr when `-v` is at least `level`.
#[macro_export]
macro_rules! debug {
    ($level:expr, $($arg:tt)*) => {
        if $crate::log::level() >= $level {
            eprintln!("{}", format_args!($($arg)*));
        }
    };
}

/// A note the user should always see (on stderr): skipped analyzers, forbidden lists.
pub fn note(msg: impl std::fmt::Display) {
    eprintln!("note: {msg}");
}

/// A warning the user should always see (on stderr): a change that cuts something, a
/// configuration that names what does not exist.
pub fn warn(msg: impl std::fmt::Display) {
    eprintln!("warning: {msg}");
}
