//! `rprobe script`: a perf.data file as `perf script` 6.1 prints it, or as JSON lines.

use crate::perf::abi::feature;
use crate::perf::reader::features;
use crate::replay::dso::{FileData, FileSource};
use crate::replay::machine::KERNEL_DSO;
use crate::replay::script::{self, Script, ScriptOptions};
use crate::replay::session::{Event, KernelSymbols, Session};
use crate::replay::symbols::Kallsyms;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "\
Examples:
  rprobe script                          perf.data as `perf script` prints it
  rprobe script -i sched.data | head     first events (exits quietly when head closes)
  rprobe script -F comm,tid,time,event,trace
  rprobe script -G                       without callchains
  rprobe script --srcline                callchain frames with their source lines
  rprobe script --no-inline              frames as symbols only, no inlined functions
  rprobe script --show-lost-events       PERF_RECORD_LOST lines where records were lost
  rprobe script --json | jq .fields      one JSON object per event";

/// Print the events of a perf.data file (perf's or rprobe's) as `perf script` does.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct ScriptArgs {
    /// The perf.data file.
    #[arg(short = 'i', long = "input", default_value = "perf.data")]
    input: PathBuf,
    /// Fields to print, comma-separated: comm,tid,pid,cpu,time,event,trace,ip,sym,symoff,dso,period,addr.
    #[arg(short = 'F', long = "fields")]
    fields: Option<String>,
    /// Print PERF_RECORD_LOST lines where the recorder lost records.
    #[arg(long = "show-lost-events")]
    show_lost_events: bool,
    /// Do not print callchains.
    #[arg(short = 'G', long = "no-callchain")]
    no_callchain: bool,
    /// One JSON object per event (see README, "Replay").
    #[arg(long)]
    json: bool,
    /// Callchain frames in inlined code name the inlined functions, from the DWARF of the
    /// binary or its debug file (perf's default; `--no-inline` turns it off).
    #[arg(long, overrides_with = "no_inline")]
    inline: bool,
    /// Print each callchain frame as its symbol alone, without inlined functions.
    #[arg(long = "no-inline")]
    no_inline: bool,
    /// Print each callchain frame's source line (`file.c:42`) under it, where debuginfo
    /// has one (perf's `-F +srcline`).
    #[arg(long)]
    srcline: bool,
}

/// Files mapped for symbol loading.
pub struct MappedFiles;

impl FileSource for MappedFiles {
    fn read(&self, path: &str) -> Option<Box<FileData>> {
        let p = Path::new(path);
        if !p.is_file() {
            return None;
        }
        crate::sys::map_file(p)
            .ok()
            .map(|m| Box::new(m) as Box<FileData>)
    }
}

/// The running kernel's build id, from the ELF notes in `/sys/kernel/notes`.
fn running_kernel_build_id() -> Option<Vec<u8>> {
    let b = std::fs::read("/sys/kernel/notes").ok()?;
    let mut at = 0usize;
    while at + 12 <= b.len() {
        let u = |o: usize| crate::perf::abi::u32_at(&b, o).map(|v| v as usize);
        let (namesz, descsz, ty) = (u(at)?, u(at + 4)?, u(at + 8)?);
        let name_at = at + 12;
        let desc_at = name_at + namesz.div_ceil(4) * 4;
        let next = desc_at + descsz.div_ceil(4) * 4;
        if ty == 3 && b.get(name_at..name_at + namesz)? == b"GNU\0" {
            return b.get(desc_at..desc_at + descsz).map(<[u8]>::to_vec);
        }
        at = next;
    }
    None
}

fn uname_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Kernel symbols for a file: the tracing data's kallsyms, else perf's build-id cache copy
/// (`~/.debug/[kernel.kallsyms]/ID/kallsyms`), else this machine's `/proc/kallsyms` when it
/// runs the recorded kernel (same build id, or same release without one).
pub fn kernel_symbols(bytes: &[u8], home: Option<&str>) -> Option<KernelSymbols> {
    let file = crate::perf::reader::PerfFile::parse(bytes).ok()?;
    let parse = |t: &[u8]| {
        Some(Kallsyms::parse(t))
            .filter(|k| !k.is_empty())
            .map(KernelSymbols::from)
    };
    if let Some(td) = file
        .feature(feature::TRACING_DATA)
        .and_then(|b| crate::perf::reader::tracing_data::parse(b).ok())
    {
        if !td.kallsyms.trim().is_empty() {
            return parse(td.kallsyms.as_bytes());
        }
    }
    let file_id = file
        .feature(feature::BUILD_ID)
        .map(features::parse_build_ids)
        .unwrap_or_default()
        .into_iter()
        .find(|b| b.filename == KERNEL_DSO)
        .map(|b| b.id);
    let release = file
        .feature(feature::OSRELEASE)
        .and_then(features::parse_string);
    // perf's order: its build-id cache copy (a plain file, cheaper to read than
    // /proc/kallsyms), then this machine's kallsyms when it runs the recorded kernel.
    if let (Some(id), Some(home)) = (&file_id, home) {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let cached = format!("{home}/.debug/[kernel.kallsyms]/{hex}/kallsyms");
        if let Some(k) = crate::sys::map_file(Path::new(&cached))
            .ok()
            .and_then(|m| parse(&m))
        {
            return Some(k);
        }
    }
    let running = match &file_id {
        Some(id) => running_kernel_build_id().is_some_and(|r| &r == id),
        None => release.is_none() || release == uname_release(),
    };
    if !running {
        return None;
    }
    parse(&std::fs::read("/proc/kallsyms").ok()?)
}

/// Maps the perf.data file to replay; the error says how to get one.
pub fn map_input(path: &Path) -> Result<memmap2::Mmap> {
    crate::sys::map_file(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read {}: {}; record one with `rprobe record` or `perf record`, or name it with -i",
            path.display(),
            e.source
        )
    })
}

pub fn run(args: &ScriptArgs, out: &mut dyn Write) -> Result<()> {
    let map = map_input(&args.input)?;
    let bytes: &[u8] = &map;
    let home = std::env::var("HOME").ok();
    let mut session =
        Session::new(bytes, None).with_context(|| format!("{}", args.input.display()))?;
    if session.evsels.is_empty() {
        bail!(
            "{}: the file has no events (attrs section empty)",
            args.input.display()
        );
    }
    if let Some(e) = &session.tracing_error {
        eprintln!(
            "rprobe: warning: {}: {e}; tracepoint fields are not printed",
            args.input.display()
        );
    }
    let fields = args
        .fields
        .as_deref()
        .map(script::parse_fields)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let opts = ScriptOptions {
        fields,
        show_lost: args.show_lost_events,
        callchain: !args.no_callchain,
        home,
        json: args.json,
        inline: args.inline || !args.no_inline,
        srcline: args.srcline,
        ..ScriptOptions::default()
    };
    let files = MappedFiles;
    {
        let plan = script::plan(&session.evsels, &opts).map_err(anyhow::Error::msg)?;
        for n in &plan.notes {
            eprintln!("{n}");
        }
        let frames = opts.json && session.evsels.iter().any(|e| e.has_callchain());
        if frames || plan.needs_kernel_symbols(&session.evsels) {
            if let Some(k) = kernel_symbols(bytes, opts.home.as_deref()) {
                session.set_kernel_symbols(k);
            }
        }
        let mut s = Script::new(out, &session.evsels, plan, opts, &files);
        if let Some(t) = &session.tracing {
            s.set_printk(&t.printk);
        }
        let r = session.run(&mut |m, ev, e: Event<'_>| s.event(m, ev, e));
        r?;
        s.flush()?;
    }
    for w in &session.warnings {
        eprintln!("rprobe: warning: {}: {w}", args.input.display());
    }
    let st = session.stats;
    if st.lost_records > 0 && !args.show_lost_events {
        eprintln!(
            "Warning:\nProcessed {} events and lost {} chunks!\n\nCheck IO/CPU overload!\n",
            st.events, st.lost_records
        );
    }
    // perf_session__warn_about_errors: more than 5% of the samples dropped.
    let total = st.samples + st.lost_samples;
    if st.lost_samples > 0 && st.lost_samples as f64 / total as f64 > 0.05 {
        eprintln!(
            "Warning:\nProcessed {total} samples and lost {:3.2}%!\n",
            st.lost_samples as f64 * 100.0 / total as f64
        );
    }
    if st.compressed > 0 {
        eprintln!(
            "rprobe: warning: {}: {} compressed records (perf record -z) were skipped: their events are missing; record without -z",
            args.input.display(),
            st.compressed
        );
    }
    if st.bad_samples + st.bad_records > 0 {
        eprintln!(
            "rprobe: warning: {} samples and {} other records could not be parsed and were skipped",
            st.bad_samples, st.bad_records
        );
    }
    Ok(())
}
