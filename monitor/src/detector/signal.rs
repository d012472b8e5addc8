//! The SYN-flood test for one (interface, port) series, as pure logic: fed
//! cumulative counters once per tick, it keeps a baseline of the normal SYN
//! rate and decides when an alert fires and when it resolves.

/// Thresholds of the flood test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloodThresholds {
    /// SYNs per second below which nothing is a flood, whatever the
    /// baseline.
    pub syn_rate_floor: f64,
    /// A flood's SYN rate is at least this many times the baseline.
    pub baseline_factor: f64,
    /// ...and fewer than this share of its SYNs complete a handshake.
    pub completion_ratio_max: f64,
    /// Weight of a new normal second in the baseline (an EWMA).
    pub baseline_alpha: f64,
    /// Consecutive flood seconds before the alert fires.
    pub fire_after: u32,
    /// Consecutive normal seconds before it resolves.
    pub clear_after: u32,
}

impl Default for FloodThresholds {
    fn default() -> Self {
        Self {
            syn_rate_floor: 100.0,
            baseline_factor: 4.0,
            completion_ratio_max: 0.5,
            baseline_alpha: 1.0 / 60.0,
            fire_after: 1,
            clear_after: 5,
        }
    }
}

/// Cumulative counters of one series, as read at a tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub syns: u64,
    pub completed: u64,
}

/// What one tick measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub syn_rate: f64,
    pub completion_ratio: f64,
    pub baseline: f64,
    pub flood: bool,
}

/// An alert state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Fired,
    Resolved,
}

#[derive(Debug, Clone, Default)]
pub struct FloodSignal {
    last: Option<Sample>,
    baseline: f64,
    firing: bool,
    streak: u32,
    reading: Option<Reading>,
}

impl FloodSignal {
    pub fn firing(&self) -> bool {
        self.firing
    }

    pub fn reading(&self) -> Option<Reading> {
        self.reading
    }

    /// Takes the counters read `seconds` after the previous tick.
    pub fn tick(&mut self, now: Sample, seconds: f64, t: &FloodThresholds) -> Option<Transition> {
        // The first sample only sets the starting point.
        let last = self.last.replace(now)?;
        let seconds = seconds.max(1e-3);
        let syns = now.syns.saturating_sub(last.syns) as f64;
        let completed = now.completed.saturating_sub(last.completed) as f64;
        let syn_rate = syns / seconds;
        // Completions of earlier SYNs can land in this second: cap at 1.
        let completion_ratio = if syns > 0.0 {
            (completed / syns).min(1.0)
        } else {
            1.0
        };
        let threshold = t.syn_rate_floor.max(t.baseline_factor * self.baseline);
        let flood = syn_rate >= threshold && completion_ratio < t.completion_ratio_max;
        if !flood && !self.firing {
            // Only normal seconds teach the baseline: a flood must not
            // raise the bar it is measured against.
            self.baseline += t.baseline_alpha * (syn_rate - self.baseline);
        }
        self.reading = Some(Reading {
            syn_rate,
            completion_ratio,
            baseline: self.baseline,
            flood,
        });
        if flood == self.firing {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.firing {
            t.clear_after
        } else {
            t.fire_after
        };
        if self.streak < needed {
            return None;
        }
        self.streak = 0;
        self.firing = flood;
        Some(if flood {
            Transition::Fired
        } else {
            Transition::Resolved
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs per-second (syns, completed) deltas through a signal.
    fn run(deltas: &[(u64, u64)]) -> (FloodSignal, Vec<(usize, Transition)>) {
        let t = FloodThresholds::default();
        let mut s = FloodSignal::default();
        let mut now = Sample::default();
        s.tick(now, 1.0, &t);
        let mut changes = Vec::new();
        for (i, (syns, completed)) in deltas.iter().enumerate() {
            now.syns += syns;
            now.completed += completed;
            if let Some(change) = s.tick(now, 1.0, &t) {
                changes.push((i, change));
            }
        }
        (s, changes)
    }

    #[test]
    fn a_flood_fires_at_once_and_resolves_after_five_quiet_seconds() {
        let mut deltas = vec![(20, 20); 30];
        deltas.extend([(5000, 10); 3]);
        deltas.extend([(20, 20); 10]);
        let (_, changes) = run(&deltas);
        assert_eq!(
            changes,
            [(30, Transition::Fired), (37, Transition::Resolved)]
        );
    }

    #[test]
    fn busy_servers_whose_clients_complete_raise_nothing() {
        // A burst of real clients: many SYNs, nearly all completing.
        let mut deltas = vec![(50, 50); 10];
        deltas.extend([(3000, 2990); 5]);
        deltas.extend([(50, 50); 10]);
        assert!(run(&deltas).1.is_empty());
    }

    #[test]
    fn the_baseline_follows_normal_traffic_and_sets_the_bar() {
        // A server normally at 1000 SYN/s: a second of 1500 SYNs that
        // mostly fail is not a flood; 5000 is.
        let mut deltas = vec![(1000, 600); 600];
        deltas.push((1500, 10));
        let (s, changes) = run(&deltas);
        assert!(changes.is_empty(), "{changes:?}");
        // 600 s at 1000 SYN/s, then one at 1500: the baseline has moved by 1/60.
        assert!((s.reading().unwrap().baseline - 1008.0).abs() < 5.0);
        let mut deltas = vec![(1000, 600); 600];
        deltas.push((5000, 10));
        assert_eq!(run(&deltas).1, [(600, Transition::Fired)]);
    }

    #[test]
    fn a_flood_does_not_teach_the_baseline() {
        let mut deltas = vec![(20, 20); 5];
        deltas.extend([(5000, 0); 120]);
        let (s, changes) = run(&deltas);
        assert_eq!(changes, [(5, Transition::Fired)]);
        assert!(s.reading().unwrap().baseline < 25.0);
        assert!(s.firing());
    }

    #[test]
    fn a_flap_below_the_clear_streak_keeps_firing() {
        let mut deltas = vec![(5000, 0); 3];
        deltas.extend([(10, 10); 4]);
        deltas.extend([(5000, 0); 2]);
        let (s, changes) = run(&deltas);
        assert_eq!(changes, [(0, Transition::Fired)]);
        assert!(s.firing());
    }
}
