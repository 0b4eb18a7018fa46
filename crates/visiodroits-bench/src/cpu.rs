//! Where a benchmark point's CPU time went, read from `/proc` over the measured window: the system
//! measured (the server's process, or nginx's), the driver (this load generator, or pgbench) and
//! the rest of the machine (PostgreSQL, the kernel's own work, anything else running). On a
//! machine whose cores are all busy, a rate is the cores' time divided by the CPU one exchange
//! costs: these figures say which part of that cost is the server's.

use serde::{Deserialize, Serialize};

/// Clock ticks per second of `/proc`'s times (`USER_HZ`: 100 on every architecture Linux gives
/// this ABI to, whatever the kernel's own tick rate).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU milliseconds per exchange (or handshake) of one measured run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CpuPerExchange {
    /// The system measured; `None` when its processes were not given (pgbench's system is
    /// PostgreSQL, which is in `rest`).
    pub system_ms: Option<f64>,
    /// The load generator or pgbench.
    pub driver_ms: f64,
    /// Everything else busy on the machine.
    pub rest_ms: f64,
}

impl CpuPerExchange {
    pub fn total_ms(&self) -> f64 {
        self.system_ms.unwrap_or(0.0) + self.driver_ms + self.rest_ms
    }
}

/// Busy ticks at one instant: the whole machine, the system's processes, the driver.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    machine: u64,
    system: Option<u64>,
    driver: u64,
}

/// Which processes a sample reads.
#[derive(Debug, Clone, Copy)]
pub enum Driver {
    /// This process (the load generator).
    OwnProcess,
    /// This process's children that have been waited for (pgbench, once it has exited).
    WaitedChildren,
}

impl Sample {
    /// Reads the machine's busy ticks, the sum of `system`'s processes (none: `None`) and the
    /// driver's. A process of `system` that has gone makes the system's share unknown.
    pub fn now(system: &[u32], driver: Driver) -> std::io::Result<Sample> {
        let machine = machine_busy(&std::fs::read_to_string("/proc/stat")?)?;
        let system = if system.is_empty() {
            None
        } else {
            system
                .iter()
                .map(|pid| {
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                    process_ticks(&stat).map(|(own, _)| own)
                })
                .sum::<Option<u64>>()
        };
        let own = process_ticks(&std::fs::read_to_string("/proc/self/stat")?)
            .ok_or_else(|| invalid("/proc/self/stat"))?;
        let driver = match driver {
            Driver::OwnProcess => own.0,
            Driver::WaitedChildren => own.1,
        };
        Ok(Sample {
            machine,
            system,
            driver,
        })
    }

    /// The CPU from `self` to `later`, per exchange of the `exchanges` completed in between.
    pub fn per_exchange(&self, later: &Sample, exchanges: u64) -> Option<CpuPerExchange> {
        if exchanges == 0 {
            return None;
        }
        let ms = |ticks: u64| ticks as f64 * 1000.0 / TICKS_PER_SECOND / exchanges as f64;
        let machine = later.machine.saturating_sub(self.machine);
        let driver = later.driver.saturating_sub(self.driver);
        let system = match (self.system, later.system) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let rest = machine
            .saturating_sub(driver)
            .saturating_sub(system.unwrap_or(0));
        Some(CpuPerExchange {
            system_ms: system.map(ms),
            driver_ms: ms(driver),
            rest_ms: ms(rest),
        })
    }
}

/// Busy ticks of all cores from `/proc/stat`'s `cpu` line: user, nice, system, irq and softirq
/// (not idle, I/O wait, or time the hypervisor gave to other guests).
fn machine_busy(stat: &str) -> std::io::Result<u64> {
    let fields: Vec<u64> = stat
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .ok_or_else(|| invalid("/proc/stat"))?
        .split_whitespace()
        .map(|f| f.parse().map_err(|_| invalid("/proc/stat")))
        .collect::<std::io::Result<_>>()?;
    // user nice system idle iowait irq softirq steal …
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    Ok(at(0) + at(1) + at(2) + at(5) + at(6))
}

/// A process's (own, waited-for children's) ticks, user and system, from `/proc/PID/stat`.
fn process_ticks(stat: &str) -> Option<(u64, u64)> {
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so field N is f[N - 3]; utime 14, stime 15, cutime 16,
    // cstime 17.
    let n = |i: usize| f.get(i - 3)?.parse::<u64>().ok();
    Some((n(14)? + n(15)?, n(16)? + n(17)?))
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{what}: not the expected layout"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_times_are_read_even_with_a_parenthesis_in_the_name() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    350 120 7 3 20 0 3 0 123456 1000000 2000 18446744073709551615";
        assert_eq!(process_ticks(stat), Some((470, 10)));
        assert_eq!(process_ticks("4242 (cut"), None);
        let machine = "cpu  100 5 50 9000 40 3 2 60 0 0\ncpu0 50 2 25 4500 20 1 1 30 0 0\n";
        assert_eq!(machine_busy(machine).unwrap(), 160);
    }

    #[test]
    fn the_rest_is_what_the_system_and_the_driver_did_not_use() {
        let a = Sample {
            machine: 1000,
            system: Some(100),
            driver: 50,
        };
        let b = Sample {
            machine: 1300,
            system: Some(200),
            driver: 80,
        };
        // 300 busy ticks (3 s) over 1,000 exchanges: 3 ms each, 1 of them the system's.
        let c = a.per_exchange(&b, 1000).unwrap();
        assert_eq!(c.system_ms, Some(1.0));
        assert!((c.driver_ms - 0.3).abs() < 1e-9);
        assert!((c.rest_ms - 1.7).abs() < 1e-9);
        assert!((c.total_ms() - 3.0).abs() < 1e-9);
        let unknown = Sample { system: None, ..b };
        let c = a.per_exchange(&unknown, 1000).unwrap();
        assert_eq!(c.system_ms, None);
        assert!((c.rest_ms - 2.7).abs() < 1e-9);
        assert_eq!(a.per_exchange(&b, 0), None);
    }
}
