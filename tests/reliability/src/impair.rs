//! Delay, jitter and loss on the clients' link, for kernels built without `sch_netem`.
//!
//! The loss case wants `tc netem` (100 ms ± 30 ms and a loss rate). Where the kernel
//! has no netem, this module does the same job in userspace: iptables (legacy, because the
//! kernel's nftables has no `queue` statement here) sends every packet crossing the client's
//! veth, in both directions, to an NFQUEUE; a thread inside the client namespace takes each
//! one, drops it with the given probability or holds it for a delay drawn from a normal
//! distribution, and then accepts it. Verdicts go back in release order, not arrival order,
//! so a packet given a short delay overtakes one given a long delay: the reordering netem
//! causes with jitter. The packets then carry on through the real kernel path.
//!
//! [`DelayLine`] is the decision (which packet goes when), plain data and a clock;
//! [`NfQueueImpairment`] is the thin driver around it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::netns::ns_run;

/// What a link does to each packet, in each direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Mean one-way delay.
    pub delay: Duration,
    /// Standard deviation of the delay (netem's `distribution normal`).
    pub jitter: Duration,
    /// Share of packets dropped, 0.0 to 1.0.
    pub loss: f64,
}

impl Impairment {
    /// The bad network: 100 ms ± 30 ms each way, and `loss_pct` % of packets lost.
    pub fn bad_network(loss_pct: u32) -> Impairment {
        Impairment {
            delay: Duration::from_millis(100),
            jitter: Duration::from_millis(30),
            loss: f64::from(loss_pct) / 100.0,
        }
    }
}

/// Counters kept by a [`DelayLine`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LineStats {
    /// Packets taken in.
    pub packets: u64,
    /// Packets dropped on purpose.
    pub dropped: u64,
    /// Packets released after one that arrived later than them (RFC 4737's reordered
    /// packets).
    pub reordered: u64,
    /// Sum of the delays given, in microseconds (for the mean).
    pub delay_us_sum: u64,
}

/// Holds each packet for a random delay, or drops it. No I/O: the caller says when.
#[derive(Debug)]
pub struct DelayLine<T> {
    impairment: Impairment,
    rng: StdRng,
    /// Held packets by (release time, arrival number).
    held: BTreeMap<(Instant, u64), T>,
    arrivals: u64,
    /// The latest arrival released so far.
    released_max: Option<u64>,
    stats: LineStats,
}

impl<T> DelayLine<T> {
    pub fn new(impairment: Impairment, seed: u64) -> DelayLine<T> {
        DelayLine {
            impairment,
            rng: StdRng::seed_from_u64(seed),
            held: BTreeMap::new(),
            arrivals: 0,
            released_max: None,
            stats: LineStats::default(),
        }
    }

    /// Takes a packet that arrived at `now`: holds it, or hands it back to be dropped.
    pub fn push(&mut self, item: T, now: Instant) -> Option<T> {
        self.stats.packets += 1;
        if self.rng.r#gen::<f64>() < self.impairment.loss {
            self.stats.dropped += 1;
            return Some(item);
        }
        let delay = self.sample_delay();
        self.stats.delay_us_sum += delay.as_micros() as u64;
        self.held.insert((now + delay, self.arrivals), item);
        self.arrivals += 1;
        None
    }

    /// Packets whose time has come, in release order.
    pub fn due(&mut self, now: Instant) -> Vec<T> {
        let later = self.held.split_off(&(now, u64::MAX));
        let due = std::mem::replace(&mut self.held, later);
        let mut out = Vec::with_capacity(due.len());
        for ((_, n), item) in due {
            if self.released_max.is_some_and(|m| m > n) {
                self.stats.reordered += 1;
            }
            self.released_max = Some(self.released_max.map_or(n, |m| m.max(n)));
            out.push(item);
        }
        out
    }

    /// When the next held packet is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.keys().next().map(|(at, _)| *at)
    }

    /// Everything still held, to be let go at once (when the impairment stops).
    pub fn drain(&mut self) -> Vec<T> {
        std::mem::take(&mut self.held).into_values().collect()
    }

    pub fn stats(&self) -> LineStats {
        self.stats
    }

    /// A normal delay (Box-Muller), clamped at zero: a packet cannot leave before it came.
    fn sample_delay(&mut self) -> Duration {
        let mean = self.impairment.delay.as_secs_f64();
        let sigma = self.impairment.jitter.as_secs_f64();
        if sigma == 0.0 {
            return self.impairment.delay;
        }
        let u1: f64 = self.rng.r#gen::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = self.rng.r#gen();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        Duration::from_secs_f64((mean + sigma * z).max(0.0))
    }
}

/// The counters of a running [`NfQueueImpairment`], readable from any thread.
#[derive(Debug, Default)]
struct SharedStats {
    packets: AtomicU64,
    dropped: AtomicU64,
    reordered: AtomicU64,
    delay_us_sum: AtomicU64,
}

/// A userspace netem on one interface of a namespace: every packet in and out of `dev` goes
/// through a [`DelayLine`]. Stopped (held packets let go, rules removed) on drop.
pub struct NfQueueImpairment {
    ns: String,
    rules: Vec<Vec<String>>,
    stop: Arc<AtomicBool>,
    stats: Arc<SharedStats>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

/// The iptables binary that speaks to the kernel's xtables (NFQUEUE has no nftables
/// statement on kernels without `CONFIG_NFT_QUEUE`).
const IPTABLES: &str = "iptables-legacy";

impl NfQueueImpairment {
    /// Binds NFQUEUE `queue` inside namespace `ns`, then sends `dev`'s traffic, both ways,
    /// to it. The queue is bound before any packet is sent to it, so none is dropped for want
    /// of a listener.
    pub fn start(
        ns: &str,
        dev: &str,
        queue: u16,
        impairment: Impairment,
        seed: u64,
    ) -> anyhow::Result<NfQueueImpairment> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SharedStats::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let path = format!("/run/netns/{ns}");
        let thread = {
            let (stop, stats) = (stop.clone(), stats.clone());
            std::thread::Builder::new()
                .name(format!("nfqueue {ns}"))
                .spawn(move || {
                    let opened = (|| {
                        let file = std::fs::File::open(&path)
                            .with_context(|| format!("opening {path}"))?;
                        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                            .with_context(|| format!("entering the namespace {path}"))?;
                        open_queue(queue)
                    })();
                    match opened {
                        Ok(q) => {
                            let _ = ready_tx.send(Ok(()));
                            serve(q, queue, impairment, seed, &stop, &stats)
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("{e:#}")));
                            Err(e)
                        }
                    }
                })?
        };
        let mut imp = NfQueueImpairment {
            ns: ns.to_owned(),
            rules: Vec::new(),
            stop,
            stats,
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("binding NFQUEUE {queue} in {ns}: {e}"),
            Err(_) => bail!("the NFQUEUE thread for {ns} ended before binding"),
        }
        let num = queue.to_string();
        for (chain, dir) in [("INPUT", "-i"), ("OUTPUT", "-o")] {
            let rule: Vec<String> = [chain, dir, dev, "-j", "NFQUEUE", "--queue-num", &num]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            let mut args = vec![IPTABLES, "-w", "-A"];
            args.extend(rule.iter().map(String::as_str));
            ns_run(ns, &args).context(
                "sending the link's packets to NFQUEUE needs iptables-legacy (the `iptables` \
                 package) and a kernel with CONFIG_NETFILTER_XT_TARGET_NFQUEUE",
            )?;
            imp.rules.push(rule);
        }
        Ok(imp)
    }

    /// The counters so far.
    pub fn stats(&self) -> LineStats {
        LineStats {
            packets: self.stats.packets.load(Ordering::Relaxed),
            dropped: self.stats.dropped.load(Ordering::Relaxed),
            reordered: self.stats.reordered.load(Ordering::Relaxed),
            delay_us_sum: self.stats.delay_us_sum.load(Ordering::Relaxed),
        }
    }

    /// Whether the queue thread is still serving (it only ends on a netlink error or drop).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for NfQueueImpairment {
    fn drop(&mut self) {
        for rule in &self.rules {
            let mut args = vec![IPTABLES, "-w", "-D"];
            args.extend(rule.iter().map(String::as_str));
            let _ = ns_run(&self.ns, &args);
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn open_queue(num: u16) -> anyhow::Result<nfq::Queue> {
    let mut q = nfq::Queue::open().context("opening a netfilter queue socket")?;
    q.bind(num).context("binding the queue")?;
    // Only the verdict matters: do not copy packet contents to userspace.
    q.set_copy_range(num, 0)?;
    q.set_queue_max_len(num, 16_384)?;
    q.set_nonblocking(true);
    Ok(q)
}

/// Longest sleep between looks at the queue socket: the granularity of the delay.
const TICK: Duration = Duration::from_millis(1);

fn serve(
    mut q: nfq::Queue,
    num: u16,
    impairment: Impairment,
    seed: u64,
    stop: &AtomicBool,
    shared: &SharedStats,
) -> anyhow::Result<()> {
    let mut line = DelayLine::new(impairment, seed);
    let publish = |line: &DelayLine<nfq::Message>| {
        let s = line.stats();
        shared.packets.store(s.packets, Ordering::Relaxed);
        shared.dropped.store(s.dropped, Ordering::Relaxed);
        shared.reordered.store(s.reordered, Ordering::Relaxed);
        shared.delay_us_sum.store(s.delay_us_sum, Ordering::Relaxed);
    };
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        // Take everything waiting, then let go of what is due.
        let mut took = 0;
        loop {
            match q.recv() {
                Ok(msg) => {
                    took += 1;
                    if let Some(mut dropped) = line.push(msg, Instant::now()) {
                        dropped.set_verdict(nfq::Verdict::Drop);
                        q.verdict(dropped)?;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e).context("reading the netfilter queue"),
            }
        }
        for mut msg in line.due(Instant::now()) {
            msg.set_verdict(nfq::Verdict::Accept);
            q.verdict(msg)?;
        }
        if took > 0 {
            publish(&line);
            continue;
        }
        let sleep = line
            .next_due()
            .map_or(TICK, |at| at.saturating_duration_since(Instant::now()))
            .min(TICK);
        std::thread::sleep(sleep);
    };
    publish(&line);
    for mut msg in line.drain() {
        msg.set_verdict(nfq::Verdict::Accept);
        let _ = q.verdict(msg);
    }
    let _ = q.unbind(num);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(loss: f64) -> Impairment {
        Impairment {
            loss,
            ..Impairment::bad_network(0)
        }
    }

    #[test]
    fn drops_about_the_share_asked_for() {
        let mut line = DelayLine::new(bad(0.10), 7);
        let t = Instant::now();
        let dropped = (0..20_000).filter(|&i| line.push(i, t).is_some()).count();
        assert!(
            (1_700..2_300).contains(&dropped),
            "{dropped} of 20,000 dropped at 10 %"
        );
        assert_eq!(line.stats().dropped, dropped as u64);
    }

    #[test]
    fn delays_center_on_the_mean_with_the_spread_asked_for() {
        let mut line = DelayLine::new(bad(0.0), 11);
        let t = Instant::now();
        let n = 20_000u32;
        let mut released = Vec::new();
        for i in 0..n {
            line.push(i, t);
        }
        // Step through time a millisecond at a time and note when each packet leaves.
        let mut at = t;
        while line.next_due().is_some() {
            at += Duration::from_millis(1);
            for _ in line.due(at) {
                released.push(at.duration_since(t).as_secs_f64() * 1000.0);
            }
        }
        assert_eq!(released.len(), n as usize);
        let mean = released.iter().sum::<f64>() / f64::from(n);
        let var = released.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / f64::from(n);
        assert!((98.0..103.0).contains(&mean), "mean delay {mean:.1} ms");
        assert!(
            (27.0..33.0).contains(&var.sqrt()),
            "spread {:.1} ms",
            var.sqrt()
        );
    }

    #[test]
    fn packets_20_ms_apart_are_reordered_like_netem_reorders_them() {
        let mut line = DelayLine::new(bad(0.0), 3);
        let t = Instant::now();
        let mut order = Vec::new();
        for i in 0..1_000u32 {
            let now = t + Duration::from_millis(20 * u64::from(i));
            order.extend(line.due(now));
            line.push(i, now);
        }
        order.extend(line.due(t + Duration::from_secs(3600)));
        assert_eq!(order.len(), 1_000);
        let out_of_order = order.windows(2).filter(|w| w[1] < w[0]).count();
        // Two delays of sd 30 ms differ by more than 20 ms about a third of the time.
        assert!(
            (150..450).contains(&out_of_order),
            "{out_of_order} inversions"
        );
        let reordered = line.stats().reordered;
        assert!((150..450).contains(&reordered), "{reordered} reordered");
    }

    #[test]
    fn nothing_is_released_early_and_drain_lets_everything_go() {
        let mut line = DelayLine::new(bad(0.0), 5);
        let t = Instant::now();
        for i in 0..100u32 {
            line.push(i, t);
        }
        let first = line.next_due().expect("held");
        assert!(line.due(first - Duration::from_micros(1)).is_empty());
        assert!(!line.due(first).is_empty());
        let rest = line.drain();
        assert!(!rest.is_empty());
        assert_eq!(line.next_due(), None);
    }
}
