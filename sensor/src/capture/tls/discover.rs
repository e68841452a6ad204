//! Finding the libssl files the gateway maps: its processes (named like
//! one, `sensor_ebpf::tls::GATEWAY_NAMES`, in the sensor's own network
//! namespace: the node whose traffic it taps, the same test the kernel
//! applies to each process) and their `/proc/PID/maps` (proc(5)). Reading
//! another user's maps or namespace needs `CAP_SYS_PTRACE` (ptrace access
//! mode READ), as nginx's workers drop to an unprivileged user and are not
//! dumpable; processes that cannot be read are counted, so the log can
//! say why none was found. When none can be read (the systemd unit hides
//! other users' processes and holds no `CAP_SYS_PTRACE`), [`installed`]
//! names the libraries gateways install.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
};

use sensor_ebpf::tls::GATEWAY_NAMES;

/// What was found.
#[derive(Debug, Default)]
pub struct Gateway {
    /// The gateway's processes (tgids) that could be read.
    pub processes: usize,
    /// Processes with a gateway's name that could not be inspected.
    pub unreadable: usize,
    /// The libssl files they map, one entry per file.
    pub libraries: Vec<Library>,
    /// Mapped libssl files deleted on disk since (an upgrade that left
    /// the gateway running the old one), which cannot be probed by path.
    pub replaced: Vec<String>,
}

/// A library file to probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Library {
    /// The path to attach through: the mapping process's root
    /// (`/proc/PID/root/...`, valid across mount namespaces), or as given.
    pub path: PathBuf,
    /// The path as mapped (or given), for the log.
    pub name: String,
}

/// One file-backed mapping of a `libssl.so*` in a maps file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Mapping {
    /// `(major, minor, inode)`: the file's identity.
    file: (u32, u32, u64),
    path: String,
    deleted: bool,
}

/// Scans `/proc` for the gateway's processes and their libssl files.
///
/// # Errors
/// `/proc` or this process's own namespace cannot be read.
pub fn gateway() -> io::Result<Gateway> {
    let proc = Path::new("/proc");
    let own_netns = fs::read_link(proc.join("self/ns/net"))?;
    let mut found = Gateway::default();
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(proc)? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = proc.join(pid.to_string());
        let Ok(comm) = fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if !GATEWAY_NAMES.contains(&comm.trim_end()) {
            continue;
        }
        let (Ok(netns), Ok(maps)) = (
            fs::read_link(dir.join("ns/net")),
            fs::read_to_string(dir.join("maps")),
        ) else {
            found.unreadable += 1;
            continue;
        };
        if netns != own_netns {
            continue;
        }
        found.processes += 1;
        for m in libssl_mappings(&maps) {
            if m.deleted {
                found.replaced.push(m.path);
            } else {
                files.entry(m.file).or_insert_with(|| Library {
                    path: PathBuf::from(format!("/proc/{pid}/root{}", m.path)),
                    name: m.path,
                });
            }
        }
    }
    found.replaced.sort();
    found.replaced.dedup();
    found.libraries = files.into_values().collect();
    Ok(found)
}

/// Where gateways install the OpenSSL they load: `(gateway binary,
/// library)`, a library counting when both exist. Kong's packages run
/// OpenResty's nginx with `RUNPATH` `/usr/local/kong/lib`; OpenResty's own
/// packages ship theirs under `/usr/local/openresty`.
const INSTALLED: [(&str, &str); 4] = [
    (OPENRESTY, "/usr/local/kong/lib/libssl.so.3"),
    (OPENRESTY, "/usr/local/kong/lib/libssl.so.1.1"),
    (OPENRESTY, "/usr/local/openresty/openssl3/lib/libssl.so.3"),
    (
        OPENRESTY,
        "/usr/local/openresty/openssl111/lib/libssl.so.1.1",
    ),
];
const OPENRESTY: &str = "/usr/local/openresty/nginx/sbin/nginx";
/// A distribution's nginx, which loads the system's libssl.
const SYSTEM_NGINX: &str = "/usr/sbin/nginx";

/// The libssl files installed gateways load, for when their processes
/// cannot be read: those of [`INSTALLED`], and the system's when the
/// distribution's nginx is installed. Each file once.
pub fn installed() -> Vec<Library> {
    let mut paths: Vec<PathBuf> = INSTALLED
        .iter()
        .filter(|(binary, _)| Path::new(binary).exists())
        .map(|(_, library)| PathBuf::from(library))
        .collect();
    if Path::new(SYSTEM_NGINX).exists() {
        paths.extend(system_libssl());
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for path in paths {
        if let Ok(file) = fs::canonicalize(&path)
            && !files.contains(&file)
        {
            files.push(file);
        }
    }
    files
        .into_iter()
        .map(|path| Library {
            name: path.display().to_string(),
            path,
        })
        .collect()
}

/// The system's libssl: the newest soname in the system library folders.
fn system_libssl() -> Option<PathBuf> {
    let multiarch = format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH);
    let dirs = [multiarch.as_str(), "/usr/lib64", "/usr/lib"];
    ["libssl.so.3", "libssl.so.1.1"]
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| Path::new(dir).join(name)))
        .find(|path| path.exists())
}

/// The `libssl.so*` files mapped in a maps file's text, once each.
fn libssl_mappings(maps: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in maps.lines() {
        // address perms offset dev inode pathname (proc(5))
        let mut fields = line.split_ascii_whitespace();
        let (Some(dev), Some(inode)) = (fields.nth(3), fields.next()) else {
            continue;
        };
        let path = fields.collect::<Vec<_>>().join(" ");
        let (path, deleted) = match path.strip_suffix(" (deleted)") {
            Some(p) => (p.to_string(), true),
            None => (path, false),
        };
        let is_libssl = Path::new(&path)
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("libssl.so"));
        let file = dev.split_once(':').and_then(|(major, minor)| {
            Some((
                u32::from_str_radix(major, 16).ok()?,
                u32::from_str_radix(minor, 16).ok()?,
                inode.parse().ok()?,
            ))
        });
        if let (true, Some(file)) = (is_libssl, file)
            && !out.iter().any(|m| m.file == file)
        {
            out.push(Mapping {
                file,
                path,
                deleted,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_libraries_exist_and_are_distinct() {
        let found = installed();
        for library in &found {
            assert!(library.path.is_file(), "{library:?}");
            assert!(library.name.contains("libssl.so"), "{library:?}");
        }
        let mut paths: Vec<_> = found.iter().map(|l| &l.path).collect();
        paths.dedup();
        assert_eq!(paths.len(), found.len());
        if Path::new(SYSTEM_NGINX).exists() {
            assert!(!found.is_empty(), "the system's libssl");
        }
    }

    #[test]
    fn libssl_mappings_are_found_once_per_file() {
        let maps = "\
55d0c8a00000-55d0c8a2b000 r--p 00000000 fe:00 1180 /usr/sbin/nginx
7f7126d8a000-7f7126da9000 r--p 00000000 fe:00 326798 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f7126da9000-7f7126e06000 r-xp 0001f000 fe:00 326798 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f7126e40000-7f7126e41000 r-xp 00000000 08:01 99 /usr/local/kong/lib/libssl.so.1.1 (deleted)
7f7126e50000-7f7126e51000 r-xp 00000000 fe:00 4242 /opt/my libs/libssl.so.3
7f7126f00000-7f7126f21000 rw-p 00000000 00:00 0 [heap]
7f7127000000-7f7127100000 r-xp 00000000 fe:00 5555 /usr/lib/x86_64-linux-gnu/libcrypto.so.3
";
        let found = libssl_mappings(maps);
        assert_eq!(
            found,
            [
                Mapping {
                    file: (0xfe, 0, 326798),
                    path: "/usr/lib/x86_64-linux-gnu/libssl.so.3".into(),
                    deleted: false,
                },
                Mapping {
                    file: (8, 1, 99),
                    path: "/usr/local/kong/lib/libssl.so.1.1".into(),
                    deleted: true,
                },
                Mapping {
                    file: (0xfe, 0, 4242),
                    path: "/opt/my libs/libssl.so.3".into(),
                    deleted: false,
                },
            ]
        );
    }
}
