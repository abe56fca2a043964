//! Allocator settings for the long-running services.
//!
//! Both services work in batches: a batch's Kafka fetch buffers and
//! produce queues are allocated, live for a few hundred milliseconds and
//! are freed together, and the next batch needs the same memory again.
//! librdkafka allocates with glibc's allocator, whose defaults hand that
//! memory back to the kernel in between: buffers from 128 KiB up (a
//! threshold that rises only with what has been freed) come from `mmap`
//! and go back with `munmap`, and a heap's free top beyond 128 KiB is
//! trimmed. Taking it back costs a page fault per page, each zeroing 4 KiB
//! (2 MiB with transparent huge pages). In the detector's service benchmark
//! that was about 12,000 faults a second; with these settings about half as
//! many, and about 8% less detector CPU per event.
//!
//! Memory still goes back after a peak (a catch-up, a burst), only not at
//! batch frequency. mimalloc, the services' own allocator, already keeps
//! freed pages for a second before purging them.

/// Buffers up to this size come from the heap, not from `mmap` (glibc's own
/// rising threshold stops at 32 MiB too; librdkafka's fetch buffers are
/// well below it).
const MMAP_THRESHOLD: libc::c_int = 32 << 20;
/// Free memory at a heap's top beyond this goes back to the kernel.
const TRIM_THRESHOLD: libc::c_int = 256 << 20;

/// Applies the settings above; call it first thing in `main`. Returns
/// whether the allocator took them: one that refuses keeps its defaults,
/// which are only slower.
pub fn tune_allocators() -> bool {
    // SAFETY: `mallopt` only stores a value in glibc's allocator settings,
    // and is called before the service starts its threads.
    unsafe {
        let mmap = libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        let trim = libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        mmap == 1 && trim == 1
    }
}

/// [`tune_allocators`] for a service's `main`: says on stderr, naming
/// `program`, when the allocator refused (the service runs on regardless).
pub fn tune_allocators_or_warn(program: &str) {
    if !tune_allocators() {
        eprintln!("{program}: the C allocator refused its settings; running with its defaults");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_come_from_the_heap_once_tuned() {
        // SAFETY: plain malloc/free of a block this test owns; mallinfo2
        // only reads the allocator's statistics.
        let mapped_for = |size: usize| unsafe {
            let before = libc::mallinfo2().hblks;
            let block = libc::malloc(size);
            assert!(!block.is_null());
            let mapped = libc::mallinfo2().hblks > before;
            libc::free(block);
            mapped
        };
        // 4 MiB, the size of a large fetch response: by default glibc
        // serves it with mmap (and unmaps it on free).
        let size = 4 << 20;
        assert!(tune_allocators());
        assert!(!mapped_for(size), "a 4 MiB buffer was still mmapped");
    }
}
