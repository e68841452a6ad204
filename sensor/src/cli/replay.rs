//! `siem-sensor replay`: capture files through the live pipeline.

use std::{
    io::{self, IsTerminal as _},
    path::PathBuf,
};

use anyhow::{Context as _, Result};
use clap::Args;
use sensor::capture::{
    Segment,
    file::{Checksums, FileCounters, merge::read_merged, read_file},
};
use serde::Serialize;

use super::{
    choice::ChoiceParser,
    pipeline::{Mode, PipelineArgs},
};

#[derive(Args)]
pub struct ReplayArgs {
    /// pcap or pcapng files, merged by timestamp into one capture (as
    /// `mergecap` does): say a client-leg and an upstream-leg capture.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print alerts as JSON lines (one object per alert) instead of text.
    #[arg(long)]
    json: bool,
    /// Drop segments with a wrong IPv4 or TCP checksum, as the receiving
    /// host would: always, never, or unless the file's checksums look
    /// offloaded (more than 10% of its first 1000 checkable segments
    /// wrong).
    #[arg(long, default_value = "auto", value_parser = ChoiceParser::<Checksums>::new())]
    checksums: Checksums,
    #[command(flatten)]
    pipeline: PipelineArgs,
}

#[derive(Serialize)]
struct FileSummary<'a> {
    path: &'a std::path::Path,
    #[serde(flatten)]
    counters: FileCounters,
}

/// Replays the files, printing alerts as they fire (text, or JSON lines with
/// `--json`), then a `replay_summary` JSON line, all to stdout.
///
/// # Errors
/// A file that cannot be opened or is not a capture; pipeline setup.
pub fn replay(args: &ReplayArgs) -> Result<()> {
    let mut pipeline = args.pipeline.pipeline(Mode::Replay { json: args.json })?;
    let progress = io::stderr().is_terminal();
    let mut on_segment = |segment: &Segment<'_>| pipeline.segment(segment);
    let counters = match args.files.as_slice() {
        [path] => vec![
            read_file(path, progress, args.checksums, &mut on_segment)
                .with_context(|| format!("replaying {}", path.display()))?,
        ],
        paths => read_merged(paths, args.checksums, &mut on_segment)
            .context("replaying the merged captures")?,
    };
    let files: Vec<FileSummary> = args
        .files
        .iter()
        .zip(counters)
        .map(|(path, counters)| FileSummary { path, counters })
        .collect();
    pipeline.finish(true);
    let summary = serde_json::json!({
        "event": "replay_summary",
        "files": files,
        "pipeline": pipeline.counters(),
        "gauges": pipeline.snapshot(),
    });
    println!("{summary}");
    Ok(())
}
