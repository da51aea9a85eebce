fn main() -> std::process::ExitCode {
    devsim::cli::main()
}
