//! Applies one editing trace to loro and to yrs (Yjs) and prints apply time, memory,
//! encoded size and load time, median and worst of `--repeat` rounds, in one table.
//!
//! The trace: the automerge-paper trace (259,778 single-character edits writing a
//! 104,852-character LaTeX paper) is not available from the package registries this
//! build can reach, so this generates a deterministic trace of the same shape: 259,778
//! edits, about 70% inserts typed at a moving cursor, runs of backspaces, and a jump of
//! the cursor every ~40 edits, ending near 100k characters.
//!
//! Usage: `xaeroflux-crdt-eval [--edits N] [--repeat R]`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[derive(Clone, Copy)]
enum Edit {
    Insert(usize, u8),
    Delete(usize),
}

fn trace(n: usize) -> Vec<Edit> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut len, mut cur) = (0usize, 0usize);
    let mut out = Vec::with_capacity(n);
    let mut backspaces = 0;
    while out.len() < n {
        let r = rnd();
        if backspaces > 0 && cur > 0 {
            cur -= 1;
            len -= 1;
            out.push(Edit::Delete(cur));
            backspaces -= 1;
        } else if r % 40 == 0 && len > 0 {
            cur = (rnd() % (len as u64 + 1)) as usize;
        } else if r % 40 < 4 && len > 0 {
            backspaces = 1 + (rnd() % 8) as usize;
        } else {
            let c = b"etaoin shrdlu\n{}\\"[(rnd() % 17) as usize];
            out.push(Edit::Insert(cur, c));
            cur += 1;
            len += 1;
        }
    }
    out
}

struct Figures {
    apply_ms: f64,
    mem_bytes: usize,
    encoded: usize,
    load_ms: f64,
    text_len: usize,
}

fn run_loro(t: &[Edit]) -> Figures {
    use loro::{ExportMode, LoroDoc};
    let base = LIVE.load(Ordering::Relaxed);
    let start = Instant::now();
    let doc = LoroDoc::new();
    let text = doc.get_text("text");
    let mut buf = [0u8; 4];
    for e in t {
        match *e {
            Edit::Insert(p, c) => text
                .insert(p, (c as char).encode_utf8(&mut buf))
                .expect("in range"),
            Edit::Delete(p) => text.delete(p, 1).expect("in range"),
        }
        doc.commit();
    }
    let apply_ms = start.elapsed().as_secs_f64() * 1e3;
    let mem_bytes = LIVE.load(Ordering::Relaxed).saturating_sub(base);
    let snap = doc.export(ExportMode::Snapshot).expect("export");
    let start = Instant::now();
    let back = LoroDoc::new();
    back.import(&snap).expect("import");
    let text_len = back.get_text("text").len_unicode();
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    Figures {
        apply_ms,
        mem_bytes,
        encoded: snap.len(),
        load_ms,
        text_len,
    }
}

fn run_yrs(t: &[Edit]) -> Figures {
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};
    let base = LIVE.load(Ordering::Relaxed);
    let start = Instant::now();
    let doc = Doc::new();
    let text = doc.get_or_insert_text("text");
    let mut buf = [0u8; 4];
    for e in t {
        let mut txn = doc.transact_mut();
        match *e {
            Edit::Insert(p, c) => {
                text.insert(&mut txn, p as u32, (c as char).encode_utf8(&mut buf))
            }
            Edit::Delete(p) => text.remove_range(&mut txn, p as u32, 1),
        }
    }
    let apply_ms = start.elapsed().as_secs_f64() * 1e3;
    let mem_bytes = LIVE.load(Ordering::Relaxed).saturating_sub(base);
    let snap = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let start = Instant::now();
    let back = Doc::new();
    let bt = back.get_or_insert_text("text");
    back.transact_mut()
        .apply_update(Update::decode_v1(&snap).expect("decode"))
        .expect("apply");
    let text_len = bt.get_string(&back.transact()).len();
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    Figures {
        apply_ms,
        mem_bytes,
        encoded: snap.len(),
        load_ms,
        text_len,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut edits = 259_778usize;
    let mut repeat = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            eprintln!("usage: xaeroflux-crdt-eval [--edits N] [--repeat R]");
            std::process::exit(2)
        });
        match a.as_str() {
            "--edits" => edits = v,
            "--repeat" => repeat = v.max(1),
            _ => {
                eprintln!("usage: xaeroflux-crdt-eval [--edits N] [--repeat R]");
                std::process::exit(2)
            }
        }
    }
    let t = trace(edits);
    let final_len = t.iter().fold(0i64, |l, e| match e {
        Edit::Insert(..) => l + 1,
        Edit::Delete(_) => l - 1,
    });
    let (mut l, mut y) = (Vec::new(), Vec::new());
    for _ in 0..repeat {
        l.push(run_loro(&t));
        y.push(run_yrs(&t));
    }
    for f in l.iter().chain(y.iter()) {
        assert_eq!(f.text_len as i64, final_len, "a library lost edits");
    }
    println!(
        "synthetic trace: {} edits, final text {} chars, {} rounds (median / worst)",
        t.len(),
        final_len,
        repeat
    );
    println!(
        "| library | apply ms median | apply ms worst | heap after apply (MB) | snapshot bytes | load ms median |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, f) in [("loro 1.17.1", &l), ("yrs 0.28.1 (anchor)", &y)] {
        let ap: Vec<f64> = f.iter().map(|x| x.apply_ms).collect();
        let worst = ap.iter().copied().fold(0.0, f64::max);
        println!(
            "| {name} | {:.0} | {:.0} | {:.1} | {} | {:.1} |",
            median(ap.clone()),
            worst,
            f[0].mem_bytes as f64 / 1e6,
            f[0].encoded,
            median(f.iter().map(|x| x.load_ms).collect())
        );
    }
    let la = median(l.iter().map(|x| x.apply_ms).collect());
    let ya = median(y.iter().map(|x| x.apply_ms).collect());
    println!("loro / yrs apply time: {:.2}x", la / ya);
}
