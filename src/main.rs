//! The `rise-registry` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    rise_registry::run::main()
}
