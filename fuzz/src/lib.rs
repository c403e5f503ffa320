//! What the media fuzz targets share: one SFU, started once per fuzzing process on loopback,
//! on a single-threaded runtime that the fuzzer's own thread drives while it feeds an input.
//! With no second thread, each command to the SFU's driver and its reply is a task switch,
//! not a cross-thread wake-up: fewer microseconds per input, the same code under test.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

use rounds_server::sfu::{Sfu, SfuConfig, VideoCodec};
use tokio::runtime::Runtime;

struct Shared {
    runtime: Runtime,
    sfu: Sfu,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let sfu = runtime
            .block_on(Sfu::start(SfuConfig {
                udp_listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
                advertise_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                tcp_port: Some(443),
                udp_enabled: true,
                video_codec: VideoCodec::Vp8,
                connect_deadline: rounds_server::sfu::CONNECT_DEADLINE,
            }))
            .expect("the SFU starts");
        Shared { runtime, sfu }
    })
}

/// The SFU every input goes to.
pub fn sfu() -> &'static Sfu {
    &shared().sfu
}

/// Runs `future` to completion on the SFU's runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    shared().runtime.block_on(future)
}
