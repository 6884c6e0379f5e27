fn main() -> std::process::ExitCode {
    mailshift::cli::run()
}
