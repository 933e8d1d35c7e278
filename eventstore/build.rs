//! The migrations are embedded at compile time; a new file in `migrations/` must rebuild
//! the crate, which the macro alone does not tell cargo.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
