//! `linux.seccomp` → a compiled BPF filter that `lxcri-init` (and the attach
//! helper, for execs) loads right before the exec, as runc does.
//!
//! Not liblxc's `lxc.seccomp.profile`: its text format cannot express every OCI
//! profile (per-rule errno with `defaultErrnoRet`, masked-equal operands, flags),
//! and liblxc loads the filter before our init runs, which would then have to
//! survive it. The profile is compiled here with libseccomp (the same library
//! runc uses), so a bad profile fails at create with the field named.
//!
//! Semantics follow runc: `errnoRet` defaults to EPERM (never 0); rules whose
//! action equals the default action are dropped (libseccomp refuses them);
//! several conditions on different arguments are ANDed in one rule, several on the
//! same argument become one rule each (libseccomp cannot AND those); for
//! `SCMP_CMP_MASKED_EQ`, `value` is the mask and `valueTwo` the datum; syscall
//! names the host's libseccomp does not know are skipped with a warning.
//!
//! SCMP_ACT_NOTIFY (seccomp agents): the filter is loaded with
//! `SECCOMP_FILTER_FLAG_NEW_LISTENER` and the runtime sends the listener to the
//! agent at `listenerPath` (see `crate::seccomp_agent`). As in runc: NOTIFY needs a
//! listenerPath, is refused as the default action and for `write` (and here for
//! sendmsg/recvmsg, which the hand-over uses); a listenerPath without NOTIFY rules
//! is ignored.

use std::io::{Read, Seek};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use lxcri_libexec::proto::{
    SeccompProgram, SockFilter, SECCOMP_FILTER_FLAG_NEW_LISTENER,
    SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};

use crate::error::SpecError;

const FIELD: &str = "linux.seccomp";

fn action(field: &str, a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, SpecError> {
    let errno = errno.unwrap_or(libc::EPERM as u32);
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(
            i32::try_from(errno)
                .ok()
                .filter(|e| *e <= 0xffff)
                .ok_or_else(|| SpecError::new(field, format!("errno {errno} out of range")))?,
        ),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(
            u16::try_from(errno)
                .map_err(|_| SpecError::new(field, format!("trace value {errno} out of range")))?,
        ),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

fn arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
    }
}

fn flag(f: LinuxSeccompFilterFlag) -> u32 {
    match f {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC as u32,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG as u32,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
            libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32
        }
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
            SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
        }
    }
}

/// Syscalls that may not be SCMP_ACT_NOTIFY: the process hands its listener fd
/// to the runtime under the filter (sendmsg, then recvmsg for the answer), before
/// any agent has it. runc refuses `write` for the same reason (its hand-over
/// writes); it is refused here too, so that profiles stay portable.
const NOTIFY_REFUSED: &[&str] = &["write", "sendmsg", "recvmsg"];

fn condition(field: &str, a: &LinuxSeccompArg) -> Result<ScmpArgCompare, SpecError> {
    if a.index() > 5 {
        return Err(SpecError::new(
            field,
            format!("argument index {} out of range (0-5)", a.index()),
        ));
    }
    let op = match a.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // The OCI (and runc) operand order: value is the mask, valueTwo the datum.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return Ok(ScmpArgCompare::new(
                a.index() as u32,
                ScmpCompareOp::MaskedEqual(a.value()),
                a.value_two().unwrap_or(0),
            ))
        }
    };
    Ok(ScmpArgCompare::new(a.index() as u32, op, a.value()))
}

fn lib_err(field: &str, what: &str, e: libseccomp::error::SeccompError) -> SpecError {
    SpecError::new(field, format!("{what}: {e}"))
}

/// Compile the profile.
pub fn translate(s: &LinuxSeccomp) -> Result<SeccompProgram, SpecError> {
    if s.default_action() == LinuxSeccompAction::ScmpActNotify {
        // runc: the default would notify the hand-over's own syscalls.
        return Err(SpecError::new(
            format!("{FIELD}.defaultAction"),
            "SCMP_ACT_NOTIFY cannot be used as default action",
        ));
    }
    let default = action(
        &format!("{FIELD}.defaultAction"),
        s.default_action(),
        s.default_errno_ret(),
    )?;
    let mut ctx =
        ScmpFilterContext::new(default).map_err(|e| lib_err(FIELD, "create filter", e))?;
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        let field = format!("{FIELD}.architectures[{i}]");
        match ctx.add_arch(arch(*a)) {
            Ok(_) => {}
            Err(e) => return Err(lib_err(&field, &format!("add {a}"), e)),
        }
    }
    let mut flags = 0;
    let mut killable_flag = None;
    for (i, f) in s.flags().iter().flatten().enumerate() {
        if *f == LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv {
            killable_flag = Some(format!("{FIELD}.flags[{i}]"));
        }
        flags |= flag(*f);
    }
    let mut notify = None;
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("{FIELD}.syscalls[{i}]");
        let act = action(&format!("{field}.action"), sc.action(), sc.errno_ret())?;
        if act == default {
            continue;
        }
        if act == ScmpAction::Notify {
            if let Some(name) = sc
                .names()
                .iter()
                .find(|n| NOTIFY_REFUSED.contains(&n.as_str()))
            {
                return Err(SpecError::new(
                    format!("{field}.names"),
                    format!("SCMP_ACT_NOTIFY cannot be used for the {name} syscall"),
                ));
            }
            notify.get_or_insert(field.clone());
        }
        let conds = sc
            .args()
            .iter()
            .flatten()
            .enumerate()
            .map(|(j, a)| condition(&format!("{field}.args[{j}]"), a))
            .collect::<Result<Vec<_>, _>>()?;
        let mut indexes: Vec<usize> = sc.args().iter().flatten().map(|a| a.index()).collect();
        indexes.sort_unstable();
        let distinct = indexes.windows(2).all(|w| w[0] != w[1]);
        for name in sc.names() {
            let nr = match ScmpSyscall::from_name(name) {
                Ok(nr) => nr,
                Err(_) => {
                    log::warn!(
                        "seccomp: syscall {name:?} unknown to libseccomp, skipped ({field})"
                    );
                    continue;
                }
            };
            let r = if conds.is_empty() {
                ctx.add_rule(act, nr).map(drop)
            } else if distinct {
                ctx.add_rule_conditional(act, nr, &conds).map(drop)
            } else {
                conds
                    .iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, nr, &[*c]).map(drop))
            };
            r.map_err(|e| lib_err(&field, &format!("add rule for {name}"), e))?;
        }
    }
    let listener_path = match (&notify, s.listener_path()) {
        (Some(_), Some(p)) => {
            let p = p.to_str().ok_or_else(|| {
                SpecError::new(format!("{FIELD}.listenerPath"), "not valid UTF-8")
            })?;
            if p.is_empty() {
                return Err(SpecError::new(format!("{FIELD}.listenerPath"), "empty"));
            }
            flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
            Some(p.to_string())
        }
        (Some(field), None) => {
            return Err(SpecError::new(
                format!("{field}.action"),
                "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath (the seccomp agent's socket)",
            ))
        }
        // runc ignores a listenerPath without SCMP_ACT_NOTIFY rules: no fd to send.
        (None, _) => None,
    };
    if let (Some(field), None) = (killable_flag, &notify) {
        return Err(SpecError::new(
            field,
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs SCMP_ACT_NOTIFY rules",
        ));
    }
    let instructions =
        export(&ctx).map_err(|e| SpecError::new(FIELD, format!("export BPF: {e}")))?;
    Ok(SeccompProgram {
        instructions,
        flags,
        listener_metadata: listener_path.as_ref().and(s.listener_metadata().clone()),
        listener_path,
    })
}

fn export(ctx: &ScmpFilterContext) -> std::io::Result<Vec<SockFilter>> {
    let fd =
        nix::sys::memfd::memfd_create(c"lxcri-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)?;
    let mut f = std::fs::File::from(fd);
    ctx.export_bpf(&f).map_err(std::io::Error::other)?;
    f.rewind()?;
    let mut raw = Vec::new();
    f.read_to_end(&mut raw)?;
    if raw.len() % 8 != 0 {
        return Err(std::io::Error::other(
            "BPF program is not a whole number of instructions",
        ));
    }
    Ok(raw
        .chunks_exact(8)
        .map(|c| {
            SockFilter(
                u16::from_ne_bytes([c[0], c[1]]),
                c[2],
                c[3],
                u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
        .collect())
}

#[cfg(test)]
pub(crate) mod bpf {
    //! A classic-BPF interpreter for seccomp programs, to test what a compiled
    //! filter decides for a syscall.
    use lxcri_libexec::proto::SockFilter;

    pub const AUDIT_ARCH_X86_64: u32 = 0xc000003e;
    pub const AUDIT_ARCH_I386: u32 = 0x40000003;

    /// struct seccomp_data as 16 u32 words (little endian host).
    pub fn run(prog: &[SockFilter], nr: i32, arch: u32, args: [u64; 6]) -> u32 {
        let mut data = vec![nr as u32, arch, 0, 0];
        for a in args {
            data.push(a as u32);
            data.push((a >> 32) as u32);
        }
        let (mut acc, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
        let mut pc = 0usize;
        loop {
            let SockFilter(code, jt, jf, k) = prog[pc];
            pc += 1;
            let class = code & 0x07;
            match class {
                0x00 => {
                    // LD
                    acc = match code & 0xe0 {
                        0x20 => data[(k / 4) as usize], // ABS
                        0x00 => k,                      // IMM
                        0x60 => mem[k as usize],        // MEM
                        m => panic!("ld mode {m:#x}"),
                    }
                }
                0x01 => {
                    x = match code & 0xe0 {
                        0x00 => k,
                        0x60 => mem[k as usize],
                        m => panic!("ldx mode {m:#x}"),
                    }
                }
                0x02 => mem[k as usize] = acc,
                0x03 => mem[k as usize] = x,
                0x04 => {
                    let src = if code & 0x08 != 0 { x } else { k };
                    acc = match code & 0xf0 {
                        0x00 => acc.wrapping_add(src),
                        0x10 => acc.wrapping_sub(src),
                        0x50 => acc & src,
                        0x40 => acc | src,
                        0xa0 => acc ^ src,
                        0x80 => acc.wrapping_neg(),
                        op => panic!("alu {op:#x}"),
                    }
                }
                0x05 => {
                    let src = if code & 0x08 != 0 { x } else { k };
                    let cond = match code & 0xf0 {
                        0x00 => {
                            pc += k as usize;
                            continue;
                        }
                        0x10 => acc == src,
                        0x20 => acc > src,
                        0x30 => acc >= src,
                        0x40 => acc & src != 0,
                        op => panic!("jmp {op:#x}"),
                    };
                    pc += if cond { jt as usize } else { jf as usize };
                }
                0x06 => return k,
                0x07 => {
                    if code & 0xf8 == 0 {
                        x = acc
                    } else {
                        acc = x
                    }
                }
                _ => unreachable!(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bpf::*;
    use super::*;

    const ALLOW: u32 = 0x7fff0000;
    const ERRNO: u32 = 0x00050000;
    const KILL_PROCESS: u32 = 0x80000000;
    const LOG: u32 = 0x7ffc0000;

    fn compile(v: serde_json::Value) -> Result<SeccompProgram, SpecError> {
        translate(&serde_json::from_value(v).unwrap())
    }

    fn nr(name: &str) -> i32 {
        ScmpSyscall::from_name(name).unwrap().into()
    }

    fn decide(p: &SeccompProgram, name: &str, args: [u64; 6]) -> u32 {
        run(&p.instructions, nr(name), AUDIT_ARCH_X86_64, args)
    }

    #[test]
    fn errno_defaults_and_per_rule_errno() {
        let p = compile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["read", "write", "no_such_syscall_xyz"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["sync"], "action": "SCMP_ACT_LOG"},
                {"names": ["reboot"], "action": "SCMP_ACT_KILL_PROCESS"}
            ]
        }))
        .unwrap();
        assert_eq!(decide(&p, "read", [0; 6]), ALLOW);
        assert_eq!(decide(&p, "mkdir", [0; 6]), ERRNO | libc::EPERM as u32);
        assert_eq!(decide(&p, "rmdir", [0; 6]), ERRNO | 13);
        assert_eq!(decide(&p, "getpid", [0; 6]), ERRNO | 38);
        assert_eq!(decide(&p, "chroot", [0; 6]), ERRNO | 38);
        assert_eq!(decide(&p, "sync", [0; 6]), LOG);
        assert_eq!(decide(&p, "reboot", [0; 6]), KILL_PROCESS);
        // i386 `write` is 4: the x86 sub-architecture is in the filter.
        assert_eq!(run(&p.instructions, 4, AUDIT_ARCH_I386, [0; 6]), ALLOW);
        assert_eq!(p.flags, 0);
    }

    #[test]
    fn default_errno_without_ret_is_eperm() {
        let p = compile(serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO"})).unwrap();
        assert_eq!(decide(&p, "read", [0; 6]), ERRNO | libc::EPERM as u32);
    }

    #[test]
    fn unknown_architecture_kills() {
        let p = compile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"]
        }))
        .unwrap();
        let r = run(&p.instructions, 4, AUDIT_ARCH_I386, [0; 6]);
        assert_ne!(r, ALLOW);
    }

    #[test]
    fn conditions_and_masked_eq_operand_order() {
        let p = compile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                // clone without namespace flags, Docker's rule: mask 0x7E020000, datum 0.
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                // AND over different arguments.
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                          {"index": 1, "value": 2, "op": "SCMP_CMP_GE"}]},
                // Same argument twice: one rule each (OR), like runc.
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
            ]
        }))
        .unwrap();
        let eperm = ERRNO | libc::EPERM as u32;
        assert_eq!(decide(&p, "clone", [0x11, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(decide(&p, "clone", [0x10000000, 0, 0, 0, 0, 0]), eperm); // CLONE_NEWUSER
        assert_eq!(decide(&p, "socket", [1, 2, 0, 0, 0, 0]), ALLOW);
        assert_eq!(decide(&p, "socket", [1, 1, 0, 0, 0, 0]), eperm);
        assert_eq!(decide(&p, "socket", [2, 5, 0, 0, 0, 0]), eperm);
        assert_eq!(decide(&p, "personality", [8, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(decide(&p, "personality", [0, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(decide(&p, "personality", [1, 0, 0, 0, 0, 0]), eperm);
    }

    #[test]
    fn flags() {
        let p = compile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
        }))
        .unwrap();
        assert_eq!(p.flags, 2 | 4);
    }

    #[test]
    fn refused_fields_are_named() {
        let e = compile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]
        }))
        .unwrap_err();
        assert_eq!(e.field, "linux.seccomp.syscalls[0].args[0]");
    }

    const USER_NOTIF: u32 = 0x7fc00000;

    #[test]
    fn notify_rules_ask_for_a_listener() {
        let p = compile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "listenerMetadata": "name=test",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"},
                {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"}
            ]
        }))
        .unwrap();
        assert_eq!(decide(&p, "mkdir", [0; 6]), USER_NOTIF);
        assert_eq!(decide(&p, "mkdirat", [0; 6]), USER_NOTIF);
        assert_eq!(decide(&p, "rmdir", [0; 6]), ERRNO | libc::EPERM as u32);
        assert_eq!(decide(&p, "read", [0; 6]), ALLOW);
        // NEW_LISTENER (8) | WAIT_KILLABLE_RECV (32).
        assert_eq!(p.flags, 8 | 32);
        assert!(p.has_listener());
        assert_eq!(p.listener_path.as_deref(), Some("/run/agent.sock"));
        assert_eq!(p.listener_metadata.as_deref(), Some("name=test"));
    }

    #[test]
    fn listener_path_without_notify_is_ignored_like_runc() {
        let p = compile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
            "listenerMetadata": "x"
        }))
        .unwrap();
        assert_eq!(p.flags, 0);
        assert!(!p.has_listener());
        assert_eq!(p.listener_path, None);
        assert_eq!(p.listener_metadata, None);
    }

    #[test]
    fn notify_errors_name_the_field() {
        let e = compile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"},
                         {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }))
        .unwrap_err();
        assert_eq!(e.field, "linux.seccomp.syscalls[1].action");
        assert!(e.to_string().contains("listenerPath"), "{e}");
        let e = compile(serde_json::json!({
            "defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/agent.sock"
        }))
        .unwrap_err();
        assert_eq!(e.field, "linux.seccomp.defaultAction");
        for name in ["write", "sendmsg", "recvmsg"] {
            let e = compile(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                "syscalls": [{"names": ["mkdir", name], "action": "SCMP_ACT_NOTIFY"}]
            }))
            .unwrap_err();
            assert_eq!(e.field, "linux.seccomp.syscalls[0].names");
            assert!(e.to_string().contains(name), "{e}");
        }
        let e = compile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
        }))
        .unwrap_err();
        assert_eq!(e.field, "linux.seccomp.flags[1]");
    }

    #[test]
    fn docker_default_profile_compiles() {
        let p = compile(
            serde_json::from_str(include_str!("testdata/seccomp-docker-default.json")).unwrap(),
        )
        .unwrap();
        let eperm = ERRNO | libc::EPERM as u32;
        assert_eq!(decide(&p, "mkdir", [0; 6]), ALLOW);
        assert_eq!(decide(&p, "kexec_load", [0; 6]), eperm);
        assert_eq!(decide(&p, "unshare", [0; 6]), eperm);
        assert_eq!(decide(&p, "clone", [0x11, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(decide(&p, "clone", [0x10000000, 0, 0, 0, 0, 0]), eperm);
        assert!(p.instructions.len() > 100);
    }
}
