//! `make bench`: `ctr run --rm` wall time of /bin/true, the shim's memory
//! with one running container, and the exec round trip (`ctr task exec`
//! of /bin/true into that container), lxcri vs runc, on containerd 2.x.
//!
//! Usage: lxcri-bench [RUNS] [lxcri|runc ...] (default: 10 runs, both
//! runtimes). Needs root and, for lxcri, the installed shim.

use anyhow::{ensure, Context, Result};
use lxcri_integration::harness::wait_status;
use lxcri_integration::{procfs, Harness, Runtime, Version};
use std::fs;
use std::time::{Duration, Instant};

/// Memory of a set of processes, in kB.
#[derive(Default)]
struct Memory {
    rss: u64,
    pss: u64,
    count: usize,
}

struct Row {
    runtime: Runtime,
    median: Duration,
    min: Duration,
    max: Duration,
    shim: Memory,
    helpers: Memory,
    exec: Times,
}

/// Sorted wall times of repeated runs.
struct Times {
    median: Duration,
    min: Duration,
    max: Duration,
}

impl Times {
    fn of(mut times: Vec<Duration>) -> Self {
        times.sort();
        Times {
            median: times[times.len() / 2],
            min: times[0],
            max: times[times.len() - 1],
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = match args.first() {
        Some(n) => n.parse().context("RUNS must be a number")?,
        None => 10,
    };
    let mut rows = Vec::new();
    for runtime in runtimes(args.get(1..).unwrap_or_default())? {
        rows.push(measure(runtime, runs).with_context(|| runtime.name())?);
    }
    print_table(&rows, runs);
    Ok(())
}

fn runtimes(names: &[String]) -> Result<Vec<Runtime>> {
    if names.is_empty() {
        return Ok(vec![Runtime::Lxcri, Runtime::Runc]);
    }
    names
        .iter()
        .map(|n| match n.as_str() {
            "lxcri" => Ok(Runtime::Lxcri),
            "runc" => Ok(Runtime::Runc),
            _ => anyhow::bail!("unknown runtime {n:?}: lxcri or runc"),
        })
        .collect()
}

fn measure(runtime: Runtime, runs: usize) -> Result<Row> {
    let mut h = Harness::start_with(Version::V2, runtime, "")?;
    let run = Times::of(time_runs(&mut h, runs)?);
    let (shim, helpers, exec) = with_running_container(&mut h, runs)?;
    h.finish()?;
    Ok(Row {
        runtime,
        median: run.median,
        min: run.min,
        max: run.max,
        shim,
        helpers,
        exec,
    })
}

/// One warm-up run, then `runs` timed `ctr run --rm ... /bin/true`.
fn time_runs(h: &mut Harness, runs: usize) -> Result<Vec<Duration>> {
    h.run_rootfs("warmup", &[], &["/bin/true"])?.ok()?;
    let mut times = Vec::new();
    for i in 0..runs {
        let start = Instant::now();
        let out = h.run_rootfs(&format!("bench-{i}"), &[], &["/bin/true"])?;
        times.push(start.elapsed());
        ensure!(out.code == 0, "run {i}: {out}");
    }
    Ok(times)
}

/// Shim memory and other runtime helpers' memory with one container
/// running, then the exec round trip into it.
fn with_running_container(h: &mut Harness, runs: usize) -> Result<(Memory, Memory, Times)> {
    let id = h.id("bench-rss");
    let rootfs = h.rootfs();
    let args = [
        "run",
        "-d",
        "--runtime",
        h.runtime.name(),
        "--rootfs",
        &rootfs,
        &id,
        "/bin/sleep",
        "1000",
    ];
    h.ctr_ok(&args)?;
    let pid = wait_status(h, &id, "RUNNING")?.pid;
    std::thread::sleep(Duration::from_millis(500));
    let shims = h.ctd.shims();
    let shim_pids: Vec<i32> = shims.iter().map(|p| p.pid).collect();
    let helpers: Vec<i32> = procfs::processes()
        .iter()
        .filter(|p| is_helper(p) && p.pid != pid && !shim_pids.contains(&p.pid))
        .map(|p| p.pid)
        .collect();
    let memory = (sum_memory(&shim_pids), sum_memory(&helpers));
    let exec = time_execs(h, &id, runs);
    h.ctr_ok(&["task", "kill", "-s", "SIGKILL", &id])?;
    wait_status(h, &id, "STOPPED")?;
    h.ctr_ok(&["task", "delete", &id])?;
    h.ctr_ok(&["container", "rm", &id])?;
    Ok((memory.0, memory.1, Times::of(exec?)))
}

/// One warm-up exec, then `runs` timed `ctr task exec --exec-id eN ID
/// /bin/true` (each waits for the exec's exit and its delete).
fn time_execs(h: &Harness, id: &str, runs: usize) -> Result<Vec<Duration>> {
    h.ctr_ok(&["task", "exec", "--exec-id", "warmup", id, "/bin/true"])?;
    let mut times = Vec::new();
    for i in 0..runs {
        let exec_id = format!("e{i}");
        let start = Instant::now();
        let out = h.ctr(&["task", "exec", "--exec-id", &exec_id, id, "/bin/true"])?;
        times.push(start.elapsed());
        ensure!(out.code == 0, "exec {i}: {out}");
    }
    Ok(times)
}

/// The per-container LXC monitor / lxcri helper processes.
fn is_helper(p: &procfs::Process) -> bool {
    p.cmdline.starts_with("[lxc monitor]") || p.cmdline.contains("lxcri-start")
}

fn sum_memory(pids: &[i32]) -> Memory {
    let mut m = Memory::default();
    for pid in pids {
        m.rss += status_kb(*pid, "VmRSS:").unwrap_or(0);
        m.pss += rollup_kb(*pid, "Pss:").unwrap_or(0);
        m.count += 1;
    }
    m
}

fn status_kb(pid: i32, key: &str) -> Option<u64> {
    field_kb(
        &fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        key,
    )
}

fn rollup_kb(pid: i32, key: &str) -> Option<u64> {
    field_kb(
        &fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?,
        key,
    )
}

fn field_kb(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn print_table(rows: &[Row], runs: usize) {
    println!("containerd 2.x, `ctr run --rm --rootfs ... /bin/true` x{runs}; memory with one running container (kB)");
    println!(
        "| runtime | median ms | min ms | max ms | shim procs | shim VmRSS | shim Pss | helper procs | helper VmRSS | helper Pss |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.runtime.name(),
            ms(r.median),
            ms(r.min),
            ms(r.max),
            r.shim.count,
            r.shim.rss,
            r.shim.pss,
            r.helpers.count,
            r.helpers.rss,
            r.helpers.pss
        );
    }
    println!();
    println!("containerd 2.x, `ctr task exec --exec-id eN <id> /bin/true` x{runs} into a running container");
    println!("| runtime | exec median ms | exec min ms | exec max ms |");
    println!("|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} |",
            r.runtime.name(),
            ms(r.exec.median),
            ms(r.exec.min),
            ms(r.exec.max)
        );
    }
}
