//! The session store as the harness sees it from outside: what it says of itself when
//! asked (`INFO`, over Redis's protocol), and its timeline over a run, so a failing run
//! can say what the store did when sessions were lost.

pub mod info;
pub mod resp;
pub mod watch;
