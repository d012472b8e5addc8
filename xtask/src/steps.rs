//! A named sequence of steps that stops at the first failure, so CI logs end
//! with one line saying which step broke and a summary when all pass.

use std::time::Instant;

use anyhow::Result;

pub struct Pipeline {
    name: &'static str,
    passed: Vec<&'static str>,
    /// Each passed step's wall time, for the summary: where a run's time
    /// went is the first thing to know when it gets slow.
    seconds: Vec<f64>,
    start: Instant,
}

impl Pipeline {
    /// `name` prefixes every line, e.g. `xtask test`.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            passed: Vec::new(),
            seconds: Vec::new(),
            start: Instant::now(),
        }
    }

    pub fn step(&mut self, step: &'static str, f: impl FnOnce() -> Result<()>) -> Result<()> {
        eprintln!("{}: step {step}", self.name);
        let started = Instant::now();
        match f() {
            Ok(()) => {
                let took = started.elapsed().as_secs_f64();
                eprintln!("{}: step {step} passed in {took:.1}s", self.name);
                self.passed.push(step);
                self.seconds.push(took);
                Ok(())
            }
            Err(e) => Err(e.context(failure_line(self.name, step, &self.passed))),
        }
    }

    pub fn finish(self) {
        eprintln!(
            "{}: all {} steps passed ({}) in {:.1}s",
            self.name,
            self.passed.len(),
            timed_steps(&self.passed, &self.seconds),
            self.start.elapsed().as_secs_f64()
        );
    }
}

fn timed_steps(steps: &[&str], seconds: &[f64]) -> String {
    steps
        .iter()
        .zip(seconds)
        .map(|(step, s)| format!("{step} {s:.0}s"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn failure_line(name: &str, step: &str, passed: &[&str]) -> String {
    if passed.is_empty() {
        format!("{name}: step {step} failed")
    } else {
        format!(
            "{name}: step {step} failed (passed before it: {})",
            passed.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_first_failure_and_names_it() {
        let mut p = Pipeline::new("xtask test");
        p.step("a", || Ok(())).unwrap();
        let err = p.step("b", || anyhow::bail!("boom")).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "xtask test: step b failed (passed before it: a): boom"
        );
        assert_eq!(p.passed, ["a"]);
    }

    #[test]
    fn summary_names_each_step_with_its_time() {
        assert_eq!(
            timed_steps(&["setup", "test"], &[1.24, 250.6]),
            "setup 1s, test 251s"
        );
    }

    #[test]
    fn failure_line_for_first_step() {
        assert_eq!(
            failure_line("xtask lint", "fmt", &[]),
            "xtask lint: step fmt failed"
        );
    }
}
