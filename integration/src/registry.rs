//! A local OCI registry for the CRI tests and critest, and the images in it.
//!
//! Debian's docker-registry runs on 127.0.0.1:5000 inside the network
//! namespace of a pod-network containerd ([`Containerd::start_cri_net`]),
//! so the port never clashes with anything on the host, with a private
//! config and storage under the test's temp dir; it is killed when the
//! [`Registry`] is dropped. Images are built offline from the busybox
//! rootfs (see `image.rs`) plus our static `lxcri-testimg` program, and
//! pushed with skopeo (run in the same network namespace).
//!
//! containerd resolves every registry the tests and critest name
//! (registry.k8s.io, k8s.gcr.io, gcr.io, docker.io and 127.0.0.1:5000
//! itself) to this registry, plain http, through hosts.toml files in the
//! daemon's registry config dir. critest hard-codes most of its image names
//! (gcr.io/k8s-staging-cri-tools/..., registry.k8s.io/e2e-test-images/...),
//! so the images are pushed under the same repository paths.

use crate::cmd::{self, must, Output};
use crate::containerd::Containerd;
use crate::image::{self, Process};
use crate::rootfs;
use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The registry's address inside the daemon's network namespace.
pub const ADDRESS: &str = "127.0.0.1:5000";

/// Debian's docker-registry (distribution 2.8).
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// skopeo (Debian), which pushes the OCI tarballs.
pub const SKOPEO: &str = "/usr/bin/skopeo";

/// Our static multi-call program (pause, nnp, web server), installed by
/// `make install-bin`.
pub const TESTIMG: &str = "/usr/local/libexec/lxcri/lxcri-testimg";

/// Registries that containerd sends to the local one.
pub const MIRRORED: &[&str] = &[
    ADDRESS,
    "registry.k8s.io",
    "k8s.gcr.io",
    "gcr.io",
    "docker.io",
];

/// The busybox image the CRI tests run (pulled by crictl).
pub const BUSYBOX: &str = "127.0.0.1:5000/lxcri/busybox:1.0";

/// critest's default test container image (its --test-images-file
/// `defaultTestContainerImage`).
pub const CRITEST_BUSYBOX: &str = "127.0.0.1:5000/e2e-test-images/busybox:1.29-2";

/// critest's web server image (`webServerTestImage`): our web server as
/// /usr/sbin/nginx.
pub const CRITEST_WEB_SERVER: &str = "127.0.0.1:5000/e2e-test-images/nginx:1.14-2";

/// Which images to push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSet {
    /// busybox and pause: what the crictl scenarios use.
    Basic,
    /// Everything critest pulls that can be made offline (see
    /// [`CRITEST_MISSING`]).
    Critest,
}

/// critest images that cannot be provided offline, with the reason.
pub const CRITEST_MISSING: &[(&str, &str)] = &[(
    "gcr.io/k8s-staging-cri-tools/test-image-digest@sha256:9700f9a2…",
    "pinned by digest: only the upstream image has that digest",
)];

/// What goes into one image's root filesystem on top of busybox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    /// Plain busybox.
    Busybox,
    /// Busybox plus the file `/<name>` (critest's image-test images: each
    /// name a different image).
    Marker(&'static str),
    /// Busybox with `www-data` (uid/gid 33) in passwd/group.
    WwwData,
    /// Busybox with user `default-user` (1000) in group
    /// `group-defined-in-image` (50000), as critest's predefined-group
    /// image.
    PredefinedGroup,
    /// `lxcri-testimg` at the given path (mode 0755, or 04755 for nnp), and
    /// /var/run.
    Program(&'static str, u32),
    /// Our pause as `/pause`, plus a marker file: the pause images critest
    /// pulls by upstream names (a different image from our sandbox image,
    /// so that removing them leaves the sandbox image's tag alone).
    UpstreamPause,
}

/// One image: its content, what it runs, and every `repo:tag` it is pushed
/// as (registry path without the host).
struct Spec {
    content: Content,
    process: Process<'static>,
    refs: &'static [&'static str],
}

const fn run(entrypoint: &'static [&'static str], user: &'static str) -> Process<'static> {
    Process {
        entrypoint,
        cmd: &[],
        user,
    }
}

const SHELL: Process<'static> = image::SHELL;

fn specs(set: ImageSet) -> Vec<Spec> {
    let mut specs = vec![
        Spec {
            content: Content::Busybox,
            process: SHELL,
            refs: &[
                "lxcri/busybox:1.0",
                "e2e-test-images/busybox:1.29-2",
                "library/busybox:latest",
            ],
        },
        Spec {
            content: Content::Program("/pause", 0o755),
            process: run(&["/pause"], ""),
            refs: &["lxcri/pause:1.0"],
        },
        Spec {
            content: Content::UpstreamPause,
            process: run(&["/pause"], ""),
            refs: &["pause:3.9", "pause:3.10"],
        },
    ];
    if set == ImageSet::Basic {
        return specs;
    }
    let s = |content, process, refs| Spec {
        content,
        process,
        refs,
    };
    specs.extend([
        s(
            Content::Marker("test-image-latest"),
            SHELL,
            &["k8s-staging-cri-tools/test-image-latest:latest"],
        ),
        s(
            Content::Marker("test-image-tag"),
            SHELL,
            &[
                "k8s-staging-cri-tools/test-image-tag:test",
                "k8s-staging-cri-tools/test-image-tag:all",
            ],
        ),
        s(
            Content::Marker("test-image-1"),
            SHELL,
            &["k8s-staging-cri-tools/test-image-1:latest"],
        ),
        s(
            Content::Marker("test-image-2"),
            SHELL,
            &["k8s-staging-cri-tools/test-image-2:latest"],
        ),
        s(
            Content::Marker("test-image-3"),
            SHELL,
            &["k8s-staging-cri-tools/test-image-3:latest"],
        ),
        s(
            Content::Marker("test-image-tags"),
            SHELL,
            &[
                "k8s-staging-cri-tools/test-image-tags:1",
                "k8s-staging-cri-tools/test-image-tags:2",
                "k8s-staging-cri-tools/test-image-tags:3",
            ],
        ),
        s(
            Content::WwwData,
            Process {
                user: "1002",
                ..SHELL
            },
            &["k8s-staging-cri-tools/test-image-user-uid:latest"],
        ),
        s(
            Content::WwwData,
            Process {
                user: "www-data",
                ..SHELL
            },
            &["k8s-staging-cri-tools/test-image-user-username:latest"],
        ),
        s(
            Content::WwwData,
            Process {
                user: "1003:1003",
                ..SHELL
            },
            &["k8s-staging-cri-tools/test-image-user-uid-group:latest"],
        ),
        s(
            Content::WwwData,
            Process {
                user: "www-data:www-data",
                ..SHELL
            },
            &["k8s-staging-cri-tools/test-image-user-username-group:latest"],
        ),
        s(
            Content::PredefinedGroup,
            Process {
                user: "1000",
                ..SHELL
            },
            &["k8s-staging-cri-tools/test-image-predefined-group:latest"],
        ),
        s(
            Content::Program("/usr/local/bin/nnp", 0o4755),
            run(&["/usr/local/bin/nnp"], ""),
            &["e2e-test-images/nonewprivs:1.3"],
        ),
        // "master process" makes /proc/1/cmdline look like nginx's, which
        // critest's pid namespace tests grep for; `pidof nginx` finds it
        // by its file name.
        s(
            Content::Program("/usr/sbin/nginx", 0o755),
            run(
                &["/usr/sbin/nginx", "-g", "daemon off;", "master process"],
                "",
            ),
            &["e2e-test-images/nginx:1.14-2"],
        ),
        s(
            Content::Program("/usr/sbin/nginx", 0o755),
            run(
                &[
                    "/usr/sbin/nginx",
                    "-p",
                    "12003",
                    "-g",
                    "daemon off;",
                    "master process",
                ],
                "",
            ),
            &["k8s-staging-cri-tools/hostnet-nginx-amd64:latest"],
        ),
        s(
            Content::Program("/usr/local/apache2/bin/httpd", 0o755),
            run(&["/usr/local/apache2/bin/httpd", "-DFOREGROUND"], ""),
            &["e2e-test-images/httpd:2.4.39-4"],
        ),
    ]);
    specs
}

/// A running registry; killed on drop.
pub struct Registry {
    child: Option<Child>,
    dir: PathBuf,
}

impl Registry {
    /// Starts the registry in `ctd`'s network namespace (which must be
    /// private), writes the hosts.toml files that send [`MIRRORED`]
    /// registries to it, and pushes the images of `set`.
    pub fn start(ctd: &Containerd, set: ImageSet) -> Result<Self> {
        if !ctd.private_net {
            bail!("the registry runs in a pod-network daemon's network namespace only");
        }
        for (bin, package) in [
            (REGISTRY_BIN, "docker-registry"),
            (SKOPEO, "skopeo"),
            (TESTIMG, "lxcri-testimg (make install-bin)"),
        ] {
            if !Path::new(bin).exists() {
                bail!("{bin} missing: install {package} (`make install`)");
            }
        }
        let dir = ctd.dir().join("registry");
        fs::create_dir_all(dir.join("storage"))?;
        fs::write(dir.join("config.yml"), registry_config(&dir))?;
        let log = fs::File::create(dir.join("registry.log"))?;
        let child = ctd
            .in_net(REGISTRY_BIN)
            .arg("serve")
            .arg(dir.join("config.yml"))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn docker-registry")?;
        let mut registry = Registry {
            child: Some(child),
            dir,
        };
        registry.wait_ready(ctd)?;
        write_hosts(&ctd.dir().join("certs.d"))?;
        registry
            .push_all(ctd, set)
            .context("push the test images")?;
        Ok(registry)
    }

    fn wait_ready(&mut self, ctd: &Containerd) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("docker-registry exited {status}: {}", self.log());
            }
            let probe = cmd::run(
                ctd.in_net(rootfs::BUSYBOX).args([
                    "wget",
                    "-q",
                    "-O",
                    "-",
                    &format!("http://{ADDRESS}/v2/"),
                ]),
                None,
                Duration::from_secs(5),
            )?;
            if probe.code == 0 {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(20) {
                bail!("registry not answering after 20 s: {probe}\n{}", self.log());
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Builds each image once and pushes it under all its names.
    fn push_all(&self, ctd: &Containerd, set: ImageSet) -> Result<()> {
        let work = self.dir.join("build");
        for (i, spec) in specs(set).iter().enumerate() {
            let root = work.join(format!("{i}/rootfs"));
            fill_rootfs(&root, spec.content)?;
            let name = format!("{ADDRESS}/{}", spec.refs[0]);
            let tarball = work.join(format!("{i}/image.oci.tar"));
            image::oci_image(
                &root,
                &name,
                spec.process,
                &work.join(format!("{i}/work")),
                &tarball,
            )
            .with_context(|| format!("build {name}"))?;
            for r in spec.refs {
                self.push(ctd, &tarball, r)?;
            }
        }
        Ok(())
    }

    /// `skopeo copy oci-archive:TARBALL docker://127.0.0.1:5000/REF`.
    fn push(&self, ctd: &Containerd, tarball: &Path, reference: &str) -> Result<Output> {
        let tmp = self.dir.join("tmp");
        fs::create_dir_all(&tmp)?;
        must(
            ctd.in_net(SKOPEO)
                .args(["--insecure-policy", "copy", "--quiet"])
                .args(["--dest-tls-verify=false", "--dest-compress=false"])
                .arg(format!("oci-archive:{}", tarball.display()))
                .arg(format!("docker://{ADDRESS}/{reference}"))
                .env("TMPDIR", &tmp),
        )
        .with_context(|| format!("push {reference}"))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

fn registry_config(dir: &Path) -> String {
    format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
         delete:\n    enabled: true\nhttp:\n  addr: {ADDRESS}\n",
        dir.join("storage").display()
    )
}

/// `<certs.d>/<registry>/hosts.toml` for each of [`MIRRORED`]: pull and
/// resolve from the local registry over plain http.
fn write_hosts(certs_d: &Path) -> Result<()> {
    for registry in MIRRORED {
        let dir = certs_d.join(registry);
        fs::create_dir_all(&dir)?;
        fs::write(
            dir.join("hosts.toml"),
            format!(
                "server = \"http://{ADDRESS}\"\n\n[host.\"http://{ADDRESS}\"]\n  \
                 capabilities = [\"pull\", \"resolve\"]\n"
            ),
        )?;
    }
    Ok(())
}

/// Applets Debian's busybox-static lacks that critest runs, as scripts.
const SCRIPTS: &[(&str, &str)] = &[
    (
        "pgrep",
        "#!/bin/sh\n# pgrep PATTERN: pids of processes whose name contains PATTERN.\n\
         rc=1\nfor d in /proc/[0-9]*; do\n  read -r comm < \"$d/comm\" 2>/dev/null || continue\n  \
         case \"$comm\" in *\"$1\"*) [ \"${d#/proc/}\" = \"$$\" ] || { echo \"${d#/proc/}\"; rc=0; };; esac\n\
         done\nexit $rc\n",
    ),
    (
        "ipcs",
        "#!/bin/sh\n# ipcs [-m]: the shared memory segments (/proc/sysvipc/shm).\n\
         echo '------ Shared Memory Segments --------'\n\
         echo 'key        shmid      owner      perms      bytes      nattch'\n\
         awk 'NR > 1 { printf \"0x%08x %-10s %-10s %-10s %-10s %s\\n\", $1, $2, $8, $3, $4, $7 }' \
         /proc/sysvipc/shm\n",
    ),
];

/// The busybox rootfs plus `content`. Applets are hard links to busybox
/// (as in the busybox image: masking `/bin/ls` must not mask busybox), and
/// [`SCRIPTS`] stand in for applets this busybox lacks.
fn fill_rootfs(root: &Path, content: Content) -> Result<()> {
    rootfs::busybox_rootfs(root)?;
    let bin = root.join("bin");
    for entry in fs::read_dir(&bin)? {
        let path = entry?.path();
        let is_applet_link = fs::read_link(&path).is_ok_and(|t| t == Path::new("busybox"));
        if is_applet_link {
            fs::remove_file(&path)?;
            fs::hard_link(bin.join("busybox"), &path)?;
        }
    }
    for (name, script) in SCRIPTS {
        let path = bin.join(name);
        if !path.exists() {
            fs::write(&path, script)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        }
    }
    let etc = root.join("etc");
    match content {
        Content::Busybox => {}
        Content::Marker(name) => fs::write(root.join(name), format!("{name}\n"))?,
        Content::WwwData => {
            append(
                &etc.join("passwd"),
                "www-data:x:33:33:www-data:/var/www:/bin/false\n",
            )?;
            append(&etc.join("group"), "www-data:x:33:\n")?;
        }
        Content::PredefinedGroup => {
            append(
                &etc.join("passwd"),
                "default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n",
            )?;
            // Replace the base image's uid 1000 user (`test`).
            let passwd = fs::read_to_string(etc.join("passwd"))?;
            let passwd: String = passwd
                .lines()
                .filter(|l| !l.starts_with("test:"))
                .map(|l| format!("{l}\n"))
                .collect();
            fs::write(etc.join("passwd"), passwd)?;
            fs::write(
                etc.join("group"),
                "root:x:0:\ndefault-user:x:1000:\nnogroup:x:65534:\n\
                 group-defined-in-image:x:50000:default-user\n",
            )?;
        }
        Content::Program(path, mode) => {
            let dest = root.join(path.trim_start_matches('/'));
            fs::create_dir_all(dest.parent().context("program path")?)?;
            fs::copy(TESTIMG, &dest).with_context(|| format!("copy {TESTIMG}"))?;
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode))?;
            fs::create_dir_all(root.join("var/run"))?;
        }
        Content::UpstreamPause => {
            fs::copy(TESTIMG, root.join("pause")).with_context(|| format!("copy {TESTIMG}"))?;
            fs::set_permissions(root.join("pause"), fs::Permissions::from_mode(0o755))?;
            fs::write(root.join("upstream-pause"), "pause 3.9/3.10 stand-in\n")?;
        }
    }
    Ok(())
}

fn append(path: &Path, text: &str) -> Result<()> {
    let mut all = fs::read_to_string(path)?;
    all.push_str(text);
    fs::write(path, all)?;
    Ok(())
}

/// critest's --test-images-file: its two configurable images, from the
/// local registry.
pub fn critest_images_file() -> String {
    format!(
        "defaultTestContainerImage: {CRITEST_BUSYBOX}\nwebServerTestImage: {CRITEST_WEB_SERVER}\n"
    )
}
