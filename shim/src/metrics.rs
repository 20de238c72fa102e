//! cgroup v1 metrics (`io.containerd.cgroups.v1.Metrics`) built from the
//! container's cgroup files, as the Go runc shim reports them.

use std::collections::HashMap;

use containerd_shim::protos::cgroups::metrics::{
    BlkIOEntry, BlkIOStat, CPUStat, CPUUsage, MemoryEntry, MemoryOomControl, MemoryStat, Metrics,
    PidsStat, Throttle,
};
use containerd_shim::protos::cgroups_v2::metrics as v2m;

/// The type URLs containerd decodes metrics by.
pub const V1_METRICS_TYPE: &str = "io.containerd.cgroups.v1.Metrics";
pub const V2_METRICS_TYPE: &str = "io.containerd.cgroups.v2.Metrics";

/// USER_HZ: cpuacct.stat counts in these ticks.
const CLOCK_TICKS: u64 = 100;

fn num(s: &str) -> u64 {
    s.trim().parse().unwrap_or(0)
}

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat, memory.oom_control).
fn kv(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), num(v)))
        })
        .collect()
}

fn memory_entry(read: &dyn Fn(&str) -> Option<String>, prefix: &str) -> Option<MemoryEntry> {
    let usage = read(&format!("{prefix}.usage_in_bytes"))?;
    Some(MemoryEntry {
        usage: num(&usage),
        limit: read(&format!("{prefix}.limit_in_bytes")).map_or(0, |s| num(&s)),
        max: read(&format!("{prefix}.max_usage_in_bytes")).map_or(0, |s| num(&s)),
        failcnt: read(&format!("{prefix}.failcnt")).map_or(0, |s| num(&s)),
        ..Default::default()
    })
}

fn blkio(text: &str) -> Vec<BlkIOEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 3 {
                return None;
            }
            let (major, minor) = f[0].split_once(':')?;
            Some(BlkIOEntry {
                op: f[1].to_string(),
                major: num(major),
                minor: num(minor),
                value: num(f[2]),
                ..Default::default()
            })
        })
        .collect()
}

/// Build the metrics; `read(name)` returns the content of the cgroup file `name`
/// of the container (from whichever hierarchy has it).
pub fn v1(read: &dyn Fn(&str) -> Option<String>) -> Metrics {
    let mut m = Metrics::new();
    if let Some(current) = read("pids.current") {
        let limit = read("pids.max").map_or(0, |s| num(&s));
        m.pids = Some(PidsStat {
            current: num(&current),
            limit,
            ..Default::default()
        })
        .into();
    }
    if let Some(total) = read("cpuacct.usage") {
        let stat = kv(&read("cpuacct.stat").unwrap_or_default());
        let ns = |ticks: u64| ticks * 1_000_000_000 / CLOCK_TICKS;
        let usage = CPUUsage {
            total: num(&total),
            user: ns(stat.get("user").copied().unwrap_or(0)),
            kernel: ns(stat.get("system").copied().unwrap_or(0)),
            per_cpu: read("cpuacct.usage_percpu")
                .unwrap_or_default()
                .split_whitespace()
                .map(num)
                .collect(),
            ..Default::default()
        };
        let t = kv(&read("cpu.stat").unwrap_or_default());
        let throttling = Throttle {
            periods: t.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: t.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: t.get("throttled_time").copied().unwrap_or(0),
            ..Default::default()
        };
        m.cpu = Some(CPUStat {
            usage: Some(usage).into(),
            throttling: Some(throttling).into(),
            ..Default::default()
        })
        .into();
    }
    if let Some(usage) = memory_entry(read, "memory") {
        let s = kv(&read("memory.stat").unwrap_or_default());
        let g = |k: &str| s.get(k).copied().unwrap_or(0);
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
            usage: Some(usage).into(),
            swap: memory_entry(read, "memory.memsw").into(),
            kernel: memory_entry(read, "memory.kmem").into(),
            kernel_tcp: memory_entry(read, "memory.kmem.tcp").into(),
            ..Default::default()
        })
        .into();
        if let Some(oom) = read("memory.oom_control") {
            let o = kv(&oom);
            m.memory_oom_control = Some(MemoryOomControl {
                oom_kill_disable: o.get("oom_kill_disable").copied().unwrap_or(0),
                under_oom: o.get("under_oom").copied().unwrap_or(0),
                oom_kill: o.get("oom_kill").copied().unwrap_or(0),
                ..Default::default()
            })
            .into();
        }
    }
    if let Some(bytes) = read("blkio.throttle.io_service_bytes_recursive") {
        m.blkio = Some(BlkIOStat {
            io_service_bytes_recursive: blkio(&bytes),
            io_serviced_recursive: blkio(
                &read("blkio.throttle.io_serviced_recursive").unwrap_or_default(),
            ),
            ..Default::default()
        })
        .into();
    }
    m
}

/// A cgroup v2 limit file: "max" is 0 (unlimited), as containerd reports it.
fn limit(s: &str) -> u64 {
    if s.trim() == "max" {
        0
    } else {
        num(s)
    }
}

/// Build cgroup v2 metrics (`io.containerd.cgroups.v2.Metrics`) from the files of
/// the container's unified cgroup.
pub fn v2(read: &dyn Fn(&str) -> Option<String>) -> v2m::Metrics {
    let mut m = v2m::Metrics::new();
    if let Some(current) = read("pids.current") {
        m.pids = Some(v2m::PidsStat {
            current: num(&current),
            limit: read("pids.max").map_or(0, |s| limit(&s)),
            ..Default::default()
        })
        .into();
    }
    if let Some(stat) = read("cpu.stat") {
        let c = kv(&stat);
        let g = |k: &str| c.get(k).copied().unwrap_or(0);
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
    if let Some(current) = read("memory.current") {
        let st = kv(&read("memory.stat").unwrap_or_default());
        let g = |k: &str| st.get(k).copied().unwrap_or(0);
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
            usage: num(&current),
            usage_limit: read("memory.max").map_or(0, |s| limit(&s)),
            max_usage: read("memory.peak").map_or(0, |s| num(&s)),
            swap_usage: read("memory.swap.current").map_or(0, |s| num(&s)),
            swap_limit: read("memory.swap.max").map_or(0, |s| limit(&s)),
            ..Default::default()
        })
        .into();
        if let Some(events) = read("memory.events") {
            let e = kv(&events);
            let g = |k: &str| e.get(k).copied().unwrap_or(0);
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
    if let Some(io) = read("io.stat") {
        let usage = io
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (major, minor) = f.next()?.split_once(':')?;
                let kv: HashMap<&str, u64> = f
                    .filter_map(|p| p.split_once('='))
                    .map(|(k, v)| (k, num(v)))
                    .collect();
                let g = |k: &str| kv.get(k).copied().unwrap_or(0);
                Some(v2m::IOEntry {
                    major: num(major),
                    minor: num(minor),
                    rbytes: g("rbytes"),
                    wbytes: g("wbytes"),
                    rios: g("rios"),
                    wios: g("wios"),
                    ..Default::default()
                })
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

    fn fixture(files: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn v1_fixture_tree() {
        let read = fixture(&[
            ("pids.current", "3\n"),
            ("pids.max", "100\n"),
            ("cpuacct.usage", "123456789\n"),
            ("cpuacct.usage_percpu", "100000000 23456789 \n"),
            ("cpuacct.stat", "user 5\nsystem 7\n"),
            (
                "cpu.stat",
                "nr_periods 10\nnr_throttled 2\nthrottled_time 3000\n",
            ),
            ("memory.usage_in_bytes", "4096000\n"),
            ("memory.limit_in_bytes", "67108864\n"),
            ("memory.max_usage_in_bytes", "5000000\n"),
            ("memory.failcnt", "1\n"),
            (
                "memory.stat",
                "cache 100\nrss 200\ntotal_rss 300\npgfault 9\n",
            ),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            ),
            (
                "blkio.throttle.io_service_bytes_recursive",
                "8:0 Read 4096\n8:0 Write 8192\nTotal 12288\n",
            ),
        ]);
        let m = v1(&read);
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
        assert_eq!(m.memory_oom_control.oom_kill, 2);
        assert_eq!(m.blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(m.blkio.io_service_bytes_recursive[1].op, "Write");
        assert_eq!(m.blkio.io_service_bytes_recursive[1].value, 8192);
    }

    #[test]
    fn v2_fixture_tree() {
        let read = fixture(&[
            ("pids.current", "4\n"),
            ("pids.max", "max\n"),
            ("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 3\nnr_throttled 1\nthrottled_usec 20\n"),
            ("memory.current", "1048576\n"),
            ("memory.max", "67108864\n"),
            ("memory.stat", "anon 4096\nfile 8192\npgfault 7\n"),
            ("memory.events", "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n"),
            ("io.stat", "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n"),
        ]);
        let m = v2(&read);
        assert_eq!((m.pids.current, m.pids.limit), (4, 0));
        assert_eq!(m.cpu.usage_usec, 1500);
        assert_eq!(m.cpu.nr_throttled, 1);
        assert_eq!((m.memory.usage, m.memory.usage_limit), (1048576, 67108864));
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
        let m = v1(&fixture(&[]));
        assert!(m.cpu.is_none() && m.memory.is_none() && m.pids.is_none());
    }
}
