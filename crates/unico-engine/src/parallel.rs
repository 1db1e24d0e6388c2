//! Splitting a scan over a few threads with `std::thread::scope`: no pool, no queue, the
//! caller's thread takes the last part. Work is cut at multiples of
//! [`crate::eval::BLOCK_WORDS`] so that every part starts on a block.

use crate::eval::BLOCK_WORDS;

/// How many parts to cut `words` words into: one per thread, but never parts smaller
/// than `min_words` (spawning costs tens of microseconds).
fn parts(words: usize, threads: usize, min_words: usize) -> usize {
    threads.min(words / min_words.max(1)).max(1)
}

/// Words per part, rounded up to whole blocks.
fn per_part(words: usize, parts: usize) -> usize {
    words.div_ceil(parts).div_ceil(BLOCK_WORDS).max(1) * BLOCK_WORDS
}

/// Calls `fill(first_word, part)` on disjoint parts covering `words`, in parallel when
/// `words` is large enough.
pub(crate) fn split_words<F>(words: &mut [u64], threads: usize, min_words: usize, fill: F)
where
    F: Fn(usize, &mut [u64]) + Sync,
{
    let n = words.len();
    let parts = parts(n, threads, min_words);
    if parts <= 1 {
        fill(0, words);
        return;
    }
    let per = per_part(n, parts);
    std::thread::scope(|scope| {
        let fill = &fill;
        let mut chunks: Vec<(usize, &mut [u64])> = words
            .chunks_mut(per)
            .enumerate()
            .map(|(i, c)| (i * per, c))
            .collect();
        let last = chunks.pop();
        for (first, chunk) in chunks {
            scope.spawn(move || fill(first, chunk));
        }
        if let Some((first, chunk)) = last {
            fill(first, chunk);
        }
    });
}

/// Sums `part(first_word, end_word)` over disjoint ranges covering `0..words`, in
/// parallel when `words` is large enough. A part that panics makes the whole call panic
/// (with that part's panic), as [`split_words`] does: there is no partial answer.
pub(crate) fn sum_ranges<F>(words: usize, threads: usize, min_words: usize, part: F) -> u64
where
    F: Fn(usize, usize) -> u64 + Sync,
{
    let parts = parts(words, threads, min_words);
    if parts <= 1 {
        return part(0, words);
    }
    let per = per_part(words, parts);
    let ranges: Vec<(usize, usize)> = (0..words)
        .step_by(per)
        .map(|s| (s, (s + per).min(words)))
        .collect();
    std::thread::scope(|scope| {
        let part = &part;
        let (last, rest) = match ranges.split_last() {
            Some(split) => split,
            None => return 0,
        };
        let handles: Vec<_> = rest
            .iter()
            .map(|&(a, b)| scope.spawn(move || part(a, b)))
            .collect();
        let mut total = part(last.0, last.1);
        for h in handles {
            // A panicking part is a broken invariant in a kernel: its rows were not
            // counted, so the sum would be wrong. The panic goes on to the caller (the
            // server answers the request with an error), never a count short of that part.
            match h.join() {
                Ok(n) => total += n,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        total
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_everything_once() {
        for words in [0, 1, 63, 64, 65, 1000, 4097] {
            for threads in [1, 2, 3] {
                let mut v = vec![0u64; words];
                split_words(&mut v, threads, 1, |first, part| {
                    for (j, w) in part.iter_mut().enumerate() {
                        *w += (first + j) as u64 + 1;
                    }
                });
                assert!(v.iter().enumerate().all(|(i, &w)| w == i as u64 + 1));
                let total = sum_ranges(words, threads, 1, |a, b| (b - a) as u64);
                assert_eq!(total, words as u64);
            }
        }
    }

    /// A part that panics on a helper thread (not the caller's, which takes the last part)
    /// must not be counted as 0: the call panics, so no wrong total can come out.
    #[test]
    fn a_panicking_part_is_never_counted_as_nothing() {
        for threads in [2, 3] {
            let outcome = std::panic::catch_unwind(|| {
                sum_ranges(4096, threads, 1, |a, b| {
                    assert!(a != 0, "injected failure in the first part");
                    (b - a) as u64
                })
            });
            let panic = outcome.expect_err("a part panicked: there is no total to give");
            let message = panic.downcast_ref::<&str>().copied().unwrap_or_default();
            assert!(message.contains("injected failure"), "{message}");
        }
        let filled = std::panic::catch_unwind(|| {
            let mut v = vec![0u64; 4096];
            split_words(&mut v, 2, 1, |first, _| {
                assert!(first != 0, "injected failure in the first part");
            });
        });
        assert!(filled.is_err());
    }
}
