//! Thin binary: all behaviour lives in the library so that it can be tested without a process.

fn main() {
    std::process::exit(cxr_edge::cli::main());
}
