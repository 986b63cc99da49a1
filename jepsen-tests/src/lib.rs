//! Black-box consistency tests of a real Cairn cluster under faults, in the manner of
//! Jepsen. This part: the history format and the checkers (see docs/jepsen.md).

pub mod checker;
pub mod error;
pub mod history;

pub use error::{Error, Result};
