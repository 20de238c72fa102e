//! Issue 3: nerdctl's bridge networks with lxcri (and runc as the
//! reference), against containerd 2.x in a private network namespace
//! (`Harness::start_net`): nerdctl runs in that namespace with Debian's CNI
//! plugins (bridge, host-local, portmap, firewall, tuning), its CNI conf
//! dir and data root in the test's temp dir, and libcni's state
//! (/var/lib/cni) bound to the temp dir too; the host's network and CNI
//! state are never touched.
//!
//! nerdctl's createRuntime hook (`nerdctl internal oci-hook createRuntime`,
//! run by the runtime in its own namespaces) adds the container's network
//! namespace (/proc/<init pid>/ns/net) to the network; its postStop hook
//! removes it. Every scenario ends with the harness's leak check, which for
//! a private-network daemon also fails on veths, libcni result caches and
//! host-local IPAM reservations left behind.

use crate::nerdctl::{inspect, listed, load, run_on, wait_until, with_detached_on};
use crate::util::expect;
use anyhow::{bail, ensure, Context, Result};
use lxcri_integration::{leaks, Harness, Output};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

/// Like `matrix_v2!`, against a private-network containerd 2.x.
macro_rules! matrix_net {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use lxcri_integration::{run_net_scenario, Runtime};

            #[test]
            fn runc_containerd_2() {
                run_net_scenario(Runtime::Runc, super::$scenario);
            }

            #[test]
            fn lxcri_containerd_2() {
                run_net_scenario(Runtime::Lxcri, super::$scenario);
            }
        }
    )*};
}

matrix_net!(
    nerdctl_bridge_run_rm,
    nerdctl_bridge_two_containers,
    nerdctl_bridge_publish,
    nerdctl_network_create_rm,
);

/// nerdctl's default network.
const BRIDGE: &str = "bridge";

/// The port busybox httpd listens on in the containers.
const HTTP_PORT: u16 = 8080;

/// The host port `-p` publishes [`HTTP_PORT`] on.
const HOST_PORT: u16 = 18080;

/// A network's IPv4 subnet and gateway (`nerdctl network inspect`).
struct Net {
    subnet: Ipv4Addr,
    prefix: u32,
    gateway: Ipv4Addr,
}

impl Net {
    fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - self.prefix).unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.subnet) & mask
    }

    /// `ip` is a container address of this network: in the subnet, not the
    /// gateway, not the network or broadcast address.
    fn check_container_ip(&self, ip: Ipv4Addr) -> Result<()> {
        let host_bits = u32::from(ip) & !u32::MAX.checked_shl(32 - self.prefix).unwrap_or(0);
        ensure!(
            self.contains(ip) && ip != self.gateway && host_bits != 0,
            "{ip} is not a container address of {}/{} (gateway {})",
            self.subnet,
            self.prefix,
            self.gateway
        );
        Ok(())
    }
}

fn network(h: &Harness, name: &str) -> Result<Net> {
    let out = h.nerdctl_ok(&["network", "inspect", name])?;
    let v: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).with_context(|| format!("inspect json: {out}"))?;
    let config = &v[0]["IPAM"]["Config"][0];
    let (subnet, gateway) = (config["Subnet"].as_str(), config["Gateway"].as_str());
    let (Some(subnet), Some(gateway)) = (subnet, gateway) else {
        bail!("no IPv4 subnet/gateway in network inspect {name}: {out}");
    };
    let (addr, prefix) = subnet
        .split_once('/')
        .with_context(|| format!("subnet {subnet:?}"))?;
    Ok(Net {
        subnet: addr.parse().with_context(|| format!("subnet {subnet:?}"))?,
        prefix: prefix
            .parse()
            .with_context(|| format!("subnet {subnet:?}"))?,
        gateway: gateway
            .parse()
            .with_context(|| format!("gateway {gateway:?}"))?,
    })
}

/// The address in `ip -4 -o addr show dev eth0` output ("... inet A/N ...").
fn eth0_address(out: &str) -> Result<Ipv4Addr> {
    let line = out
        .lines()
        .find(|l| l.contains(" eth0 ") && l.contains(" inet "))
        .with_context(|| format!("no IPv4 address on eth0 in {out:?}"))?;
    let cidr = line
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or_default();
    let addr = cidr.split('/').next().unwrap_or_default();
    addr.parse().with_context(|| format!("address in {line:?}"))
}

/// The container's address on its network (`nerdctl inspect`).
fn container_ip(h: &Harness, name: &str) -> Result<Ipv4Addr> {
    let ip = inspect(h, name, "{{.NetworkSettings.IPAddress}}")?;
    ip.parse()
        .with_context(|| format!("{name}: IPAddress {ip:?}"))
}

/// A busybox httpd on [`HTTP_PORT`] serving `body` at /.
fn httpd(body: &str) -> Vec<String> {
    let script = format!(
        "mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p {HTTP_PORT} -h /www"
    );
    vec!["/bin/sh".into(), "-c".into(), script]
}

/// The host-local reservation of `ip` on nerdctl network `net`: a file named
/// by the address in the (private) CNI state dir.
fn reservation(h: &Harness, net: &str, ip: Ipv4Addr) -> std::path::PathBuf {
    h.ctd
        .cni_state_dir()
        .join("networks")
        .join(net)
        .join(ip.to_string())
}

/// `--rm` on the default bridge: the container has eth0 with an address of
/// the network and reaches the gateway; afterwards it is gone, and so are
/// its veth and its address reservation.
fn nerdctl_bridge_run_rm(h: &mut Harness) -> Result<()> {
    // nerdctl writes the default network's conflist when a container first
    // uses it, so the container finds its gateway in its routes.
    let script = "ip -4 -o addr show dev eth0; \
                  gw=$(ip route | awk '$1 == \"default\" {print $3}'); echo gateway $gw; \
                  ping -c1 -W5 $gw >/dev/null && echo ping-ok; exit 3";
    let (name, out) = run_on(h, BRIDGE, "br", &["--rm"], &["/bin/sh", "-c", script])?;
    ensure!(out.code == 3, "exit code: {out}");
    let net = network(h, BRIDGE)?;
    let ip = eth0_address(&out.stdout)?;
    net.check_container_ip(ip)?;
    ensure!(
        out.stdout
            .contains(&format!("gateway {}\nping-ok\n", net.gateway)),
        "gateway {} not the default route or unreachable: {out}",
        net.gateway
    );
    ensure!(!listed(h, &name)?, "--rm container {name} still listed");
    no_veths(h)?;
    let reserved = reservation(h, BRIDGE, ip);
    ensure!(!reserved.exists(), "{} left", reserved.display());
    Ok(())
}

/// The container veths in the daemon's namespace are gone (10 s).
fn no_veths(h: &Harness) -> Result<()> {
    wait_until(|| Ok(leaks::veths(&h.ctd)?.is_empty())).with_context(|| {
        format!(
            "veths left in containerd's netns: {:?}",
            leaks::veths(&h.ctd).unwrap_or_default()
        )
    })
}

/// Two containers on the default bridge: a detached busybox httpd and a
/// client that pings it and fetches its page by its address. The server's
/// address is reserved in the private CNI state dir (not the host's) while
/// it runs.
fn nerdctl_bridge_two_containers(h: &mut Harness) -> Result<()> {
    let server = httpd("hello-from-server");
    let server: Vec<&str> = server.iter().map(String::as_str).collect();
    with_detached_on(h, BRIDGE, "srv", &[], &server, |h, srv| {
        let net = network(h, BRIDGE)?;
        let ip = container_ip(h, srv)?;
        net.check_container_ip(ip)?;
        let reserved = reservation(h, BRIDGE, ip);
        ensure!(
            reserved.exists(),
            "no IPAM reservation {}",
            reserved.display()
        );
        let host_state = Path::new("/var/lib/cni/networks")
            .join(BRIDGE)
            .join(ip.to_string());
        ensure!(
            !host_state.exists(),
            "IPAM state on the host: {}",
            host_state.display()
        );
        // busybox-static's wget crashes in getaddrinfo (static glibc); nc
        // speaks HTTP/1.0 well enough.
        let script = format!(
            "ping -c1 -W5 {ip} >/dev/null && echo ping-ok; \
             printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} {HTTP_PORT}"
        );
        let (client, out) = run_on(h, BRIDGE, "cli", &["--rm"], &["/bin/sh", "-c", &script])?;
        ensure!(
            out.code == 0
                && out.stdout.starts_with("ping-ok\nHTTP/1.1 200 OK")
                && out.stdout.ends_with("\nhello-from-server\n"),
            "client: {out}"
        );
        ensure!(!listed(h, &client)?, "--rm client still listed");
        Ok(())
    })?;
    no_veths(h)
}

/// `-p HOST_PORT:8080`: the page is served on the published port of the
/// daemon's namespace (the "host" of the containers: its bridge address and
/// 127.0.0.1), through portmap's DNAT; after `rm -f` the port is closed
/// again and portmap's rules are gone.
fn nerdctl_bridge_publish(h: &mut Harness) -> Result<()> {
    let server = httpd("published");
    let server: Vec<&str> = server.iter().map(String::as_str).collect();
    let publish = format!("{HOST_PORT}:{HTTP_PORT}");
    let mut gateway_url = String::new();
    with_detached_on(h, BRIDGE, "pub", &["-p", &publish], &server, |h, srv| {
        gateway_url = format!("http://{}:{HOST_PORT}/", network(h, BRIDGE)?.gateway);
        let port = h.nerdctl_ok(&["port", srv])?;
        ensure!(
            port.stdout
                .contains(&format!("{HTTP_PORT}/tcp -> 0.0.0.0:{HOST_PORT}")),
            "nerdctl port: {port}"
        );
        let out = fetch(h, &gateway_url)?;
        expect(&out, 0, "published\n").context(gateway_url.clone())?;
        // Loopback too (portmap's SNAT with route_localnet on the bridge).
        let local = format!("http://127.0.0.1:{HOST_PORT}/");
        let out = fetch(h, &local)?;
        expect(&out, 0, "published\n").context(local)?;
        Ok(())
    })?;
    let out = fetch(h, &gateway_url)?;
    ensure!(out.code != 0, "port still answers after rm: {out}");
    let nat = iptables_nat(h)?;
    ensure!(
        !nat.contains(&format!("--dport {HOST_PORT}")),
        "portmap rules left:\n{nat}"
    );
    no_veths(h)
}

/// wget in the daemon's network namespace (3 s).
fn fetch(h: &Harness, url: &str) -> Result<Output> {
    let mut cmd = h.ctd.in_net("wget");
    cmd.args(["-q", "-T", "3", "-t", "1", "-O", "-", url]);
    lxcri_integration::cmd::run(&mut cmd, None, Duration::from_secs(20))
}

/// `iptables -t nat -S` in the daemon's network namespace.
fn iptables_nat(h: &Harness) -> Result<String> {
    let mut cmd = h.ctd.in_net("iptables");
    cmd.args(["-t", "nat", "-S"]);
    let out = lxcri_integration::cmd::run(&mut cmd, None, Duration::from_secs(20))?;
    ensure!(out.code == 0, "iptables -t nat -S: {out}");
    Ok(out.stdout)
}

/// A user-defined network: `network create --subnet`, a container on it
/// gets an address of that subnet, then `network rm` removes it (its
/// conflist is gone from nerdctl's CNI conf dir).
fn nerdctl_network_create_rm(h: &mut Harness) -> Result<()> {
    const NET: &str = "lxe2e-net";
    load(h)?;
    h.nerdctl_ok(&["network", "create", "--subnet", "10.99.7.0/24", NET])?;
    let result = (|| {
        let net = network(h, NET)?;
        ensure!(
            net.subnet == Ipv4Addr::new(10, 99, 7, 0) && net.prefix == 24,
            "subnet {}/{}",
            net.subnet,
            net.prefix
        );
        let script = format!(
            "ip -4 -o addr show dev eth0; ping -c1 -W5 {gw} >/dev/null && echo ping-ok",
            gw = net.gateway
        );
        let (_, out) = run_on(h, NET, "custom", &["--rm"], &["/bin/sh", "-c", &script])?;
        ensure!(out.code == 0, "run: {out}");
        net.check_container_ip(eth0_address(&out.stdout)?)?;
        ensure!(out.stdout.contains("ping-ok"), "gateway unreachable: {out}");
        Ok(())
    })();
    let rm = h.nerdctl_ok(&["network", "rm", NET]).map(|_| ());
    result.and(rm)?;
    let ls = h.nerdctl_ok(&["network", "ls", "--format", "{{.Name}}"])?;
    ensure!(
        !ls.stdout.lines().any(|l| l.trim() == NET),
        "{NET} still listed: {ls}"
    );
    let confs = std::fs::read_dir(h.ctd.nerdctl_dir().join("cni/net.d"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(NET))
        .collect::<Vec<_>>();
    ensure!(confs.is_empty(), "conflists left: {confs:?}");
    no_veths(h)
}
