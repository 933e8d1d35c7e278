//! A command can only be built through its constructors, from values that can only be
//! valid: writing one down by hand around them does not compile. Each file under `ui/` is
//! such an attempt, with the compiler's refusal beside it (regenerate the `.stderr` files
//! with `TRYBUILD=overwrite` after a toolchain update).

#[test]
fn a_command_cannot_hold_an_invalid_value() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
