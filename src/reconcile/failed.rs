//! Why a step failed, as the loop records it: the condition reason for status, whether only
//! a person can fix it (then it is not retried), and the error itself. Each adapter's typed
//! error says this about itself where the step is carried out, so the loop never guesses
//! from an error's type afterwards.

use crate::dns::DnsError;

/// A step that did not happen.
#[derive(Debug)]
pub struct Failed {
    /// CamelCase condition reason (`ZoneChanged`, `RoutingFailed`, `StepFailed`, ...).
    pub reason: &'static str,
    /// Retrying cannot help (a refused key or token): stalled at once.
    pub needs_person: bool,
    pub error: anyhow::Error,
}

impl Failed {
    /// A failure with no more precise reason than the step's kind gives.
    pub fn step(reason: &'static str, error: impl Into<anyhow::Error>) -> Self {
        Failed {
            reason,
            needs_person: false,
            error: error.into(),
        }
    }
}

impl From<anyhow::Error> for Failed {
    fn from(error: anyhow::Error) -> Self {
        Failed::step("StepFailed", error)
    }
}

impl From<DnsError> for Failed {
    fn from(e: DnsError) -> Self {
        Failed {
            reason: e.reason(),
            needs_person: e.needs_a_person(),
            error: e.into(),
        }
    }
}

impl From<crate::routing::RoutingError> for Failed {
    fn from(e: crate::routing::RoutingError) -> Self {
        Failed::step("RoutingFailed", e)
    }
}

impl From<crate::directory::DirectoryError> for Failed {
    fn from(e: crate::directory::DirectoryError) -> Self {
        Failed::step("AccountsFailed", e)
    }
}

impl From<crate::dav::DavError> for Failed {
    fn from(e: crate::dav::DavError) -> Self {
        let person = e.needs_person();
        Failed {
            reason: if person {
                "CredentialsRejected"
            } else {
                "DavFailed"
            },
            needs_person: person,
            error: e.into(),
        }
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}
