//! Allocation while decoding hostile frames is sized by the bytes present, not by the
//! counts the frame claims (issue 17, item 5).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use xaeroflux_sync::frame::{FRAME_VERSION, FrameDecoder, MAX_FRAME};

/// Counts live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Peak bytes allocated (above what was live before) while decoding `frame`.
fn peak_while_decoding(frame: &[u8]) -> usize {
    // One measurement at a time: the counters are global.
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|p| p.into_inner());
    let mut d = FrameDecoder::new();
    d.push(frame);
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let r = d.next_message();
    assert!(r.is_err(), "the frame must not decode");
    PEAK.load(Ordering::SeqCst) - base
}

fn frame(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut f = ((body.len() + 2) as u32).to_le_bytes().to_vec();
    f.extend([FRAME_VERSION, ty]);
    f.extend_from_slice(body);
    f
}

#[test]
fn a_frame_announcing_65536_checkpoints_allocates_little() {
    // Checkpoints: count 65,536, then 65,536 empty items (2 bytes each): the count
    // passes the bytes-left check, every item fails to decode.
    let mut body = 65_536u32.to_le_bytes().to_vec();
    body.resize(4 + 2 * 65_536, 0);
    let f = frame(2, &body);
    assert!(f.len() <= MAX_FRAME);
    let peak = peak_while_decoding(&f);
    println!(
        "checkpoints frame of {} B: peak {peak} B allocated",
        f.len()
    );
    // Before the fix: 65,536 × size_of::<SignedCheckpoint>() ≈ 51 MB.
    assert!(
        peak <= 2 * f.len(),
        "{peak} bytes allocated for a {} B frame",
        f.len()
    );
}

#[test]
fn a_frame_announcing_65536_keys_allocates_little() {
    // Checkpoints with no checkpoint and 65,536 empty keys.
    let mut body = 0u32.to_le_bytes().to_vec();
    body.extend(65_536u32.to_le_bytes());
    body.resize(8 + 2 * 65_536, 0);
    let f = frame(2, &body);
    let peak = peak_while_decoding(&f);
    assert!(
        peak <= 2 * f.len(),
        "{peak} bytes allocated for a {} B frame",
        f.len()
    );
}
