//! Keeping a thread on one CPU: the per-CPU state of the programs (budgets,
//! rate limits, partitions) then sees one CPU's traffic, run after run.

/// Pins the calling thread to `cpu`, if the machine has it.
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_setaffinity
    // on thread 0 (the caller) only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Pins the calling thread to the lowest-numbered CPU it may run on (its
/// affinity set, so cpusets and `taskset` are honoured). The same CPU run
/// after run, unlike the one it happens to start on.
pub fn pin_to_first_allowed_cpu() {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity on
    // thread 0 (the caller) fills it, CPU_ISSET only reads it.
    let first = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return;
        }
        (0..libc::CPU_SETSIZE as usize).find(|&cpu| libc::CPU_ISSET(cpu, &set))
    };
    if let Some(cpu) = first {
        pin_to_cpu(cpu);
    }
}
