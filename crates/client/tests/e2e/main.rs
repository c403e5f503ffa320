//! `rounds-client` against a real rounds-server running in this process.

mod browsers;
mod harness;
mod media;
mod signaling;
mod simulcast;
