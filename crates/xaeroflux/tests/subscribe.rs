//! Subscriptions: replay then live with no gap or duplicate, slow subscribers, filters,
//! the async form, and system events.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use xaeroflux::{Filter, Start, SystemEvent, XaeroFlux};

fn open(dir: &std::path::Path) -> XaeroFlux {
    XaeroFlux::builder(dir).open().unwrap()
}

#[test]
fn replay_then_live_has_no_gap_and_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let mut written = Vec::new();
    for i in 0..3000u32 {
        written.push(store.write_event(&i.to_le_bytes(), 1000).unwrap());
    }
    store.flush().unwrap();
    // Subscribe from the beginning while a writer keeps going: the seam between the
    // replayed part and the live part must be invisible.
    let sub = store.subscribe(Filter::all().start(Start::Beginning));
    let writer = {
        let store = store.clone();
        thread::spawn(move || {
            let mut ids = Vec::new();
            for i in 3000..6000u32 {
                ids.push(store.write_event(&i.to_le_bytes(), 1000).unwrap());
                if i % 500 == 0 {
                    thread::sleep(Duration::from_millis(2));
                }
            }
            store.flush().unwrap();
            ids
        })
    };
    let got: Vec<_> = sub.take(6000).map(|e| e.unwrap()).collect();
    written.extend(writer.join().unwrap());
    let seqs: Vec<u64> = got.iter().map(|e| e.local_seq).collect();
    assert_eq!(seqs, (0..6000).collect::<Vec<_>>());
    let ids: Vec<_> = got.iter().map(|e| e.id).collect();
    assert_eq!(ids, written);
    for (i, e) in got.iter().enumerate() {
        assert_eq!(e.event.payload, (i as u32).to_le_bytes());
        assert_eq!(e.event.id(), e.id);
    }
}

#[test]
fn start_now_sees_only_new_events_and_positions_resume() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for _ in 0..10 {
        store.write_event(b"old", 1000).unwrap();
    }
    store.flush().unwrap();
    let mut sub = store.subscribe(Filter::all());
    assert_eq!(sub.try_next().unwrap(), None);
    let id = store.write_event(b"new", 1000).unwrap();
    let e = sub.next_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!((e.id, e.local_seq), (id, 10));
    // Resuming from a saved position delivers exactly the rest.
    let mut again = store.subscribe(Filter::all().start(Start::Position(5)));
    let seqs: Vec<u64> = (0..6)
        .map(|_| {
            again
                .next_timeout(Duration::from_secs(10))
                .unwrap()
                .unwrap()
                .local_seq
        })
        .collect();
    assert_eq!(seqs, vec![5, 6, 7, 8, 9, 10]);
    assert_eq!(again.try_next().unwrap(), None);
}

#[test]
fn slow_subscriber_far_behind_catches_up_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    // Small rings: the subscriber falls many ring-lengths behind the writer.
    let caps = xaeroflux::Capacities {
        capacities: [64, 64, 64, 64, 64],
    };
    let store = XaeroFlux::builder(dir.path())
        .capacities(caps)
        .open()
        .unwrap();
    let mut sub = store.subscribe(Filter::all().start(Start::Now));
    for i in 0..20_000u32 {
        store.write_event(&i.to_le_bytes(), 1000).unwrap();
    }
    store.flush().unwrap();
    for i in 0..20_000u32 {
        let e = sub
            .try_next()
            .unwrap()
            .expect("committed events are all readable");
        assert_eq!(e.local_seq, u64::from(i));
        assert_eq!(e.event.payload, i.to_le_bytes());
    }
    assert_eq!(sub.try_next().unwrap(), None);
}

#[test]
fn filters_by_type_and_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let other = store.create_group().unwrap();
    let mut by_type = store.subscribe(Filter::all().event_type(2000).start(Start::Beginning));
    let mut by_group = store.subscribe(Filter::all().group(other.id()).start(Start::Beginning));
    for i in 0..100u32 {
        store
            .write_event(&i.to_le_bytes(), 1000 + (i % 2) * 1000)
            .unwrap();
        store
            .write_event_to(other.id(), &i.to_le_bytes(), 3000)
            .unwrap();
    }
    store.flush().unwrap();
    let mut n = 0;
    while let Some(e) = by_type.try_next().unwrap() {
        assert_eq!(e.event.header.event_type, 2000);
        n += 1;
    }
    assert_eq!(n, 50);
    let mut seqs = Vec::new();
    while let Some(e) = by_group.try_next().unwrap() {
        assert_eq!(e.event.header.group, other.id());
        seqs.push(e.event.header.seq);
    }
    assert_eq!(seqs, (0..100).collect::<Vec<_>>());
}

struct ThreadWaker(thread::Thread);
impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park_timeout(Duration::from_secs(5));
    }
}

#[test]
fn async_form_wakes_on_commit_and_ends_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let mut sub = store.subscribe(Filter::all());
    let w = {
        let store = store.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            store.write_event(b"async", 1000).unwrap()
        })
    };
    let e = block_on(sub.next_async()).unwrap().unwrap();
    assert_eq!(e.id, w.join().unwrap());
    drop(store);
    assert!(
        block_on(sub.next_async()).is_none(),
        "stream ends when the store closes"
    );
}

#[test]
fn system_events_report_open_flush_and_fork() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut sys = store.system_events();
    assert_eq!(sys.try_next(), Some(SystemEvent::StoreOpened { events: 0 }));
    store.write_event(b"x", 1000).unwrap();
    store.flush().unwrap();
    assert_eq!(
        sys.next_timeout(Duration::from_secs(5)),
        Some(SystemEvent::FlushCompleted { committed: 1 })
    );

    use xaeroflux::{AuthorId, XaeroKeypair};
    use xaeroflux_core::{Checkpoint, Hlc};
    let other = XaeroKeypair::generate_from_seed(&[5; 32]);
    let author = AuthorId(*other.id().as_bytes());
    let group = store.default_group();
    let cp = |r: u8| {
        Checkpoint {
            group,
            author,
            length: 3,
            root: [r; 32],
            hlc: Hlc::new(1, 0),
        }
        .sign(&other)
    };
    store.record_checkpoint(&cp(1), other.public()).unwrap();
    store.record_checkpoint(&cp(2), other.public()).unwrap();
    assert_eq!(
        sys.next_timeout(Duration::from_secs(5)),
        Some(SystemEvent::ForkDetected {
            group,
            author,
            length: 3
        })
    );
    store.close().unwrap();
    // The flush inside close is reported, then the stream ends.
    let rest: Vec<_> = sys.collect();
    assert_eq!(rest, vec![SystemEvent::FlushCompleted { committed: 1 }]);
}

/// Counts its wakes; never blocks.
struct CountingWaker(std::sync::atomic::AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn system_events_async_are_woken_by_publish_and_end_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = XaeroFlux::builder(dir.path()).offline().open().unwrap();
    let mut sys = store.system_events();
    let count = Arc::new(CountingWaker(Default::default()));
    let waker = Waker::from(count.clone());
    let mut cx = Context::from_waker(&waker);
    let wakes = || count.0.load(std::sync::atomic::Ordering::SeqCst);

    // The queued StoreOpened is ready at once.
    let first = std::pin::pin!(sys.next_async()).poll(&mut cx);
    assert_eq!(
        first,
        Poll::Ready(Some(SystemEvent::StoreOpened { events: 0 }))
    );
    // Nothing queued: pending, and polled again it registers once, not twice.
    assert_eq!(
        std::pin::pin!(sys.next_async()).poll(&mut cx),
        Poll::Pending
    );
    assert_eq!(
        std::pin::pin!(sys.next_async()).poll(&mut cx),
        Poll::Pending
    );
    assert_eq!(wakes(), 0);
    // A publish (the flush) wakes the waiting task; the next poll has the event.
    store.write_event(b"x", 1000).unwrap();
    store.flush().unwrap();
    assert_eq!(wakes(), 1, "one registration, one wake");
    assert_eq!(
        std::pin::pin!(sys.next_async()).poll(&mut cx),
        Poll::Ready(Some(SystemEvent::FlushCompleted { committed: 1 }))
    );
    // Closing wakes a waiter, and the stream ends.
    assert_eq!(
        std::pin::pin!(sys.next_async()).poll(&mut cx),
        Poll::Pending
    );
    let before = wakes();
    drop(store);
    assert!(wakes() > before);
    assert_eq!(block_on(sys.next_async()), None);
}

#[test]
fn durable_write_returns_the_position_it_was_stored_at() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(XaeroFlux::builder(dir.path()).offline().open().unwrap());
    let g = store.default_group();
    // Interleaved with unflushed writes from another thread: each durable write still
    // reports its own event's position.
    let other = {
        let store = store.clone();
        thread::spawn(move || {
            for i in 0..2000u32 {
                store.write_event(&i.to_le_bytes(), 1001).unwrap();
            }
        })
    };
    let mut got = Vec::new();
    for i in 0..300u32 {
        got.push(
            store
                .write_event_durable(g, &i.to_le_bytes(), 1000)
                .unwrap(),
        );
    }
    other.join().unwrap();
    store.flush().unwrap();
    let snap = store.read().unwrap();
    let mut last = None;
    for (id, pos) in &got {
        let se = snap.get(id).unwrap().unwrap();
        assert_eq!(se.local_seq, *pos, "position of {id}");
        assert!(last.is_none_or(|l| l < *pos), "positions increase");
        last = Some(*pos);
    }
    // Reserved types are refused as by write_event.
    assert!(matches!(
        store.write_event_durable(g, b"x", 7),
        Err(xaeroflux::Error::ReservedEventType { event_type: 7 })
    ));
}
