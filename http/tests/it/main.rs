//! The serving loop on real loopback sockets, under paused tokio time
//! (timers jump ahead when every task waits, so a 10 s bound takes no
//! real 10 s).

mod answers;
mod common;
mod drain;
mod limits;
mod tls;
