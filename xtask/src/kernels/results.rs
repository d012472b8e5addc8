//! Reading a guest's serial log: what the init printed around each test
//! binary (`HSM-BEGIN name`, libtest's own output, `HSM-END name rc=N`) and
//! libtest's summary line inside.

/// Printed by the init before anything else: `HSM-KERNEL <uname -r>`.
pub const KERNEL: &str = "HSM-KERNEL ";
pub const BEGIN: &str = "HSM-BEGIN ";
pub const END: &str = "HSM-END ";
/// The init ran every binary and is about to power off.
pub const DONE: &str = "HSM-DONE";

/// One test binary's run inside a guest.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BinaryResult {
    pub name: String,
    /// The exit status `timeout` reported; `None` if the guest died (or the
    /// host gave up) before the binary finished.
    pub rc: Option<i32>,
    pub passed: u32,
    pub failed: u32,
    pub ignored: u32,
    /// Names of the tests libtest reported as FAILED.
    pub failures: Vec<String>,
    /// libtest printed its `test result:` line.
    pub summary: bool,
}

impl BinaryResult {
    pub fn ok(&self) -> bool {
        self.rc == Some(0) && self.summary && self.failed == 0
    }

    pub fn describe(&self) -> String {
        let status = match self.rc {
            None => "did not finish".to_owned(),
            Some(0) if self.ok() => "ok".to_owned(),
            Some(0) => "no test summary".to_owned(),
            Some(124 | 143) if !self.summary => format!("timed out (rc {})", self.rc.unwrap_or(0)),
            Some(rc) => format!("FAILED (rc {rc})"),
        };
        format!(
            "{status}: {} passed, {} failed, {} ignored",
            self.passed, self.failed, self.ignored
        )
    }
}

/// What one guest boot produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GuestLog {
    /// `uname -r` inside the guest; `None` if the init never ran.
    pub release: Option<String>,
    pub binaries: Vec<BinaryResult>,
    /// The init reached its end (every binary ran).
    pub done: bool,
}

pub fn parse(log: &str) -> GuestLog {
    let mut out = GuestLog::default();
    let mut current: Option<BinaryResult> = None;
    for raw in log.lines() {
        let line = raw.trim_end_matches('\r');
        if let Some(rel) = line.strip_prefix(KERNEL) {
            out.release = Some(rel.trim().to_owned());
        } else if let Some(name) = line.strip_prefix(BEGIN) {
            out.binaries.extend(current.take());
            current = Some(BinaryResult {
                name: name.trim().to_owned(),
                ..BinaryResult::default()
            });
        } else if let Some(rest) = line.strip_prefix(END) {
            let mut it = rest.split_whitespace();
            let name = it.next().unwrap_or_default();
            let rc = it
                .find_map(|w| w.strip_prefix("rc="))
                .and_then(|v| v.parse().ok());
            let mut done = current.take().unwrap_or_default();
            if done.name.is_empty() {
                done.name = name.to_owned();
            }
            done.rc = rc;
            out.binaries.push(done);
        } else if line.trim() == DONE {
            out.done = true;
        } else if let Some(bin) = current.as_mut() {
            read_libtest_line(bin, line);
        }
    }
    out.binaries.extend(current);
    out
}

fn read_libtest_line(bin: &mut BinaryResult, line: &str) {
    // `test name ... FAILED` (a kernel message may share the line's start
    // on a serial console, so look for the pattern anywhere).
    if let Some(pos) = line.find("test ") {
        let rest = &line[pos + 5..];
        if let Some(name) = rest.strip_suffix(" ... FAILED") {
            bin.failures.push(name.trim().to_owned());
            return;
        }
    }
    // `test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; ...`
    if let Some(pos) = line.find("test result: ") {
        bin.summary = true;
        for part in line[pos..].split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = count.parse::<u32>() else {
                continue;
            };
            match label {
                "passed" => bin.passed += n,
                "failed" => bin.failed += n,
                "ignored" => bin.ignored += n,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
[    0.512345] Run /init as init process\r
HSM-KERNEL 6.1.0-56-amd64\r
HSM-BEGIN testrun\r
\r
running 2 tests\r
test counts_syn ... ok\r
test counts_ack ... ok\r
\r
test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.21s\r
\r
HSM-END testrun rc=0\r
HSM-BEGIN testrun_tls\r
running 3 tests\r
test capture_whole ... FAILED\r
test leaves_other_payloads ... ok\r
test budget ... ignored\r
failures:\r
    capture_whole\r
test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s\r
HSM-END testrun_tls rc=101\r
HSM-BEGIN testrun_flows\r
running 4 tests\r
";

    #[test]
    fn reads_release_binaries_and_counts() {
        let got = parse(LOG);
        assert_eq!(got.release.as_deref(), Some("6.1.0-56-amd64"));
        assert!(!got.done);
        assert_eq!(got.binaries.len(), 3);

        let ok = &got.binaries[0];
        assert_eq!((ok.name.as_str(), ok.rc), ("testrun", Some(0)));
        assert_eq!((ok.passed, ok.failed, ok.ignored), (2, 0, 0));
        assert!(ok.ok());

        let bad = &got.binaries[1];
        assert_eq!(bad.rc, Some(101));
        assert_eq!((bad.passed, bad.failed, bad.ignored), (1, 1, 1));
        assert_eq!(bad.failures, ["capture_whole"]);
        assert!(!bad.ok());
        assert!(bad.describe().starts_with("FAILED (rc 101)"));

        // The guest died mid-binary: no rc, not ok.
        let cut = &got.binaries[2];
        assert_eq!((cut.name.as_str(), cut.rc), ("testrun_flows", None));
        assert!(!cut.ok());
        assert!(cut.describe().starts_with("did not finish"));
    }

    #[test]
    fn done_and_missing_summary() {
        let got = parse("HSM-BEGIN a\nHSM-END a rc=0\nHSM-DONE\n");
        assert!(got.done);
        assert_eq!(got.release, None);
        assert!(
            !got.binaries[0].ok(),
            "rc 0 without a summary is not a pass"
        );
    }

    #[test]
    fn a_timed_out_binary() {
        let got = parse("HSM-BEGIN a\nrunning 1 test\nHSM-END a rc=143\n");
        assert!(got.binaries[0].describe().starts_with("timed out"));
    }
}
