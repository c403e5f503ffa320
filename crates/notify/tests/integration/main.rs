//! End-to-end tests of rounds-notify against real local servers: an SMTP sink
//! (`tests/fixtures/smtp_sink.py`, Python aiosmtpd) and the in-process `FakeTwilio`.

mod api;
mod config;
mod email;
mod messages;
mod sms;
mod support;
