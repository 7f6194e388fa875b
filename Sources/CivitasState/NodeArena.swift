#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Memory for the state-node cache, in large mappings the kernel is asked to back with
/// huge pages (2 MiB on x86-64), carved into blocks of a few sizes.
///
/// With the cache's gigabyte of nodes spread over 4 KiB pages, nearly every lookup missed
/// the processor's address translation as well as its data cache: the page-table walk was
/// one more trip to memory before the one for the node. Huge pages put the whole cache
/// within reach of the translation buffer. The allocator's own huge pages, asked for the
/// whole heap (jemalloc `thp:always`), covered a tenth of it (docs/benchmarks.md,
/// session 15); mappings of our own are huge from the start.
///
/// Blocks come in steps of 64 bytes up to `largest`; a freed block goes on its size's
/// free list (linked through its first word) and mappings are never returned: the cache
/// keeps within its budget, so what it freed it allocates again. A larger request is
/// left to the system allocator. Not thread-safe: the cache uses it under its lock.
struct NodeArena {
    static let step = 64
    static let largest = 2_048
    static let regionBytes = 32 << 20
    static let hugePage = 2 << 20

    private var free = [UnsafeMutableRawPointer?](repeating: nil, count: largest / step + 1)
    typealias Region = (base: UnsafeMutableRawPointer, bytes: Int, mapped: Bool)
    private var regions: [Region] = []
    private var next: UnsafeMutableRawPointer?
    private var left = 0

    /// The bytes a block for `size` bytes really takes.
    static func blockBytes(_ size: Int) -> Int { (size + step - 1) / step * step }

    mutating func allocate(_ size: Int) -> UnsafeMutableRawPointer {
        guard size <= Self.largest else { return .allocate(byteCount: size, alignment: 16) }
        let block = Self.blockBytes(size)
        let list = block / Self.step
        if let head = free[list] {
            free[list] = head.load(as: UnsafeMutableRawPointer?.self)
            return head
        }
        if left < block {
            // The tail of the last region is too small for this block: it stays unused
            // (at most `largest` bytes per region).
            let region = Self.map(Self.regionBytes)
            regions.append(region)
            next = region.base
            left = region.bytes
        }
        let block0 = next!
        next = block0 + block
        left -= block
        return block0
    }

    mutating func release(_ pointer: UnsafeMutableRawPointer, size: Int) {
        guard size <= Self.largest else { return pointer.deallocate() }
        let list = Self.blockBytes(size) / Self.step
        pointer.storeBytes(of: free[list], as: UnsafeMutableRawPointer?.self)
        free[list] = pointer
    }

    /// Unmaps every region; blocks above `largest` are the caller's to release first.
    mutating func destroy() {
        for region in regions { Self.unmap(region) }
        regions = []
        free = free.map { _ in nil }
        next = nil
        left = 0
    }

    /// A zeroed mapping of at least `bytes` (rounded up to huge pages), aligned to a huge
    /// page and advised to use them.
    static func map(_ bytes: Int) -> Region {
        let size = (bytes + hugePage - 1) / hugePage * hugePage
        // Mapped a huge page over, then trimmed to an aligned start.
        let raw = mmap(nil, size + hugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let raw, raw != MAP_FAILED else {
            // Out of address space or memory: the system allocator's own way of failing.
            let fallback = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: hugePage)
            fallback.initializeMemory(as: UInt8.self, repeating: 0, count: size)
            return (fallback, size, false)
        }
        let address = UInt(bitPattern: raw)
        let aligned = (address + UInt(hugePage) - 1) / UInt(hugePage) * UInt(hugePage)
        let head = Int(aligned - address)
        if head > 0 { munmap(raw, head) }
        let tail = hugePage - head
        if tail > 0 { munmap(UnsafeMutableRawPointer(bitPattern: aligned + UInt(size))!, tail) }
        let base = UnsafeMutableRawPointer(bitPattern: aligned)!
        #if os(Linux)
            // Advice only: without transparent huge pages the mapping still works, in small pages.
            _ = madvise(base, size, MADV_HUGEPAGE)
        #endif
        return (base, size, true)
    }

    static func unmap(_ region: Region) {
        if region.mapped { munmap(region.base, region.bytes) } else { region.base.deallocate() }
    }
}
