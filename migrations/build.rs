//! The migrations are embedded at compile time; a new or edited file in this folder must
//! rebuild the crate, which the macro alone does not tell cargo.
fn main() {
    println!("cargo:rerun-if-changed=.");
}
