//! Compiles a spec given as a JSON file and prints its states, or every problem.
//! `cargo run --example compile -- spec.json`
fn main() {
    let path = std::env::args().nth(1).expect("usage: compile SPEC.json");
    let text = std::fs::read_to_string(&path).expect("cannot read the spec");
    match fsm_engine::Machine::compile_json(&text) {
        Ok(m) => {
            let names: Vec<&str> = m.states.iter().map(|s| s.name.as_str()).collect();
            println!("{}: {} states: {}", m.name, names.len(), names.join(", "));
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
