//! The `mailshift` binary: the command line is a thin host over the library, which knows
//! nothing of it (arguments, output formats and exit codes live here).

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
