//! Memory for the large vectors a run fills once, such as a column of ten million clean values.

/// Bytes in a transparent huge page on x86-64 (and on arm64 with 4 KiB pages).
const HUGE_PAGE: usize = 2 << 20;

/// An empty vector with room for `capacity` values, whose memory the kernel is asked to back with
/// transparent huge pages: on Linux, when `/sys/kernel/mm/transparent_hugepage/enabled` is
/// `madvise` (the usual default) or `always`. Filling fresh memory costs a page fault per page,
/// and per 4 KiB page a gigabyte of clean rows cost more than a second of kernel time on a virtual
/// machine (about 1 GB/s, against 3-3.5 GB/s in 2 MiB pages). Elsewhere, when the kernel declines,
/// or below two huge pages, this is `Vec::with_capacity`: the advice changes how the memory is
/// mapped, never what it holds.
pub fn huge_vec<T>(capacity: usize) -> Vec<T> {
    let values = Vec::with_capacity(capacity);
    advise_huge_pages(values.as_ptr() as usize, values.capacity() * size_of::<T>());
    values
}

/// Asks for huge pages in the whole 2 MiB pages of the `bytes` at `start`.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn advise_huge_pages(start: usize, bytes: usize) {
    let from = start.next_multiple_of(HUGE_PAGE);
    let to = (start + bytes) / HUGE_PAGE * HUGE_PAGE;
    if to < from + 2 * HUGE_PAGE {
        return;
    }
    // SAFETY: [from, to) lies inside one live allocation the caller owns (a vector's capacity),
    // and its ends are multiples of 2 MiB, so of the page size. MADV_HUGEPAGE only sets how the
    // kernel backs the range when it is touched: it frees, moves and changes nothing, so no
    // pointer into the range is invalidated. On failure (an old kernel, huge pages disabled) the
    // range stays as it was, so the result is ignored.
    unsafe {
        libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_start: usize, _bytes: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_vector_holds_what_is_pushed_and_has_the_room_asked_for() {
        let n = 3 * HUGE_PAGE / 8 + 5;
        let mut values: Vec<f64> = huge_vec(n);
        assert!(values.capacity() >= n);
        values.extend((0..n).map(|i| i as f64));
        values.push(-1.0);
        assert_eq!(values.len(), n + 1);
        assert_eq!(values[n - 1], (n - 1) as f64);
        assert_eq!(values.iter().sum::<f64>(), (n * (n - 1) / 2) as f64 - 1.0);
    }

    #[test]
    fn a_small_or_empty_huge_vector_is_a_plain_one() {
        let mut values: Vec<u32> = huge_vec(0);
        values.push(7);
        assert_eq!(values, [7]);
        let small: Vec<u8> = huge_vec(10);
        assert!(small.capacity() >= 10 && small.is_empty());
    }
}
