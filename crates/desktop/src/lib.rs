//! `rounds-desktop-core`: everything the Rounds clinician app does, without the window.
//!
//! The Tauri shell (`src-tauri/`, package `rounds-desktop`) owns windows, the tray, OS
//! notifications and deep-link plumbing; each of its commands calls one method of the
//! [`Controller`] here. That split keeps the decisions (sign-in, keychain, the live queue,
//! alerts, the call) testable against a real server without a display.

pub mod alerts;
pub mod api;
pub mod call;
pub mod controller;
pub mod devices;
pub mod feed;
pub mod netcheck;
pub mod oidc;
pub mod policy;
pub mod secrets;

pub use alerts::{Alert, AlertKind};
pub use api::{ApiError, ServerApi};
pub use call::{CallParticipant, CallState, DeviceSlot, Devices};
pub use controller::{
    AppEvent, AppStatus, Connection, Controller, LinkOutcome, SignInRequest, SsoOptions,
};
pub use oidc::{Browser, SystemBrowser};
pub use policy::{Policy, Settings};
pub use secrets::{Keychain, MemoryStore, SecretStore};
