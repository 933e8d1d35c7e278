fn main() {
    let _ = domain::PositiveAmount(-500);
}
