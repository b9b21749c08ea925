//! The step kernels: a batch of deals × runs advanced step by step in structure-of-arrays lanes.
//!
//! ```text
//! lane state (compacted after every step):  row: u32   lane: u32   rk: u64   elapsed: f32
//!                                            │          │           └─ the run's stream key
//!                                            │          └─ result slot (deal-major, run-minor)
//!                                            └─ context·stages + stage
//!
//! step k, per chunk of 512 lanes:
//!   bits = draw(rk, k) ── high 24 bits ─▶ time in stage: quantile row, linear interpolation
//!                      └─ low 24 bits  ─▶ next: #{ threshold ≤ bits } over the row's K slots
//!   target of that slot: the next row, or ABSORBED | outcome  ─▶ settle: write the result
//!   slot, keep the lane at the compaction cursor, advance the cursor if it is still running
//! ```
//!
//! A transition row keeps only its stages with mass, in code order, as K cumulative 24-bit
//! thresholds (`ceil(cdf · 2^24)`; the last slot is 2^24, above every draw) and K targets, so
//! the next stage is a branch-free count, the same inversion of the cumulative distribution as
//! over all stages. The first step of a deal runs over its contiguous lanes, conditional on the
//! days already spent. The loops index only through clamped indices, so they compile to vector
//! gathers; the same code is compiled for AVX-512, AVX2 and the baseline and chosen at run
//! time, with identical results (no fused multiply-add, same operation order).

use super::model::QUANTILES;
use super::rng;

/// Targets at or above this are absorbing: the low byte is the outcome.
pub(super) const ABSORBED: u32 = 1 << 31;
/// 24 random bits.
const MASK24: u32 = 0x00FF_FFFF;
/// 2^-24.
const UNIT_24: f32 = 1.0 / (1u32 << 24) as f32;
/// Lanes per inner chunk: the chunk's next-row buffer stays in L1.
const CHUNK: usize = 512;

/// The compiled chain as the kernels read it; rows are `block · stages + stage`.
#[derive(Debug, Clone)]
pub(super) struct Tables {
    pub stages: usize,
    /// Slots per transition row.
    pub k: usize,
    /// rows × k cumulative thresholds.
    pub thr: Vec<u32>,
    /// rows × k next rows, or `ABSORBED | outcome`.
    pub target: Vec<u32>,
    /// Time-in-stage quantiles per row.
    pub quant: Vec<[f32; QUANTILES]>,
}

impl Tables {
    pub fn rows(&self) -> usize {
        self.quant.len()
    }
}

/// Where one deal starts: its stream key under the seed, its row, its days already spent.
#[derive(Debug, Clone, Copy)]
pub(super) struct DealStart {
    pub key: u64,
    pub row: u32,
    pub age: f32,
}

/// The lanes of one batch and their results; reused from batch to batch.
#[derive(Debug, Default)]
pub(super) struct Lanes {
    row: Vec<u32>,
    lane: Vec<u32>,
    rk: Vec<u64>,
    elapsed: Vec<f32>,
    next: Vec<u32>,
    /// Per lane: outcome | steps << 8 (decoded into `out_kind` and `out_steps` at the end).
    code: Vec<u32>,
    /// Results by lane (deal-major, run-minor); only the first `deals · runs` are this batch's.
    pub out_days: Vec<f32>,
    pub out_kind: Vec<u8>,
    pub out_steps: Vec<u16>,
}

/// The instruction set the kernels run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Level {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

/// The best level this CPU supports (detected once).
pub(super) fn best_level() -> Level {
    static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512bw")
            {
                return Level::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Level::Avx2;
            }
        }
        Level::Portable
    })
}

/// Simulates every deal of `starts` `runs` times (at most `max_steps` steps); results in
/// `lanes.out_*`, deal `d`'s runs at `d·runs .. (d+1)·runs`.
pub(super) fn run_batch(
    tables: &Tables,
    starts: &[DealStart],
    runs: usize,
    max_steps: u32,
    level: Level,
    lanes: &mut Lanes,
) {
    match level {
        Level::Portable => run_any::<false>(tables, starts, runs, max_steps, lanes),
        // SAFETY: the level is only chosen when the CPU has the features (`best_level`).
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { run_avx2(tables, starts, runs, max_steps, lanes) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { run_avx512(tables, starts, runs, max_steps, lanes) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw,avx2,bmi2,popcnt")]
fn run_avx512(t: &Tables, s: &[DealStart], runs: usize, max: u32, l: &mut Lanes) {
    run_any::<true>(t, s, runs, max, l)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi2,popcnt")]
fn run_avx2(t: &Tables, s: &[DealStart], runs: usize, max: u32, l: &mut Lanes) {
    run_any::<false>(t, s, runs, max, l)
}

/// `WIDE`: settle with AVX-512 compress and scatter (only from [`run_avx512`]).
#[inline(always)]
fn run_any<const WIDE: bool>(t: &Tables, s: &[DealStart], runs: usize, max: u32, l: &mut Lanes) {
    match t.k {
        4 => run_k::<4, WIDE>(t, s, runs, max, l),
        8 => run_k::<8, WIDE>(t, s, runs, max, l),
        16 => run_k::<16, WIDE>(t, s, runs, max, l),
        _ => run_k::<0, WIDE>(t, s, runs, max, l),
    }
}

/// The rows a kernel reads, split for it once per batch: every index is clamped to `last`, the
/// last row of all tables, so the loops keep no bounds checks and compile to gathers.
struct Rows<'a, const K: usize> {
    quant: &'a [[f32; QUANTILES]],
    /// Rows of `K` slots (`K > 0`).
    thr: &'a [[u32; K]],
    target: &'a [[u32; K]],
    /// Flat rows of `k` slots (`K = 0`).
    flat_thr: &'a [u32],
    flat_target: &'a [u32],
    k: usize,
    last: usize,
}

impl<'a, const K: usize> Rows<'a, K> {
    /// `None` when the tables have no rows.
    fn new(t: &'a Tables) -> Option<Self> {
        let (thr, target): (&[[u32; K]], &[[u32; K]]) = if K == 0 {
            (&[], &[])
        } else {
            (t.thr.as_chunks::<K>().0, t.target.as_chunks::<K>().0)
        };
        let rows = if K == 0 {
            t.quant
                .len()
                .min(t.thr.len() / t.k)
                .min(t.target.len() / t.k)
        } else {
            t.quant.len().min(thr.len()).min(target.len())
        };
        let last = rows.checked_sub(1)?;
        Some(Self {
            quant: &t.quant[..=last],
            thr,
            target,
            flat_thr: &t.thr[..rows * t.k],
            flat_target: &t.target[..rows * t.k],
            k: t.k,
            last,
        })
    }

    /// The target of the slot the 24 random `bits` fall in, in row `r` (at most `last`): the
    /// count of thresholds at or below them.
    #[inline(always)]
    fn next(&self, r: usize, bits: u32) -> u32 {
        if K == 0 {
            let k = self.k;
            let c = self.flat_thr[r * k..r * k + k]
                .partition_point(|v| *v <= bits)
                .min(k - 1);
            self.flat_target[r * k + c]
        } else {
            let r = r.min(self.last);
            let mut c = 0usize;
            for v in &self.thr[r] {
                c += usize::from(*v <= bits);
            }
            self.target[r][c.min(K - 1)]
        }
    }
}

/// Grows `v` to at least `n` (contents are overwritten before they are read).
fn ensure<T: Copy + Default>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
    }
}

/// The whole batch with rows of `K` slots (`K = 0`: any width, `t.k`).
#[inline(always)]
fn run_k<const K: usize, const WIDE: bool>(
    t: &Tables,
    starts: &[DealStart],
    runs: usize,
    max_steps: u32,
    l: &mut Lanes,
) {
    let Some(rows) = Rows::<K>::new(t) else {
        return;
    };
    let n = starts.len() * runs;
    for v in [&mut l.row, &mut l.lane, &mut l.code] {
        ensure(v, n);
    }
    ensure(&mut l.rk, n);
    ensure(&mut l.elapsed, n);
    ensure(&mut l.out_days, n);
    ensure(&mut l.out_kind, n);
    ensure(&mut l.out_steps, n);
    ensure(&mut l.next, CHUNK);
    let Lanes {
        row,
        lane,
        rk,
        elapsed,
        next,
        code,
        out_days,
        out_kind,
        out_steps,
    } = l;
    let mut state = State {
        row: &mut row[..n],
        lane: &mut lane[..n],
        rk: &mut rk[..n],
        elapsed: &mut elapsed[..n],
        days: &mut out_days[..n],
        code: &mut code[..n],
    };
    for (i, id) in state.lane.iter_mut().enumerate() {
        *id = i as u32;
    }
    for (d, start) in starts.iter().enumerate() {
        let lanes = d * runs..(d + 1) * runs;
        for (r, k) in state.rk[lanes.clone()].iter_mut().enumerate() {
            *k = rng::run_key(start.key, r as u32);
        }
        first_step(
            &rows,
            start,
            &state.rk[lanes.clone()],
            &mut state.elapsed[lanes.clone()],
            &mut state.row[lanes],
        );
    }
    // The first step's targets are in `row`: settle them from there.
    let mut active = 0;
    let mut lo = 0;
    while lo < n {
        let hi = (lo + CHUNK).min(n);
        next[..hi - lo].copy_from_slice(&state.row[lo..hi]);
        active = settle::<WIDE>(&next[..hi - lo], &mut state, lo, active, 1);
        lo = hi;
    }
    let mut step = 1u32;
    while active > 0 && step < max_steps {
        let mut w = 0;
        let mut lo = 0;
        while lo < active {
            let hi = (lo + CHUNK).min(active);
            advance(
                &rows,
                &state.row[lo..hi],
                &state.rk[lo..hi],
                &mut state.elapsed[lo..hi],
                &mut next[..hi - lo],
                step,
            );
            w = settle::<WIDE>(&next[..hi - lo], &mut state, lo, w, step + 1);
            lo = hi;
        }
        active = w;
        step += 1;
    }
    // Runs still going at the cap end open.
    for i in 0..active {
        let slot = (state.lane[i] as usize).min(n - 1);
        state.days[slot] = state.elapsed[i];
        state.code[slot] = super::engine::Outcome::Open as u32 | step << 8;
    }
    let (kinds, steps) = (&mut out_kind[..n], &mut out_steps[..n]);
    for i in 0..n {
        kinds[i] = state.code[i] as u8;
        steps[i] = (state.code[i] >> 8) as u16;
    }
}

/// The lanes of a batch (all `n` long): running lanes first (compacted), results by lane id.
struct State<'a> {
    row: &'a mut [u32],
    lane: &'a mut [u32],
    rk: &'a mut [u64],
    elapsed: &'a mut [f32],
    days: &'a mut [f32],
    code: &'a mut [u32],
}

/// Step 0 of one deal's runs: the rest of the current stay, conditional on the days already
/// spent (`u' = F(age) + u·(1 − F(age))`, then `Q(u') − age`), and the first move. Past the
/// longest stay observed the rest is drawn over the last 5 % segment's width.
#[inline(always)]
fn first_step<const K: usize>(
    rows: &Rows<'_, K>,
    start: &DealStart,
    rk: &[u64],
    elapsed: &mut [f32],
    next: &mut [u32],
) {
    let r = (start.row as usize).min(rows.last);
    let q = &rows.quant[r];
    let lo = cdf(q, start.age);
    let tail = q[QUANTILES - 1] - q[QUANTILES - 2];
    let n = rk.len();
    let (elapsed, next) = (&mut elapsed[..n], &mut next[..n]);
    for i in 0..n {
        let bits = rng::draw(rk[i], 0);
        let u = ((bits >> 40) as u32) as f32 * UNIT_24;
        elapsed[i] = if lo < 1.0 {
            let x = (lo + u * (1.0 - lo)) * (QUANTILES - 1) as f32;
            let idx = (x as u32).min(QUANTILES as u32 - 2) as usize;
            let f = x - idx as f32;
            (q[idx] + f * (q[idx + 1] - q[idx]) - start.age).max(0.0)
        } else {
            u * tail
        };
        next[i] = rows.next(r, bits as u32 & MASK24);
    }
}

/// One step of a chunk of running lanes: time in the current stage added, next row drawn.
#[inline(always)]
fn advance<const K: usize>(
    rows: &Rows<'_, K>,
    row: &[u32],
    rk: &[u64],
    elapsed: &mut [f32],
    next: &mut [u32],
    step: u32,
) {
    let n = next.len();
    let (row, rk, elapsed) = (&row[..n], &rk[..n], &mut elapsed[..n]);
    for i in 0..n {
        let bits = rng::draw(rk[i], step);
        let r = (row[i] as usize).min(rows.last);
        // x = u · 20 in 24-bit fixed point: the segment and the fraction within it.
        let x = ((bits >> 40) as u32) * (QUANTILES as u32 - 1);
        let idx = ((x >> 24) as usize).min(QUANTILES - 2);
        let f = (x & MASK24) as f32 * UNIT_24;
        let q = &rows.quant[r];
        elapsed[i] += q[idx] + f * (q[idx + 1] - q[idx]);
        next[i] = rows.next(r, bits as u32 & MASK24);
    }
}

/// Writes the results of lanes `lo..lo + next.len()` (their targets in `next`) and compacts the
/// running ones to the cursor `w` (≤ `lo`); returns the new cursor.
#[inline(always)]
fn settle<const WIDE: bool>(
    next: &[u32],
    s: &mut State<'_>,
    lo: usize,
    w: usize,
    steps: u32,
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if WIDE {
        // SAFETY: `WIDE` is only set by `run_avx512`, which runs when the CPU has AVX-512.
        return unsafe { settle_avx512(next, s, lo, w, steps) };
    }
    settle_scalar(next, s, lo, w, steps)
}

/// Branch-free: every lane is written to its result slot and at the cursor; the cursor advances
/// only past lanes still running (the slot of a running lane is written again when it ends).
#[inline(always)]
fn settle_scalar(next: &[u32], s: &mut State<'_>, lo: usize, mut w: usize, steps: u32) -> usize {
    let n = s.row.len();
    let hi = (lo + next.len()).min(n);
    let (row, lane, rk, elapsed) = (
        &mut s.row[..n],
        &mut s.lane[..n],
        &mut s.rk[..n],
        &mut s.elapsed[..n],
    );
    let (days, code) = (&mut s.days[..n], &mut s.code[..n]);
    for (i, &target) in (lo..hi).zip(next) {
        let (id, k, e) = (lane[i], rk[i], elapsed[i]);
        let slot = (id as usize).min(n - 1);
        days[slot] = e;
        code[slot] = (target & 0xFF) | steps << 8;
        let at = w.min(i);
        row[at] = target;
        lane[at] = id;
        rk[at] = k;
        elapsed[at] = e;
        w = at + usize::from(target < ABSORBED);
    }
    w
}

/// [`settle_scalar`] 16 lanes at a time: the ended lanes' results scattered to their slots,
/// the running ones compressed to the cursor (full-width stores at the cursor only overwrite
/// lanes already read, since the cursor never passes the lane being read).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
fn settle_avx512(next: &[u32], s: &mut State<'_>, lo: usize, mut w: usize, steps: u32) -> usize {
    use std::arch::x86_64::*;
    let n = s.row.len();
    assert!(
        lo + next.len() <= n
            && w <= lo
            && s.lane.len() == n
            && s.rk.len() == n
            && s.elapsed.len() == n
            && s.days.len() == n
            && s.code.len() == n,
        "settle: lanes out of range"
    );
    let absorbed = _mm512_set1_epi32(ABSORBED as i32);
    let low_byte = _mm512_set1_epi32(0xFF);
    let steps_code = _mm512_set1_epi32((steps << 8) as i32);
    let mut j = 0;
    while j + 16 <= next.len() {
        let i = lo + j;
        // SAFETY: i + 16 ≤ lo + next.len() ≤ n, the length of every lane array (asserted
        // above); w ≤ i, so the stores at w..w + 16 are in bounds and only overwrite lanes
        // already loaded; lane ids are a permutation of 0..n, so the scattered slots are in
        // bounds and distinct.
        unsafe {
            let t = _mm512_loadu_si512(next.as_ptr().add(j).cast());
            let id = _mm512_loadu_si512(s.lane.as_ptr().add(i).cast());
            let e = _mm512_loadu_ps(s.elapsed.as_ptr().add(i));
            let k0 = _mm512_loadu_si512(s.rk.as_ptr().add(i).cast());
            let k1 = _mm512_loadu_si512(s.rk.as_ptr().add(i + 8).cast());
            let running = _mm512_cmplt_epu32_mask(t, absorbed);
            let ended = !running;
            let c = _mm512_or_si512(_mm512_and_si512(t, low_byte), steps_code);
            _mm512_mask_i32scatter_ps::<4>(s.days.as_mut_ptr(), ended, id, e);
            _mm512_mask_i32scatter_epi32::<4>(s.code.as_mut_ptr().cast(), ended, id, c);
            _mm512_storeu_si512(
                s.row.as_mut_ptr().add(w).cast(),
                _mm512_maskz_compress_epi32(running, t),
            );
            _mm512_storeu_si512(
                s.lane.as_mut_ptr().add(w).cast(),
                _mm512_maskz_compress_epi32(running, id),
            );
            _mm512_storeu_ps(
                s.elapsed.as_mut_ptr().add(w),
                _mm512_maskz_compress_ps(running, e),
            );
            let (first, second) = (running as u8, (running >> 8) as u8);
            _mm512_storeu_si512(
                s.rk.as_mut_ptr().add(w).cast(),
                _mm512_maskz_compress_epi64(first, k0),
            );
            _mm512_storeu_si512(
                s.rk.as_mut_ptr()
                    .add(w + first.count_ones() as usize)
                    .cast(),
                _mm512_maskz_compress_epi64(second, k1),
            );
            w += running.count_ones() as usize;
        }
        j += 16;
    }
    settle_scalar(&next[j..], s, lo + j, w, steps)
}

/// The CDF of a quantile table at `days` (0 at or below the minimum, 1 at or above the maximum).
pub(super) fn cdf(q: &[f32; QUANTILES], days: f32) -> f32 {
    if days <= q[0] {
        return 0.0;
    }
    if days >= q[QUANTILES - 1] {
        return 1.0;
    }
    let i = q.partition_point(|v| *v <= days) - 1;
    let width = q[i + 1] - q[i];
    let f = if width > 0.0 {
        (days - q[i]) / width
    } else {
        0.0
    };
    (i as f32 + f) / (QUANTILES - 1) as f32
}
