//! `kb-usage`: Kill Bill usage from the command line. See `kb-usage --help`.

fn main() -> std::process::ExitCode {
    usage_cli::commands::main()
}
