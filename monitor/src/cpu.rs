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

/// Pins the calling thread to the CPU it runs on now.
pub fn stay_on_this_cpu() {
    // SAFETY: no preconditions; -1 on failure.
    let cpu = unsafe { libc::sched_getcpu() };
    if let Ok(cpu) = usize::try_from(cpu) {
        pin_to_cpu(cpu);
    }
}
