//! `events --stats`: runc's stats event data (a subset: cpu, memory, pids), read
//! from the container's cgroup files on a v1 or a v2 host.

use runtime_core::cgroup;
use runtime_core::ContainerState;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn file(st: &ContainerState, name: &str) -> Option<String> {
    let p = cgroup::file(&st.hierarchies, &st.cgroup, name)?;
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

fn num(st: &ContainerState, name: &str) -> u64 {
    file(st, name).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// `max` (v2) or a huge v1 value: runc reports the number as is; "max" → u64::MAX.
fn limit(st: &ContainerState, name: &str) -> u64 {
    match file(st, name).as_deref() {
        Some("max") => u64::MAX,
        Some(s) => s.parse().unwrap_or(0),
        None => 0,
    }
}

fn flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

pub fn read(st: &ContainerState) -> Value {
    let v1 = cgroup::file(&st.hierarchies, &st.cgroup, "memory.usage_in_bytes").is_some();
    let raw = file(st, "memory.stat")
        .map(|t| flat_keyed(&t))
        .unwrap_or_default();
    let (cpu_total, memory) = if v1 {
        (
            num(st, "cpuacct.usage"),
            json!({
                "usage": {
                    "usage": num(st, "memory.usage_in_bytes"),
                    "max": num(st, "memory.max_usage_in_bytes"),
                    "limit": num(st, "memory.limit_in_bytes"),
                    "failcnt": num(st, "memory.failcnt"),
                },
                "cache": raw.get("total_cache").copied().unwrap_or(0),
                "raw": raw,
            }),
        )
    } else {
        let cpu = file(st, "cpu.stat")
            .map(|t| flat_keyed(&t))
            .unwrap_or_default();
        (
            cpu.get("usage_usec").copied().unwrap_or(0) * 1000,
            json!({
                "usage": {
                    "usage": num(st, "memory.current"),
                    "max": num(st, "memory.peak"),
                    "limit": limit(st, "memory.max"),
                    "failcnt": 0,
                },
                "cache": raw.get("file").copied().unwrap_or(0),
                "raw": raw,
            }),
        )
    };
    json!({
        "cpu": { "usage": { "total": cpu_total } },
        "memory": memory,
        "pids": { "current": num(st, "pids.current"), "limit": limit(st, "pids.max") },
    })
}
