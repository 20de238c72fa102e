//! `linux.netDevices` (runtime spec 1.3): host network interfaces moved into the
//! container's new network namespace, optionally renamed.
//!
//! liblxc's `phys` network type does exactly that: at start it moves the host
//! interface `lxc.net.N.link` into the new namespace under `lxc.net.N.name` and
//! brings it up (`lxc.net.N.flags = up`, as runc does after the move). When the
//! container stops, the LXC monitor moves it back to the host under its old name;
//! without a monitor (the CLI ends it at create) the kernel returns a physical
//! device to the host when the namespace goes and deletes a virtual one (runc
//! leaves both to the kernel). Index 0 is the namespace's `empty` entry (see
//! `namespaces`), so the devices take 1, 2, ... in the order of their host names.
//!
//! The kernel drops a device's addresses when it changes namespace; like runc,
//! its permanent addresses of global scope are read from the host at create
//! and set again inside (`lxc.net.N.ipv4.address`, `ipv6.address`).

use std::net::IpAddr;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::SpecError;
use crate::lxcconf::LxcConfig;

/// A valid interface name (the kernel's `dev_valid_name`): 1 to 15 bytes, not
/// "." or "..", no '/', ':' or whitespace.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace)
}

/// How the addresses of a host interface are found ([`crate::netaddr::global_addresses`]).
pub type AddressLookup<'a> = &'a dyn Fn(&str) -> std::io::Result<Vec<(IpAddr, u8)>>;

/// Emit the `lxc.net.N` entries of `linux.netDevices`.
pub fn translate(
    spec: &Spec,
    addresses: AddressLookup,
    lxc: &mut LxcConfig,
) -> Result<(), SpecError> {
    let Some(l) = spec.linux().as_ref() else {
        return Ok(());
    };
    let Some(devices) = l.net_devices().as_ref().filter(|d| !d.is_empty()) else {
        return Ok(());
    };
    let new_net = l.namespaces().iter().flatten().any(|n| {
        n.typ() == LinuxNamespaceType::Network
            && n.path().as_ref().is_none_or(|p| p.as_os_str().is_empty())
    });
    if !new_net {
        return Err(SpecError::new(
            "linux.netDevices",
            "moving network devices needs a new network namespace (linux.namespaces \
             type network without a path)",
        ));
    }
    let mut names: Vec<&String> = devices.keys().collect();
    names.sort();
    let mut targets: Vec<&str> = Vec::new();
    for (i, host) in names.into_iter().enumerate() {
        let field = format!("linux.netDevices.{host}");
        if !valid_name(host) {
            return Err(SpecError::new(
                field,
                format!("{host:?} is not a valid network device name"),
            ));
        }
        let name = devices[host]
            .name()
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(host);
        if !valid_name(name) {
            return Err(SpecError::new(
                format!("{field}.name"),
                format!("{name:?} is not a valid network device name"),
            ));
        }
        if targets.contains(&name) {
            return Err(SpecError::new(
                format!("{field}.name"),
                format!("two devices are named {name:?} in the container"),
            ));
        }
        targets.push(name);
        let n = i + 1;
        lxc.push(&field, format!("lxc.net.{n}.type"), "phys")?;
        lxc.push(&field, format!("lxc.net.{n}.link"), host)?;
        lxc.push(&field, format!("lxc.net.{n}.name"), name)?;
        lxc.push(&field, format!("lxc.net.{n}.flags"), "up")?;
        let addrs = addresses(host).map_err(|e| {
            SpecError::new(&field, format!("no such network device on the host: {e}"))
        })?;
        for (ip, prefix) in addrs {
            let key = if ip.is_ipv4() { "ipv4" } else { "ipv6" };
            lxc.push(
                &field,
                format!("lxc.net.{n}.{key}.address"),
                format!("{ip}/{prefix}"),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(linux: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.3.0", "root": {"path": "rootfs"}, "linux": linux
        }))
        .unwrap()
    }

    fn fake_host(name: &str) -> std::io::Result<Vec<(IpAddr, u8)>> {
        match name {
            "lxcritest0" => Ok(vec![
                ("192.0.2.10".parse().unwrap(), 24),
                ("2001:db8::10".parse().unwrap(), 64),
            ]),
            "lxcritest1" | "eth1" | "eth2" => Ok(vec![]),
            _ => Err(std::io::ErrorKind::NotFound.into()),
        }
    }

    #[test]
    fn golden_net_devices() {
        let s = spec(serde_json::json!({
            "namespaces": [{"type": "network"}],
            "netDevices": {"lxcritest1": {}, "lxcritest0": {"name": "ctr0"}}
        }));
        let mut lxc = LxcConfig::new();
        translate(&s, &fake_host, &mut lxc).unwrap();
        assert_eq!(
            lxc.render(),
            "lxc.net.1.type = phys\nlxc.net.1.link = lxcritest0\nlxc.net.1.name = ctr0\n\
             lxc.net.1.flags = up\nlxc.net.1.ipv4.address = 192.0.2.10/24\n\
             lxc.net.1.ipv6.address = 2001:db8::10/64\nlxc.net.2.type = phys\nlxc.net.2.link = lxcritest1\n\
             lxc.net.2.name = lxcritest1\nlxc.net.2.flags = up\n"
        );
    }

    #[test]
    fn bad_net_devices_name_the_field() {
        let cases = [
            (
                serde_json::json!({"netDevices": {"eth1": {}}}),
                "linux.netDevices",
            ),
            (
                serde_json::json!({"namespaces": [{"type": "network", "path": "/proc/1/ns/net"}],
                                   "netDevices": {"eth1": {}}}),
                "linux.netDevices",
            ),
            (
                serde_json::json!({"namespaces": [{"type": "network"}],
                                   "netDevices": {"a/b": {}}}),
                "linux.netDevices.a/b",
            ),
            (
                serde_json::json!({"namespaces": [{"type": "network"}],
                                   "netDevices": {"eth1": {"name": "a-very-long-name0"}}}),
                "linux.netDevices.eth1.name",
            ),
            (
                serde_json::json!({"namespaces": [{"type": "network"}],
                                   "netDevices": {"eth1": {"name": "x"}, "eth2": {"name": "x"}}}),
                "linux.netDevices.eth2.name",
            ),
            (
                serde_json::json!({"namespaces": [{"type": "network"}],
                                   "netDevices": {"eth1": {"name": "a\nb"}}}),
                "linux.netDevices.eth1.name",
            ),
            (
                serde_json::json!({"namespaces": [{"type": "network"}],
                                   "netDevices": {"nohost0": {}}}),
                "linux.netDevices.nohost0",
            ),
        ];
        for (linux, field) in cases {
            let mut lxc = LxcConfig::new();
            let e = translate(&spec(linux), &fake_host, &mut lxc).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }
}
