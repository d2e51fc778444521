//! `rprobe report`: overhead per command, shared object and symbol, like
//! `perf report --stdio`, for samples (by period) and tracepoint/probe events (by count).

use super::flamegraph::sample_chain;
use super::script::{kernel_symbols, map_input, MappedFiles};
use crate::replay::machine::Maps;
use crate::replay::report::{parse_sort, Report, Sym};
use crate::replay::script::{self, Script, ScriptOptions};
use crate::replay::session::{Event, Session};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  rprobe record -F 997 -g -- ./primes && rprobe report     where the CPU went
  rprobe report --no-children --sort sym                   self time per symbol
  rprobe report -g -i vfs.data                             who calls the probed function";

/// Print an overhead report of a perf.data file, as `perf report --stdio` does.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct ReportArgs {
    /// The perf.data file.
    #[arg(short = 'i', long = "input", default_value = "perf.data")]
    input: PathBuf,
    /// Keys of each entry, comma-separated: comm, dso, sym.
    #[arg(short = 's', long = "sort", default_value = "comm,dso,sym")]
    sort: String,
    /// Show only Self overhead (perf's --no-children); the default with callchains is both.
    #[arg(long = "no-children", conflicts_with = "children")]
    no_children: bool,
    /// Show Children and Self overhead (default when the file has callchains).
    #[arg(long)]
    children: bool,
    /// Under each entry, the call paths that lead to it.
    #[arg(short = 'g', long = "call-graph")]
    graph: bool,
    /// Accepted for perf compatibility: the output is always text.
    #[arg(long)]
    stdio: bool,
}

fn dso_name(d: Option<&str>) -> String {
    match d {
        None => "[unknown]".into(),
        Some(p) => p[p.rfind('/').map_or(0, |i| i + 1)..].to_string(),
    }
}

pub fn run(args: &ReportArgs, out: &mut dyn Write) -> Result<()> {
    let keys = parse_sort(&args.sort).map_err(anyhow::Error::msg)?;
    let map = map_input(&args.input)?;
    let bytes: &[u8] = &map;
    let home = std::env::var("HOME").ok();
    let mut session = Session::new(bytes, kernel_symbols(bytes, home.as_deref()))
        .with_context(|| format!("{}", args.input.display()))?;
    let opts = ScriptOptions {
        home,
        ..ScriptOptions::default()
    };
    let files = MappedFiles;
    let plan = script::plan(&session.evsels, &opts).map_err(anyhow::Error::msg)?;
    let mut sink = std::io::sink();
    let mut s = Script::new(&mut sink, &session.evsels, plan, opts, &files);
    let mut reports: Vec<Option<Report>> = session.evsels.iter().map(|_| None).collect();
    // Frames by (map set, its generation, the kernel maps' generation, chain): a chain names
    // the same frames while the maps it went through are unchanged.
    type ChainKey = (usize, u64, u64, Vec<u8>);
    let mut frames_of: HashMap<ChainKey, Vec<Sym>> = HashMap::new();
    let mut has_chains = false;
    session.run(&mut |m, evsels, e: Event<'_>| {
        let Event::Sample {
            evsel,
            sample,
            misc,
        } = e
        else {
            return Ok(());
        };
        let ev = &evsels[evsel];
        if ev.is_tracking() {
            return Ok(());
        }
        has_chains |= sample.callchain.is_some_and(|c| !c.is_empty());
        let period = ev.weight(&sample);
        let thread = m.findnew(sample.pid, sample.tid);
        let (maps, comm) = (thread.maps, thread.comm.to_string());
        let chain = match s.unwound_chain(m, maps, ev, &sample) {
            Some(c) => {
                has_chains = true;
                c.to_vec()
            }
            None => sample_chain(&sample, misc),
        };
        let gen = m.maps.get(maps).map_or(0, Maps::generation);
        let key = (maps, gen, m.kernel.generation(), chain);
        if !frames_of.contains_key(&key) {
            let mut with_chain = sample;
            with_chain.callchain = Some(&key.3);
            let syms = s
                .frames(m, maps, &with_chain)
                .into_iter()
                .map(|(addr, sym, dso)| {
                    let kernel = dso.as_deref() == Some("[kernel.kallsyms]")
                        || addr >= 0xffff_8000_0000_0000;
                    Sym {
                        dso: dso_name(dso.as_deref()),
                        name: sym.map_or_else(|| format!("{addr:#018x}"), |(n, _)| n.to_string()),
                        kernel,
                    }
                })
                .collect();
            frames_of.insert(key.clone(), syms);
        }
        let report = reports[evsel].get_or_insert_with(|| Report::new(keys.clone()));
        report.add(&comm, &frames_of[&key], period);
        Ok(())
    })?;
    drop(s);
    let children = !args.no_children && (args.children || has_chains);
    let lost = session.stats.lost;
    let mut any = false;
    for (ev, r) in session.evsels.iter().zip(&reports) {
        let Some(r) = r else { continue };
        if !any {
            writeln!(out, "# Total Lost Samples: {lost}\n#")?;
        }
        any = true;
        out.write_all(r.render(&ev.name, children, args.graph).as_bytes())?;
        writeln!(out)?;
    }
    if !any {
        bail!("{}: no samples to report", args.input.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::abi::misc;
    use crate::perf::reader::testfile::file;
    use crate::perf::synth::{self, MapEntry, SampleId};

    #[test]
    fn a_chain_after_its_map_is_replaced_names_the_new_file() {
        // /x/a mapped, a sample in it; /x/b mapped over it (an exec), the same ip again.
        let mut d = Vec::new();
        for (time, path) in [(5, "/x/a"), (15, "/x/b")] {
            let m = MapEntry {
                start: 0x400000,
                end: 0x402000,
                perms: *b"r-xp",
                pgoff: 0,
                maj: 0,
                min: 0,
                ino: 0,
                path: path.into(),
            };
            let id = SampleId {
                pid: 7,
                tid: 7,
                time,
                id: 1,
                ..SampleId::default()
            };
            synth::mmap2(&mut d, 7, 7, &m, &id);
            d.extend(super::super::flamegraph::tests::sample_in(
                time + 5,
                misc::USER,
                &[0x401000],
            ));
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("perf.data");
        let attr = super::super::flamegraph::tests::attr();
        std::fs::write(&path, file(&[(attr, vec![1])], &d, &[])).expect("write");
        let args = ReportArgs {
            input: path,
            sort: "dso".into(),
            no_children: true,
            children: false,
            graph: false,
            stdio: true,
        };
        let mut out = Vec::new();
        run(&args, &mut out).expect("report");
        let text = String::from_utf8(out).expect("utf-8");
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(str::trim)
            .collect();
        assert_eq!(rows, ["50.00%  a", "50.00%  b"], "{text}");
    }
}
