//! fxn-cli: the command-line tool (commands arrive in the next commit).

fn main() {}
