//! containerd's Metrics protos (`io.containerd.cgroups.v1.Metrics` and
//! `io.containerd.cgroups.v2.Metrics`, as the Go runc shim reports them)
//! built from the cgroup statistics that runtime-core reads
//! (`runtime_core::stats`).

use containerd_shim::protos::cgroups::metrics::{
    BlkIOEntry, BlkIOStat, CPUStat, CPUUsage, MemoryEntry, MemoryOomControl, MemoryStat, Metrics,
    PidsStat, Throttle,
};
use containerd_shim::protos::cgroups_v2::metrics as v2m;
use runtime_core::stats::{self, BlkioEntry, V1Stats, V2Stats};
use std::collections::BTreeMap;

/// The type URLs containerd decodes metrics by.
pub const V1_METRICS_TYPE: &str = "io.containerd.cgroups.v1.Metrics";
pub const V2_METRICS_TYPE: &str = "io.containerd.cgroups.v2.Metrics";

/// A key of a flat-keyed file (0 when absent).
fn key(map: &BTreeMap<String, u64>, k: &str) -> u64 {
    map.get(k).copied().unwrap_or(0)
}

fn memory_entry(e: &stats::MemoryEntry) -> MemoryEntry {
    MemoryEntry {
        usage: e.usage,
        limit: e.limit,
        max: e.max,
        failcnt: e.failcnt,
        ..Default::default()
    }
}

fn blkio(entries: &[BlkioEntry]) -> Vec<BlkIOEntry> {
    entries
        .iter()
        .map(|e| BlkIOEntry {
            op: e.op.clone(),
            major: e.major,
            minor: e.minor,
            value: e.value,
            ..Default::default()
        })
        .collect()
}

/// cgroup v1 metrics; an unlimited pids.max is 0, as containerd reports it.
pub fn v1(s: &V1Stats) -> Metrics {
    let mut m = Metrics::new();
    if let Some(p) = &s.pids {
        m.pids = Some(PidsStat {
            current: p.current,
            limit: p.limit.unwrap_or(0),
            ..Default::default()
        })
        .into();
    }
    if let Some(c) = &s.cpu {
        let usage = CPUUsage {
            total: c.total,
            user: c.user,
            kernel: c.kernel,
            per_cpu: c.per_cpu.clone(),
            ..Default::default()
        };
        let throttling = Throttle {
            periods: c.periods,
            throttled_periods: c.throttled_periods,
            throttled_time: c.throttled_time,
            ..Default::default()
        };
        m.cpu = Some(CPUStat {
            usage: Some(usage).into(),
            throttling: Some(throttling).into(),
            ..Default::default()
        })
        .into();
    }
    if let Some(mem) = &s.memory {
        let g = |k: &str| key(&mem.stat, k);
        m.memory = Some(MemoryStat {
            cache: g("cache"),
            rss: g("rss"),
            rss_huge: g("rss_huge"),
            mapped_file: g("mapped_file"),
            dirty: g("dirty"),
            writeback: g("writeback"),
            pg_pg_in: g("pgpgin"),
            pg_pg_out: g("pgpgout"),
            pg_fault: g("pgfault"),
            pg_maj_fault: g("pgmajfault"),
            inactive_anon: g("inactive_anon"),
            active_anon: g("active_anon"),
            inactive_file: g("inactive_file"),
            active_file: g("active_file"),
            unevictable: g("unevictable"),
            hierarchical_memory_limit: g("hierarchical_memory_limit"),
            hierarchical_swap_limit: g("hierarchical_memsw_limit"),
            total_cache: g("total_cache"),
            total_rss: g("total_rss"),
            total_rss_huge: g("total_rss_huge"),
            total_mapped_file: g("total_mapped_file"),
            total_dirty: g("total_dirty"),
            total_writeback: g("total_writeback"),
            total_pg_pg_in: g("total_pgpgin"),
            total_pg_pg_out: g("total_pgpgout"),
            total_pg_fault: g("total_pgfault"),
            total_pg_maj_fault: g("total_pgmajfault"),
            total_inactive_anon: g("total_inactive_anon"),
            total_active_anon: g("total_active_anon"),
            total_inactive_file: g("total_inactive_file"),
            total_active_file: g("total_active_file"),
            total_unevictable: g("total_unevictable"),
            usage: Some(memory_entry(&mem.usage)).into(),
            swap: mem.swap.as_ref().map(memory_entry).into(),
            kernel: mem.kernel.as_ref().map(memory_entry).into(),
            kernel_tcp: mem.kernel_tcp.as_ref().map(memory_entry).into(),
            ..Default::default()
        })
        .into();
        if let Some(o) = &mem.oom_control {
            m.memory_oom_control = Some(MemoryOomControl {
                oom_kill_disable: key(o, "oom_kill_disable"),
                under_oom: key(o, "under_oom"),
                oom_kill: key(o, "oom_kill"),
                ..Default::default()
            })
            .into();
        }
    }
    if let Some(b) = &s.blkio {
        m.blkio = Some(BlkIOStat {
            io_service_bytes_recursive: blkio(&b.io_service_bytes_recursive),
            io_serviced_recursive: blkio(&b.io_serviced_recursive),
            ..Default::default()
        })
        .into();
    }
    m
}

/// cgroup v2 metrics; "max" limits are 0, as containerd reports them.
pub fn v2(s: &V2Stats) -> v2m::Metrics {
    let mut m = v2m::Metrics::new();
    if let Some(p) = &s.pids {
        m.pids = Some(v2m::PidsStat {
            current: p.current,
            limit: p.limit.unwrap_or(0),
            ..Default::default()
        })
        .into();
    }
    if s.cpu.is_some() {
        let g = |k: &str| s.cpu_stat(k);
        m.cpu = Some(v2m::CPUStat {
            usage_usec: g("usage_usec"),
            user_usec: g("user_usec"),
            system_usec: g("system_usec"),
            nr_periods: g("nr_periods"),
            nr_throttled: g("nr_throttled"),
            throttled_usec: g("throttled_usec"),
            nr_bursts: g("nr_bursts"),
            burst_usec: g("burst_usec"),
            ..Default::default()
        })
        .into();
    }
    if let Some(mem) = &s.memory {
        let g = |k: &str| key(&mem.stat, k);
        m.memory = Some(v2m::MemoryStat {
            anon: g("anon"),
            file: g("file"),
            kernel_stack: g("kernel_stack"),
            slab: g("slab"),
            sock: g("sock"),
            shmem: g("shmem"),
            file_mapped: g("file_mapped"),
            file_dirty: g("file_dirty"),
            file_writeback: g("file_writeback"),
            anon_thp: g("anon_thp"),
            inactive_anon: g("inactive_anon"),
            active_anon: g("active_anon"),
            inactive_file: g("inactive_file"),
            active_file: g("active_file"),
            unevictable: g("unevictable"),
            slab_reclaimable: g("slab_reclaimable"),
            slab_unreclaimable: g("slab_unreclaimable"),
            pgfault: g("pgfault"),
            pgmajfault: g("pgmajfault"),
            workingset_refault: g("workingset_refault"),
            workingset_activate: g("workingset_activate"),
            workingset_nodereclaim: g("workingset_nodereclaim"),
            pgrefill: g("pgrefill"),
            pgscan: g("pgscan"),
            pgsteal: g("pgsteal"),
            pgactivate: g("pgactivate"),
            pgdeactivate: g("pgdeactivate"),
            pglazyfree: g("pglazyfree"),
            pglazyfreed: g("pglazyfreed"),
            thp_fault_alloc: g("thp_fault_alloc"),
            thp_collapse_alloc: g("thp_collapse_alloc"),
            usage: mem.usage,
            usage_limit: mem.limit.unwrap_or(0),
            max_usage: mem.peak,
            swap_usage: mem.swap_usage,
            swap_limit: mem.swap_limit.unwrap_or(0),
            ..Default::default()
        })
        .into();
        if let Some(e) = &mem.events {
            let g = |k: &str| key(e, k);
            m.memory_events = Some(v2m::MemoryEvents {
                low: g("low"),
                high: g("high"),
                max: g("max"),
                oom: g("oom"),
                oom_kill: g("oom_kill"),
                oom_group_kill: g("oom_group_kill"),
                ..Default::default()
            })
            .into();
        }
    }
    if let Some(io) = &s.io {
        let usage = io
            .iter()
            .map(|e| v2m::IOEntry {
                major: e.major,
                minor: e.minor,
                rbytes: e.rbytes,
                wbytes: e.wbytes,
                rios: e.rios,
                wios: e.wios,
                ..Default::default()
            })
            .collect();
        m.io = Some(v2m::IOStat {
            usage,
            ..Default::default()
        })
        .into();
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime_core::stats::fixtures::{fixture, V1_FIXTURE, V2_FIXTURE};

    #[test]
    fn v1_fixture_tree() {
        let m = v1(&stats::v1(&fixture(V1_FIXTURE)));
        assert_eq!((m.pids.current, m.pids.limit), (3, 100));
        assert_eq!(m.cpu.usage.total, 123456789);
        assert_eq!(m.cpu.usage.per_cpu, vec![100000000, 23456789]);
        assert_eq!(m.cpu.usage.user, 50_000_000);
        assert_eq!(m.cpu.usage.kernel, 70_000_000);
        assert_eq!(m.cpu.throttling.throttled_periods, 2);
        assert_eq!(m.memory.usage.usage, 4096000);
        assert_eq!(m.memory.usage.limit, 67108864);
        assert_eq!(
            (m.memory.cache, m.memory.rss, m.memory.total_rss),
            (100, 200, 300)
        );
        assert_eq!(m.memory.pg_fault, 9);
        assert!(m.memory.swap.is_none());
        assert_eq!(m.memory_oom_control.oom_kill, 2);
        assert_eq!(m.blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(m.blkio.io_service_bytes_recursive[1].op, "Write");
        assert_eq!(m.blkio.io_service_bytes_recursive[1].value, 8192);
    }

    #[test]
    fn v2_fixture_tree() {
        let m = v2(&stats::v2(&fixture(V2_FIXTURE)));
        assert_eq!((m.pids.current, m.pids.limit), (4, 0));
        assert_eq!(m.cpu.usage_usec, 1500);
        assert_eq!(m.cpu.nr_throttled, 1);
        assert_eq!((m.memory.usage, m.memory.usage_limit), (1048576, 67108864));
        assert_eq!((m.memory.max_usage, m.memory.swap_limit), (2097152, 0));
        assert_eq!(
            (m.memory.anon, m.memory.file, m.memory.pgfault),
            (4096, 8192, 7)
        );
        assert_eq!(m.memory_events.oom_kill, 1);
        assert_eq!(m.io.usage.len(), 1);
        assert_eq!((m.io.usage[0].rbytes, m.io.usage[0].wios), (100, 2));
    }

    #[test]
    fn missing_controllers_are_absent() {
        let m = v1(&stats::v1(&fixture(&[])));
        assert!(m.cpu.is_none() && m.memory.is_none() && m.pids.is_none());
        let m = v2(&stats::v2(&fixture(&[])));
        assert!(m.cpu.is_none() && m.memory.is_none() && m.pids.is_none());
    }
}
