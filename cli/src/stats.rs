//! `events --stats`: runc's stats event data (a subset: cpu, memory, pids)
//! built from the container's cgroup statistics, which runtime-core reads
//! (`runtime_core::stats`) on a v1 or a v2 host.

use runtime_core::cgroup::Layout;
use runtime_core::stats::{self, Stats, V1Stats, V2Stats};
use runtime_core::ContainerState;
use serde_json::{json, Value};

pub fn read(st: &ContainerState) -> Value {
    match stats::read(Layout::detect(), &st.hierarchies, &st.cgroup) {
        Stats::V1(s) => v1_json(&s),
        Stats::V2(s) => v2_json(&s),
    }
}

/// runc's pids stats: an unlimited pids.max is 0.
fn pids_json(p: Option<&stats::Pids>) -> Value {
    let (current, limit) = p.map_or((0, 0), |p| (p.current, p.limit.unwrap_or(0)));
    json!({ "current": current, "limit": limit })
}

fn v1_json(s: &V1Stats) -> Value {
    let default = stats::V1Memory::default();
    let mem = s.memory.as_ref().unwrap_or(&default);
    json!({
        "cpu": { "usage": { "total": s.cpu.as_ref().map_or(0, |c| c.total) } },
        "memory": {
            "usage": {
                "usage": mem.usage.usage,
                "max": mem.usage.max,
                "limit": mem.usage.limit,
                "failcnt": mem.usage.failcnt,
            },
            "cache": mem.stat.get("total_cache").copied().unwrap_or(0),
            "raw": mem.stat,
        },
        "pids": pids_json(s.pids.as_ref()),
    })
}

/// runc reads a v2 "max" memory limit as u64::MAX.
fn v2_json(s: &V2Stats) -> Value {
    let default = stats::V2Memory::default();
    let mem = s.memory.as_ref().unwrap_or(&default);
    json!({
        "cpu": { "usage": { "total": s.cpu_stat("usage_usec") * 1000 } },
        "memory": {
            "usage": {
                "usage": mem.usage,
                "max": mem.peak,
                "limit": mem.limit.unwrap_or(u64::MAX),
                "failcnt": 0,
            },
            "cache": mem.stat.get("file").copied().unwrap_or(0),
            "raw": mem.stat,
        },
        "pids": pids_json(s.pids.as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime_core::stats::fixtures::{fixture, V1_FIXTURE, V2_FIXTURE};

    #[test]
    fn v1_fixture_tree() {
        let v = v1_json(&stats::v1(&fixture(V1_FIXTURE)));
        assert_eq!(v["cpu"]["usage"]["total"], 123456789);
        assert_eq!(v["memory"]["usage"]["usage"], 4096000);
        assert_eq!(v["memory"]["usage"]["limit"], 67108864);
        assert_eq!(v["memory"]["usage"]["max"], 5000000);
        assert_eq!(v["memory"]["cache"], 400);
        assert_eq!(v["memory"]["raw"]["rss"], 200);
        assert_eq!(v["pids"], json!({"current": 3, "limit": 100}));
    }

    #[test]
    fn v2_fixture_tree() {
        let v = v2_json(&stats::v2(&fixture(V2_FIXTURE)));
        assert_eq!(v["cpu"]["usage"]["total"], 1_500_000);
        assert_eq!(v["memory"]["usage"]["usage"], 1048576);
        assert_eq!(v["memory"]["usage"]["max"], 2097152);
        assert_eq!(v["memory"]["usage"]["limit"], 67108864);
        assert_eq!(v["memory"]["cache"], 8192);
        assert_eq!(v["pids"], json!({"current": 4, "limit": 0}));
        let v = v2_json(&stats::v2(&fixture(&[
            ("memory.current", "1\n"),
            ("memory.max", "max\n"),
        ])));
        assert_eq!(v["memory"]["usage"]["limit"], u64::MAX);
    }
}
