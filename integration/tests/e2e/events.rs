//! Issue point 5: `ctr events` shows create, start, exit, delete in order.

use crate::matrix;
use crate::util::{expect, with_events};
use anyhow::{ensure, Context, Result};
use lxcri_integration::Harness;
use serde_json::Value;

matrix!(task_events_in_order);

fn task_events_in_order(h: &mut Harness) -> Result<()> {
    let (run, text) = with_events(h, |h| {
        h.run_rootfs("events", &[], &["/bin/sh", "-c", "exit 5"])
    })?;
    expect(&run?, 5, "")?;
    check_events(&text, "lxe2e-events")
}

/// One `ctr events` line: "DATE TIME +0000 UTC NAMESPACE TOPIC JSON".
fn parse(line: &str) -> Option<(String, Value)> {
    let mut parts = line.splitn(7, ' ');
    let topic = parts.nth(5)?.to_string();
    let json = serde_json::from_str(parts.next()?).ok()?;
    Some((topic, json))
}

fn check_events(text: &str, id: &str) -> Result<()> {
    let tasks: Vec<(String, Value)> = text
        .lines()
        .filter_map(parse)
        .filter(|(topic, ev)| topic.starts_with("/tasks/") && ev["container_id"] == id)
        .collect();
    let topics: Vec<&str> = tasks.iter().map(|(t, _)| t.as_str()).collect();
    let want = [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exit",
        "/tasks/delete",
    ];
    ensure!(
        topics == want,
        "task events {topics:?}, want {want:?}:\n{text}"
    );
    let pid = tasks[0].1["pid"].as_i64().context("create event pid")?;
    ensure!(pid > 0, "create event pid {pid}");
    for (topic, ev) in &tasks[1..] {
        ensure!(
            ev["pid"] == pid,
            "{topic} pid {} != create pid {pid}",
            ev["pid"]
        );
    }
    for (topic, ev) in &tasks[2..] {
        ensure!(ev["exit_status"] == 5, "{topic} exit_status: {ev}");
    }
    Ok(())
}
