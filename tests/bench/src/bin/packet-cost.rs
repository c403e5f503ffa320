//! Cost per forwarded packet (measure 2): the SFU's per-packet work on 1200-byte RTP packets,
//! against a baseline of a bare AES-GCM seal plus `sendmmsg`.
//!
//! The forwarding path is the one the SFU runs, with the same `rtc` SRTP contexts and crypto
//! provider: unprotect with the publisher leg's keys, rewrite the header (SSRC, payload type,
//! sequence number, timestamp; extensions dropped), protect with the subscriber leg's keys,
//! and send in `sendmmsg` batches to a loopback UDP socket. The baseline seals the same
//! payloads with the same provider's AES-128-GCM and sends them the same way. Everything
//! runs on one thread; the figure is wall time per packet, which on an otherwise idle core is
//! CPU time.

use std::io::IoSlice;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrIn, sendmmsg};
use rounds_bench::{machine, pin_self, write_section};
use rtc::crypto::{AeadAlgorithm, RTCCrypto};
use rtc::rtp::header::Header;
use rtc::shared::marshal::{Marshal, Unmarshal};
use rtc::srtp::context::Context;
use rtc::srtp::option::srtp_no_replay_protection;
use rtc::srtp::protection_profile::ProtectionProfile;

const PAYLOAD: usize = 1200 - 12;
const BATCH: usize = 32;

#[derive(Parser)]
#[command(
    about = "Cost per forwarded packet: unprotect, rewrite, protect and send, against AES-GCM seal plus sendmmsg."
)]
struct Args {
    /// Packets per measured round.
    #[arg(long, default_value_t = 20_000)]
    packets: usize,
    /// Rounds; the best (least disturbed) is reported.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Core to pin to (taskset); negative leaves it unpinned.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    core: i64,
    #[arg(long)]
    report: Option<std::path::PathBuf>,
    #[arg(long)]
    smoke: bool,
}

struct Sink {
    socket: UdpSocket,
    to: SockaddrIn,
    headers: MultiHeaders<SockaddrIn>,
    _receiver: UdpSocket,
}

impl Sink {
    fn new() -> anyhow::Result<Sink> {
        let receiver = UdpSocket::bind("127.0.0.1:0")?;
        let std::net::SocketAddr::V4(addr) = receiver.local_addr()? else {
            anyhow::bail!("not IPv4");
        };
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        Ok(Sink {
            socket,
            to: SockaddrIn::from(addr),
            headers: MultiHeaders::preallocate(BATCH, None),
            _receiver: receiver,
        })
    }

    /// Sends the packets with one `sendmmsg` per batch. A full receive buffer drops
    /// datagrams in the kernel, as it would for a slow client; the send cost is the same.
    fn send(&mut self, packets: &[&[u8]]) {
        let slices: Vec<[IoSlice<'_>; 1]> = packets.iter().map(|p| [IoSlice::new(p)]).collect();
        let addrs: Vec<Option<SockaddrIn>> = vec![Some(self.to); slices.len()];
        let _ = sendmmsg(
            self.socket.as_raw_fd(),
            &mut self.headers,
            slices.iter(),
            &addrs,
            [],
            MsgFlags::empty(),
        );
    }
}

fn header(seq: u16, ssrc: u32, pt: u8) -> Header {
    Header {
        version: 2,
        payload_type: pt,
        sequence_number: seq,
        timestamp: u32::from(seq) * 3000,
        ssrc,
        ..Default::default()
    }
}

fn plain_packet(seq: u16) -> anyhow::Result<Vec<u8>> {
    let mut out = header(seq, 0x1234_5678, 96).marshal()?.to_vec();
    out.extend((0..PAYLOAD).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seq as u8)));
    Ok(out)
}

fn context(
    profile: ProtectionProfile,
    seed: u8,
    crypto: &dyn RTCCrypto,
) -> anyhow::Result<Context> {
    let key: Vec<u8> = (0..profile.key_len() as u8).map(|i| i ^ seed).collect();
    let salt: Vec<u8> = (0..profile.salt_len() as u8)
        .map(|i| i.wrapping_add(seed))
        .collect();
    Ok(Context::new(
        &key,
        &salt,
        profile,
        Some(srtp_no_replay_protection()),
        None,
        crypto,
    )?)
}

/// One round of the SFU's path; returns nanoseconds per forwarded packet. `fanout` copies
/// are protected and sent per packet unprotected, as with that many subscribers.
fn forward_round(
    profile: ProtectionProfile,
    crypto: &dyn RTCCrypto,
    packets: usize,
    fanout: usize,
    sink: &mut Sink,
) -> anyhow::Result<f64> {
    let mut publisher = context(profile, 1, crypto)?;
    let mut inbound = context(profile, 1, crypto)?;
    let mut outbound: Vec<Context> = (0..fanout)
        .map(|i| context(profile, 2 + i as u8, crypto))
        .collect::<Result<_, _>>()?;
    let wire: Vec<_> = (0..packets)
        .map(|i| {
            publisher
                .encrypt_rtp(&plain_packet(i as u16)?)
                .map_err(anyhow::Error::from)
        })
        .collect::<Result<_, _>>()?;
    let mut out: Vec<bytes::BytesMut> = Vec::with_capacity(BATCH);
    let start = Instant::now();
    for (i, packet) in wire.iter().enumerate() {
        let plain = inbound.decrypt_rtp(packet)?;
        let mut buf = &plain[..];
        let mut h = Header::unmarshal(&mut buf)?;
        let payload = bytes::Bytes::copy_from_slice(buf);
        h.extension = false;
        h.extensions.clear();
        for (leg, ctx) in outbound.iter_mut().enumerate() {
            let mut rewritten = h.clone();
            rewritten.ssrc = 0x0bad_cafe ^ leg as u32;
            rewritten.payload_type = 100;
            rewritten.sequence_number = h.sequence_number.wrapping_add(17);
            rewritten.timestamp = h.timestamp.wrapping_add(90_000);
            let packet = rtc::rtp::Packet {
                header: rewritten,
                payload: payload.clone(),
            };
            out.push(ctx.encrypt_rtp(&packet.marshal()?)?);
            if out.len() == BATCH {
                let refs: Vec<&[u8]> = out.iter().map(|b| &b[..]).collect();
                sink.send(&refs);
                out.clear();
            }
        }
        if i + 1 == packets && !out.is_empty() {
            let refs: Vec<&[u8]> = out.iter().map(|b| &b[..]).collect();
            sink.send(&refs);
            out.clear();
        }
    }
    Ok(start.elapsed().as_nanos() as f64 / (packets * fanout) as f64)
}

/// The baseline: AES-128-GCM seal of the same 1200-byte packets, sent with `sendmmsg`.
fn baseline_round(crypto: &dyn RTCCrypto, packets: usize, sink: &mut Sink) -> anyhow::Result<f64> {
    let key = [7u8; 16];
    let mut aead = crypto.new_aead(AeadAlgorithm::Aes128Gcm, &key)?;
    let tag_len = aead.tag_len();
    let plain: Vec<Vec<u8>> = (0..packets)
        .map(|i| plain_packet(i as u16))
        .collect::<Result<_, _>>()?;
    let mut batch: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; 1200 + tag_len]).collect();
    let mut filled = 0;
    let start = Instant::now();
    for (i, p) in plain.iter().enumerate() {
        let buf = &mut batch[filled];
        buf[..p.len()].copy_from_slice(p);
        let mut nonce = [0u8; 12];
        nonce[10..].copy_from_slice(&(i as u16).to_be_bytes());
        let (head, rest) = buf.split_at_mut(12);
        let (body, tag) = rest.split_at_mut(PAYLOAD);
        aead.seal_in_place(&nonce, head, body, &mut tag[..tag_len])?;
        filled += 1;
        if filled == BATCH || i + 1 == packets {
            let refs: Vec<&[u8]> = batch[..filled].iter().map(|b| &b[..]).collect();
            sink.send(&refs);
            filled = 0;
        }
    }
    Ok(start.elapsed().as_nanos() as f64 / packets as f64)
}

fn best(mut f: impl FnMut() -> anyhow::Result<f64>, rounds: usize) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        best = best.min(f()?);
    }
    Ok(best)
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.packets = 500;
        args.rounds = 1;
    }
    if args.core >= 0 {
        pin_self(args.core as usize)?;
    }
    let provider = rtc::crypto::default_provider().context("crypto provider")?;
    let crypto = provider.crypto();
    let mut sink = Sink::new()?;
    let baseline = best(
        || baseline_round(crypto, args.packets, &mut sink),
        args.rounds,
    )?;
    let mut rows = Vec::new();
    for (name, profile) in [
        ("AEAD_AES_128_GCM", ProtectionProfile::AeadAes128Gcm),
        (
            "AES_CM_128_HMAC_SHA1_80",
            ProtectionProfile::Aes128CmHmacSha1_80,
        ),
    ] {
        for fanout in [1usize, 10] {
            let ns = best(
                || forward_round(profile, crypto, args.packets, fanout, &mut sink),
                args.rounds,
            )?;
            eprintln!(
                "{name:<24} fan-out {fanout:>2}: {:>6.0} ns per forwarded packet, {:.2}× baseline (target ≤ 1.5×)",
                ns,
                ns / baseline
            );
            rows.push((name, fanout, ns));
        }
    }
    eprintln!("baseline (AES-128-GCM seal + sendmmsg): {baseline:.0} ns per packet");
    let mut out = format!(
        "## Cost per forwarded packet (measure 2)\n\nMachine: {}. One pinned thread, {} packets of 1200 bytes per round, best of {} rounds. \
         SFU path: SRTP unprotect with the publisher leg's context, header rewrite (SSRC, payload type, sequence number, timestamp; extensions dropped), \
         SRTP protect with the subscriber leg's context, `sendmmsg` in batches of {BATCH} to a loopback socket — the `rtc` {} SRTP contexts and crypto provider (`{}`) the SFU uses. \
         With fan-out 10 the packet is unprotected once and protected ten times, as the SFU does for ten subscribers. \
         Baseline: AES-128-GCM seal of the same packet with the same provider, plus the same `sendmmsg`.\n\n\
         | path | fan-out | ns per forwarded packet | ÷ baseline | target |\n|---|---:|---:|---:|---:|\n| baseline: AES-128-GCM seal + sendmmsg | – | {baseline:.0} | 1.00× | |\n",
        machine(),
        args.packets,
        args.rounds,
        "0.21.1",
        provider.name(),
    );
    for (name, fanout, ns) in &rows {
        let ratio = ns / baseline;
        out.push_str(&format!(
            "| {name} unprotect → rewrite → protect → sendmmsg | {fanout} | {ns:.0} | {ratio:.2}× | ≤ 1.5×: **{}** |\n",
            if ratio <= 1.5 { "met" } else { "missed" }
        ));
    }
    out.push_str("\nRerun: `scripts/bench.sh packet-cost`.\n");
    println!("{out}");
    if let Some(path) = &args.report {
        write_section(path, "packet-cost", &out)?;
    }
    Ok(())
}
