using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using ZonLb.Native.Interop;

namespace ZonLb.Native.Xsk;

/// <summary>
/// The packet buffer area shared by all AF_XDP sockets of the process (one UMEM), cut into equal frames,
/// with the pool of frames we currently own. The pool is a stack of frame base addresses; every frame is at
/// all times either in the pool or lent out (fill ring, RX processing, TX ring, held), so
/// <see cref="FreeFrames"/> + lent = <see cref="FrameCount"/>. Workers share the pool; it takes a lock per call,
/// so the data path uses the batch calls (one lock per batch).
/// </summary>
public sealed unsafe class Umem : IDisposable
{
    private readonly ulong[] _free;
    private int _freeCount;
    private nint _area;

    public Umem(int frameCount, int frameSize)
    {
        if (frameSize is not (2048 or 4096))
            throw new ArgumentOutOfRangeException(nameof(frameSize), frameSize, "frame size must be 2048 or 4096");
        if (frameCount <= 0)
            throw new ArgumentOutOfRangeException(nameof(frameCount), frameCount, "frame count must be positive");
        FrameCount = frameCount;
        FrameSize = frameSize;
        Length = (ulong)frameCount * (ulong)frameSize;
        _area = Libc.mmap(0, (nuint)Length, Libc.PROT_READ | Libc.PROT_WRITE,
            Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_POPULATE, -1, 0);
        if (_area == Libc.MAP_FAILED)
            throw NativeException.FromLastError($"mmap of a {Length >> 20} MiB UMEM area");
        _free = new ulong[frameCount];
        for (int i = 0; i < frameCount; i++)
            _free[i] = (ulong)(frameCount - 1 - i) * (ulong)frameSize;
        _freeCount = frameCount;
    }

    public int FrameCount { get; }
    public int FrameSize { get; }
    public ulong Length { get; }
    internal nint Area => _area;

    public int FreeFrames => Volatile.Read(ref _freeCount);

    /// <summary>Takes a frame from the pool; false when the pool is empty.</summary>
    public bool TryAllocate(out ulong addr)
    {
        lock (_free)
        {
            if (_freeCount == 0)
            {
                addr = 0;
                return false;
            }
            addr = _free[--_freeCount];
            return true;
        }
    }

    /// <summary>Takes up to dst.Length frames; returns how many.</summary>
    public int AllocateBatch(Span<ulong> dst)
    {
        lock (_free)
        {
            int n = Math.Min(dst.Length, _freeCount);
            _free.AsSpan(_freeCount - n, n).CopyTo(dst);
            _freeCount -= n;
            return n;
        }
    }

    /// <summary>Returns a frame (any address inside it) to the pool.</summary>
    public void Free(ulong addr)
    {
        lock (_free)
        {
            if (_freeCount == _free.Length)
                throw new InvalidOperationException($"frame 0x{addr:x} freed twice: the pool already holds every frame");
            _free[_freeCount++] = addr & ~(ulong)(FrameSize - 1);
        }
    }

    /// <summary>Returns frames (any addresses inside them) to the pool.</summary>
    public void FreeBatch(ReadOnlySpan<ulong> addrs)
    {
        ulong mask = ~(ulong)(FrameSize - 1);
        lock (_free)
        {
            if (_freeCount + addrs.Length > _free.Length)
                throw new InvalidOperationException("frames freed twice: the pool would hold more frames than the UMEM has");
            foreach (ulong a in addrs)
                _free[_freeCount++] = a & mask;
        }
    }

    /// <summary>The bytes of a received or to-be-sent frame. addr + len must lie in one frame.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<byte> GetFrame(ulong addr, int length)
    {
        ulong frameStart = addr & ~(ulong)(FrameSize - 1);
        if (addr >= Length || (uint)length > (uint)FrameSize || addr + (ulong)length > frameStart + (ulong)FrameSize)
            ThrowOutsideFrame(addr, length);
        return new Span<byte>((byte*)_area + addr, length);
    }

    [DoesNotReturn]
    private static void ThrowOutsideFrame(ulong addr, int length) =>
        throw new ArgumentOutOfRangeException(nameof(addr), $"frame 0x{addr:x}+{length} is outside one UMEM frame");

    /// <summary>The whole frame that contains addr, for writing a frame of any length up to the frame size.</summary>
    public Span<byte> GetWholeFrame(ulong addr, out int offsetInFrame)
    {
        ulong frameStart = addr & ~(ulong)(FrameSize - 1);
        offsetInFrame = (int)(addr - frameStart);
        return new Span<byte>((byte*)_area + frameStart, FrameSize);
    }

    public void Dispose()
    {
        if (_area != 0)
        {
            Libc.munmap(_area, (nuint)Length);
            _area = 0;
        }
    }
}
