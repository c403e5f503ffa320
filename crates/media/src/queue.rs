//! A small bounded queue between a capture thread and whoever consumes its frames.
//!
//! Capture threads must never block: a camera or sound card that is not serviced drops data
//! of its own accord, and later than we would. So [`FrameSender::push`] never waits; when
//! the queue is full it drops the *oldest* frame, because for live media the newest frame is
//! the one worth having. Consumers can wait synchronously ([`FrameReceiver::recv_timeout`])
//! or asynchronously ([`FrameReceiver::recv`]).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A bounded, drop-oldest queue of frames: the sending half and the receiving half.
///
/// Both halves can be cloned. Each frame goes to exactly one receiver.
///
/// # Panics
/// If `capacity` is zero.
pub fn frame_queue<T>(capacity: usize) -> (FrameSender<T>, FrameReceiver<T>) {
    assert!(capacity > 0, "a frame queue needs room for one frame");
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::with_capacity(capacity),
            capacity,
            senders: 1,
            receivers: 1,
            dropped: 0,
            pushed: 0,
        }),
        ready: Condvar::new(),
        notify: tokio::sync::Notify::new(),
    });
    (
        FrameSender {
            shared: shared.clone(),
        },
        FrameReceiver { shared },
    )
}

/// Why [`FrameReceiver::recv_timeout`] returned without a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// No frame arrived in time; the source is still there.
    #[error("no frame arrived in time")]
    Timeout,
    /// The queue is empty and every sender is gone (the capture stopped).
    #[error("the source stopped")]
    Closed,
}

struct State<T> {
    queue: VecDeque<T>,
    capacity: usize,
    senders: usize,
    receivers: usize,
    dropped: u64,
    pushed: u64,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    notify: tokio::sync::Notify,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The producing half of a [`frame_queue`].
pub struct FrameSender<T> {
    shared: Arc<Shared<T>>,
}

/// The consuming half of a [`frame_queue`].
pub struct FrameReceiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> std::fmt::Debug for FrameSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.shared.lock();
        f.debug_struct("FrameSender")
            .field("queued", &s.queue.len())
            .field("dropped", &s.dropped)
            .finish()
    }
}

impl<T> std::fmt::Debug for FrameReceiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.shared.lock();
        f.debug_struct("FrameReceiver")
            .field("queued", &s.queue.len())
            .field("dropped", &s.dropped)
            .finish()
    }
}

impl<T> Clone for FrameSender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        FrameSender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Clone for FrameReceiver<T> {
    fn clone(&self) -> Self {
        self.shared.lock().receivers += 1;
        FrameReceiver {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for FrameSender<T> {
    fn drop(&mut self) {
        let last = {
            let mut s = self.shared.lock();
            s.senders -= 1;
            s.senders == 0
        };
        if last {
            self.shared.ready.notify_all();
            self.shared.notify.notify_waiters();
        }
    }
}

impl<T> Drop for FrameReceiver<T> {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        s.receivers -= 1;
        if s.receivers == 0 {
            s.queue.clear();
        }
    }
}

impl<T> FrameSender<T> {
    /// Queues a frame without waiting; when the queue is full the oldest frame is dropped.
    /// Returns false (and drops `frame`) when every receiver is gone, which tells a capture
    /// thread to stop.
    pub fn push(&self, frame: T) -> bool {
        {
            let mut s = self.shared.lock();
            if s.receivers == 0 {
                return false;
            }
            if s.queue.len() >= s.capacity {
                s.queue.pop_front();
                s.dropped += 1;
            }
            s.queue.push_back(frame);
            s.pushed += 1;
        }
        self.shared.ready.notify_one();
        self.shared.notify.notify_one();
        true
    }

    /// True while at least one receiver exists.
    pub fn is_open(&self) -> bool {
        self.shared.lock().receivers > 0
    }

    /// Frames dropped because the consumer fell behind.
    pub fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }
}

impl<T> FrameReceiver<T> {
    /// The oldest queued frame, if any, without waiting.
    pub fn try_recv(&self) -> Option<T> {
        self.shared.lock().queue.pop_front()
    }

    /// The newest queued frame, discarding older ones (what a video renderer wants).
    pub fn latest(&self) -> Option<T> {
        let mut s = self.shared.lock();
        let newest = s.queue.pop_back();
        let older = s.queue.len() as u64;
        s.queue.clear();
        s.dropped += older;
        newest
    }

    /// Waits up to `timeout` for a frame (blocking the calling thread).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        let deadline = Instant::now() + timeout;
        let mut s = self.shared.lock();
        loop {
            if let Some(frame) = s.queue.pop_front() {
                return Ok(frame);
            }
            if s.senders == 0 {
                return Err(RecvError::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RecvError::Timeout);
            }
            s = self
                .shared
                .ready
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits for the next frame; `None` once the queue is empty and every sender is gone.
    pub async fn recv(&self) -> Option<T> {
        loop {
            // Register interest before looking, so a push in between is not missed.
            let notified = self.shared.notify.notified();
            {
                let mut s = self.shared.lock();
                if let Some(frame) = s.queue.pop_front() {
                    return Some(frame);
                }
                if s.senders == 0 {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Frames waiting now.
    pub fn len(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// True when no frame is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Frames dropped so far because the consumer fell behind.
    pub fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }

    /// Frames pushed so far (dropped ones included).
    pub fn pushed(&self) -> u64 {
        self.shared.lock().pushed
    }

    /// True once every sender is gone (frames may still be queued).
    pub fn is_closed(&self) -> bool {
        self.shared.lock().senders == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_drops_the_oldest() {
        let (tx, rx) = frame_queue(2);
        assert!(tx.push(1));
        assert!(tx.push(2));
        assert!(tx.push(3));
        assert_eq!(rx.dropped(), 1);
        assert_eq!(rx.try_recv(), Some(2));
        assert_eq!(rx.try_recv(), Some(3));
        assert_eq!(rx.try_recv(), None);
        assert_eq!(rx.pushed(), 3);
    }

    #[test]
    fn latest_skips_to_the_newest() {
        let (tx, rx) = frame_queue(4);
        for i in 0..4 {
            tx.push(i);
        }
        assert_eq!(rx.latest(), Some(3));
        assert!(rx.is_empty());
    }

    #[test]
    fn closing_is_seen_on_both_sides() {
        let (tx, rx) = frame_queue::<u8>(1);
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(5)),
            Err(RecvError::Timeout)
        );
        tx.push(9);
        drop(tx);
        assert_eq!(rx.recv_timeout(Duration::from_secs(1)), Ok(9));
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(1)),
            Err(RecvError::Closed)
        );
        let (tx, rx) = frame_queue::<u8>(1);
        drop(rx);
        assert!(!tx.push(1));
        assert!(!tx.is_open());
    }

    #[test]
    fn a_blocked_receiver_wakes_up() {
        let (tx, rx) = frame_queue(1);
        let t = std::thread::spawn(move || rx.recv_timeout(Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(20));
        tx.push(5u32);
        assert_eq!(t.join().expect("thread"), Ok(5));
    }

    #[tokio::test]
    async fn async_receive() {
        let (tx, rx) = frame_queue(1);
        let task = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(v) = rx.recv().await {
                got.push(v);
            }
            got
        });
        std::thread::spawn(move || {
            for i in 0..3u8 {
                std::thread::sleep(Duration::from_millis(5));
                tx.push(i);
            }
        });
        assert_eq!(task.await.expect("task"), vec![0, 1, 2]);
    }
}
