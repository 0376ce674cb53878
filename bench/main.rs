//! dm-bench: the built-in load generator (SPEC §10). Its scenarios arrive
//! with the benchmark release; until then it says so instead of pretending.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("dm-bench: no scenarios in this release yet (see the README's Status section)");
    ExitCode::from(2)
}
