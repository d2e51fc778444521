//! The `rprobe` binary: parses arguments, runs one command, maps the result to an exit code.

fn main() {
    std::process::exit(rprobe::cli::main());
}
