//! Corpus benchmark (being written).
fn main() {}
