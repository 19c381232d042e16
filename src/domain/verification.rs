//! The background verifier's runs: their states.

use serde::Serialize;

/// Where a verification run of a chain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    /// Reached the head it started with, and found nothing.
    Passed,
    /// Found a problem (the chain's proved point does not move past it).
    Failed,
}

impl RunState {
    pub const ALL: [RunState; 3] = [RunState::Running, RunState::Passed, RunState::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Passed => "passed",
            RunState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|x| x.as_str() == s)
    }
}
