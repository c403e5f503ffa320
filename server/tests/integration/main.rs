//! End-to-end tests of `rounds-server`: the real binary, on a real socket, with a temporary
//! data directory, a real SMTP server and a Twilio-shaped HTTP receiver.

#![allow(clippy::unwrap_used)]

mod abuse;
mod bad_input;
mod check;
mod cli;
mod common;
mod desktop_feed;
mod durability;
mod ehr;
mod flow;
mod idp;
mod invitations;
mod patient_web;
mod phi;
mod signaling;
mod sso;
