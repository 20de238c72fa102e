//! A container's cgroup statistics, read from its cgroup v1 or v2 files into
//! plain structs: the one reader behind the shim's Metrics (containerd's
//! `io.containerd.cgroups.v1/v2.Metrics`) and the CLI's `events --stats`
//! (runc's stats JSON), which only convert.
//!
//! Files are read through a reader closure (`name -> Some(content)`, None when
//! the file does not exist): [`container_reader`] looks in every hierarchy of
//! the host, [`dir_reader`] in one cgroup directory (e.g. the container's dir in
//! the unified hierarchy of a hybrid host), tests pass fixtures. A controller
//! whose files are missing is `None`; a malformed number reads as 0, as in the
//! Go runc shim's reader.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cgroup::{self, Layout};

/// A cgroup file reader: the content of file `name`, None if it is absent.
pub type Reader<'a> = &'a dyn Fn(&str) -> Option<String>;

/// USER_HZ: cpuacct.stat counts in these ticks.
const CLOCK_TICKS: u64 = 100;

/// Reads the files of cgroup `rel` from the first hierarchy that has them.
pub fn container_reader<'a>(
    hierarchies: &'a [PathBuf],
    rel: &'a Path,
) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| cgroup::file(hierarchies, rel, name).and_then(|p| std::fs::read_to_string(p).ok())
}

/// Reads the files of the one cgroup directory `dir`.
pub fn dir_reader(dir: &Path) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| std::fs::read_to_string(dir.join(name)).ok()
}

/// The statistics of one cgroup, by the host's layout.
#[derive(Debug, Clone, PartialEq)]
pub enum Stats {
    V1(V1Stats),
    V2(V2Stats),
}

/// Reads cgroup `rel` of a host with `layout` (v1 files on a v1 or hybrid
/// host, v2 files on a pure v2 host).
pub fn read(layout: Layout, hierarchies: &[PathBuf], rel: &Path) -> Stats {
    let reader = container_reader(hierarchies, rel);
    match layout {
        Layout::V1 => Stats::V1(v1(&reader)),
        Layout::V2 => Stats::V2(v2(&reader)),
    }
}

/// `pids.current` and `pids.max`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pids {
    pub current: u64,
    /// None: "max" (no limit).
    pub limit: Option<u64>,
}

/// cgroup v1 statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct V1Stats {
    pub pids: Option<Pids>,
    pub cpu: Option<V1Cpu>,
    pub memory: Option<V1Memory>,
    pub blkio: Option<V1Blkio>,
}

/// cpuacct and cpu (throttling) statistics, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V1Cpu {
    /// cpuacct.usage.
    pub total: u64,
    /// cpuacct.stat `user`, converted from USER_HZ ticks.
    pub user: u64,
    /// cpuacct.stat `system`, converted from USER_HZ ticks.
    pub kernel: u64,
    /// cpuacct.usage_percpu.
    pub per_cpu: Vec<u64>,
    /// cpu.stat `nr_periods`.
    pub periods: u64,
    /// cpu.stat `nr_throttled`.
    pub throttled_periods: u64,
    /// cpu.stat `throttled_time`.
    pub throttled_time: u64,
}

/// `<prefix>.usage_in_bytes`, `.limit_in_bytes`, `.max_usage_in_bytes`,
/// `.failcnt` of the memory controller (prefix memory, memory.memsw,
/// memory.kmem, memory.kmem.tcp).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryEntry {
    pub usage: u64,
    pub limit: u64,
    pub max: u64,
    pub failcnt: u64,
}

/// The v1 memory controller.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct V1Memory {
    pub usage: MemoryEntry,
    pub swap: Option<MemoryEntry>,
    pub kernel: Option<MemoryEntry>,
    pub kernel_tcp: Option<MemoryEntry>,
    /// memory.stat, every key.
    pub stat: BTreeMap<String, u64>,
    /// memory.oom_control: oom_kill_disable, under_oom, oom_kill.
    pub oom_control: Option<BTreeMap<String, u64>>,
}

/// One line of a blkio file: `MAJOR:MINOR OP VALUE`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

/// The v1 blkio controller (throttle files, which count without CFQ too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V1Blkio {
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

/// cgroup v2 statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct V2Stats {
    /// cgroup.procs: the processes of the cgroup itself.
    pub procs: Vec<i32>,
    /// pids.current/pids.max; without the pids controller, the number of
    /// processes in cgroup.procs and no limit (as runc's fs2 reader does).
    pub pids: Option<Pids>,
    /// cpu.stat, a core file of every v2 cgroup (usage_usec, user_usec,
    /// system_usec; with the cpu controller also nr_periods, nr_throttled,
    /// throttled_usec, nr_bursts, burst_usec). Missing keys are 0.
    pub cpu: Option<BTreeMap<String, u64>>,
    pub memory: Option<V2Memory>,
    pub io: Option<Vec<IoEntry>>,
}

impl V2Stats {
    /// A cpu.stat key (0 when absent).
    pub fn cpu_stat(&self, key: &str) -> u64 {
        self.cpu
            .as_ref()
            .and_then(|c| c.get(key).copied())
            .unwrap_or(0)
    }
}

/// The v2 memory controller.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct V2Memory {
    /// memory.current.
    pub usage: u64,
    /// memory.max; None: "max".
    pub limit: Option<u64>,
    /// memory.peak (kernel 5.19+), 0 without it.
    pub peak: u64,
    /// memory.swap.current, 0 without swap accounting.
    pub swap_usage: u64,
    /// memory.swap.max; None: "max" or no swap accounting.
    pub swap_limit: Option<u64>,
    /// memory.stat, every key.
    pub stat: BTreeMap<String, u64>,
    /// memory.events: low, high, max, oom, oom_kill, oom_group_kill.
    pub events: Option<BTreeMap<String, u64>>,
}

/// One line of io.stat: `MAJOR:MINOR rbytes=.. wbytes=.. rios=.. wios=..`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoEntry {
    pub major: u64,
    pub minor: u64,
    pub rbytes: u64,
    pub wbytes: u64,
    pub rios: u64,
    pub wios: u64,
}

fn num(s: &str) -> u64 {
    s.trim().parse().unwrap_or(0)
}

/// A v2 (or v1 pids.max) limit: "max" is None.
fn limit(s: &str) -> Option<u64> {
    match s.trim() {
        "max" => None,
        n => Some(num(n)),
    }
}

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat, memory.oom_control,
/// memory.events).
pub fn flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), num(v)))
        })
        .collect()
}

fn pids_of(read: Reader) -> Option<Pids> {
    let current = read("pids.current")?;
    Some(Pids {
        current: num(&current),
        limit: read("pids.max").and_then(|s| limit(&s)),
    })
}

fn memory_entry(read: Reader, prefix: &str) -> Option<MemoryEntry> {
    let usage = read(&format!("{prefix}.usage_in_bytes"))?;
    let n = |suffix: &str| read(&format!("{prefix}.{suffix}")).map_or(0, |s| num(&s));
    Some(MemoryEntry {
        usage: num(&usage),
        limit: n("limit_in_bytes"),
        max: n("max_usage_in_bytes"),
        failcnt: n("failcnt"),
    })
}

fn blkio(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, value] = f[..] else {
                return None;
            };
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: num(major),
                minor: num(minor),
                op: op.to_string(),
                value: num(value),
            })
        })
        .collect()
}

/// Reads cgroup v1 statistics.
pub fn v1(read: Reader) -> V1Stats {
    let cpu = read("cpuacct.usage").map(|total| {
        let stat = flat_keyed(&read("cpuacct.stat").unwrap_or_default());
        let ns = |key: &str| stat.get(key).copied().unwrap_or(0) * 1_000_000_000 / CLOCK_TICKS;
        let throttling = flat_keyed(&read("cpu.stat").unwrap_or_default());
        let t = |key: &str| throttling.get(key).copied().unwrap_or(0);
        V1Cpu {
            total: num(&total),
            user: ns("user"),
            kernel: ns("system"),
            per_cpu: read("cpuacct.usage_percpu")
                .unwrap_or_default()
                .split_whitespace()
                .map(num)
                .collect(),
            periods: t("nr_periods"),
            throttled_periods: t("nr_throttled"),
            throttled_time: t("throttled_time"),
        }
    });
    let memory = memory_entry(read, "memory").map(|usage| V1Memory {
        usage,
        swap: memory_entry(read, "memory.memsw"),
        kernel: memory_entry(read, "memory.kmem"),
        kernel_tcp: memory_entry(read, "memory.kmem.tcp"),
        stat: flat_keyed(&read("memory.stat").unwrap_or_default()),
        oom_control: read("memory.oom_control").map(|s| flat_keyed(&s)),
    });
    let blkio = read("blkio.throttle.io_service_bytes_recursive").map(|bytes| V1Blkio {
        io_service_bytes_recursive: blkio(&bytes),
        io_serviced_recursive: blkio(
            &read("blkio.throttle.io_serviced_recursive").unwrap_or_default(),
        ),
    });
    V1Stats {
        pids: pids_of(read),
        cpu,
        memory,
        blkio,
    }
}

/// Reads cgroup v2 statistics.
pub fn v2(read: Reader) -> V2Stats {
    let procs: Vec<i32> = read("cgroup.procs")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let pids = pids_of(read).or_else(|| {
        read("cgroup.procs").map(|_| Pids {
            current: procs.len() as u64,
            limit: None,
        })
    });
    let memory = read("memory.current").map(|current| V2Memory {
        usage: num(&current),
        limit: read("memory.max").and_then(|s| limit(&s)),
        peak: read("memory.peak").map_or(0, |s| num(&s)),
        swap_usage: read("memory.swap.current").map_or(0, |s| num(&s)),
        swap_limit: read("memory.swap.max").and_then(|s| limit(&s)),
        stat: flat_keyed(&read("memory.stat").unwrap_or_default()),
        events: read("memory.events").map(|s| flat_keyed(&s)),
    });
    let io = read("io.stat").map(|io| {
        io.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (major, minor) = f.next()?.split_once(':')?;
                let kv: BTreeMap<&str, u64> = f
                    .filter_map(|p| p.split_once('='))
                    .map(|(k, v)| (k, num(v)))
                    .collect();
                let g = |k: &str| kv.get(k).copied().unwrap_or(0);
                Some(IoEntry {
                    major: num(major),
                    minor: num(minor),
                    rbytes: g("rbytes"),
                    wbytes: g("wbytes"),
                    rios: g("rios"),
                    wios: g("wios"),
                })
            })
            .collect()
    });
    V2Stats {
        procs,
        pids,
        cpu: read("cpu.stat").map(|s| flat_keyed(&s)),
        memory,
        io,
    }
}

/// Fixture cgroup files for the unit tests of these readers and of what is
/// built from them (the shim's Metrics, the CLI's stats JSON).
#[doc(hidden)]
pub mod fixtures {
    use std::collections::BTreeMap;

    /// A reader over fixed file contents, for tests of the readers and of what
    /// is built from them.
    pub fn fixture(files: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    /// The v1 files of the fixture tests (here and in the shim).
    pub const V1_FIXTURE: &[(&str, &str)] = &[
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
            "cache 100\nrss 200\ntotal_rss 300\ntotal_cache 400\npgfault 9\n",
        ),
        (
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        ),
        (
            "blkio.throttle.io_service_bytes_recursive",
            "8:0 Read 4096\n8:0 Write 8192\nTotal 12288\n",
        ),
    ];

    /// The v2 files of the fixture tests (here and in the shim).
    pub const V2_FIXTURE: &[(&str, &str)] = &[
        ("cgroup.procs", "10\n11\n12\n13\n"),
        ("pids.current", "4\n"),
        ("pids.max", "max\n"),
        (
            "cpu.stat",
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 3\nnr_throttled 1\nthrottled_usec 20\n",
        ),
        ("memory.current", "1048576\n"),
        ("memory.max", "67108864\n"),
        ("memory.peak", "2097152\n"),
        ("memory.swap.max", "max\n"),
        ("memory.stat", "anon 4096\nfile 8192\npgfault 7\n"),
        ("memory.events", "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n"),
        (
            "io.stat",
            "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
        ),
    ];
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn v1_fixture_tree() {
        let s = v1(&fixture(V1_FIXTURE));
        assert_eq!(
            s.pids,
            Some(Pids {
                current: 3,
                limit: Some(100)
            })
        );
        let cpu = s.cpu.unwrap();
        assert_eq!(cpu.total, 123456789);
        assert_eq!(cpu.per_cpu, vec![100000000, 23456789]);
        assert_eq!((cpu.user, cpu.kernel), (50_000_000, 70_000_000));
        assert_eq!(
            (cpu.periods, cpu.throttled_periods, cpu.throttled_time),
            (10, 2, 3000)
        );
        let mem = s.memory.unwrap();
        assert_eq!(
            mem.usage,
            MemoryEntry {
                usage: 4096000,
                limit: 67108864,
                max: 5000000,
                failcnt: 1
            }
        );
        assert!(mem.swap.is_none() && mem.kernel.is_none());
        assert_eq!(
            (mem.stat["cache"], mem.stat["rss"], mem.stat["total_rss"]),
            (100, 200, 300)
        );
        assert_eq!(mem.oom_control.unwrap()["oom_kill"], 2);
        let blkio = s.blkio.unwrap();
        // The "Total" line has no device.
        assert_eq!(blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(
            blkio.io_service_bytes_recursive[1],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Write".into(),
                value: 8192
            }
        );
        assert!(blkio.io_serviced_recursive.is_empty());
    }

    #[test]
    fn v2_fixture_tree() {
        let s = v2(&fixture(V2_FIXTURE));
        assert_eq!(s.procs, vec![10, 11, 12, 13]);
        assert_eq!(
            s.pids,
            Some(Pids {
                current: 4,
                limit: None
            })
        );
        assert_eq!(s.cpu_stat("usage_usec"), 1500);
        assert_eq!(s.cpu_stat("nr_throttled"), 1);
        assert_eq!(s.cpu_stat("burst_usec"), 0);
        let mem = s.memory.unwrap();
        assert_eq!(
            (mem.usage, mem.limit, mem.peak),
            (1048576, Some(67108864), 2097152)
        );
        assert_eq!((mem.swap_usage, mem.swap_limit), (0, None));
        assert_eq!(
            (mem.stat["anon"], mem.stat["file"], mem.stat["pgfault"]),
            (4096, 8192, 7)
        );
        assert_eq!(mem.events.unwrap()["oom_kill"], 1);
        let io = s.io.unwrap();
        assert_eq!(
            io,
            vec![IoEntry {
                major: 8,
                minor: 0,
                rbytes: 100,
                wbytes: 200,
                rios: 1,
                wios: 2
            }]
        );
    }

    /// A v2 cgroup without the pids controller (the unified hierarchy of a
    /// hybrid host): pids from cgroup.procs, like runc.
    #[test]
    fn v2_pids_without_controller() {
        let s = v2(&fixture(&[
            ("cgroup.procs", "7\n9\n"),
            ("cpu.stat", "usage_usec 5\n"),
        ]));
        assert_eq!(s.procs, vec![7, 9]);
        assert_eq!(
            s.pids,
            Some(Pids {
                current: 2,
                limit: None
            })
        );
        assert!(s.memory.is_none() && s.io.is_none());
        assert_eq!(s.cpu_stat("usage_usec"), 5);
    }

    #[test]
    fn missing_controllers_are_absent() {
        let s = v1(&fixture(&[]));
        assert_eq!(s, V1Stats::default());
        let s = v2(&fixture(&[]));
        assert_eq!(s, V2Stats::default());
    }

    #[test]
    fn readers_of_a_tree() {
        let d = tempfile::tempdir().unwrap();
        let (unified, memory) = (d.path().join("unified"), d.path().join("memory"));
        std::fs::create_dir_all(unified.join("default/c1")).unwrap();
        std::fs::create_dir_all(memory.join("default/c1")).unwrap();
        std::fs::write(unified.join("default/c1/cgroup.procs"), "42\n").unwrap();
        std::fs::write(unified.join("default/c1/cpu.stat"), "usage_usec 9\n").unwrap();
        std::fs::write(memory.join("default/c1/memory.usage_in_bytes"), "8192\n").unwrap();
        let s = v2(&dir_reader(&unified.join("default/c1")));
        assert_eq!((s.cpu_stat("usage_usec"), s.procs), (9, vec![42]));
        let hierarchies = vec![unified, memory];
        match read(Layout::V1, &hierarchies, Path::new("default/c1")) {
            Stats::V1(s) => assert_eq!(s.memory.unwrap().usage.usage, 8192),
            other => panic!("{other:?}"),
        }
    }
}
