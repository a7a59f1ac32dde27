//! Switchyard gateway (being built).

fn main() {}
