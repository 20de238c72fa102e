//! `make critest`: runs critest (the CRI validation suite, built by
//! scripts/build-cri-tools.sh) against containerd 2.x's CRI plugin with the
//! `runc` handler (the reference) and the `lxcri` handler, each on a fresh
//! pod-network daemon with the local registry and every critest image that
//! can be made offline (`registry.rs`). Prints pass/fail/skip counts per
//! handler and the tests that fail with lxcri but pass with runc; exits 1
//! when there is any such test, when a run produced no report, or when a
//! run leaked.
//!
//! Usage: lxcri-critest [--out DIR] [--focus REGEX] [--skip REGEX]
//!                      [--handlers runc,lxcri]
//! Reports (critest output, ginkgo JSON, summary) go to DIR (default
//! `.cache/critest`).

use anyhow::{bail, Context, Result};
use lxcri_integration::cmd;
use lxcri_integration::registry::{self, ImageSet};
use lxcri_integration::{Harness, Runtime};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// critest, built by scripts/build-cri-tools.sh.
const CRITEST: &str = "/var/cache/lxcri/cri-tools-1.37.0/bin/critest";

/// Upper bound for one handler's run (the whole CI job has 90 minutes).
const RUN_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// Tests skipped for both handlers, with the reason.
const SKIPS: &[(&str, &str)] = &[];

struct Args {
    out: PathBuf,
    focus: Option<String>,
    skip: Option<String>,
    handlers: Vec<Runtime>,
    /// Exit 0 even when lxcri fails tests runc passes (still 1 on problems).
    report_only: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        out: PathBuf::from(".cache/critest"),
        focus: None,
        skip: None,
        handlers: vec![Runtime::Runc, Runtime::Lxcri],
        report_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--report-only" => args.report_only = true,
            "--out" => args.out = PathBuf::from(value()?),
            "--focus" => args.focus = Some(value()?),
            "--skip" => args.skip = Some(value()?),
            "--handlers" => {
                args.handlers = value()?
                    .split(',')
                    .map(|h| match h {
                        "runc" => Ok(Runtime::Runc),
                        "lxcri" => Ok(Runtime::Lxcri),
                        other => bail!("unknown handler {other:?}"),
                    })
                    .collect::<Result<_>>()?
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(args)
}

fn handler(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Runc => "runc",
        Runtime::Lxcri => "lxcri",
    }
}

/// One spec's outcome: state (passed, failed, skipped, pending, ...) and
/// the first line of its failure message.
#[derive(Debug, Clone)]
struct Outcome {
    state: String,
    message: String,
}

struct Run {
    outcomes: BTreeMap<String, Outcome>,
    duration: Duration,
    /// What went wrong besides failed specs (no report, leaks).
    problems: Vec<String>,
}

impl Run {
    fn count(&self, state: &str) -> usize {
        self.outcomes.values().filter(|o| o.state == state).count()
    }

    fn counts(&self) -> String {
        let other = self.outcomes.len()
            - self.count("passed")
            - self.count("failed")
            - self.count("skipped");
        format!(
            "{} passed, {} failed, {} skipped{} of {} specs in {}s",
            self.count("passed"),
            self.count("failed"),
            self.count("skipped"),
            if other > 0 {
                format!(", {other} other (pending/interrupted/timedout/panicked)")
            } else {
                String::new()
            },
            self.outcomes.len(),
            self.duration.as_secs()
        )
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    if !Path::new(CRITEST).exists() {
        bail!("{CRITEST} missing: run `make install` (scripts/build-cri-tools.sh)");
    }
    fs::create_dir_all(&args.out)?;
    let out = fs::canonicalize(&args.out)?;
    let started = Instant::now();
    let mut runs = BTreeMap::new();
    for &runtime in &args.handlers {
        let run = run_critest(runtime, &args, &out)?;
        println!("critest {}: {}", handler(runtime), run.counts());
        runs.insert(handler(runtime), run);
    }
    let (summary, no_problems, parity) = summarize(&runs);
    let summary = format!(
        "{summary}\ntotal wall time {}s; reports in {}\n",
        started.elapsed().as_secs(),
        out.display()
    );
    fs::write(out.join("summary.txt"), &summary)?;
    print!("{summary}");
    if !no_problems || (!parity && !args.report_only) {
        std::process::exit(1);
    }
    Ok(())
}

/// One handler: fresh daemon + registry, critest, leak check.
fn run_critest(runtime: Runtime, args: &Args, out: &Path) -> Result<Run> {
    let name = handler(runtime);
    eprintln!(
        "critest {name}: starting containerd 2.x with the {name} handler and the local registry"
    );
    let h = Harness::start_cri_net(runtime, ImageSet::Critest)?;
    let images = h.ctd.dir().join("critest-images.yaml");
    fs::write(&images, registry::critest_images_file())?;
    let json = out.join(format!("{name}.json"));
    let _ = fs::remove_file(&json);
    let log_path = out.join(format!("{name}.log"));
    let log = fs::File::create(&log_path)?;
    let sock = format!("unix://{}", h.ctd.address().display());
    let mut cmd = h.ctd.in_net(CRITEST);
    cmd.arg(format!("--runtime-endpoint={sock}"))
        .arg(format!("--image-endpoint={sock}"))
        .arg(format!("--runtime-handler={name}"))
        .arg(format!("--test-images-file={}", images.display()))
        .arg(format!("--ginkgo.json-report={}", json.display()))
        .arg("--ginkgo.no-color")
        .arg(format!("--ginkgo.timeout={}s", RUN_TIMEOUT.as_secs()));
    let mut skips: Vec<String> = SKIPS.iter().map(|(s, _)| s.to_string()).collect();
    skips.extend(args.skip.clone());
    if !skips.is_empty() {
        cmd.arg(format!("--ginkgo.skip={}", skips.join("|")));
    }
    if let Some(focus) = &args.focus {
        cmd.arg(format!("--ginkgo.focus={focus}"));
    }
    let shm_before = shm_ids();
    eprintln!("critest {name}: running, output in {}", log_path.display());
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("spawn critest")?;
    let status = cmd::wait_timeout(&mut child, RUN_TIMEOUT + Duration::from_secs(120));
    let duration = start.elapsed();
    let mut problems = Vec::new();
    if status.is_none() {
        problems.push(format!("critest {name} killed after {RUN_TIMEOUT:?}"));
    }
    let outcomes = match parse_report(&json) {
        Ok(o) => o,
        Err(e) => {
            problems.push(format!("critest {name}: no report: {e:#}"));
            BTreeMap::new()
        }
    };
    for id in shm_ids().difference(&shm_before) {
        // critest's HostIpc tests make a segment on the host with `ipcmk`
        // and never remove it.
        let _ = std::process::Command::new("ipcrm")
            .args(["-m", id])
            .status();
    }
    for mount in unmount_critest_mounts() {
        eprintln!("critest {name}: unmounted critest's leftover host mount {mount}");
    }
    if let Err(leak) = h.finish() {
        problems.push(format!("{name}: after critest: {leak:#}"));
    }
    Ok(Run {
        outcomes,
        duration,
        problems,
    })
}

/// The ginkgo JSON report: spec name → outcome (setup nodes left out).
fn parse_report(path: &Path) -> Result<BTreeMap<String, Outcome>> {
    let text = fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let suites: Value = serde_json::from_str(&text).context("ginkgo JSON report")?;
    let mut outcomes = BTreeMap::new();
    for suite in suites.as_array().context("report is no array")? {
        for spec in suite["SpecReports"].as_array().into_iter().flatten() {
            if spec["LeafNodeType"] != "It" {
                continue;
            }
            let mut parts: Vec<String> = spec["ContainerHierarchyTexts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(String::from))
                .collect();
            parts.push(
                spec["LeafNodeText"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            let message = failure_message(spec["Failure"]["Message"].as_str().unwrap_or_default());
            outcomes.insert(
                parts.join(" "),
                Outcome {
                    state: spec["State"].as_str().unwrap_or("unknown").to_string(),
                    message,
                },
            );
        }
    }
    Ok(outcomes)
}

/// The useful part of a ginkgo failure (or skip) message: from a gRPC
/// error's `desc = ` to the end of its line, else the first non-empty
/// line; at most 300 characters.
fn failure_message(full: &str) -> String {
    let line = match full.find("desc = ") {
        Some(at) => full[at + 7..].lines().next().unwrap_or_default(),
        None => full
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default(),
    };
    line.trim().chars().take(300).collect()
}

/// The cause a failure message names, for grouping: `<field>: not
/// supported by lxcri` becomes that field; otherwise the message without
/// ids (64-hex container/sandbox ids and quoted names).
fn cause(message: &str) -> String {
    if let Some(at) = message.find(": not supported by lxcri") {
        let field = message[..at].rsplit(": ").next().unwrap_or_default();
        return format!("{field}: not supported by lxcri");
    }
    message
        .split_whitespace()
        .map(|w| {
            let hex = w.trim_matches(|c: char| !c.is_ascii_hexdigit());
            if hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                "<id>"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The host's System V shared memory segment ids.
fn shm_ids() -> std::collections::BTreeSet<String> {
    fs::read_to_string("/proc/sysvipc/shm")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1).map(String::from))
        .collect()
}

/// critest's own host mounts (`/tmp/test<hex>/mnt`, made by its mount
/// propagation tests and left when such a test fails): unmounted before the
/// leak check, which is about the runtime's leftovers. Returns them.
fn unmount_critest_mounts() -> Vec<String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut left = Vec::new();
    for line in mountinfo.lines() {
        let Some(target) = line.split(' ').nth(4) else {
            continue;
        };
        if target.starts_with("/tmp/test") && target.ends_with("/mnt") {
            let _ = std::process::Command::new("umount").arg(target).status();
            left.push(target.to_string());
        }
    }
    left
}

/// The report text, whether the runs had no problems (reports, leaks), and
/// whether lxcri passes everything runc passes.
fn summarize(runs: &BTreeMap<&str, Run>) -> (String, bool, bool) {
    let mut text = String::from("\n==== critest summary ====\n");
    let mut ok = true;
    let mut parity = true;
    for (name, run) in runs {
        let _ = writeln!(text, "{name:>5}: {}", run.counts());
        for problem in &run.problems {
            ok = false;
            let _ = writeln!(text, "  PROBLEM: {problem}");
        }
    }
    if !SKIPS.is_empty() {
        let _ = writeln!(text, "\nskipped for both handlers:");
        for (pattern, reason) in SKIPS {
            let _ = writeln!(text, "  {pattern}: {reason}");
        }
    }
    let _ = writeln!(
        text,
        "\nimages critest wants that the local registry lacks:"
    );
    for (image, reason) in registry::CRITEST_MISSING {
        let _ = writeln!(text, "  {image}: {reason}");
    }
    if let Some(runc) = runs.get("runc") {
        let failed: Vec<_> = runc
            .outcomes
            .iter()
            .filter(|(_, o)| o.state != "passed" && o.state != "skipped")
            .collect();
        let _ = writeln!(
            text,
            "\nfailing with runc too ({}; the test environment's limits):",
            failed.len()
        );
        for (spec, o) in failed {
            let _ = writeln!(text, "  [{}] {spec}\n      {}", o.state, o.message);
        }
    }
    if let (Some(runc), Some(lxcri)) = (runs.get("runc"), runs.get("lxcri")) {
        let lxcri_only: Vec<_> = lxcri
            .outcomes
            .iter()
            .filter(|(spec, o)| {
                o.state != "passed"
                    && runc
                        .outcomes
                        .get(*spec)
                        .is_some_and(|r| r.state == "passed")
            })
            .collect();
        let _ = writeln!(
            text,
            "\nfailing with lxcri, passing with runc ({}):",
            lxcri_only.len()
        );
        let mut by_cause: BTreeMap<String, Vec<&String>> = BTreeMap::new();
        for (spec, o) in &lxcri_only {
            by_cause
                .entry(format!("[{}] {}", o.state, cause(&o.message)))
                .or_default()
                .push(spec);
        }
        for (cause, specs) in by_cause {
            let _ = writeln!(text, "  {cause} ({}):", specs.len());
            for spec in specs {
                let _ = writeln!(text, "      {spec}");
            }
        }
        if !lxcri_only.is_empty() {
            parity = false;
        }
    }
    (text, ok, parity)
}
