//! Why a command failed, and the exit code a shell user can act on.

use std::error::Error as _;
use std::fmt::Display;
use std::process::ExitCode;

/// The exit codes (documented in `--help`, see `crate::cli`).
pub mod code {
    /// Success.
    pub const OK: u8 = 0;
    /// The JavaScript function failed.
    pub const FUNCTION: u8 = 1;
    /// Usage or configuration error (clap also exits with 2 on bad flags).
    pub const USAGE: u8 = 2;
    /// Nothing answers, a host crashed, a manager or host could not start.
    pub const CONNECTION: u8 = 3;
    /// No answer within the deadline.
    pub const TIMEOUT: u8 = 4;
    /// Another HTTP status, undecodable output, or any other unexpected failure.
    pub const UNEXPECTED: u8 = 5;
    /// The host serves no function of that name.
    pub const UNKNOWN_FUNCTION: u8 = 6;
    /// No manager, or no managed host, to act on.
    pub const NOT_RUNNING: u8 = 7;
    /// Reading stdin or a logfile, or writing stdout, failed.
    pub const IO: u8 = 8;
}

/// The exit code for an SDK error.
pub fn exit_code(e: &jshost::Error) -> u8 {
    if e.is_function() {
        code::FUNCTION
    } else if e.is_config() || e.is_encode() {
        code::USAGE
    } else if e.is_connection() || e.is_process() {
        code::CONNECTION
    } else if e.is_timeout() {
        code::TIMEOUT
    } else if e.is_unknown_function() {
        code::UNKNOWN_FUNCTION
    } else {
        // is_unexpected_response, is_decode, and kinds added later.
        code::UNEXPECTED
    }
}

/// A failed command: an exit code, and what to print to stderr.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    message: Option<String>,
    hint: Option<String>,
    causes: Vec<String>,
}

impl Failure {
    /// A failure with `code` and `message`.
    pub fn new(code: u8, message: impl Display) -> Self {
        Failure {
            code,
            message: Some(message.to_string()),
            hint: None,
            causes: Vec::new(),
        }
    }

    /// Ends the command with `code` without printing anything (stdout was closed by its reader).
    pub fn silent(code: u8) -> Self {
        Failure {
            code,
            message: None,
            hint: None,
            causes: Vec::new(),
        }
    }

    /// A usage error (exit code 2).
    pub fn usage(message: impl Display) -> Self {
        Self::new(code::USAGE, message)
    }

    /// Nothing to act on (exit code 7).
    pub fn not_running(message: impl Display) -> Self {
        Self::new(code::NOT_RUNNING, message)
    }

    /// An I/O error (exit code 8).
    pub fn io(what: impl Display, err: std::io::Error) -> Self {
        Self::new(code::IO, format!("{what}: {err}"))
    }

    /// Adds a line telling the user what to do.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Display) -> Self {
        self.hint = Some(hint.to_string());
        self
    }

    /// The exit code.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// Prints the failure to stderr (with the chain of causes when `verbose`) and returns the
    /// exit code.
    pub fn report(&self, verbose: bool) -> ExitCode {
        self.print(verbose);
        ExitCode::from(self.code())
    }

    fn print(&self, verbose: bool) {
        if let Some(message) = &self.message {
            eprintln!("jshost: {message}");
            if verbose {
                for cause in &self.causes {
                    eprintln!("jshost:   caused by: {cause}");
                }
            }
            if let Some(hint) = &self.hint {
                eprintln!("jshost: hint: {hint}");
            }
        }
    }
}

impl From<jshost::Error> for Failure {
    fn from(e: jshost::Error) -> Self {
        let mut causes = Vec::new();
        let mut source = e.source();
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        // Display keeps the JavaScript stack of a function error, and names the URL and logfile.
        Failure {
            code: exit_code(&e),
            message: Some(e.to_string()),
            hint: None,
            causes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jshost::{Error, ErrorKind};
    use jshost_core::error::Build as _;

    #[test]
    fn every_error_kind_has_its_code() {
        let cases = [
            (ErrorKind::Function, code::FUNCTION),
            (ErrorKind::Config, code::USAGE),
            (ErrorKind::Encode, code::USAGE),
            (ErrorKind::Connection, code::CONNECTION),
            (ErrorKind::Process, code::CONNECTION),
            (ErrorKind::Timeout, code::TIMEOUT),
            (ErrorKind::UnexpectedResponse, code::UNEXPECTED),
            (ErrorKind::Decode, code::UNEXPECTED),
            (ErrorKind::UnknownFunction, code::UNKNOWN_FUNCTION),
        ];
        for (kind, expected) in cases {
            assert_eq!(exit_code(&Error::new(kind, "x")), expected, "{kind:?}");
        }
    }

    #[test]
    fn function_errors_keep_the_stack() {
        let e = Error::new(ErrorKind::Function, "the function reported an error")
            .with_function("fail")
            .with_body("Error: boom\n    at fail (functions.js:1:1)");
        let f = Failure::from(e);
        assert_eq!(f.code(), code::FUNCTION);
        assert!(f
            .message
            .as_deref()
            .is_some_and(|m| m.contains("at fail (functions.js:1:1)")));
    }
}
