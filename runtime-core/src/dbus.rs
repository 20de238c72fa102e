//! A minimal, blocking D-Bus client: exactly what the systemd cgroup driver
//! needs (SASL EXTERNAL, method calls with the few argument types systemd's
//! unit properties use, replies, errors and the `JobRemoved` signal).
//!
//! Why not a crate: `zbus` (the pure-Rust client) runs an async executor even
//! behind its blocking API and brings some forty crates; the runtime makes at
//! most three calls per container from short-lived CLI processes and the
//! shim's blocking tasks. This client is one socket, no threads, and only the
//! little-endian wire format (what every systemd on x86-64 and arm64 speaks).

// `usize::is_multiple_of` needs Rust 1.87; the workspace's rust-version is 1.85.
#![allow(clippy::manual_is_multiple_of)]

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// An error of the D-Bus connection or a D-Bus error reply.
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    #[error("D-Bus {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("D-Bus: {0}")]
    Protocol(String),
    /// An error reply: its name (e.g. `org.freedesktop.systemd1.NoSuchUnit`) and message.
    #[error("{name}: {message}")]
    Reply { name: String, message: String },
    #[error("D-Bus: no reply within {0:?}")]
    Timeout(Duration),
}

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> DbusError {
    move |source| DbusError::Io { op, source }
}

/// A value of the types the runtime sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    U32(u32),
    U64(u64),
    Str(String),
    /// `as`
    StrArray(Vec<String>),
    /// `au`
    U32Array(Vec<u32>),
    /// `ay`
    Bytes(Vec<u8>),
    /// `a(ss)`
    StrPairs(Vec<(String, String)>),
    /// `a(sv)`: named properties.
    Props(Vec<(String, Value)>),
    /// `a(sa(sv))`: auxiliary units (always empty here).
    AuxUnits(Vec<(String, Vec<(String, Value)>)>),
}

impl Value {
    pub fn signature(&self) -> &'static str {
        match self {
            Value::Bool(_) => "b",
            Value::U32(_) => "u",
            Value::U64(_) => "t",
            Value::Str(_) => "s",
            Value::StrArray(_) => "as",
            Value::U32Array(_) => "au",
            Value::Bytes(_) => "ay",
            Value::StrPairs(_) => "a(ss)",
            Value::Props(_) => "a(sv)",
            Value::AuxUnits(_) => "a(sa(sv))",
        }
    }
}

/// The marshalling buffer of one message (offsets from the message start,
/// which is what D-Bus aligns to).
#[derive(Default)]
struct Enc {
    buf: Vec<u8>,
}

impl Enc {
    fn align(&mut self, n: usize) {
        while self.buf.len() % n != 0 {
            self.buf.push(0);
        }
    }
    fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.align(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    fn sig(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    /// An array whose elements align to `elem_align`: the length excludes the
    /// padding before the first element.
    fn array(&mut self, elem_align: usize, body: impl FnOnce(&mut Enc)) {
        self.align(4);
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.align(elem_align);
        let start = self.buf.len();
        body(self);
        let len = (self.buf.len() - start) as u32;
        self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    }
    fn value(&mut self, v: &Value) {
        match v {
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::U32(u) => self.u32(*u),
            Value::U64(u) => self.u64(*u),
            Value::Str(s) => self.str(s),
            Value::StrArray(a) => self.array(4, |e| a.iter().for_each(|s| e.str(s))),
            Value::U32Array(a) => self.array(4, |e| a.iter().for_each(|u| e.u32(*u))),
            Value::Bytes(b) => self.array(1, |e| e.buf.extend_from_slice(b)),
            Value::StrPairs(p) => self.array(8, |e| {
                for (a, b) in p {
                    e.align(8);
                    e.str(a);
                    e.str(b);
                }
            }),
            Value::Props(p) => self.props(p),
            Value::AuxUnits(units) => self.array(8, |e| {
                for (name, props) in units {
                    e.align(8);
                    e.str(name);
                    e.props(props);
                }
            }),
        }
    }
    fn props(&mut self, p: &[(String, Value)]) {
        self.array(8, |e| {
            for (name, v) in p {
                e.align(8);
                e.str(name);
                e.sig(v.signature());
                e.value(v);
            }
        })
    }
}

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;

/// Encode a method call (little-endian, protocol version 1).
fn encode_call(
    serial: u32,
    dest: Option<&str>,
    path: &str,
    iface: &str,
    member: &str,
    args: &[Value],
) -> Vec<u8> {
    let mut body = Enc::default();
    for a in args {
        body.value(a);
    }
    let sig: String = args.iter().map(Value::signature).collect();
    let mut m = Enc::default();
    m.buf.extend_from_slice(&[b'l', METHOD_CALL, 0, 1]);
    m.u32(body.buf.len() as u32);
    m.u32(serial);
    m.array(8, |e| {
        let field = |e: &mut Enc, code: u8, sig: &str, v: &dyn Fn(&mut Enc)| {
            e.align(8);
            e.buf.push(code);
            e.sig(sig);
            v(e);
        };
        field(e, 1, "o", &|e| e.str(path));
        field(e, 2, "s", &|e| e.str(iface));
        field(e, 3, "s", &|e| e.str(member));
        if let Some(d) = dest {
            field(e, 6, "s", &|e| e.str(d));
        }
        if !sig.is_empty() {
            field(e, 8, "g", &|e| e.sig(&sig));
        }
    });
    m.align(8);
    m.buf.extend_from_slice(&body.buf);
    m.buf
}

/// A received message: what the runtime looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub kind: u8,
    pub serial: u32,
    pub reply_serial: Option<u32>,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub signature: String,
    pub body: Vec<u8>,
}

struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    fn err(what: &str) -> DbusError {
        DbusError::Protocol(format!("malformed message ({what})"))
    }
    fn align(&mut self, n: usize) {
        self.pos = self.pos.div_ceil(n) * n;
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DbusError> {
        let s = self
            .buf
            .get(self.pos..self.pos + n)
            .ok_or_else(|| Self::err("short"))?;
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DbusError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, DbusError> {
        self.align(4);
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn str(&mut self) -> Result<String, DbusError> {
        let n = self.u32()? as usize;
        let s = self.take(n + 1)?;
        String::from_utf8(s[..n].to_vec()).map_err(|_| Self::err("utf-8"))
    }
    fn sig(&mut self) -> Result<String, DbusError> {
        let n = self.u8()? as usize;
        let s = self.take(n + 1)?;
        String::from_utf8(s[..n].to_vec()).map_err(|_| Self::err("utf-8"))
    }
}

/// Parse one whole message (header and body) in `buf`.
fn decode(buf: &[u8]) -> Result<Message, DbusError> {
    if buf.first() != Some(&b'l') {
        return Err(DbusError::Protocol(
            "only little-endian messages are supported".into(),
        ));
    }
    let mut d = Dec { buf, pos: 1 };
    let kind = d.u8()?;
    d.u8()?;
    d.u8()?;
    let body_len = d.u32()? as usize;
    let serial = d.u32()?;
    let fields_len = d.u32()? as usize;
    let end = d.pos + fields_len;
    let mut m = Message {
        kind,
        serial,
        ..Default::default()
    };
    while d.pos < end {
        d.align(8);
        let code = d.u8()?;
        let sig = d.sig()?;
        match sig.as_str() {
            "s" | "o" => {
                let s = d.str()?;
                match code {
                    1 => m.path = Some(s),
                    2 => m.interface = Some(s),
                    3 => m.member = Some(s),
                    4 => m.error_name = Some(s),
                    _ => {}
                }
            }
            "g" => {
                let s = d.sig()?;
                if code == 8 {
                    m.signature = s;
                }
            }
            "u" => {
                let u = d.u32()?;
                if code == 5 {
                    m.reply_serial = Some(u);
                }
            }
            other => return Err(DbusError::Protocol(format!("header field type {other}"))),
        }
    }
    d.pos = end;
    d.align(8);
    m.body = d.take(body_len)?.to_vec();
    Ok(m)
}

impl Message {
    /// The leading string-like (`s`, `o`) and `u` arguments of the body, as text,
    /// up to the first argument of another type.
    pub fn args(&self) -> Vec<String> {
        let mut d = Dec {
            buf: &self.body,
            pos: 0,
        };
        let mut out = Vec::new();
        for c in self.signature.chars() {
            let v = match c {
                's' | 'o' => d.str(),
                'u' => d.u32().map(|u| u.to_string()),
                _ => break,
            };
            match v {
                Ok(v) => out.push(v),
                Err(_) => break,
            }
        }
        out
    }
}

/// One connection to a bus (or to systemd's private socket).
pub struct Conn {
    stream: UnixStream,
    serial: u32,
    /// On a bus: the destination of calls to systemd. None on a direct connection.
    dest: Option<String>,
    /// Signals read while waiting for a reply.
    signals: VecDeque<Message>,
    rbuf: Vec<u8>,
}

impl Conn {
    /// Connect and authenticate (SASL EXTERNAL with our uid). `bus`: a
    /// message bus (say Hello), else a direct connection to a peer.
    pub fn connect(path: &Path, bus: bool, timeout: Duration) -> Result<Conn, DbusError> {
        let mut stream = UnixStream::connect(path).map_err(io("connect"))?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(io("set timeout"))?;
        let uid = nix::unistd::geteuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        stream
            .write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
            .map_err(io("auth"))?;
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            match stream.read(&mut b).map_err(io("auth"))? {
                0 => return Err(DbusError::Protocol("connection closed during auth".into())),
                _ => line.push(b[0]),
            }
            if line.len() > 512 {
                return Err(DbusError::Protocol("auth reply too long".into()));
            }
        }
        if !line.starts_with(b"OK ") {
            return Err(DbusError::Protocol(format!(
                "authentication refused: {}",
                String::from_utf8_lossy(&line).trim()
            )));
        }
        stream.write_all(b"BEGIN\r\n").map_err(io("auth"))?;
        let mut c = Conn {
            stream,
            serial: 0,
            dest: None,
            signals: VecDeque::new(),
            rbuf: Vec::new(),
        };
        if bus {
            c.call(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "Hello",
                &[],
                timeout,
            )?;
        }
        Ok(c)
    }

    /// Set the destination of [`Conn::call_peer`] (on a bus).
    pub fn set_peer(&mut self, dest: Option<&str>) {
        self.dest = dest.map(str::to_string);
    }

    /// Call a method of the peer (see [`Conn::set_peer`]).
    pub fn call_peer(
        &mut self,
        path: &str,
        iface: &str,
        member: &str,
        args: &[Value],
        timeout: Duration,
    ) -> Result<Message, DbusError> {
        let dest = self.dest.clone();
        self.call(dest.as_deref(), path, iface, member, args, timeout)
    }

    /// Call a method and wait for its reply; an error reply is an error.
    pub fn call(
        &mut self,
        dest: Option<&str>,
        path: &str,
        iface: &str,
        member: &str,
        args: &[Value],
        timeout: Duration,
    ) -> Result<Message, DbusError> {
        self.serial += 1;
        let serial = self.serial;
        let msg = encode_call(serial, dest, path, iface, member, args);
        self.stream.write_all(&msg).map_err(io("write"))?;
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.read(deadline, timeout)?;
            match m.kind {
                METHOD_RETURN if m.reply_serial == Some(serial) => return Ok(m),
                ERROR if m.reply_serial == Some(serial) => {
                    return Err(DbusError::Reply {
                        name: m.error_name.clone().unwrap_or_default(),
                        message: m.args().into_iter().next().unwrap_or_default(),
                    })
                }
                SIGNAL => self.signals.push_back(m),
                _ => {}
            }
        }
    }

    /// Wait for a signal for which `pred` is true (signals seen earlier first).
    pub fn wait_signal(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Message) -> bool,
    ) -> Result<Message, DbusError> {
        if let Some(i) = self.signals.iter().position(&mut pred) {
            return Ok(self.signals.remove(i).unwrap());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.read(deadline, timeout)?;
            if m.kind == SIGNAL && pred(&m) {
                return Ok(m);
            }
        }
    }

    fn read(&mut self, deadline: Instant, timeout: Duration) -> Result<Message, DbusError> {
        loop {
            if let Some(len) = message_len(&self.rbuf)? {
                if self.rbuf.len() >= len {
                    let m = decode(&self.rbuf[..len]);
                    self.rbuf.drain(..len);
                    return m;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DbusError::Timeout(timeout));
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(io("set timeout"))?;
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(DbusError::Protocol("connection closed".into())),
                Ok(n) => self.rbuf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(DbusError::Timeout(timeout))
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(DbusError::Io {
                        op: "read",
                        source: e,
                    })
                }
            }
        }
    }
}

/// The total length of the message at the start of `buf`, once its fixed
/// header is there.
fn message_len(buf: &[u8]) -> Result<Option<usize>, DbusError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    if buf[0] != b'l' {
        return Err(DbusError::Protocol(
            "only little-endian messages are supported".into(),
        ));
    }
    let body = u32::from_le_bytes(buf[4..8].try_into().unwrap()) as usize;
    let fields = u32::from_le_bytes(buf[12..16].try_into().unwrap()) as usize;
    Ok(Some((16 + fields).div_ceil(8) * 8 + body))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A call with no arguments, byte for byte (checked against the D-Bus
    /// specification's layout: fixed header, a(yv) fields padded to 8).
    #[test]
    fn golden_hello_call() {
        let m = encode_call(
            1,
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            &[],
        );
        let mut want: Vec<u8> = vec![b'l', 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0];
        let mut fields: Vec<u8> = Vec::new();
        let mut field = |code: u8, sig: u8, s: &str| {
            while fields.len() % 8 != 0 {
                fields.push(0);
            }
            fields.extend_from_slice(&[code, 1, sig, 0]);
            fields.extend_from_slice(&(s.len() as u32).to_le_bytes());
            fields.extend_from_slice(s.as_bytes());
            fields.push(0);
        };
        field(1, b'o', "/org/freedesktop/DBus");
        field(2, b's', "org.freedesktop.DBus");
        field(3, b's', "Hello");
        field(6, b's', "org.freedesktop.DBus");
        want.extend_from_slice(&(fields.len() as u32).to_le_bytes());
        want.extend_from_slice(&fields);
        while want.len() % 8 != 0 {
            want.push(0);
        }
        assert_eq!(m, want);
        assert_eq!(message_len(&m).unwrap(), Some(m.len()));
    }

    /// The argument types of unit properties: alignment of each value inside
    /// the (sv) structs, and array lengths without the leading padding.
    #[test]
    fn golden_property_arrays() {
        let mut e = Enc::default();
        e.value(&Value::Props(vec![
            ("Delegate".into(), Value::Bool(true)),
            ("MemoryMax".into(), Value::U64(0x1122)),
            ("AllowedCPUs".into(), Value::Bytes(vec![0b11])),
            ("PIDs".into(), Value::U32Array(vec![7])),
        ]));
        let mut want = vec![0u8; 4]; // length, filled below
        want.extend_from_slice(&[0; 4]); // pad to 8 for the first struct
        let start = want.len();
        let s = |w: &mut Vec<u8>, s: &str| {
            while w.len() % 4 != 0 {
                w.push(0);
            }
            w.extend_from_slice(&(s.len() as u32).to_le_bytes());
            w.extend_from_slice(s.as_bytes());
            w.push(0);
        };
        let pad = |w: &mut Vec<u8>, n: usize| {
            while w.len() % n != 0 {
                w.push(0);
            }
        };
        s(&mut want, "Delegate");
        want.extend_from_slice(&[1, b'b', 0]);
        pad(&mut want, 4);
        want.extend_from_slice(&1u32.to_le_bytes());
        pad(&mut want, 8);
        s(&mut want, "MemoryMax");
        want.extend_from_slice(&[1, b't', 0]);
        pad(&mut want, 8);
        want.extend_from_slice(&0x1122u64.to_le_bytes());
        pad(&mut want, 8);
        s(&mut want, "AllowedCPUs");
        want.extend_from_slice(&[2, b'a', b'y', 0]);
        pad(&mut want, 4);
        want.extend_from_slice(&1u32.to_le_bytes());
        want.push(0b11);
        pad(&mut want, 8);
        s(&mut want, "PIDs");
        want.extend_from_slice(&[2, b'a', b'u', 0]);
        pad(&mut want, 4);
        want.extend_from_slice(&4u32.to_le_bytes());
        want.extend_from_slice(&7u32.to_le_bytes());
        let len = (want.len() - start) as u32;
        want[..4].copy_from_slice(&len.to_le_bytes());
        assert_eq!(e.buf, want);
    }

    #[test]
    fn decodes_a_signal() {
        // JobRemoved(uoss) as systemd sends it, built with the encoder and
        // re-typed as a signal.
        let mut m = encode_call(
            9,
            None,
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "JobRemoved",
            &[
                Value::U32(42),
                Value::Str("/org/freedesktop/systemd1/job/42".into()),
                Value::Str("lxcri-a.scope".into()),
                Value::Str("done".into()),
            ],
        );
        m[1] = SIGNAL;
        let d = decode(&m).unwrap();
        assert_eq!(d.kind, SIGNAL);
        assert_eq!(d.member.as_deref(), Some("JobRemoved"));
        assert_eq!(d.signature, "usss");
        assert_eq!(
            d.args(),
            vec![
                "42",
                "/org/freedesktop/systemd1/job/42",
                "lxcri-a.scope",
                "done"
            ]
        );
    }

    /// A private dbus-daemon (Debian's dbus-daemon package, in
    /// scripts/install-deps.sh) that lets everyone do everything: its socket
    /// and the daemon (killed on drop).
    pub(crate) struct TestBus {
        pub sock: std::path::PathBuf,
        daemon: std::process::Child,
        _dir: tempfile::TempDir,
    }

    impl Drop for TestBus {
        fn drop(&mut self) {
            let _ = self.daemon.kill();
            let _ = self.daemon.wait();
        }
    }

    pub(crate) fn test_bus() -> TestBus {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("bus");
        let conf = d.path().join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path={}</listen>
<auth>EXTERNAL</auth><policy context="default"><allow send_destination="*" eavesdrop="true"/>
<allow eavesdrop="true"/><allow own="*"/></policy></busconfig>"#,
                sock.display()
            ),
        )
        .unwrap();
        let daemon = std::process::Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .arg("--nofork")
            .spawn()
            .expect("dbus-daemon (package dbus-daemon) must be installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        TestBus {
            sock,
            daemon,
            _dir: d,
        }
    }

    /// Against a real dbus-daemon: authentication, Hello, a call with a
    /// reply, an error reply, and a signal (NameOwnerChanged).
    #[test]
    fn talks_to_a_dbus_daemon() {
        let b = test_bus();
        let sock = b.sock.clone();
        let t = Duration::from_secs(5);
        let result = (|| -> Result<(), DbusError> {
            let mut c = Conn::connect(&sock, true, t)?;
            let bus = "org.freedesktop.DBus";
            let path = "/org/freedesktop/DBus";
            let id = c.call(Some(bus), path, bus, "GetId", &[], t)?;
            assert_eq!(id.args()[0].len(), 32);
            c.call(
                Some(bus),
                path,
                bus,
                "AddMatch",
                &[Value::Str(
                    "type='signal',interface='org.freedesktop.DBus',member='NameOwnerChanged'"
                        .into(),
                )],
                t,
            )?;
            let r = c.call(
                Some(bus),
                path,
                bus,
                "RequestName",
                &[Value::Str("org.lxcri.Test".into()), Value::U32(0)],
                t,
            )?;
            assert_eq!(r.signature, "u");
            let sig = c.wait_signal(t, |m| {
                m.member.as_deref() == Some("NameOwnerChanged")
                    && m.args().first().map(String::as_str) == Some("org.lxcri.Test")
            })?;
            assert_eq!(sig.args().len(), 3);
            let e = c
                .call(Some(bus), path, bus, "NoSuchMethod", &[], t)
                .unwrap_err();
            assert!(
                matches!(&e, DbusError::Reply { name, .. } if name == "org.freedesktop.DBus.Error.UnknownMethod"),
                "{e}"
            );
            Ok(())
        })();
        drop(b);
        result.unwrap();
    }
}
