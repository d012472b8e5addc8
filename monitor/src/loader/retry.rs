//! Program loads that a signal interrupted, tried again.
//!
//! The verifier checks for pending signals as it walks a program and gives
//! up with EAGAIN when one arrives (`do_check`); ours take it about a
//! second each, so a child exiting (SIGCHLD, with a handler installed), a
//! reload signal or a timer landing in that second fails the load. libbpf
//! retries such loads; aya does not, so every load of ours goes through
//! here.

use aya::programs::ProgramError;

/// Attempts in all, as libbpf makes.
const ATTEMPTS: usize = 5;

/// Runs `load` until it succeeds, fails for another reason than an
/// interrupted verifier, or has been tried [`ATTEMPTS`] times.
pub fn load_retrying(
    mut load: impl FnMut() -> Result<(), ProgramError>,
) -> Result<(), ProgramError> {
    let mut attempt = 1;
    loop {
        match load() {
            Err(err) if interrupted(&err) && attempt < ATTEMPTS => attempt += 1,
            result => return result,
        }
    }
}

/// Whether the kernel refused the load only because a signal came in
/// while the verifier ran.
fn interrupted(err: &ProgramError) -> bool {
    matches!(
        err,
        ProgramError::LoadError { io_error, .. }
            if io_error.raw_os_error() == Some(libc::EAGAIN)
    )
}

#[cfg(test)]
mod tests {
    use std::io;

    use aya_obj::VerifierLog;

    use super::*;

    fn load_error(errno: i32) -> ProgramError {
        ProgramError::LoadError {
            io_error: io::Error::from_raw_os_error(errno),
            verifier_log: VerifierLog::new(String::new()),
        }
    }

    #[test]
    fn an_interrupted_load_is_tried_again() {
        let mut calls = 0;
        let result = load_retrying(|| {
            calls += 1;
            if calls < 3 {
                Err(load_error(libc::EAGAIN))
            } else {
                Ok(())
            }
        });
        assert!(result.is_ok());
        assert_eq!(calls, 3);
    }

    #[test]
    fn other_failures_and_the_last_attempt_are_returned() {
        let mut calls = 0;
        let result = load_retrying(|| {
            calls += 1;
            Err(load_error(libc::EACCES))
        });
        assert!(matches!(result, Err(ProgramError::LoadError { .. })));
        assert_eq!(calls, 1);
        let mut calls = 0;
        let result = load_retrying(|| {
            calls += 1;
            Err(load_error(libc::EAGAIN))
        });
        assert!(result.is_err());
        assert_eq!(calls, ATTEMPTS);
    }
}
