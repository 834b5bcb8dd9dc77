//! Regenerates `testdata/` (fixtures made only by code in this repository).
//! Usage: `cargo run --example gen_testdata [DIR]` (default `testdata`).

#[path = "../tests/support/testdata.rs"]
mod testdata;

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "testdata".into());
    for name in testdata::generate(std::path::Path::new(&dir))? {
        println!("wrote {dir}/{name}");
    }
    Ok(())
}
