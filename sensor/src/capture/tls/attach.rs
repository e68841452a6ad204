//! Loading and attaching the TLS tap's programs. Uprobes are attached per
//! library file with `UProbeScope::AllProcesses` (one attachment serves
//! every process mapping the file, the gateway's future workers included;
//! the `GATEWAY_TGIDS` map filters in the kernel), so an nginx reload
//! needs nothing from userspace. Every link is owned by the [`aya::Ebpf`]
//! it came from: dropping it detaches all, on success and on error alike.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    programs::{
        Program, RawTracePoint, UProbe,
        uprobe::{UProbeAttachLocation, UProbeScope},
    },
};
use sensor_ebpf::tls::{
    PROCESS_PROBES, SOCK_PROBES, SSL_PROBES, SSL_ROLE_PROBES, SslProbe, WRAPPERS,
};
use tracing::{debug, info};

use super::{call_site::LibraryCode, discover::Library};

/// Functions a library must export: without them there is nothing to read
/// or no end to a connection.
const REQUIRED: [&str; 3] = ["SSL_read", "SSL_write", "SSL_free"];

/// Loads every program (running the verifier) and attaches the process
/// tracepoints (the socket tracepoints wait for [`super::binding`]), then
/// the uprobes to each library: the wrappers inside
/// where their shape is found, an entry-only probe on the function's
/// [`LibraryCode::entry_point`] where there is one, else on its entry. A
/// library missing an optional function (the `_ex` forms came with OpenSSL
/// 1.1.1) goes without it.
///
/// # Errors
/// The verifier's refusal, a failed kernel attach, or a library without a
/// required function; what was attached stays owned by `ebpf`.
pub fn attach(ebpf: &mut Ebpf, libraries: &[Library]) -> Result<()> {
    for (name, _) in PROCESS_PROBES.into_iter().chain(SOCK_PROBES) {
        let program: &mut RawTracePoint = program(ebpf, name)?.try_into()?;
        program.load().with_context(|| refused(name))?;
    }
    for (name, tracepoint) in PROCESS_PROBES {
        let program: &mut RawTracePoint = program(ebpf, name)?.try_into()?;
        program
            .attach(tracepoint)
            .with_context(|| format!("attaching {name} to raw tracepoint {tracepoint}"))?;
    }
    let probes: Vec<SslProbe> = SSL_PROBES.into_iter().chain(SSL_ROLE_PROBES).collect();
    let inside = WRAPPERS.iter().flat_map(|w| [w.call, w.branch]);
    let names: BTreeSet<&str> = probes.iter().map(|p| p.program).chain(inside).collect();
    for name in names {
        let program: &mut UProbe = program(ebpf, name)?.try_into()?;
        program.load().with_context(|| refused(name))?;
    }
    let returning: BTreeSet<&str> = probes
        .iter()
        .filter(|p| p.on_return)
        .map(|p| p.function)
        .collect();
    for library in libraries {
        let code = LibraryCode::read(&library.path)
            .inspect_err(|e| debug!(library = library.name, error = %e, "cannot decode"))
            .ok();
        let inside = match &code {
            Some(code) => attach_inside(ebpf, library, code)?,
            None => Vec::new(),
        };
        for probe in probes.iter().filter(|p| !inside.contains(&p.function)) {
            // An entry-only probe moves to an emulated instruction; the
            // entry of a function with a return probe is single-stepped
            // for that probe anyway.
            let offset = code
                .as_ref()
                .filter(|_| !returning.contains(probe.function))
                .and_then(|c| c.entry_point(probe.function))
                .unwrap_or(0);
            let at = UProbeAttachLocation::SymbolOffset(probe.function, offset);
            let program: &mut UProbe = program(ebpf, probe.program)?.try_into()?;
            let attached = program.attach(at, &library.path, UProbeScope::AllProcesses);
            match attached {
                Ok(_) if offset > 0 => info!(
                    library = library.name,
                    function = probe.function,
                    offset,
                    "entry probe on an instruction the kernel emulates"
                ),
                Ok(_) => {}
                Err(e) if !REQUIRED.contains(&probe.function) => {
                    debug!(library = library.name, function = probe.function, error = %e,
                           "optional OpenSSL function not probed");
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "attaching {} to {} in {}",
                            probe.program, probe.function, library.name
                        )
                    });
                }
            }
        }
        info!("attached the TLS tap to {}", library.name);
    }
    Ok(())
}

/// Attaches the [`WRAPPERS`] found in `library` at their inner call and
/// result branch ([`LibraryCode::inner_call`]); returns the functions so
/// probed.
fn attach_inside(
    ebpf: &mut Ebpf,
    library: &Library,
    code: &LibraryCode,
) -> Result<Vec<&'static str>> {
    let mut inside = Vec::new();
    for w in WRAPPERS {
        let Some(site) = code.inner_call(w.function, w.sibling) else {
            info!(
                library = library.name,
                function = w.function,
                "wrapper shape not found: entry and return probes"
            );
            continue;
        };
        for (name, offset) in [(w.call, site.call), (w.branch, site.branch)] {
            let program: &mut UProbe = program(ebpf, name)?.try_into()?;
            let at = UProbeAttachLocation::SymbolOffset(w.function, offset);
            program
                .attach(at, &library.path, UProbeScope::AllProcesses)
                .with_context(|| format!("attaching {name} to {}+{offset:#x}", w.function))?;
        }
        info!(
            library = library.name,
            function = w.function,
            call = site.call,
            branch = site.branch,
            "probed inside, at instructions the kernel emulates"
        );
        inside.push(w.function);
    }
    Ok(inside)
}

fn refused(name: &str) -> String {
    format!("the kernel refused program {name}")
}

pub(super) fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Program> {
    ebpf.program_mut(name)
        .with_context(|| format!("program {name} missing from the TLS object"))
}
