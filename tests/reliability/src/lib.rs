//! `rounds-reliability`: Rounds on hostile networks and under hostile input.
//!
//! The pieces the reliability tests share: network namespaces joined by a veth pair
//! ([`netns`]), delay, jitter and loss on that link where the kernel has no netem
//! ([`impair`]), the real `rounds-server` binary as a child process ([`server`]), and a
//! two-person visit driven by the Rust WebRTC client ([`call`]). The tests themselves live in
//! `tests/reliability/`; `scripts/reliability.sh` runs the long forms. `docs/reliability.md`
//! has the results.

pub mod call;
pub mod impair;
pub mod netns;
pub mod server;
