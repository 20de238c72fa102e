#!/usr/bin/env python3
"""Convert Docker's default seccomp profile (moby/profiles/seccomp default.json,
Docker's own format with archMap/includes/excludes) to the OCI linux.seccomp
section Docker generates for a container with the default capabilities on
x86_64, like moby's setupSeccomp. Usage: docker-seccomp-to-oci.py default.json"""
import json, os, sys

CAPS = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
        "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}
ARCH = "amd64"

def kernel():
    rel = os.uname().release.split("-")[0].split(".")
    return tuple(int(x) for x in rel[:2])

def main():
    p = json.load(open(sys.argv[1]))
    out = {"defaultAction": p["defaultAction"]}
    if "defaultErrnoRet" in p:
        out["defaultErrnoRet"] = p["defaultErrnoRet"]
    for m in p.get("archMap", []):
        if m["architecture"] == "SCMP_ARCH_X86_64":
            out["architectures"] = [m["architecture"]] + m.get("subArchitectures", [])
    calls = []
    for c in p["syscalls"]:
        inc, exc = c.get("includes", {}), c.get("excludes", {})
        if ARCH in exc.get("arches", []) or any(x in CAPS for x in exc.get("caps", [])):
            continue
        if inc.get("arches") and ARCH not in inc["arches"]:
            continue
        if inc.get("caps") and not all(x in CAPS for x in inc["caps"]):
            continue
        mk = inc.get("minKernel")
        if mk and kernel() < tuple(int(x) for x in mk.split(".")[:2]):
            continue
        s = {"names": c.get("names") or [c["name"]], "action": c["action"]}
        for k in ("errnoRet", "args"):
            if c.get(k) is not None:
                s[k] = c[k]
        calls.append(s)
    out["syscalls"] = calls
    json.dump(out, sys.stdout, indent=1)
    print()

main()
