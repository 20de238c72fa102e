//! The IP addresses of a host network interface, read over rtnetlink
//! (`RTM_GETADDR` dump): `linux.netDevices` carries a device's permanent,
//! global addresses into the container, as runc does (the kernel drops them
//! when the device changes namespace).

use std::io;
use std::net::IpAddr;

use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const IFA_F_PERMANENT: u32 = 0x80;
const RT_SCOPE_UNIVERSE: u8 = 0;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_ne_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// One `RTM_NEWADDR` message body (ifaddrmsg and its attributes): the address
/// and prefix length when it belongs to `index` and is permanent and global.
fn parse_addr(body: &[u8], index: u32) -> Option<(IpAddr, u8)> {
    if body.len() < 8 {
        return None;
    }
    let (family, prefix, flags8, scope) = (body[0], body[1], body[2], body[3]);
    if u32_at(body, 4) != index || scope != RT_SCOPE_UNIVERSE {
        return None;
    }
    let mut flags = u32::from(flags8);
    let (mut address, mut local) = (None, None);
    let mut o = 8;
    while o + 4 <= body.len() {
        let len = usize::from(u16_at(body, o));
        if len < 4 || o + len > body.len() {
            break;
        }
        let data = &body[o + 4..o + len];
        match u16_at(body, o + 2) {
            IFA_ADDRESS => address = Some(data),
            IFA_LOCAL => local = Some(data),
            IFA_FLAGS if data.len() == 4 => flags = u32_at(data, 0),
            _ => {}
        }
        o += align4(len);
    }
    if flags & IFA_F_PERMANENT == 0 {
        return None;
    }
    // IPv4: IFA_LOCAL is the interface's address (IFA_ADDRESS the peer's on a
    // point-to-point link).
    let ip: IpAddr = match (i32::from(family), local.or(address)?) {
        (libc::AF_INET, a) => <[u8; 4]>::try_from(a).ok()?.into(),
        (libc::AF_INET6, _) => <[u8; 16]>::try_from(address?).ok()?.into(),
        _ => return None,
    };
    Some((ip, prefix))
}

/// The permanent addresses of global scope of host interface `name`.
pub fn global_addresses(name: &str) -> io::Result<Vec<(IpAddr, u8)>> {
    let index: u32 = std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))?
        .trim()
        .parse()
        .map_err(io::Error::other)?;
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &NetlinkAddr::new(0, 0),
    )?;
    // nlmsghdr (len, type, flags, seq, pid) + ifaddrmsg (family AF_UNSPEC).
    let mut req = Vec::with_capacity(NLMSG_HDRLEN + 8);
    req.extend_from_slice(&((NLMSG_HDRLEN + 8) as u32).to_ne_bytes());
    req.extend_from_slice(&RTM_GETADDR.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(&[0u8; 8]);
    send(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &req,
        MsgFlags::empty(),
    )?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = recv(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &mut buf,
            MsgFlags::empty(),
        )?;
        if n == 0 {
            return Err(io::Error::other("rtnetlink closed the dump"));
        }
        let mut o = 0;
        while o + NLMSG_HDRLEN <= n {
            let len = u32_at(&buf, o) as usize;
            if len < NLMSG_HDRLEN || o + len > n {
                return Err(io::Error::other("malformed rtnetlink message"));
            }
            match u16_at(&buf, o + 4) {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let errno = i32::from_ne_bytes(
                        buf[o + NLMSG_HDRLEN..o + NLMSG_HDRLEN + 4]
                            .try_into()
                            .map_err(io::Error::other)?,
                    );
                    return Err(io::Error::from_raw_os_error(-errno));
                }
                RTM_NEWADDR => out.extend(parse_addr(&buf[o + NLMSG_HDRLEN..o + len], index)),
                _ => {}
            }
            o += align4(len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut a = ((4 + data.len()) as u16).to_ne_bytes().to_vec();
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(data);
        a.resize(align4(a.len()), 0);
        a
    }

    fn msg(family: u8, prefix: u8, scope: u8, index: u32, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut m = vec![family, prefix, 0, scope];
        m.extend_from_slice(&index.to_ne_bytes());
        for a in attrs {
            m.extend_from_slice(a);
        }
        m
    }

    #[test]
    fn permanent_global_addresses_only() {
        let perm = attr(IFA_FLAGS, &IFA_F_PERMANENT.to_ne_bytes());
        let v4 = msg(
            libc::AF_INET as u8,
            24,
            0,
            7,
            &[
                attr(IFA_ADDRESS, &[192, 0, 2, 1]),
                attr(IFA_LOCAL, &[192, 0, 2, 10]),
                perm.clone(),
            ],
        );
        assert_eq!(
            parse_addr(&v4, 7),
            Some(("192.0.2.10".parse().unwrap(), 24))
        );
        assert_eq!(parse_addr(&v4, 8), None);
        let v6: IpAddr = "2001:db8::10".parse().unwrap();
        let IpAddr::V6(v6a) = v6 else { unreachable!() };
        let m = msg(
            libc::AF_INET6 as u8,
            64,
            0,
            7,
            &[attr(IFA_ADDRESS, &v6a.octets()), perm.clone()],
        );
        assert_eq!(parse_addr(&m, 7), Some((v6, 64)));
        // Link scope, or not permanent (dynamic): skipped, as runc does.
        let m = msg(
            libc::AF_INET6 as u8,
            64,
            253,
            7,
            &[attr(IFA_ADDRESS, &v6a.octets()), perm],
        );
        assert_eq!(parse_addr(&m, 7), None);
        let m = msg(
            libc::AF_INET as u8,
            24,
            0,
            7,
            &[
                attr(IFA_LOCAL, &[192, 0, 2, 10]),
                attr(IFA_FLAGS, &0u32.to_ne_bytes()),
            ],
        );
        assert_eq!(parse_addr(&m, 7), None);
    }

    #[test]
    fn loopback_has_no_global_address() {
        // 127.0.0.1 and ::1 are of host scope.
        assert_eq!(global_addresses("lo").unwrap(), vec![]);
        assert!(global_addresses("nonexistent-if0").is_err());
    }
}
