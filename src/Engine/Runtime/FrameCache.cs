using ZonLb.Native.Xsk;

namespace ZonLb.Engine.Runtime;

/// <summary>
/// A worker's own stock of free UMEM frames in front of the shared pool (<see cref="Umem"/>, which takes a lock per
/// call): frames freed by drops and completions come back here and refill the fill rings from here, so a worker
/// touches the pool's lock only when its stock runs out or overflows, a batch at a time. Owned by one thread.
/// </summary>
internal sealed class FrameCache
{
    /// <summary>Frames kept at most: four RX batches' worth.</summary>
    public const int Capacity = 256;

    private readonly Umem _pool;
    private readonly ulong[] _frames = new ulong[Capacity];
    private readonly ulong _frameMask;
    private int _count;

    public FrameCache(Umem pool)
    {
        _pool = pool;
        _frameMask = ~(ulong)(pool.FrameSize - 1);
    }

    /// <summary>Frames in this stock (free frames, not in the pool's count; read by frame accounting once the
    /// worker has stopped).</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Takes a frame; false when neither this stock nor the pool has one.</summary>
    public bool TryAllocate(out ulong addr)
    {
        if (_count == 0)
            _count = _pool.AllocateBatch(_frames.AsSpan(0, Capacity / 2));
        if (_count == 0)
        {
            addr = 0;
            return false;
        }
        addr = _frames[--_count];
        return true;
    }

    /// <summary>Takes up to dst.Length frames, from this stock first; returns how many.</summary>
    public int AllocateBatch(Span<ulong> dst)
    {
        int local = Math.Min(dst.Length, _count);
        _frames.AsSpan(_count - local, local).CopyTo(dst);
        _count -= local;
        return local == dst.Length ? local : local + _pool.AllocateBatch(dst.Slice(local));
    }

    /// <summary>Returns a frame (any address inside it).</summary>
    public void Free(ulong addr)
    {
        if (_count == Capacity)
            Spill();
        _frames[_count++] = addr & _frameMask;
    }

    /// <summary>Returns frames (any addresses inside them).</summary>
    public void FreeBatch(ReadOnlySpan<ulong> addrs)
    {
        if (addrs.Length > Capacity / 2)
        {
            _pool.FreeBatch(addrs);
            return;
        }
        if (_count + addrs.Length > Capacity)
            Spill();
        foreach (ulong a in addrs)
            _frames[_count++] = a & _frameMask;
    }

    /// <summary>Gives half the stock back to the pool.</summary>
    private void Spill()
    {
        int n = _count / 2;
        _pool.FreeBatch(_frames.AsSpan(_count - n, n));
        _count -= n;
    }
}
