using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using ZonLb.Native.Interop;

namespace ZonLb.Native.Memory;

/// <summary>
/// A fixed-length, zero-filled array of unmanaged values in anonymous memory that the kernel may back with
/// 2 MiB pages (MADV_HUGEPAGE; transparent huge pages in "madvise" or "always" mode). For tables of millions
/// of entries probed at random, where 4 KiB pages would add a TLB miss (and a page walk that misses the cache)
/// to every probe. Populated (every page faulted in) when asked: a first touch of a 2 MiB page in the data path
/// costs the kernel zeroing it, and compacting memory to find it, milliseconds measured here; otherwise touched
/// lazily. Indexing is bounds-checked; <see cref="Prefetch"/> asks for an element's cache line ahead of its use.
/// Owns its memory: <see cref="Dispose"/>, or else the finalizer, unmaps it.
/// </summary>
public sealed unsafe class HugePageArray<T> : IDisposable where T : unmanaged
{
    private nint _area;
    private readonly nuint _bytes;
    private long _length;

    /// <summary>Maps room for <paramref name="length"/> elements (at least one).</summary>
    /// <param name="populate">Fault every page in now (resident memory up front, no page fault later).</param>
    public HugePageArray(long length, bool populate = false)
    {
        if (length <= 0)
            throw new ArgumentOutOfRangeException(nameof(length), length, "length must be positive");
        _bytes = (nuint)length * (nuint)sizeof(T);
        _area = Libc.mmap(0, _bytes, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS, -1, 0);
        if (_area == Libc.MAP_FAILED)
        {
            _area = 0;
            throw NativeException.FromLastError($"mmap of {_bytes >> 20} MiB for a table of {length} entries");
        }
        // Only a hint: without transparent huge pages the array works the same on 4 KiB pages.
        Libc.madvise(_area, _bytes, Libc.MADV_HUGEPAGE);
        _length = length;
        if (populate && Libc.madvise(_area, _bytes, Libc.MADV_POPULATE_WRITE) != 0)
        {
            // before Linux 5.14: touch a byte of every 4 KiB page
            for (nuint offset = 0; offset < _bytes; offset += 4096)
                ((byte*)_area)[offset] = 0;
        }
    }

    /// <summary>The number of elements (0 once disposed).</summary>
    public long Length => _length;

    /// <summary>The element at <paramref name="index"/>.</summary>
    public ref T this[long index]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            if ((ulong)index >= (ulong)_length)
                ThrowIndex(index);
            return ref ((T*)_area)[index];
        }
    }

    /// <summary>Starts loading the cache line(s) of element <paramref name="index"/>: two lines for an element of
    /// up to 128 bytes (no effect out of range, or on CPUs without SSE).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Prefetch(long index)
    {
        if (!Sse.IsSupported || (ulong)index >= (ulong)_length)
            return;
        byte* p = (byte*)((T*)_area + index);
        Sse.Prefetch0(p);
        if (sizeof(T) > 64)
            Sse.Prefetch0(p + sizeof(T) - 1);
    }

    /// <summary>Sets every element to its default.</summary>
    public void Clear()
    {
        if (_area != 0)
            System.Runtime.InteropServices.NativeMemory.Clear((void*)_area, _bytes);
    }

    /// <summary>Unmaps the memory; the array is empty afterwards.</summary>
    public void Dispose()
    {
        Release();
        GC.SuppressFinalize(this);
    }

    /// <summary>Unmaps the memory if <see cref="Dispose"/> was not called.</summary>
    ~HugePageArray() => Release();

    private void Release()
    {
        _length = 0;
        nint area = Interlocked.Exchange(ref _area, 0);
        if (area != 0)
            Libc.munmap(area, _bytes);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowIndex(long index) =>
        throw new IndexOutOfRangeException($"index {index} is outside a table of {_length} entries");
}
