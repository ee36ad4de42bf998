//! Large zeroed output buffers (whole scenes: hundreds of MB).
//!
//! Filling a fresh 256 MB buffer costs ~65 000 page faults with 4 KiB pages —
//! about a sixth of the decode time of the `mic` split. On Linux we ask for
//! transparent huge pages (`madvise(MADV_HUGEPAGE)`, honoured when THP is in
//! "madvise" or "always" mode) before the first write; elsewhere, or if the
//! kernel declines, the buffer is simply an ordinary zeroed `Vec`.

/// A zeroed buffer of `len` bytes, backed by huge pages where the OS allows.
pub fn zeroed(len: usize) -> Vec<u8> {
    let buf = vec![0u8; len]; // calloc: large sizes are fresh, untouched mappings
    advise_huge_pages(&buf);
    buf
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(buf: &[u8]) {
    const MADV_HUGEPAGE: i32 = 14;
    const PAGE: usize = 4096;
    extern "C" {
        fn madvise(addr: *mut core::ffi::c_void, len: usize, advice: i32) -> i32;
    }
    let start = (buf.as_ptr() as usize).next_multiple_of(PAGE);
    let end = (buf.as_ptr() as usize + buf.len()) / PAGE * PAGE;
    if end > start + (2 << 20) {
        // SAFETY: a hint on whole pages inside memory we own; it never changes contents,
        // and a failure (old kernel, THP disabled) only means ordinary pages.
        unsafe {
            madvise(start as *mut core::ffi::c_void, end - start, MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_buf: &[u8]) {}

#[cfg(test)]
mod tests {
    #[test]
    fn zeroed_buffers_are_zero_and_writable() {
        let mut b = super::zeroed(5 << 20);
        assert!(b.iter().all(|&x| x == 0));
        b[3 << 20] = 7;
        assert_eq!(b.iter().map(|&x| x as u64).sum::<u64>(), 7);
        assert!(super::zeroed(0).is_empty());
    }
}
